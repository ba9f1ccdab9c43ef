/* sm-autoconfig.c: provider settings from autoconfig documents and SRV. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-autoconfig.h"
#include "sm-error.h"

/* Longest host name DNS allows (RFC 1035 §2.3.4, in text form). */
#define MAX_HOSTNAME_LEN 253

struct _SmAutoconfig {
  GObject parent_instance;
  GStrv templates;
  GTlsDatabase *database;
  GResolver *resolver;
};

G_DEFINE_FINAL_TYPE (SmAutoconfig, sm_autoconfig, G_TYPE_OBJECT)

void
sm_provider_settings_free (SmProviderSettings *settings)
{
  if (settings == NULL)
    return;
  g_free (settings->imap_url);
  g_free (settings->smtp_url);
  g_free (settings->username);
  g_free (settings->source);
  g_free (settings->oauth2_authorization_endpoint);
  g_free (settings->oauth2_token_endpoint);
  g_free (settings->oauth2_scope);
  g_free (settings);
}

/* ---- the document --------------------------------------------------------- */

typedef enum { SERVER_NONE, SERVER_INCOMING, SERVER_OUTGOING } ServerKind;

typedef struct {
  const char *address;
  gboolean root_seen;
  ServerKind kind;          /* inside an incomingServer/outgoingServer */
  char *type;               /* its type attribute: "imap", "pop3", "smtp" */
  GString *hostname;
  GString *port;
  GString *socket_type;
  GString *username;
  GString *authentication;  /* the server's first <authentication> */
  gboolean in_oauth2;       /* inside <oAuth2> */
  GString *auth_url;
  GString *token_url;
  GString *scope;
  GString *current;         /* the field being read, or NULL */
  SmProviderSettings *found;
} ParseState;

static gboolean
valid_hostname (const char *host)
{
  gsize len = strlen (host);

  if (len == 0 || len > MAX_HOSTNAME_LEN || host[0] == '-' || host[0] == '.')
    return FALSE;
  for (const char *p = host; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '.')
      return FALSE;
  return TRUE;
}

/* %EMAILADDRESS%, %EMAILLOCALPART%, %EMAILDOMAIN% (the placeholders of the
 * Thunderbird autoconfig format) in @text. */
static char *
fill_placeholders (const char *text, const char *address)
{
  const char *at = strrchr (address, '@');
  g_autofree char *local = g_strndup (address, at ? (gsize) (at - address) : strlen (address));
  const char *domain = at ? at + 1 : "";
  g_autoptr(GString) s = g_string_new (text);

  g_string_replace (s, "%EMAILADDRESS%", address, 0);
  g_string_replace (s, "%EMAILLOCALPART%", local, 0);
  g_string_replace (s, "%EMAILDOMAIN%", domain, 0);
  return g_strstrip (g_string_free (g_steal_pointer (&s), FALSE));
}

/* "imaps://host:993" for a usable server, NULL for one without TLS or with
 * a bad host or port. */
static char *
server_url (ParseState *st, const char *tls_scheme, const char *starttls_scheme)
{
  g_autofree char *host = fill_placeholders (st->hostname->str, st->address);
  g_autofree char *socket_type = g_strstrip (g_strdup (st->socket_type->str));
  guint64 port = 0;

  if (!valid_hostname (host))
    return NULL;
  if (!g_ascii_string_to_unsigned (g_strstrip (st->port->str), 10, 1, G_MAXUINT16, &port, NULL))
    return NULL;
  if (g_ascii_strcasecmp (socket_type, "SSL") == 0)
    return g_strdup_printf ("%s://%s:%u", tls_scheme, host, (guint) port);
  if (g_ascii_strcasecmp (socket_type, "STARTTLS") == 0)
    return g_strdup_printf ("%s://%s:%u", starttls_scheme, host, (guint) port);
  return NULL;   /* "plain": never */
}

static void
on_start (GMarkupParseContext *ctx, const char *name, const char **attr_names, const char **attr_values,
          gpointer user_data, GError **error)
{
  ParseState *st = user_data;

  if (!st->root_seen)
    {
      if (strcmp (name, "clientConfig") != 0)
        g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("not an autoconfig document (it starts with <%s>)"), name);
      st->root_seen = TRUE;
      return;
    }
  if (st->kind == SERVER_NONE && (strcmp (name, "incomingServer") == 0 || strcmp (name, "outgoingServer") == 0))
    {
      st->kind = name[0] == 'i' ? SERVER_INCOMING : SERVER_OUTGOING;
      g_clear_pointer (&st->type, g_free);
      for (guint i = 0; attr_names[i]; i++)
        if (strcmp (attr_names[i], "type") == 0)
          st->type = g_strdup (attr_values[i]);
      g_string_truncate (st->hostname, 0);
      g_string_truncate (st->port, 0);
      g_string_truncate (st->socket_type, 0);
      g_string_truncate (st->username, 0);
      g_string_truncate (st->authentication, 0);
      return;
    }
  if (st->kind == SERVER_NONE && strcmp (name, "oAuth2") == 0)
    {
      st->in_oauth2 = TRUE;
      return;
    }
  if (st->in_oauth2)
    {
      if (strcmp (name, "authURL") == 0)
        st->current = st->auth_url;
      else if (strcmp (name, "tokenURL") == 0)
        st->current = st->token_url;
      else if (strcmp (name, "scope") == 0)
        st->current = st->scope;
      return;
    }
  if (st->kind == SERVER_NONE)
    return;
  if (strcmp (name, "authentication") == 0 && st->authentication->len == 0)
    st->current = st->authentication;
  else if (strcmp (name, "hostname") == 0)
    st->current = st->hostname;
  else if (strcmp (name, "port") == 0)
    st->current = st->port;
  else if (strcmp (name, "socketType") == 0)
    st->current = st->socket_type;
  else if (strcmp (name, "username") == 0)
    st->current = st->username;
}

static void
on_text (GMarkupParseContext *ctx, const char *text, gsize len, gpointer user_data, GError **error)
{
  ParseState *st = user_data;

  if (st->current != NULL)
    g_string_append_len (st->current, text, (gssize) len);
}

static void
on_end (GMarkupParseContext *ctx, const char *name, gpointer user_data, GError **error)
{
  ParseState *st = user_data;

  st->current = NULL;
  if (st->in_oauth2 && strcmp (name, "oAuth2") == 0)
    st->in_oauth2 = FALSE;
  else if (st->kind == SERVER_INCOMING && strcmp (name, "incomingServer") == 0)
    {
      /* The first usable one: the document lists them in the provider's
       * order of preference. */
      if (st->found->imap_url == NULL && g_strcmp0 (st->type, "imap") == 0)
        {
          st->found->imap_url = server_url (st, "imaps", "imap");
          if (st->found->imap_url != NULL && st->username->len > 0)
            st->found->username = fill_placeholders (st->username->str, st->address);
          if (st->found->imap_url != NULL)
            st->found->oauth2_first = g_ascii_strcasecmp (g_strstrip (st->authentication->str), "OAuth2") == 0;
        }
      st->kind = SERVER_NONE;
    }
  else if (st->kind == SERVER_OUTGOING && strcmp (name, "outgoingServer") == 0)
    {
      if (st->found->smtp_url == NULL && g_strcmp0 (st->type, "smtp") == 0)
        st->found->smtp_url = server_url (st, "smtps", "smtp");
      st->kind = SERVER_NONE;
    }
}

/* Settings and sign-in addresses come only from https:// with a host name:
 * the assistant's lookups and what a document names alike. */
static gboolean
is_https_with_host (GUri *uri)
{
  return uri != NULL && g_strcmp0 (g_uri_get_scheme (uri), "https") == 0 && g_uri_get_host (uri) != NULL &&
         *g_uri_get_host (uri) != '\0';
}

/* @url (taken) when it is an https:// address with a host, else NULL. */
static char *
https_or_null (char *url)
{
  g_autoptr(GUri) uri = NULL;

  g_strstrip (url);
  uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (!is_https_with_host (uri))
    {
      g_free (url);
      return NULL;
    }
  return url;
}

SmProviderSettings *
sm_autoconfig_parse (const char *xml, gssize length, const char *address, GError **error)
{
  static const GMarkupParser parser = { on_start, on_end, on_text, NULL, NULL };
  g_autoptr(SmProviderSettings) found = g_new0 (SmProviderSettings, 1);
  g_autoptr(GMarkupParseContext) ctx = NULL;
  g_autoptr(GError) local = NULL;
  ParseState st = { 0 };
  gsize len = length < 0 ? strlen (xml) : (gsize) length;

  g_return_val_if_fail (xml != NULL && address != NULL, NULL);

  if (len > SM_AUTOCONFIG_MAX_BYTES)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("The autoconfig document is larger than %d bytes"),
                   SM_AUTOCONFIG_MAX_BYTES);
      return NULL;
    }
  /* GMarkup does not read a <?xml?> declaration's encoding: the format is
   * UTF-8, and anything else fails below. */
  st.address = address;
  st.hostname = g_string_new (NULL);
  st.port = g_string_new (NULL);
  st.socket_type = g_string_new (NULL);
  st.username = g_string_new (NULL);
  st.authentication = g_string_new (NULL);
  st.auth_url = g_string_new (NULL);
  st.token_url = g_string_new (NULL);
  st.scope = g_string_new (NULL);
  st.found = found;
  ctx = g_markup_parse_context_new (&parser, G_MARKUP_IGNORE_QUALIFIED, &st, NULL);
  if (g_markup_parse_context_parse (ctx, xml, (gssize) len, &local))
    g_markup_parse_context_end_parse (ctx, &local);
  g_string_free (st.hostname, TRUE);
  g_string_free (st.port, TRUE);
  g_string_free (st.socket_type, TRUE);
  g_string_free (st.username, TRUE);
  g_string_free (st.authentication, TRUE);
  g_free (st.type);
  /* Sign-in addresses only over https (the proxy checks them again
   * against allowed_upstreams when it uses them). */
  found->oauth2_authorization_endpoint = https_or_null (g_string_free (st.auth_url, FALSE));
  found->oauth2_token_endpoint = https_or_null (g_string_free (st.token_url, FALSE));
  if (st.scope->len > 0)
    found->oauth2_scope = g_strstrip (g_string_free (st.scope, FALSE));
  else
    g_string_free (st.scope, TRUE);

  if (local != NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The autoconfig document cannot be read: %s"),
                   local->message);
      return NULL;
    }
  if (found->imap_url == NULL || found->smtp_url == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The autoconfig document names no IMAP and SMTP servers that use encryption"));
      return NULL;
    }
  return g_steal_pointer (&found);
}

/* ---- HTTPS ------------------------------------------------------------------ */

static void
on_client_event (GSocketClient *client, GSocketClientEvent event, GSocketConnectable *connectable,
                 GIOStream *connection, gpointer user_data)
{
  SmAutoconfig *self = user_data;

  if (event == G_SOCKET_CLIENT_TLS_HANDSHAKING && self->database != NULL)
    g_tls_connection_set_database (G_TLS_CONNECTION (connection), self->database);
  if (event == G_SOCKET_CLIENT_TLS_HANDSHAKING)
    /* HTTP/1.0 ends the body by closing; the length is checked instead
     * when the server gives one. */
    g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (connection), FALSE);
}

/* GETs @url (https only) and returns the body of a 200 answer. */
static GBytes *
https_get (SmAutoconfig *self, const char *url, GCancellable *cancellable, GError **error)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED, error);
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GByteArray) data = g_byte_array_new ();
  g_autofree char *request = NULL;
  g_autofree char *target = NULL;
  g_autofree char *host_header = NULL;
  const gsize limit = SM_AUTOCONFIG_MAX_HEADER + SM_AUTOCONFIG_MAX_BYTES;
  const char *head_end;
  gsize head_len;
  int port;
  guint status = 0;

  if (uri == NULL)
    return NULL;
  if (!is_https_with_host (uri))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_POLICY, _("Only https:// addresses are used to look up settings, not %s"),
                   url);
      return NULL;
    }
  port = g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 443;
  target = g_strdup_printf ("%s%s%s", *g_uri_get_path (uri) ? g_uri_get_path (uri) : "/",
                            g_uri_get_query (uri) ? "?" : "", g_uri_get_query (uri) ? g_uri_get_query (uri) : "");
  host_header = port == 443 ? g_strdup (g_uri_get_host (uri)) : g_strdup_printf ("%s:%d", g_uri_get_host (uri), port);

  client = g_socket_client_new ();
  g_socket_client_set_tls (client, TRUE);
  g_socket_client_set_timeout (client, SM_AUTOCONFIG_TIMEOUT_S);
  /* Like the mail connections (README), not through a desktop proxy. */
  g_socket_client_set_enable_proxy (client, FALSE);
  g_signal_connect (client, "event", G_CALLBACK (on_client_event), self);
  conn = g_socket_client_connect_to_host (client, g_uri_get_host (uri), (guint16) port, cancellable, error);
  if (conn == NULL)
    return NULL;

  /* HTTP/1.0: the answer cannot be chunked, and the server closes after it. */
  request = g_strdup_printf ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: SecureMail/%s\r\n"
                             "Accept: application/xml, text/xml\r\nConnection: close\r\n\r\n",
                             target, host_header, PACKAGE_VERSION);
  if (!g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)), request, strlen (request),
                                  NULL, cancellable, error))
    return NULL;
  for (;;)
    {
      guint8 buf[4096];
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn)), buf, sizeof buf,
                                      cancellable, error);
      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      g_byte_array_append (data, buf, (guint) n);
      if (data->len > limit)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("%s sent more than %d bytes"), url,
                       SM_AUTOCONFIG_MAX_BYTES);
          return NULL;
        }
    }
  g_byte_array_append (data, (const guint8 *) "", 1);   /* a NUL for the string functions below */
  head_end = strstr ((const char *) data->data, "\r\n\r\n");
  /* "HTTP/1.x NNN reason" (RFC 9112 §4) */
  if (head_end != NULL && data->len > 13 && g_str_has_prefix ((const char *) data->data, "HTTP/1.") &&
      data->data[8] == ' ' && g_ascii_isdigit (data->data[9]) && g_ascii_isdigit (data->data[10]) &&
      g_ascii_isdigit (data->data[11]))
    status = (guint) g_ascii_digit_value ((char) data->data[9]) * 100 +
             (guint) g_ascii_digit_value ((char) data->data[10]) * 10 +
             (guint) g_ascii_digit_value ((char) data->data[11]);
  if (status == 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("%s did not answer in HTTP"), url);
      return NULL;
    }
  if (status != 200)
    {
      /* Redirects are not followed: the document must be where it is
       * asked for, on the domain's own server. */
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("%s answered HTTP %u"), url, status);
      return NULL;
    }
  head_len = (gsize) (head_end - (const char *) data->data) + 4;
  return g_bytes_new ((const char *) data->data + head_len, data->len - 1 - head_len);
}

/* ---- SRV (RFC 6186) ----------------------------------------------------------- */

/* "imaps://host:port" of the best target of _@service._tcp.@domain, or NULL. */
static char *
srv_url (GResolver *resolver, const char *service, const char *scheme, const char *domain,
         GCancellable *cancellable)
{
  g_autoptr(GError) error = NULL;
  GList *targets = g_resolver_lookup_service (resolver, service, "tcp", domain, cancellable, &error);
  char *url = NULL;

  /* Sorted by priority and weight already; a lone "." target means the
   * service is decidedly not offered (RFC 6186 §3.4). */
  for (GList *l = targets; l != NULL && url == NULL; l = l->next)
    {
      const char *host = g_srv_target_get_hostname (l->data);
      if (host != NULL && strcmp (host, ".") != 0 && *host != '\0' && valid_hostname (host))
        url = g_strdup_printf ("%s://%s:%u", scheme, host, g_srv_target_get_port (l->data));
    }
  g_resolver_free_targets (targets);
  return url;
}

static SmProviderSettings *
lookup_srv (GResolver *resolver, const char *domain, GCancellable *cancellable)
{
  g_autoptr(SmProviderSettings) found = g_new0 (SmProviderSettings, 1);

  /* Implicit TLS first (RFC 8314 §5.1), STARTTLS second. */
  found->imap_url = srv_url (resolver, "imaps", "imaps", domain, cancellable);
  if (found->imap_url == NULL)
    found->imap_url = srv_url (resolver, "imap", "imap", domain, cancellable);
  found->smtp_url = srv_url (resolver, "submissions", "smtps", domain, cancellable);
  if (found->smtp_url == NULL)
    found->smtp_url = srv_url (resolver, "submission", "smtp", domain, cancellable);
  if (found->imap_url == NULL || found->smtp_url == NULL)
    return NULL;
  found->source = g_strdup_printf (_("the SRV records of %s"), domain);
  return g_steal_pointer (&found);
}

/* ---- the lookup ------------------------------------------------------------------- */

static char *
expand_template (const char *template, const char *domain, const char *address)
{
  g_autoptr(GString) s = g_string_new (template);
  g_autofree char *escaped = g_uri_escape_string (address, NULL, FALSE);

  g_string_replace (s, "{domain}", domain, 0);
  g_string_replace (s, "{address}", escaped, 0);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static void
lookup_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SmAutoconfig *self = source;
  const char *address = task_data;
  const char *at = strrchr (address, '@');
  g_autofree char *domain = NULL;
  g_autoptr(GResolver) resolver = NULL;
  SmProviderSettings *found;

  if (at == NULL || !valid_hostname (at + 1))
    {
      g_task_return_new_error (task, SM_ERROR, SM_ERROR_CONFIG, _("“%s” is not an e-mail address"), address);
      return;
    }
  domain = g_ascii_strdown (at + 1, -1);
  for (guint i = 0; self->templates[i]; i++)
    {
      g_autofree char *url = expand_template (self->templates[i], domain, address);
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) body = https_get (self, url, cancellable, &error);

      if (body != NULL)
        {
          found = sm_autoconfig_parse (g_bytes_get_data (body, NULL), (gssize) g_bytes_get_size (body), address,
                                       &error);
          if (found != NULL)
            {
              found->source = g_steal_pointer (&url);
              g_task_return_pointer (task, found, (GDestroyNotify) sm_provider_settings_free);
              return;
            }
        }
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      /* Never the password (there is none here), and the URL only holds
       * the address the user typed. */
      g_debug ("autoconfig %s: %s", url, error->message);
    }

  resolver = self->resolver ? g_object_ref (self->resolver) : g_resolver_get_default ();
  found = lookup_srv (resolver, domain, cancellable);
  if (found != NULL)
    {
      g_task_return_pointer (task, found, (GDestroyNotify) sm_provider_settings_free);
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    return;
  g_task_return_new_error (task, SM_ERROR, SM_ERROR_UNAVAILABLE,
                           _("No settings were found for %s (no autoconfig document and no SRV records). Type them "
                             "as your provider or administrator wrote them."),
                           domain);
}

void
sm_autoconfig_lookup_async (SmAutoconfig *self, const char *address, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (SM_IS_AUTOCONFIG (self));
  g_return_if_fail (address != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, sm_autoconfig_lookup_async);
  g_task_set_task_data (task, g_strstrip (g_strdup (address)), g_free);
  g_task_run_in_thread (task, lookup_thread);
}

SmProviderSettings *
sm_autoconfig_lookup_finish (SmAutoconfig *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- the object --------------------------------------------------------------------- */

void
sm_autoconfig_set_url_templates (SmAutoconfig *self, const char * const *templates)
{
  g_return_if_fail (SM_IS_AUTOCONFIG (self));
  for (guint i = 0; templates && templates[i]; i++)
    g_return_if_fail (g_str_has_prefix (templates[i], "https://"));
  g_strfreev (self->templates);
  self->templates = g_strdupv ((char **) templates);
  if (self->templates == NULL)
    self->templates = g_new0 (char *, 1);
}

void
sm_autoconfig_set_tls_database (SmAutoconfig *self, GTlsDatabase *database)
{
  g_return_if_fail (SM_IS_AUTOCONFIG (self));
  g_set_object (&self->database, database);
}

void
sm_autoconfig_set_resolver (SmAutoconfig *self, GResolver *resolver)
{
  g_return_if_fail (SM_IS_AUTOCONFIG (self));
  g_set_object (&self->resolver, resolver);
}

static void
sm_autoconfig_finalize (GObject *object)
{
  SmAutoconfig *self = SM_AUTOCONFIG (object);

  g_strfreev (self->templates);
  g_clear_object (&self->database);
  g_clear_object (&self->resolver);
  G_OBJECT_CLASS (sm_autoconfig_parent_class)->finalize (object);
}

static void
sm_autoconfig_class_init (SmAutoconfigClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_autoconfig_finalize;
}

static void
sm_autoconfig_init (SmAutoconfig *self)
{
  const char *defaults[] = { SM_AUTOCONFIG_URL_SUBDOMAIN, SM_AUTOCONFIG_URL_WELL_KNOWN, NULL };

  self->templates = g_strdupv ((char **) defaults);
}

SmAutoconfig *
sm_autoconfig_new (void)
{
  return g_object_new (SM_TYPE_AUTOCONFIG, NULL);
}
