/* securemail-proxy: the SecureMail daemon (SPEC.md "Programs").
 *
 * securemail-proxy [--config FILE] [--verbose]: runs in the foreground and
 * logs to stderr.  A bad config exits 2 with one line naming the key. */
#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <stdio.h>
#include <sys/prctl.h>

#include "sm-dbus-service.h"
#include "sm-gnupg-tool.h"
#include "sm-server.h"
#include "sm-tls.h"

#define EXIT_CONFIG 2

typedef struct {
  GMainLoop *loop;
  SmServer *server;
  SmDbusService *dbus;
  guint name_id;
  gboolean name_lost;
} App;

static gboolean
on_signal (gpointer user_data)
{
  App *app = user_data;
  g_message ("Stopping");
  g_main_loop_quit (app->loop);
  return G_SOURCE_CONTINUE;
}

/* SIGUSR1: the state of every session in the log, for the helpdesk and
 * for debugging a stalled client (never content or secrets). */
static gboolean
on_usr1 (gpointer user_data)
{
  App *app = user_data;
  sm_server_log_sessions (app->server);
  return G_SOURCE_CONTINUE;
}

static void
on_name_lost (GDBusConnection *connection, const char *name, gpointer user_data)
{
  App *app = user_data;
  if (connection == NULL)
    g_message ("No session bus: the tray and “securemail status” cannot reach this proxy");
  else
    {
      g_printerr (_("securemail-proxy: another securemail-proxy already runs in this desktop session (%s is taken)\n"), name);
      app->name_lost = TRUE;
      g_main_loop_quit (app->loop);
    }
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  gboolean verbose = FALSE;
  g_autoptr(GOptionContext) ctx = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autofree char *data_dir = NULL;
  g_autoptr(GDBusConnection) bus = NULL;
  App app = { 0 };
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, N_("Read settings from FILE"), N_("FILE") },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, N_("Log debugging details (never secrets)"), NULL },
    { NULL }
  };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  /* Passwords pass through this process's memory: no core dumps, no
   * ptrace by other processes of the user (DESIGN.md house style 5). */
#ifndef __SANITIZE_ADDRESS__
  prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
#else
  /* LeakSanitizer inspects the process the way a debugger does, which a
   * non-dumpable process forbids: sanitizer builds (tests only) keep it. */
#endif

  ctx = g_option_context_new (NULL);
  g_option_context_set_summary (ctx, _("The SecureMail local IMAP/SMTP proxy."));
  g_option_context_add_main_entries (ctx, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("securemail-proxy: %s\n", error->message);
      return EXIT_CONFIG;
    }
  /* Before any thread: it sets an environment variable (see there). */
  sm_gnupg_init ();
  /* SPEC.md: logs go to stderr, all of them (GLib sends debug to stdout). */
  g_log_writer_default_set_use_stderr (TRUE);
  if (verbose)
    g_setenv ("G_MESSAGES_DEBUG", "securemail securemail-imap securemail-certstore", TRUE);

  g_debug ("securemail-proxy %s starting", PACKAGE_VERSION);
  config = sm_config_load (config_path, &error);
  if (config == NULL)
    {
      g_printerr ("securemail-proxy: %s\n", error->message);
      return EXIT_CONFIG;
    }

  data_dir = sm_config_data_dir ();
  cert = sm_tls_local_certificate (data_dir, &error);
  if (cert == NULL)
    {
      g_printerr ("securemail-proxy: %s\n", error->message);
      return 1;
    }

  app.server = sm_server_new (g_steal_pointer (&config), cert);
  if (!sm_server_start (app.server, &error))
    {
      g_printerr ("securemail-proxy: %s\n", error->message);
      g_object_unref (app.server);
      return 1;
    }

  app.loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, on_signal, &app);
  g_unix_signal_add (SIGINT, on_signal, &app);
  g_unix_signal_add (SIGUSR1, on_usr1, &app);

  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  if (bus != NULL)
    {
      app.dbus = sm_dbus_service_new (app.server, bus, &error);
      if (app.dbus == NULL)
        g_warning ("Cannot export the D-Bus interface: %s", error->message);
      else
        app.name_id = g_bus_own_name_on_connection (bus, SM_DBUS_NAME, G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE,
                                                    NULL, on_name_lost, &app, NULL);
    }
  else
    g_message ("No session bus (%s): the tray and “securemail status” cannot reach this proxy",
               error->message);
  g_clear_error (&error);

  g_message ("Listening: IMAP %s:%u, SMTP %s:%u, for %s", sm_server_get_config (app.server)->listen_imap.host,
             sm_server_get_imap_port (app.server), sm_server_get_config (app.server)->listen_smtp.host,
             sm_server_get_smtp_port (app.server), sm_server_get_config (app.server)->address);
  g_main_loop_run (app.loop);

  if (app.name_id)
    g_bus_unown_name (app.name_id);
  sm_server_stop (app.server);
  g_clear_object (&app.dbus);
  g_clear_object (&app.server);
  g_main_loop_unref (app.loop);
  return app.name_lost ? 1 : 0;
}
