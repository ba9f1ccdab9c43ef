/* sm-support-report.c: the redacted support report. */
#include "config.h"

#include <gio/gio.h>
#include <gpgme.h>
#include <string.h>

#include "sm-config.h"
#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-doctor.h"
#include "sm-key-summary.h"
#include "sm-keyring.h"
#include "sm-support-report.h"

/* Shorter secrets would cut ordinary words out of the report. */
#define MIN_CUT_LEN 4

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

static char *
format_time (gint64 unix_seconds)
{
  g_autoptr(GDateTime) dt = NULL;

  if (unix_seconds <= 0)
    return g_strdup ("-");
  dt = g_date_time_new_from_unix_local (unix_seconds);
  return dt ? g_date_time_format (dt, "%Y-%m-%d %H:%M:%S") : g_strdup ("-");
}

/* "a=2 b=1" of the values of @key in @entries (aa{sv}), in first-seen order. */
static void
append_counts (GString *out, GVariant *entries, const char *key)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  g_autoptr(GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  GVariantIter iter;
  GVariant *entry;

  g_variant_iter_init (&iter, entries);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      const char *value = NULL;
      if (g_variant_lookup (entry, key, "&s", &value))
        {
          gpointer n = g_hash_table_lookup (counts, value);
          if (n == NULL)
            g_ptr_array_add (names, (gpointer) g_intern_string (value));
          g_hash_table_insert (counts, (gpointer) g_intern_string (value), GUINT_TO_POINTER (GPOINTER_TO_UINT (n) + 1));
        }
      g_variant_unref (entry);
    }
  if (names->len == 0)
    g_string_append (out, " none");
  for (guint i = 0; i < names->len; i++)
    g_string_append_printf (out, " %s=%u", (const char *) names->pdata[i],
                            GPOINTER_TO_UINT (g_hash_table_lookup (counts, names->pdata[i])));
  g_string_append_c (out, '\n');
}

/* The queue without content: no Subject, no Message-ID, recipients as
 * domains, errors with foreign addresses cut to their domain. */
static void
append_queue (GString *out, SmDbusProxy1 *proxy, const char *account)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GError) error = NULL;
  GVariantIter iter;
  GVariant *e;

  g_string_append (out, "\n== outbound queue ==\n");
  if (!sm_dbus_proxy1_call_list_queue_sync (proxy, &entries, NULL, &error))
    {
      g_string_append_printf (out, "(%s)\n", error->message);
      return;
    }
  g_string_append_printf (out, "messages: %zu\n", g_variant_n_children (entries));
  g_variant_iter_init (&iter, entries);
  while ((e = g_variant_iter_next_value (&iter)) != NULL)
    {
      const char *id = "", *state = "", *last_error = "";
      gint64 created = 0, next = 0;
      guint attempts = 0;
      guint64 size = 0;
      gboolean report = FALSE;
      g_autofree const char **recipients = NULL;
      g_autoptr(GString) domains = g_string_new (NULL);
      g_autofree char *c = NULL, *n = NULL, *err = NULL;

      g_variant_lookup (e, "id", "&s", &id);
      g_variant_lookup (e, "state", "&s", &state);
      g_variant_lookup (e, "last_error", "&s", &last_error);
      g_variant_lookup (e, "created", "x", &created);
      g_variant_lookup (e, "next_attempt", "x", &next);
      g_variant_lookup (e, "attempts", "u", &attempts);
      g_variant_lookup (e, "size", "t", &size);
      g_variant_lookup (e, "report", "b", &report);
      g_variant_lookup (e, "recipients", "^a&s", &recipients);
      for (guint i = 0; recipients && recipients[i]; i++)
        {
          const char *at = strrchr (recipients[i], '@');
          g_string_append_printf (domains, "%s%s", i ? ", " : "", at ? at + 1 : "?");
        }
      c = format_time (created);
      n = format_time (next);
      err = sm_support_report_reduce_addresses (last_error, account);
      g_string_append_printf (out, "%s: %s%s, %" G_GUINT64_FORMAT " bytes, %u recipient(s) at %s, created %s, "
                              "%u attempt(s), next %s%s%s\n",
                              id, state, report ? " (delivery report)" : "", size,
                              recipients ? g_strv_length ((char **) recipients) : 0, domains->str, c, attempts, n,
                              *err ? ", last error: " : "", err);
      g_variant_unref (e);
    }
}

static void
append_dbus (GString *out, const char *account)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autofree char *owner = NULL;
  g_autoptr(GVariant) messages = NULL;
  g_autoptr(GVariant) receipts = NULL;

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
  g_dbus_proxy_set_default_timeout (G_DBUS_PROXY (proxy), SM_SUPPORT_REPORT_DBUS_TIMEOUT_MS);
  g_string_append_printf (out,
                          "running: yes\nversion: %s\naccount: %s\nimap listen: %s\nsmtp listen: %s\n"
                          "online: %s\nlast error: %s\nimap sessions: %u\nsmtp sessions: %u\n"
                          "queue size: %u\nlocked: %s\nkey warning: %s\n",
                          sm_dbus_proxy1_get_version (proxy), sm_dbus_proxy1_get_account (proxy),
                          sm_dbus_proxy1_get_imap_listen (proxy), sm_dbus_proxy1_get_smtp_listen (proxy),
                          sm_dbus_proxy1_get_online (proxy) ? "yes" : "no", sm_dbus_proxy1_get_last_error (proxy),
                          sm_dbus_proxy1_get_imap_sessions (proxy), sm_dbus_proxy1_get_smtp_sessions (proxy),
                          sm_dbus_proxy1_get_queue_size (proxy), sm_dbus_proxy1_get_locked (proxy) ? "yes" : "no",
                          sm_dbus_proxy1_get_key_warning (proxy) && *sm_dbus_proxy1_get_key_warning (proxy)
                            ? sm_dbus_proxy1_get_key_warning (proxy) : "none");

  /* Counts only: a sender or a Subject is the user's business. */
  g_string_append (out, "recent messages by trust:");
  g_clear_error (&error);
  if (sm_dbus_proxy1_call_list_messages_sync (proxy, 0, &messages, NULL, &error))
    append_counts (out, messages, "trust");
  else
    g_string_append_printf (out, " (%s)\n", error->message);
  g_string_append (out, "receipts by status:");
  g_clear_error (&error);
  if (sm_dbus_proxy1_call_list_receipts_sync (proxy, &receipts, NULL, &error))
    append_counts (out, receipts, "status");
  else
    g_string_append_printf (out, " (%s)\n", error->message);

  append_queue (out, proxy, account);
}

/* The proxy's last lines in the user journal (the systemd user unit sends
 * its stderr there); they hold no secret or content by design, but foreign
 * addresses are still cut to their domain. */
static void
append_log (GString *out, const char *account)
{
  g_autofree char *lines = g_strdup_printf ("%d", SM_SUPPORT_REPORT_LOG_LINES);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *reduced = NULL;

  g_string_append (out, "\n== proxy log (user journal, last lines) ==\n");
  p = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, "journalctl",
                        "--user", "--unit", "securemail-proxy.service", "--lines", lines, "--output", "short-iso",
                        "--no-pager", "--quiet", NULL);
  if (p == NULL || !g_subprocess_communicate_utf8 (p, NULL, NULL, &text, NULL, &error))
    {
      g_string_append_printf (out, "(none: %s)\n", error->message);
      return;
    }
  if (!g_subprocess_get_successful (p) || text == NULL || *text == '\0')
    {
      g_string_append (out, "(none: the proxy has not logged to the user journal)\n");
      return;
    }
  reduced = sm_support_report_reduce_addresses (text, account);
  g_string_append (out, reduced);
  if (!g_str_has_suffix (reduced, "\n"))
    g_string_append_c (out, '\n');
}

static void
append_checks (GString *out, const char *config_path)
{
  g_autoptr(GPtrArray) checks = sm_doctor_run (config_path);

  g_string_append (out, "\n== checks (securemail doctor) ==\n");
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
}

static void
append_keys (GString *out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = sm_key_summary_list (TRUE, &error);

  g_string_append (out, "\n== own keys and certificates ==\n");
  if (keys == NULL)
    g_string_append_printf (out, "(%s)\n", error->message);
  else if (keys->len == 0)
    g_string_append (out, "none\n");
  for (guint i = 0; keys && i < keys->len; i++)
    g_string_append_printf (out, "%s\n", (const char *) keys->pdata[i]);
}

void
sm_support_report_cut_secret (GString *text, const char *secret)
{
  gsize n;

  if (secret == NULL || strlen (secret) < MIN_CUT_LEN)
    return;
  n = strlen (secret);
  for (char *p = strstr (text->str, secret); p != NULL; p = strstr (text->str, secret))
    {
      gssize pos = p - text->str;
      g_string_erase (text, pos, (gssize) n);
      g_string_insert (text, pos, "[removed]");
    }
}

static gboolean
reduce_one (const GMatchInfo *match, GString *result, gpointer keep)
{
  g_autofree char *whole = g_match_info_fetch (match, 0);
  g_autofree char *domain = g_match_info_fetch (match, 1);

  if (keep != NULL && g_ascii_strcasecmp (whole, keep) == 0)
    g_string_append (result, whole);
  else
    g_string_append_printf (result, "…@%s", domain);
  return FALSE;
}

char *
sm_support_report_reduce_addresses (const char *text, const char *keep)
{
  /* Local part: what RFC 5322 allows unquoted (dot-atom), which is what
   * addresses in replies and logs look like. */
  g_autoptr(GRegex) address_re = g_regex_new ("[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@"
                                              "([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)", 0, 0, NULL);
  char *reduced;

  reduced = g_regex_replace_eval (address_re, text, -1, 0, 0, reduce_one, (gpointer) keep, NULL);
  return reduced ? reduced : g_strdup ("");
}

char *
sm_support_report_build (const char *config_path, const char *front_end)
{
  GString *out = g_string_new (NULL);
  g_autofree char *path = sm_config_default_path (config_path);
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format_iso8601 (now);
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GError) error = NULL;

  g_string_append (out, "SecureMail support report (no passwords, keys, Subjects or message content are included)\n");
  g_string_append_printf (out, "written: %s\n", stamp);
  g_string_append_printf (out, "versions: SecureMail %s, GLib %u.%u.%u, GPGME %s\n", PACKAGE_VERSION,
                          glib_major_version, glib_minor_version, glib_micro_version, gpgme_check_version (NULL));
  if (front_end != NULL)
    g_string_append_printf (out, "written by: %s\n", front_end);

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

  append_dbus (out, config ? config->address : NULL);
  append_checks (out, config_path);
  append_keys (out);
  append_log (out, config ? config->address : NULL);

  /* Last guard: whatever went wrong above, the secrets never leave. */
  if (config != NULL)
    {
      char *secret = sm_keyring_lookup (SM_KEYRING_UPSTREAM_PASSWORD, config->address, NULL);
      sm_support_report_cut_secret (out, secret);
      sm_keyring_free (secret);
      secret = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, config->address, NULL);
      sm_support_report_cut_secret (out, secret);
      sm_keyring_free (secret);
      secret = sm_keyring_lookup (SM_KEYRING_OAUTH2_REFRESH_TOKEN, config->address, NULL);
      sm_support_report_cut_secret (out, secret);
      sm_keyring_free (secret);
      /* The client certificate's PIN (issue 7). */
      secret = sm_keyring_lookup (SM_KEYRING_CLIENT_CERT_PIN, config->address, NULL);
      sm_support_report_cut_secret (out, secret);
      sm_keyring_free (secret);
    }
  sm_key_summary_cut_passphrases (out);
  return g_string_free (out, FALSE);
}

gboolean
sm_support_report_write (const char *config_path, const char *front_end, const char *out_path, GError **error)
{
  g_autofree char *text = sm_support_report_build (config_path, front_end);

  return g_file_set_contents_full (out_path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}
