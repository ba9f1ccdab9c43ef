/* sm-config.c: loading and validating securemail.conf and policy.conf. */
#include "config.h"

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <string.h>

#include "sm-config.h"
#include "sm-error.h"

#define SM_CONFIG_MAX_PORT 65535

typedef gboolean (*SmKeyParser) (SmConfig *config, const char *value, GError **error);

typedef struct {
  const char *group;
  const char *key;
  SmKeyParser parse;
  const char *default_value;   /* NULL = unset by default */
  gboolean required;
  gboolean policy_only;        /* only the administrator may set it */
} SmKeyInfo;

static gboolean
parse_bool (const char *value, gboolean *out)
{
  if (g_ascii_strcasecmp (value, "on") == 0 || g_ascii_strcasecmp (value, "true") == 0 ||
      g_ascii_strcasecmp (value, "yes") == 0 || g_strcmp0 (value, "1") == 0)
    {
      *out = TRUE;
      return TRUE;
    }
  if (g_ascii_strcasecmp (value, "off") == 0 || g_ascii_strcasecmp (value, "false") == 0 ||
      g_ascii_strcasecmp (value, "no") == 0 || g_strcmp0 (value, "0") == 0)
    {
      *out = FALSE;
      return TRUE;
    }
  return FALSE;
}

#define BOOL_ERROR(error) \
  g_set_error_literal (error, SM_ERROR, SM_ERROR_CONFIG, _("must be on or off"))

/* A deliberately strict addr-spec check (RFC 5322 §3.4.1 dot-atom only): the
 * address is also the local login name and is compared byte for byte with
 * From: headers, so exotic quoted forms are refused rather than guessed at. */
static gboolean
address_is_valid (const char *value)
{
  const char *at = strchr (value, '@');
  if (at == NULL || at == value || at[1] == '\0' || strchr (at + 1, '@') != NULL)
    return FALSE;
  for (const char *p = value; *p; p++)
    {
      guchar c = (guchar) *p;
      if (c <= ' ' || c >= 0x7f || strchr ("()<>[]:;,\\\"", c) != NULL)
        return FALSE;
    }
  if (value[0] == '.' || at[-1] == '.' || at[1] == '.' || g_str_has_suffix (value, ".") ||
      strstr (value, "..") != NULL)
    return FALSE;
  return TRUE;
}

static gboolean
parse_address_into (char **slot, const char *value, GError **error)
{
  if (!address_is_valid (value))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("“%s” is not an e-mail address like name@example.org"), value);
      return FALSE;
    }
  g_free (*slot);
  *slot = g_ascii_strdown (value, -1);
  return TRUE;
}

static gboolean
k_address (SmConfig *c, const char *v, GError **e)
{
  return parse_address_into (&c->address, v, e);
}

static gboolean
k_personal_address (SmConfig *c, const char *v, GError **e)
{
  if (*v == '\0')
    return TRUE;
  return parse_address_into (&c->personal_address, v, e);
}

static gboolean
k_display_name (SmConfig *c, const char *v, GError **e)
{
  /* Goes into headers: no line breaks that could inject a header. */
  if (strpbrk (v, "\r\n") != NULL)
    {
      g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG, _("must be a single line"));
      return FALSE;
    }
  g_free (c->display_name);
  c->display_name = *v ? g_strdup (v) : NULL;
  return TRUE;
}

/* scheme://host[:port] with nothing after it.  The host is a DNS name or an
 * IP literal; IPv6 literals go in brackets (RFC 3986 §3.2.2). */
static gboolean
parse_endpoint (SmEndpoint *ep, const char *value, const char *tls_scheme,
                const char *starttls_scheme, guint16 tls_port, guint16 starttls_port,
                GError **error)
{
  g_autofree char *scheme = g_uri_parse_scheme (value);
  g_autoptr(GUri) uri = NULL;
  gboolean implicit;
  gint port;

  if (scheme == NULL ||
      (g_ascii_strcasecmp (scheme, tls_scheme) != 0 && g_ascii_strcasecmp (scheme, starttls_scheme) != 0))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be %s://HOST[:PORT] (TLS) or %s://HOST[:PORT] (STARTTLS), not “%s”"),
                   tls_scheme, starttls_scheme, value);
      return FALSE;
    }
  implicit = g_ascii_strcasecmp (scheme, tls_scheme) == 0;
  uri = g_uri_parse (value, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0' ||
      g_uri_get_userinfo (uri) != NULL ||
      (*g_uri_get_path (uri) != '\0' && g_strcmp0 (g_uri_get_path (uri), "/") != 0) ||
      g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("“%s” must be just %s://HOST[:PORT], without a user, path or query"),
                   value, scheme);
      return FALSE;
    }
  port = g_uri_get_port (uri);
  if (port == -1)
    port = implicit ? tls_port : starttls_port;
  if (port <= 0 || port > SM_CONFIG_MAX_PORT)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("port must be 1 to 65535"));
      return FALSE;
    }
  g_free (ep->url);
  g_free (ep->host);
  ep->url = g_strdup (value);
  ep->host = g_ascii_strdown (g_uri_get_host (uri), -1);
  ep->port = (guint16) port;
  ep->implicit_tls = implicit;
  return TRUE;
}

static gboolean
k_upstream_imap (SmConfig *c, const char *v, GError **e)
{
  return parse_endpoint (&c->imap, v, "imaps", "imap", 993, 143, e);
}

static gboolean
k_upstream_smtp (SmConfig *c, const char *v, GError **e)
{
  return parse_endpoint (&c->smtp, v, "smtps", "smtp", 465, 587, e);
}

static gboolean
k_username (SmConfig *c, const char *v, GError **e)
{
  if (strpbrk (v, "\r\n") != NULL)
    {
      g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG, _("must be a single line"));
      return FALSE;
    }
  g_free (c->username);
  c->username = *v ? g_strdup (v) : NULL;
  return TRUE;
}

static gboolean
k_auth (SmConfig *c, const char *v, GError **e)
{
  if (g_strcmp0 (v, "password") == 0)
    c->auth = SM_AUTH_PASSWORD;
  else if (g_strcmp0 (v, "oauth2") == 0)
    c->auth = SM_AUTH_OAUTH2;
  else if (g_strcmp0 (v, "certificate") == 0)
    c->auth = SM_AUTH_CERTIFICATE;
  else
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be password, oauth2 or certificate, not “%s”"), v);
      return FALSE;
    }
  return TRUE;
}

static gboolean
k_ca_file (SmConfig *c, const char *v, GError **e)
{
  g_autoptr(GError) local = NULL;
  g_autolist(GTlsCertificate) certs = NULL;

  if (*v == '\0')
    return TRUE;
  certs = g_tls_certificate_list_new_from_file (v, &local);
  if (certs == NULL)
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("cannot read PEM certificates from “%s”: %s"), v,
                   local ? local->message : _("the file holds no certificate"));
      return FALSE;
    }
  g_free (c->ca_file);
  c->ca_file = g_strdup (v);
  return TRUE;
}

static gboolean
k_pin_sha256 (SmConfig *c, const char *v, GError **e)
{
  gsize len = 0;
  g_autofree guchar *raw = NULL;

  if (*v == '\0')
    return TRUE;
  /* g_base64_decode() never fails; check the alphabet ourselves. */
  for (const char *p = v; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '+' && *p != '/' && *p != '=')
      goto bad;
  raw = g_base64_decode (v, &len);
  if (len != 32)
    goto bad;
  g_clear_pointer (&c->pin_sha256, g_bytes_unref);
  c->pin_sha256 = g_bytes_new (raw, len);
  return TRUE;
bad:
  g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG,
                       _("must be the base64 SHA-256 of the server's public key (44 characters)"));
  return FALSE;
}

/* An [oauth2] endpoint URL: https://, or http:// to a loopback host (a
 * token in the clear must not leave the machine; RFC 6749 §3.1 and §3.2
 * require TLS, RFC 8252 §8.3 lets loopback alone go without).  No user
 * info (it would be a credential in the config) and no fragment. */
static gboolean
parse_oauth2_url (char **slot, const char *v, GError **e)
{
  g_autoptr(GUri) uri = NULL;
  const char *scheme, *host;

  if (*v == '\0')
    return TRUE;
  uri = g_uri_parse (v, G_URI_FLAGS_NONE, NULL);
  scheme = uri ? g_uri_get_scheme (uri) : NULL;
  host = uri ? g_uri_get_host (uri) : NULL;
  if (uri == NULL || host == NULL || *host == '\0' || g_uri_get_userinfo (uri) != NULL ||
      g_uri_get_fragment (uri) != NULL ||
      (g_ascii_strcasecmp (scheme, "https") != 0 && g_ascii_strcasecmp (scheme, "http") != 0))
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be an https:// URL without a user name or fragment, not “%s”"), v);
      return FALSE;
    }
  if (g_ascii_strcasecmp (scheme, "http") == 0 && !sm_config_host_is_loopback (host))
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("“%s” would send tokens unencrypted; use https:// (http:// is allowed for "
                     "127.0.0.1, ::1 and localhost only)"),
                   v);
      return FALSE;
    }
  g_free (*slot);
  *slot = g_strdup (v);
  return TRUE;
}

/* [upstream] client_certificate and client_key: a PKCS#11 URI is checked when
 * used (the token may not be inserted now); a file must exist, so that a
 * typo is found at start and not at the first login.  The file is read at
 * each connection, never here: it may need the PIN from the keyring. */
static gboolean
parse_client_credential (char **out, const char *v, GError **e)
{
  if (*v == '\0')
    return TRUE;
  if (g_str_has_prefix (v, "pkcs11:"))
    {
      if (strpbrk (v, " \t\r\n") != NULL)
        {
          g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG,
                               _("a PKCS#11 URI has no white space (see “p11tool --list-all-certs”)"));
          return FALSE;
        }
    }
  else if (!g_path_is_absolute (v) || !g_file_test (v, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be a pkcs11: URI or the absolute path of an existing PEM or PKCS#12 "
                     "file; “%s” is neither"),
                   v);
      return FALSE;
    }
  g_free (*out);
  *out = g_strdup (v);
  return TRUE;
}

static gboolean
k_oauth2_token_endpoint (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_url (&c->oauth2.token_endpoint, v, e);
}

static gboolean
k_oauth2_authorization_endpoint (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_url (&c->oauth2.authorization_endpoint, v, e);
}

static gboolean
k_oauth2_device_endpoint (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_url (&c->oauth2.device_authorization_endpoint, v, e);
}

/* client_id, client_secret and scope go into form bodies and URLs (where
 * they are escaped); refuse only what no provider issues: control
 * characters and line breaks. */
static gboolean
parse_oauth2_word (char **slot, const char *v, GError **e)
{
  for (const char *p = v; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      {
        g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG, _("must be a single line of printable text"));
        return FALSE;
      }
  g_free (*slot);
  *slot = *v ? g_strdup (v) : NULL;
  return TRUE;
}

static gboolean
k_oauth2_client_id (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_word (&c->oauth2.client_id, v, e);
}

static gboolean
k_oauth2_client_secret (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_word (&c->oauth2.client_secret, v, e);
}

static gboolean
k_oauth2_scope (SmConfig *c, const char *v, GError **e)
{
  return parse_oauth2_word (&c->oauth2.scope, v, e);
}

static gboolean
k_client_certificate (SmConfig *c, const char *v, GError **e)
{
  return parse_client_credential (&c->client_certificate, v, e);
}

static gboolean
k_client_key (SmConfig *c, const char *v, GError **e)
{
  return parse_client_credential (&c->client_key, v, e);
}

static gboolean
parse_listen (SmListenAddress *la, const char *v, GError **e)
{
  const char *colon = strrchr (v, ':');
  g_autofree char *host = NULL;
  guint64 port;
  char *end = NULL;

  if (colon == NULL || colon == v)
    goto bad;
  host = g_strndup (v, colon - v);
  if (host[0] == '[' && g_str_has_suffix (host, "]"))
    {
      char *inner = g_strndup (host + 1, strlen (host) - 2);
      g_free (host);
      host = inner;
    }
  if (g_strcmp0 (host, "localhost") != 0 && !g_hostname_is_ip_address (host))
    goto bad;
  port = g_ascii_strtoull (colon + 1, &end, 10);
  if (end == colon + 1 || *end != '\0' || port > SM_CONFIG_MAX_PORT)
    goto bad;
  g_free (la->host);
  la->host = g_steal_pointer (&host);
  la->port = (guint16) port;
  return TRUE;
bad:
  g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
               _("must be ADDRESS:PORT with a numeric address, like 127.0.0.1:1143, not “%s”"), v);
  return FALSE;
}

static gboolean
k_listen_imap (SmConfig *c, const char *v, GError **e)
{
  return parse_listen (&c->listen_imap, v, e);
}

static gboolean
k_listen_smtp (SmConfig *c, const char *v, GError **e)
{
  return parse_listen (&c->listen_smtp, v, e);
}

static gboolean
k_protocol (SmConfig *c, const char *v, GError **e)
{
  if (g_strcmp0 (v, "smime") == 0)
    c->protocol = SM_PROTOCOL_SMIME;
  else if (g_strcmp0 (v, "openpgp") == 0)
    c->protocol = SM_PROTOCOL_OPENPGP;
  else
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG, _("must be smime or openpgp, not “%s”"), v);
      return FALSE;
    }
  return TRUE;
}

static gboolean
k_encrypt (SmConfig *c, const char *v, GError **e)
{
  if (g_strcmp0 (v, "required") == 0)
    c->encrypt = SM_ENCRYPT_REQUIRED;
  else if (g_strcmp0 (v, "if-possible") == 0)
    c->encrypt = SM_ENCRYPT_IF_POSSIBLE;
  else if (g_strcmp0 (v, "never") == 0)
    c->encrypt = SM_ENCRYPT_NEVER;
  else
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be required, if-possible or never, not “%s”"), v);
      return FALSE;
    }
  return TRUE;
}

gboolean
sm_config_parse_duration (const char *text, gint64 *seconds)
{
  static const struct { char unit; gint64 factor; } units[] = {
    { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 24 * 3600 }, { 'w', 7 * 24 * 3600 },
  };
  guint64 n = 0;
  char *end = NULL;
  gint64 factor = 1;

  g_return_val_if_fail (text != NULL, FALSE);
  if (!g_ascii_isdigit (*text))
    return FALSE;
  n = g_ascii_strtoull (text, &end, 10);
  if (*end != '\0')
    {
      gsize i;

      for (i = 0; i < G_N_ELEMENTS (units) && units[i].unit != g_ascii_tolower (*end); i++)
        ;
      if (i == G_N_ELEMENTS (units) || end[1] != '\0')
        return FALSE;
      factor = units[i].factor;
    }
  if (n > (guint64) (G_MAXINT64 / factor))
    return FALSE;
  *seconds = (gint64) n * factor;
  return TRUE;
}

static gboolean
k_receipt_overdue (SmConfig *c, const char *v, GError **e)
{
  gint64 s = 0;

  if (!sm_config_parse_duration (v, &s) || s == 0 || s > SM_CONFIG_MAX_RECEIPT_OVERDUE_S)
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG,
                   _("must be a time such as 3d, 12h or 90m (at most a year), not “%s”"), v);
      return FALSE;
    }
  c->receipt_overdue_s = s;
  return TRUE;
}

#define BOOL_KEY(fn, field)                                   \
  static gboolean fn (SmConfig *c, const char *v, GError **e) \
  {                                                           \
    if (!parse_bool (v, &c->field))                           \
      {                                                       \
        BOOL_ERROR (e);                                       \
        return FALSE;                                         \
      }                                                       \
    return TRUE;                                              \
  }

BOOL_KEY (k_subject_tags, subject_tags)
BOOL_KEY (k_request_receipts, request_receipts)
BOOL_KEY (k_personal_enforce, personal_enforce)
BOOL_KEY (k_allow_remote_listen, allow_remote_listen)
BOOL_KEY (k_start_locked, start_locked)
BOOL_KEY (k_lock_on_screen_lock, lock_on_screen_lock)
BOOL_KEY (k_lock_on_suspend, lock_on_suspend)

static gboolean
k_auto_unlock (SmConfig *c, const char *v, GError **e)
{
  if (g_strcmp0 (v, "off") == 0)
    c->auto_unlock = SM_AUTO_UNLOCK_OFF;
  else if (g_strcmp0 (v, "login-keyring") == 0)
    c->auto_unlock = SM_AUTO_UNLOCK_LOGIN_KEYRING;
  else
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG, _("must be off or login-keyring, not “%s”"), v);
      return FALSE;
    }
  return TRUE;
}

static gboolean
k_idle_lock (SmConfig *c, const char *v, GError **e)
{
  guint64 minutes = 0;

  if (!g_ascii_string_to_unsigned (v, 10, 0, SM_CONFIG_MAX_IDLE_LOCK_MIN, &minutes, NULL))
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG, _("must be a number of minutes from 0 (never) to %u, not “%s”"),
                   (guint) SM_CONFIG_MAX_IDLE_LOCK_MIN, v);
      return FALSE;
    }
  c->idle_lock_minutes = (guint) minutes;
  return TRUE;
}

static gboolean
k_send_receipts (SmConfig *c, const char *v, GError **e)
{
  if (g_strcmp0 (v, "auto") == 0)
    c->send_receipts = TRUE;
  else if (g_strcmp0 (v, "never") == 0)
    c->send_receipts = FALSE;
  else
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG, _("must be auto or never, not “%s”"), v);
      return FALSE;
    }
  return TRUE;
}

static gboolean
k_allowed_upstreams (SmConfig *c, const char *v, GError **e)
{
  g_auto(GStrv) parts = g_strsplit_set (v, ", ;", -1);
  g_autoptr(GPtrArray) globs = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; parts[i]; i++)
    if (*parts[i])
      g_ptr_array_add (globs, g_ascii_strdown (parts[i], -1));
  g_ptr_array_add (globs, NULL);
  g_strfreev (c->allowed_upstreams);
  c->allowed_upstreams = (char **) g_ptr_array_free (g_steal_pointer (&globs), FALSE);
  return TRUE;
}

static gboolean
k_personal_tag (SmConfig *c, const char *v, GError **e)
{
  if (*v == '\0' || strpbrk (v, "\r\n") != NULL)
    {
      g_set_error_literal (e, SM_ERROR, SM_ERROR_CONFIG, _("must be a non-empty single line"));
      return FALSE;
    }
  g_free (c->personal_tag);
  c->personal_tag = g_strdup (v);
  return TRUE;
}

static gboolean
k_trust_anchors_dir (SmConfig *c, const char *v, GError **e)
{
  g_free (c->trust_anchors_dir);
  c->trust_anchors_dir = *v ? g_strdup (v) : NULL;
  return TRUE;
}

static gboolean
k_contact_email (SmConfig *c, const char *v, GError **e)
{
  if (*v && !address_is_valid (v))
    {
      g_set_error (e, SM_ERROR, SM_ERROR_CONFIG, _("“%s” is not an e-mail address"), v);
      return FALSE;
    }
  g_free (c->contact_email);
  c->contact_email = *v ? g_strdup (v) : NULL;
  return TRUE;
}

static gboolean
k_contact_phone (SmConfig *c, const char *v, GError **e)
{
  g_free (c->contact_phone);
  c->contact_phone = *v ? g_strdup (v) : NULL;
  return TRUE;
}

static const SmKeyInfo keys[] = {
  { "account", "address", k_address, NULL, TRUE, FALSE },
  { "account", "personal_address", k_personal_address, NULL, FALSE, FALSE },
  { "account", "display_name", k_display_name, NULL, FALSE, FALSE },
  { "upstream", "imap", k_upstream_imap, NULL, TRUE, FALSE },
  { "upstream", "smtp", k_upstream_smtp, NULL, TRUE, FALSE },
  { "upstream", "username", k_username, NULL, FALSE, FALSE },
  { "upstream", "auth", k_auth, "password", FALSE, FALSE },
  { "upstream", "ca_file", k_ca_file, NULL, FALSE, FALSE },
  { "upstream", "pin_sha256", k_pin_sha256, NULL, FALSE, FALSE },
  { "oauth2", "token_endpoint", k_oauth2_token_endpoint, NULL, FALSE, FALSE },
  { "oauth2", "authorization_endpoint", k_oauth2_authorization_endpoint, NULL, FALSE, FALSE },
  { "oauth2", "device_authorization_endpoint", k_oauth2_device_endpoint, NULL, FALSE, FALSE },
  { "oauth2", "client_id", k_oauth2_client_id, NULL, FALSE, FALSE },
  { "oauth2", "client_secret", k_oauth2_client_secret, NULL, FALSE, FALSE },
  { "oauth2", "scope", k_oauth2_scope, NULL, FALSE, FALSE },
  { "upstream", "client_certificate", k_client_certificate, NULL, FALSE, FALSE },
  { "upstream", "client_key", k_client_key, NULL, FALSE, FALSE },
  { "listen", "imap", k_listen_imap, "127.0.0.1:1143", FALSE, FALSE },
  { "listen", "smtp", k_listen_smtp, "127.0.0.1:1025", FALSE, FALSE },
  { "crypto", "protocol", k_protocol, "smime", FALSE, FALSE },
  { "crypto", "encrypt", k_encrypt, "if-possible", FALSE, FALSE },
  { "crypto", "subject_tags", k_subject_tags, "on", FALSE, FALSE },
  { "crypto", "request_receipts", k_request_receipts, "on", FALSE, FALSE },
  { "crypto", "send_receipts", k_send_receipts, "auto", FALSE, FALSE },
  { "crypto", "receipt_overdue", k_receipt_overdue, SM_CONFIG_DEFAULT_RECEIPT_OVERDUE, FALSE, FALSE },
  { "policy", "allowed_upstreams", k_allowed_upstreams, "", FALSE, FALSE },
  { "policy", "personal_tag", k_personal_tag, "[PERSONAL]", FALSE, FALSE },
  { "policy", "personal_enforce", k_personal_enforce, "on", FALSE, FALSE },
  { "policy", "allow_remote_listen", k_allow_remote_listen, "off", FALSE, TRUE },
  { "policy", "trust_anchors_dir", k_trust_anchors_dir, NULL, FALSE, TRUE },
  /* Before start_locked: its default follows auto_unlock (see
   * check_start_locked()). */
  { "security", "auto_unlock", k_auto_unlock, "off", FALSE, TRUE },
  { "security", "start_locked", k_start_locked, NULL, FALSE, FALSE },
  { "security", "idle_lock", k_idle_lock, G_STRINGIFY (SM_CONFIG_DEFAULT_IDLE_LOCK_MIN), FALSE, FALSE },
  { "security", "lock_on_screen_lock", k_lock_on_screen_lock, "on", FALSE, FALSE },
  { "security", "lock_on_suspend", k_lock_on_suspend, "on", FALSE, FALSE },
  { "admin", "contact_email", k_contact_email, NULL, FALSE, FALSE },
  { "admin", "contact_phone", k_contact_phone, NULL, FALSE, FALSE },
};

static const SmKeyInfo *
find_key (const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    if (g_strcmp0 (keys[i].group, group) == 0 && g_strcmp0 (keys[i].key, key) == 0)
      return &keys[i];
  return NULL;
}

/* Every group and key in @kf must be known: a misspelt key silently ignored
 * is a setting the user believes in but does not have. */
static gboolean
check_known_keys (GKeyFile *kf, const char *file, gboolean is_policy, GError **error)
{
  g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (guint i = 0; groups[i]; i++)
    {
      g_auto(GStrv) names = g_key_file_get_keys (kf, groups[i], NULL, NULL);
      for (guint j = 0; names && names[j]; j++)
        {
          const SmKeyInfo *info = find_key (groups[i], names[j]);
          if (info == NULL)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("%s: [%s] %s: unknown key"),
                           file, groups[i], names[j]);
              return FALSE;
            }
          if (info->policy_only && !is_policy)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                           _("%s: [%s] %s: only the administrator's policy file may set this key"),
                           file, groups[i], names[j]);
              return FALSE;
            }
        }
    }
  return TRUE;
}

/* [upstream] auth = oauth2 needs a token endpoint and a client id; every
 * [oauth2] endpoint host is one the proxy connects to, so the administrator's
 * allowed_upstreams applies to it as to the mail hosts (one allow-list for
 * everything the proxy reaches). */
static gboolean
check_oauth2 (const SmConfig *config, const char *user_name, GError **error)
{
  const char *urls[] = { config->oauth2.token_endpoint, config->oauth2.authorization_endpoint,
                         config->oauth2.device_authorization_endpoint };
  const char *names[] = { "token_endpoint", "authorization_endpoint", "device_authorization_endpoint" };

  if (config->oauth2.token_endpoint == NULL || config->oauth2.client_id == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [oauth2] %s: missing; auth = oauth2 needs token_endpoint and client_id "
                     "(ask your provider or helpdesk)"),
                   user_name, config->oauth2.token_endpoint == NULL ? "token_endpoint" : "client_id");
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (urls); i++)
    {
      g_autoptr(GUri) uri = urls[i] ? g_uri_parse (urls[i], G_URI_FLAGS_NONE, NULL) : NULL;
      if (uri != NULL && !sm_config_check_upstream_allowed (config, g_uri_get_host (uri), NULL))
        {
          g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                       _("%s: [oauth2] %s: host %s is not in the policy's allowed_upstreams"),
                       user_name, names[i], g_uri_get_host (uri));
          return FALSE;
        }
    }
  return TRUE;
}

/* Issue 7: the proxy starts locked unless the administrator's policy allows
 * auto-unlock with the login keyring.  So start_locked defaults to on, or to
 * off where [security] auto_unlock = login-keyring; an explicit off anywhere
 * else would be a setting that is not honoured, and is refused instead. */
static gboolean
check_start_locked (SmConfig *config, GKeyFile *user, const char *user_name, GKeyFile *policy,
                    const char *policy_name, GError **error)
{
  gboolean in_policy = g_key_file_has_key (policy, "security", "start_locked", NULL);

  if (!in_policy && !g_key_file_has_key (user, "security", "start_locked", NULL))
    {
      config->start_locked = config->auto_unlock != SM_AUTO_UNLOCK_LOGIN_KEYRING;
      return TRUE;
    }
  if (!config->start_locked && config->auto_unlock != SM_AUTO_UNLOCK_LOGIN_KEYRING)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [security] start_locked: off needs the administrator's permission "
                     "([security] auto_unlock = login-keyring in %s); remove the line to start locked"),
                   in_policy ? policy_name : user_name, policy_name);
      return FALSE;
    }
  return TRUE;
}

static SmConfig *
config_from_keyfiles (GKeyFile *user, const char *user_name, GKeyFile *policy,
                      const char *policy_name, GError **error)
{
  g_autoptr(SmConfig) config = g_new0 (SmConfig, 1);

  config->locked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (!check_known_keys (user, user_name, FALSE, error) ||
      !check_known_keys (policy, policy_name, TRUE, error))
    return NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      const SmKeyInfo *info = &keys[i];
      g_autofree char *value = NULL;
      g_autoptr(GError) local = NULL;
      const char *from = NULL;

      if (g_key_file_has_key (policy, info->group, info->key, NULL))
        {
          value = g_key_file_get_string (policy, info->group, info->key, &local);
          from = policy_name;
          g_hash_table_add (config->locked, g_strdup_printf ("%s.%s", info->group, info->key));
        }
      else if (g_key_file_has_key (user, info->group, info->key, NULL))
        {
          value = g_key_file_get_string (user, info->group, info->key, &local);
          from = user_name;
        }
      else if (info->default_value != NULL)
        {
          value = g_strdup (info->default_value);
          from = "default";
        }

      if (local != NULL)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, "%s: [%s] %s: %s", from,
                       info->group, info->key, local->message);
          return NULL;
        }
      if (value != NULL)
        {
          /* SPEC.md writes "key = value   # comment"; GKeyFile only knows
           * whole-line comments.  A '#' after white space starts one (GKeyFile
           * already removed the white space before a value). */
          for (char *p = value; *p; p++)
            if (*p == '#' && (p == value || p[-1] == ' ' || p[-1] == '\t'))
              {
                *p = '\0';
                break;
              }
          g_strstrip (value);
        }
      if (value == NULL || (*value == '\0' && info->required))
        {
          if (info->required)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("%s: [%s] %s: missing; it is required"),
                           user_name, info->group, info->key);
              return NULL;
            }
          continue;
        }
      if (!info->parse (config, value, &local))
        {
          g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, "%s: [%s] %s: %s", from,
                       info->group, info->key, local->message);
          return NULL;
        }
    }

  if (config->username == NULL)
    config->username = g_strdup (config->address);
  if (!check_start_locked (config, user, user_name, policy, policy_name, error))
    return NULL;

  /* Listeners are for this desktop's mail client only (SPEC.md "Local
   * clients"), unless the administrator decided otherwise. */
  if (!config->allow_remote_listen)
    {
      const SmListenAddress *las[] = { &config->listen_imap, &config->listen_smtp };
      const char *names[] = { "imap", "smtp" };
      for (guint i = 0; i < G_N_ELEMENTS (las); i++)
        {
          if (!sm_config_host_is_loopback (las[i]->host))
            {
              g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                           _("%s: [listen] %s: must be a loopback address such as 127.0.0.1 "
                             "(the policy does not allow remote listeners)"),
                           user_name, names[i]);
              return NULL;
            }
        }
    }

  if (!sm_config_check_upstream_allowed (config, config->imap.host, NULL))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [upstream] imap: host %s is not in the policy's allowed_upstreams"),
                   user_name, config->imap.host);
      return NULL;
    }
  if (!sm_config_check_upstream_allowed (config, config->smtp.host, NULL))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [upstream] smtp: host %s is not in the policy's allowed_upstreams"),
                   user_name, config->smtp.host);
      return NULL;
    }
  if (config->auth == SM_AUTH_OAUTH2 && !check_oauth2 (config, user_name, error))
    return NULL;
  if (config->auth == SM_AUTH_CERTIFICATE && config->client_certificate == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [upstream] client_certificate: missing; auth = certificate needs the "
                     "certificate your provider issued (a pkcs11: URI or a file)"),
                   user_name);
      return NULL;
    }
  if (config->client_key != NULL && config->client_certificate == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG,
                   _("%s: [upstream] client_key: set without client_certificate"), user_name);
      return NULL;
    }
  return g_steal_pointer (&config);
}

static gboolean
load_keyfile (GKeyFile *kf, const char *path, const char *data, gboolean missing_ok,
              GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;

  if (data == NULL && path != NULL)
    {
      if (!g_file_get_contents (path, &contents, &len, &local))
        {
          if (missing_ok && g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return TRUE;
          g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, "%s: %s", path, local->message);
          return FALSE;
        }
      if (len > SM_CONFIG_MAX_FILE_SIZE)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("%s: too large to be a config file"), path);
          return FALSE;
        }
      data = contents;
    }
  if (data == NULL)
    return TRUE;
  if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, "%s: %s", path ? path : "config", local->message);
      return FALSE;
    }
  return TRUE;
}

SmConfig *
sm_config_load_data (const char *user_data, const char *policy_data, GError **error)
{
  g_autoptr(GKeyFile) user = g_key_file_new ();
  g_autoptr(GKeyFile) policy = g_key_file_new ();

  if (!load_keyfile (user, NULL, user_data ? user_data : "", FALSE, error) ||
      !load_keyfile (policy, NULL, policy_data ? policy_data : "", FALSE, error))
    return NULL;
  return config_from_keyfiles (user, "securemail.conf", policy, "policy.conf", error);
}

SmConfig *
sm_config_load (const char *path, GError **error)
{
  g_autofree char *user_path = sm_config_default_path (path);
  const char *policy_path = sm_config_policy_path ();
  g_autoptr(GKeyFile) user = g_key_file_new ();
  g_autoptr(GKeyFile) policy = g_key_file_new ();
  SmConfig *config;

  if (!load_keyfile (user, user_path, NULL, FALSE, error) ||
      !load_keyfile (policy, policy_path, NULL, TRUE, error))
    return NULL;
  config = config_from_keyfiles (user, user_path, policy, policy_path, error);
  if (config != NULL)
    {
      config->path = g_steal_pointer (&user_path);
      config->policy_path = g_strdup (policy_path);
    }
  return config;
}

char *
sm_config_default_path (const char *override)
{
  const char *env = g_getenv ("SECUREMAIL_CONFIG");

  if (override != NULL && *override)
    return g_strdup (override);
  if (env != NULL && *env)
    return g_strdup (env);
  return g_build_filename (g_get_user_config_dir (), "securemail", "securemail.conf", NULL);
}

const char *
sm_config_policy_path (void)
{
  const char *env = g_getenv ("SECUREMAIL_POLICY");
  return (env != NULL && *env) ? env : SM_CONFIG_DEFAULT_POLICY_PATH;
}

char *
sm_config_data_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "securemail", NULL);
}

gboolean
sm_config_is_locked (const SmConfig *config, const char *group, const char *key)
{
  g_autofree char *name = g_strdup_printf ("%s.%s", group, key);
  return g_hash_table_contains (config->locked, name);
}

gboolean
sm_config_check_upstream_allowed (const SmConfig *config, const char *host, GError **error)
{
  g_autofree char *lower = g_ascii_strdown (host, -1);

  if (config->allowed_upstreams == NULL || config->allowed_upstreams[0] == NULL)
    return TRUE;
  for (guint i = 0; config->allowed_upstreams[i]; i++)
    if (g_pattern_match_simple (config->allowed_upstreams[i], lower))
      return TRUE;
  g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
               _("The administrator's policy does not allow connecting to %s"), host);
  return FALSE;
}

gboolean
sm_config_host_is_loopback (const char *host)
{
  g_autoptr(GInetAddress) addr = NULL;
  g_autofree char *bare = NULL;

  g_return_val_if_fail (host != NULL, FALSE);
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;
  /* GUri keeps the brackets of an IPv6 literal off; accept both forms. */
  bare = (host[0] == '[' && g_str_has_suffix (host, "]")) ? g_strndup (host + 1, strlen (host) - 2)
                                                         : g_strdup (host);
  addr = g_inet_address_new_from_string (bare);
  return addr != NULL && g_inet_address_get_is_loopback (addr);
}

char *
sm_endpoint_to_string (const SmEndpoint *endpoint)
{
  if (strchr (endpoint->host, ':') != NULL)
    return g_strdup_printf ("[%s]:%u", endpoint->host, endpoint->port);
  return g_strdup_printf ("%s:%u", endpoint->host, endpoint->port);
}

static void
endpoint_clear (SmEndpoint *ep)
{
  g_clear_pointer (&ep->url, g_free);
  g_clear_pointer (&ep->host, g_free);
}

void
sm_config_free (SmConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->path);
  g_free (config->policy_path);
  g_free (config->address);
  g_free (config->personal_address);
  g_free (config->display_name);
  endpoint_clear (&config->imap);
  endpoint_clear (&config->smtp);
  g_free (config->username);
  g_free (config->ca_file);
  g_clear_pointer (&config->pin_sha256, g_bytes_unref);
  g_free (config->oauth2.token_endpoint);
  g_free (config->oauth2.authorization_endpoint);
  g_free (config->oauth2.device_authorization_endpoint);
  g_free (config->oauth2.client_id);
  g_free (config->oauth2.client_secret);
  g_free (config->oauth2.scope);
  g_free (config->client_certificate);
  g_free (config->client_key);
  g_free (config->listen_imap.host);
  g_free (config->listen_smtp.host);
  g_strfreev (config->allowed_upstreams);
  g_free (config->personal_tag);
  g_free (config->trust_anchors_dir);
  g_free (config->contact_email);
  g_free (config->contact_phone);
  g_clear_pointer (&config->locked, g_hash_table_unref);
  g_free (config);
}
