/* sm-gui.h: what the tray, securemail-setup and the tests share: start-up
 * (translations, the GResource, the style sheet) and small helpers. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define SM_GUI_RESOURCE_PREFIX "/org/securemail/Desktop"

/* Where the .mo files are: $SECUREMAIL_LOCALEDIR (tests point it at the
 * build tree) or the installed LOCALEDIR. */
const char *sm_gui_localedir (void);

/* setlocale(), bindtextdomain() with sm_gui_localedir().  Call before
 * gtk_init() / g_application_run(). */
void sm_gui_init_i18n (void);

/* Registers the GResource and the style sheet.  Call after gtk_init(). */
void sm_gui_init (void);

/* A GtkBuilder for one .ui file of the resource ("tray-menu.ui"), with the
 * translation domain set.  Returns a new builder. */
GtkBuilder *sm_gui_builder_new (const char *ui_name);

/* Puts @text on the clipboard of @widget's display. */
void sm_gui_copy_text (GtkWidget *widget, const char *text);

/* A modal message for the user, parented to @parent. */
void sm_gui_message (GtkWindow *parent, GtkMessageType type, const char *primary, const char *secondary);

/* Asks for one line of text in a modal dialog under @parent (may be NULL),
 * hidden as it is typed when @hide.  Returns it (free with
 * sm_gui_secret_free()), or NULL when cancelled. */
char *sm_gui_ask_secret (GtkWindow *parent, const char *prompt, gboolean hide);
/* Whether the user's autostart file for the tray exists. */
char *sm_gui_autostart_path (void);
/* Writes (@enable) or removes $XDG_CONFIG_HOME/autostart/securemail-tray.desktop. */
gboolean sm_gui_write_autostart (gboolean enable, GError **error);

/* Runs @func(@args) in a worker thread; @args is copied and wiped when freed
 * (it may hold a passphrase).  @func returns a message for the user and may
 * set *@extra (e.g. a recovery code, wiped after use). */
typedef char *(*SmGuiJobFunc) (const char * const *args, char **extra, GError **error);
void  sm_gui_job_start  (gpointer source, SmGuiJobFunc func, const char * const *args,
                         GAsyncReadyCallback callback, gpointer user_data);
/* Returns the message, or NULL with @error.  *@extra is the caller's to wipe
 * (sm_gui_secret_free). */
char *sm_gui_job_finish (GAsyncResult *result, char **extra, GError **error);

/* Wipes and frees a string that may hold a secret. */
void sm_gui_secret_free (char *secret);

G_END_DECLS
