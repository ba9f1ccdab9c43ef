/* sm-dbus-service.c: the daemon's D-Bus interface. */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-error.h"
#include "sm-pin-interaction.h"
#include "sm-key-summary.h"
#include "sm-oauth2.h"
#include "sm-receipts.h"
#include "sm-relay-worker.h"

/* How often the key store is read again for expiring keys: days matter, not
 * minutes, and each check runs gpg and gpgsm. */
#define SM_DBUS_KEY_CHECK_INTERVAL_S (6 * 60 * 60)

struct _SmDbusService {
  GObject parent_instance;
  SmServer *server;
  SmDbusProxy1 *skeleton;
  gulong status_handler;
  gulong messages_handler;
  gulong lock_handler;
  gulong queue_handler;         /* on the relay worker */
  gulong failed_handler;
  SmReceipts *receipts;         /* the process's state.db, once opened */
  gulong receipts_handler;
  guint key_timer;
  SmOAuth2 *oauth2;             /* [upstream] auth = oauth2: the shared token cache */
  gulong consent_handler;
};

G_DEFINE_FINAL_TYPE (SmDbusService, sm_dbus_service, G_TYPE_OBJECT)

static void
sm_dbus_service_finalize (GObject *object)
{
  SmDbusService *self = SM_DBUS_SERVICE (object);

  if (self->status_handler)
    g_signal_handler_disconnect (self->server, self->status_handler);
  if (self->messages_handler)
    g_signal_handler_disconnect (self->server, self->messages_handler);
  if (self->lock_handler)
    g_signal_handler_disconnect (self->server, self->lock_handler);
  if (self->queue_handler)
    g_signal_handler_disconnect (sm_server_get_queue (self->server), self->queue_handler);
  if (self->failed_handler)
    g_signal_handler_disconnect (sm_server_get_queue (self->server), self->failed_handler);
  if (self->receipts_handler)
    g_signal_handler_disconnect (self->receipts, self->receipts_handler);
  g_clear_object (&self->receipts);
  g_clear_handle_id (&self->key_timer, g_source_remove);
  if (self->consent_handler)
    g_signal_handler_disconnect (self->oauth2, self->consent_handler);
  g_clear_object (&self->oauth2);
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
  sm_dbus_proxy1_set_token_pin_needed (p, !sm_server_is_locked (self->server) &&
                                              sm_pin_interaction_get_pin_wanted ());
}

/* ---- the outbound queue (issue 5) ------------------------------------------ */

static void
on_queue_changed (SmDbusService *self)
{
  SmRelayWorker *queue = sm_server_get_queue (self->server);

  sm_dbus_proxy1_set_queue_size (self->skeleton, sm_spool_get_size (sm_relay_worker_get_spool (queue)));
  sm_dbus_proxy1_emit_queue_changed (self->skeleton);
}

static void
on_delivery_failed (SmDbusService *self, const char *id, const char *reason)
{
  g_autofree char *valid = g_utf8_make_valid (reason ? reason : "", -1);

  sm_dbus_proxy1_emit_delivery_failed (self->skeleton, id, valid);
}

static GVariant *
entry_to_variant (const SmSpoolEntry *e)
{
  GVariantDict d;

  g_variant_dict_init (&d, NULL);
  g_variant_dict_insert (&d, "id", "s", e->id);
  g_variant_dict_insert_value (&d, "sender", g_variant_new_take_string (g_utf8_make_valid (e->sender, -1)));
  {
    GVariantBuilder b;
    g_variant_builder_init (&b, G_VARIANT_TYPE_STRING_ARRAY);
    for (guint i = 0; e->recipients[i]; i++)
      g_variant_builder_add_value (&b, g_variant_new_take_string (g_utf8_make_valid (e->recipients[i], -1)));
    g_variant_dict_insert_value (&d, "recipients", g_variant_builder_end (&b));
  }
  g_variant_dict_insert (&d, "created", "x", e->created);
  g_variant_dict_insert (&d, "next_attempt", "x", e->next_attempt_ms / 1000);
  g_variant_dict_insert (&d, "attempts", "u", e->attempts);
  g_variant_dict_insert (&d, "state", "s", sm_spool_state_to_string (e->state));
  g_variant_dict_insert_value (&d, "last_error",
                               g_variant_new_take_string (g_utf8_make_valid (e->last_error ? e->last_error : "", -1)));
  g_variant_dict_insert_value (&d, "message_id",
                               g_variant_new_take_string (g_utf8_make_valid (e->message_id ? e->message_id : "", -1)));
  g_variant_dict_insert (&d, "size", "t", e->size);
  g_variant_dict_insert (&d, "report", "b", e->is_report);
  return g_variant_dict_end (&d);
}

static gboolean
handle_list_queue (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, SmDbusService *self)
{
  g_autoptr(GPtrArray) list = sm_spool_list (sm_relay_worker_get_spool (sm_server_get_queue (self->server)));
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < list->len; i++)
    g_variant_builder_add_value (&b, entry_to_variant (list->pdata[i]));
  sm_dbus_proxy1_complete_list_queue (skeleton, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_retry (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, const char *id, SmDbusService *self)
{
  g_autoptr(GError) error = NULL;

  if (!sm_relay_worker_retry (sm_server_get_queue (self->server), id, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    sm_dbus_proxy1_complete_retry (skeleton, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_delete (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, const char *id, SmDbusService *self)
{
  g_autoptr(GError) error = NULL;

  if (!sm_relay_worker_delete (sm_server_get_queue (self->server), id, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    sm_dbus_proxy1_complete_delete (skeleton, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

const char *
sm_dbus_trust_words (const char *trust)
{
  static const struct { const char *value; const char *words; } table[] = {
    { "verified", N_("verified") },
    { "signed-untrusted", N_("signed, signer not trusted") },
    { "signer-mismatch", N_("WARNING: signed by someone else") },
    { "invalid", N_("WARNING: invalid signature") },
    { "decrypt-failed", N_("cannot decrypt") },
    { "encrypted-unsigned", N_("encrypted, unsigned") },
    { "unprotected", N_("unprotected") },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    if (g_strcmp0 (trust, table[i].value) == 0)
      return _(table[i].words);
  return trust;
}

/* ---- recent messages (issue 6) --------------------------------------------- */

static GVariant *
summary_to_variant (const SmMessageSummary *m)
{
  GVariantDict d;

  /* Every string was made valid UTF-8 by the server. */
  g_variant_dict_init (&d, NULL);
  g_variant_dict_insert (&d, "mailbox", "s", m->mailbox);
  g_variant_dict_insert (&d, "uidvalidity", "u", m->uidvalidity);
  g_variant_dict_insert (&d, "uid", "u", m->uid);
  g_variant_dict_insert (&d, "trust", "s", sm_trust_header_value (m->trust));
  g_variant_dict_insert (&d, "signer", "s", m->signer);
  g_variant_dict_insert (&d, "from", "s", m->from);
  g_variant_dict_insert (&d, "subject", "s", m->subject);
  g_variant_dict_insert (&d, "date", "x", m->date);
  g_variant_dict_insert (&d, "encrypted", "b", m->encrypted);
  g_variant_dict_insert (&d, "personal", "b", m->personal);
  return g_variant_dict_end (&d);
}

static gboolean
handle_list_messages (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, guint limit, SmDbusService *self)
{
  g_autoptr(GPtrArray) list = sm_server_list_messages (self->server, limit);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < list->len; i++)
    g_variant_builder_add_value (&b, summary_to_variant (list->pdata[i]));
  sm_dbus_proxy1_complete_list_messages (skeleton, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
on_messages_changed (SmDbusService *self)
{
  sm_dbus_proxy1_emit_messages_changed (self->skeleton);
}

/* ---- receipts ----------------------------------------------------------------- */

static gboolean
handle_list_receipts (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, SmDbusService *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  GVariantBuilder b;

  if (self->receipts == NULL)
    {
      g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR, G_DBUS_ERROR_FAILED,
                                             _("The receipts are not available (state.db cannot be opened)"));
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  rows = sm_receipts_list (self->receipts, g_get_real_time () / G_USEC_PER_SEC,
                           sm_server_get_config (self->server)->receipt_overdue_s, &error);
  if (rows == NULL)
    {
      g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR, G_DBUS_ERROR_FAILED, "%s", error->message);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  g_variant_builder_init (&b, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < rows->len; i++)
    {
      const SmReceiptRow *r = rows->pdata[i];
      GVariantBuilder e;

      g_variant_builder_init (&e, G_VARIANT_TYPE ("a{sv}"));
      g_variant_builder_add (&e, "{sv}", "message_id", g_variant_new_string (r->message_id));
      g_variant_builder_add (&e, "{sv}", "recipient", g_variant_new_string (r->recipient));
      g_variant_builder_add (&e, "{sv}", "status", g_variant_new_string (sm_receipt_status_to_string (r->status)));
      g_variant_builder_add (&e, "{sv}", "sent", g_variant_new_int64 (r->sent));
      g_variant_builder_add (&e, "{sv}", "changed", g_variant_new_int64 (r->changed));
      g_variant_builder_add (&e, "{sv}", "signer", g_variant_new_string (r->signer ? r->signer : ""));
      g_variant_builder_add (&e, "{sv}", "reason", g_variant_new_string (r->reason ? r->reason : ""));
      g_variant_builder_add_value (&b, g_variant_builder_end (&e));
    }
  sm_dbus_proxy1_complete_list_receipts (skeleton, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
on_receipts_changed (SmDbusService *self, const char *message_id)
{
  sm_dbus_proxy1_emit_receipts_changed (self->skeleton, message_id ? message_id : "");
}

/* ---- key expiry (issue 6) ---------------------------------------------------- */

typedef struct {
  char *warning;        /* NULL: nothing expires soon */
  char *fingerprint;
  int days_left;
} KeyCheck;

static void
key_check_free (KeyCheck *k)
{
  g_free (k->warning);
  g_free (k->fingerprint);
  g_free (k);
}

static void
key_check_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  KeyCheck *k = g_new0 (KeyCheck, 1);
  GError *error = NULL;

  if (!sm_key_summary_soonest_expiry (SM_KEY_SUMMARY_WARN_DAYS, &k->warning, &k->fingerprint, &k->days_left,
                                      &error))
    {
      key_check_free (k);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, k, (GDestroyNotify) key_check_free);
}

/* Sets the properties, and signals a warning that is new or changed. */
static void
key_check_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmDbusService *self = SM_DBUS_SERVICE (source);
  g_autoptr(GDBusMethodInvocation) invocation = user_data;   /* CheckKeys, or NULL */
  g_autoptr(GError) error = NULL;
  KeyCheck *k = g_task_propagate_pointer (G_TASK (result), &error);
  const char *warning;

  if (k == NULL)
    {
      /* Keep the last answer: a store that cannot be read now (gpg busy)
       * does not make a key expire later. */
      g_message ("Cannot check the keys for expiry: %s", error->message);
      if (invocation)
        g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  warning = k->warning ? k->warning : "";
  if (g_strcmp0 (sm_dbus_proxy1_get_key_warning (self->skeleton), warning) != 0 ||
      sm_dbus_proxy1_get_key_days_left (self->skeleton) != k->days_left)
    {
      sm_dbus_proxy1_set_key_warning (self->skeleton, warning);
      sm_dbus_proxy1_set_key_days_left (self->skeleton, k->days_left);
      if (k->warning != NULL)
        {
          g_message ("Key %s: %d days left", k->fingerprint, k->days_left);
          sm_dbus_proxy1_emit_key_expiring (self->skeleton, k->fingerprint, k->days_left, warning);
        }
    }
  key_check_free (k);
  if (invocation)
    sm_dbus_proxy1_complete_check_keys (self->skeleton, invocation);
}

static void
check_keys (SmDbusService *self, GDBusMethodInvocation *invocation)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, key_check_done, invocation ? g_object_ref (invocation) : NULL);

  g_task_run_in_thread (task, key_check_thread);
}

static gboolean
on_key_timer (gpointer user_data)
{
  check_keys (user_data, NULL);
  return G_SOURCE_CONTINUE;
}

static gboolean
handle_check_keys (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, SmDbusService *self)
{
  check_keys (self, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- [PERSONAL] ---------------------------------------------------------------- */

static void
on_marked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GDBusMethodInvocation) invocation = user_data;
  g_autoptr(GError) error = NULL;

  if (!sm_server_mark_personal_finish (SM_SERVER (source), result, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    g_dbus_method_invocation_return_value (invocation, NULL);
}

static gboolean
handle_mark_personal (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, const char *mailbox, guint uid,
                      SmDbusService *self)
{
  sm_server_mark_personal_async (self->server, mailbox, uid, NULL, on_marked, g_object_ref (invocation));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- the unlock gate (issue 7) --------------------------------------------- */

static void
on_lock_changed (SmDbusService *self, gboolean locked)
{
  sm_dbus_proxy1_set_locked (self->skeleton, locked);
  sm_dbus_proxy1_set_lock_reason (self->skeleton,
                                  sm_lock_reason_to_string (sm_server_get_lock_reason (self->server)));
  update (self);
  /* PropertiesChanged now, not from an idle: a client reading LockReason
   * when LockChanged arrives sees the new one. */
  g_dbus_interface_skeleton_flush (G_DBUS_INTERFACE_SKELETON (self->skeleton));
  sm_dbus_proxy1_emit_lock_changed (self->skeleton, locked);
}

static gboolean
handle_lock (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, SmDbusService *self)
{
  g_autoptr(GError) error = NULL;

  /* The gate is closed even when gpg-agent failed to forget: report it. */
  if (!sm_server_lock (self->server, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    sm_dbus_proxy1_complete_lock (skeleton, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_unlock (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, const char *passphrase,
               SmDbusService *self)
{
  g_autoptr(GError) error = NULL;

  if (!sm_server_unlock (self->server, *passphrase ? passphrase : NULL, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    {
      /* Unlock while unlocked changes no lock state but may change what
       * the token wants (TokenPinNeeded): published before the reply. */
      update (self);
      g_dbus_interface_skeleton_flush (G_DBUS_INTERFACE_SKELETON (self->skeleton));
      sm_dbus_proxy1_complete_unlock (skeleton, invocation);
    }
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_set_token_pin (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, const char *pin,
                      SmDbusService *self)
{
  if (*pin != '\0' && sm_server_is_locked (self->server))
    {
      g_dbus_method_invocation_return_error_literal (invocation, SM_ERROR, SM_ERROR_LOCKED,
                                                     _("SecureMail is locked: unlock it first, then give "
                                                       "the PIN"));
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  sm_pin_interaction_set_session_pin (pin);
  update (self);
  sm_dbus_proxy1_complete_set_token_pin (skeleton, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- OAuth2 sign-in (issue 7) ---------------------------------------------- */

static void
on_consent_needed (SmDbusService *self)
{
  gboolean needed = sm_oauth2_get_consent_needed (self->oauth2);

  if (needed == sm_dbus_proxy1_get_consent_needed (self->skeleton))
    return;
  sm_dbus_proxy1_set_consent_needed (self->skeleton, needed);
  if (needed)
    sm_dbus_proxy1_emit_sign_in_required (self->skeleton);
}

static gboolean
handle_oauth2_signed_in (SmDbusProxy1 *skeleton, GDBusMethodInvocation *invocation, SmDbusService *self)
{
  /* Without oauth2 there is nothing to forget; succeed all the same, so
   * that the CLI need not know the daemon's config. */
  if (self->oauth2 != NULL)
    sm_oauth2_reset (self->oauth2);
  sm_dbus_proxy1_complete_oauth2_signed_in (skeleton, invocation);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
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
  if (sm_server_get_queue (server) != NULL)
    {
      SmRelayWorker *queue = sm_server_get_queue (server);
      sm_dbus_proxy1_set_queue_size (self->skeleton, sm_spool_get_size (sm_relay_worker_get_spool (queue)));
      self->queue_handler = g_signal_connect_swapped (queue, "queue-changed", G_CALLBACK (on_queue_changed), self);
      self->failed_handler = g_signal_connect_swapped (queue, "delivery-failed", G_CALLBACK (on_delivery_failed), self);
      g_signal_connect (self->skeleton, "handle-list-queue", G_CALLBACK (handle_list_queue), self);
      g_signal_connect (self->skeleton, "handle-retry", G_CALLBACK (handle_retry), self);
      g_signal_connect (self->skeleton, "handle-delete", G_CALLBACK (handle_delete), self);
    }
  sm_dbus_proxy1_set_locked (self->skeleton, sm_server_is_locked (server));
  sm_dbus_proxy1_set_lock_reason (self->skeleton, sm_lock_reason_to_string (sm_server_get_lock_reason (server)));
  self->lock_handler = g_signal_connect_swapped (server, "lock-changed", G_CALLBACK (on_lock_changed), self);
  g_signal_connect (self->skeleton, "handle-lock", G_CALLBACK (handle_lock), self);
  g_signal_connect (self->skeleton, "handle-mark-personal", G_CALLBACK (handle_mark_personal), self);
  g_signal_connect (self->skeleton, "handle-unlock", G_CALLBACK (handle_unlock), self);
  g_signal_connect (self->skeleton, "handle-set-token-pin", G_CALLBACK (handle_set_token_pin), self);
  update (self);
  self->status_handler = g_signal_connect_swapped (server, "status-changed", G_CALLBACK (update), self);
  self->messages_handler = g_signal_connect_swapped (server, "messages-changed", G_CALLBACK (on_messages_changed), self);
  g_signal_connect (self->skeleton, "handle-list-messages", G_CALLBACK (handle_list_messages), self);
  {
    g_autoptr(GError) local = NULL;
    SmReceipts *receipts = sm_receipts_get_default (&local);

    if (receipts != NULL)
      {
        self->receipts = g_object_ref (receipts);
        self->receipts_handler = g_signal_connect_swapped (receipts, "changed", G_CALLBACK (on_receipts_changed), self);
      }
    else
      g_message ("Receipts will not be listed over D-Bus: %s", local->message);
  }
  g_signal_connect (self->skeleton, "handle-list-receipts", G_CALLBACK (handle_list_receipts), self);
  sm_dbus_proxy1_set_key_warning (self->skeleton, "");
  g_signal_connect (self->skeleton, "handle-check-keys", G_CALLBACK (handle_check_keys), self);
  check_keys (self, NULL);
  self->key_timer = g_timeout_add_seconds (SM_DBUS_KEY_CHECK_INTERVAL_S, on_key_timer, self);
  if (config->auth == SM_AUTH_OAUTH2)
    {
      self->oauth2 = g_object_ref (sm_oauth2_get_shared (config));
      sm_dbus_proxy1_set_consent_needed (self->skeleton, sm_oauth2_get_consent_needed (self->oauth2));
      self->consent_handler = g_signal_connect_swapped (self->oauth2, "notify::consent-needed",
                                                        G_CALLBACK (on_consent_needed), self);
    }
  g_signal_connect (self->skeleton, "handle-oauth2-signed-in", G_CALLBACK (handle_oauth2_signed_in), self);
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->skeleton), connection,
                                         SM_DBUS_OBJECT_PATH, error))
    return NULL;
  return g_steal_pointer (&self);
}
