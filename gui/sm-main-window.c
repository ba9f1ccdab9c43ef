/* sm-main-window.c: the SecureMail window. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-doctor.h"
#include "sm-gui-keys.h"
#include "sm-key-summary.h"
#include "sm-gui-receipt.h"
#include "sm-gui-settings.h"
#include "sm-gui.h"
#include "sm-main-window.h"
#include "sm-support-report.h"

typedef struct {
  GtkBuilder *builder;
  GtkWindow *window;
  char *config_path;
  SmGuiSettings *settings;
  GHashTable *entries;    /* "group.key" -> GtkEntry */
  guint busy;
  SmDbusProxy1 *proxy;    /* the daemon, for Messages; NULL until connected */
  GCancellable *cancellable;  /* cancelled when the window goes: D-Bus replies then touch nothing */
} MainWindow;

/* Columns of messages_store (ui/main-window.ui). */
enum {
  MSG_COL_TRUST,
  MSG_COL_SENDER,
  MSG_COL_SUBJECT,
  MSG_COL_DATE,
  MSG_COL_PERSONAL,
  MSG_COL_MAILBOX,
  MSG_COL_UID,
  MSG_COL_SIGNER,
};

/* The keys the Settings page shows, in order, with a plain name. */
static const struct {
  const char *group;
  const char *key;
  const char *label;
} settings_rows[] = {
  { "account", "address", N_("E-mail address") },
  { "account", "display_name", N_("Your name") },
  { "account", "personal_address", N_("Personal address") },
  { "upstream", "imap", N_("Incoming server (IMAP)") },
  { "upstream", "smtp", N_("Outgoing server (SMTP)") },
  { "upstream", "username", N_("User name at the provider") },
  { "upstream", "ca_file", N_("Certificate authority file") },
  { "upstream", "pin_sha256", N_("Certificate pin (SHA-256)") },
  { "listen", "imap", N_("Local IMAP address") },
  { "listen", "smtp", N_("Local SMTP address") },
  { "crypto", "protocol", N_("Encryption standard (smime or openpgp)") },
  { "crypto", "encrypt", N_("Encrypt (required, if-possible, never)") },
  { "admin", "contact_email", N_("Administrator e-mail") },
  { "admin", "contact_phone", N_("Administrator phone") },
};

static void
main_window_free (MainWindow *mw)
{
  g_cancellable_cancel (mw->cancellable);
  g_clear_object (&mw->cancellable);
  if (mw->proxy != NULL)
    g_signal_handlers_disconnect_by_data (mw->proxy, mw);
  g_clear_object (&mw->proxy);
  g_clear_object (&mw->builder);
  g_clear_pointer (&mw->settings, sm_gui_settings_free);
  g_clear_pointer (&mw->entries, g_hash_table_unref);
  g_free (mw->config_path);
  g_free (mw);
}

static MainWindow *
get (GtkWindow *window)
{
  return g_object_get_data (G_OBJECT (window), "sm-main-window");
}

static GtkWidget *
w (MainWindow *mw, const char *id)
{
  GObject *o = gtk_builder_get_object (mw->builder, id);
  g_assert (o != NULL);
  return GTK_WIDGET (o);
}

static void
set_label (MainWindow *mw, const char *id, const char *str)
{
  gtk_label_set_text (GTK_LABEL (w (mw, id)), str ? str : "");
}

static void
clear_list (GtkWidget *list)
{
  g_autoptr(GList) children = gtk_container_get_children (GTK_CONTAINER (list));
  for (GList *l = children; l; l = l->next)
    gtk_widget_destroy (l->data);
}

static GtkWidget *
wrap_label (const char *str)
{
  GtkWidget *l = gtk_label_new (str);
  gtk_label_set_xalign (GTK_LABEL (l), 0);
  gtk_label_set_line_wrap (GTK_LABEL (l), TRUE);
  gtk_label_set_selectable (GTK_LABEL (l), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (l), 90);
  return l;
}

/* ---- Settings ------------------------------------------------------------- */

static void
fill_settings (MainWindow *mw)
{
  GtkGrid *grid = GTK_GRID (w (mw, "settings_grid"));
  g_autoptr(GError) error = NULL;

  clear_list (GTK_WIDGET (grid));
  g_clear_pointer (&mw->settings, sm_gui_settings_free);
  g_hash_table_remove_all (mw->entries);
  mw->settings = sm_gui_settings_load (mw->config_path, &error);
  if (mw->settings == NULL)
    {
      set_label (mw, "settings_result_label", error->message);
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (settings_rows); i++)
    {
      const char *g = settings_rows[i].group, *k = settings_rows[i].key;
      g_autofree char *name = g_strdup_printf ("%s <small>([%s] %s)</small>", _(settings_rows[i].label), g, k);
      g_autofree char *value = sm_gui_settings_get (mw->settings, g, k);
      GtkWidget *label = gtk_label_new (NULL);
      GtkWidget *entry = gtk_entry_new ();

      gtk_label_set_markup (GTK_LABEL (label), name);
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_entry_set_text (GTK_ENTRY (entry), value ? value : "");
      gtk_widget_set_hexpand (entry, TRUE);
      if (sm_gui_settings_is_locked (mw->settings, g, k))
        {
          gtk_widget_set_sensitive (entry, FALSE);
          gtk_widget_set_tooltip_text (entry, _("Set by your administrator"));
        }
      gtk_grid_attach (grid, label, 0, (int) i, 1, 1);
      gtk_grid_attach (grid, entry, 1, (int) i, 1, 1);
      g_hash_table_insert (mw->entries, g_strdup_printf ("%s.%s", g, k), entry);
    }
  gtk_widget_show_all (GTK_WIDGET (grid));
}

static void
on_settings_save (GtkButton *button, MainWindow *mw)
{
  g_autoptr(GError) error = NULL;

  if (mw->settings == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (settings_rows); i++)
    {
      g_autofree char *id = g_strdup_printf ("%s.%s", settings_rows[i].group, settings_rows[i].key);
      GtkEntry *entry = g_hash_table_lookup (mw->entries, id);
      g_autofree char *v = g_strstrip (g_strdup (gtk_entry_get_text (entry)));
      sm_gui_settings_set (mw->settings, settings_rows[i].group, settings_rows[i].key, v);
    }
  if (sm_gui_settings_save (mw->settings, &error))
    {
      g_autofree char *msg = g_strdup_printf (_("Saved %s. Restart securemail-proxy to use the new settings."),
                                              mw->settings->path);
      set_label (mw, "settings_result_label", msg);
    }
  else
    {
      g_autofree char *msg = g_strdup_printf (_("Not saved: %s"), error->message);
      set_label (mw, "settings_result_label", msg);
    }
}

/* ---- Keys and certificates ------------------------------------------------- */

static void
fill_keys (MainWindow *mw)
{
  GtkWidget *list = w (mw, "keys_listbox");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = sm_key_summary_list (TRUE, &error);

  clear_list (list);
  if (keys == NULL)
    gtk_container_add (GTK_CONTAINER (list), wrap_label (error->message));
  else if (keys->len == 0)
    gtk_container_add (GTK_CONTAINER (list), wrap_label (_("You have no key yet: make one or import one below.")));
  for (guint i = 0; keys && i < keys->len; i++)
    gtk_container_add (GTK_CONTAINER (list), wrap_label (keys->pdata[i]));
  gtk_widget_show_all (list);
}

static void
busy (MainWindow *mw, const char *spinner, gboolean on)
{
  mw->busy += on ? 1 : -1;
  if (on)
    gtk_spinner_start (GTK_SPINNER (w (mw, spinner)));
  else
    gtk_spinner_stop (GTK_SPINNER (w (mw, spinner)));
}

static void
show_recovery_code (MainWindow *mw, const char *message, const char *code)
{
  GtkWidget *dialog = gtk_message_dialog_new (mw->window, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              GTK_MESSAGE_WARNING, GTK_BUTTONS_NONE, "%s",
                                              _("Write down this recovery code now"));
  GtkWidget *area = gtk_message_dialog_get_message_area (GTK_MESSAGE_DIALOG (dialog));
  GtkWidget *label = gtk_label_new (code);

  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog),
                                            _("%s It is shown only this once and is not stored anywhere. Without "
                                              "it the backup cannot be opened. Keep it apart from the backup file."),
                                            message);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_style_context_add_class (gtk_widget_get_style_context (label), "sm-recovery-code");
  gtk_container_add (GTK_CONTAINER (area), label);
  gtk_widget_show (label);
  gtk_dialog_add_button (GTK_DIALOG (dialog), _("I have written it down"), GTK_RESPONSE_ACCEPT);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_widget_destroy), NULL);
  gtk_widget_show (dialog);
}

static void
keys_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  MainWindow *mw = get (GTK_WINDOW (source));
  g_autoptr(GError) error = NULL;
  char *code = NULL;
  g_autofree char *msg = sm_gui_job_finish (result, &code, &error);

  if (mw == NULL)
    {
      sm_gui_secret_free (code);
      return;
    }
  busy (mw, "keys_spinner", FALSE);
  set_label (mw, "keys_result_label", msg ? msg : error->message);
  if (msg != NULL && code != NULL)
    show_recovery_code (mw, msg, code);
  sm_gui_secret_free (code);
  fill_keys (mw);
  /* A new or restored key may end (or start) a key-expiry warning: the
   * daemon reads the store again, and the tray follows its properties. */
  if (msg != NULL && mw->proxy != NULL)
    sm_dbus_proxy1_call_check_keys (mw->proxy, NULL, NULL, NULL);
}

static void
start_keys_job (MainWindow *mw, SmGuiJobFunc func, const char * const *args, const char *what)
{
  set_label (mw, "keys_result_label", what);
  busy (mw, "keys_spinner", TRUE);
  sm_gui_job_start (mw->window, func, args, keys_done, NULL);
}

static void
on_keys_generate (GtkButton *button, MainWindow *mw)
{
  g_autofree char *address = mw->settings ? sm_gui_settings_get (mw->settings, "account", "address") : NULL;
  g_autofree char *name = mw->settings ? sm_gui_settings_get (mw->settings, "account", "display_name") : NULL;
  const char *args[] = { name ? name : address, address, NULL };

  if (address == NULL)
    {
      set_label (mw, "keys_result_label", _("Set your e-mail address first (Settings, or SecureMail Setup)."));
      return;
    }
  start_keys_job (mw, sm_gui_keys_generate_openpgp, args, _("Making the key…"));
}

/* Asks for a file (open or save) and, with @secret_prompt, a password or
 * code.  Returns the path or NULL; *secret gets the typed text. */
static char *
ask_file (MainWindow *mw, const char *title, GtkFileChooserAction action, const char *current_name,
          const char *secret_prompt, gboolean hide_secret, char **secret)
{
  g_autoptr(GtkFileChooserNative) chooser = gtk_file_chooser_native_new (title, mw->window, action, NULL, NULL);
  g_autofree char *path = NULL;

  if (current_name != NULL)
    {
      gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (chooser), current_name);
      gtk_file_chooser_set_do_overwrite_confirmation (GTK_FILE_CHOOSER (chooser), TRUE);
    }
  if (gtk_native_dialog_run (GTK_NATIVE_DIALOG (chooser)) != GTK_RESPONSE_ACCEPT)
    return NULL;
  path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  if (secret_prompt == NULL)
    return g_steal_pointer (&path);

  *secret = sm_gui_ask_secret (mw->window, secret_prompt, hide_secret);
  if (*secret == NULL)
    g_clear_pointer (&path, g_free);
  return g_steal_pointer (&path);
}

static void
on_keys_import (GtkButton *button, MainWindow *mw)
{
  char *secret = NULL;
  g_autofree char *path = ask_file (mw, _("Choose the key file (.p12, .pfx or OpenPGP)"), GTK_FILE_CHOOSER_ACTION_OPEN,
                                    NULL, _("Type the password of the key file (leave empty if it has none)"), TRUE,
                                    &secret);
  if (path != NULL)
    {
      const char *args[] = { path, secret ? secret : "", NULL };
      start_keys_job (mw, sm_gui_keys_import, args, _("Importing…"));
    }
  sm_gui_secret_free (secret);
}

static void
on_keys_backup (GtkButton *button, MainWindow *mw)
{
  g_autofree char *path = ask_file (mw, _("Save the backup"), GTK_FILE_CHOOSER_ACTION_SAVE,
                                    "securemail-keys-backup.asc", NULL, FALSE, NULL);
  if (path != NULL)
    {
      const char *args[] = { path, NULL };
      start_keys_job (mw, sm_gui_keys_backup, args, _("Writing the backup…"));
    }
}

static void
on_keys_restore (GtkButton *button, MainWindow *mw)
{
  char *code = NULL;
  g_autofree char *path = ask_file (mw, _("Choose the backup file"), GTK_FILE_CHOOSER_ACTION_OPEN, NULL,
                                    _("Type the recovery code (36 digits)"), FALSE, &code);
  if (path != NULL)
    {
      const char *args[] = { path, code ? code : "", NULL };
      start_keys_job (mw, sm_gui_keys_restore, args, _("Restoring…"));
    }
  sm_gui_secret_free (code);
}

/* ---- Diagnostics ----------------------------------------------------------- */

static void
doctor_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  g_task_return_pointer (task, sm_doctor_run (task_data), (GDestroyNotify) g_ptr_array_unref);
}

static GtkWidget *
check_row (const SmCheck *c)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *head = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  const char *mark = c->result == SM_CHECK_PASS ? _("OK") : c->result == SM_CHECK_FAIL ? _("FAILED") : _("SKIPPED");
  const char *cls = c->result == SM_CHECK_PASS ? "sm-check-pass" : c->result == SM_CHECK_FAIL ? "sm-check-fail" : "sm-check-skip";
  GtkWidget *state = gtk_label_new (mark);
  g_autofree char *title = g_strdup_printf ("%u. %s", c->number, c->title);

  gtk_style_context_add_class (gtk_widget_get_style_context (state), cls);
  gtk_widget_set_size_request (state, 80, -1);
  gtk_box_pack_start (GTK_BOX (head), state, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (head), wrap_label (title), TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (box), head, FALSE, FALSE, 0);
  if (c->detail)
    {
      GtkWidget *d = wrap_label (c->detail);
      gtk_widget_set_margin_start (d, 88);
      gtk_box_pack_start (GTK_BOX (box), d, FALSE, FALSE, 0);
    }
  if (c->fix)
    {
      g_autofree char *f = g_strdup_printf (_("What to do: %s"), c->fix);
      GtkWidget *d = wrap_label (f);
      gtk_widget_set_margin_start (d, 88);
      gtk_box_pack_start (GTK_BOX (box), d, FALSE, FALSE, 0);
    }
  gtk_widget_set_margin_top (box, 4);
  gtk_widget_set_margin_bottom (box, 4);
  return box;
}

static void
doctor_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  MainWindow *mw = get (GTK_WINDOW (source));
  g_autoptr(GPtrArray) checks = g_task_propagate_pointer (G_TASK (result), NULL);
  GtkWidget *list;

  if (mw == NULL)
    return;
  busy (mw, "checks_spinner", FALSE);
  gtk_widget_set_sensitive (w (mw, "run_checks_button"), TRUE);
  list = w (mw, "checks_listbox");
  clear_list (list);
  for (guint i = 0; checks && i < checks->len; i++)
    gtk_container_add (GTK_CONTAINER (list), check_row (checks->pdata[i]));
  gtk_widget_show_all (list);
}

void
sm_main_window_run_checks (GtkWindow *window)
{
  MainWindow *mw = get (window);
  g_autoptr(GTask) task = g_task_new (window, NULL, doctor_done, NULL);

  gtk_widget_set_sensitive (w (mw, "run_checks_button"), FALSE);
  busy (mw, "checks_spinner", TRUE);
  g_task_set_task_data (task, g_strdup (mw->config_path), g_free);
  g_task_run_in_thread (task, doctor_thread);
}

static void
on_run_checks (GtkButton *button, MainWindow *mw)
{
  sm_main_window_run_checks (mw->window);
}

static void
report_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  char **args = task_data;   /* config path (may be ""), out path */
  GError *error = NULL;
  g_autofree char *front_end = g_strdup_printf ("SecureMail window, GTK %u.%u.%u", gtk_get_major_version (),
                                                gtk_get_minor_version (), gtk_get_micro_version ());

  if (sm_support_report_write (*args[0] ? args[0] : NULL, front_end, args[1], &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
report_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  MainWindow *mw = get (GTK_WINDOW (source));
  char **args = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *msg = NULL;

  if (mw == NULL)
    return;
  busy (mw, "checks_spinner", FALSE);
  if (g_task_propagate_boolean (G_TASK (result), &error))
    msg = g_strdup_printf (_("Wrote the support report to %s. It holds no passwords or keys: send it to your helpdesk."), args[1]);
  else
    msg = g_strdup_printf (_("The support report could not be written: %s"), error->message);
  set_label (mw, "report_label", msg);
}

static void
on_report (GtkButton *button, MainWindow *mw)
{
  g_autofree char *path = ask_file (mw, _("Save the support report"), GTK_FILE_CHOOSER_ACTION_SAVE,
                                    "securemail-support-report.txt", NULL, FALSE, NULL);
  g_autoptr(GTask) task = NULL;
  char **args;

  if (path == NULL)
    return;
  args = g_new0 (char *, 3);
  args[0] = g_strdup (mw->config_path ? mw->config_path : "");
  args[1] = g_steal_pointer (&path);
  busy (mw, "checks_spinner", TRUE);
  set_label (mw, "report_label", _("Writing the support report…"));
  task = g_task_new (mw->window, NULL, report_done, NULL);
  g_task_set_task_data (task, args, (GDestroyNotify) g_strfreev);
  g_task_run_in_thread (task, report_thread);
}

/* ---- Messages (issue 6) ------------------------------------------------------- */

/* The error of a D-Bus call on a page's result label; FALSE if the window
 * is gone (the call was cancelled). */
static gboolean
show_call_error (MainWindow *mw, const char *label_id, GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return FALSE;
  g_dbus_error_strip_remote_error (error);
  set_label (mw, label_id, error->message);
  return TRUE;
}

typedef void (*AddRow) (MainWindow *mw, GtkListStore *store, GVariant *entry, gpointer data);

/* Every list reply: the error on @label_id, or @store_id refilled with one
 * row per entry of @entries by @add_row.  Returns the number of entries,
 * or -1 after an error. */
static gssize
fill_list (MainWindow *mw, gboolean ok, GError *error, const char *label_id, const char *store_id,
           GVariant *entries, AddRow add_row, gpointer data)
{
  GtkListStore *store;
  GVariantIter iter;
  GVariant *e;

  if (!ok)
    {
      show_call_error (mw, label_id, error);
      return -1;
    }
  store = GTK_LIST_STORE (gtk_builder_get_object (mw->builder, store_id));
  gtk_list_store_clear (store);
  g_variant_iter_init (&iter, entries);
  while ((e = g_variant_iter_next_value (&iter)) != NULL)
    {
      add_row (mw, store, e, data);
      g_variant_unref (e);
    }
  return (gssize) g_variant_n_children (entries);
}

static char *
local_time_text (gint64 unix_seconds)
{
  g_autoptr(GDateTime) t = NULL;

  if (unix_seconds == 0)
    return g_strdup ("");
  t = g_date_time_new_from_unix_local (unix_seconds);
  return t ? g_date_time_format (t, "%Y-%m-%d %H:%M") : g_strdup ("");
}

static void
add_message_row (MainWindow *mw, GtkListStore *store, GVariant *e, gpointer data)
{
  const char *trust = "", *from = "", *subject = "", *mailbox = "", *signer = "";
  gint64 date = 0;
  guint32 uid = 0;
  gboolean personal = FALSE;
  g_autofree char *when = NULL;

  g_variant_lookup (e, "trust", "&s", &trust);
  g_variant_lookup (e, "from", "&s", &from);
  g_variant_lookup (e, "subject", "&s", &subject);
  g_variant_lookup (e, "mailbox", "&s", &mailbox);
  g_variant_lookup (e, "signer", "&s", &signer);
  g_variant_lookup (e, "date", "x", &date);
  g_variant_lookup (e, "uid", "u", &uid);
  g_variant_lookup (e, "personal", "b", &personal);
  when = local_time_text (date);
  gtk_list_store_insert_with_values (store, NULL, -1, MSG_COL_TRUST, sm_dbus_trust_words (trust),
                                     MSG_COL_SENDER, from, MSG_COL_SUBJECT, subject, MSG_COL_DATE,
                                     when, MSG_COL_PERSONAL, personal, MSG_COL_MAILBOX, mailbox,
                                     MSG_COL_UID, uid, MSG_COL_SIGNER, signer, -1);
}

static void
on_messages_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  MainWindow *mw = user_data;
  gboolean ok;

  ok = sm_dbus_proxy1_call_list_messages_finish (SM_DBUS_PROXY1 (source), &entries, result, &error);
  if (fill_list (mw, ok, error, "messages_result_label", "messages_store", entries, add_message_row, NULL) == 0)
    set_label (mw, "messages_result_label",
               _("No secure messages yet: they appear here once your mail program has opened them through SecureMail."));
}

static void
refresh_messages (MainWindow *mw)
{
  if (mw->proxy != NULL)
    sm_dbus_proxy1_call_list_messages (mw->proxy, 0, mw->cancellable, on_messages_listed, mw);
}

/* ---- Receipts (issue 6) -------------------------------------------------------- */

/* Columns of receipts_store and outbox_store (ui/main-window.ui). */
enum { RCPT_COL_MESSAGE_ID, RCPT_COL_RECIPIENT, RCPT_COL_STATUS, RCPT_COL_CHANGED, RCPT_COL_DETAIL };
enum { OUT_COL_ID, OUT_COL_RECIPIENTS, OUT_COL_STATE, OUT_COL_CREATED, OUT_COL_ATTEMPTS, OUT_COL_ERROR };

/* The daemon's status words (not translated on the bus) for people. */
typedef struct {
  const char *word;
  const char *text;   /* N_() */
} Words;

static const Words receipt_status_words[] = {   /* ListReceipts "status" */
  { "requested", N_("Waiting for the receipt") },
  { "delivered-verified", N_("Delivered and verified") },
  { "failed", N_("Failed") },
  { "overdue", N_("Overdue: no receipt yet") },
};

static const Words queue_state_words[] = {   /* ListQueue "state" */
  { "queued", N_("Waiting to be sent") },
  { "sending", N_("Sending") },
  { "failed", N_("Failed, not sent") },
};

/* @word in words, or as it is when it is new to this version. */
static const char *
in_words (const Words *table, gsize n, const char *word)
{
  for (gsize i = 0; i < n; i++)
    if (g_strcmp0 (table[i].word, word) == 0)
      return _(table[i].text);
  return word;
}

static void
add_receipt_row (MainWindow *mw, GtkListStore *store, GVariant *e, gpointer data)
{
  SmGuiReceipt r;
  g_autofree char *when = NULL;
  g_autofree char *detail = NULL;

  sm_gui_receipt_read (e, &r);
  when = local_time_text (r.changed);
  /* A failed receipt may still name its signer; why it failed matters more. */
  if (*r.reason != '\0')
    detail = g_strdup (r.reason);
  else if (*r.signer != '\0')
    detail = g_strdup_printf (_("Signed by %s"), r.signer);
  gtk_list_store_insert_with_values (store, NULL, -1, RCPT_COL_MESSAGE_ID, r.message_id, RCPT_COL_RECIPIENT,
                                     r.recipient, RCPT_COL_STATUS,
                                     in_words (receipt_status_words, G_N_ELEMENTS (receipt_status_words), r.status),
                                     RCPT_COL_CHANGED, when, RCPT_COL_DETAIL, detail ? detail : "", -1);
}

static void
on_receipts_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  MainWindow *mw = user_data;
  gssize n;
  gboolean ok;

  ok = sm_dbus_proxy1_call_list_receipts_finish (SM_DBUS_PROXY1 (source), &entries, result, &error);
  n = fill_list (mw, ok, error, "receipts_result_label", "receipts_store", entries, add_receipt_row, NULL);
  if (n >= 0)
    set_label (mw, "receipts_result_label",
               n == 0 ? _("No receipts yet: they appear here once you send a message that asks for a signed receipt.")
                      : NULL);
}

static void
refresh_receipts (MainWindow *mw)
{
  if (mw->proxy != NULL)
    sm_dbus_proxy1_call_list_receipts (mw->proxy, mw->cancellable, on_receipts_listed, mw);
}

/* ---- Outbox (issue 6) ---------------------------------------------------------- */

/* The queue id of the selected Outbox row, or NULL. */
static char *
selected_queue_id (MainWindow *mw)
{
  GtkTreeSelection *sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (w (mw, "outbox_view")));
  GtkTreeModel *model;
  GtkTreeIter iter;
  char *id = NULL;

  if (!gtk_tree_selection_get_selected (sel, &model, &iter))
    return NULL;
  gtk_tree_model_get (model, &iter, OUT_COL_ID, &id, -1);
  return id;
}

static void
add_queue_row (MainWindow *mw, GtkListStore *store, GVariant *e, gpointer data)
{
  const char *selected = data;
  const char *id = "", *state = "", *last_error = "";
  g_autofree const char **recipients = NULL;
  g_autofree char *to = NULL;
  g_autofree char *when = NULL;
  gboolean report = FALSE;
  gint64 created = 0;
  guint32 attempts = 0;
  GtkTreeIter row;

  g_variant_lookup (e, "id", "&s", &id);
  g_variant_lookup (e, "state", "&s", &state);
  g_variant_lookup (e, "last_error", "&s", &last_error);
  g_variant_lookup (e, "recipients", "^a&s", &recipients);
  g_variant_lookup (e, "created", "x", &created);
  g_variant_lookup (e, "attempts", "u", &attempts);
  g_variant_lookup (e, "report", "b", &report);
  to = recipients ? g_strjoinv (", ", (char **) recipients) : g_strdup ("");
  if (report)
    {
      /* A delivery report or receipt SecureMail itself sends. */
      char *r = g_strdup_printf (_("%s (report)"), to);
      g_free (to);
      to = r;
    }
  when = local_time_text (created);
  gtk_list_store_insert_with_values (store, &row, -1, OUT_COL_ID, id, OUT_COL_RECIPIENTS, to, OUT_COL_STATE,
                                     in_words (queue_state_words, G_N_ELEMENTS (queue_state_words), state),
                                     OUT_COL_CREATED, when, OUT_COL_ATTEMPTS, attempts, OUT_COL_ERROR, last_error,
                                     -1);
  if (g_strcmp0 (id, selected) == 0)
    gtk_tree_selection_select_iter (gtk_tree_view_get_selection (GTK_TREE_VIEW (w (mw, "outbox_view"))), &row);
}

static void
on_queue_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *selected = NULL;
  MainWindow *mw = user_data;
  gboolean ok;

  ok = sm_dbus_proxy1_call_list_queue_finish (SM_DBUS_PROXY1 (source), &entries, result, &error);
  /* QueueChanged comes with every attempt: keep the user's choice across
   * the refill, or Retry and Delete would go grey under the pointer.  (Not
   * after an error: it may be that the window is gone.) */
  selected = ok ? selected_queue_id (mw) : NULL;
  /* The outcome of Retry or Delete stays; the empty note only fills silence. */
  if (fill_list (mw, ok, error, "outbox_result_label", "outbox_store", entries, add_queue_row, selected) == 0
      && *gtk_label_get_text (GTK_LABEL (w (mw, "outbox_result_label"))) == '\0')
    set_label (mw, "outbox_result_label", _("The outbox is empty: everything was sent."));
}

static void
refresh_outbox (MainWindow *mw)
{
  if (mw->proxy != NULL)
    sm_dbus_proxy1_call_list_queue (mw->proxy, mw->cancellable, on_queue_listed, mw);
}

static void
on_outbox_selection (GtkTreeSelection *sel, MainWindow *mw)
{
  gboolean any = gtk_tree_selection_get_selected (sel, NULL, NULL);

  gtk_widget_set_sensitive (w (mw, "outbox_retry_button"), any);
  gtk_widget_set_sensitive (w (mw, "outbox_delete_button"), any);
}

/* One Retry or Delete on its way: what to say when it is done. */
typedef struct {
  MainWindow *mw;
  const char *done;   /* translated */
} OutboxAction;

static void
on_outbox_action_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree OutboxAction *action = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  MainWindow *mw = action->mw;

  reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  if (reply == NULL)
    {
      if (!show_call_error (mw, "outbox_result_label", error))
        return;   /* the window is gone */
    }
  else
    set_label (mw, "outbox_result_label", action->done);
  mw->busy--;
  refresh_outbox (mw);
}

/* Calls @method (Retry or Delete, both take the queue id) on the selected
 * Outbox message. */
static void
outbox_action (MainWindow *mw, const char *method, const char *done)
{
  g_autofree char *id = selected_queue_id (mw);
  OutboxAction *action;

  if (id == NULL || mw->proxy == NULL)
    return;
  action = g_new0 (OutboxAction, 1);
  action->mw = mw;
  action->done = done;
  mw->busy++;
  g_dbus_proxy_call (G_DBUS_PROXY (mw->proxy), method, g_variant_new ("(s)", id), G_DBUS_CALL_FLAGS_NONE, -1,
                     mw->cancellable, on_outbox_action_done, action);
}

static void
on_outbox_retry (GtkButton *button, MainWindow *mw)
{
  outbox_action (mw, "Retry", _("Sending the message again now."));
}

static void
on_outbox_delete (GtkButton *button, MainWindow *mw)
{
  outbox_action (mw, "Delete", _("The message was deleted unsent."));
}

/* Every page that shows what the daemon has. */
static void
refresh_from_daemon (MainWindow *mw)
{
  refresh_messages (mw);
  refresh_receipts (mw);
  refresh_outbox (mw);
}

static void
on_proxy_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  SmDbusProxy1 *proxy = sm_dbus_proxy1_proxy_new_for_bus_finish (result, &error);
  MainWindow *mw = user_data;

  if (proxy == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        set_label (mw, "messages_result_label", error->message);
      return;
    }
  mw->proxy = proxy;
  g_signal_connect_swapped (proxy, "messages-changed", G_CALLBACK (refresh_messages), mw);
  g_signal_connect_swapped (proxy, "receipts-changed", G_CALLBACK (refresh_receipts), mw);
  g_signal_connect_swapped (proxy, "queue-changed", G_CALLBACK (refresh_outbox), mw);
  g_signal_connect_swapped (proxy, "notify::g-name-owner", G_CALLBACK (refresh_from_daemon), mw);
  refresh_from_daemon (mw);
}

static gboolean
contains_casefold (const char *haystack, const char *needle_folded)
{
  g_autofree char *folded = g_utf8_casefold (haystack ? haystack : "", -1);
  return strstr (folded, needle_folded) != NULL;
}

static gboolean
message_visible (GtkTreeModel *model, GtkTreeIter *iter, gpointer user_data)
{
  MainWindow *mw = user_data;
  const char *text = gtk_entry_get_text (GTK_ENTRY (w (mw, "messages_filter_entry")));
  g_autofree char *needle = NULL;
  const int columns[] = { MSG_COL_TRUST, MSG_COL_SENDER, MSG_COL_SUBJECT, MSG_COL_SIGNER, MSG_COL_MAILBOX };

  if (*text == '\0')
    return TRUE;
  needle = g_utf8_casefold (text, -1);
  for (gsize i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      g_autofree char *value = NULL;
      gtk_tree_model_get (model, iter, columns[i], &value, -1);
      if (contains_casefold (value, needle))
        return TRUE;
    }
  return FALSE;
}

static void
on_filter_changed (GtkSearchEntry *entry, MainWindow *mw)
{
  gtk_tree_model_filter_refilter (GTK_TREE_MODEL_FILTER (gtk_builder_get_object (mw->builder, "messages_filter")));
}

static void
on_marked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  MainWindow *mw = user_data;
  gboolean ok = sm_dbus_proxy1_call_mark_personal_finish (SM_DBUS_PROXY1 (source), result, &error);

  if (!ok && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  mw->busy--;
  if (ok)
    set_label (mw, "messages_result_label", _("The message is marked [PERSONAL] at your provider."));
  else
    {
      g_autofree char *msg = NULL;
      g_dbus_error_strip_remote_error (error);
      msg = g_strdup_printf (_("The message was not marked: %s"), error->message);
      set_label (mw, "messages_result_label", msg);
    }
}

static void
on_personal_toggled (GtkCellRendererToggle *toggle, const char *path, MainWindow *mw)
{
  GtkTreeModel *model = GTK_TREE_MODEL (gtk_builder_get_object (mw->builder, "messages_filter"));
  g_autofree char *mailbox = NULL;
  gboolean personal = FALSE;
  guint uid = 0;
  GtkTreeIter iter;

  if (!gtk_tree_model_get_iter_from_string (model, &iter, path))
    return;
  gtk_tree_model_get (model, &iter, MSG_COL_PERSONAL, &personal, MSG_COL_MAILBOX, &mailbox, MSG_COL_UID, &uid, -1);
  if (personal)
    {
      /* The daemon has no way back: removing $Personal would put the
       * message back into the detailed audit log, a decision for the mail
       * program's own keyword editor. */
      set_label (mw, "messages_result_label",
                 _("This message is already marked [PERSONAL]. SecureMail does not unmark messages."));
      return;
    }
  if (mw->proxy == NULL)
    return;
  mw->busy++;
  set_label (mw, "messages_result_label", _("Marking the message [PERSONAL]…"));
  sm_dbus_proxy1_call_mark_personal (mw->proxy, mailbox, uid, mw->cancellable, on_marked, mw);
}

/* ---- the window ------------------------------------------------------------ */

static void
on_page_changed (GObject *stack, GParamSpec *pspec, MainWindow *mw)
{
  const char *name = gtk_stack_get_visible_child_name (GTK_STACK (stack));
  if (g_strcmp0 (name, "keys") == 0)
    fill_keys (mw);
  else if (g_strcmp0 (name, "settings") == 0)
    fill_settings (mw);
  else if (g_strcmp0 (name, "messages") == 0)
    refresh_messages (mw);
  else if (g_strcmp0 (name, "receipts") == 0)
    refresh_receipts (mw);
  else if (g_strcmp0 (name, "outbox") == 0)
    refresh_outbox (mw);
}

GtkWindow *
sm_main_window_new (GtkApplication *app, const char *config_path)
{
  MainWindow *mw = g_new0 (MainWindow, 1);

  mw->builder = sm_gui_builder_new ("main-window.ui");
  mw->window = GTK_WINDOW (gtk_builder_get_object (mw->builder, "main_window"));
  mw->config_path = g_strdup (config_path);
  mw->entries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_object_set_data_full (G_OBJECT (mw->window), "sm-main-window", mw, (GDestroyNotify) main_window_free);
  if (app != NULL)
    gtk_window_set_application (mw->window, app);

  g_signal_connect (w (mw, "settings_save_button"), "clicked", G_CALLBACK (on_settings_save), mw);
  g_signal_connect (w (mw, "keys_generate_button"), "clicked", G_CALLBACK (on_keys_generate), mw);
  g_signal_connect (w (mw, "keys_import_button"), "clicked", G_CALLBACK (on_keys_import), mw);
  g_signal_connect (w (mw, "keys_backup_button"), "clicked", G_CALLBACK (on_keys_backup), mw);
  g_signal_connect (w (mw, "keys_restore_button"), "clicked", G_CALLBACK (on_keys_restore), mw);
  g_signal_connect (w (mw, "run_checks_button"), "clicked", G_CALLBACK (on_run_checks), mw);
  g_signal_connect (w (mw, "report_button"), "clicked", G_CALLBACK (on_report), mw);
  g_signal_connect (w (mw, "stack"), "notify::visible-child", G_CALLBACK (on_page_changed), mw);
  g_signal_connect (w (mw, "messages_filter_entry"), "search-changed", G_CALLBACK (on_filter_changed), mw);
  g_signal_connect (w (mw, "outbox_retry_button"), "clicked", G_CALLBACK (on_outbox_retry), mw);
  g_signal_connect (w (mw, "outbox_delete_button"), "clicked", G_CALLBACK (on_outbox_delete), mw);
  g_signal_connect (gtk_tree_view_get_selection (GTK_TREE_VIEW (w (mw, "outbox_view"))), "changed",
                    G_CALLBACK (on_outbox_selection), mw);
  g_signal_connect (gtk_builder_get_object (mw->builder, "messages_personal_toggle"), "toggled",
                    G_CALLBACK (on_personal_toggled), mw);
  gtk_tree_model_filter_set_visible_func (GTK_TREE_MODEL_FILTER (gtk_builder_get_object (mw->builder, "messages_filter")),
                                          message_visible, mw, NULL);
  mw->cancellable = g_cancellable_new ();
  /* The builder keeps the window alive past gtk_widget_destroy(), but its
   * widgets are gone: replies still on their way must touch nothing. */
  g_signal_connect_swapped (mw->window, "destroy", G_CALLBACK (g_cancellable_cancel), mw->cancellable);
  sm_dbus_proxy1_proxy_new_for_bus (G_BUS_TYPE_SESSION,
                                    G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, SM_DBUS_NAME,
                                    SM_DBUS_OBJECT_PATH, mw->cancellable, on_proxy_ready, mw);
  fill_settings (mw);
  return mw->window;
}

GtkBuilder *
sm_main_window_get_builder (GtkWindow *window)
{
  return get (window)->builder;
}

void
sm_main_window_show_page (GtkWindow *window, const char *page)
{
  gtk_stack_set_visible_child_name (GTK_STACK (w (get (window), "stack")), page);
}

gboolean
sm_main_window_is_busy (GtkWindow *window)
{
  return get (window)->busy > 0;
}
