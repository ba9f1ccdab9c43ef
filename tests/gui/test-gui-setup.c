/* test-gui-setup.c: securemail-setup driven page by page against the test
 * Dovecot/Postfix, as a user (or a helpdesk on the phone) would; the config
 * it writes must pass `securemail doctor`.  Screenshots of every page. */
#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <string.h>

#include "sm-gui-test.h"
#include "sm-gui.h"
#include "sm-setup-assistant.h"
#include "sm-test-autoconfig.h"
#include "sm-test-harness.h"

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
test_setup_completes (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *policy_path = NULL;
  g_autofree char *policy = NULL;
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
  dir = g_dir_make_tmp ("sm-gui-setup-XXXXXX", &error);
  g_assert_no_error (error);
  config_path = g_build_filename (dir, "securemail.conf", NULL);
  policy_path = g_build_filename (dir, "policy.conf", NULL);
  imap_port = sm_test_free_port ();
  smtp_port = sm_test_free_port ();
  policy = g_strdup_printf ("[listen]\nimap = 127.0.0.1:%u\nsmtp = 127.0.0.1:%u\n\n"
                            "[admin]\ncontact_email = helpdesk@example.test\ncontact_phone = +64 4 000 0000\n",
                            imap_port, smtp_port);
  g_assert_true (g_file_set_contents (policy_path, policy, -1, NULL));
  g_setenv ("SECUREMAIL_CONFIG", config_path, TRUE);
  g_setenv ("SECUREMAIL_POLICY", policy_path, TRUE);

  setup = sm_setup_assistant_new (NULL, NULL);
  a = sm_setup_assistant_get_window (setup);
  b = sm_setup_assistant_get_builder (setup);
  gtk_widget_show (GTK_WIDGET (a));
  settle ();

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
                              "</emailProvider></clientConfig>",
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
  next (a, "page_test");
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "test_button")));
  wait_idle (setup);
  if (!sm_setup_assistant_test_passed (setup))
    g_error ("connection test failed:\n%s", label (b, "test_result_label"));
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

int
main (int argc, char **argv)
{
  sm_gui_init_i18n ();
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  sm_gui_init ();
  g_test_add_func ("/gui/setup/completes-against-stack", test_setup_completes);
  return g_test_run ();
}
