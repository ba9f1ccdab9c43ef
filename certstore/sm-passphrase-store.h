/* sm-passphrase-store.h: key passphrases in the OS keyring (libsecret).
 *
 * One keyring item per secret key, schema "org.securemail.Passphrase",
 * attributes keygrip (the lookup key: gpg-agent caches by keygrip),
 * fingerprint (may be empty for an S/MIME key whose certificate has not been
 * issued yet) and protocol ("openpgp"/"smime").
 *
 * Also the small helpers for secret strings: allocate, wipe, free.
 */
#pragma once

#include <glib.h>
#include <libsecret/secret.h>

#include "sm-key-info.h"

G_BEGIN_DECLS

/* Length in random bytes of a generated key passphrase: base64 makes it 24
 * characters (144 bits, far past guessing). Not longer: gpgsm 2.2's PKCS#12
 * code refuses passwords over 31 characters ("password too long"), and the
 * same passphrase protects the p12 files of imports and backups. */
#define SM_PASSPHRASE_RANDOM_BYTES 18

/* A NUL-terminated secret string; free it with sm_secret_free(), which wipes
 * it first. Use g_autoptr(SmSecret). */
typedef char SmSecret;
void      sm_secret_free (SmSecret *secret);
SmSecret *sm_secret_dup (const char *secret);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSecret, sm_secret_free)

/* Fills @buf with @len bytes from the kernel's CSPRNG. */
gboolean  sm_secret_random_bytes (guint8  *buf,
                                  gsize    len,
                                  GError **error);

/* A fresh random passphrase for a key the user never types. */
SmSecret *sm_passphrase_generate (GError **error);

const SecretSchema *sm_passphrase_get_schema (void);

/* Stores (or replaces) the passphrase for @keygrip. */
gboolean  sm_passphrase_store_save (const char   *keygrip,
                                    const char   *fingerprint,
                                    SmProtocol    protocol,
                                    const char   *passphrase,
                                    GCancellable *cancellable,
                                    GError      **error);

/* Returns the passphrase for @keygrip, or NULL: with @error set when the
 * keyring is unreachable or locked (SM_CERTSTORE_ERROR_KEYRING), without when
 * there is simply no item. */
SmSecret *sm_passphrase_store_lookup (const char   *keygrip,
                                      GCancellable *cancellable,
                                      GError      **error);

/* Removes the item for @keygrip, if any. */
gboolean  sm_passphrase_store_clear (const char   *keygrip,
                                     GCancellable *cancellable,
                                     GError      **error);

G_END_DECLS
