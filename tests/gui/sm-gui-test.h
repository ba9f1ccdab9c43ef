/* sm-gui-test.h: helpers of the GUI tests: a StatusNotifierWatcher on the
 * test's session bus, the tray's menu read over com.canonical.dbusmenu, and
 * screenshots of the Xvfb screen. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_GUI_TEST_TIMEOUT_MS 15000
#define SM_TRAY_MENU_PATH "/org/ayatana/NotificationItem/securemail_tray/Menu"

/* Starts status-notifier-watcher and waits for its bus name. */
GSubprocess *sm_gui_test_start_watcher (void);

/* Starts securemail-tray ($SM_TRAY) with @envp ("NAME=value", may be NULL)
 * and waits until the watcher lists its StatusNotifierItem; returns the
 * tray's unique bus name in @bus_name. */
GSubprocess *sm_gui_test_start_tray (const char * const *envp, char **bus_name);

/* The top-level menu items as "id=label" strings (separators have no
 * label: "id="). */
GPtrArray *sm_gui_test_menu_items (const char *bus_name);
/* The same for the submenu of the top-level item labelled @parent_label
 * (empty when there is none). */
GPtrArray *sm_gui_test_submenu_items (const char *bus_name, const char *parent_label);
/* The label of the first item, polled until it contains @needle; returns it
 * (or the last label seen when the time runs out). */
char *sm_gui_test_wait_status (const char *bus_name, const char *needle, guint timeout_ms);
/* Finds the top-level item labelled @label; FALSE when there is none.
 * Otherwise *id, *visible and *enabled (each may be NULL) are its dbusmenu
 * id and whether it is shown and can be clicked. */
gboolean sm_gui_test_menu_item (const char *bus_name, const char *label, int *id, gboolean *visible,
                                gboolean *enabled);
/* The dbusmenu id of the item labelled @label, or -1. */
int sm_gui_test_menu_id (const char *bus_name, const char *label);
/* Sends a dbusmenu "clicked" event. */
void sm_gui_test_menu_click (const char *bus_name, int id);
/* Clicks the top-level item labelled @label once it is shown and enabled
 * (the tray greys Lock/Unlock while its last call is on its way, and ignores
 * a click then); fails the test after @timeout_ms. */
void sm_gui_test_click_when_enabled (const char *bus_name, const char *label, guint timeout_ms);

/* Saves the screen's top-left @width x @height (0 = all) as
 * $SM_SCREENSHOT_DIR/@name.png (skipped without $SM_SCREENSHOT_DIR). */
void sm_gui_test_screenshot (const char *name, int width, int height);

/* Waits until @process exits (fails the test after @timeout_ms); returns its
 * exit status. */
int sm_gui_test_wait_exit (GSubprocess *process, guint timeout_ms);

G_END_DECLS
