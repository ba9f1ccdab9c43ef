/* sm-imap-session.c: one mail client's IMAP connection to the proxy. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-wipe.h"
#include "sm-imap-parser.h"
#include "sm-imap-search.h"
#include "sm-imap-session.h"
#include "sm-input-pump.h"
#include "sm-keyring.h"
#include "sm-login-limiter.h"
#include "sm-mime.h"
#include "sm-outgoing.h"
#include "sm-receipts.h"
#include "sm-relay-worker.h"
#include "sm-secure-fetch.h"
#include "sm-stream-writer.h"
#include "sm-upstream.h"

#define SM_IMAP_PREAUTH_MAX_COMMAND (16 * 1024)  /* a whole pre-login command, literals included */

/* Capabilities offered before login (RFC 9051 §7.2.2).  LITERAL+ is safe
 * because the scanner bounds every literal; AUTH=PLAIN and LOGIN check the
 * local password only. */
#define PREAUTH_CAPS     "IMAP4rev1 LITERAL+ SASL-IR ID STARTTLS AUTH=PLAIN"
#define PREAUTH_CAPS_TLS "IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN"

typedef enum {
  ST_NOT_AUTH,
  ST_STARTTLS,      /* OK sent, handshake pending */
  ST_LOGGING_IN,    /* local check and upstream login running in a thread */
  ST_RELAY,
  ST_CLOSING,
} State;

struct _SmImapSession {
  GObject parent_instance;

  SmServer *server;             /* not owned: the server outlives its sessions */
  State state;
  GCancellable *cancellable;

  /* client side */
  GSocketConnection *connection;
  GIOStream *client;            /* connection, or the TLS stream after STARTTLS */
  SmStreamWriter *to_client;
  SmInputPump *client_pump;
  SmImapScanner *client_scanner;
  GByteArray *command;          /* pre-login: the command being assembled */
  gboolean command_too_big;
  char *sasl_tag;               /* AUTHENTICATE waiting for the client's response */
  guint auth_failures;
  char *peer;                   /* the client's address, for the login limiter */
  gboolean tls_active;
  guint preauth_timeout_id;
  gboolean discard_command;     /* relay: skipping the rest of a refused command */
  char *sync_literal_tag;       /* relay: command whose synchronizing literal awaits "+" */
  gboolean logout_seen;

  /* upstream side */
  SmImapUpstream *upstream;
  SmStreamWriter *to_upstream;
  SmInputPump *upstream_pump;
  SmImapScanner *upstream_scanner;
  gboolean response_has_literal; /* inside a response whose literal the client has partly seen */
  GString *deferred_replies;    /* the proxy's own lines held back until that response ends */

  /* decrypted views (sm-secure-fetch.h) */
  GHashTable *outstanding;      /* tags of client commands sent upstream and not yet answered */
  SmImapFetchRequest *waiting_fetch;  /* a content FETCH waiting for outstanding to empty */
  GBytes *waiting_line;
  SmSecureFetch *fetch;         /* the intercepted FETCH in progress */
  GByteArray *response;         /* a provider response assembled while intercepting */
  gboolean response_literal;    /* its last line announced a literal */
  char *mailbox;                /* the selected mailbox, NULL when none or unknown */
  guint32 uidvalidity;
  gboolean read_only;
  char *select_tag;             /* SELECT/EXAMINE in flight */
  char *select_mailbox;
  guint32 select_uidvalidity;
  gboolean select_read_only;
  guint resume_id;              /* idle that resumes reading the client after a flow */

  /* APPEND of a plaintext message to Sent or Drafts, encrypted to self */
  char *append_tag;
  char *append_prefix;          /* the command up to its literal: "a1 APPEND Sent (\\Seen) " */
  GByteArray *append_message;   /* the literal, collected */
  gboolean append_collecting;
  gboolean append_busy;         /* being protected in a worker thread */
  GBytes *append_upload;        /* waiting for the provider's "+" (no LITERAL+) */
  char *append_upload_tag;

  /* SEARCH in decrypted text (sm-imap-search.h) */
  GByteArray *search_command;   /* a SEARCH with literals, collected whole */
  char *search_tag;
  gboolean search_too_big;      /* it passed SM_IMAP_SEARCH_MAX_COMMAND: refused at its end */
  gboolean search_busy;         /* the views are being matched in a worker thread */
};

G_DEFINE_FINAL_TYPE (SmImapSession, sm_imap_session, G_TYPE_OBJECT)

static void finish_close (SmImapSession *self);
static void begin_client_tls (SmImapSession *self);
static gboolean client_paused (GObject *owner);
static gsize client_step (GObject *owner, const guint8 *buf, gsize len);
static void on_client_eof (GObject *owner, const GError *error);
static gboolean upstream_paused (GObject *owner);
static gsize upstream_step (GObject *owner, const guint8 *buf, gsize len);
static void on_upstream_eof (GObject *owner, const GError *error);
static void forward_command (SmImapSession *self, const guint8 *data, gsize len, const char *tag);

static void
sm_imap_session_finalize (GObject *object)
{
  SmImapSession *self = SM_IMAP_SESSION (object);

  g_debug ("IMAP session %p finalized", self);
  if (self->deferred_replies != NULL)
    g_string_free (self->deferred_replies, TRUE);
  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  g_clear_pointer (&self->to_upstream, sm_stream_writer_free);
  g_clear_pointer (&self->client_pump, sm_input_pump_free);
  g_clear_pointer (&self->upstream_pump, sm_input_pump_free);
  g_clear_handle_id (&self->preauth_timeout_id, g_source_remove);
  g_clear_object (&self->client);
  g_clear_object (&self->connection);
  g_clear_pointer (&self->upstream, sm_imap_upstream_free);
  g_clear_pointer (&self->client_scanner, sm_imap_scanner_free);
  g_clear_pointer (&self->upstream_scanner, sm_imap_scanner_free);
  if (self->command)
    {
      sm_wipe_byte_array (self->command);  /* may hold a password */
      g_byte_array_unref (self->command);
    }
  g_free (self->sasl_tag);
  g_free (self->peer);
  g_free (self->sync_literal_tag);
  if (self->fetch)
    sm_secure_fetch_cancel (self->fetch);
  g_clear_object (&self->fetch);
  g_clear_pointer (&self->waiting_fetch, sm_imap_fetch_request_free);
  g_clear_pointer (&self->waiting_line, g_bytes_unref);
  g_clear_pointer (&self->response, g_byte_array_unref);
  g_clear_pointer (&self->outstanding, g_hash_table_unref);
  g_free (self->mailbox);
  g_free (self->append_tag);
  g_free (self->append_upload_tag);
  g_clear_pointer (&self->append_upload, g_bytes_unref);
  g_free (self->append_prefix);
  if (self->append_message)
    {
      sm_wipe_byte_array (self->append_message);   /* a plaintext draft */
      g_byte_array_unref (self->append_message);
    }
  g_free (self->select_tag);
  g_free (self->select_mailbox);
  g_clear_pointer (&self->search_command, g_byte_array_unref);
  g_free (self->search_tag);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (sm_imap_session_parent_class)->finalize (object);
}

static void
sm_imap_session_class_init (SmImapSessionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_imap_session_finalize;
}

static void
sm_imap_session_init (SmImapSession *self)
{
  self->cancellable = g_cancellable_new ();
  self->outstanding = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->client_scanner = sm_imap_scanner_new (SM_IMAP_PREAUTH_MAX_LINE, SM_IMAP_MAX_PREAUTH_LITERAL);
}

/* ---- writing and closing --------------------------------------------------- */

static void
reply (SmImapSession *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
reply (SmImapSession *self, const char *format, ...)
{
  va_list ap;
  g_autofree char *line = NULL;

  if (self->to_client == NULL)
    return;
  va_start (ap, format);
  line = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (self->response_has_literal)
    {
      /* A pipelining client may get our answer to a later command while a
       * provider response is half relayed: inside its literal the line
       * would become message content.  It follows that response instead. */
      if (self->deferred_replies == NULL)
        self->deferred_replies = g_string_new (NULL);
      g_string_append (self->deferred_replies, line);
      g_string_append (self->deferred_replies, "\r\n");
      return;
    }
  sm_stream_writer_write (self->to_client, line, strlen (line));
  sm_stream_writer_write (self->to_client, "\r\n", 2);
}

/* Sends the replies reply() held back, once the provider's response ended. */
static void
flush_deferred_replies (SmImapSession *self)
{
  if (self->deferred_replies == NULL || self->response_has_literal || self->to_client == NULL)
    return;
  sm_stream_writer_write (self->to_client, self->deferred_replies->str, self->deferred_replies->len);
  g_string_free (g_steal_pointer (&self->deferred_replies), TRUE);
}

/* Ends the session: an optional untagged BYE (RFC 9051 §7.1.5), then both
 * streams are closed once the client has been sent everything queued. */
void
sm_imap_session_close (SmImapSession *self, const char *bye_text)
{
  if (self->state == ST_CLOSING)
    return;
  self->state = ST_CLOSING;
  if (self->client_pump)
    sm_input_pump_stop (self->client_pump);
  if (self->upstream_pump)
    sm_input_pump_stop (self->upstream_pump);
  g_clear_handle_id (&self->preauth_timeout_id, g_source_remove);
  g_cancellable_cancel (self->cancellable);
  if (self->fetch)
    sm_secure_fetch_cancel (self->fetch);
  if (bye_text != NULL)
    reply (self, "* BYE %s", bye_text);
  if (self->to_client == NULL || sm_stream_writer_pending (self->to_client) == 0)
    finish_close (self);
  /* else on_client_drained() finishes */
}

static void
finish_close (SmImapSession *self)
{
  g_autoptr(SmImapSession) keep = g_object_ref (self);

  (void) keep;   /* held until return: a callback below may drop the last reference */

  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  g_clear_pointer (&self->to_upstream, sm_stream_writer_free);
  if (self->connection)
    sm_socket_linger_close (self->connection);
  if (self->upstream)
    g_io_stream_close (self->upstream->stream, NULL, NULL);
  sm_server_session_closed (self->server, G_OBJECT (self));
}

static void
on_client_drained (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmImapSession *self = user_data;

  if (self->state == ST_CLOSING)
    {
      if (sm_stream_writer_pending (writer) == 0)
        finish_close (self);
      return;
    }
  /* The handshake starts once the STARTTLS OK is on the wire. */
  if (self->state == ST_STARTTLS)
    {
      if (sm_stream_writer_pending (writer) == 0)
        begin_client_tls (self);
      return;
    }
  /* Back-pressure: the upstream side waits while the client is slow, and
   * so does the client's next command (client_paused()).  A notification
   * may arrive after a pump is gone (seen under ASan): nothing to resume. */
  if (self->state == ST_RELAY && self->upstream_pump != NULL)
    sm_input_pump_resume (self->upstream_pump);
  if ((self->state == ST_RELAY || self->state == ST_NOT_AUTH) && self->client_pump != NULL)
    sm_input_pump_resume (self->client_pump);
}

static void
on_client_write_error (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmImapSession *self = user_data;

  g_debug ("IMAP client write failed: %s", error->message);
  if (self->state == ST_CLOSING)
    finish_close (self);
  else
    sm_imap_session_close (self, NULL);
}

static void
on_upstream_drained (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmImapSession *self = user_data;

  if (self->state == ST_RELAY)
    sm_input_pump_resume (self->client_pump);
}

static void
on_upstream_write_error (SmStreamWriter *writer, const GError *error, gpointer user_data)
{
  SmImapSession *self = user_data;
  g_autofree char *msg = g_strdup_printf (_("[UNAVAILABLE] The connection to the provider was "
                                            "lost (%s); try again later"),
                                          error->message);

  g_message ("IMAP upstream write failed: %s", error->message);
  sm_server_report_upstream (self->server, FALSE, msg);
  sm_imap_session_close (self, msg);
}

/* ---- reading --------------------------------------------------------------- */

static gboolean
client_paused (GObject *owner)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);

  return self->state == ST_LOGGING_IN || self->state == ST_STARTTLS || self->state == ST_CLOSING ||
         self->fetch != NULL || self->waiting_fetch != NULL || self->append_busy || self->search_busy ||
         self->append_upload != NULL ||
         (self->to_upstream != NULL && sm_stream_writer_pending (self->to_upstream) > SM_IMAP_MAX_QUEUED) ||
         (self->to_client != NULL && sm_stream_writer_pending (self->to_client) > SM_IMAP_MAX_QUEUED);
}

static gboolean
upstream_paused (GObject *owner)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);

  return self->state != ST_RELAY ||
         (self->fetch != NULL && sm_secure_fetch_paused (self->fetch)) ||
         (self->to_client != NULL && sm_stream_writer_pending (self->to_client) > SM_IMAP_MAX_QUEUED);
}

static void
on_client_eof (GObject *owner, const GError *error)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);

  g_debug ("IMAP client went away%s%s", error ? ": " : "", error ? error->message : "");
  /* Nothing can reach the client any more: no BYE. */
  g_clear_pointer (&self->to_client, sm_stream_writer_free);
  sm_imap_session_close (self, NULL);
}

static void
on_upstream_eof (GObject *owner, const GError *error)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);

  if (self->logout_seen)
    {
      /* The provider closes after LOGOUT (RFC 9051 §6.1.3): expected. */
      sm_imap_session_close (self, NULL);
      return;
    }
  g_message ("IMAP provider connection ended%s%s", error ? ": " : "", error ? error->message : "");
  sm_server_report_upstream (self->server, FALSE, _("The provider closed the IMAP connection"));
  if (self->response_has_literal)
    {
      /* The client has received part of a response that carried a literal
       * (say half a message body).  A BYE now would be read as message
       * content and cached as such: closing is the only honest signal. */
      sm_imap_session_close (self, NULL);
      return;
    }
  sm_imap_session_close (self, _("[UNAVAILABLE] The connection to the provider was lost; try again later"));
}

/* ---- pre-login ------------------------------------------------------------- */

static const char *
capabilities_preauth (SmImapSession *self)
{
  return self->tls_active ? PREAUTH_CAPS_TLS : PREAUTH_CAPS;
}

static gboolean
on_preauth_timeout (gpointer user_data)
{
  SmImapSession *self = user_data;

  self->preauth_timeout_id = 0;
  sm_imap_session_close (self, _("Autologout: no login in time"));
  return G_SOURCE_REMOVE;
}

typedef struct {
  const SmConfig *config;   /* owned by the server, immutable */
  char *user;
  char *password;
} LoginData;

static void
login_data_free (LoginData *data)
{
  g_free (data->user);
  if (data->password)
    {
      sm_wipe (data->password, strlen (data->password));
      g_free (data->password);
    }
  g_free (data);
}

/* Worker thread: checks the local credentials, then logs in upstream with
 * the provider password from the keyring.  Local failures are SM_ERROR_AUTH;
 * everything after a good local login is reported as SM_ERROR_UNAVAILABLE so
 * that the client does not ask the user for a password that is right. */
static void
login_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  LoginData *data = task_data;
  g_autoptr(GError) error = NULL;
  char *provider_pw = NULL;
  SmImapUpstream *up;

  if (!sm_keyring_check_local_login (data->config->address, data->user, data->password, &error))
    {
      if (g_error_matches (error, SM_ERROR, SM_ERROR_AUTH))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_new_error (task, SM_ERROR, SM_ERROR_UNAVAILABLE, "%s", error->message);
      return;
    }

  if (!sm_upstream_get_secret (data->config, &provider_pw, cancellable, &error))
    {
      g_task_return_new_error (task, SM_ERROR, SM_ERROR_UNAVAILABLE, "%s", error->message);
      return;
    }
  up = sm_imap_upstream_open (data->config, provider_pw, cancellable, &error);
  sm_keyring_free (provider_pw);
  if (up == NULL)
    {
      g_task_return_new_error (task, SM_ERROR, SM_ERROR_UNAVAILABLE, "%s", error->message);
      return;
    }
  g_task_return_pointer (task, up, (GDestroyNotify) sm_imap_upstream_free);
}

typedef struct {
  SmImapSession *session;
  char *tag;
} FailedLogin;

static void
failed_login_free (gpointer data)
{
  FailedLogin *f = data;
  g_object_unref (f->session);
  g_free (f->tag);
  g_free (f);
}

/* The delayed answer to a wrong local password. */
static gboolean
answer_failed_login (gpointer data)
{
  FailedLogin *f = data;
  SmImapSession *self = f->session;

  if (self->state == ST_CLOSING)
    return G_SOURCE_REMOVE;
  self->state = ST_NOT_AUTH;
  reply (self, _("%s NO [AUTHENTICATIONFAILED] Wrong user name or password. The user name "
                 "is your e-mail address; the password is the one “securemail account "
                 "local-password” shows, not your provider password."),
         f->tag);
  if (++self->auth_failures >= SM_IMAP_MAX_AUTH_FAILURES)
    sm_imap_session_close (self, _("Too many failed logins"));
  else
    sm_input_pump_resume (self->client_pump);
  return G_SOURCE_REMOVE;
}

static void
on_login_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmImapSession *self = SM_IMAP_SESSION (source);
  g_autofree char *tag = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapUpstream) up = g_task_propagate_pointer (G_TASK (result), &error);
  g_autofree char *caps = NULL;

  if (self->state == ST_CLOSING)
    return;
  if (g_error_matches (error, SM_ERROR, SM_ERROR_AUTH))
    {
      /* The answer waits (the pump stays paused in ST_LOGGING_IN): see
       * sm-login-limiter.h. */
      guint delay_ms = sm_login_limiter_failed (sm_server_get_login_limiter (self->server), self->peer, "IMAP");
      FailedLogin *f = g_new0 (FailedLogin, 1);
      f->session = g_object_ref (self);
      f->tag = g_steal_pointer (&tag);
      g_timeout_add_full (G_PRIORITY_DEFAULT, delay_ms, answer_failed_login, f, failed_login_free);
      return;
    }
  sm_login_limiter_succeeded (sm_server_get_login_limiter (self->server), self->peer);
  if (up == NULL)
    {
      self->state = ST_NOT_AUTH;
      g_message ("IMAP login to the provider failed: %s", error->message);
      sm_server_report_upstream (self->server, FALSE, error->message);
      reply (self, "%s NO [UNAVAILABLE] %s", tag, error->message);
      sm_input_pump_resume (self->client_pump);
      return;
    }

  sm_server_report_upstream (self->server, TRUE, NULL);
  self->upstream = g_steal_pointer (&up);
  self->to_upstream = sm_stream_writer_new (g_io_stream_get_output_stream (self->upstream->stream),
                                            on_upstream_drained, on_upstream_write_error, self);
  self->upstream_scanner = sm_imap_scanner_new (SM_IMAP_MAX_RESPONSE_LINE, SM_IMAP_MAX_RESPONSE_LITERAL);
  sm_imap_scanner_free (self->client_scanner);
  self->client_scanner = sm_imap_scanner_new (SM_IMAP_MAX_LINE, SM_IMAP_MAX_LITERAL);
  g_clear_handle_id (&self->preauth_timeout_id, g_source_remove);
  self->state = ST_RELAY;

  caps = sm_imap_capabilities_filter (self->upstream->capabilities, NULL);
  reply (self, _("%s OK [CAPABILITY %s] Logged in through SecureMail"), tag, caps);
  g_message ("IMAP session logged in to %s", self->server ? sm_server_get_config (self->server)->imap.host : "?");

  self->upstream_pump = sm_input_pump_new (g_io_stream_get_input_stream (self->upstream->stream),
                                           G_OBJECT (self), upstream_step, upstream_paused,
                                           on_upstream_eof);
  /* Anything the provider sent right after the login comes first. */
  if (self->upstream->pending != NULL)
    sm_input_pump_push (self->upstream_pump, g_bytes_get_data (self->upstream->pending, NULL),
                        g_bytes_get_size (self->upstream->pending));
  g_clear_pointer (&self->upstream->pending, g_bytes_unref);
  sm_input_pump_resume (self->upstream_pump);
  sm_input_pump_resume (self->client_pump);
}

static void
start_login (SmImapSession *self, const char *tag, GBytes *user, GBytes *password)
{
  LoginData *data;
  g_autoptr(GTask) task = NULL;
  guint locked_for = sm_login_limiter_locked_for (sm_server_get_login_limiter (self->server), self->peer);

  if (locked_for > 0)
    {
      /* Not checked at all: a lockout must not answer guesses. */
      reply (self, _("%s NO [UNAVAILABLE] Too many failed logins from your address; try again in "
                     "%u seconds with the password “securemail account local-password” shows."),
             tag, locked_for);
      return;
    }
  data = g_new0 (LoginData, 1);
  task = g_task_new (self, self->cancellable, on_login_done, g_strdup (tag));

  data->config = sm_server_get_config (self->server);
  data->user = g_strndup (g_bytes_get_data (user, NULL), g_bytes_get_size (user));
  data->password = g_strndup (g_bytes_get_data (password, NULL), g_bytes_get_size (password));
  g_task_set_task_data (task, data, (GDestroyNotify) login_data_free);
  self->state = ST_LOGGING_IN;
  g_task_run_in_thread (task, login_thread);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd.  An authzid other than the
 * authcid would mean acting as someone else: refused. */
static void
handle_sasl_plain (SmImapSession *self, const char *tag, const char *b64)
{
  gsize len = 0;
  guchar *raw;
  const char *authzid, *authcid, *passwd;
  gsize n1, n2;

  if (strcmp (b64, "*") == 0)
    {
      reply (self, _("%s BAD Authentication cancelled"), tag);
      return;
    }
  raw = g_base64_decode (strcmp (b64, "=") == 0 ? "" : b64, &len);
  authzid = (const char *) raw;
  n1 = raw ? strnlen (authzid, len) : len;
  if (raw == NULL || n1 >= len)
    goto bad;
  authcid = authzid + n1 + 1;
  n2 = strnlen (authcid, len - n1 - 1);
  if (n1 + 1 + n2 >= len)
    goto bad;
  passwd = authcid + n2 + 1;
  if (memchr (passwd, '\0', len - n1 - n2 - 2) != NULL || (n1 > 0 && strcmp (authzid, authcid) != 0))
    goto bad;
  {
    g_autoptr(GBytes) u = g_bytes_new (authcid, n2);
    g_autoptr(GBytes) p = g_bytes_new (passwd, len - n1 - n2 - 2);
    start_login (self, tag, u, p);
  }
  sm_wipe (raw, len);
  g_free (raw);
  return;
bad:
  if (raw)
    sm_wipe (raw, len);
  g_free (raw);
  reply (self, _("%s BAD [CLIENTBUG] Malformed AUTHENTICATE PLAIN response"), tag);
}

static void
handle_preauth_command (SmImapSession *self, const guint8 *data, gsize len)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tag = NULL;
  g_autoptr(SmImapCommand) cmd = sm_imap_command_parse (data, len, &tag, &error);
  guint nargs;

  if (cmd == NULL)
    {
      reply (self, "%s BAD %s", tag ? tag : "*", error->message);
      return;
    }
  nargs = cmd->args->len;
  if (strcmp (cmd->name, "CAPABILITY") == 0)
    {
      reply (self, "* CAPABILITY %s", capabilities_preauth (self));
      reply (self, _("%s OK CAPABILITY completed"), cmd->tag);
    }
  else if (strcmp (cmd->name, "NOOP") == 0)
    reply (self, _("%s OK NOOP completed"), cmd->tag);
  else if (strcmp (cmd->name, "ID") == 0)
    {
      /* RFC 2971: answer without revealing versions. */
      reply (self, "* ID (\"name\" \"SecureMail\")");
      reply (self, _("%s OK ID completed"), cmd->tag);
    }
  else if (strcmp (cmd->name, "LOGOUT") == 0)
    {
      reply (self, _("* BYE Logging out"));
      reply (self, _("%s OK LOGOUT completed"), cmd->tag);
      sm_imap_session_close (self, NULL);
    }
  else if (strcmp (cmd->name, "STARTTLS") == 0)
    {
      if (self->tls_active)
        reply (self, _("%s BAD TLS is already active"), cmd->tag);
      else if (nargs != 0)
        reply (self, _("%s BAD STARTTLS takes no arguments"), cmd->tag);
      else
        {
          reply (self, _("%s OK Begin TLS negotiation now"), cmd->tag);
          /* The handshake starts once the OK is written:
           * on_client_drained(). */
          self->state = ST_STARTTLS;
        }
    }
  else if (strcmp (cmd->name, "LOGIN") == 0)
    {
      SmImapToken *u = nargs == 2 ? g_ptr_array_index (cmd->args, 0) : NULL;
      SmImapToken *p = nargs == 2 ? g_ptr_array_index (cmd->args, 1) : NULL;
      if (u == NULL || u->kind == SM_IMAP_TOKEN_LIST || p->kind == SM_IMAP_TOKEN_LIST)
        reply (self, _("%s BAD LOGIN takes a user name and a password"), cmd->tag);
      else
        start_login (self, cmd->tag, u->value, p->value);
    }
  else if (strcmp (cmd->name, "AUTHENTICATE") == 0)
    {
      SmImapToken *mech = nargs >= 1 ? g_ptr_array_index (cmd->args, 0) : NULL;
      g_autofree char *mech_name = mech ? g_strndup (g_bytes_get_data (mech->value, NULL),
                                                     g_bytes_get_size (mech->value)) : NULL;
      if (mech == NULL || nargs > 2)
        reply (self, _("%s BAD AUTHENTICATE takes a mechanism name"), cmd->tag);
      else if (g_ascii_strcasecmp (mech_name, "PLAIN") != 0)
        reply (self, _("%s NO [CANNOT] Only the PLAIN mechanism is supported"), cmd->tag);
      else if (nargs == 2)
        {
          SmImapToken *ir = g_ptr_array_index (cmd->args, 1);
          g_autofree char *b64 = g_strndup (g_bytes_get_data (ir->value, NULL), g_bytes_get_size (ir->value));
          handle_sasl_plain (self, cmd->tag, b64);   /* RFC 4959 SASL-IR */
          sm_wipe (b64, strlen (b64));
        }
      else
        {
          g_free (self->sasl_tag);
          self->sasl_tag = g_strdup (cmd->tag);
          reply (self, "+ ");
        }
    }
  else
    reply (self, _("%s BAD [CLIENTBUG] Log in first (command %s is not valid before login)"),
           cmd->tag, cmd->name);
}

static gsize
client_step_preauth (SmImapSession *self, const guint8 *buf, gsize len)
{
  SmImapScanResult r;
  gsize used = sm_imap_scanner_feed (self->client_scanner, buf, len, &r);

  if (self->command == NULL)
    self->command = g_byte_array_new ();

  switch (r.event)
    {
    case SM_IMAP_SCAN_NEED_MORE:
      break;
    case SM_IMAP_SCAN_LINE_TOO_LONG:
      sm_imap_session_close (self, _("[TOOBIG] Command line too long"));
      break;
    case SM_IMAP_SCAN_LITERAL_TOO_LARGE:
      if (r.literal_nonsync)
        sm_imap_session_close (self, _("[TOOBIG] Literal too large before login"));
      else
        {
          g_autofree char *tag = NULL;
          g_autofree char *name = NULL;
          sm_imap_command_peek (r.data, r.len, &tag, &name);
          reply (self, _("%s BAD [TOOBIG] Literal too large before login"), tag ? tag : "*");
          sm_wipe_byte_array (self->command);
          g_byte_array_set_size (self->command, 0);
        }
      break;
    case SM_IMAP_SCAN_LITERAL:
      if (self->command->len + r.len <= SM_IMAP_PREAUTH_MAX_COMMAND)
        g_byte_array_append (self->command, r.data, (guint) r.len);
      else
        self->command_too_big = TRUE;
      break;
    case SM_IMAP_SCAN_LINE:
      if (self->sasl_tag != NULL && !r.continuation)
        {
          g_autofree char *tag = g_steal_pointer (&self->sasl_tag);
          g_autofree char *line = g_strndup ((const char *) r.data, r.len);
          g_strchomp (line);
          handle_sasl_plain (self, tag, line);
          sm_wipe (line, strlen (line));
          break;
        }
      if (self->command->len + r.len <= SM_IMAP_PREAUTH_MAX_COMMAND)
        g_byte_array_append (self->command, r.data, (guint) r.len);
      else
        self->command_too_big = TRUE;
      if (r.has_literal)
        {
          if (!r.literal_nonsync)
            reply (self, "+ Ready for literal data");   /* RFC 9051 §7.5 */
          break;
        }
      if (self->command_too_big)
        sm_imap_session_close (self, _("[TOOBIG] Command too long before login"));
      else
        handle_preauth_command (self, self->command->data, self->command->len);
      if (self->command)
        {
          sm_wipe_byte_array (self->command);
          g_byte_array_set_size (self->command, 0);
        }
      break;
    }
  return used;
}

/* ---- relay ----------------------------------------------------------------- */

static gboolean
refuse_in_relay (SmImapSession *self, const char *tag, const char *name)
{
  if (g_strcmp0 (name, "COMPRESS") == 0)
    reply (self, _("%s NO [CANNOT] Compression is not available through SecureMail"), tag);
  else if (g_strcmp0 (name, "STARTTLS") == 0)
    reply (self, _("%s BAD STARTTLS is only valid before login"), tag);
  else if (g_strcmp0 (name, "LOGIN") == 0 || g_strcmp0 (name, "AUTHENTICATE") == 0)
    reply (self, _("%s BAD Already logged in"), tag);
  else if (g_strcmp0 (name, "UNAUTHENTICATE") == 0)
    reply (self, _("%s BAD UNAUTHENTICATE is not available through SecureMail"), tag);
  else if (g_strcmp0 (name, "NOTIFY") == 0)
    reply (self, _("%s NO [CANNOT] NOTIFY is not available through SecureMail"), tag);
  else
    return FALSE;
  return TRUE;
}

/* ENABLE (RFC 5161) of QRESYNC, which the proxy does not announce (see
 * sm_imap_capabilities_filter()): the extension is left out of the command,
 * so the provider never sends VANISHED.  Returns TRUE when the session
 * answered the command itself (nothing else was asked). */
static gboolean
intercept_enable (SmImapSession *self, const SmImapScanResult *r, const char *tag)
{
  g_autofree char *line = g_strndup ((const char *) r->data, r->len);
  g_auto(GStrv) words = g_strsplit_set (g_strchomp (line), " ", -1);
  g_autoptr(GString) kept = g_string_new (NULL);
  guint dropped = 0;

  /* words[0] is the tag, words[1] "ENABLE"; the rest are atoms. */
  for (guint i = 2; words[0] != NULL && words[1] != NULL && words[i] != NULL; i++)
    {
      if (g_ascii_strcasecmp (words[i], "QRESYNC") == 0)
        {
          dropped++;
          continue;
        }
      if (words[i][0] != '\0')
        g_string_append_printf (kept, " %s", words[i]);
    }
  if (dropped == 0)
    return FALSE;
  if (kept->len == 0)
    {
      reply (self, "* ENABLED");
      reply (self, _("%s OK ENABLE completed (QRESYNC is not available through SecureMail)"), tag);
      return TRUE;
    }
  {
    g_autofree char *rewritten = g_strdup_printf ("%s ENABLE%s\r\n", tag, kept->str);
    forward_command (self, (const guint8 *) rewritten, strlen (rewritten), tag);
  }
  return TRUE;
}

/* ---- decrypted views ------------------------------------------------------------ */

static void
fetch_to_upstream (gpointer owner, const guint8 *data, gsize len)
{
  SmImapSession *self = owner;

  if (self->to_upstream != NULL)
    sm_stream_writer_write (self->to_upstream, data, len);
}

static void
fetch_to_client (gpointer owner, const guint8 *data, gsize len)
{
  SmImapSession *self = owner;

  if (self->to_client != NULL)
    sm_stream_writer_write (self->to_client, data, len);
}

static gboolean
resume_client_idle (gpointer user_data)
{
  SmImapSession *self = user_data;

  self->resume_id = 0;
  if (self->state == ST_RELAY)
    sm_input_pump_resume (self->client_pump);
  return G_SOURCE_REMOVE;
}

/* Reading the client goes on from the main loop, not from inside the
 * provider's input callback that ended what paused it. */
static void
schedule_client_resume (SmImapSession *self)
{
  if (self->resume_id == 0)
    self->resume_id = g_idle_add_full (G_PRIORITY_DEFAULT, resume_client_idle, g_object_ref (self),
                                       g_object_unref);
}

/* Sends a client command upstream, remembering its tag until it is
 * answered (an intercepted FETCH waits until no other command is in flight,
 * so that every response it sees is its own or unsolicited). */
static void
forward_command (SmImapSession *self, const guint8 *data, gsize len, const char *tag)
{
  if (tag != NULL)
    g_hash_table_add (self->outstanding, g_strdup (tag));
  sm_stream_writer_write (self->to_upstream, data, len);
}

static void
fetch_finished (gpointer owner, GBytes *passthrough)
{
  SmImapSession *self = owner;

  /* The caller of the flow holds a reference to it. */
  g_clear_object (&self->fetch);
  if (self->response != NULL && self->response->len > 0)
    {
      /* Part of an unsolicited response arrived after the flow's last
       * command: the client gets it and the rest streams as usual. */
      sm_stream_writer_write (self->to_client, self->response->data, self->response->len);
      self->response_has_literal = self->response_literal;
      g_byte_array_set_size (self->response, 0);
    }
  if (passthrough != NULL)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (passthrough, &len);
      g_autofree char *tag = NULL;

      sm_imap_command_peek (data, len, &tag, NULL);
      forward_command (self, data, len, tag);
    }
  schedule_client_resume (self);
}

static void
fetch_resume (gpointer owner)
{
  SmImapSession *self = owner;

  if (self->upstream_pump != NULL && self->state == ST_RELAY)
    sm_input_pump_resume (self->upstream_pump);
}

/* Worker thread: answers a receipt request, or matches an incoming receipt
 * (sm-receipts.h), which signs and spools and so may take a while. */
static void
receipt_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SmImapSession *self = SM_IMAP_SESSION (source);
  SmCachedView *cached = task_data;
  g_autoptr(GError) error = NULL;
  SmReceipts *receipts = sm_receipts_get_default (&error);
  SmRelayWorker *queue = sm_server_get_queue (self->server);

  if (receipts == NULL || queue == NULL)
    {
      g_message ("Receipts are not available: %s", error ? error->message : "no queue");
      g_task_return_boolean (task, FALSE);
      return;
    }
  /* The raw message is not kept once its view exists; the view carries
   * what a receipt needs (Message-ID, signer, received MIC). */
  if (!sm_receipts_on_view (receipts, sm_server_get_config (self->server), sm_relay_worker_get_spool (queue),
                            cached->view, NULL, &error))
    g_message ("A receipt could not be queued (it is tried again next time): %s", error->message);
  g_task_return_boolean (task, TRUE);
}

static void
on_receipt_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmImapSession *self = SM_IMAP_SESSION (source);
  SmRelayWorker *queue = self->server ? sm_server_get_queue (self->server) : NULL;

  /* A receipt answered goes out now rather than at the next retry. */
  if (g_task_propagate_boolean (G_TASK (result), NULL) && queue != NULL)
    sm_relay_worker_kick (queue);
}

/* Whether a view is a receipt request or a receipt (multipart/report). */
static gboolean
view_concerns_receipts (const SmSecureView *view)
{
  gsize len, body_start = 0;
  const char *data;
  g_autoptr(SmMimeContentType) ct = NULL;

  if (view->receipt_requested)
    return TRUE;
  data = g_bytes_get_data (view->message, &len);
  ct = sm_mime_content_type_of_header (data, sm_mime_header_length (data, len, &body_start));
  return ct != NULL && g_strcmp0 (ct->type, "multipart") == 0 && g_strcmp0 (ct->subtype, "report") == 0;
}

static void
fetch_view_built (gpointer owner, guint32 uid, SmCachedView *cached)
{
  SmImapSession *self = owner;

  if (cached->view->trust == SM_TRUST_UNPROTECTED)
    return;      /* forged fields removed from plain mail: nothing to list */
  sm_server_note_message (self->server, self->mailbox ? self->mailbox : "", self->uidvalidity, uid,
                          cached->view);
  if (view_concerns_receipts (cached->view))
    {
      g_autoptr(GTask) task = g_task_new (self, NULL, on_receipt_done, NULL);
      g_task_set_task_data (task, sm_cached_view_ref (cached), (GDestroyNotify) sm_cached_view_unref);
      g_task_run_in_thread (task, receipt_thread);
    }
}

static const SmSecureFetchHooks fetch_hooks = {
  fetch_to_upstream, fetch_to_client, fetch_finished, fetch_resume, fetch_view_built,
};

static void
start_fetch (SmImapSession *self, SmImapFetchRequest *request, GBytes *line)
{
  const SmConfig *config = sm_server_get_config (self->server);
  g_autoptr(SmSecureFetch) keep = NULL;

  self->fetch = sm_secure_fetch_new (request, line, sm_server_get_view_cache (self->server),
                                     self->mailbox, self->uidvalidity, self->read_only,
                                     config->address,
                                     config->subject_tags ? SM_SECURE_VIEW_SUBJECT_TAGS : SM_SECURE_VIEW_FLAGS_NONE,
                                     &fetch_hooks, self);
  if (self->response == NULL)
    self->response = g_byte_array_new ();
  keep = g_object_ref (self->fetch);
  sm_secure_fetch_start (keep);
}

static void
start_waiting_fetch (SmImapSession *self)
{
  g_autoptr(GBytes) line = g_steal_pointer (&self->waiting_line);

  if (self->waiting_fetch == NULL || g_hash_table_size (self->outstanding) > 0 || self->state != ST_RELAY)
    return;
  start_fetch (self, g_steal_pointer (&self->waiting_fetch), line);
}

/* TRUE when @request is a UID FETCH of messages all known to be plain
 * (sm_view_cache_mark_plain()): relayed without asking for their headers
 * again.  Sets with "*" or more than SM_IMAP_KNOWN_PLAIN_MAX_UIDS UIDs are
 * not expanded. */
static gboolean
all_known_plain (SmImapSession *self, const SmImapFetchRequest *request)
{
  SmViewCache *cache = sm_server_get_view_cache (self->server);
  g_auto(GStrv) ranges = NULL;
  guint counted = 0;

  if (!sm_imap_fetch_request_is_uid (request) || self->mailbox == NULL || self->uidvalidity == 0 ||
      strchr (sm_imap_fetch_request_set (request), '*') != NULL)
    return FALSE;
  ranges = g_strsplit (sm_imap_fetch_request_set (request), ",", -1);
  for (guint i = 0; ranges[i] != NULL; i++)
    {
      char *end = NULL;
      guint64 a = g_ascii_strtoull (ranges[i], &end, 10), b = a;

      if (end == ranges[i])
        return FALSE;
      if (*end == ':')
        {
          const char *second = end + 1;
          b = g_ascii_strtoull (second, &end, 10);
          if (end == second)
            return FALSE;
        }
      if (*end != '\0' || a == 0 || b == 0 || a > G_MAXUINT32 || b > G_MAXUINT32)
        return FALSE;
      if (a > b)
        {
          guint64 t = a;
          a = b;
          b = t;
        }
      if (b - a + 1 > SM_IMAP_KNOWN_PLAIN_MAX_UIDS - counted)
        return FALSE;
      counted += (guint) (b - a + 1);
      for (guint64 uid = a; uid <= b; uid++)
        if (!sm_view_cache_is_plain (cache, self->mailbox, self->uidvalidity, (guint32) uid))
          return FALSE;
    }
  return TRUE;
}

/* A FETCH or UID FETCH line from the client.  Returns TRUE when the
 * session took it over (answered it or started a flow). */
static gboolean
intercept_fetch (SmImapSession *self, const SmImapScanResult *r, const char *tag)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapFetchRequest) request = sm_imap_fetch_request_parse (r->data, r->len, &error);

  if (request == NULL)
    {
      /* Never relay what we cannot read: it could fetch ciphertext. */
      reply (self, "%s BAD %s", tag, error->message);
      return TRUE;
    }
  if (!sm_imap_fetch_request_needs_content (request))
    return FALSE;
  if (sm_server_is_locked (self->server))
    {
      /* Not even views already built: locked means nothing decrypted is
       * served.  Plain mail waits too, so the client retries the command
       * as a whole rather than caching half of it. */
      reply (self, _("%s NO [UNAVAILABLE] SecureMail is locked: unlock it (from the tray, or with "
                     "“securemail unlock”) to read your mail"), tag);
      return TRUE;
    }
  if (all_known_plain (self, request))
    {
      g_debug ("IMAP FETCH of messages known to be plain: relayed");
      return FALSE;
    }
  if (g_hash_table_size (self->outstanding) == 0)
    {
      g_autoptr(GBytes) line = g_bytes_new (r->data, r->len);
      start_fetch (self, g_steal_pointer (&request), line);
    }
  else
    {
      self->waiting_fetch = g_steal_pointer (&request);
      self->waiting_line = g_bytes_new (r->data, r->len);
    }
  return TRUE;
}

/* SELECT and EXAMINE name the mailbox whose UIDs the views are cached
 * under; the mailbox counts once the provider says OK. */
static void
note_select (SmImapSession *self, const SmImapScanResult *r, const char *tag, const char *name)
{
  g_clear_pointer (&self->mailbox, g_free);
  self->uidvalidity = 0;
  if (strcmp (name, "SELECT") != 0 && strcmp (name, "EXAMINE") != 0)
    return;
  g_free (self->select_tag);
  g_clear_pointer (&self->select_mailbox, g_free);
  self->select_tag = g_strdup (tag);
  self->select_uidvalidity = 0;
  self->select_read_only = strcmp (name, "EXAMINE") == 0;
  if (!r->has_literal)
    {
      g_autoptr(SmImapCommand) cmd = sm_imap_command_parse (r->data, r->len, NULL, NULL);

      if (cmd != NULL && cmd->args->len >= 1)
        {
          SmImapToken *box = g_ptr_array_index (cmd->args, 0);
          if (box->kind != SM_IMAP_TOKEN_LIST)
            {
              self->select_mailbox = g_strndup (g_bytes_get_data (box->value, NULL), g_bytes_get_size (box->value));
              /* RFC 9051 §5.1: INBOX in any case is INBOX. */
              if (g_ascii_strcasecmp (self->select_mailbox, "INBOX") == 0)
                memcpy (self->select_mailbox, "INBOX", 5);
            }
        }
    }
}

/* Bookkeeping on a provider response line (relay and intercept alike). */
static void
note_response (SmImapSession *self, const SmImapResponse *resp)
{
  if (resp->kind == SM_IMAP_RESPONSE_UNTAGGED && resp->status == SM_IMAP_STATUS_OK &&
      self->select_tag != NULL && resp->code != NULL &&
      g_ascii_strncasecmp (resp->code, "UIDVALIDITY ", 12) == 0)
    self->select_uidvalidity = (guint32) g_ascii_strtoull (resp->code + 12, NULL, 10);
  if (resp->kind != SM_IMAP_RESPONSE_TAGGED)
    return;
  g_hash_table_remove (self->outstanding, resp->tag);
  if (self->select_tag != NULL && strcmp (resp->tag, self->select_tag) == 0)
    {
      if (resp->status == SM_IMAP_STATUS_OK && self->select_mailbox != NULL && self->select_uidvalidity != 0)
        {
          self->mailbox = g_steal_pointer (&self->select_mailbox);
          self->uidvalidity = self->select_uidvalidity;
          self->read_only = self->select_read_only ||
                            (resp->code != NULL && g_ascii_strncasecmp (resp->code, "READ-ONLY", 9) == 0);
        }
      g_clear_pointer (&self->select_tag, g_free);
      g_clear_pointer (&self->select_mailbox, g_free);
    }
}

/* ---- APPEND to Sent and Drafts ---------------------------------------------------
 *
 * A mail client keeps its copy of a sent message, and its drafts, by
 * APPENDing them in plain text: stored so at the provider, they would undo
 * the encryption of the message itself.  A plaintext APPEND to a mailbox
 * whose name says Sent or Drafts is therefore signed and encrypted to the
 * account's own key before it goes up (sm_outgoing_protect() with the
 * account as the only recipient); FETCH then shows it decrypted like any
 * protected message.  A message already protected goes up as it is. */

/* Sends "prefix {N+}" and the message, or, to a provider without LITERAL+
 * (RFC 7888), "prefix {N}" and the message once the provider says "+"
 * (upstream_step()): the client, already answered with its own "+", must
 * not see the provider's. */
static void
send_append (SmImapSession *self, const char *tag, GBytes *message)
{
  g_autoptr(GString) line = g_string_new (self->append_prefix);
  gboolean plus = self->upstream->capabilities != NULL &&
                  strstr (self->upstream->capabilities, "LITERAL+") != NULL;

  g_string_append_printf (line, "{%" G_GSIZE_FORMAT "%s}\r\n", g_bytes_get_size (message), plus ? "+" : "");
  forward_command (self, (const guint8 *) line->str, line->len, tag);
  if (plus)
    {
      sm_stream_writer_write (self->to_upstream, g_bytes_get_data (message, NULL), g_bytes_get_size (message));
      sm_stream_writer_write (self->to_upstream, "\r\n", 2);
    }
  else
    {
      g_clear_pointer (&self->append_upload, g_bytes_unref);
      g_free (self->append_upload_tag);
      self->append_upload = g_bytes_ref (message);
      self->append_upload_tag = g_strdup (tag);
    }
  g_clear_pointer (&self->append_prefix, g_free);
}

static gboolean
mailbox_keeps_own_mail (const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);

  return strstr (lower, "sent") != NULL || strstr (lower, "draft") != NULL;
}

/* The mailbox of "tag APPEND mailbox ...": an atom or a quoted string;
 * NULL for a literal or anything unusual (then the APPEND is relayed). */
static char *
append_mailbox (const guint8 *line, gsize len)
{
  const char *p = (const char *) line, *end = p + len;
  GString *box;

  for (int words = 0; words < 2; words++)   /* tag, APPEND */
    {
      while (p < end && *p != ' ')
        p++;
      if (p >= end)
        return NULL;
      p++;
    }
  box = g_string_new (NULL);
  if (p < end && *p == '"')
    {
      for (p++; p < end && *p != '"'; p++)
        {
          if (*p == '\\' && p + 1 < end)
            p++;
          g_string_append_c (box, *p);
        }
      if (p >= end)
        return g_string_free (box, TRUE), NULL;
    }
  else
    {
      for (; p < end && *p != ' ' && *p != '\r' && *p != '\n' && *p != '{'; p++)
        g_string_append_c (box, *p);
    }
  if (box->len == 0)
    return g_string_free (box, TRUE), NULL;
  return g_string_free (box, FALSE);
}

typedef struct {
  const SmConfig *config;
  GBytes *message;
} AppendData;

static void
append_data_free (AppendData *d)
{
  g_bytes_unref (d->message);
  g_free (d);
}

static void
append_protect_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  AppendData *d = task_data;
  const char *self_only[] = { d->config->address, NULL };
  g_autoptr(GError) error = NULL;
  GBytes *out;

  out = sm_outgoing_protect (NULL, d->config, d->config->address, self_only, d->message, NULL, &error);
  if (out == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, out, (GDestroyNotify) g_bytes_unref);
}

static void
on_append_protected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmImapSession *self = SM_IMAP_SESSION (source);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) out = g_task_propagate_pointer (G_TASK (result), &error);
  g_autofree char *tag = g_steal_pointer (&self->append_tag);

  self->append_busy = FALSE;
  if (self->state != ST_RELAY)
    return;
  if (out == NULL)
    {
      g_message ("A copy for Sent/Drafts was not stored: %s", error->message);
      reply (self, _("%s NO [UNAVAILABLE] SecureMail keeps copies of your mail only encrypted, and could "
                     "not encrypt this one: %s"), tag, error->message);
    }
  else
    send_append (self, tag, out);
  g_clear_pointer (&self->append_prefix, g_free);
  schedule_client_resume (self);
}

/* A client command line "tag APPEND box ... {N}" or "{N+}".  Returns TRUE
 * when the session collects the message to protect it. */
static gboolean
intercept_append (SmImapSession *self, const SmImapScanResult *r, const char *tag)
{
  g_autofree char *box = NULL;
  const guint8 *brace;

  if (r->literal_binary || self->append_upload != NULL)
    return FALSE;
  box = append_mailbox (r->data, r->len);
  if (box == NULL || !mailbox_keeps_own_mail (box))
    return FALSE;
  /* The prefix is the line up to the "{" of its literal. */
  brace = r->data + r->len;
  while (brace > r->data && brace[-1] != '{')
    brace--;
  if (brace == r->data)
    return FALSE;
  self->append_tag = g_strdup (tag);
  self->append_prefix = g_strndup ((const char *) r->data, (gsize) (brace - 1 - r->data));
  self->append_message = g_byte_array_sized_new ((guint) MIN (r->literal_size, SM_IMAP_MAX_LITERAL));
  self->append_collecting = TRUE;
  if (!r->literal_nonsync)
    reply (self, "+ Ready for literal data");   /* RFC 9051 §7.5 */
  return TRUE;
}

/* The end of a collected APPEND: protect it, unless it is protected
 * already or the client went on with MULTIAPPEND (RFC 3502). */
static void
finish_append (SmImapSession *self, const SmImapScanResult *r)
{
  g_autoptr(GBytes) message = g_byte_array_free_to_bytes (g_steal_pointer (&self->append_message));
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  gsize body_start = 0;
  gsize hlen = sm_mime_header_length (data, len, &body_start);

  self->append_collecting = FALSE;
  if (r->has_literal)
    {
      g_autofree char *tag = g_steal_pointer (&self->append_tag);
      reply (self, _("%s NO [CANNOT] Several messages in one APPEND to Sent or Drafts are not "
                     "supported through SecureMail; append them one by one"), tag);
      if (!r->literal_nonsync)
        sm_imap_scanner_reset (self->client_scanner);
      else
        self->discard_command = TRUE;
      g_clear_pointer (&self->append_prefix, g_free);
      return;
    }
  if (sm_secure_view_is_protected (data, hlen))
    {
      /* Already signed or encrypted (a client that does it itself). */
      g_autofree char *tag = g_steal_pointer (&self->append_tag);

      send_append (self, tag, message);
      return;
    }
  {
    AppendData *d = g_new0 (AppendData, 1);
    g_autoptr(GTask) task = g_task_new (self, self->cancellable, on_append_protected, NULL);

    d->config = sm_server_get_config (self->server);
    d->message = g_bytes_ref (message);
    g_task_set_task_data (task, d, (GDestroyNotify) append_data_free);
    self->append_busy = TRUE;
    g_task_run_in_thread (task, append_protect_thread);
  }
}

/* ---- SEARCH in decrypted text ----------------------------------------------------
 *
 * The provider answers SEARCH from what it stores, ciphertext for protected
 * messages.  A SEARCH whose criteria read message text (BODY, TEXT, SUBJECT,
 * FROM, TO, CC, BCC, HEADER) is matched against the views this proxy holds
 * for the selected mailbox, in a worker thread, and goes upstream rewritten
 * so that those messages are judged by their views and every other one by
 * the provider (sm-imap-search.h).  The answer is relayed untouched: tag,
 * SEARCH or ESEARCH form and sequence numbers are the provider's own. */

typedef struct {
  SmImapSearch *search;
  GArray *uids;             /* guint32, ascending */
  GPtrArray *messages;      /* GBytes of each view, in the order of uids */
  gboolean *matched;        /* n_text_keys x uids->len, filled by the thread */
} SearchJob;

static void
search_job_free (SearchJob *job)
{
  sm_imap_search_free (job->search);
  g_array_unref (job->uids);
  g_ptr_array_unref (job->messages);
  g_free (job->matched);
  g_free (job);
}

typedef struct {
  guint32 uid;
  GBytes *message;
} SearchView;

static void
collect_view (guint32 uid, SmCachedView *cached, gpointer user_data)
{
  GArray *views = user_data;
  SearchView v = { uid, g_bytes_ref (cached->view->message) };

  g_array_append_val (views, v);
}

static int
compare_search_view (gconstpointer a, gconstpointer b)
{
  guint32 x = ((const SearchView *) a)->uid, y = ((const SearchView *) b)->uid;

  return x < y ? -1 : x > y;
}

/* Worker thread: each view against each text key.  The views are
 * immutable GBytes, the search is only read. */
static void
search_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SearchJob *job = task_data;
  guint keys = sm_imap_search_n_text_keys (job->search), n = job->uids->len;
  g_autofree gboolean *one = g_new0 (gboolean, keys);

  job->matched = g_new0 (gboolean, (gsize) keys * n);
  for (guint i = 0; i < n; i++)
    {
      if (g_cancellable_is_cancelled (cancellable))
        break;
      sm_imap_search_match (job->search, g_ptr_array_index (job->messages, i), one);
      for (guint k = 0; k < keys; k++)
        job->matched[(gsize) k * n + i] = one[k];
    }
  g_task_return_boolean (task, TRUE);
}

/* Locked, the views are gone and protected messages cannot be read: an
 * answer from the provider alone would look complete and be wrong, so the
 * client is told to unlock, as for FETCH. */
static void
reply_search_locked (SmImapSession *self, const char *tag)
{
  reply (self, _("%s NO [UNAVAILABLE] SecureMail is locked: unlock it (from the tray, or with "
                 "“securemail unlock”) to search the text of your mail"), tag);
}

/* Sends @search upstream with its tag, rewritten for @n views. */
static void
send_search (SmImapSession *self, const SmImapSearch *search, const guint32 *uids, guint n,
             const gboolean *matched)
{
  guint kept = 0;
  g_autoptr(GBytes) line = sm_imap_search_rewrite (search, uids, n, matched, SM_IMAP_SEARCH_MAX_UPSTREAM, &kept);

  if (kept < n)
    g_message ("IMAP SEARCH: %u of %u decrypted views left to the provider (the command would be too long)",
               n - kept, n);
  g_debug ("IMAP SEARCH answered with %u decrypted views", kept);
  forward_command (self, g_bytes_get_data (line, NULL), g_bytes_get_size (line), sm_imap_search_tag (search));
}

static void
on_search_matched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmImapSession *self = SM_IMAP_SESSION (source);
  SearchJob *job = g_task_get_task_data (G_TASK (result));

  self->search_busy = FALSE;
  if (self->state != ST_RELAY || !g_task_propagate_boolean (G_TASK (result), NULL))
    return;
  if (sm_server_is_locked (self->server))
    reply_search_locked (self, sm_imap_search_tag (job->search));   /* locked while matching */
  else
    send_search (self, job->search, (const guint32 *) (gpointer) job->uids->data, job->uids->len,
                 job->matched);
  schedule_client_resume (self);
}

/* A whole SEARCH command (@data: line, literals, continuation lines). */
static void
process_search (SmImapSession *self, const guint8 *data, gsize len, const char *tag)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapSearch) search = sm_imap_search_parse (data, len, &error);
  g_autoptr(GArray) views = NULL;
  g_autoptr(GTask) task = NULL;
  SearchJob *job;

  if (search == NULL)
    {
      /* Never relay what we cannot read: it could match ciphertext. */
      reply (self, "%s BAD %s", tag, error->message);
      return;
    }
  if (sm_imap_search_n_text_keys (search) > 0 && sm_server_is_locked (self->server))
    {
      reply_search_locked (self, tag);
      return;
    }
  views = g_array_new (FALSE, FALSE, sizeof (SearchView));
  if (sm_imap_search_n_text_keys (search) > 0 && self->mailbox != NULL && self->uidvalidity != 0)
    sm_view_cache_foreach (sm_server_get_view_cache (self->server), self->mailbox, self->uidvalidity,
                           collect_view, views);
  if (views->len == 0)
    {
      send_search (self, search, NULL, 0, NULL);
      return;
    }
  g_array_sort (views, compare_search_view);
  job = g_new0 (SearchJob, 1);
  job->search = g_steal_pointer (&search);
  job->uids = g_array_sized_new (FALSE, FALSE, sizeof (guint32), views->len);
  job->messages = g_ptr_array_new_full (views->len, (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < views->len; i++)
    {
      SearchView *v = &g_array_index (views, SearchView, i);

      g_array_append_val (job->uids, v->uid);
      g_ptr_array_add (job->messages, g_steal_pointer (&v->message));
    }
  task = g_task_new (self, self->cancellable, on_search_matched, NULL);
  g_task_set_task_data (task, job, (GDestroyNotify) search_job_free);
  self->search_busy = TRUE;
  g_task_run_in_thread (task, search_thread);
}

/* One more piece of a SEARCH with literals; at its last line, the whole
 * command is processed. */
static void
collect_search (SmImapSession *self, const SmImapScanResult *r)
{
  if (self->search_command->len + r->len > SM_IMAP_SEARCH_MAX_COMMAND)
    self->search_too_big = TRUE;
  else
    g_byte_array_append (self->search_command, r->data, (guint) r->len);
  if (r->event == SM_IMAP_SCAN_LITERAL)
    return;
  if (r->has_literal)
    {
      if (!r->literal_nonsync)
        reply (self, "+ Ready for literal data");   /* RFC 9051 §7.5 */
      return;
    }
  {
    g_autoptr(GByteArray) command = g_steal_pointer (&self->search_command);
    g_autofree char *tag = g_steal_pointer (&self->search_tag);

    if (self->search_too_big)
      reply (self, _("%s BAD [TOOBIG] Search command longer than %d bytes"), tag, SM_IMAP_SEARCH_MAX_COMMAND);
    else
      process_search (self, command->data, command->len, tag);
    sm_wipe_byte_array (command);   /* search strings */
  }
}

/* A SEARCH or UID SEARCH line from the client.  Returns TRUE when the
 * session took it over. */
static gboolean
intercept_search (SmImapSession *self, const SmImapScanResult *r, const char *tag)
{
  if (!r->has_literal)
    {
      process_search (self, r->data, r->len, tag);
      return TRUE;
    }
  /* Its literals are collected, and sent on non-synchronizing: without
   * LITERAL+ at the provider (RFC 7888) the command goes as it is. */
  if (self->upstream->capabilities == NULL || strstr (self->upstream->capabilities, "LITERAL+") == NULL)
    return FALSE;
  self->search_command = g_byte_array_new ();
  self->search_tag = g_strdup (tag);
  self->search_too_big = FALSE;
  collect_search (self, r);
  return TRUE;
}

static gsize
client_step_relay (SmImapSession *self, const guint8 *buf, gsize len)
{
  SmImapScanResult r;
  gsize used = sm_imap_scanner_feed (self->client_scanner, buf, len, &r);

  switch (r.event)
    {
    case SM_IMAP_SCAN_NEED_MORE:
      break;
    case SM_IMAP_SCAN_LINE_TOO_LONG:
      sm_imap_session_close (self, _("[TOOBIG] Command line too long"));
      break;
    case SM_IMAP_SCAN_LITERAL_TOO_LARGE:
      {
        g_autofree char *tag = NULL;
        g_autofree char *name = NULL;
        if (r.literal_nonsync)
          {
            /* The client sends the bytes without waiting: the stream
             * cannot be resynchronised (RFC 7888 §4). */
            sm_imap_session_close (self, _("[TOOBIG] Literal too large"));
            break;
          }
        sm_imap_command_peek (r.data, r.len, &tag, &name);
        reply (self, _("%s NO [TOOBIG] Literal larger than %" G_GUINT64_FORMAT " bytes"),
               tag ? tag : "*", (guint64) SM_IMAP_MAX_LITERAL);
        /* The command so far was not forwarded if this was its first line;
         * a continuation line means part of it went upstream already, so
         * the only safe end is to close. */
        if (r.continuation)
          sm_imap_session_close (self, _("[TOOBIG] Literal too large"));
      }
      break;
    case SM_IMAP_SCAN_LITERAL:
      if (self->append_collecting)
        g_byte_array_append (self->append_message, r.data, (guint) r.len);
      else if (self->search_command != NULL)
        collect_search (self, &r);
      else if (!self->discard_command)
        sm_stream_writer_write (self->to_upstream, r.data, r.len);
      break;
    case SM_IMAP_SCAN_LINE:
      if (!r.continuation)
        {
          g_autofree char *tag = NULL;
          g_autofree char *name = NULL;
          self->discard_command = FALSE;
          if (sm_imap_command_peek (r.data, r.len, &tag, &name))
            {
              if (refuse_in_relay (self, tag, name))
                {
                  if (r.has_literal && !r.literal_nonsync)
                    sm_imap_scanner_reset (self->client_scanner);  /* the client waits for "+" */
                  else if (r.has_literal)
                    self->discard_command = TRUE;
                  break;
                }
              if (strcmp (name, "LOGOUT") == 0)
                self->logout_seen = TRUE;
              sm_server_note_activity (self->server);
              if ((strcmp (name, "FETCH") == 0 || strcmp (name, "UID FETCH") == 0) && !r.has_literal &&
                  intercept_fetch (self, &r, tag))
                break;
              if (strcmp (name, "APPEND") == 0 && r.has_literal && intercept_append (self, &r, tag))
                break;
              if (strcmp (name, "ENABLE") == 0 && !r.has_literal && intercept_enable (self, &r, tag))
                break;
              if ((strcmp (name, "SEARCH") == 0 || strcmp (name, "UID SEARCH") == 0) &&
                  intercept_search (self, &r, tag))
                break;
              if (strcmp (name, "SELECT") == 0 || strcmp (name, "EXAMINE") == 0 ||
                  strcmp (name, "CLOSE") == 0 || strcmp (name, "UNSELECT") == 0)
                note_select (self, &r, tag, name);
              forward_command (self, r.data, r.len, tag);
              if (r.has_literal && !r.literal_nonsync)
                {
                  g_free (self->sync_literal_tag);
                  self->sync_literal_tag = g_steal_pointer (&tag);
                }
              break;
            }
        }
      else if (self->append_collecting)
        {
          finish_append (self, &r);
          break;
        }
      else if (self->search_command != NULL)
        {
          collect_search (self, &r);
          break;
        }
      else if (r.has_literal && !r.literal_nonsync && !self->discard_command)
        {
          /* A later synchronizing literal of the same command: the tag is
           * still the one recorded. */
        }
      if (self->discard_command)
        {
          if (!r.has_literal)
            self->discard_command = FALSE;
          break;
        }
      sm_stream_writer_write (self->to_upstream, r.data, r.len);
      break;
    }
  return used;
}

static gsize
client_step (GObject *owner, const guint8 *buf, gsize len)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);

  if (self->state == ST_RELAY)
    return client_step_relay (self, buf, len);
  return client_step_preauth (self, buf, len);
}

/* Rewrites a capability list in "* CAPABILITY ..." or in a [CAPABILITY ...]
 * response code.  Returns NULL when @line has none. */
static char *
rewrite_capabilities (const SmImapResponse *resp, const guint8 *line, gsize len)
{
  g_autofree char *text = g_strndup ((const char *) line, len);
  g_autofree char *filtered = NULL;
  char *start, *end;

  if (resp->kind == SM_IMAP_RESPONSE_UNTAGGED && g_strcmp0 (resp->keyword, "CAPABILITY") == 0)
    {
      filtered = sm_imap_capabilities_filter (resp->text ? resp->text : "", NULL);
      return g_strdup_printf ("* CAPABILITY %s\r\n", filtered);
    }
  if (resp->code == NULL || g_ascii_strncasecmp (resp->code, "CAPABILITY ", 11) != 0)
    return NULL;
  start = strchr (text, '[');
  end = start ? strchr (start, ']') : NULL;
  if (start == NULL || end == NULL)
    return NULL;
  filtered = sm_imap_capabilities_filter (resp->code + 11, NULL);
  *start = '\0';
  return g_strdup_printf ("%s[CAPABILITY %s%s", text, filtered, end);
}

/* While a FETCH is intercepted, provider responses are assembled whole and
 * offered to the flow; what it does not take goes to the client. */
static void
intercept_response (SmImapSession *self, const SmImapScanResult *r)
{
  g_autoptr(SmSecureFetch) flow = g_object_ref (self->fetch);
  g_autoptr(GByteArray) whole = NULL;

  if (r->event == SM_IMAP_SCAN_LITERAL)
    {
      g_byte_array_append (self->response, r->data, (guint) r->len);
      return;
    }
  if (!r->continuation)
    g_byte_array_set_size (self->response, 0);
  g_byte_array_append (self->response, r->data, (guint) r->len);
  self->response_literal = r->has_literal;
  if (r->has_literal)
    {
      if (self->response->len + r->literal_size > SM_SECURE_FETCH_MAX_RESPONSE)
        {
          g_message ("IMAP provider response too large while checking messages");
          sm_imap_session_close (self, _("[UNAVAILABLE] The provider sent a response SecureMail cannot check"));
        }
      return;
    }
  if (!r->continuation)
    {
      g_auto(SmImapResponse) resp = { 0 };
      sm_imap_response_classify (r->data, r->len, &resp);
      note_response (self, &resp);
    }
  whole = g_steal_pointer (&self->response);
  self->response = g_byte_array_new ();
  if (!sm_secure_fetch_response (flow, whole->data, whole->len))
    sm_stream_writer_write (self->to_client, whole->data, whole->len);
  sm_wipe_byte_array (whole);   /* may hold a whole message (still ciphertext, but no need to keep it) */
}

static gsize
upstream_step (GObject *owner, const guint8 *buf, gsize len)
{
  SmImapSession *self = SM_IMAP_SESSION (owner);
  SmImapScanResult r;
  gsize used = sm_imap_scanner_feed (self->upstream_scanner, buf, len, &r);

  if (self->fetch != NULL && (r.event == SM_IMAP_SCAN_LINE || r.event == SM_IMAP_SCAN_LITERAL))
    {
      intercept_response (self, &r);
      return used;
    }
  switch (r.event)
    {
    case SM_IMAP_SCAN_NEED_MORE:
      break;
    case SM_IMAP_SCAN_LINE_TOO_LONG:
    case SM_IMAP_SCAN_LITERAL_TOO_LARGE:
      g_message ("IMAP provider sent a response beyond the proxy's limits");
      sm_imap_session_close (self, self->response_has_literal ? NULL
                                   : _("[UNAVAILABLE] The provider sent a response SecureMail cannot relay"));
      break;
    case SM_IMAP_SCAN_LITERAL:
      sm_stream_writer_write (self->to_client, r.data, r.len);
      break;
    case SM_IMAP_SCAN_LINE:
      if (!r.continuation)
        {
          g_auto(SmImapResponse) resp = { 0 };
          g_autofree char *rewritten = NULL;

          sm_imap_response_classify (r.data, r.len, &resp);
          note_response (self, &resp);
          if (self->append_upload != NULL && resp.kind == SM_IMAP_RESPONSE_CONTINUATION)
            {
              /* The provider's "+" for a protected APPEND: ours, not the client's. */
              g_autoptr(GBytes) upload = g_steal_pointer (&self->append_upload);
              g_clear_pointer (&self->append_upload_tag, g_free);
              sm_stream_writer_write (self->to_upstream, g_bytes_get_data (upload, NULL), g_bytes_get_size (upload));
              sm_stream_writer_write (self->to_upstream, "\r\n", 2);
              schedule_client_resume (self);
              break;
            }
          if (self->append_upload != NULL && resp.kind == SM_IMAP_RESPONSE_TAGGED &&
              g_strcmp0 (resp.tag, self->append_upload_tag) == 0)
            {
              /* Refused before the literal: nothing to upload. */
              g_clear_pointer (&self->append_upload, g_bytes_unref);
              g_clear_pointer (&self->append_upload_tag, g_free);
              schedule_client_resume (self);
            }
          if (resp.kind == SM_IMAP_RESPONSE_CONTINUATION)
            g_clear_pointer (&self->sync_literal_tag, g_free);   /* the client may send it now */
          else if (resp.kind == SM_IMAP_RESPONSE_TAGGED && self->sync_literal_tag != NULL &&
                   g_strcmp0 (resp.tag, self->sync_literal_tag) == 0)
            {
              /* The server refused the command before its literal: the
               * client will not send it (RFC 9051 §4.3). */
              g_clear_pointer (&self->sync_literal_tag, g_free);
              if (sm_imap_scanner_in_literal (self->client_scanner))
                sm_imap_scanner_reset (self->client_scanner);
            }
          rewritten = rewrite_capabilities (&resp, r.data, r.len);
          if (rewritten != NULL)
            {
              sm_stream_writer_write (self->to_client, rewritten, strlen (rewritten));
              self->response_has_literal = r.has_literal;
              if (!r.has_literal)
                {
                  flush_deferred_replies (self);
                  start_waiting_fetch (self);
                }
              break;
            }
        }
      self->response_has_literal = r.has_literal;
      sm_stream_writer_write (self->to_client, r.data, r.len);
      /* A response ends here: a FETCH waiting for the other commands may
       * start once they are all answered. */
      if (!r.has_literal)
        {
          flush_deferred_replies (self);
          start_waiting_fetch (self);
        }
      break;
    }
  return used;
}

/* ---- STARTTLS towards the client ------------------------------------------- */

static void
on_client_handshake (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmImapSession) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error))
    {
      g_message ("IMAP client TLS handshake failed: %s", error->message);
      if (self->state != ST_CLOSING)
        {
          g_clear_pointer (&self->to_client, sm_stream_writer_free);
          sm_imap_session_close (self, NULL);
        }
      return;
    }
  if (self->state == ST_CLOSING)
    return;
  g_set_object (&self->client, G_IO_STREAM (source));
  sm_stream_writer_set_stream (self->to_client, g_io_stream_get_output_stream (self->client));
  sm_input_pump_set_stream (self->client_pump, g_io_stream_get_input_stream (self->client));
  self->tls_active = TRUE;
  sm_imap_scanner_reset (self->client_scanner);
  self->state = ST_NOT_AUTH;
  sm_input_pump_resume (self->client_pump);
}

static void
begin_client_tls (SmImapSession *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) tls = NULL;

  /* Anything the client sent after STARTTLS and before the handshake was
   * sent in clear and could be injected: refuse it (RFC 9051 §11.1). */
  if (sm_input_pump_backlog (self->client_pump) > 0)
    {
      sm_imap_session_close (self, _("Data after STARTTLS refused"));
      return;
    }
  tls = g_tls_server_connection_new (self->client, sm_server_get_local_certificate (self->server), &error);
  if (tls == NULL)
    {
      g_warning ("Cannot start TLS for an IMAP client: %s", error->message);
      sm_imap_session_close (self, NULL);
      return;
    }
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, self->cancellable,
                                    on_client_handshake, g_object_ref (self));
}

/* ---- construction ---------------------------------------------------------- */

SmImapSession *
sm_imap_session_new (SmServer *server, GSocketConnection *connection)
{
  SmImapSession *self = g_object_new (SM_TYPE_IMAP_SESSION, NULL);

  self->server = server;
  self->connection = g_object_ref (connection);
  self->peer = sm_login_limiter_client_of (connection);
  self->client = g_object_ref (G_IO_STREAM (connection));
  self->to_client = sm_stream_writer_new (g_io_stream_get_output_stream (self->client),
                                          on_client_drained, on_client_write_error, self);
  self->preauth_timeout_id = g_timeout_add_seconds (SM_IMAP_PREAUTH_TIMEOUT_S, on_preauth_timeout, self);
  self->client_pump = sm_input_pump_new (g_io_stream_get_input_stream (self->client), G_OBJECT (self),
                                         client_step, client_paused, on_client_eof);
  reply (self, _("* OK [CAPABILITY %s] SecureMail ready"), capabilities_preauth (self));
  sm_input_pump_resume (self->client_pump);
  return self;
}

char *
sm_imap_session_describe (SmImapSession *self)
{
  static const char *states[] = { "not-auth", "starttls", "logging-in", "relay", "closing" };

  return g_strdup_printf ("IMAP session %p: %s; client: watching=%d backlog=%" G_GSIZE_FORMAT
                          " queued=%" G_GSIZE_FORMAT "; provider: watching=%d backlog=%" G_GSIZE_FORMAT
                          " queued=%" G_GSIZE_FORMAT " in-literal-response=%d",
                          self, states[self->state],
                          self->client_pump ? sm_input_pump_is_watching (self->client_pump) : -1,
                          self->client_pump ? sm_input_pump_backlog (self->client_pump) : 0,
                          self->to_client ? sm_stream_writer_pending (self->to_client) : 0,
                          self->upstream_pump ? sm_input_pump_is_watching (self->upstream_pump) : -1,
                          self->upstream_pump ? sm_input_pump_backlog (self->upstream_pump) : 0,
                          self->to_upstream ? sm_stream_writer_pending (self->to_upstream) : 0,
                          self->response_has_literal);
}
