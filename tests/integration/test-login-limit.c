/* test-login-limit.c: local login rate limiting (issue 7) with the real
 * proxy, across sessions and across IMAP and SMTP.
 *
 * The proxy runs with SECUREMAIL_TEST_LOGIN_SCALE (sm-login-limiter.h) so
 * that delays and the lockout take milliseconds and seconds.  Wrong local
 * passwords over several IMAP and SMTP sessions from 127.0.0.1 add up:
 * the answers come later each time, and after
 * SM_LOGIN_LIMITER_LOCKOUT_FAILURES even the right password is refused
 * (IMAP NO [UNAVAILABLE], SMTP 454 4.7.0, both saying when to try again);
 * after the lockout the right password works and the count starts over.
 * The proxy's log names the address and the count, never what was typed.
 */
#include <glib.h>
#include <string.h>

#include "sm-test-harness.h"

#include "../../proxy/sm-login-limiter.h"

#define SCALE        0.02                 /* 1.5 s -> 30 ms; lockout 300 s -> 6 s */
#define SCALE_TEXT   "0.02"
#define WRONG        "wrong-guess-4711"   /* searched for in the log */
#define CLOCK_SLACK_MS 20

typedef struct {
  SmTestProxy *proxy;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;

  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  g_setenv (SM_LOGIN_LIMITER_SCALE_ENV, SCALE_TEXT, TRUE);   /* inherited by the proxy */
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), NULL);
  g_unsetenv (SM_LOGIN_LIMITER_SCALE_ENV);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
}

/* One IMAP LOGIN on a new connection; returns the tagged answer and, in
 * *elapsed_ms, how long it took. */
static char *
imap_login (SmTestProxy *p, const char *password, gint64 *elapsed_ms)
{
  g_autoptr(SmTestClient) c = sm_test_client_connect (p->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);
  gint64 t0 = g_get_monotonic_time ();
  char *line;

  g_assert_nonnull (greeting);
  line = sm_test_imap_login (c, p, "a1", password);
  if (elapsed_ms)
    *elapsed_ms = (g_get_monotonic_time () - t0) / 1000;
  return line;
}

/* One SMTP AUTH PLAIN on a new connection, expecting @prefix. */
static char *
smtp_auth (SmTestProxy *p, const char *password, const char *prefix, gint64 *elapsed_ms)
{
  g_autoptr(SmTestClient) c = sm_test_smtp_open (p, FALSE);
  g_autofree char *b64 = sm_test_sasl_plain (p->address, password);
  g_autofree char *cmd = g_strdup_printf ("AUTH PLAIN %s", b64);
  gint64 t0 = g_get_monotonic_time ();
  char *line = sm_test_smtp_command (c, cmd, prefix);

  if (elapsed_ms)
    *elapsed_ms = (g_get_monotonic_time () - t0) / 1000;
  return line;
}

/* The delay of the @n-th failure in a row, scaled, as the limiter computes it. */
static gint64
expected_delay_ms (guint n)
{
  guint d = SM_LOGIN_LIMITER_BASE_DELAY_MS;
  for (guint i = 1; i < n && d < SM_LOGIN_LIMITER_MAX_DELAY_MS; i++)
    d *= 2;
  return (gint64) (MIN (d, SM_LOGIN_LIMITER_MAX_DELAY_MS) * SCALE);
}

static void
test_across_sessions_and_protocols (Fixture *f, gconstpointer data)
{
  g_autofree char *log = NULL;
  g_autofree char *line = NULL;
  gint64 ms;

  if (f->proxy == NULL)
    return;
  /* Failures 1 .. LOCKOUT-1, each on a new connection, IMAP and SMTP in
   * turn: one count for the address, and each answer waits longer. */
  for (guint n = 1; n < SM_LOGIN_LIMITER_LOCKOUT_FAILURES; n++)
    {
      g_clear_pointer (&line, g_free);
      if (n % 2)
        {
          line = imap_login (f->proxy, WRONG, &ms);
          g_assert_true (g_str_has_prefix (line, "a1 NO [AUTHENTICATIONFAILED]"));
        }
      else
        line = smtp_auth (f->proxy, WRONG, "535 5.7.8", &ms);
      g_assert_cmpint (ms, >=, expected_delay_ms (n) - CLOCK_SLACK_MS);
    }
  /* The last one locks the address out ... */
  g_clear_pointer (&line, g_free);
  line = imap_login (f->proxy, WRONG, NULL);
  g_assert_true (g_str_has_prefix (line, "a1 NO [AUTHENTICATIONFAILED]"));
  /* ... so the right password is refused now, in both protocols, at once. */
  g_clear_pointer (&line, g_free);
  line = imap_login (f->proxy, f->proxy->local_password, &ms);
  g_assert_true (g_str_has_prefix (line, "a1 NO [UNAVAILABLE]"));
  g_assert_nonnull (strstr (line, "Too many failed logins"));
  g_assert_nonnull (strstr (line, "seconds"));
  g_assert_cmpint (ms, <, 1000);
  g_clear_pointer (&line, g_free);
  line = smtp_auth (f->proxy, f->proxy->local_password, "454 4.7.0", NULL);
  g_assert_nonnull (strstr (line, "Too many failed logins"));

  /* After the lockout the right password works, and the count is reset:
   * the next failure waits the base delay only. */
  g_usleep ((gulong) (SM_LOGIN_LIMITER_LOCKOUT_S * SCALE * G_USEC_PER_SEC) + 200 * 1000);
  g_clear_pointer (&line, g_free);
  line = imap_login (f->proxy, f->proxy->local_password, NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  line = smtp_auth (f->proxy, WRONG, "535 5.7.8", &ms);
  g_assert_cmpint (ms, <, expected_delay_ms (3));

  /* What the log says: the address and the count, not what was typed. */
  g_assert_true (g_file_get_contents (f->proxy->log_path, &log, NULL, NULL));
  g_assert_nonnull (strstr (log, "IMAP local login failed from 127.0.0.1 (1 in a row)"));
  g_assert_nonnull (strstr (log, "SMTP local login failed from 127.0.0.1 (2 in a row)"));
  g_assert_nonnull (strstr (log, "logins from there are refused"));
  g_assert_null (strstr (log, WRONG));
  g_assert_null (strstr (log, f->proxy->local_password));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/login-limit/across-sessions-and-protocols", Fixture, NULL, fixture_setup,
              test_across_sessions_and_protocols, fixture_teardown);
  return g_test_run ();
}
