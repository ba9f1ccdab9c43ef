/* sm-certstore.c: the project's GnuPG home, keys, certificates, anchors. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "sm-certstore-private.h"
#include "sm-crl.h"
#include "sm-gnupg-tool.h"
#include "sm-passphrase-store.h"
#include "sm-pkcs12.h"
#include "sm-trust-anchors.h"

/* A CA chain longer than this is a loop or an attack, not a business PKI. */
#define SM_CERTSTORE_MAX_CHAIN_DEPTH 8
/* Re-encodings of a PKCS#12 tried before giving up (see import_own_p12). */
#define SM_CERTSTORE_P12_ATTEMPTS 5
/* Files in the administrator's anchor folder we look at. */
#define SM_CERTSTORE_MAX_POLICY_FILES 256

struct _SmCertstore
{
  GObject parent_instance;

  char *home;
};

G_DEFINE_TYPE (SmCertstore, sm_certstore, G_TYPE_OBJECT)

static void
sm_certstore_finalize (GObject *object)
{
  SmCertstore *self = SM_CERTSTORE (object);

  g_free (self->home);
  G_OBJECT_CLASS (sm_certstore_parent_class)->finalize (object);
}

static void
sm_certstore_class_init (SmCertstoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_certstore_finalize;
}

static void
sm_certstore_init (SmCertstore *self)
{
}

static gint64
now_seconds (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

static void
gpgme_key_unref_cb (gpointer key)
{
  gpgme_key_unref (key);
}

/* ---- home ---------------------------------------------------------------- */

/* The first word of a config line: the option it sets. */
static gboolean
same_option (const char *line,
             const char *option_line)
{
  gsize len = strcspn (option_line, " \t");

  return strncmp (line, option_line, len) == 0
         && (line[len] == '\0' || line[len] == ' ' || line[len] == '\t');
}

/* Appends each of @lines missing from the config file @path, and each of
 * @defaults whose option is not set at all (a user's or test's own value
 * wins). Lines the user or a test put there (debug options) are kept. */
static gboolean
ensure_config_lines (const char        *path,
                     const char        *header,
                     const char *const *lines,
                     const char *const *defaults,
                     GError           **error)
{
  g_autofree char *contents = NULL;
  g_autoptr(GString) out = NULL;
  g_auto(GStrv) existing = NULL;
  g_autoptr(GPtrArray) wanted = g_ptr_array_new ();
  gboolean changed = FALSE;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    contents = g_strdup ("");
  out = g_string_new (contents);
  existing = g_strsplit (contents, "\n", -1);
  for (guint j = 0; existing[j] != NULL; j++)
    g_strstrip (existing[j]);

  for (guint i = 0; lines[i] != NULL; i++)
    g_ptr_array_add (wanted, (gpointer) lines[i]);
  for (guint i = 0; defaults != NULL && defaults[i] != NULL; i++)
    {
      gboolean set = FALSE;

      for (guint j = 0; existing[j] != NULL && !set; j++)
        set = same_option (existing[j], defaults[i]);
      if (!set)
        g_ptr_array_add (wanted, (gpointer) defaults[i]);
    }

  for (guint i = 0; i < wanted->len; i++)
    {
      const char *line = wanted->pdata[i];
      gboolean present = FALSE;

      for (guint j = 0; existing[j] != NULL && !present; j++)
        present = g_str_equal (existing[j], line);
      if (present)
        continue;
      if (!changed && out->len == 0)
        g_string_append_printf (out, "# %s\n", header);
      if (out->len > 0 && out->str[out->len - 1] != '\n')
        g_string_append_c (out, '\n');
      g_string_append_printf (out, "%s\n", line);
      changed = TRUE;
    }

  if (!changed)
    return TRUE;
  return g_file_set_contents_full (path, out->str, (gssize) out->len,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

gboolean
sm_certstore_prepare_home (const char *home,
                           GError    **error)
{
  /* The agent must accept presets (the keyring hands it passphrases) and
   * loopback (key generation and import pass passphrases themselves). */
  static const char *const agent_lines[] = {
    "allow-preset-passphrase",
    "allow-loopback-pinentry",
    /* Trust anchors are SecureMail's business (certs trust, the admin
     * policy): the agent must never pop up "Do you trust this root?". */
    "no-allow-mark-trusted",
    /* Never a graphical prompt: the proxy is a daemon and gpgsm cannot be
     * told pinentry-mode=error, so with a desktop DISPLAY a locked S/MIME key
     * opened pinentry-gnome3 and the worker waited a minute for a timeout
     * (seen in CI under Xvfb).  Passphrases come from the keyring presets
     * or loopback; the text pinentry fails at once when there is no
     * terminal, which maps to "run securemail unlock". */
    "pinentry-program /usr/bin/pinentry-curses",
    NULL
  };
  /* Every key the store protects has a generated full-entropy passphrase
   * (even imported OpenPGP keys are re-protected, reprotect_openpgp()), which
   * no iteration count makes any harder to guess: the agent's ~100 ms
   * default stretching only cost every decryption and signature. A value
   * already in the file (a user's, a test's) is kept. */
  static const char *const agent_defaults[] = {
    "s2k-count " G_STRINGIFY (SM_CERTSTORE_AGENT_S2K_COUNT),
    NULL
  };
  /* No dirmngr: nothing here fetches from the network. CRLs are checked by
   * the certstore itself from imported files (sm-crl.c), so gpgsm's own
   * check, which would need dirmngr, is off. */
  static const char *const gpgsm_lines[] = {
    "disable-dirmngr",
    "disable-crl-checks",
    NULL
  };
  g_autofree char *agent_conf = NULL;
  g_autofree char *gpgsm_conf = NULL;

  if (g_mkdir_with_parents (home, 0700) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot create the key store folder %s (%s); check the permissions of its parent folder"),
                   home, g_strerror (saved_errno));
      return FALSE;
    }
  /* GnuPG refuses (warns about) homes others can read. */
  if (g_chmod (home, 0700) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot protect the key store folder %s (%s); make sure it belongs to you"),
                   home, g_strerror (saved_errno));
      return FALSE;
    }

  agent_conf = g_build_filename (home, "gpg-agent.conf", NULL);
  gpgsm_conf = g_build_filename (home, "gpgsm.conf", NULL);
  if (!ensure_config_lines (agent_conf, "Managed by SecureMail: needed for passphrases from the keyring",
                            agent_lines, agent_defaults, error)
      || !ensure_config_lines (gpgsm_conf, "Managed by SecureMail: offline, CRLs checked by SecureMail",
                               gpgsm_lines, NULL, error))
    {
      g_prefix_error (error, _("Cannot write the key store settings: "));
      return FALSE;
    }
  return TRUE;
}

char *
sm_certstore_default_home (void)
{
  return g_build_filename (g_get_user_data_dir (), "securemail", "gnupg", NULL);
}

static gboolean
check_engines (GError **error)
{
  gpgme_error_t err;

  sm_gnupg_init ();
  err = gpgme_engine_check_version (GPGME_PROTOCOL_OpenPGP);
  if (!err)
    err = gpgme_engine_check_version (GPGME_PROTOCOL_CMS);
  if (err)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_ENGINE,
                   _("gpg or gpgsm is missing or too old (%s); install the `gnupg` and `gpgsm` packages"),
                   gpgme_strerror (err));
      return FALSE;
    }
  return TRUE;
}

SmCertstore *
sm_certstore_new_for_home (const char *home,
                           GError    **error)
{
  SmCertstore *self;

  g_return_val_if_fail (home != NULL && g_path_is_absolute (home), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_engines (error) || !sm_certstore_prepare_home (home, error))
    return NULL;
  self = g_object_new (SM_TYPE_CERTSTORE, NULL);
  self->home = g_strdup (home);
  return self;
}

SmCertstore *
sm_certstore_new (GError **error)
{
  g_autofree char *home = sm_certstore_default_home ();
  g_autoptr(SmCertstore) self = sm_certstore_new_for_home (home, error);

  if (self == NULL || !sm_certstore_apply_policy (self, error))
    return NULL;
  return g_steal_pointer (&self);
}

const char *
sm_certstore_get_home (SmCertstore *self)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  return self->home;
}

char *
sm_certstore_get_crl_dir (SmCertstore *self)
{
  return g_build_filename (self->home, "securemail-crls", NULL);
}

void
sm_certstore_shutdown_agent (SmCertstore *self)
{
  g_return_if_fail (SM_IS_CERTSTORE (self));
  sm_gnupg_tool_kill_agent (self->home);
}

/* ---- contexts -------------------------------------------------------------- */

/* Answers a loopback passphrase prompt: the passphrase and a newline. */
static gpgme_error_t
write_passphrase (int         fd,
                  const char *passphrase)
{
  if (gpgme_io_writen (fd, passphrase, strlen (passphrase)) < 0
      || gpgme_io_writen (fd, "\n", 1) < 0)
    return gpgme_error_from_syserror ();
  return 0;
}

static gpgme_error_t
passphrase_cb (void       *hook,
               const char *uid_hint,
               const char *passphrase_info,
               int         prev_was_bad,
               int         fd)
{
  const char *passphrase = hook;

  /* Never loop on a wrong passphrase: fail and let the caller report it. */
  if (prev_was_bad || passphrase == NULL)
    return gpgme_error (prev_was_bad ? GPG_ERR_BAD_PASSPHRASE : GPG_ERR_NO_PASSPHRASE);
  return write_passphrase (fd, passphrase);
}

/* GPGME runs `gpg --version` or `gpgsm --version` each time a context is
 * given a home of its own (gpgme_ctx_set_engine_info): one more process per
 * operation, measured as 86 extra gpgsm runs for 20 S/MIME messages.  The
 * first home a process opens becomes GPGME's default for both engines
 * instead, so its contexts need no home of their own; other homes (tests,
 * backup restore) still set theirs per context. */
static GMutex default_home_lock;
static char *default_home_path;

static gboolean
uses_default_home (const char *home)
{
  gboolean same;

  g_mutex_lock (&default_home_lock);
  if (default_home_path == NULL
      && gpgme_set_engine_info (GPGME_PROTOCOL_OpenPGP, NULL, home) == 0
      && gpgme_set_engine_info (GPGME_PROTOCOL_CMS, NULL, home) == 0)
    default_home_path = g_strdup (home);
  same = g_strcmp0 (default_home_path, home) == 0;
  g_mutex_unlock (&default_home_lock);
  return same;
}

static gpgme_ctx_t
new_context (SmCertstore *self,
             SmProtocol   protocol,
             gboolean     loopback,
             const char  *passphrase,
             GError     **error)
{
  gpgme_ctx_t ctx = NULL;
  gpgme_protocol_t proto = sm_protocol_to_gpgme (protocol);
  gboolean default_home = uses_default_home (self->home);
  gpgme_error_t err;

  err = gpgme_new (&ctx);
  if (!err)
    err = gpgme_set_protocol (ctx, proto);
  if (!err && !default_home)
    err = gpgme_ctx_set_engine_info (ctx, proto, NULL, self->home);
  if (err)
    {
      if (ctx != NULL)
        gpgme_release (ctx);
      sm_certstore_set_gpgme_error (error, err, _("Opening the key store"));
      return NULL;
    }

  if (loopback && protocol == SM_PROTOCOL_OPENPGP)
    {
      gpgme_set_pinentry_mode (ctx, GPGME_PINENTRY_MODE_LOOPBACK);
      /* The callback's hook is borrowed: callers keep @passphrase alive for
       * the context's lifetime. */
      gpgme_set_passphrase_cb (ctx, passphrase_cb, (void *) passphrase);
    }
  else
    {
      /* No pinentry ever: the proxy is a daemon, and a prompt per message is
       * exactly what the keyring presets avoid. A missing preset then fails
       * at once and maps to "run `securemail unlock`". */
      gpgme_set_pinentry_mode (ctx, GPGME_PINENTRY_MODE_ERROR);
    }
  return ctx;
}

gpgme_ctx_t
sm_certstore_new_context (SmCertstore *self,
                          SmProtocol   protocol,
                          GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  return new_context (self, protocol, FALSE, NULL, error);
}

gpgme_ctx_t
sm_certstore_new_context_with_passphrase (SmCertstore *self,
                                          SmProtocol   protocol,
                                          const char  *passphrase,
                                          GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (protocol == SM_PROTOCOL_OPENPGP, NULL);
  return new_context (self, protocol, TRUE, passphrase, error);
}

/* ---- listing -------------------------------------------------------------- */

GPtrArray *
sm_certstore_list_gpgme_keys (SmCertstore *self,
                              SmProtocol   protocol,
                              const char  *pattern,
                              gboolean     secret_only,
                              GError     **error)
{
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (gpgme_key_unref_cb);
  gpgme_ctx_t ctx;
  gpgme_keylist_mode_t mode = GPGME_KEYLIST_MODE_LOCAL | GPGME_KEYLIST_MODE_WITH_KEYGRIP;
  gpgme_error_t err;
  gpgme_key_t key;

  ctx = sm_certstore_new_context (self, protocol, error);
  if (ctx == NULL)
    return NULL;
  if (!secret_only)
    mode |= GPGME_KEYLIST_MODE_WITH_SECRET;
  /* gpgsm checks each chain up to trustlist.txt only when asked to. */
  if (protocol == SM_PROTOCOL_SMIME)
    mode |= GPGME_KEYLIST_MODE_VALIDATE;
  gpgme_set_keylist_mode (ctx, mode);

  err = gpgme_op_keylist_start (ctx, pattern, secret_only);
  while (!err)
    {
      err = gpgme_op_keylist_next (ctx, &key);
      if (!err)
        g_ptr_array_add (keys, key);
    }
  gpgme_release (ctx);
  if (gpgme_err_code (err) != GPG_ERR_EOF)
    {
      sm_certstore_set_gpgme_error (error, err, _("Listing keys"));
      return NULL;
    }
  return g_steal_pointer (&keys);
}

/* fingerprint -> DER certificate, for the CRL checks. One gpgsm export for
 * all certificates instead of one per certificate. */
static GHashTable *
export_cms_certs (SmCertstore *self,
                  GPtrArray   *gkeys,
                  GError     **error)
{
  g_autoptr(GHashTable) map = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                     (GDestroyNotify) g_bytes_unref);
  g_autofree gpgme_key_t *array = NULL;
  gpgme_ctx_t ctx;
  gpgme_data_t out = NULL;
  gpgme_error_t err;
  char *pem;
  size_t len;
  const char *p, *end;

  if (gkeys->len == 0)
    return g_steal_pointer (&map);

  array = g_new0 (gpgme_key_t, gkeys->len + 1);
  for (guint i = 0; i < gkeys->len; i++)
    array[i] = gkeys->pdata[i];

  ctx = sm_certstore_new_context (self, SM_PROTOCOL_SMIME, error);
  if (ctx == NULL)
    return NULL;
  gpgme_set_armor (ctx, 1);
  err = gpgme_data_new (&out);
  if (!err)
    err = gpgme_op_export_keys (ctx, array, 0, out);
  gpgme_release (ctx);
  if (err)
    {
      gpgme_data_release (out);
      sm_certstore_set_gpgme_error (error, err, _("Reading certificates"));
      return NULL;
    }

  pem = gpgme_data_release_and_get_mem (out, &len);
  p = pem;
  end = pem + len;
  while (p < end)
    {
      static const char begin_marker[] = "-----BEGIN CERTIFICATE-----";
      static const char end_marker[] = "-----END CERTIFICATE-----";
      const char *b = g_strstr_len (p, end - p, begin_marker);
      const char *e;
      g_autofree char *b64 = NULL;
      g_autofree guchar *der = NULL;
      gsize der_len;

      if (b == NULL)
        break;
      b += strlen (begin_marker);
      e = g_strstr_len (b, end - b, end_marker);
      if (e == NULL)
        break;
      b64 = g_strndup (b, e - b);
      der = g_base64_decode (b64, &der_len);
      if (der_len > 0)
        {
          g_autofree char *sha1 = g_compute_checksum_for_data (G_CHECKSUM_SHA1, der, der_len);
          char *upper = g_ascii_strup (sha1, -1);

          g_hash_table_replace (map, upper, g_bytes_new (der, der_len));
        }
      p = e + strlen (end_marker);
    }
  gpgme_free (pem);
  return g_steal_pointer (&map);
}

/* Sets revocation/status on S/MIME @infos from our CRLs, walking each chain
 * up to its root (the anchor itself is not checked: it is trusted by fiat). */
static void
apply_crl_checks (SmCertstore *self,
                  GPtrArray   *infos,
                  GHashTable  *ders,
                  GHashTable  *by_fpr)
{
  g_autofree char *crl_dir = sm_certstore_get_crl_dir (self);
  gint64 now = now_seconds ();

  for (guint i = 0; i < infos->len; i++)
    {
      SmKeyInfo *info = infos->pdata[i];
      const SmKeyInfo *cur = info;
      SmRevocation worst = SM_REVOCATION_GOOD;
      g_autofree char *worst_detail = NULL;
      gboolean checked_any = FALSE;

      if (info->protocol != SM_PROTOCOL_SMIME)
        continue;

      for (int depth = 0; cur != NULL && depth < SM_CERTSTORE_MAX_CHAIN_DEPTH; depth++)
        {
          GBytes *der;
          g_autofree char *detail = NULL;
          SmRevocation r;

          /* Self-signed: a root, the end of the chain. */
          if (cur->chain_id == NULL || g_ascii_strcasecmp (cur->chain_id, cur->fingerprint) == 0)
            break;
          der = g_hash_table_lookup (ders, cur->fingerprint);
          if (der == NULL)
            break;
          r = sm_crl_check (crl_dir, der, now, &detail);
          checked_any = TRUE;
          /* Order of badness: revoked > not checked > stale > good. */
          if ((r == SM_REVOCATION_REVOKED)
              || (r == SM_REVOCATION_NOT_CHECKED && worst != SM_REVOCATION_REVOKED)
              || (r == SM_REVOCATION_GOOD_STALE && worst == SM_REVOCATION_GOOD)
              || worst_detail == NULL)
            {
              if (!(worst == SM_REVOCATION_REVOKED && r != SM_REVOCATION_REVOKED))
                {
                  worst = r;
                  g_free (worst_detail);
                  worst_detail = g_steal_pointer (&detail);
                }
            }
          cur = g_hash_table_lookup (by_fpr, cur->chain_id);
        }

      if (!checked_any)
        continue;
      info->revocation = worst;
      if (worst == SM_REVOCATION_REVOKED)
        {
          info->status = SM_KEY_STATUS_REVOKED;
          g_free (info->status_detail);
          info->status_detail = g_steal_pointer (&worst_detail);
        }
      else if (worst != SM_REVOCATION_GOOD)
        {
          /* Say plainly that revocation was not (fully) checked. */
          char *joined = info->status_detail
            ? g_strdup_printf ("%s; %s", info->status_detail, worst_detail)
            : g_strdup (worst_detail);

          g_free (info->status_detail);
          info->status_detail = joined;
        }
    }
}

/* Snapshots of @gkeys with anchors and CRL results filled in. */
static GPtrArray *
make_infos (SmCertstore *self,
            SmProtocol   protocol,
            GPtrArray   *gkeys,
            GError     **error)
{
  g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_key_info_free);
  g_autoptr(GPtrArray) anchors = NULL;
  g_autoptr(GHashTable) by_fpr = NULL;
  g_autoptr(GHashTable) ders = NULL;
  gint64 now = now_seconds ();

  for (guint i = 0; i < gkeys->len; i++)
    g_ptr_array_add (infos, sm_key_info_new_from_gpgme (gkeys->pdata[i], now));
  if (protocol != SM_PROTOCOL_SMIME)
    return g_steal_pointer (&infos);

  anchors = sm_trust_anchors_load (self->home, error);
  if (anchors == NULL)
    return NULL;
  by_fpr = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < infos->len; i++)
    {
      SmKeyInfo *info = infos->pdata[i];

      g_hash_table_insert (by_fpr, info->fingerprint, info);
      for (guint j = 0; j < anchors->len; j++)
        {
          SmTrustAnchor *a = anchors->pdata[j];

          if (g_ascii_strcasecmp (a->fingerprint, info->fingerprint) == 0)
            {
              info->is_anchor = TRUE;
              info->admin_anchor = a->admin;
            }
        }
    }

  ders = export_cms_certs (self, gkeys, error);
  if (ders == NULL)
    return NULL;
  apply_crl_checks (self, infos, ders, by_fpr);
  return g_steal_pointer (&infos);
}

/* All S/MIME certificates, for chain walking even when the caller wants a
 * subset. @secret_filter: -1 all, 0 without secret key, 1 with. */
static GPtrArray *
list_infos (SmCertstore *self,
            SmProtocol   protocol,
            int          secret_filter,
            GError     **error)
{
  g_autoptr(GPtrArray) gkeys = sm_certstore_list_gpgme_keys (self, protocol, NULL, FALSE, error);
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_key_info_free);

  if (gkeys == NULL)
    return NULL;
  infos = make_infos (self, protocol, gkeys, error);
  if (infos == NULL)
    return NULL;
  for (guint i = 0; i < infos->len; i++)
    {
      SmKeyInfo *info = infos->pdata[i];

      if (secret_filter < 0 || (secret_filter == 1) == (info->secret != 0))
        g_ptr_array_add (out, sm_key_info_copy (info));
    }
  return g_steal_pointer (&out);
}

static GPtrArray *
list_both (SmCertstore *self,
           int          secret_filter,
           GError     **error)
{
  g_autoptr(GPtrArray) pgp = list_infos (self, SM_PROTOCOL_OPENPGP, secret_filter, error);
  g_autoptr(GPtrArray) cms = NULL;

  if (pgp == NULL)
    return NULL;
  cms = list_infos (self, SM_PROTOCOL_SMIME, secret_filter, error);
  if (cms == NULL)
    return NULL;
  g_ptr_array_extend_and_steal (pgp, g_steal_pointer (&cms));
  return g_steal_pointer (&pgp);
}

GPtrArray *
sm_certstore_list_own_keys (SmCertstore *self,
                            GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  return list_both (self, 1, error);
}

GPtrArray *
sm_certstore_list_certs (SmCertstore *self,
                         GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  return list_both (self, 0, error);
}

gpgme_key_t
sm_certstore_get_gpgme_key (SmCertstore *self,
                            SmProtocol   protocol,
                            const char  *fingerprint,
                            gboolean     secret,
                            GError     **error)
{
  gpgme_ctx_t ctx;
  gpgme_key_t key = NULL;
  gpgme_error_t err;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (fingerprint != NULL, NULL);

  ctx = sm_certstore_new_context (self, protocol, error);
  if (ctx == NULL)
    return NULL;
  gpgme_set_keylist_mode (ctx, GPGME_KEYLIST_MODE_LOCAL | GPGME_KEYLIST_MODE_WITH_KEYGRIP
                          | (protocol == SM_PROTOCOL_SMIME ? GPGME_KEYLIST_MODE_VALIDATE : 0));
  err = gpgme_get_key (ctx, fingerprint, &key, secret);
  gpgme_release (ctx);
  if (err)
    {
      if (gpgme_err_code (err) == GPG_ERR_EOF)
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
                     _("No %s key with fingerprint %s in the key store; check the fingerprint with `securemail keys list` or `securemail certs list`"),
                     protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", fingerprint);
      else
        sm_certstore_set_gpgme_error (error, err, _("Looking up a key"));
      return NULL;
    }
  return key;
}

SmKeyInfo *
sm_certstore_get_key (SmCertstore *self,
                      SmProtocol   protocol,
                      const char  *fingerprint,
                      GError     **error)
{
  g_autoptr(GPtrArray) infos = NULL;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (fingerprint != NULL, NULL);

  infos = list_infos (self, protocol, -1, error);
  if (infos == NULL)
    return NULL;
  for (guint i = 0; i < infos->len; i++)
    {
      SmKeyInfo *info = infos->pdata[i];

      if (g_ascii_strcasecmp (info->fingerprint, fingerprint) == 0)
        return sm_key_info_copy (info);
    }
  g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
               _("No %s key with fingerprint %s in the key store; check the fingerprint with `securemail keys list` or `securemail certs list`"),
               protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", fingerprint);
  return NULL;
}

/* ---- passphrases -------------------------------------------------------- */

gboolean
sm_certstore_preset_key (SmCertstore *self,
                         gpgme_key_t  key,
                         const char  *passphrase,
                         GError     **error)
{
  g_autoptr(GBytes) input = g_bytes_new_static (passphrase, strlen (passphrase));

  for (gpgme_subkey_t sub = key->subkeys; sub != NULL; sub = sub->next)
    {
      const char *args[] = { "--preset", sub->keygrip, NULL };

      if (sub->keygrip == NULL)
        continue;
      if (!sm_gnupg_tool_run (self->home, "gpg-preset-passphrase", args, input, NULL,
                              NULL, NULL, error))
        {
          g_prefix_error (error, _("Handing the passphrase to gpg-agent: "));
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
sm_certstore_unlock (SmCertstore  *self,
                     GCancellable *cancellable,
                     guint        *n_preset,
                     GError      **error)
{
  guint count = 0;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), FALSE);

  /* gpg-preset-passphrase talks to a running agent; it does not start one.
   * Listing the secret keys below does (gpg and gpgsm ask the agent which
   * keys it holds), so no `gpgconf --launch` first: in the proxy that call
   * was seen to wait for ever on an agent that never answered it. */

  for (int p = SM_PROTOCOL_OPENPGP; p <= SM_PROTOCOL_SMIME; p++)
    {
      g_autoptr(GPtrArray) keys = sm_certstore_list_gpgme_keys (self, p, NULL, TRUE, error);

      if (keys == NULL)
        return FALSE;
      for (guint i = 0; i < keys->len; i++)
        {
          gpgme_key_t key = keys->pdata[i];
          g_autoptr(SmSecret) passphrase = NULL;
          g_autoptr(GError) local = NULL;

          if (key->subkeys == NULL || key->subkeys->keygrip == NULL)
            continue;
          passphrase = sm_passphrase_store_lookup (key->subkeys->keygrip, cancellable, &local);
          if (local != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          if (passphrase == NULL)
            {
              g_debug ("No stored passphrase for %s; assuming it is unprotected", key->subkeys->fpr);
              continue;
            }
          if (!sm_certstore_preset_key (self, key, passphrase, error))
            return FALSE;
          count++;
        }
    }
  if (n_preset != NULL)
    *n_preset = count;
  return TRUE;
}

void
sm_certstore_reload_agent (SmCertstore *self)
{
  g_autoptr(GError) error = NULL;

  if (!sm_gnupg_tool_reload_agent (self->home, &error)
      || !sm_certstore_unlock (self, NULL, NULL, &error))
    g_message (_("The key store changed but the keys could not be unlocked again (%s); run `securemail unlock`"),
               error->message);
}

/* ---- lookups -------------------------------------------------------------- */

void
sm_recipient_lookup_free (SmRecipientLookup *lookup)
{
  if (lookup == NULL)
    return;
  g_ptr_array_unref (lookup->keys);
  g_ptr_array_unref (lookup->found);
  g_ptr_array_unref (lookup->missing);
  g_ptr_array_unref (lookup->reasons);
  g_free (lookup);
}

static gboolean
usable_for_encryption (const SmKeyInfo *info)
{
  return info->can_encrypt && info->status == SM_KEY_STATUS_VALID
         && info->revocation != SM_REVOCATION_REVOKED;
}

SmRecipientLookup *
sm_certstore_lookup_recipients (SmCertstore       *self,
                                SmProtocol         protocol,
                                const char *const *addresses,
                                GError           **error)
{
  g_autoptr(GPtrArray) infos = NULL;
  SmRecipientLookup *lookup;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (addresses != NULL, NULL);

  infos = list_infos (self, protocol, -1, error);
  if (infos == NULL)
    return NULL;

  lookup = g_new0 (SmRecipientLookup, 1);
  lookup->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_key_info_free);
  lookup->found = g_ptr_array_new_with_free_func (g_free);
  lookup->missing = g_ptr_array_new_with_free_func (g_free);
  lookup->reasons = g_ptr_array_new_with_free_func (g_free);

  for (guint a = 0; addresses[a] != NULL; a++)
    {
      const SmKeyInfo *best = NULL;
      const SmKeyInfo *unusable = NULL;

      for (guint i = 0; i < infos->len; i++)
        {
          const SmKeyInfo *info = infos->pdata[i];

          if (!sm_key_info_has_address (info, addresses[a]))
            continue;
          if (!usable_for_encryption (info))
            {
              if (unusable == NULL || info->created > unusable->created)
                unusable = info;
              continue;
            }
          if (best == NULL || info->created > best->created)
            best = info;
        }

      if (best != NULL)
        {
          g_ptr_array_add (lookup->keys, sm_key_info_copy (best));
          g_ptr_array_add (lookup->found, g_strdup (addresses[a]));
        }
      else
        {
          g_ptr_array_add (lookup->missing, g_strdup (addresses[a]));
          if (unusable != NULL)
            g_ptr_array_add (lookup->reasons,
                             g_strdup_printf (_("the %s key or certificate of %s cannot be used for encryption (%s); ask them for a current one"),
                                              protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP",
                                              addresses[a],
                                              unusable->status_detail ? unusable->status_detail
                                                                      : _("no encryption capability")));
          else
            g_ptr_array_add (lookup->reasons,
                             g_strdup_printf (_("no %s key or certificate for %s; import it with `securemail certs import FILE` or ask them for a signed message"),
                                              protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP",
                                              addresses[a]));
        }
    }
  return lookup;
}

SmKeyInfo *
sm_certstore_get_own_identity (SmCertstore *self,
                               SmProtocol   protocol,
                               const char  *address,
                               GError     **error)
{
  g_autoptr(GPtrArray) infos = NULL;
  const SmKeyInfo *best = NULL;
  const SmKeyInfo *unusable = NULL;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (address != NULL, NULL);

  infos = list_infos (self, protocol, 1, error);
  if (infos == NULL)
    return NULL;
  for (guint i = 0; i < infos->len; i++)
    {
      const SmKeyInfo *info = infos->pdata[i];

      if (!sm_key_info_has_address (info, address))
        continue;
      if (!info->can_sign || info->status != SM_KEY_STATUS_VALID)
        {
          unusable = info;
          continue;
        }
      if (best == NULL || info->created > best->created)
        best = info;
    }
  if (best != NULL)
    return sm_key_info_copy (best);

  if (unusable != NULL)
    g_set_error (error, SM_CERTSTORE_ERROR,
                 unusable->status == SM_KEY_STATUS_EXPIRED ? SM_CERTSTORE_ERROR_EXPIRED
                 : unusable->status == SM_KEY_STATUS_REVOKED ? SM_CERTSTORE_ERROR_REVOKED
                 : unusable->status == SM_KEY_STATUS_UNTRUSTED ? SM_CERTSTORE_ERROR_UNTRUSTED
                 : SM_CERTSTORE_ERROR_NO_KEY,
                 _("Your %s key for %s cannot be used (%s); run `securemail keys generate` or import a current one with `securemail keys import FILE`"),
                 protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", address,
                 unusable->status_detail ? unusable->status_detail : _("it cannot sign"));
  else
    g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
                 _("You have no %s key for %s; run `securemail keys generate` or `securemail keys import FILE`"),
                 protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", address);
  return NULL;
}

void
sm_expiry_warning_free (SmExpiryWarning *warning)
{
  if (warning == NULL)
    return;
  sm_key_info_free (warning->key);
  g_free (warning);
}

static int
compare_warnings (gconstpointer a,
                  gconstpointer b)
{
  const SmExpiryWarning *wa = *(SmExpiryWarning *const *) a;
  const SmExpiryWarning *wb = *(SmExpiryWarning *const *) b;

  return (wa->days_left > wb->days_left) - (wa->days_left < wb->days_left);
}

GPtrArray *
sm_certstore_get_expiry_warnings (SmCertstore *self,
                                  int          days_ahead,
                                  GError     **error)
{
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_expiry_warning_free);
  gint64 now = now_seconds ();

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);

  infos = list_both (self, -1, error);
  if (infos == NULL)
    return NULL;
  for (guint i = 0; i < infos->len; i++)
    {
      SmKeyInfo *info = infos->pdata[i];
      int days;

      /* Correspondents' keys are their problem; ours and our anchors are
       * what stops us from reading and sending mail. */
      if (!info->secret && !info->is_anchor)
        continue;
      if (info->status == SM_KEY_STATUS_REVOKED || info->expires == 0)
        continue;
      days = sm_key_info_days_left (info, now);
      if (days <= days_ahead)
        {
          SmExpiryWarning *w = g_new0 (SmExpiryWarning, 1);

          w->key = sm_key_info_copy (info);
          w->days_left = days;
          g_ptr_array_add (warnings, w);
        }
    }
  g_ptr_array_sort (warnings, compare_warnings);
  return g_steal_pointer (&warnings);
}

/* ---- import ----------------------------------------------------------------- */

static gboolean
has_prefix_text (GBytes     *data,
                 const char *marker)
{
  gsize len;
  const char *p = g_bytes_get_data (data, &len);

  return len > 0 && g_strstr_len (p, MIN (len, 65536), marker) != NULL;
}

/* First OpenPGP packet tag of binary data, or -1 (RFC 4880 §4.2). */
static int
openpgp_first_tag (GBytes *data)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (data, &len);

  if (len == 0 || !(p[0] & 0x80))
    return -1;
  if (p[0] & 0x40)
    return p[0] & 0x3f;
  return (p[0] >> 2) & 0x0f;
}

static gboolean
is_openpgp (GBytes *data)
{
  int tag;

  if (has_prefix_text (data, "-----BEGIN PGP "))
    return TRUE;
  tag = openpgp_first_tag (data);
  /* public key, secret key, or a key packet sequence starting there */
  return tag == 5 || tag == 6;
}

static gboolean
is_openpgp_secret (GBytes *data)
{
  return has_prefix_text (data, "-----BEGIN PGP PRIVATE KEY BLOCK-----")
         || openpgp_first_tag (data) == 5;
}

static gboolean
has_private_key_material (GBytes *data)
{
  return is_openpgp_secret (data) || sm_pkcs12_sniff (data)
         || has_prefix_text (data, "PRIVATE KEY-----");
}

GPtrArray *
sm_certstore_import_data (SmCertstore *self,
                          SmProtocol   protocol,
                          GBytes      *data,
                          const char  *passphrase,
                          GError     **error)
{
  g_autoptr(GPtrArray) fprs = g_ptr_array_new_with_free_func (g_free);
  gpgme_ctx_t ctx;
  gpgme_data_t in = NULL;
  gpgme_error_t err;
  gpgme_import_result_t result;
  gsize len;
  const char *p = g_bytes_get_data (data, &len);

  if (passphrase != NULL && protocol == SM_PROTOCOL_OPENPGP)
    ctx = sm_certstore_new_context_with_passphrase (self, protocol, passphrase, error);
  else
    ctx = sm_certstore_new_context (self, protocol, error);
  if (ctx == NULL)
    return NULL;

  err = gpgme_data_new_from_mem (&in, p, len, 0);
  if (!err)
    err = gpgme_op_import (ctx, in);
  gpgme_data_release (in);
  if (err)
    {
      gpgme_release (ctx);
      sm_certstore_set_gpgme_error (error, err, _("Importing"));
      return NULL;
    }

  result = gpgme_op_import_result (ctx);
  for (gpgme_import_status_t st = result ? result->imports : NULL; st != NULL; st = st->next)
    {
      gboolean seen = FALSE;

      if (st->result != 0 || st->fpr == NULL)
        {
          if (st->result != 0)
            {
              g_autoptr(GError) local = NULL;
              sm_certstore_set_gpgme_error (&local, st->result, NULL);
              g_debug ("Import of %s failed: %s", st->fpr ? st->fpr : "?", local->message);
              if (fprs->len == 0 && st->next == NULL)
                {
                  gpgme_release (ctx);
                  g_propagate_prefixed_error (error, g_steal_pointer (&local), _("Importing: "));
                  return NULL;
                }
            }
          continue;
        }
      for (guint i = 0; i < fprs->len && !seen; i++)
        seen = g_ascii_strcasecmp (fprs->pdata[i], st->fpr) == 0;
      if (!seen)
        g_ptr_array_add (fprs, g_strdup (st->fpr));
    }
  gpgme_release (ctx);

  if (fprs->len == 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The file holds no key or certificate that SecureMail can read; check that it is the right file"));
      return NULL;
    }
  return g_steal_pointer (&fprs);
}

/* SHA-1 fingerprints (as gpgsm prints them) of the X.509 certificates in
 * @data, PEM or DER; NULL when it holds none we can parse (e.g. PKCS#7).
 * gpgsm's import result also lists issuers it merely found in the store,
 * so this tells what the file itself contained. */
static GPtrArray *
cert_fingerprints_in (GBytes *data)
{
  g_autoptr(GPtrArray) fprs = g_ptr_array_new_with_free_func (g_free);
  gnutls_x509_crt_t *certs = NULL;
  unsigned int n = 0;
  gnutls_datum_t d;
  gsize len;

  d.data = (unsigned char *) g_bytes_get_data (data, &len);
  d.size = (unsigned int) len;
  if (len == 0)
    return NULL;
  gnutls_global_init ();
  if (gnutls_x509_crt_list_import2 (&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0
      && gnutls_x509_crt_list_import2 (&certs, &n, &d, GNUTLS_X509_FMT_DER, 0) < 0)
    n = 0;
  for (unsigned int i = 0; i < n; i++)
    {
      guint8 buf[20];
      size_t size = sizeof buf;

      if (gnutls_x509_crt_get_fingerprint (certs[i], GNUTLS_DIG_SHA1, buf, &size) >= 0)
        {
          GString *hex = g_string_new (NULL);

          for (size_t j = 0; j < size; j++)
            g_string_append_printf (hex, "%02X", buf[j]);
          g_ptr_array_add (fprs, g_string_free (hex, FALSE));
        }
      gnutls_x509_crt_deinit (certs[i]);
    }
  gnutls_free (certs);
  gnutls_global_deinit ();
  return fprs->len > 0 ? g_steal_pointer (&fprs) : NULL;
}

/* Keeps only the fingerprints of @fprs that are in @in_file (if known). */
static void
keep_fingerprints_in_file (GPtrArray *fprs,
                           GPtrArray *in_file)
{
  if (in_file == NULL)
    return;
  for (guint i = fprs->len; i > 0; i--)
    {
      gboolean found = FALSE;

      for (guint j = 0; j < in_file->len && !found; j++)
        found = g_ascii_strcasecmp (fprs->pdata[i - 1], in_file->pdata[j]) == 0;
      if (!found)
        g_ptr_array_remove_index (fprs, i - 1);
    }
}

static GPtrArray *
infos_for_fprs (SmCertstore *self,
                SmProtocol   protocol,
                GPtrArray   *fprs,
                GError     **error)
{
  g_autoptr(GPtrArray) all = list_infos (self, protocol, -1, error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_key_info_free);

  if (all == NULL)
    return NULL;
  for (guint i = 0; i < fprs->len; i++)
    for (guint j = 0; j < all->len; j++)
      {
        SmKeyInfo *info = all->pdata[j];

        if (g_ascii_strcasecmp (info->fingerprint, fprs->pdata[i]) == 0)
          g_ptr_array_add (out, sm_key_info_copy (info));
      }
  return g_steal_pointer (&out);
}

static GPtrArray *
ca_cert_ders (SmCertstore *self,
              GError     **error)
{
  g_autoptr(GPtrArray) gkeys = sm_certstore_list_gpgme_keys (self, SM_PROTOCOL_SMIME, NULL, FALSE, error);
  g_autoptr(GPtrArray) cas = g_ptr_array_new ();
  g_autoptr(GHashTable) ders = NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GHashTableIter iter;
  gpointer value;

  if (gkeys == NULL)
    return NULL;
  for (guint i = 0; i < gkeys->len; i++)
    if (((gpgme_key_t) gkeys->pdata[i])->can_certify)
      g_ptr_array_add (cas, gkeys->pdata[i]);
  ders = export_cms_certs (self, cas, error);
  if (ders == NULL)
    return NULL;
  g_hash_table_iter_init (&iter, ders);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (out, g_bytes_ref (value));
  return g_steal_pointer (&out);
}

static gboolean
import_crl (SmCertstore *self,
            GBytes      *data,
            char       **issuer,
            GError     **error)
{
  g_autoptr(GPtrArray) cas = ca_cert_ders (self, error);
  g_autofree char *dir = sm_certstore_get_crl_dir (self);

  if (cas == NULL)
    return FALSE;
  return sm_crl_store_add (dir, data, cas, issuer, error);
}

GPtrArray *
sm_certstore_import_certs (SmCertstore *self,
                           GBytes      *data,
                           char       **crl_issuer,
                           GError     **error)
{
  SmProtocol protocol;
  g_autoptr(GPtrArray) fprs = NULL;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (data != NULL, NULL);

  if (g_bytes_get_size (data) > SM_CERTSTORE_MAX_IMPORT_SIZE)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The file is larger than %d MiB, so it is not a certificate or key; check that it is the right file"),
                   SM_CERTSTORE_MAX_IMPORT_SIZE / (1024 * 1024));
      return NULL;
    }
  if (has_private_key_material (data))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("This file holds a private key; to add your own key use `securemail keys import FILE`"));
      return NULL;
    }
  if (sm_crl_sniff (data))
    {
      if (!import_crl (self, data, crl_issuer, error))
        return NULL;
      return g_ptr_array_new_with_free_func ((GDestroyNotify) sm_key_info_free);
    }

  protocol = is_openpgp (data) ? SM_PROTOCOL_OPENPGP : SM_PROTOCOL_SMIME;
  fprs = sm_certstore_import_data (self, protocol, data, NULL, error);
  if (fprs == NULL)
    return NULL;
  if (protocol == SM_PROTOCOL_SMIME)
    {
      g_autoptr(GPtrArray) in_file = cert_fingerprints_in (data);
      keep_fingerprints_in_file (fprs, in_file);
    }
  return infos_for_fprs (self, protocol, fprs, error);
}

/* The last line of gpgsm's stderr that is a message, not a status line. */
static char *
gpgsm_reason (const char *err_text)
{
  g_auto(GStrv) lines = g_strsplit (err_text ? err_text : "", "\n", -1);

  for (int i = (int) g_strv_length (lines) - 1; i >= 0; i--)
    {
      g_strstrip (lines[i]);
      if (lines[i][0] != '\0' && !g_str_has_prefix (lines[i], "[GNUPG:]")
          && strstr (lines[i], "total number processed") == NULL)
        return g_strdup (lines[i]);
    }
  return g_strdup ("?");
}

GPtrArray *
sm_certstore_gpgsm_import_p12 (SmCertstore *self,
                               GBytes      *p12,
                               const char  *passphrase,
                               gboolean    *new_secret,
                               GError     **error)
{
  const char *args[] = { "--batch", "--status-fd", "2", "--pinentry-mode", "loopback",
                         "--passphrase-fd", "3", "--import", NULL };
  g_autoptr(GPtrArray) fprs = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *err_text = NULL;
  g_auto(GStrv) lines = NULL;
  gboolean secret_seen = FALSE;

  if (new_secret != NULL)
    *new_secret = FALSE;
  /* gpgsm itself (not GPGME, whose gpgsm engine cannot answer the agent's
   * passphrase inquiry) with the passphrase on fd 3: loopback uses it both
   * to open the p12 and to protect the key in the agent. */
  if (!sm_gnupg_tool_run (self->home, "gpgsm", args, p12, passphrase, NULL, &err_text, error))
    {
      g_autofree char *why = gpgsm_reason (err_text);

      g_clear_error (error);
      if (err_text != NULL && strstr (err_text, "bad passphrase") != NULL)
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_PASSPHRASE,
                     _("gpgsm could not open the key file (%s); check the password"), why);
      else
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                     _("gpgsm could not import the key (%s); send a `securemail support-report` to the helpdesk"),
                     why);
      return NULL;
    }

  lines = g_strsplit (err_text ? err_text : "", "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      /* "[GNUPG:] IMPORT_OK <flags> <fingerprint>", flags bit 16 = secret */
      if (g_str_has_prefix (lines[i], "[GNUPG:] IMPORT_OK "))
        {
          g_auto(GStrv) f = g_strsplit (lines[i] + strlen ("[GNUPG:] IMPORT_OK "), " ", 3);

          if (f[0] != NULL && f[1] != NULL && *f[1] != '\0')
            {
              gboolean seen = FALSE;

              for (guint j = 0; j < fprs->len && !seen; j++)
                seen = g_ascii_strcasecmp (fprs->pdata[j], f[1]) == 0;
              if (!seen)
                g_ptr_array_add (fprs, g_strdup (g_strstrip (f[1])));
            }
        }
      if (strstr (lines[i], "secret keys imported:") != NULL)
        {
          secret_seen = TRUE;
          if (new_secret != NULL)
            *new_secret = TRUE;
        }
      if (strstr (lines[i], "secret keys unchanged:") != NULL)
        secret_seen = TRUE;
    }
  if (!secret_seen)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("gpgsm found no private key in the PKCS#12 file; ask the issuer for a complete .p12 file"));
      return NULL;
    }
  return g_steal_pointer (&fprs);
}

/* Stores @passphrase for @key and presets it, rolling back nothing: the
 * caller decides what to undo. */
static gboolean
remember_passphrase (SmCertstore *self,
                     gpgme_key_t  key,
                     const char  *passphrase,
                     GError     **error)
{
  SmProtocol protocol = key->protocol == GPGME_PROTOCOL_CMS ? SM_PROTOCOL_SMIME : SM_PROTOCOL_OPENPGP;

  return sm_passphrase_store_save (key->subkeys->keygrip, key->subkeys->fpr, protocol,
                                   passphrase, NULL, error)
         && sm_certstore_preset_key (self, key, passphrase, error);
}

static GPtrArray *
import_own_p12 (SmCertstore *self,
                GBytes      *data,
                const char  *password,
                GError     **error)
{
  g_autoptr(SmSecret) passphrase = NULL;
  g_autoptr(GPtrArray) fprs = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  gboolean any_secret = FALSE;
  gboolean new_secret = FALSE;

  /* gpgsm 2.2 fails to decrypt a few percent of perfectly valid 3DES
   * bundles (OpenSSL reads them; it depends on the random salt and
   * password), so a failed import is retried with a fresh re-encoding. */
  for (int attempt = 0; attempt < SM_CERTSTORE_P12_ATTEMPTS && fprs == NULL; attempt++)
    {
      g_autoptr(GBytes) p12 = NULL;

      g_clear_error (error);
      g_clear_pointer (&passphrase, sm_secret_free);
      passphrase = sm_passphrase_generate (error);
      if (passphrase == NULL)
        return NULL;
      p12 = sm_pkcs12_reencode (data, password, passphrase, error);
      if (p12 == NULL)
        return NULL;   /* wrong password or unreadable: retrying will not help */
      fprs = sm_certstore_gpgsm_import_p12 (self, p12, passphrase, &new_secret, error);
    }
  if (fprs == NULL)
    return NULL;

  for (guint i = 0; i < fprs->len; i++)
    {
      gpgme_key_t key = sm_certstore_get_gpgme_key (self, SM_PROTOCOL_SMIME, fprs->pdata[i], TRUE, NULL);
      g_autoptr(SmSecret) existing = NULL;
      gboolean ok;

      if (key == NULL)
        continue;
      any_secret = TRUE;
      /* If the agent already had this key, it kept its old protection: keep
       * the passphrase the keyring has for it rather than overwrite it. */
      if (new_secret)
        ok = remember_passphrase (self, key, passphrase, error);
      else
        {
          existing = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, NULL);
          if (existing == NULL)
            g_message (_("The key %s was already in the key store, protected by a passphrase SecureMail does not know; if signing fails, ask the helpdesk to reset the key store"),
                       key->subkeys->fpr);
          ok = TRUE;
        }
      gpgme_key_unref (key);
      if (!ok)
        return NULL;
    }
  if (!any_secret)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The PKCS#12 file's certificate does not match its private key; ask the issuer for a new .p12 file"));
      return NULL;
    }
  /* The bundle's CA certificates were imported too, but they are not ours. */
  infos = infos_for_fprs (self, SM_PROTOCOL_SMIME, fprs, error);
  if (infos != NULL)
    for (guint i = infos->len; i > 0; i--)
      if (!((SmKeyInfo *) infos->pdata[i - 1])->secret)
        g_ptr_array_remove_index (infos, i - 1);
  return g_steal_pointer (&infos);
}

/* A throw-away signature proves the passphrase before we keep anything. */
static gboolean
test_sign (SmCertstore *self,
           gpgme_key_t  key,
           const char  *passphrase,
           GError     **error)
{
  gpgme_ctx_t ctx = sm_certstore_new_context_with_passphrase (self, SM_PROTOCOL_OPENPGP,
                                                              passphrase ? passphrase : "", error);
  gpgme_data_t in = NULL, out = NULL;
  gpgme_error_t err;

  if (ctx == NULL)
    return FALSE;
  err = gpgme_signers_add (ctx, key);
  if (!err)
    err = gpgme_data_new_from_mem (&in, "test", 4, 0);
  if (!err)
    err = gpgme_data_new (&out);
  if (!err)
    err = gpgme_op_sign (ctx, in, out, GPGME_SIG_MODE_DETACH);
  gpgme_data_release (in);
  gpgme_data_release (out);
  gpgme_release (ctx);
  return sm_certstore_set_gpgme_error (error, err, _("Checking the key's passphrase"));
}

static void
delete_key (SmCertstore *self,
            gpgme_key_t  key)
{
  gpgme_ctx_t ctx = sm_certstore_new_context (self,
                                              key->protocol == GPGME_PROTOCOL_CMS ? SM_PROTOCOL_SMIME
                                                                                  : SM_PROTOCOL_OPENPGP,
                                              NULL);
  gpgme_error_t err;

  if (ctx == NULL)
    return;
  err = gpgme_op_delete_ext (ctx, key, GPGME_DELETE_ALLOW_SECRET | GPGME_DELETE_FORCE);
  if (err)
    g_warning ("Could not remove key %s again: %s", key->subkeys->fpr, gpgme_strerror (err));
  gpgme_release (ctx);
}

/* ---- re-protecting imported OpenPGP keys ---------------------------------- */

/* Prompts one `gpg --passwd` may raise: the old passphrase, then the new one
 * once per subkey gpg cannot carry it over to. More means gpg is going round
 * in circles on an answer it rejects. */
#define SM_CERTSTORE_PASSWD_MAX_PROMPTS 8

typedef struct {
  const char *old_passphrase;   /* NULL: the key is unprotected */
  const char *new_passphrase;
  guint n_prompts;
} PasswdAnswers;

static gpgme_error_t
passwd_cb (void       *hook,
           const char *uid_hint,
           const char *passphrase_info,
           int         prev_was_bad,
           int         fd)
{
  PasswdAnswers *answers = hook;
  const char *answer;

  /* Which prompt is which: gpg 2.2 sends neither USERID_HINT nor
   * NEED_PASSPHRASE for --passwd in loopback mode (tested), so @uid_hint and
   * @passphrase_info are NULL for both prompts, and a rejected old
   * passphrase is not reported as BAD_PASSPHRASE before the next prompt
   * either. What holds is the order: gpg-agent's PASSWD ignores its cache
   * and asks for the current passphrase first, only if the key has one,
   * then for the new one; further subkeys reuse both through gpg's cache
   * and passwd nonces. A mix-up is caught afterwards by check_protection(). */
  if (prev_was_bad || answers->n_prompts >= SM_CERTSTORE_PASSWD_MAX_PROMPTS)
    return gpgme_error (GPG_ERR_BAD_PASSPHRASE);
  answer = answers->n_prompts == 0 && answers->old_passphrase != NULL
           ? answers->old_passphrase : answers->new_passphrase;
  answers->n_prompts++;
  return write_passphrase (fd, answer);
}

/* Asks the agent whether the secret key @keygrip is protected by a
 * passphrase (KEYINFO's protection field: P protected, C clear). */
static gboolean
agent_key_protected (SmCertstore *self,
                     const char  *keygrip,
                     gboolean    *is_protected,
                     GError     **error)
{
  g_autofree char *command = g_strdup_printf ("KEYINFO %s", keygrip);
  g_autofree char *status = NULL;
  g_auto(GStrv) fields = NULL;

  if (!sm_gnupg_tool_agent_command (self->home, command, &status, error))
    return FALSE;
  /* KEYINFO <grip> <type> <serialno> <idstr> <cached> <protection> ... */
  fields = g_strsplit (status ? status : "", " ", -1);
  if (g_strv_length (fields) < 7 || !g_str_equal (fields[0], "KEYINFO")
      || !(g_str_equal (fields[6], "P") || g_str_equal (fields[6], "C")))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("gpg-agent did not say how the key %s is protected"), keygrip);
      return FALSE;
    }
  *is_protected = g_str_equal (fields[6], "P");
  return TRUE;
}

/* Changes the passphrase of every subkey of @key from @old_passphrase (NULL
 * when unprotected) to @new_passphrase. */
static gboolean
change_passphrase (SmCertstore *self,
                   gpgme_key_t  key,
                   const char  *old_passphrase,
                   const char  *new_passphrase,
                   GError     **error)
{
  PasswdAnswers answers = { old_passphrase, new_passphrase, 0 };
  gpgme_ctx_t ctx = sm_certstore_new_context_with_passphrase (self, SM_PROTOCOL_OPENPGP, NULL, error);
  gpgme_error_t err;

  if (ctx == NULL)
    return FALSE;
  gpgme_set_passphrase_cb (ctx, passwd_cb, &answers);
  err = gpgme_op_passwd (ctx, key, 0);
  gpgme_release (ctx);
  return sm_certstore_set_gpgme_error (error, err, _("Changing the key's passphrase"));
}

/* Proves @passphrase is now what protects @key: every subkey protected, and
 * a signature with it works once the agent has forgotten what it cached
 * while changing it. */
static gboolean
check_protection (SmCertstore *self,
                  gpgme_key_t  key,
                  const char  *passphrase,
                  GError     **error)
{
  for (gpgme_subkey_t sub = key->subkeys; sub != NULL; sub = sub->next)
    {
      g_autofree char *forget = NULL;
      gboolean is_protected = FALSE;

      if (sub->keygrip == NULL)
        continue;
      if (!agent_key_protected (self, sub->keygrip, &is_protected, error))
        return FALSE;
      if (!is_protected)
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("The key %s is still without a passphrase after changing it"), sub->fpr);
          return FALSE;
        }
      forget = g_strdup_printf ("CLEAR_PASSPHRASE --mode=normal %s", sub->keygrip);
      if (!sm_gnupg_tool_agent_command (self->home, forget, NULL, error))
        return FALSE;
    }
  return test_sign (self, key, passphrase, error);
}

/* Replaces the protection of the just imported @key (@typed: the passphrase
 * the user typed, NULL or "" when the file had none) by a generated one kept
 * in the keyring and preset, like a generated key's. The typed passphrase is
 * low-entropy: under the store's cheap s2k-count it must not stay on the key
 * file. On failure the key may still be protected by @typed (or nothing);
 * the caller removes it. */
static gboolean
reprotect_openpgp (SmCertstore *self,
                   gpgme_key_t  key,
                   const char  *typed,
                   GError     **error)
{
  g_autoptr(SmSecret) fresh = NULL;
  g_autoptr(GError) local = NULL;
  gboolean is_protected = FALSE;
  const char *old_passphrase;

  if (!agent_key_protected (self, key->subkeys->keygrip, &is_protected, error))
    return FALSE;
  old_passphrase = is_protected ? typed : NULL;
  if (is_protected && (typed == NULL || *typed == '\0'))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_PASSPHRASE,
                   _("The key is protected by a passphrase; type the one it was exported with"));
      return FALSE;
    }
  fresh = sm_passphrase_generate (error);
  if (fresh == NULL || !change_passphrase (self, key, old_passphrase, fresh, error))
    return FALSE;

  if (check_protection (self, key, fresh, &local)
      && remember_passphrase (self, key, fresh, &local))
    return TRUE;

  /* Changed but unusable: put the typed passphrase back, so that even a key
   * the caller cannot remove (it was there before) stays openable. */
  if (old_passphrase != NULL && !change_passphrase (self, key, fresh, old_passphrase, NULL))
    g_warning ("Could not restore the previous passphrase of key %s", key->subkeys->fpr);
  sm_passphrase_store_clear (key->subkeys->keygrip, NULL, NULL);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static GPtrArray *
import_own_openpgp (SmCertstore *self,
                    GBytes      *data,
                    const char  *passphrase,
                    GError     **error)
{
  g_autoptr(GPtrArray) before = sm_certstore_list_gpgme_keys (self, SM_PROTOCOL_OPENPGP, NULL, TRUE, error);
  g_autoptr(GPtrArray) fprs = NULL;
  g_autoptr(GPtrArray) own = g_ptr_array_new_with_free_func (g_free);

  if (before == NULL)
    return NULL;
  fprs = sm_certstore_import_data (self, SM_PROTOCOL_OPENPGP, data, passphrase ? passphrase : "", error);
  if (fprs == NULL)
    return NULL;

  for (guint i = 0; i < fprs->len; i++)
    {
      gpgme_key_t key = sm_certstore_get_gpgme_key (self, SM_PROTOCOL_OPENPGP, fprs->pdata[i], TRUE, NULL);
      gboolean existed = FALSE;
      g_autoptr(GError) local = NULL;

      if (key == NULL)
        continue;
      for (guint j = 0; j < before->len && !existed; j++)
        existed = g_str_equal (((gpgme_key_t) before->pdata[j])->subkeys->fpr, key->subkeys->fpr);

      /* A key already here under a generated keyring passphrase keeps it:
       * the file's old passphrase no longer opens it. One the keyring holds
       * as typed (imported by an older version) is re-protected below. */
      if (existed)
        {
          g_autoptr(SmSecret) stored = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, NULL);

          if (stored != NULL && g_strcmp0 (stored, passphrase) != 0
              && test_sign (self, key, stored, NULL))
            {
              g_ptr_array_add (own, g_strdup (key->subkeys->fpr));
              gpgme_key_unref (key);
              continue;
            }
        }

      if (!test_sign (self, key, passphrase, &local))
        {
          if (!existed)
            delete_key (self, key);
          gpgme_key_unref (key);
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      if (!reprotect_openpgp (self, key, passphrase, &local))
        {
          /* Nothing half-imported: a new key we could not re-protect is
           * removed (keeping the typed passphrase would leave a low-entropy
           * secret guarding a cheaply stretched key file). A key that was
           * here before cannot be removed; it is back under the typed
           * passphrase, so the keyring gets that, as before this import. */
          if (!existed)
            delete_key (self, key);
          else if (passphrase != NULL && *passphrase != '\0'
                   && !remember_passphrase (self, key, passphrase, NULL))
            g_warning ("Could not store the passphrase of key %s again", key->subkeys->fpr);
          gpgme_key_unref (key);
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      g_ptr_array_add (own, g_strdup (key->subkeys->fpr));
      gpgme_key_unref (key);
    }

  if (own->len == 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The file holds no OpenPGP secret key; to add a correspondent's key use `securemail certs import FILE`"));
      return NULL;
    }
  return infos_for_fprs (self, SM_PROTOCOL_OPENPGP, own, error);
}

static GPtrArray *
import_own_certificate (SmCertstore *self,
                        GBytes      *data,
                        GError     **error)
{
  g_autoptr(GPtrArray) fprs = sm_certstore_import_data (self, SM_PROTOCOL_SMIME, data, NULL, error);
  g_autoptr(GPtrArray) own = g_ptr_array_new_with_free_func (g_free);

  if (fprs == NULL)
    return NULL;
  for (guint i = 0; i < fprs->len; i++)
    {
      gpgme_key_t key = sm_certstore_get_gpgme_key (self, SM_PROTOCOL_SMIME, fprs->pdata[i], TRUE, NULL);
      g_autoptr(SmSecret) passphrase = NULL;
      g_autoptr(GError) local = NULL;

      if (key == NULL)
        continue;
      /* The request was made with a keyring passphrase stored under the
       * keygrip only; now that the certificate exists, record its
       * fingerprint too, and preset it. */
      passphrase = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, &local);
      if (passphrase != NULL && !remember_passphrase (self, key, passphrase, &local))
        g_message ("%s", local->message);
      g_ptr_array_add (own, g_strdup (key->subkeys->fpr));
      gpgme_key_unref (key);
    }
  if (own->len == 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
                   _("This certificate is not for a key made here (it was kept as a correspondent's certificate); import the certificate issued for your `securemail keys generate` request, or your .p12 file"));
      return NULL;
    }
  return infos_for_fprs (self, SM_PROTOCOL_SMIME, own, error);
}

GPtrArray *
sm_certstore_import_own (SmCertstore *self,
                         GBytes      *data,
                         const char  *passphrase,
                         GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (data != NULL, NULL);

  if (g_bytes_get_size (data) == 0 || g_bytes_get_size (data) > SM_CERTSTORE_MAX_IMPORT_SIZE)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The file is empty or larger than %d MiB, so it is not a key; check that it is the right file"),
                   SM_CERTSTORE_MAX_IMPORT_SIZE / (1024 * 1024));
      return NULL;
    }
  if (sm_pkcs12_sniff (data))
    return import_own_p12 (self, data, passphrase, error);
  if (is_openpgp_secret (data))
    return import_own_openpgp (self, data, passphrase, error);
  if (is_openpgp (data))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("This is an OpenPGP public key, not your secret key; for a correspondent's key use `securemail certs import FILE`"));
      return NULL;
    }
  if (has_prefix_text (data, "PRIVATE KEY-----"))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_UNSUPPORTED,
                   _("This is a bare private key file; combine it with its certificate into a PKCS#12 file (`openssl pkcs12 -export -legacy -in cert.pem -inkey key.pem -out me.p12`) and import that"));
      return NULL;
    }
  return import_own_certificate (self, data, error);
}

SmKeyInfo *
sm_certstore_collect_from_signature (SmCertstore *self,
                                     SmProtocol   protocol,
                                     const char  *fingerprint,
                                     GBytes      *key_data,
                                     GError     **error)
{
  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (fingerprint != NULL, NULL);

  if (key_data != NULL && g_bytes_get_size (key_data) > 0)
    {
      g_autoptr(GPtrArray) fprs = NULL;
      g_autoptr(GError) local = NULL;

      if (g_bytes_get_size (key_data) > SM_CERTSTORE_MAX_IMPORT_SIZE || has_private_key_material (key_data))
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                       _("The key material in the message is not a public key; it was not collected"));
          return NULL;
        }
      fprs = sm_certstore_import_data (self, protocol, key_data, NULL, &local);
      if (fprs == NULL)
        g_debug ("Key material of %s not imported: %s", fingerprint, local->message);
    }
  return sm_certstore_get_key (self, protocol, fingerprint, error);
}

GBytes *
sm_certstore_export_public (SmCertstore *self,
                            SmProtocol   protocol,
                            const char  *fingerprint,
                            GError     **error)
{
  g_autoptr(GPtrArray) own = NULL;
  g_autoptr(GPtrArray) chosen = g_ptr_array_new ();
  g_autofree gpgme_key_t *array = NULL;
  gpgme_ctx_t ctx;
  gpgme_data_t out = NULL;
  gpgme_error_t err;
  char *mem;
  size_t len;
  GBytes *bytes;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);

  own = sm_certstore_list_gpgme_keys (self, protocol, NULL, TRUE, error);
  if (own == NULL)
    return NULL;
  for (guint i = 0; i < own->len; i++)
    {
      gpgme_key_t key = own->pdata[i];

      if (fingerprint == NULL || g_ascii_strcasecmp (key->subkeys->fpr, fingerprint) == 0)
        g_ptr_array_add (chosen, key);
    }
  if (chosen->len == 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
                   fingerprint ? _("None of your %s keys has fingerprint %s; see `securemail keys list`")
                               : _("You have no %s key to export; run `securemail keys generate` or `securemail keys import FILE`%s"),
                   protocol == SM_PROTOCOL_SMIME ? "S/MIME" : "OpenPGP", fingerprint ? fingerprint : "");
      return NULL;
    }
  array = g_new0 (gpgme_key_t, chosen->len + 1);
  for (guint i = 0; i < chosen->len; i++)
    array[i] = chosen->pdata[i];

  ctx = sm_certstore_new_context (self, protocol, error);
  if (ctx == NULL)
    return NULL;
  gpgme_set_armor (ctx, 1);
  err = gpgme_data_new (&out);
  if (!err)
    err = gpgme_op_export_keys (ctx, array, 0, out);
  gpgme_release (ctx);
  if (err)
    {
      gpgme_data_release (out);
      sm_certstore_set_gpgme_error (error, err, _("Exporting your public key"));
      return NULL;
    }
  mem = gpgme_data_release_and_get_mem (out, &len);
  bytes = g_bytes_new (mem, len);
  gpgme_free (mem);
  return bytes;
}

/* ---- generation ----------------------------------------------------------- */

SmKeyInfo *
sm_certstore_generate_openpgp (SmCertstore *self,
                               const char  *name,
                               const char  *address,
                               int          days,
                               GError     **error)
{
  g_autoptr(SmSecret) passphrase = NULL;
  g_autofree char *userid = NULL;
  g_autofree char *fpr = NULL;
  gpgme_ctx_t ctx;
  gpgme_genkey_result_t result;
  gpgme_key_t key = NULL;
  gpgme_error_t err;
  unsigned long expires;
  g_autoptr(GError) local = NULL;
  SmKeyInfo *info;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (address != NULL && strchr (address, '@') != NULL, NULL);

  if (days <= 0)
    days = SM_CERTSTORE_DEFAULT_KEY_DAYS;
  expires = (unsigned long) days * 86400UL;

  passphrase = sm_passphrase_generate (error);
  if (passphrase == NULL)
    return NULL;
  if (name != NULL && *name != '\0')
    userid = g_strdup_printf ("%s <%s>", name, address);
  else
    userid = g_strdup_printf ("<%s>", address);

  ctx = sm_certstore_new_context_with_passphrase (self, SM_PROTOCOL_OPENPGP, passphrase, error);
  if (ctx == NULL)
    return NULL;
  err = gpgme_op_createkey (ctx, userid, "ed25519", 0, expires, NULL,
                            GPGME_CREATE_SIGN | GPGME_CREATE_CERT | GPGME_CREATE_FORCE);
  if (err)
    {
      gpgme_release (ctx);
      sm_certstore_set_gpgme_error (error, err, _("Creating your OpenPGP key"));
      return NULL;
    }
  result = gpgme_op_genkey_result (ctx);
  fpr = g_strdup (result && result->fpr ? result->fpr : "");
  err = gpgme_get_key (ctx, fpr, &key, 1);
  if (!err)
    err = gpgme_op_createsubkey (ctx, key, "cv25519", 0, expires, GPGME_CREATE_ENCR);
  gpgme_release (ctx);
  if (err)
    {
      if (key != NULL)
        {
          delete_key (self, key);
          gpgme_key_unref (key);
        }
      sm_certstore_set_gpgme_error (error, err, _("Creating your OpenPGP encryption subkey"));
      return NULL;
    }
  gpgme_key_unref (key);

  /* Re-read: the key now has its subkey, whose keygrip needs a preset too. */
  key = sm_certstore_get_gpgme_key (self, SM_PROTOCOL_OPENPGP, fpr, TRUE, error);
  if (key == NULL)
    return NULL;
  if (!remember_passphrase (self, key, passphrase, &local))
    {
      /* A key whose passphrase nobody knows is a trap: remove it. */
      delete_key (self, key);
      gpgme_key_unref (key);
      g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                  _("The new key was discarded: "));
      return NULL;
    }
  gpgme_key_unref (key);

  info = sm_certstore_get_key (self, SM_PROTOCOL_OPENPGP, fpr, error);
  return info;
}

static gboolean
dn_value_ok (const char *value)
{
  /* Keep the DN parser of gpgsm out of trouble: no separators or escapes. */
  for (const char *p = value; *p; p++)
    if (strchr (",+=\"\\<>;#\n\r", *p) != NULL)
      return FALSE;
  return TRUE;
}

GBytes *
sm_certstore_generate_smime_request (SmCertstore *self,
                                     const char  *name,
                                     const char  *address,
                                     char       **keygrip,
                                     GError     **error)
{
  const char *args[] = { "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "3",
                         "--armor", "--gen-key", NULL };
  g_autoptr(SmSecret) passphrase = NULL;
  g_autofree char *parms = NULL;
  g_autofree char *err_text = NULL;
  g_autofree char *grip = NULL;
  g_autoptr(GBytes) parms_bytes = NULL;
  g_autoptr(GBytes) request = NULL;
  const char *marker;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (address != NULL, NULL);

  if (strchr (address, '@') == NULL || !dn_value_ok (address) || (name != NULL && !dn_value_ok (name)))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("The name or address contains characters a certificate cannot hold (, + = \" \\ < > ; #); set a plain display name and address in the account settings"));
      return NULL;
    }

  passphrase = sm_passphrase_generate (error);
  if (passphrase == NULL)
    return NULL;
  parms = g_strdup_printf ("Key-Type: RSA\n"
                           "Key-Length: %d\n"
                           "Key-Usage: sign, encrypt\n"
                           "Name-DN: CN=%s\n"
                           "Name-Email: %s\n",
                           SM_CERTSTORE_SMIME_RSA_BITS,
                           name != NULL && *name != '\0' ? name : address, address);
  parms_bytes = g_bytes_new (parms, strlen (parms));

  /* gpgsm directly: GPGME's CMS engine cannot answer the agent's request for
   * the new key's passphrase (DESIGN.md), loopback with fd 3 can. */
  if (!sm_gnupg_tool_run (self->home, "gpgsm", args, parms_bytes, passphrase, &request, &err_text, error))
    {
      g_prefix_error (error, _("Creating your S/MIME key: "));
      return NULL;
    }

  /* gpgsm says "about to sign the CSR for key: &<KEYGRIP>". */
  marker = err_text ? strstr (err_text, "CSR for key: &") : NULL;
  if (marker != NULL)
    {
      marker += strlen ("CSR for key: &");
      grip = g_strndup (marker, strspn (marker, "0123456789ABCDEFabcdef"));
    }
  if (grip == NULL || strlen (grip) != 40)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_ENGINE,
                   _("gpgsm created the request but did not name the new key; report this to the helpdesk"));
      return NULL;
    }
  if (!sm_passphrase_store_save (grip, "", SM_PROTOCOL_SMIME, passphrase, NULL, error))
    {
      /* The request is useless if the key's passphrase is lost. */
      g_prefix_error (error, _("The request was not written: "));
      return NULL;
    }
  if (keygrip != NULL)
    *keygrip = g_steal_pointer (&grip);
  return g_steal_pointer (&request);
}

/* ---- trust anchors --------------------------------------------------------- */

static gboolean
save_anchors (SmCertstore *self,
              GPtrArray   *anchors,
              GError     **error)
{
  gboolean changed = FALSE;

  if (!sm_trust_anchors_save (self->home, anchors, &changed, error))
    return FALSE;
  if (changed)
    sm_certstore_reload_agent (self);
  return TRUE;
}

/* Imports @data as CMS and returns the CA certificates in it (gpgme keys). */
static GPtrArray *
import_ca_certs (SmCertstore *self,
                 GBytes      *data,
                 GError     **error)
{
  g_autoptr(GPtrArray) fprs = sm_certstore_import_data (self, SM_PROTOCOL_SMIME, data, NULL, error);
  g_autoptr(GPtrArray) cas = g_ptr_array_new_with_free_func (gpgme_key_unref_cb);
  g_autoptr(GPtrArray) in_file = cert_fingerprints_in (data);

  if (fprs == NULL)
    return NULL;
  keep_fingerprints_in_file (fprs, in_file);
  for (guint i = 0; i < fprs->len; i++)
    {
      gpgme_key_t key = sm_certstore_get_gpgme_key (self, SM_PROTOCOL_SMIME, fprs->pdata[i], FALSE, NULL);

      if (key == NULL)
        continue;
      if (key->can_certify)
        g_ptr_array_add (cas, key);
      else
        gpgme_key_unref (key);
    }
  return g_steal_pointer (&cas);
}

SmKeyInfo *
sm_certstore_trust_ca (SmCertstore *self,
                       GBytes      *cert_data,
                       GError     **error)
{
  g_autoptr(GPtrArray) cas = NULL;
  g_autoptr(GPtrArray) anchors = NULL;
  gpgme_key_t ca = NULL;
  gboolean present = FALSE;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), NULL);
  g_return_val_if_fail (cert_data != NULL, NULL);

  if (has_private_key_material (cert_data) || is_openpgp (cert_data))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("This is not an X.509 CA certificate; ask the helpdesk for the CA certificate (.pem or .crt)"));
      return NULL;
    }
  cas = import_ca_certs (self, cert_data, error);
  if (cas == NULL)
    return NULL;
  /* Prefer the root (self-signed) if the file holds a chain. */
  for (guint i = 0; i < cas->len && ca == NULL; i++)
    {
      gpgme_key_t k = cas->pdata[i];
      if (k->chain_id != NULL && g_ascii_strcasecmp (k->chain_id, k->subkeys->fpr) == 0)
        ca = k;
    }
  if (ca == NULL && cas->len > 0)
    ca = cas->pdata[0];
  if (ca == NULL)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("This certificate is not a CA certificate (it cannot issue certificates); for a correspondent's certificate use `securemail certs import FILE`"));
      return NULL;
    }

  anchors = sm_trust_anchors_load (self->home, error);
  if (anchors == NULL)
    return NULL;
  for (guint i = 0; i < anchors->len; i++)
    present |= g_ascii_strcasecmp (((SmTrustAnchor *) anchors->pdata[i])->fingerprint, ca->subkeys->fpr) == 0;
  if (!present)
    {
      g_ptr_array_add (anchors, sm_trust_anchor_new (ca->subkeys->fpr,
                                                     ca->uids ? ca->uids->uid : "", FALSE));
      if (!save_anchors (self, anchors, error))
        return NULL;
    }
  return sm_certstore_get_key (self, SM_PROTOCOL_SMIME, ca->subkeys->fpr, error);
}

gboolean
sm_certstore_untrust_ca (SmCertstore *self,
                         const char  *fingerprint,
                         GError     **error)
{
  g_autoptr(GPtrArray) anchors = NULL;
  g_autofree char *wanted = NULL;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), FALSE);
  g_return_val_if_fail (fingerprint != NULL, FALSE);

  anchors = sm_trust_anchors_load (self->home, error);
  if (anchors == NULL)
    return FALSE;
  /* Accept "AA:BB:..." as printed by openssl as well. */
  wanted = g_strdup (fingerprint);
  {
    char *w = wanted;
    for (const char *p = fingerprint; *p; p++)
      if (*p != ':' && *p != ' ')
        *w++ = *p;
    *w = '\0';
  }
  for (guint i = 0; i < anchors->len; i++)
    {
      SmTrustAnchor *a = anchors->pdata[i];

      if (g_ascii_strcasecmp (a->fingerprint, wanted) != 0)
        continue;
      if (a->admin)
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_ADMIN_LOCKED,
                       _("“%s” is a trust anchor set by your administrator and cannot be removed here; contact your administrator"),
                       a->subject);
          return FALSE;
        }
      g_ptr_array_remove_index (anchors, i);
      return save_anchors (self, anchors, error);
    }
  g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY,
               _("%s is not a trust anchor; see `securemail certs list`"), fingerprint);
  return FALSE;
}

gboolean
sm_certstore_apply_policy (SmCertstore *self,
                           GError     **error)
{
  g_autofree char *dir = NULL;
  g_autoptr(GPtrArray) anchors = NULL;
  g_autoptr(GPtrArray) admin_fprs = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) crl_files = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) local = NULL;
  gboolean dirty = FALSE;

  g_return_val_if_fail (SM_IS_CERTSTORE (self), FALSE);

  dir = sm_policy_get_trust_anchors_dir (error);
  if (dir == NULL && error != NULL && *error != NULL)
    return FALSE;
  anchors = sm_trust_anchors_load (self->home, error);
  if (anchors == NULL)
    return FALSE;

  if (dir != NULL)
    {
      g_autoptr(GDir) d = g_dir_open (dir, 0, &local);
      const char *name;

      if (d == NULL)
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("The administrator's trust anchor folder %s (policy.conf, [policy] trust_anchors_dir) cannot be read (%s); contact your administrator"),
                       dir, local->message);
          return FALSE;
        }
      while ((name = g_dir_read_name (d)) != NULL && names->len < SM_CERTSTORE_MAX_POLICY_FILES)
        if (name[0] != '.')
          g_ptr_array_add (names, g_strdup (name));
      g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
    }

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *path = g_build_filename (dir, names->pdata[i], NULL);
      g_autofree char *contents = NULL;
      gsize len;
      g_autoptr(GBytes) bytes = NULL;
      g_autoptr(GPtrArray) cas = NULL;
      g_autoptr(GError) file_error = NULL;

      if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)
          || !g_file_get_contents (path, &contents, &len, &file_error))
        continue;
      bytes = g_bytes_new_take (g_steal_pointer (&contents), len);
      if (sm_crl_sniff (bytes))
        {
          g_ptr_array_add (crl_files, g_steal_pointer (&path));
          continue;
        }
      cas = import_ca_certs (self, bytes, &file_error);
      if (cas == NULL)
        {
          /* One broken file must not cost the user all other anchors. */
          g_debug ("Policy anchor %s skipped: %s", path, file_error->message);
          continue;
        }
      for (guint j = 0; j < cas->len; j++)
        {
          gpgme_key_t ca = cas->pdata[j];
          SmTrustAnchor *found = NULL;

          g_ptr_array_add (admin_fprs, g_strdup (ca->subkeys->fpr));
          for (guint k = 0; k < anchors->len && found == NULL; k++)
            if (g_ascii_strcasecmp (((SmTrustAnchor *) anchors->pdata[k])->fingerprint, ca->subkeys->fpr) == 0)
              found = anchors->pdata[k];
          if (found == NULL)
            {
              g_ptr_array_add (anchors, sm_trust_anchor_new (ca->subkeys->fpr,
                                                             ca->uids ? ca->uids->uid : "", TRUE));
              dirty = TRUE;
            }
          else if (!found->admin)
            {
              found->admin = TRUE;
              dirty = TRUE;
            }
        }
    }

  /* Anchors the administrator has withdrawn go away. */
  for (guint k = anchors->len; k > 0; k--)
    {
      SmTrustAnchor *a = anchors->pdata[k - 1];
      gboolean listed = FALSE;

      if (!a->admin)
        continue;
      for (guint j = 0; j < admin_fprs->len && !listed; j++)
        listed = g_ascii_strcasecmp (admin_fprs->pdata[j], a->fingerprint) == 0;
      if (!listed)
        {
          g_ptr_array_remove_index (anchors, k - 1);
          dirty = TRUE;
        }
    }

  if (dirty && !save_anchors (self, anchors, error))
    return FALSE;

  for (guint i = 0; i < crl_files->len; i++)
    {
      g_autofree char *contents = NULL;
      gsize len;
      g_autoptr(GError) crl_error = NULL;

      if (g_file_get_contents (crl_files->pdata[i], &contents, &len, NULL))
        {
          g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&contents), len);

          if (!import_crl (self, bytes, NULL, &crl_error))
            g_debug ("Policy CRL %s skipped: %s", (char *) crl_files->pdata[i], crl_error->message);
        }
    }
  return TRUE;
}

SmRevocation
sm_certstore_check_revocation (SmCertstore *self,
                               const char  *fingerprint,
                               char       **detail,
                               GError     **error)
{
  g_autoptr(SmKeyInfo) info = sm_certstore_get_key (self, SM_PROTOCOL_SMIME, fingerprint, error);

  if (info == NULL)
    return SM_REVOCATION_NOT_CHECKED;
  if (detail != NULL)
    *detail = g_strdup (info->status_detail);
  return info->revocation;
}
