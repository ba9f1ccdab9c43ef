/* sm-gui-keys.c: certstore operations for the GUI. */
#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#include "sm-backup.h"
#include "sm-certstore.h"
#include "sm-gui-keys.h"

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
