/* test-lock.c: the unlock gate (issue 7) with the real proxy, CLI, Postfix
 * and Dovecot.
 *
 * - `securemail lock`: the next MAIL FROM gets 454 4.7.0 saying to unlock,
 *   `securemail status` says locked; `securemail unlock` (keyring): 250 and
 *   the message is delivered.
 * - [security] start_locked = on: the proxy starts locked and refuses mail
 *   until unlocked.
 * - A message locked between MAIL and DATA is refused at DATA, not lost.
 * - [security] idle_lock (scaled down for the test): SMTP commands keep
 *   the gate open; without them it closes by itself.
 * - `securemail mark-personal MAILBOX UID` sets $Personal on a message
 *   APPENDed straight to Dovecot, seen with a direct FETCH FLAGS; an unknown
 *   UID and a locked proxy are refused with a clear line.
 */
#include <glib.h>
#include <string.h>

#include "sm-test-harness.h"

#define DELIVERY_TIMEOUT_MS 60000
#define START_LOCKED_EXTRA  "[security]\nstart_locked = on\n"
#define IDLE_LOCK_EXTRA     "[security]\nidle_lock = 1\n"
#define IDLE_SCALE          "0.02"   /* one minute becomes 1.2 s */

typedef struct {
  SmTestProxy *proxy;
  char *marker;
} Fixture;

static void
setup_with (Fixture *f, const char *extra)
{
  g_autofree char *upstream = NULL;
  g_autofree char *uuid = g_uuid_string_random ();

  f->marker = g_strdup_printf ("lock-%s", uuid);
  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), extra);
  sm_test_proxy_wait_dbus (f->proxy);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  setup_with (f, NULL);
}

static void
fixture_setup_start_locked (Fixture *f, gconstpointer data)
{
  setup_with (f, START_LOCKED_EXTRA);
}

static void
fixture_setup_idle_lock (Fixture *f, gconstpointer data)
{
  g_setenv ("SECUREMAIL_TEST_IDLE_SCALE", IDLE_SCALE, TRUE);   /* inherited by the proxy */
  setup_with (f, IDLE_LOCK_EXTRA);
  g_unsetenv ("SECUREMAIL_TEST_IDLE_SCALE");
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  g_free (f->marker);
}

static gboolean
status_locked (Fixture *f)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int rc = sm_test_cli (f->proxy, NULL, &out, &err, "status", "--json", NULL);

  g_assert_cmpint (rc, ==, 0);
  if (strstr (out, "\"locked\" : true") != NULL)
    return TRUE;
  g_assert_nonnull (strstr (out, "\"locked\" : false"));
  return FALSE;
}

static void
cli_ok (Fixture *f, const char *input, const char *cmd, const char *arg)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int rc = sm_test_cli (f->proxy, input, &out, &err, cmd, arg, NULL);

  if (rc != 0)
    g_error ("securemail %s failed (%d): %s", cmd, rc, err);
}

/* MAIL FROM on a logged-in session; returns the reply line. */
static char *
mail_from (SmTestClient *c)
{
  sm_test_client_send (c, "MAIL FROM:<alice@example.test>\r\n");
  return sm_test_smtp_reply (c, NULL);
}

static void
send_and_expect_delivery (Fixture *f, SmTestClient *c)
{
  g_autofree char *mail = mail_from (c);
  g_autofree char *rcpt = NULL;
  g_autofree char *data = NULL;
  g_autofree char *done = NULL;
  g_autofree char *msg = g_strdup_printf ("From: alice@example.test\r\nTo: bob@example.test\r\n"
                                          "Subject: %s\r\n\r\nAfter unlocking.\r\n", f->marker);

  g_assert_true (g_str_has_prefix (mail, "250"));
  rcpt = sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250");
  data = sm_test_smtp_command (c, "DATA", "354");
  done = sm_test_smtp_data (c, msg);
  g_assert_nonnull (done);
  g_assert_true (g_str_has_prefix (done, "250"));
  g_assert_true (sm_test_maildir_wait ("bob", f->marker, DELIVERY_TIMEOUT_MS));
}

static void
test_lock_unlock (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *refused = NULL;

  if (f->proxy == NULL)
    return;
  g_assert_false (status_locked (f));
  cli_ok (f, NULL, "lock", NULL);
  g_assert_true (status_locked (f));

  c = sm_test_smtp_open (f->proxy, TRUE);
  refused = mail_from (c);
  g_assert_nonnull (refused);
  g_assert_true (g_str_has_prefix (refused, "454 4.7.0 "));
  g_assert_nonnull (strstr (refused, "unlock"));

  /* Not a terminal and no --stdin: the passphrases come from the keyring. */
  cli_ok (f, NULL, "unlock", NULL);
  g_assert_false (status_locked (f));
  send_and_expect_delivery (f, c);
}

static void
test_start_locked (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *refused = NULL;

  if (f->proxy == NULL)
    return;
  g_assert_true (status_locked (f));
  c = sm_test_smtp_open (f->proxy, TRUE);
  refused = mail_from (c);
  g_assert_true (g_str_has_prefix (refused, "454 4.7.0 "));
  /* An empty line on stdin: Enter alone, the keyring. */
  cli_ok (f, "\n", "unlock", "--stdin");
  g_assert_false (status_locked (f));
  send_and_expect_delivery (f, c);
}

static void
test_locked_before_data (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *mail = NULL;
  g_autofree char *rcpt = NULL;
  g_autofree char *refused = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  mail = mail_from (c);
  g_assert_true (g_str_has_prefix (mail, "250"));
  rcpt = sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250");
  cli_ok (f, NULL, "lock", NULL);
  refused = sm_test_smtp_command (c, "DATA", "454 4.7.0");
  cli_ok (f, NULL, "unlock", NULL);
  /* The transaction was reset: the client starts over. */
  send_and_expect_delivery (f, c);
}

/* [security] idle_lock: activity keeps the gate open, silence closes it. */
static void
test_idle_lock (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *refused = NULL;
  gint64 deadline;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  /* A command every 0.3 s for 3 s (more than twice the scaled limit). */
  for (int i = 0; i < 10; i++)
    {
      g_autofree char *ok = sm_test_smtp_command (c, "NOOP", "250");
      g_usleep (300 * 1000);
    }
  g_assert_false (status_locked (f));
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!status_locked (f))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (200 * 1000);
    }
  refused = mail_from (c);
  g_assert_true (g_str_has_prefix (refused, "454 4.7.0 "));
}

/* ---- [PERSONAL] marking ------------------------------------------------------- */

static void
test_mark_personal (Fixture *f, gconstpointer data)
{
  g_autofree char *uid = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *err3 = NULL;

  if (f->proxy == NULL)
    return;
  uid = sm_test_direct_append ("alice", f->marker);
  before = sm_test_direct_flags ("alice", uid);
  g_assert_null (strstr (before, "$Personal"));

  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "mark-personal", "INBOX", uid, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "[PERSONAL]"));
  after = sm_test_direct_flags ("alice", uid);
  g_assert_nonnull (strstr (after, "$Personal"));

  /* A UID that does not exist: refused, saying so. */
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, NULL, &err2, "mark-personal", "INBOX", "4000000000", NULL), ==, 1);
  g_assert_nonnull (strstr (err2, "4000000000"));
  g_assert_nonnull (strstr (err2, "not marked"));

  /* Locked: nothing goes to the provider. */
  cli_ok (f, NULL, "lock", NULL);
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, NULL, &err3, "mark-personal", "INBOX", uid, NULL), ==, 1);
  g_assert_nonnull (strstr (err3, "locked"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/lock/lock-454-unlock-250", Fixture, NULL, fixture_setup, test_lock_unlock, fixture_teardown);
  g_test_add ("/proxy/lock/start-locked", Fixture, NULL, fixture_setup_start_locked, test_start_locked,
              fixture_teardown);
  g_test_add ("/proxy/lock/locked-before-data", Fixture, NULL, fixture_setup, test_locked_before_data,
              fixture_teardown);
  g_test_add ("/proxy/lock/idle-lock", Fixture, NULL, fixture_setup_idle_lock, test_idle_lock, fixture_teardown);
  g_test_add ("/proxy/personal/mark-sets-keyword-upstream", Fixture, NULL, fixture_setup, test_mark_personal,
              fixture_teardown);
  return g_test_run ();
}
