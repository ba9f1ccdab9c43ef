/* sm-dbus-service.c: the daemon's D-Bus interface. */
#include "config.h"

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"

struct _SmDbusService {
  GObject parent_instance;
  SmServer *server;
  SmDbusProxy1 *skeleton;
  gulong status_handler;
};

G_DEFINE_FINAL_TYPE (SmDbusService, sm_dbus_service, G_TYPE_OBJECT)

static void
sm_dbus_service_finalize (GObject *object)
{
  SmDbusService *self = SM_DBUS_SERVICE (object);

  if (self->status_handler)
    g_signal_handler_disconnect (self->server, self->status_handler);
  if (self->skeleton)
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->skeleton));
  g_clear_object (&self->skeleton);
  g_clear_object (&self->server);
  G_OBJECT_CLASS (sm_dbus_service_parent_class)->finalize (object);
}

static void
sm_dbus_service_class_init (SmDbusServiceClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_dbus_service_finalize;
}

static void
sm_dbus_service_init (SmDbusService *self)
{
}

static void
update (SmDbusService *self)
{
  SmDbusProxy1 *p = self->skeleton;

  sm_dbus_proxy1_set_online (p, sm_server_get_upstream_ok (self->server));
  sm_dbus_proxy1_set_last_error (p, sm_server_get_last_error (self->server));
  sm_dbus_proxy1_set_imap_sessions (p, sm_server_get_imap_session_count (self->server));
  sm_dbus_proxy1_set_smtp_sessions (p, sm_server_get_smtp_session_count (self->server));
}

SmDbusService *
sm_dbus_service_new (SmServer *server, GDBusConnection *connection, GError **error)
{
  g_autoptr(SmDbusService) self = g_object_new (SM_TYPE_DBUS_SERVICE, NULL);
  const SmConfig *config = sm_server_get_config (server);
  g_autofree char *imap = g_strdup_printf ("%s:%u", config->listen_imap.host, sm_server_get_imap_port (server));
  g_autofree char *smtp = g_strdup_printf ("%s:%u", config->listen_smtp.host, sm_server_get_smtp_port (server));

  self->server = g_object_ref (server);
  self->skeleton = sm_dbus_proxy1_skeleton_new ();
  sm_dbus_proxy1_set_account (self->skeleton, config->address);
  sm_dbus_proxy1_set_version (self->skeleton, PACKAGE_VERSION);
  sm_dbus_proxy1_set_imap_listen (self->skeleton, imap);
  sm_dbus_proxy1_set_smtp_listen (self->skeleton, smtp);
  sm_dbus_proxy1_set_queue_size (self->skeleton, 0);
  sm_dbus_proxy1_set_locked (self->skeleton, FALSE);
  update (self);
  self->status_handler = g_signal_connect_swapped (server, "status-changed", G_CALLBACK (update), self);
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->skeleton), connection,
                                         SM_DBUS_OBJECT_PATH, error))
    return NULL;
  return g_steal_pointer (&self);
}
