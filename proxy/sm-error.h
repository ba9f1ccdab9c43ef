/* sm-error.h: the project's error domain.
 *
 * Every failure a user, the helpdesk or a mail client can see is reported as
 * an SM_ERROR with one of these codes; the protocol layers map them to IMAP
 * response codes and SMTP enhanced status codes (sm_error_to_imap_code(),
 * sm_error_to_smtp_reply()).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SM_ERROR (sm_error_quark ())
GQuark sm_error_quark (void);

typedef enum {
  SM_ERROR_FAILED,            /* anything not listed below */
  SM_ERROR_CONFIG,            /* a config key is missing or wrong */
  SM_ERROR_POLICY,            /* refused by the administrator's policy */
  SM_ERROR_PROTOCOL,          /* the peer broke the protocol */
  SM_ERROR_TOO_BIG,           /* a named input limit was exceeded */
  SM_ERROR_AUTH,              /* credentials refused */
  SM_ERROR_TLS,               /* TLS could not be established or verified */
  SM_ERROR_UNAVAILABLE,       /* the provider cannot be reached */
  SM_ERROR_KEYRING,           /* the OS keyring is unreachable or locked */
  SM_ERROR_NO_SECRET,         /* the keyring holds no such secret yet */
  SM_ERROR_LOCKED,            /* SecureMail is locked */
  SM_ERROR_CONSENT,           /* OAuth2: the user must sign in to the provider again */
} SmErrorCode;

G_END_DECLS
