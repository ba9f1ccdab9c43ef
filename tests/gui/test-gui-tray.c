/* test-gui-tray.c: securemail-tray as a desktop sees it: its
 * StatusNotifierItem and menu read over D-Bus from a
 * status-notifier-watcher, following the real securemail-proxy.
 *
 * The recent messages submenu is tested against the daemon's own SmServer
 * and D-Bus service run in a thread of this process (owning
 * org.securemail.Proxy), whose ring the test feeds directly, as the IMAP
 * session does once it decrypts a message. */
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "sm-dbus-service.h"
#include "sm-gui-test.h"
#include "sm-server.h"
#include "sm-test-harness.h"
#include "sm-tls.h"

typedef struct {
  GSubprocess *watcher;
  GSubprocess *tray;
  char *bus_name;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->watcher = sm_gui_test_start_watcher ();
}

static void
stop (GSubprocess *p)
{
  if (p != NULL && g_subprocess_get_identifier (p) != NULL)
    {
      g_subprocess_send_signal (p, SIGTERM);
      g_subprocess_wait (p, NULL, NULL);
    }
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  stop (f->tray);
  g_clear_object (&f->tray);
  stop (f->watcher);
  g_clear_object (&f->watcher);
  g_free (f->bus_name);
}

static gboolean
has_label (GPtrArray *items, const char *label)
{
  for (guint i = 0; i < items->len; i++)
    if (g_strcmp0 (strchr (items->pdata[i], '=') + 1, label) == 0)
      return TRUE;
  return FALSE;
}

/* The menu holds the items, and Quit quits. */
static void
test_menu_and_quit (Fixture *f, gconstpointer data)
{
  const char *env[] = { "LANGUAGE=C", "SECUREMAIL_CONFIG=/nonexistent/securemail.conf", NULL };
  g_autoptr(GPtrArray) items = NULL;
  g_autofree char *status = NULL;
  int quit;

  f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  status = sm_gui_test_wait_status (f->bus_name, "not running", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail is not running");
  items = sm_gui_test_menu_items (f->bus_name);
  for (guint i = 0; g_test_verbose () && i < items->len; i++)
    g_printerr ("menu item %s\n", (const char *) items->pdata[i]);
  g_assert_true (has_label (items, "Open SecureMail"));
  g_assert_true (has_label (items, "Setup"));
  g_assert_true (has_label (items, "Help and contact"));
  g_assert_true (has_label (items, "Quit"));
  g_assert_true (has_label (items, "Lock"));
  g_assert_true (has_label (items, "Recent secure messages"));
  g_assert_true (has_label (items, "Mark a message as [PERSONAL]"));

  quit = sm_gui_test_menu_id (f->bus_name, "Quit");
  g_assert_cmpint (quit, >, 0);
  sm_gui_test_menu_click (f->bus_name, quit);
  g_assert_cmpint (sm_gui_test_wait_exit (f->tray, SM_GUI_TEST_TIMEOUT_MS), ==, 0);
}

/* Under LANGUAGE=mi the menu is in te reo Māori where a translation exists. */
static void
test_menu_mi (Fixture *f, gconstpointer data)
{
  const char *env[] = { "LANG=C.UTF-8", "LC_ALL=", "LANGUAGE=mi", "SECUREMAIL_CONFIG=/nonexistent/securemail.conf", NULL };
  g_autoptr(GPtrArray) items = NULL;

  g_assert_nonnull (g_getenv ("SECUREMAIL_LOCALEDIR"));
  f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  g_free (sm_gui_test_wait_status (f->bus_name, "SecureMail", SM_GUI_TEST_TIMEOUT_MS));
  items = sm_gui_test_menu_items (f->bus_name);
  g_assert_true (has_label (items, "Puta"));
  g_assert_true (has_label (items, "Whakatuwhera i SecureMail"));
  g_assert_true (has_label (items, "Āwhina, whakapā mai"));
  g_assert_true (has_label (items, "Raka"));
  g_assert_false (has_label (items, "Quit"));
}

static char *
tray_env_config (SmTestProxy *proxy)
{
  return g_strdup_printf ("SECUREMAIL_CONFIG=%s", proxy->config_path);
}

/* The status line follows the proxy: connected, then gone. */
static void
test_status_connected (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *status = NULL;

  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  proxy = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  config_env = tray_env_config (proxy);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to localhost");

  sm_test_proxy_stop (proxy);
  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "not running", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail is not running");
}

static gboolean
proxy_locked (SmTestProxy *proxy)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (sm_test_cli (proxy, NULL, &out, &err, "status", "--json", NULL), ==, 0);
  return strstr (out, "\"locked\" : true") != NULL;
}

/* alice's proxy with the stack as provider, and the tray following it,
 * connected. */
static SmTestProxy *
start_proxy_and_tray (Fixture *f)
{
  g_autofree char *upstream = sm_test_upstream_section ("alice");
  SmTestProxy *proxy = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  g_autofree char *config_env = tray_env_config (proxy);
  g_autofree char *status = NULL;

  sm_test_proxy_wait_dbus (proxy);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to localhost");
  return proxy;
}

/* The menu's Lock locks the real proxy (and becomes Unlock); Unlock opens
 * it again from the keyring.  The menu also holds the recent messages
 * submenu and "Mark a message as [PERSONAL]". */
static void
test_lock_unlock (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autoptr(GPtrArray) items = NULL;
  g_autofree char *status = NULL;
  int id;

  if (!sm_test_require_stack ())
    return;
  proxy = start_proxy_and_tray (f);
  items = sm_gui_test_menu_items (f->bus_name);
  g_assert_true (has_label (items, "Recent secure messages"));
  g_assert_true (has_label (items, "Mark a message as [PERSONAL]"));
  g_assert_false (proxy_locked (proxy));

  id = sm_gui_test_menu_id (f->bus_name, "Lock");
  g_assert_cmpint (id, >, 0);
  sm_gui_test_menu_click (f->bus_name, id);
  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "locked", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail is locked: unlock it to read and send secure mail");
  g_assert_true (proxy_locked (proxy));

  id = sm_gui_test_menu_id (f->bus_name, "Unlock");
  g_assert_cmpint (id, >, 0);
  g_assert_cmpint (sm_gui_test_menu_id (f->bus_name, "Lock"), ==, -1);
  /* The Locked property arrives before Lock's reply (gpg-agent forgets
   * first); the item is greyed until then. */
  sm_gui_test_click_when_enabled (f->bus_name, "Unlock", SM_GUI_TEST_TIMEOUT_MS);
  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to localhost");
  g_assert_false (proxy_locked (proxy));
}

/* The screen locks (GNOME's screensaver, played by this test on the session
 * bus): the real proxy locks itself and the status line says why. */
static void
test_locked_by_screen_lock (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *status = NULL;
  gint64 deadline;

  if (!sm_test_require_stack ())
    return;
  proxy = start_proxy_and_tray (f);
  sm_test_session_own_name ("org.gnome.ScreenSaver");
  /* The proxy subscribes asynchronously: say it again until it listened. */
  deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
  do
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_free (status);
      sm_test_screensaver_emit ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", TRUE);
      status = sm_gui_test_wait_status (f->bus_name, "screen was locked", 200);
    }
  while (strstr (status, "screen was locked") == NULL);
  g_assert_cmpstr (status, ==,
                   "SecureMail is locked because the screen was locked: unlock it to read and send secure mail");
  g_assert_true (proxy_locked (proxy));
  g_assert_cmpint (sm_gui_test_menu_id (f->bus_name, "Unlock"), >, 0);
  sm_test_session_release_name ("org.gnome.ScreenSaver");
}

/* ---- recent secure messages ------------------------------------------------------ */

#define RECENT_SUBJECT "Quarterly numbers"

typedef struct {
  char *dir;              /* config and local certificate */
  char *config_path;
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  gint ready;             /* atomic: the name is owned and a message noted */
} Daemon;

static void
on_daemon_name (GDBusConnection *c, const char *name, gpointer user_data)
{
  g_atomic_int_set ((gint *) user_data, 1);
}

/* The daemon's objects on a connection and main context of their own, so
 * that they answer the tray while the test thread waits. */
static gpointer
daemon_thread (gpointer user_data)
{
  Daemon *d = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *address = NULL;
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autoptr(SmServer) server = NULL;
  g_autoptr(SmDbusService) service = NULL;
  g_autoptr(GDBusConnection) bus = NULL;
  const char *raw = "From: Bob <bob@example.test>\r\nSubject: [Verified] " RECENT_SUBJECT "\r\n"
                    "X-SecureMail-Trust: verified\r\n\r\nHi\r\n";
  SmSecureView view = { 0 };
  gint named = 0;
  guint owner;

  g_main_context_push_thread_default (d->context);
  g_assert_true (g_file_get_contents (d->config_path, &text, NULL, NULL));
  /* Unlocked at start, like the harness's proxies: the status line is
   * "connected", not "locked". */
  config = sm_config_load_data (text, SM_TEST_DEFAULT_POLICY, &error);
  g_assert_no_error (error);
  cert = sm_tls_local_certificate (d->dir, &error);
  g_assert_no_error (error);
  server = sm_server_new (g_steal_pointer (&config), cert);
  address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  bus = g_dbus_connection_new_for_address_sync (address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION, NULL, NULL,
      &error);
  g_assert_no_error (error);
  service = sm_dbus_service_new (server, bus, &error);
  g_assert_no_error (error);
  owner = g_bus_own_name_on_connection (bus, SM_DBUS_NAME, G_BUS_NAME_OWNER_FLAGS_NONE, on_daemon_name, NULL,
                                        &named, NULL);
  while (!g_atomic_int_get (&named))
    g_main_context_iteration (d->context, TRUE);

  view.message = g_bytes_new_static (raw, strlen (raw));
  view.trust = SM_TRUST_VERIFIED;
  view.from = (char *) "bob@example.test";
  view.signer = (char *) "bob@example.test (CN=Bob)";
  sm_server_note_message (server, "INBOX", 1, 7, &view);
  g_bytes_unref (view.message);
  g_atomic_int_set (&d->ready, 1);

  g_main_loop_run (d->loop);
  g_bus_unown_name (owner);
  g_dbus_connection_close_sync (bus, NULL, NULL);
  g_main_context_pop_thread_default (d->context);
  return NULL;
}

static gboolean
has_label_containing (GPtrArray *items, const char *needle)
{
  for (guint i = 0; i < items->len; i++)
    if (strstr (strchr (items->pdata[i], '=') + 1, needle) != NULL)
      return TRUE;
  return FALSE;
}

/* The submenu lists the daemon's recent messages: trust, sender, Subject
 * (without the tag); choosing one opens the main window. */
static void
test_recent_messages (Fixture *f, gconstpointer data)
{
  Daemon d = { 0 };
  g_autofree char *config_env = NULL;
  g_autofree char *status = NULL;
  g_autoptr(GError) error = NULL;
  const char *expected = "verified — bob@example.test — " RECENT_SUBJECT;
  gint64 deadline;
  int id = -1;

  d.dir = g_dir_make_tmp ("smtray-XXXXXX", &error);
  g_assert_no_error (error);
  d.config_path = g_build_filename (d.dir, "securemail.conf", NULL);
  g_assert_true (g_file_set_contents (d.config_path,
                                      "[account]\naddress = alice@example.test\n[upstream]\n"
                                      "imap = imaps://imap.example.test\nsmtp = smtp://smtp.example.test\n"
                                      "[listen]\nimap = 127.0.0.1:0\nsmtp = 127.0.0.1:0\n", -1, NULL));
  d.context = g_main_context_new ();
  d.loop = g_main_loop_new (d.context, FALSE);
  d.thread = g_thread_new ("daemon", daemon_thread, &d);
  deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
  while (!g_atomic_int_get (&d.ready))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (20 * 1000);
    }

  config_env = g_strdup_printf ("SECUREMAIL_CONFIG=%s", d.config_path);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to imap.example.test");
  while (id < 0)
    {
      g_autoptr(GPtrArray) items = sm_gui_test_submenu_items (f->bus_name, "Recent secure messages");
      for (guint i = 0; i < items->len; i++)
        if (g_strcmp0 (strchr (items->pdata[i], '=') + 1, expected) == 0)
          id = atoi (items->pdata[i]);
      if (id < 0)
        {
          g_assert_false (has_label_containing (items, "[Verified]"));
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_usleep (100 * 1000);
        }
    }

  /* Choosing it opens the main window (at its Messages page). */
  sm_gui_test_menu_click (f->bus_name, id);
  {
    const char *argv[] = { "sh", "-c",
                           "for i in $(seq 100); do xwininfo -root -tree | grep -q '\"SecureMail\": (' && exit 0; "
                           "sleep 0.1; done; exit 1", NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, NULL, NULL, NULL), ==, 0);
  }

  stop (f->tray);
  g_clear_object (&f->tray);
  g_main_loop_quit (d.loop);
  g_thread_join (d.thread);
  g_main_loop_unref (d.loop);
  g_main_context_unref (d.context);
  {
    g_autofree char *pem = g_build_filename (d.dir, "local-tls.pem", NULL);
    g_unlink (pem);
    g_unlink (d.config_path);
    g_rmdir (d.dir);
  }
  g_free (d.config_path);
  g_free (d.dir);
}

/* Provider down: a client logs in, the proxy cannot reach the provider,
 * Online turns false and the tray says "unreachable" with the reason. */
static void
test_status_unreachable (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autoptr(SmTestClient) client = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *status = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *reply = NULL;
  guint16 dead_port;

  if (!sm_test_require_stack ())
    return;
  dead_port = sm_test_free_port ();   /* nothing listens there */
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%u\nsmtp = smtp://localhost:%u\n"
                              "username = alice\nca_file = %s\n",
                              dead_port, dead_port, sm_test_env ("SM_TEST_CA"));
  proxy = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  config_env = tray_env_config (proxy);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to localhost");   /* nothing tried yet */

  client = sm_test_client_connect (proxy->imap_port);
  g_free (sm_test_client_line (client));   /* greeting */
  cmd = g_strdup_printf ("a LOGIN \"%s\" \"%s\"\r\n", proxy->address, proxy->local_password);
  sm_test_client_send (client, cmd);
  reply = sm_test_client_until (client, "a ");
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "a NO"));

  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "unreachable", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_true (g_str_has_prefix (status, "SecureMail: provider unreachable: "));
  g_assert_cmpuint (strlen (status), >, strlen ("SecureMail: provider unreachable: "));
}

/* Whether the top-level menu item @label is shown; FALSE when there is no
 * such item. */
static gboolean
item_visible (const char *bus_name, const char *label)
{
  gboolean visible = FALSE;

  return sm_gui_test_menu_item (bus_name, label, NULL, &visible, NULL) && visible;
}

/* OAuth2 (issue 7): when the provider wants a new sign-in (here: none was
 * ever stored), the status says so and "Sign in to your provider again"
 * appears; it is hidden before. */
static void
test_sign_in_needed (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;
  g_autofree char *extra = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autoptr(SmTestClient) client = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *status = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *reply = NULL;
  guint16 dead_port;

  if (!sm_test_require_stack ())
    return;
  dead_port = sm_test_free_port ();   /* never asked: there is no refresh token */
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%s\nsmtp = smtp://localhost:%s\n"
                              "username = alice\nca_file = %s\nauth = oauth2\n",
                              sm_test_env ("SM_TEST_IMAPS_PORT"), sm_test_env ("SM_TEST_SUBMISSION_PORT"),
                              sm_test_env ("SM_TEST_CA"));
  extra = g_strdup_printf ("[oauth2]\ntoken_endpoint = http://127.0.0.1:%u/token\nclient_id = test\n", dead_port);
  proxy = sm_test_proxy_start ("alice@example.test", upstream, NULL, extra);
  config_env = tray_env_config (proxy);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_false (item_visible (f->bus_name, "Sign in to your provider again"));

  client = sm_test_client_connect (proxy->imap_port);
  g_free (sm_test_client_line (client));   /* greeting */
  cmd = g_strdup_printf ("a LOGIN \"%s\" \"%s\"\r\n", proxy->address, proxy->local_password);
  sm_test_client_send (client, cmd);
  reply = sm_test_client_until (client, "a ");
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "a NO [UNAVAILABLE]"));
  g_assert_nonnull (strstr (reply, "oauth2-login"));

  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "sign in", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: sign in to your provider again");
  g_assert_true (item_visible (f->bus_name, "Sign in to your provider again"));
}

static void
wait_item_hidden (const char *bus_name, const char *label)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) SM_GUI_TEST_TIMEOUT_MS * 1000;

  while (item_visible (bus_name, label) && g_get_monotonic_time () < deadline)
    g_usleep (100 * 1000);
  g_assert_false (item_visible (bus_name, label));
}

/* A mail client's LOGIN through @proxy reaches the provider. */
static void
assert_login_works (SmTestProxy *proxy)
{
  g_autoptr(SmTestClient) c = sm_test_client_connect (proxy->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);
  g_autofree char *line = sm_test_imap_login (c, proxy, "a1", NULL);

  g_assert_nonnull (greeting);
  if (!g_str_has_prefix (line, "a1 OK"))
    g_error ("login through the proxy failed: %s", line);
}

/* Types @text and Enter into the tray's titled secret dialog (see
 * sm_gui_ask_secret()), waiting for it to appear; the screenshot shows it
 * before anything is typed.  Under Xvfb there is no window manager: the
 * focus is set directly, and xdotool's XTEST events go to it. */
static void
type_into_dialog (const char *text, const char *screenshot)
{
  const char *find[] = { "bash", "-c",
                         "for i in $(seq 150); do "
                         "  w=$(xdotool search --onlyvisible --name '^SecureMail$' 2>/dev/null | head -n1); "
                         "  [ -n \"$w\" ] && { echo $w; exit 0; }; sleep 0.1; "
                         "done; exit 3", NULL };
  g_autofree char *window = NULL;
  g_autofree char *err = NULL;

  if (sm_test_run (find, NULL, NULL, &window, &err) != 0)
    g_error ("the tray's PIN dialog did not appear: %s", err);
  g_strstrip (window);
  sm_gui_test_screenshot (screenshot, 550, 145);
  {
    const char *focus[] = { "xdotool", "windowfocus", window, NULL };
    const char *type[] = { "xdotool", "type", "--delay", "40", text, NULL };
    const char *enter[] = { "xdotool", "key", "Return", NULL };
    g_assert_cmpint (sm_test_run (focus, NULL, NULL, NULL, NULL), ==, 0);
    g_usleep (300 * 1000);   /* GTK takes the focus event before the keys */
    g_assert_cmpint (sm_test_run (type, NULL, NULL, NULL, NULL), ==, 0);
    g_assert_cmpint (sm_test_run (enter, NULL, NULL, NULL, NULL), ==, 0);
  }
}

/* The token's PIN typed into the tray's dialog: the item goes, a mail
 * client's login through the proxy works, the tray says connected. */
static void
type_pin_then_login (Fixture *f, SmTestProxy *proxy, const char *screenshot)
{
  g_autofree char *status = NULL;

  type_into_dialog (SM_TEST_TOKEN_PIN, screenshot);
  wait_item_hidden (f->bus_name, "Type your smartcard PIN…");
  assert_login_works (proxy);
  status = sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: connected to localhost");
}

/* The client certificate is on a smartcard (a softhsm2 token) and no PIN is
 * stored: the tray says the PIN is needed and shows "Type your smartcard
 * PIN…"; the PIN typed into its dialog reaches the daemon (SetTokenPin),
 * a mail client's login then works with the certificate, and the item goes
 * away.  Unlocking from the tray asks for the PIN by itself. */
static void
test_token_pin (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = NULL;
  g_autofree char *upstream = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *status = NULL;
  int id;

  if (!sm_test_require_stack ())
    return;
  if (g_find_program_in_path ("xdotool") == NULL)
    {
      g_test_skip ("xdotool missing (tools/install-deps.sh installs it)");
      return;
    }
  tmp = g_dir_make_tmp ("sm-tray-token-XXXXXX", &error);
  g_assert_no_error (error);
  if (!sm_test_make_token (tmp))
    return;
  upstream = sm_test_cert_upstream (SM_TEST_TOKEN_CERT_URI);
  /* An account with no PIN in this test's keyring. */
  proxy = sm_test_proxy_start ("alice@localhost", upstream, NULL, NULL);
  sm_test_proxy_wait_dbus (proxy);
  config_env = tray_env_config (proxy);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  status = sm_gui_test_wait_status (f->bus_name, "smartcard PIN", SM_GUI_TEST_TIMEOUT_MS);
  g_assert_cmpstr (status, ==, "SecureMail: your smartcard PIN is needed to reach your provider");
  g_assert_true (item_visible (f->bus_name, "Type your smartcard PIN…"));

  id = sm_gui_test_menu_id (f->bus_name, "Type your smartcard PIN…");
  g_assert_cmpint (id, >, 0);
  sm_gui_test_menu_click (f->bus_name, id);
  type_pin_then_login (f, proxy, "tray-token-pin");

  /* Lock, then Unlock from the tray: the keyring opens the keys, and the
   * tray asks for the PIN at once (the typed one went with the lock). */
  sm_gui_test_click_when_enabled (f->bus_name, "Lock", SM_GUI_TEST_TIMEOUT_MS);
  g_free (status);
  status = sm_gui_test_wait_status (f->bus_name, "locked", SM_GUI_TEST_TIMEOUT_MS);
  sm_gui_test_click_when_enabled (f->bus_name, "Unlock", SM_GUI_TEST_TIMEOUT_MS);
  type_pin_then_login (f, proxy, "tray-token-pin-at-unlock");
  {
    /* Typed, never stored or logged. */
    const char *argv[] = { "secret-tool", "lookup", "kind", "client-certificate-pin", "account", "alice@localhost",
                           NULL };
    g_autofree char *stored = NULL;
    g_autofree char *log = NULL;
    sm_test_run (argv, NULL, NULL, &stored, NULL);
    g_assert_true (stored == NULL || *stored == '\0');
    g_assert_true (g_file_get_contents (proxy->log_path, &log, NULL, NULL));
    g_assert_null (strstr (log, SM_TEST_TOKEN_PIN));
  }
  {
    const char *argv[] = { "rm", "-rf", tmp, NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, NULL, NULL, NULL), ==, 0);
  }
  g_unsetenv ("SOFTHSM2_CONF");
}

/* Without a StatusNotifierWatcher the indicator falls back to a
 * GtkStatusIcon; in trayer's XEmbed panel a click opens the real menu, which
 * is what the screenshot shows. */
static void
fallback_setup (Fixture *f, gconstpointer data)
{
}

static void
test_fallback_menu_screenshot (Fixture *f, gconstpointer data)
{
  const char *language = data;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *name = g_strdup_printf ("tray-menu-%s", language);
  g_autoptr(GSubprocess) trayer = NULL;
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  const char *dir = g_getenv ("SM_SCREENSHOT_DIR");
  /* Find the status icon's window (named after its tooltip, the status
   * line), click it, and save the top-right corner of the screen. */
  const char *script =
      "for i in $(seq 100); do "
      "  g=$(xwininfo -root -tree | grep '\"SecureMail' | grep -v 'starting' | awk '{print $NF}'); "
      "  [ -n \"$g\" ] && break; sleep 0.1; done; "
      "[ -n \"$g\" ] || { echo 'no status icon window' >&2; exit 1; }; "
      "x=$(echo $g | cut -d+ -f2); y=$(echo $g | cut -d+ -f3); "
      "xdotool mousemove $((x + 16)) $((y + 15)) click 1 && sleep 1 && "
      "if [ -n \"$2\" ]; then import -window root -crop 560x300+720+0 +repage -colors 256 -depth 8 \"$2/$1.png\"; fi";

  if (g_find_program_in_path ("trayer") == NULL)
    {
      g_test_skip ("trayer is not installed");
      return;
    }
  /* A fresh build has no screenshots folder yet (CI failed on it). */
  if (dir != NULL)
    g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  if (sm_test_require_stack ())
    {
      upstream = sm_test_upstream_section ("alice");
      proxy = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
      config_env = tray_env_config (proxy);
    }
  else
    config_env = g_strdup ("SECUREMAIL_CONFIG=/nonexistent/securemail.conf");

  trayer = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                             "trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height",
                             "32", "--SetDockType", "true", "--transparent", "false", "--tint", "0x336699", NULL);
  g_assert_no_error (error);
  g_usleep (G_USEC_PER_SEC);
  g_subprocess_launcher_setenv (l, "LANG", "C.UTF-8", TRUE);
  g_subprocess_launcher_setenv (l, "LANGUAGE", language, TRUE);
  {
    g_auto(GStrv) kv = g_strsplit (config_env, "=", 2);
    g_subprocess_launcher_setenv (l, kv[0], kv[1], TRUE);
  }
  f->tray = g_subprocess_launcher_spawn (l, &error, g_getenv ("SM_TRAY"), NULL);
  g_assert_no_error (error);
  {
    const char *argv[] = { "sh", "-c", script, "sh", name, dir ? dir : "", NULL };
    g_autofree char *err = NULL;
    int rc = sm_test_run (argv, NULL, NULL, &out, &err);
    if (rc != 0)
      g_error ("clicking the status icon failed: %s", err);
  }
  stop (trayer);
}

/* ---- desktop notifications -------------------------------------------------------- */

/* No notification server is installed here, so the test is the desktop's:
 * it owns org.freedesktop.Notifications (the Desktop Notifications
 * Specification, which GNotification uses outside a sandbox) and keeps
 * "summary\nbody" of every Notify call. */
#define RECEIPT_TIMEOUT_MS 30000   /* Postfix delivery, as in test-receipts.c */

static const char notifications_xml[] =
  "<node><interface name='org.freedesktop.Notifications'>"
  "<method name='Notify'><arg type='s' direction='in'/><arg type='u' direction='in'/>"
  "<arg type='s' direction='in'/><arg type='s' direction='in'/><arg type='s' direction='in'/>"
  "<arg type='as' direction='in'/><arg type='a{sv}' direction='in'/><arg type='i' direction='in'/>"
  "<arg type='u' direction='out'/></method>"
  "<method name='GetCapabilities'><arg type='as' direction='out'/></method>"
  "</interface></node>";

static void
on_notifications_call (GDBusConnection *c, const char *sender, const char *path, const char *iface,
                       const char *method, GVariant *params, GDBusMethodInvocation *invocation, gpointer user_data)
{
  GPtrArray *seen = user_data;
  const char *summary = NULL, *body = NULL;

  if (g_strcmp0 (method, "GetCapabilities") == 0)
    {
      const char *caps[] = { "body", "actions", NULL };
      g_dbus_method_invocation_return_value (invocation, g_variant_new ("(^as)", caps));
      return;
    }
  g_variant_get_child (params, 3, "&s", &summary);
  g_variant_get_child (params, 4, "&s", &body);
  g_ptr_array_add (seen, g_strdup_printf ("%s\n%s", summary, body));
  g_dbus_method_invocation_return_value (invocation, g_variant_new ("(u)", seen->len));
}

/* The first notification whose summary is @summary, waiting for it. */
static const char *
wait_notification (GPtrArray *seen, const char *summary)
{
  gint64 deadline = g_get_monotonic_time () + G_GINT64_CONSTANT (60) * G_USEC_PER_SEC;
  g_autofree char *prefix = g_strdup_printf ("%s\n", summary);

  for (;;)
    {
      for (guint i = 0; i < seen->len; i++)
        if (g_str_has_prefix (seen->pdata[i], prefix))
          return seen->pdata[i];
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10 * 1000);
    }
}

typedef struct {
  GPtrArray *seen;        /* "summary\nbody" */
  GDBusConnection *bus;
  guint registration;
  guint owner;
} Notifications;

/* Owns org.freedesktop.Notifications on the test's bus. */
static Notifications *
notifications_start (void)
{
  static const GDBusInterfaceVTable vtable = { on_notifications_call, NULL, NULL, { 0 } };
  Notifications *n = g_new0 (Notifications, 1);
  g_autoptr(GDBusNodeInfo) info = NULL;
  g_autoptr(GError) error = NULL;

  n->seen = g_ptr_array_new_with_free_func (g_free);
  n->bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  info = g_dbus_node_info_new_for_xml (notifications_xml, &error);
  g_assert_no_error (error);
  n->registration = g_dbus_connection_register_object (n->bus, "/org/freedesktop/Notifications", info->interfaces[0],
                                                       &vtable, n->seen, NULL, &error);
  g_assert_no_error (error);
  n->owner = g_bus_own_name_on_connection (n->bus, "org.freedesktop.Notifications", G_BUS_NAME_OWNER_FLAGS_NONE,
                                           NULL, NULL, NULL, NULL);
  return n;
}

static void
notifications_stop (Notifications *n)
{
  g_bus_unown_name (n->owner);
  g_dbus_connection_unregister_object (n->bus, n->registration);
  g_object_unref (n->bus);
  g_ptr_array_unref (n->seen);
  g_free (n);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Notifications, notifications_stop)

/* The provider refuses a recipient for good: the tray says so in a
 * notification.  The menu has Receipts. */
static void
test_delivery_failed_notification (Fixture *f, gconstpointer data)
{
  g_autoptr(Notifications) notifications = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autoptr(GPtrArray) items = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *msg = NULL;
  g_autofree char *reply = NULL;
  const char *shown;

  if (!sm_test_require_stack ())
    return;
  notifications = notifications_start ();

  proxy = start_proxy_and_tray (f);
  items = sm_gui_test_menu_items (f->bus_name);
  g_assert_true (has_label (items, "Receipts"));

  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: <nosuchuser@example.test>\r\n"
                         "Subject: refused %s\r\nMessage-ID: <tray-%s@example.test>\r\n\r\nHello\r\n", uuid, uuid);
  reply = sm_test_smtp_submit (proxy, "alice@example.test", "nosuchuser@example.test", msg);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "250 "));

  shown = wait_notification (notifications->seen, "A message could not be sent");
  if (g_test_verbose ())
    g_printerr ("notification: %s\n", shown);
  g_assert_nonnull (strstr (shown, "report with the details"));
  /* The provider's words, not the message. */
  g_assert_null (strstr (shown, "Hello"));
}

/* A signed receipt end to end (as tests/integration/test-receipts.c, with
 * mail clients on both sides): alice sends to bob, bob's client reads it
 * through bob's proxy, which answers with a signed receipt; with the tray
 * following alice's proxy, alice's client reads the receipt, her proxy
 * matches it, and the tray says it arrived.  The proxies take turns: both
 * would own the same bus name. */
static void
test_receipt_notification (Fixture *f, gconstpointer data)
{
  g_autoptr(Notifications) notifications = NULL;
  g_autoptr(SmTestProxy) alice = NULL;
  g_autoptr(SmTestProxy) bob = NULL;
  g_autofree char *up_alice = NULL;
  g_autofree char *up_bob = NULL;
  g_autofree char *config_env = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *mid = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *landed = NULL;
  g_autofree char *needle = NULL;
  g_autofree char *mdn = NULL;
  const char *shown;

  if (!sm_test_require_stack ())
    return;
  up_alice = sm_test_upstream_section ("alice");
  up_bob = sm_test_upstream_section ("bob");
  alice = sm_test_proxy_start ("alice@example.test", up_alice, "pass", NULL);
  sm_test_proxy_stop (alice);
  bob = sm_test_proxy_start ("bob@example.test", up_bob, "pass", NULL);
  sm_test_proxy_stop (bob);
  sm_test_introduce (alice, bob);
  sm_test_introduce (bob, alice);

  sm_test_proxy_restart (alice, "proxy-send.log");
  mid = g_strdup_printf ("<tray-receipt-%s@example.test>", uuid);
  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
                         "Subject: tray receipt\r\nMessage-ID: %s\r\n\r\nPlease confirm.\r\n", mid);
  reply = sm_test_smtp_submit (alice, "alice@example.test", "bob@example.test", msg);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "250 "));
  landed = sm_test_maildir_read ("bob", mid, RECEIPT_TIMEOUT_MS);
  g_assert_nonnull (landed);
  sm_test_proxy_stop (alice);

  sm_test_proxy_restart (bob, "proxy-read.log");
  sm_test_fetch_all (bob, mid);
  needle = g_strdup_printf ("In-Reply-To: %s", mid);
  mdn = sm_test_maildir_read ("alice", needle, RECEIPT_TIMEOUT_MS);
  g_assert_nonnull (mdn);
  sm_test_proxy_stop (bob);

  notifications = notifications_start ();
  sm_test_proxy_restart (alice, "proxy-match.log");
  sm_test_proxy_wait_dbus (alice);
  config_env = tray_env_config (alice);
  {
    const char *env[] = { "LANGUAGE=C", config_env, NULL };
    f->tray = sm_gui_test_start_tray (env, &f->bus_name);
  }
  g_free (sm_gui_test_wait_status (f->bus_name, "connected", SM_GUI_TEST_TIMEOUT_MS));
  g_assert_cmpuint (notifications->seen->len, ==, 0);
  sm_test_fetch_all (alice, mid);
  shown = wait_notification (notifications->seen, "Signed receipt arrived");
  if (g_test_verbose ())
    g_printerr ("notification: %s\n", shown);
  g_assert_nonnull (strstr (shown, "bob@example.test confirmed your message"));
  g_assert_nonnull (strstr (shown, mid));
  sm_test_proxy_stop (alice);
}

/* A receipt that fails its checks: alice sends to bob, then a receipt for
 * that message arrives signed by someone other than bob (here alice's own
 * key: she sends it to herself through her proxy, which signs it).  When
 * her mail client reads it, her proxy marks bob's row failed, and the tray
 * says "Receipt failed" with the reason. */
static void
test_receipt_failed_notification (Fixture *f, gconstpointer data)
{
  g_autoptr(Notifications) notifications = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *mid = NULL;
  g_autofree char *mdn_mid = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *mdn = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *landed = NULL;
  const char *shown;

  if (!sm_test_require_stack ())
    return;
  notifications = notifications_start ();
  proxy = start_proxy_and_tray (f);

  mid = g_strdup_printf ("<tray-failed-%s@example.test>", uuid);
  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
                         "Subject: please confirm\r\nMessage-ID: %s\r\n\r\nPlease confirm.\r\n", mid);
  reply = sm_test_smtp_submit (proxy, "alice@example.test", "bob@example.test", msg);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "250 "));
  g_clear_pointer (&reply, g_free);

  /* RFC 8098 §3: a disposition notification "from bob", signed by alice. */
  mdn_mid = g_strdup_printf ("<tray-forged-mdn-%s@example.test>", uuid);
  mdn = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: Alice <alice@example.test>\r\n"
                         "Subject: Signed receipt\r\nMessage-ID: %s\r\nIn-Reply-To: %s\r\nMIME-Version: 1.0\r\n"
                         "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b1\"\r\n"
                         "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nforged receipt %s\r\n"
                         "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
                         "Reporting-UA: test\r\nFinal-Recipient: rfc822;bob@example.test\r\n"
                         "Original-Message-ID: %s\r\n"
                         "Disposition: automatic-action/MDN-sent-automatically; processed\r\n"
                         "Received-Content-MIC: AAAA, sha256\r\n\r\n--b1--\r\n",
                         mdn_mid, mid, uuid, mid);
  reply = sm_test_smtp_submit (proxy, "alice@example.test", "alice@example.test", mdn);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "250 "));
  landed = sm_test_maildir_read ("alice", mdn_mid, RECEIPT_TIMEOUT_MS);
  g_assert_nonnull (landed);

  sm_test_fetch_all (proxy, uuid);
  shown = wait_notification (notifications->seen, "Receipt failed");
  if (g_test_verbose ())
    g_printerr ("notification: %s\n", shown);
  g_assert_nonnull (strstr (shown, "The receipt from bob@example.test for your message"));
  g_assert_nonnull (strstr (shown, mid));
  g_assert_nonnull (strstr (shown, "not the recipient's certificate"));
  sm_test_proxy_stop (proxy);
}

/* ---- key expiry ----------------------------------------------------------------------- */

#define SNI_PATH "/org/ayatana/NotificationItem/securemail_tray"
/* Days of the key that must set off the warning: well inside the daemon's
 * 30-day threshold. */
#define SHORT_KEY_DAYS "10"

/* A string property of the tray's StatusNotifierItem, read as a desktop's
 * panel reads it. */
static char *
sni_property (const char *bus_name, const char *name)
{
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_sync (bus, bus_name, SNI_PATH, "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", "org.kde.StatusNotifierItem", name),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return g_variant_dup_string (value, NULL);
}

/* The user's key runs out in 10 days: once the daemon has read the store
 * again (CheckKeys, as after making a key), the tray turns to its error
 * state, says so in the status line and in one notification that opens the
 * Keys page.  `securemail status` shows the same warning. */
static void
test_key_expiry (Fixture *f, gconstpointer data)
{
  g_autoptr(Notifications) notifications = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *status = NULL;
  g_autofree char *sni_status = NULL;
  g_autofree char *icon = NULL;
  const char *shown;
  guint n_shown = 0;

  if (!sm_test_require_stack ())
    return;
  notifications = notifications_start ();
  proxy = start_proxy_and_tray (f);
  sni_status = sni_property (f->bus_name, "Status");
  g_assert_cmpstr (sni_status, ==, "Active");

  if (sm_test_cli (proxy, NULL, &out, &err, "keys", "generate", "--protocol", "openpgp", "--days", SHORT_KEY_DAYS,
                   NULL) != 0)
    g_error ("keys generate: %s", err);
  sm_test_proxy_check_keys (proxy);

  status = sm_gui_test_wait_status (f->bus_name, "expires in", SM_GUI_TEST_TIMEOUT_MS);
  if (!g_str_has_prefix (status, "SecureMail: Your OpenPGP key for alice@example.test expires in "))
    g_error ("status line: %s", status);
  g_assert_nonnull (strstr (status, " days: make a new one under Keys and certificates"));
  g_free (sni_status);
  sni_status = sni_property (f->bus_name, "Status");
  g_assert_cmpstr (sni_status, ==, "NeedsAttention");
  icon = sni_property (f->bus_name, "AttentionIconName");
  g_assert_cmpstr (icon, ==, "dialog-error");

  shown = wait_notification (notifications->seen, "Your key expires soon");
  if (g_test_verbose ())
    g_printerr ("notification: %s\n", shown);
  g_assert_nonnull (strstr (shown, "Your OpenPGP key for alice@example.test expires in "));

  /* Asking again changes nothing: no second notification. */
  n_shown = notifications->seen->len;
  sm_test_proxy_check_keys (proxy);
  g_usleep (G_USEC_PER_SEC);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  for (guint i = 0; g_test_verbose () && i < notifications->seen->len; i++)
    g_printerr ("notification %u: %s\n", i, (const char *) notifications->seen->pdata[i]);
  g_assert_cmpuint (notifications->seen->len, ==, n_shown);
  sm_test_proxy_stop (proxy);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/gui/tray/menu-and-quit", Fixture, NULL, fixture_setup, test_menu_and_quit, fixture_teardown);
  g_test_add ("/gui/tray/menu-mi", Fixture, NULL, fixture_setup, test_menu_mi, fixture_teardown);
  g_test_add ("/gui/tray/status-connected", Fixture, NULL, fixture_setup, test_status_connected, fixture_teardown);
  g_test_add ("/gui/tray/recent-messages", Fixture, NULL, fixture_setup, test_recent_messages, fixture_teardown);
  g_test_add ("/gui/tray/lock-unlock", Fixture, NULL, fixture_setup, test_lock_unlock, fixture_teardown);
  g_test_add ("/gui/tray/locked-by-screen-lock", Fixture, NULL, fixture_setup, test_locked_by_screen_lock,
              fixture_teardown);
  g_test_add ("/gui/tray/delivery-failed-notification", Fixture, NULL, fixture_setup,
              test_delivery_failed_notification, fixture_teardown);
  g_test_add ("/gui/tray/receipt-notification", Fixture, NULL, fixture_setup, test_receipt_notification,
              fixture_teardown);
  g_test_add ("/gui/tray/receipt-failed-notification", Fixture, NULL, fixture_setup,
              test_receipt_failed_notification, fixture_teardown);
  g_test_add ("/gui/tray/key-expiry", Fixture, NULL, fixture_setup, test_key_expiry, fixture_teardown);
  g_test_add ("/gui/tray/status-unreachable", Fixture, NULL, fixture_setup, test_status_unreachable,
              fixture_teardown);
  g_test_add ("/gui/tray/sign-in-needed", Fixture, NULL, fixture_setup, test_sign_in_needed, fixture_teardown);
  g_test_add ("/gui/tray/token-pin", Fixture, NULL, fixture_setup, test_token_pin, fixture_teardown);
  g_test_add ("/gui/tray/fallback-menu-screenshot/C", Fixture, "C", fallback_setup, test_fallback_menu_screenshot,
              fixture_teardown);
  g_test_add ("/gui/tray/fallback-menu-screenshot/mi", Fixture, "mi", fallback_setup, test_fallback_menu_screenshot,
              fixture_teardown);
  return g_test_run ();
}
