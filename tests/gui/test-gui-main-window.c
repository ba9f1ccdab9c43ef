/* test-gui-main-window.c: the SecureMail window's pages with the real
 * proxy, and the support report (which must never hold a secret).
 *
 * The Messages page is tested against the daemon's own SmServer and D-Bus
 * service run in this process (owning org.securemail.Proxy on the test's
 * bus): the test feeds its ring of recent messages directly, as the IMAP
 * session does once it decrypts, with a message APPENDed to the real
 * Dovecot; ticking "Personal" then sets $Personal there, checked with a
 * direct FETCH FLAGS.
 *
 * The Receipts and Outbox pages are tested with a real proxy whose
 * provider SMTP port is closed, so a message sent through it stays queued
 * with its receipt requested. */
#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <string.h>

#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-gui-test.h"
#include "sm-gui.h"
#include "sm-keyring.h"
#include "sm-main-window.h"
#include "sm-server.h"
#include "sm-support-report.h"
#include "sm-test-harness.h"
#include "sm-tls.h"

static void
settle (void)
{
  for (int i = 0; i < 20; i++)
    {
      while (gtk_events_pending ())
        gtk_main_iteration ();
      g_usleep (10 * 1000);
    }
}

static void
wait_idle (GtkWindow *window)
{
  gint64 deadline = g_get_monotonic_time () + G_GINT64_CONSTANT (120) * G_USEC_PER_SEC;
  while (sm_main_window_is_busy (window))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  settle ();
}

static void
shot (GtkWindow *window, const char *name)
{
  settle ();
  sm_gui_test_screenshot (name, gtk_widget_get_allocated_width (GTK_WIDGET (window)),
                          gtk_widget_get_allocated_height (GTK_WIDGET (window)));
}

static gboolean
list_contains (GtkWidget *widget, const char *needle)
{
  if (GTK_IS_LABEL (widget))
    return strstr (gtk_label_get_text (GTK_LABEL (widget)), needle) != NULL;
  if (GTK_IS_CONTAINER (widget))
    {
      g_autoptr(GList) children = gtk_container_get_children (GTK_CONTAINER (widget));
      for (GList *l = children; l; l = l->next)
        if (list_contains (l->data, needle))
          return TRUE;
    }
  return FALSE;
}

static void
test_pages_and_report (void)
{
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *report_path = NULL;
  g_autofree char *report = NULL;
  g_autofree char *policy = NULL;
  g_autoptr(GError) error = NULL;
  GtkWindow *window;
  GtkBuilder *b;
  GtkWidget *listen_entry = NULL;
  char *local;

  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  proxy = sm_test_proxy_start ("alice@example.test", upstream, "pass", "\n[admin]\ncontact_email = helpdesk@example.test\n");
  /* The administrator fixes the encryption standard: shown, not editable. */
  policy = g_strdup ("[crypto]\nprotocol = openpgp\n");
  g_assert_true (g_file_set_contents (proxy->policy_path, policy, -1, NULL));
  g_setenv ("SECUREMAIL_CONFIG", proxy->config_path, TRUE);
  g_setenv ("SECUREMAIL_POLICY", proxy->policy_path, TRUE);

  window = sm_main_window_new (NULL, NULL);
  b = sm_main_window_get_builder (window);
  gtk_widget_show (GTK_WIDGET (window));
  sm_main_window_show_page (window, "settings");
  settle ();

  /* Settings: the locked key is insensitive. */
  {
    GtkGrid *grid = GTK_GRID (gtk_builder_get_object (b, "settings_grid"));
    for (int row = 0; row < 20; row++)
      {
        GtkWidget *l = gtk_grid_get_child_at (grid, 0, row);
        if (l != NULL && strstr (gtk_label_get_text (GTK_LABEL (l)), "[crypto] protocol") != NULL)
          listen_entry = gtk_grid_get_child_at (grid, 1, row);
      }
    g_assert_nonnull (listen_entry);
    g_assert_false (gtk_widget_get_sensitive (listen_entry));
    g_assert_cmpstr (gtk_entry_get_text (GTK_ENTRY (listen_entry)), ==, "openpgp");
  }
  shot (window, "main-1-settings");

  sm_main_window_show_page (window, "keys");
  settle ();
  g_assert_true (list_contains (GTK_WIDGET (gtk_builder_get_object (b, "keys_listbox")), "no key yet"));
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "keys_generate_button")));
  wait_idle (window);
  g_assert_true (list_contains (GTK_WIDGET (gtk_builder_get_object (b, "keys_listbox")), "OpenPGP key for alice@example.test"));
  shot (window, "main-2-keys");

  sm_main_window_show_page (window, "diagnostics");
  sm_main_window_run_checks (window);
  wait_idle (window);
  {
    GtkWidget *checks = GTK_WIDGET (gtk_builder_get_object (b, "checks_listbox"));
    g_assert_true (list_contains (checks, "1. Settings file is valid"));
    g_assert_true (list_contains (checks, "securemail-proxy is running"));
    g_assert_false (list_contains (checks, "FAILED"));
  }
  shot (window, "main-3-diagnostics");

  /* The support report: settings, checks, status, keys; never a secret. */
  report_path = g_build_filename (proxy->dir, "report.txt", NULL);
  g_assert_true (sm_support_report_write (NULL, "test-gui-main-window", report_path, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (report_path, &report, NULL, NULL));
  if (g_test_verbose ())
    g_printerr ("%s", report);
  g_assert_nonnull (strstr (report, "address = alice@example.test"));
  g_assert_nonnull (strstr (report, "locked by policy: crypto.protocol"));
  g_assert_nonnull (strstr (report, "running: yes"));
  g_assert_nonnull (strstr (report, "[OK] Provider IMAP"));
  g_assert_nonnull (strstr (report, "OpenPGP key for alice@example.test"));
  local = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, "alice@example.test", &error);
  g_assert_no_error (error);
  g_assert_null (strstr (report, local));
  sm_keyring_free (local);
  g_assert_null (strstr (report, "= pass"));
  g_assert_null (strstr (report, "PRIVATE KEY"));

  gtk_widget_destroy (GTK_WIDGET (window));
  settle ();
  sm_test_proxy_stop (proxy);
}

/* ---- Messages ------------------------------------------------------------------ */

#define MESSAGES_UIDVALIDITY 1

static gboolean name_acquired;

static void
on_name_acquired (GDBusConnection *c, const char *name, gpointer user_data)
{
  name_acquired = TRUE;
}

/* Turns the main loop until @model has @n rows (fails after a while). */
static void
wait_rows (GtkTreeModel *model, int n)
{
  gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);

  while (gtk_tree_model_iter_n_children (model, NULL) != n)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10 * 1000);
    }
}

static gboolean
first_row_personal (GtkTreeModel *model)
{
  GtkTreeIter iter;
  gboolean personal = FALSE;

  g_assert_true (gtk_tree_model_get_iter_first (model, &iter));
  gtk_tree_model_get (model, &iter, 4, &personal, -1);
  return personal;
}

static void
test_messages_page (void)
{
  g_autofree char *upstream = NULL;
  g_autofree char *config_text = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *subject = NULL;
  g_autofree char *uid = NULL;
  g_autofree char *raw = NULL;
  g_autofree char *flags = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autoptr(SmServer) server = NULL;
  g_autoptr(SmDbusService) service = NULL;
  g_autoptr(GDBusConnection) bus = NULL;
  SmSecureView view = { 0 };
  GtkTreeModel *filter, *store;
  GtkTreeIter iter;
  GtkWindow *window;
  GtkBuilder *b;
  guint owner_id;

  if (!sm_test_require_stack ())
    return;
  /* The daemon's objects, in this process, with the stack as provider. */
  upstream = sm_test_upstream_section ("alice");
  config_text = g_strdup_printf ("[account]\naddress = alice@example.test\n%s", upstream);
  /* Unlocked at start, like the harness's proxies: MarkPersonal is
   * refused while locked. */
  config = sm_config_load_data (config_text, SM_TEST_DEFAULT_POLICY, &error);
  g_assert_no_error (error);
  g_assert_true (sm_keyring_store (SM_KEYRING_UPSTREAM_PASSWORD, "alice@example.test", sm_test_env ("SM_TEST_PASSWORD"),
                                   &error));
  g_assert_no_error (error);
  dir = g_dir_make_tmp ("smgui-msg-XXXXXX", &error);
  g_assert_no_error (error);
  cert = sm_tls_local_certificate (dir, &error);
  g_assert_no_error (error);
  server = sm_server_new (g_steal_pointer (&config), cert);
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  service = sm_dbus_service_new (server, bus, &error);
  g_assert_no_error (error);
  owner_id = g_bus_own_name_on_connection (bus, SM_DBUS_NAME, G_BUS_NAME_OWNER_FLAGS_NONE, on_name_acquired, NULL,
                                           NULL, NULL);
  while (!name_acquired)
    g_main_context_iteration (NULL, TRUE);

  /* A real message at the provider, and the view the IMAP session would
   * have built for it. */
  subject = g_strdup_printf ("Quarterly numbers %s", uuid);
  uid = sm_test_direct_append ("alice", subject);
  raw = g_strdup_printf ("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: [Verified] %s\r\n"
                         "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nX-SecureMail-Trust: verified\r\n\r\nHi\r\n", subject);
  view.message = g_bytes_new_static (raw, strlen (raw));
  view.trust = SM_TRUST_VERIFIED;
  view.signed_ = TRUE;
  view.from = (char *) "bob@example.test";
  view.signer = (char *) "bob@example.test (CN=Bob)";
  sm_server_note_message (server, "INBOX", MESSAGES_UIDVALIDITY, (guint32) g_ascii_strtoull (uid, NULL, 10), &view);
  g_bytes_unref (view.message);

  window = sm_main_window_new (NULL, NULL);
  b = sm_main_window_get_builder (window);
  filter = GTK_TREE_MODEL (gtk_builder_get_object (b, "messages_filter"));
  store = GTK_TREE_MODEL (gtk_builder_get_object (b, "messages_store"));
  gtk_widget_show (GTK_WIDGET (window));
  sm_main_window_show_page (window, "messages");
  wait_rows (filter, 1);
  {
    g_autofree char *trust = NULL;
    g_autofree char *sender = NULL;
    g_autofree char *shown = NULL;
    g_autofree char *date = NULL;

    g_assert_true (gtk_tree_model_get_iter_first (filter, &iter));
    gtk_tree_model_get (filter, &iter, 0, &trust, 1, &sender, 2, &shown, 3, &date, -1);
    g_assert_cmpstr (trust, ==, "verified");
    g_assert_cmpstr (sender, ==, "bob@example.test");
    g_assert_cmpstr (shown, ==, subject);   /* the [Verified] tag is the Trust column */
    g_assert_true (g_str_has_prefix (date, "2026-11-2"));
  }
  g_assert_false (first_row_personal (filter));
  shot (window, "main-0-messages");

  /* The filter matches sender, subject and trust, case-insensitively. */
  gtk_entry_set_text (GTK_ENTRY (gtk_builder_get_object (b, "messages_filter_entry")), "no such sender");
  wait_rows (filter, 0);
  g_assert_cmpint (gtk_tree_model_iter_n_children (store, NULL), ==, 1);
  gtk_entry_set_text (GTK_ENTRY (gtk_builder_get_object (b, "messages_filter_entry")), "QUARTERLY");
  wait_rows (filter, 1);
  gtk_entry_set_text (GTK_ENTRY (gtk_builder_get_object (b, "messages_filter_entry")), "");
  wait_rows (filter, 1);

  /* Ticking "Personal" marks it at the provider. */
  g_signal_emit_by_name (gtk_builder_get_object (b, "messages_personal_toggle"), "toggled", "0");
  wait_idle (window);
  {
    gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
    while (!first_row_personal (filter))
      {
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
        g_main_context_iteration (NULL, FALSE);
        g_usleep (10 * 1000);
      }
  }
  g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (gtk_builder_get_object (b, "messages_result_label"))),
                            "[PERSONAL]"));
  flags = sm_test_direct_flags ("alice", uid);
  g_assert_nonnull (strstr (flags, "$Personal"));
  shot (window, "main-0-messages-personal");

  gtk_widget_destroy (GTK_WIDGET (window));
  settle ();
  g_bus_unown_name (owner_id);
  {
    g_autofree char *pem = g_build_filename (dir, "local-tls.pem", NULL);
    g_unlink (pem);
    g_rmdir (dir);
  }
}

/* ---- Receipts and Outbox ------------------------------------------------------- */

/* The row of @model whose string @column is @value (turning the main loop
 * until it appears; fails after a while). */
static void
wait_row (GtkTreeModel *model, int column, const char *value, GtkTreeIter *found)
{
  gint64 deadline = g_get_monotonic_time () + SM_GUI_TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);

  for (;;)
    {
      GtkTreeIter iter;
      gboolean more = gtk_tree_model_get_iter_first (model, &iter);

      for (; more; more = gtk_tree_model_iter_next (model, &iter))
        {
          g_autofree char *v = NULL;
          gtk_tree_model_get (model, &iter, column, &v, -1);
          if (g_strcmp0 (v, value) == 0)
            {
              *found = iter;
              return;
            }
        }
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10 * 1000);
    }
}

/* A real send through a proxy whose provider is unreachable: the message
 * stays in the outbound queue, and (request_receipts is on by default) its
 * receipt is recorded as requested in state.db.  The Receipts page shows
 * the receipt, the Outbox page the queued message, and Delete removes it
 * from the daemon's queue. */
static void
test_receipts_and_outbox (void)
{
  g_autoptr(SmTestProxy) proxy = NULL;
  g_autoptr(SmDbusProxy1) dbus = NULL;
  g_autoptr(GVariant) queue = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *upstream = NULL;
  g_autofree char *mid = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *queue_id = NULL;
  GtkTreeModel *receipts, *outbox;
  GtkTreeIter iter;
  GtkWindow *window;
  GtkBuilder *b;

  if (!sm_test_require_stack ())
    return;
  /* Nothing listens on the provider's SMTP port: every attempt is deferred. */
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%s\nsmtp = smtp://localhost:%u\n"
                              "username = alice\nca_file = %s\n",
                              sm_test_env ("SM_TEST_IMAPS_PORT"), sm_test_free_port (), sm_test_env ("SM_TEST_CA"));
  proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), NULL);
  sm_test_proxy_wait_dbus (proxy);
  g_setenv ("SECUREMAIL_CONFIG", proxy->config_path, TRUE);
  g_setenv ("SECUREMAIL_POLICY", proxy->policy_path, TRUE);

  /* To alice herself, so that her own key encrypts it. */
  mid = g_strdup_printf ("<gui-%s@example.test>", uuid);
  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: <alice@example.test>\r\nSubject: outbox %s\r\n"
                         "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: %s\r\n\r\nPlease confirm.\r\n", uuid, mid);
  reply = sm_test_smtp_submit (proxy, "alice@example.test", "alice@example.test", msg);
  g_assert_nonnull (reply);
  g_assert_nonnull (strstr (reply, "Queued as "));
  queue_id = g_strstrip (g_strdup (strstr (reply, "Queued as ") + strlen ("Queued as ")));

  window = sm_main_window_new (NULL, NULL);
  b = sm_main_window_get_builder (window);
  receipts = GTK_TREE_MODEL (gtk_builder_get_object (b, "receipts_store"));
  outbox = GTK_TREE_MODEL (gtk_builder_get_object (b, "outbox_store"));
  gtk_widget_show (GTK_WIDGET (window));

  sm_main_window_show_page (window, "receipts");
  wait_row (receipts, 0, mid, &iter);
  {
    g_autofree char *recipient = NULL;
    g_autofree char *status = NULL;
    g_autofree char *changed = NULL;

    gtk_tree_model_get (receipts, &iter, 1, &recipient, 2, &status, 3, &changed, -1);
    g_assert_cmpstr (recipient, ==, "alice@example.test");
    g_assert_cmpstr (status, ==, "Waiting for the receipt");
    g_assert_true (g_str_has_prefix (changed, "20"));
  }
  shot (window, "main-4-receipts");

  sm_main_window_show_page (window, "outbox");
  wait_row (outbox, 0, queue_id, &iter);
  {
    g_autofree char *to = NULL;
    g_autofree char *state = NULL;

    gtk_tree_model_get (outbox, &iter, 1, &to, 2, &state, -1);
    g_assert_cmpstr (to, ==, "alice@example.test");
    g_assert_true (g_strcmp0 (state, "Waiting to be sent") == 0 || g_strcmp0 (state, "Sending") == 0);
  }
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "outbox_delete_button"))));
  gtk_tree_selection_select_iter (gtk_tree_view_get_selection (GTK_TREE_VIEW (gtk_builder_get_object (b, "outbox_view"))),
                                  &iter);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "outbox_delete_button"))));
  shot (window, "main-5-outbox");

  /* Send again now: the daemon takes it (the provider is still closed, so
   * it stays), and the choice survives the refresh that follows. */
  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "outbox_retry_button")));
  wait_idle (window);
  g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (gtk_builder_get_object (b, "outbox_result_label"))),
                            "again now"));
  wait_row (outbox, 0, queue_id, &iter);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (gtk_builder_get_object (b, "outbox_delete_button"))));

  gtk_button_clicked (GTK_BUTTON (gtk_builder_get_object (b, "outbox_delete_button")));
  wait_idle (window);
  wait_rows (outbox, 0);
  g_assert_nonnull (strstr (gtk_label_get_text (GTK_LABEL (gtk_builder_get_object (b, "outbox_result_label"))),
                            "deleted unsent"));

  /* The daemon's own queue is empty, not just the page. */
  dbus = sm_dbus_proxy1_proxy_new_for_bus_sync (G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES,
                                                SM_DBUS_NAME, SM_DBUS_OBJECT_PATH, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (sm_dbus_proxy1_call_list_queue_sync (dbus, &queue, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (queue), ==, 0);

  gtk_widget_destroy (GTK_WIDGET (window));
  settle ();
  sm_test_proxy_stop (proxy);
}

int
main (int argc, char **argv)
{
  sm_gui_init_i18n ();
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  sm_gui_init ();
  g_test_add_func ("/gui/main-window/pages-and-report", test_pages_and_report);
  g_test_add_func ("/gui/main-window/messages-personal", test_messages_page);
  g_test_add_func ("/gui/main-window/receipts-outbox", test_receipts_and_outbox);
  return g_test_run ();
}
