/* sm-trust-database.h: the trust anchors for the provider's certificate.
 *
 * A GTlsDatabase that accepts a chain when the system store does, or when it
 * chains to one of the [upstream] ca_file anchors with no other problem
 * (name, dates, revocation).  Giving each upstream connection this database
 * also keeps glib-networking from building a private copy of the whole
 * system trust store per connection (about 4 MB each with GnuTLS).
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_TYPE_TRUST_DATABASE (sm_trust_database_get_type ())
G_DECLARE_FINAL_TYPE (SmTrustDatabase, sm_trust_database, SM, TRUST_DATABASE, GTlsDatabase)

/* @ca_file may be NULL (system store only).  Fails with SM_ERROR_TLS when
 * the file holds no certificate. */
GTlsDatabase *sm_trust_database_new (const char *ca_file, GError **error);

/* The database for @ca_file, shared by every connection that names the same
 * file (each connection keeps a reference, and parsed anchors cost about
 * 20 KB each).  Thread-safe.  Returns a new reference. */
GTlsDatabase *sm_trust_database_get_shared (const char *ca_file, GError **error);

G_END_DECLS
