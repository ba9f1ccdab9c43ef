/* test-imap-e2e.c: IMAP through the real securemail-proxy to the real
 * Dovecot, with independent clients (curl, Python imaplib, raw sockets). */
#include <glib.h>
#include <string.h>

#include "sm-test-harness.h"

/* Bigger than what loopback sockets buffer between the proxy and the test. */
#define SM_TEST_BIG_MESSAGE (12 * 1024 * 1024)

typedef struct {
  SmTestProxy *proxy;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;

  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
}

static char *
port_str (guint16 port)
{
  return g_strdup_printf ("%u", port);
}

static char *
local_cert (SmTestProxy *p)
{
  return g_build_filename (p->data_home, "securemail", "local-tls.pem", NULL);
}

/* curl, an IMAP client we did not write: login and EXAMINE. */
static void
test_curl_login (Fixture *f, gconstpointer data)
{
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int rc;

  if (f->proxy == NULL)
    return;
  url = g_strdup_printf ("imap://127.0.0.1:%u/INBOX", f->proxy->imap_port);
  user = g_strdup_printf ("%s:%s", f->proxy->address, f->proxy->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "20", url, "-u", user, "-X", "EXAMINE INBOX", NULL };
    rc = sm_test_run (argv, NULL, NULL, &out, &err);
  }
  g_assert_cmpint (rc, ==, 0);
  g_assert_nonnull (strstr (out, "UIDVALIDITY"));

  /* The same with STARTTLS, verifying the proxy's own certificate. */
  {
    g_autofree char *ca = local_cert (f->proxy);
    g_autofree char *o2 = NULL;
    const char *argv[] = { "curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", ca, url, "-u", user,
                           "-X", "EXAMINE INBOX", NULL };
    rc = sm_test_run (argv, NULL, NULL, &o2, NULL);
    g_assert_cmpint (rc, ==, 0);
    g_assert_nonnull (strstr (o2, "UIDVALIDITY"));
  }
}

static const char wrong_password_py[] =
  "import imaplib, sys\n"
  "m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n"
  "try:\n"
  "    m.login(sys.argv[2], 'not-the-password')\n"
  "    print('LOGGED-IN')\n"
  "except imaplib.IMAP4.error as e:\n"
  "    print('REFUSED', e)\n"
  "try:\n"
  "    m.login(sys.argv[2], sys.argv[3])\n"   /* the right one still works afterwards */
  "    print('THEN-OK')\n"
  "except imaplib.IMAP4.error as e:\n"
  "    print('THEN-REFUSED', e)\n";

static void
test_wrong_password (Fixture *f, gconstpointer data)
{
  g_autofree char *port = NULL;
  g_autofree char *out = NULL;
  gint64 t0;

  if (f->proxy == NULL)
    return;
  port = port_str (f->proxy->imap_port);
  t0 = g_get_monotonic_time ();
  g_assert_cmpint (sm_test_python (NULL, wrong_password_py, &out, NULL, port, f->proxy->address,
                                   f->proxy->local_password, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "REFUSED"));
  g_assert_nonnull (strstr (out, "AUTHENTICATIONFAILED"));
  g_assert_nonnull (strstr (out, "THEN-OK"));
  /* The failure is delayed (SM_LOGIN_LIMITER_BASE_DELAY_MS = 1.5 s, then longer). */
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 1400 * 1000);

  /* The provider password is not the local one: refused too. */
  {
    g_autofree char *o2 = NULL;
    g_assert_cmpint (sm_test_python (NULL, wrong_password_py, &o2, NULL, port, f->proxy->address,
                                     f->proxy->local_password, NULL), ==, 0);
  }
}

/* APPEND through the proxy, then UID FETCH through the proxy and directly
 * from Dovecot: the three must be byte-identical. */
static const char append_fetch_py[] =
  "import imaplib, ssl, sys, re\n"
  "port, user, pw, cafile, imaps, stack_ca = sys.argv[1:7]\n"
  "ctx = ssl.create_default_context(cafile=cafile)\n"
  "m = imaplib.IMAP4('127.0.0.1', int(port))\n"
  "m.starttls(ssl_context=ctx)\n"            /* verifies the local certificate for 127.0.0.1 */
  "m.login(user, pw)\n"
  "body = ('Grüße, ĀĒĪŌŪ\\r\\n' + '.leading dot\\r\\n' + 'x' * 5000 + '\\r\\n') * 40\n"
  "msg = ('From: alice@example.test\\r\\nTo: bob@example.test\\r\\nSubject: append-test\\r\\n'\n"
  "       'MIME-Version: 1.0\\r\\nContent-Type: text/plain; charset=utf-8\\r\\n'\n"
  "       'Content-Transfer-Encoding: 8bit\\r\\n\\r\\n' + body).encode('utf-8')\n"
  "typ, d = m.append('INBOX', None, None, msg)\n"
  "assert typ == 'OK', d\n"
  "uid = re.search(rb'APPENDUID \\d+ (\\d+)', d[0]).group(1).decode()\n"
  "m.select('INBOX')\n"
  "typ, d = m.uid('FETCH', uid, '(BODY.PEEK[])')\n"
  "via_proxy = d[0][1]\n"
  "d2 = imaplib.IMAP4_SSL('localhost', int(imaps), ssl_context=ssl.create_default_context(cafile=stack_ca))\n"
  "d2.login('alice', 'pass'); d2.select('INBOX')\n"
  "typ, d = d2.uid('FETCH', uid, '(BODY.PEEK[])')\n"
  "direct = d[0][1]\n"
  "print('SIZES', len(msg), len(via_proxy), len(direct))\n"
  "print('IDENTICAL' if msg == via_proxy == direct else 'DIFFERENT')\n"
  "typ, d = m.capability()\n"
  "print('CAPS', d[0].decode())\n"
  "m.logout()\n";

static void
test_append_fetch_identical (Fixture *f, gconstpointer data)
{
  g_autofree char *port = NULL;
  g_autofree char *cafile = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (f->proxy == NULL)
    return;
  port = port_str (f->proxy->imap_port);
  cafile = local_cert (f->proxy);
  g_assert_cmpint (sm_test_python (NULL, append_fetch_py, &out, &err, port, f->proxy->address,
                                   f->proxy->local_password, cafile, sm_test_env ("SM_TEST_IMAPS_PORT"),
                                   sm_test_env ("SM_TEST_CA"), NULL), ==, 0);
  g_assert_nonnull (strstr (out, "IDENTICAL"));
  /* Capabilities after login: the provider's, minus what the proxy cannot relay. */
  g_assert_nonnull (strstr (out, "CAPS IMAP4rev1"));
  g_assert_null (strstr (out, "COMPRESS"));
  g_assert_null (strstr (out, "STARTTLS"));
  g_assert_null (strstr (out, "AUTH="));
  g_assert_nonnull (strstr (out, "IDLE"));
}

/* IDLE through the proxy sees a delivery made directly to Postfix. */
static const char idle_py[] =
  "import imaplib, sys, smtplib, time, socket\n"
  "port, user, pw, smtp_port = sys.argv[1:5]\n"
  "m = imaplib.IMAP4('127.0.0.1', int(port))\n"
  "m.login(user, pw)\n"
  "typ, d = m.select('INBOX')\n"
  "before = int(d[0])\n"
  "tag = m._new_tag().decode()\n"
  "m.send(('%s IDLE\\r\\n' % tag).encode())\n"
  "line = m.readline()\n"
  "assert line.startswith(b'+'), line\n"
  "s = smtplib.SMTP('127.0.0.1', int(smtp_port))\n"
  "s.sendmail('carol@example.test', ['alice@example.test'], b'Subject: idle-wakeup\\r\\n\\r\\nhi\\r\\n')\n"
  "s.quit()\n"
  "m.sock.settimeout(20)\n"
  "seen = None\n"
  "while seen is None:\n"
  "    line = m.readline()\n"
  "    if not line: break\n"
  "    if line.endswith(b'EXISTS\\r\\n'): seen = int(line.split()[1])\n"
  "m.send(b'DONE\\r\\n')\n"
  "while True:\n"
  "    line = m.readline()\n"
  "    if line.startswith(tag.encode()): break\n"
  "print('IDLE-DONE', line.decode().strip())\n"
  "print('EXISTS', before, seen)\n"
  "m.logout()\n";

static void
test_idle (Fixture *f, gconstpointer data)
{
  g_autofree char *port = NULL;
  g_autofree char *out = NULL;
  g_auto(GStrv) words = NULL;
  const char *exists;

  if (f->proxy == NULL)
    return;
  port = port_str (f->proxy->imap_port);
  g_assert_cmpint (sm_test_python (NULL, idle_py, &out, NULL, port, f->proxy->address, f->proxy->local_password,
                                   sm_test_env ("SM_TEST_SMTP_PORT"), NULL), ==, 0);
  g_assert_nonnull (strstr (out, "IDLE-DONE"));
  g_assert_nonnull (strstr (out, " OK"));
  exists = strstr (out, "EXISTS ");
  g_assert_nonnull (exists);
  words = g_strsplit (exists, " ", 3);
  g_assert_cmpint (atoi (words[2]), ==, atoi (words[1]) + 1);
}

/* Five concurrent sessions, as Thunderbird opens, each doing real work. */
static const char concurrent_py[] =
  "import imaplib, sys, threading\n"
  "port, user, pw = sys.argv[1:4]\n"
  "results = []\n"
  "def work(i):\n"
  "    m = imaplib.IMAP4('127.0.0.1', int(port))\n"
  "    m.login(user, pw)\n"
  "    for _ in range(20):\n"
  "        typ, d = m.select('INBOX')\n"
  "        assert typ == 'OK'\n"
  "        typ, d = m.uid('SEARCH', None, 'ALL')\n"
  "        assert typ == 'OK'\n"
  "        typ, d = m.list()\n"
  "        assert typ == 'OK'\n"
  "    m.logout()\n"
  "    results.append(i)\n"
  "ts = [threading.Thread(target=work, args=(i,)) for i in range(5)]\n"
  "[t.start() for t in ts]; [t.join() for t in ts]\n"
  "print('DONE', len(results))\n";

static void
test_concurrent_sessions (Fixture *f, gconstpointer data)
{
  g_autofree char *port = NULL;
  g_autofree char *out = NULL;

  if (f->proxy == NULL)
    return;
  port = port_str (f->proxy->imap_port);
  g_assert_cmpint (sm_test_python (NULL, concurrent_py, &out, NULL, port, f->proxy->address,
                                   f->proxy->local_password, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "DONE 5"));
}

/* Raw protocol: LOGIN with literals (synchronizing and LITERAL+),
 * AUTHENTICATE PLAIN with SASL-IR, APPEND with LITERAL+, refusals. */
static void
test_raw_literals (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *cmd = NULL;
  gsize ulen, plen;

  if (f->proxy == NULL)
    return;
  c = sm_test_client_connect (f->proxy->imap_port);
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "* OK [CAPABILITY IMAP4rev1"));
  g_assert_nonnull (strstr (line, "STARTTLS"));
  g_clear_pointer (&line, g_free);

  /* Garbage before login: BAD, and the session goes on. */
  sm_test_client_send (c, "a0 FROBNICATE\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a0 BAD"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "\"unterminated\r\n");
  line = sm_test_client_line (c);
  g_assert_nonnull (strstr (line, "BAD"));
  g_clear_pointer (&line, g_free);

  /* A synchronizing literal waits for "+". */
  ulen = strlen (f->proxy->address);
  plen = strlen (f->proxy->local_password);
  cmd = g_strdup_printf ("a1 LOGIN {%" G_GSIZE_FORMAT "}\r\n", ulen);
  sm_test_client_send (c, cmd);
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "+"));
  g_clear_pointer (&line, g_free);
  g_clear_pointer (&cmd, g_free);
  cmd = g_strdup_printf ("%s {%" G_GSIZE_FORMAT "+}\r\n%s\r\n", f->proxy->address, plen, f->proxy->local_password);
  sm_test_client_send (c, cmd);
  line = sm_test_client_until (c, "a1 ");
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "a1 OK [CAPABILITY "));
  g_clear_pointer (&line, g_free);

  /* Refused after login, without reaching the provider. */
  sm_test_client_send (c, "a2 COMPRESS DEFLATE\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a2 NO [CANNOT]"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a3 STARTTLS\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a3 BAD"));
  g_clear_pointer (&line, g_free);
  /* A refused command with a LITERAL+ argument: its literal is skipped. */
  sm_test_client_send (c, "a4 LOGIN {3+}\r\nabc {3+}\r\ndef\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a4 BAD"));
  g_clear_pointer (&line, g_free);

  /* APPEND with LITERAL+ relayed. */
  {
    const char msg[] = "Subject: literal-plus\r\n\r\nbody\r\n";
    g_autofree char *append = g_strdup_printf ("a5 APPEND INBOX {%" G_GSIZE_FORMAT "+}\r\n%s\r\n", strlen (msg), msg);
    sm_test_client_send (c, append);
    line = sm_test_client_until (c, "a5 ");
    g_assert_true (g_str_has_prefix (line, "a5 OK"));
    g_clear_pointer (&line, g_free);
  }
  /* Garbage after login goes to the provider, which says BAD; the session
   * continues. */
  sm_test_client_send (c, "a6 NONSENSE (((\r\n");
  line = sm_test_client_until (c, "a6 ");
  g_assert_true (g_str_has_prefix (line, "a6 BAD"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a7 NOOP\r\n");
  line = sm_test_client_until (c, "a7 ");
  g_assert_true (g_str_has_prefix (line, "a7 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a8 LOGOUT\r\n");
  line = sm_test_client_until (c, "a8 ");
  g_assert_true (g_str_has_prefix (line, "a8 OK"));
  g_assert_true (sm_test_client_wait_closed (c, 5000));
}

static void
test_sasl_plain (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *raw = NULL;
  g_autofree char *b64 = NULL;
  g_autofree char *cmd = NULL;
  gsize ulen, plen;

  if (f->proxy == NULL)
    return;
  c = sm_test_client_connect (f->proxy->imap_port);
  g_free (sm_test_client_line (c));
  ulen = strlen (f->proxy->address);
  plen = strlen (f->proxy->local_password);
  raw = g_malloc0 (ulen + plen + 2);
  memcpy (raw + 1, f->proxy->address, ulen);
  memcpy (raw + 2 + ulen, f->proxy->local_password, plen);
  b64 = g_base64_encode ((guchar *) raw, ulen + plen + 2);
  /* Without SASL-IR: the "+" continuation, then the response. */
  sm_test_client_send (c, "s1 AUTHENTICATE PLAIN\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "+"));
  g_clear_pointer (&line, g_free);
  cmd = g_strdup_printf ("%s\r\n", b64);
  sm_test_client_send (c, cmd);
  line = sm_test_client_until (c, "s1 ");
  g_assert_true (g_str_has_prefix (line, "s1 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "s2 SELECT INBOX\r\n");
  line = sm_test_client_until (c, "s2 ");
  g_assert_true (g_str_has_prefix (line, "s2 OK"));
}

/* QRESYNC and NOTIFY are not offered (VANISHED and unsolicited content
 * would get around the decrypted views), ENABLE QRESYNC never reaches the
 * provider, and the proxy's own answer to a pipelined command never lands
 * inside a message the provider is still sending. */
static void
test_qresync_notify (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autoptr(GString) msg = g_string_new ("From: carol@example.test\r\nSubject: deferred-reply\r\n\r\n");
  g_autofree char *line = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *uid = NULL;
  g_autofree char *head = NULL;
  g_autofree guint8 *literal = NULL;
  gsize want, got = 0;
  gboolean saw_no = FALSE, saw_ok = FALSE;
  const char *p;

  if (f->proxy == NULL)
    return;
  c = sm_test_client_connect (f->proxy->imap_port);
  g_free (sm_test_client_line (c));
  line = sm_test_imap_login (c, f->proxy, "q1", NULL);
  g_assert_true (g_str_has_prefix (line, "q1 OK [CAPABILITY "));
  /* Dovecot offers both; the proxy must not. */
  g_assert_null (strstr (line, "QRESYNC"));
  g_assert_null (strstr (line, " NOTIFY"));
  g_assert_nonnull (strstr (line, "CONDSTORE"));
  g_clear_pointer (&line, g_free);

  sm_test_client_send (c, "q2 ENABLE QRESYNC\r\n");
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, "* ENABLED");
  g_clear_pointer (&line, g_free);
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "q2 OK"));
  g_clear_pointer (&line, g_free);
  /* With another extension: that one is enabled by the provider. */
  sm_test_client_send (c, "q3 ENABLE CONDSTORE qresync\r\n");
  line = sm_test_client_until (c, "* ENABLED");
  g_assert_cmpstr (line, ==, "* ENABLED CONDSTORE");
  g_clear_pointer (&line, g_free);
  g_free (sm_test_client_until (c, "q3 OK"));
  g_free (sm_test_imap_command (c, "q4 NOTIFY SET (selected MessageNew (UID BODY.PEEK[]))", "NO [CANNOT]"));
  /* QRESYNC was not enabled upstream: SELECT with its parameter is refused. */
  g_free (sm_test_imap_command (c, "q5 SELECT INBOX (QRESYNC (1 1))", "BAD"));

  /* A plain message large enough that its literal fills the socket buffers. */
  while (msg->len < SM_TEST_BIG_MESSAGE)
    g_string_append (msg, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_0123456789\r\n");
  cmd = g_strdup_printf ("q6 APPEND INBOX {%" G_GSIZE_FORMAT "+}\r\n", msg->len);
  sm_test_client_send (c, cmd);
  g_output_stream_write_all (c->out, msg->str, msg->len, NULL, NULL, NULL);
  sm_test_client_send (c, "\r\n");
  line = sm_test_client_until (c, "q6 ");
  g_assert_true (g_str_has_prefix (line, "q6 OK [APPENDUID "));
  p = strchr (line + strlen ("q6 OK [APPENDUID "), ' ');
  g_assert_nonnull (p);
  uid = g_strndup (p + 1, strcspn (p + 1, "]"));
  g_clear_pointer (&line, g_free);
  g_free (sm_test_imap_command (c, "q7 SELECT INBOX", "OK"));
  /* The first fetch finds it plain; the second is relayed as it streams. */
  g_clear_pointer (&cmd, g_free);
  cmd = g_strdup_printf ("q8 UID FETCH %s BODY.PEEK[HEADER]", uid);
  g_free (sm_test_imap_command (c, cmd, "OK"));
  g_clear_pointer (&cmd, g_free);
  cmd = g_strdup_printf ("q9 UID FETCH %s BODY.PEEK[]\r\n", uid);
  sm_test_client_send (c, cmd);
  head = sm_test_client_line (c);
  g_assert_nonnull (head);
  g_assert_true (g_str_has_suffix (head, "}"));
  want = g_ascii_strtoull (strrchr (head, '{') + 1, NULL, 10);
  g_assert_cmpuint (want, ==, msg->len);
  /* The proxy is now inside the provider's literal (the client is not
   * reading): its own answer must wait for the response to end. */
  g_usleep (300 * 1000);
  sm_test_client_send (c, "q10 NOTIFY NONE\r\n");
  literal = g_malloc (want);
  g_assert_true (g_input_stream_read_all (G_INPUT_STREAM (c->in), literal, want, &got, NULL, NULL));
  g_assert_cmpuint (got, ==, want);
  g_assert_true (memcmp (literal, msg->str, want) == 0);
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, ")");
  g_clear_pointer (&line, g_free);
  for (int i = 0; i < 2; i++)
    {
      line = sm_test_client_line (c);
      g_test_message ("after the literal: %s", line ? line : "(nothing)");
      g_assert_nonnull (line);
      saw_no |= g_str_has_prefix (line, "q10 NO [CANNOT]");
      saw_ok |= g_str_has_prefix (line, "q9 OK");
      g_clear_pointer (&line, g_free);
    }
  g_assert_true (saw_no && saw_ok);
}

/* Over-long lines and literals: a clear error, and the proxy keeps serving
 * everyone else. */
static void
test_limits (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) other = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  other = sm_test_client_connect (f->proxy->imap_port);
  g_free (sm_test_client_line (other));

  {
    g_autoptr(SmTestClient) c = sm_test_client_connect (f->proxy->imap_port);
    g_autofree char *big = g_strnfill (100 * 1024, 'A');
    g_free (sm_test_client_line (c));
    sm_test_client_send (c, "x1 LOGIN ");
    sm_test_client_send (c, big);
    sm_test_client_send (c, "\r\n");
    line = sm_test_client_until (c, "* BYE");
    g_assert_nonnull (line);
    g_assert_nonnull (strstr (line, "[TOOBIG]"));
    g_clear_pointer (&line, g_free);
    g_assert_true (sm_test_client_wait_closed (c, 5000));
  }
  {
    /* A synchronizing literal above the pre-login limit: refused, the
     * session continues. */
    g_autoptr(SmTestClient) c = sm_test_client_connect (f->proxy->imap_port);
    g_free (sm_test_client_line (c));
    sm_test_client_send (c, "x2 LOGIN {999999999}\r\n");
    line = sm_test_client_line (c);
    g_assert_true (g_str_has_prefix (line, "x2 BAD [TOOBIG]"));
    g_clear_pointer (&line, g_free);
    sm_test_client_send (c, "x3 NOOP\r\n");
    line = sm_test_client_line (c);
    g_assert_true (g_str_has_prefix (line, "x3 OK"));
    g_clear_pointer (&line, g_free);
  }
  sm_test_client_send (other, "o1 CAPABILITY\r\n");
  line = sm_test_client_until (other, "o1 ");
  g_assert_true (g_str_has_prefix (line, "o1 OK"));
}

/* A provider certificate that does not verify: the login is refused with a
 * reason, and doctor says so with a fix. */
static void
test_untrusted_certificate (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *port = NULL;
  const char *script =
    "import imaplib, sys\n"
    "m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n"
    "try:\n"
    "    m.login(sys.argv[2], sys.argv[3]); print('LOGGED-IN')\n"
    "except imaplib.IMAP4.error as e:\n"
    "    print('REFUSED', e)\n";

  if (!sm_test_require_stack ())
    return;
  /* No ca_file: the stack's private CA is not in the system store. */
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%s\nsmtp = smtp://localhost:%s\nusername = alice\n",
                              sm_test_env ("SM_TEST_IMAPS_PORT"), sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  p = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  port = port_str (p->imap_port);
  g_assert_cmpint (sm_test_python (NULL, script, &out, NULL, port, p->address, p->local_password, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "REFUSED"));
  g_assert_nonnull (strstr (out, "[UNAVAILABLE]"));
  g_assert_nonnull (strstr (out, "not signed by a trusted authority"));

  g_clear_pointer (&out, g_free);
  g_assert_cmpint (sm_test_cli (p, NULL, &out, &err, "doctor", "--json", NULL), ==, 1);
  g_assert_nonnull (strstr (out, "\"upstream-imap\""));
  g_assert_nonnull (strstr (out, "ca_file"));
  g_assert_nonnull (strstr (err, "failed"));
}

/* A pinned key that does not match refuses even a verified certificate. */
static void
test_pin_mismatch (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *extra = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  extra = g_strdup_printf ("%spin_sha256 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", upstream);
  p = sm_test_proxy_start ("alice@example.test", extra, "pass", NULL);
  g_assert_cmpint (sm_test_cli (p, NULL, &out, &err, "doctor", NULL), ==, 1);
  g_assert_nonnull (strstr (out, "pin_sha256"));
}

/* The provider is down: a clear NO [UNAVAILABLE], not a hang. */
static void
test_provider_down (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *out = NULL;
  g_autofree char *port = NULL;
  const char *script =
    "import imaplib, sys\n"
    "m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n"
    "try:\n"
    "    m.login(sys.argv[2], sys.argv[3]); print('LOGGED-IN')\n"
    "except imaplib.IMAP4.error as e:\n"
    "    print('REFUSED', e)\n";

  if (!sm_test_require_stack ())
    return;
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://127.0.0.1:%u\nsmtp = smtp://127.0.0.1:%u\nusername = alice\nca_file = %s\n",
                              sm_test_free_port (), sm_test_free_port (), sm_test_env ("SM_TEST_CA"));
  p = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  port = port_str (p->imap_port);
  g_assert_cmpint (sm_test_python (NULL, script, &out, NULL, port, p->address, p->local_password, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "REFUSED"));
  g_assert_nonnull (strstr (out, "[UNAVAILABLE]"));
  g_assert_nonnull (strstr (out, "Cannot reach the provider"));
  /* status reports it. */
  {
    g_autofree char *o = NULL;
    g_assert_cmpint (sm_test_cli (p, NULL, &o, NULL, "status", "--json", NULL), ==, 0);
    g_assert_nonnull (strstr (o, "\"upstream_reachable\" : false"));
    g_assert_nonnull (strstr (o, "Cannot reach the provider"));
  }
}

/* STARTTLS to the provider (imap://) works and is verified. */
static void
test_upstream_starttls (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *out = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;

  if (!sm_test_require_stack ())
    return;
  upstream = g_strdup_printf ("[upstream]\nimap = imap://localhost:%s\nsmtp = smtp://localhost:%s\nusername = alice\nca_file = %s\n",
                              sm_test_env ("SM_TEST_IMAP_PORT"), sm_test_env ("SM_TEST_SUBMISSION_PORT"),
                              sm_test_env ("SM_TEST_CA"));
  p = sm_test_proxy_start ("alice@example.test", upstream, "pass", NULL);
  url = g_strdup_printf ("imap://127.0.0.1:%u/INBOX", p->imap_port);
  user = g_strdup_printf ("%s:%s", p->address, p->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "20", url, "-u", user, "-X", "EXAMINE INBOX", NULL };
    g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, NULL), ==, 0);
  }
  g_assert_nonnull (strstr (out, "UIDVALIDITY"));
}

/* status over D-Bus while running. */
static void
test_status (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *expect = NULL;

  if (f->proxy == NULL)
    return;
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "\"running\" : true"));
  g_assert_nonnull (strstr (out, "\"account\" : \"alice@example.test\""));
  expect = g_strdup_printf ("\"imap_listen\" : \"127.0.0.1:%u\"", f->proxy->imap_port);
  g_assert_nonnull (strstr (out, expect));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/imap/e2e/curl-login", Fixture, NULL, fixture_setup, test_curl_login, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/wrong-password", Fixture, NULL, fixture_setup, test_wrong_password, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/append-fetch-identical", Fixture, NULL, fixture_setup, test_append_fetch_identical,
              fixture_teardown);
  g_test_add ("/proxy/imap/e2e/idle", Fixture, NULL, fixture_setup, test_idle, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/five-concurrent-sessions", Fixture, NULL, fixture_setup, test_concurrent_sessions,
              fixture_teardown);
  g_test_add ("/proxy/imap/e2e/raw-literals", Fixture, NULL, fixture_setup, test_raw_literals, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/sasl-plain", Fixture, NULL, fixture_setup, test_sasl_plain, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/qresync-notify", Fixture, NULL, fixture_setup, test_qresync_notify,
              fixture_teardown);
  g_test_add ("/proxy/imap/e2e/limits", Fixture, NULL, fixture_setup, test_limits, fixture_teardown);
  g_test_add ("/proxy/imap/e2e/status", Fixture, NULL, fixture_setup, test_status, fixture_teardown);
  g_test_add_func ("/proxy/imap/e2e/untrusted-certificate", test_untrusted_certificate);
  g_test_add_func ("/proxy/imap/e2e/pin-mismatch", test_pin_mismatch);
  g_test_add_func ("/proxy/imap/e2e/provider-down", test_provider_down);
  g_test_add_func ("/proxy/imap/e2e/upstream-starttls", test_upstream_starttls);
  return g_test_run ();
}
