/* sm-certstore-private.h: what sm-backup.c and the tests share with
 * sm-certstore.c but the proxy has no business calling. */
#pragma once

#include "sm-certstore.h"

G_BEGIN_DECLS

/* gpg-agent's S2K iteration count for the store's keys (gpg-agent.conf
 * `s2k-count`): the smallest GnuPG accepts. Cheap on purpose: every key is
 * protected by a generated 144-bit passphrase, which stretching cannot make
 * stronger (certstore/README.md "Passphrases"). A plain literal: it is
 * stringified into the config line. */
#define SM_CERTSTORE_AGENT_S2K_COUNT 65536

/* An OpenPGP context that answers passphrase requests with @passphrase
 * (loopback pinentry). Only for OpenPGP: gpgsm cannot take a callback. */
gpgme_ctx_t sm_certstore_new_context_with_passphrase (SmCertstore *self,
                                                      SmProtocol   protocol,
                                                      const char  *passphrase,
                                                      GError     **error);

/* gpgme_key_t array (free func gpgme_key_unref) of @protocol matching
 * @pattern (NULL = all). @secret_only lists secret keys; otherwise public
 * keys with ->secret set for ours. */
GPtrArray  *sm_certstore_list_gpgme_keys (SmCertstore *self,
                                          SmProtocol   protocol,
                                          const char  *pattern,
                                          gboolean     secret_only,
                                          GError     **error);

/* Creates @home 0700 and makes sure gpg-agent.conf and gpgsm.conf hold
 * the settings the store relies on (keeping any other lines). */
gboolean    sm_certstore_prepare_home (const char *home,
                                       GError    **error);

/* Presets @passphrase for every keygrip of @key. */
gboolean    sm_certstore_preset_key (SmCertstore *self,
                                     gpgme_key_t  key,
                                     const char  *passphrase,
                                     GError     **error);

/* Runs gpgsm to import a gpgsm-readable PKCS#12 protected by @passphrase;
 * the key is stored in the agent under the same passphrase unless the agent
 * already had it (@new_secret FALSE: it keeps its old protection). Returns
 * the fingerprints of the imported certificates. */
GPtrArray  *sm_certstore_gpgsm_import_p12 (SmCertstore *self,
                                           GBytes      *p12,
                                           const char  *passphrase,
                                           gboolean    *new_secret,
                                           GError     **error);

/* Imports @data with GPGME into @protocol and returns the fingerprints of
 * the keys it touched. @passphrase is for OpenPGP secret keys, may be NULL. */
GPtrArray  *sm_certstore_import_data (SmCertstore *self,
                                      SmProtocol   protocol,
                                      GBytes      *data,
                                      const char  *passphrase,
                                      GError     **error);

/* The CRL folder of the home. */
char       *sm_certstore_get_crl_dir (SmCertstore *self);

/* After trustlist.txt changed: make the agent re-read it and preset the
 * passphrases again (the reload flushes them). */
void        sm_certstore_reload_agent (SmCertstore *self);

G_END_DECLS
