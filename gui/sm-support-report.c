/* sm-support-report.c: the redacted support report. */
#include "config.h"

#include <glib/gi18n.h>
#include <gpgme.h>
#include <gtk/gtk.h>
#include <string.h>

#include "sm-config.h"
#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-doctor.h"
#include "sm-gui-keys.h"
#include "sm-keyring.h"
#include "sm-support-report.h"

#define REPORT_DBUS_TIMEOUT_MS 3000

static gboolean
looks_secret (const char *key)
{
  static const char *const words[] = { "password", "passphrase", "secret", "token", "pin_code", NULL };
  g_autofree char *lower = g_ascii_strdown (key, -1);

  for (guint i = 0; words[i]; i++)
    if (strstr (lower, words[i]) != NULL)
      return TRUE;
  return FALSE;
}

static void
append_file (GString *out, const char *title, const char *path)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) groups = NULL;

  g_string_append_printf (out, "\n== %s: %s ==\n", title, path);
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &error))
    {
      g_string_append_printf (out, "(%s)\n", error->message);
      return;
    }
  groups = g_key_file_get_groups (kf, NULL);
  for (guint i = 0; groups[i]; i++)
    {
      g_auto(GStrv) keys = g_key_file_get_keys (kf, groups[i], NULL, NULL);
      g_string_append_printf (out, "[%s]\n", groups[i]);
      for (guint j = 0; keys && keys[j]; j++)
        {
          g_autofree char *v = g_key_file_get_value (kf, groups[i], keys[j], NULL);
          if (looks_secret (keys[j]))
            g_string_append_printf (out, "%s = [removed]\n", keys[j]);
          else
            g_string_append_printf (out, "%s = %s\n", keys[j], v ? v : "");
        }
    }
}

static void
append_dbus (GString *out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autofree char *owner = NULL;

  g_string_append (out, "\n== securemail-proxy (D-Bus) ==\n");
  proxy = sm_dbus_proxy1_proxy_new_for_bus_sync (G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_NONE, SM_DBUS_NAME,
                                                 SM_DBUS_OBJECT_PATH, NULL, &error);
  if (proxy != NULL)
    owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy));
  if (owner == NULL)
    {
      g_string_append_printf (out, "running: no%s%s\n", error ? " — " : "", error ? error->message : "");
      return;
    }
  g_string_append_printf (out,
                          "running: yes\nversion: %s\naccount: %s\nimap listen: %s\nsmtp listen: %s\n"
                          "online: %s\nlast error: %s\nimap sessions: %u\nsmtp sessions: %u\n"
                          "queue size: %u\nlocked: %s\n",
                          sm_dbus_proxy1_get_version (proxy), sm_dbus_proxy1_get_account (proxy),
                          sm_dbus_proxy1_get_imap_listen (proxy), sm_dbus_proxy1_get_smtp_listen (proxy),
                          sm_dbus_proxy1_get_online (proxy) ? "yes" : "no", sm_dbus_proxy1_get_last_error (proxy),
                          sm_dbus_proxy1_get_imap_sessions (proxy), sm_dbus_proxy1_get_smtp_sessions (proxy),
                          sm_dbus_proxy1_get_queue_size (proxy), sm_dbus_proxy1_get_locked (proxy) ? "yes" : "no");
}

/* Cuts every occurrence of @secret out of @text. */
static void
cut_secret (GString *text, const char *secret)
{
  gsize n;

  if (secret == NULL || strlen (secret) < 4)
    return;
  n = strlen (secret);
  for (char *p = strstr (text->str, secret); p != NULL; p = strstr (text->str, secret))
    {
      gssize pos = p - text->str;
      g_string_erase (text, pos, (gssize) n);
      g_string_insert (text, pos, "[removed]");
    }
}

char *
sm_support_report_build (const char *config_path)
{
  GString *out = g_string_new (NULL);
  g_autofree char *path = sm_config_default_path (config_path);
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format_iso8601 (now);
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) checks = NULL;
  g_autoptr(GPtrArray) keys = NULL;

  g_string_append (out, "SecureMail support report (no passwords or keys are included)\n");
  g_string_append_printf (out, "written: %s\n", stamp);
  g_string_append_printf (out, "versions: SecureMail %s, GLib %u.%u.%u, GTK %u.%u.%u, GPGME %s\n", PACKAGE_VERSION,
                          glib_major_version, glib_minor_version, glib_micro_version, gtk_get_major_version (),
                          gtk_get_minor_version (), gtk_get_micro_version (), gpgme_check_version (NULL));

  append_file (out, "settings", path);
  append_file (out, "administrator policy", sm_config_policy_path ());

  config = sm_config_load (config_path, &error);
  g_string_append (out, "\n== settings check ==\n");
  if (config == NULL)
    g_string_append_printf (out, "invalid: %s\n", error->message);
  else
    {
      g_autoptr(GList) locked = g_hash_table_get_keys (config->locked);
      g_string_append (out, "valid\nlocked by policy:");
      locked = g_list_sort (locked, (GCompareFunc) g_strcmp0);
      for (GList *l = locked; l; l = l->next)
        g_string_append_printf (out, " %s", (const char *) l->data);
      g_string_append_c (out, '\n');
    }

  append_dbus (out);

  g_string_append (out, "\n== checks (securemail doctor) ==\n");
  checks = sm_doctor_run (config_path);
  for (guint i = 0; i < checks->len; i++)
    {
      SmCheck *c = checks->pdata[i];
      const char *mark = c->result == SM_CHECK_PASS ? "OK" : c->result == SM_CHECK_FAIL ? "FAIL" : "SKIP";
      g_string_append_printf (out, "%u. [%s] %s (%s)\n", c->number, mark, c->title, c->id);
      if (c->detail)
        g_string_append_printf (out, "   %s\n", c->detail);
      if (c->fix)
        g_string_append_printf (out, "   fix: %s\n", c->fix);
    }

  g_string_append (out, "\n== own keys and certificates ==\n");
  g_clear_error (&error);
  keys = sm_gui_keys_list (TRUE, &error);
  if (keys == NULL)
    g_string_append_printf (out, "(%s)\n", error->message);
  else if (keys->len == 0)
    g_string_append (out, "none\n");
  for (guint i = 0; keys && i < keys->len; i++)
    g_string_append_printf (out, "%s\n", (const char *) keys->pdata[i]);

  /* Last guard: whatever went wrong above, the passwords never leave. */
  if (config != NULL)
    {
      char *secret = sm_keyring_lookup (SM_KEYRING_UPSTREAM_PASSWORD, config->address, NULL);
      cut_secret (out, secret);
      sm_keyring_free (secret);
      secret = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, config->address, NULL);
      cut_secret (out, secret);
      sm_keyring_free (secret);
      /* The client certificate's PIN (issue 7). */
      secret = sm_keyring_lookup (SM_KEYRING_CLIENT_CERT_PIN, config->address, NULL);
      cut_secret (out, secret);
      sm_keyring_free (secret);
    }
  return g_string_free (out, FALSE);
}

gboolean
sm_support_report_write (const char *config_path, const char *out_path, GError **error)
{
  g_autofree char *text = sm_support_report_build (config_path);
  return g_file_set_contents_full (out_path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}
