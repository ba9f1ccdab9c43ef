/* sm-keyring.c: the proxy's secrets in the OS keyring (libsecret). */
#include "config.h"

#include <glib/gi18n.h>
#include <libsecret/secret.h>
#include <string.h>
#include <sys/random.h>

#include "sm-error.h"
#include "sm-wipe.h"
#include "sm-keyring.h"

static const SecretSchema sm_schema = {
  "org.securemail.Secret", SECRET_SCHEMA_NONE,
  {
    { "kind", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "account", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { NULL, 0 },
  },
  0, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

static const char *
kind_name (SmKeyringItem kind)
{
  switch (kind)
    {
    case SM_KEYRING_UPSTREAM_PASSWORD:
      return "upstream-password";
    case SM_KEYRING_OAUTH2_REFRESH_TOKEN:
      return "oauth2-refresh-token";
    case SM_KEYRING_CLIENT_CERT_PIN:
      return "client-certificate-pin";
    case SM_KEYRING_LOCAL_PASSWORD:
    default:
      return "local-password";
    }
}

static const char *
kind_label (SmKeyringItem kind)
{
  switch (kind)
    {
    case SM_KEYRING_UPSTREAM_PASSWORD:
      return _("SecureMail provider password");
    case SM_KEYRING_OAUTH2_REFRESH_TOKEN:
      return _("SecureMail provider sign-in (OAuth2 refresh token)");
    case SM_KEYRING_CLIENT_CERT_PIN:
      return _("SecureMail client certificate PIN");
    case SM_KEYRING_LOCAL_PASSWORD:
    default:
      return _("SecureMail local mail client password");
    }
}

static void
set_keyring_error (GError **error, GError *cause)
{
  g_set_error (error, SM_ERROR, SM_ERROR_KEYRING,
               _("The keyring cannot be used (%s). Log in to the desktop, or unlock the "
                 "“Login” keyring, then try again."),
               cause ? cause->message : _("unknown error"));
}

gboolean
sm_keyring_store (SmKeyringItem kind, const char *account, const char *secret, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *label = g_strdup_printf ("%s (%s)", kind_label (kind), account);

  g_return_val_if_fail (account != NULL && secret != NULL, FALSE);
  if (!secret_password_store_sync (&sm_schema, SECRET_COLLECTION_DEFAULT, label, secret, NULL,
                                   &local, "kind", kind_name (kind), "account", account, NULL))
    {
      set_keyring_error (error, local);
      return FALSE;
    }
  return TRUE;
}

char *
sm_keyring_lookup (SmKeyringItem kind, const char *account, GError **error)
{
  g_autoptr(GError) local = NULL;
  char *secret;

  g_return_val_if_fail (account != NULL, NULL);
  secret = secret_password_lookup_nonpageable_sync (&sm_schema, NULL, &local, "kind",
                                                    kind_name (kind), "account", account, NULL);
  if (local != NULL)
    {
      set_keyring_error (error, local);
      return NULL;
    }
  if (secret == NULL)
    {
      if (kind == SM_KEYRING_UPSTREAM_PASSWORD)
        g_set_error (error, SM_ERROR, SM_ERROR_NO_SECRET,
                     _("No provider password is stored for %s. Run “securemail account "
                       "set-password” to store it."),
                     account);
      else if (kind == SM_KEYRING_OAUTH2_REFRESH_TOKEN)
        g_set_error (error, SM_ERROR, SM_ERROR_NO_SECRET,
                     _("%s has not signed in to the provider yet. Run “securemail account "
                       "oauth2-login” to sign in."),
                     account);
      else if (kind == SM_KEYRING_CLIENT_CERT_PIN)
        g_set_error (error, SM_ERROR, SM_ERROR_NO_SECRET,
                     _("No PIN for the client certificate of %s is stored. Run “securemail "
                       "account set-pin” to store it."),
                     account);
      else
        g_set_error (error, SM_ERROR, SM_ERROR_NO_SECRET,
                     _("No local client password exists for %s yet. Run “securemail account "
                       "local-password” to create it."),
                     account);
      return NULL;
    }
  return secret;
}

gboolean
sm_keyring_clear (SmKeyringItem kind, const char *account, GError **error)
{
  g_autoptr(GError) local = NULL;

  secret_password_clear_sync (&sm_schema, NULL, &local, "kind", kind_name (kind), "account",
                              account, NULL);
  if (local != NULL)
    {
      set_keyring_error (error, local);
      return FALSE;
    }
  return TRUE;
}

void
sm_keyring_free (char *secret)
{
  /* secret_password_free() wipes and frees non-pageable memory; it also
   * handles ordinary heap strings. */
  if (secret != NULL)
    secret_password_free (secret);
}

/* Generates a password a person can type from a printout: no look-alike
 * characters (0/O, 1/l/I).  Rejection sampling keeps the distribution
 * uniform; 24 characters of a 54-letter alphabet are about 138 bits. */
static char *
generate_password (GError **error)
{
  static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const guint n = sizeof alphabet - 1;
  const guint limit = 256 - (256 % n);
  char *out = g_malloc0 (SM_KEYRING_LOCAL_PASSWORD_CHARS + 1);
  guint filled = 0;

  while (filled < SM_KEYRING_LOCAL_PASSWORD_CHARS)
    {
      guint8 buf[64];
      ssize_t got = getrandom (buf, sizeof buf, 0);
      if (got <= 0)
        {
          sm_wipe (out, SM_KEYRING_LOCAL_PASSWORD_CHARS);
          g_free (out);
          g_set_error_literal (error, SM_ERROR, SM_ERROR_FAILED,
                               _("The system's random number generator failed"));
          return NULL;
        }
      for (ssize_t i = 0; i < got && filled < SM_KEYRING_LOCAL_PASSWORD_CHARS; i++)
        if (buf[i] < limit)
          out[filled++] = alphabet[buf[i] % n];
      sm_wipe (buf, sizeof buf);
    }
  return out;
}

char *
sm_keyring_local_password (const char *account, gboolean reset, GError **error)
{
  g_autoptr(GError) local = NULL;
  char *secret = NULL;

  if (!reset)
    {
      secret = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, account, &local);
      if (secret != NULL)
        return secret;
      if (!g_error_matches (local, SM_ERROR, SM_ERROR_NO_SECRET))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
    }
  secret = generate_password (error);
  if (secret == NULL)
    return NULL;
  if (!sm_keyring_store (SM_KEYRING_LOCAL_PASSWORD, account, secret, error))
    {
      sm_wipe (secret, strlen (secret));
      g_free (secret);
      return NULL;
    }
  return secret;
}

gboolean
sm_keyring_equal (const char *a, const char *b)
{
  gsize la = strlen (a), lb = strlen (b);
  guint8 diff = la != lb;

  /* Walk the stored secret's full length whatever the guess is, so timing
   * says nothing about how much of it matched. */
  for (gsize i = 0; i < lb; i++)
    diff |= (guint8) (b[i] ^ (i < la ? a[i] : 0));
  return diff == 0;
}

gboolean
sm_keyring_check_local_login (const char *account, const char *user, const char *password, GError **error)
{
  char *local_pw = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, account, error);
  gboolean ok;

  if (local_pw == NULL)
    return FALSE;
  ok = g_ascii_strcasecmp (user, account) == 0 && sm_keyring_equal (password, local_pw);
  sm_keyring_free (local_pw);
  if (!ok)
    g_set_error_literal (error, SM_ERROR, SM_ERROR_AUTH, "wrong local credentials");
  return ok;
}
