/* sm-gui-keys.h: the certstore operations of the Keys page and the setup
 * assistant, as worker-thread jobs (SmGuiJobFunc: they block and spawn gpg).
 * The listing is sm_key_summary_list() (proxy/sm-key-summary.h), which the
 * CLI's support report shares.
 *
 * This file pair includes only certstore headers: certstore's SmProtocol and
 * the proxy's SmCryptoProtocol share enumerator names, so no file may
 * include both. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Jobs for sm_gui_job_start(); args as named. */
char *sm_gui_keys_generate_openpgp (const char * const *args /* name, address */, char **extra, GError **error);
char *sm_gui_keys_generate_smime   (const char * const *args /* name, address, request path */, char **extra,
                                    GError **error);
char *sm_gui_keys_import           (const char * const *args /* path, passphrase */, char **extra, GError **error);
/* *extra = the recovery code (show it once). */
char *sm_gui_keys_backup           (const char * const *args /* path */, char **extra, GError **error);
char *sm_gui_keys_restore          (const char * const *args /* path, recovery code */, char **extra,
                                    GError **error);

G_END_DECLS
