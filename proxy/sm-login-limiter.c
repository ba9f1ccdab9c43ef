/* sm-login-limiter.c: per-address delays and lockouts for local logins. */
#include "config.h"

#include "sm-login-limiter.h"

typedef struct {
  guint failures;            /* in a row, since the last success or forgetting */
  gint64 last_failure_us;
  gint64 locked_until_us;    /* 0 = not locked out */
} Record;

struct _SmLoginLimiter {
  GObject parent_instance;
  GHashTable *clients;       /* address -> Record* */
  SmLoginLimiterClock clock;
  gpointer clock_data;
  double scale;              /* tests: see SM_LOGIN_LIMITER_SCALE_ENV */
};

G_DEFINE_FINAL_TYPE (SmLoginLimiter, sm_login_limiter, G_TYPE_OBJECT)

static gint64
monotonic_clock (gpointer user_data)
{
  return g_get_monotonic_time ();
}

static void
sm_login_limiter_finalize (GObject *object)
{
  SmLoginLimiter *self = SM_LOGIN_LIMITER (object);

  g_hash_table_unref (self->clients);
  G_OBJECT_CLASS (sm_login_limiter_parent_class)->finalize (object);
}

static void
sm_login_limiter_class_init (SmLoginLimiterClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_login_limiter_finalize;
}

static void
sm_login_limiter_init (SmLoginLimiter *self)
{
  self->clients = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->clock = monotonic_clock;
  self->scale = 1.0;
}

SmLoginLimiter *
sm_login_limiter_new (void)
{
  return g_object_new (SM_TYPE_LOGIN_LIMITER, NULL);
}

void
sm_login_limiter_set_clock (SmLoginLimiter *self, SmLoginLimiterClock clock, gpointer user_data)
{
  g_return_if_fail (SM_IS_LOGIN_LIMITER (self));
  self->clock = clock ? clock : monotonic_clock;
  self->clock_data = user_data;
}

void
sm_login_limiter_set_scale (SmLoginLimiter *self, double scale)
{
  g_return_if_fail (SM_IS_LOGIN_LIMITER (self));
  self->scale = scale > 0.0 && scale <= 1.0 ? scale : 1.0;
}

char *
sm_login_limiter_client_of (GSocketConnection *connection)
{
  g_autoptr(GSocketAddress) peer = g_socket_connection_get_remote_address (connection, NULL);

  if (peer == NULL || !G_IS_INET_SOCKET_ADDRESS (peer))
    return g_strdup ("unknown");
  return g_inet_address_to_string (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (peer)));
}

/* A record whose last failure is older than SM_LOGIN_LIMITER_FORGET_S, and
 * whose lockout is over, holds nothing worth keeping. */
static gboolean
stale (const Record *r, gint64 now)
{
  return now - r->last_failure_us > (gint64) SM_LOGIN_LIMITER_FORGET_S * G_USEC_PER_SEC &&
         now >= r->locked_until_us;
}

/* Keeps the table under SM_LOGIN_LIMITER_MAX_CLIENTS: stale records first,
 * then the one with the oldest failure (so a flood of new addresses cannot
 * grow memory, at worst it makes the limiter forget the oldest). */
static void
make_room (SmLoginLimiter *self, gint64 now)
{
  GHashTableIter it;
  gpointer key, value;
  const char *oldest = NULL;
  gint64 oldest_us = G_MAXINT64;

  if (g_hash_table_size (self->clients) < SM_LOGIN_LIMITER_MAX_CLIENTS)
    return;
  g_hash_table_iter_init (&it, self->clients);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (stale (value, now))
      g_hash_table_iter_remove (&it);
  if (g_hash_table_size (self->clients) < SM_LOGIN_LIMITER_MAX_CLIENTS)
    return;
  g_hash_table_iter_init (&it, self->clients);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (((Record *) value)->last_failure_us < oldest_us)
      {
        oldest_us = ((Record *) value)->last_failure_us;
        oldest = key;
      }
  if (oldest != NULL)
    g_hash_table_remove (self->clients, oldest);
}

guint
sm_login_limiter_locked_for (SmLoginLimiter *self, const char *client)
{
  Record *r;
  gint64 now;

  g_return_val_if_fail (SM_IS_LOGIN_LIMITER (self), 0);
  r = g_hash_table_lookup (self->clients, client);
  now = self->clock (self->clock_data);
  if (r == NULL || now >= r->locked_until_us)
    return 0;
  return (guint) ((r->locked_until_us - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
}

guint
sm_login_limiter_failed (SmLoginLimiter *self, const char *client, const char *protocol)
{
  gint64 now;
  Record *r;
  guint delay_ms = SM_LOGIN_LIMITER_BASE_DELAY_MS;

  g_return_val_if_fail (SM_IS_LOGIN_LIMITER (self), SM_LOGIN_LIMITER_BASE_DELAY_MS);
  now = self->clock (self->clock_data);
  r = g_hash_table_lookup (self->clients, client);
  if (r != NULL && stale (r, now))
    {
      r->failures = 0;
      r->locked_until_us = 0;
    }
  if (r == NULL)
    {
      make_room (self, now);
      r = g_new0 (Record, 1);
      g_hash_table_insert (self->clients, g_strdup (client), r);
    }
  r->failures++;
  r->last_failure_us = now;
  for (guint i = 1; i < r->failures && delay_ms < SM_LOGIN_LIMITER_MAX_DELAY_MS; i++)
    delay_ms *= 2;
  delay_ms = (guint) (MIN (delay_ms, SM_LOGIN_LIMITER_MAX_DELAY_MS) * self->scale);

  /* Every further failure after the lockout ends locks again at once. */
  if (r->failures >= SM_LOGIN_LIMITER_LOCKOUT_FAILURES)
    {
      gint64 lockout_us = (gint64) (SM_LOGIN_LIMITER_LOCKOUT_S * (double) G_USEC_PER_SEC * self->scale);
      r->locked_until_us = now + lockout_us;
      g_message ("%s local login failed from %s (%u in a row); logins from there are refused for %" G_GINT64_FORMAT " s",
                 protocol, client, r->failures, (lockout_us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
    }
  else
    g_message ("%s local login failed from %s (%u in a row); answering after %u ms", protocol, client,
               r->failures, delay_ms);
  return delay_ms;
}

void
sm_login_limiter_succeeded (SmLoginLimiter *self, const char *client)
{
  g_return_if_fail (SM_IS_LOGIN_LIMITER (self));
  g_hash_table_remove (self->clients, client);
}
