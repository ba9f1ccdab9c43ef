/* sm-oauth2-login.c: the authorization code (PKCE) and device grants. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>
#include <sys/random.h>

#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-oauth2.h"
#include "sm-oauth2-login.h"
#include "sm-upstream.h"
#include "sm-wipe.h"

/* base64url without padding (RFC 7636 Appendix A).  Returns a new string. */
static char *
base64url (const guint8 *data, gsize len)
{
  char *s = g_base64_encode (data, len);

  g_strdelimit (s, "+", '-');
  g_strdelimit (s, "/", '_');
  *strchrnul (s, '=') = '\0';
  return s;
}

/* base64url of @len random bytes (the PKCE verifier, the state). */
static char *
random_base64url (gsize len, GError **error)
{
  guint8 buf[64];
  char *s;

  g_assert (len <= sizeof buf);
  if (getrandom (buf, len, 0) != (ssize_t) len)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_FAILED, _("The system's random number generator failed"));
      return NULL;
    }
  s = base64url (buf, len);
  sm_wipe (buf, sizeof buf);
  return s;
}

/* code_challenge = BASE64URL(SHA256(code_verifier)) (RFC 7636 §4.2). */
static char *
pkce_challenge (const char *verifier)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 digest[32];
  gsize dlen = sizeof digest;

  g_checksum_update (sum, (const guchar *) verifier, strlen (verifier));
  g_checksum_get_digest (sum, digest, &dlen);
  return base64url (digest, dlen);
}

static void
append_param (GString *url, const char *name, const char *value)
{
  g_autofree char *escaped = g_uri_escape_string (value, NULL, FALSE);
  g_string_append_printf (url, "%c%s=%s", strchr (url->str, '?') ? '&' : '?', name, escaped);
}

/* The token endpoint's answer to a grant: store its refresh token, or turn
 * the RFC 6749 §5.2 error into one for the user. */
static gboolean
accept_token_response (const SmConfig *config, JsonObject *resp, guint status, GError **error)
{
  if (status != 200)
    {
      g_autofree char *why = sm_oauth2_describe_error (resp, status);
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH, _("The provider refused the sign-in (%s)"), why);
      return FALSE;
    }
  return sm_oauth2_store_refresh_token (config, resp, error);
}

/* ---- authorization code with PKCE ------------------------------------------ */

gboolean
sm_oauth2_open_in_browser (const char *uri, GError **error)
{
  const char *browser = g_getenv ("BROWSER");

  if (browser != NULL && *browser != '\0')
    {
      g_autoptr(GSubprocess) p = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, error, browser, uri, NULL);
      return p != NULL;
    }
  return g_app_info_launch_default_for_uri (uri, NULL, error);
}

/* One request from the browser: "GET /?code=...&state=... HTTP/1.1".
 * Answers it with a short page and returns its query parameters. */
static GHashTable *
read_redirect (GSocket *client, GError **error)
{
  g_autoptr(GSocketConnection) conn = g_socket_connection_factory_create_connection (client);
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  g_autofree char *buf = g_malloc0 (SM_OAUTH2_MAX_REDIRECT_REQUEST + 1);
  g_autofree char *page = NULL;
  g_autofree char *response = NULL;
  g_autoptr(GError) local = NULL;
  gsize got = 0;
  char *line_end, *target, *sp, *query;
  GHashTable *params = NULL;

  /* The request line is all we need; read until it is complete. */
  while (got < SM_OAUTH2_MAX_REDIRECT_REQUEST && strstr (buf, "\r\n") == NULL)
    {
      gssize n = g_input_stream_read (in, buf + got, SM_OAUTH2_MAX_REDIRECT_REQUEST - got, NULL, &local);
      if (n <= 0)
        break;
      got += (gsize) n;
    }
  line_end = strstr (buf, "\r\n");
  if (line_end != NULL)
    {
      *line_end = '\0';
      if (g_str_has_prefix (buf, "GET ") && (sp = strchr (buf + 4, ' ')) != NULL)
        {
          *sp = '\0';
          target = buf + 4;
          query = strchr (target, '?');
          params = g_uri_parse_params (query ? query + 1 : "", -1, "&", G_URI_PARAMS_WWW_FORM, NULL);
        }
    }
  page = g_strdup_printf ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>SecureMail</title></head>"
                          "<body><p>%s</p></body></html>",
                          params ? _("SecureMail received the answer of your provider. You can close this "
                                     "window and return to the terminal.")
                                 : _("This is not a sign-in answer SecureMail understands."));
  response = g_strdup_printf ("HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                              "Content-Length: %" G_GSIZE_FORMAT "\r\nConnection: close\r\n"
                              "Cache-Control: no-store\r\n\r\n%s",
                              params ? "200 OK" : "400 Bad Request", strlen (page), page);
  g_output_stream_write_all (out, response, strlen (response), NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
  /* The request carried the authorization code: wipe it. */
  sm_wipe (buf, SM_OAUTH2_MAX_REDIRECT_REQUEST);
  if (params == NULL)
    g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                         _("The browser sent something other than the provider's sign-in answer"));
  return params;
}

/* A listening socket on 127.0.0.1 at a port the system picks (RFC 8252
 * §7.3: loopback IP literal, any port; not "localhost", which could
 * resolve elsewhere). */
static GSocket *
listen_loopback (guint16 *port, GError **error)
{
  g_autoptr(GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  if (sock == NULL || !g_socket_bind (sock, any, FALSE, error) || !g_socket_listen (sock, error) ||
      (bound = g_socket_get_local_address (sock, error)) == NULL)
    return NULL;
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  /* The blocking accept below gives up after this. */
  g_socket_set_timeout (sock, SM_OAUTH2_LOGIN_TIMEOUT_S);
  return g_steal_pointer (&sock);
}

gboolean
sm_oauth2_login_browser (const SmConfig *config, SmOAuth2OpenUri open_uri, gpointer user_data,
                         GCancellable *cancellable, GError **error)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GHashTable) params = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonObject) resp = NULL;
  g_autofree char *state = NULL;
  g_autofree char *challenge = NULL;
  g_autofree char *redirect = NULL;
  g_autoptr(GString) url = NULL;
  char *verifier = NULL;
  const char *got_state, *code, *err;
  guint16 port = 0;
  guint status = 0;

  if (config->oauth2.authorization_endpoint == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_CONFIG,
                           _("[oauth2] authorization_endpoint is not set, so there is no browser sign-in; "
                             "use “securemail account oauth2-login --device” or ask your helpdesk"));
      return FALSE;
    }
  if ((listener = listen_loopback (&port, error)) == NULL ||
      (state = random_base64url (SM_OAUTH2_STATE_BYTES, error)) == NULL ||
      (verifier = random_base64url (SM_OAUTH2_PKCE_VERIFIER_BYTES, error)) == NULL)
    return FALSE;
  challenge = pkce_challenge (verifier);
  redirect = g_strdup_printf ("http://127.0.0.1:%u/", port);

  /* RFC 6749 §4.1.1 with RFC 7636 §4.3. */
  url = g_string_new (config->oauth2.authorization_endpoint);
  append_param (url, "response_type", "code");
  append_param (url, "client_id", config->oauth2.client_id);
  append_param (url, "redirect_uri", redirect);
  if (config->oauth2.scope != NULL)
    append_param (url, "scope", config->oauth2.scope);
  append_param (url, "state", state);
  append_param (url, "code_challenge", challenge);
  append_param (url, "code_challenge_method", "S256");
  open_uri (url->str, user_data);

  client = g_socket_accept (listener, cancellable, &local);
  g_socket_close (listener, NULL);
  if (client == NULL)
    {
      sm_keyring_free (verifier);
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                     _("No answer from the browser within %d minutes; run the command again"),
                     SM_OAUTH2_LOGIN_TIMEOUT_S / 60);
      else
        g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("Waiting for the browser failed: %s"), local->message);
      return FALSE;
    }
  g_socket_set_timeout (client, SM_OAUTH2_HTTP_TIMEOUT_S);
  params = read_redirect (client, error);
  if (params == NULL)
    {
      sm_keyring_free (verifier);
      return FALSE;
    }
  /* RFC 6749 §10.12: an answer without our state was not started by us
   * (cross-site request forgery); nothing is exchanged. */
  got_state = g_hash_table_lookup (params, "state");
  if (got_state == NULL || !sm_keyring_equal (got_state, state))
    {
      sm_keyring_free (verifier);
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The sign-in answer does not belong to this sign-in (wrong state); nothing was "
                             "stored. Run the command again."));
      return FALSE;
    }
  if ((err = g_hash_table_lookup (params, "error")) != NULL)
    {
      g_autofree char *shown = sm_upstream_sanitize_text (err);
      sm_keyring_free (verifier);
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH, _("The provider did not grant access (%s)"), shown);
      return FALSE;
    }
  if ((code = g_hash_table_lookup (params, "code")) == NULL || *code == '\0')
    {
      sm_keyring_free (verifier);
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The provider's answer carried no code"));
      return FALSE;
    }

  {
    /* RFC 6749 §4.1.3 with RFC 7636 §4.5. */
    const char *fields[] = { "grant_type", "authorization_code", "code", code, "redirect_uri", redirect,
                             "client_id", config->oauth2.client_id, "code_verifier", verifier,
                             config->oauth2.client_secret ? "client_secret" : NULL, config->oauth2.client_secret,
                             NULL };
    resp = sm_oauth2_post_form (config, config->oauth2.token_endpoint, fields, &status, cancellable, error);
  }
  sm_keyring_free (verifier);
  if (resp == NULL)
    return FALSE;
  return accept_token_response (config, resp, status, error);
}

/* ---- device authorization grant (RFC 8628) ------------------------------------ */

gboolean
sm_oauth2_login_device (const SmConfig *config, SmOAuth2ShowCode show_code, gpointer user_data,
                        GCancellable *cancellable, GError **error)
{
  g_autoptr(JsonObject) auth = NULL;
  const char *device_code, *user_code, *uri;
  gint64 interval, expires_in, deadline;
  guint status = 0;

  if (config->oauth2.device_authorization_endpoint == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_CONFIG,
                           _("[oauth2] device_authorization_endpoint is not set, so there is no sign-in "
                             "with a code; use “securemail account oauth2-login” (browser) or ask your "
                             "helpdesk"));
      return FALSE;
    }
  {
    /* RFC 8628 §3.1. */
    const char *fields[] = { "client_id", config->oauth2.client_id,
                             config->oauth2.scope ? "scope" : NULL, config->oauth2.scope, NULL };
    auth = sm_oauth2_post_form (config, config->oauth2.device_authorization_endpoint, fields, &status,
                                cancellable, error);
  }
  if (auth == NULL)
    return FALSE;
  if (status != 200)
    {
      g_autofree char *why = sm_oauth2_describe_error (auth, status);
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH, _("The provider refused to start a sign-in with a code (%s)"),
                   why);
      return FALSE;
    }
  device_code = json_object_get_string_member_with_default (auth, "device_code", NULL);
  user_code = json_object_get_string_member_with_default (auth, "user_code", NULL);
  uri = json_object_get_string_member_with_default (auth, "verification_uri", NULL);
  if (device_code == NULL || user_code == NULL || uri == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The provider's answer lacks device_code, user_code or verification_uri"));
      return FALSE;
    }
  {
    g_autofree char *shown_uri = sm_upstream_sanitize_text (uri);
    g_autofree char *shown_code = sm_upstream_sanitize_text (user_code);
    show_code (shown_uri, shown_code, user_data);
  }
  interval = json_object_get_int_member_with_default (auth, "interval", SM_OAUTH2_DEVICE_DEFAULT_INTERVAL_S);
  if (interval <= 0)
    interval = SM_OAUTH2_DEVICE_DEFAULT_INTERVAL_S;
  expires_in = json_object_get_int_member_with_default (auth, "expires_in", SM_OAUTH2_DEVICE_MAX_WAIT_S);
  deadline = g_get_monotonic_time () / G_USEC_PER_SEC + CLAMP (expires_in, 1, SM_OAUTH2_DEVICE_MAX_WAIT_S);

  /* RFC 8628 §3.4/§3.5: poll no faster than the interval; slow_down adds
   * SM_OAUTH2_DEVICE_SLOW_DOWN_S to it for good. */
  for (;;)
    {
      g_autoptr(JsonObject) resp = NULL;
      const char *code;
      const char *fields[] = { "grant_type", "urn:ietf:params:oauth:grant-type:device_code",
                               "device_code", device_code, "client_id", config->oauth2.client_id,
                               config->oauth2.client_secret ? "client_secret" : NULL, config->oauth2.client_secret,
                               NULL };

      if (g_get_monotonic_time () / G_USEC_PER_SEC + interval > deadline)
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH,
                               _("The code was not entered in time; run the command again"));
          return FALSE;
        }
      g_usleep ((gulong) interval * G_USEC_PER_SEC);
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      resp = sm_oauth2_post_form (config, config->oauth2.token_endpoint, fields, &status, cancellable, error);
      if (resp == NULL)
        return FALSE;
      if (status == 200)
        return accept_token_response (config, resp, status, error);
      code = json_object_get_string_member_with_default (resp, "error", "");
      if (g_strcmp0 (code, "authorization_pending") == 0)
        continue;
      if (g_strcmp0 (code, "slow_down") == 0)
        {
          interval += SM_OAUTH2_DEVICE_SLOW_DOWN_S;
          continue;
        }
      if (g_strcmp0 (code, "access_denied") == 0)
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH, _("The sign-in was declined; nothing was stored"));
          return FALSE;
        }
      if (g_strcmp0 (code, "expired_token") == 0)
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH,
                               _("The code expired before it was entered; run the command again"));
          return FALSE;
        }
      return accept_token_response (config, resp, status, error);
    }
}
