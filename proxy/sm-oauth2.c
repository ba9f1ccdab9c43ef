/* sm-oauth2.c: OAuth 2.0 access tokens from the provider's token endpoint. */
#include "config.h"

#include <glib/gi18n.h>
#include <libsoup/soup.h>
#include <string.h>

#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-oauth2.h"
#include "sm-trust-database.h"
#include "sm-upstream.h"
#include "sm-wipe.h"

struct _SmOAuth2 {
  GObject parent_instance;
  SmConfig *config;         /* the subset of the caller's config we need, owned */
  GMutex lock;              /* guards the fields below; held across a refresh */
  char *access_token;       /* NULL when none is cached */
  gint64 refresh_at;        /* monotonic seconds: refresh from then on */
  gboolean consent_needed;  /* read on the main context through the property */
  char *refused_hash;       /* SHA-256 of the refresh token the provider refused, or NULL */
  char *refused_why;        /* the provider's reason, for the message */
};

enum { PROP_0, PROP_CONSENT_NEEDED, N_PROPS };
static GParamSpec *props[N_PROPS];

G_DEFINE_FINAL_TYPE (SmOAuth2, sm_oauth2, G_TYPE_OBJECT)

static void
wipe_free (char *s)
{
  if (s != NULL)
    {
      sm_wipe (s, strlen (s));
      g_free (s);
    }
}

static void
sm_oauth2_finalize (GObject *object)
{
  SmOAuth2 *self = SM_OAUTH2 (object);

  wipe_free (self->access_token);
  g_free (self->refused_hash);
  g_free (self->refused_why);
  sm_config_free (self->config);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (sm_oauth2_parent_class)->finalize (object);
}

static void
sm_oauth2_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  switch (id)
    {
    case PROP_CONSENT_NEEDED:
      g_value_set_boolean (value, sm_oauth2_get_consent_needed (SM_OAUTH2 (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
sm_oauth2_class_init (SmOAuth2Class *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = sm_oauth2_finalize;
  object_class->get_property = sm_oauth2_get_property;
  /* TRUE after the token endpoint refused the refresh token: the user must
   * run `securemail account oauth2-login`.  Notified on the main context. */
  props[PROP_CONSENT_NEEDED] = g_param_spec_boolean ("consent-needed", NULL, NULL, FALSE,
                                                     G_PARAM_READABLE | G_PARAM_STATIC_STRINGS |
                                                     G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
sm_oauth2_init (SmOAuth2 *self)
{
  g_mutex_init (&self->lock);
}

/* ---- the shared instances ----------------------------------------------- */

static GMutex shared_lock;
static GHashTable *shared;   /* "account\ntoken_endpoint\nclient_id" -> SmOAuth2 */

/* A private copy of the keys a refresh uses: the caller's config may be
 * freed before the process ends (tests, the setup assistant). */
static SmConfig *
copy_config (const SmConfig *c)
{
  SmConfig *copy = g_new0 (SmConfig, 1);

  copy->address = g_strdup (c->address);
  copy->auth = c->auth;
  copy->ca_file = g_strdup (c->ca_file);
  copy->allowed_upstreams = g_strdupv (c->allowed_upstreams);
  copy->oauth2.token_endpoint = g_strdup (c->oauth2.token_endpoint);
  copy->oauth2.client_id = g_strdup (c->oauth2.client_id);
  copy->oauth2.client_secret = g_strdup (c->oauth2.client_secret);
  copy->oauth2.scope = g_strdup (c->oauth2.scope);
  copy->locked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return copy;
}

SmOAuth2 *
sm_oauth2_get_shared (const SmConfig *config)
{
  g_autofree char *key = NULL;
  SmOAuth2 *self;

  g_return_val_if_fail (config != NULL && config->oauth2.token_endpoint != NULL, NULL);
  key = g_strdup_printf ("%s\n%s\n%s", config->address, config->oauth2.token_endpoint,
                         config->oauth2.client_id);
  g_mutex_lock (&shared_lock);
  if (shared == NULL)
    shared = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self = g_hash_table_lookup (shared, key);
  if (self == NULL)
    {
      self = g_object_new (SM_TYPE_OAUTH2, NULL);
      self->config = copy_config (config);
      g_hash_table_insert (shared, g_steal_pointer (&key), self);
    }
  g_mutex_unlock (&shared_lock);
  return self;
}

/* ---- consent --------------------------------------------------------------- */

static gboolean
notify_consent (gpointer data)
{
  g_object_notify_by_pspec (G_OBJECT (data), props[PROP_CONSENT_NEEDED]);
  return G_SOURCE_REMOVE;
}

/* Called with the lock held, from any thread.  The notification always
 * goes through an idle source on the main context, even from the main
 * thread: its handlers read the property, which takes the lock again. */
static void
set_consent_needed (SmOAuth2 *self, gboolean needed)
{
  if (self->consent_needed == needed)
    return;
  self->consent_needed = needed;
  g_idle_add_full (G_PRIORITY_DEFAULT, notify_consent, g_object_ref (self), g_object_unref);
}

gboolean
sm_oauth2_get_consent_needed (SmOAuth2 *self)
{
  gboolean needed;

  g_return_val_if_fail (SM_IS_OAUTH2 (self), FALSE);
  g_mutex_lock (&self->lock);
  needed = self->consent_needed;
  g_mutex_unlock (&self->lock);
  return needed;
}

static void
set_consent_error (GError **error, const char *why)
{
  g_set_error (error, SM_ERROR, SM_ERROR_CONSENT,
               _("The provider needs you to sign in again (%s). Run “securemail account oauth2-login” "
                 "(or choose “Sign in to your provider again” in the SecureMail tray menu)."),
               why);
}

/* ---- HTTP ------------------------------------------------------------------ */

static void
wipe_bytes (gpointer data)
{
  GString *s = data;
  sm_wipe (s->str, s->len);
  g_string_free (s, TRUE);
}

JsonObject *
sm_oauth2_post_form (const SmConfig *config, const char *url, const char * const *fields,
                     guint *status_out, GCancellable *cancellable, GError **error)
{
  g_autoptr(GTlsDatabase) database = sm_trust_database_get_shared (config->ca_file, error);
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GBytes) body = NULL;
  g_autofree guint8 *buf = NULL;
  GString *form = g_string_new (NULL);
  gsize got = 0;
  JsonNode *root;

  if (database == NULL)
    {
      wipe_bytes (form);
      return NULL;
    }
  for (guint i = 0; fields[i] != NULL && fields[i + 1] != NULL; i += 2)
    {
      char *value = g_uri_escape_string (fields[i + 1], NULL, FALSE);
      if (form->len > 0)
        g_string_append_c (form, '&');
      g_string_append_printf (form, "%s=%s", fields[i], value);
      wipe_free (value);
    }
  body = g_bytes_new_with_free_func (form->str, form->len, wipe_bytes, form);

  msg = soup_message_new ("POST", url);
  if (msg == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("“%s” is not a usable URL"), url);
      return NULL;
    }
  session = soup_session_new_with_options ("timeout", SM_OAUTH2_HTTP_TIMEOUT_S, "tls-database", database,
                                           "user-agent", "SecureMail/" PACKAGE_VERSION, NULL);
  soup_message_set_request_body_from_bytes (msg, "application/x-www-form-urlencoded", body);
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Accept", "application/json");
  /* RFC 6749 §5.1: token responses must not be cached anywhere. */
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Cache-Control", "no-store");

  in = soup_session_send (session, msg, cancellable, &local);
  if (in == NULL)
    {
      g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
      const char *host = uri ? g_uri_get_host (uri) : url;
      if (g_error_matches (local, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE))
        g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                     _("The certificate of the sign-in server %s was refused. If your provider uses a "
                       "private authority, set [upstream] ca_file; otherwise call your helpdesk."),
                     host);
      else
        g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                     _("Cannot reach the provider's sign-in server %s: %s"), host, local->message);
      return NULL;
    }
  buf = g_malloc (SM_OAUTH2_MAX_RESPONSE + 1);
  if (!g_input_stream_read_all (in, buf, SM_OAUTH2_MAX_RESPONSE + 1, &got, cancellable, &local))
    {
      sm_wipe (buf, got);
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("The provider's sign-in server failed: %s"),
                   local->message);
      return NULL;
    }
  if (got > SM_OAUTH2_MAX_RESPONSE)
    {
      sm_wipe (buf, got);
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL,
                   _("The provider's sign-in server sent more than %d bytes"), SM_OAUTH2_MAX_RESPONSE);
      return NULL;
    }
  *status_out = soup_message_get_status (msg);
  if (!json_parser_load_from_data (parser, (const char *) buf, (gssize) got, NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      sm_wipe (buf, got);
      g_set_error (error, SM_ERROR, *status_out >= 500 ? SM_ERROR_UNAVAILABLE : SM_ERROR_PROTOCOL,
                   _("The provider's sign-in server answered HTTP %u without a JSON object"), *status_out);
      return NULL;
    }
  sm_wipe (buf, got);
  return json_object_ref (json_node_get_object (root));
}

char *
sm_oauth2_describe_error (JsonObject *response, guint status)
{
  const char *code = json_object_get_string_member_with_default (response, "error", "");
  const char *desc = json_object_get_string_member_with_default (response, "error_description", "");
  g_autofree char *line = NULL;

  if (*code == '\0')
    line = g_strdup_printf ("HTTP %u", status);
  else if (*desc == '\0')
    line = g_strdup (code);
  else
    line = g_strdup_printf ("%s: %s", code, desc);
  return sm_upstream_sanitize_text (line);
}

/* A token as RFC 6749 §A.12/§A.17 allows it (VSCHAR, visible ASCII), not
 * empty and not longer than SM_OAUTH2_MAX_TOKEN_LEN: it goes into SASL
 * lines and the keyring. */
static const char *
token_member (JsonObject *response, const char *name)
{
  const char *v = json_object_get_string_member_with_default (response, name, NULL);
  gsize n;

  if (v == NULL || (n = strlen (v)) == 0 || n > SM_OAUTH2_MAX_TOKEN_LEN)
    return NULL;
  for (const char *p = v; *p; p++)
    if (*p < 0x20 || *p > 0x7e)
      return NULL;
  return v;
}

gboolean
sm_oauth2_store_refresh_token (const SmConfig *config, JsonObject *response, GError **error)
{
  const char *refresh = token_member (response, "refresh_token");

  if (refresh == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The provider issued no refresh token, so SecureMail would have to ask you "
                             "to sign in every hour; ask your helpdesk to allow offline access "
                             "(e.g. the offline_access scope)"));
      return FALSE;
    }
  return sm_keyring_store (SM_KEYRING_OAUTH2_REFRESH_TOKEN, config->address, refresh, error);
}

/* ---- the cached access token ---------------------------------------------- */

/* A refresh token the provider refused stays refused: remembering it (as a
 * hash) spares the token endpoint one doomed request per mail client login
 * (clients retry every few minutes, on several connections) until the user
 * signs in again, which stores a different one. */
static char *
token_hash (const char *token)
{
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, token, -1);
}

static void
forget_refusal (SmOAuth2 *self)
{
  g_clear_pointer (&self->refused_hash, g_free);
  g_clear_pointer (&self->refused_why, g_free);
}

/* RFC 6749 §6 with the lock held. */
static gboolean
refresh_locked (SmOAuth2 *self, GCancellable *cancellable, GError **error)
{
  const SmConfig *c = self->config;
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonObject) resp = NULL;
  char *refresh = sm_keyring_lookup (SM_KEYRING_OAUTH2_REFRESH_TOKEN, c->address, &local);
  const char *access, *type, *rotated;
  gint64 lifetime, margin;
  guint status = 0;

  if (refresh == NULL)
    {
      if (g_error_matches (local, SM_ERROR, SM_ERROR_NO_SECRET))
        {
          set_consent_needed (self, TRUE);
          set_consent_error (error, _("no sign-in is stored"));
        }
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (self->refused_hash != NULL)
    {
      g_autofree char *hash = token_hash (refresh);
      if (g_strcmp0 (hash, self->refused_hash) == 0)
        {
          sm_keyring_free (refresh);
          set_consent_error (error, self->refused_why);
          return FALSE;
        }
      forget_refusal (self);
    }
  {
    const char *fields[] = { "grant_type", "refresh_token", "refresh_token", refresh,
                             "client_id", c->oauth2.client_id,
                             c->oauth2.client_secret ? "client_secret" : NULL, c->oauth2.client_secret,
                             NULL };
    resp = sm_oauth2_post_form (c, c->oauth2.token_endpoint, fields, &status, cancellable, error);
  }
  if (resp == NULL)
    {
      sm_keyring_free (refresh);
      return FALSE;
    }
  if (status != 200)
    {
      g_autofree char *why = sm_oauth2_describe_error (resp, status);
      const char *code = json_object_get_string_member_with_default (resp, "error", "");

      /* RFC 6749 §5.2: invalid_grant = the refresh token is expired or
       * revoked; 401 (invalid_client) = the provider no longer accepts this
       * client.  Either way only the user can fix it, by signing in. */
      if (g_strcmp0 (code, "invalid_grant") == 0 || status == SOUP_STATUS_UNAUTHORIZED)
        {
          self->refused_hash = token_hash (refresh);
          self->refused_why = g_strdup (why);
          sm_keyring_free (refresh);
          g_message ("OAuth2: the token endpoint refused the refresh token (%s); sign-in needed", why);
          set_consent_needed (self, TRUE);
          set_consent_error (error, why);
        }
      else
        {
          sm_keyring_free (refresh);
          g_set_error (error, SM_ERROR, status >= 500 ? SM_ERROR_UNAVAILABLE : SM_ERROR_PROTOCOL,
                       _("The provider's sign-in server refused to renew the access token (%s)"), why);
        }
      return FALSE;
    }

  access = token_member (resp, "access_token");
  type = json_object_get_string_member_with_default (resp, "token_type", "");
  if (access == NULL || g_ascii_strcasecmp (type, "bearer") != 0)
    {
      sm_keyring_free (refresh);
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The provider's sign-in server sent no usable bearer access token"));
      return FALSE;
    }
  /* A provider may rotate the refresh token (RFC 6749 §6, last paragraph):
   * the old one is then dead, so the new one must be kept. */
  rotated = token_member (resp, "refresh_token");
  if (rotated != NULL && !sm_keyring_equal (rotated, refresh) &&
      !sm_oauth2_store_refresh_token (c, resp, error))
    {
      sm_keyring_free (refresh);
      return FALSE;
    }
  sm_keyring_free (refresh);

  lifetime = json_object_get_int_member_with_default (resp, "expires_in", SM_OAUTH2_DEFAULT_LIFETIME_S);
  if (lifetime <= 0)
    lifetime = SM_OAUTH2_DEFAULT_LIFETIME_S;
  margin = MIN (SM_OAUTH2_REFRESH_MARGIN_S, lifetime / SM_OAUTH2_REFRESH_MARGIN_DIVISOR);
  wipe_free (self->access_token);
  self->access_token = g_strdup (access);
  self->refresh_at = g_get_monotonic_time () / G_USEC_PER_SEC + lifetime - margin;
  set_consent_needed (self, FALSE);
  g_message ("OAuth2: new access token for %s, valid for %" G_GINT64_FORMAT " s", c->address, lifetime);
  return TRUE;
}

char *
sm_oauth2_get_access_token (SmOAuth2 *self, GCancellable *cancellable, GError **error)
{
  char *token = NULL;

  g_return_val_if_fail (SM_IS_OAUTH2 (self), NULL);
  g_mutex_lock (&self->lock);
  if (self->access_token == NULL || g_get_monotonic_time () / G_USEC_PER_SEC >= self->refresh_at)
    {
      wipe_free (g_steal_pointer (&self->access_token));
      if (!refresh_locked (self, cancellable, error))
        {
          g_mutex_unlock (&self->lock);
          return NULL;
        }
    }
  token = g_strdup (self->access_token);
  g_mutex_unlock (&self->lock);
  return token;
}

void
sm_oauth2_invalidate (SmOAuth2 *self)
{
  g_return_if_fail (SM_IS_OAUTH2 (self));
  g_mutex_lock (&self->lock);
  wipe_free (g_steal_pointer (&self->access_token));
  g_mutex_unlock (&self->lock);
}

void
sm_oauth2_reset (SmOAuth2 *self)
{
  g_return_if_fail (SM_IS_OAUTH2 (self));
  g_mutex_lock (&self->lock);
  wipe_free (g_steal_pointer (&self->access_token));
  forget_refusal (self);
  set_consent_needed (self, FALSE);
  g_mutex_unlock (&self->lock);
}
