/* test-gui-main-window.c: the SecureMail window's pages with the real
 * proxy, and the support report (which must never hold a secret). */
#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <string.h>

#include "sm-gui-test.h"
#include "sm-gui.h"
#include "sm-keyring.h"
#include "sm-main-window.h"
#include "sm-support-report.h"
#include "sm-test-harness.h"

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
  g_assert_true (sm_support_report_write (NULL, report_path, &error));
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

int
main (int argc, char **argv)
{
  sm_gui_init_i18n ();
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  sm_gui_init ();
  g_test_add_func ("/gui/main-window/pages-and-report", test_pages_and_report);
  return g_test_run ();
}
