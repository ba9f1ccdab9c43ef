/* sm-key-summary.h: the user's keys and certificates described in a line
 * each, and the ones about to expire, for the support report, the Keys page,
 * the setup assistant and the daemon's key-expiry warning.
 *
 * GTK-free, so the CLI, the daemon and the GUI share it.  This file pair
 * includes only certstore headers: certstore's SmProtocol and the proxy's
 * SmCryptoProtocol share enumerator names, so no file may include both; this
 * header itself includes nothing of either. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Own keys and trust anchors expiring within this many days get a warning
 * (the tray, `securemail status`).  Thirty days leave time to ask an
 * administrator for a new certificate. */
#define SM_KEY_SUMMARY_WARN_DAYS 30

/* One translated line per own key ("OpenPGP key for ..., valid until ...,
 * fingerprint ..."), and with @include_certs also the correspondents'
 * certificates and trust anchors.  Never key material.  Returns an array of
 * char* (owned by the caller), or NULL with @error set. */
GPtrArray *sm_key_summary_list (gboolean include_certs, GError **error);

/* The own key or trust anchor that expires soonest within @days_ahead days
 * (or has expired): a translated sentence for the user in *@warning (owned by
 * the caller), its fingerprint in *@fingerprint (may be NULL) and the days
 * left in *@days_left (<= 0: expired); *@warning is NULL when none does.
 * Returns FALSE with @error set when the store cannot be read.  Blocks: it
 * runs gpg and gpgsm. */
gboolean sm_key_summary_soonest_expiry (int days_ahead, char **warning, char **fingerprint, int *days_left,
                                        GError **error);

/* Cuts the passphrase of every own key the keyring holds out of @text (the
 * support report's last guard; see sm_support_report_cut_secret()). */
void sm_key_summary_cut_passphrases (GString *text);

G_END_DECLS
