/* sm-keyring.h: the proxy's secrets in the OS keyring (libsecret).
 *
 * Nothing secret is ever written to a file, a log or argv (SPEC.md "Files").
 * Items use the schema "org.securemail.Secret" with the attributes
 * kind (upstream-password | local-password | oauth2-refresh-token | client-certificate-pin) and
 * account (the address), so
 * several accounts can share one keyring.  All calls block: the proxy makes
 * them from worker threads, the CLI directly.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SM_KEYRING_MAX_SECRET_LEN         4096   /* longest password accepted from a user */
#define SM_KEYRING_LOCAL_PASSWORD_CHARS   24     /* generated local password length */

typedef enum {
  SM_KEYRING_UPSTREAM_PASSWORD,
  SM_KEYRING_LOCAL_PASSWORD,
  SM_KEYRING_OAUTH2_REFRESH_TOKEN,   /* [upstream] auth = oauth2 (issue 7) */
  /* The PIN of the token, or the password of the PKCS#12 file, that holds
   * [upstream] client_certificate (issue 7). */
  SM_KEYRING_CLIENT_CERT_PIN,
} SmKeyringItem;

/* Stores @secret (NUL-terminated) for @account.  Fails with SM_ERROR_KEYRING
 * when the keyring cannot be reached or is locked. */
gboolean sm_keyring_store (SmKeyringItem kind, const char *account, const char *secret,
                          GError **error);

/* Looks up the secret.  Returns it in non-pageable memory (free with
 * sm_keyring_free()), or NULL with SM_ERROR_NO_SECRET when there is none, or
 * SM_ERROR_KEYRING when the keyring cannot be used. */
char *sm_keyring_lookup (SmKeyringItem kind, const char *account, GError **error);

/* Removes the secret if present. */
gboolean sm_keyring_clear (SmKeyringItem kind, const char *account, GError **error);

/* Frees and wipes a secret from sm_keyring_lookup() or sm_keyring_local_password(). */
void sm_keyring_free (char *secret);

/* Returns the local client password, generating and storing one the first
 * time (or always, with @reset).  Free with sm_keyring_free(). */
char *sm_keyring_local_password (const char *account, gboolean reset, GError **error);

/* Checks a mail client's local login: @user must be @account and @password
 * the local password from the keyring.  On a mismatch fails with
 * SM_ERROR_AUTH at once: the sessions delay the answer and count failures
 * per client address (sm-login-limiter.h; RFC 9051 §11.3 and RFC 4954 §4
 * leave the method to servers).  A keyring problem fails with its own
 * error.  Blocking: call from a worker thread. */
gboolean sm_keyring_check_local_login (const char *account, const char *user, const char *password,
                                       GError **error);

/* Constant-time comparison of two NUL-terminated secrets. */
gboolean sm_keyring_equal (const char *a, const char *b);

G_END_DECLS
