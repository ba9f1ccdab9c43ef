/* test-queue.c: the durable outbound queue (issue 5) against the real stack.
 *
 * - Postfix stopped, 50 messages accepted (250 after the spool's fsync),
 *   the proxy killed with SIGKILL and restarted, Postfix started: every
 *   message arrives exactly once.
 * - The provider refuses a recipient (5xx): a delivery report reaches the
 *   sender, the tray's D-Bus signal is emitted, `securemail queue list
 *   --json` shows the message failed; retry and delete work.
 * - The spool's file system is full: 452 4.3.1 and nothing left behind.
 *
 * Postfix is shared with the other tests: it is started again in the
 * teardown, and on abort (a failed assertion) by a signal handler.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sm-test-harness.h"

#define DELIVERY_TIMEOUT_MS 60000
#define N_CRASH_MESSAGES    50
#define RETRY_SCALE         "0.01"   /* first retry after 0.3 s, longest wait 18 s */

typedef struct {
  SmTestProxy *proxy;
  char *run;             /* unique to this test */
  char *mount;           /* a tmpfs mounted over the spool, or NULL */
} Fixture;

/* ---- Postfix --------------------------------------------------------------- */

static char postfix_conf[4096];      /* for the abort handler: no allocation there */
static volatile sig_atomic_t postfix_stopped;

static void
postfix_ctl (const char *what)
{
  const char *argv[] = { "postfix", "-c", postfix_conf, what, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int rc = sm_test_run (argv, NULL, NULL, &out, &err);

  if (rc != 0)
    g_printerr ("# postfix %s: %d %s%s\n", what, rc, out, err);
}

static gboolean
submission_accepts (void)
{
  g_autoptr(GSocketClient) c = g_socket_client_new ();
  g_autoptr(GSocketConnection) conn = g_socket_client_connect_to_host (
      c, "127.0.0.1", sm_test_env_port ("SM_TEST_SUBMISSION_PORT"), NULL, NULL);
  return conn != NULL;
}

static void
postfix_stop (void)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  postfix_stopped = 1;
  postfix_ctl ("stop");
  while (submission_accepts ())
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
    }
}

static void
postfix_start (void)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  if (!postfix_stopped)
    return;
  postfix_ctl ("start");
  while (!submission_accepts () && g_get_monotonic_time () < deadline)
    g_usleep (50 * 1000);
  postfix_stopped = 0;
}

/* A failed assertion ends the test binary before any teardown: start
 * Postfix again from here, so that the tests after this one find it. */
static void
on_abort (int sig)
{
  if (postfix_stopped)
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          execlp ("postfix", "postfix", "-c", postfix_conf, "start", (char *) NULL);
          _exit (127);
        }
      if (pid > 0)
        waitpid (pid, NULL, 0);
      postfix_stopped = 0;
    }
  signal (sig, SIG_DFL);
  raise (sig);
}

/* ---- the proxy ----------------------------------------------------------------- */

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;
  g_autofree char *uuid = g_uuid_string_random ();

  f->run = g_strdup_printf ("q%.8s", uuid);
  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  postfix_start ();
  if (f->proxy != NULL)
    sm_test_proxy_stop (f->proxy);
  if (f->mount)
    {
      const char *argv[] = { "umount", "-l", f->mount, NULL };
      sm_test_run (argv, NULL, NULL, NULL, NULL);
      g_free (f->mount);
    }
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  g_free (f->run);
}

static char *
spool_dir (SmTestProxy *p)
{
  return g_build_filename (p->data_home, "securemail", "spool", NULL);
}

/* SIGKILL: no chance to clean up or finish anything. */
static void
kill_proxy (SmTestProxy *p)
{
  g_subprocess_force_exit (p->process);
  g_assert_true (g_subprocess_wait (p->process, NULL, NULL));
  g_assert_false (g_subprocess_get_if_exited (p->process));
  g_assert_cmpint (g_subprocess_get_term_sig (p->process), ==, SIGKILL);
  g_clear_object (&p->process);
}

/* ---- helpers ---------------------------------------------------------------------- */

static char *
make_message (const char *tag, const char *to)
{
  return g_strdup_printf ("From: Alice <alice@example.test>\r\n"
                          "To: <%s>\r\n"
                          "Subject: queue test %s\r\n"
                          "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
                          "Message-ID: <%s@example.test>\r\n"
                          "\r\n"
                          "body of %s\r\n",
                          to, tag, tag, tag);
}

/* MAIL, RCPT, DATA: returns the final reply. */
static char *
submit (SmTestClient *c, const char *to, const char *message)
{
  g_autofree char *rcpt = g_strdup_printf ("RCPT TO:<%s>", to);

  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, rcpt, "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  return sm_test_smtp_data (c, message);
}

/* The ID in "250 2.0.0 Queued as ID". */
static char *
queued_id (const char *reply)
{
  const char *at;

  if (reply == NULL || !g_str_has_prefix (reply, "250 2.0.0 ") || (at = strstr (reply, "Queued as ")) == NULL)
    g_error ("expected “250 2.0.0 Queued as ID”, got “%s”", reply ? reply : "(end of stream)");
  return g_strdup (at + strlen ("Queued as "));
}

static char *
cli_out (SmTestProxy *p, int want_rc, ...) G_GNUC_NULL_TERMINATED;

static char *
cli_out (SmTestProxy *p, int want_rc, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *cfg = g_strdup_printf ("--config=%s", p->config_path);
  va_list ap;
  int rc;

  g_ptr_array_add (argv, (gpointer) sm_test_env ("SM_CLI"));
  g_ptr_array_add (argv, cfg);
  va_start (ap, want_rc);
  for (const char *a = va_arg (ap, const char *); a; a = va_arg (ap, const char *))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  rc = sm_test_run ((const char * const *) argv->pdata, NULL, NULL, &out, &err);
  if (rc != want_rc)
    g_error ("securemail %s: exit %d, wanted %d\n%s%s", (char *) argv->pdata[2], rc, want_rc, out, err);
  return want_rc == 0 ? g_steal_pointer (&out) : g_steal_pointer (&err);
}

static guint
queue_size (SmTestProxy *p)
{
  g_autofree char *out = cli_out (p, 0, "status", "--json", NULL);
  const char *at = strstr (out, "\"queue_size\" : ");

  g_assert_nonnull (at);
  return (guint) g_ascii_strtoull (at + strlen ("\"queue_size\" : "), NULL, 10);
}

/* Files in @user's maildir (new and cur) that contain @needle. */
static guint
maildir_count (const char *user, const char *needle)
{
  const char *sub[] = { "new", "cur" };
  guint n = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (sub); i++)
    {
      g_autofree char *dir = g_build_filename (sm_test_env ("SM_TEST_MAILDIR"), user, "Maildir", sub[i], NULL);
      g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
      const char *name;
      while (d && (name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *path = g_build_filename (dir, name, NULL);
          g_autofree char *contents = NULL;
          if (g_file_get_contents (path, &contents, NULL, NULL) && strstr (contents, needle) != NULL)
            n++;
        }
    }
  return n;
}

static guint
dir_entries (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  g_assert_nonnull (d);
  while (g_dir_read_name (d) != NULL)
    n++;
  return n;
}

/* ---- tests ------------------------------------------------------------------------- */

static void
test_crash_exactly_once (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *spool = NULL;
  gint64 t0, deadline;
  guint missing;

  if (f->proxy == NULL)
    return;
  postfix_stop ();

  c = sm_test_smtp_open (f->proxy, TRUE);
  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < N_CRASH_MESSAGES; i++)
    {
      g_autofree char *tag = g_strdup_printf ("%s-%03u", f->run, i);
      g_autofree char *msg = make_message (tag, "bob@example.test");
      g_autofree char *reply = submit (c, "bob@example.test", msg);
      g_free (queued_id (reply));
    }
  g_test_message ("%u messages queued with Postfix down in %.0f ms", N_CRASH_MESSAGES,
                  (g_get_monotonic_time () - t0) / 1000.0);
  g_assert_cmpuint (queue_size (f->proxy), ==, N_CRASH_MESSAGES);
  spool = spool_dir (f->proxy);
  g_assert_cmpuint (dir_entries (spool), ==, 2 * N_CRASH_MESSAGES);   /* .eml + .meta */
  g_clear_pointer (&c, sm_test_client_free);

  kill_proxy (f->proxy);
  sm_test_proxy_restart (f->proxy, "proxy-2.log");
  g_assert_cmpuint (queue_size (f->proxy), ==, N_CRASH_MESSAGES);
  postfix_start ();

  /* The queue drains, and every message arrives exactly once. */
  t0 = g_get_monotonic_time ();
  deadline = t0 + (gint64) DELIVERY_TIMEOUT_MS * 1000;
  while (queue_size (f->proxy) > 0)
    {
      if (g_get_monotonic_time () > deadline)
        {
          g_autofree char *out = cli_out (f->proxy, 0, "queue", "list", NULL);
          g_error ("the queue did not drain:\n%s", out);
        }
      g_usleep (100 * 1000);
    }
  g_test_message ("queue drained %.0f ms after Postfix started", (g_get_monotonic_time () - t0) / 1000.0);
  do
    {
      missing = 0;
      for (guint i = 0; i < N_CRASH_MESSAGES; i++)
        {
          g_autofree char *needle = g_strdup_printf ("<%s-%03u@example.test>", f->run, i);
          if (maildir_count ("bob", needle) == 0)
            missing++;
        }
      if (missing > 0)
        g_usleep (200 * 1000);
    }
  while (missing > 0 && g_get_monotonic_time () < deadline);
  g_assert_cmpuint (missing, ==, 0);
  /* Late duplicates would have had the time to land. */
  g_usleep (2 * G_USEC_PER_SEC);
  for (guint i = 0; i < N_CRASH_MESSAGES; i++)
    {
      g_autofree char *needle = g_strdup_printf ("<%s-%03u@example.test>", f->run, i);
      guint n = maildir_count ("bob", needle);
      if (n != 1)
        g_error ("%s arrived %u times", needle, n);
    }
  g_assert_cmpuint (dir_entries (spool), ==, 0);
}

typedef struct {
  GPtrArray *failed;     /* "id reason" of each DeliveryFailed */
} SignalLog;

static void
on_dbus_signal (GDBusConnection *conn, const char *sender, const char *path, const char *iface,
                const char *signal, GVariant *params, gpointer user_data)
{
  SignalLog *log = user_data;
  const char *id, *reason;

  g_variant_get (params, "(&s&s)", &id, &reason);
  g_ptr_array_add (log->failed, g_strdup_printf ("%s %s", id, reason));
}

static void
wait_signals (SignalLog *log, guint n, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (log->failed->len < n && g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (20 * 1000);
    }
}

/* Reports for @id in alice's maildir. */
static guint
reports_for (const char *id)
{
  g_autofree char *needle = g_strdup_printf ("Original-Envelope-Id: %s", id);
  return maildir_count ("alice", needle);
}

static void
wait_reports (const char *id, guint n)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) DELIVERY_TIMEOUT_MS * 1000;

  while (reports_for (id) < n && g_get_monotonic_time () < deadline)
    g_usleep (100 * 1000);
  g_assert_cmpuint (reports_for (id), ==, n);
}

static void
test_refused_report (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autoptr(GDBusConnection) bus = NULL;
  g_autofree char *tag = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *id = NULL;
  g_autofree char *report = NULL;
  g_autofree char *list = NULL;
  g_autofree char *err = NULL;
  g_autofree char *id_json = NULL;
  SignalLog log = { g_ptr_array_new_with_free_func (g_free) };
  guint sub;

  if (f->proxy == NULL)
    {
      g_ptr_array_unref (log.failed);
      return;
    }
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_assert_nonnull (bus);
  sub = g_dbus_connection_signal_subscribe (bus, NULL, "org.securemail.Proxy1", "DeliveryFailed",
                                            "/org/securemail/Proxy", NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                            on_dbus_signal, &log, NULL);

  tag = g_strdup_printf ("%s-refused", f->run);
  msg = make_message (tag, "nosuchuser@example.test");
  c = sm_test_smtp_open (f->proxy, TRUE);
  reply = submit (c, "nosuchuser@example.test", msg);
  id = queued_id (reply);

  /* The report reaches the sender: RFC 3464, the provider's words, the
   * original header. */
  wait_reports (id, 1);
  {
    g_autofree char *needle = g_strdup_printf ("Original-Envelope-Id: %s", id);
    report = sm_test_maildir_read ("alice", needle, 0);
  }
  g_assert_nonnull (report);
  g_assert_nonnull (strstr (report, "multipart/report; report-type=delivery-status"));
  g_assert_nonnull (strstr (report, "Content-Type: message/delivery-status"));
  g_assert_nonnull (strstr (report, "Final-Recipient: rfc822; nosuchuser@example.test"));
  g_assert_nonnull (strstr (report, "Action: failed"));
  g_assert_nonnull (strstr (report, "Diagnostic-Code: smtp; 550"));
  g_assert_nonnull (strstr (report, "Content-Type: text/rfc822-headers"));
  g_assert_nonnull (strstr (report, tag));
  g_assert_nonnull (strstr (report, "Auto-Submitted: auto-replied"));
  /* The body (protected content) is not in the report. */
  {
    g_autofree char *body = g_strdup_printf ("body of %s", tag);
    g_assert_null (strstr (report, body));
  }

  /* The tray heard of it. */
  wait_signals (&log, 1, 10000);
  g_assert_cmpuint (log.failed->len, ==, 1);
  g_assert_true (g_str_has_prefix (log.failed->pdata[0], id));
  g_assert_nonnull (strstr (log.failed->pdata[0], "550"));

  /* The queue lists it as failed, with the reason. */
  list = cli_out (f->proxy, 0, "queue", "list", "--json", NULL);
  id_json = g_strdup_printf ("\"id\" : \"%s\"", id);
  g_assert_nonnull (strstr (list, id_json));
  g_assert_nonnull (strstr (list, "\"state\" : \"failed\""));
  g_assert_nonnull (strstr (list, "\"last_error\" : \"The provider refused the message: 550"));
  g_assert_nonnull (strstr (list, "\"attempts\" : 1"));
  g_clear_pointer (&list, g_free);
  list = cli_out (f->proxy, 0, "queue", NULL);
  g_assert_nonnull (strstr (list, id));
  g_assert_nonnull (strstr (list, "failed"));
  g_clear_pointer (&list, g_free);

  /* retry: sent again, refused again, reported again. */
  g_free (cli_out (f->proxy, 0, "queue", "retry", id, NULL));
  wait_reports (id, 2);
  wait_signals (&log, 2, 10000);
  g_assert_cmpuint (log.failed->len, ==, 2);
  list = cli_out (f->proxy, 0, "queue", "list", "--json", NULL);
  g_assert_nonnull (strstr (list, "\"attempts\" : 2"));
  g_assert_nonnull (strstr (list, "\"state\" : \"failed\""));
  g_clear_pointer (&list, g_free);

  /* delete: gone; deleting again says it is not there. */
  g_free (cli_out (f->proxy, 0, "queue", "delete", id, NULL));
  list = cli_out (f->proxy, 0, "queue", "list", "--json", NULL);
  g_assert_null (strstr (list, id_json));
  err = cli_out (f->proxy, 1, "queue", "delete", id, NULL);
  g_assert_nonnull (strstr (err, "No message"));
  g_clear_pointer (&err, g_free);
  err = cli_out (f->proxy, 1, "queue", "retry", "0123456789abcdef01234567", NULL);
  g_assert_nonnull (strstr (err, "No message"));
  g_clear_pointer (&err, g_free);
  err = cli_out (f->proxy, 2, "queue", "frobnicate", NULL);
  g_assert_cmpuint (queue_size (f->proxy), ==, 0);
  /* And nothing reached the unknown recipient's domain neighbour bob. */
  {
    g_autofree char *needle = g_strdup_printf ("<%s@example.test>", tag);
    g_assert_cmpuint (maildir_count ("bob", needle), ==, 0);
  }
  g_dbus_connection_signal_unsubscribe (bus, sub);
  g_ptr_array_unref (log.failed);
}

static void
test_disk_full (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *spool = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *big = NULL;
  g_autofree char *small = NULL;
  g_autofree char *tag = NULL;
  g_autofree char *id = NULL;
  g_autofree char *mount_err = NULL;
  GString *body;

  if (f->proxy == NULL)
    return;
  /* A real file system that fills up: a 64 KiB tmpfs over the spool. */
  sm_test_proxy_stop (f->proxy);
  spool = spool_dir (f->proxy);
  {
    const char *argv[] = { "mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", spool, NULL };
    if (sm_test_run (argv, NULL, NULL, NULL, &mount_err) != 0)
      {
        g_autofree char *why = g_strdup_printf ("cannot mount a tmpfs (%s)", g_strstrip (mount_err));
        g_test_skip (why);
        return;
      }
  }
  f->mount = g_strdup (spool);
  sm_test_proxy_restart (f->proxy, "proxy-2.log");

  tag = g_strdup_printf ("%s-big", f->run);
  body = g_string_new (NULL);
  g_string_append_printf (body, "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\n\r\n", tag);
  while (body->len < 100 * 1024)
    g_string_append (body, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
  big = g_string_free (body, FALSE);
  c = sm_test_smtp_open (f->proxy, TRUE);
  reply = submit (c, "bob@example.test", big);
  g_assert_nonnull (reply);
  if (!g_str_has_prefix (reply, "452 4.3.1 "))
    g_error ("expected 452 4.3.1, got “%s”", reply);
  /* Nothing half-written. */
  g_assert_cmpuint (dir_entries (spool), ==, 0);
  g_assert_cmpuint (queue_size (f->proxy), ==, 0);
  g_clear_pointer (&reply, g_free);

  /* The session goes on, and a message that fits is queued and delivered. */
  g_clear_pointer (&tag, g_free);
  tag = g_strdup_printf ("%s-small", f->run);
  small = make_message (tag, "bob@example.test");
  reply = submit (c, "bob@example.test", small);
  id = queued_id (reply);
  {
    g_autofree char *needle = g_strdup_printf ("<%s@example.test>", tag);
    g_assert_true (sm_test_maildir_wait ("bob", needle, DELIVERY_TIMEOUT_MS));
  }
  g_free (sm_test_smtp_command (c, "QUIT", "221 "));
  g_clear_pointer (&c, sm_test_client_free);
  sm_test_proxy_stop (f->proxy);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Retries after 0.3 s rather than 30 s; inherited by the proxies. */
  g_setenv ("SECUREMAIL_TEST_RETRY_SCALE", RETRY_SCALE, TRUE);
  if (g_getenv ("SM_TEST_STACK") != NULL)
    {
      g_snprintf (postfix_conf, sizeof postfix_conf, "%s/postfix/etc", g_getenv ("SM_TEST_STACK"));
      /* g_assert*() aborts; g_error() traps (SIGTRAP); crashes segfault. */
      signal (SIGABRT, on_abort);
      signal (SIGTRAP, on_abort);
      signal (SIGSEGV, on_abort);
      signal (SIGBUS, on_abort);
    }
  g_test_add ("/proxy/queue/crash-restart-exactly-once", Fixture, NULL, fixture_setup, test_crash_exactly_once,
              fixture_teardown);
  g_test_add ("/proxy/queue/refused-report-retry-delete", Fixture, NULL, fixture_setup, test_refused_report,
              fixture_teardown);
  g_test_add ("/proxy/queue/disk-full-452", Fixture, NULL, fixture_setup, test_disk_full, fixture_teardown);
  return g_test_run ();
}
