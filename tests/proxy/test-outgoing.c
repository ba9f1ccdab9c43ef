/* test-outgoing.c: sm_outgoing_protect() against real gpg, gpgsm and
 * gpg-agent, its output checked only with tools the project does not write:
 * openssl cms/smime, gpgsm and gpg in the recipient's own homes.
 *
 * Run under tests/certstore/keyring-wrapper.sh (the certstore keeps key
 * passphrases in the keyring).  The homes are made once per run:
 *   alice/   the certstore home: S/MIME key from the test CA's p12, an
 *            OpenPGP key, bob's certificate and bob's OpenPGP public key;
 *   bob-sm/  a plain gpgsm home with bob's key (unprotected) and the CA;
 *   bob-pgp/ a plain gpg home with bob's key and alice's public key.
 * Every home has s2k-count 65536; every agent is stopped at the end.
 */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>
#include <libsecret/secret.h>

/* sm-config.h and certstore's sm-key-info.h share enum value names; see
 * sm-outgoing.c. */
#define SM_PROTOCOL_SMIME SM_CONFIG_PROTOCOL_SMIME
#define SM_PROTOCOL_OPENPGP SM_CONFIG_PROTOCOL_OPENPGP
#include "sm-config.h"
#include "sm-outgoing.h"
#undef SM_PROTOCOL_SMIME
#undef SM_PROTOCOL_OPENPGP
#include "sm-certstore.h"
#include "sm-error.h"

static char *tmp;             /* everything of this run */
static char *ca_dir;
static char *alice_home, *bob_sm_home, *bob_pgp_home;
static SmCertstore *alice;
static char *alice_pgp_fpr;

/* ---- helpers -------------------------------------------------------------------- */

static int
rm_rf_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

/* Runs @argv with GNUPGHOME=@home (may be NULL) and @input on stdin;
 * returns the exit status, stdout and stderr. */
static int
run (const char *home, const char *input, char **out, char **err, const char *const *argv)
{
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                                                G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                                G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) in = g_bytes_new (input ? input : "", input ? strlen (input) : 0);
  g_autoptr(GBytes) o = NULL, e = NULL;

  if (home)
    g_subprocess_launcher_setenv (l, "GNUPGHOME", home, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  /* Bytes, not _utf8: that variant leaks in GLib 2.74 under LSan. */
  g_subprocess_communicate (p, in, NULL, &o, &e, &error);
  g_assert_no_error (error);
  /* *out and *err are replaced (callers reuse them; always initialised). */
  if (out)
    g_free (*out);
  if (err)
    g_free (*err);
  if (out)
    *out = g_strndup (g_bytes_get_data (o, NULL), g_bytes_get_size (o));
  if (err)
    *err = g_strndup (g_bytes_get_data (e, NULL), g_bytes_get_size (e));
  return g_subprocess_get_if_exited (p) ? g_subprocess_get_exit_status (p) : -1;
}

#define RUN(home, input, out, err, ...) \
  run (home, input, out, err, (const char *const[]) { __VA_ARGS__, NULL })

static void
must (int status, const char *what, const char *err)
{
  if (status != 0)
    g_error ("%s failed (%d): %s", what, status, err ? err : "");
}

static char *
path (const char *dir, const char *name)
{
  return g_build_filename (dir, name, NULL);
}

static void
write_file (const char *p, const void *data, gsize len)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (p, data, len, &error);
  g_assert_no_error (error);
}

static char *
read_file (const char *p)
{
  char *c = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (p, &c, NULL, &error);
  g_assert_no_error (error);
  return c;
}

static GBytes *
read_bytes (const char *p)
{
  char *c = NULL;
  gsize n = 0;

  g_assert_true (g_file_get_contents (p, &c, &n, NULL));
  return g_bytes_new_take (c, n);
}

static void
new_home (const char *home)
{
  g_autofree char *conf = path (home, "gpg-agent.conf");

  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  write_file (conf, "s2k-count 65536\n", strlen ("s2k-count 65536\n"));
}

static SmConfig *
config_for (const char *protocol, const char *encrypt)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strdup_printf ("[account]\naddress = alice@example.test\n"
                                           "[upstream]\nimap = imaps://imap.example.test\n"
                                           "smtp = smtp://smtp.example.test\n"
                                           "[crypto]\nprotocol = %s\nencrypt = %s\n",
                                           protocol, encrypt);
  SmConfig *c = sm_config_load_data (text, "", &error);

  g_assert_no_error (error);
  return c;
}

/* A message as a client submits it: 8-bit UTF-8 body declared 8bit, a line
 * with trailing white space, a "From " line, a Bcc. */
#define MESSAGE_8BIT                                                   \
  "From: Alice Example <alice@example.test>\r\n"                       \
  "To: Bob Example <bob@example.test>\r\n"                             \
  "Bcc: Hidden Person <hidden@example.test>\r\n"                       \
  "Subject: Quarterly numbers\r\n"                                     \
  "Date: Mon, 07 Dec 2026 10:00:00 +1300\r\n"                          \
  "Message-ID: <q4-numbers@example.test>\r\n"                          \
  "MIME-Version: 1.0\r\n"                                              \
  "Content-Type: text/plain; charset=utf-8\r\n"                        \
  "Content-Transfer-Encoding: 8bit\r\n"                                \
  "\r\n"                                                               \
  "Hello Bob, caf\xc3\xa9 numbers \xe2\x82\xac 42.\r\n"                \
  "Trailing space here \r\n"                                           \
  "From the desk of Alice\r\n"                                         \
  ".\r\n"

static GBytes *
protect (const char *protocol, const char *encrypt, const char *sender, const char *const *rcpts,
         const char *message, SmOutgoingInfo **info, GError **error)
{
  g_autoptr(SmConfig) config = config_for (protocol, encrypt);
  g_autoptr(GBytes) msg = g_bytes_new (message, strlen (message));

  return sm_outgoing_protect (alice, config, sender, rcpts, msg, info, error);
}

static char *
bytes_str (GBytes *b)
{
  return g_strndup (g_bytes_get_data (b, NULL), g_bytes_get_size (b));
}

static void
assert_7bit (const char *s)
{
  for (const char *p = s; *p; p++)
    g_assert_cmpuint ((guchar) *p, <, 0x80);
}

/* The boundary of the top-level Content-Type of @msg. */
static char *
top_boundary (const char *msg)
{
  const char *b = strstr (msg, "boundary=\"");
  const char *e;

  g_assert_nonnull (b);
  b += strlen ("boundary=\"");
  e = strchr (b, '"');
  g_assert_nonnull (e);
  return g_strndup (b, e - b);
}

/* Splits a multipart/signed message into the exact signed bytes (RFC 1847:
 * between the first delimiter line and the CRLF before the second) and the
 * signature part's body. */
static void
split_signed (const char *msg, GBytes **signed_bytes, char **sig_body)
{
  g_autofree char *boundary = top_boundary (msg);
  g_autofree char *open = g_strdup_printf ("\r\n--%s\r\n", boundary);
  g_autofree char *close = g_strdup_printf ("\r\n--%s--", boundary);
  const char *first = strstr (msg, open);
  const char *start, *second, *sig, *end;

  g_assert_nonnull (first);
  start = first + strlen (open);
  second = strstr (start, open);
  g_assert_nonnull (second);
  *signed_bytes = g_bytes_new (start, second - start);
  sig = strstr (second + strlen (open), "\r\n\r\n");
  g_assert_nonnull (sig);
  sig += 4;
  end = strstr (sig, close);
  g_assert_nonnull (end);
  *sig_body = g_strndup (sig, end - sig);
}

static char *
body_of (const char *msg)
{
  const char *b = strstr (msg, "\r\n\r\n");
  g_assert_nonnull (b);
  return g_strdup (b + 4);
}

static char *
header_of (const char *msg)
{
  const char *b = strstr (msg, "\r\n\r\n");
  g_assert_nonnull (b);
  return g_strndup (msg, b - msg + 2);
}

static char *
sha256_b64 (GBytes *b)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 d[32];
  gsize n = sizeof d;

  g_checksum_update (sum, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_checksum_get_digest (sum, d, &n);
  return g_base64_encode (d, n);
}

/* What a protected entity must look like inside: the real Subject (RFC 9788
 * protected header), the body re-encoded, no Bcc anywhere. */
static void
check_inner (const char *inner, gboolean encrypted)
{
  g_assert_nonnull (strstr (inner, "Subject: Quarterly numbers\r\n"));
  g_assert_nonnull (strstr (inner, "From: Alice Example <alice@example.test>\r\n"));
  g_assert_nonnull (strstr (inner, encrypted ? "hp=\"cipher\"" : "hp=\"clear\""));
  g_assert_nonnull (strstr (inner, "Content-Transfer-Encoding: quoted-printable\r\n"));
  g_assert_nonnull (strstr (inner, "caf=C3=A9 numbers =E2=82=AC 42."));
  g_assert_nonnull (strstr (inner, "Trailing space here=20\r\n"));
  g_assert_nonnull (strstr (inner, "=46rom the desk"));
  g_assert_null (strstr (inner, "hidden@example.test"));
  g_assert_null (strstr (inner, "Bcc:"));
  if (encrypted)
    g_assert_nonnull (strstr (inner, "HP-Outer: Subject: ...\r\n"));
  else
    g_assert_null (strstr (inner, "HP-Outer:"));
}

static void
check_outer_header (const char *msg, gboolean encrypted)
{
  g_autofree char *h = header_of (msg);

  g_assert_nonnull (strstr (h, "From: Alice Example <alice@example.test>\r\n"));
  g_assert_nonnull (strstr (h, "To: Bob Example <bob@example.test>\r\n"));
  g_assert_nonnull (strstr (h, "Date: Mon, 07 Dec 2026 10:00:00 +1300\r\n"));
  g_assert_nonnull (strstr (h, "Message-ID: <q4-numbers@example.test>\r\n"));
  g_assert_nonnull (strstr (h, "MIME-Version: 1.0\r\n"));
  g_assert_null (strstr (msg, "hidden@example.test"));
  if (encrypted)
    {
      g_assert_nonnull (strstr (h, "Subject: ...\r\n"));
      g_assert_null (strstr (msg, "Quarterly"));
      g_assert_null (strstr (msg, "desk of Alice"));
    }
  else
    g_assert_nonnull (strstr (h, "Subject: Quarterly numbers\r\n"));
  assert_7bit (msg);
}

/* gpgsm in bob's home verifies a detached S/MIME signature over @data. */
static void
gpgsm_verify_detached (GBytes *data, const char *sig_b64, const char *dir)
{
  g_autofree char *dp = path (dir, "signed.bin");
  g_autofree char *sp = path (dir, "sig.b64");
  g_autofree char *out = NULL, *err = NULL;

  write_file (dp, g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  write_file (sp, sig_b64, strlen (sig_b64));
  must (RUN (bob_sm_home, NULL, &out, &err, "gpgsm", "--batch", "--status-fd", "1", "--assume-base64",
             "--verify", sp, dp), "gpgsm --verify", err);
  g_assert_nonnull (strstr (out, "[GNUPG:] GOODSIG"));
  g_assert_nonnull (strstr (out, "alice@example.test"));
  g_assert_null (strstr (out, "BADSIG"));
}

/* openssl verifies the multipart/signed entity in @file against the test CA
 * and names alice as the signer; the content goes to @content_out. */
static char *
openssl_verify (const char *file, const char *dir)
{
  g_autofree char *signer = path (dir, "signer.pem");
  g_autofree char *content = path (dir, "content.eml");
  g_autofree char *ca = path (ca_dir, "ca.pem");
  g_autofree char *out = NULL, *err = NULL, *email = NULL;

  must (RUN (NULL, NULL, &out, &err, "openssl", "smime", "-verify", "-CAfile", ca, "-in", file, "-signer",
             signer, "-out", content), "openssl smime -verify", err);
  g_assert_nonnull (strstr (err, "Verification successful"));
  must (RUN (NULL, NULL, &email, &err, "openssl", "x509", "-in", signer, "-noout", "-email"),
        "openssl x509", err);
  g_assert_cmpstr (g_strstrip (email), ==, "alice@example.test");
  return read_file (content);
}

/* ---- tests ---------------------------------------------------------------------- */

static const char *const to_bob[] = { "bob@example.test", NULL };
static const char *const to_bob_carol[] = { "bob@example.test", "carol@example.test", NULL };

static void
test_smime_encrypted (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("smime", "if-possible", "alice@example.test", to_bob, MESSAGE_8BIT,
                                      &info, &error);
  g_autofree char *msg = NULL, *dir = g_dir_make_tmp ("out-XXXXXX", NULL);
  g_autofree char *file = path (dir, "msg.eml"), *dec = path (dir, "dec.eml");
  g_autofree char *bob_cert = path (ca_dir, "bob.pem"), *bob_key = path (ca_dir, "bob.key");
  g_autofree char *out = NULL, *err = NULL, *signed_entity = NULL, *inner = NULL, *sig = NULL;
  g_autofree char *mic = NULL;
  g_autoptr(GBytes) signed_bytes = NULL;

  g_assert_no_error (error);
  g_assert_true (info->signed_ && info->encrypted);
  g_assert_cmpint (info->protocol, ==, SM_CONFIG_PROTOCOL_SMIME);
  g_assert_cmpstr (info->micalg, ==, "sha-256");
  g_assert_cmpstr (info->message_id, ==, "<q4-numbers@example.test>");
  g_assert_cmpuint (g_strv_length (info->missing), ==, 0);
  msg = bytes_str (result);
  check_outer_header (msg, TRUE);
  g_assert_nonnull (strstr (msg, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data"));
  write_file (file, msg, strlen (msg));

  /* openssl decrypts with bob's key, then verifies the signed entity. */
  must (RUN (NULL, NULL, &out, &err, "openssl", "cms", "-decrypt", "-recip", bob_cert, "-inkey", bob_key, "-in",
             file, "-out", dec), "openssl cms -decrypt", err);
  signed_entity = read_file (dec);
  g_assert_true (g_str_has_prefix (signed_entity, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;"));
  inner = openssl_verify (dec, dir);
  check_inner (inner, TRUE);

  /* gpgsm, in bob's own home, decrypts and verifies the same. */
  {
    g_autofree char *b64 = body_of (msg);
    g_autofree char *cp = path (dir, "cipher.b64");
    g_autofree char *gout = NULL;

    write_file (cp, b64, strlen (b64));
    g_clear_pointer (&err, g_free);
    /* gpgsm exits 2 when it lacks the certificate of another recipient
     * (alice's Sent copy); the status line is what counts. */
    RUN (bob_sm_home, NULL, &gout, &err, "gpgsm", "--batch", "--status-fd", "2", "--assume-base64",
         "--decrypt", cp);
    if (strstr (err, "[GNUPG:] DECRYPTION_OKAY") == NULL)
      g_error ("gpgsm --decrypt failed: %s", err);
    split_signed (gout, &signed_bytes, &sig);
    gpgsm_verify_detached (signed_bytes, sig, dir);
  }
  /* The MIC for receipts is the digest of exactly the signed bytes. */
  mic = sha256_b64 (signed_bytes);
  g_assert_cmpstr (mic, ==, info->mic);

  /* Alice's Sent copy is readable with her own key (she is a recipient). */
  {
    g_autoptr(GError) e2 = NULL;
    gpgme_ctx_t ctx = sm_certstore_new_context (alice, SM_PROTOCOL_SMIME, &e2);
    gpgme_data_t in, plain;
    g_autofree char *b64 = body_of (msg);
    gsize n = 0;
    g_autofree guchar *der = NULL;

    g_assert_no_error (e2);
    g_strdelimit (b64, "\r\n", ' ');
    der = g_base64_decode (b64, &n);
    gpgme_data_new_from_mem (&in, (const char *) der, n, 0);
    gpgme_data_new (&plain);
    g_assert_cmpint (gpgme_op_decrypt (ctx, in, plain), ==, 0);
    gpgme_data_release (in);
    gpgme_data_release (plain);
    gpgme_release (ctx);
  }
  nftw (dir, rm_rf_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_smime_signed_only (gconstpointer data)
{
  const char *policy = data;   /* "if-possible" with carol missing, or "never" */
  gboolean never = g_str_equal (policy, "never");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("smime", policy, "alice@example.test", never ? to_bob : to_bob_carol,
                                      MESSAGE_8BIT, &info, &error);
  g_autofree char *msg = NULL, *dir = g_dir_make_tmp ("out-XXXXXX", NULL);
  g_autofree char *file = path (dir, "msg.eml");
  g_autofree char *inner = NULL, *sig = NULL, *mic = NULL;
  g_autoptr(GBytes) signed_bytes = NULL;

  g_assert_no_error (error);
  g_assert_true (info->signed_);
  g_assert_false (info->encrypted);
  if (never)
    g_assert_cmpuint (g_strv_length (info->missing), ==, 0);
  else
    {
      g_assert_cmpuint (g_strv_length (info->missing), ==, 1);
      g_assert_cmpstr (info->missing[0], ==, "carol@example.test");
    }
  msg = bytes_str (result);
  check_outer_header (msg, FALSE);
  g_assert_nonnull (strstr (msg, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;"));
  write_file (file, msg, strlen (msg));
  inner = openssl_verify (file, dir);
  check_inner (inner, FALSE);
  split_signed (msg, &signed_bytes, &sig);
  gpgsm_verify_detached (signed_bytes, sig, dir);
  mic = sha256_b64 (signed_bytes);
  g_assert_cmpstr (mic, ==, info->mic);
  nftw (dir, rm_rf_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_required_refuses (gconstpointer data)
{
  const char *protocol = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect (protocol, "required", "alice@example.test", to_bob_carol, MESSAGE_8BIT,
                                      &info, &error);
  g_autofree char *reply = NULL;
  guint code = 0;

  g_assert_null (result);
  g_assert_null (info);
  g_assert_error (error, SM_ERROR, SM_ERROR_POLICY);
  g_assert_nonnull (strstr (error->message, "carol@example.test"));
  g_assert_null (strstr (error->message, "bob@example.test"));
  reply = sm_outgoing_error_to_smtp (error, &code);
  g_assert_cmpuint (code, ==, 550);
  g_assert_true (g_str_has_prefix (reply, "550 5.7.1 "));
  g_assert_nonnull (strstr (reply, "carol@example.test"));
}

static void
test_required_all_keys (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("smime", "required", "alice@example.test", to_bob, MESSAGE_8BIT,
                                      &info, &error);

  g_assert_no_error (error);
  g_assert_true (info->encrypted);
}

static void
test_openpgp_encrypted (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("openpgp", "if-possible", "alice@example.test", to_bob, MESSAGE_8BIT,
                                      &info, &error);
  g_autofree char *msg = NULL, *dir = g_dir_make_tmp ("out-XXXXXX", NULL);
  g_autofree char *ap = path (dir, "msg.asc");
  g_autofree char *out = NULL, *err = NULL;
  const char *b, *e;

  g_assert_no_error (error);
  g_assert_true (info->encrypted);
  g_assert_cmpint (info->protocol, ==, SM_CONFIG_PROTOCOL_OPENPGP);
  g_assert_true (g_str_has_prefix (info->micalg, "pgp-sha"));
  g_assert_cmpstr (info->signer, ==, alice_pgp_fpr);
  msg = bytes_str (result);
  check_outer_header (msg, TRUE);
  g_assert_nonnull (strstr (msg, "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";"));
  g_assert_nonnull (strstr (msg, "\r\nVersion: 1\r\n"));
  b = strstr (msg, "-----BEGIN PGP MESSAGE-----");
  e = strstr (msg, "-----END PGP MESSAGE-----");
  g_assert_true (b != NULL && e != NULL);
  write_file (ap, b, e - b + strlen ("-----END PGP MESSAGE-----\r\n"));

  /* gpg in bob's home: decrypts, good signature by alice's key. */
  must (RUN (bob_pgp_home, NULL, &out, &err, "gpg", "--batch", "--status-fd", "2", "--decrypt", ap),
        "gpg --decrypt", err);
  g_assert_nonnull (strstr (err, "[GNUPG:] DECRYPTION_OKAY"));
  g_assert_nonnull (strstr (err, "[GNUPG:] GOODSIG"));
  g_assert_nonnull (strstr (err, "[GNUPG:] VALIDSIG "));
  g_assert_nonnull (strstr (err, alice_pgp_fpr));
  g_assert_null (strstr (err, "BADSIG"));
  /* The decrypted text is the signed entity: protected Subject, no Bcc. */
  check_inner (out, TRUE);
  nftw (dir, rm_rf_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_openpgp_signed_only (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("openpgp", "if-possible", "alice@example.test", to_bob_carol,
                                      MESSAGE_8BIT, &info, &error);
  g_autofree char *msg = NULL, *dir = g_dir_make_tmp ("out-XXXXXX", NULL);
  g_autofree char *dp = path (dir, "signed.bin"), *sp = path (dir, "sig.asc");
  g_autofree char *out = NULL, *err = NULL, *sig = NULL, *inner = NULL;
  g_autoptr(GBytes) signed_bytes = NULL;

  g_assert_no_error (error);
  g_assert_false (info->encrypted);
  g_assert_cmpstr (info->missing[0], ==, "carol@example.test");
  msg = bytes_str (result);
  check_outer_header (msg, FALSE);
  g_assert_nonnull (strstr (msg, "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha"));
  split_signed (msg, &signed_bytes, &sig);
  inner = bytes_str (signed_bytes);
  check_inner (inner, FALSE);
  write_file (dp, g_bytes_get_data (signed_bytes, NULL), g_bytes_get_size (signed_bytes));
  write_file (sp, sig, strlen (sig));
  must (RUN (bob_pgp_home, NULL, &out, &err, "gpg", "--batch", "--status-fd", "2", "--verify", sp, dp),
        "gpg --verify", err);
  g_assert_nonnull (strstr (err, "[GNUPG:] GOODSIG"));
  g_assert_nonnull (strstr (err, alice_pgp_fpr));
  nftw (dir, rm_rf_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* A multipart/mixed with an 8-bit text part and a binary attachment, no
 * Message-ID and no Date: every part ends up 7-bit, the signature holds. */
static void
test_multipart_8bit (void)
{
  static const char message[] =
    "From: alice@example.test\r\n"
    "To: bob@example.test\r\n"
    "Subject: attachment\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"xyz\"\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "preamble\r\n"
    "--xyz\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "na\xc3\xafve text\r\n"
    "--xyz\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-Disposition: attachment; filename=\"b.bin\"\r\n"
    "\r\n"
    "\x01\x02\xff\xfe\r\n"
    "--xyz\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "plain ascii already\r\n"
    "--xyz--\r\n"
    "epilogue\r\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) result = protect ("smime", "never", "alice@example.test", to_bob, message, &info, &error);
  g_autofree char *msg = NULL, *dir = g_dir_make_tmp ("out-XXXXXX", NULL);
  g_autofree char *file = path (dir, "msg.eml"), *inner = NULL;

  g_assert_no_error (error);
  msg = bytes_str (result);
  assert_7bit (msg);
  g_assert_nonnull (info->message_id);
  g_assert_true (g_str_has_suffix (info->message_id, "@example.test>"));
  g_assert_nonnull (strstr (msg, info->message_id));
  g_assert_nonnull (strstr (msg, "\r\nDate: "));
  write_file (file, msg, strlen (msg));
  inner = openssl_verify (file, dir);
  g_assert_nonnull (strstr (inner, "na=C3=AFve text"));
  g_assert_nonnull (strstr (inner, "AQL//g==\r\n"));   /* 01 02 ff fe: the CRLF is the delimiter's */
  g_assert_nonnull (strstr (inner, "plain ascii already\r\n"));
  g_assert_nonnull (strstr (inner, "--xyz--\r\n"));
  g_assert_nonnull (strstr (inner, "multipart/mixed; boundary=\"xyz\";\r\n hp=\"clear\""));
  nftw (dir, rm_rf_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_no_own_key (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) result = protect ("smime", "if-possible", "stranger@example.test", to_bob, MESSAGE_8BIT,
                                      NULL, &error);
  g_autofree char *reply = NULL;
  guint code = 0;

  g_assert_null (result);
  g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "securemail keys"));
  reply = sm_outgoing_error_to_smtp (error, &code);
  g_assert_cmpuint (code / 100, ==, 5);
}

static void
test_locked (gconstpointer data)
{
  const char *protocol = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) result = NULL;
  g_autofree char *reply = NULL;
  guint code = 0, n = 0;

  /* The agent forgets every preset passphrase. */
  sm_certstore_shutdown_agent (alice);
  result = protect (protocol, "if-possible", "alice@example.test", to_bob, MESSAGE_8BIT, NULL, &error);
  g_assert_null (result);
  g_assert_error (error, SM_ERROR, SM_ERROR_LOCKED);
  reply = sm_outgoing_error_to_smtp (error, &code);
  g_assert_cmpuint (code, ==, 454);
  g_assert_true (g_str_has_prefix (reply, "454 4.7.0 "));
  g_assert_nonnull (strstr (reply, "unlock SecureMail"));
  g_clear_error (&error);

  g_assert_true (sm_certstore_unlock (alice, NULL, &n, &error));
  g_assert_no_error (error);
  result = protect (protocol, "if-possible", "alice@example.test", to_bob, MESSAGE_8BIT, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (result);
}

static void
test_malformed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) result = protect ("smime", "never", "alice@example.test", to_bob,
                                      "From: alice@example.test\r\nthis is not a header\r\n\r\nbody\r\n", NULL,
                                      &error);
  g_assert_null (result);
  g_assert_error (error, SM_ERROR, SM_ERROR_PROTOCOL);
}

static void
test_too_deep (void)
{
  g_autoptr(GString) m = g_string_new ("From: alice@example.test\r\nSubject: deep\r\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) result = NULL;

  for (int i = 0; i < SM_OUTGOING_MAX_MIME_DEPTH + 2; i++)
    g_string_append_printf (m, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
  g_string_append (m, "\r\nleaf\r\n");
  result = protect ("smime", "never", "alice@example.test", to_bob, m->str, NULL, &error);
  g_assert_null (result);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
}

/* ---- setup ---------------------------------------------------------------------- */

static void
setup_homes (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *p12 = path (ca_dir, "alice-legacy.p12");
  g_autofree char *bob_p12 = path (ca_dir, "bob-nopass.p12");
  g_autofree char *ca = path (ca_dir, "ca.pem");
  g_autofree char *bob_pem = path (ca_dir, "bob.pem"), *bob_key = path (ca_dir, "bob.key");
  g_autoptr(GBytes) b = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(SmKeyInfo) anchor = NULL, pgp = NULL;

  alice_home = path (tmp, "alice");
  bob_sm_home = path (tmp, "bob-sm");
  bob_pgp_home = path (tmp, "bob-pgp");
  new_home (alice_home);
  new_home (bob_sm_home);
  new_home (bob_pgp_home);

  /* Alice: the certstore, as `securemail keys import` / `certs import` do. */
  alice = sm_certstore_new_for_home (alice_home, &error);
  g_assert_no_error (error);
  b = read_bytes (p12);
  infos = sm_certstore_import_own (alice, b, "p12pass", &error);
  g_assert_no_error (error);
  g_clear_pointer (&b, g_bytes_unref);
  g_clear_pointer (&infos, g_ptr_array_unref);
  b = read_bytes (ca);
  anchor = sm_certstore_trust_ca (alice, b, &error);
  g_assert_no_error (error);
  g_clear_pointer (&b, g_bytes_unref);
  b = read_bytes (bob_pem);
  infos = sm_certstore_import_certs (alice, b, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&b, g_bytes_unref);
  g_clear_pointer (&infos, g_ptr_array_unref);
  pgp = sm_certstore_generate_openpgp (alice, "Alice Example", "alice@example.test", 0, &error);
  g_assert_no_error (error);
  alice_pgp_fpr = g_strdup (pgp->fingerprint);

  /* Bob, S/MIME: plain gpgsm with an unprotected key and the CA trusted. */
  {
    g_autofree char *conf = path (bob_sm_home, "gpgsm.conf");
    g_autofree char *trust = path (bob_sm_home, "trustlist.txt");
    g_autofree char *fpr = NULL, *line = NULL;

    write_file (conf, "disable-crl-checks\ndisable-dirmngr\n", strlen ("disable-crl-checks\ndisable-dirmngr\n"));
    /* gpgsm 2.2 rejects a few percent of valid 3DES bundles depending on
     * the random salt (certstore/README.md): a new bundle is a new salt. */
    for (guint attempt = 1;; attempt++)
      {
        int status;

        must (RUN (NULL, NULL, &out, &err, "openssl", "pkcs12", "-export", "-in", bob_pem, "-inkey", bob_key,
                   "-certfile", ca, "-name", "bob", "-passout", "pass:", "-keypbe", "PBE-SHA1-3DES", "-certpbe",
                   "PBE-SHA1-3DES", "-macalg", "sha1", "-out", bob_p12), "openssl pkcs12", err);
        g_clear_pointer (&err, g_free);
        g_clear_pointer (&out, g_free);
        status = RUN (bob_sm_home, "\n", NULL, &err, "gpgsm", "--batch", "--pinentry-mode", "loopback",
                      "--passphrase-fd", "0", "--import", bob_p12);
        if (status == 0 || attempt == 5)
          {
            must (status, "gpgsm --import p12", err);
            break;
          }
        g_test_message ("gpgsm refused PKCS#12 bundle %u; making another", attempt);
        g_clear_pointer (&err, g_free);
      }
    g_clear_pointer (&err, g_free);
    must (RUN (bob_sm_home, NULL, NULL, &err, "gpgsm", "--batch", "--import", ca), "gpgsm --import ca", err);
    g_clear_pointer (&out, g_free);
    must (RUN (NULL, NULL, &out, &err, "openssl", "x509", "-in", ca, "-noout", "-fingerprint", "-sha1"),
          "openssl x509", err);
    fpr = g_strstrip (g_strdup (strchr (out, '=') + 1));
    line = g_strdup_printf ("%s S relax\n", fpr);
    write_file (trust, line, strlen (line));
  }

  /* Bob, OpenPGP: plain gpg; keys exchanged both ways. */
  {
    g_autofree char *pub = NULL;
    g_autoptr(GBytes) alice_pub = NULL;
    g_autoptr(GPtrArray) got = NULL;

    g_clear_pointer (&err, g_free);
    must (RUN (bob_pgp_home, NULL, NULL, &err, "gpg", "--batch", "--passphrase", "", "--quick-gen-key",
               "Bob Example <bob@example.test>", "future-default", "default", "never"), "gpg --quick-gen-key", err);
    g_clear_pointer (&err, g_free);
    must (RUN (bob_pgp_home, NULL, &pub, &err, "gpg", "--batch", "--armor", "--export", "bob@example.test"),
          "gpg --export", err);
    b = g_bytes_new (pub, strlen (pub));
    got = sm_certstore_import_certs (alice, b, NULL, &error);
    g_assert_no_error (error);
    alice_pub = sm_certstore_export_public (alice, SM_PROTOCOL_OPENPGP, NULL, &error);
    g_assert_no_error (error);
    {
      g_autofree char *text = g_strndup (g_bytes_get_data (alice_pub, NULL), g_bytes_get_size (alice_pub));
      g_clear_pointer (&err, g_free);
      must (RUN (bob_pgp_home, text, NULL, &err, "gpg", "--batch", "--import"), "gpg --import", err);
    }
  }
}

static void
kill_agent (const char *home)
{
  if (home)
    RUN (home, NULL, NULL, NULL, "gpgconf", "--kill", "all");
}

int
main (int argc, char **argv)
{
  const char *script = g_getenv ("SM_TEST_CA_SCRIPT");
  g_autoptr(GError) error = NULL;
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (script == NULL)
    {
      g_printerr ("SM_TEST_CA_SCRIPT must be set (run through meson test)\n");
      return 1;
    }
  g_setenv ("SECUREMAIL_POLICY", "/nonexistent/policy.conf", TRUE);
  tmp = g_dir_make_tmp ("smout-XXXXXX", &error);
  g_assert_no_error (error);
  ca_dir = path (tmp, "ca");
  {
    g_autofree char *err = NULL;
    must (RUN (NULL, NULL, NULL, &err, script, "init", ca_dir), "make-test-ca.sh", err);
  }
  setup_homes ();

  g_test_add_func ("/proxy/outgoing/smime/encrypted", test_smime_encrypted);
  g_test_add_data_func ("/proxy/outgoing/smime/if-possible-signed-only", "if-possible", test_smime_signed_only);
  g_test_add_data_func ("/proxy/outgoing/smime/never-signed-only", "never", test_smime_signed_only);
  g_test_add_data_func ("/proxy/outgoing/smime/required-refuses", "smime", test_required_refuses);
  g_test_add_func ("/proxy/outgoing/smime/required-all-keys", test_required_all_keys);
  g_test_add_func ("/proxy/outgoing/smime/multipart-8bit", test_multipart_8bit);
  g_test_add_data_func ("/proxy/outgoing/smime/locked", "smime", test_locked);
  g_test_add_func ("/proxy/outgoing/openpgp/encrypted", test_openpgp_encrypted);
  g_test_add_func ("/proxy/outgoing/openpgp/if-possible-signed-only", test_openpgp_signed_only);
  g_test_add_data_func ("/proxy/outgoing/openpgp/required-refuses", "openpgp", test_required_refuses);
  g_test_add_data_func ("/proxy/outgoing/openpgp/locked", "openpgp", test_locked);
  g_test_add_func ("/proxy/outgoing/no-own-key", test_no_own_key);
  g_test_add_func ("/proxy/outgoing/malformed", test_malformed);
  g_test_add_func ("/proxy/outgoing/too-deep", test_too_deep);
  rc = g_test_run ();

  sm_certstore_shutdown_agent (alice);
  g_clear_object (&alice);
  kill_agent (alice_home);
  kill_agent (bob_sm_home);
  kill_agent (bob_pgp_home);
  nftw (tmp, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
  /* Let go of libsecret's bus connection so LSan sees no live messages. */
  secret_service_disconnect ();
  g_free (alice_home);
  g_free (bob_sm_home);
  g_free (bob_pgp_home);
  g_free (alice_pgp_fpr);
  g_free (ca_dir);
  g_free (tmp);
  return rc;
}
