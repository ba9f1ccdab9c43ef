/* sm-dbus-service.h: the daemon's D-Bus interface (org.securemail.Proxy1)
 * on the session bus, for the CLI, the tray and the GUI. */
#pragma once

#include <gio/gio.h>

#include "sm-server.h"

G_BEGIN_DECLS

#define SM_DBUS_NAME        "org.securemail.Proxy"
#define SM_DBUS_OBJECT_PATH "/org/securemail/Proxy"

#define SM_TYPE_DBUS_SERVICE (sm_dbus_service_get_type ())
G_DECLARE_FINAL_TYPE (SmDbusService, sm_dbus_service, SM, DBUS_SERVICE, GObject)

/* The trust status of a ListMessages entry (an X-SecureMail-Trust value,
 * SPEC.md "Trust status of a message") in a few translated words for the
 * CLI, the tray and the main window; unknown values come back unchanged. */
const char *sm_dbus_trust_words (const char *trust);

/* Exports the interface for @server on @connection and keeps it current. */
SmDbusService *sm_dbus_service_new (SmServer *server, GDBusConnection *connection, GError **error);

G_END_DECLS
