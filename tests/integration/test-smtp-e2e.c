/* test-smtp-e2e.c: SMTP submission through the real securemail-proxy to the
 * real Postfix (submission, STARTTLS + AUTH) and on to Dovecot, with
 * independent clients (curl, swaks, Python smtplib, raw sockets).
 *
 * Every accepted message carries a unique marker and is looked up in the
 * recipient's maildir; every refused one is checked not to have been
 * delivered (a sentinel sent straight to Postfix afterwards must arrive, and
 * the refused marker must not be next to it).
 */
#include <glib.h>
#include <string.h>

#include "sm-test-harness.h"
/* The proxy's named limits (macros only; nothing is linked). */
#include "../../proxy/sm-keyring.h"
#include "../../proxy/sm-login-limiter.h"
#include "../../proxy/sm-server.h"
#include "../../proxy/sm-smtp-session.h"

#define DELIVERY_TIMEOUT_MS 20000

typedef struct {
  SmTestProxy *proxy;
  char *marker;        /* unique to this test run */
} Fixture;

static char *
new_marker (void)
{
  g_autofree char *uuid = g_uuid_string_random ();
  return g_strdup_printf ("smtp-e2e-%s", uuid);
}

/* personal_address configured (alice@localhost is the same stack mailbox). */
#define PERSONAL_EXTRA "[account]\npersonal_address = alice@localhost\n"

static void
setup_with (Fixture *f, const char *extra)
{
  g_autofree char *upstream = NULL;

  f->marker = new_marker ();
  if (!sm_test_require_stack ())
    return;
  upstream = sm_test_upstream_section ("alice");
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), extra);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  setup_with (f, NULL);
}

static void
fixture_setup_personal (Fixture *f, gconstpointer data)
{
  g_autofree char *err = NULL;

  setup_with (f, PERSONAL_EXTRA);
  /* Personal mail is signed too: with a key of the personal address. */
  if (f->proxy != NULL &&
      sm_test_cli (f->proxy, NULL, NULL, &err, "keys", "generate", "--protocol", "openpgp", "--address",
                   "alice@localhost", NULL) != 0)
    g_error ("securemail keys generate for the personal address failed: %s", err);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  g_free (f->marker);
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

/* ---- messages ------------------------------------------------------------ */

/* A message from @from to bob with @marker in the Subject, the Message-ID and
 * the body, and the lines dot-stuffing must keep: one starting with ".", one
 * of only "..", one of only "." (in the middle: a client must stuff it or it
 * would end DATA).  Date and Message-ID are given so that nothing needs to be
 * added on the way.  CRLF line ends. */
static char *
make_message (const char *from, const char *marker, const char *extra_headers)
{
  return g_strdup_printf ("From: Alice Example <%s>\r\n"
                          "To: Bob <bob@example.test>\r\n"
                          "Subject: test %s\r\n"
                          "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
                          "Message-ID: <%s@example.test>\r\n"
                          "MIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=us-ascii\r\n"
                          "%s"
                          "\r\n"
                          "first line %s\r\n"
                          ".leading dot survives\r\n"
                          "..\r\n"
                          ".\r\n"
                          " . space dot\r\n"
                          "last line\r\n",
                          from, marker, marker, extra_headers ? extra_headers : "", marker);
}

/* The same message with "[PERSONAL] " at the start of its Subject. */
static char *
tag_personal (const char *message)
{
  g_auto(GStrv) parts = g_strsplit (message, "Subject: test ", 2);

  g_assert_nonnull (parts[1]);
  return g_strconcat (parts[0], "Subject: [PERSONAL] test ", parts[1], NULL);
}

static char *
crlf_to_lf (const char *s)
{
  g_auto(GStrv) parts = g_strsplit (s, "\r\n", -1);
  return g_strjoinv ("\n", parts);
}

/* What landed in the maildir is the message sent, signed by the proxy
 * (issue 4: every submitted message is signed; the harness gives the account
 * an OpenPGP key): a PGP/MIME multipart/signed whose signed part carries the
 * body byte for byte (dot-stuffed lines included), whose outer header keeps
 * the original From/To/Subject, behind the provider's authenticated trace
 * header.  The signature itself is checked by gpg in
 * /proxy/smtp/e2e/signature-verifies-with-gpg. */
static void
assert_delivered_as_sent (const char *user, const char *marker, const char *sent)
{
  g_autofree char *landed_raw = sm_test_maildir_read (user, marker, DELIVERY_TIMEOUT_MS);
  g_autofree char *landed = NULL;
  g_autofree char *want = crlf_to_lf (sent);
  g_autofree char *header = NULL;
  const char *body, *end_of_header;
  g_auto(GStrv) lines = NULL;
  gboolean received = FALSE;

  if (landed_raw == NULL)
    g_error ("the message %s did not arrive in %s's maildir", marker, user);
  landed = crlf_to_lf (landed_raw);
  body = strstr (want, "\n\n");
  g_assert_nonnull (body);
  if (strstr (landed, body + 2) == NULL)
    g_error ("the delivered message does not carry the body sent.\n--- sent:\n%s\n--- delivered:\n%s", want, landed);
  if (strstr (landed, "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"") == NULL ||
      strstr (landed, "-----BEGIN PGP SIGNATURE-----") == NULL)
    g_error ("the delivered message is not PGP/MIME signed:\n%s", landed);
  end_of_header = strstr (landed, "\n\n");
  g_assert_nonnull (end_of_header);
  header = g_strndup (landed, end_of_header - landed);
  {
    /* The outer header keeps what the client wrote. */
    g_auto(GStrv) sent_lines = g_strsplit (want, "\n", -1);
    for (guint i = 0; sent_lines[i] && *sent_lines[i]; i++)
      if (g_str_has_prefix (sent_lines[i], "From: ") || g_str_has_prefix (sent_lines[i], "To: ") ||
          g_str_has_prefix (sent_lines[i], "Subject: "))
        if (strstr (header, sent_lines[i]) == NULL)
          g_error ("the outer header lost “%s”:\n%s", sent_lines[i], header);
  }
  lines = g_strsplit (header, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    if (g_str_has_prefix (lines[i], "Received: from "))
      {
        /* The provider's own trace: the submission was authenticated
         * ESMTP over TLS (RFC 3848 "ESMTPSA"). */
        g_autofree char *field = g_strdup (lines[i]);
        for (guint j = i + 1; lines[j] && (lines[j][0] == ' ' || lines[j][0] == '\t'); j++)
          {
            char *joined = g_strconcat (field, lines[j], NULL);
            g_free (field);
            field = joined;
          }
        if (strstr (field, "ESMTPSA") != NULL)
          received = TRUE;
      }
  if (!received)
    g_error ("no Received: from the provider's authenticated submission in:\n%s", header);
}

/* Sends a sentinel straight to Postfix (port 25, no proxy) for @user and
 * waits for it; then checks that @marker was not delivered to @user.  A
 * message the proxy had wrongly relayed earlier would be there by then. */
static void
assert_not_delivered (const char *user, const char *marker)
{
  g_autoptr(SmTestClient) c = sm_test_client_connect (sm_test_env_port ("SM_TEST_SMTP_PORT"));
  g_autofree char *sentinel = new_marker ();
  g_autofree char *cmd = NULL;
  g_autofree char *line = NULL;

  line = sm_test_smtp_reply (c, NULL);
  g_assert_true (g_str_has_prefix (line, "220"));
  g_clear_pointer (&line, g_free);
  cmd = g_strdup_printf ("EHLO test\r\nMAIL FROM:<carol@example.test>\r\nRCPT TO:<%s@example.test>\r\nDATA\r\n", user);
  sm_test_client_send (c, cmd);
  for (guint i = 0; i < 4; i++)
    {
      line = sm_test_smtp_reply (c, NULL);
      g_assert_nonnull (line);
      g_assert_true (g_str_has_prefix (line, i < 3 ? "250" : "354"));
      g_clear_pointer (&line, g_free);
    }
  g_clear_pointer (&cmd, g_free);
  cmd = g_strdup_printf ("Subject: sentinel %s\r\n\r\n%s\r\n.\r\nQUIT\r\n", sentinel, sentinel);
  sm_test_client_send (c, cmd);
  line = sm_test_smtp_reply (c, NULL);
  g_assert_true (g_str_has_prefix (line, "250"));
  g_assert_true (sm_test_maildir_wait (user, sentinel, DELIVERY_TIMEOUT_MS));
  g_assert_false (sm_test_maildir_wait (user, marker, 0));
}

/* ---- a raw SMTP client (sm_test_smtp_*() in sm-test-harness.c) ---------- */

/* MAIL FROM:<@envelope> RCPT TO:<bob> DATA, @message; returns the final
 * reply. */
static char *
submit (SmTestClient *c, const char *envelope, const char *rcpt, const char *message)
{
  g_autofree char *mail = g_strdup_printf ("MAIL FROM:<%s>", envelope);
  g_autofree char *to = g_strdup_printf ("RCPT TO:<%s>", rcpt);

  g_free (sm_test_smtp_command (c, mail, "250 "));
  g_free (sm_test_smtp_command (c, to, "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  return sm_test_smtp_data (c, message);
}

/* The proxy queues what it accepts (issue 5): "250 2.0.0 Queued as ID". */
static void
assert_queued (const char *line)
{
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "250 2.0.0 Queued as "))
    g_error ("expected “250 2.0.0 Queued as ID”, got “%s”", line);
}

/* Polls `securemail queue list --json` until the queue's last error
 * contains every one of @needles (NULL-terminated); fails after 30 s. */
static void
wait_queue_error (SmTestProxy *p, const char * const *needles)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  for (;;)
    {
      g_autofree char *out = NULL;
      gboolean all = TRUE;
      g_assert_cmpint (sm_test_cli (p, NULL, &out, NULL, "queue", "list", "--json", NULL), ==, 0);
      for (guint i = 0; needles[i]; i++)
        all = all && strstr (out, needles[i]) != NULL;
      if (all && strstr (out, "\"last_error\" : \"\"") == NULL)
        return;
      if (g_get_monotonic_time () > deadline)
        g_error ("the queue never showed “%s”:\n%s", needles[0], out);
      g_usleep (100 * 1000);
    }
}

/* ---- independent clients ------------------------------------------------- */

static char *
write_message_file (SmTestProxy *p, const char *name, const char *message)
{
  char *path = g_build_filename (p->dir, name, NULL);
  g_assert_true (g_file_set_contents (path, message, -1, NULL));
  return path;
}

/* curl: smtp:// with -u, no TLS to the proxy. */
static void
test_curl (Fixture *f, gconstpointer data)
{
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *err = NULL;
  int rc;

  if (f->proxy == NULL)
    return;
  msg = make_message ("alice@example.test", f->marker, NULL);
  file = write_message_file (f->proxy, "curl.eml", msg);
  url = g_strdup_printf ("smtp://127.0.0.1:%u", f->proxy->smtp_port);
  user = g_strdup_printf ("%s:%s", f->proxy->address, f->proxy->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "60", url, "-u", user,
                           "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                           "--upload-file", file, NULL };
    rc = sm_test_run (argv, NULL, NULL, NULL, &err);
  }
  if (rc != 0)
    g_error ("curl failed (%d): %s", rc, err);
  assert_delivered_as_sent ("bob", f->marker, msg);
}

/* The signature the proxy added verifies with gpg, a tool we do not write,
 * against the public key `securemail keys export` gives correspondents: the
 * signed part is taken byte for byte between the MIME boundaries (RFC 3156
 * §5: the CRLF before a boundary belongs to the boundary). */
static const char verify_py[] =
  "import re, subprocess, sys, os\n"
  "msg_path, key_path, home = sys.argv[1:4]\n"
  "raw = open(msg_path, 'rb').read().replace(b'\\r\\n', b'\\n').replace(b'\\n', b'\\r\\n')\n"
  "head = raw.split(b'\\r\\n\\r\\n', 1)[0].replace(b'\\r\\n ', b' ')\n"
  "b = re.search(rb'boundary=\"([^\"]+)\"', head).group(1)\n"
  "parts = raw.split(b'\\r\\n--' + b)\n"
  "signed = parts[1].split(b'\\r\\n', 1)[1]\n"
  "sig = parts[2].split(b'\\r\\n\\r\\n', 1)[1]\n"
  "open(os.path.join(home, 'signed'), 'wb').write(signed)\n"
  "open(os.path.join(home, 'sig.asc'), 'wb').write(sig)\n"
  "env = dict(os.environ, GNUPGHOME=home)\n"
  "subprocess.run(['gpg', '--batch', '--quiet', '--import', key_path], env=env, check=True)\n"
  "r = subprocess.run(['gpg', '--batch', '--status-fd', '1', '--verify', os.path.join(home, 'sig.asc'),\n"
  "                    os.path.join(home, 'signed')], env=env, capture_output=True)\n"
  "print(r.stdout.decode())\n"
  "subprocess.run(['gpgconf', '--kill', 'all'], env=env)\n";

static void
test_signature_verifies (Fixture *f, gconstpointer data)
{
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *landed = NULL;
  g_autofree char *landed_path = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *home = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (f->proxy == NULL)
    return;
  msg = make_message ("alice@example.test", f->marker, NULL);
  file = write_message_file (f->proxy, "signed.eml", msg);
  url = g_strdup_printf ("smtp://127.0.0.1:%u", f->proxy->smtp_port);
  user = g_strdup_printf ("%s:%s", f->proxy->address, f->proxy->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "60", url, "-u", user,
                           "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                           "--upload-file", file, NULL };
    if (sm_test_run (argv, NULL, NULL, NULL, &err) != 0)
      g_error ("curl failed: %s", err);
  }
  landed = sm_test_maildir_read ("bob", f->marker, DELIVERY_TIMEOUT_MS);
  g_assert_nonnull (landed);
  landed_path = g_build_filename (f->proxy->dir, "landed.eml", NULL);
  g_assert_true (g_file_set_contents (landed_path, landed, -1, NULL));
  key_path = g_build_filename (f->proxy->dir, "alice-public.asc", NULL);
  g_clear_pointer (&err, g_free);
  if (sm_test_cli (f->proxy, NULL, NULL, &err, "keys", "export", key_path, NULL) != 0)
    g_error ("securemail keys export failed: %s", err);
  home = g_build_filename (f->proxy->dir, "verifier-gnupg", NULL);
  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  g_assert_cmpint (sm_test_python (NULL, verify_py, &out, NULL, landed_path, key_path, home, NULL), ==, 0);
  if (strstr (out, "[GNUPG:] GOODSIG ") == NULL || strstr (out, "[GNUPG:] VALIDSIG ") == NULL)
    g_error ("gpg did not find a good signature:\n%s", out);
  g_assert_nonnull (strstr (out, "alice@example.test"));
}

/* swaks: STARTTLS to the proxy, verifying its local certificate, AUTH LOGIN. */
static void
test_swaks (Fixture *f, gconstpointer data)
{
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *at_file = NULL;
  g_autofree char *port = NULL;
  g_autofree char *ca = NULL;
  g_autofree char *out = NULL;
  int rc;

  if (f->proxy == NULL)
    return;
  msg = make_message ("alice@example.test", f->marker, NULL);
  {
    /* swaks adds the CRLF before its final dot itself: without this, the
     * message would get an extra empty line at the end. */
    g_autofree char *trimmed = g_strndup (msg, strlen (msg) - 2);
    file = write_message_file (f->proxy, "swaks.eml", trimmed);
  }
  at_file = g_strconcat ("@", file, NULL);
  port = port_str (f->proxy->smtp_port);
  ca = local_cert (f->proxy);
  {
    const char *argv[] = { "swaks", "--server", "127.0.0.1", "--port", port, "-tls", "--tls-verify",
                           "--tls-ca-path", ca, "--auth", "LOGIN", "--auth-user", f->proxy->address,
                           "--auth-password", f->proxy->local_password, "--from", "alice@example.test",
                           "--to", "bob@example.test", "--data", at_file, "--timeout", "60", NULL };
    rc = sm_test_run (argv, NULL, NULL, &out, NULL);
  }
  if (rc != 0)
    g_error ("swaks failed (%d):\n%s", rc, out);
  /* It did negotiate TLS and log in, and the proxy accepted the message. */
  g_assert_nonnull (strstr (out, "<-  220 2.0.0"));
  g_assert_nonnull (strstr (out, "=== TLS started"));
  g_assert_nonnull (strstr (out, " ~> AUTH LOGIN"));
  g_assert_nonnull (strstr (out, "<~  235 2.7.0"));
  g_assert_nonnull (strstr (out, "<~  250 2.0.0"));
  assert_delivered_as_sent ("bob", f->marker, msg);
}

static const char smtplib_py[] =
  "import smtplib, ssl, sys\n"
  "port, user, pw, cafile, path = sys.argv[1:6]\n"
  "msg = open(path, 'rb').read()\n"
  "ctx = ssl.create_default_context(cafile=cafile)\n"
  "s = smtplib.SMTP('127.0.0.1', int(port), timeout=60)\n"
  "s.ehlo()\n"
  "print('BEFORE-TLS', 'starttls' in s.esmtp_features, 'auth' in s.esmtp_features)\n"
  "s.starttls(context=ctx)\n"
  "s.ehlo()\n"
  "print('AFTER-TLS', 'starttls' in s.esmtp_features, s.esmtp_features.get('size'))\n"
  "s.login(user, pw)\n"
  "refused = s.sendmail('alice@example.test', ['bob@example.test'], msg)\n"
  "print('REFUSED', refused)\n"
  "print('QUIT', s.quit()[0])\n";

/* Python smtplib: STARTTLS with the local certificate as the only CA. */
static void
test_python (Fixture *f, gconstpointer data)
{
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *port = NULL;
  g_autofree char *ca = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *size_line = NULL;
  int rc;

  if (f->proxy == NULL)
    return;
  msg = make_message ("alice@example.test", f->marker, NULL);
  file = write_message_file (f->proxy, "python.eml", msg);
  port = port_str (f->proxy->smtp_port);
  ca = local_cert (f->proxy);
  rc = sm_test_python (NULL, smtplib_py, &out, &err, port, f->proxy->address, f->proxy->local_password, ca,
                       file, NULL);
  if (rc != 0)
    g_error ("python smtplib failed (%d):\n%s%s", rc, out, err);
  g_assert_nonnull (strstr (out, "BEFORE-TLS True True"));
  /* After STARTTLS it is not offered again (RFC 3207 §4.2). */
  size_line = g_strdup_printf ("AFTER-TLS False %u", (guint) SM_SMTP_MAX_MESSAGE_SIZE);
  g_assert_nonnull (strstr (out, size_line));
  g_assert_nonnull (strstr (out, "REFUSED {}"));
  g_assert_nonnull (strstr (out, "QUIT 221"));
  assert_delivered_as_sent ("bob", f->marker, msg);
}

/* ---- authentication ------------------------------------------------------ */

static void
test_wrong_password (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *bad = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *line = NULL;
  gint64 t0;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, FALSE);
  /* The provider password is not the local one. */
  bad = sm_test_sasl_plain (f->proxy->address, sm_test_env ("SM_TEST_PASSWORD"));
  cmd = g_strdup_printf ("AUTH PLAIN %s", bad);
  t0 = g_get_monotonic_time ();
  line = sm_test_smtp_command (c, cmd, "535 5.7.8 ");
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, (SM_LOGIN_LIMITER_BASE_DELAY_MS - 100) * 1000);
  g_assert_nonnull (strstr (line, "local-password"));
  g_clear_pointer (&line, g_free);
  /* Refused until logged in. */
  line = sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "530 5.7.0 ");
  g_clear_pointer (&line, g_free);
  /* The right password then works on the same connection. */
  g_clear_pointer (&cmd, g_free);
  g_clear_pointer (&bad, g_free);
  bad = sm_test_sasl_plain (f->proxy->address, f->proxy->local_password);
  cmd = g_strdup_printf ("AUTH PLAIN %s", bad);
  g_free (sm_test_smtp_command (c, cmd, "235 2.7.0"));
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 2.1.0"));
}

/* SM_SMTP_MAX_AUTH_FAILURES wrong logins end the connection with 421. */
static void
test_too_many_auth_failures (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *b64 = NULL;
  g_autofree char *cmd = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, FALSE);
  b64 = sm_test_sasl_plain (f->proxy->address, "wrong-password");
  cmd = g_strdup_printf ("AUTH PLAIN %s\r\n", b64);
  for (guint i = 0; i < SM_SMTP_MAX_AUTH_FAILURES; i++)
    {
      sm_test_client_send (c, cmd);
      g_free (sm_test_smtp_expect (c, "535 5.7.8 "));
    }
  g_free (sm_test_smtp_expect (c, "421 4.7.0 "));
  g_assert_true (sm_test_client_wait_closed (c, 5000));
}

static void
test_mail_before_auth (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, FALSE);
  line = sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "530 5.7.0 ");
  g_clear_pointer (&line, g_free);
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "503 "));
  g_free (sm_test_smtp_command (c, "DATA", "503 "));
  /* The session is still usable. */
  g_free (sm_test_smtp_command (c, "NOOP", "250 "));
  g_free (sm_test_smtp_command (c, "QUIT", "221 "));
  g_assert_true (sm_test_client_wait_closed (c, 5000));
}

/* ---- binding the sender to the account ----------------------------------- */

static void
test_mail_from_someone_else (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  line = sm_test_smtp_command (c, "MAIL FROM:<mallory@evil.test>", "550 5.7.1 ");
  g_assert_nonnull (strstr (line, f->proxy->address));
  g_clear_pointer (&line, g_free);
  /* The null sender is nobody's address either. */
  g_free (sm_test_smtp_command (c, "MAIL FROM:<>", "550 5.7.1 "));
  /* Case does not matter; the right one works after the refusals. */
  g_free (sm_test_smtp_command (c, "MAIL FROM:<Alice@Example.TEST>", "250 2.1.0"));
}

typedef struct {
  const char *path;
  const char *envelope;          /* MAIL FROM */
  const char *from_line;         /* replaces the From: line, NULL = drop it */
  const char *extra_headers;
  gboolean personal_tag;         /* "[PERSONAL] " in the Subject */
  const char *reply_prefix;
  const char *needles[3];        /* in the reply */
} RefusalCase;

static const RefusalCase refusals[] = {
  { "/proxy/smtp/e2e/refused/from-not-account", "alice@example.test", "From: mallory@evil.test", NULL,
    FALSE, "550 5.7.1 ", { "mallory@evil.test", "alice@example.test", NULL } },
  { "/proxy/smtp/e2e/refused/from-display-name-trick", "alice@example.test",
    "From: \"alice@example.test\" <mallory@evil.test>", NULL, FALSE, "550 5.7.1 ", { "mallory@evil.test", NULL, NULL } },
  { "/proxy/smtp/e2e/refused/two-from", "alice@example.test", "From: alice@example.test\r\nFrom: alice@example.test",
    NULL, FALSE, "550 5.7.1 ", { "exactly one From:", NULL, NULL } },
  { "/proxy/smtp/e2e/refused/two-addresses", "alice@example.test",
    "From: alice@example.test, mallory@evil.test", NULL, FALSE, "550 5.7.1 ", { "exactly one From:", NULL, NULL } },
  { "/proxy/smtp/e2e/refused/missing-from", "alice@example.test", NULL, NULL, FALSE, "550 5.7.1 ",
    { "no From:", NULL, NULL } },
  { "/proxy/smtp/e2e/refused/personal-without-personal-address", "alice@example.test",
    "From: alice@example.test", NULL, TRUE, "550 5.7.1 ", { "[PERSONAL]", "personal address", NULL } },
  { "/proxy/smtp/e2e/refused/sender-someone-else", "alice@example.test", "From: alice@example.test",
    "Sender: mallory@evil.test\r\n", FALSE, "550 5.7.1 ", { "Sender:", "mallory@evil.test", NULL } },
  { "/proxy/smtp/e2e/refused/unparseable-from", "alice@example.test", "From: alice@example.test;",
    NULL, FALSE, "554 5.6.0 ", { "From:", NULL, NULL } },
};

/* Replaces the From: line of a make_message() text. */
static char *
with_from (const char *message, const char *from_line)
{
  const char *eol = strstr (message, "\r\n");
  return from_line ? g_strconcat (from_line, eol, NULL) : g_strdup (eol + 2);
}

static void
test_refusal (Fixture *f, gconstpointer data)
{
  const RefusalCase *tc = data;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *base = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  base = make_message ("alice@example.test", f->marker, tc->extra_headers);
  msg = with_from (base, tc->from_line);
  if (tc->personal_tag)
    {
      char *tagged = tag_personal (msg);
      g_free (msg);
      msg = tagged;
    }
  c = sm_test_smtp_open (f->proxy, TRUE);
  line = submit (c, tc->envelope, "bob@example.test", msg);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, tc->reply_prefix))
    g_error ("%s: expected “%s...”, got “%s”", tc->path, tc->reply_prefix, line);
  for (guint i = 0; i < G_N_ELEMENTS (tc->needles) && tc->needles[i]; i++)
    if (strstr (line, tc->needles[i]) == NULL)
      g_error ("%s: “%s” does not mention “%s”", tc->path, line, tc->needles[i]);
  g_clear_pointer (&line, g_free);
  /* The transaction is over, the session goes on: a good message now works. */
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "503 "));
  {
    g_autofree char *good_marker = new_marker ();
    g_autofree char *good = make_message ("alice@example.test", good_marker, NULL);
    line = submit (c, "alice@example.test", "bob@example.test", good);
    g_assert_true (g_str_has_prefix (line, "250 "));
    g_assert_true (sm_test_maildir_wait ("bob", good_marker, DELIVERY_TIMEOUT_MS));
  }
  assert_not_delivered ("bob", f->marker);
}

static void
test_personal_address (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;
  g_autofree char *refused_marker = new_marker ();
  g_autofree char *mismatch_marker = new_marker ();

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);

  /* [PERSONAL] from the personal address: accepted, delivered as sent. */
  {
    g_autofree char *base = make_message ("alice@localhost", f->marker, NULL);
    msg = tag_personal (base);
  }
  line = submit (c, "alice@localhost", "bob@example.test", msg);
  if (!g_str_has_prefix (line, "250 "))
    g_error ("personal mail from the personal address refused: %s", line);
  g_clear_pointer (&line, g_free);
  assert_delivered_as_sent ("bob", f->marker, msg);

  /* [PERSONAL] from the account address: refused, naming the personal one. */
  g_clear_pointer (&msg, g_free);
  {
    g_autofree char *base = make_message ("alice@example.test", refused_marker, NULL);
    msg = tag_personal (base);
  }
  line = submit (c, "alice@example.test", "bob@example.test", msg);
  g_assert_true (g_str_has_prefix (line, "550 5.7.1 "));
  g_assert_nonnull (strstr (line, "alice@localhost"));
  g_clear_pointer (&line, g_free);

  /* Envelope and From: both the user's, but different: refused. */
  g_clear_pointer (&msg, g_free);
  msg = make_message ("alice@example.test", mismatch_marker, NULL);
  line = submit (c, "alice@localhost", "bob@example.test", msg);
  g_assert_true (g_str_has_prefix (line, "550 5.7.1 "));
  g_assert_nonnull (strstr (line, "envelope"));
  g_assert_nonnull (strstr (line, "alice@localhost"));
  g_clear_pointer (&line, g_free);

  assert_not_delivered ("bob", refused_marker);
  assert_not_delivered ("bob", mismatch_marker);
}

/* ---- protocol ------------------------------------------------------------ */

/* RFC 2920: a group of commands in one write; the replies come in order,
 * failures included. */
static void
test_pipelining (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *wire = NULL;
  const char *expected[] = { "250 2.1.0", "250 2.1.5", "250 2.1.5", "354 " };
  const char *expected_bad[] = { "550 5.7.1", "503 ", "503 ", "250 " };

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);

  /* A failing group first: nothing after the refused MAIL may act. */
  sm_test_client_send (c, "MAIL FROM:<mallory@evil.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nNOOP\r\n");
  for (guint i = 0; i < G_N_ELEMENTS (expected_bad); i++)
    g_free (sm_test_smtp_expect (c, expected_bad[i]));

  sm_test_client_send (c, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                          "RCPT TO:<carol@example.test>\r\nDATA\r\n");
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    g_free (sm_test_smtp_expect (c, expected[i]));
  /* The end of data and QUIT in one write too. */
  msg = make_message ("alice@example.test", f->marker, NULL);
  {
    g_auto(GStrv) lines = g_strsplit (msg, "\r\n", -1);
    g_autoptr(GString) s = g_string_new (NULL);
    for (guint i = 0; lines[i] && lines[i + 1]; i++)
      g_string_append_printf (s, "%s%s\r\n", lines[i][0] == '.' ? "." : "", lines[i]);
    g_string_append (s, ".\r\nQUIT\r\n");
    wire = g_string_free (g_steal_pointer (&s), FALSE);
  }
  sm_test_client_send (c, wire);
  g_free (sm_test_smtp_expect (c, "250 "));
  g_free (sm_test_smtp_expect (c, "221 "));
  g_assert_true (sm_test_client_wait_closed (c, 5000));
  assert_delivered_as_sent ("bob", f->marker, msg);
  assert_delivered_as_sent ("carol", f->marker, msg);
}

/* RFC 1870: a declared SIZE over the limit is refused at MAIL; the limit
 * itself is fine. */
static void
test_size (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *over = NULL;
  g_autofree char *at = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  over = g_strdup_printf ("MAIL FROM:<alice@example.test> SIZE=%u", (guint) SM_SMTP_MAX_MESSAGE_SIZE + 1);
  line = sm_test_smtp_command (c, over, "552 5.3.4 ");
  g_clear_pointer (&line, g_free);
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test> SIZE=99999999999999999999999", "552 5.3.4 "));
  at = g_strdup_printf ("MAIL FROM:<alice@example.test> SIZE=%u BODY=8BITMIME", (guint) SM_SMTP_MAX_MESSAGE_SIZE);
  g_free (sm_test_smtp_command (c, at, "250 2.1.0"));
  g_free (sm_test_smtp_command (c, "RSET", "250 "));
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test> FROB=1", "555 "));
}

/* A message bigger than announced is read to its end and refused with 552;
 * the session goes on. */
static void
test_data_too_big (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *head = NULL;
  g_autofree char *chunk = NULL;
  g_autofree char *line = NULL;
  gsize sent = 0;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  head = g_strdup_printf ("From: alice@example.test\r\nSubject: big %s\r\n\r\n", f->marker);
  sm_test_client_send (c, head);
  {
    /* 1000-byte lines, one write of 1 MB at a time. */
    GString *s = g_string_new (NULL);
    for (guint i = 0; i < 1024; i++)
      {
        g_string_append (s, "0123456789012345678901234567890123456789012345678901234567890123456789"
                            "012345678901234567890123456789");
        g_string_append_printf (s, "%0898u\r\n", i);
      }
    chunk = g_string_free (s, FALSE);
  }
  while (sent <= SM_SMTP_MAX_MESSAGE_SIZE)
    {
      sm_test_client_send (c, chunk);
      sent += strlen (chunk);
    }
  sm_test_client_send (c, ".\r\n");
  line = sm_test_smtp_expect (c, "552 5.3.4 ");
  g_clear_pointer (&line, g_free);
  g_free (sm_test_smtp_command (c, "NOOP", "250 "));
  assert_not_delivered ("bob", f->marker);
}

/* A command line over SM_SMTP_MAX_COMMAND_LINE: 500, and the session goes
 * on; one exactly at the limit is a command like any other. */
static void
test_line_too_long (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *at_limit = NULL;
  g_autofree char *over = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, FALSE);
  at_limit = g_strnfill (SM_SMTP_MAX_COMMAND_LINE, 'x');
  memcpy (at_limit, "NOOP ", 5);
  g_free (sm_test_smtp_command (c, at_limit, "250 "));
  over = g_strnfill (SM_SMTP_MAX_COMMAND_LINE + 1, 'x');
  memcpy (over, "NOOP ", 5);
  g_free (sm_test_smtp_command (c, over, "500 5.5.2 "));
  g_clear_pointer (&over, g_free);
  over = g_strnfill (100 * 1024, 'A');
  g_free (sm_test_smtp_command (c, over, "500 5.5.2 "));
  /* Still a working session: log in and send. */
  {
    g_autofree char *b64 = sm_test_sasl_plain (f->proxy->address, f->proxy->local_password);
    g_autofree char *cmd = g_strdup_printf ("AUTH PLAIN %s", b64);
    g_autofree char *msg = make_message ("alice@example.test", f->marker, NULL);
    g_autofree char *line = NULL;
    g_free (sm_test_smtp_command (c, cmd, "235 "));
    line = submit (c, "alice@example.test", "bob@example.test", msg);
    g_assert_true (g_str_has_prefix (line, "250 "));
    assert_delivered_as_sent ("bob", f->marker, msg);
  }
}

/* RFC 3207 §4.2: a command pipelined behind STARTTLS arrived in clear and
 * could have been injected: the proxy refuses it and closes. */
static void
test_starttls_pipelined (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, FALSE);
  sm_test_client_send (c, "STARTTLS\r\nMAIL FROM:<alice@example.test>\r\n");
  g_free (sm_test_smtp_expect (c, "220 "));
  line = sm_test_smtp_expect (c, "554 ");
  g_clear_pointer (&line, g_free);
  g_assert_true (sm_test_client_wait_closed (c, 5000));

  /* The proxy still serves others. */
  {
    g_autoptr(SmTestClient) c2 = sm_test_smtp_open (f->proxy, FALSE);
    g_free (sm_test_smtp_command (c2, "NOOP", "250 "));
  }
}

/* ---- the provider says no, or is not there ------------------------------- */

static const char provider_rcpt_py[] =
  "import smtplib, ssl, sys\n"
  "port, ca, rcpt = sys.argv[1:4]\n"
  "s = smtplib.SMTP('localhost', int(port), timeout=30)\n"
  "s.starttls(context=ssl.create_default_context(cafile=ca))\n"
  "s.login('alice', 'pass')\n"
  "s.mail('alice@example.test')\n"
  "code, text = s.rcpt(rcpt)\n"
  "print(code)\n"
  "print(text.decode())\n"
  "s.quit()\n";

/* An unknown recipient at the provider: the message was queued (250), and
 * the provider's 550 and text reach the sender in a delivery report (RFC
 * 3464); the message goes to nobody (all or nothing: the other recipient
 * was accepted by the provider first). */
static void
test_unknown_recipient (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;
  g_autofree char *direct = NULL;
  g_autofree char *report = NULL;
  g_auto(GStrv) direct_lines = NULL;
  const char *unknown = "nosuchuser@example.test";

  if (f->proxy == NULL)
    return;
  /* What the provider says to this recipient, asked directly. */
  g_assert_cmpint (sm_test_python (NULL, provider_rcpt_py, &direct, NULL, sm_test_env ("SM_TEST_SUBMISSION_PORT"),
                                   sm_test_env ("SM_TEST_CA"), unknown, NULL), ==, 0);
  direct_lines = g_strsplit (direct, "\n", 3);
  g_assert_cmpstr (direct_lines[0], ==, "550");
  g_assert_cmpuint (strlen (direct_lines[1]), >, 10);

  c = sm_test_smtp_open (f->proxy, TRUE);
  msg = make_message ("alice@example.test", f->marker, NULL);
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "RCPT TO:<nosuchuser@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  line = sm_test_smtp_data (c, msg);
  assert_queued (line);
  g_clear_pointer (&line, g_free);
  /* The session goes on. */
  g_free (sm_test_smtp_command (c, "NOOP", "250 "));
  /* The report: the provider's code, enhanced code and text, as the
   * provider said them, for the refused recipient. */
  /* Only the report can bring the (unique) marker into alice's mailbox. */
  report = sm_test_maildir_read ("alice", f->marker, DELIVERY_TIMEOUT_MS);
  if (report == NULL)
    g_error ("no delivery report for %s reached the sender", f->marker);
  g_assert_nonnull (strstr (report, "report-type=delivery-status"));
  {
    g_autofree char *diag = g_strdup_printf ("Final-Recipient: rfc822; %s", unknown);
    g_auto(GStrv) enhanced_text = g_strsplit (direct_lines[1], " ", 2);
    g_autofree char *code = g_strdup_printf ("Diagnostic-Code: smtp; 550 %s", enhanced_text[1]);
    g_autofree char *status = g_strdup_printf ("Status: %s", enhanced_text[0]);
    g_assert_true (g_ascii_isdigit (enhanced_text[0][0]) && enhanced_text[0][1] == '.');
    if (strstr (report, diag) == NULL || strstr (report, code) == NULL || strstr (report, status) == NULL)
      g_error ("the report does not pass on the provider's “%s”:\n%s", direct_lines[1], report);
  }
  assert_not_delivered ("bob", f->marker);
}

static SmTestProxy *
start_with_smtp (const char *smtp_url, gboolean with_ca)
{
  g_autofree char *upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%s\nsmtp = %s\nusername = alice\n%s%s\n",
                                               sm_test_env ("SM_TEST_IMAPS_PORT"), smtp_url,
                                               with_ca ? "ca_file = " : "",
                                               with_ca ? sm_test_env ("SM_TEST_CA") : "");
  return sm_test_proxy_start ("alice@example.test", upstream, sm_test_env ("SM_TEST_PASSWORD"), NULL);
}

/* The provider is down: the message is queued (250) and waits for it;
 * status and the queue say why; the session goes on. */
static void
test_provider_down (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *url = NULL;
  g_autofree char *marker = new_marker ();
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;

  if (!sm_test_require_stack ())
    return;
  url = g_strdup_printf ("smtp://127.0.0.1:%u", sm_test_free_port ());
  p = start_with_smtp (url, TRUE);
  c = sm_test_smtp_open (p, TRUE);
  msg = make_message ("alice@example.test", marker, NULL);
  line = submit (c, "alice@example.test", "bob@example.test", msg);
  assert_queued (line);
  g_clear_pointer (&line, g_free);
  g_free (sm_test_smtp_command (c, "RSET", "250 "));
  g_free (sm_test_smtp_command (c, "QUIT", "221 "));
  {
    const char *needles[] = { "Cannot reach the provider", "\"state\" : \"queued\"", NULL };
    wait_queue_error (p, needles);
  }
  /* status says so. */
  {
    g_autofree char *out = NULL;
    g_assert_cmpint (sm_test_cli (p, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
    g_assert_nonnull (strstr (out, "\"upstream_reachable\" : false"));
    g_assert_nonnull (strstr (out, "\"queue_size\" : 1"));
  }
}

/* The provider's certificate does not verify (no ca_file for the stack's
 * private CA): queued, and the queue names the certificate problem. */
static void
test_untrusted_certificate (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *url = NULL;
  g_autofree char *marker = new_marker ();
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;

  if (!sm_test_require_stack ())
    return;
  url = g_strdup_printf ("smtp://localhost:%s", sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  p = start_with_smtp (url, FALSE);
  c = sm_test_smtp_open (p, TRUE);
  msg = make_message ("alice@example.test", marker, NULL);
  line = submit (c, "alice@example.test", "bob@example.test", msg);
  assert_queued (line);
  g_clear_pointer (&line, g_free);
  {
    const char *needles[] = { "certificate", "not signed by a trusted authority", NULL };
    wait_queue_error (p, needles);
  }
  g_free (sm_test_smtp_command (c, "QUIT", "221 "));
  assert_not_delivered ("bob", marker);
}

/* smtps:// to the stack does not exist; smtp:// with STARTTLS does (the
 * default fixture).  Implicit TLS to a plain port fails cleanly. */
static void
test_implicit_tls_to_plain_port (void)
{
  g_autoptr(SmTestProxy) p = NULL;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *url = NULL;
  g_autofree char *marker = new_marker ();
  g_autofree char *msg = NULL;
  g_autofree char *line = NULL;

  if (!sm_test_require_stack ())
    return;
  url = g_strdup_printf ("smtps://localhost:%s", sm_test_env ("SM_TEST_SUBMISSION_PORT"));
  p = start_with_smtp (url, TRUE);
  c = sm_test_smtp_open (p, TRUE);
  msg = make_message ("alice@example.test", marker, NULL);
  line = submit (c, "alice@example.test", "bob@example.test", msg);
  assert_queued (line);
  {
    const char *needles[] = { "TLS", NULL };
    wait_queue_error (p, needles);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/smtp/e2e/curl", Fixture, NULL, fixture_setup, test_curl, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/signature-verifies-with-gpg", Fixture, NULL, fixture_setup, test_signature_verifies,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/swaks-starttls-auth-login", Fixture, NULL, fixture_setup, test_swaks,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/python-smtplib-starttls", Fixture, NULL, fixture_setup, test_python,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/wrong-password", Fixture, NULL, fixture_setup, test_wrong_password,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/too-many-auth-failures", Fixture, NULL, fixture_setup,
              test_too_many_auth_failures, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/mail-before-auth", Fixture, NULL, fixture_setup, test_mail_before_auth,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/mail-from-someone-else", Fixture, NULL, fixture_setup,
              test_mail_from_someone_else, fixture_teardown);
  for (gsize i = 0; i < G_N_ELEMENTS (refusals); i++)
    g_test_add (refusals[i].path, Fixture, &refusals[i], fixture_setup, test_refusal, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/personal-address", Fixture, NULL, fixture_setup_personal,
              test_personal_address, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/pipelining", Fixture, NULL, fixture_setup, test_pipelining, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/size", Fixture, NULL, fixture_setup, test_size, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/data-too-big", Fixture, NULL, fixture_setup, test_data_too_big,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/line-too-long", Fixture, NULL, fixture_setup, test_line_too_long,
              fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/starttls-pipelined-refused", Fixture, NULL, fixture_setup,
              test_starttls_pipelined, fixture_teardown);
  g_test_add ("/proxy/smtp/e2e/unknown-recipient", Fixture, NULL, fixture_setup, test_unknown_recipient,
              fixture_teardown);
  g_test_add_func ("/proxy/smtp/e2e/provider-down", test_provider_down);
  g_test_add_func ("/proxy/smtp/e2e/untrusted-certificate", test_untrusted_certificate);
  g_test_add_func ("/proxy/smtp/e2e/implicit-tls-to-plain-port", test_implicit_tls_to_plain_port);
  return g_test_run ();
}
