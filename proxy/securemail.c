/* securemail: the command line for users and the helpdesk (SPEC.md
 * "Command line").  Exit 0 on success; otherwise non-zero with one line on
 * stderr that says what to do next.  Listings take --json. */
#include "config.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sm-certstore-cli.h"
#include "sm-wipe.h"
#include "sm-config.h"
#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-doctor.h"
#include "sm-error.h"
#include "sm-gnupg-tool.h"
#include "sm-keyring.h"
#include "sm-oauth2-login.h"
#include "sm-receipts.h"
#include "sm-support-report.h"

#define EXIT_USAGE       2
#define EXIT_NOT_RUNNING 3

static char *opt_config = NULL;
static gboolean opt_json = FALSE;

static int
die (int code, const char *format, ...) G_GNUC_PRINTF (2, 3);

static int
die (int code, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_printerr ("securemail: %s\n", msg);
  return code;
}

static void
print_json (JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autofree char *text = NULL;

  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  text = json_generator_to_data (gen, NULL);
  g_print ("%s\n", text);
}

static SmConfig *
load_config_or_die (int *code)
{
  g_autoptr(GError) error = NULL;
  SmConfig *config = sm_config_load (opt_config, &error);

  if (config == NULL)
    *code = die (EXIT_USAGE, _("%s (fix the settings file, or run securemail-setup)"), error->message);
  return config;
}

/* Reads a secret from stdin (one line; the trailing newline dropped), with
 * echo off when it is a terminal.  Returns it in memory that is wiped on
 * free (sm_keyring_free()). */
static char *
read_secret (const char *prompt, GError **error)
{
  gboolean tty = isatty (STDIN_FILENO);
  struct termios old, quiet;
  char *buf = g_malloc0 (SM_KEYRING_MAX_SECRET_LEN + 2);
  gsize len;

  if (tty)
    {
      g_printerr ("%s", prompt);
      tcgetattr (STDIN_FILENO, &old);
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t) ECHO;
      tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet);
    }
  if (fgets (buf, SM_KEYRING_MAX_SECRET_LEN + 2, stdin) == NULL)
    buf[0] = '\0';
  if (tty)
    {
      tcsetattr (STDIN_FILENO, TCSAFLUSH, &old);
      g_printerr ("\n");
    }
  len = strlen (buf);
  if (len > SM_KEYRING_MAX_SECRET_LEN)
    {
      sm_wipe (buf, len);
      g_free (buf);
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("The password is longer than %d characters"),
                   SM_KEYRING_MAX_SECRET_LEN);
      return NULL;
    }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    buf[--len] = '\0';
  if (len == 0)
    {
      g_free (buf);
      g_set_error_literal (error, SM_ERROR, SM_ERROR_FAILED, _("No password was given"));
      return NULL;
    }
  return buf;
}

/* ---- securemail account oauth2-login [--device] (issue 7) -------------------- */

/* The address is printed too: the browser may be on another screen, or
 * none may start. */
static gboolean
open_in_browser (const char *uri, gpointer user_data)
{
  g_autoptr(GError) error = NULL;

  g_print (_("Opening your browser to sign in to your provider. If it does not open, visit:\n  %s\n"), uri);
  if (sm_oauth2_open_in_browser (uri, &error))
    return TRUE;
  g_printerr (_("The browser could not be started (%s); open the address above yourself.\n"), error->message);
  return FALSE;
}

static void
show_device_code (const char *verification_uri, const char *user_code, gpointer user_data)
{
  g_print (_("To sign in, open %s on any device and enter the code:\n  %s\nWaiting for you to finish…\n"),
           verification_uri, user_code);
}

/* Tells a running daemon that a new sign-in is in the keyring; a daemon
 * that is not running reads it at its next start anyway. */
static void
notify_daemon_signed_in (void)
{
  g_autoptr(SmDbusProxy1) proxy = sm_dbus_proxy1_proxy_new_for_bus_sync (
      G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START | G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES,
      SM_DBUS_NAME, SM_DBUS_OBJECT_PATH, NULL, NULL);
  g_autofree char *owner = proxy ? g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy)) : NULL;

  if (owner != NULL)
    sm_dbus_proxy1_call_oauth2_signed_in_sync (proxy, NULL, NULL);
}

static int
cmd_oauth2_login (const SmConfig *config, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  gboolean device = argc > 2 && strcmp (argv[2], "--device") == 0;
  gboolean ok;

  if (argc > 2 && !device)
    return die (EXIT_USAGE, _("unknown option %s; did you mean --device?"), argv[2]);
  if (config->auth != SM_AUTH_OAUTH2)
    return die (EXIT_USAGE, _("[upstream] auth is not oauth2 in %s; set it (and the [oauth2] section your "
                              "provider or helpdesk gives you) first"),
                config->path ? config->path : "securemail.conf");
  ok = device ? sm_oauth2_login_device (config, show_device_code, NULL, NULL, &error)
              : sm_oauth2_login_browser (config, open_in_browser, NULL, NULL, &error);
  if (!ok)
    return die (1, "%s", error->message);
  notify_daemon_signed_in ();
  g_print (_("Signed in: SecureMail keeps the sign-in for %s in the keyring.\n"), config->address);
  return 0;
}

/* account set-password / set-pin: reads a secret from the terminal (or
 * stdin with --stdin), never from argv, and stores it as @kind. */
static int
store_secret (const SmConfig *config, SmKeyringItem kind, int argc, char **argv, const char *prompt,
              const char *done_format)
{
  g_autoptr(GError) error = NULL;
  gboolean from_stdin = argc > 2 && strcmp (argv[2], "--stdin") == 0;
  char *pw;
  gboolean ok;

  if (argc > 2 && !from_stdin)
    return die (EXIT_USAGE, _("unknown option %s; the password is never taken from the command line"), argv[2]);
  pw = read_secret (prompt, &error);
  if (pw == NULL)
    return die (1, _("%s; nothing was stored"), error->message);
  ok = sm_keyring_store (kind, config->address, pw, &error);
  sm_wipe (pw, strlen (pw));
  g_free (pw);
  if (!ok)
    return die (1, "%s", error->message);
  g_print (done_format, config->address);
  return 0;
}

static int
cmd_account (int argc, char **argv)
{
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(GError) error = NULL;
  int code = 0;

  if (argc < 2)
    return die (EXIT_USAGE, _("usage: securemail account set-password [--stdin] | set-pin [--stdin] | "
                              "local-password [--reset] | oauth2-login [--device]"));
  config = load_config_or_die (&code);
  if (config == NULL)
    return code;

  if (strcmp (argv[1], "set-password") == 0)
    return store_secret (config, SM_KEYRING_UPSTREAM_PASSWORD, argc, argv, _("Provider password: "),
                         _("The provider password for %s is stored in the keyring.\n"));
  /* Issue 7: the PIN of the token (or the PKCS#12 password) of [upstream]
   * client_certificate, read by the proxy when the handshake asks for it. */
  if (strcmp (argv[1], "set-pin") == 0)
    return store_secret (config, SM_KEYRING_CLIENT_CERT_PIN, argc, argv, _("Client certificate PIN: "),
                         _("The client certificate PIN for %s is stored in the keyring.\n"));
  if (strcmp (argv[1], "oauth2-login") == 0)
    return cmd_oauth2_login (config, argc, argv);
  if (strcmp (argv[1], "local-password") == 0)
    {
      gboolean reset = argc > 2 && strcmp (argv[2], "--reset") == 0;
      char *pw;
      if (argc > 2 && !reset)
        return die (EXIT_USAGE, _("unknown option %s; did you mean --reset?"), argv[2]);
      pw = sm_keyring_local_password (config->address, reset, &error);
      if (pw == NULL)
        return die (1, "%s", error->message);
      /* The one place the local password is shown: the user types it into
       * the mail client. */
      g_print ("%s\n", pw);
      sm_keyring_free (pw);
      return 0;
    }
  return die (EXIT_USAGE, _("unknown account command “%s”; use set-password, set-pin, local-password or "
                            "oauth2-login"),
              argv[1]);
}

static int
cmd_status (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autofree char *owner = NULL;
  gboolean running;

  proxy = sm_dbus_proxy1_proxy_new_for_bus_sync (G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                                 SM_DBUS_NAME, SM_DBUS_OBJECT_PATH, NULL, &error);
  if (proxy != NULL)
    owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy));
  running = owner != NULL;

  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "running");
      json_builder_add_boolean_value (b, running);
      if (running)
        {
          json_builder_set_member_name (b, "account");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_account (proxy));
          json_builder_set_member_name (b, "locked");
          json_builder_add_boolean_value (b, sm_dbus_proxy1_get_locked (proxy));
          json_builder_set_member_name (b, "sign_in_needed");
          json_builder_add_boolean_value (b, sm_dbus_proxy1_get_consent_needed (proxy));
          json_builder_set_member_name (b, "token_pin_needed");
          json_builder_add_boolean_value (b, sm_dbus_proxy1_get_token_pin_needed (proxy));
          json_builder_set_member_name (b, "upstream_reachable");
          json_builder_add_boolean_value (b, sm_dbus_proxy1_get_online (proxy));
          json_builder_set_member_name (b, "last_error");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_last_error (proxy));
          json_builder_set_member_name (b, "queue_size");
          json_builder_add_int_value (b, sm_dbus_proxy1_get_queue_size (proxy));
          json_builder_set_member_name (b, "imap_listen");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_imap_listen (proxy));
          json_builder_set_member_name (b, "smtp_listen");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_smtp_listen (proxy));
          json_builder_set_member_name (b, "imap_sessions");
          json_builder_add_int_value (b, sm_dbus_proxy1_get_imap_sessions (proxy));
          json_builder_set_member_name (b, "smtp_sessions");
          json_builder_add_int_value (b, sm_dbus_proxy1_get_smtp_sessions (proxy));
          json_builder_set_member_name (b, "version");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_version (proxy));
          json_builder_set_member_name (b, "key_warning");
          json_builder_add_string_value (b, sm_dbus_proxy1_get_key_warning (proxy));
          json_builder_set_member_name (b, "key_days_left");
          if (sm_dbus_proxy1_get_key_warning (proxy) && *sm_dbus_proxy1_get_key_warning (proxy))
            json_builder_add_int_value (b, sm_dbus_proxy1_get_key_days_left (proxy));
          else
            json_builder_add_null_value (b);
        }
      json_builder_end_object (b);
      print_json (b);
    }
  else if (running)
    {
      const char *last = sm_dbus_proxy1_get_last_error (proxy);
      const char *key_warning = sm_dbus_proxy1_get_key_warning (proxy);
      g_print (_("SecureMail is running for %s\n"), sm_dbus_proxy1_get_account (proxy));
      g_print (_("  Locked:            %s\n"), sm_dbus_proxy1_get_locked (proxy) ? _("yes") : _("no"));
      g_print (_("  Provider:          %s\n"), sm_dbus_proxy1_get_online (proxy) ? _("reachable") : _("NOT reachable"));
      if (sm_dbus_proxy1_get_consent_needed (proxy))
        g_print (_("  Sign-in needed:    yes: run “securemail account oauth2-login”\n"));
      if (sm_dbus_proxy1_get_token_pin_needed (proxy))
        g_print (_("  Smartcard PIN:     needed: run “securemail unlock --pin” or use the tray's menu\n"));
      if (last && *last)
        g_print (_("  Last problem:      %s\n"), last);
      if (key_warning && *key_warning)
        g_print (_("  Keys:              %s\n"), key_warning);
      g_print (_("  Outbound queue:    %u message(s)\n"), sm_dbus_proxy1_get_queue_size (proxy));
      g_print (_("  IMAP for clients:  %s (%u session(s))\n"), sm_dbus_proxy1_get_imap_listen (proxy),
               sm_dbus_proxy1_get_imap_sessions (proxy));
      g_print (_("  SMTP for clients:  %s (%u session(s))\n"), sm_dbus_proxy1_get_smtp_listen (proxy),
               sm_dbus_proxy1_get_smtp_sessions (proxy));
    }
  if (!running)
    return die (EXIT_NOT_RUNNING, _("securemail-proxy is not running; start it (it starts with your "
                                    "desktop session), then run “securemail doctor” if it stops"));
  return 0;
}

/* ---- securemail queue [list|retry ID|delete ID] ------------------------------ */

static SmDbusProxy1 *
connect_proxy_or_die (int *code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmDbusProxy1) proxy = sm_dbus_proxy1_proxy_new_for_bus_sync (
      G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START | G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES,
      SM_DBUS_NAME, SM_DBUS_OBJECT_PATH, NULL, &error);
  g_autofree char *owner = proxy ? g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy)) : NULL;

  if (owner == NULL)
    {
      *code = die (EXIT_NOT_RUNNING, _("securemail-proxy is not running, and this is its job; start it "
                                       "(it starts with your desktop session)"));
      return NULL;
    }
  return g_steal_pointer (&proxy);
}

static const char *
dict_string (GVariantDict *d, const char *key)
{
  const char *v = NULL;
  return g_variant_dict_lookup (d, key, "&s", &v) ? v : "";
}

static gint64
dict_int64 (GVariantDict *d, const char *key)
{
  gint64 v = 0;
  g_variant_dict_lookup (d, key, "x", &v);
  return v;
}

static char *
local_time (gint64 unix_s)
{
  g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (unix_s);
  return t ? g_date_time_format (t, "%Y-%m-%d %H:%M:%S") : g_strdup ("?");
}

static int
queue_list (SmDbusProxy1 *proxy)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) entries = NULL;
  GVariantIter iter;
  GVariant *item;

  if (!sm_dbus_proxy1_call_list_queue_sync (proxy, &entries, NULL, &error))
    {
      g_dbus_error_strip_remote_error (error);
      return die (1, _("cannot read the queue: %s"), error->message);
    }
  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_array (b);
      g_variant_iter_init (&iter, entries);
      while ((item = g_variant_iter_next_value (&iter)) != NULL)
        {
          g_auto(GVariantDict) d = G_VARIANT_DICT_INIT (item);
          g_autofree const char **rcpts = NULL;
          guint32 attempts = 0;
          guint64 size = 0;
          gboolean report = FALSE;
          const char *keys[] = { "id", "sender", "state", "last_error", "message_id" };

          json_builder_begin_object (b);
          for (gsize k = 0; k < G_N_ELEMENTS (keys); k++)
            {
              json_builder_set_member_name (b, keys[k]);
              json_builder_add_string_value (b, dict_string (&d, keys[k]));
            }
          json_builder_set_member_name (b, "recipients");
          json_builder_begin_array (b);
          if (g_variant_dict_lookup (&d, "recipients", "^a&s", &rcpts))
            for (guint i = 0; rcpts[i]; i++)
              json_builder_add_string_value (b, rcpts[i]);
          json_builder_end_array (b);
          json_builder_set_member_name (b, "created");
          json_builder_add_int_value (b, dict_int64 (&d, "created"));
          json_builder_set_member_name (b, "next_attempt");
          json_builder_add_int_value (b, dict_int64 (&d, "next_attempt"));
          g_variant_dict_lookup (&d, "attempts", "u", &attempts);
          json_builder_set_member_name (b, "attempts");
          json_builder_add_int_value (b, attempts);
          g_variant_dict_lookup (&d, "size", "t", &size);
          json_builder_set_member_name (b, "size");
          json_builder_add_int_value (b, (gint64) size);
          g_variant_dict_lookup (&d, "report", "b", &report);
          json_builder_set_member_name (b, "report");
          json_builder_add_boolean_value (b, report);
          json_builder_end_object (b);
          g_variant_unref (item);
        }
      json_builder_end_array (b);
      print_json (b);
      return 0;
    }
  if (g_variant_n_children (entries) == 0)
    {
      g_print (_("The outbound queue is empty.\n"));
      return 0;
    }
  g_variant_iter_init (&iter, entries);
  while ((item = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto(GVariantDict) d = G_VARIANT_DICT_INIT (item);
      g_autofree const char **rcpts = NULL;
      g_autofree char *to = NULL;
      g_autofree char *created = local_time (dict_int64 (&d, "created"));
      g_autofree char *next = local_time (dict_int64 (&d, "next_attempt"));
      guint32 attempts = 0;
      const char *state = dict_string (&d, "state");
      const char *last = dict_string (&d, "last_error");

      if (g_variant_dict_lookup (&d, "recipients", "^a&s", &rcpts))
        to = g_strjoinv (", ", (char **) rcpts);
      g_variant_dict_lookup (&d, "attempts", "u", &attempts);
      g_print ("%s  %-7s  %s\n", dict_string (&d, "id"), state, created);
      g_print (_("    To:        %s\n"), to ? to : "");
      if (*dict_string (&d, "sender") == '\0')
        g_print (_("    (a delivery report SecureMail made)\n"));
      g_print (_("    Attempts:  %u\n"), attempts);
      if (strcmp (state, "queued") == 0)
        g_print (_("    Next try:  %s\n"), next);
      if (*last)
        g_print (_("    Problem:   %s\n"), last);
      g_variant_unref (item);
    }
  return 0;
}

static int
cmd_queue (int argc, char **argv)
{
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autoptr(GError) error = NULL;
  const char *sub = argc > 1 ? argv[1] : "list";
  gboolean ok;
  int code = 0;

  if (strcmp (sub, "list") != 0 && strcmp (sub, "retry") != 0 && strcmp (sub, "delete") != 0)
    return die (EXIT_USAGE, _("unknown queue command “%s”; use list, retry ID or delete ID"), sub);
  if (strcmp (sub, "list") != 0 && argc != 3)
    return die (EXIT_USAGE, _("usage: securemail queue %s ID (the IDs are in “securemail queue list”)"), sub);
  proxy = connect_proxy_or_die (&code);
  if (proxy == NULL)
    return code;
  if (strcmp (sub, "list") == 0)
    return queue_list (proxy);
  if (strcmp (sub, "retry") == 0)
    ok = sm_dbus_proxy1_call_retry_sync (proxy, argv[2], NULL, &error);
  else
    ok = sm_dbus_proxy1_call_delete_sync (proxy, argv[2], NULL, &error);
  if (!ok)
    {
      g_dbus_error_strip_remote_error (error);
      return die (1, _("%s (see “securemail queue list”)"), error->message);
    }
  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "id");
      json_builder_add_string_value (b, argv[2]);
      json_builder_set_member_name (b, sub[0] == 'r' ? "retried" : "deleted");
      json_builder_add_boolean_value (b, TRUE);
      json_builder_end_object (b);
      print_json (b);
    }
  else if (sub[0] == 'r')
    g_print (_("Message %s will be sent again now.\n"), argv[2]);
  else
    g_print (_("Message %s was removed from the queue; it was not sent.\n"), argv[2]);
  return 0;
}

/* ---- securemail messages [--limit N] ----------------------------------------- */

#define MESSAGES_DEFAULT_LIMIT 20   /* a screenful; --limit 0 lists all the daemon keeps */

static gboolean
parse_uint (const char *text, guint64 max, guint64 *out)
{
  return text != NULL && g_ascii_string_to_unsigned (text, 10, 0, max, out, NULL);
}

static int
cmd_messages (int argc, char **argv)
{
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) entries = NULL;
  guint64 limit = MESSAGES_DEFAULT_LIMIT;
  GVariantIter iter;
  GVariant *item;
  int code = 0;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--limit") == 0 && i + 1 < argc)
        {
          if (!parse_uint (argv[++i], G_MAXUINT32, &limit))
            return die (EXIT_USAGE, _("--limit needs a number (0 for all), not “%s”"), argv[i]);
        }
      else
        return die (EXIT_USAGE, _("usage: securemail messages [--limit N] [--json]"));
    }
  proxy = connect_proxy_or_die (&code);
  if (proxy == NULL)
    return code;
  if (!sm_dbus_proxy1_call_list_messages_sync (proxy, (guint) limit, &entries, NULL, &error))
    {
      g_dbus_error_strip_remote_error (error);
      return die (1, _("cannot read the recent messages: %s"), error->message);
    }
  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_array (b);
      g_variant_iter_init (&iter, entries);
      while ((item = g_variant_iter_next_value (&iter)) != NULL)
        {
          g_auto(GVariantDict) d = G_VARIANT_DICT_INIT (item);
          const char *strings[] = { "mailbox", "trust", "signer", "from", "subject" };
          const char *numbers[] = { "uidvalidity", "uid" };
          const char *flags[] = { "encrypted", "personal" };

          json_builder_begin_object (b);
          for (gsize k = 0; k < G_N_ELEMENTS (strings); k++)
            {
              json_builder_set_member_name (b, strings[k]);
              json_builder_add_string_value (b, dict_string (&d, strings[k]));
            }
          for (gsize k = 0; k < G_N_ELEMENTS (numbers); k++)
            {
              guint32 v = 0;
              g_variant_dict_lookup (&d, numbers[k], "u", &v);
              json_builder_set_member_name (b, numbers[k]);
              json_builder_add_int_value (b, v);
            }
          json_builder_set_member_name (b, "date");
          json_builder_add_int_value (b, dict_int64 (&d, "date"));
          for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
            {
              gboolean v = FALSE;
              g_variant_dict_lookup (&d, flags[k], "b", &v);
              json_builder_set_member_name (b, flags[k]);
              json_builder_add_boolean_value (b, v);
            }
          json_builder_end_object (b);
          g_variant_unref (item);
        }
      json_builder_end_array (b);
      print_json (b);
      return 0;
    }
  if (g_variant_n_children (entries) == 0)
    {
      g_print (_("No secure messages yet: they are listed once your mail program has opened them "
                 "through SecureMail.\n"));
      return 0;
    }
  g_variant_iter_init (&iter, entries);
  while ((item = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto(GVariantDict) d = G_VARIANT_DICT_INIT (item);
      gint64 date = dict_int64 (&d, "date");
      g_autofree char *when = date ? local_time (date) : g_strdup ("-");
      guint32 uid = 0;
      gboolean personal = FALSE;
      const char *signer = dict_string (&d, "signer");

      g_variant_dict_lookup (&d, "uid", "u", &uid);
      g_variant_dict_lookup (&d, "personal", "b", &personal);
      g_print ("%s  %s %u  %s%s\n", when, dict_string (&d, "mailbox"), uid,
               sm_dbus_trust_words (dict_string (&d, "trust")), personal ? _("  [PERSONAL]") : "");
      g_print (_("    From:     %s\n"), dict_string (&d, "from"));
      if (*signer)
        g_print (_("    Signer:   %s\n"), signer);
      g_print (_("    Subject:  %s\n"), dict_string (&d, "subject"));
      g_variant_unref (item);
    }
  return 0;
}

/* ---- securemail mark-personal MAILBOX UID ---------------------------------------- */

static int
cmd_mark_personal (int argc, char **argv)
{
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autoptr(GError) error = NULL;
  guint64 uid = 0;
  int code = 0;

  if (argc != 3)
    return die (EXIT_USAGE, _("usage: securemail mark-personal MAILBOX UID (both are in “securemail messages”)"));
  if (!parse_uint (argv[2], G_MAXUINT32, &uid) || uid == 0)
    return die (EXIT_USAGE, _("the UID must be a number above 0, not “%s” (see “securemail messages”)"), argv[2]);
  proxy = connect_proxy_or_die (&code);
  if (proxy == NULL)
    return code;
  if (!sm_dbus_proxy1_call_mark_personal_sync (proxy, argv[1], (guint) uid, NULL, &error))
    {
      g_dbus_error_strip_remote_error (error);
      return die (1, _("%s; the message was not marked"), error->message);
    }
  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "mailbox");
      json_builder_add_string_value (b, argv[1]);
      json_builder_set_member_name (b, "uid");
      json_builder_add_int_value (b, (gint64) uid);
      json_builder_set_member_name (b, "personal");
      json_builder_add_boolean_value (b, TRUE);
      json_builder_end_object (b);
      print_json (b);
    }
  else
    g_print (_("Message %s %u is marked [PERSONAL] at your provider.\n"), argv[1], (guint) uid);
  return 0;
}

/* ---- securemail lock | unlock [--stdin] [--pin] ------------------------------------ */

/* TokenPinNeeded as the daemon has it now: the proxy's cached copy is not
 * updated without a main loop, which this command does not run. */
static gboolean
token_pin_needed_now (SmDbusProxy1 *proxy)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;

  reply = g_dbus_connection_call_sync (g_dbus_proxy_get_connection (G_DBUS_PROXY (proxy)),
                                       g_dbus_proxy_get_name (G_DBUS_PROXY (proxy)),
                                       g_dbus_proxy_get_object_path (G_DBUS_PROXY (proxy)),
                                       "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", g_dbus_proxy_get_interface_name (G_DBUS_PROXY (proxy)),
                                                      "TokenPinNeeded"),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
  if (reply == NULL)
    return FALSE;
  g_variant_get (reply, "(v)", &value);
  return g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN) && g_variant_get_boolean (value);
}

static int
cmd_lock (int argc, char **argv)
{
  g_autoptr(SmDbusProxy1) proxy = NULL;
  g_autoptr(GError) error = NULL;
  gboolean unlock = strcmp (argv[0], "unlock") == 0;
  gboolean from_stdin = FALSE, want_pin = FALSE;
  char *passphrase = NULL;
  gboolean ok;
  int code = 0;

  for (int i = 1; i < argc; i++)
    {
      if (unlock && strcmp (argv[i], "--stdin") == 0)
        from_stdin = TRUE;
      else if (unlock && strcmp (argv[i], "--pin") == 0)
        want_pin = TRUE;
      else
        return die (EXIT_USAGE, unlock ? _("usage: securemail unlock [--stdin] [--pin]; the passphrase and "
                                           "the PIN are never taken from the command line")
                                       : _("usage: securemail lock"));
    }
  proxy = connect_proxy_or_die (&code);
  if (proxy == NULL)
    return code;
  if (unlock && (from_stdin || isatty (STDIN_FILENO)))
    {
      /* Enter alone (or an empty line on stdin) means: from the keyring. */
      passphrase = read_secret (_("Key passphrase or smartcard PIN (Enter alone: use the login keyring): "),
                                &error);
      if (passphrase == NULL && !g_error_matches (error, SM_ERROR, SM_ERROR_FAILED))
        return die (1, _("%s; SecureMail stays locked"), error->message);
      g_clear_error (&error);
    }
  if (unlock)
    ok = sm_dbus_proxy1_call_unlock_sync (proxy, passphrase ? passphrase : "", NULL, &error);
  else
    ok = sm_dbus_proxy1_call_lock_sync (proxy, NULL, &error);
  if (passphrase != NULL)
    {
      sm_wipe (passphrase, strlen (passphrase));
      g_free (passphrase);
    }
  if (!ok)
    {
      g_dbus_error_strip_remote_error (error);
      if (unlock)
        return die (1, _("%s (SecureMail stays locked; try again, or run “securemail doctor”)"), error->message);
      return die (1, _("SecureMail is locked, but: %s"), error->message);
    }
  if (want_pin)
    {
      /* Issue 7: the token PIN of the client certificate, held by the
       * daemon until the next lock rather than stored in the keyring. */
      char *pin = read_secret (_("PIN of the client certificate's smartcard or token: "), &error);

      if (pin == NULL || *pin == '\0')
        {
          g_free (pin);
          return die (1, _("no PIN given; SecureMail is unlocked, but logs in to the provider only with a PIN "
                           "stored by “securemail account set-pin”"));
        }
      ok = sm_dbus_proxy1_call_set_token_pin_sync (proxy, pin, NULL, &error);
      sm_wipe (pin, strlen (pin));
      g_free (pin);
      if (!ok)
        {
          g_dbus_error_strip_remote_error (error);
          return die (1, _("SecureMail is unlocked, but the PIN was not taken: %s"), error->message);
        }
    }
  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "locked");
      json_builder_add_boolean_value (b, !unlock);
      json_builder_end_object (b);
      print_json (b);
    }
  else if (unlock)
    {
      g_print (_("SecureMail is unlocked: your mail program can read and send secure mail.\n"));
      if (!want_pin && token_pin_needed_now (proxy))
        g_printerr (_("The smartcard or token of your client certificate needs its PIN to sign you in to "
                      "your provider: run “securemail unlock --pin”, or store it with “securemail account "
                      "set-pin”.\n"));
    }
  else
    g_print (_("SecureMail is locked: secure mail waits until you run “securemail unlock”.\n"));
  return 0;
}

/* `securemail receipts`: reads state.db directly (SPEC.md: works whether
 * the proxy runs or not; WAL lets it read while the proxy writes). */
static void
json_member_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value != NULL)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static int
cmd_receipts (int argc, char **argv)
{
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(SmReceipts) receipts = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = sm_receipts_default_path ();
  const char *last = NULL;
  int code = 0;

  if (argc > 1)
    return die (EXIT_USAGE, _("usage: securemail receipts [--json]"));
  config = load_config_or_die (&code);
  if (config == NULL)
    return code;
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      receipts = sm_receipts_new (path, NULL, &error);
      if (receipts == NULL)
        return die (1, _("%s (run `securemail doctor`)"), error->message);
      rows = sm_receipts_list (receipts, g_get_real_time () / G_USEC_PER_SEC, config->receipt_overdue_s, &error);
      if (rows == NULL)
        return die (1, _("%s (run `securemail doctor`)"), error->message);
    }
  else
    rows = g_ptr_array_new ();

  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();

      /* One object per sent message, its recipients inside. */
      json_builder_begin_array (b);
      for (guint i = 0; i < rows->len; i++)
        {
          const SmReceiptRow *r = rows->pdata[i];

          if (last == NULL || strcmp (last, r->message_id) != 0)
            {
              if (last != NULL)
                {
                  json_builder_end_array (b);
                  json_builder_end_object (b);
                }
              json_builder_begin_object (b);
              json_member_string (b, "message_id", r->message_id);
              json_builder_set_member_name (b, "sent");
              json_builder_add_int_value (b, r->sent);
              json_member_string (b, "micalg", r->micalg);
              json_builder_set_member_name (b, "recipients");
              json_builder_begin_array (b);
              last = r->message_id;
            }
          json_builder_begin_object (b);
          json_member_string (b, "recipient", r->recipient);
          json_member_string (b, "status", sm_receipt_status_to_string (r->status));
          json_builder_set_member_name (b, "time");
          json_builder_add_int_value (b, r->changed);
          json_member_string (b, "signer", r->signer);
          json_member_string (b, "reason", r->reason);
          json_builder_end_object (b);
        }
      if (last != NULL)
        {
          json_builder_end_array (b);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      print_json (b);
      return 0;
    }

  if (rows->len == 0)
    {
      g_print (_("No receipts were requested yet.\n"));
      return 0;
    }
  for (guint i = 0; i < rows->len; i++)
    {
      const SmReceiptRow *r = rows->pdata[i];
      g_autofree char *when = local_time (r->changed);

      if (last == NULL || strcmp (last, r->message_id) != 0)
        {
          g_autofree char *sent = local_time (r->sent);
          g_print (_("%s  sent %s\n"), r->message_id, sent);
          last = r->message_id;
        }
      g_print ("    %-32s  %-18s  %s\n", r->recipient, sm_receipt_status_to_string (r->status), when);
      if (r->status == SM_RECEIPT_DELIVERED_VERIFIED && r->signer != NULL)
        g_print (_("        signed by %s\n"), r->signer);
      else if (r->status == SM_RECEIPT_FAILED && r->reason != NULL)
        g_print (_("        why: %s\n"), r->reason);
      else if (r->status == SM_RECEIPT_OVERDUE)
        g_print (_("        no receipt yet; the recipient may not use SecureMail or has not opened it\n"));
    }
  return 0;
}

static const char *
result_word (SmCheckResult r)
{
  switch (r)
    {
    case SM_CHECK_PASS:
      return "pass";
    case SM_CHECK_FAIL:
      return "fail";
    default:
      return "skip";
    }
}

static int
cmd_doctor (void)
{
  g_autoptr(GPtrArray) checks = sm_doctor_run (opt_config);
  guint failed = 0;

  for (guint i = 0; i < checks->len; i++)
    if (((SmCheck *) checks->pdata[i])->result == SM_CHECK_FAIL)
      failed++;

  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "ok");
      json_builder_add_boolean_value (b, failed == 0);
      json_builder_set_member_name (b, "checks");
      json_builder_begin_array (b);
      for (guint i = 0; i < checks->len; i++)
        {
          SmCheck *c = checks->pdata[i];
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "number");
          json_builder_add_int_value (b, c->number);
          json_builder_set_member_name (b, "id");
          json_builder_add_string_value (b, c->id);
          json_builder_set_member_name (b, "title");
          json_builder_add_string_value (b, c->title);
          json_builder_set_member_name (b, "result");
          json_builder_add_string_value (b, result_word (c->result));
          json_builder_set_member_name (b, "detail");
          json_builder_add_string_value (b, c->detail ? c->detail : "");
          json_builder_set_member_name (b, "fix");
          if (c->fix)
            json_builder_add_string_value (b, c->fix);
          else
            json_builder_add_null_value (b);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      print_json (b);
    }
  else
    for (guint i = 0; i < checks->len; i++)
      {
        SmCheck *c = checks->pdata[i];
        const char *mark = c->result == SM_CHECK_PASS ? _("OK  ") : c->result == SM_CHECK_FAIL ? _("FAIL") : _("SKIP");
        g_print ("%u. [%s] %s\n", c->number, mark, c->title);
        if (c->detail)
          g_print ("        %s\n", c->detail);
        if (c->fix)
          g_print (_("        Fix: %s\n"), c->fix);
      }
  if (failed > 0)
    return die (1, g_dngettext (GETTEXT_PACKAGE, "%u check failed; follow its “Fix” line, then run doctor again",
                                "%u checks failed; follow their “Fix” lines, then run doctor again", failed),
                failed);
  return 0;
}

static int
cmd_client_config (int argc, char **argv)
{
  g_autoptr(SmConfig) config = NULL;
  const char *which = argc > 1 ? argv[1] : "generic";
  int code = 0;

  if (strcmp (which, "thunderbird") != 0 && strcmp (which, "outlook") != 0 && strcmp (which, "generic") != 0)
    return die (EXIT_USAGE, _("unknown client “%s”; use thunderbird, outlook or generic"), which);
  config = load_config_or_die (&code);
  if (config == NULL)
    return code;

  if (opt_json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "email");
      json_builder_add_string_value (b, config->address);
      json_builder_set_member_name (b, "username");
      json_builder_add_string_value (b, config->address);
      json_builder_set_member_name (b, "imap_host");
      json_builder_add_string_value (b, config->listen_imap.host);
      json_builder_set_member_name (b, "imap_port");
      json_builder_add_int_value (b, config->listen_imap.port);
      json_builder_set_member_name (b, "smtp_host");
      json_builder_add_string_value (b, config->listen_smtp.host);
      json_builder_set_member_name (b, "smtp_port");
      json_builder_add_int_value (b, config->listen_smtp.port);
      json_builder_set_member_name (b, "security");
      json_builder_add_string_value (b, "STARTTLS");
      json_builder_set_member_name (b, "authentication");
      json_builder_add_string_value (b, "normal password");
      json_builder_end_object (b);
      print_json (b);
      return 0;
    }

  if (strcmp (which, "thunderbird") == 0)
    {
      g_print (_("Thunderbird: Account Settings → Account Actions → Add Mail Account, then "
                 "“Configure manually”:\n"));
      g_print (_("  Your name:         %s\n"), config->display_name ? config->display_name : "");
      g_print (_("  Email address:     %s\n"), config->address);
      g_print (_("  Incoming:          IMAP, server %s, port %u, STARTTLS, Normal password\n"),
               config->listen_imap.host, config->listen_imap.port);
      g_print (_("  Outgoing:          SMTP, server %s, port %u, STARTTLS, Normal password\n"),
               config->listen_smtp.host, config->listen_smtp.port);
      g_print (_("  Username (both):   %s\n"), config->address);
      g_print (_("  Password:          the output of “securemail account local-password”\n"));
      g_print (_("Thunderbird asks to accept the certificate of %s once: accept it permanently; it "
                 "is SecureMail's own local certificate.\n"),
               config->listen_imap.host);
    }
  else if (strcmp (which, "outlook") == 0)
    {
      g_print (_("Outlook: File → Add Account → Advanced options → “Let me set up my account "
                 "manually” → IMAP:\n"));
      g_print (_("  Email address:     %s\n"), config->address);
      g_print (_("  Incoming mail:     server %s, port %u, encryption STARTTLS\n"), config->listen_imap.host,
               config->listen_imap.port);
      g_print (_("  Outgoing mail:     server %s, port %u, encryption STARTTLS\n"), config->listen_smtp.host,
               config->listen_smtp.port);
      g_print (_("  User name:         %s\n"), config->address);
      g_print (_("  Password:          the output of “securemail account local-password”\n"));
      g_print (_("  Outgoing server requires authentication: yes, same as incoming\n"));
    }
  else
    {
      g_print (_("IMAP server:   %s port %u (STARTTLS offered; plain is fine on this computer)\n"),
               config->listen_imap.host, config->listen_imap.port);
      g_print (_("SMTP server:   %s port %u (STARTTLS offered), authentication required\n"),
               config->listen_smtp.host, config->listen_smtp.port);
      g_print (_("User name:     %s\n"), config->address);
      g_print (_("Password:      the output of “securemail account local-password”\n"));
    }
  return 0;
}

/* ---- securemail support-report FILE -------------------------------------------- */

static int
cmd_support_report (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;

  if (argc != 2)
    return die (EXIT_USAGE, _("usage: securemail support-report FILE (the file to write, e.g. report.txt)"));
  /* Never overwrite: the name may be a file the user still needs. */
  if (g_file_test (argv[1], G_FILE_TEST_EXISTS))
    return die (EXIT_USAGE, _("%s already exists; give a new file name"), argv[1]);
  /* The key store reads the same settings. */
  if (opt_config != NULL)
    g_setenv ("SECUREMAIL_CONFIG", opt_config, TRUE);
  if (!sm_support_report_write (opt_config, "securemail support-report", argv[1], &error))
    return die (1, _("cannot write the report: %s"), error->message);
  g_print (_("Wrote the support report to %s. It holds no password, key or message content; "
             "read it, then send it to your helpdesk.\n"), argv[1]);
  return 0;
}

static void
usage (void)
{
  g_printerr (_("Usage: securemail [--config FILE] [--json] COMMAND\n"
                "  account set-password [--stdin]     store the provider password in the keyring\n"
                "  account set-pin [--stdin]          store the PIN of the client certificate's token\n"
                "  account local-password [--reset]   print the local client password\n"
                "  account oauth2-login [--device]    sign in to the provider (auth = oauth2): browser,\n"
                "                                     or a code to type on another device\n"
                "  status                             running? locked? provider reachable? queue size\n"
                "  doctor                             numbered checks, each with a fix\n"
                "  client-config thunderbird|outlook|generic\n"
                "                                     exact settings for a mail client\n"
                "  keys list|generate|import FILE|export FILE|backup FILE|restore FILE\n"
                "                                     your own keys; backup writes an encrypted bundle\n"
                "  certs list|import FILE|trust FILE  correspondents' certificates; trust anchors\n"
                "  queue [list|retry ID|delete ID]    the outbound queue\n"
                "  messages [--limit N]               recent messages and their trust status\n"
                "  receipts                           sent messages and their receipt status\n"
                "  mark-personal MAILBOX UID          mark a stored message [PERSONAL]\n"
                "  lock | unlock [--stdin]            the local unlock gate\n"
                "  support-report FILE                redacted diagnostics for the helpdesk\n"));
}

int
main (int argc, char **argv)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  const char *cmd;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* Before any thread: it sets environment variables (see there). */
  sm_gnupg_init ();

  /* Global options may stand anywhere: the helpdesk types them where it
   * remembers them. */
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0)
        opt_json = TRUE;
      else if (strcmp (argv[i], "--config") == 0 && i + 1 < argc)
        opt_config = argv[++i];
      else if (g_str_has_prefix (argv[i], "--config="))
        opt_config = argv[i] + 9;
      else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
        {
          usage ();
          return 0;
        }
      else
        g_ptr_array_add (args, argv[i]);
    }
  if (args->len == 0)
    {
      usage ();
      return EXIT_USAGE;
    }
  cmd = args->pdata[0];
  if (strcmp (cmd, "account") == 0)
    return cmd_account ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "status") == 0)
    return cmd_status ();
  if (strcmp (cmd, "doctor") == 0)
    return cmd_doctor ();
  if (strcmp (cmd, "client-config") == 0)
    return cmd_client_config ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "receipts") == 0)
    return cmd_receipts ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "queue") == 0)
    return cmd_queue ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "lock") == 0 || strcmp (cmd, "unlock") == 0)
    return cmd_lock ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "mark-personal") == 0)
    return cmd_mark_personal ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "support-report") == 0)
    return cmd_support_report ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "messages") == 0)
    return cmd_messages ((int) args->len, (char **) args->pdata);
  if (strcmp (cmd, "keys") == 0 || strcmp (cmd, "certs") == 0)
    {
      /* certstore's commands read the same settings and take --json. */
      if (opt_config != NULL)
        g_setenv ("SECUREMAIL_CONFIG", opt_config, TRUE);
      if (opt_json)
        g_ptr_array_add (args, (gpointer) "--json");
      g_ptr_array_add (args, NULL);
      if (cmd[0] == 'k')
        return sm_keys_cli_run ((int) args->len - 1, (char **) args->pdata);
      return sm_certs_cli_run ((int) args->len - 1, (char **) args->pdata);
    }
  usage ();
  return die (EXIT_USAGE, _("unknown command “%s”; see the list above"), cmd);
}
