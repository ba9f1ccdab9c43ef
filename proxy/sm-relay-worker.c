/* sm-relay-worker.c: delivers the outbound spool with retries and reports. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-relay-worker.h"
#include "sm-upstream.h"

#define REPORT_BOUNDARY_BYTES 12
#define REPORT_MAX_HEADER     (64 * 1024)   /* original header quoted in a report (RET=HDRS) */

struct _SmRelayWorker {
  GObject parent_instance;

  SmSpool *spool;
  const SmConfig *config;       /* not owned */
  GMainContext *context;        /* where signals are emitted */
  GThread *thread;
  GCancellable *cancellable;
  double retry_scale;
  gint64 max_age_s;

  GMutex lock;                  /* guards the fields below */
  GCond cond;
  gboolean stopping;
  gboolean kicked;
  char *current_id;             /* the message being sent now */

  /* Worker thread only: while the provider cannot be reached, it is the
   * provider that waits out the backoff, not each message (one failed
   * connection per backoff step, however long the queue). */
  guint provider_failures;      /* consecutive failed connections */
  gint64 provider_retry_ms;     /* unix ms; no connection before this */
  gboolean provider_reset;      /* under lock: the user asked for a retry now */
};

enum { SIGNAL_QUEUE_CHANGED, SIGNAL_DELIVERY_FAILED, SIGNAL_UPSTREAM_STATUS, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (SmRelayWorker, sm_relay_worker, G_TYPE_OBJECT)

static void
sm_relay_worker_finalize (GObject *object)
{
  SmRelayWorker *self = SM_RELAY_WORKER (object);

  g_assert (self->thread == NULL);
  g_clear_object (&self->spool);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_free (self->current_id);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (sm_relay_worker_parent_class)->finalize (object);
}

static void
sm_relay_worker_class_init (SmRelayWorkerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_relay_worker_finalize;
  signals[SIGNAL_QUEUE_CHANGED] = g_signal_new ("queue-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                                0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_DELIVERY_FAILED] = g_signal_new ("delivery-failed", G_TYPE_FROM_CLASS (klass),
                                                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                                                  G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_UPSTREAM_STATUS] = g_signal_new ("upstream-status", G_TYPE_FROM_CLASS (klass),
                                                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                                                  G_TYPE_BOOLEAN, G_TYPE_STRING);
}

static void
sm_relay_worker_init (SmRelayWorker *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->cancellable = g_cancellable_new ();
}

SmRelayWorker *
sm_relay_worker_new (SmSpool *spool, const SmConfig *config)
{
  SmRelayWorker *self = g_object_new (SM_TYPE_RELAY_WORKER, NULL);
  const char *scale = g_getenv (SM_RELAY_RETRY_SCALE_ENV);
  const char *age = g_getenv (SM_RELAY_MAX_AGE_ENV);

  self->spool = g_object_ref (spool);
  self->config = config;
  self->retry_scale = scale ? g_ascii_strtod (scale, NULL) : 1.0;
  if (!(self->retry_scale > 0.0 && self->retry_scale <= 1.0))
    self->retry_scale = 1.0;
  self->max_age_s = age ? g_ascii_strtoll (age, NULL, 10) : SM_RELAY_MAX_AGE_S;
  if (self->max_age_s <= 0)
    self->max_age_s = SM_RELAY_MAX_AGE_S;
  return self;
}

SmSpool *
sm_relay_worker_get_spool (SmRelayWorker *self)
{
  return self->spool;
}

gint64
sm_relay_worker_get_max_age (SmRelayWorker *self)
{
  return self->max_age_s;
}

gint64
sm_relay_worker_backoff_ms (SmRelayWorker *self, guint attempts)
{
  double s = SM_RELAY_FIRST_RETRY_S;

  for (guint i = 1; i < attempts && s < SM_RELAY_MAX_RETRY_S; i++)
    s *= SM_RELAY_RETRY_FACTOR;
  s = MIN (s, (double) SM_RELAY_MAX_RETRY_S);
  return (gint64) (s * 1000.0 * self->retry_scale + 0.5);
}

/* ---- signals, in the owner's main context --------------------------------- */

typedef struct {
  SmRelayWorker *worker;
  guint signal;
  char *a;
  char *b;
  gboolean ok;
} Emission;

static void
emission_free (Emission *e)
{
  g_object_unref (e->worker);
  g_free (e->a);
  g_free (e->b);
  g_free (e);
}

static gboolean
emit_in_context (gpointer user_data)
{
  Emission *e = user_data;

  if (e->signal == SIGNAL_QUEUE_CHANGED)
    g_signal_emit (e->worker, signals[SIGNAL_QUEUE_CHANGED], 0);
  else if (e->signal == SIGNAL_DELIVERY_FAILED)
    g_signal_emit (e->worker, signals[SIGNAL_DELIVERY_FAILED], 0, e->a, e->b);
  else
    g_signal_emit (e->worker, signals[SIGNAL_UPSTREAM_STATUS], 0, e->ok, e->a);
  return G_SOURCE_REMOVE;
}

static void
emit (SmRelayWorker *self, guint signal, const char *a, const char *b, gboolean ok)
{
  Emission *e = g_new0 (Emission, 1);

  e->worker = g_object_ref (self);
  e->signal = signal;
  e->a = g_strdup (a);
  e->b = g_strdup (b);
  e->ok = ok;
  g_main_context_invoke_full (self->context, G_PRIORITY_DEFAULT, emit_in_context, e,
                              (GDestroyNotify) emission_free);
}

/* ---- the delivery report (RFC 3464) ---------------------------------------- */

/* RFC 5322 §3.3 date, in English whatever the locale. */
static char *
rfc5322_date (gint64 unix_s)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (unix_s);
  g_autofree char *rest = g_date_time_format (t, "%H:%M:%S %z");

  return g_strdup_printf ("%s, %02d %s %04d %s", days[g_date_time_get_day_of_week (t) - 1],
                          g_date_time_get_day_of_month (t), months[g_date_time_get_month (t) - 1],
                          g_date_time_get_year (t), rest);
}

/* Provider text in a header-like field: one line, printable. */
static char *
one_line (const char *s)
{
  char *out = sm_upstream_sanitize_text (s ? s : "");
  return out;
}

static char *
random_hex (guint bytes)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < bytes; i++)
    g_string_append_printf (s, "%02x", (guint) g_random_int_range (0, 256));
  return g_string_free (s, FALSE);
}

/* The original message's header, CRLF lines, at most REPORT_MAX_HEADER. */
static GString *
original_header (GBytes *message)
{
  gsize len;
  const char *data = message ? g_bytes_get_data (message, &len) : NULL;
  GString *out = g_string_new (NULL);
  const char *p = data, *end = data ? data + len : NULL;

  while (p && p < end && out->len < REPORT_MAX_HEADER)
    {
      const char *lf = memchr (p, '\n', end - p);
      gsize n = lf ? (gsize) (lf - p) : (gsize) (end - p);
      if (n > 0 && p[n - 1] == '\r')
        n--;
      if (n == 0)
        break;
      g_string_append_len (out, p, (gssize) n);
      g_string_append (out, "\r\n");
      p = lf ? lf + 1 : end;
    }
  return out;
}

/* A multipart/report; report-type=delivery-status for @entry, to its
 * sender: a text for people, the machine-readable status per recipient,
 * and the original header (the body is protected content and stays out). */
static GBytes *
build_report (SmRelayWorker *self, const SmSpoolEntry *entry, GBytes *message, const char *reason,
              const SmSmtpReply *refusal, int refused_index)
{
  GString *r = g_string_new (NULL);
  g_autofree char *boundary_rand = random_hex (REPORT_BOUNDARY_BYTES);
  g_autofree char *boundary = g_strdup_printf ("=_securemail-report-%s", boundary_rand);
  g_autofree char *now = rfc5322_date (g_get_real_time () / G_USEC_PER_SEC);
  g_autofree char *arrival = rfc5322_date (entry->created);
  g_autofree char *subject_raw = message ? sm_spool_find_header (message, "Subject") : NULL;
  g_autofree char *subject = one_line (subject_raw ? subject_raw : "");
  g_autofree char *why = one_line (reason);
  g_autofree char *rcpts = g_strjoinv (", ", entry->recipients);
  g_autofree char *mid_rand = random_hex (8);
  g_autoptr(GString) header = original_header (message);
  const char *status_refused = refusal && refusal->enhanced ? refusal->enhanced : "5.0.0";

  g_string_append_printf (r, "From: \"%s\" <%s>\r\n", _("SecureMail delivery report"), self->config->address);
  g_string_append_printf (r, "To: <%s>\r\n", entry->sender);
  g_string_append_printf (r, "Subject: %s %s\r\n", _("Undelivered:"), subject);
  g_string_append_printf (r, "Date: %s\r\n", now);
  g_string_append_printf (r, "Message-ID: <report-%s-%s@securemail.invalid>\r\n", entry->id, mid_rand);
  /* RFC 3834: an automatic message; nobody should answer it automatically. */
  g_string_append (r, "Auto-Submitted: auto-replied\r\n");
  g_string_append (r, "MIME-Version: 1.0\r\n");
  g_string_append_printf (r, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                             "\tboundary=\"%s\"\r\n\r\n", boundary);
  g_string_append (r, "This is a MIME-encapsulated delivery report.\r\n\r\n");

  /* 1. for people */
  g_string_append_printf (r, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: 8bit\r\n\r\n", boundary);
  g_string_append_printf (r, _("SecureMail could not deliver your message to anyone.\r\n\r\n"
                               "  Subject:     %s\r\n"
                               "  To:          %s\r\n"
                               "  Queued at:   %s\r\n"
                               "  Queue ID:    %s\r\n"
                               "  Reason:      %s\r\n\r\n"
                               "A message goes to all its recipients or to none, so nobody received it. "
                               "Correct the problem and send it again.\r\n"
                               "“securemail queue list” shows the queue; “securemail queue delete %s” "
                               "removes this message from it.\r\n\r\n"),
                          subject, rcpts, arrival, entry->id, why, entry->id);

  /* 2. for programs (RFC 3464 §2.2, §2.3) */
  g_string_append_printf (r, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
  g_string_append (r, "Reporting-MTA: dns; localhost\r\n");
  g_string_append_printf (r, "Original-Envelope-Id: %s\r\n", entry->id);
  g_string_append_printf (r, "Arrival-Date: %s\r\n", arrival);
  for (guint i = 0; entry->recipients[i]; i++)
    {
      gboolean this_one = refused_index == (int) i;
      g_string_append_printf (r, "\r\nFinal-Recipient: rfc822; %s\r\n", entry->recipients[i]);
      g_string_append (r, "Action: failed\r\n");
      if (refusal != NULL && (this_one || refused_index < 0))
        {
          g_string_append_printf (r, "Status: %s\r\n", status_refused);
          g_string_append_printf (r, "Diagnostic-Code: smtp; %u %s\r\n", refusal->code, refusal->text);
        }
      else if (refusal != NULL)
        {
          /* Accepted by itself, but another recipient was refused. */
          g_string_append (r, "Status: 5.0.0\r\n");
          g_string_append_printf (r, "Diagnostic-Code: x-securemail; %s\r\n",
                                  "not sent: another recipient of the message was refused");
        }
      else
        {
          /* No verdict: the age limit (RFC 3463 4.4.7, delivery time expired). */
          g_string_append (r, "Status: 4.4.7\r\n");
          g_string_append_printf (r, "Diagnostic-Code: x-securemail; %s\r\n", why);
        }
      g_string_append_printf (r, "Last-Attempt-Date: %s\r\n", now);
    }
  g_string_append (r, "\r\n");

  /* 3. the original header */
  g_string_append_printf (r, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
  g_string_append_len (r, header->str, (gssize) header->len);
  g_string_append_printf (r, "\r\n--%s--\r\n", boundary);
  return g_string_free_to_bytes (r);
}

/* ---- one message ------------------------------------------------------------ */

static void
save (SmRelayWorker *self, const SmSpoolEntry *e)
{
  g_autoptr(GError) error = NULL;

  if (!sm_spool_update (self->spool, e, &error))
    g_warning ("Outbound queue: cannot record the state of %s: %s", e->id, error->message);
}

/* Temporary failure: try again after the backoff. */
static void
defer (SmRelayWorker *self, SmSpoolEntry *e, const char *why)
{
  gint64 wait_ms = sm_relay_worker_backoff_ms (self, e->attempts);

  g_free (e->last_error);
  e->last_error = g_strdup (why);
  e->state = SM_SPOOL_QUEUED;
  e->next_attempt_ms = g_get_real_time () / 1000 + wait_ms;
  save (self, e);
  g_message ("Outbound queue: %s deferred (attempt %u, next in %" G_GINT64_FORMAT " ms): %s", e->id, e->attempts,
             wait_ms, why);
}

/* Permanent failure: report to the sender, keep the entry as "failed". */
static void
fail (SmRelayWorker *self, SmSpoolEntry *e, GBytes *message, const char *why, const SmSmtpReply *refusal,
      int refused_index)
{
  g_autoptr(GError) error = NULL;

  g_message ("Outbound queue: %s failed: %s", e->id, why);
  /* The report first: a crash between the two repeats the report rather
   * than losing it. */
  if (!e->is_report && e->sender[0] != '\0')
    {
      g_autoptr(GBytes) report = build_report (self, e, message, why, refusal, refused_index);
      const char *to[] = { e->sender, NULL };
      g_autofree char *rid = sm_spool_add (self->spool, "", to, report, TRUE, self->max_age_s, &error);
      if (rid == NULL)
        g_warning ("Outbound queue: cannot queue the delivery report for %s: %s", e->id, error->message);
      else
        g_message ("Outbound queue: delivery report %s queued for %s", rid, e->id);
    }
  g_free (e->last_error);
  e->last_error = g_strdup (why);
  e->state = SM_SPOOL_FAILED;
  save (self, e);
  emit (self, SIGNAL_DELIVERY_FAILED, e->id, why, FALSE);
}

static gboolean
stopping (SmRelayWorker *self)
{
  gboolean s;

  g_mutex_lock (&self->lock);
  s = self->stopping;
  g_mutex_unlock (&self->lock);
  return s;
}

static void
set_current (SmRelayWorker *self, const char *id)
{
  g_mutex_lock (&self->lock);
  g_free (self->current_id);
  self->current_id = g_strdup (id);
  g_mutex_unlock (&self->lock);
}

typedef enum { OUTCOME_SENT, OUTCOME_DEFERRED, OUTCOME_FAILED, OUTCOME_CONNECTION_LOST } Outcome;

static Outcome
deliver_one (SmRelayWorker *self, SmSmtpClient *client, SmSpoolEntry *e)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSmtpReply) refusal = NULL;
  g_autoptr(GBytes) message = sm_spool_read_message (self->spool, e->id, &error);
  SmSmtpSendOptions options = { .dsn_envid = e->is_report ? NULL : e->id, .refused_recipient = -1 };

  if (message == NULL)
    {
      /* The file is gone or unreadable: nothing can ever send it. */
      g_autofree char *why = g_strdup_printf (_("The queued message cannot be read: %s"), error->message);
      fail (self, e, NULL, why, NULL, -1);
      return OUTCOME_FAILED;
    }
  if (sm_smtp_client_send_full (client, e->sender, (const char * const *) e->recipients, message, &options,
                                &refusal, self->cancellable, &error))
    {
      g_autoptr(GError) rm_error = NULL;
      if (!sm_spool_remove (self->spool, e->id, &rm_error))
        g_warning ("Outbound queue: %s was delivered but cannot be removed: %s", e->id, rm_error->message);
      g_message ("Outbound queue: %s delivered after %u attempt(s)", e->id, e->attempts);
      return OUTCOME_SENT;
    }
  if (refusal != NULL && refusal->code >= 500)
    {
      g_autofree char *why = g_strdup_printf (_("The provider refused the message: %u %s %s"), refusal->code,
                                              refusal->enhanced ? refusal->enhanced : "5.0.0", refusal->text);
      fail (self, e, message, why, refusal, options.refused_recipient);
      return OUTCOME_FAILED;
    }
  if (refusal != NULL)
    {
      g_autofree char *why = g_strdup_printf (_("The provider deferred the message: %u %s %s"), refusal->code,
                                              refusal->enhanced ? refusal->enhanced : "4.0.0", refusal->text);
      defer (self, e, why);
      return OUTCOME_DEFERRED;
    }
  defer (self, e, error->message);
  return OUTCOME_CONNECTION_LOST;
}

/* ---- the thread -------------------------------------------------------------- */

/* Due entries (IDs, oldest first), and the time (unix ms) of the next one
 * not yet due (G_MAXINT64 if none). */
static GPtrArray *
due_entries (SmRelayWorker *self, gint64 *next)
{
  g_autoptr(GPtrArray) all = sm_spool_list (self->spool);
  GPtrArray *due = g_ptr_array_new_with_free_func (g_free);
  gint64 now_ms = g_get_real_time () / 1000;

  g_mutex_lock (&self->lock);
  if (self->provider_reset)
    self->provider_retry_ms = 0;
  self->provider_reset = FALSE;
  g_mutex_unlock (&self->lock);
  if (now_ms < self->provider_retry_ms)
    now_ms = -1;   /* nothing is due before the provider's turn */
  *next = G_MAXINT64;
  for (guint i = 0; i < all->len; i++)
    {
      SmSpoolEntry *e = all->pdata[i];
      if (e->state != SM_SPOOL_QUEUED)
        continue;
      if (e->next_attempt_ms <= now_ms)
        g_ptr_array_add (due, g_strdup (e->id));
      else
        *next = MIN (*next, MAX (e->next_attempt_ms, self->provider_retry_ms));
    }
  return due;
}


/* One round: every due message over one connection. */
static void
deliver_round (SmRelayWorker *self, GPtrArray *due)
{
  g_autoptr(SmSmtpClient) client = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  guint changed = 0;

  for (guint i = 0; i < due->len && !stopping (self); i++)
    {
      g_autoptr(SmSpoolEntry) e = NULL;
      g_autoptr(GError) error = NULL;

      set_current (self, due->pdata[i]);
      e = sm_spool_lookup (self->spool, due->pdata[i]);
      if (e == NULL || e->state != SM_SPOOL_QUEUED)
        continue;   /* deleted or retried meanwhile */
      changed++;
      if (now > e->expires)
        {
          g_autofree char *why = NULL;
          g_autoptr(GBytes) message = sm_spool_read_message (self->spool, e->id, NULL);
          why = g_strdup_printf (_("Not delivered within %" G_GINT64_FORMAT " hours (%u attempts); the last "
                                   "problem was: %s"),
                                 (e->expires - e->created + 3599) / 3600, e->attempts,
                                 e->last_error ? e->last_error : _("none recorded"));
          fail (self, e, message, why, NULL, -1);
          continue;
        }
      /* "Attempt started", durably, before anything reaches the provider:
       * after a crash this entry is known to be possibly delivered. */
      e->attempts++;
      e->state = SM_SPOOL_SENDING;
      save (self, e);
      if (client == NULL)
        {
          char *password = NULL;
          if (sm_upstream_get_secret (self->config, &password, self->cancellable, &error))
            {
              client = sm_smtp_client_open (self->config, password, self->cancellable, &error);
              sm_keyring_free (password);
            }
          if (client == NULL)
            {
              gboolean provider = !g_error_matches (error, SM_ERROR, SM_ERROR_KEYRING) &&
                                  !g_error_matches (error, SM_ERROR, SM_ERROR_NO_SECRET);
              if (provider && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                emit (self, SIGNAL_UPSTREAM_STATUS, error->message, NULL, FALSE);
              if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                e->attempts--;
              defer (self, e, error->message);
              /* The others are not rewritten: they wait for the provider's
               * next turn (provider_retry_ms), which gates every message. */
              self->provider_failures++;
              self->provider_retry_ms = g_get_real_time () / 1000 +
                                        sm_relay_worker_backoff_ms (self, self->provider_failures);
              break;
            }
          self->provider_failures = 0;
          self->provider_retry_ms = 0;
          emit (self, SIGNAL_UPSTREAM_STATUS, NULL, NULL, TRUE);
        }
      if (deliver_one (self, client, e) == OUTCOME_CONNECTION_LOST)
        {
          if (g_cancellable_is_cancelled (self->cancellable))
            {
              /* Stopping: not a real attempt. */
              g_autoptr(SmSpoolEntry) again = sm_spool_lookup (self->spool, e->id);
              if (again != NULL)
                {
                  again->attempts = again->attempts > 0 ? again->attempts - 1 : 0;
                  again->next_attempt_ms = now * 1000;
                  save (self, again);
                }
            }
          else
            emit (self, SIGNAL_UPSTREAM_STATUS, e->last_error, NULL, FALSE);
          g_clear_pointer (&client, sm_smtp_client_free);
        }
    }
  set_current (self, NULL);
  if (client != NULL)
    sm_smtp_client_quit (client);
  if (changed)
    emit (self, SIGNAL_QUEUE_CHANGED, NULL, NULL, FALSE);
}

/* Messages that were being sent when the proxy stopped (crash, kill -9,
 * power cut) are queued again at once. */
static void
recover_in_flight (SmRelayWorker *self)
{
  g_autoptr(GPtrArray) all = sm_spool_list (self->spool);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  for (guint i = 0; i < all->len; i++)
    {
      SmSpoolEntry *e = all->pdata[i];
      if (e->state != SM_SPOOL_SENDING)
        continue;
      g_warning ("Outbound queue: %s was being sent when SecureMail stopped; sending it again (the provider "
                 "offers no way to ask whether it arrived, so it may arrive twice)", e->id);
      e->state = SM_SPOOL_QUEUED;
      e->next_attempt_ms = now * 1000;
      g_free (e->last_error);
      e->last_error = g_strdup (_("Was being sent when SecureMail stopped; sent again, so it may arrive twice"));
      save (self, e);
    }
}

static gpointer
worker_thread (gpointer user_data)
{
  SmRelayWorker *self = user_data;

  recover_in_flight (self);
  emit (self, SIGNAL_QUEUE_CHANGED, NULL, NULL, FALSE);
  for (;;)
    {
      gint64 next;
      g_autoptr(GPtrArray) due = NULL;

      g_mutex_lock (&self->lock);
      self->kicked = FALSE;
      g_mutex_unlock (&self->lock);
      due = due_entries (self, &next);
      if (due->len > 0)
        {
          deliver_round (self, due);
          if (stopping (self))
            break;
          continue;
        }
      g_mutex_lock (&self->lock);
      while (!self->stopping && !self->kicked)
        {
          gint64 now = g_get_real_time ();
          gint64 until;
          if (next == G_MAXINT64)
            {
              g_cond_wait (&self->cond, &self->lock);
              continue;
            }
          if (next * 1000 <= now)
            break;
          until = g_get_monotonic_time () + (next * 1000 - now);
          if (!g_cond_wait_until (&self->cond, &self->lock, until))
            break;   /* timed out: something is due */
        }
      if (self->stopping)
        {
          g_mutex_unlock (&self->lock);
          break;
        }
      g_mutex_unlock (&self->lock);
    }
  return NULL;
}

void
sm_relay_worker_start (SmRelayWorker *self)
{
  g_return_if_fail (self->thread == NULL);
  self->context = g_main_context_ref_thread_default ();
  self->thread = g_thread_new ("sm-relay", worker_thread, self);
}

void
sm_relay_worker_stop (SmRelayWorker *self)
{
  if (self->thread == NULL)
    return;
  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
  g_cancellable_cancel (self->cancellable);
  g_thread_join (self->thread);
  self->thread = NULL;
}

void
sm_relay_worker_kick (SmRelayWorker *self)
{
  g_mutex_lock (&self->lock);
  self->kicked = TRUE;
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->context != NULL)
    emit (self, SIGNAL_QUEUE_CHANGED, NULL, NULL, FALSE);
}

/* ---- the user's commands ------------------------------------------------------- */

static gboolean
check_not_current (SmRelayWorker *self, const char *id, GError **error)
{
  if (g_strcmp0 (self->current_id, id) == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   _("Message %s is being sent right now; try again in a moment"), id);
      return FALSE;
    }
  return TRUE;
}

gboolean
sm_relay_worker_retry (SmRelayWorker *self, const char *id, GError **error)
{
  g_autoptr(SmSpoolEntry) e = NULL;
  gboolean ok = FALSE;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_mutex_lock (&self->lock);
  if (!check_not_current (self, id, error))
    goto out;
  e = sm_spool_lookup (self->spool, id);
  if (e == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("No message %s in the outbound queue"), id);
      goto out;
    }
  e->state = SM_SPOOL_QUEUED;
  e->next_attempt_ms = now * 1000;
  e->expires = now + self->max_age_s;
  self->provider_reset = TRUE;   /* the user says: try the provider now */
  ok = sm_spool_update (self->spool, e, error);
out:
  g_mutex_unlock (&self->lock);
  if (ok)
    sm_relay_worker_kick (self);
  return ok;
}

gboolean
sm_relay_worker_delete (SmRelayWorker *self, const char *id, GError **error)
{
  gboolean ok = FALSE;

  g_mutex_lock (&self->lock);
  if (check_not_current (self, id, error))
    ok = sm_spool_remove (self->spool, id, error);
  g_mutex_unlock (&self->lock);
  if (ok)
    {
      g_message ("Outbound queue: %s deleted by the user", id);
      emit (self, SIGNAL_QUEUE_CHANGED, NULL, NULL, FALSE);
    }
  return ok;
}
