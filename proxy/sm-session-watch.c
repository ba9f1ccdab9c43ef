/* sm-session-watch.c: logind and screensaver signals that close the gate.
 *
 * The interfaces are those systemd documents in org.freedesktop.login1(5)
 * ("Signals": PrepareForSleep on the Manager, Lock on a Session; the
 * Session property LockedHint; "Inhibitor locks" for the delay lock) and
 * the screensaver's ActiveChanged signal (GNOME's org.gnome.ScreenSaver and
 * the freedesktop.org org.freedesktop.ScreenSaver).
 */
#include "config.h"

#include <gio/gunixfdlist.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "sm-session-watch.h"

#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"

/* The two screensaver services: bus name = interface name. */
static const char * const screensavers[] = { SM_GNOME_SCREENSAVER_NAME, SM_FDO_SCREENSAVER_NAME };

struct _SmSessionWatch {
  GObject parent_instance;

  gboolean on_screen_lock;
  gboolean on_suspend;
  gboolean started;
  GCancellable *cancellable;     /* every pending call and bus lookup */

  GDBusConnection *system;
  guint logind_watch;            /* name watch on SM_LOGIND_NAME */
  guint sleep_sub;               /* Manager.PrepareForSleep */
  char *session_path;            /* this process's logind session, once known */
  guint session_lock_sub;        /* Session.Lock */
  guint session_props_sub;       /* PropertiesChanged of the session (LockedHint) */
  int inhibit_fd;                /* the delay inhibitor lock; -1 when none held */
  GCancellable *session_lookup;  /* the pending session lookup and inhibitor call of one logind instance */

  GDBusConnection *session;
  guint saver_watch[G_N_ELEMENTS (screensavers)];
  guint saver_sub[G_N_ELEMENTS (screensavers)];
};

enum { SIGNAL_LOCK_REQUESTED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (SmSessionWatch, sm_session_watch, G_TYPE_OBJECT)

static void
sm_session_watch_finalize (GObject *object)
{
  SmSessionWatch *self = SM_SESSION_WATCH (object);

  sm_session_watch_stop (self);
  G_OBJECT_CLASS (sm_session_watch_parent_class)->finalize (object);
}

static void
sm_session_watch_class_init (SmSessionWatchClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_session_watch_finalize;
  signals[SIGNAL_LOCK_REQUESTED] = g_signal_new ("lock-requested", G_TYPE_FROM_CLASS (klass),
                                                 G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                 G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRING);
}

static void
sm_session_watch_init (SmSessionWatch *self)
{
  self->inhibit_fd = -1;
}

SmSessionWatch *
sm_session_watch_new (gboolean on_screen_lock, gboolean on_suspend)
{
  SmSessionWatch *self = g_object_new (SM_TYPE_SESSION_WATCH, NULL);
  self->on_screen_lock = on_screen_lock;
  self->on_suspend = on_suspend;
  return self;
}

static void
request_lock (SmSessionWatch *self, SmSessionEvent event, const char *source)
{
  g_debug ("Session watch: %s", source);
  g_signal_emit (self, signals[SIGNAL_LOCK_REQUESTED], 0, (int) event, source);
}

/* ---- the delay inhibitor lock ------------------------------------------------- */

static void
release_inhibitor (SmSessionWatch *self)
{
  if (self->inhibit_fd >= 0)
    {
      /* Closing the descriptor is how a delay lock is released. */
      g_close (self->inhibit_fd, NULL);
      self->inhibit_fd = -1;
    }
}

static void
on_inhibit_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_finish (G_DBUS_CONNECTION (source), &fds,
                                                                               result, &error);
  SmSessionWatch *self = user_data;
  gint32 index = -1;
  int fd;

  if (reply == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("logind gave no delay lock for sleep (%s): locking may come after the computer slept",
                 error->message);
      return;
    }
  g_variant_get (reply, "(h)", &index);
  fd = fds != NULL ? g_unix_fd_list_get (fds, index, &error) : -1;
  if (fd < 0)
    {
      g_debug ("logind's delay lock came without a descriptor");
      return;
    }
  release_inhibitor (self);
  self->inhibit_fd = fd;
  g_debug ("Holding a logind delay lock for sleep");
}

static void
take_inhibitor (SmSessionWatch *self)
{
  if (self->inhibit_fd >= 0 || self->system == NULL || self->session_lookup == NULL)
    return;
  g_dbus_connection_call_with_unix_fd_list (self->system, SM_LOGIND_NAME, SM_LOGIND_PATH, SM_LOGIND_MANAGER_IFACE,
                                            "Inhibit",
                                            g_variant_new ("(ssss)", "sleep", "SecureMail",
                                                           _("SecureMail locks before the computer sleeps"),
                                                           "delay"),
                                            G_VARIANT_TYPE ("(h)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                            self->session_lookup, on_inhibit_done, self);
}

/* ---- signals ------------------------------------------------------------------- */

static void
on_signal (GDBusConnection *connection, const char *sender, const char *path, const char *interface,
           const char *member, GVariant *parameters, gpointer user_data)
{
  SmSessionWatch *self = user_data;

  if (g_strcmp0 (member, "PrepareForSleep") == 0 && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(b)")))
    {
      gboolean start = FALSE;

      g_variant_get (parameters, "(b)", &start);
      if (start)
        {
          /* The handlers lock synchronously; then logind may go on. */
          request_lock (self, SM_SESSION_EVENT_SUSPEND, "logind PrepareForSleep");
          release_inhibitor (self);
        }
      else
        take_inhibitor (self);
    }
  else if (g_strcmp0 (member, "Lock") == 0 && g_strcmp0 (interface, SM_LOGIND_SESSION_IFACE) == 0)
    request_lock (self, SM_SESSION_EVENT_SCREEN_LOCKED, "logind Session.Lock");
  else if (g_strcmp0 (member, "PropertiesChanged") == 0 &&
           g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(sa{sv}as)")))
    {
      g_autoptr(GVariant) changed = g_variant_get_child_value (parameters, 1);
      gboolean hint = FALSE;

      if (g_variant_lookup (changed, "LockedHint", "b", &hint) && hint)
        request_lock (self, SM_SESSION_EVENT_SCREEN_LOCKED, "logind LockedHint");
    }
  else if (g_strcmp0 (member, "ActiveChanged") == 0 && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(b)")))
    {
      gboolean active = FALSE;

      g_variant_get (parameters, "(b)", &active);
      if (active)
        {
          g_autofree char *source = g_strdup_printf ("%s ActiveChanged", interface);
          request_lock (self, SM_SESSION_EVENT_SCREEN_LOCKED, source);
        }
    }
}

/* ---- logind on the system bus ---------------------------------------------------- */

static void
forget_session (SmSessionWatch *self)
{
  if (self->system != NULL)
    {
      if (self->session_lock_sub)
        g_dbus_connection_signal_unsubscribe (self->system, self->session_lock_sub);
      if (self->session_props_sub)
        g_dbus_connection_signal_unsubscribe (self->system, self->session_props_sub);
    }
  self->session_lock_sub = self->session_props_sub = 0;
  g_clear_pointer (&self->session_path, g_free);
}

static void
watch_session (SmSessionWatch *self, const char *path)
{
  forget_session (self);
  self->session_path = g_strdup (path);
  self->session_lock_sub = g_dbus_connection_signal_subscribe (self->system, SM_LOGIND_NAME, SM_LOGIND_SESSION_IFACE,
                                                               "Lock", self->session_path, NULL,
                                                               G_DBUS_SIGNAL_FLAGS_NONE, on_signal, self, NULL);
  self->session_props_sub = g_dbus_connection_signal_subscribe (self->system, SM_LOGIND_NAME, PROPERTIES_IFACE,
                                                                "PropertiesChanged", self->session_path,
                                                                SM_LOGIND_SESSION_IFACE, G_DBUS_SIGNAL_FLAGS_NONE,
                                                                on_signal, self, NULL);
  g_debug ("Watching logind session %s", self->session_path);
}

static void
on_display_session (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  g_autoptr(GVariant) display = NULL;
  SmSessionWatch *self = user_data;
  const char *path = NULL;

  if (reply == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("logind has no display session for this user (%s): the screensaver signals still lock",
                 error->message);
      return;
    }
  g_variant_get (reply, "(v)", &display);
  if (g_variant_is_of_type (display, G_VARIANT_TYPE ("(so)")))
    g_variant_get (display, "(&s&o)", NULL, &path);
  /* "/" = the user has no graphical session right now. */
  if (path == NULL || strcmp (path, "/") == 0)
    {
      g_debug ("logind has no display session for this user: the screensaver signals still lock");
      return;
    }
  watch_session (self, path);
}

static void
on_user_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  SmSessionWatch *self = user_data;
  const char *user_path = NULL;

  if (reply == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("logind knows neither a session of this process nor its user (%s): "
                 "the screensaver signals still lock", error->message);
      return;
    }
  g_variant_get (reply, "(&o)", &user_path);
  g_dbus_connection_call (self->system, SM_LOGIND_NAME, user_path, PROPERTIES_IFACE, "Get",
                          g_variant_new ("(ss)", SM_LOGIND_USER_IFACE, "Display"), G_VARIANT_TYPE ("(v)"),
                          G_DBUS_CALL_FLAGS_NONE, -1, self->session_lookup, on_display_session, self);
}

static void
on_session_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  SmSessionWatch *self = user_data;
  const char *path = NULL;

  if (reply == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      /* A systemd user service (ui/securemail-proxy.service) belongs to no
       * session: the user's graphical ("display") session is the one whose
       * screen matters. */
      g_debug ("logind knows no session of this process (%s): watching the user's display session",
               error->message);
      g_dbus_connection_call (self->system, SM_LOGIND_NAME, SM_LOGIND_PATH, SM_LOGIND_MANAGER_IFACE, "GetUser",
                              g_variant_new ("(u)", (guint32) getuid ()), G_VARIANT_TYPE ("(o)"),
                              G_DBUS_CALL_FLAGS_NONE, -1, self->session_lookup, on_user_found, self);
      return;
    }
  g_variant_get (reply, "(&o)", &path);
  watch_session (self, path);
}

/* Our session: the one XDG_SESSION_ID names (set by pam_systemd for every
 * process of a login), else the one logind finds for our PID, else the
 * user's display session (on_session_found()). */
static void
find_session (SmSessionWatch *self)
{
  const char *id = g_getenv ("XDG_SESSION_ID");
  gboolean by_id = id != NULL && *id != '\0';

  g_dbus_connection_call (self->system, SM_LOGIND_NAME, SM_LOGIND_PATH, SM_LOGIND_MANAGER_IFACE,
                          by_id ? "GetSession" : "GetSessionByPID",
                          by_id ? g_variant_new ("(s)", id) : g_variant_new ("(u)", (guint32) getpid ()),
                          G_VARIANT_TYPE ("(o)"), G_DBUS_CALL_FLAGS_NONE, -1, self->session_lookup,
                          on_session_found, self);
}

static void
on_logind_appeared (GDBusConnection *connection, const char *name, const char *owner, gpointer user_data)
{
  SmSessionWatch *self = user_data;

  g_debug ("logind is on the system bus (%s)", owner);
  g_cancellable_cancel (self->session_lookup);
  g_clear_object (&self->session_lookup);
  self->session_lookup = g_cancellable_new ();
  if (self->on_screen_lock)
    find_session (self);
  if (self->on_suspend)
    take_inhibitor (self);
}

static void
on_logind_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  SmSessionWatch *self = user_data;

  g_debug ("logind is not on the system bus: no lock from it on screen lock or sleep");
  if (self->session_lookup != NULL)
    g_cancellable_cancel (self->session_lookup);
  g_clear_object (&self->session_lookup);
  forget_session (self);
  release_inhibitor (self);
}

static void
on_system_bus (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  GDBusConnection *bus = g_bus_get_finish (result, &error);
  SmSessionWatch *self = user_data;

  if (bus == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("No system bus (%s): no lock from logind on screen lock or sleep", error->message);
      return;
    }
  self->system = bus;
  if (self->on_suspend)
    self->sleep_sub = g_dbus_connection_signal_subscribe (bus, SM_LOGIND_NAME, SM_LOGIND_MANAGER_IFACE,
                                                          "PrepareForSleep", SM_LOGIND_PATH, NULL,
                                                          G_DBUS_SIGNAL_FLAGS_NONE, on_signal, self, NULL);
  self->logind_watch = g_bus_watch_name_on_connection (bus, SM_LOGIND_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE,
                                                       on_logind_appeared, on_logind_vanished, self, NULL);
}

/* ---- screensavers on the session bus ----------------------------------------------- */

static void
on_saver_appeared (GDBusConnection *connection, const char *name, const char *owner, gpointer user_data)
{
  g_debug ("%s is on the session bus (%s)", name, owner);
}

static void
on_saver_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  g_debug ("%s is not on the session bus", name);
}

static void
on_session_bus (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  GDBusConnection *bus = g_bus_get_finish (result, &error);
  SmSessionWatch *self = user_data;

  if (bus == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("No session bus (%s): no lock from the screensaver", error->message);
      return;
    }
  self->session = bus;
  for (guint i = 0; i < G_N_ELEMENTS (screensavers); i++)
    {
      /* Any path: GNOME uses /org/gnome/ScreenSaver, KDE /ScreenSaver and
       * /org/freedesktop/ScreenSaver.  The sender must own the name. */
      self->saver_sub[i] = g_dbus_connection_signal_subscribe (bus, screensavers[i], screensavers[i],
                                                               "ActiveChanged", NULL, NULL,
                                                               G_DBUS_SIGNAL_FLAGS_NONE, on_signal, self, NULL);
      self->saver_watch[i] = g_bus_watch_name_on_connection (bus, screensavers[i], G_BUS_NAME_WATCHER_FLAGS_NONE,
                                                             on_saver_appeared, on_saver_vanished, self, NULL);
    }
}

/* ---- start and stop -------------------------------------------------------------- */

void
sm_session_watch_start (SmSessionWatch *self)
{
  g_return_if_fail (SM_IS_SESSION_WATCH (self));
  if (self->started)
    return;
  self->started = TRUE;
  self->cancellable = g_cancellable_new ();
  if (self->on_screen_lock || self->on_suspend)
    g_bus_get (G_BUS_TYPE_SYSTEM, self->cancellable, on_system_bus, self);
  if (self->on_screen_lock)
    g_bus_get (G_BUS_TYPE_SESSION, self->cancellable, on_session_bus, self);
}

void
sm_session_watch_stop (SmSessionWatch *self)
{
  g_return_if_fail (SM_IS_SESSION_WATCH (self));
  if (!self->started)
    return;
  self->started = FALSE;
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  if (self->session_lookup != NULL)
    g_cancellable_cancel (self->session_lookup);
  g_clear_object (&self->session_lookup);

  forget_session (self);
  release_inhibitor (self);
  if (self->system != NULL)
    {
      if (self->sleep_sub)
        g_dbus_connection_signal_unsubscribe (self->system, self->sleep_sub);
      self->sleep_sub = 0;
      g_clear_handle_id (&self->logind_watch, g_bus_unwatch_name);
      g_clear_object (&self->system);
    }
  if (self->session != NULL)
    {
      for (guint i = 0; i < G_N_ELEMENTS (screensavers); i++)
        {
          if (self->saver_sub[i])
            g_dbus_connection_signal_unsubscribe (self->session, self->saver_sub[i]);
          self->saver_sub[i] = 0;
          g_clear_handle_id (&self->saver_watch[i], g_bus_unwatch_name);
        }
      g_clear_object (&self->session);
    }
}
