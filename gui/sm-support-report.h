/* sm-support-report.h: the redacted diagnostics file a user sends to the
 * helpdesk (`securemail support-report FILE`, the Diagnostics page).
 *
 * It holds the settings and the policy (they contain no secrets by design;
 * keys whose names suggest a secret are still dropped), the doctor checks,
 * the daemon's D-Bus status, the own keys' fingerprints and expiry, and the
 * program versions.  Never a password, passphrase or private key: as a last
 * guard, the provider and local passwords from the keyring are searched for
 * and cut out if they appear anywhere. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Builds the report (blocking: runs the doctor checks).  Returns new text. */
char    *sm_support_report_build (const char *config_path);
/* Writes it to @out_path, mode 0600. */
gboolean sm_support_report_write (const char *config_path, const char *out_path, GError **error);

G_END_DECLS
