/* sm-gui-keys.c: certstore operations for the GUI. */
#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#include "sm-backup.h"
#include "sm-certstore.h"
#include "sm-gui-keys.h"

static char *
describe (const SmKeyInfo *k)
{
  const char *kind = k->protocol == SM_PROTOCOL_OPENPGP ? _("OpenPGP key") : _("S/MIME certificate");
  g_autofree char *who = k->addresses && k->addresses[0] ? g_strjoinv (", ", k->addresses)
                                                          : g_strdup (k->user_id ? k->user_id : "");
  g_autofree char *until = NULL;
  g_autofree char *state = NULL;

  if (k->expires > 0)
    {
      g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local (k->expires);
      g_autofree char *date = g_date_time_format (dt, "%Y-%m-%d");
      until = g_strdup_printf (_("valid until %s"), date);
    }
  else
    until = g_strdup (_("does not expire"));
  if (k->status != SM_KEY_STATUS_VALID)
    state = g_strdup_printf (" — %s%s%s", sm_key_status_to_string (k->status),
                             k->status_detail ? ": " : "", k->status_detail ? k->status_detail : "");
  /* TRANSLATORS: "OpenPGP key for alice@example.org, valid until 2028-11-28" */
  return g_strdup_printf (_("%s for %s, %s%s\n    fingerprint %s"), kind, who, until, state ? state : "",
                          k->fingerprint);
}

GPtrArray *
sm_gui_keys_list (gboolean include_certs, GError **error)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (error);
  g_autoptr(GPtrArray) own = NULL;
  GPtrArray *lines;

  if (store == NULL)
    return NULL;
  own = sm_certstore_list_own_keys (store, error);
  if (own == NULL)
    return NULL;
  lines = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < own->len; i++)
    g_ptr_array_add (lines, describe (own->pdata[i]));
  if (include_certs)
    {
      g_autoptr(GPtrArray) certs = sm_certstore_list_certs (store, NULL);
      for (guint i = 0; certs && i < certs->len; i++)
        {
          const SmKeyInfo *k = certs->pdata[i];
          g_autofree char *d = describe (k);
          g_ptr_array_add (lines, g_strdup_printf ("%s%s", k->is_anchor ? _("Trusted authority: ") : _("Correspondent: "), d));
        }
    }
  return lines;
}

char *
sm_gui_keys_generate_openpgp (const char * const *args, char **extra, GError **error)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (error);
  g_autoptr(SmKeyInfo) key = NULL;

  if (store == NULL)
    return NULL;
  key = sm_certstore_generate_openpgp (store, args[0], args[1], 0, error);
  if (key == NULL)
    return NULL;
  return g_strdup_printf (_("Made a new OpenPGP key for %s (fingerprint %s). Make a backup of it under "
                            "Keys and certificates."),
                          args[1], key->fingerprint);
}

char *
sm_gui_keys_generate_smime (const char * const *args, char **extra, GError **error)
{
  g_autoptr(SmCertstore) store = NULL;
  g_autoptr(GBytes) request = NULL;
  const char *path = args[2];

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                   _("%s already exists: send that file to your administrator, or remove it and try again"), path);
      return NULL;
    }
  store = sm_certstore_new (error);
  if (store == NULL)
    return NULL;
  request = sm_certstore_generate_smime_request (store, args[0], args[1], NULL, error);
  if (request == NULL)
    return NULL;
  if (!g_file_set_contents_full (path, g_bytes_get_data (request, NULL), (gssize) g_bytes_get_size (request),
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0644, error))
    return NULL;
  return g_strdup_printf (_("Made a certificate request: %s. Send this file to your administrator; when the "
                            "certificate comes back, import it under Keys and certificates."),
                          path);
}

char *
sm_gui_keys_import (const char * const *args, char **extra, GError **error)
{
  g_autoptr(SmCertstore) store = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autofree char *data = NULL;
  gsize len = 0;
  GBytes *bytes;

  if (!g_file_get_contents (args[0], &data, &len, error))
    return NULL;
  store = sm_certstore_new (error);
  if (store == NULL)
    return NULL;
  bytes = g_bytes_new_take (g_steal_pointer (&data), len);
  keys = sm_certstore_import_own (store, bytes, args[1], error);
  g_bytes_unref (bytes);
  if (keys == NULL)
    return NULL;
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "Imported %u key. Make a backup of it under Keys and certificates.",
                                       "Imported %u keys. Make a backup of them under Keys and certificates.", keys->len),
                          keys->len);
}

char *
sm_gui_keys_backup (const char * const *args, char **extra, GError **error)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (error);
  SmSecret *code = NULL;

  if (store == NULL)
    return NULL;
  if (!sm_backup_write (store, args[0], &code, error))
    return NULL;
  *extra = g_strdup (code);
  sm_secret_free (code);
  return g_strdup_printf (_("Wrote the backup to %s."), args[0]);
}

char *
sm_gui_keys_restore (const char * const *args, char **extra, GError **error)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (error);
  g_autofree char *previous = NULL;
  g_autoptr(SmSecret) code = NULL;

  if (store == NULL)
    return NULL;
  code = sm_backup_normalize_recovery_code (args[1], error);
  if (code == NULL)
    return NULL;
  if (!sm_backup_restore (store, args[0], code, &previous, error))
    return NULL;
  if (previous != NULL)
    return g_strdup_printf (_("Restored the backup. Your previous keys were kept in %s."), previous);
  return g_strdup (_("Restored the backup."));
}
