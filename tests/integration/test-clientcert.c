/* test-clientcert.c: [upstream] auth = certificate (issue 7) with the real
 * proxy, CLI, Dovecot and Postfix of tests/stack/mailstack.sh.
 *
 * Dovecot asks for a certificate of the stack's client CA and takes the
 * user from its commonName for AUTHENTICATE EXTERNAL; Postfix's
 * SM_TEST_SUBMISSION_CERT_PORT relays for a verified client certificate.
 * - A PEM file with certificate and key: a mail client's LOGIN with the
 *   local password reaches alice's mailbox, and Dovecot logged an EXTERNAL
 *   login for alice; a message submitted through the proxy is delivered.
 * - A password-protected PKCS#12 file: refused naming set-pin until its
 *   password is stored with set-pin, then the login works.
 * - The same with the key on a softhsm2 PKCS#11 token (a private
 *   SOFTHSM2_CONF), its PIN stored with `securemail account set-pin`; the
 *   PIN appears in no log.
 * - A wrong PIN, or none: the client gets NO [UNAVAILABLE] naming
 *   set-pin; the wrong PIN is offered once only, and after storing the right
 *   one the next login works without restarting the proxy.
 * - A certificate of another CA (rogue) and a certificate file that has
 *   disappeared: NO [UNAVAILABLE] naming [upstream] client_certificate.
 * - `securemail doctor` names the certificate, its subject and expiry, and
 *   logs in with it (from a file and from the token).
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "sm-test-harness.h"

/* How long Dovecot's log may lag behind a login. */
#define DOVECOT_LOG_WAIT_MS 5000

#define DELIVERY_TIMEOUT_MS 60000
#define TOKEN_PIN           SM_TEST_TOKEN_PIN
#define TOKEN_WRONG_PIN     "917364"
#define TOKEN_CERT_URI      SM_TEST_TOKEN_CERT_URI

typedef struct {
  SmTestProxy *proxy;
  char *tmp;          /* softhsm2 token directory, copies of certificates */
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->tmp = g_dir_make_tmp ("sm-clientcert-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autofree char *rm = NULL;

  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  if (f->tmp != NULL)
    {
      const char *argv[] = { "rm", "-rf", f->tmp, NULL };
      g_assert_cmpint (sm_test_run (argv, NULL, NULL, NULL, NULL), ==, 0);
    }
  g_unsetenv ("SOFTHSM2_CONF");
  g_free (f->tmp);
}

static char *
client_cert_file (const char *name)
{
  return g_build_filename (sm_test_env ("SM_TEST_CLIENT_CERT_DIR"), name, NULL);
}

static void
start_proxy_as (Fixture *f, const char *address, const char *client_certificate)
{
  g_autofree char *upstream = sm_test_cert_upstream (client_certificate);

  /* No provider password: auth = certificate needs none. */
  f->proxy = sm_test_proxy_start (address, upstream, NULL, NULL);
}

static void
start_proxy (Fixture *f, const char *client_certificate)
{
  start_proxy_as (f, "alice@example.test", client_certificate);
}

static void
store_pin (Fixture *f, const char *pin)
{
  g_autofree char *input = g_strdup_printf ("%s\n", pin);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (sm_test_cli (f->proxy, input, &out, &err, "account", "set-pin", "--stdin", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "PIN"));
  g_assert_null (strstr (out, pin));
}

/* How many EXTERNAL logins of alice Dovecot has logged so far. */
static guint
dovecot_external_logins (void)
{
  g_autofree char *path = g_build_filename (sm_test_env ("SM_TEST_STACK"), "dovecot.log", NULL);
  g_autofree char *log = NULL;
  guint n = 0;

  if (!g_file_get_contents (path, &log, NULL, NULL))
    return 0;
  for (const char *p = log; (p = strstr (p, "user=<alice>, method=EXTERNAL")) != NULL; p++)
    n++;
  return n;
}

/* A mail client's LOGIN with the local password; returns the tagged reply
 * and leaves the session open in *client. */
static char *
imap_login (SmTestProxy *p, SmTestClient **client)
{
  g_autofree char *greeting = NULL;

  *client = sm_test_client_connect (p->imap_port);
  greeting = sm_test_client_line (*client);
  g_assert_nonnull (greeting);
  return sm_test_imap_login (*client, p, "a1", NULL);
}

static void
assert_login_works (SmTestProxy *p)
{
  g_autoptr(SmTestClient) c = NULL;
  guint before = dovecot_external_logins ();
  g_autofree char *line = imap_login (p, &c);
  g_autofree char *select = NULL;

  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  sm_test_client_send (c, "a2 SELECT INBOX\r\n");
  select = sm_test_client_until (c, "a2 ");
  g_assert_nonnull (select);
  g_assert_true (g_str_has_prefix (select, "a2 OK"));
  /* The provider saw a certificate login, not a password.  Dovecot's log
   * is written by its log process, a moment after the login: poll. */
  {
    gint64 deadline = g_get_monotonic_time () + DOVECOT_LOG_WAIT_MS * 1000;
    while (dovecot_external_logins () <= before && g_get_monotonic_time () < deadline)
      g_usleep (50 * 1000);
  }
  g_assert_cmpuint (dovecot_external_logins (), >, before);
}

/* The login is refused with NO [UNAVAILABLE] and text containing @needle. */
static void
assert_login_refused (SmTestProxy *p, const char *needle)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = imap_login (p, &c);

  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "a1 NO [UNAVAILABLE]") || strstr (line, needle) == NULL)
    g_error ("expected NO [UNAVAILABLE] with “%s”, got: %s", needle, line);
}

static void
assert_not_in_log (SmTestProxy *p, const char *secret)
{
  g_autofree char *log = NULL;

  g_assert_true (g_file_get_contents (p->log_path, &log, NULL, NULL));
  g_assert_null (strstr (log, secret));
}

static void
submit_and_wait (SmTestProxy *p)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *marker = g_strdup_printf ("clientcert-%s", uuid);
  g_autofree char *message = g_strdup_printf ("From: alice@example.test\r\nTo: bob@example.test\r\n"
                                              "Subject: %s\r\n\r\nsent with a client certificate\r\n",
                                              marker);
  g_autofree char *reply = sm_test_smtp_submit (p, "alice@example.test", "bob@example.test", message);

  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "250"));
  g_assert_true (sm_test_maildir_wait ("bob", marker, DELIVERY_TIMEOUT_MS));
}

/* ---- certificate and key in a PEM file -------------------------------------- */

static void
test_file_imap_smtp (Fixture *f, gconstpointer data)
{
  g_autofree char *cert = NULL;

  if (!sm_test_require_stack ())
    return;
  cert = client_cert_file ("alice-combined.pem");
  start_proxy (f, cert);
  assert_login_works (f->proxy);
  submit_and_wait (f->proxy);
}

static void
test_file_rogue (Fixture *f, gconstpointer data)
{
  if (!sm_test_require_stack ())
    return;
  start_proxy (f, sm_test_env ("SM_TEST_ROGUE_CLIENT_CERT"));
  assert_login_refused (f->proxy, "client_certificate");
}

static void
test_file_gone (Fixture *f, gconstpointer data)
{
  g_autofree char *orig = NULL;
  g_autofree char *copy = NULL;
  g_autofree char *pem = NULL;
  gsize len;

  if (!sm_test_require_stack ())
    return;
  orig = client_cert_file ("alice-combined.pem");
  copy = g_build_filename (f->tmp, "alice.pem", NULL);
  g_assert_true (g_file_get_contents (orig, &pem, &len, NULL));
  g_assert_true (g_file_set_contents_full (copy, pem, len, G_FILE_SET_CONTENTS_NONE, 0600, NULL));
  start_proxy (f, copy);
  g_assert_cmpint (g_unlink (copy), ==, 0);
  assert_login_refused (f->proxy, "client certificate");
  assert_login_refused (f->proxy, copy);
}

/* A password-protected PKCS#12 file (what certstore and most CAs hand out):
 * its password is the "PIN" stored with set-pin. */
static void
test_pkcs12 (Fixture *f, gconstpointer data)
{
  g_autofree char *key = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *p12 = NULL;

  if (!sm_test_require_stack ())
    return;
  key = client_cert_file ("alice.key");
  cert = client_cert_file ("alice.pem");
  p12 = g_build_filename (f->tmp, "alice.p12", NULL);
  {
    const char *argv[] = { "openssl", "pkcs12", "-export", "-in", cert, "-inkey", key, "-name", "alice",
                           "-passout", "env:P12PASS", "-out", p12, NULL };
    const char *envp[] = { "P12PASS=" TOKEN_PIN, NULL };
    sm_test_must_run (argv, envp);
  }
  /* An account of its own: the keyring lives as long as this binary, and
   * the certificate, not the address, names the provider's user. */
  start_proxy_as (f, "p12@example.test", p12);
  assert_login_refused (f->proxy, "set-pin");
  store_pin (f, TOKEN_PIN);
  assert_login_works (f->proxy);
  assert_not_in_log (f->proxy, TOKEN_PIN);
}

static void
test_doctor (Fixture *f, gconstpointer data)
{
  g_autofree char *cert = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *json = NULL;

  if (!sm_test_require_stack ())
    return;
  cert = client_cert_file ("alice-combined.pem");
  start_proxy (f, cert);
  if (sm_test_cli (f->proxy, NULL, &out, &err, "doctor", NULL) != 0)
    g_error ("doctor failed:\n%s\n%s", out, err);
  g_assert_nonnull (strstr (out, cert));
  g_assert_nonnull (strstr (out, "CN=alice"));
  g_assert_nonnull (strstr (out, "valid until"));
  g_assert_nonnull (strstr (out, "logged in with the client certificate"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &json, &err, "doctor", "--json", NULL), ==, 0);
  g_assert_nonnull (strstr (json, "\"client-certificate\""));
}

/* ---- the key on a PKCS#11 token (softhsm2) ------------------------------------ */

/* The daemon's TokenPinNeeded, as `securemail status --json` shows it. */
static gboolean
token_pin_needed (Fixture *f)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (sm_test_cli (f->proxy, NULL, &out, &err, "--json", "status", NULL) != 0)
    g_error ("securemail status failed: %s", err);
  if (strstr (out, "\"token_pin_needed\" : true") != NULL)
    return TRUE;
  g_assert_nonnull (strstr (out, "\"token_pin_needed\" : false"));
  return FALSE;
}

/* A fresh token in f->tmp (see sm_test_make_token()). */
static gboolean
make_token (Fixture *f)
{
  return sm_test_make_token (f->tmp);
}

static void
test_pkcs11_imap_smtp (Fixture *f, gconstpointer data)
{
  if (!sm_test_require_stack () || !make_token (f))
    return;
  start_proxy (f, TOKEN_CERT_URI);
  store_pin (f, TOKEN_PIN);
  assert_login_works (f->proxy);
  /* The stored PIN was taken: nothing to type. */
  g_assert_false (token_pin_needed (f));
  submit_and_wait (f->proxy);
  assert_not_in_log (f->proxy, TOKEN_PIN);
  /* The CLI's doctor signs with the token too (no main loop runs there). */
  {
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "doctor", NULL), ==, 0);
    g_assert_nonnull (strstr (out, TOKEN_CERT_URI));
    g_assert_nonnull (strstr (out, "logged in with the client certificate"));
    g_assert_null (strstr (out, TOKEN_PIN));
  }
}

static void
test_pkcs11_wrong_pin (Fixture *f, gconstpointer data)
{
  if (!sm_test_require_stack () || !make_token (f))
    return;
  start_proxy (f, TOKEN_CERT_URI);
  store_pin (f, TOKEN_WRONG_PIN);
  assert_login_refused (f->proxy, "set-pin");
  assert_login_refused (f->proxy, "refused the PIN");
  /* The keyring is read at each handshake: no restart needed. */
  store_pin (f, TOKEN_PIN);
  assert_login_works (f->proxy);
  assert_not_in_log (f->proxy, TOKEN_WRONG_PIN);
  assert_not_in_log (f->proxy, TOKEN_PIN);
}

static void
test_pkcs11_no_pin (Fixture *f, gconstpointer data)
{
  if (!sm_test_require_stack () || !make_token (f))
    return;
  /* The keyring lives as long as this test binary: an account no other
   * test stored a PIN for (the same mailbox as alice@example.test). */
  start_proxy_as (f, "alice@localhost", TOKEN_CERT_URI);
  assert_login_refused (f->proxy, "set-pin");
  assert_login_refused (f->proxy, "unlock --pin");
}

/* `securemail @args...` with @input on stdin must succeed and not echo the PIN. */
#define cli_ok(f, input, ...)                                                  \
  G_STMT_START {                                                               \
    g_autofree char *out_ = sm_test_cli_ok ((f)->proxy, (input), __VA_ARGS__, NULL); \
    g_assert_null (strstr (out_, TOKEN_PIN));                                  \
  } G_STMT_END

/* The token PIN typed at `securemail unlock --pin` instead of stored: used
 * until the next lock, forgotten then; a wrong one is offered once and
 * forgotten, so the token does not lock itself; never in the keyring or the
 * log. */
static void
test_pkcs11_pin_at_unlock (Fixture *f, gconstpointer data)
{
  g_autofree char *typed = g_strdup_printf ("\n%s\n", TOKEN_PIN);
  g_autofree char *wrong = g_strdup_printf ("\n%s\n", TOKEN_WRONG_PIN);

  if (!sm_test_require_stack () || !make_token (f))
    return;
  /* An account no other test stored a PIN for (see test_pkcs11_no_pin). */
  start_proxy_as (f, "alice@localhost", TOKEN_CERT_URI);
  /* Started unlocked (the test policy) with no PIN anywhere: wanted. */
  g_assert_true (token_pin_needed (f));
  assert_login_refused (f->proxy, "unlock --pin");
  g_assert_true (token_pin_needed (f));
  cli_ok (f, typed, "unlock", "--stdin", "--pin");
  g_assert_false (token_pin_needed (f));
  assert_login_works (f->proxy);
  g_assert_false (token_pin_needed (f));
  /* Locked and unlocked without a PIN: the typed one is gone, and the
   * unlock says that the token wants one. */
  cli_ok (f, NULL, "lock");
  g_assert_false (token_pin_needed (f));
  {
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_assert_cmpint (sm_test_cli (f->proxy, "\n", &out, &err, "unlock", "--stdin", NULL), ==, 0);
    g_assert_nonnull (strstr (err, "unlock --pin"));
  }
  g_assert_true (token_pin_needed (f));
  assert_login_refused (f->proxy, "unlock --pin");
  /* A wrong PIN: refused once by the token, then not offered again. */
  cli_ok (f, wrong, "unlock", "--stdin", "--pin");
  g_assert_false (token_pin_needed (f));
  assert_login_refused (f->proxy, "refused the PIN typed at unlock");
  g_assert_true (token_pin_needed (f));
  assert_login_refused (f->proxy, "unlock --pin");
  cli_ok (f, typed, "unlock", "--stdin", "--pin");
  assert_login_works (f->proxy);
  g_assert_false (token_pin_needed (f));
  {
    /* Typed, not stored. */
    const char *argv[] = { "secret-tool", "lookup", "kind", "client-certificate-pin", "account", "alice@localhost",
                           NULL };
    g_autofree char *out = NULL;
    sm_test_run (argv, NULL, NULL, &out, NULL);
    g_assert_true (out == NULL || *out == '\0');
  }
  assert_not_in_log (f->proxy, TOKEN_PIN);
  assert_not_in_log (f->proxy, TOKEN_WRONG_PIN);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/clientcert/file/imap-smtp", Fixture, NULL, fixture_setup, test_file_imap_smtp,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/file/rogue", Fixture, NULL, fixture_setup, test_file_rogue,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/file/gone", Fixture, NULL, fixture_setup, test_file_gone,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/file/pkcs12", Fixture, NULL, fixture_setup, test_pkcs12, fixture_teardown);
  g_test_add ("/proxy/clientcert/doctor", Fixture, NULL, fixture_setup, test_doctor, fixture_teardown);
  g_test_add ("/proxy/clientcert/pkcs11/imap-smtp", Fixture, NULL, fixture_setup, test_pkcs11_imap_smtp,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/pkcs11/wrong-pin", Fixture, NULL, fixture_setup, test_pkcs11_wrong_pin,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/pkcs11/no-pin", Fixture, NULL, fixture_setup, test_pkcs11_no_pin,
              fixture_teardown);
  g_test_add ("/proxy/clientcert/pkcs11/pin-at-unlock", Fixture, NULL, fixture_setup, test_pkcs11_pin_at_unlock,
              fixture_teardown);
  return g_test_run ();
}
