/* sm-setup-assistant.h: securemail-setup, the GtkAssistant that writes
 * securemail.conf, stores the provider password (or signs in with OAuth2,
 * or takes a client certificate and its PIN), tests the connection,
 * makes or brings keys, shows the mail client settings and turns on
 * autostart.  Pages and labels are in ui/setup-assistant.ui. */
#pragma once

#include <gtk/gtk.h>

#include "sm-autoconfig.h"

G_BEGIN_DECLS

#define SM_TYPE_SETUP_ASSISTANT (sm_setup_assistant_get_type ())
G_DECLARE_FINAL_TYPE (SmSetupAssistant, sm_setup_assistant, SM, SETUP_ASSISTANT, GObject)

/* A new assistant for @config_path (NULL = the default path); the window is
 * not shown yet.  The window keeps the object alive until it is destroyed;
 * the returned reference is the caller's. */
SmSetupAssistant *sm_setup_assistant_new (GtkApplication *app, const char *config_path);

GtkAssistant *sm_setup_assistant_get_window  (SmSetupAssistant *self);
/* The builder of ui/setup-assistant.ui: tests fill entries through it. */
GtkBuilder   *sm_setup_assistant_get_builder (SmSetupAssistant *self);

/* TRUE while a connection test or key job runs. */
gboolean      sm_setup_assistant_is_busy     (SmSetupAssistant *self);
/* TRUE after a connection test passed (and a password is stored). */
gboolean      sm_setup_assistant_test_passed (SmSetupAssistant *self);
/* The lookup of the provider's settings on step 3 (autoconfig, SRV): tests
 * point it at their own server and resolver before reaching that page. */
SmAutoconfig *sm_setup_assistant_get_autoconfig (SmSetupAssistant *self);
/* TRUE while that lookup runs. */
gboolean      sm_setup_assistant_is_looking_up (SmSetupAssistant *self);
/* TRUE after Apply wrote the settings. */
gboolean      sm_setup_assistant_is_done     (SmSetupAssistant *self);

/* What the "Save the Thunderbird settings file" button does, without the
 * file chooser. */
gboolean      sm_setup_assistant_export_autoconfig (SmSetupAssistant *self, const char *path, GError **error);

G_END_DECLS
