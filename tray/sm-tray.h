/* sm-tray.h: the tray indicator.  A StatusNotifierItem through
 * libayatana-appindicator3, which falls back to a GtkStatusIcon by itself
 * when no StatusNotifierWatcher runs.  It follows securemail-proxy over
 * D-Bus (org.securemail.Proxy1 and PropertiesChanged). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define SM_TYPE_TRAY (sm_tray_get_type ())
G_DECLARE_FINAL_TYPE (SmTray, sm_tray, SM, TRAY, GObject)

typedef enum {
  SM_TRAY_STATE_NOT_RUNNING,   /* no proxy on the bus */
  SM_TRAY_STATE_OK,
  SM_TRAY_STATE_ATTENTION,     /* messages waiting in the queue */
  SM_TRAY_STATE_ERROR,         /* provider unreachable, or a key expiring (KeyWarning) */
  SM_TRAY_STATE_LOCKED,        /* the unlock gate is closed */
} SmTrayState;

/* Secure messages in the "Recent secure messages" submenu (issue 6). */
#define SM_TRAY_RECENT_MESSAGES     10
/* Characters of a Subject shown there; longer ones end in "…". */
#define SM_TRAY_MAX_SUBJECT_CHARS   48

/* The indicator for @app; @config_path NULL = the default settings. */
SmTray     *sm_tray_new (GtkApplication *app, const char *config_path);
SmTrayState sm_tray_get_state (SmTray *self);
GtkMenu    *sm_tray_get_menu (SmTray *self);

G_END_DECLS
