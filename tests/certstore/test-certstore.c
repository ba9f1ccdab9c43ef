/* test-certstore.c: the certstore against real gpg, gpgsm, gpg-agent and
 * gnome-keyring (run under keyring-wrapper.sh).
 *
 * Each test gets its own temporary GnuPG homes (s2k-count 65536, so
 * passphrase-protected keys cost milliseconds) and stops their agents in
 * teardown. The test PKI comes from make-test-ca.sh, made once per run.
 */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "sm-backup.h"
#include "sm-certstore.h"
#include "sm-certstore-private.h"
#include "sm-passphrase-store.h"
#include "sm-trust-anchors.h"
#include "sm-trustdb.h"

static char *ca_dir;          /* the test PKI, shared by all tests */

typedef struct {
  char *tmp;
  GPtrArray *stores;          /* SmCertstore, agents stopped in teardown */
  GPtrArray *extra_homes;     /* homes used only by the CLI */
} Fixture;

/* ---- helpers -------------------------------------------------------------------- */

static int
rm_rf_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

static void
rm_rf (const char *path)
{
  nftw (path, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static GBytes *
ca_file (const char *name)
{
  g_autofree char *path = g_build_filename (ca_dir, name, NULL);
  char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_bytes_new_take (contents, len);
}

static char *
ca_path (const char *name)
{
  return g_build_filename (ca_dir, name, NULL);
}

static void
write_agent_conf (const char *home)
{
  g_autofree char *conf = g_build_filename (home, "gpg-agent.conf", NULL);

  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  /* Fast passphrase hashing for tests (reference/test-stack.md §5). */
  g_assert_true (g_file_set_contents (conf, "s2k-count 65536\n", -1, NULL));
}

static char *
home_path (Fixture *f, const char *name)
{
  return g_build_filename (f->tmp, name, "gnupg", NULL);
}

static SmCertstore *
open_store (Fixture *f, const char *name)
{
  g_autofree char *home = home_path (f, name);
  g_autoptr(GError) error = NULL;
  SmCertstore *store;

  if (!g_file_test (home, G_FILE_TEST_EXISTS))
    write_agent_conf (home);
  store = sm_certstore_new_for_home (home, &error);
  g_assert_no_error (error);
  g_ptr_array_add (f->stores, store);
  return store;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->tmp = g_dir_make_tmp ("smcs-XXXXXX", NULL);
  g_assert_nonnull (f->tmp);
  f->stores = g_ptr_array_new_with_free_func (g_object_unref);
  f->extra_homes = g_ptr_array_new_with_free_func (g_free);
  g_unsetenv ("SECUREMAIL_POLICY");
  g_setenv ("SECUREMAIL_POLICY", "/nonexistent/policy.conf", TRUE);
}

static void
kill_agent (const char *home)
{
  const char *argv[] = { "gpgconf", "--kill", "all", NULL };
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;

  g_subprocess_launcher_setenv (l, "GNUPGHOME", home, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, NULL);
  if (p != NULL)
    g_subprocess_wait (p, NULL, NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr(GDir) d = NULL;
  const char *name;

  for (guint i = 0; i < f->stores->len; i++)
    sm_certstore_shutdown_agent (f->stores->pdata[i]);
  for (guint i = 0; i < f->extra_homes->len; i++)
    kill_agent (f->extra_homes->pdata[i]);
  /* Any home left under tmp (restores move homes around): stop its agent. */
  d = g_dir_open (f->tmp, 0, NULL);
  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *sub = g_build_filename (f->tmp, name, NULL);
      g_autoptr(GDir) d2 = g_dir_open (sub, 0, NULL);
      const char *n2;

      while (d2 != NULL && (n2 = g_dir_read_name (d2)) != NULL)
        if (g_str_has_prefix (n2, "gnupg"))
          {
            g_autofree char *h = g_build_filename (sub, n2, NULL);
            kill_agent (h);
          }
    }
  g_ptr_array_unref (f->stores);
  g_ptr_array_unref (f->extra_homes);
  rm_rf (f->tmp);
  g_free (f->tmp);
}

static gpgme_key_t
gkey (SmCertstore *s, SmProtocol p, const char *fpr, gboolean secret)
{
  g_autoptr(GError) error = NULL;
  gpgme_key_t key = sm_certstore_get_gpgme_key (s, p, fpr, secret, &error);

  g_assert_no_error (error);
  return key;
}

static GBytes *
take_data (gpgme_data_t d)
{
  size_t len;
  char *mem = gpgme_data_release_and_get_mem (d, &len);
  GBytes *b = g_bytes_new (mem, len);

  gpgme_free (mem);
  return b;
}

/* Opaque signature of @text by @fpr; no passphrase callback anywhere: the
 * agent must have it from sm_certstore_unlock(). */
static GBytes *
sign_text (SmCertstore *s, SmProtocol p, const char *fpr, const char *text, GError **error)
{
  gpgme_ctx_t ctx = sm_certstore_new_context (s, p, error);
  gpgme_key_t key = gkey (s, p, fpr, TRUE);
  gpgme_data_t in, out;
  gpgme_error_t err;

  g_assert_nonnull (ctx);
  gpgme_signers_add (ctx, key);
  gpgme_key_unref (key);
  gpgme_data_new_from_mem (&in, text, strlen (text), 1);
  gpgme_data_new (&out);
  err = gpgme_op_sign (ctx, in, out, GPGME_SIG_MODE_NORMAL);
  gpgme_data_release (in);
  gpgme_release (ctx);
  if (err)
    {
      gpgme_data_release (out);
      sm_certstore_set_gpgme_error (error, err, "sign");
      return NULL;
    }
  return take_data (out);
}

static char *
verify_text (SmCertstore *s, SmProtocol p, GBytes *sig, gpgme_sigsum_t *summary, char **signer)
{
  g_autoptr(GError) error = NULL;
  gpgme_ctx_t ctx = sm_certstore_new_context (s, p, &error);
  gpgme_data_t in, out;
  gpgme_verify_result_t r;
  gsize len;
  const char *data = g_bytes_get_data (sig, &len);
  g_autoptr(GBytes) plain = NULL;

  g_assert_no_error (error);
  gpgme_data_new_from_mem (&in, data, len, 0);
  gpgme_data_new (&out);
  g_assert_cmpint (gpgme_op_verify (ctx, in, NULL, out), ==, 0);
  r = gpgme_op_verify_result (ctx);
  g_assert_nonnull (r->signatures);
  *summary = r->signatures->summary;
  if (signer != NULL)
    *signer = g_strdup (r->signatures->fpr);
  gpgme_data_release (in);
  gpgme_release (ctx);
  plain = take_data (out);
  return g_strndup (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain));
}

static GBytes *
encrypt_text (SmCertstore *s, SmProtocol p, const char *fpr, const char *text)
{
  g_autoptr(GError) error = NULL;
  gpgme_ctx_t ctx = sm_certstore_new_context (s, p, &error);
  gpgme_key_t recp[2] = { gkey (s, p, fpr, FALSE), NULL };
  gpgme_data_t in, out;

  g_assert_no_error (error);
  gpgme_set_armor (ctx, 1);
  gpgme_data_new_from_mem (&in, text, strlen (text), 1);
  gpgme_data_new (&out);
  /* OpenPGP: a correspondent's imported key has no web-of-trust validity;
   * the trust decision is the proxy's, not gpg's. */
  g_assert_cmpint (gpgme_op_encrypt (ctx, recp, GPGME_ENCRYPT_ALWAYS_TRUST, in, out), ==, 0);
  gpgme_key_unref (recp[0]);
  gpgme_data_release (in);
  gpgme_release (ctx);
  return take_data (out);
}

static char *
decrypt_text (SmCertstore *s, SmProtocol p, GBytes *cipher, GError **error)
{
  gpgme_ctx_t ctx = sm_certstore_new_context (s, p, error);
  gpgme_data_t in, out;
  gpgme_error_t err;
  gsize len;
  const char *data = g_bytes_get_data (cipher, &len);
  g_autoptr(GBytes) plain = NULL;

  g_assert_nonnull (ctx);
  gpgme_data_new_from_mem (&in, data, len, 0);
  gpgme_data_new (&out);
  err = gpgme_op_decrypt (ctx, in, out);
  gpgme_data_release (in);
  gpgme_release (ctx);
  if (err)
    {
      gpgme_data_release (out);
      sm_certstore_set_gpgme_error (error, err, "decrypt");
      return NULL;
    }
  plain = take_data (out);
  return g_strndup (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain));
}

static SmKeyInfo *
find_info (GPtrArray *infos, const char *address)
{
  for (guint i = 0; i < infos->len; i++)
    if (sm_key_info_has_address (infos->pdata[i], address))
      return infos->pdata[i];
  return NULL;
}

/* Like find_info(), but the key must be there (g_error() is noreturn, so
 * the compiler knows the result is not NULL). */
static SmKeyInfo *
need_info (GPtrArray *infos, const char *address)
{
  SmKeyInfo *info = find_info (infos, address);

  if (info == NULL)
    g_error ("no key for %s", address);
  return info;
}

static SmKeyInfo *
import_p12 (SmCertstore *s, const char *file)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) p12 = ca_file (file);
  g_autoptr(GPtrArray) infos = sm_certstore_import_own (s, p12, "p12pass", &error);

  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, >=, 1);
  for (guint i = 0; i < infos->len; i++)
    if (((SmKeyInfo *) infos->pdata[i])->secret)
      return sm_key_info_copy (infos->pdata[i]);
  g_assert_not_reached ();
}

static void
trust_test_ca (SmCertstore *s)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) ca = ca_file ("ca.pem");
  g_autoptr(SmKeyInfo) info = sm_certstore_trust_ca (s, ca, &error);

  g_assert_no_error (error);
  g_assert_true (info->is_anchor);
  g_assert_false (info->admin_anchor);
}

/* Forget all cached passphrases, then hand them over from the keyring
 * again: what happens when the proxy starts. */
static void
restart_agent_and_unlock (SmCertstore *s, guint expected)
{
  g_autoptr(GError) error = NULL;
  guint n = 0;

  sm_certstore_shutdown_agent (s);
  g_assert_true (sm_certstore_unlock (s, NULL, &n, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, expected);
}

/* ---- tests -------------------------------------------------------------------------- */

static void
test_error_map (void)
{
  static const struct { gpg_err_code_t code; SmCertstoreError expected; } table[] = {
    { GPG_ERR_NO_SECKEY, SM_CERTSTORE_ERROR_NO_KEY },
    { GPG_ERR_NO_PUBKEY, SM_CERTSTORE_ERROR_NO_KEY },
    { GPG_ERR_BAD_PASSPHRASE, SM_CERTSTORE_ERROR_BAD_PASSPHRASE },
    { GPG_ERR_NO_PIN_ENTRY, SM_CERTSTORE_ERROR_LOCKED },
    { GPG_ERR_ENOTTY, SM_CERTSTORE_ERROR_LOCKED },
    { GPG_ERR_CERT_EXPIRED, SM_CERTSTORE_ERROR_EXPIRED },
    { GPG_ERR_KEY_EXPIRED, SM_CERTSTORE_ERROR_EXPIRED },
    { GPG_ERR_CERT_REVOKED, SM_CERTSTORE_ERROR_REVOKED },
    { GPG_ERR_NOT_TRUSTED, SM_CERTSTORE_ERROR_UNTRUSTED },
    { GPG_ERR_BAD_CERT_CHAIN, SM_CERTSTORE_ERROR_UNTRUSTED },
    { GPG_ERR_NO_CRL_KNOWN, SM_CERTSTORE_ERROR_CRL },
    { GPG_ERR_NO_DATA, SM_CERTSTORE_ERROR_BAD_DATA },
    { GPG_ERR_UNSUPPORTED_PROTECTION, SM_CERTSTORE_ERROR_UNSUPPORTED },
    { GPG_ERR_NO_AGENT, SM_CERTSTORE_ERROR_ENGINE },
    { GPG_ERR_GENERAL, SM_CERTSTORE_ERROR_FAILED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    {
      g_autoptr(GError) error = NULL;
      gpgme_error_t err = gpgme_err_make (GPG_ERR_SOURCE_GPGME, table[i].code);

      g_assert_cmpint (sm_certstore_error_code_from_gpgme (err), ==, table[i].expected);
      g_assert_false (sm_certstore_set_gpgme_error (&error, err, "Doing it"));
      g_assert_error (error, SM_CERTSTORE_ERROR, (int) table[i].expected);
      g_assert_true (g_str_has_prefix (error->message, "Doing it: "));
      /* Helpdesk wording: every message says what to do or whom to ask. */
      g_assert_true (strstr (error->message, "securemail") != NULL || strstr (error->message, "ask") != NULL
                     || strstr (error->message, "install") != NULL || strstr (error->message, "try again") != NULL
                     || strstr (error->message, "check") != NULL || strstr (error->message, "get a new") != NULL
                     || strstr (error->message, "re-export") != NULL || strstr (error->message, "import") != NULL);
    }
  g_assert_true (sm_certstore_set_gpgme_error (NULL, 0, NULL));
}

static void
test_recovery_code (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecret) code = sm_backup_generate_recovery_code (&error);
  g_autoptr(SmSecret) again = NULL;
  g_autoptr(SmSecret) bad = NULL;
  g_autoptr(GRegex) re = g_regex_new ("^[0-9]{4}(-[0-9]{4}){8}$", 0, 0, NULL);
  g_autofree char *spaced = NULL;

  g_assert_no_error (error);
  g_assert_true (g_regex_match (re, code, 0, NULL));

  /* Typed with spaces and a line break: same code. */
  spaced = g_strdelimit (g_strdup (code), "-", ' ');
  spaced[14] = '\n';
  again = sm_backup_normalize_recovery_code (spaced, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again, ==, code);

  bad = sm_backup_normalize_recovery_code ("1234-5678", &error);
  g_assert_null (bad);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE);
  g_clear_error (&error);
  bad = sm_backup_normalize_recovery_code ("1234-5678-1234-5678-1234-5678-1234-5678-12O4", &error);
  g_assert_null (bad);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE);
}

static void
test_home (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "home");
  g_autofree char *agent = g_build_filename (sm_certstore_get_home (s), "gpg-agent.conf", NULL);
  g_autofree char *gpgsm = g_build_filename (sm_certstore_get_home (s), "gpgsm.conf", NULL);
  g_autofree char *a = NULL;
  g_autofree char *g = NULL;
  GStatBuf st;

  g_assert_cmpint (g_stat (sm_certstore_get_home (s), &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_assert_true (g_file_get_contents (agent, &a, NULL, NULL));
  g_assert_true (g_file_get_contents (gpgsm, &g, NULL, NULL));
  g_assert_nonnull (strstr (a, "s2k-count 65536"));        /* kept */
  g_assert_nonnull (strstr (a, "allow-preset-passphrase"));
  g_assert_nonnull (strstr (a, "allow-loopback-pinentry"));
  g_assert_nonnull (strstr (a, "no-allow-mark-trusted"));
  g_assert_nonnull (strstr (g, "disable-dirmngr"));
  g_assert_nonnull (strstr (g, "disable-crl-checks"));

  /* Opening again does not duplicate lines. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(SmCertstore) again = sm_certstore_new_for_home (sm_certstore_get_home (s), &error);
    g_autofree char *a2 = NULL;

    g_assert_no_error (error);
    g_assert_true (g_file_get_contents (agent, &a2, NULL, NULL));
    g_assert_cmpstr (a, ==, a2);
  }
}

static void
test_openpgp_generate_sign_verify (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) key = sm_certstore_generate_openpgp (s, "Alice Example", "alice@example.test", 0, &error);
  g_autoptr(SmKeyInfo) own = NULL;
  g_autoptr(SmKeyInfo) shortkey = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(GBytes) sig = NULL;
  g_autoptr(SmSecret) stored = NULL;
  g_autofree char *plain = NULL;
  g_autofree char *signer = NULL;
  gpgme_sigsum_t summary;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_no_error (error);
  g_assert_nonnull (key);
  g_assert_true (key->secret && key->can_sign && key->can_encrypt);
  g_assert_cmpint (key->status, ==, SM_KEY_STATUS_VALID);
  g_assert_cmpint (sm_key_info_days_left (key, now), >=, SM_CERTSTORE_DEFAULT_KEY_DAYS - 1);

  /* The random passphrase is in the keyring, under the keygrip. */
  stored = sm_passphrase_store_lookup (key->keygrip, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (stored);
  g_assert_cmpuint (strlen (stored), >=, 24);

  /* A fresh agent knows nothing until unlock; then signing needs no prompt. */
  sm_certstore_shutdown_agent (s);
  sig = sign_text (s, SM_PROTOCOL_OPENPGP, key->fingerprint, "hello\n", &error);
  g_assert_null (sig);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_LOCKED);
  g_assert_nonnull (strstr (error->message, "securemail unlock"));
  g_clear_error (&error);

  restart_agent_and_unlock (s, 1);
  sig = sign_text (s, SM_PROTOCOL_OPENPGP, key->fingerprint, "hello\n", &error);
  g_assert_no_error (error);
  plain = verify_text (s, SM_PROTOCOL_OPENPGP, sig, &summary, &signer);
  g_assert_cmpstr (plain, ==, "hello\n");
  g_assert_true (summary & GPGME_SIGSUM_VALID);
  g_assert_cmpstr (signer, ==, key->fingerprint);

  own = sm_certstore_get_own_identity (s, SM_PROTOCOL_OPENPGP, "ALICE@example.test", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (own->fingerprint, ==, key->fingerprint);
  g_assert_null (sm_certstore_get_own_identity (s, SM_PROTOCOL_SMIME, "alice@example.test", &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY);
  g_assert_nonnull (strstr (error->message, "securemail keys generate"));
  g_clear_error (&error);

  list = sm_certstore_list_own_keys (s, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);

  /* Expiry: a 10-day key is reported, the 2-year key is not. */
  shortkey = sm_certstore_generate_openpgp (s, "Alice Short", "alice.short@example.test", 10, &error);
  g_assert_no_error (error);
  warnings = sm_certstore_get_expiry_warnings (s, SM_CERTSTORE_EXPIRY_WARN_DAYS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (warnings->len, ==, 1);
  g_assert_cmpstr (((SmExpiryWarning *) warnings->pdata[0])->key->fingerprint, ==, shortkey->fingerprint);
  g_assert_cmpint (((SmExpiryWarning *) warnings->pdata[0])->days_left, >=, 9);
  g_assert_cmpint (((SmExpiryWarning *) warnings->pdata[0])->days_left, <=, 10);
}

static void
test_smime_p12 (Fixture *f, gconstpointer data)
{
  const char *file = data;
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) key = NULL;
  g_autoptr(SmKeyInfo) own = NULL;
  g_autoptr(GBytes) sig = NULL;
  g_autofree char *plain = NULL;
  gpgme_sigsum_t summary;

  key = import_p12 (s, file);
  g_assert_true (sm_key_info_has_address (key, "alice@example.test"));
  /* Not trusted until the CA is an anchor. */
  g_assert_cmpint (key->status, ==, SM_KEY_STATUS_UNTRUSTED);

  trust_test_ca (s);
  own = sm_certstore_get_own_identity (s, SM_PROTOCOL_SMIME, "alice@example.test", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (own->fingerprint, ==, key->fingerprint);
  g_assert_cmpint (own->status, ==, SM_KEY_STATUS_VALID);
  /* No CRL imported: valid, but the listing says revocation was not checked. */
  g_assert_cmpint (own->revocation, ==, SM_REVOCATION_NOT_CHECKED);
  g_assert_nonnull (strstr (own->status_detail, "revocation not checked"));

  /* gpgsm gets no passphrase callback: the preset from the keyring does it. */
  restart_agent_and_unlock (s, 1);
  sig = sign_text (s, SM_PROTOCOL_SMIME, key->fingerprint, "hello smime\n", &error);
  g_assert_no_error (error);
  plain = verify_text (s, SM_PROTOCOL_SMIME, sig, &summary, NULL);
  g_assert_cmpstr (plain, ==, "hello smime\n");
  g_assert_true (summary & GPGME_SIGSUM_VALID);
}

static void
test_smime_p12_wrong_password (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) p12 = ca_file ("alice-openssl3.p12");
  g_autoptr(GPtrArray) infos = sm_certstore_import_own (s, p12, "wrong", &error);
  g_autoptr(GPtrArray) own = NULL;

  g_assert_null (infos);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_PASSPHRASE);
  g_clear_error (&error);
  own = sm_certstore_list_own_keys (s, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (own->len, ==, 0);
}

static void
test_smime_encrypt_decrypt (Fixture *f, gconstpointer data)
{
  SmCertstore *alice = open_store (f, "alice");
  SmCertstore *bob = open_store (f, "bob");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) bob_key = import_p12 (bob, "bob-legacy.p12");
  g_autoptr(GBytes) bob_cert = ca_file ("bob.pem");
  g_autoptr(GPtrArray) imported = NULL;
  g_autoptr(SmRecipientLookup) lookup = NULL;
  g_autoptr(GBytes) cipher = NULL;
  g_autofree char *plain = NULL;
  const char *addresses[] = { "bob@example.test", "nobody@example.test", NULL };

  trust_test_ca (alice);
  trust_test_ca (bob);
  imported = sm_certstore_import_certs (alice, bob_cert, NULL, &error);
  g_assert_no_error (error);
  /* gpgsm also reports the (unchanged) issuer it found for the chain. */
  g_assert_false (need_info (imported, "bob@example.test")->secret);

  lookup = sm_certstore_lookup_recipients (alice, SM_PROTOCOL_SMIME, addresses, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lookup->keys->len, ==, 1);
  g_assert_cmpstr (lookup->found->pdata[0], ==, "bob@example.test");
  g_assert_cmpstr (((SmKeyInfo *) lookup->keys->pdata[0])->fingerprint, ==, bob_key->fingerprint);
  g_assert_cmpuint (lookup->missing->len, ==, 1);
  g_assert_cmpstr (lookup->missing->pdata[0], ==, "nobody@example.test");
  g_assert_nonnull (strstr (lookup->reasons->pdata[0], "securemail certs import"));

  cipher = encrypt_text (alice, SM_PROTOCOL_SMIME, bob_key->fingerprint, "for bob only\n");
  restart_agent_and_unlock (bob, 1);
  plain = decrypt_text (bob, SM_PROTOCOL_SMIME, cipher, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "for bob only\n");

  /* Alice cannot read it. */
  g_clear_pointer (&plain, g_free);
  plain = decrypt_text (alice, SM_PROTOCOL_SMIME, cipher, &error);
  g_assert_null (plain);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY);
}

static void
test_openpgp_encrypt_decrypt_collect (Fixture *f, gconstpointer data)
{
  SmCertstore *alice = open_store (f, "alice");
  SmCertstore *bob = open_store (f, "bob");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) bob_key = sm_certstore_generate_openpgp (bob, "Bob", "bob@example.test", 0, &error);
  g_autoptr(GBytes) bob_pub = NULL;
  g_autoptr(SmKeyInfo) collected = NULL;
  g_autoptr(SmRecipientLookup) lookup = NULL;
  g_autoptr(GBytes) cipher = NULL;
  static const char secret_text[] = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n";
  g_autoptr(GBytes) secret_blob = g_bytes_new_static (secret_text, sizeof secret_text - 1);
  g_autofree char *plain = NULL;
  const char *addresses[] = { "Bob@Example.test", NULL };

  g_assert_no_error (error);
  bob_pub = sm_certstore_export_public (bob, SM_PROTOCOL_OPENPGP, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (g_strstr_len (g_bytes_get_data (bob_pub, NULL), g_bytes_get_size (bob_pub),
                                  "BEGIN PGP PUBLIC KEY BLOCK"));

  /* Secret material in a message is never collected. */
  g_assert_null (sm_certstore_collect_from_signature (alice, SM_PROTOCOL_OPENPGP, bob_key->fingerprint,
                                                      secret_blob, &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA);
  g_clear_error (&error);

  /* A verified signature came with Bob's key (e.g. an Autocrypt header). */
  collected = sm_certstore_collect_from_signature (alice, SM_PROTOCOL_OPENPGP, bob_key->fingerprint,
                                                   bob_pub, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (collected->fingerprint, ==, bob_key->fingerprint);
  g_assert_false (collected->secret);

  lookup = sm_certstore_lookup_recipients (alice, SM_PROTOCOL_OPENPGP, addresses, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lookup->keys->len, ==, 1);
  g_assert_cmpuint (lookup->missing->len, ==, 0);

  cipher = encrypt_text (alice, SM_PROTOCOL_OPENPGP, bob_key->fingerprint, "pgp for bob\n");
  restart_agent_and_unlock (bob, 1);
  plain = decrypt_text (bob, SM_PROTOCOL_OPENPGP, cipher, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "pgp for bob\n");
}

/* A key the user made elsewhere (gpg in @src's home) with their own
 * @passphrase ("" for none), exported armored with its secret parts. */
static GBytes *
export_user_key (SmCertstore *src, const char *userid, const char *address, const char *passphrase)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  const char *argv[] = { "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
                         "--quick-gen-key", userid, "future-default", "default", "never", NULL };
  const char *exp_argv[] = { "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
                             "--armor", "--export-secret-keys", address, NULL };
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GSubprocess) p2 = NULL;

  g_subprocess_launcher_setenv (l, "GNUPGHOME", sm_certstore_get_home (src), TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait_check (p, NULL, &error));
  p2 = g_subprocess_launcher_spawnv (l, exp_argv, &error);
  g_assert_true (g_subprocess_communicate_utf8 (p2, NULL, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (strstr (out, "PRIVATE KEY BLOCK"));
  return g_bytes_new (out, strlen (out));
}

/* A loopback signature with exactly @passphrase after the agent forgot
 * everything: does @passphrase open the key file? */
static gboolean
passphrase_opens (SmCertstore *s, const char *fpr, const char *passphrase)
{
  g_autoptr(GError) error = NULL;
  gpgme_ctx_t ctx;
  gpgme_key_t key = gkey (s, SM_PROTOCOL_OPENPGP, fpr, TRUE);
  gpgme_data_t in, out;
  gpgme_error_t err;

  sm_certstore_shutdown_agent (s);
  ctx = sm_certstore_new_context_with_passphrase (s, SM_PROTOCOL_OPENPGP, passphrase, &error);
  g_assert_no_error (error);
  gpgme_signers_add (ctx, key);
  gpgme_key_unref (key);
  gpgme_data_new_from_mem (&in, "probe", 5, 1);
  gpgme_data_new (&out);
  err = gpgme_op_sign (ctx, in, out, GPGME_SIG_MODE_DETACH);
  gpgme_data_release (in);
  gpgme_data_release (out);
  gpgme_release (ctx);
  return err == 0;
}

/* @fpr is under a generated passphrase from the keyring, not @typed: the
 * typed one no longer opens the key file, and a fresh agent gets all it
 * needs from sm_certstore_unlock(). */
static void
assert_reprotected (SmCertstore *s, const char *fpr, const char *typed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecret) stored = NULL;
  g_autoptr(GBytes) sig = NULL;
  g_autoptr(GBytes) cipher = NULL;
  g_autofree char *plain = NULL;
  gpgme_key_t key = gkey (s, SM_PROTOCOL_OPENPGP, fpr, TRUE);

  stored = sm_passphrase_store_lookup (key->subkeys->keygrip, NULL, &error);
  gpgme_key_unref (key);
  g_assert_no_error (error);
  g_assert_nonnull (stored);
  g_assert_cmpstr (stored, !=, typed);
  g_assert_cmpuint (strlen (stored), >=, 24);
  g_assert_false (passphrase_opens (s, fpr, typed));
  g_assert_true (passphrase_opens (s, fpr, stored));
  restart_agent_and_unlock (s, 1);
  sig = sign_text (s, SM_PROTOCOL_OPENPGP, fpr, "x", &error);
  g_assert_no_error (error);
  g_assert_nonnull (sig);
  /* The encryption subkey too. */
  cipher = encrypt_text (s, SM_PROTOCOL_OPENPGP, fpr, "to the subkey\n");
  plain = decrypt_text (s, SM_PROTOCOL_OPENPGP, cipher, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "to the subkey\n");
}

static void
test_openpgp_import_secret (Fixture *f, gconstpointer data)
{
  SmCertstore *src = open_store (f, "src");
  SmCertstore *dst = open_store (f, "dst");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) armored = export_user_key (src, "Erin <erin@example.test>", "erin@example.test", "userpass");
  g_autoptr(GPtrArray) infos = NULL;
  g_autofree char *fpr = NULL;

  /* Wrong passphrase: refused, nothing kept. */
  infos = sm_certstore_import_own (dst, armored, "wrongpass", &error);
  g_assert_null (infos);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_PASSPHRASE);
  g_clear_error (&error);
  infos = sm_certstore_list_own_keys (dst, &error);
  g_assert_cmpuint (infos->len, ==, 0);
  g_clear_pointer (&infos, g_ptr_array_unref);

  infos = sm_certstore_import_own (dst, armored, "userpass", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 1);
  fpr = g_strdup (((SmKeyInfo *) infos->pdata[0])->fingerprint);
  assert_reprotected (dst, fpr, "userpass");

  /* Importing the same file again is fine: the key keeps the keyring's
   * passphrase. */
  g_clear_pointer (&infos, g_ptr_array_unref);
  infos = sm_certstore_import_own (dst, armored, "userpass", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 1);
  assert_reprotected (dst, fpr, "userpass");
}

/* A key imported by an older version: still under the typed passphrase,
 * which the keyring holds. Importing the file again re-protects it. */
static void
test_openpgp_import_legacy (Fixture *f, gconstpointer data)
{
  SmCertstore *src = open_store (f, "src");
  SmCertstore *dst = open_store (f, "dst");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) armored = export_user_key (src, "Lea <lea@example.test>", "lea@example.test", "userpass");
  const char *argv[] = { "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "userpass",
                         "--import", NULL };
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  gpgme_key_t key;

  g_subprocess_launcher_setenv (l, "GNUPGHOME", sm_certstore_get_home (dst), TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate (p, armored, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
  keys = sm_certstore_list_gpgme_keys (dst, SM_PROTOCOL_OPENPGP, NULL, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 1);
  key = keys->pdata[0];
  g_assert_true (sm_passphrase_store_save (key->subkeys->keygrip, key->subkeys->fpr, SM_PROTOCOL_OPENPGP,
                                           "userpass", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (passphrase_opens (dst, key->subkeys->fpr, "userpass"));

  infos = sm_certstore_import_own (dst, armored, "userpass", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 1);
  assert_reprotected (dst, key->subkeys->fpr, "userpass");
}

/* A key exported without a passphrase gets a generated one, so that
 * forgetting passphrases (securemail lock) really locks it. */
static void
test_openpgp_import_unprotected (Fixture *f, gconstpointer data)
{
  SmCertstore *src = open_store (f, "src");
  SmCertstore *dst = open_store (f, "dst");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) armored = export_user_key (src, "Uma <uma@example.test>", "uma@example.test", "");
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GBytes) sig = NULL;
  g_autoptr(GBytes) cipher = NULL;
  g_autofree char *plain = NULL;
  const char *reload_argv[] = { "gpgconf", "--reload", "gpg-agent", NULL };
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GSubprocess) p = NULL;
  guint n = 0;
  const char *fpr;

  infos = sm_certstore_import_own (dst, armored, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 1);
  fpr = ((SmKeyInfo *) infos->pdata[0])->fingerprint;
  sig = sign_text (dst, SM_PROTOCOL_OPENPGP, fpr, "x", &error);
  g_assert_no_error (error);     /* preset at import */
  g_clear_pointer (&sig, g_bytes_unref);

  /* What `securemail lock` does: the agent forgets its passphrases. */
  g_subprocess_launcher_setenv (l, "GNUPGHOME", sm_certstore_get_home (dst), TRUE);
  p = g_subprocess_launcher_spawnv (l, reload_argv, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait_check (p, NULL, &error));
  sig = sign_text (dst, SM_PROTOCOL_OPENPGP, fpr, "x", &error);
  g_assert_null (sig);
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_LOCKED);
  g_clear_error (&error);

  g_assert_true (sm_certstore_unlock (dst, NULL, &n, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 1);
  sig = sign_text (dst, SM_PROTOCOL_OPENPGP, fpr, "x", &error);
  g_assert_no_error (error);
  g_assert_nonnull (sig);
  cipher = encrypt_text (dst, SM_PROTOCOL_OPENPGP, fpr, "to the subkey\n");
  plain = decrypt_text (dst, SM_PROTOCOL_OPENPGP, cipher, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "to the subkey\n");
}

/* Occurrences of lines starting with @prefix in @text. */
static guint
count_prefixed (const char *text, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint n = 0;

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix))
      n++;
  return n;
}

static void
test_home_s2k_count (Fixture *f, gconstpointer data)
{
  g_autofree char *fresh = g_build_filename (f->tmp, "fresh", "gnupg", NULL);
  g_autofree char *own = g_build_filename (f->tmp, "own", "gnupg", NULL);
  g_autofree char *fresh_conf = g_build_filename (fresh, "gpg-agent.conf", NULL);
  g_autofree char *own_conf = g_build_filename (own, "gpg-agent.conf", NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  /* A new home gets the cheap count, once, however often it is opened. */
  for (int i = 0; i < 2; i++)
    {
      g_autoptr(SmCertstore) s = sm_certstore_new_for_home (fresh, &error);

      g_assert_no_error (error);
      g_clear_pointer (&text, g_free);
      g_assert_true (g_file_get_contents (fresh_conf, &text, NULL, NULL));
      g_assert_cmpuint (count_prefixed (text, "s2k-count"), ==, 1);
      g_assert_cmpuint (count_prefixed (text, "s2k-count 65536"), ==, 1);
      g_assert_cmpuint (count_prefixed (text, "allow-preset-passphrase"), ==, 1);
    }

  /* A user's own value is kept, and no second line is added. */
  g_assert_cmpint (g_mkdir_with_parents (own, 0700), ==, 0);
  g_assert_true (g_file_set_contents (own_conf, "s2k-count 1000000\n", -1, NULL));
  {
    g_autoptr(SmCertstore) s = sm_certstore_new_for_home (own, &error);

    g_assert_no_error (error);
  }
  g_clear_pointer (&text, g_free);
  g_assert_true (g_file_get_contents (own_conf, &text, NULL, NULL));
  g_assert_cmpuint (count_prefixed (text, "s2k-count"), ==, 1);
  g_assert_cmpuint (count_prefixed (text, "s2k-count 1000000"), ==, 1);
  g_assert_cmpuint (count_prefixed (text, "allow-preset-passphrase"), ==, 1);
  g_ptr_array_add (f->extra_homes, g_strdup (fresh));
  g_ptr_array_add (f->extra_homes, g_strdup (own));
}

/* Seconds for SM_TEST_SIGN_ROUNDS signatures by a key generated in @s. */
#define SM_TEST_SIGN_ROUNDS 20

static double
time_signatures (SmCertstore *s, const char *address)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) key = sm_certstore_generate_openpgp (s, NULL, address, 0, &error);
  gint64 start;

  g_assert_no_error (error);
  restart_agent_and_unlock (s, 1);
  start = g_get_monotonic_time ();
  for (int i = 0; i < SM_TEST_SIGN_ROUNDS; i++)
    {
      g_autoptr(GBytes) sig = sign_text (s, SM_PROTOCOL_OPENPGP, key->fingerprint, "bench", &error);

      g_assert_no_error (error);
    }
  return (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
}

/* A measurement, not a timed test: what the store's s2k-count saves against
 * the agent's calibrated default (printed to the test log). */
static void
test_s2k_measure (Fixture *f, gconstpointer data)
{
  g_autofree char *before_home = home_path (f, "before");
  g_autofree char *after_home = home_path (f, "after");
  g_autofree char *conf = g_build_filename (before_home, "gpg-agent.conf", NULL);
  g_autofree char *line = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "gpg-connect-agent", "GETINFO s2k_count_cal", "/bye", NULL };
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  guint64 calibrated;
  SmCertstore *before;
  SmCertstore *after;
  double t_before, t_after;

  /* The agent's own calibration (~100 ms of hashing), written explicitly:
   * the store would otherwise put its cheap count in. */
  g_assert_cmpint (g_mkdir_with_parents (before_home, 0700), ==, 0);
  g_ptr_array_add (f->extra_homes, g_strdup (before_home));
  g_subprocess_launcher_setenv (l, "GNUPGHOME", before_home, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_true (g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (out, "D "));
  calibrated = g_ascii_strtoull (out + 2, NULL, 10);
  g_assert_cmpuint (calibrated, >=, 65536);
  kill_agent (before_home);
  line = g_strdup_printf ("s2k-count %" G_GUINT64_FORMAT "\n", calibrated);
  g_assert_true (g_file_set_contents (conf, line, -1, NULL));
  before = open_store (f, "before");
  t_before = time_signatures (before, "before@example.test");

  /* A home as the store makes it now. */
  after = sm_certstore_new_for_home (after_home, &error);
  g_assert_no_error (error);
  g_ptr_array_add (f->stores, after);
  t_after = time_signatures (after, "after@example.test");

  g_test_message ("%d OpenPGP signatures: %.3f s with s2k-count %" G_GUINT64_FORMAT
                  " (agent default), %.3f s with s2k-count %d: %.1fx faster",
                  SM_TEST_SIGN_ROUNDS, t_before, calibrated, t_after,
                  SM_CERTSTORE_AGENT_S2K_COUNT, t_after > 0 ? t_before / t_after : 0.0);
}

static SmKeyInfo *
find_fpr (GPtrArray *infos, const char *fpr)
{
  for (guint i = 0; i < infos->len; i++)
    if (g_strcmp0 (((SmKeyInfo *) infos->pdata[i])->fingerprint, fpr) == 0)
      return infos->pdata[i];
  return NULL;
}

static void
test_smime_expired_revoked (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) carol = ca_file ("carol.pem");
  g_autoptr(GBytes) dave = ca_file ("dave.pem");
  g_autoptr(GBytes) crl = ca_file ("ca.crl");
  g_autoptr(GBytes) other_ca = ca_file ("other-ca.pem");
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) a = NULL;
  g_autoptr(GPtrArray) b = NULL;
  g_autoptr(GPtrArray) c = NULL;
  g_autoptr(SmRecipientLookup) lookup = NULL;
  g_autofree char *issuer = NULL;
  g_autofree char *detail = NULL;
  g_autofree char *dave_fpr = NULL;
  const char *addresses[] = { "carol@example.test", "dave@example.test", NULL };
  SmKeyInfo *info;

  trust_test_ca (s);
  a = sm_certstore_import_certs (s, carol, NULL, &error);
  g_assert_no_error (error);
  b = sm_certstore_import_certs (s, dave, NULL, &error);
  g_assert_no_error (error);
  dave_fpr = g_strdup (((SmKeyInfo *) b->pdata[0])->fingerprint);

  list = sm_certstore_list_certs (s, &error);
  g_assert_no_error (error);
  info = need_info (list, "carol@example.test");
  g_assert_cmpint (info->status, ==, SM_KEY_STATUS_EXPIRED);
  info = need_info (list, "dave@example.test");
  /* Before the CRL: nothing says revoked, and the listing says so. */
  g_assert_cmpint (info->status, ==, SM_KEY_STATUS_VALID);
  g_assert_cmpint (info->revocation, ==, SM_REVOCATION_NOT_CHECKED);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* A CRL from a CA we do not have is refused with advice. */
  {
    static const char bogus_crl[] = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    g_autoptr(GBytes) bogus = g_bytes_new_static (bogus_crl, sizeof bogus_crl - 1);
    g_assert_null (sm_certstore_import_certs (s, bogus, NULL, &error));
    g_assert_nonnull (error);
    g_clear_error (&error);
  }

  c = sm_certstore_import_certs (s, crl, &issuer, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (c->len, ==, 0);
  g_assert_nonnull (strstr (issuer, "SecureMail Test CA"));

  list = sm_certstore_list_certs (s, &error);
  g_assert_no_error (error);
  info = need_info (list, "dave@example.test");
  g_assert_cmpint (info->status, ==, SM_KEY_STATUS_REVOKED);
  g_assert_cmpint (info->revocation, ==, SM_REVOCATION_REVOKED);
  g_assert_nonnull (strstr (info->status_detail, "revoked"));
  info = need_info (list, "carol@example.test");
  g_assert_cmpint (info->status, ==, SM_KEY_STATUS_EXPIRED);
  g_assert_cmpint (sm_certstore_check_revocation (s, dave_fpr, &detail, &error), ==, SM_REVOCATION_REVOKED);
  g_assert_no_error (error);

  lookup = sm_certstore_lookup_recipients (s, SM_PROTOCOL_SMIME, addresses, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lookup->keys->len, ==, 0);
  g_assert_cmpuint (lookup->missing->len, ==, 2);
  g_assert_nonnull (strstr (lookup->reasons->pdata[0], "expired"));
  g_assert_nonnull (strstr (lookup->reasons->pdata[1], "revoked"));

  /* A certificate that is not a CA cannot become an anchor. */
  g_assert_null (sm_certstore_trust_ca (s, dave, &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA);
  g_clear_error (&error);
  /* ... but another CA can, and the user can remove it again. */
  {
    g_autoptr(SmKeyInfo) other = sm_certstore_trust_ca (s, other_ca, &error);
    g_assert_no_error (error);
    g_assert_true (sm_certstore_untrust_ca (s, other->fingerprint, &error));
    g_assert_no_error (error);
  }
}

static void
write_policy (Fixture *f, const char *anchors_dir)
{
  g_autofree char *policy = g_build_filename (f->tmp, "policy.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[policy]\ntrust_anchors_dir = %s\n", anchors_dir);

  g_assert_true (g_file_set_contents (policy, text, -1, NULL));
  g_setenv ("SECUREMAIL_POLICY", policy, TRUE);
}

static void
copy_file (const char *from, const char *to)
{
  g_autofree char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (from, &contents, &len, NULL));
  g_assert_true (g_file_set_contents (to, contents, (gssize) len, NULL));
}

static void
test_admin_anchors (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename (f->tmp, "anchors", NULL);
  g_autofree char *ca_src = ca_path ("ca.pem");
  g_autofree char *crl_src = ca_path ("ca.crl");
  g_autofree char *ca_dst = g_build_filename (dir, "business-ca.pem", NULL);
  g_autofree char *crl_dst = g_build_filename (dir, "business-ca.crl", NULL);
  g_autofree char *trustlist = NULL;
  g_autofree char *tl_path = g_build_filename (sm_certstore_get_home (s), "trustlist.txt", NULL);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GBytes) ca = ca_file ("ca.pem");
  g_autoptr(GBytes) dave = ca_file ("dave.pem");
  g_autoptr(GPtrArray) imported = NULL;
  SmKeyInfo *anchor = NULL;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  copy_file (ca_src, ca_dst);
  copy_file (crl_src, crl_dst);
  write_policy (f, dir);

  g_assert_true (sm_certstore_apply_policy (s, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (tl_path, &trustlist, NULL, NULL));
  g_assert_nonnull (strstr (trustlist, " S relax"));

  list = sm_certstore_list_certs (s, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < list->len; i++)
    if (((SmKeyInfo *) list->pdata[i])->is_anchor)
      anchor = list->pdata[i];
  g_assert_nonnull (anchor);
  g_assert_true (anchor->admin_anchor);

  /* Locked: the user can neither remove it nor downgrade it. */
  g_assert_false (sm_certstore_untrust_ca (s, anchor->fingerprint, &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_ADMIN_LOCKED);
  g_clear_error (&error);
  {
    g_autoptr(SmKeyInfo) again = sm_certstore_trust_ca (s, ca, &error);
    g_assert_no_error (error);
    g_assert_true (again->admin_anchor);
  }

  /* The policy's CRL was applied too: dave is revoked. */
  imported = sm_certstore_import_certs (s, dave, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (((SmKeyInfo *) imported->pdata[0])->status, ==, SM_KEY_STATUS_REVOKED);

  /* The administrator withdraws the anchor: it goes away. */
  g_assert_cmpint (g_unlink (ca_dst), ==, 0);
  g_assert_true (sm_certstore_apply_policy (s, &error));
  g_assert_no_error (error);
  g_clear_pointer (&list, g_ptr_array_unref);
  list = sm_certstore_list_certs (s, &error);
  for (guint i = 0; i < list->len; i++)
    g_assert_false (((SmKeyInfo *) list->pdata[i])->is_anchor);
}

static void
test_smime_request (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  g_autoptr(GError) error = NULL;
  g_autofree char *grip = NULL;
  g_autoptr(GBytes) req = sm_certstore_generate_smime_request (s, "Alice Example", "alice@example.test", &grip, &error);
  g_autofree char *csr = g_build_filename (f->tmp, "alice.csr", NULL);
  g_autofree char *crt = g_build_filename (f->tmp, "alice-issued.pem", NULL);
  g_autofree char *script = g_strdup (g_getenv ("SM_TEST_CA_SCRIPT"));
  g_autoptr(GBytes) issued = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GBytes) sig = NULL;
  g_autoptr(GBytes) bob = ca_file ("bob.pem");
  g_autoptr(SmSecret) pass = NULL;
  g_autofree char *contents = NULL;
  gsize len;

  g_assert_no_error (error);
  g_assert_nonnull (g_strstr_len (g_bytes_get_data (req, NULL), g_bytes_get_size (req), "BEGIN CERTIFICATE REQUEST"));
  pass = sm_passphrase_store_lookup (grip, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (pass);

  g_assert_true (g_file_set_contents (csr, g_bytes_get_data (req, NULL), (gssize) g_bytes_get_size (req), NULL));
  {
    const char *argv[] = { script, "sign", ca_dir, csr, crt, "alice@example.test", NULL };
    g_autoptr(GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, &error);

    g_assert_no_error (error);
    g_assert_true (g_subprocess_wait_check (p, NULL, &error));
  }
  g_assert_true (g_file_get_contents (crt, &contents, &len, NULL));
  issued = g_bytes_new_take (g_steal_pointer (&contents), len);

  /* A correspondent's certificate is not one of ours. */
  g_assert_null (sm_certstore_import_own (s, bob, NULL, &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_NO_KEY);
  g_clear_error (&error);

  infos = sm_certstore_import_own (s, issued, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 1);
  g_assert_true (((SmKeyInfo *) infos->pdata[0])->secret);
  g_assert_cmpstr (((SmKeyInfo *) infos->pdata[0])->keygrip, ==, grip);
  trust_test_ca (s);

  restart_agent_and_unlock (s, 1);
  sig = sign_text (s, SM_PROTOCOL_SMIME, ((SmKeyInfo *) infos->pdata[0])->fingerprint, "csr path\n", &error);
  g_assert_no_error (error);
}

/* ---- backup -------------------------------------------------------------------------- */

typedef struct {
  SmCertstore *store;
  char *backup;
  SmSecret *code;
  GBytes *pgp_msg;
  GBytes *cms_msg;
  char *pgp_fpr;
  char *cms_fpr;
} BackupSetup;

static void
backup_setup_clear (BackupSetup *b)
{
  g_free (b->backup);
  sm_secret_free (b->code);
  g_clear_pointer (&b->pgp_msg, g_bytes_unref);
  g_clear_pointer (&b->cms_msg, g_bytes_unref);
  g_free (b->pgp_fpr);
  g_free (b->cms_fpr);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (BackupSetup, backup_setup_clear)

/* A user with keys of both protocols, an anchor, a CRL and two messages
 * encrypted to themselves; then a backup. */
static void
make_backup (Fixture *f, BackupSetup *b)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) pgp = NULL;
  g_autoptr(SmKeyInfo) cms = NULL;
  g_autoptr(GBytes) crl = ca_file ("ca.crl");
  g_autoptr(GPtrArray) c = NULL;
  GStatBuf st;

  b->store = open_store (f, "alice");
  pgp = sm_certstore_generate_openpgp (b->store, "Alice", "alice@example.test", 0, &error);
  g_assert_no_error (error);
  cms = import_p12 (b->store, "alice-openssl3.p12");
  trust_test_ca (b->store);
  c = sm_certstore_import_certs (b->store, crl, NULL, &error);
  g_assert_no_error (error);
  b->pgp_fpr = g_strdup (pgp->fingerprint);
  b->cms_fpr = g_strdup (cms->fingerprint);
  b->pgp_msg = encrypt_text (b->store, SM_PROTOCOL_OPENPGP, pgp->fingerprint, "old pgp message\n");
  b->cms_msg = encrypt_text (b->store, SM_PROTOCOL_SMIME, cms->fingerprint, "old smime message\n");

  b->backup = g_build_filename (f->tmp, "keys.backup", NULL);
  sm_backup_write (b->store, b->backup, &b->code, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (b->backup, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
}

static void
wipe_home_and_keyring (BackupSetup *b)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) own = sm_certstore_list_own_keys (b->store, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < own->len; i++)
    g_assert_true (sm_passphrase_store_clear (((SmKeyInfo *) own->pdata[i])->keygrip, NULL, NULL));
  sm_certstore_shutdown_agent (b->store);
  rm_rf (sm_certstore_get_home (b->store));
}

static void
assert_no_restore_leftovers (Fixture *f)
{
  g_autofree char *parent = g_build_filename (f->tmp, "alice", NULL);
  g_autoptr(GDir) d = g_dir_open (parent, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    g_assert_false (g_str_has_prefix (name, "gnupg.restore-"));
}

static void
test_backup_roundtrip (Fixture *f, gconstpointer data)
{
  g_auto(BackupSetup) b = { 0, };
  g_autoptr(GError) error = NULL;
  g_autoptr(SmCertstore) fresh = NULL;
  g_autoptr(GPtrArray) own = NULL;
  g_autoptr(GPtrArray) certs = NULL;
  g_autofree char *plain = NULL;
  g_autofree char *previous = NULL;
  g_autofree char *home = NULL;
  gboolean anchor = FALSE;

  make_backup (f, &b);
  home = g_strdup (sm_certstore_get_home (b.store));
  wipe_home_and_keyring (&b);

  /* A fresh machine: an empty home. */
  write_agent_conf (home);
  fresh = sm_certstore_new_for_home (home, &error);
  g_assert_no_error (error);
  sm_backup_restore (fresh, b.backup, b.code, &previous, &error);
  g_assert_no_error (error);
  g_assert_null (previous);      /* nothing to keep aside */
  assert_no_restore_leftovers (f);

  own = sm_certstore_list_own_keys (fresh, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (own->len, ==, 2);
  g_assert_nonnull (find_fpr (own, b.pgp_fpr));
  {
    SmKeyInfo *cms = find_fpr (own, b.cms_fpr);

    if (cms == NULL)
      g_error ("S/MIME key not restored");
    g_assert_cmpint (cms->status, ==, SM_KEY_STATUS_VALID);
  }
  certs = sm_certstore_list_certs (fresh, &error);
  for (guint i = 0; i < certs->len; i++)
    anchor |= ((SmKeyInfo *) certs->pdata[i])->is_anchor;
  g_assert_true (anchor);

  /* The old messages decrypt, with passphrases back in keyring and agent. */
  restart_agent_and_unlock (fresh, 2);
  plain = decrypt_text (fresh, SM_PROTOCOL_OPENPGP, b.pgp_msg, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "old pgp message\n");
  g_clear_pointer (&plain, g_free);
  plain = decrypt_text (fresh, SM_PROTOCOL_SMIME, b.cms_msg, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (plain, ==, "old smime message\n");
  sm_certstore_shutdown_agent (fresh);
}

/* The store the user had before a failed restore must be untouched. */
static void
assert_restore_refused (Fixture *f, BackupSetup *b, const char *file, const char *code, int expected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) before = sm_certstore_list_own_keys (b->store, &error);
  g_autoptr(GPtrArray) after = NULL;
  g_autofree char *previous = NULL;

  g_assert_no_error (error);
  g_assert_false (sm_backup_restore (b->store, file, code, &previous, &error));
  g_assert_error (error, SM_CERTSTORE_ERROR, expected);
  /* One line, with advice. */
  g_assert_null (strchr (error->message, '\n'));
  g_clear_error (&error);
  g_assert_null (previous);
  after = sm_certstore_list_own_keys (b->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (after->len, ==, before->len);
  assert_no_restore_leftovers (f);
}

static void
test_backup_refused (Fixture *f, gconstpointer data)
{
  g_auto(BackupSetup) b = { 0, };
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *truncated = g_build_filename (f->tmp, "truncated.backup", NULL);
  g_autofree char *altered = g_build_filename (f->tmp, "altered.backup", NULL);
  g_autofree char *garbage = g_build_filename (f->tmp, "garbage.backup", NULL);
  g_autofree char *wrong = NULL;
  gsize len;
  char *mid;

  make_backup (f, &b);
  g_assert_true (g_file_get_contents (b.backup, &contents, &len, NULL));

  /* Wrong code (one digit off). */
  wrong = g_strdup (b.code);
  wrong[0] = wrong[0] == '9' ? '0' : wrong[0] + 1;
  assert_restore_refused (f, &b, b.backup, wrong, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE);
  /* Too short a code never reaches gpg. */
  assert_restore_refused (f, &b, b.backup, "1234", SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE);

  /* Truncated: the armored file cut in half. */
  g_assert_true (g_file_set_contents (truncated, contents, (gssize) (len / 2), NULL));
  assert_restore_refused (f, &b, truncated, b.code, SM_CERTSTORE_ERROR_BACKUP_DAMAGED);

  /* Altered: one base64 character in the middle of the body changed. */
  mid = contents + len / 2;
  while (*mid == '\n' || *mid == '=' || *mid == '-')
    mid++;
  *mid = *mid == 'A' ? 'B' : 'A';
  g_assert_true (g_file_set_contents (altered, contents, (gssize) len, NULL));
  {
    g_autoptr(GPtrArray) before = sm_certstore_list_own_keys (b.store, NULL);
    g_autofree char *previous = NULL;

    /* gpg cannot always tell an altered file from a wrong code (the session
     * key check happens first), so either error is right; importing is not. */
    g_assert_false (sm_backup_restore (b.store, altered, b.code, &previous, &error));
    g_assert_true (g_error_matches (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BACKUP_DAMAGED)
                   || g_error_matches (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE));
    g_clear_error (&error);
    assert_no_restore_leftovers (f);
  }

  g_assert_true (g_file_set_contents (garbage, "not a backup\n", -1, NULL));
  assert_restore_refused (f, &b, garbage, b.code, SM_CERTSTORE_ERROR_BACKUP_DAMAGED);

  /* And after all that, the right file and code still work, keeping the
   * current store aside. */
  {
    g_autofree char *previous = NULL;

    g_assert_true (sm_backup_restore (b.store, b.backup, b.code, &previous, &error));
    g_assert_no_error (error);
    g_assert_nonnull (previous);
    g_assert_true (g_file_test (previous, G_FILE_TEST_IS_DIR));
    kill_agent (previous);
  }
}

/* ---- the CLI ---------------------------------------------------------------------- */

typedef struct {
  int status;
  char *out;
  char *err;
} CliResult;

static void
cli_result_clear (CliResult *r)
{
  g_free (r->out);
  g_free (r->err);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CliResult, cli_result_clear)

/* A failed command's stderr is the only clue when it fails on a loaded CI
 * machine: print it before the assertion. */
static void
assert_cli_ok (CliResult *r)
{
  if (r->status != 0)
    g_printerr ("CLI failed with status %d\nstdout: %s\nstderr: %s\n", r->status, r->out ? r->out : "",
                r->err ? r->err : "");
  g_assert_cmpint (r->status, ==, 0);
}

static void
run_cli (Fixture *f, const char *input, CliResult *r, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *xdg = g_build_filename (f->tmp, "cli-xdg", NULL);
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, (gpointer) g_getenv ("SM_CLI_TEST"));
  va_start (ap, r);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_setenv (l, "XDG_DATA_HOME", xdg, TRUE);
  g_subprocess_launcher_setenv (l, "LC_ALL", "C", TRUE);
  g_subprocess_launcher_set_cwd (l, f->tmp);
  p = g_subprocess_launcher_spawnv (l, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (p, input ? input : "", NULL, &r->out, &r->err, &error));
  g_assert_no_error (error);
  r->status = g_subprocess_get_exit_status (p);
}

static guint
count_lines (const char *s)
{
  guint n = 0;

  for (; s && *s; s++)
    n += *s == '\n';
  return n;
}

static void
test_cli (Fixture *f, gconstpointer data)
{
  g_autofree char *xdg_home = g_build_filename (f->tmp, "cli-xdg", "securemail", "gnupg", NULL);
  g_autofree char *ca = ca_path ("ca.pem");
  g_autofree char *bob = ca_path ("bob.pem");
  g_autofree char *p12 = ca_path ("alice-openssl3.p12");
  g_autofree char *backup = g_build_filename (f->tmp, "cli.backup", NULL);
  g_autofree char *code = NULL;
  g_autoptr(GRegex) re = g_regex_new ("^([0-9]{4}(-[0-9]{4}){8})$", G_REGEX_MULTILINE, 0, NULL);
  g_autoptr(GMatchInfo) mi = NULL;

  write_agent_conf (xdg_home);
  g_ptr_array_add (f->extra_homes, g_strdup (xdg_home));

  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "list", NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "securemail keys generate"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "generate", "--protocol", "openpgp", "--address", "carol@example.test",
             "--name", "Carol", NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "Created OpenPGP key"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, "p12pass\n", &r, "keys", "import", p12, NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "Imported your S/MIME key"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "list", "--json", NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "\"protocol\": \"openpgp\""));
    g_assert_nonnull (strstr (r.out, "\"protocol\": \"smime\""));
    g_assert_nonnull (strstr (r.out, "\"carol@example.test\""));
    g_assert_nonnull (strstr (r.out, "\"secret\": true"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "certs", "trust", ca, NULL);
    assert_cli_ok (&r);
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "certs", "import", bob, NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "bob@example.test"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "certs", "list", "--json", NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "\"anchor\": true"));
    g_assert_nonnull (strstr (r.out, "\"bob@example.test\""));
    g_assert_nonnull (strstr (r.out, "\"revocation\": \"not-checked\""));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "export", "-", "--protocol", "openpgp", NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "BEGIN PGP PUBLIC KEY BLOCK"));
    g_assert_null (strstr (r.out, "PRIVATE"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "backup", backup, NULL);
    assert_cli_ok (&r);
    g_assert_true (g_regex_match (re, r.out, 0, &mi));
    code = g_match_info_fetch (mi, 1);
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, "0000-0000-0000-0000-0000-0000-0000-0000-0000\n", &r, "keys", "restore", backup, NULL);
    g_assert_cmpint (r.status, !=, 0);
    g_assert_cmpuint (count_lines (r.err), ==, 1);
    g_assert_nonnull (strstr (r.err, "recovery code"));
  }
  {
    g_auto(CliResult) r = { 0, };
    g_autofree char *input = g_strdup_printf ("%s\n", code);
    run_cli (f, input, &r, "keys", "restore", backup, NULL);
    assert_cli_ok (&r);
    g_assert_nonnull (strstr (r.out, "previous key store was kept"));
  }
  /* Errors: exit non-zero, one line on stderr saying what to do. */
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "keys", "frobnicate", NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_cmpuint (count_lines (r.err), ==, 1);
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "certs", "import", "/nonexistent/file.pem", NULL);
    g_assert_cmpint (r.status, ==, 1);
    g_assert_cmpuint (count_lines (r.err), ==, 1);
    g_assert_nonnull (strstr (r.err, "check the path"));
  }
  {
    g_auto(CliResult) r = { 0, };
    run_cli (f, NULL, &r, "certs", "import", p12, NULL);
    g_assert_cmpint (r.status, ==, 1);
    g_assert_nonnull (strstr (r.err, "securemail keys import"));
  }
  {
    /* Keep aside homes from the restore: stop their agents too. */
    g_autofree char *parent = g_path_get_dirname (xdg_home);
    g_autoptr(GDir) d = g_dir_open (parent, 0, NULL);
    const char *name;

    while (d != NULL && (name = g_dir_read_name (d)) != NULL)
      g_ptr_array_add (f->extra_homes, g_build_filename (parent, name, NULL));
  }
}

/* ---- engine start-up in a multi-threaded process ----------------------------------- */

/* GPGME starts gpgsm through libassuan, whose child calls setenv() between
 * fork and exec.  If that allocates while another thread of the parent held
 * an allocator lock at the fork, the child never reaches exec and the
 * operation never returns (the ASan build's proxy hung so in CI).  Three
 * threads allocate from ever new call stacks (new stacks take the sanitizer's
 * stack-depot locks) while this thread starts gpgsm again and again; without
 * sm_gnupg_init()'s prepared environment the ASan build hangs here within a
 * few starts. */
#define ENGINE_STARTS          60
#define ENGINE_STARTS_DEADLINE_S 120
#define ALLOC_TREE_DEPTH       22

static void *alloc_left (int depth, guint bits, gsize n);

static __attribute__ ((noinline)) void *
alloc_right (int depth, guint bits, gsize n)
{
  void *p = depth == 0 ? g_malloc (n + 1) : (bits & 1) ? alloc_left (depth - 1, bits >> 1, n)
                                                       : alloc_right (depth - 1, bits >> 1, n);
  __asm__ volatile ("" ::: "memory");   /* no tail call: each path is its own stack */
  return p;
}

static __attribute__ ((noinline)) void *
alloc_left (int depth, guint bits, gsize n)
{
  void *p = depth == 0 ? g_malloc (n) : (bits & 1) ? alloc_left (depth - 1, bits >> 1, n)
                                                   : alloc_right (depth - 1, bits >> 1, n);
  __asm__ volatile ("" ::: "memory");
  return p;
}

typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
} EngineRun;

static gpointer
allocating_thread (gpointer data)
{
  EngineRun *run = data;
  g_autoptr(GRand) rand = g_rand_new ();

  for (;;)
    {
      gboolean done;

      g_mutex_lock (&run->lock);
      done = run->done;
      g_mutex_unlock (&run->lock);
      if (done)
        return NULL;
      for (guint i = 0; i < 1000; i++)
        g_free (alloc_left (ALLOC_TREE_DEPTH, g_rand_int (rand), 16 + g_rand_int_range (rand, 0, 4000)));
    }
}

static gpointer
engine_watchdog (gpointer data)
{
  EngineRun *run = data;
  gint64 deadline = g_get_monotonic_time () + ENGINE_STARTS_DEADLINE_S * G_USEC_PER_SEC;

  g_mutex_lock (&run->lock);
  while (!run->done)
    if (!g_cond_wait_until (&run->cond, &run->lock, deadline))
      g_error ("%d gpgsm starts did not finish within %d s: an engine child hung between fork and exec",
               ENGINE_STARTS, ENGINE_STARTS_DEADLINE_S);
  g_mutex_unlock (&run->lock);
  return NULL;
}

static void
test_engine_start_while_allocating (Fixture *f, gconstpointer data)
{
  SmCertstore *store = open_store (f, "engine");
  EngineRun run = { 0 };
  GThread *threads[3];
  GThread *watchdog;

  g_mutex_init (&run.lock);
  g_cond_init (&run.cond);
  watchdog = g_thread_new ("watchdog", engine_watchdog, &run);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("allocating", allocating_thread, &run);
  for (guint i = 0; i < ENGINE_STARTS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) certs = sm_certstore_list_certs (store, &error);

      g_assert_no_error (error);
      g_assert_nonnull (certs);
    }
  g_mutex_lock (&run.lock);
  run.done = TRUE;
  g_cond_broadcast (&run.cond);
  g_mutex_unlock (&run.lock);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
  g_thread_join (watchdog);
  g_cond_clear (&run.cond);
  g_mutex_clear (&run.lock);
}

/* Runs gpg in @home with @argv (after "gpg"), @input on stdin (may be
 * NULL); returns its stdout. */
static char *
gpg_in (const char *home, const char *const *argv, const char *input)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  char *out = NULL;

  g_ptr_array_add (args, (gpointer) "gpg");
  for (guint i = 0; argv[i] != NULL; i++)
    g_ptr_array_add (args, (gpointer) argv[i]);
  g_ptr_array_add (args, NULL);
  g_subprocess_launcher_setenv (l, "GNUPGHOME", home, TRUE);
  p = g_subprocess_launcher_spawnv (l, (const char *const *) args->pdata, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (p, input, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
  return out;
}

/* Does gpg find the trust database of @home in need of a check?  (The
 * "tru" record's second field, without letting gpg check it.) */
static gboolean
trustdb_stale (const char *home)
{
  static const char *const argv[] = { "--batch", "--no-auto-check-trustdb", "--with-colons", "--list-keys", NULL };
  g_autofree char *out = gpg_in (home, argv, NULL);

  g_assert_nonnull (strstr (out, "tru:"));
  return g_str_has_prefix (out, "tru:o:") || strstr (out, "\ntru:o:") != NULL;
}

/* Sets @fpr's owner trust in @home as `gpg --import-ownertrust` does
 * (@value: gpg's 2-6), which leaves the trust database due for a check. */
static void
set_ownertrust (const char *home, const char *fpr, int value)
{
  static const char *const argv[] = { "--batch", "--import-ownertrust", NULL };
  g_autofree char *line = g_strdup_printf ("%s:%d:\n", fpr, value);

  g_free (gpg_in (home, argv, line));
}

typedef struct {
  const char *home;
  gint returned;
} TrustdbUser;

static gpointer
trustdb_user_thread (gpointer data)
{
  TrustdbUser *u = data;
  SmTrustdbUse *use = sm_trustdb_use_begin (u->home);

  g_atomic_int_set (&u->returned, 1);
  sm_trustdb_use_end (use);
  return NULL;
}

/* sm-trustdb.h: a changed owner trust gets its trust database check before
 * the next GnuPG work begins, and never beside work already begun; nothing
 * changed, nothing is checked. */
static void
test_trustdb_settled_alone (Fixture *f, gconstpointer data)
{
  SmCertstore *s = open_store (f, "alice");
  const char *home = sm_certstore_get_home (s);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) key = sm_certstore_generate_openpgp (s, "Alice", "alice@example.test", 0, &error);
  TrustdbUser second = { home, 0 };
  SmTrustdbUse *use;
  GThread *thread;
  guint before;

  g_assert_no_error (error);
  /* Whatever generating left, the first begin settles it. */
  sm_trustdb_use_end (sm_trustdb_use_begin (home));
  g_assert_false (trustdb_stale (home));
  before = sm_trustdb_checks_run ();
  use = sm_trustdb_use_begin (home);
  g_assert_cmpuint (sm_trustdb_checks_run (), ==, before);
  /* Nothing changed: nothing to redo. */
  g_assert_false (sm_trustdb_use_redo (use));
  sm_trustdb_use_end (use);

  /* Work in flight, then an owner trust changes underneath (as `gpg
   * --import-ownertrust` or another process's import would). */
  use = sm_trustdb_use_begin (home);
  set_ownertrust (home, key->fingerprint, 5);
  g_assert_true (trustdb_stale (home));

  /* The next begin must wait for the work in flight before checking. */
  thread = g_thread_new ("trustdb-user", trustdb_user_thread, &second);
  g_usleep (300 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (g_atomic_int_get (&second.returned), ==, 0);
  g_assert_true (trustdb_stale (home));
  g_assert_cmpuint (sm_trustdb_checks_run (), ==, before);
  sm_trustdb_use_end (use);
  g_thread_join (thread);
  g_assert_cmpint (g_atomic_int_get (&second.returned), ==, 1);
  g_assert_cmpuint (sm_trustdb_checks_run (), ==, before + 1);
  g_assert_false (trustdb_stale (home));

  /* A change during the work: it is redone, after a check; then the
   * files are still and it stands. */
  use = sm_trustdb_use_begin (home);
  set_ownertrust (home, key->fingerprint, 4);
  g_assert_true (sm_trustdb_use_redo (use));
  g_assert_cmpuint (sm_trustdb_checks_run (), ==, before + 2);
  g_assert_false (trustdb_stale (home));
  g_assert_false (sm_trustdb_use_redo (use));
  sm_trustdb_use_end (use);

  /* Never more than SM_TRUSTDB_MAX_REDOS redos. */
  use = sm_trustdb_use_begin (home);
  for (guint i = 0; i <= SM_TRUSTDB_MAX_REDOS; i++)
    {
      set_ownertrust (home, key->fingerprint, i % 2 ? 5 : 3);
      g_assert_true (sm_trustdb_use_redo (use) == (i < SM_TRUSTDB_MAX_REDOS));
    }
  sm_trustdb_use_end (use);
}

int
main (int argc, char **argv)
{
  const char *script = g_getenv ("SM_TEST_CA_SCRIPT");
  g_autoptr(GError) error = NULL;
  int rc;

  g_test_init (&argc, &argv, NULL);

  if (script == NULL || g_getenv ("SM_CLI_TEST") == NULL)
    {
      g_printerr ("SM_TEST_CA_SCRIPT and SM_CLI_TEST must be set (run through meson test)\n");
      return 1;
    }
  ca_dir = g_dir_make_tmp ("smca-XXXXXX", &error);
  g_assert_no_error (error);
  {
    const char *ca_argv[] = { script, "init", ca_dir, NULL };
    g_autoptr(GSubprocess) p = g_subprocess_newv (ca_argv, G_SUBPROCESS_FLAGS_NONE, &error);

    g_assert_no_error (error);
    if (!g_subprocess_wait_check (p, NULL, &error))
      {
        g_printerr ("make-test-ca.sh failed: %s\n", error->message);
        return 1;
      }
  }

  g_test_add_func ("/certstore/error/gpgme-map", test_error_map);
  g_test_add_func ("/certstore/backup/recovery-code", test_recovery_code);
#define ADD(path, func, data) g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
  ADD ("/certstore/home/create", test_home, NULL);
  ADD ("/certstore/openpgp/generate-sign-verify", test_openpgp_generate_sign_verify, NULL);
  ADD ("/certstore/home/s2k-count", test_home_s2k_count, NULL);
  ADD ("/certstore/openpgp/import-secret", test_openpgp_import_secret, NULL);
  ADD ("/certstore/openpgp/import-legacy", test_openpgp_import_legacy, NULL);
  ADD ("/certstore/openpgp/import-unprotected", test_openpgp_import_unprotected, NULL);
  ADD ("/certstore/openpgp/s2k-measure", test_s2k_measure, NULL);
  ADD ("/certstore/openpgp/encrypt-decrypt-collect", test_openpgp_encrypt_decrypt_collect, NULL);
  ADD ("/certstore/smime/p12-legacy", test_smime_p12, "alice-legacy.p12");
  ADD ("/certstore/smime/p12-openssl3", test_smime_p12, "alice-openssl3.p12");
  ADD ("/certstore/smime/p12-wrong-password", test_smime_p12_wrong_password, NULL);
  ADD ("/certstore/smime/encrypt-decrypt", test_smime_encrypt_decrypt, NULL);
  ADD ("/certstore/smime/expired-revoked", test_smime_expired_revoked, NULL);
  ADD ("/certstore/smime/request", test_smime_request, NULL);
  ADD ("/certstore/anchors/admin", test_admin_anchors, NULL);
  ADD ("/certstore/backup/roundtrip", test_backup_roundtrip, NULL);
  ADD ("/certstore/backup/refused", test_backup_refused, NULL);
  ADD ("/certstore/cli/keys-certs", test_cli, NULL);
  ADD ("/certstore/engine/start-while-allocating", test_engine_start_while_allocating, NULL);
  ADD ("/certstore/trustdb/settled-alone", test_trustdb_settled_alone, NULL);
#undef ADD

  rc = g_test_run ();
  rm_rf (ca_dir);
  g_free (ca_dir);
  return rc;
}
