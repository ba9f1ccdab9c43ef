/* sm-gui-keys.h: the certstore operations of the Keys page and the setup
 * assistant, as worker-thread jobs (SmGuiJobFunc: they block and spawn gpg).
 *
 * This file pair includes only certstore headers: certstore's SmProtocol and
 * the proxy's SmCryptoProtocol share enumerator names, so no file may
 * include both. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* One line per own key ("OpenPGP key for ..., valid until ..."), and with
 * @include_certs also the correspondents' certificates.  Array of char*. */
GPtrArray *sm_gui_keys_list (gboolean include_certs, GError **error);

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
