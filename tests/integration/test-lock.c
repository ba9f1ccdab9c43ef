/* test-lock.c: the unlock gate (issue 7) with the real proxy, CLI, Postfix
 * and Dovecot.
 *
 * - `securemail lock`: the next MAIL FROM gets 454 4.7.0 saying to unlock,
 *   `securemail status` says locked; `securemail unlock` (keyring): 250 and
 *   the message is delivered.
 * - Started unlocked (the policy's auto-unlock) from a gpg-agent without
 *   passphrases: the proxy presets the keyring's by itself, before any
 *   client connects, so the first FETCH does not wait for it; locked right
 *   after such a start, the agent keeps none of them.
 * - No policy at all (the default): the proxy starts locked, LockReason
 *   "start", and refuses mail until unlocked.  Every other fixture's policy
 *   allows auto-unlock with the login keyring (SM_TEST_DEFAULT_POLICY).
 * - [security] start_locked = on where the policy allows auto-unlock: the
 *   user's choice wins, the proxy starts locked.
 * - A message locked between MAIL and DATA is refused at DATA, not lost.
 * - `securemail unlock --stdin` with a typed passphrase, for a key whose
 *   passphrase is not in the keyring: a wrong one is refused and the gate
 *   stays closed; the right one is preset, so gpg signs with the key without
 *   asking (and after `lock` it cannot).
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
#define PREPARE_TIMEOUT_S   60       /* the key store opened after start */

typedef struct {
  SmTestProxy *proxy;
  char *marker;
} Fixture;

static void
setup_with_policy (Fixture *f, const char *extra, const char *policy)
{
  g_autofree char *upstream = NULL;
  g_autofree char *uuid = g_uuid_string_random ();

  f->marker = g_strdup_printf ("lock-%s", uuid);
  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start_with_policy ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"),
                                              extra, policy);
  sm_test_proxy_wait_dbus (f->proxy);
}

static void
setup_with (Fixture *f, const char *extra)
{
  setup_with_policy (f, extra, SM_TEST_DEFAULT_POLICY);
}

static void
fixture_setup_no_policy (Fixture *f, gconstpointer data)
{
  setup_with_policy (f, NULL, NULL);
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
  g_free (sm_test_cli_ok (f->proxy, input, cmd, arg, NULL));
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

/* The default: no administrator allowed auto-unlock, so the proxy starts
 * locked (issue 7) and says why over D-Bus. */
static void
test_start_locked_by_default (Fixture *f, gconstpointer data)
{
  g_autofree char *reason = NULL;
  const char *argv[] = { "gdbus", "call", "--session", "--dest", "org.securemail.Proxy", "--object-path",
                         "/org/securemail/Proxy", "--method", "org.freedesktop.DBus.Properties.Get",
                         "org.securemail.Proxy1", "LockReason", NULL };

  if (f->proxy == NULL)
    return;
  g_assert_cmpint (sm_test_run (argv, NULL, NULL, &reason, NULL), ==, 0);
  g_assert_cmpstr (reason, ==, "(<'start'>,)\n");
  test_start_locked (f, data);
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

/* ---- a typed passphrase ------------------------------------------------------ */

#define TYPED_PASSPHRASE "typed-secret-42"

static char *
gpg_in (const char *home, const char *input, ...) G_GNUC_NULL_TERMINATED;

/* Runs gpg --homedir @home --batch with the arguments; fails the test when
 * gpg fails.  Returns its stdout. */
static char *
gpg_in (const char *home, const char *input, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  va_list ap;
  int rc;

  g_ptr_array_add (argv, (gpointer) "gpg");
  g_ptr_array_add (argv, (gpointer) "--homedir");
  g_ptr_array_add (argv, (gpointer) home);
  g_ptr_array_add (argv, (gpointer) "--batch");
  va_start (ap, input);
  for (const char *a = va_arg (ap, const char *); a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  rc = sm_test_run ((const char * const *) argv->pdata, NULL, input, &out, &err);
  if (rc != 0)
    g_error ("gpg failed (%d): %s", rc, err);
  return g_steal_pointer (&out);
}

/* The first field @n of the colon listing's first @record line. */
static char *
colon_field (const char *listing, const char *record, guint n)
{
  g_auto(GStrv) lines = g_strsplit (listing, "\n", -1);

  for (guint i = 0; lines[i]; i++)
    if (g_str_has_prefix (lines[i], record))
      {
        g_auto(GStrv) fields = g_strsplit (lines[i], ":", -1);
        g_assert_cmpuint (g_strv_length (fields), >, n);
        return g_strdup (fields[n]);
      }
  g_error ("no %s line in the key listing", record);
  return NULL;
}

/* Whether the proxy's gpg-agent signs with @fpr without asking. */
static gboolean
agent_can_sign (Fixture *f, const char *fpr)
{
  g_autofree char *home = g_build_filename (f->proxy->data_home, "securemail", "gnupg", NULL);
  /* The signature goes to stdout, never to a path: gpg run as root replaces
   * an output path it is given, even /dev/null. */
  const char *argv[] = { "gpg", "--homedir", home, "--batch", "--pinentry-mode", "error", "-u", fpr,
                         "--armor", "--detach-sign", NULL };
  g_autofree char *out = NULL;

  return sm_test_run (argv, NULL, "probe", &out, NULL) == 0;
}

/* Stops the proxy, has gpg-agent forget every passphrase (@fpr's key then
 * cannot sign) and starts the proxy again, logging to @log_name. */
static void
restart_with_empty_agent (Fixture *f, const char *store, const char *fpr, const char *log_name)
{
  const char *reload[] = { "gpgconf", "--homedir", store, "--reload", "gpg-agent", NULL };

  sm_test_proxy_stop (f->proxy);
  sm_test_must_run (reload, NULL);
  g_assert_false (agent_can_sign (f, fpr));
  sm_test_proxy_restart (f->proxy, log_name);
  sm_test_proxy_wait_dbus (f->proxy);
}

/* Started unlocked (the policy allows auto-unlock): the proxy hands the
 * keyring's passphrases to gpg-agent by itself, before any client asks
 * (sm_secure_fetch_prepare()), so the first FETCH does not wait for it. */
static void
test_auto_unlock_prepares (Fixture *f, gconstpointer data)
{
  g_autofree char *store = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *fpr = NULL;
  gint64 deadline;

  if (f->proxy == NULL)
    return;
  store = g_build_filename (f->proxy->data_home, "securemail", "gnupg", NULL);
  listing = gpg_in (store, NULL, "--with-colons", "--list-secret-keys", NULL);
  fpr = colon_field (listing, "fpr:", 9);
  /* Making the key left its passphrase in gpg-agent: start again from an
   * agent that has none, and no client at all. */
  restart_with_empty_agent (f, store, fpr, "proxy-2.log");
  g_assert_false (status_locked (f));
  deadline = g_get_monotonic_time () + PREPARE_TIMEOUT_S * G_USEC_PER_SEC;
  while (!agent_can_sign (f, fpr))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (200 * 1000);
    }

  /* Locked at once after such a start, while the store is being opened:
   * what it hands to gpg-agent after the lock does not stay there. */
  restart_with_empty_agent (f, store, fpr, "proxy-3.log");
  cli_ok (f, NULL, "lock", NULL);
  deadline = g_get_monotonic_time () + PREPARE_TIMEOUT_S * G_USEC_PER_SEC;
  for (;;)
    {
      g_autofree char *log = NULL;

      g_assert_true (g_file_get_contents (f->proxy->log_path, &log, NULL, NULL));
      if (strstr (log, "The key store for incoming mail is open") != NULL)
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (100 * 1000);
    }
  g_assert_true (status_locked (f));
  g_assert_false (agent_can_sign (f, fpr));
}

static void
test_unlock_typed (Fixture *f, gconstpointer data)
{
  g_autofree char *sender = NULL;
  g_autofree char *conf = NULL;
  g_autofree char *store = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *armored = NULL;
  g_autofree char *fpr = NULL;
  g_autofree char *input = g_strdup_printf ("%s\n", TYPED_PASSPHRASE);
  g_autofree char *err2 = NULL;

  if (f->proxy == NULL)
    return;
  /* A key made elsewhere with a passphrase the user knows. */
  sender = g_build_filename (f->proxy->dir, "sender-gnupg", NULL);
  g_assert_cmpint (g_mkdir_with_parents (sender, 0700), ==, 0);
  conf = g_build_filename (sender, "gpg-agent.conf", NULL);
  g_assert_true (g_file_set_contents (conf, "s2k-count 65536\n", -1, NULL));
  g_free (gpg_in (sender, NULL, "--pinentry-mode", "loopback", "--passphrase", TYPED_PASSPHRASE, "--quick-gen-key",
                  "Alice Typed <alice@example.test>", "future-default", "default", "never", NULL));
  listing = gpg_in (sender, NULL, "--with-colons", "--with-keygrip", "--list-secret-keys", NULL);
  fpr = colon_field (listing, "fpr:", 9);
  armored = gpg_in (sender, NULL, "--pinentry-mode", "loopback", "--passphrase", TYPED_PASSPHRASE, "--armor",
                    "--export-secret-keys", fpr, NULL);
  {
    const char *kill[] = { "gpgconf", "--homedir", sender, "--kill", "all", NULL };
    sm_test_run (kill, NULL, NULL, NULL, NULL);
  }

  /* In the store under the typed passphrase, with no keyring item: only the
   * user knows it. `keys import` now replaces an imported key's passphrase
   * by a generated one in the keyring (certstore/README.md), so this is a
   * key imported by an older version whose keyring item is gone. */
  store = g_build_filename (f->proxy->data_home, "securemail", "gnupg", NULL);
  g_free (gpg_in (store, armored, "--pinentry-mode", "loopback", "--passphrase", TYPED_PASSPHRASE, "--import", NULL));
  cli_ok (f, NULL, "lock", NULL);
  g_assert_false (agent_can_sign (f, fpr));

  g_assert_cmpint (sm_test_cli (f->proxy, "not the passphrase\n", NULL, &err2, "unlock", "--stdin", NULL), ==, 1);
  g_assert_nonnull (strstr (err2, "passphrase is not right"));
  g_assert_nonnull (strstr (err2, "stays locked"));
  g_assert_true (status_locked (f));
  g_assert_false (agent_can_sign (f, fpr));

  cli_ok (f, input, "unlock", "--stdin");
  g_assert_false (status_locked (f));
  g_assert_true (agent_can_sign (f, fpr));

  cli_ok (f, NULL, "lock", NULL);
  g_assert_false (agent_can_sign (f, fpr));
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
  g_test_add ("/proxy/lock/auto-unlock-prepares", Fixture, NULL, fixture_setup, test_auto_unlock_prepares,
              fixture_teardown);
  g_test_add ("/proxy/lock/start-locked", Fixture, NULL, fixture_setup_start_locked, test_start_locked,
              fixture_teardown);
  g_test_add ("/proxy/lock/start-locked-without-policy", Fixture, NULL, fixture_setup_no_policy,
              test_start_locked_by_default, fixture_teardown);
  g_test_add ("/proxy/lock/locked-before-data", Fixture, NULL, fixture_setup, test_locked_before_data,
              fixture_teardown);
  g_test_add ("/proxy/lock/unlock-typed-passphrase", Fixture, NULL, fixture_setup, test_unlock_typed,
              fixture_teardown);
  g_test_add ("/proxy/lock/idle-lock", Fixture, NULL, fixture_setup_idle_lock, test_idle_lock, fixture_teardown);
  g_test_add ("/proxy/personal/mark-sets-keyword-upstream", Fixture, NULL, fixture_setup, test_mark_personal,
              fixture_teardown);
  return g_test_run ();
}
