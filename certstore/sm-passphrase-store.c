/* sm-passphrase-store.c: key passphrases in the OS keyring. */
#include "config.h"

#include <string.h>
#include <sys/random.h>
#include <errno.h>

#include <glib/gi18n.h>

#include "sm-certstore-error.h"
#include "sm-passphrase-store.h"

void
sm_secret_free (SmSecret *secret)
{
  if (secret == NULL)
    return;
  explicit_bzero (secret, strlen (secret));
  g_free (secret);
}

SmSecret *
sm_secret_dup (const char *secret)
{
  return g_strdup (secret);
}

gboolean
sm_secret_random_bytes (guint8  *buf,
                        gsize    len,
                        GError **error)
{
  gsize done = 0;

  while (done < len)
    {
      ssize_t n = getrandom (buf + done, len - done, 0);

      if (n < 0)
        {
          int saved_errno = errno;

          if (saved_errno == EINTR)
            continue;
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("The system's random number generator failed: %s"),
                       g_strerror (saved_errno));
          return FALSE;
        }
      done += (gsize) n;
    }
  return TRUE;
}

SmSecret *
sm_passphrase_generate (GError **error)
{
  guint8 raw[SM_PASSPHRASE_RANDOM_BYTES];
  char *encoded;

  if (!sm_secret_random_bytes (raw, sizeof raw, error))
    return NULL;
  encoded = g_base64_encode (raw, sizeof raw);
  explicit_bzero (raw, sizeof raw);
  /* '=' padding carries no entropy; drop it to keep the secret tidy. */
  for (char *p = encoded + strlen (encoded); p > encoded && p[-1] == '='; p--)
    p[-1] = '\0';
  return encoded;
}

const SecretSchema *
sm_passphrase_get_schema (void)
{
  static const SecretSchema schema = {
    .name = "org.securemail.Passphrase",
    .flags = SECRET_SCHEMA_NONE,
    .attributes = {
      { "keygrip", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "fingerprint", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "protocol", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    },
  };
  return &schema;
}

static void
keyring_error (GError    **error,
               GError     *cause,
               const char *doing)
{
  g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_KEYRING,
               _("%s: the keyring is not available (%s); log in to the desktop session or unlock the keyring, then try again"),
               doing, cause ? cause->message : _("unknown error"));
}

gboolean
sm_passphrase_store_save (const char   *keygrip,
                          const char   *fingerprint,
                          SmProtocol    protocol,
                          const char   *passphrase,
                          GCancellable *cancellable,
                          GError      **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *label = NULL;

  g_return_val_if_fail (keygrip != NULL && *keygrip != '\0', FALSE);
  g_return_val_if_fail (passphrase != NULL, FALSE);

  label = g_strdup_printf (_("SecureMail key passphrase (%s %s)"),
                           protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP",
                           fingerprint && *fingerprint ? fingerprint : keygrip);
  if (!secret_password_store_sync (sm_passphrase_get_schema (), SECRET_COLLECTION_DEFAULT,
                                   label, passphrase, cancellable, &local,
                                   "keygrip", keygrip,
                                   "fingerprint", fingerprint ? fingerprint : "",
                                   "protocol", sm_protocol_to_string (protocol),
                                   NULL))
    {
      keyring_error (error, local, _("Saving the key passphrase"));
      return FALSE;
    }
  return TRUE;
}

SmSecret *
sm_passphrase_store_lookup (const char   *keygrip,
                            GCancellable *cancellable,
                            GError      **error)
{
  g_autoptr(GError) local = NULL;
  char *secret;
  SmSecret *copy;

  g_return_val_if_fail (keygrip != NULL, NULL);

  secret = secret_password_lookup_sync (sm_passphrase_get_schema (), cancellable, &local,
                                        "keygrip", keygrip, NULL);
  if (local != NULL)
    {
      keyring_error (error, local, _("Reading the key passphrase"));
      return NULL;
    }
  if (secret == NULL)
    return NULL;
  /* Move it into memory we wipe ourselves; libsecret's own copy is wiped by
   * secret_password_free(). */
  copy = sm_secret_dup (secret);
  secret_password_free (secret);
  return copy;
}

gboolean
sm_passphrase_store_clear (const char   *keygrip,
                           GCancellable *cancellable,
                           GError      **error)
{
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (keygrip != NULL, FALSE);

  secret_password_clear_sync (sm_passphrase_get_schema (), cancellable, &local,
                              "keygrip", keygrip, NULL);
  if (local != NULL)
    {
      keyring_error (error, local, _("Removing the key passphrase"));
      return FALSE;
    }
  return TRUE;
}
