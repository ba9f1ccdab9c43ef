/* sm-main-window.h: the SecureMail window: Messages (the daemon's recent
 * secure messages, with the [PERSONAL] toggle), Receipts, Outbox (retry,
 * delete), Settings, Keys and
 * certificates, Diagnostics (ui/main-window.ui). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* A new window for @config_path (NULL = default); not shown yet. */
GtkWindow  *sm_main_window_new (GtkApplication *app, const char *config_path);

/* The builder of ui/main-window.ui (tests). */
GtkBuilder *sm_main_window_get_builder (GtkWindow *window);
/* Shows "messages", "receipts", "outbox", "settings", "keys" or
 * "diagnostics". */
void        sm_main_window_show_page (GtkWindow *window, const char *page);
/* Starts the doctor checks (what the "Run the checks" button does). */
void        sm_main_window_run_checks (GtkWindow *window);
/* TRUE while checks, a key job, a [PERSONAL] marking or an Outbox action run. */
gboolean    sm_main_window_is_busy (GtkWindow *window);

G_END_DECLS
