/* sm-server.c: the proxy's listeners and shared state. */
#include "config.h"

#include <glib/gi18n.h>
#include <libetpan/libetpan.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "sm-error.h"
#include "sm-imap-session.h"
#include "sm-keyring.h"
#include "sm-key-gate.h"
#include "sm-login-limiter.h"
#include "sm-mime.h"
#include "sm-relay-worker.h"
#include "sm-pin-interaction.h"
#include "sm-server.h"
#include "sm-session-watch.h"
#include "sm-smtp-session.h"
#include "sm-secure-fetch.h"
#include "sm-view-cache.h"
#include "sm-upstream.h"

struct _SmServer {
  GObject parent_instance;

  SmConfig *config;
  GTlsCertificate *local_cert;
  GSocketService *imap_service;
  GSocketService *smtp_service;
  guint16 imap_port;
  guint16 smtp_port;
  GHashTable *sessions;     /* GObject* -> itself; owns one reference each */
  guint n_imap;
  guint n_smtp;
  char *last_error;
  gboolean upstream_ok;
  SmRelayWorker *queue;     /* the outbound queue's relay worker (owns the spool) */
  SmViewCache *views;       /* decrypted views, shared by the IMAP sessions */
  SmLoginLimiter *login_limiter;
  gboolean locked;
  SmLockReason lock_reason; /* SM_LOCK_REASON_NONE while open */
  SmSessionWatch *session_watch;  /* screen lock and suspend; NULL when both are off */
  gint64 last_activity;     /* monotonic microseconds */
  gint64 idle_limit_us;     /* [security] idle_lock, scaled; 0 = never */
  guint idle_source;
  GQueue recent;            /* SmMessageSummary*, newest first, at most SM_SERVER_MAX_RECENT_MESSAGES */
};

enum { SIGNAL_STATUS_CHANGED, SIGNAL_MESSAGES_CHANGED, SIGNAL_LOCK_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (SmServer, sm_server, G_TYPE_OBJECT)

static void
summary_free (SmMessageSummary *m)
{
  g_free (m->mailbox);
  g_free (m->signer);
  g_free (m->from);
  g_free (m->subject);
  g_free (m);
}

static void
sm_server_finalize (GObject *object)
{
  SmServer *self = SM_SERVER (object);

  sm_server_stop (self);
  g_clear_object (&self->session_watch);
  g_clear_object (&self->queue);
  g_clear_pointer (&self->views, sm_view_cache_free);
  g_clear_object (&self->login_limiter);
  g_clear_pointer (&self->sessions, g_hash_table_unref);
  g_clear_object (&self->imap_service);
  g_clear_object (&self->smtp_service);
  g_clear_object (&self->local_cert);
  g_clear_pointer (&self->config, sm_config_free);
  g_free (self->last_error);
  g_queue_clear_full (&self->recent, (GDestroyNotify) summary_free);
  G_OBJECT_CLASS (sm_server_parent_class)->finalize (object);
}

static void
sm_server_class_init (SmServerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_server_finalize;
  /* Emitted when sessions, reachability or the last error change. */
  signals[SIGNAL_STATUS_CHANGED] = g_signal_new ("status-changed", G_TYPE_FROM_CLASS (klass),
                                                 G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                 G_TYPE_NONE, 0);
  /* Emitted when the ring of recent messages changes. */
  signals[SIGNAL_MESSAGES_CHANGED] = g_signal_new ("messages-changed", G_TYPE_FROM_CLASS (klass),
                                                   G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                   G_TYPE_NONE, 0);
  /* Emitted when the unlock gate opens or closes; the argument is the new
   * locked state. */
  signals[SIGNAL_LOCK_CHANGED] = g_signal_new ("lock-changed", G_TYPE_FROM_CLASS (klass),
                                               G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                               G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
}

static void
sm_server_init (SmServer *self)
{
  self->sessions = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  self->upstream_ok = TRUE;
}

SmServer *
sm_server_new (SmConfig *config, GTlsCertificate *local_cert)
{
  SmServer *self = g_object_new (SM_TYPE_SERVER, NULL);
  self->config = config;
  self->local_cert = g_object_ref (local_cert);
  self->login_limiter = sm_login_limiter_new ();
  if (g_getenv (SM_LOGIN_LIMITER_SCALE_ENV) != NULL)
    sm_login_limiter_set_scale (self->login_limiter, g_ascii_strtod (g_getenv (SM_LOGIN_LIMITER_SCALE_ENV), NULL));
  /* The gate's state is known from the start, so that nothing is served
   * before sm_server_start() closes it in gpg-agent too. */
  self->locked = config->start_locked;
  self->lock_reason = config->start_locked ? SM_LOCK_REASON_START : SM_LOCK_REASON_NONE;
  sm_secure_fetch_set_gate_open (!config->start_locked);
  if (!config->start_locked)
    sm_pin_interaction_note_unlocked (config->client_certificate, config->address);
  self->last_activity = g_get_monotonic_time ();
  return self;
}

static void
refuse_busy (GSocketConnection *connection, const char *line)
{
  /* A short line on a fresh socket does not block in practice; the
   * connection is dropped right after. */
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), line,
                             strlen (line), NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
}

static gboolean
on_imap_incoming (GSocketService *service, GSocketConnection *connection, GObject *source, gpointer user_data)
{
  SmServer *self = user_data;
  SmImapSession *session;

  if (self->n_imap >= SM_SERVER_MAX_IMAP_SESSIONS)
    {
      g_message ("IMAP connection refused: %u sessions already", self->n_imap);
      refuse_busy (connection, "* BYE [UNAVAILABLE] Too many connections to SecureMail\r\n");
      return TRUE;
    }
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  sm_server_note_activity (self);
  session = sm_imap_session_new (self, connection);
  g_hash_table_add (self->sessions, session);
  self->n_imap++;
  g_signal_emit (self, signals[SIGNAL_STATUS_CHANGED], 0);
  return TRUE;
}

static gboolean
on_smtp_incoming (GSocketService *service, GSocketConnection *connection, GObject *source, gpointer user_data)
{
  SmServer *self = user_data;
  SmSmtpSession *session;

  if (self->n_smtp >= SM_SERVER_MAX_SMTP_SESSIONS)
    {
      g_message ("SMTP connection refused: %u sessions already", self->n_smtp);
      refuse_busy (connection, "421 4.7.0 Too many connections to SecureMail, try again later\r\n");
      return TRUE;
    }
  sm_server_note_activity (self);
  session = sm_smtp_session_new (self, connection);
  g_hash_table_add (self->sessions, session);
  self->n_smtp++;
  g_signal_emit (self, signals[SIGNAL_STATUS_CHANGED], 0);
  return TRUE;
}

static GSocketService *
listen_on (const SmListenAddress *la, const char *what, guint16 *bound_port, GError **error)
{
  g_autoptr(GSocketService) service = g_socket_service_new ();
  g_autoptr(GInetAddress) addr = g_inet_address_new_from_string (
      g_strcmp0 (la->host, "localhost") == 0 ? "127.0.0.1" : la->host);
  g_autoptr(GSocketAddress) sa = NULL;
  g_autoptr(GSocketAddress) effective = NULL;
  g_autoptr(GError) local = NULL;

  if (addr == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("[listen] %s: “%s” is not an address"), what, la->host);
      return NULL;
    }
  sa = g_inet_socket_address_new (addr, la->port);
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (service), sa, G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &effective, &local))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                   _("Cannot listen for %s on %s:%u: %s. Is another securemail-proxy running? "
                     "Otherwise change [listen] %s."),
                   what, la->host, la->port, local->message, what);
      return NULL;
    }
  *bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  return g_steal_pointer (&service);
}

static void
on_queue_upstream_status (SmRelayWorker *worker, gboolean ok, const char *message, gpointer user_data)
{
  sm_server_report_upstream (SM_SERVER (user_data), ok, message);
}

/* The spool is opened before the listeners: a message must never be
 * accepted that cannot be kept. */
static gboolean
start_queue (SmServer *self, GError **error)
{
  g_autofree char *data_dir = sm_config_data_dir ();
  g_autofree char *dir = g_build_filename (data_dir, "spool", NULL);
  g_autoptr(SmSpool) spool = sm_spool_new (dir, error);

  if (spool == NULL)
    return FALSE;
  self->queue = sm_relay_worker_new (spool, self->config);
  g_signal_connect (self->queue, "upstream-status", G_CALLBACK (on_queue_upstream_status), self);
  sm_relay_worker_start (self->queue);
  return TRUE;
}

SmLoginLimiter *
sm_server_get_login_limiter (SmServer *self)
{
  return self->login_limiter;
}

SmViewCache *
sm_server_get_view_cache (SmServer *self)
{
  if (self->views == NULL)
    self->views = sm_view_cache_new (SM_VIEW_CACHE_MAX_BYTES, SM_VIEW_CACHE_MAX_ENTRIES);
  return self->views;
}

SmRelayWorker *
sm_server_get_queue (SmServer *self)
{
  return self->queue;
}

static gboolean lock_because (SmServer *self, SmLockReason reason, GError **error);

/* SmSessionWatch::lock-requested.  Runs before the computer sleeps while
 * the watch holds logind's delay lock: the gate is closed and gpg-agent has
 * forgotten the passphrases when this returns. */
static void
on_session_lock_requested (SmSessionWatch *watch, int event, const char *source, gpointer user_data)
{
  SmServer *self = user_data;
  g_autoptr(GError) error = NULL;

  if (self->locked)
    return;
  g_message ("%s: locking", event == SM_SESSION_EVENT_SUSPEND ? "The computer is going to sleep"
                                                              : "The screen was locked");
  g_debug ("Lock requested by %s", source);
  if (!lock_because (self, event == SM_SESSION_EVENT_SUSPEND ? SM_LOCK_REASON_SUSPEND
                                                             : SM_LOCK_REASON_SCREEN_LOCKED, &error))
    g_message ("Locking: %s", error->message);
}

static gboolean
check_idle (gpointer user_data)
{
  SmServer *self = user_data;
  gint64 idle_us = g_get_monotonic_time () - self->last_activity;

  if (!self->locked && idle_us >= self->idle_limit_us)
    {
      g_autoptr(GError) error = NULL;
      g_message ("No client activity for %u minutes: locking", self->config->idle_lock_minutes);
      if (!lock_because (self, SM_LOCK_REASON_IDLE, &error))
        g_message ("Locking: %s", error->message);
    }
  return G_SOURCE_CONTINUE;
}

gboolean
sm_server_start (SmServer *self, GError **error)
{
  if (self->queue == NULL && !start_queue (self, error))
    return FALSE;
  if (self->config->start_locked)
    {
      g_autoptr(GError) local = NULL;
      /* A passphrase an earlier run preset may still sit in the agent. */
      if (!sm_key_gate_forget (&local))
        g_message ("Starting locked, but gpg-agent could not be told to forget passphrases: %s", local->message);
    }
  if (self->config->idle_lock_minutes > 0 && self->idle_source == 0)
    {
      const char *scale_text = g_getenv (SM_SERVER_IDLE_SCALE_ENV);
      double scale = scale_text ? g_ascii_strtod (scale_text, NULL) : 1.0;
      guint interval_ms;

      if (!(scale > 0.0 && scale <= 1.0))
        scale = 1.0;
      self->idle_limit_us = (gint64) (self->config->idle_lock_minutes * 60.0 * G_USEC_PER_SEC * scale);
      /* Look four times per limit, so the lock comes at most a quarter late. */
      interval_ms = (guint) CLAMP (self->idle_limit_us / 1000 / 4, 10, SM_SERVER_IDLE_CHECK_S * 1000);
      self->idle_source = g_timeout_add (interval_ms, check_idle, self);
    }
  if ((self->config->lock_on_screen_lock || self->config->lock_on_suspend) && self->session_watch == NULL)
    {
      self->session_watch = sm_session_watch_new (self->config->lock_on_screen_lock, self->config->lock_on_suspend);
      g_signal_connect (self->session_watch, "lock-requested", G_CALLBACK (on_session_lock_requested), self);
    }
  if (self->session_watch != NULL)
    sm_session_watch_start (self->session_watch);
  self->imap_service = listen_on (&self->config->listen_imap, "imap", &self->imap_port, error);
  if (self->imap_service == NULL)
    return FALSE;
  self->smtp_service = listen_on (&self->config->listen_smtp, "smtp", &self->smtp_port, error);
  if (self->smtp_service == NULL)
    {
      g_socket_service_stop (self->imap_service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->imap_service));
      g_clear_object (&self->imap_service);
      return FALSE;
    }
  g_signal_connect (self->imap_service, "incoming", G_CALLBACK (on_imap_incoming), self);
  g_signal_connect (self->smtp_service, "incoming", G_CALLBACK (on_smtp_incoming), self);
  g_socket_service_start (self->imap_service);
  g_socket_service_start (self->smtp_service);
  if (!self->locked)
    sm_secure_fetch_prepare ();
  return TRUE;
}

void
sm_server_stop (SmServer *self)
{
  GSocketService *services[] = { self->imap_service, self->smtp_service };

  if (self->queue != NULL)
    sm_relay_worker_stop (self->queue);
  g_clear_handle_id (&self->idle_source, g_source_remove);
  if (self->session_watch != NULL)
    sm_session_watch_stop (self->session_watch);

  for (guint i = 0; i < G_N_ELEMENTS (services); i++)
    if (services[i] != NULL)
      {
        g_signal_handlers_disconnect_by_data (services[i], self);
        g_socket_service_stop (services[i]);
        g_socket_listener_close (G_SOCKET_LISTENER (services[i]));
      }
  if (self->sessions != NULL)
    {
      /* Closing a session removes it from the table: iterate a copy. */
      g_autoptr(GList) live = g_hash_table_get_keys (self->sessions);
      for (GList *l = live; l != NULL; l = l->next)
        {
          GObject *s = l->data;
          if (SM_IS_IMAP_SESSION (s))
            sm_imap_session_close (SM_IMAP_SESSION (s), _("SecureMail is shutting down"));
          else
            sm_smtp_session_close (SM_SMTP_SESSION (s), _("421 4.3.2 SecureMail is shutting down"));
        }
    }
}

void
sm_server_session_closed (SmServer *self, GObject *session)
{
  if (!g_hash_table_contains (self->sessions, session))
    return;
  if (SM_IS_IMAP_SESSION (session))
    self->n_imap--;
  else
    self->n_smtp--;
  g_hash_table_remove (self->sessions, session);
  g_signal_emit (self, signals[SIGNAL_STATUS_CHANGED], 0);
}

const SmConfig *
sm_server_get_config (SmServer *self)
{
  return self->config;
}

GTlsCertificate *
sm_server_get_local_certificate (SmServer *self)
{
  return self->local_cert;
}

guint16
sm_server_get_imap_port (SmServer *self)
{
  return self->imap_port;
}

guint16
sm_server_get_smtp_port (SmServer *self)
{
  return self->smtp_port;
}

guint
sm_server_get_imap_session_count (SmServer *self)
{
  return self->n_imap;
}

guint
sm_server_get_smtp_session_count (SmServer *self)
{
  return self->n_smtp;
}

void
sm_server_report_upstream (SmServer *self, gboolean ok, const char *error_message)
{
  self->upstream_ok = ok;
  if (!ok && g_strcmp0 (self->last_error, error_message) != 0)
    {
      g_free (self->last_error);
      /* It goes out as a D-Bus string: valid UTF-8 whatever happened. */
      self->last_error = error_message ? g_utf8_make_valid (error_message, -1) : NULL;
    }
  /* Every report, even one that changes none of the above: what the token
   * wants (TokenPinNeeded) may have changed with it.  Listeners only copy
   * values, and D-Bus says only what differs. */
  g_signal_emit (self, signals[SIGNAL_STATUS_CHANGED], 0);
}

const char *
sm_server_get_last_error (SmServer *self)
{
  return self->last_error ? self->last_error : "";
}

gboolean
sm_server_get_upstream_ok (SmServer *self)
{
  return self->upstream_ok;
}

void
sm_server_log_sessions (SmServer *self)
{
  GHashTableIter iter;
  gpointer key;

  g_message ("%u IMAP and %u SMTP sessions", self->n_imap, self->n_smtp);
  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (SM_IS_IMAP_SESSION (key))
      {
        g_autofree char *line = sm_imap_session_describe (SM_IMAP_SESSION (key));
        g_message ("%s", line);
      }
}

/* ---- the unlock gate ------------------------------------------------------------ */

const char *
sm_lock_reason_to_string (SmLockReason reason)
{
  switch (reason)
    {
    case SM_LOCK_REASON_NONE:
      return "";
    case SM_LOCK_REASON_START:
      return "start";
    case SM_LOCK_REASON_USER:
      return "user";
    case SM_LOCK_REASON_IDLE:
      return "idle";
    case SM_LOCK_REASON_SCREEN_LOCKED:
      return "screen-locked";
    case SM_LOCK_REASON_SUSPEND:
      return "suspend";
    }
  g_return_val_if_reached ("");
}

/* @reason is kept only when the gate closes now: a screen lock while the
 * user had locked already does not rewrite why it is locked. */
static void
set_locked (SmServer *self, gboolean locked, SmLockReason reason)
{
  if (self->locked == locked)
    return;
  self->locked = locked;
  self->lock_reason = locked ? reason : SM_LOCK_REASON_NONE;
  sm_secure_fetch_set_gate_open (!locked);
  if (!locked)
    sm_secure_fetch_prepare ();
  g_message (locked ? "Locked" : "Unlocked");
  g_signal_emit (self, signals[SIGNAL_LOCK_CHANGED], 0, locked);
}

gboolean
sm_server_is_locked (SmServer *self)
{
  g_return_val_if_fail (SM_IS_SERVER (self), TRUE);
  return self->locked;
}

SmLockReason
sm_server_get_lock_reason (SmServer *self)
{
  g_return_val_if_fail (SM_IS_SERVER (self), SM_LOCK_REASON_NONE);
  return self->lock_reason;
}

static gboolean
lock_because (SmServer *self, SmLockReason reason, GError **error)
{
  /* Closed first: whatever gpg-agent does, no mail passes from now on. */
  set_locked (self, TRUE, reason);
  /* Decrypted views are plaintext in memory: locked means none is kept.
   * Signers are looked up again after unlock, too. */
  if (self->views != NULL)
    sm_view_cache_clear (self->views);
  sm_secure_view_forget_signers ();
  /* A token PIN typed at unlock lasts until the lock, like the passphrases. */
  sm_pin_interaction_set_session_pin (NULL);
  return sm_key_gate_forget (error);
}

gboolean
sm_server_lock (SmServer *self, GError **error)
{
  g_return_val_if_fail (SM_IS_SERVER (self), FALSE);
  return lock_because (self, SM_LOCK_REASON_USER, error);
}

gboolean
sm_server_unlock (SmServer *self, const char *passphrase_or_null, GError **error)
{
  guint n = 0;

  g_return_val_if_fail (SM_IS_SERVER (self), FALSE);
  if (!sm_key_gate_remember (passphrase_or_null, &n, error))
    return FALSE;
  g_debug ("%u key(s) unlocked", n);
  self->last_activity = g_get_monotonic_time ();
  /* Before the gate opens, so that TokenPinNeeded is current when
   * LockChanged reaches the tray (which then asks for the PIN). */
  sm_pin_interaction_note_unlocked (self->config->client_certificate, self->config->address);
  set_locked (self, FALSE, SM_LOCK_REASON_NONE);
  return TRUE;
}

void
sm_server_note_activity (SmServer *self)
{
  g_return_if_fail (SM_IS_SERVER (self));
  self->last_activity = g_get_monotonic_time ();
}

/* ---- recent messages ----------------------------------------------------------- */

/* @text as a display line: valid UTF-8, no control characters (a header can
 * carry anything once decoded), at most SM_SERVER_MAX_SUMMARY_TEXT bytes. */
static char *
display_text (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text ? text : "", -1);
  GString *out = g_string_new (NULL);

  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (out->len + 6 > SM_SERVER_MAX_SUMMARY_TEXT)
        break;
      if (g_unichar_iscntrl (c))
        g_string_append_c (out, ' ');
      else
        g_string_append_unichar (out, c);
    }
  return g_strstrip (g_string_free (out, FALSE));
}

/* RFC 5322 section 3.3 date-time to unix seconds; 0 when it does not parse. */
static gint64
parse_date (const char *value)
{
  struct mailimf_date_time *dt = NULL;
  size_t index = 0;
  gint64 result = 0;

  if (mailimf_date_time_parse (value, strlen (value), &index, &dt) != MAILIMF_NO_ERROR || dt == NULL)
    return 0;
  {
    int zone = dt->dt_zone;   /* +hhmm as an integer, e.g. -1330 */
    g_autoptr(GTimeZone) tz = g_time_zone_new_offset ((zone / 100) * 3600 + (zone % 100) * 60);
    g_autoptr(GDateTime) t = g_date_time_new (tz, dt->dt_year, dt->dt_month, dt->dt_day, dt->dt_hour,
                                              dt->dt_min, dt->dt_sec);
    if (t != NULL)
      result = g_date_time_to_unix (t);
  }
  mailimf_date_time_free (dt);
  return result;
}

/* The Subject and Date of the view's rebuilt header.  The Subject loses the
 * trust tag we put in front of it: the trust is a column of its own. */
static void
read_header (const SmSecureView *view, char **subject, gint64 *date)
{
  gsize len = 0;
  const char *data = view->message ? g_bytes_get_data (view->message, &len) : NULL;
  gsize header_len, body_start;
  g_autoptr(GArray) fields = NULL;
  int i;

  *subject = g_strdup ("");
  *date = 0;
  if (data == NULL)
    return;
  header_len = sm_mime_header_length (data, len, &body_start);
  fields = sm_mime_fields_parse (data, header_len, NULL);
  if (fields == NULL)
    return;
  i = sm_mime_fields_find (data, fields, "Subject");
  if (i >= 0)
    {
      g_autofree char *raw = sm_mime_field_value (data, &g_array_index (fields, SmMimeField, i));
      g_autofree char *decoded = sm_mime_decode_header_value (raw);
      const char *tag = sm_trust_subject_tag (view->trust);
      const char *shown = decoded;

      if (tag != NULL && g_str_has_prefix (shown, tag))
        shown += strlen (tag);
      g_free (*subject);
      *subject = display_text (shown);
    }
  i = sm_mime_fields_find (data, fields, "Date");
  if (i >= 0)
    {
      g_autofree char *raw = sm_mime_field_value (data, &g_array_index (fields, SmMimeField, i));
      *date = parse_date (raw);
    }
}

static GList *
find_message (SmServer *self, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
  for (GList *l = self->recent.head; l != NULL; l = l->next)
    {
      SmMessageSummary *m = l->data;
      if (m->uid == uid && m->uidvalidity == uidvalidity && strcmp (m->mailbox, mailbox) == 0)
        return l;
    }
  return NULL;
}

void
sm_server_note_message (SmServer *self, const char *mailbox, guint32 uidvalidity, guint32 uid,
                        const SmSecureView *view)
{
  SmMessageSummary *m;
  GList *old;

  g_return_if_fail (SM_IS_SERVER (self));
  g_return_if_fail (mailbox != NULL && view != NULL);

  sm_server_note_activity (self);
  m = g_new0 (SmMessageSummary, 1);
  m->mailbox = display_text (mailbox);
  m->uidvalidity = uidvalidity;
  m->uid = uid;
  m->trust = view->trust;
  m->signer = display_text (view->signer);
  m->from = display_text (view->from);
  m->encrypted = view->encrypted;
  read_header (view, &m->subject, &m->date);

  old = find_message (self, m->mailbox, uidvalidity, uid);
  if (old != NULL)
    {
      m->personal = ((SmMessageSummary *) old->data)->personal;
      summary_free (old->data);
      g_queue_delete_link (&self->recent, old);
    }
  g_queue_push_head (&self->recent, m);
  while (self->recent.length > SM_SERVER_MAX_RECENT_MESSAGES)
    summary_free (g_queue_pop_tail (&self->recent));
  g_signal_emit (self, signals[SIGNAL_MESSAGES_CHANGED], 0);
}

GPtrArray *
sm_server_list_messages (SmServer *self, guint limit)
{
  GPtrArray *list = g_ptr_array_new ();

  g_return_val_if_fail (SM_IS_SERVER (self), list);
  for (GList *l = self->recent.head; l != NULL && (limit == 0 || list->len < limit); l = l->next)
    g_ptr_array_add (list, l->data);
  return list;
}

void
sm_server_set_message_personal (SmServer *self, const char *mailbox, guint32 uid, gboolean personal)
{
  gboolean changed = FALSE;

  g_return_if_fail (SM_IS_SERVER (self));
  for (GList *l = self->recent.head; l != NULL; l = l->next)
    {
      SmMessageSummary *m = l->data;
      if (m->uid == uid && strcmp (m->mailbox, mailbox) == 0 && m->personal != personal)
        {
          m->personal = personal;
          changed = TRUE;
        }
    }
  if (changed)
    g_signal_emit (self, signals[SIGNAL_MESSAGES_CHANGED], 0);
}

/* ---- [PERSONAL] marking ---------------------------------------------------------- */

typedef struct {
  char *mailbox;
  guint32 uid;
} MarkData;

static void
mark_data_free (MarkData *d)
{
  g_free (d->mailbox);
  g_free (d);
}

/* Worker thread: the config is never changed after sm_server_new(), and the
 * task holds a reference to the server. */
static void
mark_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SmServer *self = source;
  MarkData *d = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapUpstream) up = NULL;
  char *password = NULL;

  if (!sm_upstream_get_secret (self->config, &password, cancellable, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  up = sm_imap_upstream_open (self->config, password, cancellable, &error);
  sm_keyring_free (password);
  if (up == NULL || !sm_imap_upstream_add_keyword (up, d->mailbox, d->uid, SM_PERSONAL_KEYWORD, cancellable, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_boolean (task, TRUE);
}

void
sm_server_mark_personal_async (SmServer *self, const char *mailbox, guint32 uid, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  MarkData *d;

  g_return_if_fail (SM_IS_SERVER (self));
  g_task_set_source_tag (task, sm_server_mark_personal_async);
  if (self->locked)
    {
      g_task_return_new_error (task, SM_ERROR, SM_ERROR_LOCKED,
                               _("SecureMail is locked: unlock it first (tray menu “Unlock”, or “securemail unlock”)"));
      return;
    }
  if (mailbox == NULL || *mailbox == '\0' || uid == 0)
    {
      g_task_return_new_error (task, SM_ERROR, SM_ERROR_FAILED,
                               _("A mailbox name and a UID above 0 are needed (see “securemail messages”)"));
      return;
    }
  d = g_new0 (MarkData, 1);
  d->mailbox = g_strdup (mailbox);
  d->uid = uid;
  g_task_set_task_data (task, d, (GDestroyNotify) mark_data_free);
  sm_server_note_activity (self);
  g_task_run_in_thread (task, mark_thread);
}

gboolean
sm_server_mark_personal_finish (SmServer *self, GAsyncResult *result, GError **error)
{
  MarkData *d;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;
  d = g_task_get_task_data (G_TASK (result));
  sm_server_set_message_personal (self, d->mailbox, d->uid, TRUE);
  return TRUE;
}
