/* test-login-limiter.c: proxy/sm-login-limiter.h with a fake clock.
 *
 * The delay schedule (base, doubling, capped), the lockout after
 * SM_LOGIN_LIMITER_LOCKOUT_FAILURES failures in a row and its end, reset on
 * success, separate addresses, forgetting after SM_LOGIN_LIMITER_FORGET_S,
 * the bound on remembered addresses, and log lines that carry the address
 * but nothing a user typed.
 */
#include <string.h>

#include "sm-login-limiter.h"

typedef struct {
  SmLoginLimiter *limiter;
  gint64 now_us;
} Fixture;

static gint64
fake_clock (gpointer user_data)
{
  return ((Fixture *) user_data)->now_us;
}

static void
advance_s (Fixture *f, gint64 seconds)
{
  f->now_us += seconds * G_USEC_PER_SEC;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->now_us = 1000 * G_USEC_PER_SEC;
  f->limiter = sm_login_limiter_new ();
  sm_login_limiter_set_clock (f->limiter, fake_clock, f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->limiter);
}

static void
test_delays_grow (Fixture *f, gconstpointer data)
{
  guint expected = SM_LOGIN_LIMITER_BASE_DELAY_MS;

  for (guint i = 1; i < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; i++)
    {
      guint got = sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP");
      g_assert_cmpuint (got, ==, MIN (expected, SM_LOGIN_LIMITER_MAX_DELAY_MS));
      g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, 0);
      expected *= 2;
      advance_s (f, 1);
    }
  /* The cap is reached before the lockout, or the constants are wrong. */
  g_assert_cmpuint (expected / 2, >=, SM_LOGIN_LIMITER_MAX_DELAY_MS);
}

static void
test_lockout_and_its_end (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; i++)
    sm_login_limiter_failed (f->limiter, "127.0.0.1", i % 2 ? "IMAP" : "SMTP");
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, SM_LOGIN_LIMITER_LOCKOUT_S);
  advance_s (f, SM_LOGIN_LIMITER_LOCKOUT_S - 1);
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, 1);
  advance_s (f, 1);
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, 0);
  /* One more failure right after locks out again at once. */
  sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP");
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, SM_LOGIN_LIMITER_LOCKOUT_S);
}

static void
test_success_resets (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i + 1 < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; i++)
    sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP");
  sm_login_limiter_succeeded (f->limiter, "127.0.0.1");
  g_assert_cmpuint (sm_login_limiter_failed (f->limiter, "127.0.0.1", "SMTP"), ==, SM_LOGIN_LIMITER_BASE_DELAY_MS);
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "127.0.0.1"), ==, 0);
}

static void
test_addresses_apart (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; i++)
    sm_login_limiter_failed (f->limiter, "192.0.2.1", "IMAP");
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "192.0.2.1"), >, 0);
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "192.0.2.2"), ==, 0);
  g_assert_cmpuint (sm_login_limiter_failed (f->limiter, "192.0.2.2", "IMAP"), ==, SM_LOGIN_LIMITER_BASE_DELAY_MS);
}

static void
test_forgets_old_failures (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < 3; i++)
    sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP");
  advance_s (f, SM_LOGIN_LIMITER_FORGET_S + 1);
  g_assert_cmpuint (sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP"), ==, SM_LOGIN_LIMITER_BASE_DELAY_MS);
}

/* A flood of addresses keeps at most SM_LOGIN_LIMITER_MAX_CLIENTS; the
 * newest survive, the oldest are forgotten first. */
static void
test_bounded (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < SM_LOGIN_LIMITER_MAX_CLIENTS + 10; i++)
    {
      g_autofree char *addr = g_strdup_printf ("10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
      for (guint j = 0; j < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; j++)
        sm_login_limiter_failed (f->limiter, addr, "SMTP");
      f->now_us++;
    }
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "10.0.0.0"), ==, 0);
  g_assert_cmpuint (sm_login_limiter_locked_for (f->limiter, "10.0.4.9"), >, 0);
}

/* The log line names protocol, address and count, and is the same whatever
 * was typed: the limiter is never given the user name or password. */
static void
test_log_line (Fixture *f, gconstpointer data)
{
  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "IMAP local login failed from 127.0.0.1 (1 in a row)*");
  sm_login_limiter_failed (f->limiter, "127.0.0.1", "IMAP");
  g_test_assert_expected_messages ();
}

static void
test_client_of (void)
{
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) out = NULL;
  g_autoptr(GSocketConnection) in = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *who = NULL;
  guint16 port = g_socket_listener_add_any_inet_port (listener, NULL, &error);

  g_assert_no_error (error);
  out = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  in = g_socket_listener_accept (listener, NULL, NULL, &error);
  g_assert_no_error (error);
  who = sm_login_limiter_client_of (in);
  /* No port: every new connection of one client has another. */
  g_assert_cmpstr (who, ==, "127.0.0.1");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/login-limiter/delays-grow", Fixture, NULL, fixture_setup, test_delays_grow, fixture_teardown);
  g_test_add ("/proxy/login-limiter/lockout", Fixture, NULL, fixture_setup, test_lockout_and_its_end,
              fixture_teardown);
  g_test_add ("/proxy/login-limiter/success-resets", Fixture, NULL, fixture_setup, test_success_resets,
              fixture_teardown);
  g_test_add ("/proxy/login-limiter/addresses-apart", Fixture, NULL, fixture_setup, test_addresses_apart,
              fixture_teardown);
  g_test_add ("/proxy/login-limiter/forgets", Fixture, NULL, fixture_setup, test_forgets_old_failures,
              fixture_teardown);
  g_test_add ("/proxy/login-limiter/bounded", Fixture, NULL, fixture_setup, test_bounded, fixture_teardown);
  g_test_add ("/proxy/login-limiter/log-line", Fixture, NULL, fixture_setup, test_log_line, fixture_teardown);
  g_test_add_func ("/proxy/login-limiter/client-of", test_client_of);
  return g_test_run ();
}
