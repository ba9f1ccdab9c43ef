/* sm-upstream.c: verified connections to the provider's IMAP and SMTP. */
#include "config.h"

#include <glib/gi18n.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "sm-error.h"
#include "sm-wipe.h"
#include "sm-imap-parser.h"
#include "sm-keyring.h"
#include "sm-line-reader.h"
#include "sm-oauth2.h"
#include "sm-tls.h"
#include "sm-upstream.h"

char *
sm_upstream_sanitize_text (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text ? text : "", -1);
  GString *out = g_string_new (NULL);
  guint n = 0;

  for (const char *p = valid; *p && n < SM_UPSTREAM_MAX_QUOTED_TEXT; p = g_utf8_next_char (p), n++)
    {
      gunichar c = g_utf8_get_char (p);
      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
        g_string_append_c (out, '?');
      else
        g_string_append_unichar (out, c);
    }
  if (n == SM_UPSTREAM_MAX_QUOTED_TEXT && *g_utf8_offset_to_pointer (valid, n))
    g_string_append (out, "…");
  return g_string_free (out, FALSE);
}

GSocketConnection *
sm_upstream_connect (const SmConfig *config, const SmEndpoint *endpoint, GCancellable *cancellable,
                     GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GError) local = NULL;
  GSocketConnection *conn;

  if (!sm_config_check_upstream_allowed (config, endpoint->host, error))
    return NULL;
  g_socket_client_set_timeout (client, SM_UPSTREAM_CONNECT_TIMEOUT_S);
  /* TLS is done by us, after the connect, so that nothing GIO does by itself
   * could skip our verification. */
  g_socket_client_set_tls (client, FALSE);
  /* Desktop proxy settings are for the web; a mail connection through an
   * unexpected SOCKS/HTTP proxy would surprise the administrator. */
  g_socket_client_set_enable_proxy (client, FALSE);
  conn = g_socket_client_connect_to_host (client, endpoint->host, endpoint->port, cancellable, &local);
  if (conn == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                   _("Cannot reach the provider at %s:%u: %s. Check the network connection; if it "
                     "works, the provider may be down."),
                   endpoint->host, endpoint->port, local->message);
      return NULL;
    }
  g_socket_set_timeout (g_socket_connection_get_socket (conn), SM_UPSTREAM_IO_TIMEOUT_S);
  /* The relay writes whole chunks; Nagle's algorithm would only hold back
   * the last small piece of each response (and with delayed ACKs, 40 ms). */
  g_socket_set_option (g_socket_connection_get_socket (conn), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  return conn;
}


static gboolean
write_all (GIOStream *stream, const char *data, gsize len, GCancellable *cancellable, GError **error)
{
  g_autoptr(GError) local = NULL;

  if (!g_output_stream_write_all (g_io_stream_get_output_stream (stream), data, len, NULL,
                                  cancellable, &local))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("Connection to the provider failed: %s"),
                   local->message);
      return FALSE;
    }
  return TRUE;
}

/* ---- OAuth2 SASL (issue 7) --------------------------------------------------- */

gboolean
sm_upstream_get_secret (const SmConfig *config, char **secret, GCancellable *cancellable, GError **error)
{
  *secret = NULL;
  switch (config->auth)
    {
    case SM_AUTH_CERTIFICATE:
      return TRUE;   /* the TLS client certificate is the credential */
    case SM_AUTH_OAUTH2:
      *secret = sm_oauth2_get_access_token (sm_oauth2_get_shared (config), cancellable, error);
      break;
    case SM_AUTH_PASSWORD:
    default:
      *secret = sm_keyring_lookup (SM_KEYRING_UPSTREAM_PASSWORD, config->address, error);
      break;
    }
  return *secret != NULL;
}

typedef enum {
  OAUTH2_MECH_NONE,
  OAUTH2_MECH_OAUTHBEARER,
  OAUTH2_MECH_XOAUTH2,
} OAuth2Mech;

/* OAUTHBEARER is the standard (RFC 7628); XOAUTH2 is the older Google
 * form that many providers still offer alone.  Prefer the standard. */
static OAuth2Mech
choose_oauth2_mech (gboolean oauthbearer, gboolean xoauth2)
{
  return oauthbearer ? OAUTH2_MECH_OAUTHBEARER : xoauth2 ? OAUTH2_MECH_XOAUTH2 : OAUTH2_MECH_NONE;
}

static const char *
oauth2_mech_name (OAuth2Mech mech)
{
  return mech == OAUTH2_MECH_OAUTHBEARER ? "OAUTHBEARER" : "XOAUTH2";
}

/* The client's first message, base64: RFC 7628 §3.1 for OAUTHBEARER
 * (gs2 header with the authzid, then host, port and auth, each ended by
 * ^A), or XOAUTH2's "user=U^Aauth=Bearer T^A^A".  Wipe the result. */
static char *
oauth2_initial_response (OAuth2Mech mech, const char *user, const char *token, const char *host, guint16 port)
{
  /* Sized once so that no reallocation leaves an unwiped copy behind. */
  GString *raw = g_string_sized_new (3 * strlen (user) + strlen (host) + strlen (token) + 64);
  char *b64;

  if (mech == OAUTH2_MECH_OAUTHBEARER)
    {
      /* RFC 5801 §4 saslname: "=" and "," are escaped as =3D and =2C. */
      g_string_append (raw, "n,a=");
      for (const char *p = user; *p; p++)
        if (*p == '=')
          g_string_append (raw, "=3D");
        else if (*p == ',')
          g_string_append (raw, "=2C");
        else
          g_string_append_c (raw, *p);
      g_string_append_printf (raw, ",\001host=%s\001port=%u\001auth=Bearer %s\001\001", host, port, token);
    }
  else
    g_string_append_printf (raw, "user=%s\001auth=Bearer %s\001\001", user, token);
  b64 = g_base64_encode ((const guchar *) raw->str, raw->len);
  sm_wipe (raw->str, raw->len);
  g_string_free (raw, TRUE);
  return b64;
}

/* The provider's error challenge (RFC 7628 §3.2.2, a JSON object in
 * base64) as a short sanitized text for messages: its "status". */
static char *
oauth2_challenge_status (const char *b64)
{
  gsize len = 0;
  g_autofree guchar *raw = g_base64_decode (b64 ? b64 : "", &len);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (raw == NULL || !json_parser_load_from_data (parser, (const char *) raw, (gssize) len, NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return g_strdup ("?");
  return sm_upstream_sanitize_text (
      json_object_get_string_member_with_default (json_node_get_object (root), "status", "?"));
}

/* RFC 7628 §3.2.3: after an error challenge the client answers with a
 * single ^A (OAUTHBEARER); XOAUTH2 takes an empty response.  Base64. */
static const char *
oauth2_dummy_response (OAuth2Mech mech)
{
  return mech == OAUTH2_MECH_OAUTHBEARER ? "AQ==" : "";
}

/* The provider refused the access token: it may have been revoked before
 * its time, so the next attempt fetches a new one. */
static void
oauth2_refused (const SmConfig *config, GError **error, const char *detail)
{
  sm_oauth2_invalidate (sm_oauth2_get_shared (config));
  g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
               _("The provider refused the OAuth2 sign-in for %s (%s). Try again; if it keeps "
                 "failing, run “securemail account oauth2-login”."),
               config->username, detail);
}

/* One login attempt with @token on an open connection; @attempt counts
 * from 0.  Fails with SM_ERROR_AUTH when the provider refused the token. */
typedef gboolean (*OAuth2Attempt) (gpointer ctx, const char *token, guint attempt, GError **error);

/* Logs in with @token; when the provider refuses it (revoked before its
 * time, or our clock is off), once more on the same connection with a
 * fresh one from the token endpoint (IMAP and SMTP both allow another
 * AUTHENTICATE/AUTH after a failed one).  When that refresh needs the
 * user's consent, that error is the one reported. */
static gboolean
oauth2_login_with_retry (const SmConfig *config, const char *token, OAuth2Attempt attempt, gpointer ctx,
                         GCancellable *cancellable, GError **error)
{
  g_autoptr(GError) first = NULL;
  char *fresh;
  gboolean ok;

  if (attempt (ctx, token, 0, &first))
    return TRUE;
  if (!g_error_matches (first, SM_ERROR, SM_ERROR_AUTH))
    {
      g_propagate_error (error, g_steal_pointer (&first));
      return FALSE;
    }
  g_message ("OAuth2: the provider refused the access token; trying a fresh one");
  fresh = sm_oauth2_get_access_token (sm_oauth2_get_shared (config), cancellable, error);
  if (fresh == NULL)
    return FALSE;
  ok = attempt (ctx, fresh, 1, error);
  sm_keyring_free (fresh);
  return ok;
}

/* ---- IMAP ---------------------------------------------------------------- */

void
sm_imap_upstream_free (SmImapUpstream *upstream)
{
  if (upstream == NULL)
    return;
  g_clear_object (&upstream->stream);
  g_clear_object (&upstream->socket);
  g_clear_pointer (&upstream->pending, g_bytes_unref);
  g_free (upstream->capabilities);
  g_free (upstream->greeting);
  g_free (upstream);
}

/* Extracts the list of "* CAPABILITY a b c" or of a "[CAPABILITY a b c]"
 * code (RFC 9051 §7.2.2). */
static char *
capabilities_of (const SmImapResponse *resp)
{
  if (resp->code != NULL && g_ascii_strncasecmp (resp->code, "CAPABILITY ", 11) == 0)
    return g_strdup (resp->code + 11);
  if (resp->kind == SM_IMAP_RESPONSE_UNTAGGED && g_strcmp0 (resp->keyword, "CAPABILITY") == 0 &&
      resp->text != NULL)
    return g_strdup (resp->text);
  return NULL;
}

static gboolean
has_capability (const char *caps, const char *name)
{
  g_auto(GStrv) list = caps ? g_strsplit (caps, " ", -1) : NULL;
  for (guint i = 0; list && list[i]; i++)
    if (g_ascii_strcasecmp (list[i], name) == 0)
      return TRUE;
  return FALSE;
}

/* Reads responses until the tagged one for @tag; collects capabilities seen
 * on the way into *caps and counts untagged FETCH responses in *fetches
 * (either may be NULL).  Returns the tagged status, or NONE on error.
 * *text receives the tagged response's text for messages. */
static SmImapStatus
read_tagged_counting (SmLineReader *reader, const char *tag, char **caps, char **text, guint *fetches,
                      GCancellable *cancellable, GError **error)
{
  for (;;)
    {
      g_autofree char *line = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
      g_auto(SmImapResponse) resp = { 0 };
      char *found;
      gsize len;

      if (line == NULL)
        return SM_IMAP_STATUS_NONE;
      len = strlen (line);
      sm_imap_response_classify ((const guint8 *) line, len, &resp);
      if ((found = capabilities_of (&resp)) != NULL && caps != NULL)
        {
          g_free (*caps);
          *caps = found;
        }
      else
        g_free (found);

      /* Skip a literal announced at the end of the line (RFC 9051 §4.3). */
      if (len > 2 && line[len - 1] == '}')
        {
          const char *brace = strrchr (line, '{');
          guint64 n = brace ? g_ascii_strtoull (brace + 1, NULL, 10) : 0;
          g_autoptr(GBytes) skipped = NULL;
          if (n > SM_UPSTREAM_MAX_HANDSHAKE_LITERAL)
            {
              g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                                   _("The provider sent an unexpected large literal"));
              return SM_IMAP_STATUS_NONE;
            }
          if (n > 0 && (skipped = sm_line_reader_read_bytes (reader, n, cancellable, error)) == NULL)
            return SM_IMAP_STATUS_NONE;
        }
      if (fetches != NULL && resp.kind == SM_IMAP_RESPONSE_UNTAGGED && g_strcmp0 (resp.keyword, "FETCH") == 0)
        (*fetches)++;
      if (resp.kind == SM_IMAP_RESPONSE_UNTAGGED && resp.status == SM_IMAP_STATUS_BYE)
        {
          g_autofree char *why = sm_upstream_sanitize_text (resp.text);
          g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("The provider closed the session: %s"), why);
          return SM_IMAP_STATUS_NONE;
        }
      if (resp.kind == SM_IMAP_RESPONSE_TAGGED && g_strcmp0 (resp.tag, tag) == 0)
        {
          if (text)
            *text = sm_upstream_sanitize_text (resp.text);
          return resp.status;
        }
    }
}

static SmImapStatus
read_tagged (SmLineReader *reader, const char *tag, char **caps, char **text,
             GCancellable *cancellable, GError **error)
{
  return read_tagged_counting (reader, tag, caps, text, NULL, cancellable, error);
}

/* IMAP quoted string (RFC 9051 §4.3): only 7-bit text without CR/LF; \ and "
 * escaped.  Returns NULL when the value cannot be quoted. */
static char *
imap_quote (const char *value)
{
  GString *s = g_string_new ("\"");
  for (const char *p = value; *p; p++)
    {
      if ((guchar) *p >= 0x80 || *p == '\r' || *p == '\n')
        {
          sm_wipe (s->str, s->len);
          g_string_free (s, TRUE);
          return NULL;
        }
      if (*p == '"' || *p == '\\')
        g_string_append_c (s, '\\');
      g_string_append_c (s, *p);
    }
  g_string_append_c (s, '"');
  return g_string_free (s, FALSE);
}

static void
wipe_free (char *s)
{
  if (s)
    {
      sm_wipe (s, strlen (s));
      g_free (s);
    }
}

/* IMAP AUTHENTICATE OAUTHBEARER / XOAUTH2 (RFC 9051 §6.2.2, RFC 7628 §3)
 * with the access token @token; SASL-IR (RFC 4959) when offered. */
typedef struct {
  GIOStream *stream;
  SmLineReader *reader;
  const SmConfig *config;
  const char *caps;
  char **caps_out;
  GCancellable *cancellable;
} ImapOAuth2Login;

static gboolean
imap_oauth2_attempt (gpointer ctx, const char *token, guint attempt, GError **error)
{
  ImapOAuth2Login *l = ctx;
  GIOStream *stream = l->stream;
  SmLineReader *reader = l->reader;
  const SmConfig *config = l->config;
  const char *caps = l->caps;
  char **caps_out = l->caps_out;
  GCancellable *cancellable = l->cancellable;
  const char *tag = attempt == 0 ? "smp2" : "smp5";
  OAuth2Mech mech = choose_oauth2_mech (has_capability (caps, "AUTH=OAUTHBEARER"),
                                        has_capability (caps, "AUTH=XOAUTH2"));
  g_autofree char *text = NULL;
  g_autofree char *challenge = NULL;
  char *ir, *cmd;
  gboolean ok;
  SmImapStatus st;

  if (mech == OAUTH2_MECH_NONE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("The provider's IMAP server at %s offers no OAuth2 login (AUTH=OAUTHBEARER or "
                     "AUTH=XOAUTH2); check [upstream] auth"),
                   config->imap.url);
      return FALSE;
    }
  ir = oauth2_initial_response (mech, config->username, token, config->imap.host, config->imap.port);
  if (has_capability (caps, "SASL-IR"))
    cmd = g_strdup_printf ("%s AUTHENTICATE %s %s\r\n", tag, oauth2_mech_name (mech), ir);
  else
    {
      g_autofree char *cont = NULL;
      g_autofree char *start = g_strdup_printf ("%s AUTHENTICATE %s\r\n", tag, oauth2_mech_name (mech));
      if (!write_all (stream, start, strlen (start), cancellable, error) ||
          (cont = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error)) == NULL)
        {
          wipe_free (ir);
          return FALSE;
        }
      if (cont[0] != '+')
        {
          g_autofree char *shown = sm_upstream_sanitize_text (cont);
          wipe_free (ir);
          g_set_error (error, SM_ERROR, SM_ERROR_AUTH, _("The provider refused AUTHENTICATE %s: %s"),
                       oauth2_mech_name (mech), shown);
          return FALSE;
        }
      cmd = g_strconcat (ir, "\r\n", NULL);
    }
  wipe_free (ir);
  ok = write_all (stream, cmd, strlen (cmd), cancellable, error);
  wipe_free (cmd);
  if (!ok)
    return FALSE;

  /* A "+" now is the error challenge (RFC 7628 §3.2.2): answer it with the
   * dummy response, then the tagged NO follows. */
  for (;;)
    {
      g_autofree char *line = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
      g_auto(SmImapResponse) resp = { 0 };
      char *found;

      if (line == NULL)
        return FALSE;
      if (line[0] == '+')
        {
          g_autofree char *dummy = g_strconcat (oauth2_dummy_response (mech), "\r\n", NULL);
          g_free (challenge);
          challenge = oauth2_challenge_status (g_strstrip (line + 1));
          if (!write_all (stream, dummy, strlen (dummy), cancellable, error))
            return FALSE;
          continue;
        }
      sm_imap_response_classify ((const guint8 *) line, strlen (line), &resp);
      if ((found = capabilities_of (&resp)) != NULL && caps_out != NULL)
        {
          g_free (*caps_out);
          *caps_out = found;
        }
      else
        g_free (found);
      if (resp.kind == SM_IMAP_RESPONSE_UNTAGGED && resp.status == SM_IMAP_STATUS_BYE)
        {
          g_autofree char *why = sm_upstream_sanitize_text (resp.text);
          g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("The provider closed the session: %s"), why);
          return FALSE;
        }
      if (resp.kind == SM_IMAP_RESPONSE_TAGGED && g_strcmp0 (resp.tag, tag) == 0)
        {
          st = resp.status;
          text = sm_upstream_sanitize_text (resp.text);
          break;
        }
    }
  if (st != SM_IMAP_STATUS_OK)
    {
      g_autofree char *detail = challenge ? g_strdup_printf ("%s, status %s", text, challenge) : g_strdup (text);
      oauth2_refused (config, error, detail);
      return FALSE;
    }
  return TRUE;
}

/* RFC 4422 Appendix A with RFC 9051 §6.2.2: the identity is the one the TLS
 * client certificate proved; the empty authorization identity asks the
 * provider to derive it from there (so no user name is sent).  The empty
 * response goes after the "+" (an empty line), which needs no SASL-IR. */
static gboolean
imap_external (GIOStream *stream, SmLineReader *reader, const SmConfig *config, const char *caps,
               char **caps_out, GCancellable *cancellable, GError **error)
{
  g_autofree char *cont = NULL;
  g_autofree char *text = NULL;
  SmImapStatus st;

  if (!has_capability (caps, "AUTH=EXTERNAL"))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider at %s offers no certificate login (AUTH=EXTERNAL). Check "
                     "[upstream] auth with your provider: it may want auth = password."),
                   config->imap.url);
      return FALSE;
    }
  if (!write_all (stream, "smp2 AUTHENTICATE EXTERNAL\r\n", 28, cancellable, error))
    return FALSE;
  cont = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
  if (cont == NULL)
    return FALSE;
  if (cont[0] == '+' && !write_all (stream, "\r\n", 2, cancellable, error))
    return FALSE;
  if (cont[0] == '+')
    st = read_tagged (reader, "smp2", caps_out, &text, cancellable, error);
  else
    {
      /* Already the tagged answer (a refusal before the continuation). */
      g_auto(SmImapResponse) resp = { 0 };
      sm_imap_response_classify ((const guint8 *) cont, strlen (cont), &resp);
      st = resp.kind == SM_IMAP_RESPONSE_TAGGED && g_strcmp0 (resp.tag, "smp2") == 0 ? resp.status
                                                                                     : SM_IMAP_STATUS_NO;
      text = sm_upstream_sanitize_text (resp.text ? resp.text : cont);
    }
  if (st == SM_IMAP_STATUS_NONE)
    return FALSE;
  if (st != SM_IMAP_STATUS_OK)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider refused the certificate login (%s). Check that [upstream] "
                     "client_certificate (%s) is the certificate your provider issued to you and "
                     "that it is still valid."),
                   text, config->client_certificate);
      return FALSE;
    }
  return TRUE;
}

static gboolean
imap_login (GIOStream *stream, SmLineReader *reader, const SmConfig *config, const char *password,
            const char *caps, char **caps_out, GCancellable *cancellable, GError **error)
{
  g_autofree char *text = NULL;
  SmImapStatus st;

  if (config->auth == SM_AUTH_OAUTH2)
    {
      ImapOAuth2Login l = { stream, reader, config, caps, caps_out, cancellable };
      return oauth2_login_with_retry (config, password, imap_oauth2_attempt, &l, cancellable, error);
    }

  if (config->auth == SM_AUTH_CERTIFICATE)
    return imap_external (stream, reader, config, caps, caps_out, cancellable, error);
  g_return_val_if_fail (password != NULL, FALSE);
  if (has_capability (caps, "AUTH=PLAIN"))
    {
      /* RFC 4616: authzid NUL authcid NUL passwd, base64; sent after the "+"
       * so that no SASL-IR support is needed. */
      gsize ulen = strlen (config->username), plen = strlen (password);
      gsize rawlen = 2 + ulen + plen;
      char *raw = g_malloc0 (rawlen);
      char *b64, *cmd;
      g_autofree char *cont = NULL;
      gboolean ok;

      memcpy (raw + 1, config->username, ulen);
      memcpy (raw + 2 + ulen, password, plen);
      b64 = g_base64_encode ((const guchar *) raw, rawlen);
      sm_wipe (raw, rawlen);
      g_free (raw);
      if (!write_all (stream, "smp2 AUTHENTICATE PLAIN\r\n", 25, cancellable, error))
        {
          wipe_free (b64);
          return FALSE;
        }
      cont = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
      if (cont == NULL || cont[0] != '+')
        {
          wipe_free (b64);
          if (cont != NULL)
            g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL,
                         _("The provider refused AUTHENTICATE PLAIN: %s"), cont);
          return FALSE;
        }
      cmd = g_strconcat (b64, "\r\n", NULL);
      wipe_free (b64);
      ok = write_all (stream, cmd, strlen (cmd), cancellable, error);
      wipe_free (cmd);
      if (!ok)
        return FALSE;
    }
  else if (!has_capability (caps, "LOGINDISABLED"))
    {
      char *user = imap_quote (config->username);
      char *pass = imap_quote (password);
      char *cmd;
      gboolean ok;

      if (user == NULL || pass == NULL)
        {
          wipe_free (user);
          wipe_free (pass);
          g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH,
                               _("The provider offers only LOGIN, which cannot carry this user name "
                                 "or password (non-ASCII characters)"));
          return FALSE;
        }
      cmd = g_strdup_printf ("smp2 LOGIN %s %s\r\n", user, pass);
      wipe_free (user);
      wipe_free (pass);
      ok = write_all (stream, cmd, strlen (cmd), cancellable, error);
      wipe_free (cmd);
      if (!ok)
        return FALSE;
    }
  else
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH,
                           _("The provider offers no password login (LOGINDISABLED and no "
                             "AUTH=PLAIN); set [upstream] auth to what your provider requires"));
      return FALSE;
    }

  st = read_tagged (reader, "smp2", caps_out, &text, cancellable, error);
  if (st == SM_IMAP_STATUS_NONE)
    return FALSE;
  if (st != SM_IMAP_STATUS_OK)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider refused the login for %s (%s). Store the right password with "
                     "“securemail account set-password”."),
                   config->username, text);
      return FALSE;
    }
  return TRUE;
}

SmImapUpstream *
sm_imap_upstream_open (const SmConfig *config, const char *password, GCancellable *cancellable,
                       GError **error)
{
  g_autoptr(SmImapUpstream) up = g_new0 (SmImapUpstream, 1);
  g_autoptr(SmLineReader) reader = NULL;
  g_autofree char *caps = NULL;
  g_autofree char *greeting = NULL;
  g_autofree char *text = NULL;
  g_auto(SmImapResponse) resp = { 0 };
  GIOStream *stream;

  up->socket = sm_upstream_connect (config, &config->imap, cancellable, error);
  if (up->socket == NULL)
    return NULL;

  if (config->imap.implicit_tls)
    {
      up->stream = sm_tls_client_handshake (G_IO_STREAM (up->socket), config, config->imap.host,
                                            config->imap.port, cancellable, error);
      if (up->stream == NULL)
        return NULL;
    }
  stream = up->stream ? up->stream : G_IO_STREAM (up->socket);
  reader = sm_line_reader_new (g_io_stream_get_input_stream (stream));

  greeting = sm_line_reader_read_line (reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
  if (greeting == NULL)
    return NULL;
  sm_imap_response_classify ((const guint8 *) greeting, strlen (greeting), &resp);
  if (resp.kind != SM_IMAP_RESPONSE_UNTAGGED || resp.status != SM_IMAP_STATUS_OK)
    {
      g_autofree char *shown = sm_upstream_sanitize_text (greeting);
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                   _("The provider at %s did not greet as an IMAP server (%s)"),
                   config->imap.url, resp.status == SM_IMAP_STATUS_PREAUTH ? "PREAUTH" : shown);
      return NULL;
    }
  up->greeting = sm_upstream_sanitize_text (resp.text);

  if (!config->imap.implicit_tls)
    {
      /* RFC 9051 §6.2.1.  STARTTLS must be offered: anything else would send
       * the password in clear, so it is a refusal, never a downgrade. */
      if (!write_all (stream, "smp0 CAPABILITY\r\n", 17, cancellable, error) ||
          read_tagged (reader, "smp0", &caps, NULL, cancellable, error) == SM_IMAP_STATUS_NONE)
        return NULL;
      if (!has_capability (caps, "STARTTLS"))
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("The provider at %s does not offer STARTTLS; SecureMail never sends a "
                         "password unencrypted. Use imaps:// or ask the provider."),
                       config->imap.url);
          return NULL;
        }
      if (!write_all (stream, "smp1 STARTTLS\r\n", 15, cancellable, error))
        return NULL;
      if (read_tagged (reader, "smp1", NULL, &text, cancellable, error) != SM_IMAP_STATUS_OK)
        {
          if (error && *error == NULL)
            g_set_error (error, SM_ERROR, SM_ERROR_TLS, _("The provider refused STARTTLS: %s"), text);
          return NULL;
        }
      /* Bytes after the OK came in clear: refuse before spending a
       * handshake on a connection that is being tampered with. */
      if (sm_line_reader_buffered (reader) > 0)
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                               _("The provider sent data before the TLS handshake; refusing it"));
          return NULL;
        }
      up->stream = sm_tls_client_handshake (G_IO_STREAM (up->socket), config, config->imap.host,
                                            config->imap.port, cancellable, error);
      if (up->stream == NULL ||
          !sm_line_reader_set_stream (reader, g_io_stream_get_input_stream (up->stream), error))
        return NULL;
      stream = up->stream;
      g_clear_pointer (&caps, g_free);
    }

  /* Capabilities may differ after TLS (RFC 9051 §6.2.1): ask again. */
  if (!write_all (stream, "smp3 CAPABILITY\r\n", 17, cancellable, error) ||
      read_tagged (reader, "smp3", &caps, NULL, cancellable, error) == SM_IMAP_STATUS_NONE)
    return NULL;
  if (!imap_login (stream, reader, config, password, caps, &up->capabilities, cancellable, error))
    return NULL;
  if (up->capabilities == NULL || has_capability (up->capabilities, "AUTH=PLAIN"))
    {
      /* No [CAPABILITY] code after login, or the pre-login list: ask. */
      g_clear_pointer (&up->capabilities, g_free);
      if (!write_all (stream, "smp4 CAPABILITY\r\n", 17, cancellable, error) ||
          read_tagged (reader, "smp4", &up->capabilities, NULL, cancellable, error) == SM_IMAP_STATUS_NONE)
        return NULL;
    }
  up->pending = sm_line_reader_steal_buffer (reader);
  g_socket_set_timeout (g_socket_connection_get_socket (up->socket), 0);
  return g_steal_pointer (&up);
}

gboolean
sm_imap_upstream_add_keyword (SmImapUpstream *up, const char *mailbox, guint32 uid, const char *keyword,
                              GCancellable *cancellable, GError **error)
{
  g_autofree char *quoted = imap_quote (mailbox);
  g_autoptr(SmLineReader) reader = NULL;
  g_autofree char *select = NULL;
  g_autofree char *store = NULL;
  g_autofree char *text = NULL;
  guint fetches = 0;
  SmImapStatus st;

  g_return_val_if_fail (up != NULL && up->stream != NULL, FALSE);
  if (quoted == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("The mailbox name “%s” cannot be sent to the provider"),
                   mailbox);
      return FALSE;
    }
  /* The login left the socket without a timeout (for IDLE); this short
   * conversation wants one. */
  g_socket_set_timeout (g_socket_connection_get_socket (up->socket), SM_UPSTREAM_IO_TIMEOUT_S);
  reader = sm_line_reader_new (g_io_stream_get_input_stream (up->stream));
  if (up->pending != NULL)
    sm_line_reader_unread (reader, up->pending);
  g_clear_pointer (&up->pending, g_bytes_unref);

  select = g_strdup_printf ("smk1 SELECT %s\r\n", quoted);
  if (!write_all (up->stream, select, strlen (select), cancellable, error))
    return FALSE;
  st = read_tagged (reader, "smk1", NULL, &text, cancellable, error);
  if (st == SM_IMAP_STATUS_NONE)
    return FALSE;
  if (st != SM_IMAP_STATUS_OK)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("The provider cannot open the mailbox %s: %s"), mailbox, text);
      return FALSE;
    }
  g_clear_pointer (&text, g_free);

  /* RFC 9051 section 6.4.6: without .SILENT the server answers with the
   * new flags in an untagged FETCH, which tells us the UID exists. */
  store = g_strdup_printf ("smk2 UID STORE %u +FLAGS (%s)\r\n", uid, keyword);
  if (!write_all (up->stream, store, strlen (store), cancellable, error))
    return FALSE;
  st = read_tagged_counting (reader, "smk2", NULL, &text, &fetches, cancellable, error);
  if (st == SM_IMAP_STATUS_NONE)
    return FALSE;
  if (st != SM_IMAP_STATUS_OK)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("The provider refused to mark message %u in %s: %s"), uid,
                   mailbox, text);
      return FALSE;
    }
  if (fetches == 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED,
                   _("There is no message with UID %u in %s (moved or deleted?)"), uid, mailbox);
      return FALSE;
    }
  /* Best effort: the keyword is stored whatever LOGOUT does. */
  write_all (up->stream, "smk3 LOGOUT\r\n", 13, cancellable, NULL);
  return TRUE;
}

/* ---- SMTP ---------------------------------------------------------------- */

struct _SmSmtpClient {
  GSocketConnection *socket;
  GIOStream *stream;
  SmLineReader *reader;
  char **extensions;      /* EHLO keywords, upper-cased, with parameters */
};

void
sm_smtp_reply_free (SmSmtpReply *reply)
{
  if (reply == NULL)
    return;
  g_free (reply->enhanced);
  g_free (reply->text);
  g_free (reply);
}

/* Reads one possibly multi-line reply (RFC 5321 §4.2.1).  Returns it, with
 * the lines after the first joined into *lines when asked. */
static SmSmtpReply *
read_reply (SmSmtpClient *c, GPtrArray *lines, GCancellable *cancellable, GError **error)
{
  for (;;)
    {
      g_autofree char *line = sm_line_reader_read_line (c->reader, SM_UPSTREAM_MAX_LINE, cancellable, error);
      gsize len;
      if (line == NULL)
        return NULL;
      len = strlen (line);
      if (len < 3 || !g_ascii_isdigit (line[0]) || !g_ascii_isdigit (line[1]) ||
          !g_ascii_isdigit (line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-'))
        {
          g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The provider sent a malformed SMTP reply"));
          return NULL;
        }
      if (lines != NULL)
        g_ptr_array_add (lines, g_strdup (len > 4 ? line + 4 : ""));
      if (len == 3 || line[3] == ' ')
        {
          SmSmtpReply *reply = g_new0 (SmSmtpReply, 1);
          const char *text = len > 4 ? line + 4 : "";
          reply->code = (guint) g_ascii_strtoull (line, NULL, 10);
          /* RFC 3463 enhanced code: class.subject.detail */
          if (g_ascii_isdigit (text[0]) && text[1] == '.')
            {
              const char *sp = strchr (text, ' ');
              gsize n = sp ? (gsize) (sp - text) : strlen (text);
              reply->enhanced = g_strndup (text, n);
              text = sp ? sp + 1 : "";
            }
          reply->text = sm_upstream_sanitize_text (text);
          return reply;
        }
    }
}

static SmSmtpReply *
command (SmSmtpClient *c, const char *line, GCancellable *cancellable, GError **error)
{
  if (!write_all (c->stream, line, strlen (line), cancellable, error))
    return NULL;
  return read_reply (c, NULL, cancellable, error);
}

static gboolean
ehlo (SmSmtpClient *c, GCancellable *cancellable, GError **error)
{
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(SmSmtpReply) reply = NULL;

  /* "localhost" rather than our host name: the name says nothing useful to
   * the provider and would leak the machine's name into every Received:. */
  if (!write_all (c->stream, "EHLO localhost\r\n", 16, cancellable, error) ||
      (reply = read_reply (c, lines, cancellable, error)) == NULL)
    return FALSE;
  if (reply->code != 250)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The provider refused EHLO: %u %s"),
                   reply->code, reply->text);
      return FALSE;
    }
  g_strfreev (c->extensions);
  g_ptr_array_remove_index (lines, 0); /* the greeting line */
  for (guint i = 0; i < lines->len; i++)
    {
      char *up = g_ascii_strup (lines->pdata[i], -1);
      g_free (lines->pdata[i]);
      lines->pdata[i] = up;
    }
  g_ptr_array_add (lines, NULL);
  c->extensions = (char **) g_ptr_array_free (g_steal_pointer (&lines), FALSE);
  return TRUE;
}

gboolean
sm_smtp_client_has_extension (SmSmtpClient *client, const char *ext)
{
  gsize n = strlen (ext);
  for (guint i = 0; client->extensions && client->extensions[i]; i++)
    if (g_ascii_strncasecmp (client->extensions[i], ext, n) == 0 &&
        (client->extensions[i][n] == '\0' || client->extensions[i][n] == ' '))
      return TRUE;
  return FALSE;
}

static const char *
extension_params (SmSmtpClient *client, const char *ext)
{
  gsize n = strlen (ext);
  for (guint i = 0; client->extensions && client->extensions[i]; i++)
    if (g_ascii_strncasecmp (client->extensions[i], ext, n) == 0 && client->extensions[i][n] == ' ')
      return client->extensions[i] + n + 1;
  return NULL;
}

/* SMTP AUTH OAUTHBEARER / XOAUTH2 (RFC 4954, RFC 7628 §3) with the
 * initial response on the AUTH line. */
typedef struct {
  SmSmtpClient *client;
  const SmConfig *config;
  GCancellable *cancellable;
} SmtpOAuth2Login;

static gboolean
smtp_oauth2_attempt (gpointer ctx, const char *token, guint attempt, GError **error)
{
  SmtpOAuth2Login *l = ctx;
  SmSmtpClient *c = l->client;
  const SmConfig *config = l->config;
  GCancellable *cancellable = l->cancellable;
  const char *mechs = extension_params (c, "AUTH");
  g_auto(GStrv) list = g_strsplit (mechs ? mechs : "", " ", -1);
  g_autoptr(SmSmtpReply) reply = NULL;
  g_autofree char *challenge = NULL;
  gboolean bearer = FALSE, xoauth2 = FALSE;
  OAuth2Mech mech;
  char *ir, *cmd;

  for (guint i = 0; list[i]; i++)
    {
      bearer |= g_ascii_strcasecmp (list[i], "OAUTHBEARER") == 0;
      xoauth2 |= g_ascii_strcasecmp (list[i], "XOAUTH2") == 0;
    }
  mech = choose_oauth2_mech (bearer, xoauth2);
  if (mech == OAUTH2_MECH_NONE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("The provider's SMTP server at %s offers no OAuth2 login (AUTH OAUTHBEARER or "
                     "XOAUTH2); check [upstream] auth"),
                   config->smtp.url);
      return FALSE;
    }
  ir = oauth2_initial_response (mech, config->username, token, config->smtp.host, config->smtp.port);
  cmd = g_strdup_printf ("AUTH %s %s\r\n", oauth2_mech_name (mech), ir);
  wipe_free (ir);
  reply = command (c, cmd, cancellable, error);
  wipe_free (cmd);
  if (reply != NULL && reply->code == 334)
    {
      /* The error challenge (RFC 7628 §3.2.2): the dummy response, then the
       * server's final 5xx. */
      g_autofree char *dummy = g_strconcat (oauth2_dummy_response (mech), "\r\n", NULL);
      challenge = oauth2_challenge_status (reply->text);
      g_clear_pointer (&reply, sm_smtp_reply_free);
      reply = command (c, dummy, cancellable, error);
    }
  if (reply == NULL)
    return FALSE;
  if (reply->code != 235)
    {
      g_autofree char *detail = g_strdup_printf ("%u %s%s%s", reply->code, reply->text,
                                                 challenge ? ", status " : "", challenge ? challenge : "");
      oauth2_refused (config, error, detail);
      return FALSE;
    }
  return TRUE;
}

static gboolean
smtp_offers_mechanism (SmSmtpClient *c, const char *mechanism)
{
  const char *mechs = extension_params (c, "AUTH");
  g_auto(GStrv) list = g_strsplit (mechs ? mechs : "", " ", -1);

  for (guint i = 0; list[i]; i++)
    if (g_ascii_strcasecmp (list[i], mechanism) == 0)
      return TRUE;
  return FALSE;
}

gboolean
sm_smtp_client_offers_auth (SmSmtpClient *client, const char *mechanism)
{
  return smtp_offers_mechanism (client, mechanism);
}

/* With auth = certificate: RFC 4954 AUTH EXTERNAL with the empty initial
 * response "=" (RFC 4422 Appendix A: the identity comes from the TLS
 * client certificate) when the provider offers it.  A provider that does
 * not offer it authorizes the session by the certificate alone (Postfix
 * permit_tls_clientcerts and the like): then there is nothing to send, and
 * a refusal comes at MAIL FROM with the provider's reason. */
static gboolean
smtp_external (SmSmtpClient *c, const SmConfig *config, GCancellable *cancellable, GError **error)
{
  g_autoptr(SmSmtpReply) reply = NULL;

  if (!smtp_offers_mechanism (c, "EXTERNAL"))
    {
      g_debug ("SMTP provider offers no AUTH EXTERNAL: relying on the TLS client certificate");
      return TRUE;
    }
  reply = command (c, "AUTH EXTERNAL =\r\n", cancellable, error);
  if (reply == NULL)
    return FALSE;
  if (reply->code != 235)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider refused the SMTP certificate login (%u %s). Check that "
                     "[upstream] client_certificate (%s) is the certificate your provider issued "
                     "to you and that it is still valid."),
                   reply->code, reply->text, config->client_certificate);
      return FALSE;
    }
  return TRUE;
}

static gboolean
smtp_auth (SmSmtpClient *c, const SmConfig *config, const char *password, GCancellable *cancellable,
           GError **error)
{
  g_autoptr(SmSmtpReply) reply = NULL;
  gboolean plain, login;

  if (config->auth == SM_AUTH_OAUTH2)
    {
      SmtpOAuth2Login l = { c, config, cancellable };
      return oauth2_login_with_retry (config, password, smtp_oauth2_attempt, &l, cancellable, error);
    }

  if (config->auth == SM_AUTH_CERTIFICATE)
    return smtp_external (c, config, cancellable, error);
  g_return_val_if_fail (password != NULL, FALSE);
  plain = smtp_offers_mechanism (c, "PLAIN");
  login = smtp_offers_mechanism (c, "LOGIN");
  if (plain)
    {
      gsize ulen = strlen (config->username), plen = strlen (password);
      gsize rawlen = 2 + ulen + plen;
      char *raw = g_malloc0 (rawlen);
      char *b64, *cmd;
      memcpy (raw + 1, config->username, ulen);
      memcpy (raw + 2 + ulen, password, plen);
      b64 = g_base64_encode ((const guchar *) raw, rawlen);
      sm_wipe (raw, rawlen);
      g_free (raw);
      cmd = g_strdup_printf ("AUTH PLAIN %s\r\n", b64);
      wipe_free (b64);
      reply = command (c, cmd, cancellable, error);
      wipe_free (cmd);
    }
  else if (login)
    {
      g_autoptr(SmSmtpReply) r1 = command (c, "AUTH LOGIN\r\n", cancellable, error);
      char *u, *p, *cmd;
      if (r1 == NULL)
        return FALSE;
      if (r1->code == 334)
        {
          g_autoptr(SmSmtpReply) r2 = NULL;
          u = g_base64_encode ((const guchar *) config->username, strlen (config->username));
          cmd = g_strconcat (u, "\r\n", NULL);
          g_free (u);
          r2 = command (c, cmd, cancellable, error);
          g_free (cmd);
          if (r2 == NULL)
            return FALSE;
          if (r2->code == 334)
            {
              p = g_base64_encode ((const guchar *) password, strlen (password));
              cmd = g_strconcat (p, "\r\n", NULL);
              wipe_free (p);
              reply = command (c, cmd, cancellable, error);
              wipe_free (cmd);
            }
          else
            reply = g_steal_pointer (&r2);
        }
      else
        reply = g_steal_pointer (&r1);
    }
  else
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider's SMTP server at %s offers no password login (AUTH PLAIN or "
                     "LOGIN)"),
                   config->smtp.url);
      return FALSE;
    }
  if (reply == NULL)
    return FALSE;
  if (reply->code != 235)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The provider refused the SMTP login for %s (%u %s). Store the right password "
                     "with “securemail account set-password”."),
                   config->username, reply->code, reply->text);
      return FALSE;
    }
  return TRUE;
}

SmSmtpClient *
sm_smtp_client_open (const SmConfig *config, const char *password, GCancellable *cancellable,
                     GError **error)
{
  g_autoptr(SmSmtpClient) c = g_new0 (SmSmtpClient, 1);
  g_autoptr(SmSmtpReply) greeting = NULL;

  c->socket = sm_upstream_connect (config, &config->smtp, cancellable, error);
  if (c->socket == NULL)
    return NULL;
  if (config->smtp.implicit_tls)
    {
      c->stream = sm_tls_client_handshake (G_IO_STREAM (c->socket), config, config->smtp.host,
                                           config->smtp.port, cancellable, error);
      if (c->stream == NULL)
        return NULL;
    }
  else
    c->stream = g_object_ref (G_IO_STREAM (c->socket));
  c->reader = sm_line_reader_new (g_io_stream_get_input_stream (c->stream));

  greeting = read_reply (c, NULL, cancellable, error);
  if (greeting == NULL)
    return NULL;
  if (greeting->code != 220)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("The provider's SMTP server is not ready: %u %s"),
                   greeting->code, greeting->text);
      return NULL;
    }
  if (!ehlo (c, cancellable, error))
    return NULL;
  if (!config->smtp.implicit_tls)
    {
      g_autoptr(SmSmtpReply) r = NULL;
      GIOStream *tls;
      /* RFC 3207: without STARTTLS the password would go in clear: refuse. */
      if (!sm_smtp_client_has_extension (c, "STARTTLS"))
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("The provider at %s does not offer STARTTLS; SecureMail never sends a "
                         "password unencrypted. Use smtps:// or ask the provider."),
                       config->smtp.url);
          return NULL;
        }
      r = command (c, "STARTTLS\r\n", cancellable, error);
      if (r == NULL)
        return NULL;
      if (r->code != 220)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS, _("The provider refused STARTTLS: %u %s"),
                       r->code, r->text);
          return NULL;
        }
      if (sm_line_reader_buffered (c->reader) > 0)
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                               _("The provider sent data before the TLS handshake; refusing it"));
          return NULL;
        }
      tls = sm_tls_client_handshake (G_IO_STREAM (c->socket), config, config->smtp.host,
                                     config->smtp.port, cancellable, error);
      if (tls == NULL)
        return NULL;
      g_object_unref (c->stream);
      c->stream = tls;
      if (!sm_line_reader_set_stream (c->reader, g_io_stream_get_input_stream (tls), error))
        return NULL;
      if (!ehlo (c, cancellable, error))
        return NULL;
    }
  if (!smtp_auth (c, config, password, cancellable, error))
    return NULL;
  return g_steal_pointer (&c);
}

void
sm_smtp_client_free (SmSmtpClient *client)
{
  if (client == NULL)
    return;
  g_clear_pointer (&client->reader, sm_line_reader_free);
  g_clear_object (&client->stream);
  g_clear_object (&client->socket);
  g_strfreev (client->extensions);
  g_free (client);
}

void
sm_smtp_client_quit (SmSmtpClient *client)
{
  g_autoptr(SmSmtpReply) r = command (client, "QUIT\r\n", NULL, NULL);
}

static gboolean
refused (SmSmtpClient *c, SmSmtpReply *reply, SmSmtpReply **refusal, GCancellable *cancellable,
         GError **error)
{
  g_autoptr(SmSmtpReply) rset = NULL;

  g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("The provider refused the message: %u %s"),
               reply->code, reply->text);
  if (refusal)
    *refusal = reply;
  else
    sm_smtp_reply_free (reply);
  /* Leave the session clean for the next message (RFC 5321 §4.1.1.5). */
  rset = command (c, "RSET\r\n", cancellable, NULL);
  return FALSE;
}

gboolean
sm_smtp_client_send (SmSmtpClient *c, const char *sender, const char * const *recipients,
                     GBytes *message, SmSmtpReply **refusal, GCancellable *cancellable,
                     GError **error)
{
  return sm_smtp_client_send_full (c, sender, recipients, message, NULL, refusal, cancellable, error);
}

gboolean
sm_smtp_client_send_full (SmSmtpClient *c, const char *sender, const char * const *recipients,
                          GBytes *message, SmSmtpSendOptions *options, SmSmtpReply **refusal,
                          GCancellable *cancellable, GError **error)
{
  g_autofree char *mail = NULL;
  g_autofree char *mail_dsn = NULL;
  gboolean dsn = options != NULL && options->dsn_envid != NULL && sm_smtp_client_has_extension (c, "DSN");
  g_autoptr(GString) body = NULL;
  SmSmtpReply *reply;
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  const char *p, *end;

  if (refusal)
    *refusal = NULL;
  if (options != NULL)
    options->refused_recipient = -1;
  /* RFC 3461 §4.3/§4.4: headers only in a provider's bounce (the body is
   * protected content), and our queue ID to match it. */
  mail_dsn = dsn ? g_strdup_printf (" RET=HDRS ENVID=%s", options->dsn_envid) : g_strdup ("");
  if (sm_smtp_client_has_extension (c, "SIZE"))
    mail = g_strdup_printf ("MAIL FROM:<%s> SIZE=%" G_GSIZE_FORMAT "%s%s\r\n", sender, len,
                            sm_smtp_client_has_extension (c, "8BITMIME") ? " BODY=8BITMIME" : "", mail_dsn);
  else
    mail = g_strdup_printf ("MAIL FROM:<%s>%s\r\n", sender, mail_dsn);
  if ((reply = command (c, mail, cancellable, error)) == NULL)
    return FALSE;
  if (reply->code / 100 != 2)
    return refused (c, reply, refusal, cancellable, error);
  sm_smtp_reply_free (reply);

  for (guint i = 0; recipients[i]; i++)
    {
      g_autofree char *rcpt = g_strdup_printf ("RCPT TO:<%s>%s\r\n", recipients[i],
                                               dsn ? " NOTIFY=FAILURE,DELAY" : "");
      if ((reply = command (c, rcpt, cancellable, error)) == NULL)
        return FALSE;
      if (reply->code / 100 != 2)
        {
          if (options != NULL)
            options->refused_recipient = (int) i;
          return refused (c, reply, refusal, cancellable, error);
        }
      sm_smtp_reply_free (reply);
    }

  if ((reply = command (c, "DATA\r\n", cancellable, error)) == NULL)
    return FALSE;
  if (reply->code != 354)
    return refused (c, reply, refusal, cancellable, error);
  sm_smtp_reply_free (reply);

  /* Dot-stuffing (RFC 5321 §4.5.2) and CRLF line ends throughout. */
  body = g_string_sized_new (len + len / 64 + 8);
  for (p = data, end = data + len; p < end;)
    {
      const char *lf = memchr (p, '\n', end - p);
      gsize n = lf ? (gsize) (lf - p) : (gsize) (end - p);
      gsize content = (n > 0 && p[n - 1] == '\r') ? n - 1 : n;
      if (content > 0 && p[0] == '.')
        g_string_append_c (body, '.');
      g_string_append_len (body, p, content);
      g_string_append (body, "\r\n");
      p += n + (lf ? 1 : 0);
    }
  g_string_append (body, ".\r\n");
  if (!write_all (c->stream, body->str, body->len, cancellable, error))
    return FALSE;
  if ((reply = read_reply (c, NULL, cancellable, error)) == NULL)
    return FALSE;
  if (reply->code / 100 != 2)
    return refused (c, reply, refusal, cancellable, error);
  sm_smtp_reply_free (reply);
  return TRUE;
}
