/* sm-certstore.h: the project's own GnuPG home with both protocols.
 *
 * SmCertstore owns `$XDG_DATA_HOME/securemail/gnupg` (or an explicit home for
 * tests and tools): it creates it 0700 with the agent and gpgsm settings we
 * rely on, lists and imports keys and certificates, keeps the S/MIME trust
 * anchors and CRLs, and hands gpg-agent the passphrases from the OS keyring
 * (sm_certstore_unlock()) so nothing ever prompts per message.
 *
 * All calls are synchronous and may spawn gpg/gpgsm; the proxy calls them
 * from a GTask worker thread. One SmCertstore must not be used from two
 * threads at once; GPGME contexts from sm_certstore_new_context() are
 * independent and may be used in other threads.
 */
#pragma once

#include <gio/gio.h>
#include <gpgme.h>

#include "sm-certstore-error.h"
#include "sm-key-info.h"

G_BEGIN_DECLS

/* Warn this many days before one of our keys or anchors expires. */
#define SM_CERTSTORE_EXPIRY_WARN_DAYS 30
/* Lifetime of keys we generate (the CA decides for S/MIME). */
#define SM_CERTSTORE_DEFAULT_KEY_DAYS (2 * 365)
/* Largest key/certificate file we read. */
#define SM_CERTSTORE_MAX_IMPORT_SIZE (16 * 1024 * 1024)
/* RSA size for S/MIME requests: what CAs issue and every client reads. */
#define SM_CERTSTORE_SMIME_RSA_BITS 3072

#define SM_TYPE_CERTSTORE (sm_certstore_get_type ())
G_DECLARE_FINAL_TYPE (SmCertstore, sm_certstore, SM, CERTSTORE, GObject)

/* Opens the user's store, `$XDG_DATA_HOME/securemail/gnupg`, creating it if
 * needed, and applies the administrator's trust anchors (policy.conf). */
SmCertstore *sm_certstore_new          (GError    **error);

/* Opens the store in @home (created 0700 if missing). Does not apply the
 * policy: call sm_certstore_apply_policy() for that. */
SmCertstore *sm_certstore_new_for_home (const char *home,
                                        GError    **error);

/* The default home path (newly allocated). */
char        *sm_certstore_default_home (void);

const char  *sm_certstore_get_home     (SmCertstore *self);

/* A new GPGME context for @protocol on this home (caller frees with
 * gpgme_release()). It never prompts: a missing passphrase fails fast with an
 * error that maps to SM_CERTSTORE_ERROR_LOCKED. */
gpgme_ctx_t  sm_certstore_new_context  (SmCertstore *self,
                                        SmProtocol   protocol,
                                        GError     **error);

/* Hands every passphrase of this home's secret keys from the keyring to
 * gpg-agent (gpg-preset-passphrase), so signing and decryption work without
 * prompts until the agent stops. @n_preset (may be NULL) receives the number
 * of keys unlocked. Keys without a stored passphrase are skipped (they are
 * unprotected, or the user must re-import them). */
gboolean     sm_certstore_unlock       (SmCertstore  *self,
                                        GCancellable *cancellable,
                                        guint        *n_preset,
                                        GError      **error);

/* Our own keys (those with a secret key), both protocols. Array of SmKeyInfo. */
GPtrArray   *sm_certstore_list_own_keys (SmCertstore *self,
                                         GError     **error);

/* Correspondents' keys and certificates and CA certificates (everything
 * without a secret key), both protocols, with S/MIME chain validity, CRL
 * result and anchor flags. Array of SmKeyInfo. */
GPtrArray   *sm_certstore_list_certs    (SmCertstore *self,
                                         GError     **error);

/* One key by fingerprint, or NULL with SM_CERTSTORE_ERROR_NO_KEY. */
SmKeyInfo   *sm_certstore_get_key       (SmCertstore *self,
                                         SmProtocol   protocol,
                                         const char  *fingerprint,
                                         GError     **error);

/* The GPGME key for @fingerprint (caller unrefs with gpgme_key_unref()). */
gpgme_key_t  sm_certstore_get_gpgme_key (SmCertstore *self,
                                         SmProtocol   protocol,
                                         const char  *fingerprint,
                                         gboolean     secret,
                                         GError     **error);

/* Result of a recipient lookup. */
typedef struct {
  GPtrArray *keys;      /* SmKeyInfo: the chosen key for each found address */
  GPtrArray *found;     /* char *: those addresses, same order as @keys */
  GPtrArray *missing;   /* char *: addresses without a usable key */
  GPtrArray *reasons;   /* char *: for each missing address, why (translated) */
} SmRecipientLookup;

void sm_recipient_lookup_free (SmRecipientLookup *lookup);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmRecipientLookup, sm_recipient_lookup_free)

/* Finds an encryption key for each of @addresses (NULL-terminated) in
 * @protocol: not expired, not revoked, able to encrypt, and for S/MIME with a
 * chain to a trust anchor. The newest such key wins. Only fails for store
 * errors; addresses without keys are reported in ->missing. */
SmRecipientLookup *sm_certstore_lookup_recipients (SmCertstore        *self,
                                                   SmProtocol          protocol,
                                                   const char *const  *addresses,
                                                   GError            **error);

/* Our own identity for @address in @protocol: the newest usable secret key
 * or certificate that can sign. SM_CERTSTORE_ERROR_NO_KEY when there is none,
 * with advice to run `securemail keys generate` / `keys import`. */
SmKeyInfo   *sm_certstore_get_own_identity (SmCertstore *self,
                                            SmProtocol   protocol,
                                            const char  *address,
                                            GError     **error);

/* Keeps the signer's key/certificate from a verified signature so replies
 * can be encrypted. @key_data (may be NULL) is key material that came with
 * the message (an OpenPGP key, or the certificates of a CMS signature); the
 * key @fingerprint must end up in the store (gpgsm already stores the
 * certificates of signatures it verifies). Secret key material in @key_data
 * is refused. Returns the collected key. */
SmKeyInfo   *sm_certstore_collect_from_signature (SmCertstore *self,
                                                  SmProtocol   protocol,
                                                  const char  *fingerprint,
                                                  GBytes      *key_data,
                                                  GError     **error);

typedef struct {
  SmKeyInfo *key;
  int days_left;        /* <= 0: already expired */
} SmExpiryWarning;

void sm_expiry_warning_free (SmExpiryWarning *warning);

/* Our own keys and our trust anchors that expire within @days_ahead days
 * (use SM_CERTSTORE_EXPIRY_WARN_DAYS) or have expired, soonest first. Array
 * of SmExpiryWarning. */
GPtrArray   *sm_certstore_get_expiry_warnings (SmCertstore *self,
                                               int          days_ahead,
                                               GError     **error);

/* Generates an OpenPGP identity: ed25519 primary (sign, certify) and a
 * cv25519 encryption subkey, valid @days (0 = SM_CERTSTORE_DEFAULT_KEY_DAYS),
 * protected by a random passphrase that goes to the keyring and the agent.
 * If the keyring cannot take the passphrase, the key is deleted again. */
SmKeyInfo   *sm_certstore_generate_openpgp (SmCertstore *self,
                                            const char  *name,
                                            const char  *address,
                                            int          days,
                                            GError     **error);

/* Generates an S/MIME key pair in gpg-agent (RSA, random passphrase in the
 * keyring) and returns a PEM PKCS#10 request for the business's CA. The
 * issued certificate is then imported with sm_certstore_import_own(). */
GBytes      *sm_certstore_generate_smime_request (SmCertstore *self,
                                                  const char  *name,
                                                  const char  *address,
                                                  char       **keygrip,
                                                  GError     **error);

/* Imports one of our own keys: a PKCS#12 bundle (any cipher, re-encoded for
 * gpgsm), an OpenPGP secret key (armored or binary), or the certificate a CA
 * issued for a request made by sm_certstore_generate_smime_request().
 * @passphrase is the file's password (PKCS#12) or the key's passphrase
 * (OpenPGP); it may be NULL/"" for none. Returns the imported keys. */
GPtrArray   *sm_certstore_import_own (SmCertstore *self,
                                      GBytes      *data,
                                      const char  *passphrase,
                                      GError     **error);

/* Imports correspondents' certificates (PEM/DER/PKCS#7), OpenPGP public keys
 * or a CRL. Secret keys are refused. Returns the imported keys (empty for a
 * CRL; @crl_issuer then names its issuer, may be NULL). */
GPtrArray   *sm_certstore_import_certs (SmCertstore *self,
                                        GBytes      *data,
                                        char       **crl_issuer,
                                        GError     **error);

/* Exports the public part of our own keys in @protocol (armored OpenPGP or
 * PEM certificates with their chain), for correspondents. @fingerprint NULL
 * means all our keys. */
GBytes      *sm_certstore_export_public (SmCertstore *self,
                                         SmProtocol   protocol,
                                         const char  *fingerprint,
                                         GError     **error);

/* Adds the CA certificate in @cert_data as an S/MIME trust anchor. */
SmKeyInfo   *sm_certstore_trust_ca    (SmCertstore *self,
                                       GBytes      *cert_data,
                                       GError     **error);

/* Removes a user-added anchor; SM_CERTSTORE_ERROR_ADMIN_LOCKED for the
 * administrator's. */
gboolean     sm_certstore_untrust_ca  (SmCertstore *self,
                                       const char  *fingerprint,
                                       GError     **error);

/* Applies the administrator's anchors and CRLs from the folder named by
 * `[policy] trust_anchors_dir` (policy.conf, or $SECUREMAIL_POLICY): adds
 * new ones as locked anchors, drops admin anchors no longer in the folder. */
gboolean     sm_certstore_apply_policy (SmCertstore *self,
                                        GError     **error);

/* Checks an S/MIME certificate and its chain against the CRLs we hold.
 * @detail gets a translated explanation (also when not checked). */
SmRevocation sm_certstore_check_revocation (SmCertstore *self,
                                            const char  *fingerprint,
                                            char       **detail,
                                            GError     **error);

/* Stops this home's gpg-agent (tests, restore). */
void         sm_certstore_shutdown_agent (SmCertstore *self);

G_END_DECLS
