/* sm-tray.c: the tray indicator. */
#include "config.h"

#include <glib/gi18n.h>
#include <libayatana-appindicator/app-indicator.h>

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-gui-settings.h"
#include "sm-gui.h"
#include "sm-main-window.h"
#include "sm-setup-assistant.h"
#include "sm-tray.h"

/* Standard icon names (Adwaita and every freedesktop theme have them). */
#define ICON_OK        "mail-send-receive"
#define ICON_ATTENTION "mail-unread"
#define ICON_ERROR     "dialog-error"

struct _SmTray {
  GObject parent_instance;
  GtkApplication *app;        /* not owned: it owns us */
  char *config_path;
  GtkBuilder *builder;
  AppIndicator *indicator;
  SmDbusProxy1 *proxy;
  GCancellable *cancellable;
  SmTrayState state;
  gboolean was_online;
  GtkWindow *main_window;     /* weak */
};

G_DEFINE_TYPE (SmTray, sm_tray, G_TYPE_OBJECT)

static GtkWidget *
item (SmTray *self, const char *id)
{
  return GTK_WIDGET (gtk_builder_get_object (self->builder, id));
}

/* The provider's host, for "connected to <provider>". */
static char *
provider_name (SmTray *self)
{
  g_autoptr(SmGuiSettings) s = sm_gui_settings_load (self->config_path, NULL);
  g_autoptr(SmConfig) config = s ? sm_gui_settings_to_config (s, NULL) : NULL;

  if (config != NULL && config->imap.host != NULL)
    return g_strdup (config->imap.host);
  return NULL;
}

static void
notify_failure (SmTray *self, const char *error)
{
  g_autoptr(GNotification) n = g_notification_new (_("SecureMail cannot reach your provider"));

  g_notification_set_body (n, error && *error ? error : _("The provider does not answer. Mail waits until it is back."));
  g_notification_set_priority (n, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action (n, "app.open");
  g_application_send_notification (G_APPLICATION (self->app), "provider-unreachable", n);
}

static void
update (SmTray *self)
{
  g_autofree char *owner = self->proxy ? g_dbus_proxy_get_name_owner (G_DBUS_PROXY (self->proxy)) : NULL;
  g_autofree char *status = NULL;
  const char *icon = ICON_OK;
  AppIndicatorStatus ind_status = APP_INDICATOR_STATUS_ACTIVE;

  if (owner == NULL)
    {
      self->state = SM_TRAY_STATE_NOT_RUNNING;
      status = g_strdup (_("SecureMail is not running"));
      icon = ICON_ERROR;
      self->was_online = FALSE;
    }
  else if (!sm_dbus_proxy1_get_online (self->proxy))
    {
      const char *err = sm_dbus_proxy1_get_last_error (self->proxy);
      self->state = SM_TRAY_STATE_ERROR;
      status = g_strdup_printf (_("SecureMail: provider unreachable: %s"), err && *err ? err : _("no answer"));
      icon = ICON_ERROR;
      ind_status = APP_INDICATOR_STATUS_ATTENTION;
      if (self->was_online)
        notify_failure (self, err);
      self->was_online = FALSE;
    }
  else
    {
      g_autofree char *provider = provider_name (self);
      guint queued = sm_dbus_proxy1_get_queue_size (self->proxy);

      if (provider == NULL)
        provider = g_strdup (sm_dbus_proxy1_get_account (self->proxy));
      status = g_strdup_printf (_("SecureMail: connected to %s"), provider);
      self->state = SM_TRAY_STATE_OK;
      if (queued > 0)
        {
          g_autofree char *more = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%s, %u message waiting to be sent",
                                                                "%s, %u messages waiting to be sent", queued),
                                                   status, queued);
          g_free (status);
          status = g_steal_pointer (&more);
          self->state = SM_TRAY_STATE_ATTENTION;
          icon = ICON_ATTENTION;
          ind_status = APP_INDICATOR_STATUS_ATTENTION;
        }
      self->was_online = TRUE;
    }
  gtk_menu_item_set_label (GTK_MENU_ITEM (item (self, "status_item")), status);
  app_indicator_set_attention_icon_full (self->indicator, icon, status);
  app_indicator_set_icon_full (self->indicator, icon, status);
  app_indicator_set_title (self->indicator, status);
  app_indicator_set_status (self->indicator, ind_status);
  g_debug ("state: %s", status);
}

static void
on_proxy_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GError) error = NULL;

  self->proxy = sm_dbus_proxy1_proxy_new_for_bus_finish (result, &error);
  if (self->proxy == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("cannot follow securemail-proxy: %s", error->message);
      update (self);
      return;
    }
  g_signal_connect_swapped (self->proxy, "g-properties-changed", G_CALLBACK (update), self);
  g_signal_connect_swapped (self->proxy, "notify::g-name-owner", G_CALLBACK (update), self);
  update (self);
}

static void
on_open (GtkMenuItem *mi, SmTray *self)
{
  g_action_group_activate_action (G_ACTION_GROUP (self->app), "open", NULL);
}

static void
on_setup (GtkMenuItem *mi, SmTray *self)
{
  g_autoptr(SmSetupAssistant) setup = sm_setup_assistant_new (self->app, self->config_path);
  gtk_window_present (GTK_WINDOW (sm_setup_assistant_get_window (setup)));
}

static void
on_help (GtkMenuItem *mi, SmTray *self)
{
  g_autoptr(SmGuiSettings) s = sm_gui_settings_load (self->config_path, NULL);
  g_autofree char *email = s ? sm_gui_settings_get (s, "admin", "contact_email") : NULL;
  g_autofree char *phone = s ? sm_gui_settings_get (s, "admin", "contact_phone") : NULL;
  g_autoptr(GString) body = g_string_new (NULL);

  if (email == NULL && phone == NULL)
    g_string_append (body, _("No contact is set up. Ask the person who set up this computer."));
  if (email != NULL)
    g_string_append_printf (body, _("E-mail: %s\n"), email);
  if (phone != NULL)
    g_string_append_printf (body, _("Phone: %s\n"), phone);
  g_string_append (body, _("\nTell them what the SecureMail icon says. Under Open SecureMail → Diagnostics you can "
                           "run the checks and write a support report for them."));
  sm_gui_message (NULL, GTK_MESSAGE_INFO, _("Help and contact"), body->str);
}

static void
on_quit (GtkMenuItem *mi, SmTray *self)
{
  g_application_quit (G_APPLICATION (self->app));
}

static void
on_connection_changed (AppIndicator *indicator, gboolean connected, SmTray *self)
{
  g_debug ("StatusNotifierWatcher %s", connected ? "found: StatusNotifierItem" : "absent: GtkStatusIcon fallback");
}

static void
sm_tray_dispose (GObject *object)
{
  SmTray *self = SM_TRAY (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->proxy);
  g_clear_object (&self->indicator);
  g_clear_object (&self->builder);
  G_OBJECT_CLASS (sm_tray_parent_class)->dispose (object);
}

static void
sm_tray_finalize (GObject *object)
{
  g_free (SM_TRAY (object)->config_path);
  G_OBJECT_CLASS (sm_tray_parent_class)->finalize (object);
}

static void
sm_tray_class_init (SmTrayClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = sm_tray_dispose;
  G_OBJECT_CLASS (klass)->finalize = sm_tray_finalize;
}

static void
sm_tray_init (SmTray *self)
{
  self->cancellable = g_cancellable_new ();
}

SmTray *
sm_tray_new (GtkApplication *app, const char *config_path)
{
  SmTray *self = g_object_new (SM_TYPE_TRAY, NULL);
  GtkMenu *menu;

  self->app = app;
  self->config_path = g_strdup (config_path);
  self->builder = sm_gui_builder_new ("tray-menu.ui");
  menu = GTK_MENU (gtk_builder_get_object (self->builder, "tray_menu"));

  g_signal_connect (item (self, "open_item"), "activate", G_CALLBACK (on_open), self);
  g_signal_connect (item (self, "setup_item"), "activate", G_CALLBACK (on_setup), self);
  g_signal_connect (item (self, "help_item"), "activate", G_CALLBACK (on_help), self);
  g_signal_connect (item (self, "quit_item"), "activate", G_CALLBACK (on_quit), self);

  self->indicator = app_indicator_new ("securemail-tray", ICON_OK, APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
  g_signal_connect (self->indicator, "connection-changed", G_CALLBACK (on_connection_changed), self);
  app_indicator_set_title (self->indicator, _("SecureMail"));
  app_indicator_set_menu (self->indicator, menu);
  app_indicator_set_status (self->indicator, APP_INDICATOR_STATUS_ACTIVE);
  update (self);

  sm_dbus_proxy1_proxy_new_for_bus (G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_NONE, SM_DBUS_NAME,
                                    SM_DBUS_OBJECT_PATH, self->cancellable, on_proxy_ready, g_object_ref (self));
  return self;
}

SmTrayState
sm_tray_get_state (SmTray *self)
{
  return self->state;
}

GtkMenu *
sm_tray_get_menu (SmTray *self)
{
  return GTK_MENU (gtk_builder_get_object (self->builder, "tray_menu"));
}
