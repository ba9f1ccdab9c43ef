/* sm-oauth2-login.h: signing in to the provider for [upstream] auth = oauth2
 * (issue 7), for `securemail account oauth2-login [--device]`.
 *
 * Two grants, both ending with the refresh token in the keyring
 * (sm_oauth2_store_refresh_token()):
 * - the authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 S256)
 *   in the system browser, redirected to a one-shot listener on
 *   http://127.0.0.1:PORT/ (RFC 8252 §7.3; a random port, one request, the
 *   state checked, SM_OAUTH2_LOGIN_TIMEOUT_S to wait);
 * - the device authorization grant (RFC 8628) for machines without a
 *   browser: the user types a code on another device while this one polls.
 * Both block; the CLI calls them directly.
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"

G_BEGIN_DECLS

#define SM_OAUTH2_LOGIN_TIMEOUT_S          300        /* waiting for the browser to come back */
#define SM_OAUTH2_PKCE_VERIFIER_BYTES      32         /* 43 base64url characters (RFC 7636 §4.1) */
#define SM_OAUTH2_STATE_BYTES              16
#define SM_OAUTH2_MAX_REDIRECT_REQUEST     (8 * 1024) /* the browser's request line and headers */
#define SM_OAUTH2_DEVICE_DEFAULT_INTERVAL_S 5         /* RFC 8628 §3.2 */
#define SM_OAUTH2_DEVICE_SLOW_DOWN_S       5          /* RFC 8628 §3.5 */
#define SM_OAUTH2_DEVICE_MAX_WAIT_S        1800       /* whatever expires_in says */

/* Opens @uri in a browser; FALSE when none could be started (the caller
 * has shown the URI to the user as well). */
typedef gboolean (*SmOAuth2OpenUri) (const char *uri, gpointer user_data);
/* Shows the user where to go and which code to type (RFC 8628 §3.3). */
typedef void (*SmOAuth2ShowCode) (const char *verification_uri, const char *user_code, gpointer user_data);

/* Opens @uri in the user's browser: the command in $BROWSER when set (as
 * xdg-open and many tools honour it, e.g. without a desktop), else the
 * desktop's default handler.  Does not wait for the browser. */
gboolean sm_oauth2_open_in_browser (const char *uri, GError **error);

/* The authorization code grant with PKCE.  Needs [oauth2]
 * authorization_endpoint.  Errors: SM_ERROR_CONFIG, SM_ERROR_AUTH (the
 * provider refused or the user declined), SM_ERROR_PROTOCOL (a redirect
 * with the wrong state: not ours), SM_ERROR_UNAVAILABLE (timeout,
 * network). */
gboolean sm_oauth2_login_browser (const SmConfig *config, SmOAuth2OpenUri open_uri, gpointer user_data,
                                  GCancellable *cancellable, GError **error);

/* The device authorization grant.  Needs [oauth2]
 * device_authorization_endpoint.  Errors as above. */
gboolean sm_oauth2_login_device (const SmConfig *config, SmOAuth2ShowCode show_code, gpointer user_data,
                                 GCancellable *cancellable, GError **error);

G_END_DECLS
