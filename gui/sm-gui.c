/* sm-gui.c: start-up and helpers shared by the GUI programs. */
#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <locale.h>
#include <string.h>

#include "sm-gui.h"
#include "sm-ui-resources.h"

const char *
sm_gui_localedir (void)
{
  const char *dir = g_getenv ("SECUREMAIL_LOCALEDIR");
  return dir != NULL && *dir != '\0' ? dir : LOCALEDIR;
}

void
sm_gui_init_i18n (void)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, sm_gui_localedir ());
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

void
sm_gui_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done))
    {
      g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();
      /* Referencing the resource keeps its object (and constructor) in the
       * link of every program using this static library. */
      g_resources_register (sm_ui_get_resource ());
      gtk_css_provider_load_from_resource (css, SM_GUI_RESOURCE_PREFIX "/securemail.css");
      if (gdk_screen_get_default () != NULL)
        gtk_style_context_add_provider_for_screen (gdk_screen_get_default (), GTK_STYLE_PROVIDER (css),
                                                   GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
      g_once_init_leave (&done, 1);
    }
}

GtkBuilder *
sm_gui_builder_new (const char *ui_name)
{
  g_autofree char *path = g_strconcat (SM_GUI_RESOURCE_PREFIX "/", ui_name, NULL);
  GtkBuilder *builder = gtk_builder_new ();
  g_autoptr(GError) error = NULL;

  sm_gui_init ();
  gtk_builder_set_translation_domain (builder, GETTEXT_PACKAGE);
  if (!gtk_builder_add_from_resource (builder, path, &error))
    g_error ("%s: %s", path, error->message);   /* a build mistake, not a user problem */
  return builder;
}

void
sm_gui_copy_text (GtkWidget *widget, const char *text)
{
  GtkClipboard *clipboard = gtk_widget_get_clipboard (widget, GDK_SELECTION_CLIPBOARD);
  gtk_clipboard_set_text (clipboard, text, -1);
}

void
sm_gui_message (GtkWindow *parent, GtkMessageType type, const char *primary, const char *secondary)
{
  GtkWidget *dialog = gtk_message_dialog_new (parent, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              type, GTK_BUTTONS_CLOSE, "%s", primary);
  if (secondary != NULL)
    gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s", secondary);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_widget_destroy), NULL);
  gtk_widget_show (dialog);
}

char *
sm_gui_autostart_path (void)
{
  return g_build_filename (g_get_user_config_dir (), "autostart", "securemail-tray.desktop", NULL);
}

gboolean
sm_gui_write_autostart (gboolean enable, GError **error)
{
  g_autofree char *path = sm_gui_autostart_path ();
  g_autofree char *dir = g_path_get_dirname (path);
  /* The same content as the system-wide ui/securemail-tray-autostart.desktop;
   * a user file of the same name overrides that one (XDG autostart spec). */
  static const char contents[] =
      "[Desktop Entry]\n"
      "Type=Application\n"
      "Name=SecureMail\n"
      "Comment=Shows whether your secure mail is working\n"
      "Exec=securemail-tray\n"
      "Icon=mail-send-receive\n"
      "Terminal=false\n"
      "NoDisplay=true\n"
      "X-GNOME-Autostart-enabled=true\n";

  if (!enable)
    {
      if (g_unlink (path) != 0 && errno != ENOENT)
        {
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                       _("Could not remove %s: %s"), path, g_strerror (errno));
          return FALSE;
        }
      return TRUE;
    }
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   _("Could not create the folder %s: %s"), dir, g_strerror (errno));
      return FALSE;
    }
  return g_file_set_contents (path, contents, -1, error);
}

void
sm_gui_secret_free (char *secret)
{
  if (secret == NULL)
    return;
  explicit_bzero (secret, strlen (secret));
  g_free (secret);
}

/* ---- worker-thread jobs ------------------------------------------------- */

typedef struct {
  SmGuiJobFunc func;
  char **args;
  char *extra;
} Job;

static void
job_free (Job *job)
{
  for (guint i = 0; job->args && job->args[i]; i++)
    explicit_bzero (job->args[i], strlen (job->args[i]));
  g_strfreev (job->args);
  sm_gui_secret_free (job->extra);
  g_free (job);
}

static void
job_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Job *job = task_data;
  GError *error = NULL;
  char *message = job->func ((const char * const *) job->args, &job->extra, &error);

  if (message == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, message, g_free);
}

void
sm_gui_job_start (gpointer source, SmGuiJobFunc func, const char * const *args,
                  GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (source, NULL, callback, user_data);
  Job *job = g_new0 (Job, 1);

  job->func = func;
  job->args = g_strdupv ((char **) args);
  g_task_set_task_data (task, job, (GDestroyNotify) job_free);
  g_task_set_source_tag (task, sm_gui_job_start);
  g_task_run_in_thread (task, job_thread);
}

char *
sm_gui_job_finish (GAsyncResult *result, char **extra, GError **error)
{
  GTask *task = G_TASK (result);
  Job *job = g_task_get_task_data (task);

  g_return_val_if_fail (g_task_get_source_tag (task) == sm_gui_job_start, NULL);
  if (extra != NULL)
    *extra = g_steal_pointer (&job->extra);
  return g_task_propagate_pointer (task, error);
}

char *
sm_gui_ask_secret (GtkWindow *parent, const char *prompt, gboolean hide)
{
  GtkWidget *dialog = gtk_message_dialog_new (parent, GTK_DIALOG_MODAL, GTK_MESSAGE_QUESTION, GTK_BUTTONS_OK_CANCEL,
                                              "%s", prompt);
  GtkWidget *entry = gtk_entry_new ();
  char *secret = NULL;

  /* Titled, so that a window list (and the GUI tests) can find it. */
  gtk_window_set_title (GTK_WINDOW (dialog), _("SecureMail"));

  gtk_entry_set_visibility (GTK_ENTRY (entry), !hide);
  gtk_entry_set_activates_default (GTK_ENTRY (entry), TRUE);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
  gtk_container_add (GTK_CONTAINER (gtk_message_dialog_get_message_area (GTK_MESSAGE_DIALOG (dialog))), entry);
  gtk_widget_show (entry);
  if (gtk_dialog_run (GTK_DIALOG (dialog)) == GTK_RESPONSE_OK)
    secret = g_strdup (gtk_entry_get_text (GTK_ENTRY (entry)));
  gtk_widget_destroy (dialog);
  return secret;
}
