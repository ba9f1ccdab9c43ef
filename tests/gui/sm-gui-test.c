/* sm-gui-test.c: helpers of the GUI tests. */
#include "sm-gui-test.h"

#include <string.h>

static GDBusConnection *
bus (void)
{
  g_autoptr(GError) error = NULL;
  GDBusConnection *c = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  return c;
}

static gboolean
name_has_owner (const char *name)
{
  g_autoptr(GDBusConnection) c = bus ();
  g_autoptr(GVariant) r = g_dbus_connection_call_sync (c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                       "org.freedesktop.DBus", "NameHasOwner",
                                                       g_variant_new ("(s)", name), G_VARIANT_TYPE ("(b)"),
                                                       G_DBUS_CALL_FLAGS_NONE, 5000, NULL, NULL);
  gboolean has = FALSE;
  if (r != NULL)
    g_variant_get (r, "(b)", &has);
  return has;
}

GSubprocess *
sm_gui_test_start_watcher (void)
{
  g_autoptr(GError) error = NULL;
  GSubprocess *p = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error, "status-notifier-watcher", NULL);
  gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * 1000;

  g_assert_no_error (error);
  while (!name_has_owner ("org.kde.StatusNotifierWatcher"))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (20 * 1000);
    }
  return p;
}

static char *
registered_item (void)
{
  g_autoptr(GDBusConnection) c = bus ();
  g_autoptr(GVariant) r = g_dbus_connection_call_sync (
      c, "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.freedesktop.DBus.Properties", "Get",
      g_variant_new ("(ss)", "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL, NULL);
  g_autoptr(GVariant) v = NULL;
  g_autofree const char **items = NULL;
  char *first = NULL;

  if (r == NULL)
    return NULL;
  g_variant_get (r, "(v)", &v);
  items = g_variant_get_strv (v, NULL);
  if (items[0] != NULL)
    {
      /* "busname" or "busname/path" */
      const char *slash = strchr (items[0], '/');
      first = slash ? g_strndup (items[0], (gsize) (slash - items[0])) : g_strdup (items[0]);
    }
  return first;
}

GSubprocess *
sm_gui_test_start_tray (const char * const *envp, char **bus_name)
{
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  GSubprocess *p;
  gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * 1000;
  const char *tray = g_getenv ("SM_TRAY");

  g_assert_nonnull (tray);
  for (guint i = 0; envp && envp[i]; i++)
    {
      g_auto(GStrv) kv = g_strsplit (envp[i], "=", 2);
      g_subprocess_launcher_setenv (l, kv[0], kv[1] ? kv[1] : "", TRUE);
    }
  p = g_subprocess_launcher_spawn (l, &error, tray, NULL);
  g_assert_no_error (error);
  while ((*bus_name = registered_item ()) == NULL)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
    }
  return p;
}

static GVariant *
layout (const char *bus_name)
{
  g_autoptr(GDBusConnection) c = bus ();
  const char *props[] = { "label", "enabled", "visible", NULL };
  g_autoptr(GError) error = NULL;
  GVariant *r = g_dbus_connection_call_sync (c, bus_name, SM_TRAY_MENU_PATH, "com.canonical.dbusmenu", "GetLayout",
                                             g_variant_new ("(ii^as)", 0, -1, props),
                                             G_VARIANT_TYPE ("(u(ia{sv}av))"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL,
                                             &error);
  g_assert_no_error (error);
  return r;
}

/* "id=label" of each item in @children (the av of a dbusmenu layout). */
static GPtrArray *
items_of (GVariant *children)
{
  GPtrArray *items = g_ptr_array_new_with_free_func (g_free);

  for (gsize i = 0; i < g_variant_n_children (children); i++)
    {
      g_autoptr(GVariant) boxed = g_variant_get_child_value (children, i);
      g_autoptr(GVariant) child = g_variant_get_variant (boxed);
      g_autoptr(GVariant) props = g_variant_get_child_value (child, 1);
      gint32 id = 0;
      const char *label = "";

      g_variant_get_child (child, 0, "i", &id);
      g_variant_lookup (props, "label", "&s", &label);
      g_ptr_array_add (items, g_strdup_printf ("%d=%s", id, label));
    }
  return items;
}

GPtrArray *
sm_gui_test_menu_items (const char *bus_name)
{
  g_autoptr(GVariant) r = layout (bus_name);
  g_autoptr(GVariant) root = g_variant_get_child_value (r, 1);
  g_autoptr(GVariant) children = g_variant_get_child_value (root, 2);

  return items_of (children);
}

/* The top-level item labelled @label in @bus_name's menu (its "(ia{sv}av)"),
 * or NULL. */
static GVariant *
top_item (const char *bus_name, const char *label)
{
  g_autoptr(GVariant) r = layout (bus_name);
  g_autoptr(GVariant) root = g_variant_get_child_value (r, 1);
  g_autoptr(GVariant) children = g_variant_get_child_value (root, 2);

  for (gsize i = 0; i < g_variant_n_children (children); i++)
    {
      g_autoptr(GVariant) boxed = g_variant_get_child_value (children, i);
      g_autoptr(GVariant) child = g_variant_get_variant (boxed);
      g_autoptr(GVariant) props = g_variant_get_child_value (child, 1);
      const char *item_label = "";

      g_variant_lookup (props, "label", "&s", &item_label);
      if (g_strcmp0 (item_label, label) == 0)
        return g_steal_pointer (&child);
    }
  return NULL;
}

GPtrArray *
sm_gui_test_submenu_items (const char *bus_name, const char *parent_label)
{
  g_autoptr(GVariant) parent = top_item (bus_name, parent_label);
  g_autoptr(GVariant) sub = NULL;

  if (parent == NULL)
    return g_ptr_array_new_with_free_func (g_free);
  sub = g_variant_get_child_value (parent, 2);
  return items_of (sub);
}

static const char *
label_of (const char *item)
{
  return strchr (item, '=') + 1;
}

char *
sm_gui_test_wait_status (const char *bus_name, const char *needle, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      g_autoptr(GPtrArray) items = sm_gui_test_menu_items (bus_name);
      const char *status;

      g_assert_cmpuint (items->len, >, 0);
      status = label_of (items->pdata[0]);
      if (strstr (status, needle) != NULL || g_get_monotonic_time () > deadline)
        return g_strdup (status);
      g_usleep (100 * 1000);
    }
}

gboolean
sm_gui_test_menu_item (const char *bus_name, const char *label, int *id, gboolean *visible, gboolean *enabled)
{
  g_autoptr(GVariant) item = top_item (bus_name, label);
  g_autoptr(GVariant) props = NULL;

  if (item == NULL)
    return FALSE;
  props = g_variant_get_child_value (item, 1);
  /* dbusmenu leaves out "visible" and "enabled" when TRUE. */
  if (id != NULL)
    g_variant_get_child (item, 0, "i", id);
  if (visible != NULL && !g_variant_lookup (props, "visible", "b", visible))
    *visible = TRUE;
  if (enabled != NULL && !g_variant_lookup (props, "enabled", "b", enabled))
    *enabled = TRUE;
  return TRUE;
}

int
sm_gui_test_menu_id (const char *bus_name, const char *label)
{
  int id = -1;

  return sm_gui_test_menu_item (bus_name, label, &id, NULL, NULL) ? id : -1;
}

void
sm_gui_test_click_when_enabled (const char *bus_name, const char *label, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean visible = FALSE, enabled = FALSE;
  int id = -1;

  while (!sm_gui_test_menu_item (bus_name, label, &id, &visible, &enabled) || !visible || !enabled)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the tray menu item “%s” was not shown and enabled within %u ms", label, timeout_ms);
      g_usleep (50 * 1000);
    }
  sm_gui_test_menu_click (bus_name, id);
}

void
sm_gui_test_menu_click (const char *bus_name, int id)
{
  g_autoptr(GDBusConnection) c = bus ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) r = g_dbus_connection_call_sync (
      c, bus_name, SM_TRAY_MENU_PATH, "com.canonical.dbusmenu", "Event",
      g_variant_new ("(isvu)", id, "clicked", g_variant_new_string (""), 0), NULL, G_DBUS_CALL_FLAGS_NONE, 5000,
      NULL, &error);
  g_assert_no_error (error);
}

void
sm_gui_test_screenshot (const char *name, int width, int height)
{
  const char *dir = g_getenv ("SM_SCREENSHOT_DIR");
  g_autofree char *path = NULL;
  g_autofree char *crop = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) p = NULL;

  if (dir == NULL || *dir == '\0')
    return;
  g_mkdir_with_parents (dir, 0755);
  path = g_strdup_printf ("%s/%s.png", dir, name);
  crop = width > 0 ? g_strdup_printf ("%dx%d+0+0", width, height) : g_strdup ("100%");
  /* 8-bit palette keeps the committed PNGs small. */
  p = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error, "import", "-window", "root", "-crop", crop, "+repage",
                        "-colors", "256", "-depth", "8", path, NULL);
  g_assert_no_error (error);
  g_subprocess_wait_check (p, NULL, &error);
  g_assert_no_error (error);
  if (g_test_verbose ())
    g_printerr ("screenshot: %s\n", path);
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer data)
{
  *(gboolean *) data = TRUE;
}

int
sm_gui_test_wait_exit (GSubprocess *process, guint timeout_ms)
{
  gboolean done = FALSE, timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, on_timeout, &timed_out);

  g_subprocess_wait_async (process, NULL, on_exited, &done);
  while (!done && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  g_assert_true (done);
  return g_subprocess_get_if_exited (process) ? g_subprocess_get_exit_status (process) : -1;
}
