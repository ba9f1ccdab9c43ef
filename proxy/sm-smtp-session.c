/* sm-smtp-session.c: one mail client's SMTP submission to the proxy. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-wipe.h"
#include "sm-input-pump.h"
#include "sm-keyring.h"
#include "sm-oauth2.h"
#include "sm-login-limiter.h"
#include "sm-outgoing.h"
#include "sm-receipts.h"
#include "sm-relay-worker.h"
#include "sm-sender-check.h"
#include "sm-smtp-session.h"
#include "sm-stream-writer.h"
#include "sm-upstream.h"

typedef enum {
  ST_COMMAND,
  ST_AUTH_PLAIN,      /* waiting for the PLAIN response after "334 " */
  ST_AUTH_LOGIN_USER, /* AUTH LOGIN: waiting for the user name */
  ST_AUTH_LOGIN_PASS, /* AUTH LOGIN: waiting for the password */
  ST_DATA,            /* reading the message */
  ST_BUSY,            /* a worker thread runs (auth check, relay) */
  ST_STARTTLS,
  ST_CLOSING,
} State;

struct _SmSmtpSession {
  GObject parent_instance;

  SmServer *server;             /* not owned */
  State state;
  GCancellable *cancellable;
  GSocketConnection *connection;
  GIOStream *client;
  SmStreamWriter *to_client;
  SmInputPump *pump;
  GByteArray *line;             /* the line being assembled */
  gboolean line_too_long;
  guint idle_id;

  gboolean tls_active;
  gboolean greeted;             /* EHLO/HELO seen (since STARTTLS) */
  gboolean authenticated;
  guint auth_failures;
  char *peer;                   /* the client's address, for the login limiter */
  guint errors;
  char *login_user;             /* AUTH LOGIN: user name received */

  char *sender;                 /* MAIL FROM, NULL when no transaction */
  GPtrArray *recipients;
  GByteArray *message;          /* DATA, CRLF lines, dot-unstuffed */
  gboolean message_too_big;
};

G_DEFINE_FINAL_TYPE (SmSmtpSession, sm_smtp_session, G_TYPE_OBJECT)

static void finish_close (SmSmtpSession *self);

static void
reset_transaction (SmSmtpSession *self)
{
  g_clear_pointer (&self->sender, g_free);
  g_ptr_array_set_size (self->recipients, 0);
  if (self->message)
    {
      sm_wipe_byte_array (self->message);
      g_clear_pointer (&self->message, g_byte_array_unref);
    }
  self->message_too_big = FALSE;
}

static void
sm_smtp_session_finalize (GObject *object)
{
  SmSmtpSession *self = SM_SMTP_SESSION (object);

  reset_transaction (self);
  g_ptr_array_unref (self->recipients);
  g_clear_pointer (&self->pump, sm_input_pump_free);
  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  g_clear_handle_id (&self->idle_id, g_source_remove);
  g_clear_object (&self->client);
  g_clear_object (&self->connection);
  if (self->line)
    {
      sm_wipe_byte_array (self->line);
      g_byte_array_unref (self->line);
    }
  g_free (self->login_user);
  g_free (self->peer);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (sm_smtp_session_parent_class)->finalize (object);
}

static void
sm_smtp_session_class_init (SmSmtpSessionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_smtp_session_finalize;
}

static void
sm_smtp_session_init (SmSmtpSession *self)
{
  self->cancellable = g_cancellable_new ();
  self->recipients = g_ptr_array_new_with_free_func (g_free);
  self->line = g_byte_array_new ();
}

static void
reply (SmSmtpSession *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
reply (SmSmtpSession *self, const char *format, ...)
{
  va_list ap;
  g_autofree char *text = NULL;

  if (self->to_client == NULL)
    return;
  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  /* One write with its CRLF: as two, Nagle's algorithm held the CRLF back
   * until the client's delayed ACK, 40 ms per reply. */
  {
    g_autofree char *line = g_strconcat (text, "\r\n", NULL);
    sm_stream_writer_write (self->to_client, line, strlen (line));
  }
}

void
sm_smtp_session_close (SmSmtpSession *self, const char *text)
{
  if (self->state == ST_CLOSING)
    return;
  self->state = ST_CLOSING;
  sm_input_pump_stop (self->pump);
  g_clear_handle_id (&self->idle_id, g_source_remove);
  g_cancellable_cancel (self->cancellable);
  if (text != NULL)
    reply (self, "%s", text);
  if (self->to_client == NULL || sm_stream_writer_pending (self->to_client) == 0)
    finish_close (self);
}

static void
finish_close (SmSmtpSession *self)
{
  g_autoptr(SmSmtpSession) keep = g_object_ref (self);

  (void) keep;   /* held until return: a callback below may drop the last reference */

  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  if (self->connection)
    sm_socket_linger_close (self->connection);
  sm_server_session_closed (self->server, G_OBJECT (self));
}

static gboolean
on_idle_timeout (gpointer user_data)
{
  SmSmtpSession *self = user_data;

  self->idle_id = 0;
  sm_smtp_session_close (self, _("421 4.4.2 Idle for too long, closing connection"));
  return G_SOURCE_REMOVE;
}

static void
touch (SmSmtpSession *self)
{
  g_clear_handle_id (&self->idle_id, g_source_remove);
  if (self->state != ST_CLOSING)
    self->idle_id = g_timeout_add_seconds (SM_SMTP_IDLE_TIMEOUT_S, on_idle_timeout, self);
}

static void begin_tls (SmSmtpSession *self);

static void
on_drained (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmSmtpSession *self = user_data;

  if (self->state == ST_CLOSING)
    {
      if (sm_stream_writer_pending (writer) == 0)
        finish_close (self);
    }
  else if (self->state == ST_STARTTLS)
    {
      if (sm_stream_writer_pending (writer) == 0)
        begin_tls (self);
    }
  else
    sm_input_pump_resume (self->pump);
}

static void
on_write_error (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmSmtpSession *self = user_data;

  g_debug ("SMTP client write failed: %s", error->message);
  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  if (self->state == ST_CLOSING)
    finish_close (self);
  else
    sm_smtp_session_close (self, NULL);
}

static gboolean
paused (GObject *owner)
{
  SmSmtpSession *self = SM_SMTP_SESSION (owner);

  return self->state == ST_BUSY || self->state == ST_STARTTLS || self->state == ST_CLOSING ||
         (self->to_client != NULL && sm_stream_writer_pending (self->to_client) > SM_SMTP_MAX_QUEUED);
}

static void
on_eof (GObject *owner, const GError *error)
{
  SmSmtpSession *self = SM_SMTP_SESSION (owner);

  g_debug ("SMTP client went away%s%s", error ? ": " : "", error ? error->message : "");
  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  sm_smtp_session_close (self, NULL);
}

/* ---- authentication ---------------------------------------------------------- */

typedef struct {
  const SmConfig *config;
  char *user;
  char *password;
} AuthData;

static void
auth_data_free (AuthData *data)
{
  g_free (data->user);
  if (data->password)
    {
      sm_wipe (data->password, strlen (data->password));
      g_free (data->password);
    }
  g_free (data);
}

static void
auth_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  AuthData *data = task_data;
  g_autoptr(GError) error = NULL;

  if (!sm_keyring_check_local_login (data->config->address, data->user, data->password, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_boolean (task, TRUE);
}

/* The delayed answer to a wrong local password (the pump stays paused in
 * ST_BUSY until then); holds a reference to the session. */
static gboolean
answer_failed_auth (gpointer data)
{
  SmSmtpSession *self = data;

  if (self->state == ST_CLOSING)
    return G_SOURCE_REMOVE;
  self->state = ST_COMMAND;
  reply (self, _("535 5.7.8 Wrong user name or password. The user name is your e-mail "
                 "address; the password is the one “securemail account local-password” shows"));
  if (++self->auth_failures >= SM_SMTP_MAX_AUTH_FAILURES)
    sm_smtp_session_close (self, _("421 4.7.0 Too many failed logins, closing connection"));
  else
    sm_input_pump_resume (self->pump);
  return G_SOURCE_REMOVE;
}

static void
on_auth_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmSmtpSession *self = SM_SMTP_SESSION (source);
  SmLoginLimiter *limiter = sm_server_get_login_limiter (self->server);
  g_autoptr(GError) error = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  if (self->state == ST_CLOSING)
    return;
  if (!ok && g_error_matches (error, SM_ERROR, SM_ERROR_AUTH))
    {
      guint delay_ms = sm_login_limiter_failed (limiter, self->peer, "SMTP");
      g_timeout_add_full (G_PRIORITY_DEFAULT, delay_ms, answer_failed_auth, g_object_ref (self), g_object_unref);
      return;
    }
  self->state = ST_COMMAND;
  if (ok)
    {
      sm_login_limiter_succeeded (limiter, self->peer);
      self->authenticated = TRUE;
      reply (self, _("235 2.7.0 Authentication successful"));
    }
  else
    reply (self, "454 4.7.0 %s", error->message);
  sm_input_pump_resume (self->pump);
}

static void
start_auth (SmSmtpSession *self, const char *user, gsize user_len, const char *password, gsize pass_len)
{
  AuthData *data;
  g_autoptr(GTask) task = NULL;
  guint locked_for = sm_login_limiter_locked_for (sm_server_get_login_limiter (self->server), self->peer);

  if (locked_for > 0)
    {
      /* Not checked at all: a lockout must not answer guesses.  RFC 4954
       * §6: 454 is a temporary authentication failure. */
      reply (self, _("454 4.7.0 Too many failed logins from your address; try again in %u seconds "
                     "with the password “securemail account local-password” shows"),
             locked_for);
      return;
    }
  data = g_new0 (AuthData, 1);
  task = g_task_new (self, self->cancellable, on_auth_done, NULL);

  data->config = sm_server_get_config (self->server);
  data->user = g_strndup (user, user_len);
  data->password = g_strndup (password, pass_len);
  g_task_set_task_data (task, data, (GDestroyNotify) auth_data_free);
  self->state = ST_BUSY;
  g_task_run_in_thread (task, auth_thread);
}

/* RFC 4616 via RFC 4954: [authzid] NUL authcid NUL passwd in base64. */
static void
auth_plain (SmSmtpSession *self, const char *b64)
{
  gsize len = 0;
  guchar *raw;
  gsize n1, n2;

  if (strcmp (b64, "*") == 0)
    {
      reply (self, _("501 5.7.0 Authentication cancelled"));
      return;
    }
  raw = g_base64_decode (strcmp (b64, "=") == 0 ? "" : b64, &len);
  n1 = raw ? strnlen ((char *) raw, len) : len;
  if (raw == NULL || n1 >= len)
    goto bad;
  n2 = strnlen ((char *) raw + n1 + 1, len - n1 - 1);
  if (n1 + 1 + n2 >= len || memchr (raw + n1 + n2 + 2, '\0', len - n1 - n2 - 2) != NULL ||
      (n1 > 0 && (n1 != n2 || memcmp (raw, raw + n1 + 1, n1) != 0)))
    goto bad;
  start_auth (self, (char *) raw + n1 + 1, n2, (char *) raw + n1 + n2 + 2, len - n1 - n2 - 2);
  sm_wipe (raw, len);
  g_free (raw);
  return;
bad:
  if (raw)
    sm_wipe (raw, len);
  g_free (raw);
  reply (self, _("501 5.5.2 Malformed AUTH PLAIN response"));
}

static char *
b64_decode_line (const char *b64, gsize *len)
{
  guchar *raw = g_base64_decode (b64, len);
  char *s = g_strndup ((char *) raw, *len);
  if (raw)
    sm_wipe (raw, *len);
  g_free (raw);
  *len = strlen (s);
  return s;
}

/* ---- commands ---------------------------------------------------------------- */

/* Parses "<addr> params" after MAIL FROM: / RCPT TO:.  Returns the address
 * (possibly empty for the null sender) and points *params at the rest. */
static char *
parse_path (const char *arg, const char **params)
{
  const char *p = arg, *end;

  while (*p == ' ')
    p++;
  if (*p != '<')
    return NULL;
  end = strchr (p, '>');
  if (end == NULL)
    return NULL;
  *params = end + 1;
  while (**params == ' ')
    (*params)++;
  /* A source route (RFC 5321 §4.1.2 obsolete "@a,@b:") is ignored. */
  {
    const char *colon = memchr (p, ':', end - p);
    if (p[1] == '@' && colon != NULL)
      p = colon;
  }
  {
    g_autofree char *addr = g_strndup (p + 1, end - p - 1);
    for (const char *c = addr; *c; c++)
      if ((guchar) *c <= ' ' || *c == '<' || *c == '>' || (guchar) *c == 0x7f)
        return NULL;
    return g_steal_pointer (&addr);
  }
}

static void
cmd_ehlo (SmSmtpSession *self, const char *arg, gboolean extended)
{
  if (*arg == '\0')
    {
      reply (self, _("501 5.5.4 %s needs a domain name"), extended ? "EHLO" : "HELO");
      return;
    }
  reset_transaction (self);
  self->greeted = TRUE;
  if (!extended)
    {
      reply (self, "250 localhost");
      return;
    }
  reply (self, "250-localhost SecureMail");
  reply (self, "250-PIPELINING");
  reply (self, "250-SIZE %u", (guint) SM_SMTP_MAX_MESSAGE_SIZE);
  reply (self, "250-8BITMIME");
  reply (self, "250-ENHANCEDSTATUSCODES");
  if (!self->tls_active)
    reply (self, "250-STARTTLS");
  reply (self, "250 AUTH PLAIN LOGIN");
}

static void
cmd_auth (SmSmtpSession *self, const char *arg)
{
  g_auto(GStrv) parts = g_strsplit (arg, " ", 2);

  if (self->authenticated)
    {
      reply (self, _("503 5.5.1 Already authenticated"));
      return;
    }
  if (self->sender != NULL)
    {
      reply (self, _("503 5.5.1 AUTH is not allowed during a mail transaction"));
      return;
    }
  if (parts[0] == NULL || *parts[0] == '\0')
    reply (self, _("501 5.5.4 AUTH needs a mechanism"));
  else if (g_ascii_strcasecmp (parts[0], "PLAIN") == 0)
    {
      if (parts[1] != NULL)
        auth_plain (self, parts[1]);
      else
        {
          self->state = ST_AUTH_PLAIN;
          reply (self, "334 ");
        }
    }
  else if (g_ascii_strcasecmp (parts[0], "LOGIN") == 0)
    {
      if (parts[1] != NULL)
        {
          gsize n;
          self->login_user = b64_decode_line (parts[1], &n);
          self->state = ST_AUTH_LOGIN_PASS;
          reply (self, "334 UGFzc3dvcmQ6");  /* "Password:" */
        }
      else
        {
          self->state = ST_AUTH_LOGIN_USER;
          reply (self, "334 VXNlcm5hbWU6");  /* "Username:" */
        }
    }
  else
    reply (self, _("504 5.5.4 Unrecognized authentication type; use PLAIN or LOGIN"));
}

/* The unlock gate (issue 7): while locked the keys cannot sign, so no
 * message is taken.  4xx: the client keeps it and tries again (RFC 5321
 * section 4.2.5); 4.7.0 is "other security status" (RFC 3463). */
static gboolean
refuse_if_locked (SmSmtpSession *self)
{
  if (!sm_server_is_locked (self->server))
    return FALSE;
  reply (self, _("454 4.7.0 SecureMail is locked: unlock it (tray menu “Unlock”, or “securemail unlock”), "
                 "then send again"));
  return TRUE;
}

/* OAuth2 (issue 7): once the provider refused our sign-in, a message taken
 * now would only wait in the queue until the user signs in again; say so
 * at once instead (454: the client keeps the message and retries). */
static gboolean
refuse_if_consent_needed (SmSmtpSession *self)
{
  const SmConfig *config = sm_server_get_config (self->server);

  if (config->auth != SM_AUTH_OAUTH2 || !sm_oauth2_get_consent_needed (sm_oauth2_get_shared (config)))
    return FALSE;
  reply (self, _("454 4.7.0 Your provider needs you to sign in again: run “securemail account "
                 "oauth2-login” (or use the SecureMail tray menu), then send again"));
  return TRUE;
}

static void
cmd_mail (SmSmtpSession *self, const char *arg)
{
  const SmConfig *config = sm_server_get_config (self->server);
  const char *params = NULL;
  g_autofree char *addr = NULL;

  if (!self->authenticated)
    {
      reply (self, _("530 5.7.0 Authentication required: log in with your e-mail address and the "
                     "SecureMail local password"));
      return;
    }
  if (self->sender != NULL)
    {
      reply (self, _("503 5.5.1 Sender already given"));
      return;
    }
  if (refuse_if_locked (self) || refuse_if_consent_needed (self))
    return;
  if (g_ascii_strncasecmp (arg, "FROM:", 5) != 0 || (addr = parse_path (arg + 5, &params)) == NULL)
    {
      reply (self, _("501 5.5.4 Syntax: MAIL FROM:<address>"));
      return;
    }
  if (!sm_sender_address_allowed (config, addr))
    {
      reply (self, _("550 5.7.1 You can only send as %s: SecureMail binds the sender to your "
                     "account"),
             config->address);
      return;
    }
  /* ESMTP parameters: SIZE (RFC 1870) and BODY (RFC 6152). */
  {
    g_auto(GStrv) list = g_strsplit (params, " ", -1);
    for (guint i = 0; list[i]; i++)
      {
        if (*list[i] == '\0')
          continue;
        if (g_ascii_strncasecmp (list[i], "SIZE=", 5) == 0)
          {
            guint64 size = g_ascii_strtoull (list[i] + 5, NULL, 10);
            if (size > SM_SMTP_MAX_MESSAGE_SIZE)
              {
                reply (self, _("552 5.3.4 Message too big: the limit is %u bytes"),
                       (guint) SM_SMTP_MAX_MESSAGE_SIZE);
                return;
              }
          }
        else if (g_ascii_strcasecmp (list[i], "BODY=8BITMIME") != 0 &&
                 g_ascii_strcasecmp (list[i], "BODY=7BIT") != 0)
          {
            reply (self, _("555 5.5.4 Unsupported MAIL parameter %s"), list[i]);
            return;
          }
      }
  }
  self->sender = g_ascii_strdown (addr, -1);
  reply (self, _("250 2.1.0 Sender OK"));
}

static void
cmd_rcpt (SmSmtpSession *self, const char *arg)
{
  const char *params = NULL;
  g_autofree char *addr = NULL;

  if (self->sender == NULL)
    {
      reply (self, _("503 5.5.1 Need MAIL before RCPT"));
      return;
    }
  if (g_ascii_strncasecmp (arg, "TO:", 3) != 0 || (addr = parse_path (arg + 3, &params)) == NULL ||
      strchr (addr, '@') == NULL || *params != '\0')
    {
      reply (self, _("501 5.5.4 Syntax: RCPT TO:<address>"));
      return;
    }
  if (self->recipients->len >= SM_SMTP_MAX_RECIPIENTS)
    {
      reply (self, _("452 4.5.3 Too many recipients; send the rest in another message"));
      return;
    }
  g_ptr_array_add (self->recipients, g_steal_pointer (&addr));
  reply (self, _("250 2.1.5 Recipient OK"));
}

static void
cmd_data (SmSmtpSession *self)
{
  if (self->sender == NULL)
    reply (self, _("503 5.5.1 Need MAIL before DATA"));
  else if (self->recipients->len == 0)
    reply (self, _("554 5.5.1 No valid recipients"));
  else if (refuse_if_locked (self))
    reset_transaction (self);   /* locked after MAIL: the client starts over once unlocked */
  else
    {
      self->message = g_byte_array_new ();
      self->state = ST_DATA;
      reply (self, _("354 End data with <CR><LF>.<CR><LF>"));
    }
}

static void
handle_command (SmSmtpSession *self, char *line)
{
  char *sp = strchr (line, ' ');
  const char *arg = sp ? sp + 1 : "";
  g_autofree char *verb = g_ascii_strup (line, sp ? sp - line : -1);

  sm_server_note_activity (self->server);

  if (strcmp (verb, "EHLO") == 0 || strcmp (verb, "HELO") == 0)
    cmd_ehlo (self, arg, verb[0] == 'E');
  else if (strcmp (verb, "QUIT") == 0)
    sm_smtp_session_close (self, _("221 2.0.0 Bye"));
  else if (strcmp (verb, "NOOP") == 0)
    reply (self, _("250 2.0.0 OK"));
  else if (strcmp (verb, "RSET") == 0)
    {
      reset_transaction (self);
      reply (self, _("250 2.0.0 OK"));
    }
  else if (strcmp (verb, "VRFY") == 0)
    reply (self, _("252 2.5.0 Cannot verify the user, but will try delivery"));
  else if (strcmp (verb, "HELP") == 0)
    reply (self, _("214 2.0.0 SecureMail: see “securemail client-config” for your settings"));
  else if (!self->greeted)
    reply (self, _("503 5.5.1 Say EHLO first"));
  else if (strcmp (verb, "STARTTLS") == 0)
    {
      if (self->tls_active)
        reply (self, _("503 5.5.1 TLS is already active"));
      else if (*arg)
        reply (self, _("501 5.5.4 STARTTLS takes no arguments"));
      else
        {
          reply (self, _("220 2.0.0 Ready to start TLS"));
          self->state = ST_STARTTLS;   /* begin_tls() runs when the reply is written */
        }
    }
  else if (strcmp (verb, "AUTH") == 0)
    cmd_auth (self, arg);
  else if (strcmp (verb, "MAIL") == 0)
    cmd_mail (self, arg);
  else if (strcmp (verb, "RCPT") == 0)
    cmd_rcpt (self, arg);
  else if (strcmp (verb, "DATA") == 0)
    cmd_data (self);
  else
    {
      reply (self, _("500 5.5.2 Command not recognized"));
      if (++self->errors >= SM_SMTP_MAX_ERRORS)
        sm_smtp_session_close (self, _("421 4.7.0 Too many errors, closing connection"));
    }
}

/* ---- relaying a message -------------------------------------------------------- */

typedef struct {
  const SmConfig *config;
  SmSpool *spool;
  gint64 max_age_s;
  char *sender;
  GStrv recipients;
  GBytes *message;
} RelayData;

static void
relay_data_free (RelayData *data)
{
  g_clear_object (&data->spool);
  g_free (data->sender);
  g_strfreev (data->recipients);
  g_bytes_unref (data->message);
  g_free (data);
}

typedef struct {
  guint code;
  char *text;              /* full reply line */
} RelayResult;

static void
relay_result_free (RelayResult *r)
{
  g_free (r->text);
  g_free (r);
}

/* Worker thread: the message goes into the durable spool (file and
 * directory fsync'ed) and only then does the client get 250: from then on
 * the proxy is responsible for it (RFC 5321 §6.1), and the relay worker
 * delivers it or reports why not. */
static void
relay_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RelayData *data = task_data;

  /* Issue 4 (proxy/sm-outgoing.c): sign every message, and encrypt it where
   * keys allow, before it is kept or relayed, so nothing unprotected is
   * spooled or leaves.  A refusal becomes the client's reply: policy needs
   * keys that are missing -> 550 5.7.1 naming them; agent locked -> 454
   * 4.7.0 "unlock SecureMail"; no own key -> 554 5.7.0 (see
   * sm_outgoing_error_to_smtp()).  NULL store = the user's own, shared. */
  g_autoptr(SmOutgoingInfo) info = NULL;
  {
    g_autoptr(GError) protect_error = NULL;
    GBytes *protected_msg = sm_outgoing_protect (NULL, data->config, data->sender,
                                                 (const char * const *) data->recipients, data->message,
                                                 &info, &protect_error);
    if (protected_msg == NULL)
      {
        RelayResult *refused = g_new0 (RelayResult, 1);

        refused->text = sm_outgoing_error_to_smtp (protect_error, &refused->code);
        g_task_return_pointer (task, refused, (GDestroyNotify) relay_result_free);
        return;
      }
    g_bytes_unref (data->message);
    data->message = protected_msg;
  }
  RelayResult *result = g_new0 (RelayResult, 1);
  g_autoptr(GError) error = NULL;
  g_autofree char *id = sm_spool_add (data->spool, data->sender, (const char * const *) data->recipients,
                                      data->message, FALSE, data->max_age_s, &error);

  if (id != NULL)
    {
      result->code = 250;
      result->text = g_strdup_printf (_("250 2.0.0 Queued as %s"), id);
      /* Issue 5: the sent log for receipts.  The message is already ours to
       * deliver, so a failure here costs only its receipt status. */
      if (!sm_receipts_record_sent (NULL, info, (const char * const *) data->recipients, &error))
        g_warning ("Message %s queued, but its receipt request is not tracked: %s", id, error->message);
    }
  else
    {
      /* RFC 3463 4.3.1 "mail system full": a temporary failure, so the mail
       * client keeps the message and tries again; nothing was kept here. */
      g_warning ("Cannot queue a submitted message: %s", error->message);
      result->code = 452;
      result->text = g_strdup_printf (_("452 4.3.1 Not accepted: SecureMail cannot store the message (%s). "
                                        "Free some disk space; your mail program will try again"),
                                      error->message);
    }
  g_task_return_pointer (task, result, (GDestroyNotify) relay_result_free);
}

static void
on_relay_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
  SmSmtpSession *self = SM_SMTP_SESSION (source);
  RelayResult *result = g_task_propagate_pointer (G_TASK (res), NULL);

  /* Queued even if the client went away meanwhile: the relay worker must
   * hear of it either way. */
  if (result->code == 250 && sm_server_get_queue (self->server) != NULL)
    sm_relay_worker_kick (sm_server_get_queue (self->server));
  if (self->state != ST_CLOSING)
    {
      self->state = ST_COMMAND;
      g_message ("SMTP submission finished: %u", result->code);
      reply (self, "%s", result->text);
      reset_transaction (self);
      sm_input_pump_resume (self->pump);
    }
  relay_result_free (result);
}

static void
end_of_data (SmSmtpSession *self)
{
  const SmConfig *config = sm_server_get_config (self->server);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSenderInfo) info = NULL;
  RelayData *data;
  g_autoptr(GTask) task = NULL;

  self->state = ST_COMMAND;
  if (self->message_too_big)
    {
      reply (self, _("552 5.3.4 Message too big: the limit is %u bytes"), (guint) SM_SMTP_MAX_MESSAGE_SIZE);
      reset_transaction (self);
      return;
    }
  info = sm_sender_check (config, self->sender, (const char *) self->message->data, self->message->len, &error);
  if (info == NULL)
    {
      if (g_error_matches (error, SM_ERROR, SM_ERROR_PROTOCOL))
        reply (self, "554 5.6.0 %s", error->message);
      else
        reply (self, "550 5.7.1 %s", error->message);
      reset_transaction (self);
      return;
    }
  if (sm_server_get_queue (self->server) == NULL)
    {
      reply (self, _("451 4.3.0 SecureMail's outbound queue is not running; try again later"));
      reset_transaction (self);
      return;
    }

  data = g_new0 (RelayData, 1);
  data->config = config;
  data->spool = g_object_ref (sm_relay_worker_get_spool (sm_server_get_queue (self->server)));
  data->max_age_s = sm_relay_worker_get_max_age (sm_server_get_queue (self->server));
  data->sender = g_strdup (self->sender);
  g_ptr_array_add (self->recipients, NULL);
  data->recipients = g_strdupv ((char **) self->recipients->pdata);
  g_ptr_array_remove_index (self->recipients, self->recipients->len - 1);
  data->message = g_byte_array_free_to_bytes (g_steal_pointer (&self->message));
  task = g_task_new (self, self->cancellable, on_relay_done, NULL);
  /* The result counts even when the client has gone: a queued message
   * must reach the relay worker. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, data, (GDestroyNotify) relay_data_free);
  self->state = ST_BUSY;
  g_task_run_in_thread (task, relay_thread);
}

/* One line of DATA (RFC 5321 §4.5.2): "." alone ends it, a leading dot is
 * removed.  Lines are stored with CRLF whatever the client sent, so a bare
 * LF can never smuggle a second message past the provider. */
static void
data_line (SmSmtpSession *self, const char *line, gsize len)
{
  if (len == 1 && line[0] == '.')
    {
      end_of_data (self);
      return;
    }
  if (len > 0 && line[0] == '.')
    {
      line++;
      len--;
    }
  if (self->message_too_big || self->message->len + len + 2 > SM_SMTP_MAX_MESSAGE_SIZE)
    {
      /* Keep reading to the end of DATA, then refuse (RFC 1870 §6.3). */
      self->message_too_big = TRUE;
      return;
    }
  g_byte_array_append (self->message, (const guint8 *) line, (guint) len);
  g_byte_array_append (self->message, (const guint8 *) "\r\n", 2);
}

static void
handle_line (SmSmtpSession *self, char *line, gsize len)
{
  switch (self->state)
    {
    case ST_DATA:
      data_line (self, line, len);
      break;
    case ST_AUTH_PLAIN:
      self->state = ST_COMMAND;
      auth_plain (self, line);
      break;
    case ST_AUTH_LOGIN_USER:
      if (strcmp (line, "*") == 0)
        {
          self->state = ST_COMMAND;
          reply (self, _("501 5.7.0 Authentication cancelled"));
          break;
        }
      {
        gsize n;
        g_free (self->login_user);
        self->login_user = b64_decode_line (line, &n);
        self->state = ST_AUTH_LOGIN_PASS;
        reply (self, "334 UGFzc3dvcmQ6");
      }
      break;
    case ST_AUTH_LOGIN_PASS:
      self->state = ST_COMMAND;
      if (strcmp (line, "*") == 0)
        reply (self, _("501 5.7.0 Authentication cancelled"));
      else
        {
          gsize n;
          char *pw = b64_decode_line (line, &n);
          start_auth (self, self->login_user, strlen (self->login_user), pw, n);
          sm_wipe (pw, n);
          g_free (pw);
        }
      g_clear_pointer (&self->login_user, g_free);
      break;
    default:
      handle_command (self, line);
      break;
    }
}

static gsize
step (GObject *owner, const guint8 *buf, gsize len)
{
  SmSmtpSession *self = SM_SMTP_SESSION (owner);
  const guint8 *lf = memchr (buf, '\n', len);
  gsize take = lf ? (gsize) (lf - buf) + 1 : len;
  gsize limit = self->state == ST_DATA ? SM_SMTP_MAX_MESSAGE_SIZE : SM_SMTP_MAX_COMMAND_LINE;

  touch (self);
  if (!self->line_too_long)
    {
      if (self->line->len + take > limit + 2)
        {
          self->line_too_long = TRUE;
          sm_wipe_byte_array (self->line);
          g_byte_array_set_size (self->line, 0);
        }
      else
        g_byte_array_append (self->line, buf, (guint) take);
    }
  if (lf == NULL)
    return take;

  if (self->line_too_long)
    {
      self->line_too_long = FALSE;
      if (self->state == ST_DATA)
        self->message_too_big = TRUE;
      else
        {
          self->state = ST_COMMAND;
          reply (self, _("500 5.5.2 Line too long"));
          if (++self->errors >= SM_SMTP_MAX_ERRORS)
            sm_smtp_session_close (self, _("421 4.7.0 Too many errors, closing connection"));
        }
      return take;
    }

  {
    gsize n = self->line->len - 1;   /* drop LF */
    if (n > 0 && self->line->data[n - 1] == '\r')
      n--;
    g_byte_array_set_size (self->line, (guint) n);
    g_byte_array_append (self->line, (const guint8 *) "", 1);   /* NUL for string use */
    if (self->state != ST_DATA && memchr (self->line->data, '\0', n) != NULL)
      reply (self, _("500 5.5.2 NUL byte in command"));
    else
      handle_line (self, (char *) self->line->data, n);
    sm_wipe_byte_array (self->line);
    g_byte_array_set_size (self->line, 0);
  }
  return take;
}

/* ---- STARTTLS ------------------------------------------------------------------ */

static void
on_handshake (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmSmtpSession) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error))
    {
      g_message ("SMTP client TLS handshake failed: %s", error->message);
      g_clear_pointer (&self->to_client, sm_stream_writer_free);
      sm_smtp_session_close (self, NULL);
      return;
    }
  if (self->state == ST_CLOSING)
    return;
  g_set_object (&self->client, G_IO_STREAM (source));
  sm_stream_writer_set_stream (self->to_client, g_io_stream_get_output_stream (self->client));
  sm_input_pump_set_stream (self->pump, g_io_stream_get_input_stream (self->client));
  self->tls_active = TRUE;
  self->greeted = FALSE;   /* RFC 3207 §4.2: forget everything, EHLO again */
  reset_transaction (self);
  self->state = ST_COMMAND;
  sm_input_pump_resume (self->pump);
}

static void
begin_tls (SmSmtpSession *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) tls = NULL;

  /* Commands pipelined behind STARTTLS came in clear: refuse them
   * (CVE-2011-0411 class, RFC 3207 §4.2). */
  if (sm_input_pump_backlog (self->pump) > 0)
    {
      sm_smtp_session_close (self, _("554 5.5.1 Data after STARTTLS refused"));
      return;
    }
  tls = g_tls_server_connection_new (self->client, sm_server_get_local_certificate (self->server), &error);
  if (tls == NULL)
    {
      g_warning ("Cannot start TLS for an SMTP client: %s", error->message);
      sm_smtp_session_close (self, NULL);
      return;
    }
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, self->cancellable,
                                    on_handshake, g_object_ref (self));
}

SmSmtpSession *
sm_smtp_session_new (SmServer *server, GSocketConnection *connection)
{
  SmSmtpSession *self = g_object_new (SM_TYPE_SMTP_SESSION, NULL);

  self->server = server;
  self->connection = g_object_ref (connection);
  self->peer = sm_login_limiter_client_of (connection);
  self->client = g_object_ref (G_IO_STREAM (connection));
  self->to_client = sm_stream_writer_new (g_io_stream_get_output_stream (self->client), on_drained,
                                          on_write_error, self);
  self->pump = sm_input_pump_new (g_io_stream_get_input_stream (self->client), G_OBJECT (self), step,
                                  paused, on_eof);
  reply (self, _("220 localhost ESMTP SecureMail ready"));
  touch (self);
  sm_input_pump_resume (self->pump);
  return self;
}
