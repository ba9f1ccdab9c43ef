/* test-session-lock.c: the proxy locks when the screen locks and before the
 * computer sleeps (issue 7; proxy/sm-session-watch.h), with the real proxy,
 * CLI, Dovecot and Postfix.
 *
 * logind cannot run on the test machines (systemd is not PID 1), so each
 * test runs a private system bus (dbus-daemon with a minimal system-like
 * configuration, found through DBUS_SYSTEM_BUS_ADDRESS) and, on it, a small
 * service owning org.freedesktop.login1.  It is the peer logind would be:
 * it answers GetSession, GetSessionByPID, GetUser (with the User's Display
 * property) and Inhibit, and emits
 * PrepareForSleep, Session.Lock and the LockedHint PropertiesChanged the
 * way org.freedesktop.login1(5) documents them.  The screensaver signals
 * (org.gnome.ScreenSaver and org.freedesktop.ScreenSaver ActiveChanged)
 * come from this test on the session bus, under the names it owns.
 *
 * Every check is on the real proxy: the D-Bus Locked and LockReason
 * properties and the LockChanged signal, a content FETCH answered NO
 * [UNAVAILABLE], MAIL FROM answered 454 4.7.0.
 *
 * The proxy subscribes asynchronously after it starts, so a signal that
 * should lock is sent again every SIGNAL_REPEAT_MS until the proxy locks
 * (or LOCK_WAIT_MS pass); one that should not is sent for NO_LOCK_WAIT_MS.
 */
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "sm-test-harness.h"

#define LOCK_WAIT_MS       10000
#define NO_LOCK_WAIT_MS    1500
#define SIGNAL_REPEAT_MS   100
#define SESSION_ID         "7"
#define SESSION_PATH       "/org/freedesktop/login1/session/_37"   /* logind's escaping of "7" */
#define OTHER_SESSION_PATH "/org/freedesktop/login1/session/_38"
#define USER_PATH          "/org/freedesktop/login1/user/self"
#define LOGIN1             "org.freedesktop.login1"
#define LOGIN1_PATH        "/org/freedesktop/login1"
#define MANAGER_IFACE      "org.freedesktop.login1.Manager"
#define SESSION_IFACE      "org.freedesktop.login1.Session"
#define SM_BUS_NAME        "org.securemail.Proxy"
#define SM_OBJECT_PATH     "/org/securemail/Proxy"
#define SM_IFACE           "org.securemail.Proxy1"

/* ---- the private system bus --------------------------------------------------- */

/* Like /usr/share/dbus-1/system.conf: method calls are denied unless a
 * service's policy allows them, and only the service's user may own its
 * name (as logind's org.freedesktop.login1.conf does for root). */
static const char system_conf[] =
  "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
  " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
  "<busconfig>\n"
  "  <type>system</type>\n"
  "  <listen>unix:path=%s</listen>\n"
  "  <auth>EXTERNAL</auth>\n"
  "  <policy context=\"default\">\n"
  "    <deny own=\"*\"/>\n"
  "    <deny send_type=\"method_call\"/>\n"
  "    <allow send_type=\"signal\"/>\n"
  "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
  "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
  "    <allow receive_type=\"method_call\"/>\n"
  "    <allow receive_type=\"method_return\"/>\n"
  "    <allow receive_type=\"error\"/>\n"
  "    <allow receive_type=\"signal\"/>\n"
  "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
  "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
  "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
  "    <allow send_destination=\"org.freedesktop.login1\"/>\n"
  "  </policy>\n"
  "  <policy user=\"%s\">\n"
  "    <allow own=\"org.freedesktop.login1\"/>\n"
  "  </policy>\n"
  "</busconfig>\n";

typedef struct {
  GSubprocess *daemon;
  char *address;
} SystemBus;

static SystemBus *
system_bus_start (const char *dir)
{
  SystemBus *bus = g_new0 (SystemBus, 1);
  g_autofree char *socket_path = g_build_filename (dir, "system_bus_socket", NULL);
  g_autofree char *conf_path = g_build_filename (dir, "system.conf", NULL);
  g_autofree char *conf = g_markup_printf_escaped (system_conf, socket_path, g_get_user_name ());
  g_autofree char *conf_arg = g_strdup_printf ("--config-file=%s", conf_path);
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;

  g_assert_true (g_file_set_contents (conf_path, conf, -1, NULL));
  bus->daemon = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "dbus-daemon", conf_arg, "--nofork",
                                  "--print-address=1", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (bus->daemon));
  bus->address = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (bus->address);
  g_assert_true (g_str_has_prefix (bus->address, "unix:path="));
  return bus;
}

static void
system_bus_stop (SystemBus *bus)
{
  if (bus == NULL)
    return;
  g_subprocess_send_signal (bus->daemon, SIGTERM);
  g_subprocess_wait (bus->daemon, NULL, NULL);
  g_object_unref (bus->daemon);
  g_free (bus->address);
  g_free (bus);
}

/* ---- the peer logind would be ------------------------------------------------ */

static const char login1_xml[] =
  "<node>"
  " <interface name='org.freedesktop.login1.Manager'>"
  "  <method name='GetSession'>"
  "   <arg name='session_id' type='s' direction='in'/><arg name='object_path' type='o' direction='out'/>"
  "  </method>"
  "  <method name='GetSessionByPID'>"
  "   <arg name='pid' type='u' direction='in'/><arg name='object_path' type='o' direction='out'/>"
  "  </method>"
  "  <method name='GetUser'>"
  "   <arg name='uid' type='u' direction='in'/><arg name='object_path' type='o' direction='out'/>"
  "  </method>"
  "  <method name='Inhibit'>"
  "   <arg name='what' type='s' direction='in'/><arg name='who' type='s' direction='in'/>"
  "   <arg name='why' type='s' direction='in'/><arg name='mode' type='s' direction='in'/>"
  "   <arg name='pipe_fd' type='h' direction='out'/>"
  "  </method>"
  "  <signal name='PrepareForSleep'><arg name='start' type='b'/></signal>"
  " </interface>"
  " <interface name='org.freedesktop.login1.Session'>"
  "  <property name='Id' type='s' access='read'/>"
  "  <property name='LockedHint' type='b' access='read'/>"
  "  <signal name='Lock'/>"
  "  <signal name='Unlock'/>"
  " </interface>"
  " <interface name='org.freedesktop.login1.User'>"
  "  <property name='Display' type='(so)' access='read'/>"
  " </interface>"
  "</node>";

typedef struct {
  char *address;
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GDBusConnection *bus;      /* used from the test thread only to emit signals */
  GDBusNodeInfo *info;
  gboolean pid_in_session;   /* FALSE: GetSessionByPID fails, as for a systemd user service */

  GMutex mutex;              /* guards what follows, and is held by wait_for() */
  GCond cond;
  gboolean ready;            /* owns the name, or failed */
  char *asked_session;       /* GetSession's argument */
  guint32 asked_pid;         /* GetSessionByPID's argument */
  guint n_session_lookups;
  guint n_user_lookups;
  guint32 asked_uid;         /* GetUser's argument */
  guint n_inhibit;
  char *inhibit_what;
  char *inhibit_mode;
  int inhibit_fd;            /* our end of the latest delay lock (reads EOF once released), -1 */
  gboolean locked_hint;
} Login1;

static void
manager_call (GDBusConnection *connection, const char *sender, const char *path, const char *interface,
              const char *method, GVariant *parameters, GDBusMethodInvocation *invocation, gpointer user_data)
{
  Login1 *l = user_data;

  g_mutex_lock (&l->mutex);
  if (strcmp (method, "GetSession") == 0)
    {
      const char *id = NULL;
      g_variant_get (parameters, "(&s)", &id);
      g_free (l->asked_session);
      l->asked_session = g_strdup (id);
      l->n_session_lookups++;
      if (strcmp (id, SESSION_ID) == 0)
        g_dbus_method_invocation_return_value (invocation, g_variant_new ("(o)", SESSION_PATH));
      else
        g_dbus_method_invocation_return_dbus_error (invocation, "org.freedesktop.login1.NoSuchSession",
                                                    "No session known");
    }
  else if (strcmp (method, "GetSessionByPID") == 0)
    {
      g_variant_get (parameters, "(u)", &l->asked_pid);
      l->n_session_lookups++;
      if (l->pid_in_session)
        g_dbus_method_invocation_return_value (invocation, g_variant_new ("(o)", SESSION_PATH));
      else
        g_dbus_method_invocation_return_dbus_error (invocation, "org.freedesktop.login1.NoSessionForPID",
                                                    "PID does not belong to any known session");
    }
  else if (strcmp (method, "GetUser") == 0)
    {
      g_variant_get (parameters, "(u)", &l->asked_uid);
      l->n_user_lookups++;
      g_dbus_method_invocation_return_value (invocation, g_variant_new ("(o)", USER_PATH));
    }
  else if (strcmp (method, "Inhibit") == 0)
    {
      g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
      int pipe_fds[2];

      g_free (l->inhibit_what);
      g_free (l->inhibit_mode);
      g_variant_get (parameters, "(ssss)", &l->inhibit_what, NULL, NULL, &l->inhibit_mode);
      /* logind keeps one end of a FIFO and hands out the other: the lock
       * ends when every copy of the client's end is closed. */
      g_assert_cmpint (pipe (pipe_fds), ==, 0);
      g_assert_cmpint (g_unix_fd_list_append (fds, pipe_fds[1], NULL), ==, 0);
      close (pipe_fds[1]);
      if (l->inhibit_fd >= 0)
        close (l->inhibit_fd);
      l->inhibit_fd = pipe_fds[0];
      l->n_inhibit++;
      g_dbus_method_invocation_return_value_with_unix_fd_list (invocation, g_variant_new ("(h)", 0), fds);
    }
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->mutex);
}

static GVariant *
session_get (GDBusConnection *connection, const char *sender, const char *path, const char *interface,
             const char *property, GError **error, gpointer user_data)
{
  Login1 *l = user_data;
  GVariant *v;

  g_mutex_lock (&l->mutex);
  v = strcmp (property, "Id") == 0 ? g_variant_new_string (SESSION_ID) : g_variant_new_boolean (l->locked_hint);
  g_mutex_unlock (&l->mutex);
  return v;
}

/* The user's graphical session, as logind's User.Display. */
static GVariant *
user_get (GDBusConnection *connection, const char *sender, const char *path, const char *interface,
          const char *property, GError **error, gpointer user_data)
{
  return g_variant_new ("(so)", SESSION_ID, SESSION_PATH);
}

static const GDBusInterfaceVTable manager_vtable = { manager_call, NULL, NULL, { 0 } };
static const GDBusInterfaceVTable session_vtable = { NULL, session_get, NULL, { 0 } };
static const GDBusInterfaceVTable user_vtable = { NULL, user_get, NULL, { 0 } };

static void
on_login1_name (GDBusConnection *connection, const char *name, gpointer user_data)
{
  Login1 *l = user_data;

  g_mutex_lock (&l->mutex);
  l->ready = TRUE;
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->mutex);
}

static void
on_login1_name_lost (GDBusConnection *connection, const char *name, gpointer user_data)
{
  g_error ("the test's logind could not own %s on the private system bus", name);
}

/* The service's own thread and main context: the test thread blocks in
 * protocol reads while the proxy calls it. */
static gpointer
login1_thread (gpointer data)
{
  Login1 *l = data;
  g_autoptr(GError) error = NULL;
  guint name_id;

  g_main_context_push_thread_default (l->context);
  l->bus = g_dbus_connection_new_for_address_sync (l->address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                   NULL, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_register_object (l->bus, LOGIN1_PATH, l->info->interfaces[0], &manager_vtable, l, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_register_object (l->bus, SESSION_PATH, l->info->interfaces[1], &session_vtable, l, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_register_object (l->bus, USER_PATH, l->info->interfaces[2], &user_vtable, l, NULL, &error);
  g_assert_no_error (error);
  name_id = g_bus_own_name_on_connection (l->bus, LOGIN1, G_BUS_NAME_OWNER_FLAGS_NONE, on_login1_name,
                                          on_login1_name_lost, l, NULL);
  g_main_loop_run (l->loop);
  g_bus_unown_name (name_id);
  g_dbus_connection_close_sync (l->bus, NULL, NULL);
  g_main_context_pop_thread_default (l->context);
  return NULL;
}

static Login1 *
login1_start (const char *address, gboolean pid_in_session)
{
  Login1 *l = g_new0 (Login1, 1);
  g_autoptr(GError) error = NULL;

  l->address = g_strdup (address);
  l->pid_in_session = pid_in_session;
  l->inhibit_fd = -1;
  l->info = g_dbus_node_info_new_for_xml (login1_xml, &error);
  g_assert_no_error (error);
  g_mutex_init (&l->mutex);
  g_cond_init (&l->cond);
  l->context = g_main_context_new ();
  l->loop = g_main_loop_new (l->context, FALSE);
  l->thread = g_thread_new ("login1", login1_thread, l);
  g_mutex_lock (&l->mutex);
  while (!l->ready)
    g_cond_wait (&l->cond, &l->mutex);
  g_mutex_unlock (&l->mutex);
  return l;
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
login1_stop (Login1 *l)
{
  if (l == NULL)
    return;
  g_main_context_invoke (l->context, quit_loop, l->loop);
  g_thread_join (l->thread);
  g_clear_object (&l->bus);
  if (l->inhibit_fd >= 0)
    close (l->inhibit_fd);
  g_main_loop_unref (l->loop);
  g_main_context_unref (l->context);
  g_dbus_node_info_unref (l->info);
  g_mutex_clear (&l->mutex);
  g_cond_clear (&l->cond);
  g_free (l->asked_session);
  g_free (l->inhibit_what);
  g_free (l->inhibit_mode);
  g_free (l->address);
  g_free (l);
}

/* Waits (up to LOCK_WAIT_MS) until *@counter reaches @n. */
static void
login1_wait_count (Login1 *l, guint *counter, guint n, const char *what)
{
  gint64 deadline = g_get_monotonic_time () + LOCK_WAIT_MS * 1000;

  g_mutex_lock (&l->mutex);
  while (*counter < n)
    if (!g_cond_wait_until (&l->cond, &l->mutex, deadline))
      g_error ("the proxy did not call logind's %s (%u of %u calls)", what, *counter, n);
  g_mutex_unlock (&l->mutex);
}

static void
login1_emit (Login1 *l, const char *path, const char *interface, const char *member, GVariant *parameters)
{
  g_autoptr(GError) error = NULL;

  g_dbus_connection_emit_signal (l->bus, NULL, path, interface, member, parameters, &error);
  g_assert_no_error (error);
}

/* logind sets LockedHint and announces it with PropertiesChanged. */
static void
login1_set_locked_hint (Login1 *l, gboolean hint)
{
  GVariantBuilder changed;

  g_mutex_lock (&l->mutex);
  l->locked_hint = hint;
  g_mutex_unlock (&l->mutex);
  g_variant_builder_init (&changed, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&changed, "{sv}", "LockedHint", g_variant_new_boolean (hint));
  login1_emit (l, SESSION_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged",
               g_variant_new ("(sa{sv}as)", SESSION_IFACE, &changed, NULL));
}

/* Whether the delay lock handed out last is released, waiting up to
 * @timeout_ms. */
static gboolean
login1_inhibitor_released (Login1 *l, int timeout_ms)
{
  struct pollfd p = { 0 };
  char byte;

  g_mutex_lock (&l->mutex);
  p.fd = l->inhibit_fd;
  g_mutex_unlock (&l->mutex);
  g_assert_cmpint (p.fd, >=, 0);
  p.events = POLLIN;
  if (poll (&p, 1, timeout_ms) <= 0)
    return FALSE;
  /* POLLHUP, or readable with EOF: no writer is left. */
  return (p.revents & POLLHUP) != 0 || read (p.fd, &byte, 1) == 0;
}

/* ---- fixture ---------------------------------------------------------------------- */

typedef struct {
  char *dir;
  SystemBus *system;
  Login1 *login1;
  SmTestProxy *proxy;
  GDBusConnection *session;      /* the test's session bus: the proxy's D-Bus interface, screensavers */
  guint lock_changed_sub;
  GArray *lock_changes;          /* gboolean, every LockChanged the proxy emitted */
} Fixture;

typedef struct {
  gboolean system_bus;           /* a private system bus; else none at all */
  gboolean logind;               /* the test's logind on it */
  gboolean by_pid;               /* XDG_SESSION_ID unset: GetSessionByPID */
  gboolean user_service;         /* ... which fails: the user's Display session */
  const char *extra;             /* config lines */
} Setup;

static void
on_lock_changed (GDBusConnection *connection, const char *sender, const char *path, const char *interface,
                 const char *member, GVariant *parameters, gpointer user_data)
{
  Fixture *f = user_data;
  gboolean locked = FALSE;

  g_variant_get (parameters, "(b)", &locked);
  g_array_append_val (f->lock_changes, locked);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const Setup *setup = data;
  g_autofree char *upstream = NULL;
  g_autoptr(GError) error = NULL;

  if (!sm_test_require_stack ())
    return;
  f->dir = g_dir_make_tmp ("sm-session-lock-XXXXXX", &error);
  g_assert_no_error (error);
  f->lock_changes = g_array_new (FALSE, FALSE, sizeof (gboolean));
  if (setup->system_bus)
    {
      f->system = system_bus_start (f->dir);
      if (setup->logind)
        f->login1 = login1_start (f->system->address, !setup->user_service);
      g_setenv ("DBUS_SYSTEM_BUS_ADDRESS", f->system->address, TRUE);   /* inherited by the proxy */
    }
  else
    {
      g_autofree char *none = g_strdup_printf ("unix:path=%s/no-system-bus", f->dir);
      g_setenv ("DBUS_SYSTEM_BUS_ADDRESS", none, TRUE);
    }
  if (setup->by_pid)
    g_unsetenv ("XDG_SESSION_ID");
  else
    g_setenv ("XDG_SESSION_ID", SESSION_ID, TRUE);

  f->session = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  f->lock_changed_sub = g_dbus_connection_signal_subscribe (f->session, SM_BUS_NAME, SM_IFACE, "LockChanged",
                                                            SM_OBJECT_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                            on_lock_changed, f, NULL);
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), setup->extra);
  sm_test_proxy_wait_dbus (f->proxy);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  if (f->session != NULL)
    {
      g_dbus_connection_signal_unsubscribe (f->session, f->lock_changed_sub);
      /* The connection is the process's shared one: the next test starts
       * without a screensaver. */
      sm_test_session_release_name ("org.gnome.ScreenSaver");
      sm_test_session_release_name ("org.freedesktop.ScreenSaver");
    }
  g_clear_object (&f->session);
  g_clear_pointer (&f->login1, login1_stop);
  g_clear_pointer (&f->system, system_bus_stop);
  g_unsetenv ("DBUS_SYSTEM_BUS_ADDRESS");
  g_unsetenv ("XDG_SESSION_ID");
  if (f->lock_changes != NULL)
    g_array_unref (f->lock_changes);
  if (f->dir != NULL)
    {
      g_autofree char *conf = g_build_filename (f->dir, "system.conf", NULL);
      g_remove (conf);
      g_rmdir (f->dir);
      g_free (f->dir);
    }
}

/* ---- the proxy's side ------------------------------------------------------------- */

static GVariant *
proxy_property (Fixture *f, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_sync (f->session, SM_BUS_NAME, SM_OBJECT_PATH,
                                                           "org.freedesktop.DBus.Properties", "Get",
                                                           g_variant_new ("(ss)", SM_IFACE, name),
                                                           G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1,
                                                           NULL, &error);
  GVariant *value;

  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return value;
}

static gboolean
proxy_locked (Fixture *f)
{
  g_autoptr(GVariant) v = proxy_property (f, "Locked");
  return g_variant_get_boolean (v);
}

static char *
proxy_lock_reason (Fixture *f)
{
  g_autoptr(GVariant) v = proxy_property (f, "LockReason");
  return g_variant_dup_string (v, NULL);
}

/* Runs the test's main context (LockChanged) for @ms. */
static void
pump (guint ms)
{
  gint64 until = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < until)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (10 * 1000);
    }
}

typedef void (*Emit) (Fixture *f);

/* Calls @emit every SIGNAL_REPEAT_MS until the proxy is locked; fails the
 * test after LOCK_WAIT_MS. */
static void
emit_until_locked (Fixture *f, Emit emit, const char *what)
{
  gint64 deadline = g_get_monotonic_time () + LOCK_WAIT_MS * 1000;

  while (!proxy_locked (f))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the proxy did not lock on %s", what);
      emit (f);
      pump (SIGNAL_REPEAT_MS);
    }
  pump (SIGNAL_REPEAT_MS);
}

/* Calls @emit for NO_LOCK_WAIT_MS and checks the proxy stayed unlocked. */
static void
emit_and_stay_unlocked (Fixture *f, Emit emit)
{
  for (guint waited = 0; waited < NO_LOCK_WAIT_MS; waited += SIGNAL_REPEAT_MS)
    {
      emit (f);
      pump (SIGNAL_REPEAT_MS);
    }
  g_assert_false (proxy_locked (f));
  g_assert_cmpuint (f->lock_changes->len, ==, 0);
}

/* A logged-in IMAP session with INBOX selected (a message in it). */
static SmTestClient *
imap_open_selected (Fixture *f, char **uid)
{
  SmTestClient *c = sm_test_client_connect (f->proxy->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);
  g_autofree char *login = g_strdup_printf ("a1 LOGIN \"%s\" \"%s\"\r\n", f->proxy->address, f->proxy->local_password);
  g_autofree char *ok = NULL;
  g_autofree char *selected = NULL;

  g_assert_nonnull (greeting);
  g_assert_true (g_str_has_prefix (greeting, "* OK"));
  *uid = sm_test_direct_append ("alice", "session lock");
  sm_test_client_send (c, login);
  ok = sm_test_client_until (c, "a1 ");
  g_assert_true (g_str_has_prefix (ok, "a1 OK"));
  sm_test_client_send (c, "a2 SELECT INBOX\r\n");
  selected = sm_test_client_until (c, "a2 ");
  g_assert_true (g_str_has_prefix (selected, "a2 OK"));
  return c;
}

/* The proxy is locked for @reason: D-Bus, LockChanged, IMAP and SMTP all
 * say so.  @imap (selected, message @uid) and @smtp (logged in) were open
 * before the lock. */
static void
assert_locked_everywhere (Fixture *f, const char *reason, SmTestClient *imap, const char *uid, SmTestClient *smtp)
{
  g_autofree char *shown_reason = proxy_lock_reason (f);
  g_autofree char *fetch = g_strdup_printf ("a3 UID FETCH %s (BODY.PEEK[])\r\n", uid);
  g_autofree char *fetched = NULL;
  g_autofree char *refused = NULL;

  g_assert_true (proxy_locked (f));
  g_assert_cmpstr (shown_reason, ==, reason);
  for (guint waited = 0; f->lock_changes->len == 0 && waited < LOCK_WAIT_MS; waited += SIGNAL_REPEAT_MS)
    pump (SIGNAL_REPEAT_MS);
  g_assert_cmpuint (f->lock_changes->len, ==, 1);
  g_assert_true (g_array_index (f->lock_changes, gboolean, 0));

  sm_test_client_send (imap, fetch);
  fetched = sm_test_client_until (imap, "a3 ");
  g_assert_nonnull (fetched);
  g_assert_true (g_str_has_prefix (fetched, "a3 NO [UNAVAILABLE] "));
  g_assert_nonnull (strstr (fetched, "unlock"));

  sm_test_client_send (smtp, "MAIL FROM:<alice@example.test>\r\n");
  refused = sm_test_smtp_reply (smtp, NULL);
  g_assert_nonnull (refused);
  g_assert_true (g_str_has_prefix (refused, "454 4.7.0 "));
  g_assert_nonnull (strstr (refused, "unlock"));
}

static void
unlock_with_cli (Fixture *f)
{
  g_autofree char *err = NULL;

  if (sm_test_cli (f->proxy, NULL, NULL, &err, "unlock", NULL) != 0)
    g_error ("securemail unlock failed: %s", err);
  g_assert_false (proxy_locked (f));
  g_array_set_size (f->lock_changes, 0);
  pump (SIGNAL_REPEAT_MS);
  g_array_set_size (f->lock_changes, 0);
}

/* ---- emitters ---------------------------------------------------------------------- */

static void
emit_session_lock (Fixture *f)
{
  login1_emit (f->login1, SESSION_PATH, SESSION_IFACE, "Lock", NULL);
}

static void
emit_other_session_lock (Fixture *f)
{
  login1_emit (f->login1, OTHER_SESSION_PATH, SESSION_IFACE, "Lock", NULL);
}

static void
emit_locked_hint_false (Fixture *f)
{
  login1_set_locked_hint (f->login1, FALSE);
}

static void
emit_locked_hint_true (Fixture *f)
{
  login1_set_locked_hint (f->login1, TRUE);
}

static void
emit_sleep (Fixture *f)
{
  login1_emit (f->login1, LOGIN1_PATH, MANAGER_IFACE, "PrepareForSleep", g_variant_new ("(b)", TRUE));
}

static void
emit_resume (Fixture *f)
{
  login1_emit (f->login1, LOGIN1_PATH, MANAGER_IFACE, "PrepareForSleep", g_variant_new ("(b)", FALSE));
}

static void
emit_gnome_saver_inactive (Fixture *f)
{
  sm_test_screensaver_emit ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", FALSE);
}

static void
emit_gnome_saver_active (Fixture *f)
{
  sm_test_screensaver_emit ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", TRUE);
}

static void
emit_fdo_saver_active (Fixture *f)
{
  sm_test_screensaver_emit ("org.freedesktop.ScreenSaver", "/ScreenSaver", TRUE);
}

static void
emit_everything (Fixture *f)
{
  emit_session_lock (f);
  emit_locked_hint_true (f);
  emit_sleep (f);
  emit_gnome_saver_active (f);
  emit_fdo_saver_active (f);
}

/* ---- tests ------------------------------------------------------------------------- */

/* With an IMAP session (INBOX selected) and an SMTP session open before:
 * @harmless does not lock, @locking does (named @what), and D-Bus,
 * LockChanged, IMAP and SMTP all say so with @reason. */
static void
check_lock (Fixture *f, Emit harmless, Emit locking, const char *what, const char *reason)
{
  g_autoptr(SmTestClient) imap = NULL;
  g_autoptr(SmTestClient) smtp = NULL;
  g_autofree char *uid = NULL;

  imap = imap_open_selected (f, &uid);
  smtp = sm_test_smtp_open (f->proxy, TRUE);
  emit_and_stay_unlocked (f, harmless);
  emit_until_locked (f, locking, what);
  assert_locked_everywhere (f, reason, imap, uid, smtp);
}

/* Session.Lock of our session (found by XDG_SESSION_ID) locks; that of
 * another session does not. */
static void
test_logind_session_lock (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  login1_wait_count (f->login1, &f->login1->n_session_lookups, 1, "GetSession");
  g_assert_cmpstr (f->login1->asked_session, ==, SESSION_ID);
  g_assert_false (proxy_locked (f));
  check_lock (f, emit_other_session_lock, emit_session_lock, "Session.Lock", "screen-locked");
}

/* Without XDG_SESSION_ID the session is the one of the proxy's PID; its
 * LockedHint turning true locks, false does not. */
static void
test_logind_locked_hint (Fixture *f, gconstpointer data)
{
  guint64 pid;

  if (f->proxy == NULL)
    return;
  login1_wait_count (f->login1, &f->login1->n_session_lookups, 1, "GetSessionByPID");
  pid = g_ascii_strtoull (g_subprocess_get_identifier (f->proxy->process), NULL, 10);
  g_assert_cmpuint (f->login1->asked_pid, ==, pid);
  g_assert_null (f->login1->asked_session);
  check_lock (f, emit_locked_hint_false, emit_locked_hint_true, "LockedHint = true", "screen-locked");

  /* The screen unlocking does not unlock SecureMail: the user does. */
  login1_set_locked_hint (f->login1, FALSE);
  login1_emit (f->login1, SESSION_PATH, SESSION_IFACE, "Unlock", NULL);
  pump (NO_LOCK_WAIT_MS);
  g_assert_true (proxy_locked (f));
  unlock_with_cli (f);
}

/* Run as a systemd user service, the proxy is in no session: it watches
 * the user's display session (User.Display). */
static void
test_logind_display_session (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  login1_wait_count (f->login1, &f->login1->n_user_lookups, 1, "GetUser");
  g_assert_cmpuint (f->login1->n_session_lookups, ==, 1);   /* GetSessionByPID, which failed */
  g_assert_cmpuint (f->login1->asked_uid, ==, getuid ());
  check_lock (f, emit_other_session_lock, emit_session_lock, "Session.Lock of the display session",
              "screen-locked");
}

/* PrepareForSleep(true): the proxy locks, then releases its delay lock so
 * that logind may suspend; on resume it takes a new one. */
static void
test_logind_suspend (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  login1_wait_count (f->login1, &f->login1->n_inhibit, 1, "Inhibit");
  g_assert_cmpstr (f->login1->inhibit_what, ==, "sleep");
  g_assert_cmpstr (f->login1->inhibit_mode, ==, "delay");
  g_assert_false (login1_inhibitor_released (f->login1, 0));
  check_lock (f, emit_resume, emit_sleep, "PrepareForSleep(true)", "suspend");
  g_assert_true (login1_inhibitor_released (f->login1, LOCK_WAIT_MS));

  emit_resume (f);
  login1_wait_count (f->login1, &f->login1->n_inhibit, 2, "Inhibit after resume");
  g_assert_false (login1_inhibitor_released (f->login1, 0));
  /* Still locked after resume: the user unlocks. */
  g_assert_true (proxy_locked (f));
}

/* GNOME's and the freedesktop screensaver's ActiveChanged(true), on the
 * session bus from the names' owner. */
static void
test_screensaver (Fixture *f, gconstpointer data)
{
  g_autofree char *reason = NULL;

  if (f->proxy == NULL)
    return;
  sm_test_session_own_name ("org.gnome.ScreenSaver");
  sm_test_session_own_name ("org.freedesktop.ScreenSaver");
  check_lock (f, emit_gnome_saver_inactive, emit_gnome_saver_active, "org.gnome.ScreenSaver ActiveChanged(true)",
              "screen-locked");

  unlock_with_cli (f);
  emit_until_locked (f, emit_fdo_saver_active, "org.freedesktop.ScreenSaver ActiveChanged(true)");
  reason = proxy_lock_reason (f);
  g_assert_cmpstr (reason, ==, "screen-locked");
}

/* The screensaver @saver locks the proxy (@emit), and the proxy's log holds
 * @missing exactly once and no warning: a missing bus or service is
 * normal. */
static void
assert_saver_locks_and_logged_once (Fixture *f, const char *saver, Emit emit, const char *missing)
{
  g_autofree char *log = NULL;
  g_autofree char *what = g_strdup_printf ("%s ActiveChanged(true)", saver);
  const char *at;

  sm_test_session_own_name (saver);
  emit_until_locked (f, emit, what);
  g_assert_true (g_file_get_contents (f->proxy->log_path, &log, NULL, NULL));
  at = strstr (log, missing);
  g_assert_nonnull (at);
  g_assert_null (strstr (at + 1, missing));
  g_assert_null (strstr (log, "-WARNING **"));
  g_assert_null (strstr (log, "-CRITICAL **"));
}

/* No system bus at all: the proxy runs as usual, says so once at debug
 * level, and the screensaver still locks. */
static void
test_no_system_bus (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  assert_saver_locks_and_logged_once (f, "org.gnome.ScreenSaver", emit_gnome_saver_active, "No system bus");
}

/* A system bus without logind: the same. */
static void
test_no_logind (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  assert_saver_locks_and_logged_once (f, "org.freedesktop.ScreenSaver", emit_fdo_saver_active,
                                      "logind is not on the system bus");
}

/* lock_on_screen_lock = off and lock_on_suspend = off: nothing of this
 * locks, and no delay lock is taken. */
static void
test_settings_off (Fixture *f, gconstpointer data)
{
  if (f->proxy == NULL)
    return;
  sm_test_session_own_name ("org.gnome.ScreenSaver");
  sm_test_session_own_name ("org.freedesktop.ScreenSaver");
  emit_and_stay_unlocked (f, emit_everything);
  g_assert_cmpuint (f->login1->n_inhibit, ==, 0);
  g_assert_cmpuint (f->login1->n_session_lookups, ==, 0);
}

static const Setup with_logind = { TRUE, TRUE, FALSE, FALSE, NULL };
static const Setup with_logind_by_pid = { TRUE, TRUE, TRUE, FALSE, NULL };
static const Setup as_user_service = { TRUE, TRUE, TRUE, TRUE, NULL };
static const Setup without_system_bus = { FALSE, FALSE, FALSE, FALSE, NULL };
static const Setup without_logind = { TRUE, FALSE, FALSE, FALSE, NULL };
static const Setup settings_off = { TRUE, TRUE, FALSE, FALSE,
                                    "[security]\nlock_on_screen_lock = off\nlock_on_suspend = off\n" };

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/session-lock/logind-session-lock", Fixture, &with_logind, fixture_setup,
              test_logind_session_lock, fixture_teardown);
  g_test_add ("/proxy/session-lock/logind-locked-hint-by-pid", Fixture, &with_logind_by_pid, fixture_setup,
              test_logind_locked_hint, fixture_teardown);
  g_test_add ("/proxy/session-lock/logind-display-session-of-user-service", Fixture, &as_user_service,
              fixture_setup, test_logind_display_session, fixture_teardown);
  g_test_add ("/proxy/session-lock/logind-suspend", Fixture, &with_logind, fixture_setup, test_logind_suspend,
              fixture_teardown);
  g_test_add ("/proxy/session-lock/screensaver", Fixture, &with_logind, fixture_setup, test_screensaver,
              fixture_teardown);
  g_test_add ("/proxy/session-lock/no-system-bus", Fixture, &without_system_bus, fixture_setup,
              test_no_system_bus, fixture_teardown);
  g_test_add ("/proxy/session-lock/no-logind", Fixture, &without_logind, fixture_setup, test_no_logind,
              fixture_teardown);
  g_test_add ("/proxy/session-lock/settings-off", Fixture, &settings_off, fixture_setup, test_settings_off,
              fixture_teardown);
  return g_test_run ();
}
