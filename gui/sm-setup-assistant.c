/* sm-setup-assistant.c: securemail-setup. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-autoconfig.h"
#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-error.h"
#include "sm-gui-client.h"
#include "sm-gui-keys.h"
#include "sm-key-summary.h"
#include "sm-gui-settings.h"
#include "sm-gui.h"
#include "sm-keyring.h"
#include "sm-oauth2-login.h"
#include "sm-oauth2.h"
#include "sm-setup-assistant.h"
#include "sm-upstream.h"

struct _SmSetupAssistant {
  GObject parent_instance;
  GtkBuilder *builder;
  GtkAssistant *window;
  SmGuiSettings *settings;
  char *config_path;
  GCancellable *cancellable;
  guint busy;
  gboolean test_passed;
  gboolean signed_in;         /* an OAuth2 sign-in worked with the fields as they are */
  gboolean signing_in;        /* an OAuth2 sign-in is waiting for the user */
  GCancellable *sign_in_cancellable;  /* that sign-in's; cancelled when a setting changes */
  gboolean done;
  SmAutoconfig *autoconfig;
  char *looked_up;            /* the address whose settings were looked up */
  gboolean looking_up;
  SmProviderSettings *found;  /* what the lookup filled in, or NULL */
  char *found_hint;           /* and where it came from, for the user */
};

G_DEFINE_TYPE (SmSetupAssistant, sm_setup_assistant, G_TYPE_OBJECT)

/* A field written whatever login method is chosen. */
#define AUTH_ANY (-1)

/* Entry id -> config key; the order is the order of the pages.  A field of
 * one login method (step 4) is written only while that method is chosen, so
 * that switching methods leaves no half-used settings in the file. */
static const struct {
  const char *entry;
  const char *group;
  const char *key;
  int auth;   /* an SmAuthMethod, or AUTH_ANY */
} fields[] = {
  { "address_entry", "account", "address", AUTH_ANY },
  { "display_name_entry", "account", "display_name", AUTH_ANY },
  { "imap_entry", "upstream", "imap", AUTH_ANY },
  { "smtp_entry", "upstream", "smtp", AUTH_ANY },
  { "username_entry", "upstream", "username", AUTH_ANY },
  { "ca_file_entry", "upstream", "ca_file", AUTH_ANY },
  { "oauth2_token_entry", "oauth2", "token_endpoint", SM_AUTH_OAUTH2 },
  { "oauth2_authorization_entry", "oauth2", "authorization_endpoint", SM_AUTH_OAUTH2 },
  { "oauth2_client_id_entry", "oauth2", "client_id", SM_AUTH_OAUTH2 },
  { "oauth2_scope_entry", "oauth2", "scope", SM_AUTH_OAUTH2 },
  { "oauth2_device_entry", "oauth2", "device_authorization_endpoint", SM_AUTH_OAUTH2 },
  { "client_certificate_entry", "upstream", "client_certificate", SM_AUTH_CERTIFICATE },
};

/* The login methods of step 4: radio button, page of auth_stack, and the
 * value of [upstream] auth (as sm-config.c reads it). */
static const struct {
  SmAuthMethod auth;
  const char *radio;
  const char *name;
} auth_methods[] = {
  { SM_AUTH_PASSWORD, "auth_password_radio", "password" },
  { SM_AUTH_OAUTH2, "auth_oauth2_radio", "oauth2" },
  { SM_AUTH_CERTIFICATE, "auth_certificate_radio", "certificate" },
};

static GtkWidget *
w (SmSetupAssistant *self, const char *id)
{
  GObject *o = gtk_builder_get_object (self->builder, id);
  g_assert (o != NULL);
  return GTK_WIDGET (o);
}

static const char *
text (SmSetupAssistant *self, const char *id)
{
  return gtk_entry_get_text (GTK_ENTRY (w (self, id)));
}

static void
set_label (SmSetupAssistant *self, const char *id, const char *str)
{
  gtk_label_set_text (GTK_LABEL (w (self, id)), str ? str : "");
}

static void
set_complete (SmSetupAssistant *self, const char *page, gboolean complete)
{
  gtk_assistant_set_page_complete (self->window, w (self, page), complete);
}

static SmAuthMethod
chosen_auth (SmSetupAssistant *self)
{
  for (guint i = 0; i < G_N_ELEMENTS (auth_methods); i++)
    if (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w (self, auth_methods[i].radio))))
      return auth_methods[i].auth;
  return SM_AUTH_PASSWORD;
}

/* Copies the (unlocked) entries into the settings; locked keys keep the
 * administrator's value. */
static void
entries_to_settings (SmSetupAssistant *self)
{
  SmAuthMethod auth = chosen_auth (self);

  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autofree char *v = g_strstrip (g_strdup (text (self, fields[i].entry)));
      gboolean used = fields[i].auth == AUTH_ANY || fields[i].auth == (int) auth;
      sm_gui_settings_set (self->settings, fields[i].group, fields[i].key, used ? v : NULL);
    }
  /* "password" is the default: the file stays as it was before issue 7. */
  for (guint i = 0; i < G_N_ELEMENTS (auth_methods); i++)
    if (auth_methods[i].auth == auth)
      sm_gui_settings_set (self->settings, "upstream", "auth", auth == SM_AUTH_PASSWORD ? NULL : auth_methods[i].name);
}

static gboolean
address_valid (const char *a)
{
  const char *at = strchr (a, '@');
  return at != NULL && at != a && strchr (at + 1, '.') != NULL && strchr (at + 1, '@') == NULL &&
         strpbrk (a, " \t<>,;\"") == NULL && at[strlen (at) - 1] != '.';
}

static void
invalidate_test (SmSetupAssistant *self)
{
  self->test_passed = FALSE;
  set_complete (self, "page_test", FALSE);
}

static void on_credentials_changed (SmSetupAssistant *self);
static void update_sign_in_buttons (SmSetupAssistant *self);

/* A sign-in still waiting (the device grant polls for up to half an hour)
 * is for the settings it started with: stopped when one changes. */
static void
cancel_sign_in (SmSetupAssistant *self)
{
  if (self->sign_in_cancellable == NULL)
    return;
  g_cancellable_cancel (self->sign_in_cancellable);
  g_clear_object (&self->sign_in_cancellable);
  self->signing_in = FALSE;
  update_sign_in_buttons (self);
  set_label (self, "oauth2_result_label",
             _("The settings changed while you were signing in: press “Sign in…” again."));
}

/* The sign-in is stored for one address at one provider: anything that
 * changes either needs a new one. */
static void
invalidate_sign_in (SmSetupAssistant *self)
{
  cancel_sign_in (self);
  if (!self->signed_in)
    return;
  self->signed_in = FALSE;
  set_label (self, "oauth2_result_label", "");
  on_credentials_changed (self);
}

static void
on_account_changed (SmSetupAssistant *self)
{
  const char *a = text (self, "address_entry");
  gboolean ok = address_valid (a);

  invalidate_sign_in (self);

  set_label (self, "account_hint", *a == '\0' || ok ? "" : _("This does not look like an e-mail address yet: it needs a name, an @ and a domain, like alice@example.org."));
  set_complete (self, "page_account", ok);
  invalidate_test (self);
}

static void
on_provider_changed (SmSetupAssistant *self)
{
  gboolean ok = *text (self, "imap_entry") && *text (self, "smtp_entry") && *text (self, "username_entry");
  /* Where the servers came from stays said while they are unchanged. */
  gboolean as_found = self->found != NULL && g_strcmp0 (text (self, "imap_entry"), self->found->imap_url) == 0 &&
                      g_strcmp0 (text (self, "smtp_entry"), self->found->smtp_url) == 0;

  set_complete (self, "page_provider", ok);
  set_label (self, "provider_hint", !ok ? _("Fill in the incoming server, the outgoing server and the user name.")
                                        : as_found ? self->found_hint : "");
  invalidate_test (self);
}

/* ---- step 3: the provider's settings, found from the address --------------- */

/* Sets entry @id to @value when it is empty and the user may change it. */
static void
prefill (SmSetupAssistant *self, const char *id, const char *value)
{
  if (value != NULL && gtk_widget_get_sensitive (w (self, id)) && *text (self, id) == '\0')
    gtk_entry_set_text (GTK_ENTRY (w (self, id)), value);
}

static void
lookup_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmSetupAssistant) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) found = sm_autoconfig_lookup_finish (SM_AUTOCONFIG (source), result, &error);

  self->looking_up = FALSE;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  /* What the user typed meanwhile wins. */
  if (*text (self, "imap_entry") != '\0' || *text (self, "smtp_entry") != '\0')
    return;
  if (found == NULL)
    {
      set_label (self, "provider_hint", error->message);
      return;
    }
  /* TRANSLATORS: %s is where the settings were found: a web address, or
   * "the SRV records of example.org". */
  g_free (self->found_hint);
  self->found_hint = g_strdup_printf (_("These settings were found in %s. Check them against what your provider or "
                                        "administrator wrote, then press “Next”."),
                                      found->source);
  sm_provider_settings_free (self->found);
  self->found = g_steal_pointer (&found);
  gtk_entry_set_text (GTK_ENTRY (w (self, "imap_entry")), self->found->imap_url);
  gtk_entry_set_text (GTK_ENTRY (w (self, "smtp_entry")), self->found->smtp_url);
  if (self->found->username != NULL && gtk_widget_get_sensitive (w (self, "username_entry")) &&
      (*text (self, "username_entry") == '\0' || g_strcmp0 (text (self, "username_entry"), self->looked_up) == 0))
    gtk_entry_set_text (GTK_ENTRY (w (self, "username_entry")), self->found->username);
  /* The provider's OAuth2 sign-in addresses go to step 4, never over what
   * the user typed or the administrator set; OAuth2 is chosen there when it
   * is the provider's first way in (the client ID still comes from the
   * administrator: documents do not carry one). */
  prefill (self, "oauth2_authorization_entry", self->found->oauth2_authorization_endpoint);
  prefill (self, "oauth2_token_entry", self->found->oauth2_token_endpoint);
  prefill (self, "oauth2_scope_entry", self->found->oauth2_scope);
  if (self->found->oauth2_first && self->found->oauth2_authorization_endpoint != NULL &&
      self->found->oauth2_token_endpoint != NULL && gtk_widget_get_sensitive (w (self, "auth_oauth2_radio")))
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (w (self, "auth_oauth2_radio")), TRUE);
  on_provider_changed (self);
}

/* Looks the settings up once per address, when the servers are still
 * empty and not set by the administrator. */
static void
maybe_look_up (SmSetupAssistant *self)
{
  const char *address = text (self, "address_entry");
  g_autofree char *hint = NULL;

  if (!address_valid (address) || *text (self, "imap_entry") != '\0' || *text (self, "smtp_entry") != '\0' ||
      !gtk_widget_get_sensitive (w (self, "imap_entry")) || !gtk_widget_get_sensitive (w (self, "smtp_entry")) ||
      g_strcmp0 (self->looked_up, address) == 0)
    return;
  g_free (self->looked_up);
  self->looked_up = g_strdup (address);
  self->looking_up = TRUE;
  hint = g_strdup_printf (_("Looking for the settings of %s… You can also type them."), strrchr (address, '@') + 1);
  set_label (self, "provider_hint", hint);
  sm_autoconfig_lookup_async (self->autoconfig, address, self->cancellable, lookup_done, g_object_ref (self));
}

/* ---- step 4: how the provider lets the user in ---------------------------- */

static void
on_credentials_changed (SmSetupAssistant *self)
{
  SmAuthMethod auth = chosen_auth (self);
  const char *hint = "";
  gboolean ok;

  switch (auth)
    {
    case SM_AUTH_OAUTH2:
      ok = *text (self, "oauth2_token_entry") && *text (self, "oauth2_client_id_entry") &&
           (*text (self, "oauth2_authorization_entry") || *text (self, "oauth2_device_entry"));
      if (!ok)
        hint = _("Fill in the token address, the client ID and the sign-in page address (or the sign-in "
                 "address for another device).");
      else if (!self->signed_in)
        hint = _("Press “Sign in…” and sign in in your browser, or “Sign in on another device…” and type "
                 "the code shown here on a phone or another computer.");
      ok = ok && self->signed_in;
      break;
    case SM_AUTH_CERTIFICATE:
      ok = *text (self, "client_certificate_entry") != '\0';
      if (!ok)
        hint = _("Choose the certificate file, or type the smartcard's pkcs11: address.");
      break;
    case SM_AUTH_PASSWORD:
    default:
      ok = *text (self, "password_entry") != '\0';
      break;
    }
  set_label (self, "auth_hint", hint);
  set_complete (self, "page_password", ok);
  invalidate_test (self);
}

static void
on_auth_toggled (GtkToggleButton *radio, SmSetupAssistant *self)
{
  if (!gtk_toggle_button_get_active (radio))
    return;   /* the radio turned on calls this too */
  for (guint i = 0; i < G_N_ELEMENTS (auth_methods); i++)
    if (GTK_WIDGET (radio) == w (self, auth_methods[i].radio))
      gtk_stack_set_visible_child_name (GTK_STACK (w (self, "auth_stack")), auth_methods[i].name);
  on_credentials_changed (self);
}

/* Each way of signing in needs its address, and one at a time. */
static void
update_sign_in_buttons (SmSetupAssistant *self)
{
  gtk_widget_set_sensitive (w (self, "oauth2_signin_button"), !self->signing_in);
  gtk_widget_set_sensitive (w (self, "oauth2_device_button"),
                            !self->signing_in && *text (self, "oauth2_device_entry") != '\0');
}

static void
on_oauth2_changed (SmSetupAssistant *self)
{
  invalidate_sign_in (self);
  update_sign_in_buttons (self);
  on_credentials_changed (self);
}

static void
on_certificate_file_set (GtkFileChooserButton *chooser, SmSetupAssistant *self)
{
  g_autofree char *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  if (path != NULL)
    gtk_entry_set_text (GTK_ENTRY (w (self, "client_certificate_entry")), path);
}

static void
on_show_password (GtkToggleButton *check, SmSetupAssistant *self)
{
  gtk_entry_set_visibility (GTK_ENTRY (w (self, "password_entry")), gtk_toggle_button_get_active (check));
}

static void
busy_begin (SmSetupAssistant *self, const char *spinner)
{
  self->busy++;
  gtk_spinner_start (GTK_SPINNER (w (self, spinner)));
}

static void
busy_end (SmSetupAssistant *self, const char *spinner)
{
  self->busy--;
  gtk_spinner_stop (GTK_SPINNER (w (self, spinner)));
}

/* The settings as they would be saved now; on failure the reason is shown
 * in @label_id. */
static SmConfig *
current_config (SmSetupAssistant *self, const char *label_id, const char *format)
{
  g_autoptr(GError) error = NULL;
  SmConfig *config;

  entries_to_settings (self);
  config = sm_gui_settings_to_config (self->settings, &error);
  if (config == NULL)
    {
      g_autofree char *msg = g_strdup_printf (format, error->message);
      set_label (self, label_id, msg);
    }
  return config;
}

/* ---- step 4: OAuth2 sign-in in the browser (a worker thread) -------------- */

/* A text for the result label, made in the worker thread and set from the
 * main context. */
typedef struct {
  SmSetupAssistant *self;
  char *text;
} ResultNote;

static gboolean
show_result_note (gpointer data)
{
  ResultNote *n = data;

  set_label (n->self, "oauth2_result_label", n->text);
  g_object_unref (n->self);
  g_free (n->text);
  g_free (n);
  return G_SOURCE_REMOVE;
}

/* Queued, never run here: g_main_context_invoke() would call GTK from this
 * worker whenever no thread holds the main context at that moment.  At
 * G_PRIORITY_DEFAULT, like the task's result, so it comes before that. */
static void
post_result_note (gpointer self, char *text)
{
  ResultNote *n = g_new0 (ResultNote, 1);

  n->self = g_object_ref (self);
  n->text = text;
  g_idle_add_full (G_PRIORITY_DEFAULT, show_result_note, n, NULL);
}

/* Called in the worker thread. */
static gboolean
open_sign_in_uri (const char *uri, gpointer user_data)
{
  g_autoptr(GError) error = NULL;

  /* TRANSLATORS: %s is the provider's sign-in address. */
  post_result_note (user_data, g_strdup_printf (_("Your browser opens your provider's sign-in page. If it does not, "
                                                   "open this address in a browser yourself:\n%s"),
                                                 uri));
  if (sm_oauth2_open_in_browser (uri, &error))
    return TRUE;
  g_warning ("The browser could not be started: %s", error->message);
  return FALSE;
}

/* Called in the worker thread (RFC 8628 §3.3). */
static void
show_sign_in_code (const char *verification_uri, const char *user_code, gpointer user_data)
{
  /* TRANSLATORS: the first %s is an address, the second the code to type there. */
  post_result_note (user_data, g_strdup_printf (_("On a phone or another computer, open this address:\n%s\nand "
                                                  "type this code: %s\nSecureMail waits here until you have signed "
                                                  "in."),
                                                verification_uri, user_code));
}

typedef struct {
  SmConfig *config;
  gboolean device;   /* RFC 8628 rather than the browser */
} SignIn;

static void
sign_in_free (SignIn *d)
{
  sm_config_free (d->config);
  g_free (d);
}

static void
sign_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SignIn *d = task_data;
  SmConfig *config = d->config;
  GError *error = NULL;
  gboolean ok = d->device ? sm_oauth2_login_device (config, show_sign_in_code, source, cancellable, &error)
                          : sm_oauth2_login_browser (config, open_sign_in_uri, source, cancellable, &error);

  if (!ok)
    {
      g_task_return_error (task, error);
      return;
    }
  /* This process may have cached a refused sign-in (an earlier test). */
  sm_oauth2_reset (sm_oauth2_get_shared (config));
  g_task_return_boolean (task, TRUE);
}

static void
daemon_proxy_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmDbusProxy1) proxy = sm_dbus_proxy1_proxy_new_for_bus_finish (result, NULL);
  g_autofree char *owner = proxy != NULL ? g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy)) : NULL;

  if (owner != NULL)
    sm_dbus_proxy1_call_oauth2_signed_in (proxy, NULL, NULL, NULL);
}

/* A daemon already running (the assistant run again after "sign in
 * again") forgets the refused sign-in now and clears the tray's warning, as
 * after `securemail account oauth2-login`; one not running reads the
 * keyring at its start anyway. */
static void
tell_daemon_signed_in (void)
{
  sm_dbus_proxy1_proxy_new_for_bus (G_BUS_TYPE_SESSION,
                                    G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                    SM_DBUS_NAME, SM_DBUS_OBJECT_PATH, NULL, daemon_proxy_ready, NULL);
}

static void
sign_in_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmSetupAssistant *self = SM_SETUP_ASSISTANT (source);
  g_autoptr(GError) error = NULL;
  g_autofree char *msg = NULL;

  busy_end (self, "oauth2_spinner");
  /* A sign-in cancelled by a changed setting ends here after a newer one
   * may have started: only the current one frees the buttons. */
  if (g_task_get_cancellable (G_TASK (result)) == self->sign_in_cancellable)
    {
      g_clear_object (&self->sign_in_cancellable);
      self->signing_in = FALSE;
      update_sign_in_buttons (self);
    }
  /* Cancelled (even if it had finished meanwhile): its result is for
   * settings that are no longer there. */
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      msg = g_strdup_printf (_("The sign-in did not work: %s\nWhat to do: check the settings above against what "
                               "your provider or helpdesk wrote, then press “Sign in…” again."),
                             error->message);
      set_label (self, "oauth2_result_label", msg);
      return;
    }
  msg = g_strdup_printf (_("Signed in. SecureMail keeps the sign-in for %s in the keyring. Press “Next”."),
                         text (self, "address_entry"));
  set_label (self, "oauth2_result_label", msg);
  self->signed_in = TRUE;
  on_credentials_changed (self);
  tell_daemon_signed_in ();
}

static void
start_sign_in (SmSetupAssistant *self, gboolean device)
{
  g_autoptr(GTask) task = NULL;
  SignIn *d;
  SmConfig *config = current_config (self, "oauth2_result_label",
                                     _("The sign-in cannot start: %s\nWhat to do: correct that setting (use “Back” "
                                       "for steps 2 and 3)."));

  if (config == NULL)
    return;
  self->signed_in = FALSE;
  set_label (self, "oauth2_result_label",
             device ? _("Asking your provider for a sign-in code…") : _("Waiting for you to sign in in your browser…"));
  self->signing_in = TRUE;
  update_sign_in_buttons (self);
  busy_begin (self, "oauth2_spinner");
  d = g_new0 (SignIn, 1);
  d->config = config;
  d->device = device;
  g_clear_object (&self->sign_in_cancellable);
  self->sign_in_cancellable = g_cancellable_new ();
  task = g_task_new (self, self->sign_in_cancellable, sign_in_done, NULL);
  g_task_set_task_data (task, d, (GDestroyNotify) sign_in_free);
  g_task_run_in_thread (task, sign_in_thread);
}

static void
on_sign_in_clicked (GtkButton *button, SmSetupAssistant *self)
{
  start_sign_in (self, FALSE);
}

static void
on_device_sign_in_clicked (GtkButton *button, SmSetupAssistant *self)
{
  start_sign_in (self, TRUE);
}

/* ---- step 5: the connection test (a worker thread) ------------------------ */

typedef struct {
  SmConfig *config;
  char *password;   /* auth = password */
  char *pin;        /* auth = certificate: the token's PIN or the PKCS#12 password, or "" */
} TestData;

static void
test_data_free (TestData *d)
{
  sm_config_free (d->config);
  sm_gui_secret_free (d->password);
  sm_gui_secret_free (d->pin);
  g_free (d);
}

static const char *
fix_for (const GError *e, SmAuthMethod auth, gboolean imap)
{
  if (g_error_matches (e, SM_ERROR, SM_ERROR_TLS))
    return _("The provider's certificate could not be verified. If your provider uses a private certificate "
             "authority, type its file in step 3 (ask your administrator). Never turn verification off.");
  if (g_error_matches (e, SM_ERROR, SM_ERROR_CONSENT))
    return _("Use “Back” and press “Sign in…” again in step 4.");
  if (g_error_matches (e, SM_ERROR, SM_ERROR_AUTH))
    switch (auth)
      {
      case SM_AUTH_OAUTH2:
        return _("The provider refused the sign-in: check the user name (step 3), then press “Sign in…” again "
                 "in step 4.");
      case SM_AUTH_CERTIFICATE:
        return _("The provider refused the certificate: check in step 4 that it is the certificate your provider "
                 "gave you, and its PIN.");
      case SM_AUTH_PASSWORD:
      default:
        return _("The provider refused the login: check the user name (step 3) and the password (step 4).");
      }
  if (g_error_matches (e, SM_ERROR, SM_ERROR_POLICY))
    return _("Your administrator does not allow this server. Check the address in step 3 or ask your administrator.");
  if (auth == SM_AUTH_CERTIFICATE && g_error_matches (e, SM_ERROR, SM_ERROR_CONFIG))
    return _("Check the certificate and its PIN in step 4.");
  return imap ? _("Check the incoming server address in step 3 and the network; if both are right, the provider "
                  "may be down: try again later.")
              : _("Check the outgoing server address in step 3 and the network; if both are right, the provider "
                  "may be down: try again later.");
}

/* The secret the logins take for the chosen method (see
 * sm_upstream_get_secret()), reported as line @step.  NULL with TRUE for a
 * certificate.  FALSE (reported) when it cannot be had. */
static gboolean
test_secret (TestData *d, GString *out, guint *step, char **secret, GCancellable *cancellable)
{
  g_autoptr(GError) e = NULL;

  *secret = NULL;
  switch (d->config->auth)
    {
    case SM_AUTH_OAUTH2:
      if (sm_upstream_get_secret (d->config, secret, cancellable, &e))
        {
          g_string_append_printf (out, _("%u. Sign-in at your provider: OK.\n"), (*step)++);
          return TRUE;
        }
      g_string_append_printf (out, _("%u. Sign-in at your provider: FAILED. %s\n   What to do: %s\n"), (*step)++,
                              e->message, fix_for (e, d->config->auth, TRUE));
      return FALSE;
    case SM_AUTH_CERTIFICATE:
      /* The handshake reads the PIN from the keyring (sm-pin-interaction.h),
       * so it is stored before the test; a wrong one is replaced by the
       * next test. */
      if (*d->pin == '\0')
        return TRUE;
      if (sm_keyring_store (SM_KEYRING_CLIENT_CERT_PIN, d->config->address, d->pin, &e))
        {
          g_string_append_printf (out, _("%u. The certificate's PIN is saved in the keyring: OK.\n"), (*step)++);
          return TRUE;
        }
      g_string_append_printf (out, _("%u. Saving the certificate's PIN in the keyring: FAILED. %s\n   What to do: "
                                     "log in to the desktop again so that the keyring is unlocked, then press "
                                     "“Test the connection” again.\n"),
                              (*step)++, e->message);
      return FALSE;
    case SM_AUTH_PASSWORD:
    default:
      *secret = g_strdup (d->password);
      return TRUE;
    }
}

/* After both logins worked: only a password that works goes to the
 * keyring (a sign-in and a PIN are there already). */
static gboolean
test_keep (TestData *d, GString *out, guint step)
{
  g_autoptr(GError) e = NULL;

  switch (d->config->auth)
    {
    case SM_AUTH_OAUTH2:
      g_string_append_printf (out, _("%u. The sign-in is kept in the keyring: OK.\n"), step);
      return TRUE;
    case SM_AUTH_CERTIFICATE:
      g_string_append_printf (out, _("%u. The certificate logs you in; no provider password is needed: OK.\n"), step);
      return TRUE;
    case SM_AUTH_PASSWORD:
    default:
      if (sm_keyring_store (SM_KEYRING_UPSTREAM_PASSWORD, d->config->address, d->password, &e))
        {
          g_string_append_printf (out, _("%u. The provider password is saved in the keyring: OK.\n"), step);
          return TRUE;
        }
      g_string_append_printf (out, _("%u. Saving the password in the keyring: FAILED. %s\n   What to do: log in to "
                                     "the desktop again so that the keyring is unlocked, then press “Test the "
                                     "connection” again.\n"),
                              step, e->message);
      return FALSE;
    }
}

static void
test_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  TestData *d = task_data;
  GString *out = g_string_new (NULL);
  g_autoptr(GError) e = NULL;
  g_autoptr(SmImapUpstream) imap = NULL;
  g_autoptr(SmSmtpClient) smtp = NULL;
  g_autofree char *login = NULL;
  char *secret = NULL;
  guint step = 1;
  gboolean have_secret, ok;

  g_string_append_printf (out, _("%u. Settings: OK (account %s).\n"), step++, d->config->address);
  /* TRANSLATORS: %s is the user name at the provider. */
  login = d->config->auth == SM_AUTH_CERTIFICATE ? g_strdup (_("the login with your certificate works"))
                                                 : g_strdup_printf (_("the login as %s works"), d->config->username);
  ok = have_secret = test_secret (d, out, &step, &secret, cancellable);

  if (have_secret)
    imap = sm_imap_upstream_open (d->config, secret, cancellable, &e);
  if (imap != NULL)
    {
      g_string_append_printf (out, _("%u. Incoming mail (IMAP) at %s: OK. The provider's certificate is verified and %s.\n"),
                              step++, d->config->imap.url, login);
      g_io_stream_close (imap->stream, NULL, NULL);
    }
  else if (ok)
    {
      ok = FALSE;
      g_string_append_printf (out, _("%u. Incoming mail (IMAP) at %s: FAILED. %s\n   What to do: %s\n"),
                              step++, d->config->imap.url, e->message, fix_for (e, d->config->auth, TRUE));
    }
  g_clear_error (&e);

  if (have_secret)
    smtp = sm_smtp_client_open (d->config, secret, cancellable, &e);
  if (smtp != NULL && d->config->auth == SM_AUTH_CERTIFICATE && !sm_smtp_client_offers_auth (smtp, "EXTERNAL"))
    {
      /* The proxy then relies on the certificate alone (sm-upstream.c):
       * whether the provider takes mail from it shows only when one is
       * sent, so no login is claimed. */
      g_string_append_printf (out, _("%u. Outgoing mail (SMTP) at %s: OK. The provider's certificate is verified and "
                                     "the connection with your certificate works. This server does not confirm "
                                     "certificates in advance: if your first message is refused, check the "
                                     "certificate in step 4.\n"),
                              step++, d->config->smtp.url);
      sm_smtp_client_quit (smtp);
    }
  else if (smtp != NULL)
    {
      g_string_append_printf (out, _("%u. Outgoing mail (SMTP) at %s: OK. The provider's certificate is verified and %s.\n"),
                              step++, d->config->smtp.url, login);
      sm_smtp_client_quit (smtp);
    }
  else if (e != NULL)
    {
      ok = FALSE;
      g_string_append_printf (out, _("%u. Outgoing mail (SMTP) at %s: FAILED. %s\n   What to do: %s\n"),
                              step++, d->config->smtp.url, e->message, fix_for (e, d->config->auth, FALSE));
    }
  g_clear_error (&e);
  sm_keyring_free (secret);

  if (ok)
    ok = test_keep (d, out, step);
  g_string_append (out, ok ? _("\nEverything works. Press “Next”.")
                           : _("\nSomething did not work. Fix what the failed line says (use “Back” to change the "
                               "settings), then press “Test the connection” again."));

  /* "ok" travels as a leading '+' or '-' on the report. */
  g_string_prepend_c (out, ok ? '+' : '-');
  g_task_return_pointer (task, g_string_free (out, FALSE), g_free);
}

static void
test_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmSetupAssistant *self = SM_SETUP_ASSISTANT (source);
  g_autofree char *report = g_task_propagate_pointer (G_TASK (result), NULL);
  gboolean ok = report != NULL && report[0] == '+';

  busy_end (self, "test_spinner");
  gtk_widget_set_sensitive (w (self, "test_button"), TRUE);
  set_label (self, "test_result_label", report ? report + 1 : "");
  self->test_passed = ok;
  set_complete (self, "page_test", ok);
}

static void
on_test_clicked (GtkButton *button, SmSetupAssistant *self)
{
  g_autoptr(GTask) task = NULL;
  SmConfig *config = current_config (self, "test_result_label",
                                     _("1. Settings: FAILED. %s\n   What to do: use “Back” and correct that setting."));
  TestData *d;

  if (config == NULL)
    return;
  d = g_new0 (TestData, 1);
  d->config = config;
  d->password = g_strdup (text (self, "password_entry"));
  d->pin = g_strdup (text (self, "client_certificate_pin_entry"));
  set_label (self, "test_result_label", _("Testing… this takes up to a minute."));
  gtk_widget_set_sensitive (w (self, "test_button"), FALSE);
  busy_begin (self, "test_spinner");
  task = g_task_new (self, self->cancellable, test_done, NULL);
  g_task_set_task_data (task, d, (GDestroyNotify) test_data_free);
  g_task_run_in_thread (task, test_thread);
}

/* ---- step 6: keys --------------------------------------------------------- */

static void
refresh_keys (SmSetupAssistant *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = sm_key_summary_list (FALSE, &error);
  g_autoptr(GString) s = g_string_new (NULL);

  if (keys == NULL)
    g_string_printf (s, _("Your keys cannot be listed: %s"), error->message);
  else if (keys->len == 0)
    g_string_append (s, _("You have no key yet."));
  else
    {
      g_string_append (s, _("Your keys:"));
      for (guint i = 0; i < keys->len; i++)
        g_string_append_printf (s, "\n• %s", (const char *) keys->pdata[i]);
    }
  set_label (self, "keys_list_label", s->str);
}

static void
keys_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmSetupAssistant *self = SM_SETUP_ASSISTANT (source);
  g_autoptr(GError) error = NULL;
  g_autofree char *msg = sm_gui_job_finish (result, NULL, &error);

  busy_end (self, "keys_spinner");
  set_label (self, "keys_result_label", msg ? msg : error->message);
  refresh_keys (self);
}

static const char *
display_name (SmSetupAssistant *self)
{
  const char *n = text (self, "display_name_entry");
  return *n ? n : text (self, "address_entry");
}

static void
on_generate_openpgp (GtkButton *b, SmSetupAssistant *self)
{
  const char *args[] = { display_name (self), text (self, "address_entry"), NULL };
  set_label (self, "keys_result_label", _("Making the key…"));
  busy_begin (self, "keys_spinner");
  sm_gui_job_start (self, sm_gui_keys_generate_openpgp, args, keys_done, NULL);
}

static void
on_generate_smime (GtkButton *b, SmSetupAssistant *self)
{
  const char *dir = g_get_user_special_dir (G_USER_DIRECTORY_DOCUMENTS);
  g_autofree char *name = g_strdup_printf ("securemail-request-%s.csr", text (self, "address_entry"));
  g_autofree char *path = g_build_filename (dir ? dir : g_get_home_dir (), name, NULL);
  const char *args[] = { display_name (self), text (self, "address_entry"), path, NULL };

  set_label (self, "keys_result_label", _("Making the key and the request…"));
  busy_begin (self, "keys_spinner");
  sm_gui_job_start (self, sm_gui_keys_generate_smime, args, keys_done, NULL);
}

static void
on_import (GtkButton *b, SmSetupAssistant *self)
{
  g_autofree char *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (w (self, "p12_chooser")));
  const char *args[] = { path, text (self, "p12_password_entry"), NULL };

  if (path == NULL)
    {
      set_label (self, "keys_result_label", _("First choose the key file with the button above."));
      return;
    }
  set_label (self, "keys_result_label", _("Importing…"));
  busy_begin (self, "keys_spinner");
  sm_gui_job_start (self, sm_gui_keys_import, args, keys_done, NULL);
}

static void
on_restore (GtkButton *b, SmSetupAssistant *self)
{
  g_autofree char *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (w (self, "backup_chooser")));
  const char *args[] = { path, text (self, "recovery_code_entry"), NULL };

  if (path == NULL)
    {
      set_label (self, "keys_result_label", _("First choose the backup file with the button above."));
      return;
    }
  set_label (self, "keys_result_label", _("Restoring…"));
  busy_begin (self, "keys_spinner");
  sm_gui_job_start (self, sm_gui_keys_restore, args, keys_done, NULL);
}

/* ---- step 7: the mail client ---------------------------------------------- */

static void
fill_client_page (SmSetupAssistant *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  g_autofree char *tb = NULL;
  g_autofree char *ol = NULL;
  char *local;

  entries_to_settings (self);
  config = sm_gui_settings_to_config (self->settings, &error);
  if (config == NULL)
    {
      set_label (self, "thunderbird_label", error->message);
      return;
    }
  tb = sm_gui_client_settings_text (config, "thunderbird");
  ol = sm_gui_client_settings_text (config, "outlook");
  set_label (self, "thunderbird_label", tb);
  set_label (self, "outlook_label", ol);
  g_clear_error (&error);
  local = sm_keyring_local_password (config->address, FALSE, &error);
  if (local != NULL)
    {
      g_autofree char *line = g_strdup_printf (_("Password: %s"), local);
      set_label (self, "local_password_label", line);
      g_object_set_data_full (G_OBJECT (w (self, "copy_password_button")), "sm-secret", g_strdup (local),
                              (GDestroyNotify) sm_gui_secret_free);
      sm_keyring_free (local);
    }
  else
    set_label (self, "local_password_label", error->message);
}

static void
on_copy_label (GtkButton *button, SmSetupAssistant *self)
{
  const char *label = g_object_get_data (G_OBJECT (button), "sm-label");
  sm_gui_copy_text (GTK_WIDGET (button), gtk_label_get_text (GTK_LABEL (w (self, label))));
}

static void
on_copy_password (GtkButton *button, SmSetupAssistant *self)
{
  const char *secret = g_object_get_data (G_OBJECT (button), "sm-secret");
  if (secret != NULL)
    sm_gui_copy_text (GTK_WIDGET (button), secret);
}

gboolean
sm_setup_assistant_export_autoconfig (SmSetupAssistant *self, const char *path, GError **error)
{
  g_autoptr(SmConfig) config = NULL;

  entries_to_settings (self);
  config = sm_gui_settings_to_config (self->settings, error);
  if (config == NULL || !sm_gui_write_autoconfig (config, path, error))
    return FALSE;
  {
    g_autofree char *msg = g_strdup_printf (_("Saved %s. In Thunderbird the same settings are also typed in by hand as shown above."), path);
    set_label (self, "autoconfig_label", msg);
  }
  return TRUE;
}

static void
on_autoconfig (GtkButton *button, SmSetupAssistant *self)
{
  g_autoptr(GtkFileChooserNative) chooser = gtk_file_chooser_native_new (
      _("Save the Thunderbird settings file"), GTK_WINDOW (self->window), GTK_FILE_CHOOSER_ACTION_SAVE, _("_Save"),
      _("_Cancel"));

  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (chooser), "config-v1.1.xml");
  gtk_file_chooser_set_do_overwrite_confirmation (GTK_FILE_CHOOSER (chooser), TRUE);
  if (gtk_native_dialog_run (GTK_NATIVE_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    {
      g_autofree char *path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
      g_autoptr(GError) error = NULL;
      if (!sm_setup_assistant_export_autoconfig (self, path, &error))
        set_label (self, "autoconfig_label", error->message);
    }
}

/* ---- step 8: finish -------------------------------------------------------- */

static void
fill_summary (SmSetupAssistant *self)
{
  g_autoptr(GString) s = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  gboolean any_locked = FALSE;

  entries_to_settings (self);
  config = sm_gui_settings_to_config (self->settings, &error);
  if (config == NULL)
    {
      set_label (self, "summary_label", error->message);
      set_complete (self, "page_confirm", FALSE);
      return;
    }
  g_string_append_printf (s, _("E-mail address:    %s\n"), config->address);
  g_string_append_printf (s, _("Incoming server:   %s\n"), config->imap.url);
  g_string_append_printf (s, _("Outgoing server:   %s\n"), config->smtp.url);
  g_string_append_printf (s, _("User name:         %s\n"), config->username);
  if (config->auth == SM_AUTH_OAUTH2)
    g_string_append (s, _("Login:             sign in with your provider (OAuth2)\n"));
  else if (config->auth == SM_AUTH_CERTIFICATE)
    g_string_append_printf (s, _("Login:             certificate %s\n"), config->client_certificate);
  else
    g_string_append (s, _("Login:             password\n"));
  g_string_append_printf (s, _("Settings file:     %s\n"), self->settings->path);
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    any_locked |= sm_gui_settings_is_locked (self->settings, fields[i].group, fields[i].key);
  if (any_locked || g_hash_table_size (config->locked) > 0)
    g_string_append (s, _("Some settings come from your administrator and are not written to your file.\n"));
  set_label (self, "summary_label", s->str);
  set_complete (self, "page_confirm", TRUE);
}

static void
on_apply (GtkAssistant *assistant, SmSetupAssistant *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) s = g_string_new (NULL);
  gboolean autostart = gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (w (self, "autostart_check")));

  entries_to_settings (self);
  if (!sm_gui_settings_save (self->settings, &error))
    {
      g_string_printf (s, _("The settings could not be saved: %s\nClose this window and run SecureMail Setup "
                            "again, or call your helpdesk."),
                       error->message);
      set_label (self, "done_label", s->str);
      return;
    }
  g_string_printf (s, _("SecureMail is set up. The settings are saved in %s.\n"), self->settings->path);
  if (!sm_gui_write_autostart (autostart, &error))
    g_string_append_printf (s, _("Starting at login could not be turned on: %s\n"), error->message);
  else if (autostart)
    g_string_append (s, _("SecureMail starts when you log in.\n"));
  g_string_append (s, _("\nStart your mail program now with the settings from step 7. The SecureMail icon next "
                        "to the clock shows whether everything works."));
  set_label (self, "done_label", s->str);
  self->done = TRUE;
}

static void
on_prepare (GtkAssistant *assistant, GtkWidget *page, SmSetupAssistant *self)
{
  if (page == w (self, "page_provider") && *text (self, "username_entry") == '\0' &&
      gtk_widget_get_sensitive (w (self, "username_entry")))
    gtk_entry_set_text (GTK_ENTRY (w (self, "username_entry")), text (self, "address_entry"));
  if (page == w (self, "page_provider"))
    maybe_look_up (self);
  else if (page == w (self, "page_test") && !self->test_passed && self->busy == 0)
    set_label (self, "test_result_label", _("Press “Test the connection”."));
  else if (page == w (self, "page_keys"))
    refresh_keys (self);
  else if (page == w (self, "page_client"))
    fill_client_page (self);
  else if (page == w (self, "page_confirm"))
    fill_summary (self);
}

static void
on_close (GtkAssistant *assistant, SmSetupAssistant *self)
{
  gtk_widget_destroy (GTK_WIDGET (assistant));
}

/* ---- construction --------------------------------------------------------- */

static void
on_window_destroy (SmSetupAssistant *self)
{
  g_cancellable_cancel (self->cancellable);
  if (self->sign_in_cancellable != NULL)
    g_cancellable_cancel (self->sign_in_cancellable);
}

static void
sm_setup_assistant_finalize (GObject *object)
{
  SmSetupAssistant *self = SM_SETUP_ASSISTANT (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->sign_in_cancellable);
  g_clear_object (&self->builder);
  g_clear_object (&self->autoconfig);
  g_free (self->looked_up);
  sm_provider_settings_free (self->found);
  g_free (self->found_hint);
  g_clear_pointer (&self->settings, sm_gui_settings_free);
  g_free (self->config_path);
  G_OBJECT_CLASS (sm_setup_assistant_parent_class)->finalize (object);
}

static void
sm_setup_assistant_class_init (SmSetupAssistantClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_setup_assistant_finalize;
}

static void
sm_setup_assistant_init (SmSetupAssistant *self)
{
  self->cancellable = g_cancellable_new ();
  self->autoconfig = sm_autoconfig_new ();
}

/* The login method of an earlier setup or the policy; locked with it. */
static void
prefill_auth (SmSetupAssistant *self)
{
  g_autofree char *auth = sm_gui_settings_get (self->settings, "upstream", "auth");
  gboolean locked = sm_gui_settings_is_locked (self->settings, "upstream", "auth");

  for (guint i = 0; i < G_N_ELEMENTS (auth_methods); i++)
    {
      GtkWidget *radio = w (self, auth_methods[i].radio);
      if (g_strcmp0 (auth, auth_methods[i].name) == 0)
        {
          gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (radio), TRUE);
          gtk_stack_set_visible_child_name (GTK_STACK (w (self, "auth_stack")), auth_methods[i].name);
        }
      if (locked)
        {
          gtk_widget_set_sensitive (radio, FALSE);
          gtk_widget_set_tooltip_text (radio, _("Set by your administrator"));
        }
    }
}

static void
connect_changed (SmSetupAssistant *self, const char *entry, GCallback cb)
{
  g_signal_connect_swapped (w (self, entry), "changed", cb, self);
}

SmSetupAssistant *
sm_setup_assistant_new (GtkApplication *app, const char *config_path)
{
  SmSetupAssistant *self = g_object_new (SM_TYPE_SETUP_ASSISTANT, NULL);
  g_autoptr(GError) error = NULL;

  self->config_path = g_strdup (config_path);
  self->builder = sm_gui_builder_new ("setup-assistant.ui");
  self->window = GTK_ASSISTANT (gtk_builder_get_object (self->builder, "assistant"));
  if (app != NULL)
    gtk_window_set_application (GTK_WINDOW (self->window), app);
  g_object_set_data_full (G_OBJECT (self->window), "sm-setup-assistant", g_object_ref (self), g_object_unref);

  self->settings = sm_gui_settings_load (config_path, &error);
  if (self->settings == NULL)
    {
      /* An unreadable file: start from nothing; saving will replace it. */
      g_warning ("%s", error->message);
      self->settings = g_new0 (SmGuiSettings, 1);
      self->settings->path = sm_config_default_path (config_path);
      self->settings->policy_path = g_strdup (sm_config_policy_path ());
      self->settings->user = g_key_file_new ();
      self->settings->policy = g_key_file_new ();
    }

  /* Prefill from an earlier setup and the policy; lock the admin's keys. */
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      GtkWidget *entry = w (self, fields[i].entry);
      g_autofree char *v = sm_gui_settings_get (self->settings, fields[i].group, fields[i].key);
      if (v != NULL)
        gtk_entry_set_text (GTK_ENTRY (entry), v);
      if (sm_gui_settings_is_locked (self->settings, fields[i].group, fields[i].key))
        {
          gtk_widget_set_sensitive (entry, FALSE);
          gtk_widget_set_tooltip_text (entry, _("Set by your administrator"));
        }
    }

  prefill_auth (self);

  connect_changed (self, "address_entry", G_CALLBACK (on_account_changed));
  connect_changed (self, "display_name_entry", G_CALLBACK (on_account_changed));
  connect_changed (self, "imap_entry", G_CALLBACK (on_provider_changed));
  connect_changed (self, "smtp_entry", G_CALLBACK (on_provider_changed));
  connect_changed (self, "username_entry", G_CALLBACK (on_provider_changed));
  connect_changed (self, "ca_file_entry", G_CALLBACK (on_provider_changed));
  connect_changed (self, "password_entry", G_CALLBACK (on_credentials_changed));
  connect_changed (self, "client_certificate_entry", G_CALLBACK (on_credentials_changed));
  connect_changed (self, "client_certificate_pin_entry", G_CALLBACK (on_credentials_changed));
  connect_changed (self, "oauth2_token_entry", G_CALLBACK (on_oauth2_changed));
  connect_changed (self, "oauth2_authorization_entry", G_CALLBACK (on_oauth2_changed));
  connect_changed (self, "oauth2_client_id_entry", G_CALLBACK (on_oauth2_changed));
  connect_changed (self, "oauth2_scope_entry", G_CALLBACK (on_oauth2_changed));
  connect_changed (self, "oauth2_device_entry", G_CALLBACK (on_oauth2_changed));
  connect_changed (self, "username_entry", G_CALLBACK (invalidate_sign_in));
  for (guint i = 0; i < G_N_ELEMENTS (auth_methods); i++)
    g_signal_connect (w (self, auth_methods[i].radio), "toggled", G_CALLBACK (on_auth_toggled), self);
  g_signal_connect (w (self, "oauth2_signin_button"), "clicked", G_CALLBACK (on_sign_in_clicked), self);
  g_signal_connect (w (self, "oauth2_device_button"), "clicked", G_CALLBACK (on_device_sign_in_clicked), self);
  g_signal_connect (w (self, "client_certificate_chooser"), "file-set", G_CALLBACK (on_certificate_file_set), self);
  g_signal_connect (w (self, "show_password_check"), "toggled", G_CALLBACK (on_show_password), self);
  g_signal_connect (w (self, "test_button"), "clicked", G_CALLBACK (on_test_clicked), self);
  g_signal_connect (w (self, "generate_openpgp_button"), "clicked", G_CALLBACK (on_generate_openpgp), self);
  g_signal_connect (w (self, "generate_smime_button"), "clicked", G_CALLBACK (on_generate_smime), self);
  g_signal_connect (w (self, "import_button"), "clicked", G_CALLBACK (on_import), self);
  g_signal_connect (w (self, "restore_button"), "clicked", G_CALLBACK (on_restore), self);
  g_object_set_data (G_OBJECT (w (self, "copy_thunderbird_button")), "sm-label", (gpointer) "thunderbird_label");
  g_object_set_data (G_OBJECT (w (self, "copy_outlook_button")), "sm-label", (gpointer) "outlook_label");
  g_signal_connect (w (self, "copy_thunderbird_button"), "clicked", G_CALLBACK (on_copy_label), self);
  g_signal_connect (w (self, "copy_outlook_button"), "clicked", G_CALLBACK (on_copy_label), self);
  g_signal_connect (w (self, "copy_password_button"), "clicked", G_CALLBACK (on_copy_password), self);
  g_signal_connect (w (self, "autoconfig_button"), "clicked", G_CALLBACK (on_autoconfig), self);
  g_signal_connect (self->window, "prepare", G_CALLBACK (on_prepare), self);
  g_signal_connect (self->window, "apply", G_CALLBACK (on_apply), self);
  g_signal_connect (self->window, "close", G_CALLBACK (on_close), self);
  g_signal_connect (self->window, "cancel", G_CALLBACK (on_close), self);
  /* A lookup or sign-in still running must not touch a closed window. */
  g_signal_connect_swapped (self->window, "destroy", G_CALLBACK (on_window_destroy), self);

  on_account_changed (self);
  on_provider_changed (self);
  on_credentials_changed (self);
  set_label (self, "provider_hint", "");
  return self;
}

GtkAssistant *
sm_setup_assistant_get_window (SmSetupAssistant *self)
{
  return self->window;
}

GtkBuilder *
sm_setup_assistant_get_builder (SmSetupAssistant *self)
{
  return self->builder;
}

gboolean
sm_setup_assistant_is_busy (SmSetupAssistant *self)
{
  return self->busy > 0;
}

gboolean
sm_setup_assistant_test_passed (SmSetupAssistant *self)
{
  return self->test_passed;
}

SmAutoconfig *
sm_setup_assistant_get_autoconfig (SmSetupAssistant *self)
{
  return self->autoconfig;
}

gboolean
sm_setup_assistant_is_looking_up (SmSetupAssistant *self)
{
  return self->looking_up;
}

gboolean
sm_setup_assistant_is_done (SmSetupAssistant *self)
{
  return self->done;
}
