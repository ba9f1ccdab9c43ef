/* sm-tray.c: the tray indicator. */
#include "config.h"

#include <glib/gi18n.h>
#include <libayatana-appindicator/app-indicator.h>

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-gui-receipt.h"
#include "sm-gui-settings.h"
#include "sm-gui.h"
#include "sm-main-window.h"
#include "sm-oauth2-login.h"
#include "sm-setup-assistant.h"
#include "sm-tray.h"

/* Standard icon names (Adwaita and every freedesktop theme have them). */
#define ICON_OK        "mail-send-receive"
#define ICON_ATTENTION "mail-unread"
#define ICON_ERROR     "dialog-error"
#define ICON_LOCKED    "system-lock-screen"

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
  gboolean busy;              /* a Lock/Unlock call is on its way */
  gboolean signing_in;        /* an OAuth2 sign-in is waiting for the browser */
  gboolean asking_pin;        /* the token PIN dialog is open */
  gboolean pin_notified;      /* TokenPinNeeded was told in a notification */
  GtkWindow *main_window;     /* weak */
  /* "message_id recipient" -> status word, as last seen in ListReceipts:
   * a notification is for a change, not for what was already there.  NULL
   * until the first list arrives. */
  GHashTable *receipts;
  gint64 started;             /* unix seconds: the first list announces only what changed since */
  char *key_warning_shown;    /* the KeyWarning last notified: each one once per run */
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

/* Says once per warning (at start, and when it changes: fewer days left)
 * that a key expires soon; it opens the Keys page. */
static void
notify_key_warning (SmTray *self, const char *warning)
{
  g_autoptr(GNotification) n = NULL;

  if (g_strcmp0 (self->key_warning_shown, warning) == 0)
    return;
  g_free (self->key_warning_shown);
  self->key_warning_shown = g_strdup (warning);
  n = g_notification_new (sm_dbus_proxy1_get_key_days_left (self->proxy) <= 0 ? _("Your key has expired")
                                                                               : _("Your key expires soon"));
  g_notification_set_body (n, warning);
  g_notification_set_priority (n, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action_and_target (n, "app.open-page", "s", "keys");
  g_application_send_notification (G_APPLICATION (self->app), "key-expiry", n);
}

/* The status line while locked, saying why when the proxy locked by itself
 * (D-Bus LockReason); an unknown reason reads like a plain lock. */
static const char *
locked_status (const char *reason)
{
  if (g_strcmp0 (reason, "screen-locked") == 0)
    return _("SecureMail is locked because the screen was locked: unlock it to read and send secure mail");
  if (g_strcmp0 (reason, "suspend") == 0)
    return _("SecureMail is locked because the computer slept: unlock it to read and send secure mail");
  if (g_strcmp0 (reason, "idle") == 0)
    return _("SecureMail is locked after a time without mail activity: unlock it to read and send secure mail");
  return _("SecureMail is locked: unlock it to read and send secure mail");
}

/* Once each time TokenPinNeeded turns TRUE, unless the tray is already
 * asking (its own Unlock asks at once, see on_unlock_done()). */
static void
notify_token_pin (SmTray *self, gboolean needed)
{
  g_autoptr(GNotification) n = NULL;

  if (!needed)
    {
      self->pin_notified = FALSE;
      g_application_withdraw_notification (G_APPLICATION (self->app), "token-pin");
      return;
    }
  if (self->pin_notified || self->busy || self->asking_pin)
    return;
  self->pin_notified = TRUE;
  n = g_notification_new (_("Your smartcard PIN is needed"));
  g_notification_set_body (n, _("SecureMail signs you in to your provider with the certificate on your smartcard "
                                "or token. Choose “Type your smartcard PIN…” in the SecureMail menu."));
  g_notification_set_default_action (n, "app.token-pin");
  g_application_send_notification (G_APPLICATION (self->app), "token-pin", n);
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
  else if (sm_dbus_proxy1_get_locked (self->proxy))
    {
      self->state = SM_TRAY_STATE_LOCKED;
      status = g_strdup (locked_status (sm_dbus_proxy1_get_lock_reason (self->proxy)));
      icon = ICON_LOCKED;
    }
  else if (sm_dbus_proxy1_get_consent_needed (self->proxy))
    {
      self->state = SM_TRAY_STATE_ERROR;
      status = g_strdup (_("SecureMail: sign in to your provider again"));
      icon = ICON_ERROR;
      ind_status = APP_INDICATOR_STATUS_ATTENTION;
      self->was_online = FALSE;
    }
  else if (sm_dbus_proxy1_get_token_pin_needed (self->proxy))
    {
      self->state = SM_TRAY_STATE_ERROR;
      status = g_strdup (_("SecureMail: your smartcard PIN is needed to reach your provider"));
      icon = ICON_ERROR;
      ind_status = APP_INDICATOR_STATUS_ATTENTION;
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
  else if (sm_dbus_proxy1_get_key_warning (self->proxy) && *sm_dbus_proxy1_get_key_warning (self->proxy))
    {
      /* An expiring key is an error state (issue 6): mail stops when it
       * runs out, and only the user or the administrator can act. */
      const char *warning = sm_dbus_proxy1_get_key_warning (self->proxy);
      self->state = SM_TRAY_STATE_ERROR;
      status = g_strdup_printf (_("SecureMail: %s"), warning);
      icon = ICON_ERROR;
      ind_status = APP_INDICATOR_STATUS_ATTENTION;
      self->was_online = TRUE;
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
  /* Told even while locked or offline: the days run out all the same. */
  if (owner != NULL && sm_dbus_proxy1_get_key_warning (self->proxy) && *sm_dbus_proxy1_get_key_warning (self->proxy))
    notify_key_warning (self, sm_dbus_proxy1_get_key_warning (self->proxy));
  gtk_menu_item_set_label (GTK_MENU_ITEM (item (self, "status_item")), status);
  gtk_menu_item_set_label (GTK_MENU_ITEM (item (self, "lock_item")),
                           self->state == SM_TRAY_STATE_LOCKED ? _("Unlock") : _("Lock"));
  gtk_widget_set_sensitive (item (self, "lock_item"), owner != NULL && !self->busy);
  gtk_widget_set_sensitive (item (self, "personal_item"), owner != NULL);
  gtk_widget_set_visible (item (self, "signin_item"), owner != NULL && sm_dbus_proxy1_get_consent_needed (self->proxy));
  gtk_widget_set_sensitive (item (self, "signin_item"), !self->signing_in);
  gtk_widget_set_visible (item (self, "pin_item"), owner != NULL && sm_dbus_proxy1_get_token_pin_needed (self->proxy));
  gtk_widget_set_sensitive (item (self, "pin_item"), !self->asking_pin);
  notify_token_pin (self, owner != NULL && sm_dbus_proxy1_get_token_pin_needed (self->proxy));
  app_indicator_set_attention_icon_full (self->indicator, icon, status);
  app_indicator_set_icon_full (self->indicator, icon, status);
  app_indicator_set_title (self->indicator, status);
  app_indicator_set_status (self->indicator, ind_status);
  g_debug ("state: %s", status);
}

/* ---- recent secure messages (issue 6) ---------------------------------------------- */

static void
open_page (SmTray *self, const char *page)
{
  g_action_group_activate_action (G_ACTION_GROUP (self->app), "open-page", g_variant_new_string (page));
}

static void
on_recent_activate (GtkMenuItem *mi, SmTray *self)
{
  open_page (self, "messages");
}

/* "verified — alice@example.test — Quarterly numbers" */
static char *
recent_label (GVariant *entry)
{
  const char *trust = "", *from = "", *subject = "";
  g_autofree char *short_subject = NULL;

  g_variant_lookup (entry, "trust", "&s", &trust);
  g_variant_lookup (entry, "from", "&s", &from);
  g_variant_lookup (entry, "subject", "&s", &subject);
  if (g_utf8_strlen (subject, -1) > SM_TRAY_MAX_SUBJECT_CHARS)
    {
      g_autofree char *cut = g_utf8_substring (subject, 0, SM_TRAY_MAX_SUBJECT_CHARS - 1);
      short_subject = g_strconcat (cut, "…", NULL);
    }
  else
    short_subject = g_strdup (*subject ? subject : _("(no subject)"));
  return g_strdup_printf (_("%s — %s — %s"), sm_dbus_trust_words (trust), *from ? from : _("(no sender)"),
                          short_subject);
}

static void
on_messages_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  GtkWidget *menu;
  g_autoptr(GList) old = NULL;
  GVariantIter iter;
  GVariant *entry;

  if (!sm_dbus_proxy1_call_list_messages_finish (SM_DBUS_PROXY1 (source), &entries, result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("ListMessages: %s", error->message);
      return;
    }
  if (self->builder == NULL)
    return;
  menu = item (self, "recent_menu");
  old = gtk_container_get_children (GTK_CONTAINER (menu));
  for (GList *l = old; l != NULL; l = l->next)
    if (l->data != (gpointer) item (self, "recent_empty_item"))
      gtk_widget_destroy (l->data);
  gtk_widget_set_visible (item (self, "recent_empty_item"), g_variant_n_children (entries) == 0);
  g_variant_iter_init (&iter, entries);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_autofree char *label = recent_label (entry);
      GtkWidget *mi = gtk_menu_item_new_with_label (label);

      g_signal_connect (mi, "activate", G_CALLBACK (on_recent_activate), self);
      gtk_widget_show (mi);
      gtk_menu_shell_append (GTK_MENU_SHELL (menu), mi);
      g_variant_unref (entry);
    }
}

static void
refresh_recent (SmTray *self)
{
  sm_dbus_proxy1_call_list_messages (self->proxy, SM_TRAY_RECENT_MESSAGES, self->cancellable, on_messages_listed,
                                     g_object_ref (self));
}

/* ---- the unlock gate (issue 7) ----------------------------------------------------- */

static void
on_lock_changed (SmDbusProxy1 *proxy, gboolean locked, SmTray *self)
{
  g_autoptr(GNotification) n = g_notification_new (locked ? _("SecureMail is locked")
                                                          : _("SecureMail is unlocked"));

  if (locked)
    {
      /* The proxy sends LockReason before LockChanged. */
      g_autofree char *body = g_strdup_printf ("%s %s", locked_status (sm_dbus_proxy1_get_lock_reason (proxy)),
                                               _("Secure mail waits until you choose Unlock in the SecureMail menu."));
      g_notification_set_body (n, body);
    }
  else
    g_notification_set_body (n, _("Your mail program can read and send secure mail again."));
  g_application_send_notification (G_APPLICATION (self->app), "lock", n);
}

static void unlock_with (SmTray *self, const char *passphrase);

static void
on_token_pin_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GError) error = NULL;

  if (sm_dbus_proxy1_call_set_token_pin_finish (SM_DBUS_PROXY1 (source), result, &error) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_dbus_error_strip_remote_error (error);
  sm_gui_message (NULL, GTK_MESSAGE_ERROR, _("The PIN was not taken"), error->message);
}

/* The PIN of the token that holds the client certificate, handed to the
 * daemon (SetTokenPin), which keeps it in memory until the next lock. */
static void
ask_token_pin (SmTray *self)
{
  char *pin;

  if (self->proxy == NULL || self->asking_pin)
    return;
  self->asking_pin = TRUE;
  update (self);
  pin = sm_gui_ask_secret (NULL, _("Type the PIN of your smartcard or token. SecureMail uses it to sign you in to "
                                   "your provider until SecureMail locks."),
                           TRUE);
  self->asking_pin = FALSE;
  /* The tray may have quit while the dialog was open. */
  if (pin != NULL && *pin != '\0' && self->proxy != NULL)
    sm_dbus_proxy1_call_set_token_pin (self->proxy, pin, self->cancellable, on_token_pin_done, g_object_ref (self));
  sm_gui_secret_free (pin);
  if (self->builder != NULL)
    update (self);
}

static gboolean
ask_token_pin_idle (gpointer data)
{
  ask_token_pin (SM_TRAY (data));
  return G_SOURCE_REMOVE;
}

/* The dialog runs a main loop of its own: from an idle, so that whatever
 * asked for it (a menu click over dbusmenu, a notification's
 * ActivateAction) gets its reply first. */
static void
ask_token_pin_later (SmTray *self)
{
  g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, ask_token_pin_idle, g_object_ref (self), g_object_unref);
}

static void
on_pin_item (GtkMenuItem *mi, SmTray *self)
{
  ask_token_pin_later (self);
}

static void
on_token_pin_action (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  ask_token_pin_later (SM_TRAY (user_data));
}

static void
on_lock_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok = sm_dbus_proxy1_call_lock_finish (SM_DBUS_PROXY1 (source), result, &error);

  if (!ok && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self->busy = FALSE;
  /* Lock/Unlock was greyed while the call was on its way: enable it again
   * (the Locked property had already arrived, before the reply). */
  update (self);
  if (!ok)
    {
      g_dbus_error_strip_remote_error (error);
      sm_gui_message (NULL, GTK_MESSAGE_WARNING, _("SecureMail is locked, but"), error->message);
    }
}

static void
on_unlock_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean typed = GPOINTER_TO_INT (g_object_steal_data (G_OBJECT (self), "sm-unlock-typed"));
  char *passphrase;

  self->busy = FALSE;
  if (sm_dbus_proxy1_call_unlock_finish (SM_DBUS_PROXY1 (source), result, &error))
    {
      /* Unlocking is when a smartcard user expects to type the PIN. */
      if (sm_dbus_proxy1_get_token_pin_needed (SM_DBUS_PROXY1 (source)))
        {
          self->pin_notified = TRUE;
          ask_token_pin_later (self);
        }
      update (self);
      return;
    }
  update (self);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_dbus_error_strip_remote_error (error);
  if (typed)
    {
      sm_gui_message (NULL, GTK_MESSAGE_ERROR, _("SecureMail stays locked"), error->message);
      return;
    }
  /* The keyring could not do it: the user's own passphrase or PIN may. */
  passphrase = sm_gui_ask_secret (NULL, _("Type the passphrase of your key (or your smartcard PIN) to unlock SecureMail"),
                                  TRUE);
  if (passphrase != NULL && *passphrase != '\0')
    unlock_with (self, passphrase);
  sm_gui_secret_free (passphrase);
}

/* @passphrase NULL: from the keyring. */
static void
unlock_with (SmTray *self, const char *passphrase)
{
  self->busy = TRUE;
  g_object_set_data (G_OBJECT (self), "sm-unlock-typed", GINT_TO_POINTER (passphrase != NULL));
  sm_dbus_proxy1_call_unlock (self->proxy, passphrase ? passphrase : "", self->cancellable, on_unlock_done,
                              g_object_ref (self));
  update (self);
}

static void
on_lock (GtkMenuItem *mi, SmTray *self)
{
  if (self->proxy == NULL || self->busy)
    return;
  if (sm_dbus_proxy1_get_locked (self->proxy))
    unlock_with (self, NULL);
  else
    {
      self->busy = TRUE;
      sm_dbus_proxy1_call_lock (self->proxy, self->cancellable, on_lock_done, g_object_ref (self));
      update (self);
    }
}

static void
on_personal (GtkMenuItem *mi, SmTray *self)
{
  open_page (self, "messages");
}

/* ---- OAuth2 sign-in (issue 7) ----------------------------------------------------------- */

static void
on_sign_in_required (SmTray *self)
{
  g_autoptr(GNotification) n = g_notification_new (_("Sign in to your provider again"));

  g_notification_set_body (n, _("Your provider wants you to sign in again before SecureMail can fetch or send "
                                "mail. Choose “Sign in to your provider again” in the SecureMail menu."));
  g_notification_set_priority (n, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action (n, "app.oauth2-login");
  g_application_send_notification (G_APPLICATION (self->app), "oauth2-sign-in", n);
}

static gboolean
open_uri (const char *uri, gpointer user_data)
{
  g_autoptr(GError) error = NULL;

  if (sm_oauth2_open_in_browser (uri, &error))
    return TRUE;
  g_warning ("cannot open the browser for the sign-in: %s", error->message);
  return FALSE;
}

/* Worker thread: the browser sign-in (it waits for the browser). */
static void
sign_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SmTray *self = source;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmGuiSettings) s = sm_gui_settings_load (self->config_path, &error);
  g_autoptr(SmConfig) config = s ? sm_gui_settings_to_config (s, &error) : NULL;

  if (config == NULL || !sm_oauth2_login_browser (config, open_uri, NULL, cancellable, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

static void
on_sign_in_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmTray *self = SM_TRAY (source);
  g_autoptr(GError) error = NULL;

  self->signing_in = FALSE;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        sm_gui_message (NULL, GTK_MESSAGE_ERROR, _("The sign-in did not work"), error->message);
    }
  else if (self->proxy != NULL)
    /* The daemon forgets its old token and ConsentNeeded; update() follows. */
    sm_dbus_proxy1_call_oauth2_signed_in (self->proxy, self->cancellable, NULL, NULL);
  if (self->builder != NULL)
    update (self);
}

static void
start_sign_in (SmTray *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->signing_in)
    return;
  self->signing_in = TRUE;
  task = g_task_new (self, self->cancellable, on_sign_in_done, NULL);
  g_task_run_in_thread (task, sign_in_thread);
  update (self);
}

static void
on_signin (GtkMenuItem *mi, SmTray *self)
{
  start_sign_in (self);
}

static void
on_signin_action (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  start_sign_in (SM_TRAY (user_data));
}

/* ---- receipts and delivery failures (issue 6) ---------------------------------------- */

/* Says that the receipt of @r arrived or failed. */
static void
notify_receipt (SmTray *self, const SmGuiReceipt *r)
{
  gboolean ok = g_strcmp0 (r->status, "delivered-verified") == 0;
  g_autoptr(GNotification) n = g_notification_new (ok ? _("Signed receipt arrived") : _("Receipt failed"));
  g_autofree char *body = NULL;
  g_autofree char *id = g_strdup_printf ("receipt %s %s", r->message_id, r->recipient);

  if (ok)
    body = g_strdup_printf (_("%s confirmed your message %s, signed by %s."), r->recipient, r->message_id,
                            *r->signer ? r->signer : r->recipient);
  else
    body = g_strdup_printf (_("The receipt from %s for your message %s failed: %s"), r->recipient, r->message_id,
                            *r->reason ? r->reason : _("no reason given"));
  g_notification_set_body (n, body);
  if (!ok)
    g_notification_set_priority (n, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action_and_target (n, "app.open-page", "s", "receipts");
  g_application_send_notification (G_APPLICATION (self->app), id, n);
}

static void
on_receipts_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmTray) self = user_data;
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  gboolean first;
  GVariantIter iter;
  GVariant *e;

  if (!sm_dbus_proxy1_call_list_receipts_finish (SM_DBUS_PROXY1 (source), &entries, result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("ListReceipts: %s", error->message);
      return;
    }
  first = self->receipts == NULL;
  if (first)
    self->receipts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_variant_iter_init (&iter, entries);
  while ((e = g_variant_iter_next_value (&iter)) != NULL)
    {
      SmGuiReceipt r;
      g_autofree char *key = NULL;
      gboolean news;

      sm_gui_receipt_read (e, &r);
      key = g_strdup_printf ("%s %s", r.message_id, r.recipient);
      /* Before the first list, only what changed while the tray ran is news
       * (not every receipt of the past at each login). */
      news = first ? r.changed >= self->started : g_strcmp0 (g_hash_table_lookup (self->receipts, key), r.status) != 0;
      if (news && sm_gui_receipt_is_final (&r))
        notify_receipt (self, &r);
      g_hash_table_replace (self->receipts, g_steal_pointer (&key), g_strdup (r.status));
      g_variant_unref (e);
    }
}

/* ReceiptsChanged names the message, not what happened: ListReceipts
 * tells whether one of its receipts arrived or failed. */
static void
refresh_receipts (SmTray *self)
{
  if (self->proxy != NULL)
    sm_dbus_proxy1_call_list_receipts (self->proxy, self->cancellable, on_receipts_listed, g_object_ref (self));
}

static void
on_delivery_failed (SmDbusProxy1 *proxy, const char *id, const char *reason, SmTray *self)
{
  g_autoptr(GNotification) n = g_notification_new (_("A message could not be sent"));
  g_autofree char *body = g_strdup_printf (_("%s A report with the details is in your inbox."),
                                           *reason ? reason : _("The provider refused it."));
  g_autofree char *nid = g_strdup_printf ("delivery-failed %s", id);

  g_notification_set_body (n, body);
  g_notification_set_priority (n, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action_and_target (n, "app.open-page", "s", "outbox");
  g_application_send_notification (G_APPLICATION (self->app), nid, n);
}

static void
on_receipts (GtkMenuItem *mi, SmTray *self)
{
  open_page (self, "receipts");
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
  g_signal_connect_swapped (self->proxy, "notify::g-name-owner", G_CALLBACK (refresh_recent), self);
  g_signal_connect_swapped (self->proxy, "messages-changed", G_CALLBACK (refresh_recent), self);
  g_signal_connect (self->proxy, "lock-changed", G_CALLBACK (on_lock_changed), self);
  g_signal_connect (self->proxy, "delivery-failed", G_CALLBACK (on_delivery_failed), self);
  g_signal_connect_swapped (self->proxy, "receipts-changed", G_CALLBACK (refresh_receipts), self);
  g_signal_connect_swapped (self->proxy, "sign-in-required", G_CALLBACK (on_sign_in_required), self);
  update (self);
  refresh_recent (self);
  refresh_receipts (self);
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
  g_free (SM_TRAY (object)->key_warning_shown);
  g_clear_pointer (&SM_TRAY (object)->receipts, g_hash_table_unref);
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
  self->started = g_get_real_time () / G_USEC_PER_SEC;
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
  g_signal_connect (item (self, "lock_item"), "activate", G_CALLBACK (on_lock), self);
  g_signal_connect (item (self, "personal_item"), "activate", G_CALLBACK (on_personal), self);
  g_signal_connect (item (self, "receipts_item"), "activate", G_CALLBACK (on_receipts), self);
  g_signal_connect (item (self, "setup_item"), "activate", G_CALLBACK (on_setup), self);
  g_signal_connect (item (self, "help_item"), "activate", G_CALLBACK (on_help), self);
  g_signal_connect (item (self, "signin_item"), "activate", G_CALLBACK (on_signin), self);
  g_signal_connect (item (self, "pin_item"), "activate", G_CALLBACK (on_pin_item), self);
  {
    /* The notification's button; the tray lives as long as the app. */
    g_autoptr(GSimpleAction) action = g_simple_action_new ("oauth2-login", NULL);
    g_signal_connect_object (action, "activate", G_CALLBACK (on_signin_action), self, 0);
    g_action_map_add_action (G_ACTION_MAP (app), G_ACTION (action));
  }
  {
    g_autoptr(GSimpleAction) action = g_simple_action_new ("token-pin", NULL);
    g_signal_connect_object (action, "activate", G_CALLBACK (on_token_pin_action), self, 0);
    g_action_map_add_action (G_ACTION_MAP (app), G_ACTION (action));
  }
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
