/* sm-key-gate.c: presetting and forgetting key passphrases in gpg-agent. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-gnupg-tool.h"
#include "sm-key-gate.h"
#include "sm-passphrase-store.h"
#include "sm-trustdb.h"

/* Certstore errors, as the server's domain: the D-Bus callers and the CLI
 * know SM_ERROR only. */
static void
propagate (GError **error, GError *local, int code)
{
  g_set_error_literal (error, SM_ERROR, code, local->message);
}

gboolean
sm_key_gate_forget (GError **error)
{
  g_autofree char *home = sm_certstore_default_home ();
  g_autoptr(GError) local = NULL;

  if (!g_file_test (home, G_FILE_TEST_IS_DIR))
    return TRUE;
  if (!sm_gnupg_tool_reload_agent (home, &local))
    {
      propagate (error, local, SM_ERROR_FAILED);
      return FALSE;
    }
  return TRUE;
}

/* Signs SM_KEY_GATE_PROBE with @info's key: fails when gpg-agent has no
 * right passphrase for it. */
static gboolean
trial_sign (SmCertstore *store, const SmKeyInfo *info, GError **error)
{
  gpgme_ctx_t ctx = sm_certstore_new_context (store, info->protocol, error);
  gpgme_key_t key = NULL;
  gpgme_data_t in = NULL, out = NULL;
  gpgme_error_t err;

  if (ctx == NULL)
    return FALSE;
  key = sm_certstore_get_gpgme_key (store, info->protocol, info->fingerprint, TRUE, error);
  if (key == NULL)
    {
      gpgme_release (ctx);
      return FALSE;
    }
  gpgme_signers_add (ctx, key);
  gpgme_data_new_from_mem (&in, SM_KEY_GATE_PROBE, strlen (SM_KEY_GATE_PROBE), 0);
  gpgme_data_new (&out);
  err = gpgme_op_sign (ctx, in, out, GPGME_SIG_MODE_DETACH);
  gpgme_data_release (in);
  gpgme_data_release (out);
  gpgme_key_unref (key);
  gpgme_release (ctx);
  if (err != 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_AUTH,
                   _("The passphrase is not right for the key of %s (%s); nothing was unlocked"),
                   info->user_id ? info->user_id : info->fingerprint, gpgme_strerror (err));
      return FALSE;
    }
  return TRUE;
}

/* Presets @passphrase for every subkey of @info's key. */
static gboolean
preset_typed (SmCertstore *store, const SmKeyInfo *info, const char *passphrase, GError **error)
{
  g_autoptr(GBytes) input = g_bytes_new_static (passphrase, strlen (passphrase));
  gpgme_key_t key = sm_certstore_get_gpgme_key (store, info->protocol, info->fingerprint, TRUE, error);
  gboolean ok = TRUE;

  if (key == NULL)
    return FALSE;
  for (gpgme_subkey_t sub = key->subkeys; ok && sub != NULL; sub = sub->next)
    {
      const char *args[] = { "--preset", sub->keygrip, NULL };

      if (sub->keygrip != NULL)
        ok = sm_gnupg_tool_run (sm_certstore_get_home (store), "gpg-preset-passphrase", args, input, NULL,
                                NULL, NULL, error);
    }
  gpgme_key_unref (key);
  return ok;
}

static gboolean
remember (const char *passphrase, guint *n_keys, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(SmCertstore) store = sm_certstore_new (&local);
  g_autoptr(GPtrArray) own = NULL;
  guint n = 0;

  if (store == NULL)
    {
      propagate (error, local, SM_ERROR_FAILED);
      return FALSE;
    }
  if (!sm_certstore_unlock (store, NULL, &n, &local))
    {
      propagate (error, local, g_error_matches (local, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_KEYRING)
                                   ? SM_ERROR_KEYRING : SM_ERROR_FAILED);
      return FALSE;
    }
  if (passphrase != NULL && *passphrase != '\0')
    {
      own = sm_certstore_list_own_keys (store, &local);
      if (own == NULL)
        {
          propagate (error, local, SM_ERROR_FAILED);
          return FALSE;
        }
      for (guint i = 0; i < own->len; i++)
        {
          const SmKeyInfo *info = own->pdata[i];
          g_autoptr(SmSecret) stored = NULL;

          if (info->keygrip == NULL)
            continue;
          stored = sm_passphrase_store_lookup (info->keygrip, NULL, NULL);
          if (stored != NULL)
            continue;   /* the keyring's passphrase is already preset */
          if (!preset_typed (store, info, passphrase, &local) || !trial_sign (store, info, &local))
            {
              /* A wrong passphrase must not stay cached for other keys. */
              sm_key_gate_forget (NULL);
              if (local->domain == SM_ERROR)
                g_propagate_error (error, g_steal_pointer (&local));
              else
                propagate (error, local, SM_ERROR_FAILED);
              return FALSE;
            }
          n++;
        }
    }
  if (n_keys != NULL)
    *n_keys = n;
  return TRUE;
}

gboolean
sm_key_gate_remember (const char *passphrase, guint *n_keys, GError **error)
{
  g_autofree char *home = sm_certstore_default_home ();
  /* Its key listings and trial signatures may run beside fetches. */
  SmTrustdbUse *use = sm_trustdb_use_begin (home);
  gboolean ok = remember (passphrase, n_keys, error);

  sm_trustdb_use_end (use);
  return ok;
}
