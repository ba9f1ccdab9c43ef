/* sm-certstore-error.h: the certstore's error domain and the one place where
 * GPGME/libgpg-error codes become errors a user or helpdesk can act on.
 *
 * Every message produced here names what failed and what to do next, because
 * it ends up verbatim on the CLI's single stderr line, in `securemail doctor`
 * and in tray notifications.
 */
#pragma once

#include <glib.h>
#include <gpgme.h>

G_BEGIN_DECLS

#define SM_CERTSTORE_ERROR (sm_certstore_error_quark ())
GQuark sm_certstore_error_quark (void);

typedef enum {
  SM_CERTSTORE_ERROR_FAILED,            /* anything not listed below */
  SM_CERTSTORE_ERROR_HOME,              /* the GnuPG home cannot be created or used */
  SM_CERTSTORE_ERROR_ENGINE,            /* gpg, gpgsm or gpg-agent is missing or broken */
  SM_CERTSTORE_ERROR_NO_KEY,            /* no (usable) key or certificate for that address/fingerprint */
  SM_CERTSTORE_ERROR_AMBIGUOUS,         /* several keys match where one is needed */
  SM_CERTSTORE_ERROR_LOCKED,            /* gpg-agent has no passphrase: run `securemail unlock` */
  SM_CERTSTORE_ERROR_BAD_PASSPHRASE,    /* a passphrase (key or PKCS#12) was wrong */
  SM_CERTSTORE_ERROR_KEYRING,           /* the OS keyring is unreachable or locked */
  SM_CERTSTORE_ERROR_EXPIRED,           /* the key or certificate has expired */
  SM_CERTSTORE_ERROR_REVOKED,           /* the key or certificate was revoked */
  SM_CERTSTORE_ERROR_UNTRUSTED,         /* no trusted chain to a trust anchor */
  SM_CERTSTORE_ERROR_BAD_DATA,          /* the file is not a key/certificate/CRL we can read */
  SM_CERTSTORE_ERROR_UNSUPPORTED,       /* understood, but a format or algorithm we cannot use */
  SM_CERTSTORE_ERROR_CRL,               /* a CRL is missing, stale or does not verify */
  SM_CERTSTORE_ERROR_ADMIN_LOCKED,      /* set by the administrator's policy; the user cannot change it */
  SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE, /* the backup's recovery code is wrong or mistyped */
  SM_CERTSTORE_ERROR_BACKUP_DAMAGED,    /* the backup file is truncated, altered or not a backup */
  SM_CERTSTORE_ERROR_IO,                /* a file could not be read or written */
} SmCertstoreError;

/* Maps @err (a GPGME/libgpg-error code) into SM_CERTSTORE_ERROR with helpdesk
 * wording. @doing is a short translated phrase ("importing alice.p12") that
 * prefixes the message; may be NULL. Does nothing if @err is 0. Returns FALSE
 * when an error was set, so callers can `return sm_certstore_set_gpgme_error
 * (...)`. */
gboolean sm_certstore_set_gpgme_error (GError     **error,
                                       gpgme_error_t err,
                                       const char  *doing);

/* The SmCertstoreError code that sm_certstore_set_gpgme_error() would use for
 * @err; exposed for tests and for callers that only need to classify. */
SmCertstoreError sm_certstore_error_code_from_gpgme (gpgme_error_t err);

G_END_DECLS
