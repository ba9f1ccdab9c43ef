/* sm-backup.c: encrypted key backup and restore. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "sm-backup.h"
#include "sm-certstore-private.h"
#include "sm-gnupg-tool.h"
#include "sm-trust-anchors.h"

/* Entries of the backup (a GVariant a{sv} after a magic line and a SHA-256):
 *   "created"            x      Unix time
 *   "openpgp-keys"       a(sssay)  fingerprint, keygrip, passphrase, armored secret key
 *   "openpgp-public"     ay     all OpenPGP public keys (armored)
 *   "openpgp-ownertrust" ay     gpg --export-ownertrust
 *   "smime-keys"         a(sssay)  fingerprint, keygrip, passphrase, PKCS#12 (3DES)
 *   "smime-certs"        ay     all certificates (PEM)
 *   "anchors"            ay     securemail-anchors.ini
 *   "crls"               a(say) file name, DER CRL
 */
#define SM_BACKUP_KEY_TUPLES "a(sssay)"

/* ---- recovery codes -------------------------------------------------------- */

SmSecret *
sm_backup_generate_recovery_code (GError **error)
{
  GString *code = g_string_sized_new (SM_RECOVERY_CODE_DIGITS + SM_RECOVERY_CODE_DIGITS / SM_RECOVERY_CODE_GROUP);
  int digits = 0;
  SmSecret *result;

  while (digits < SM_RECOVERY_CODE_DIGITS)
    {
      guint8 buf[32];

      if (!sm_secret_random_bytes (buf, sizeof buf, error))
        {
          explicit_bzero (code->str, code->len);
          g_string_free (code, TRUE);
          return NULL;
        }
      for (gsize i = 0; i < sizeof buf && digits < SM_RECOVERY_CODE_DIGITS; i++)
        {
          /* Rejection sampling: 250 = 25 * 10, so values below it give
           * uniform digits. */
          if (buf[i] >= 250)
            continue;
          if (digits > 0 && digits % SM_RECOVERY_CODE_GROUP == 0)
            g_string_append_c (code, '-');
          g_string_append_c (code, (char) ('0' + buf[i] % 10));
          digits++;
        }
      explicit_bzero (buf, sizeof buf);
    }
  result = sm_secret_dup (code->str);
  explicit_bzero (code->str, code->len);
  g_string_free (code, TRUE);
  return result;
}

SmSecret *
sm_backup_normalize_recovery_code (const char *input,
                                   GError    **error)
{
  char digits[SM_RECOVERY_CODE_DIGITS];
  GString *out;
  int n = 0;
  SmSecret *result;

  g_return_val_if_fail (input != NULL, NULL);

  for (const char *p = input; *p; p++)
    {
      if (g_ascii_isdigit (*p))
        {
          if (n < SM_RECOVERY_CODE_DIGITS)
            digits[n] = *p;
          n++;
        }
      else if (*p == '-' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        continue;
      else
        {
          explicit_bzero (digits, sizeof digits);
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE,
                       _("The recovery code has only digits (9 groups of 4); check for a letter such as O or l typed instead of 0 or 1"));
          return NULL;
        }
    }
  if (n != SM_RECOVERY_CODE_DIGITS)
    {
      explicit_bzero (digits, sizeof digits);
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE,
                   _("The recovery code has %d digits, but %d were entered; type all 9 groups of 4 digits"),
                   SM_RECOVERY_CODE_DIGITS, n);
      return NULL;
    }

  out = g_string_sized_new (SM_RECOVERY_CODE_DIGITS * 2);
  for (int i = 0; i < SM_RECOVERY_CODE_DIGITS; i++)
    {
      if (i > 0 && i % SM_RECOVERY_CODE_GROUP == 0)
        g_string_append_c (out, '-');
      g_string_append_c (out, digits[i]);
    }
  explicit_bzero (digits, sizeof digits);
  result = sm_secret_dup (out->str);
  explicit_bzero (out->str, out->len);
  g_string_free (out, TRUE);
  return result;
}

/* ---- helpers ------------------------------------------------------------------ */

static void
wipe_bytes (GBytes *bytes)
{
  gsize len;
  gpointer data;

  if (bytes == NULL)
    return;
  /* We own these buffers (g_bytes_new copies); wiping through the const
   * pointer is fine because nothing else reads them afterwards. */
  data = (gpointer) g_bytes_get_data (bytes, &len);
  if (data != NULL && len > 0)
    explicit_bzero (data, len);
}

static GBytes *
gpgme_data_to_bytes (gpgme_data_t data)
{
  size_t len;
  char *mem = gpgme_data_release_and_get_mem (data, &len);
  GBytes *bytes = g_bytes_new (mem, len);

  if (mem != NULL)
    {
      explicit_bzero (mem, len);
      gpgme_free (mem);
    }
  return bytes;
}

static GVariant *
bytes_variant (GBytes *bytes)
{
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, bytes, TRUE);
}

static int
rm_rf_cb (const char        *path,
          const struct stat *sb,
          int                flag,
          struct FTW        *ftw)
{
  if (remove (path) < 0)
    g_debug ("Could not remove %s: %s", path, g_strerror (errno));
  return 0;
}

static void
rm_rf (const char *path)
{
  nftw (path, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- writing -------------------------------------------------------------------- */

static gboolean
export_openpgp_keys (SmCertstore     *store,
                     GVariantBuilder *builder,
                     GError         **error)
{
  g_autoptr(GPtrArray) keys = sm_certstore_list_gpgme_keys (store, SM_PROTOCOL_OPENPGP, NULL, TRUE, error);

  if (keys == NULL)
    return FALSE;
  for (guint i = 0; i < keys->len; i++)
    {
      gpgme_key_t key = keys->pdata[i];
      g_autoptr(SmSecret) passphrase = NULL;
      g_autoptr(GBytes) exported = NULL;
      g_autoptr(GError) local = NULL;
      gpgme_ctx_t ctx;
      gpgme_data_t out = NULL;
      gpgme_error_t err;

      passphrase = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      /* gpg-agent always asks for the passphrase before it lets a secret
       * key out, even when cached (CACHE_MODE_IGNORE); the loopback
       * callback answers with the keyring's copy. */
      ctx = sm_certstore_new_context_with_passphrase (store, SM_PROTOCOL_OPENPGP, passphrase, error);
      if (ctx == NULL)
        return FALSE;
      gpgme_set_armor (ctx, 1);
      err = gpgme_data_new (&out);
      if (!err)
        err = gpgme_op_export (ctx, key->subkeys->fpr, GPGME_EXPORT_MODE_SECRET, out);
      gpgme_release (ctx);
      if (err)
        {
          gpgme_data_release (out);
          if (passphrase == NULL)
            g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_LOCKED,
                         _("The passphrase of your OpenPGP key %s is not in the keyring, so it cannot be backed up; re-import the key with `securemail keys import FILE`"),
                         key->subkeys->fpr);
          else
            sm_certstore_set_gpgme_error (error, err, _("Exporting your OpenPGP key"));
          return FALSE;
        }
      exported = gpgme_data_to_bytes (out);
      g_variant_builder_add (builder, "(sss@ay)", key->subkeys->fpr, key->subkeys->keygrip,
                             passphrase ? passphrase : "", bytes_variant (exported));
    }
  return TRUE;
}

static gboolean
export_smime_keys (SmCertstore     *store,
                   GVariantBuilder *builder,
                   GError         **error)
{
  g_autoptr(GPtrArray) keys = sm_certstore_list_gpgme_keys (store, SM_PROTOCOL_SMIME, NULL, TRUE, error);

  if (keys == NULL)
    return FALSE;
  for (guint i = 0; i < keys->len; i++)
    {
      gpgme_key_t key = keys->pdata[i];
      const char *args[] = { "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "3",
                             "--export-secret-key-p12", key->subkeys->fpr, NULL };
      g_autoptr(SmSecret) passphrase = NULL;
      g_autoptr(GBytes) p12 = NULL;
      g_autoptr(GError) local = NULL;

      passphrase = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      /* An unprotected key still needs a p12 password; a fresh one then also
       * protects it after restore. */
      if (passphrase == NULL && (passphrase = sm_passphrase_generate (error)) == NULL)
        return FALSE;
      /* gpgsm reads fd 3 once and answers both the agent's "unprotect" and
       * its own "protect the p12" question with it. */
      if (!sm_gnupg_tool_run (sm_certstore_get_home (store), "gpgsm", args, NULL, passphrase,
                              &p12, NULL, &local)
          || g_bytes_get_size (p12) == 0)
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_LOCKED,
                       _("Your S/MIME key %s could not be exported for the backup (%s); check that its passphrase is in the keyring with `securemail unlock`"),
                       key->subkeys->fpr, local ? local->message : _("empty export"));
          return FALSE;
        }
      g_variant_builder_add (builder, "(sss@ay)", key->subkeys->fpr, key->subkeys->keygrip,
                             passphrase, bytes_variant (p12));
      /* No wipe here: the variant shares p12's buffer. The whole payload is
       * wiped once it is encrypted. */
    }
  return TRUE;
}

static GBytes *
export_all_public (SmCertstore *store,
                   SmProtocol   protocol,
                   GError     **error)
{
  gpgme_ctx_t ctx = sm_certstore_new_context (store, protocol, error);
  gpgme_data_t out = NULL;
  gpgme_error_t err;

  if (ctx == NULL)
    return NULL;
  gpgme_set_armor (ctx, 1);
  err = gpgme_data_new (&out);
  if (!err)
    err = gpgme_op_export (ctx, NULL, 0, out);
  gpgme_release (ctx);
  if (err)
    {
      gpgme_data_release (out);
      sm_certstore_set_gpgme_error (error, err, _("Exporting public keys for the backup"));
      return NULL;
    }
  return gpgme_data_to_bytes (out);
}

static GBytes *
read_optional_file (const char *dir,
                    const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  char *contents = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return g_bytes_new (NULL, 0);
  return g_bytes_new_take (contents, len);
}

static gboolean
add_crls (SmCertstore     *store,
          GVariantBuilder *builder,
          GError         **error)
{
  g_autofree char *dir = sm_certstore_get_crl_dir (store);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return TRUE;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autoptr(GBytes) bytes = NULL;

      if (!g_str_has_suffix (name, ".crl"))
        continue;
      bytes = read_optional_file (dir, name);
      g_variant_builder_add (builder, "(s@ay)", name, bytes_variant (bytes));
    }
  return TRUE;
}

/* Serialises the whole payload: magic line, SHA-256 of the variant, variant.
 * The checksum is belt and braces over gpg's MDC: it also catches a bug of
 * ours that produced a well-encrypted but inconsistent payload. */
static GBytes *
build_payload (SmCertstore *store,
               GError     **error)
{
  const char *ownertrust_args[] = { "--batch", "--export-ownertrust", NULL };
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  g_auto(GVariantBuilder) pgp_keys = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE (SM_BACKUP_KEY_TUPLES));
  g_auto(GVariantBuilder) cms_keys = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE (SM_BACKUP_KEY_TUPLES));
  g_auto(GVariantBuilder) crls = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(say)"));
  g_autoptr(GBytes) pgp_public = NULL;
  g_autoptr(GBytes) cms_certs = NULL;
  g_autoptr(GBytes) ownertrust = NULL;
  g_autoptr(GBytes) anchors = NULL;
  g_autoptr(GVariant) variant = NULL;
  g_autofree char *checksum = NULL;
  g_autofree char *header = NULL;
  guint8 *buf;
  gsize vsize, hlen;

  if (!export_openpgp_keys (store, &pgp_keys, error)
      || !export_smime_keys (store, &cms_keys, error)
      || (pgp_public = export_all_public (store, SM_PROTOCOL_OPENPGP, error)) == NULL
      || (cms_certs = export_all_public (store, SM_PROTOCOL_SMIME, error)) == NULL
      || !add_crls (store, &crls, error))
    return NULL;
  if (!sm_gnupg_tool_run (sm_certstore_get_home (store), "gpg", ownertrust_args, NULL, NULL,
                          &ownertrust, NULL, error))
    return NULL;
  anchors = read_optional_file (sm_certstore_get_home (store), SM_TRUST_ANCHORS_FILE);

  g_variant_builder_add (&dict, "{sv}", "created", g_variant_new_int64 (g_get_real_time () / G_USEC_PER_SEC));
  g_variant_builder_add (&dict, "{sv}", "openpgp-keys", g_variant_builder_end (&pgp_keys));
  g_variant_builder_add (&dict, "{sv}", "openpgp-public", bytes_variant (pgp_public));
  g_variant_builder_add (&dict, "{sv}", "openpgp-ownertrust", bytes_variant (ownertrust));
  g_variant_builder_add (&dict, "{sv}", "smime-keys", g_variant_builder_end (&cms_keys));
  g_variant_builder_add (&dict, "{sv}", "smime-certs", bytes_variant (cms_certs));
  g_variant_builder_add (&dict, "{sv}", "anchors", bytes_variant (anchors));
  g_variant_builder_add (&dict, "{sv}", "crls", g_variant_builder_end (&crls));
  variant = g_variant_ref_sink (g_variant_builder_end (&dict));

  vsize = g_variant_get_size (variant);
  buf = g_malloc (vsize);
  g_variant_store (variant, buf);
  checksum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, buf, vsize);
  header = g_strdup_printf ("%s %d\n%s\n", SM_BACKUP_MAGIC, SM_BACKUP_VERSION, checksum);
  hlen = strlen (header);
  buf = g_realloc (buf, hlen + vsize);
  memmove (buf + hlen, buf, vsize);
  memcpy (buf, header, hlen);
  /* The variant's own copy holds passphrases too; it is freed right here,
   * but wiping GVariant internals is not possible: keep its life short. */
  return g_bytes_new_take (buf, hlen + vsize);
}

gboolean
sm_backup_write (SmCertstore *store,
                 const char  *path,
                 SmSecret   **recovery_code,
                 GError     **error)
{
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(SmSecret) code = NULL;
  gpgme_ctx_t ctx = NULL;
  gpgme_data_t plain = NULL, cipher = NULL;
  gpgme_error_t err;
  g_autoptr(GBytes) encrypted = NULL;
  gsize len;
  const char *p;

  g_return_val_if_fail (SM_IS_CERTSTORE (store), FALSE);
  g_return_val_if_fail (path != NULL && recovery_code != NULL, FALSE);

  payload = build_payload (store, error);
  if (payload == NULL)
    return FALSE;
  code = sm_backup_generate_recovery_code (error);
  if (code == NULL)
    {
      wipe_bytes (payload);
      return FALSE;
    }

  ctx = sm_certstore_new_context_with_passphrase (store, SM_PROTOCOL_OPENPGP, code, error);
  if (ctx == NULL)
    {
      wipe_bytes (payload);
      return FALSE;
    }
  gpgme_set_armor (ctx, 1);
  /* The recovery code must not linger in gpg-agent's cache. */
  gpgme_set_ctx_flag (ctx, "no-symkey-cache", "1");
  p = g_bytes_get_data (payload, &len);
  err = gpgme_data_new_from_mem (&plain, p, len, 0);
  if (!err)
    err = gpgme_data_new (&cipher);
  if (!err)
    err = gpgme_op_encrypt (ctx, NULL, GPGME_ENCRYPT_SYMMETRIC, plain, cipher);
  gpgme_data_release (plain);
  gpgme_release (ctx);
  wipe_bytes (payload);
  if (err)
    {
      gpgme_data_release (cipher);
      return sm_certstore_set_gpgme_error (error, err, _("Encrypting the backup"));
    }
  encrypted = gpgme_data_to_bytes (cipher);
  p = g_bytes_get_data (encrypted, &len);
  if (!g_file_set_contents_full (path, p, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    {
      g_prefix_error (error, _("Writing the backup: "));
      return FALSE;
    }
  *recovery_code = g_steal_pointer (&code);
  return TRUE;
}

/* ---- restoring ------------------------------------------------------------------- */

static gboolean
decrypt_backup (SmCertstore *tmp_store,
                GBytes      *file,
                const char  *code,
                GBytes     **payload,
                GError     **error)
{
  gpgme_ctx_t ctx;
  gpgme_data_t in = NULL, out = NULL;
  gpgme_error_t err;
  gpgme_decrypt_result_t result;
  gsize len;
  const char *p = g_bytes_get_data (file, &len);
  gboolean nomdc = FALSE;

  ctx = sm_certstore_new_context_with_passphrase (tmp_store, SM_PROTOCOL_OPENPGP, code, error);
  if (ctx == NULL)
    return FALSE;
  gpgme_set_ctx_flag (ctx, "no-symkey-cache", "1");
  err = gpgme_data_new_from_mem (&in, p, len, 0);
  if (!err)
    err = gpgme_data_new (&out);
  if (!err)
    err = gpgme_op_decrypt (ctx, in, out);
  result = err ? NULL : gpgme_op_decrypt_result (ctx);
  if (result != NULL && result->legacy_cipher_nomdc)
    nomdc = TRUE;
  gpgme_data_release (in);
  gpgme_release (ctx);

  if (err || nomdc)
    {
      gpgme_error_t code_err = gpgme_err_code (err);

      /* Discard whatever gpg produced before it noticed the problem. */
      if (out != NULL)
        g_bytes_unref (gpgme_data_to_bytes (out));
      if (code_err == GPG_ERR_BAD_PASSPHRASE || code_err == GPG_ERR_BAD_KEY
          || code_err == GPG_ERR_NO_SECKEY || code_err == GPG_ERR_DECRYPT_FAILED)
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE,
                     _("The recovery code does not open this backup; check each group of 4 digits and try again (if it still fails, the file may have been altered: use another copy)"));
      else
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED,
                     _("The backup file is damaged, truncated or not a SecureMail backup (%s); nothing was restored, use another copy of the backup"),
                     nomdc ? _("no integrity protection") : gpgme_strerror (err));
      return FALSE;
    }
  *payload = gpgme_data_to_bytes (out);
  return TRUE;
}

static GVariant *
parse_payload (GBytes  *payload,
               GError **error)
{
  gsize len;
  const char *p = g_bytes_get_data (payload, &len);
  const char *nl1, *nl2;
  g_autofree char *magic = NULL;
  g_autofree char *want = NULL;
  g_autofree char *checksum = NULL;
  g_autofree char *actual = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GVariant) variant = NULL;

  want = g_strdup_printf ("%s %d", SM_BACKUP_MAGIC, SM_BACKUP_VERSION);
  nl1 = p ? memchr (p, '\n', MIN (len, 128)) : NULL;
  nl2 = nl1 ? memchr (nl1 + 1, '\n', MIN (len - (nl1 + 1 - p), 128)) : NULL;
  if (nl1 == NULL || nl2 == NULL)
    goto damaged;
  magic = g_strndup (p, nl1 - p);
  if (!g_str_equal (magic, want))
    {
      if (g_str_has_prefix (magic, SM_BACKUP_MAGIC))
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_UNSUPPORTED,
                       _("This backup was written by a newer SecureMail (%s); update SecureMail and restore again"),
                       magic);
          return NULL;
        }
      goto damaged;
    }
  checksum = g_strndup (nl1 + 1, nl2 - nl1 - 1);
  body = g_bytes_new_from_bytes (payload, nl2 + 1 - p, len - (nl2 + 1 - p));
  actual = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, body);
  if (!g_str_equal (actual, checksum))
    goto damaged;

  variant = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, body, FALSE));
  if (!g_variant_is_normal_form (variant))
    goto damaged;
  return g_steal_pointer (&variant);

damaged:
  g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED,
               _("The backup's content is inconsistent; nothing was restored, use another copy of the backup"));
  return NULL;
}

static GBytes *
lookup_bytes (GVariant   *dict,
              const char *key)
{
  g_autoptr(GVariant) v = g_variant_lookup_value (dict, key, G_VARIANT_TYPE_BYTESTRING);

  return v ? g_variant_get_data_as_bytes (v) : NULL;
}

/* A short-lived record of what we restore, to check and to put into the
 * keyring at the end. */
typedef struct {
  SmProtocol protocol;
  char *fingerprint;
  char *keygrip;
  SmSecret *passphrase;
} RestoredKey;

static void
restored_key_free (RestoredKey *rk)
{
  g_free (rk->fingerprint);
  g_free (rk->keygrip);
  sm_secret_free (rk->passphrase);
  g_free (rk);
}

static gboolean
import_bytes_if_any (SmCertstore *tmp,
                     SmProtocol   protocol,
                     GBytes      *bytes,
                     GError     **error)
{
  g_autoptr(GPtrArray) fprs = NULL;

  if (bytes == NULL || g_bytes_get_size (bytes) == 0)
    return TRUE;
  fprs = sm_certstore_import_data (tmp, protocol, bytes, NULL, error);
  if (fprs == NULL && error != NULL
      && g_error_matches (*error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA))
    {
      /* An export of an empty keyring is empty armor: nothing to import. */
      g_clear_error (error);
      return TRUE;
    }
  return fprs != NULL;
}

static gboolean
import_payload (SmCertstore *tmp,
                GVariant    *dict,
                GPtrArray   *restored,
                GError     **error)
{
  const char *home = sm_certstore_get_home (tmp);
  g_autoptr(GVariant) pgp_keys = g_variant_lookup_value (dict, "openpgp-keys", G_VARIANT_TYPE (SM_BACKUP_KEY_TUPLES));
  g_autoptr(GVariant) cms_keys = g_variant_lookup_value (dict, "smime-keys", G_VARIANT_TYPE (SM_BACKUP_KEY_TUPLES));
  g_autoptr(GVariant) crls = g_variant_lookup_value (dict, "crls", G_VARIANT_TYPE ("a(say)"));
  g_autoptr(GBytes) pgp_public = lookup_bytes (dict, "openpgp-public");
  g_autoptr(GBytes) ownertrust = lookup_bytes (dict, "openpgp-ownertrust");
  g_autoptr(GBytes) cms_certs = lookup_bytes (dict, "smime-certs");
  g_autoptr(GBytes) anchors = lookup_bytes (dict, "anchors");
  GVariantIter iter;
  const char *fpr, *grip, *pass;
  GVariant *blob;

  if (pgp_keys == NULL || cms_keys == NULL || crls == NULL)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED,
                   _("The backup's content is incomplete; nothing was restored, use another copy of the backup"));
      return FALSE;
    }

  /* Certificates first, so the p12 chains and anchors have their CAs. */
  if (!import_bytes_if_any (tmp, SM_PROTOCOL_OPENPGP, pgp_public, error)
      || !import_bytes_if_any (tmp, SM_PROTOCOL_SMIME, cms_certs, error))
    return FALSE;

  g_variant_iter_init (&iter, pgp_keys);
  while (g_variant_iter_next (&iter, "(&s&s&s@ay)", &fpr, &grip, &pass, &blob))
    {
      g_autoptr(GVariant) owned_blob = blob;
      g_autoptr(GBytes) data = g_variant_get_data_as_bytes (owned_blob);
      g_autoptr(GPtrArray) fprs = sm_certstore_import_data (tmp, SM_PROTOCOL_OPENPGP, data, pass, error);
      RestoredKey *rk;

      if (fprs == NULL)
        return FALSE;
      rk = g_new0 (RestoredKey, 1);
      rk->protocol = SM_PROTOCOL_OPENPGP;
      rk->fingerprint = g_strdup (fpr);
      rk->keygrip = g_strdup (grip);
      rk->passphrase = *pass ? sm_secret_dup (pass) : NULL;
      g_ptr_array_add (restored, rk);
    }

  g_variant_iter_init (&iter, cms_keys);
  while (g_variant_iter_next (&iter, "(&s&s&s@ay)", &fpr, &grip, &pass, &blob))
    {
      g_autoptr(GVariant) owned_blob = blob;
      g_autoptr(GBytes) data = g_variant_get_data_as_bytes (owned_blob);
      g_autoptr(GPtrArray) fprs = sm_certstore_gpgsm_import_p12 (tmp, data, pass, NULL, error);
      RestoredKey *rk;

      if (fprs == NULL)
        return FALSE;
      rk = g_new0 (RestoredKey, 1);
      rk->protocol = SM_PROTOCOL_SMIME;
      rk->fingerprint = g_strdup (fpr);
      rk->keygrip = g_strdup (grip);
      rk->passphrase = sm_secret_dup (pass);
      g_ptr_array_add (restored, rk);
    }

  if (ownertrust != NULL && g_bytes_get_size (ownertrust) > 0)
    {
      const char *args[] = { "--batch", "--import-ownertrust", NULL };

      if (!sm_gnupg_tool_run (home, "gpg", args, ownertrust, NULL, NULL, NULL, error))
        return FALSE;
    }

  if (anchors != NULL && g_bytes_get_size (anchors) > 0)
    {
      g_autofree char *path = g_build_filename (home, SM_TRUST_ANCHORS_FILE, NULL);
      g_autoptr(GPtrArray) list = NULL;
      gsize len;
      const char *p = g_bytes_get_data (anchors, &len);

      /* Write, re-read (validates it), and regenerate trustlist.txt. */
      if (!g_file_set_contents_full (path, p, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error)
          || (list = sm_trust_anchors_load (home, error)) == NULL
          || !sm_trust_anchors_save (home, list, NULL, error))
        return FALSE;
    }

  {
    g_autofree char *dir = sm_certstore_get_crl_dir (tmp);
    const char *name;

    g_variant_iter_init (&iter, crls);
    while (g_variant_iter_next (&iter, "(&s@ay)", &name, &blob))
      {
        g_autoptr(GVariant) owned_blob = blob;
        g_autofree char *path = NULL;
        gsize len;
        const char *p = g_variant_get_fixed_array (owned_blob, &len, 1);

        /* Only our own naming (hex + .crl): a crafted name must not escape
         * the folder. */
        if (strlen (name) != 68 || !g_str_has_suffix (name, ".crl")
            || strspn (name, "0123456789abcdef") != 64)
          continue;
        if (g_mkdir_with_parents (dir, 0700) < 0)
          continue;
        path = g_build_filename (dir, name, NULL);
        if (!g_file_set_contents_full (path, p, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
          return FALSE;
      }
  }

  /* Everything the manifest promises must be there before we swap. */
  for (guint i = 0; i < restored->len; i++)
    {
      RestoredKey *rk = restored->pdata[i];
      gpgme_key_t key = sm_certstore_get_gpgme_key (tmp, rk->protocol, rk->fingerprint, TRUE, NULL);
      gboolean ok = key != NULL && g_strcmp0 (key->subkeys->keygrip, rk->keygrip) == 0;

      if (key != NULL)
        gpgme_key_unref (key);
      if (!ok)
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED,
                       _("The key %s from the backup could not be restored; nothing was changed, send a `securemail support-report` to the helpdesk"),
                       rk->fingerprint);
          return FALSE;
        }
    }
  return TRUE;
}

/* A home with no key or certificate at all (a fresh machine, or one where
 * the CLI only just created the folder) may be replaced; anything else is
 * moved aside, never deleted. */
static gboolean
home_is_empty (SmCertstore *store)
{
  for (int p = SM_PROTOCOL_OPENPGP; p <= SM_PROTOCOL_SMIME; p++)
    {
      g_autoptr(GPtrArray) keys = sm_certstore_list_gpgme_keys (store, p, NULL, FALSE, NULL);

      if (keys == NULL || keys->len > 0)
        return FALSE;
    }
  {
    g_autofree char *keydir = g_build_filename (sm_certstore_get_home (store), "private-keys-v1.d", NULL);
    g_autoptr(GDir) d = g_dir_open (keydir, 0, NULL);

    /* A pending S/MIME request's key lives only here. */
    if (d != NULL && g_dir_read_name (d) != NULL)
      return FALSE;
  }
  return TRUE;
}

gboolean
sm_backup_restore (SmCertstore *store,
                   const char  *path,
                   const char  *recovery_code,
                   char       **previous_home,
                   GError     **error)
{
  const char *home;
  g_autofree char *parent = NULL;
  g_autofree char *tmp_home = NULL;
  g_autofree char *aside = NULL;
  g_autofree char *contents = NULL;
  g_autoptr(SmSecret) code = NULL;
  g_autoptr(GBytes) file = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GVariant) dict = NULL;
  g_autoptr(SmCertstore) tmp = NULL;
  g_autoptr(GPtrArray) restored = g_ptr_array_new_with_free_func ((GDestroyNotify) restored_key_free);
  g_autoptr(GError) local = NULL;
  gsize len;
  gboolean ok = FALSE;
  gboolean empty;

  g_return_val_if_fail (SM_IS_CERTSTORE (store), FALSE);
  g_return_val_if_fail (path != NULL && recovery_code != NULL, FALSE);

  code = sm_backup_normalize_recovery_code (recovery_code, error);
  if (code == NULL)
    return FALSE;
  if (!g_file_get_contents (path, &contents, &len, &local))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_IO,
                   _("Cannot read the backup file (%s); check the path"), local->message);
      return FALSE;
    }
  if (len == 0 || len > SM_BACKUP_MAX_SIZE)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED,
                   _("The file is empty or too large to be a SecureMail backup; check that it is the right file"));
      return FALSE;
    }
  file = g_bytes_new_take (g_steal_pointer (&contents), len);

  home = sm_certstore_get_home (store);
  parent = g_path_get_dirname (home);
  if (g_mkdir_with_parents (parent, 0700) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot create %s (%s)"), parent, g_strerror (saved_errno));
      return FALSE;
    }
  /* Next to the real home, so the final rename stays on one file system. */
  tmp_home = g_build_filename (parent, "gnupg.restore-XXXXXX", NULL);
  if (g_mkdtemp_full (tmp_home, 0700) == NULL)
    {
      int saved_errno = errno;

      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot create a temporary key store in %s (%s)"), parent, g_strerror (saved_errno));
      return FALSE;
    }
  {
    /* Carry local agent tuning (e.g. s2k-count) over to the new home. */
    g_autofree char *src = g_build_filename (home, "gpg-agent.conf", NULL);
    g_autofree char *dst = g_build_filename (tmp_home, "gpg-agent.conf", NULL);
    g_autofree char *conf = NULL;
    gsize conf_len;

    if (g_file_get_contents (src, &conf, &conf_len, NULL))
      g_file_set_contents_full (dst, conf, (gssize) conf_len, G_FILE_SET_CONTENTS_NONE, 0600, NULL);
  }

  tmp = sm_certstore_new_for_home (tmp_home, error);
  if (tmp == NULL
      || !decrypt_backup (tmp, file, code, &payload, error)
      || (dict = parse_payload (payload, error)) == NULL
      || !import_payload (tmp, dict, restored, error))
    goto out;

  /* Passphrases into the keyring before the swap: if the keyring is not
   * available, the restored keys would be locked forever. Items are keyed
   * by keygrip, so a retry simply overwrites them. */
  for (guint i = 0; i < restored->len; i++)
    {
      RestoredKey *rk = restored->pdata[i];

      if (rk->passphrase != NULL
          && !sm_passphrase_store_save (rk->keygrip, rk->fingerprint, rk->protocol, rk->passphrase,
                                        NULL, error))
        goto out;
    }

  empty = home_is_empty (store);
  sm_gnupg_tool_kill_agent (tmp_home);
  sm_gnupg_tool_kill_agent (home);
  if (g_file_test (home, G_FILE_TEST_EXISTS))
    {
      if (empty)
        rm_rf (home);
      else
        {
          g_autoptr(GDateTime) now = g_date_time_new_now_local ();
          g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");

          aside = g_strdup_printf ("%s.before-restore-%s", home, stamp);
          if (g_rename (home, aside) < 0)
            {
              int saved_errno = errno;

              g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                           _("Cannot move the current key store %s aside (%s); nothing was changed"),
                           home, g_strerror (saved_errno));
              g_clear_pointer (&aside, g_free);
              goto out;
            }
        }
    }
  if (g_rename (tmp_home, home) < 0)
    {
      int saved_errno = errno;

      if (aside != NULL)
        g_rename (aside, home);
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot put the restored key store in place (%s); nothing was changed"),
                   g_strerror (saved_errno));
      goto out;
    }
  g_clear_pointer (&tmp_home, g_free);

  /* The new home's agent starts with an empty cache. */
  if (!sm_certstore_unlock (store, NULL, NULL, &local))
    g_message (_("Restored, but the keys could not be unlocked yet (%s); run `securemail unlock`"),
               local->message);
  if (previous_home != NULL)
    *previous_home = g_steal_pointer (&aside);
  ok = TRUE;

out:
  if (tmp_home != NULL)
    {
      sm_gnupg_tool_kill_agent (tmp_home);
      rm_rf (tmp_home);
    }
  if (payload != NULL)
    wipe_bytes (payload);
  return ok;
}
