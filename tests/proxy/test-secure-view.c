/* test-secure-view.c: the incoming half of issue 4 (proxy/sm-secure-view.h)
 * against real gpg, gpgsm and gpg-agent, on messages made by gpgsm, openssl
 * and gpg (make-crypto-fixtures.sh), one case per trust status and per
 * attack class.  Runs under keyring-wrapper.sh: the certstore keeps key
 * passphrases in the keyring.
 *
 * The recipient is bob: his S/MIME key (PKCS#12) and OpenPGP key are
 * imported into one certstore home, the test CA is a trust anchor, its CRL
 * is imported (dave is revoked), and alice's OpenPGP key is given ultimate
 * ownertrust (bob has checked it).  The store is set up once for the run;
 * its agent is stopped at the end.
 */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-mime.h"
#include "sm-secure-view.h"

static char *tmp_dir;
static char *fixtures;
static SmCertstore *store;

/* ---- helpers ---------------------------------------------------------------- */

static GBytes *
fixture (const char *name)
{
  g_autofree char *path = g_build_filename (fixtures, name, NULL);
  char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_bytes_new_take (contents, len);
}

static void
run_tool (const char *const *argv, const char *gnupghome, const char *input)
{
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;

  if (gnupghome != NULL)
    g_subprocess_launcher_setenv (l, "GNUPGHOME", gnupghome, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, input, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
}

static void
kill_agents (const char *dir)
{
  /* Every GnuPG home under @dir: the store's and the fixture senders'. */
  const char *argv[] = { "sh", "-c",
                         "find \"$0\" -name gpg-agent.conf | while read -r c; do "
                         "GNUPGHOME=$(dirname \"$c\") gpgconf --kill all; done", dir, NULL };

  run_tool (argv, NULL, NULL);
}

static int
rm_rf_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

static void
import (GPtrArray *(*fn) (SmCertstore *, GBytes *, const char *, GError **), const char *name, const char *pass)
{
  g_autoptr(GBytes) data = fixture (name);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = fn (store, data, pass, &error);

  g_assert_no_error (error);
  g_assert_nonnull (keys);
}

static void
import_certs (const char *name)
{
  g_autoptr(GBytes) data = fixture (name);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = sm_certstore_import_certs (store, data, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (keys);
}

static void
setup_store (void)
{
  g_autofree char *home = g_build_filename (tmp_dir, "bob", "gnupg", NULL);
  g_autofree char *conf = g_build_filename (home, "gpg-agent.conf", NULL);
  g_autofree char *fpr = NULL;
  g_autofree char *fpr_path = g_build_filename (fixtures, "pgp-alice.fpr", NULL);
  g_autofree char *ownertrust = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmKeyInfo) anchor = NULL;
  g_autoptr(GBytes) ca = NULL;
  g_autoptr(GBytes) crl = NULL;
  g_autoptr(GPtrArray) none = NULL;
  const char *argv[] = { "gpg", "--batch", "--import-ownertrust", NULL };

  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  /* Fast passphrase hashing for tests (reference/test-stack.md section 5). */
  g_assert_true (g_file_set_contents (conf, "s2k-count 65536\n", -1, NULL));
  store = sm_certstore_new_for_home (home, &error);
  g_assert_no_error (error);

  import (sm_certstore_import_own, "ca/bob-legacy.p12", "p12pass");
  import (sm_certstore_import_own, "pgp-bob-secret.asc", "");
  ca = fixture ("ca/ca.pem");
  anchor = sm_certstore_trust_ca (store, ca, &error);
  g_assert_no_error (error);
  crl = fixture ("ca/ca.crl");
  none = sm_certstore_import_certs (store, crl, NULL, &error);
  g_assert_no_error (error);
  import_certs ("pgp-alice-public.asc");
  import_certs ("pgp-mallory-public.asc");
  g_assert_true (sm_certstore_unlock (store, NULL, NULL, &error));
  g_assert_no_error (error);

  g_assert_true (g_file_get_contents (fpr_path, &fpr, NULL, NULL));
  g_strstrip (fpr);
  ownertrust = g_strdup_printf ("%s:6:\n", fpr);
  run_tool (argv, home, ownertrust);
}

/* The header section of @message as a string. */
static char *
header_of (GBytes *message)
{
  gsize len, body_start;
  const char *data = g_bytes_get_data (message, &len);

  return g_strndup (data, sm_mime_header_length (data, len, &body_start));
}

static guint
count_lines_with_prefix (const char *header, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (header, "\n", -1);
  guint n = 0;

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_ascii_strncasecmp (lines[i], prefix, strlen (prefix)) == 0)
      n++;
  return n;
}

static char *
field (const char *header, const char *name)
{
  g_autoptr(GArray) fields = sm_mime_fields_parse (header, strlen (header), NULL);
  int i = sm_mime_fields_find (header, fields, name);

  return i < 0 ? NULL : sm_mime_field_value (header, &g_array_index (fields, SmMimeField, i));
}

static gboolean
bytes_contain (GBytes *bytes, const char *needle)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return g_strstr_len (data, len, needle) != NULL;
}

static SmSecureView *
build (GBytes *raw)
{
  g_autoptr(GError) error = NULL;
  SmSecureView *view = sm_secure_view_build (store, "bob@example.test", raw, SM_SECURE_VIEW_SUBJECT_TAGS, &error);

  g_assert_no_error (error);
  g_assert_nonnull (view);
  g_assert_nonnull (view->message);
  return view;
}

/* ---- the table ---------------------------------------------------------------- */

typedef struct {
  const char *path;
  const char *file;
  SmTrust trust;
  gboolean encrypted;
  const char *signer;         /* substring of X-SecureMail-Signer, NULL: no such field */
  const char *body;           /* must be in the view, or NULL */
  const char *absent;         /* must not be in the view, or NULL */
  const char *subject;        /* the Subject after the tag, or NULL: not checked */
} ViewCase;

#define SECRET "SWORDFISH"

static const ViewCase cases[] = {
  /* S/MIME, RFC 8551 */
  { "/proxy/secure-view/smime/opaque-signed", "smime-opaque-signed.eml", SM_TRUST_VERIFIED, FALSE,
    "alice@example.test (", SECRET, NULL, "opaque signed" },
  { "/proxy/secure-view/smime/detached-signed", "smime-detached.eml", SM_TRUST_VERIFIED, FALSE,
    "CN=alice", SECRET, NULL, "detached signed" },
  { "/proxy/secure-view/smime/enveloped-signed", "smime-enveloped-signed.eml", SM_TRUST_VERIFIED, TRUE,
    "alice@example.test", SECRET, NULL, "enveloped signed" },
  { "/proxy/secure-view/smime/enveloped-detached", "smime-enveloped-detached.eml", SM_TRUST_VERIFIED, TRUE,
    "alice@example.test", SECRET, NULL, "gpgsm enveloped detached" },
  { "/proxy/secure-view/smime/encrypted-unsigned", "smime-encrypted-only.eml", SM_TRUST_ENCRYPTED_UNSIGNED, TRUE,
    NULL, SECRET, NULL, "encrypted only" },
  { "/proxy/secure-view/smime/not-for-me", "smime-not-for-me.eml", SM_TRUST_DECRYPT_FAILED, TRUE,
    NULL, "not encrypted to any of your keys", SECRET, "not for bob" },
  { "/proxy/secure-view/smime/protected-headers", "smime-protected-headers.eml", SM_TRUST_VERIFIED, TRUE,
    "alice@example.test", "The numbers are fine.", "[...]", "Quarterly numbers" },
  { "/proxy/secure-view/smime/altered", "smime-detached-altered.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, "detached signed" },
  { "/proxy/secure-view/smime/expired-signer", "smime-expired.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/smime/revoked-signer", "smime-revoked.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/smime/unknown-ca", "smime-unknown-ca.eml", SM_TRUST_SIGNED_UNTRUSTED, FALSE,
    NULL, SECRET, NULL, NULL },
  /* OpenPGP, RFC 3156 */
  { "/proxy/secure-view/pgp/signed-encrypted", "pgp-signed-encrypted.eml", SM_TRUST_VERIFIED, TRUE,
    "alice@example.test (", SECRET, NULL, "pgp signed encrypted" },
  { "/proxy/secure-view/pgp/encrypted-unsigned", "pgp-encrypted-only.eml", SM_TRUST_ENCRYPTED_UNSIGNED, TRUE,
    NULL, SECRET, NULL, NULL },
  { "/proxy/secure-view/pgp/signed", "pgp-signed.eml", SM_TRUST_VERIFIED, FALSE,
    "alice@example.test", SECRET, NULL, "pgp detached" },
  { "/proxy/secure-view/pgp/signed-then-encrypted", "pgp-signed-then-encrypted.eml", SM_TRUST_VERIFIED, TRUE,
    "alice@example.test", SECRET, NULL, NULL },
  { "/proxy/secure-view/pgp/altered", "pgp-signed-altered.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  /* ciphertext without integrity protection: never decrypted into a view */
  { "/proxy/secure-view/attack/no-mdc", "pgp-no-mdc.eml", SM_TRUST_DECRYPT_FAILED, TRUE,
    NULL, NULL, SECRET, NULL },
  /* "Johnny, you are fired" */
  { "/proxy/secure-view/attack/signer-mismatch", "smime-mismatch.eml", SM_TRUST_SIGNER_MISMATCH, FALSE,
    "alice@example.test", NULL, NULL, "signer mismatch" },
  { "/proxy/secure-view/attack/pgp-signer-mismatch", "pgp-mismatch.eml", SM_TRUST_SIGNER_MISMATCH, TRUE,
    "mallory@evil.test", NULL, NULL, NULL },
  { "/proxy/secure-view/attack/display-name", "smime-display-name.eml", SM_TRUST_SIGNER_MISMATCH, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/two-from", "smime-two-from.eml", SM_TRUST_SIGNER_MISMATCH, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/from-sender", "smime-sender.eml", SM_TRUST_SIGNER_MISMATCH, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/mixed-signers", "smime-two-signers.eml", SM_TRUST_SIGNER_MISMATCH, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/one-bad-signer", "smime-one-bad-signer.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/zero-signers-smime", "smime-zero-signers.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  { "/proxy/secure-view/attack/zero-signers-pgp", "pgp-zero-signers.eml", SM_TRUST_INVALID, FALSE,
    NULL, NULL, NULL, NULL },
  /* not protected at the root: forged fields go, nothing nested is opened */
  { "/proxy/secure-view/attack/wrapped-signed", "wrapped-signed.eml", SM_TRUST_UNPROTECTED, FALSE,
    NULL, "You are fired.", "[Verified]", "wrapped" },
  { "/proxy/secure-view/attack/efail", "efail.eml", SM_TRUST_UNPROTECTED, FALSE,
    NULL, "evil.test", SECRET, "efail" },
};

static void
test_view (gconstpointer data)
{
  const ViewCase *c = data;
  g_autoptr(GBytes) raw = fixture (c->file);
  g_autoptr(SmSecureView) view = build (raw);
  g_autofree char *header = header_of (view->message);
  g_autofree char *trust = field (header, "X-SecureMail-Trust");
  g_autofree char *signer = field (header, "X-SecureMail-Signer");
  g_autofree char *encrypted = field (header, "X-SecureMail-Encrypted");
  g_autofree char *subject = field (header, "Subject");
  const char *tag = sm_trust_subject_tag (c->trust);

  g_test_message ("%s: %s (%s)", c->file, sm_trust_header_value (view->trust),
                  view->detail ? view->detail : "");
  g_assert_cmpstr (sm_trust_header_value (view->trust), ==, sm_trust_header_value (c->trust));
  /* Exactly one status field, ours. */
  g_assert_cmpuint (count_lines_with_prefix (header, "X-SecureMail-Trust:"), ==, 1);
  g_assert_cmpstr (trust, ==, sm_trust_header_value (c->trust));
  g_assert_cmpuint (count_lines_with_prefix (header, "Subject:"), ==, 1);
  g_assert_cmpuint (count_lines_with_prefix (header, "MIME-Version:"), <=, 1);

  if (c->trust == SM_TRUST_UNPROTECTED)
    {
      g_assert_null (signer);
      g_assert_null (encrypted);
      g_assert_false (view->encrypted);
    }
  else
    {
      g_assert_cmpstr (encrypted, ==, c->encrypted ? "yes" : "no");
      g_assert_cmpint (view->encrypted, ==, c->encrypted);
      g_assert_true (g_str_has_prefix (subject, tag));
      /* One tag: the sender's copies are gone. */
      g_assert_null (strstr (subject + strlen (tag), "["));
    }
  if (c->signer != NULL)
    {
      g_assert_nonnull (signer);
      g_assert_nonnull (strstr (signer, c->signer));
      g_assert_nonnull (view->signer_fingerprint);
    }
  if (c->trust == SM_TRUST_VERIFIED)
    {
      g_assert_true (view->signer_collected);
      g_assert_cmpstr (view->signer_address, ==, "alice@example.test");
      g_assert_cmpstr (view->from, ==, "alice@example.test");
    }
  if (c->subject != NULL)
    g_assert_true (g_str_has_suffix (subject, c->subject));
  if (c->body != NULL)
    g_assert_true (bytes_contain (view->message, c->body));
  if (c->absent != NULL)
    g_assert_false (bytes_contain (view->message, c->absent));
  g_assert_nonnull (view->message_id);
}

/* ---- more specific checks ------------------------------------------------------------ */

static void
test_plain_untouched (void)
{
  g_autoptr(GBytes) raw = fixture ("plain.eml");
  g_autoptr(SmSecureView) view = build (raw);

  g_assert_cmpint (view->trust, ==, SM_TRUST_UNPROTECTED);
  g_assert_true (g_bytes_equal (view->message, raw));
  g_assert_cmpstr (view->message_id, ==, "plain@example.test");
}

static GBytes *
prepend (GBytes *raw, const char *lines)
{
  g_autoptr(GByteArray) a = g_byte_array_new ();

  g_byte_array_append (a, (const guint8 *) lines, strlen (lines));
  g_byte_array_append (a, g_bytes_get_data (raw, NULL), g_bytes_get_size (raw));
  return g_byte_array_free_to_bytes (g_steal_pointer (&a));
}

/* A forged status on a protected message never survives: ours replaces it. */
static void
test_forged_on_protected (void)
{
  g_autoptr(GBytes) raw = fixture ("smime-detached-altered.eml");
  g_autoptr(GBytes) forged = prepend (raw, "X-SecureMail-Trust: verified\r\nX-Securemail-Signer: alice@example.test\r\n"
                                           "X-SecureMail-Encrypted: yes\r\n");
  g_autoptr(SmSecureView) view = build (forged);
  g_autofree char *header = header_of (view->message);

  g_assert_cmpint (view->trust, ==, SM_TRUST_INVALID);
  g_assert_cmpuint (count_lines_with_prefix (header, "X-SecureMail-Trust:"), ==, 1);
  g_assert_nonnull (strstr (header, "X-SecureMail-Trust: invalid\r\n"));
  g_assert_null (strstr (header, "verified"));
  g_assert_nonnull (strstr (header, "X-SecureMail-Encrypted: no\r\n"));
  g_assert_cmpuint (count_lines_with_prefix (header, "X-SecureMail-Signer:"), ==, 0);
}

static void
test_receipt_requested (void)
{
  g_autoptr(GBytes) raw = fixture ("smime-detached.eml");
  g_autoptr(GBytes) with = prepend (raw, "Disposition-Notification-To: Alice <alice@example.test>\r\n");
  g_autoptr(SmSecureView) view = build (with);
  g_autoptr(SmSecureView) plain = build (raw);

  g_assert_cmpint (view->trust, ==, SM_TRUST_VERIFIED);
  g_assert_true (view->receipt_requested);
  g_assert_cmpstr (view->receipt_to, ==, "alice@example.test");
  g_assert_false (plain->receipt_requested);
  g_assert_cmpstr (view->message_id, ==, "detachedsigned@example.test");
}

/* Without subject_tags the Subject is the sender's, minus forged tags. */
static void
test_no_subject_tags (void)
{
  g_autoptr(GBytes) raw = fixture ("smime-detached.eml");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecureView) view = sm_secure_view_build (store, "bob@example.test", raw, SM_SECURE_VIEW_FLAGS_NONE, &error);
  g_autofree char *header = NULL;
  g_autofree char *subject = NULL;

  g_assert_no_error (error);
  header = header_of (view->message);
  subject = field (header, "Subject");
  g_assert_cmpstr (subject, ==, "detached signed");
  g_assert_nonnull (strstr (header, "X-SecureMail-Trust: verified\r\n"));
  /* The body is the signed entity's, with its own Content-Type. */
  g_assert_nonnull (strstr (header, "Content-Type: text/plain; charset=utf-8\r\n"));
  g_assert_null (strstr (header, "multipart/signed"));
}

/* A message stored with bare LFs is read in canonical form (the signature
 * covers CRLF). */
static void
test_lf_message (void)
{
  g_autoptr(GBytes) raw = fixture ("pgp-signed.eml");
  gsize len;
  const char *data = g_bytes_get_data (raw, &len);
  g_autoptr(GString) lf = g_string_new (NULL);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(SmSecureView) view = NULL;

  for (gsize i = 0; i < len; i++)
    if (data[i] != '\r')
      g_string_append_c (lf, data[i]);
  bytes = g_bytes_new (lf->str, lf->len);
  view = build (bytes);
  g_assert_cmpint (view->trust, ==, SM_TRUST_VERIFIED);
}

static void
test_too_big (void)
{
  gsize size = SM_SECURE_VIEW_MAX_MESSAGE_SIZE + 1;
  g_autofree char *data = g_malloc (size);
  g_autoptr(GBytes) raw = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecureView) view = NULL;
  const char header[] = "Content-Type: application/pkcs7-mime\r\n\r\n";

  memset (data, 'A', size);
  memcpy (data, header, strlen (header));
  raw = g_bytes_new_take (g_steal_pointer (&data), size);
  view = sm_secure_view_build (store, "bob@example.test", raw, 0, &error);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
  g_assert_null (view);
}

static void
test_mime_depth (void)
{
  g_autoptr(GString) s = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) parts = NULL;

  for (guint i = 0; i < SM_MIME_MAX_DEPTH + 5; i++)
    g_string_append_printf (s, "Content-Type: multipart/mixed; boundary=\"b%u\"\r\n\r\n--b%u\r\n", i, i);
  g_string_append (s, "Content-Type: text/plain\r\n\r\nx\r\n");
  for (guint i = SM_MIME_MAX_DEPTH + 5; i-- > 0;)
    g_string_append_printf (s, "--b%u--\r\n", i);
  parts = sm_mime_walk (s->str, s->len, &error);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
  g_assert_null (parts);

  /* A protected layer inside that is a view error, not a crash. */
  {
    g_autoptr(GString) m = g_string_new ("From: a@example.test\r\nContent-Type: multipart/signed; "
                                         "protocol=\"application/pgp-signature\"; boundary=\"top\"\r\n\r\n--top\r\n");
    g_autoptr(GBytes) raw = NULL;
    g_autoptr(SmSecureView) view = NULL;
    g_autoptr(GError) e2 = NULL;

    g_string_append_len (m, s->str, s->len);
    g_string_append (m, "\r\n--top\r\nContent-Type: application/pgp-signature\r\n\r\nx\r\n--top--\r\n");
    raw = g_bytes_new (m->str, m->len);
    view = sm_secure_view_build (store, "bob@example.test", raw, 0, &e2);
    if (view != NULL)
      g_assert_cmpint (view->trust, ==, SM_TRUST_INVALID);
    else
      g_assert_error (e2, SM_ERROR, SM_ERROR_TOO_BIG);
  }
}

/* Builds on many threads at once, as on the proxy's worker pool. */
#define PARALLEL_THREADS 8
#define PARALLEL_ROUNDS  3
/* How long released gpgsm servers may take to end. */
#define SERVERS_SETTLE_S 10

static gpointer
parallel_worker (gpointer data)
{
  GBytes *raw = data;

  for (guint i = 0; i < PARALLEL_ROUNDS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SmSecureView) view = sm_secure_view_build (store, "bob@example.test", raw,
                                                           SM_SECURE_VIEW_SUBJECT_TAGS, &error);

      if (view == NULL || view->trust != SM_TRUST_VERIFIED || !view->encrypted)
        {
          g_printerr ("parallel build %u: %s\n", i,
                      error ? error->message : view ? sm_trust_header_value (view->trust) : "no view");
          return GINT_TO_POINTER (FALSE);
        }
    }
  return GINT_TO_POINTER (TRUE);
}

/* parallel_worker(), then waits with its thread alive (a server per
 * thread would still be running) until the test has looked. */
typedef struct {
  GBytes *raw;
  GAsyncQueue *built;     /* 1: views right, 2: not */
  GAsyncQueue *go;
} HoldData;

static gpointer
hold_worker (gpointer data)
{
  HoldData *h = data;

  g_async_queue_push (h->built, GINT_TO_POINTER (GPOINTER_TO_INT (parallel_worker (h->raw)) ? 1 : 2));
  g_async_queue_pop (h->go);
  return NULL;
}

/* Process ids of the `gpgsm --server` processes of the test store (GPGME
 * double-forks them, so they are not our children). */
static GHashTable *
store_servers (void)
{
  GHashTable *pids = g_hash_table_new (NULL, NULL);
  const char *home = sm_certstore_get_home (store);
  g_autoptr(GDir) dir = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc", name, "cmdline", NULL);
      g_autofree char *cmd = NULL;
      gsize len = 0;
      gboolean gpgsm = FALSE, server = FALSE, ours = FALSE;

      if (!g_ascii_isdigit (name[0]) || !g_file_get_contents (path, &cmd, &len, NULL))
        continue;
      for (gsize at = 0; at < len; at += strlen (cmd + at) + 1)
        {
          const char *arg = cmd + at;
          gpgsm |= at == 0 && g_str_has_suffix (arg, "gpgsm");
          server |= strcmp (arg, "--server") == 0;
          ours |= strcmp (arg, home) == 0;
        }
      if (gpgsm && server && ours)
        g_hash_table_add (pids, GINT_TO_POINTER (atoi (name)));
    }
  return pids;
}

/* Builds on several threads run their gpgsm operations one at a time and
 * share the idle gpgsm servers (a server per thread meant dozens of gpgsm
 * starts per mailbox in the proxy, whose pool grows while builds wait):
 * every view is right, no two operations ran at once, at most
 * SM_SECURE_VIEW_SPARE_SERVERS stay idle, and a build on yet another
 * thread starts no gpgsm of its own. */
static void
test_parallel_smime (void)
{
  g_autoptr(GBytes) raw = fixture ("smime-enveloped-signed.eml");
  GThread *threads[PARALLEL_THREADS];
  g_autoptr(GHashTable) idle = NULL;
  g_autoptr(GHashTable) after = NULL;
  gint64 deadline;
  GHashTableIter iter;
  gpointer pid;
  HoldData hold;
  g_autoptr(GAsyncQueue) built = g_async_queue_new ();
  g_autoptr(GAsyncQueue) go = g_async_queue_new ();

  for (guint i = 0; i < PARALLEL_THREADS; i++)
    threads[i] = g_thread_new ("parallel-build", parallel_worker, raw);
  for (guint i = 0; i < PARALLEL_THREADS; i++)
    g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
  /* One gpgsm operation at a time, however many threads build. */
  g_assert_cmpuint (sm_secure_view_gpgsm_peak (), ==, 1);

  deadline = g_get_monotonic_time () + SERVERS_SETTLE_S * G_USEC_PER_SEC;
  for (;;)
    {
      g_clear_pointer (&idle, g_hash_table_unref);
      idle = store_servers ();
      if (g_hash_table_size (idle) <= SM_SECURE_VIEW_SPARE_SERVERS || g_get_monotonic_time () > deadline)
        break;
      g_usleep (100 * 1000);
    }
  g_test_message ("%u idle gpgsm servers after %u builds on %u threads", g_hash_table_size (idle),
                  PARALLEL_THREADS * PARALLEL_ROUNDS, PARALLEL_THREADS);
  g_assert_cmpuint (g_hash_table_size (idle), >=, 1);
  g_assert_cmpuint (g_hash_table_size (idle), <=, SM_SECURE_VIEW_SPARE_SERVERS);

  hold.raw = raw;
  hold.built = built;
  hold.go = go;
  threads[0] = g_thread_new ("one-more-build", hold_worker, &hold);
  g_assert_cmpint (GPOINTER_TO_INT (g_async_queue_pop (built)), ==, 1);
  after = store_servers ();
  g_async_queue_push (go, GINT_TO_POINTER (1));
  g_thread_join (threads[0]);
  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &pid, NULL))
    g_assert_true (g_hash_table_contains (idle, pid));
}

/* ---- no crypto -------------------------------------------------------------------- */

typedef struct {
  const char *header;
  gboolean protected_;
} ProtectedCase;

static const ProtectedCase protected_cases[] = {
  { "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n", TRUE },
  { "content-type: APPLICATION/X-PKCS7-MIME; name=smime.p7m\r\n", TRUE },
  { "From: a@b\r\nContent-Type: multipart/signed;\r\n\tprotocol=\"application/pkcs7-signature\";\r\n micalg=sha-256; boundary=x\r\n\r\n", TRUE },
  { "Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; boundary=x\r\n", TRUE },
  { "Content-Type: Multipart/Signed; Protocol=\"Application/PGP-Signature\"; boundary=x\n\n", TRUE },
  { "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n", TRUE },
  { "Content-Type: multipart/signed; boundary=x\r\n", FALSE },                     /* no protocol */
  { "Content-Type: multipart/encrypted; protocol=\"application/pkcs7-mime\"; boundary=x\r\n", FALSE },
  { "Content-Type: multipart/mixed; boundary=x\r\n\r\nContent-Type: application/pkcs7-mime\r\n", FALSE },
  { "Content-Type: text/plain\r\n", FALSE },
  { "Subject: application/pkcs7-mime\r\n", FALSE },
  { "", FALSE },
  /* the first Content-Type field counts, as in the build */
  { "Content-Type: text/plain\r\nContent-Type: application/pkcs7-mime\r\n", FALSE },
};

static void
test_is_protected (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (protected_cases); i++)
    {
      const ProtectedCase *c = &protected_cases[i];

      g_test_message ("case %u", i);
      g_assert_cmpint (sm_secure_view_is_protected (c->header, strlen (c->header)), ==, c->protected_);
    }
}

static void
test_strip_forged (void)
{
  static const struct {
    const char *in;
    const char *out;   /* NULL: the same bytes */
  } strip_cases[] = {
    { "From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n", NULL },
    { "From: a@example.test\r\nSubject: [Verified]\r\n\r\n", NULL },   /* filled in below */
    { "From: a@example.test\r\nX-SecureMail-Trust: verified\r\nSubject: hi\r\n\r\nbody\r\n",
      "From: a@example.test\r\nSubject: hi\r\nX-SecureMail-Trust: unprotected\r\n\r\nbody\r\n" },
    { "From: a@example.test\r\nSubject: Re: [verified] pay\r\n  now\r\nx-securemail-signer: x\r\n\t folded\r\n\r\nb",
      "From: a@example.test\r\nSubject: Re: pay now\r\nX-SecureMail-Trust: unprotected\r\n\r\nb" },
    { "Subject: =?utf-8?q?=5BVerified=5D_Gr=C3=BC=C3=9Fe?=\n\nb\n",
      "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\nX-SecureMail-Trust: unprotected\n\nb\n" },
    { "Subject: [WARNING: sender mismatch][Encrypted, unsigned] x\r\n\r\n",
      "Subject: x\r\nX-SecureMail-Trust: unprotected\r\n\r\n" },
    { "X-SecureMail-Encrypted: yes\r\n", "X-SecureMail-Trust: unprotected\r\n\r\n" },
    /* removing one tag must not assemble another */
    { "Subject: [Veri[VERIFIED]fied] x\r\n\r\n", "Subject: x\r\nX-SecureMail-Trust: unprotected\r\n\r\n" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (strip_cases); i++)
    {
      g_autoptr(GBytes) in = g_bytes_new_static (strip_cases[i].in, strlen (strip_cases[i].in));
      g_autoptr(GBytes) out = sm_secure_view_strip_forged (in);
      g_autofree char *text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));

      g_test_message ("case %u", i);
      if (i == 1)
        g_assert_cmpstr (text, ==, "From: a@example.test\r\nSubject: \r\nX-SecureMail-Trust: unprotected\r\n\r\n");
      else if (strip_cases[i].out == NULL)
        g_assert_true (out == in);   /* untouched: the very same bytes */
      else
        g_assert_cmpstr (text, ==, strip_cases[i].out);
    }
}

static void
test_trust_names (void)
{
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_VERIFIED), ==, "verified");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_SIGNED_UNTRUSTED), ==, "signed-untrusted");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_SIGNER_MISMATCH), ==, "signer-mismatch");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_INVALID), ==, "invalid");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_DECRYPT_FAILED), ==, "decrypt-failed");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_ENCRYPTED_UNSIGNED), ==, "encrypted-unsigned");
  g_assert_cmpstr (sm_trust_header_value (SM_TRUST_UNPROTECTED), ==, "unprotected");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_VERIFIED), ==, "[Verified]");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_SIGNED_UNTRUSTED), ==, "[Unverified sender]");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_SIGNER_MISMATCH), ==, "[WARNING: sender mismatch]");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_INVALID), ==, "[WARNING: invalid signature]");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_DECRYPT_FAILED), ==, "[Cannot decrypt]");
  g_assert_cmpstr (sm_trust_subject_tag (SM_TRUST_ENCRYPTED_UNSIGNED), ==, "[Encrypted, unsigned]");
  g_assert_null (sm_trust_subject_tag (SM_TRUST_UNPROTECTED));
}

/* Exact byte ranges of multipart/signed parts (RFC 1847 section 2.1). */
static void
test_multipart_ranges (void)
{
  const char *m = "Content-Type: multipart/signed; boundary=\"XX\"; protocol=\"application/pgp-signature\"\r\n\r\n"
                  "preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello  \r\n\r\n--XX  \r\n"
                  "Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--XX--\r\nepilogue\r\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) parts = sm_mime_multipart_children (m, strlen (m), &error);
  const SmMimePart *p0, *p1;

  g_assert_no_error (error);
  g_assert_cmpuint (parts->len, ==, 2);
  p0 = parts->pdata[0];
  p1 = parts->pdata[1];
  /* The CRLF before a delimiter belongs to the delimiter. */
  g_assert_cmpmem (m + p0->start, p0->len, "Content-Type: text/plain\r\n\r\nhello  \r\n", 37);
  g_assert_cmpmem (m + p1->body_start, p1->body_len, "SIG", 3);
}

int
main (int argc, char **argv)
{
  const char *script = g_getenv ("SM_FIXTURES_SCRIPT");
  gboolean crypto = script != NULL;
  int rc;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/proxy/secure-view/trust-names", test_trust_names);
  g_test_add_func ("/proxy/secure-view/is-protected", test_is_protected);
  g_test_add_func ("/proxy/secure-view/strip-forged", test_strip_forged);
  g_test_add_func ("/proxy/secure-view/mime/multipart-ranges", test_multipart_ranges);

  if (crypto)
    {
      const char *argv_fx[] = { "sh", script, NULL, NULL };

      tmp_dir = g_dir_make_tmp ("smsv-XXXXXX", NULL);
      g_assert_nonnull (tmp_dir);
      fixtures = g_build_filename (tmp_dir, "fixtures", NULL);
      argv_fx[2] = fixtures;
      run_tool (argv_fx, NULL, NULL);
      setup_store ();

      for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
        g_test_add_data_func (cases[i].path, &cases[i], test_view);
      g_test_add_func ("/proxy/secure-view/plain-untouched", test_plain_untouched);
      g_test_add_func ("/proxy/secure-view/attack/forged-on-protected", test_forged_on_protected);
      g_test_add_func ("/proxy/secure-view/receipt-requested", test_receipt_requested);
      g_test_add_func ("/proxy/secure-view/no-subject-tags", test_no_subject_tags);
      g_test_add_func ("/proxy/secure-view/lf-message", test_lf_message);
      g_test_add_func ("/proxy/secure-view/limits/message-size", test_too_big);
      g_test_add_func ("/proxy/secure-view/limits/mime-depth", test_mime_depth);
      g_test_add_func ("/proxy/secure-view/smime/parallel", test_parallel_smime);
    }

  rc = g_test_run ();

  if (crypto)
    {
      sm_certstore_shutdown_agent (store);
      g_clear_object (&store);
      kill_agents (tmp_dir);
      nftw (tmp_dir, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
      g_free (tmp_dir);
      g_free (fixtures);
    }
  return rc;
}
