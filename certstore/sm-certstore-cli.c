/* sm-certstore-cli.c: `securemail keys ...` and `securemail certs ...`. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "sm-backup.h"
#include "sm-certstore.h"
#include "sm-certstore-cli.h"
#include "sm-pkcs12.h"
#include "sm-trust-anchors.h"

/* Longest passphrase or recovery code line we read from stdin. */
#define SM_CLI_MAX_SECRET_LINE 1024

enum {
  SM_CLI_EXIT_OK = 0,
  SM_CLI_EXIT_FAILED = 1,
  SM_CLI_EXIT_USAGE = 2,
};

typedef struct {
  gboolean json;
  char *protocol;
  char *address;
  char *name;
  char *request;
  int days;
  GPtrArray *args;      /* positional arguments after the subcommand */
} CliOptions;

static void
cli_options_clear (CliOptions *o)
{
  g_free (o->protocol);
  g_free (o->address);
  g_free (o->name);
  g_free (o->request);
  g_clear_pointer (&o->args, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CliOptions, cli_options_clear)

/* One line on stderr, whatever the error text holds. */
static int
fail (const char *command,
      GError     *error)
{
  g_autofree char *line = g_strdup (error->message);

  g_strdelimit (line, "\n\r", ' ');
  g_printerr ("securemail %s: %s\n", command, line);
  return SM_CLI_EXIT_FAILED;
}

static int
usage (const char *command,
       const char *text)
{
  g_printerr ("securemail %s: %s\n", command, text);
  return SM_CLI_EXIT_USAGE;
}

static gboolean
parse_options (int          argc,
               char       **argv,
               CliOptions  *o,
               GError     **error)
{
  o->args = g_ptr_array_new ();
  for (int i = 2; i < argc; i++)
    {
      const char *a = argv[i];
      char **target = NULL;

      if (g_str_equal (a, "--json"))
        {
          o->json = TRUE;
          continue;
        }
      if (g_str_equal (a, "--protocol"))
        target = &o->protocol;
      else if (g_str_equal (a, "--address"))
        target = &o->address;
      else if (g_str_equal (a, "--name"))
        target = &o->name;
      else if (g_str_equal (a, "--request"))
        target = &o->request;
      else if (g_str_equal (a, "--days"))
        {
          if (i + 1 >= argc || (o->days = atoi (argv[i + 1])) <= 0)
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--days needs a positive number of days"));
              return FALSE;
            }
          i++;
          continue;
        }
      else if (a[0] == '-' && a[1] == '-')
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                       _("unknown option %s; see `securemail help`"), a);
          return FALSE;
        }
      else
        {
          g_ptr_array_add (o->args, argv[i]);
          continue;
        }

      if (i + 1 >= argc)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("%s needs a value"), a);
          return FALSE;
        }
      g_free (*target);
      *target = g_strdup (argv[++i]);
    }
  return TRUE;
}

/* ---- settings: account address, display name, protocol --------------------- */

static char *
config_path (void)
{
  const char *env = g_getenv ("SECUREMAIL_CONFIG");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  return g_build_filename (g_get_user_config_dir (), "securemail", "securemail.conf", NULL);
}

/* The policy wins over the user's file (SPEC.md, Files). */
static char *
setting (const char *group,
         const char *key)
{
  g_autoptr(GKeyFile) policy = g_key_file_new ();
  g_autoptr(GKeyFile) user = g_key_file_new ();
  g_autofree char *path = config_path ();
  char *value = NULL;

  if (g_key_file_load_from_file (policy, sm_policy_file_path (), G_KEY_FILE_NONE, NULL))
    value = g_key_file_get_string (policy, group, key, NULL);
  if (value == NULL && g_key_file_load_from_file (user, path, G_KEY_FILE_NONE, NULL))
    value = g_key_file_get_string (user, group, key, NULL);
  if (value != NULL)
    g_strstrip (value);
  if (value != NULL && *value == '\0')
    g_clear_pointer (&value, g_free);
  return value;
}

static gboolean
resolve_protocol (const char *option,
                  SmProtocol *protocol,
                  GError    **error)
{
  g_autofree char *configured = NULL;

  if (option != NULL)
    {
      if (!sm_protocol_from_string (option, protocol))
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("unknown protocol “%s”; use --protocol openpgp or --protocol smime"), option);
          return FALSE;
        }
      return TRUE;
    }
  configured = setting ("crypto", "protocol");
  if (configured == NULL)
    {
      /* SPEC.md's default for [crypto] protocol is smime, but a new user
       * without a CA gets a working identity at once with OpenPGP. */
      *protocol = SM_PROTOCOL_OPENPGP;
      return TRUE;
    }
  if (!sm_protocol_from_string (configured, protocol))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("[crypto] protocol = %s in the settings is not openpgp or smime; fix the setting"),
                   configured);
      return FALSE;
    }
  return TRUE;
}

/* ---- secrets from stdin or the terminal --------------------------------------- */

static SmSecret *
read_secret (const char *prompt)
{
  char buf[SM_CLI_MAX_SECRET_LINE];
  struct termios old_term, new_term;
  gboolean tty = isatty (STDIN_FILENO);
  gboolean echo_off = FALSE;
  SmSecret *secret;
  gsize len;

  if (tty)
    {
      g_printerr ("%s", prompt);
      if (tcgetattr (STDIN_FILENO, &old_term) == 0)
        {
          new_term = old_term;
          new_term.c_lflag &= ~(tcflag_t) ECHO;
          echo_off = tcsetattr (STDIN_FILENO, TCSAFLUSH, &new_term) == 0;
        }
    }
  if (fgets (buf, sizeof buf, stdin) == NULL)
    buf[0] = '\0';
  if (echo_off)
    {
      tcsetattr (STDIN_FILENO, TCSAFLUSH, &old_term);
      g_printerr ("\n");
    }
  len = strlen (buf);
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    buf[--len] = '\0';
  secret = sm_secret_dup (buf);
  explicit_bzero (buf, sizeof buf);
  return secret;
}

static GBytes *
read_file (const char *path,
           GError    **error)
{
  g_autoptr(GError) local = NULL;
  char *contents = NULL;
  gsize len;

  if (!g_file_get_contents (path, &contents, &len, &local))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_IO,
                   _("cannot read %s (%s); check the path"), path, local->message);
      return NULL;
    }
  return g_bytes_new_take (contents, len);
}

/* ---- output ---------------------------------------------------------------------- */

static void
json_string (GString    *out,
             const char *s)
{
  if (s == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  g_string_append_c (out, '"');
  for (const char *p = s; *p; p++)
    {
      guchar c = (guchar) *p;

      if (c == '"' || c == '\\')
        g_string_append_printf (out, "\\%c", c);
      else if (c < 0x20)
        g_string_append_printf (out, "\\u%04x", c);
      else
        g_string_append_c (out, (char) c);
    }
  g_string_append_c (out, '"');
}

static char *
format_date (gint64 t)
{
  g_autoptr(GDateTime) dt = NULL;

  if (t <= 0)
    return NULL;
  dt = g_date_time_new_from_unix_utc (t);
  return dt ? g_date_time_format (dt, "%Y-%m-%d") : NULL;
}

static char *
usages (const SmKeyInfo *info)
{
  g_autoptr(GPtrArray) u = g_ptr_array_new ();

  if (info->can_sign)
    g_ptr_array_add (u, "sign");
  if (info->can_encrypt)
    g_ptr_array_add (u, "encrypt");
  if (info->can_certify)
    g_ptr_array_add (u, "certify");
  g_ptr_array_add (u, NULL);
  return g_strjoinv (",", (char **) u->pdata);
}

static void
print_json (GPtrArray *infos)
{
  g_autoptr(GString) out = g_string_new ("[");
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  for (guint i = 0; i < infos->len; i++)
    {
      const SmKeyInfo *k = infos->pdata[i];
      g_autofree char *created = format_date (k->created);
      g_autofree char *expires = format_date (k->expires);
      g_autofree char *use = usages (k);
      g_auto(GStrv) use_list = g_strsplit (use, ",", -1);

      g_string_append (out, i ? ",\n {" : "\n {");
      g_string_append (out, "\"protocol\": ");
      json_string (out, sm_protocol_to_string (k->protocol));
      g_string_append (out, ", \"fingerprint\": ");
      json_string (out, k->fingerprint);
      g_string_append (out, ", \"user_id\": ");
      json_string (out, k->user_id);
      g_string_append (out, ", \"issuer\": ");
      json_string (out, k->issuer);
      g_string_append (out, ", \"addresses\": [");
      for (guint j = 0; k->addresses[j] != NULL; j++)
        {
          if (j > 0)
            g_string_append (out, ", ");
          json_string (out, k->addresses[j]);
        }
      g_string_append (out, "], \"usages\": [");
      for (guint j = 0; use_list[j] != NULL && *use_list[j]; j++)
        {
          if (j > 0)
            g_string_append (out, ", ");
          json_string (out, use_list[j]);
        }
      g_string_append (out, "], \"created\": ");
      json_string (out, created);
      g_string_append (out, ", \"expires\": ");
      json_string (out, expires);
      if (k->expires > 0)
        g_string_append_printf (out, ", \"days_left\": %d", sm_key_info_days_left (k, now));
      else
        g_string_append (out, ", \"days_left\": null");
      g_string_append (out, ", \"status\": ");
      json_string (out, sm_key_status_to_string (k->status));
      g_string_append (out, ", \"status_detail\": ");
      json_string (out, k->status_detail);
      if (k->protocol == SM_PROTOCOL_SMIME)
        {
          g_string_append (out, ", \"revocation\": ");
          json_string (out, sm_revocation_to_string (k->revocation));
        }
      g_string_append_printf (out, ", \"secret\": %s, \"anchor\": %s, \"admin_anchor\": %s, \"locked\": %s}",
                              k->secret ? "true" : "false",
                              k->is_anchor ? "true" : "false",
                              k->admin_anchor ? "true" : "false",
                              k->admin_anchor ? "true" : "false");
    }
  g_string_append (out, infos->len ? "\n]\n" : "]\n");
  g_print ("%s", out->str);
}

static void
print_text (GPtrArray  *infos,
            const char *empty_hint)
{
  if (infos->len == 0)
    {
      g_print ("%s\n", empty_hint);
      return;
    }
  for (guint i = 0; i < infos->len; i++)
    {
      const SmKeyInfo *k = infos->pdata[i];
      g_autofree char *expires = format_date (k->expires);
      g_autofree char *use = usages (k);
      g_autofree char *addresses = g_strjoinv (", ", k->addresses);

      g_print ("%-7s %s  %s\n", k->protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP",
               k->fingerprint, sm_key_status_to_string (k->status));
      g_print ("        %s\n", k->user_id ? k->user_id : "");
      if (*addresses)
        g_print (_("        addresses: %s\n"), addresses);
      g_print (_("        usage: %s; expires: %s\n"), *use ? use : "-", expires ? expires : _("never"));
      if (k->issuer != NULL && k->protocol == SM_PROTOCOL_SMIME)
        g_print (_("        issuer: %s\n"), k->issuer);
      if (k->is_anchor)
        g_print ("        %s\n", k->admin_anchor
                 ? _("trust anchor, set by your administrator (locked)")
                 : _("trust anchor, added by you"));
      if (k->status_detail != NULL)
        g_print ("        %s\n", k->status_detail);
    }
}

/* ---- keys ------------------------------------------------------------------------ */

static int
keys_generate (SmCertstore *store,
               CliOptions  *o)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = o->address ? g_strdup (o->address) : setting ("account", "address");
  g_autofree char *name = o->name ? g_strdup (o->name) : setting ("account", "display_name");
  SmProtocol protocol;

  if (!resolve_protocol (o->protocol, &protocol, &error))
    return fail ("keys generate", error);
  if (address == NULL || strchr (address, '@') == NULL)
    return usage ("keys generate",
                  _("no e-mail address: set [account] address in the settings or pass --address ADDR"));

  if (protocol == SM_PROTOCOL_OPENPGP)
    {
      g_autoptr(SmKeyInfo) info = sm_certstore_generate_openpgp (store, name, address, o->days, &error);
      g_autofree char *expires = NULL;

      if (info == NULL)
        return fail ("keys generate", error);
      expires = format_date (info->expires);
      g_print (_("Created OpenPGP key %s for %s (expires %s).\n"), info->fingerprint, address,
               expires ? expires : _("never"));
      g_print (_("Its passphrase is kept in your keyring. Make a backup now with `securemail keys backup FILE`.\n"));
    }
  else
    {
      g_autofree char *path = o->request ? g_strdup (o->request) : g_strdup_printf ("%s.csr", address);
      g_autoptr(GBytes) request = NULL;
      gsize len;
      const char *p;

      if (g_file_test (path, G_FILE_TEST_EXISTS))
        {
          g_autofree char *text = g_strdup_printf (_("%s already exists; choose another file with --request FILE"), path);
          return usage ("keys generate", text);
        }
      request = sm_certstore_generate_smime_request (store, name, address, NULL, &error);
      if (request == NULL)
        return fail ("keys generate", error);
      p = g_bytes_get_data (request, &len);
      if (!g_file_set_contents (path, p, (gssize) len, &error))
        return fail ("keys generate", error);
      g_print (_("Created an S/MIME key for %s and wrote its certificate request to %s.\n"), address, path);
      g_print (_("Send the request to your certificate authority (helpdesk), then import the issued certificate with `securemail keys import FILE`.\n"));
    }
  return SM_CLI_EXIT_OK;
}

/* Only a PKCS#12 file or an OpenPGP secret key has a password to ask for;
 * an issued certificate has none. */
static gboolean
needs_passphrase (GBytes *data)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (data, &len);
  int tag = -1;

  if (sm_pkcs12_sniff (data))
    return TRUE;
  /* RFC 4880 §4.2: tag 5 = secret key packet. */
  if (len > 0 && (p[0] & 0x80))
    tag = (p[0] & 0x40) ? (p[0] & 0x3f) : ((p[0] >> 2) & 0x0f);
  return tag == 5
         || g_strstr_len ((const char *) p, MIN (len, 65536), "PRIVATE KEY BLOCK") != NULL;
}

static int
keys_import (SmCertstore *store,
             const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = read_file (path, &error);
  g_autoptr(SmSecret) passphrase = NULL;
  g_autoptr(GPtrArray) infos = NULL;

  if (data == NULL)
    return fail ("keys import", error);
  if (needs_passphrase (data))
    passphrase = read_secret (_("Password of the key file (empty if none): "));
  infos = sm_certstore_import_own (store, data, passphrase, &error);
  if (infos == NULL)
    return fail ("keys import", error);
  for (guint i = 0; i < infos->len; i++)
    {
      const SmKeyInfo *k = infos->pdata[i];

      g_print (_("Imported your %s key %s (%s).\n"),
               k->protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", k->fingerprint,
               k->user_id ? k->user_id : "");
      if (k->status != SM_KEY_STATUS_VALID && k->status_detail != NULL)
        g_print (_("  Note: %s\n"), k->status_detail);
    }
  return SM_CLI_EXIT_OK;
}

static int
keys_export (SmCertstore *store,
             CliOptions  *o,
             const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = NULL;
  SmProtocol protocol = SM_PROTOCOL_OPENPGP;
  gsize len;
  const char *p;

  if (o->protocol != NULL)
    {
      if (!resolve_protocol (o->protocol, &protocol, &error))
        return fail ("keys export", error);
    }
  else
    {
      /* Whichever protocol we have keys for; the configured one if both. */
      g_autoptr(GPtrArray) own = sm_certstore_list_own_keys (store, &error);
      gboolean pgp = FALSE, cms = FALSE;

      if (own == NULL)
        return fail ("keys export", error);
      for (guint i = 0; i < own->len; i++)
        {
          if (((SmKeyInfo *) own->pdata[i])->protocol == SM_PROTOCOL_SMIME)
            cms = TRUE;
          else
            pgp = TRUE;
        }
      if (pgp && cms)
        {
          if (!resolve_protocol (NULL, &protocol, &error))
            return fail ("keys export", error);
        }
      else
        protocol = cms ? SM_PROTOCOL_SMIME : SM_PROTOCOL_OPENPGP;
    }

  data = sm_certstore_export_public (store, protocol, NULL, &error);
  if (data == NULL)
    return fail ("keys export", error);
  p = g_bytes_get_data (data, &len);
  if (g_str_equal (path, "-"))
    {
      fwrite (p, 1, len, stdout);
      return SM_CLI_EXIT_OK;
    }
  if (!g_file_set_contents (path, p, (gssize) len, &error))
    return fail ("keys export", error);
  g_print (_("Wrote your public %s key to %s; send it to your correspondents.\n"),
           protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", path);
  return SM_CLI_EXIT_OK;
}

static int
keys_backup (SmCertstore *store,
             const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecret) code = NULL;

  if (!sm_backup_write (store, path, &code, &error))
    return fail ("keys backup", error);
  g_print (_("Wrote the key backup to %s.\n"), path);
  g_print (_("Recovery code (shown only once; write it down and keep it apart from the file):\n"));
  g_print ("%s\n", code);
  g_print (_("You need the file and this code to restore with `securemail keys restore FILE`.\n"));
  return SM_CLI_EXIT_OK;
}

static int
keys_restore (SmCertstore *store,
              const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecret) code = NULL;
  g_autofree char *previous = NULL;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_autofree char *text = g_strdup_printf (_("%s is not a file; give the path of your key backup"), path);
      return usage ("keys restore", text);
    }
  code = read_secret (_("Recovery code (9 groups of 4 digits): "));
  if (!sm_backup_restore (store, path, code, &previous, &error))
    return fail ("keys restore", error);
  g_print (_("Restored your keys from %s.\n"), path);
  if (previous != NULL)
    g_print (_("The previous key store was kept in %s.\n"), previous);
  return SM_CLI_EXIT_OK;
}

static int
keys_unlock (SmCertstore *store)
{
  g_autoptr(GError) error = NULL;
  guint n = 0;

  if (!sm_certstore_unlock (store, NULL, &n, &error))
    return fail ("keys unlock", error);
  g_print (ngettext ("Unlocked %u key.\n", "Unlocked %u keys.\n", n), n);
  return SM_CLI_EXIT_OK;
}

static int
keys_list (SmCertstore *store,
           CliOptions  *o)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) infos = sm_certstore_list_own_keys (store, &error);

  if (infos == NULL)
    return fail ("keys list", error);
  if (o->json)
    print_json (infos);
  else
    print_text (infos, _("You have no keys yet; run `securemail keys generate` or `securemail keys import FILE`."));
  return SM_CLI_EXIT_OK;
}

int
sm_keys_cli_run (int    argc,
                 char **argv)
{
  static const char usage_line[] = N_("usage: securemail keys list|generate|import FILE|export FILE|backup FILE|restore FILE");
  g_auto(CliOptions) o = { 0, };
  g_autoptr(GError) error = NULL;
  g_autoptr(SmCertstore) store = NULL;
  const char *sub;
  guint need_args;

  if (argc < 2)
    return usage ("keys", _(usage_line));
  sub = argv[1];
  if (!parse_options (argc, argv, &o, &error))
    return usage ("keys", error->message);

  if (g_str_equal (sub, "list") || g_str_equal (sub, "generate") || g_str_equal (sub, "unlock"))
    need_args = 0;
  else if (g_str_equal (sub, "import") || g_str_equal (sub, "export") || g_str_equal (sub, "backup")
           || g_str_equal (sub, "restore"))
    need_args = 1;
  else
    return usage ("keys", _(usage_line));
  if (o.args->len != need_args)
    return usage ("keys", _(usage_line));

  store = sm_certstore_new (&error);
  if (store == NULL)
    return fail ("keys", error);

  if (g_str_equal (sub, "list"))
    return keys_list (store, &o);
  if (g_str_equal (sub, "generate"))
    return keys_generate (store, &o);
  if (g_str_equal (sub, "unlock"))
    return keys_unlock (store);
  if (g_str_equal (sub, "import"))
    return keys_import (store, o.args->pdata[0]);
  if (g_str_equal (sub, "export"))
    return keys_export (store, &o, o.args->pdata[0]);
  if (g_str_equal (sub, "backup"))
    return keys_backup (store, o.args->pdata[0]);
  return keys_restore (store, o.args->pdata[0]);
}

/* ---- certs ------------------------------------------------------------------------ */

static int
certs_import (SmCertstore *store,
              const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = read_file (path, &error);
  g_autoptr(GPtrArray) infos = NULL;
  g_autofree char *crl_issuer = NULL;

  if (data == NULL)
    return fail ("certs import", error);
  infos = sm_certstore_import_certs (store, data, &crl_issuer, &error);
  if (infos == NULL)
    return fail ("certs import", error);
  if (crl_issuer != NULL)
    g_print (_("Imported the revocation list (CRL) of %s.\n"), crl_issuer);
  for (guint i = 0; i < infos->len; i++)
    {
      const SmKeyInfo *k = infos->pdata[i];
      g_autofree char *addresses = g_strjoinv (", ", k->addresses);

      g_print (_("Imported %s %s %s (%s): %s\n"),
               k->protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", k->fingerprint,
               *addresses ? addresses : (k->user_id ? k->user_id : ""),
               sm_key_status_to_string (k->status),
               k->status_detail ? k->status_detail : _("ready to use"));
    }
  return SM_CLI_EXIT_OK;
}

static int
certs_trust (SmCertstore *store,
             const char  *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = read_file (path, &error);
  g_autoptr(SmKeyInfo) info = NULL;

  if (data == NULL)
    return fail ("certs trust", error);
  info = sm_certstore_trust_ca (store, data, &error);
  if (info == NULL)
    return fail ("certs trust", error);
  g_print (_("%s (%s) is now a trust anchor for S/MIME%s.\n"), info->user_id, info->fingerprint,
           info->admin_anchor ? _(" (already set by your administrator)") : "");
  return SM_CLI_EXIT_OK;
}

static int
certs_list (SmCertstore *store,
            CliOptions  *o)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) infos = sm_certstore_list_certs (store, &error);

  if (infos == NULL)
    return fail ("certs list", error);
  if (o->json)
    print_json (infos);
  else
    print_text (infos, _("No certificates yet; import one with `securemail certs import FILE`."));
  return SM_CLI_EXIT_OK;
}

int
sm_certs_cli_run (int    argc,
                  char **argv)
{
  static const char usage_line[] = N_("usage: securemail certs list|import FILE|trust FILE|untrust FINGERPRINT");
  g_auto(CliOptions) o = { 0, };
  g_autoptr(GError) error = NULL;
  g_autoptr(SmCertstore) store = NULL;
  const char *sub;

  if (argc < 2)
    return usage ("certs", _(usage_line));
  sub = argv[1];
  if (!parse_options (argc, argv, &o, &error))
    return usage ("certs", error->message);
  if (!(g_str_equal (sub, "list") && o.args->len == 0)
      && !((g_str_equal (sub, "import") || g_str_equal (sub, "trust") || g_str_equal (sub, "untrust"))
           && o.args->len == 1))
    return usage ("certs", _(usage_line));

  store = sm_certstore_new (&error);
  if (store == NULL)
    return fail ("certs", error);

  if (g_str_equal (sub, "list"))
    return certs_list (store, &o);
  if (g_str_equal (sub, "import"))
    return certs_import (store, o.args->pdata[0]);
  if (g_str_equal (sub, "trust"))
    return certs_trust (store, o.args->pdata[0]);
  if (!sm_certstore_untrust_ca (store, o.args->pdata[0], &error))
    return fail ("certs untrust", error);
  g_print (_("%s is no longer a trust anchor.\n"), (const char *) o.args->pdata[0]);
  return SM_CLI_EXIT_OK;
}
