/* test-receipts.c: signed receipts (issue 5, proxy/sm-receipts.h) with real
 * gpgsm and gpg-agent: alice's proxy side sends (sm_outgoing_protect() with
 * a receipt request, sm_receipts_record_sent()), bob's side builds the
 * secure view and answers (sm_receipts_on_view() -> spool), alice's side
 * matches the MDN.  Attacks: tampered MIC, a receipt signed by someone else
 * (eve, whose certificate is as good as bob's), a receipt for an unknown
 * message, a receipt with a broken signature; no receipt for an unverified
 * message, none twice, none with send_receipts = never.
 *
 * S/MIME with the test CA (tests/certstore/make-test-ca.sh); eve's
 * certificate is issued at run time.  Each store is a certstore home with
 * its own key, the CA as trust anchor, the CA's CRL and the others'
 * certificates.  Runs under keyring-wrapper.sh (the certstore keeps key
 * passphrases in the keyring).
 */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>
#include <libsecret/secret.h>

#define SM_PROTOCOL_SMIME SM_CONFIG_PROTOCOL_SMIME
#define SM_PROTOCOL_OPENPGP SM_CONFIG_PROTOCOL_OPENPGP
#include "sm-config.h"
#include "sm-outgoing.h"
#include "sm-receipts.h"
#undef SM_PROTOCOL_SMIME
#undef SM_PROTOCOL_OPENPGP
#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-secure-view.h"
#include "sm-spool.h"

static char *tmp;
static char *ca_dir;
static SmCertstore *alice_store, *bob_store, *eve_store;

/* ---- helpers ---------------------------------------------------------------------- */

static int
rm_rf_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

static void
run (const char *home, const char *input, const char *const *argv)
{
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                                | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;

  if (home != NULL)
    g_subprocess_launcher_setenv (l, "GNUPGHOME", home, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, input, NULL, NULL, &err, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_successful (p))
    g_error ("%s failed: %s", argv[0], err);
}

static char *
ca_path (const char *name)
{
  return g_build_filename (ca_dir, name, NULL);
}

static GBytes *
read_bytes (const char *path)
{
  char *data = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_bytes_new_take (data, len);
}

/* Imports the file @name of the CA directory: own keys (PKCS#12) when
 * @own, else certificates or a CRL. */
static void
import_file (SmCertstore *store, const char *name, gboolean own)
{
  g_autofree char *path = ca_path (name);
  g_autoptr(GBytes) b = read_bytes (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) got = own ? sm_certstore_import_own (store, b, "p12pass", &error)
                                 : sm_certstore_import_certs (store, b, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (got);
}

/* A certstore home for @name: its p12, the CA, the CRL, @others' certs. */
static SmCertstore *
new_store (const char *name, const char *const *others)
{
  g_autofree char *home = g_build_filename (tmp, name, NULL);
  g_autofree char *conf = g_build_filename (home, "gpg-agent.conf", NULL);
  g_autofree char *p12 = g_strdup_printf ("%s-legacy.p12", name);
  g_autofree char *ca = ca_path ("ca.pem");
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) ca_bytes = read_bytes (ca);
  g_autoptr(SmKeyInfo) anchor = NULL;
  SmCertstore *store;

  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  /* Fast passphrase hashing for tests (reference/test-stack.md §5). */
  g_assert_true (g_file_set_contents (conf, "s2k-count 65536\n", -1, NULL));
  store = sm_certstore_new_for_home (home, &error);
  g_assert_no_error (error);
  import_file (store, p12, TRUE);
  anchor = sm_certstore_trust_ca (store, ca_bytes, &error);
  g_assert_no_error (error);
  import_file (store, "ca.crl", FALSE);
  for (guint i = 0; others[i] != NULL; i++)
    {
      g_autofree char *pem = g_strdup_printf ("%s.pem", others[i]);
      import_file (store, pem, FALSE);
    }
  g_assert_true (sm_certstore_unlock (store, NULL, NULL, &error));
  g_assert_no_error (error);
  return store;
}

/* eve@example.test: a second certificate from the same trusted CA. */
static void
issue_eve (void)
{
  g_autofree char *key = ca_path ("eve.key"), *csr = ca_path ("eve.csr"), *pem = ca_path ("eve.pem");
  g_autofree char *p12 = ca_path ("eve-legacy.p12"), *ca = ca_path ("ca.pem");
  const char *script = g_getenv ("SM_TEST_CA_SCRIPT");
  const char *req[] = { "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                        "-subj", "/O=SecureMail Test/CN=eve/emailAddress=eve@example.test", NULL };
  const char *sign[] = { script, "sign", ca_dir, csr, pem, "eve@example.test", NULL };
  const char *pkcs12[] = { "openssl", "pkcs12", "-export", "-in", pem, "-inkey", key, "-certfile", ca,
                           "-name", "eve", "-passout", "pass:p12pass", "-keypbe", "PBE-SHA1-3DES",
                           "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", "-out", p12, NULL };

  run (NULL, NULL, req);
  run (NULL, NULL, sign);
  run (NULL, NULL, pkcs12);
}

static SmConfig *
config_for (const char *address, const char *encrypt, const char *extra)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strdup_printf ("[account]\naddress = %s\n"
                                           "[upstream]\nimap = imaps://imap.example.test\n"
                                           "smtp = smtp://smtp.example.test\n"
                                           "[crypto]\nprotocol = smime\nencrypt = %s\n%s",
                                           address, encrypt, extra ? extra : "");
  SmConfig *c = sm_config_load_data (text, "", &error);

  g_assert_no_error (error);
  return c;
}

/* One side of the conversation: its receipts database and its spool. */
typedef struct {
  SmReceipts *receipts;
  SmSpool *spool;
  SmConfig *config;
  SmCertstore *store;
  char *address;
  guint changed;          /* "changed" signals seen */
} Side;

typedef struct {
  char *dir;
  Side alice, bob;
} Fixture;

static void
on_changed (SmReceipts *r, const char *mid, gpointer user_data)
{
  Side *s = user_data;

  g_assert_nonnull (mid);
  s->changed++;
}

static void
side_open (Fixture *f, Side *s, const char *name, SmCertstore *store)
{
  g_autofree char *db = g_strdup_printf ("%s/%s-state.db", f->dir, name);
  g_autofree char *spool = g_strdup_printf ("%s/%s-spool", f->dir, name);
  g_autoptr(GError) error = NULL;

  s->store = store;
  s->address = g_strdup_printf ("%s@example.test", name);
  s->config = config_for (s->address, "if-possible", NULL);
  s->receipts = sm_receipts_new (db, store, &error);
  g_assert_no_error (error);
  s->spool = sm_spool_new (spool, &error);
  g_assert_no_error (error);
  g_signal_connect (s->receipts, "changed", G_CALLBACK (on_changed), s);
}

static void
side_close (Side *s)
{
  g_clear_object (&s->receipts);
  g_clear_object (&s->spool);
  g_clear_pointer (&s->config, sm_config_free);
  g_free (s->address);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("smrcpt-XXXXXX", &error);
  g_assert_no_error (error);
  side_open (f, &f->alice, "alice", alice_store);
  side_open (f, &f->bob, "bob", bob_store);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  side_close (&f->alice);
  side_close (&f->bob);
  nftw (f->dir, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
  g_free (f->dir);
}

#define MESSAGE_FMT                                   \
  "From: Alice Example <alice@example.test>\r\n"      \
  "To: Bob Example <bob@example.test>\r\n"            \
  "Subject: Quarterly numbers\r\n"                    \
  "Message-ID: <%s@example.test>\r\n"                 \
  "Content-Type: text/plain; charset=us-ascii\r\n"    \
  "\r\n"                                              \
  "Please confirm the numbers.\r\n"

/* Alice sends @id to bob as her proxy does: protect, then record. */
static GBytes *
alice_sends (Fixture *f, const char *id, const char *encrypt, SmOutgoingInfo **info_out)
{
  g_autoptr(SmConfig) config = config_for ("alice@example.test", encrypt, NULL);
  g_autofree char *text = g_strdup_printf (MESSAGE_FMT, id);
  g_autoptr(GBytes) msg = g_bytes_new (text, strlen (text));
  g_autoptr(GError) error = NULL;
  g_autoptr(SmOutgoingInfo) info = NULL;
  const char *rcpts[] = { "bob@example.test", NULL };
  GBytes *out = sm_outgoing_protect (alice_store, config, "alice@example.test", rcpts, msg, &info, &error);

  g_assert_no_error (error);
  g_assert_nonnull (info->receipt_mic);
  g_assert_true (sm_receipts_record_sent (f->alice.receipts, info, rcpts, &error));
  g_assert_no_error (error);
  if (info_out)
    *info_out = g_steal_pointer (&info);
  return out;
}

static SmSecureView *
view_of (SmCertstore *store, const char *address, GBytes *raw)
{
  g_autoptr(GError) error = NULL;
  SmSecureView *v = sm_secure_view_build (store, address, raw, SM_SECURE_VIEW_FLAGS_NONE, &error);

  g_assert_no_error (error);
  g_assert_nonnull (v);
  return v;
}

/* The single row of alice's log for @mid_local@example.test. */
static SmReceiptRow *
alice_row (Fixture *f, const char *id, gint64 overdue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = sm_receipts_list (f->alice.receipts, g_get_real_time () / G_USEC_PER_SEC, overdue,
                                                &error);
  g_autofree char *mid = g_strdup_printf ("<%s@example.test>", id);

  g_assert_no_error (error);
  for (guint i = 0; i < rows->len; i++)
    {
      SmReceiptRow *r = rows->pdata[i];
      if (strcmp (r->message_id, mid) == 0)
        {
          g_assert_cmpstr (r->recipient, ==, "bob@example.test");
          return g_steal_pointer (&rows->pdata[i]);
        }
    }
  return NULL;
}

/* Alice's side handles @mdn (what arrived in her mailbox). */
static void
alice_receives (Fixture *f, GBytes *mdn)
{
  g_autoptr(SmSecureView) v = view_of (alice_store, "alice@example.test", mdn);
  g_autoptr(GError) error = NULL;

  g_assert_true (sm_receipts_on_view (f->alice.receipts, f->alice.config, f->alice.spool, v, mdn, &error));
  g_assert_no_error (error);
  /* Receipts never ask for receipts, and alice never answers one. */
  g_assert_false (v->receipt_requested);
  g_assert_cmpuint (sm_spool_get_size (f->alice.spool), ==, 0);
}

/* An MDN for @id made by @signer_store as @from, signed (and encrypted to
 * alice when @encrypt says so). */
static GBytes *
forged_mdn (SmCertstore *signer_store, const char *from, const char *id, const char *final_recipient,
            const char *mic, const char *encrypt)
{
  g_autoptr(SmConfig) config = config_for (from, encrypt, NULL);
  g_autofree char *mid = g_strdup_printf ("<%s@example.test>", id);
  g_autoptr(GBytes) mdn = sm_receipts_build_mdn (from, "alice@example.test", mid, final_recipient, mic, "sha-256");
  g_autoptr(GError) error = NULL;
  const char *rcpts[] = { "alice@example.test", NULL };
  GBytes *out = sm_outgoing_protect (signer_store, config, from, rcpts, mdn, NULL, &error);

  g_assert_no_error (error);
  return out;
}

static gboolean
bytes_contain (GBytes *b, const char *needle)
{
  gsize len;
  const char *data = g_bytes_get_data (b, &len);
  return g_strstr_len (data, len, needle) != NULL;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The request is in the outer header and inside the signature, and both
 * sides hash the same bytes. */
static void
test_request (Fixture *f, gconstpointer data)
{
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) sent = alice_sends (f, "request", "never", &info);
  g_autoptr(SmSecureView) v = view_of (bob_store, "bob@example.test", sent);
  gsize len;
  const char *text = g_bytes_get_data (sent, &len);
  const char *body = g_strstr_len (text, len, "\r\n\r\n");
  const char *inner;

  g_assert_nonnull (body);
  /* outer header */
  g_assert_nonnull (g_strstr_len (text, body - text, "Disposition-Notification-To: <alice@example.test>\r\n"));
  g_assert_nonnull (g_strstr_len (text, body - text, "signed-receipt-protocol=required,application/pkcs7-signature"));
  g_assert_nonnull (g_strstr_len (text, body - text, "signed-receipt-micalg=required,sha-256"));
  /* inside the signed entity (signed only here, so it is readable) */
  inner = g_strstr_len (body, len - (body - text), "Disposition-Notification-To: <alice@example.test>\r\n");
  g_assert_nonnull (inner);
  g_assert_cmpstr (info->message_id, ==, "<request@example.test>");

  g_assert_cmpint (v->trust, ==, SM_TRUST_VERIFIED);
  g_assert_true (v->receipt_requested);
  g_assert_cmpstr (v->receipt_to, ==, "alice@example.test");
  g_assert_cmpstr (v->received_micalg, ==, "sha-256");
  g_assert_cmpstr (v->received_mic, ==, info->receipt_mic);
  g_assert_cmpuint (f->alice.changed, ==, 1);
}

/* Encrypted both ways: bob answers once, alice shows delivered-verified. */
static void
test_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) sent = alice_sends (f, "round-trip", "if-possible", NULL);
  g_autoptr(SmSecureView) v = view_of (bob_store, "bob@example.test", sent);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) queued = NULL;
  g_autoptr(GBytes) mdn = NULL;
  g_autoptr(SmSecureView) mv = NULL;
  g_autoptr(SmReceiptRow) row = NULL;
  SmSpoolEntry *e;

  g_assert_true (v->encrypted);
  g_assert_cmpint (v->trust, ==, SM_TRUST_VERIFIED);
  row = alice_row (f, "round-trip", 3600);
  g_assert_cmpint (row->status, ==, SM_RECEIPT_REQUESTED);
  g_clear_pointer (&row, sm_receipt_row_free);

  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, v, sent, &error));
  g_assert_no_error (error);
  queued = sm_spool_list (f->bob.spool);
  g_assert_cmpuint (queued->len, ==, 1);
  e = queued->pdata[0];
  g_assert_cmpstr (e->sender, ==, "");                 /* RFC 8098 §2.1: null reverse-path */
  g_assert_cmpstr (e->recipients[0], ==, "alice@example.test");
  g_assert_null (e->recipients[1]);
  g_assert_true (e->is_report);
  mdn = sm_spool_read_message (f->bob.spool, e->id, &error);
  g_assert_no_error (error);
  /* What leaves bob is protected: encrypted to alice. */
  g_assert_true (bytes_contain (mdn, "application/pkcs7-mime"));
  g_assert_false (bytes_contain (mdn, "Received-Content-MIC"));

  mv = view_of (alice_store, "alice@example.test", mdn);
  g_assert_cmpint (mv->trust, ==, SM_TRUST_VERIFIED);
  g_assert_true (bytes_contain (mv->message, "report-type=disposition-notification"));
  g_assert_true (bytes_contain (mv->message, "Disposition: automatic-action/MDN-sent-automatically; processed"));
  g_assert_true (bytes_contain (mv->message, "Original-Message-ID: <round-trip@example.test>"));
  g_assert_true (bytes_contain (mv->message, "Final-Recipient: rfc822;bob@example.test"));
  {
    g_autofree char *mic_line = g_strdup_printf ("Received-Content-MIC: %s, sha-256", v->received_mic);
    g_assert_true (bytes_contain (mv->message, mic_line));
  }
  alice_receives (f, mdn);
  row = alice_row (f, "round-trip", 0);
  g_assert_cmpint (row->status, ==, SM_RECEIPT_DELIVERED_VERIFIED);
  g_assert_nonnull (row->signer);
  g_assert_nonnull (strstr (row->signer, "bob@example.test"));
  g_assert_null (row->reason);
  g_assert_cmpint (row->changed, >=, row->sent);
  g_assert_cmpuint (f->alice.changed, ==, 2);          /* recorded, matched */

  /* A forged failure afterwards does not undo it. */
  {
    g_autoptr(GBytes) bad = forged_mdn (bob_store, "bob@example.test", "round-trip", "bob@example.test",
                                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "if-possible");
    g_autoptr(SmReceiptRow) again = NULL;

    alice_receives (f, bad);
    again = alice_row (f, "round-trip", 0);
    g_assert_cmpint (again->status, ==, SM_RECEIPT_DELIVERED_VERIFIED);
  }
}

/* At most once per Message-ID, also across a restart. */
static void
test_at_most_once (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) sent = alice_sends (f, "once", "if-possible", NULL);
  g_autoptr(SmSecureView) v = view_of (bob_store, "bob@example.test", sent);
  g_autoptr(GError) error = NULL;
  g_autofree char *db = g_strdup_printf ("%s/bob-state.db", f->dir);

  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, v, sent, &error));
  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, v, sent, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sm_spool_get_size (f->bob.spool), ==, 1);

  g_clear_object (&f->bob.receipts);
  f->bob.receipts = sm_receipts_new (db, bob_store, &error);
  g_assert_no_error (error);
  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, v, sent, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sm_spool_get_size (f->bob.spool), ==, 1);
}

/* Nothing for a message that is not verified, nothing when turned off. */
static void
test_not_verified (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) sent = alice_sends (f, "tampered", "never", NULL);
  g_autoptr(GString) t = g_string_new_len (g_bytes_get_data (sent, NULL), g_bytes_get_size (sent));
  char *at = strstr (t->str, "Please confirm the numbers.");
  g_autoptr(GBytes) tampered = NULL;
  g_autoptr(SmSecureView) v = NULL;
  g_autoptr(SmSecureView) good = NULL;
  g_autoptr(SmConfig) never = config_for ("bob@example.test", "if-possible", "send_receipts = never\n");
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (at);
  at[7] = 'C';   /* "Please Confirm" */
  tampered = g_bytes_new (t->str, t->len);
  v = view_of (bob_store, "bob@example.test", tampered);
  g_assert_cmpint (v->trust, ==, SM_TRUST_INVALID);
  g_assert_true (v->receipt_requested);
  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, v, tampered, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sm_spool_get_size (f->bob.spool), ==, 0);

  good = view_of (bob_store, "bob@example.test", sent);
  g_assert_cmpint (good->trust, ==, SM_TRUST_VERIFIED);
  g_assert_true (sm_receipts_on_view (f->bob.receipts, never, f->bob.spool, good, sent, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sm_spool_get_size (f->bob.spool), ==, 0);
  /* ... and it was not marked answered: turned on again, it answers. */
  g_assert_true (sm_receipts_on_view (f->bob.receipts, f->bob.config, f->bob.spool, good, sent, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sm_spool_get_size (f->bob.spool), ==, 1);
}

static void
expect_failed (Fixture *f, const char *id, const char *reason_part)
{
  g_autoptr(SmReceiptRow) row = alice_row (f, id, 3600);

  g_assert_nonnull (row);
  g_assert_cmpint (row->status, ==, SM_RECEIPT_FAILED);
  g_assert_nonnull (row->reason);
  if (strstr (row->reason, reason_part) == NULL)
    g_error ("reason “%s” does not say “%s”", row->reason, reason_part);
}

/* Receipts that must not count; each leaves the row "failed" with a reason
 * that names the problem. */
typedef struct {
  const char *path;
  const char *id;              /* Message-ID local part of alice's message */
  SmCertstore **signer;        /* who made the receipt */
  const char *from;
  gboolean wrong_mic;          /* report a MIC other than the one alice recorded */
  gboolean tamper;             /* alter the signed receipt on the way (sent signed only) */
  SmTrust trust;               /* what alice's secure view makes of it */
  const char *reason;
} RejectCase;

static const RejectCase reject_cases[] = {
  /* bob signs, but the content he verified is not what alice sent */
  { "/proxy/receipts/reject/tampered-mic", "mic", &bob_store, "bob@example.test", TRUE, FALSE, SM_TRUST_VERIFIED, "MIC mismatch" },
  /* eve's certificate is valid and trusted, but eve is not the recipient */
  { "/proxy/receipts/reject/wrong-signer", "signer", &eve_store, "eve@example.test", FALSE, FALSE, SM_TRUST_VERIFIED,
    "not the recipient's certificate" },
  /* bob's receipt, altered after signing */
  { "/proxy/receipts/reject/bad-signature", "badsig", &bob_store, "bob@example.test", FALSE, TRUE, SM_TRUST_INVALID, "bad signature" },
};

static void
test_reject (Fixture *f, gconstpointer data)
{
  const RejectCase *c = data;
  g_autoptr(SmOutgoingInfo) info = NULL;
  g_autoptr(GBytes) sent = alice_sends (f, c->id, "if-possible", &info);
  g_autofree char *mic = g_strdup (info->receipt_mic);
  g_autoptr(GBytes) mdn = NULL;
  g_autoptr(SmSecureView) v = NULL;

  if (c->wrong_mic)
    mic[0] = mic[0] == 'A' ? 'B' : 'A';
  mdn = forged_mdn (*c->signer, c->from, c->id, "bob@example.test", mic, c->tamper ? "never" : "if-possible");
  if (c->tamper)
    {
      g_autoptr(GString) t = g_string_new_len (g_bytes_get_data (mdn, NULL), g_bytes_get_size (mdn));
      char *at = strstr (t->str, "processed");

      g_assert_nonnull (at);
      at[0] = 'P';
      g_bytes_unref (mdn);
      mdn = g_bytes_new (t->str, t->len);
    }
  v = view_of (alice_store, "alice@example.test", mdn);
  g_assert_cmpint (v->trust, ==, c->trust);
  alice_receives (f, mdn);
  expect_failed (f, c->id, c->reason);
}

/* A receipt for a message alice never sent changes nothing. */
static void
test_unknown_message (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) sent = alice_sends (f, "known", "if-possible", NULL);
  g_autoptr(GBytes) mdn = forged_mdn (bob_store, "bob@example.test", "never-sent", "bob@example.test",
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "if-possible");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;

  alice_receives (f, mdn);
  rows = sm_receipts_list (f->alice.receipts, g_get_real_time () / G_USEC_PER_SEC, 3600, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rows->len, ==, 1);
  g_assert_cmpstr (((SmReceiptRow *) rows->pdata[0])->message_id, ==, "<known@example.test>");
  g_assert_cmpint (((SmReceiptRow *) rows->pdata[0])->status, ==, SM_RECEIPT_REQUESTED);
  g_assert_cmpuint (f->alice.changed, ==, 1);          /* only the recording */
}

static void
test_overdue (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) sent = alice_sends (f, "late", "never", NULL);
  g_autoptr(SmReceiptRow) fresh = alice_row (f, "late", 3 * 24 * 3600);
  g_autoptr(SmReceiptRow) late = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) later = NULL;

  g_assert_cmpint (fresh->status, ==, SM_RECEIPT_REQUESTED);
  late = alice_row (f, "late", 0);
  g_assert_cmpint (late->status, ==, SM_RECEIPT_OVERDUE);
  g_assert_cmpstr (sm_receipt_status_to_string (late->status), ==, "overdue");
  /* Seen three days and a second later with the default setting. */
  later = sm_receipts_list (f->alice.receipts, fresh->sent + 3 * 24 * 3600 + 1, f->alice.config->receipt_overdue_s,
                            &error);
  g_assert_no_error (error);
  g_assert_cmpint (((SmReceiptRow *) later->pdata[0])->status, ==, SM_RECEIPT_OVERDUE);
}

/* The database: WAL, versioned, private. */
static void
test_database (Fixture *f, gconstpointer data)
{
  g_autofree char *db = g_strdup_printf ("%s/alice-state.db", f->dir);
  GStatBuf st;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmReceipts) again = NULL;
  g_autofree char *wal = g_strdup_printf ("%s-wal", db);

  g_assert_cmpint (g_stat (db, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (g_file_test (wal, G_FILE_TEST_EXISTS));
  again = sm_receipts_new (db, NULL, &error);
  g_assert_no_error (error);
  /* A newer schema is refused, not misread. */
  g_clear_object (&again);
  {
    const char *argv[] = { "/usr/bin/python3", "-c",
                           "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version = 99');"
                           " c.commit()", db, NULL };
    run (NULL, NULL, argv);
  }
  again = sm_receipts_new (db, NULL, &error);
  g_assert_error (error, SM_ERROR, SM_ERROR_FAILED);
  g_assert_null (again);
  g_assert_nonnull (strstr (error->message, "newer"));
}

/* Both families' micalg spellings name one digest; MD5 and unknown names
 * are not accepted. */
static void
test_micalg_names (void)
{
  static const struct { const char *name; gboolean ok; GChecksumType type; const char *canonical; } cases[] = {
    { "sha-256", TRUE, G_CHECKSUM_SHA256, "sha-256" },
    { "PGP-SHA256", TRUE, G_CHECKSUM_SHA256, "sha-256" },
    { "sha256", TRUE, G_CHECKSUM_SHA256, "sha-256" },
    { "pgp-sha512", TRUE, G_CHECKSUM_SHA512, "sha-512" },
    { "sha-384", TRUE, G_CHECKSUM_SHA384, "sha-384" },
    { "sha1", TRUE, G_CHECKSUM_SHA1, "sha-1" },
    { "md5", FALSE, 0, NULL },
    { "sha-256x", FALSE, 0, NULL },
    { "", FALSE, 0, NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      GChecksumType type = G_CHECKSUM_MD5;
      const char *canonical = NULL;

      g_assert_cmpint (sm_secure_view_micalg_lookup (cases[i].name, &type, &canonical), ==, cases[i].ok);
      if (cases[i].ok)
        {
          g_assert_cmpint (type, ==, cases[i].type);
          g_assert_cmpstr (canonical, ==, cases[i].canonical);
        }
    }
}

int
main (int argc, char **argv)
{
  const char *script = g_getenv ("SM_TEST_CA_SCRIPT");
  g_autoptr(GError) error = NULL;
  const char *alice_others[] = { "bob", NULL };
  const char *bob_others[] = { "alice", NULL };
  const char *eve_others[] = { "alice", NULL };
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (script == NULL)
    {
      g_printerr ("SM_TEST_CA_SCRIPT must be set (run through meson test)\n");
      return 1;
    }
  g_setenv ("SECUREMAIL_POLICY", "/nonexistent/policy.conf", TRUE);
  tmp = g_dir_make_tmp ("smrcpt-homes-XXXXXX", &error);
  g_assert_no_error (error);
  ca_dir = g_build_filename (tmp, "ca", NULL);
  {
    const char *init[] = { script, "init", ca_dir, NULL };
    run (NULL, NULL, init);
  }
  issue_eve ();
  alice_store = new_store ("alice", alice_others);
  bob_store = new_store ("bob", bob_others);
  eve_store = new_store ("eve", eve_others);

  g_test_add_func ("/proxy/receipts/micalg-names", test_micalg_names);
#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/proxy/receipts/request", test_request);
  ADD ("/proxy/receipts/round-trip", test_round_trip);
  ADD ("/proxy/receipts/at-most-once", test_at_most_once);
  ADD ("/proxy/receipts/not-verified", test_not_verified);
  for (gsize i = 0; i < G_N_ELEMENTS (reject_cases); i++)
    g_test_add (reject_cases[i].path, Fixture, &reject_cases[i], fixture_setup, test_reject, fixture_teardown);
  ADD ("/proxy/receipts/reject/unknown-message", test_unknown_message);
  ADD ("/proxy/receipts/overdue", test_overdue);
  ADD ("/proxy/receipts/database", test_database);
#undef ADD
  rc = g_test_run ();

  for (SmCertstore **s = (SmCertstore *[]) { alice_store, bob_store, eve_store, NULL }; *s; s++)
    sm_certstore_shutdown_agent (*s);
  g_clear_object (&alice_store);
  g_clear_object (&bob_store);
  g_clear_object (&eve_store);
  nftw (tmp, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
  secret_service_disconnect ();
  g_free (ca_dir);
  g_free (tmp);
  return rc;
}
