/* securemail-setup: the setup assistant as its own program (also opened
 * from the tray).  `securemail-setup [--config FILE]`. */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-gnupg-tool.h"
#include "sm-gui.h"
#include "sm-setup-assistant.h"

static char *opt_config;

static void
on_activate (GtkApplication *app)
{
  GList *windows = gtk_application_get_windows (app);
  g_autoptr(SmSetupAssistant) setup = NULL;

  if (windows != NULL)
    {
      gtk_window_present (windows->data);
      return;
    }
  setup = sm_setup_assistant_new (app, opt_config);
  gtk_widget_show (GTK_WIDGET (sm_setup_assistant_get_window (setup)));
}

int
main (int argc, char **argv)
{
  g_autoptr(GtkApplication) app = NULL;
  const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config, N_("Settings file to write"), N_("FILE") },
    { NULL }
  };

  sm_gui_init_i18n ();
  sm_gnupg_init ();   /* before GTK's threads: see certstore/sm-gnupg-tool.c */
  app = gtk_application_new ("org.securemail.Setup", G_APPLICATION_DEFAULT_FLAGS);
  g_application_add_main_option_entries (G_APPLICATION (app), entries);
  g_signal_connect (app, "activate", G_CALLBACK (on_activate), NULL);
  return g_application_run (G_APPLICATION (app), argc, argv);
}
