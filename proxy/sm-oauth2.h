/* sm-oauth2.h: OAuth 2.0 access tokens for [upstream] auth = oauth2 (issue 7).
 *
 * The refresh token lives in the keyring (SM_KEYRING_OAUTH2_REFRESH_TOKEN);
 * the short-lived access token only in this process's memory, refreshed at
 * the token endpoint (RFC 6749 §6) shortly before it expires.  HTTP is
 * libsoup 3 with the same trust as the mail connections: the system store
 * plus [upstream] ca_file (sm_trust_database_get_shared()).
 *
 * When the token endpoint refuses the refresh token (invalid_grant, HTTP
 * 401) or none is stored, the user must sign in again: the call fails with
 * SM_ERROR_CONSENT and the object's "consent-needed" property turns TRUE
 * (notified on the main context, for the D-Bus service and the tray).
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "sm-config.h"

G_BEGIN_DECLS

/* Refresh an access token this long before the provider said it expires,
 * so that it does not expire between our check and the provider's.  Never
 * more than 1/SM_OAUTH2_REFRESH_MARGIN_DIVISOR of its lifetime, so that
 * very short-lived tokens are still used at all. */
#define SM_OAUTH2_REFRESH_MARGIN_S       60
#define SM_OAUTH2_REFRESH_MARGIN_DIVISOR 4
/* expires_in is only RECOMMENDED (RFC 6749 §5.1): assume this without it. */
#define SM_OAUTH2_DEFAULT_LIFETIME_S     3600
#define SM_OAUTH2_HTTP_TIMEOUT_S         30
#define SM_OAUTH2_MAX_RESPONSE           (64 * 1024)   /* a token response is a few KB */
#define SM_OAUTH2_MAX_TOKEN_LEN          8192          /* longer tokens are refused */

#define SM_TYPE_OAUTH2 (sm_oauth2_get_type ())
G_DECLARE_FINAL_TYPE (SmOAuth2, sm_oauth2, SM, OAUTH2, GObject)

/* The process's token cache for @config's account and provider (made on
 * first use, kept for the life of the process; it copies what it needs of
 * @config).  Thread-safe.  Returns a borrowed pointer. */
SmOAuth2 *sm_oauth2_get_shared (const SmConfig *config);

/* A valid access token: the cached one, or a fresh one from the token
 * endpoint (a new refresh token the provider rotates in is stored in the
 * keyring).  Blocking and thread-safe: concurrent callers share one refresh.
 * Errors: SM_ERROR_CONSENT (sign in again), SM_ERROR_KEYRING,
 * SM_ERROR_UNAVAILABLE (endpoint unreachable or failing), SM_ERROR_TLS,
 * SM_ERROR_PROTOCOL.  Returns a new string; wipe it (sm_keyring_free()). */
char *sm_oauth2_get_access_token (SmOAuth2 *self, GCancellable *cancellable, GError **error);

/* The provider refused the access token we gave it (revoked early, or our
 * clock is off): forget it, so that the next call refreshes. */
void sm_oauth2_invalidate (SmOAuth2 *self);

/* A new sign-in was stored in the keyring: forget the cached access token
 * and clear "consent-needed" (the next call proves whether it works). */
void sm_oauth2_reset (SmOAuth2 *self);

gboolean sm_oauth2_get_consent_needed (SmOAuth2 *self);

/* ---- the token endpoint, shared with `securemail account oauth2-login` ---- */

/* POSTs the form @fields (name, value, name, value, ..., NULL; values are
 * escaped here) to @url with @config's trust, and parses the JSON object it
 * answers.  Any HTTP status with a JSON object body succeeds, with
 * *status_out set: RFC 6749 §5.2 errors come as 400/401 with a JSON body.
 * A body larger than SM_OAUTH2_MAX_RESPONSE or not a JSON object fails with
 * SM_ERROR_PROTOCOL.  Blocking.  The request body is wiped after use. */
JsonObject *sm_oauth2_post_form (const SmConfig *config, const char *url, const char * const *fields,
                                 guint *status_out, GCancellable *cancellable, GError **error);

/* The "error" and "error_description" of an RFC 6749 §5.2 error response
 * as one sanitized line, for messages.  Returns a new string. */
char *sm_oauth2_describe_error (JsonObject *response, guint status);

/* Stores the refresh token of a successful token response (RFC 6749 §5.1)
 * in the keyring for @config's account.  Fails with SM_ERROR_PROTOCOL when
 * it carries none or a malformed one. */
gboolean sm_oauth2_store_refresh_token (const SmConfig *config, JsonObject *response, GError **error);

G_END_DECLS
