/* sm-certstore-error.c: GPGME codes -> SM_CERTSTORE_ERROR with helpdesk wording.
 *
 * The table is the contract: a helpdesk reading "run `securemail unlock`" must
 * be able to fix the problem without knowing GnuPG internals. Anything not in
 * the table falls back to SM_CERTSTORE_ERROR_FAILED with GnuPG's own text,
 * which is still better than nothing in a support report.
 */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-certstore-error.h"

G_DEFINE_QUARK (securemail-certstore-error-quark, sm_certstore_error)

typedef struct {
  gpg_err_code_t code;
  SmCertstoreError sm_code;
  const char *advice;           /* N_() marked; translated at use */
} SmGpgErrorMapping;

static const SmGpgErrorMapping gpg_error_map[] = {
  { GPG_ERR_NO_SECKEY, SM_CERTSTORE_ERROR_NO_KEY,
    N_("your own key is not in the SecureMail key store; import it with `securemail keys import FILE` or create one with `securemail keys generate`") },
  { GPG_ERR_UNUSABLE_SECKEY, SM_CERTSTORE_ERROR_NO_KEY,
    N_("your own key cannot be used (expired, revoked or not for this purpose); create or import a new one with `securemail keys generate` or `securemail keys import FILE`") },
  { GPG_ERR_NO_PUBKEY, SM_CERTSTORE_ERROR_NO_KEY,
    N_("no key or certificate for this correspondent; import theirs with `securemail certs import FILE`") },
  { GPG_ERR_UNUSABLE_PUBKEY, SM_CERTSTORE_ERROR_NO_KEY,
    N_("the correspondent's key or certificate cannot be used (expired, revoked or not trusted); ask them for a current one and import it with `securemail certs import FILE`") },
  { GPG_ERR_AMBIGUOUS_NAME, SM_CERTSTORE_ERROR_AMBIGUOUS,
    N_("several keys match; use the full fingerprint shown by `securemail keys list` or `securemail certs list`") },
  { GPG_ERR_BAD_PASSPHRASE, SM_CERTSTORE_ERROR_BAD_PASSPHRASE,
    N_("the passphrase is wrong; try again, or ask the helpdesk to re-import the key") },
  { GPG_ERR_NO_PASSPHRASE, SM_CERTSTORE_ERROR_LOCKED,
    N_("the key is locked; run `securemail unlock` and try again") },
  { GPG_ERR_NO_PIN_ENTRY, SM_CERTSTORE_ERROR_LOCKED,
    N_("the key is locked; run `securemail unlock` and try again") },
  { GPG_ERR_ENOTTY, SM_CERTSTORE_ERROR_LOCKED,
    N_("the key is locked; run `securemail unlock` and try again") },
  { GPG_ERR_CANCELED, SM_CERTSTORE_ERROR_LOCKED,
    N_("the passphrase request was cancelled; run `securemail unlock` and try again") },
  { GPG_ERR_FULLY_CANCELED, SM_CERTSTORE_ERROR_LOCKED,
    N_("the passphrase request was cancelled; run `securemail unlock` and try again") },
  { GPG_ERR_KEY_EXPIRED, SM_CERTSTORE_ERROR_EXPIRED,
    N_("the key has expired; get a new one (your own: `securemail keys generate`; a correspondent's: ask them)") },
  { GPG_ERR_CERT_EXPIRED, SM_CERTSTORE_ERROR_EXPIRED,
    N_("the certificate has expired; get a new one from your certificate authority (helpdesk) or from the correspondent") },
  { GPG_ERR_SIG_EXPIRED, SM_CERTSTORE_ERROR_EXPIRED,
    N_("the signature has expired") },
  { GPG_ERR_CERT_REVOKED, SM_CERTSTORE_ERROR_REVOKED,
    N_("the certificate has been revoked; do not use it, and ask its owner for a new one") },
  { GPG_ERR_NOT_TRUSTED, SM_CERTSTORE_ERROR_UNTRUSTED,
    N_("the certificate's authority is not trusted here; ask the helpdesk for the CA certificate and add it with `securemail certs trust FILE`") },
  { GPG_ERR_BAD_CERT_CHAIN, SM_CERTSTORE_ERROR_UNTRUSTED,
    N_("the certificate chain is invalid; ask the helpdesk for the CA certificate and add it with `securemail certs trust FILE`") },
  { GPG_ERR_MISSING_CERT, SM_CERTSTORE_ERROR_UNTRUSTED,
    N_("a certificate of the chain is missing; import the issuing CA certificate with `securemail certs import FILE`") },
  { GPG_ERR_MISSING_ISSUER_CERT, SM_CERTSTORE_ERROR_UNTRUSTED,
    N_("the issuing CA certificate is missing; import it with `securemail certs import FILE`") },
  { GPG_ERR_BAD_CA_CERT, SM_CERTSTORE_ERROR_UNTRUSTED,
    N_("the CA certificate is not valid for issuing certificates; ask the helpdesk for the correct CA certificate") },
  { GPG_ERR_NO_CRL_KNOWN, SM_CERTSTORE_ERROR_CRL,
    N_("no revocation list (CRL) is available, so revocation could not be checked; import the CA's CRL with `securemail certs import FILE`") },
  { GPG_ERR_CRL_TOO_OLD, SM_CERTSTORE_ERROR_CRL,
    N_("the revocation list (CRL) is out of date; import a current one with `securemail certs import FILE`") },
  { GPG_ERR_NO_DATA, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the file holds no key or certificate that SecureMail can read; check that it is the right file") },
  { GPG_ERR_INV_DATA, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the file is damaged or not a key or certificate; check that it is the right file") },
  { GPG_ERR_BAD_DATA, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the data is damaged; check that it is the right file") },
  { GPG_ERR_BAD_BER, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the file is damaged or not a certificate; check that it is the right file") },
  { GPG_ERR_INV_PACKET, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the file is damaged or not an OpenPGP key; check that it is the right file") },
  { GPG_ERR_BAD_CERT, SM_CERTSTORE_ERROR_BAD_DATA,
    N_("the certificate is malformed; ask its issuer for a new one") },
  { GPG_ERR_UNSUPPORTED_ALGORITHM, SM_CERTSTORE_ERROR_UNSUPPORTED,
    N_("the key uses an algorithm this GnuPG cannot handle; ask for an RSA or Curve25519 key") },
  { GPG_ERR_PUBKEY_ALGO, SM_CERTSTORE_ERROR_UNSUPPORTED,
    N_("the key uses an algorithm this GnuPG cannot handle; ask for an RSA or Curve25519 key") },
  { GPG_ERR_UNSUPPORTED_PROTECTION, SM_CERTSTORE_ERROR_UNSUPPORTED,
    N_("the file is protected with a scheme this GnuPG cannot read; re-export it in the legacy (3DES) format") },
  { GPG_ERR_WRONG_KEY_USAGE, SM_CERTSTORE_ERROR_NO_KEY,
    N_("the certificate is not allowed for this use (signing or encryption); ask its issuer for an e-mail certificate") },
  { GPG_ERR_DECRYPT_FAILED, SM_CERTSTORE_ERROR_NO_KEY,
    N_("the message cannot be decrypted with the keys in this key store; restore your key backup with `securemail keys restore FILE`") },
  { GPG_ERR_NO_AGENT, SM_CERTSTORE_ERROR_ENGINE,
    N_("gpg-agent could not be started; check that the `gnupg-agent` package is installed and run `securemail doctor`") },
  { GPG_ERR_AGENT, SM_CERTSTORE_ERROR_ENGINE,
    N_("gpg-agent failed; run `securemail doctor`") },
  { GPG_ERR_INV_ENGINE, SM_CERTSTORE_ERROR_ENGINE,
    N_("gpg or gpgsm is missing or too old; install the `gnupg` and `gpgsm` packages") },
  { GPG_ERR_ENOENT, SM_CERTSTORE_ERROR_ENGINE,
    N_("a GnuPG program is missing; install the `gnupg` and `gpgsm` packages") },
  { GPG_ERR_NOT_IMPLEMENTED, SM_CERTSTORE_ERROR_ENGINE,
    N_("this GnuPG does not support the operation; report this to the helpdesk") },
};

SmCertstoreError
sm_certstore_error_code_from_gpgme (gpgme_error_t err)
{
  gpg_err_code_t code = gpgme_err_code (err);

  for (gsize i = 0; i < G_N_ELEMENTS (gpg_error_map); i++)
    if (gpg_error_map[i].code == code)
      return gpg_error_map[i].sm_code;
  return SM_CERTSTORE_ERROR_FAILED;
}

gboolean
sm_certstore_set_gpgme_error (GError      **error,
                              gpgme_error_t err,
                              const char   *doing)
{
  gpg_err_code_t code = gpgme_err_code (err);
  const SmGpgErrorMapping *m = NULL;
  char detail[256];

  if (code == GPG_ERR_NO_ERROR)
    return TRUE;

  for (gsize i = 0; i < G_N_ELEMENTS (gpg_error_map); i++)
    if (gpg_error_map[i].code == code)
      {
        m = &gpg_error_map[i];
        break;
      }

  /* GnuPG's own text goes in brackets so the helpdesk can search for it. */
  gpgme_strerror_r (err, detail, sizeof detail);
  if (m != NULL)
    g_set_error (error, SM_CERTSTORE_ERROR, m->sm_code, "%s%s%s (%s)",
                 doing ? doing : "", doing ? ": " : "", _(m->advice), detail);
  else
    g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                 _("%s%sGnuPG reported “%s”; run `securemail doctor` and send a `securemail support-report` to the helpdesk if it persists"),
                 doing ? doing : "", doing ? ": " : "", detail);
  return FALSE;
}
