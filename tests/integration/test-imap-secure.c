/* test-imap-secure.c: protected messages fetched through the real proxy
 * (issue 4).
 *
 * The messages are made by tools the project does not write — gpgsm,
 * openssl cms/smime and gpg, in tests/proxy/make-crypto-fixtures.sh — for
 * bob@example.test.  They are APPENDed straight to bob's mailbox at the real
 * Dovecot and fetched through bob's securemail-proxy by python's imaplib and
 * curl.  Bob's key store holds what a user would have: his own S/MIME
 * PKCS#12 and OpenPGP key, the test CA as trust anchor with its CRL, alice's
 * OpenPGP key (given ownertrust here, standing in for a fingerprint check).
 */
#include <string.h>

#include "sm-test-harness.h"

#define SECRET "SWORDFISH"

typedef struct {
  const char *file;
  const char *trust;          /* X-SecureMail-Trust value */
  const char *body;           /* must be in the view, or NULL */
  const char *absent;         /* must not be in the view, or NULL */
} Case;

/* One per trust status and attack class; UID n+1 is cases[n] (appended in
 * this order to a new mailbox). */
static const Case cases[] = {
  { "smime-enveloped-signed.eml", "verified", SECRET, "application/pkcs7-mime" },
  { "smime-detached.eml", "verified", SECRET, "pkcs7-signature" },
  { "smime-opaque-signed.eml", "verified", SECRET, NULL },
  { "smime-encrypted-only.eml", "encrypted-unsigned", SECRET, "application/pkcs7-mime" },
  { "smime-not-for-me.eml", "decrypt-failed", NULL, SECRET },
  { "smime-protected-headers.eml", "verified", "Quarterly numbers", NULL },
  { "smime-detached-altered.eml", "invalid", NULL, NULL },
  { "smime-unknown-ca.eml", "signed-untrusted", SECRET, NULL },
  { "smime-revoked.eml", "invalid", NULL, NULL },
  { "pgp-signed-encrypted.eml", "verified", SECRET, "BEGIN PGP MESSAGE" },
  { "pgp-encrypted-only.eml", "encrypted-unsigned", SECRET, "BEGIN PGP MESSAGE" },
  { "pgp-signed.eml", "verified", SECRET, "BEGIN PGP SIGNATURE" },
  { "pgp-signed-then-encrypted.eml", "verified", SECRET, "BEGIN PGP MESSAGE" },
  { "pgp-no-mdc.eml", "decrypt-failed", NULL, SECRET },
  { "smime-mismatch.eml", "signer-mismatch", NULL, NULL },
  { "pgp-mismatch.eml", "signer-mismatch", NULL, NULL },
  { "smime-two-from.eml", "signer-mismatch", NULL, NULL },
  { "smime-zero-signers.eml", "invalid", NULL, NULL },
  { "wrapped-signed.eml", "unprotected", "You are fired.", "[Verified]" },
  { "efail.eml", "unprotected", "evil.test", SECRET },
};

static char *fixtures;        /* make-crypto-fixtures.sh output */
static SmTestProxy *bob;      /* bob's proxy, shared by the tests */
static char *store_home;      /* bob's certstore GnuPG home */

/* Shared python: a login through the proxy and a direct one to Dovecot. */
#define PY_PRELUDE \
  "import imaplib, sys, re, base64, json\n" \
  "port, user, pw, direct, box = sys.argv[1:6]\n" \
  "def proxy():\n" \
  "    m = imaplib.IMAP4('127.0.0.1', int(port)); m.login(user, pw); return m\n" \
  "def dovecot():\n" \
  "    m = imaplib.IMAP4('127.0.0.1', int(direct)); m.login('bob', 'pass'); return m\n" \
  "def parts(d):\n" \
  "    return [x for x in d if isinstance(x, tuple)]\n"

static char *
port_str (guint16 port)
{
  return g_strdup_printf ("%u", port);
}

/* Runs @script (PY_PRELUDE first) with the proxy's port, bob's login, the
 * stack's IMAP port and @box as its arguments, then @extra (may be NULL). */
static int
run_py (const char *script, char **out, char **err, const char *box, const char * const *extra)
{
  g_autofree char *port = port_str (bob->imap_port);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, (gpointer) "/usr/bin/python3");
  g_ptr_array_add (argv, (gpointer) "-c");
  g_ptr_array_add (argv, (gpointer) script);
  g_ptr_array_add (argv, port);
  g_ptr_array_add (argv, bob->address);
  g_ptr_array_add (argv, bob->local_password);
  g_ptr_array_add (argv, (gpointer) sm_test_env ("SM_TEST_IMAP_PORT"));
  g_ptr_array_add (argv, (gpointer) box);
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);
  return sm_test_run ((const char * const *) argv->pdata, NULL, NULL, out, err);
}

static int
py (const char *script, char **out, char **err, const char *box, ...)
{
  g_autoptr(GPtrArray) extra = g_ptr_array_new ();
  va_list ap;
  const char *a;

  va_start (ap, box);
  while ((a = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (extra, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (extra, NULL);
  return run_py (script, out, err, box, (const char * const *) extra->pdata);
}

/* Runs @script like py() and returns its output; when it fails, fails
 * the test with what it and the proxy said. */
static char *
py_ok (const char *what, const char *script, const char *box)
{
  g_autofree char *err = NULL;
  char *out = NULL;

  if (py (script, &out, &err, box, NULL) != 0)
    {
      g_autofree char *log = NULL;
      g_file_get_contents (bob->log_path, &log, NULL, NULL);
      g_error ("%s failed: %s\n%s\nproxy log:\n%s", what, err, out, log);
    }
  return out;
}

/* A new mailbox at Dovecot holding @files (fixture names), in order. */
static char *
new_mailbox (const char * const *files)
{
  static guint n;
  static const char script[] = PY_PRELUDE
    "d = dovecot()\n"
    "typ, r = d.create(box); assert typ == 'OK', r\n"
    "for f in sys.argv[6:]:\n"
    "    typ, r = d.append(box, None, None, open(f, 'rb').read()); assert typ == 'OK', r\n"
    "print('APPENDED', len(sys.argv[6:]))\n";
  /* The time too: a stack that lives through many runs sees pids again. */
  char *box = g_strdup_printf ("secure-%d-%" G_GINT64_FORMAT "-%u", (int) getpid (), g_get_real_time (), ++n);
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int rc;

  for (guint i = 0; files[i]; i++)
    g_ptr_array_add (paths, g_build_filename (fixtures, files[i], NULL));
  g_ptr_array_add (paths, NULL);
  rc = run_py (script, &out, &err, box, (const char * const *) paths->pdata);
  if (rc != 0)
    g_test_message ("append: %s", err);
  g_assert_cmpint (rc, ==, 0);
  return box;
}

static gboolean
have_setup (void)
{
  if (bob == NULL)
    {
      g_test_skip ("no mail stack");
      return FALSE;
    }
  return TRUE;
}

static char *
header_value (const char *message, const char *name)
{
  g_autofree char *needle = g_strdup_printf ("\r\n%s: ", name);
  const char *p = strstr (message, needle);
  const char *end;

  if (p == NULL)
    return NULL;
  p += strlen (needle);
  end = strstr (p, "\r\n");
  return g_strndup (p, end ? (gsize) (end - p) : strlen (p));
}

/* Every case fetched in one UID FETCH 1:* (a mixed set), checked against
 * its expected trust; RFC822.SIZE must match the served bytes. */
static void
test_trust_of_every_case (void)
{
  static const char script[] = PY_PRELUDE
    "m = proxy(); typ, r = m.select(box); assert typ == 'OK', r\n"
    "typ, d = m.uid('FETCH', '1:*', '(RFC822.SIZE BODY.PEEK[])')\n"
    "assert typ == 'OK', d\n"
    "out = {}\n"
    "for meta, body in parts(d):\n"
    "    uid = int(re.search(rb'UID (\\d+)', meta).group(1))\n"
    "    size = int(re.search(rb'RFC822.SIZE (\\d+)', meta).group(1))\n"
    "    out[uid] = {'size': size, 'len': len(body), 'body': base64.b64encode(body).decode()}\n"
    "print(json.dumps(out))\n";
  g_autoptr(GPtrArray) files = g_ptr_array_new ();
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;

  if (!have_setup ())
    return;
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_ptr_array_add (files, (gpointer) cases[i].file);
  g_ptr_array_add (files, NULL);
  box = new_mailbox ((const char * const *) files->pdata);
  out = py_ok ("fetch", script, box);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const Case *c = &cases[i];
      g_autofree char *key = g_strdup_printf ("\"%u\": {\"size\": ", i + 1);
      const char *entry = strstr (out, key);
      const char *b64, *end;
      g_autofree char *b64s = NULL;
      g_autofree guchar *raw = NULL;
      gsize raw_len = 0;
      g_autofree char *msg = NULL;
      g_autofree char *trust = NULL;
      guint64 size;

      g_test_message ("%s", c->file);
      g_assert_nonnull (entry);
      size = g_ascii_strtoull (entry + strlen (key), NULL, 10);
      b64 = strstr (entry, "\"body\": \"") + 9;
      end = strchr (b64, '"');
      b64s = g_strndup (b64, (gsize) (end - b64));
      raw = g_base64_decode (b64s, &raw_len);
      msg = g_strndup ((const char *) raw, raw_len);
      g_assert_cmpuint (size, ==, raw_len);
      trust = header_value (msg, "X-SecureMail-Trust");
      if (g_strcmp0 (trust, c->trust) != 0)
        {
          g_autofree char *log = NULL;

          g_file_get_contents (bob->log_path, &log, NULL, NULL);
          g_test_message ("served:\n%s\nproxy log:\n%s", msg, log);
        }
      g_assert_cmpstr (trust, ==, c->trust);
      if (c->body)
        g_assert_nonnull (strstr (msg, c->body));
      if (c->absent)
        g_assert_null (strstr (msg, c->absent));
      /* Exactly one trust field: a forged copy never survives. */
      g_assert_null (strstr (strstr (msg, "X-SecureMail-Trust:") + 1, "X-SecureMail-Trust:"));
    }

  /* The daemon lists what it decrypted for the tray and the CLI (issue 6),
   * with the decrypted (protected) Subject. */
  {
    g_autofree char *list = NULL;
    g_autofree char *lerr = NULL;

    g_assert_cmpint (sm_test_cli (bob, NULL, &list, &lerr, "messages", "--limit", "0", "--json", NULL), ==, 0);
    g_assert_nonnull (strstr (list, "\"Quarterly numbers\""));
    g_assert_nonnull (strstr (list, "\"trust\" : \"verified\""));
    g_assert_nonnull (strstr (list, "\"trust\" : \"signer-mismatch\""));
    g_assert_nonnull (strstr (list, box));
  }
}

/* The same message through every FETCH item form gives consistent bytes,
 * in a second session (served from the cache) too. */
static void
test_items_consistent (void)
{
  static const char script[] = PY_PRELUDE
    "def grab(m, items, seq=False):\n"
    "    f = m.fetch if seq else (lambda s, i: m.uid('FETCH', s, i))\n"
    "    typ, d = f('1', items); assert typ == 'OK', d\n"
    "    return parts(d)\n"
    "m = proxy(); m.select(box)\n"
    "full = grab(m, '(BODY.PEEK[])')[0][1]\n"
    "hdr = grab(m, '(BODY.PEEK[HEADER])')[0][1]\n"
    "text = grab(m, '(BODY.PEEK[TEXT])')[0][1]\n"
    "assert hdr + text == full, 'header+text'\n"
    "part = grab(m, '(BODY.PEEK[]<0.100>)')[0][1]\n"
    "assert part == full[:100], 'partial'\n"
    "rfc = grab(m, '(RFC822.HEADER)')[0][1]\n"
    "assert rfc == hdr, 'rfc822.header'\n"
    "seqfull = grab(m, '(BODY.PEEK[])', seq=True)[0][1]\n"
    "assert seqfull == full, 'by sequence number'\n"
    "typ, d = m.uid('FETCH', '1', '(BODYSTRUCTURE ENVELOPE FLAGS)'); assert typ == 'OK', d\n"
    "bs = d[0] if isinstance(d[0], bytes) else d[0][0]\n"
    "print('BODYSTRUCTURE', bs.decode('utf-8', 'replace'))\n"
    "m2 = proxy(); m2.select(box)\n"
    "again = grab(m2, '(BODY.PEEK[])')[0][1]\n"
    "assert again == full, 'second session'\n"
    "print('CONSISTENT', len(full))\n"
    "print('FLAGS-BEFORE', b'\\\\Seen' in bs)\n"
    "typ, d = m.uid('FETCH', '1', '(BODY[TEXT])'); assert typ == 'OK', d\n"
    "print('TEXT-FLAGS', b'\\\\Seen' in b' '.join(x[0] if isinstance(x, tuple) else x for x in d))\n"
    "dv = dovecot(); dv.select(box)\n"
    "typ, d = dv.uid('FETCH', '1', '(FLAGS)')\n"
    "print('UPSTREAM-SEEN', b'\\\\Seen' in d[0])\n";
  static const char * const files[] = { "pgp-signed-encrypted.eml", NULL };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  if (py (script, &out, &err, box, NULL) != 0)
    g_error ("consistency failed: %s\n%s", err, out);
  g_assert_nonnull (strstr (out, "CONSISTENT"));
  /* The view is a plain text message now, not multipart/encrypted. */
  g_assert_nonnull (strstr (out, "BODYSTRUCTURE"));
  g_assert_null (strstr (out, "\"encrypted\""));
  g_assert_nonnull (strstr (out, "FLAGS-BEFORE False"));
  /* BODY[TEXT] without PEEK sets \Seen upstream and says so (RFC 9051 §6.4.5). */
  g_assert_nonnull (strstr (out, "TEXT-FLAGS True"));
  g_assert_nonnull (strstr (out, "UPSTREAM-SEEN True"));
}

/* An unprotected message passes through byte for byte. */
static void
test_plain_untouched (void)
{
  static const char script[] = PY_PRELUDE
    "d = dovecot()\n"
    "msg = b'From: carol@example.test\\r\\nTo: bob@example.test\\r\\nSubject: plain\\r\\n\\r\\nHello\\r\\n'\n"
    "typ, r = d.append(box, None, None, msg); assert typ == 'OK', r\n"
    "d.select(box); typ, x = d.uid('FETCH', '1:*', '(BODY.PEEK[] BODYSTRUCTURE)')\n"
    "m = proxy(); m.select(box); typ, y = m.uid('FETCH', '1:*', '(BODY.PEEK[] BODYSTRUCTURE)')\n"
    "assert typ == 'OK', y\n"
    "print('IDENTICAL' if x == y else 'DIFFERENT %r %r' % (x, y))\n";
  static const char * const files[] = { NULL };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  if (py (script, &out, &err, box, NULL) != 0)
    g_error ("plain failed: %s", err);
  g_assert_nonnull (strstr (out, "IDENTICAL"));
}

/* curl, an IMAP client we did not write, reads the decrypted message. */
static void
test_curl (void)
{
  static const char * const files[] = { "smime-enveloped-signed.eml", NULL };
  g_autofree char *box = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  url = g_strdup_printf ("imap://127.0.0.1:%u/%s;UID=1", bob->imap_port, box);
  user = g_strdup_printf ("%s:%s", bob->address, bob->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "30", url, "-u", user, NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, &err), ==, 0);
  }
  g_assert_nonnull (strstr (out, "X-SecureMail-Trust: verified"));
  g_assert_nonnull (strstr (out, SECRET));
  g_assert_null (strstr (out, "pkcs7-mime"));
  /* The signer's certificate subject as a person reads it, not gpgsm's
   * OID-and-hex form of the e-mail attribute. */
  g_assert_nonnull (strstr (out, "X-SecureMail-Signer: alice@example.test (EMail=alice@example.test,CN=alice"));
}

/* A client's copy of a sent message (APPEND to Sent) reaches the provider
 * signed and encrypted to the user's own key, and reads back decrypted. */
static void
test_append_sent (void)
{
  static const char script[] = PY_PRELUDE
    "sent = box + '-Sent'\n"
    "msg = (b'From: bob@example.test\\r\\nTo: alice@example.test\\r\\nSubject: kept copy\\r\\n'\n"
    "       b'Message-ID: <kept-' + box.encode() + b'@example.test>\\r\\n\\r\\nThe code is ' + sys.argv[6].encode() + b'\\r\\n')\n"
    "m = proxy()\n"
    "typ, d = m.create(sent); assert typ == 'OK', d\n"
    "typ, d = m.append(sent, None, None, msg); assert typ == 'OK', d\n"
    "dv = dovecot(); dv.select(sent)\n"
    "typ, d = dv.uid('FETCH', '1:*', '(BODY.PEEK[])')\n"
    "stored = parts(d)[0][1]\n"
    "print('STORED-PLAIN', sys.argv[6].encode() in stored)\n"
    "print('STORED-CMS', b'application/pkcs7-mime' in stored)\n"
    "m.select(sent)\n"
    "typ, d = m.uid('FETCH', '1:*', '(BODY.PEEK[])')\n"
    "view = parts(d)[0][1].decode('utf-8', 'replace')\n"
    "print('VIEW-PLAIN', sys.argv[6] in view)\n"
    "print('VIEW', [l for l in view.split('\\r\\n') if l.startswith('X-SecureMail')])\n";
  static const char * const files[] = { NULL };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *code = g_strdup_printf ("KEPT-%u", g_random_int ());

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  if (py (script, &out, &err, box, code, NULL) != 0)
    g_error ("append failed: %s\n%s", err, out);
  g_test_message ("%s", out);
  g_assert_nonnull (strstr (out, "STORED-PLAIN False"));
  g_assert_nonnull (strstr (out, "STORED-CMS True"));
  g_assert_nonnull (strstr (out, "VIEW-PLAIN True"));
  g_assert_nonnull (strstr (out, "X-SecureMail-Trust: verified"));
  g_assert_nonnull (strstr (out, "X-SecureMail-Encrypted: yes"));
}

/* The unlock gate (issue 7): locked, a protected message is refused with
 * NO [UNAVAILABLE], never served as ciphertext, not even from the view
 * cache; unlocked again, it is served.  And with the gate open, a
 * gpg-agent that lost the passphrases (restarted, here reloaded) gets them
 * from the keyring again instead of the user seeing "locked". */
static void
test_locked (void)
{
  static const char script[] = PY_PRELUDE
    "m = proxy(); m.select(box)\n"
    "try:\n"
    "    typ, d = m.uid('FETCH', '1', '(BODY.PEEK[])')\n"
    "    print('RESULT', typ, d)\n"
    "except Exception as e:\n"
    "    print('ERROR', e)\n";
  /* Bob's S/MIME key got a generated passphrase at import, kept in the
   * keyring. */
  static const char * const files[] = { "smime-encrypted-only.eml", NULL };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *o2 = NULL;
  g_autofree char *o3 = NULL;
  g_autofree char *err = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  {
    /* What an agent restart does: every preset passphrase is gone. */
    const char *argv[] = { "gpgconf", "--homedir", store_home, "--reload", "gpg-agent", NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, NULL, NULL, NULL), ==, 0);
  }
  g_assert_cmpint (py (script, &out, &err, box, NULL), ==, 0);
  g_test_message ("after the agent lost the passphrases: %s", out);
  g_assert_nonnull (strstr (out, "RESULT OK"));
  g_assert_nonnull (strstr (out, SECRET));

  g_assert_cmpint (sm_test_cli (bob, NULL, NULL, NULL, "lock", NULL), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (py (script, &o2, &err, box, NULL), ==, 0);
  g_test_message ("locked: %s", o2);
  g_assert_nonnull (strstr (o2, "RESULT NO"));
  g_assert_nonnull (strstr (o2, "UNAVAILABLE"));
  g_assert_nonnull (strstr (o2, "unlock"));
  g_assert_null (strstr (o2, SECRET));
  g_assert_null (strstr (o2, "pkcs7"));
  g_assert_cmpint (sm_test_cli (bob, "", NULL, NULL, "unlock", NULL), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (py (script, &o3, &err, box, NULL), ==, 0);
  g_assert_nonnull (strstr (o3, "RESULT OK"));
  g_assert_nonnull (strstr (o3, SECRET));
}

/* SEARCH in decrypted text (issue 4): protected messages are found by
 * their views once the proxy has served them, and no longer by their
 * ciphertext container; plain messages are still found by the provider;
 * NOT/OR, UID SEARCH, sequence numbers after EXPUNGE, ESEARCH, a literal
 * search string, a second session; malformed criteria get BAD; locked,
 * NO [UNAVAILABLE]. */
static void
test_search (void)
{
  static const char script[] = PY_PRELUDE
    "def us(m, *crit):\n"
    "    typ, d = m.uid('SEARCH', *crit); assert typ == 'OK', d\n"
    "    return d[0].decode()\n"
    "def ss(m, *crit):\n"
    "    typ, d = m.search(None, *crit); assert typ == 'OK', d\n"
    "    return d[0].decode()\n"
    "dv = dovecot()\n"
    "plain = b'From: carol@example.test\\r\\nTo: bob@example.test\\r\\nSubject: plain note\\r\\n\\r\\nPLAINWORD and SWORDFISH\\r\\n'\n"
    "typ, r = dv.append(box, None, None, plain); assert typ == 'OK', r\n"
    "m = proxy(); typ, r = m.select(box); assert typ == 'OK', r\n"
    "typ, c = m.capability(); caps = c[0].decode().upper().split()\n"
    "print('CAPS', ' '.join(caps))\n"
    "print('BEFORE-BODY', us(m, 'BODY', 'SWORDFISH'))\n"
    "print('BEFORE-CONTAINER', us(m, 'TEXT', 'smime.p7m'))\n"
    "print('BEFORE-OUTER-SUBJECT', us(m, 'SUBJECT', '\"[...]\"'))\n"
    "typ, d = m.uid('FETCH', '1:*', '(BODY.PEEK[])'); assert typ == 'OK', d\n"
    "print('BODY', us(m, 'BODY', 'SWORDFISH'))\n"
    "print('SEQ-BODY', ss(m, 'BODY', 'swordfish'))\n"
    "print('CONTAINER', us(m, 'TEXT', 'smime.p7m'))\n"
    "print('HEADER-CT', us(m, 'HEADER', 'Content-Type', 'pkcs7'))\n"
    "print('SUBJECT', us(m, 'SUBJECT', 'quarterly'))\n"
    "print('OUTER-SUBJECT', us(m, 'SUBJECT', '\"[...]\"'))\n"
    "print('TEXT', us(m, 'TEXT', '\"numbers are fine\"'))\n"
    "print('TRUST', us(m, 'HEADER', 'X-SecureMail-Trust', 'verified'))\n"
    "print('NOT', us(m, 'NOT', 'BODY', 'SWORDFISH'))\n"
    "print('OR', us(m, 'OR', 'SUBJECT', 'Quarterly', 'BODY', 'PLAINWORD'))\n"
    "print('NESTED', us(m, '(OR BODY nothing-at-all (NOT (SUBJECT plain)))', 'BODY', 'SWORDFISH'))\n"
    "print('FLAGS-TOO', us(m, 'UNSEEN', 'BODY', 'SWORDFISH', 'UID', '2:*'))\n"
    "m.literal = 'Swordfish'.encode()\n"
    "print('LITERAL', us(m, 'CHARSET', 'UTF-8', 'BODY'))\n"
    "if 'ESEARCH' in caps:\n"
    "    typ, d = m._simple_command('UID', 'SEARCH', 'RETURN', '(MIN MAX COUNT ALL)', 'BODY', 'SWORDFISH')\n"
    "    assert typ == 'OK', d\n"
    "    print('ESEARCH', m.response('ESEARCH')[1][0].decode())\n"
    "try:\n"
    "    typ, d = m.uid('SEARCH', '(BODY', 'x')\n"
    "    print('MALFORMED', typ, d)\n"
    "except imaplib.IMAP4.error as e:\n"
    "    print('MALFORMED BAD', e)\n"
    "typ, d = m.uid('STORE', '1', '+FLAGS.SILENT', '(\\\\Deleted)'); assert typ == 'OK', d\n"
    "typ, d = m.expunge(); assert typ == 'OK', d\n"
    "print('AFTER-EXPUNGE-SEQ', ss(m, 'BODY', 'SWORDFISH'))\n"
    "print('AFTER-EXPUNGE-UID', us(m, 'BODY', 'SWORDFISH'))\n"
    "m2 = proxy(); m2.select(box)\n"
    "print('SECOND-SESSION', us(m2, 'BODY', 'SWORDFISH'))\n";
  static const char locked_script[] = PY_PRELUDE
    "m = proxy(); m.select(box)\n"
    "typ, d = m.uid('SEARCH', 'BODY', 'SWORDFISH'); print('LOCKED-BODY', typ, d)\n"
    "typ, d = m.uid('SEARCH', 'ALL'); print('LOCKED-ALL', typ, d)\n";
  /* UID 1, 2, 3 protected (SWORDFISH in 1 and 3; 2 has the protected
   * Subject "Quarterly numbers" under an outer "[...]"), UID 4 plain. */
  static const char * const files[] = { "smime-enveloped-signed.eml", "smime-protected-headers.eml",
                                        "pgp-signed-encrypted.eml", NULL };
  static const char * const expected[] = {
    "BEFORE-BODY 4\n",                  /* the provider sees only ciphertext */
    "BEFORE-CONTAINER 1 2\n",           /* ... and the S/MIME container */
    "BEFORE-OUTER-SUBJECT 2\n",
    "BODY 1 3 4\n",
    "SEQ-BODY 1 3 4\n",
    "CONTAINER \n",                     /* the view has no container */
    "HEADER-CT \n",
    "SUBJECT 2\n",                      /* RFC 9788 protected Subject */
    "OUTER-SUBJECT \n",
    "TEXT 2\n",
    "TRUST 1 2 3\n",                    /* what the client sees is searched */
    "NOT 2\n",
    "OR 2 4\n",
    "NESTED 1 3\n",
    "FLAGS-TOO 3 4\n",
    "LITERAL 1 3 4\n",
    "MALFORMED BAD",
    "AFTER-EXPUNGE-SEQ 2 3\n",          /* UIDs 3 and 4 are messages 2 and 3 now */
    "AFTER-EXPUNGE-UID 3 4\n",
    "SECOND-SESSION 3 4\n",
  };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *o2 = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  out = py_ok ("search", script, box);
  g_test_message ("%s", out);
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    if (strstr (out, expected[i]) == NULL)
      g_error ("expected \"%s\" in:\n%s", expected[i], out);
  if (strstr (out, "CAPS") && strstr (strstr (out, "CAPS"), " ESEARCH"))
    g_assert_nonnull (strstr (out, "ESEARCH (TAG \""));
  if (strstr (out, "ESEARCH (TAG \""))
    {
      /* The client's tag and RETURN options, answered by the provider. */
      const char *es = strstr (out, "ESEARCH (TAG \"");
      g_autofree char *line = g_strndup (es, strcspn (es, "\n"));

      g_assert_nonnull (strstr (line, " UID "));
      g_assert_nonnull (strstr (line, " MIN 1"));
      g_assert_nonnull (strstr (line, " MAX 4"));
      g_assert_nonnull (strstr (line, " COUNT 3"));
      g_assert_nonnull (strstr (line, " ALL 1,3:4"));
    }
  /* Nothing the user searched for reaches the log. */
  {
    g_autofree char *log = NULL;
    g_assert_true (g_file_get_contents (bob->log_path, &log, NULL, NULL));
    g_assert_null (strstr (log, "PLAINWORD"));
    g_assert_null (strstr (log, "quarterly"));
  }

  /* Locked: the text of protected messages cannot be read, so such a
   * SEARCH is refused rather than answered from ciphertext. */
  g_assert_cmpint (sm_test_cli (bob, NULL, NULL, NULL, "lock", NULL), ==, 0);
  g_assert_cmpint (py (locked_script, &o2, &err, box, NULL), ==, 0);
  g_assert_cmpint (sm_test_cli (bob, "", NULL, NULL, "unlock", NULL), ==, 0);
  g_test_message ("locked: %s", o2);
  g_assert_nonnull (strstr (o2, "LOCKED-BODY NO"));
  g_assert_nonnull (strstr (o2, "UNAVAILABLE"));
  g_assert_nonnull (strstr (o2, "unlock"));
  g_assert_nonnull (strstr (o2, "LOCKED-ALL OK [b'2 3 4']"));
}

/* A gpg-agent that stops answering (here stopped with SIGSTOP; gpg-agent
 * 2.2.40 was seen to wedge like that under load) must not stall the
 * decryptions behind it for ever: the proxy's watchdog finds the agent
 * silent, replaces it, hands the new one the passphrases and decrypts. */
static void
test_agent_wedged (void)
{
  static const char script[] = PY_PRELUDE
    "import socket, struct, os, signal, time, subprocess\n"
    "home = sys.argv[6]\n"
    "path = subprocess.check_output(['gpgconf', '--homedir', home, '--list-dirs', 'agent-socket'],\n"
    "                               text=True).strip()\n"
    "subprocess.run(['gpg-connect-agent', '--homedir', home, '/bye'], check=True, capture_output=True)\n"
    "def agent_pid():\n"
    "    # The process holding the listening socket: the agent forks after\n"
    "    # binding, and other processes may name the same home.\n"
    "    inode = None\n"
    "    for line in open('/proc/net/unix').read().splitlines()[1:]:\n"
    "        f = line.split()\n"
    "        if len(f) >= 8 and f[7] == path and f[5] == '01':\n"
    "            inode = f[6]\n"
    "    want = 'socket:[%s]' % inode\n"
    "    for p in os.listdir('/proc'):\n"
    "        if not p.isdigit():\n"
    "            continue\n"
    "        try:\n"
    "            if any(os.readlink('/proc/%s/fd/%s' % (p, fd)) == want for fd in os.listdir('/proc/%s/fd' % p)):\n"
    "                return int(p)\n"
    "        except OSError:\n"
    "            continue\n"
    "def agent():\n"
    "    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(path)\n"
    "    pid = agent_pid()\n"
    "    try:\n"
    "        greeting = s.recv(100)\n"
    "    except socket.timeout:\n"
    "        greeting = b''\n"
    "    s.close(); return pid, greeting\n"
    "old, greeting = agent()\n"
    "print('OLD-GREETING', greeting[:2], 'PID', old)\n"
    "os.kill(old, signal.SIGSTOP)\n"
    "print('STOPPED-GREETING', agent()[1][:2])\n"
    "socket.setdefaulttimeout(120)   # without the watchdog: a timeout, not a hung test\n"
    "t0 = time.time()\n"
    "m = proxy(); m.select(box)\n"
    "typ, d = m.uid('FETCH', '1', '(BODY.PEEK[])')\n"
    "body = parts(d)[0][1] if parts(d) else b''\n"
    "print('RESULT', typ, b'" SECRET "' in body, b'X-SecureMail-Trust: encrypted-unsigned' in body)\n"
    "print('ELAPSED', int(time.time() - t0))\n"
    "try:\n"
    "    state = open('/proc/%d/stat' % old).read().rsplit(')', 1)[1].split()[0]\n"
    "except FileNotFoundError:\n"
    "    state = 'gone'\n"
    "print('OLD-STATE', state)\n"
    "if state not in ('gone', 'Z', 'X'):\n"
    "    os.kill(old, signal.SIGCONT)\n"
    "new, greeting = agent()\n"
    "print('NEW-AGENT', new != old, greeting[:2])\n";
  static const char * const files[] = { "smime-encrypted-only.eml", NULL };
  g_autofree char *box = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *log = NULL;

  if (!have_setup ())
    return;
  box = new_mailbox (files);
  if (py (script, &out, &err, box, store_home, NULL) != 0)
    g_error ("the agent script failed: %s\n%s", out, err);
  g_test_message ("%s", out);
  g_assert_nonnull (strstr (out, "OLD-GREETING b'OK' PID "));
  g_assert_nonnull (strstr (out, "STOPPED-GREETING b''"));
  g_assert_nonnull (strstr (out, "RESULT OK True True"));
  g_assert_null (strstr (out, "OLD-STATE T"));   /* still stopped: the watchdog did nothing */
  g_assert_nonnull (strstr (out, "NEW-AGENT True b'OK'"));
  g_assert_true (g_file_get_contents (bob->log_path, &log, NULL, NULL));
  g_assert_nonnull (strstr (log, "has not answered"));
  g_assert_null (strstr (log, SECRET));
}

/* Bob's proxy and key store, once for the whole binary. */
static void
setup_bob (void)
{
  g_autofree char *upstream = NULL;
  g_autofree char *fpr = NULL;
  g_autofree char *ownertrust = NULL;
  g_autofree char *p = NULL;
  const char *script = g_getenv ("SM_FIXTURES_SCRIPT");
  GError *error = NULL;

  g_assert_nonnull (script);
  fixtures = g_dir_make_tmp ("sm-secure-fixtures-XXXXXX", &error);
  g_assert_no_error (error);
  {
    const char *argv[] = { "sh", script, fixtures, NULL };
    g_autofree char *err = NULL;
    if (sm_test_run (argv, NULL, NULL, NULL, &err) != 0)
      g_error ("make-crypto-fixtures.sh failed: %s", err);
  }
  upstream = sm_test_upstream_section ("bob");
  /* Our own [crypto]: the harness then makes no key; bob's come from the fixtures. */
  bob = sm_test_proxy_start ("bob@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"),
                             "[crypto]\nprotocol = smime\nsubject_tags = off\n");
  store_home = g_build_filename (bob->data_home, "securemail", "gnupg", NULL);
  /* Cheap key stretching (reference/test-stack.md §5) is the certstore's
   * default; writing gpg-agent.conf under the running proxy would race with
   * the agent it starts. */

  p = g_build_filename (fixtures, "ca", "bob-legacy.p12", NULL);
  g_free (sm_test_cli_ok (bob, "p12pass\n", "keys", "import", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "pgp-bob-secret.asc", NULL);
  g_free (sm_test_cli_ok (bob, "\n", "keys", "import", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "ca", "ca.pem", NULL);
  g_free (sm_test_cli_ok (bob, NULL, "certs", "trust", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "ca", "ca.crl", NULL);
  g_free (sm_test_cli_ok (bob, NULL, "certs", "import", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "pgp-alice-public.asc", NULL);
  g_free (sm_test_cli_ok (bob, NULL, "certs", "import", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "pgp-mallory-public.asc", NULL);
  g_free (sm_test_cli_ok (bob, NULL, "certs", "import", p, NULL));
  g_free (p);
  p = g_build_filename (fixtures, "pgp-alice.fpr", NULL);
  g_assert_true (g_file_get_contents (p, &fpr, NULL, NULL));
  g_strstrip (fpr);
  ownertrust = g_strdup_printf ("%s:6:\n", fpr);
  {
    const char *argv[] = { "gpg", "--homedir", store_home, "--batch", "--import-ownertrust", NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, ownertrust, NULL, NULL), ==, 0);
  }
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("SM_TEST_IMAP_PORT") != NULL)
    setup_bob ();
  g_test_add_func ("/proxy/imap/secure/trust-of-every-case", test_trust_of_every_case);
  g_test_add_func ("/proxy/imap/secure/items-consistent", test_items_consistent);
  g_test_add_func ("/proxy/imap/secure/plain-untouched", test_plain_untouched);
  g_test_add_func ("/proxy/imap/secure/curl", test_curl);
  g_test_add_func ("/proxy/imap/secure/append-sent", test_append_sent);
  g_test_add_func ("/proxy/imap/secure/locked", test_locked);
  g_test_add_func ("/proxy/imap/secure/search", test_search);
  g_test_add_func ("/proxy/imap/secure/agent-wedged", test_agent_wedged);
  rc = g_test_run ();
  if (bob != NULL)
    {
      const char *argv2[] = { "gpgconf", "--homedir", store_home, "--kill", "all", NULL };
      sm_test_run (argv2, NULL, NULL, NULL, NULL);
      sm_test_proxy_stop (bob);
      g_clear_pointer (&bob, sm_test_proxy_free);
    }
  if (fixtures != NULL)
    {
      const char *argv3[] = { "rm", "-rf", fixtures, NULL };
      sm_test_run (argv3, NULL, NULL, NULL, NULL);
    }
  return rc;
}
