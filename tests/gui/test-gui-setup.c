/* test-gui-setup.c: securemail-setup driven page by page against the test
 * Dovecot/Postfix, as a user (or a helpdesk on the phone) would; the config
 * it writes must pass `securemail doctor`.  Screenshots of every page.
 *
 * Step 4's other login methods (issue 6/7), each to the end:
 * - OAuth2: signs in at the provider's OAuth server (oauth2-provider.py,
 *   needs the stack's SM_TEST_OAUTH2_PORT), first on another device (the
 *   RFC 8628 code shown while the assistant polls), then through the browser
 *   oauth2-browser.py ($BROWSER); the connection test logs in with the
 *   token, the file gets auth = oauth2 and [oauth2], no token.  A proxy
 *   already running without a sign-in (ConsentNeeded) is told and logs in.
 * - Certificate: a rogue one fails the connection test with what to do;
 *   then the stack's client certificate for alice on the submission port
 *   that takes certificates; the PIN typed lands in the keyring as
 *   `securemail account set-pin` stores it, not in the file. */
#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <string.h>

#include "sm-gui-test.h"
#include "sm-gui.h"
#include "sm-setup-assistant.h"
#include "sm-test-autoconfig.h"
#include "sm-test-harness.h"

#define OAUTH2_CLIENT_ID "securemail-test-client"
#define CERT_PIN         "setup-test-pin-4711"   /* distinctive, so a file search is meaningful */

static void
settle (void)
{
  /* Let GTK lay out and paint (no window manager under Xvfb). */
  for (int i = 0; i < 20; i++)
    {
      while (gtk_events_pending ())
        gtk_main_iteration ();
      g_usleep (10 * 1000);
    }
}

static void
wait_idle (SmSetupAssistant *setup)
{
  gint64 deadline = g_get_monotonic_time () + G_GINT64_CONSTANT (120) * G_USEC_PER_SEC;
  while (sm_setup_assistant_is_busy (setup))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  settle ();
}

static void
set_entry (GtkBuilder *b, const char *id, const char *value)
{
  GtkEntry *entry = GTK_ENTRY (gtk_builder_get_object (b, id));
  gtk_entry_set_text (entry, value);
}

static const char *
label (GtkBuilder *b, const char *id)
{
  return gtk_label_get_text (GTK_LABEL (gtk_builder_get_object (b, id)));
}

static void
shot (GtkAssistant *a, const char *name)
{
  settle ();
  sm_gui_test_screenshot (name, gtk_widget_get_allocated_width (GTK_WIDGET (a)),
                          gtk_widget_get_allocated_height (GTK_WIDGET (a)));
}

static void
next (GtkAssistant *a, const char *expect_page)
{
  GtkWidget *page = gtk_assistant_get_nth_page (a, gtk_assistant_get_current_page (a));
  g_assert_true (gtk_assistant_get_page_complete (a, page));
  gtk_assistant_next_page (a);
  settle ();
  page = gtk_assistant_get_nth_page (a, gtk_assistant_get_current_page (a));
  g_assert_cmpstr (gtk_buildable_get_name (GTK_BUILDABLE (page)), ==, expect_page);
}

static void
click (GtkBuilder *b, const char *id)
{
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, id)));
}

static gboolean
page_complete (GtkAssistant *a)
{
  return gtk_assistant_get_page_complete (a, gtk_assistant_get_nth_page (a, gtk_assistant_get_current_page (a)));
}

/* A temporary config folder whose policy fixes the local ports and the
 * contact, made the assistant's through the environment. */
static char *
start_config (char **config_path, guint16 *imap_port, guint16 *smtp_port)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *policy_path = NULL;
  g_autofree char *policy = NULL;
  char *dir = g_dir_make_tmp ("sm-gui-setup-XXXXXX", &error);

  g_assert_no_error (error);
  *config_path = g_build_filename (dir, "securemail.conf", NULL);
  policy_path = g_build_filename (dir, "policy.conf", NULL);
  *imap_port = sm_test_free_port ();
  *smtp_port = sm_test_free_port ();
  policy = g_strdup_printf ("[listen]\nimap = 127.0.0.1:%u\nsmtp = 127.0.0.1:%u\n\n"
                            "[admin]\ncontact_email = helpdesk@example.test\ncontact_phone = +64 4 000 0000\n",
                            *imap_port, *smtp_port);
  g_assert_true (g_file_set_contents (policy_path, policy, -1, NULL));
  g_setenv ("SECUREMAIL_CONFIG", *config_path, TRUE);
  g_setenv ("SECUREMAIL_POLICY", policy_path, TRUE);
  return dir;
}

/* A new assistant on screen, for the config start_config() made. */
static SmSetupAssistant *
open_assistant (GtkAssistant **a, GtkBuilder **b)
{
  SmSetupAssistant *setup = sm_setup_assistant_new (NULL, NULL);

  *a = sm_setup_assistant_get_window (setup);
  *b = sm_setup_assistant_get_builder (setup);
  gtk_widget_show (GTK_WIDGET (*a));
  settle ();
  return setup;
}

/* Steps 1-3 typed by hand (no lookup: the servers are filled before step
 * 3 shows), up to step 4. */
static void
type_account_and_servers (GtkAssistant *a, GtkBuilder *b, const char *imap, const char *smtp)
{
  next (a, "page_account");
  set_entry (b, "address_entry", "alice@example.test");
  set_entry (b, "imap_entry", imap);
  set_entry (b, "smtp_entry", smtp);
  set_entry (b, "username_entry", "alice");
  set_entry (b, "ca_file_entry", sm_test_env ("SM_TEST_CA"));
  next (a, "page_provider");
  next (a, "page_password");
}

/* Step 5: the connection test must pass. */
static void
test_connection_passes (SmSetupAssistant *setup, GtkAssistant *a, GtkBuilder *b)
{
  next (a, "page_test");
  click (b, "test_button");
  wait_idle (setup);
  if (!sm_setup_assistant_test_passed (setup))
    g_error ("connection test failed:\n%s", label (b, "test_result_label"));
}

/* Steps 6-8 and Apply; returns the file written. */
static char *
finish (SmSetupAssistant *setup, GtkAssistant *a, const char *config_path)
{
  char *written = NULL;

  next (a, "page_keys");
  next (a, "page_client");
  next (a, "page_confirm");
  g_signal_emit_by_name (a, "apply");
  gtk_assistant_next_page (a);
  settle ();
  g_assert_true (sm_setup_assistant_is_done (setup));
  g_assert_true (g_file_get_contents (config_path, &written, NULL, NULL));
  if (g_test_verbose ())
    g_printerr ("written:\n%s", written);
  return written;
}

/* The secret of @kind for alice in the keyring, with libsecret's own tool
 * (schema org.securemail.Secret, as sm-keyring.c stores it); "" if none. */
static char *
keyring_secret (const char *kind)
{
  const char *argv[] = { "secret-tool", "lookup", "kind", kind, "account", "alice@example.test", NULL };
  char *out = NULL;

  sm_test_run (argv, NULL, NULL, &out, NULL);
  return out ? out : g_strdup ("");
}

static void
test_setup_completes (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *imap = NULL;
  g_autofree char *smtp = NULL;
  g_autofree char *written = NULL;
  g_autofree char *xml_path = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *autostart = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *port_text = NULL;
  g_autofree char *document = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *template = NULL;
  g_autoptr(GTlsDatabase) ca = NULL;
  g_autoptr(SmSetupAssistant) setup = NULL;
  SmTestHttps https = { 0 };
  GSocketService *https_service;
  guint16 https_port;
  g_autoptr(GError) error = NULL;
  GtkAssistant *a;
  GtkBuilder *b;
  guint16 imap_port, smtp_port;
  int rc;

  if (!sm_test_require_stack ())
    return;

  /* The administrator fixes the local ports and the contact: the assistant
   * must show them and never write them into the user's file. */
  dir = start_config (&config_path, &imap_port, &smtp_port);

  setup = open_assistant (&a, &b);

  shot (a, "setup-1-welcome");
  next (a, "page_account");
  g_assert_false (gtk_assistant_get_page_complete (a, gtk_assistant_get_nth_page (a, 1)));
  set_entry (b, "address_entry", "alice@example.test");
  set_entry (b, "display_name_entry", "Alice Example");
  shot (a, "setup-2-account");

  /* The domain's autoconfig document (served on loopback, with the stack's
   * certificate) names the stack's servers: step 3 fills itself in. */
  document = g_strdup_printf ("<?xml version=\"1.0\"?><clientConfig version=\"1.1\">"
                              "<emailProvider id=\"example.test\"><domain>example.test</domain>"
                              "<incomingServer type=\"imap\"><hostname>localhost</hostname><port>%s</port>"
                              "<socketType>SSL</socketType><username>%%EMAILLOCALPART%%</username></incomingServer>"
                              "<outgoingServer type=\"smtp\"><hostname>localhost</hostname><port>%s</port>"
                              "<socketType>STARTTLS</socketType><username>%%EMAILLOCALPART%%</username></outgoingServer>"
                              "</emailProvider><oAuth2><authURL>https://login.example.test/authorize</authURL>"
                              "<tokenURL>https://login.example.test/token</tokenURL><scope>mail</scope></oAuth2>"
                              "</clientConfig>",
                              sm_test_env ("SM_TEST_IMAPS_PORT"), sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  answer = sm_test_https_ok (document);
  https.subdomain_answer = answer;
  https.well_known_answer = answer;
  https_service = sm_test_https_start (&https, sm_test_env ("SM_TEST_SERVER_CERT"), sm_test_env ("SM_TEST_SERVER_KEY"),
                                       &https_port);
  template = g_strdup_printf ("https://localhost:%u/mail/config-v1.1.xml?emailaddress={address}", https_port);
  {
    const char *templates[] = { template, NULL };
    sm_autoconfig_set_url_templates (sm_setup_assistant_get_autoconfig (setup), templates);
  }
  ca = g_tls_file_database_new (sm_test_env ("SM_TEST_CA"), &error);
  g_assert_no_error (error);
  sm_autoconfig_set_tls_database (sm_setup_assistant_get_autoconfig (setup), ca);

  next (a, "page_provider");
  while (sm_setup_assistant_is_looking_up (setup))
    g_main_context_iteration (NULL, TRUE);
  settle ();
  imap = g_strdup_printf ("imaps://localhost:%s", sm_test_env ("SM_TEST_IMAPS_PORT"));
  smtp = g_strdup_printf ("smtp://localhost:%s", sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "imap_entry"))), ==, imap);
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "smtp_entry"))), ==, smtp);
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "username_entry"))), ==, "alice");
  g_assert_true (g_str_has_prefix (label (b, "provider_hint"), "These settings were found in https://localhost:"));
  /* The document's OAuth2 sign-in addresses wait in step 4; its IMAP server
   * names no way in, so the password stays the method. */
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "oauth2_authorization_entry"))), ==,
                   "https://login.example.test/authorize");
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "oauth2_token_entry"))), ==,
                   "https://login.example.test/token");
  g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (gtk_builder_get_object (b, "oauth2_scope_entry"))), ==, "mail");
  g_assert_true (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (gtk_builder_get_object (b, "auth_password_radio"))));
  g_assert_cmpuint (https.requests->len, ==, 1);
  g_assert_nonnull (strstr (https.requests->pdata[0], "emailaddress=alice%40example.test"));
  sm_test_https_stop (&https, https_service);
  set_entry (b, "ca_file_entry", sm_test_env ("SM_TEST_CA"));
  /* Where they came from stays said while they are unchanged. */
  g_assert_true (g_str_has_prefix (label (b, "provider_hint"), "These settings were found in https://localhost:"));
  shot (a, "setup-3-provider");

  /* A wrong password first: the test says what failed and what to do. */
  next (a, "page_password");
  set_entry (b, "password_entry", "wrong-password");
  shot (a, "setup-4-password");
  next (a, "page_test");
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "test_button")));
  wait_idle (setup);
  g_assert_false (sm_setup_assistant_test_passed (setup));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "FAILED"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "What to do"));
  shot (a, "setup-5-test-failed");

  gtk_assistant_previous_page (a);
  set_entry (b, "password_entry", sm_test_env ("SM_TEST_PASSWORD"));
  test_connection_passes (setup, a, b);
  g_assert_nonnull (strstr (label (b, "test_result_label"), "2. Incoming mail (IMAP)"));
  shot (a, "setup-5-test");

  next (a, "page_keys");
  g_assert_nonnull (strstr (label (b, "keys_list_label"), "no key yet"));
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "generate_openpgp_button")));
  wait_idle (setup);
  if (strstr (label (b, "keys_list_label"), "OpenPGP key for alice@example.test") == NULL)
    g_error ("no key after generate: %s / %s", label (b, "keys_result_label"), label (b, "keys_list_label"));
  shot (a, "setup-6-keys");

  next (a, "page_client");
  port_text = g_strdup_printf ("server 127.0.0.1, port %u", imap_port);
  g_assert_nonnull (strstr (label (b, "thunderbird_label"), port_text));
  g_assert_nonnull (strstr (label (b, "outlook_label"), "alice@example.test"));
  g_assert_true (g_str_has_prefix (label (b, "local_password_label"), "Password: "));
  g_assert_cmpuint (strlen (label (b, "local_password_label")), ==, strlen ("Password: ") + 24);
  xml_path = g_build_filename (dir, "config-v1.1.xml", NULL);
  g_assert_true (sm_setup_assistant_export_autoconfig (setup, xml_path, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (xml_path, &xml, NULL, NULL));
  g_assert_nonnull (strstr (xml, "<clientConfig version=\"1.1\">"));
  g_assert_nonnull (strstr (xml, "<username>alice@example.test</username>"));
  g_assert_nonnull (strstr (xml, "<socketType>STARTTLS</socketType>"));
  shot (a, "setup-7-client");

  next (a, "page_confirm");
  g_assert_nonnull (strstr (label (b, "summary_label"), "alice@example.test"));
  shot (a, "setup-8-finish");
  /* What the Apply button does. */
  g_signal_emit_by_name (a, "apply");
  gtk_assistant_next_page (a);
  settle ();
  g_assert_true (sm_setup_assistant_is_done (setup));
  shot (a, "setup-9-done");

  g_assert_true (g_file_get_contents (config_path, &written, NULL, NULL));
  if (g_test_verbose ())
    g_printerr ("written:\n%s", written);
  g_assert_nonnull (strstr (written, "address=alice@example.test"));
  g_assert_null (strstr (written, "[listen]"));        /* locked by the policy */
  g_assert_null (strstr (written, "contact_email"));
  g_assert_null (strstr (written, "pass\n"));          /* no secret in the file */
  g_assert_null (strstr (written, "login.example.test")); /* OAuth2 was not chosen */
  autostart = sm_gui_autostart_path ();
  g_assert_true (g_file_test (autostart, G_FILE_TEST_EXISTS));

  /* The helpdesk's check: securemail doctor accepts the result. */
  {
    const char *argv[] = { sm_test_env ("SM_CLI"), "doctor", NULL };
    rc = sm_test_run (argv, NULL, NULL, &out, &err);
  }
  if (rc != 0)
    g_error ("securemail doctor failed (%d):\n%s%s", rc, out, err);
  g_assert_nonnull (strstr (out, "Provider IMAP"));

  gtk_widget_destroy (GTK_WIDGET (a));
  settle ();
}

/* The provider's OAuth server on the stack's OAuth2 port; waits for its
 * "ready". */
static GSubprocess *
start_oauth2_provider (guint16 port)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  GSubprocess *provider = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "/usr/bin/python3",
                                            sm_test_env ("SM_OAUTH2_PROVIDER"), port_text, OAUTH2_CLIENT_ID, NULL);
  char buf[16] = { 0 };

  g_assert_no_error (error);
  g_input_stream_read (g_subprocess_get_stdout_pipe (provider), buf, sizeof buf - 1, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (buf, "ready"));
  return provider;
}

static gboolean
consent_needed (void)
{
  const char *argv[] = { "gdbus", "call", "--session", "--dest", "org.securemail.Proxy", "--object-path",
                         "/org/securemail/Proxy", "--method", "org.freedesktop.DBus.Properties.Get",
                         "org.securemail.Proxy1", "ConsentNeeded", NULL };
  g_autofree char *out = NULL;

  g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, NULL), ==, 0);
  return strstr (out, "true") != NULL;
}

/* The tagged reply to a LOGIN at @proxy's IMAP listener (which logs in
 * upstream). */
static char *
proxy_imap_login (SmTestProxy *proxy)
{
  g_autoptr(SmTestClient) c = sm_test_client_connect (proxy->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);
  g_autofree char *cmd = g_strdup_printf ("a1 LOGIN %s %s\r\n", proxy->address, proxy->local_password);
  char *reply;

  g_assert_nonnull (greeting);
  sm_test_client_send (c, cmd);
  reply = sm_test_client_until (c, "a1 ");
  g_assert_nonnull (reply);
  sm_test_client_send (c, "a2 LOGOUT\r\n");
  return reply;
}

/* The running proxy was told (OAuth2SignedIn): ConsentNeeded clears and a
 * mail client's login through it works with the new sign-in. */
static void
assert_running_proxy_signed_in (SmTestProxy *proxy, const char *how)
{
  gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
  g_autofree char *reply = NULL;

  while (consent_needed ())
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      settle ();
    }
  reply = proxy_imap_login (proxy);
  if (!g_str_has_prefix (reply, "a1 OK"))
    g_error ("login through the running proxy after the sign-in %s: %s", how, reply);
}

static void
test_setup_oauth2 (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *imap = NULL;
  g_autofree char *smtp = NULL;
  g_autofree char *url = NULL;
  g_autofree char *written = NULL;
  g_autofree char *refresh_token = NULL;
  g_autofree char *device_token = NULL;
  g_autofree char *device_url = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *oauth2 = NULL;
  g_autofree char *reply = NULL;
  g_autoptr(GSubprocess) provider = NULL;
  g_autoptr(SmTestProxy) proxy = NULL;
  gint64 deadline;
  g_autoptr(SmSetupAssistant) setup = NULL;
  GtkAssistant *a;
  GtkBuilder *b;
  guint16 imap_port, smtp_port, port;

  if (!sm_test_require_stack ())
    return;
  if (g_getenv ("SM_TEST_OAUTH2_PORT") == NULL)
    {
      g_test_skip ("the mail stack was started without SM_STACK_OAUTH2_PORT");
      return;
    }
  port = sm_test_env_port ("SM_TEST_OAUTH2_PORT");
  provider = start_oauth2_provider (port);

  /* A proxy already running for alice with OAuth2 and no sign-in yet: a
   * login through it asks for one. */
  {
    const char *argv[] = { "secret-tool", "clear", "kind", "oauth2-refresh-token", "account", "alice@example.test",
                           NULL };
    sm_test_run (argv, NULL, NULL, NULL, NULL);
  }
  {
    g_autofree char *section = sm_test_upstream_section ("alice");
    upstream = g_strconcat (section, "auth = oauth2\n", NULL);
  }
  oauth2 = g_strdup_printf ("[oauth2]\ntoken_endpoint = http://127.0.0.1:%u/token\n"
                            "authorization_endpoint = http://127.0.0.1:%u/authorize\n"
                            "client_id = " OAUTH2_CLIENT_ID "\nscope = mail offline_access\n",
                            port, port);
  proxy = sm_test_proxy_start ("alice@example.test", upstream, NULL, oauth2);
  sm_test_proxy_wait_dbus (proxy);
  reply = proxy_imap_login (proxy);
  g_assert_true (g_str_has_prefix (reply, "a1 NO [UNAVAILABLE]"));
  g_assert_true (consent_needed ());

  dir = start_config (&config_path, &imap_port, &smtp_port);

  setup = open_assistant (&a, &b);
  imap = g_strdup_printf ("imaps://localhost:%s", sm_test_env ("SM_TEST_IMAPS_PORT"));
  smtp = g_strdup_printf ("smtp://localhost:%s", sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  type_account_and_servers (a, b, imap, smtp);

  /* Not complete until the fields are there and the sign-in worked. */
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (gtk_builder_get_object (b, "auth_oauth2_radio")), TRUE);
  settle ();
  g_assert_false (page_complete (a));
  url = g_strdup_printf ("http://127.0.0.1:%u/token", port);
  set_entry (b, "oauth2_token_entry", url);
  g_free (url);
  url = g_strdup_printf ("http://127.0.0.1:%u/authorize", port);
  set_entry (b, "oauth2_authorization_entry", url);
  set_entry (b, "oauth2_client_id_entry", OAUTH2_CLIENT_ID);
  set_entry (b, "oauth2_scope_entry", "mail offline_access");
  g_assert_false (page_complete (a));
  g_assert_nonnull (strstr (label (b, "auth_hint"), "Sign in"));

  /* First on another device (RFC 8628): the button waits for its address;
   * the code and where to type it are shown while the assistant polls (the
   * test provider approves at once and says slow_down once). */
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "oauth2_device_button"))));
  device_url = g_strdup_printf ("http://127.0.0.1:%u/device", port);
  set_entry (b, "oauth2_device_entry", device_url);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "oauth2_device_button"))));
  click (b, "oauth2_device_button");
  {
    g_autofree char *activate = g_strdup_printf ("http://127.0.0.1:%u/activate", port);
    deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
    while (strstr (label (b, "oauth2_result_label"), "type this code") == NULL)
      {
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
        g_main_context_iteration (NULL, FALSE);
        g_usleep (10 * 1000);
      }
    g_assert_nonnull (strstr (label (b, "oauth2_result_label"), activate));
    g_assert_true (g_regex_match_simple ("code: [0-9]{4}-[0-9]{4}\n", label (b, "oauth2_result_label"), 0, 0));
    g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "oauth2_device_button"))));
    shot (a, "setup-4-oauth2-device");
  }
  wait_idle (setup);
  if (!g_str_has_prefix (label (b, "oauth2_result_label"), "Signed in."))
    g_error ("sign-in on another device failed: %s", label (b, "oauth2_result_label"));
  g_assert_true (page_complete (a));
  device_token = keyring_secret ("oauth2-refresh-token");
  g_assert_cmpuint (strlen (device_token), >, 0);
  assert_running_proxy_signed_in (proxy, "on another device");

  /* Then in the browser, which replaces that sign-in. */
  g_setenv ("BROWSER", sm_test_env ("SM_OAUTH2_BROWSER"), TRUE);
  click (b, "oauth2_signin_button");
  wait_idle (setup);
  g_unsetenv ("BROWSER");
  if (!g_str_has_prefix (label (b, "oauth2_result_label"), "Signed in."))
    g_error ("sign-in failed: %s", label (b, "oauth2_result_label"));
  g_assert_true (page_complete (a));
  refresh_token = keyring_secret ("oauth2-refresh-token");
  g_assert_cmpuint (strlen (refresh_token), >, 0);
  g_assert_cmpstr (refresh_token, !=, device_token);
  shot (a, "setup-4-oauth2");

  assert_running_proxy_signed_in (proxy, "in the browser");

  test_connection_passes (setup, a, b);
  g_assert_nonnull (strstr (label (b, "test_result_label"), "2. Sign-in at your provider: OK"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "3. Incoming mail (IMAP)"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "4. Outgoing mail (SMTP)"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "5. The sign-in is kept in the keyring: OK"));
  shot (a, "setup-5-test-oauth2");

  written = finish (setup, a, config_path);
  g_assert_nonnull (strstr (written, "auth=oauth2"));
  g_assert_nonnull (strstr (written, "[oauth2]"));
  g_assert_nonnull (strstr (written, url));
  g_assert_nonnull (strstr (written, "client_id=" OAUTH2_CLIENT_ID));
  g_assert_nonnull (strstr (written, "scope=mail offline_access"));
  g_assert_nonnull (strstr (written, "device_authorization_endpoint="));
  g_assert_nonnull (strstr (written, device_url));
  g_assert_null (strstr (written, "client_certificate"));
  g_assert_null (strstr (written, refresh_token));   /* the sign-in is in the keyring only */

  gtk_widget_destroy (GTK_WIDGET (a));
  settle ();
  sm_test_proxy_stop (proxy);
  g_subprocess_force_exit (provider);
  g_subprocess_wait (provider, NULL, NULL);
}

static void
test_setup_certificate (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *imap = NULL;
  g_autofree char *smtp = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *line = NULL;
  g_autofree char *written = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(SmSetupAssistant) setup = NULL;
  GtkAssistant *a;
  GtkBuilder *b;
  guint16 imap_port, smtp_port;
  int rc;

  if (!sm_test_require_stack ())
    return;
  dir = start_config (&config_path, &imap_port, &smtp_port);
  setup = open_assistant (&a, &b);
  imap = g_strdup_printf ("imaps://localhost:%s", sm_test_env ("SM_TEST_IMAPS_PORT"));
  smtp = g_strdup_printf ("smtp://localhost:%s", sm_test_env ("SM_TEST_SUBMISSION_CERT_PORT"));
  type_account_and_servers (a, b, imap, smtp);

  /* OAuth2 half typed, then the certificate chosen: nothing of OAuth2 may
   * reach the file. */
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (gtk_builder_get_object (b, "auth_oauth2_radio")), TRUE);
  set_entry (b, "oauth2_token_entry", "https://login.example.test/token");
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (gtk_builder_get_object (b, "auth_certificate_radio")), TRUE);
  settle ();
  g_assert_false (page_complete (a));
  /* A certificate from a CA the provider does not trust: the test fails
   * and says what to do. */
  set_entry (b, "client_certificate_entry", sm_test_env ("SM_TEST_ROGUE_CLIENT_CERT"));
  g_assert_true (page_complete (a));
  next (a, "page_test");
  click (b, "test_button");
  wait_idle (setup);
  if (g_test_verbose ())
    g_printerr ("rogue certificate:\n%s\n", label (b, "test_result_label"));
  g_assert_false (sm_setup_assistant_test_passed (setup));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "Incoming mail (IMAP) at"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "FAILED"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "What to do"));
  gtk_assistant_previous_page (a);
  settle ();

  cert = g_build_filename (sm_test_env ("SM_TEST_CLIENT_CERT_DIR"), "alice-combined.pem", NULL);
  set_entry (b, "client_certificate_entry", cert);
  set_entry (b, "client_certificate_pin_entry", CERT_PIN);
  g_assert_true (page_complete (a));
  shot (a, "setup-4-certificate");

  test_connection_passes (setup, a, b);
  g_assert_nonnull (strstr (label (b, "test_result_label"), "The certificate's PIN is saved in the keyring: OK"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "3. Incoming mail (IMAP)"));
  g_assert_nonnull (strstr (label (b, "test_result_label"), "4. Outgoing mail (SMTP)"));
  /* Postfix relays for the verified certificate without AUTH EXTERNAL: no
   * login is claimed that the connection did not prove. */
  g_assert_nonnull (strstr (label (b, "test_result_label"), "does not confirm certificates in advance"));
  pin = keyring_secret ("client-certificate-pin");
  g_assert_cmpstr (pin, ==, CERT_PIN);

  written = finish (setup, a, config_path);
  g_assert_nonnull (strstr (written, "auth=certificate"));
  line = g_strdup_printf ("client_certificate=%s\n", cert);
  g_assert_nonnull (strstr (written, line));
  g_assert_null (strstr (written, "[oauth2]"));
  g_assert_null (strstr (written, "login.example.test"));
  g_assert_null (strstr (written, CERT_PIN));

  /* The helpdesk's check accepts it: the certificate logs in. */
  {
    const char *argv[] = { sm_test_env ("SM_CLI"), "doctor", NULL };
    rc = sm_test_run (argv, NULL, NULL, &out, &err);
  }
  if (rc != 0)
    g_error ("securemail doctor failed (%d):\n%s%s", rc, out, err);

  gtk_widget_destroy (GTK_WIDGET (a));
  settle ();
}

int
main (int argc, char **argv)
{
  sm_gui_init_i18n ();
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  sm_gui_init ();
  g_test_add_func ("/gui/setup/completes-against-stack", test_setup_completes);
  g_test_add_func ("/gui/setup/oauth2", test_setup_oauth2);
  g_test_add_func ("/gui/setup/certificate", test_setup_certificate);
  return g_test_run ();
}
