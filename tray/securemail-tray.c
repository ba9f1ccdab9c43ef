/* securemail-tray: the tray icon.  `securemail-tray [--config FILE] [--open]`
 * (--open also shows the main window: the desktop file's action). */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-gnupg-tool.h"
#include "sm-gui.h"
#include "sm-main-window.h"
#include "sm-tray.h"

static char *opt_config;
static gboolean opt_open;
static SmTray *tray;

static void
on_window_destroy (GtkWidget *window, GtkApplication *app)
{
  if (g_object_get_data (G_OBJECT (app), "sm-main-window") == window)
    g_object_set_data (G_OBJECT (app), "sm-main-window", NULL);
}

static GtkWindow *
main_window (GtkApplication *app)
{
  GtkWindow *window = g_object_get_data (G_OBJECT (app), "sm-main-window");

  if (window == NULL)
    {
      window = sm_main_window_new (app, opt_config);
      g_object_set_data (G_OBJECT (app), "sm-main-window", window);
      g_signal_connect (window, "destroy", G_CALLBACK (on_window_destroy), app);
    }
  return window;
}

static void
open_window (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  gtk_window_present (main_window (user_data));
}

/* app.open-page("messages"): the window at one page (the tray's "Mark a
 * message as [PERSONAL]" and its recent messages; "receipts" from the
 * Receipts item and a receipt notification, "outbox" from a delivery
 * failure notification). */
static void
open_page (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GtkWindow *window = main_window (user_data);

  sm_main_window_show_page (window, g_variant_get_string (param, NULL));
  gtk_window_present (window);
}

static void
on_startup (GtkApplication *app)
{
  static const GActionEntry actions[] = {
    { "open", open_window, NULL, NULL, NULL, { 0 } },
    { "open-page", open_page, "s", NULL, NULL, { 0 } },
  };

  g_action_map_add_action_entries (G_ACTION_MAP (app), actions, G_N_ELEMENTS (actions), app);
  tray = sm_tray_new (app, opt_config);
  /* The tray has no window of its own: keep running until Quit. */
  g_application_hold (G_APPLICATION (app));
}

static void
on_activate (GtkApplication *app)
{
  if (opt_open)
    g_action_group_activate_action (G_ACTION_GROUP (app), "open", NULL);
}

int
main (int argc, char **argv)
{
  g_autoptr(GtkApplication) app = NULL;
  const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config, N_("Settings file"), N_("FILE") },
    { "open", 0, 0, G_OPTION_ARG_NONE, &opt_open, N_("Also open the SecureMail window"), NULL },
    { NULL }
  };
  int status;

  sm_gui_init_i18n ();
  sm_gnupg_init ();   /* before GTK's threads: see certstore/sm-gnupg-tool.c */
  app = gtk_application_new ("org.securemail.Tray", G_APPLICATION_DEFAULT_FLAGS);
  g_application_add_main_option_entries (G_APPLICATION (app), entries);
  g_signal_connect (app, "startup", G_CALLBACK (on_startup), NULL);
  g_signal_connect (app, "activate", G_CALLBACK (on_activate), NULL);
  status = g_application_run (G_APPLICATION (app), argc, argv);
  g_clear_object (&tray);
  return status;
}
