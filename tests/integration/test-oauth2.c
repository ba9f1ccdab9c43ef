/* test-oauth2.c: [upstream] auth = oauth2 (issue 7) with the real proxy, CLI,
 * Dovecot and Postfix, and the provider's OAuth server on loopback
 * (oauth2-provider.py: token, authorization, device and introspection
 * endpoints; Dovecot validates every bearer token at the latter).
 *
 * Needs the stack started with SM_STACK_OAUTH2_PORT (mailstack.sh), which
 * exports SM_TEST_OAUTH2_PORT; skips without it.
 *
 * - IMAP through the proxy logs in upstream with OAUTHBEARER; a second
 *   login reuses the cached access token (the token endpoint is not asked).
 * - SMTP: a message submitted to the proxy is relayed with OAUTHBEARER and
 *   delivered (no provider password is stored at all).
 * - An access token past its lifetime (less the margin) is refreshed: the
 *   token endpoint is hit again and the login works; a rotated refresh
 *   token replaces the old one in the keyring.
 * - A revoked grant: the next login is refused with NO [UNAVAILABLE] naming
 *   `securemail account oauth2-login`, D-Bus ConsentNeeded turns TRUE, SMTP
 *   MAIL gets 454 4.7.0, `securemail status` says so; OAuth2SignedIn (what
 *   the CLI calls after a new sign-in) clears it.
 * - `securemail account oauth2-login --device` (RFC 8628): shows the code,
 *   polls no faster than the interval, honours slow_down, stores the
 *   refresh token it gets, and the proxy logs in with it.
 * - `securemail account oauth2-login` (PKCE in the browser; the browser is
 *   oauth2-browser.py through $BROWSER): the code comes back to the CLI's
 *   loopback listener and is exchanged with the verifier; a redirect with a
 *   forged state is refused and nothing is exchanged or stored.
 * - Against a fake IMAP provider that offers only XOAUTH2 and no SASL-IR
 *   and refuses the first token with an error challenge: the proxy answers
 *   the challenge with the empty response, gets a fresh token from the token
 *   endpoint and logs in with it on the same connection.
 * - No token the provider issued ever appears in the proxy's log or the
 *   CLI's output (checked after every test).
 */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "sm-test-harness.h"

#define CLIENT_ID           "securemail-test-client"
#define PROVIDER_WAIT_MS    10000
#define DELIVERY_TIMEOUT_MS 60000
#define SHORT_LIFETIME_S    4     /* margin = 1 s (a quarter): refreshed after 3 s */

typedef struct {
  SmTestProxy *proxy;
  GSubprocess *provider;
  guint16 port;
  char *address;
  GString *cli_output;        /* everything the CLI printed, for the token check */
} Fixture;

/* ---- the provider's OAuth server ------------------------------------------ */

/* Calls the provider's test control endpoint; returns the JSON reply. */
static JsonObject *
provider_call (Fixture *f, const char *method, const char *path, const char *json_body)
{
  static const char script[] =
    "import sys, urllib.request\n"
    "port, method, path, body = sys.argv[1:5]\n"
    "req = urllib.request.Request('http://127.0.0.1:%s%s' % (port, path), method=method,\n"
    "    data=body.encode() if method == 'POST' else None, headers={'Content-Type': 'application/json'})\n"
    "sys.stdout.write(urllib.request.urlopen(req, timeout=10).read().decode())\n";
  g_autofree char *port = g_strdup_printf ("%u", f->port);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (sm_test_python (NULL, script, &out, &err, port, method, path, json_body ? json_body : "{}", NULL),
                   ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static gint64
provider_stat (Fixture *f, const char *name)
{
  g_autoptr(JsonObject) o = provider_call (f, "GET", "/control/stats", NULL);
  return json_object_get_int_member (json_object_get_object_member (o, "stats"), name);
}

static void
start_provider (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  const char *script = g_getenv ("SM_OAUTH2_PROVIDER");
  g_autofree char *port = g_strdup_printf ("%u", f->port);
  GInputStream *out;
  char buf[16] = { 0 };
  gssize n;

  g_assert_nonnull (script);
  f->provider = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "/usr/bin/python3", script, port,
                                  CLIENT_ID, NULL);
  g_assert_no_error (error);
  out = g_subprocess_get_stdout_pipe (f->provider);
  n = g_input_stream_read (out, buf, sizeof buf - 1, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, >, 0);
  g_assert_true (g_str_has_prefix (buf, "ready"));
}

/* Stores a refresh token in the keyring as `securemail account
 * oauth2-login` would, with libsecret's own tool (schema
 * org.securemail.Secret, kind oauth2-refresh-token). */
static void
store_refresh_token (Fixture *f, const char *token)
{
  const char *argv[] = { "secret-tool", "store", "--label=SecureMail test sign-in", "xdg:schema", "org.securemail.Secret",
                         "kind", "oauth2-refresh-token",
                         "account", f->address, NULL };
  g_autofree char *err = NULL;

  g_assert_cmpint (sm_test_run (argv, NULL, token, NULL, &err), ==, 0);
}

static char *
keyring_refresh_token (Fixture *f)
{
  const char *argv[] = { "secret-tool", "lookup", "kind", "oauth2-refresh-token", "account", f->address, NULL };
  char *out = NULL;

  g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, NULL), ==, 0);
  return out;
}

/* ---- fixture --------------------------------------------------------------- */

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL;
  g_autofree char *extra = NULL;
  g_autoptr(JsonObject) seed = NULL;

  f->address = g_strdup ("alice@example.test");
  f->cli_output = g_string_new (NULL);
  if (!sm_test_require_stack ())
    return;
  if (g_getenv ("SM_TEST_OAUTH2_PORT") == NULL)
    {
      g_test_skip ("the mail stack was started without SM_STACK_OAUTH2_PORT");
      return;
    }
  f->port = sm_test_env_port ("SM_TEST_OAUTH2_PORT");
  start_provider (f);
  if (data != NULL)
    {
      g_autoptr(JsonObject) configured = provider_call (f, "POST", "/control/config", data);
    }
  seed = provider_call (f, "POST", "/control/seed", "{\"username\": \"alice\"}");
  store_refresh_token (f, json_object_get_string_member (seed, "refresh_token"));

  upstream = sm_test_upstream_section ("alice");
  extra = g_strdup_printf ("[oauth2]\n"
                           "token_endpoint = http://127.0.0.1:%u/token\n"
                           "authorization_endpoint = http://127.0.0.1:%u/authorize\n"
                           "device_authorization_endpoint = http://127.0.0.1:%u/device\n"
                           "client_id = " CLIENT_ID "\n"
                           "scope = mail offline_access\n",
                           f->port, f->port, f->port);
  {
    g_autofree char *with_auth = g_strconcat (upstream, "auth = oauth2\n", NULL);
    /* No provider password at all: every upstream login must be OAuth2. */
    f->proxy = sm_test_proxy_start (f->address, with_auth, NULL, extra);
  }
  sm_test_proxy_wait_dbus (f->proxy);
}

/* No token the provider issued may be in the proxy's log or anything the
 * CLI printed (SPEC.md "Files": no secret in a log). */
static void
check_no_token_leaked (Fixture *f)
{
  g_autoptr(JsonObject) stats = provider_call (f, "GET", "/control/stats", NULL);
  JsonArray *issued = json_object_get_array_member (stats, "issued");
  g_autofree char *log = NULL;

  g_assert_true (g_file_get_contents (f->proxy->log_path, &log, NULL, NULL));
  g_assert_cmpuint (json_array_get_length (issued), >, 0);
  for (guint i = 0; i < json_array_get_length (issued); i++)
    {
      const char *token = json_array_get_string_element (issued, i);
      g_assert_null (strstr (log, token));
      g_assert_null (strstr (f->cli_output->str, token));
    }
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->proxy != NULL && f->provider != NULL)
    check_no_token_leaked (f);
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  if (f->provider != NULL)
    {
      g_subprocess_force_exit (f->provider);
      g_subprocess_wait (f->provider, NULL, NULL);
      g_clear_object (&f->provider);
    }
  g_free (f->address);
  g_string_free (f->cli_output, TRUE);
}

/* ---- helpers --------------------------------------------------------------- */

/* Logs in to the proxy's IMAP listener (which logs in upstream) and, when
 * that worked, SELECTs INBOX; returns the tagged reply to LOGIN. */
static char *
imap_login (Fixture *f)
{
  g_autoptr(SmTestClient) c = sm_test_client_connect (f->proxy->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);
  char *reply;

  g_assert_nonnull (greeting);
  reply = sm_test_imap_login (c, f->proxy, "a1", NULL);
  if (g_str_has_prefix (reply, "a1 OK"))
    {
      g_autofree char *sel = NULL;
      sm_test_client_send (c, "a2 SELECT INBOX\r\n");
      sel = sm_test_client_until (c, "a2 ");
      g_assert_true (g_str_has_prefix (sel, "a2 OK"));
      sm_test_client_send (c, "a3 LOGOUT\r\n");
    }
  return reply;
}

static void
assert_login_ok (Fixture *f)
{
  g_autofree char *reply = imap_login (f);
  if (!g_str_has_prefix (reply, "a1 OK"))
    g_error ("login through the proxy failed: %s", reply);
}

static gboolean
consent_needed (Fixture *f)
{
  const char *argv[] = { "gdbus", "call", "--session", "--dest", "org.securemail.Proxy", "--object-path",
                         "/org/securemail/Proxy", "--method", "org.freedesktop.DBus.Properties.Get",
                         "org.securemail.Proxy1", "ConsentNeeded", NULL };
  g_autofree char *out = NULL;

  g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, NULL), ==, 0);
  return strstr (out, "true") != NULL;
}

static void
cli (Fixture *f, int expected, char **out, ...)
{
  g_autofree char *o = NULL;
  g_autofree char *e = NULL;
  const char *args[8] = { 0 };
  va_list ap;
  guint n = 0;
  int rc;

  va_start (ap, out);
  for (const char *a = va_arg (ap, const char *); a != NULL && n < G_N_ELEMENTS (args) - 1;
       a = va_arg (ap, const char *))
    args[n++] = a;
  va_end (ap);
  rc = sm_test_cli (f->proxy, NULL, &o, &e, args[0], args[1], args[2], args[3], NULL);
  g_string_append_printf (f->cli_output, "%s\n%s\n", o, e);
  if (rc != expected)
    g_error ("securemail %s: exit %d, expected %d; stderr: %s", args[0], rc, expected, e);
  if (out)
    *out = g_strconcat (o, e, NULL);
}

/* ---- tests ----------------------------------------------------------------- */

static void
test_imap_login (Fixture *f, gconstpointer data)
{
  g_autofree char *dovecot_log = NULL;
  g_autofree char *path = NULL;

  if (f->proxy == NULL)
    return;
  assert_login_ok (f);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 1);
  g_assert_cmpint (provider_stat (f, "introspect_active"), >=, 1);
  /* The cached access token serves the next login. */
  assert_login_ok (f);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 1);
  g_assert_cmpint (provider_stat (f, "introspect_active"), >=, 2);
  g_assert_false (consent_needed (f));
  /* Dovecot offers both: the standard mechanism is the one used. */
  path = g_build_filename (sm_test_env ("SM_TEST_STACK"), "dovecot.log", NULL);
  g_assert_true (g_file_get_contents (path, &dovecot_log, NULL, NULL));
  g_assert_nonnull (strstr (dovecot_log, "method=OAUTHBEARER"));
}

static void
test_smtp_submit (Fixture *f, gconstpointer data)
{
  g_autofree char *marker = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *uuid = g_uuid_string_random ();

  if (f->proxy == NULL)
    return;
  marker = g_strdup_printf ("oauth2-smtp-%s", uuid);
  msg = g_strdup_printf ("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\n\r\nhello\r\n", marker);
  reply = sm_test_smtp_submit (f->proxy, "alice@example.test", "bob@example.test", msg);
  g_assert_true (g_str_has_prefix (reply, "250"));
  g_assert_true (sm_test_maildir_wait ("bob", marker, DELIVERY_TIMEOUT_MS));
  g_assert_cmpint (provider_stat (f, "refresh"), >=, 1);
  g_assert_cmpint (provider_stat (f, "introspect_active"), >=, 1);
}

static void
test_refresh_expired (Fixture *f, gconstpointer data)
{
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  if (f->proxy == NULL)
    return;
  first = keyring_refresh_token (f);
  assert_login_ok (f);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 1);
  /* The provider rotates refresh tokens: the new one is in the keyring. */
  second = keyring_refresh_token (f);
  g_assert_cmpstr (first, !=, second);
  g_assert_cmpuint (strlen (second), >, 0);

  assert_login_ok (f);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 1);
  /* Past the lifetime less the margin the token is renewed first. */
  g_usleep (SHORT_LIFETIME_S * G_USEC_PER_SEC);
  assert_login_ok (f);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 2);
  g_assert_false (consent_needed (f));
}

static void
test_revoked (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) smtp = NULL;
  g_autoptr(JsonObject) revoked = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *mail = NULL;
  g_autofree char *status = NULL;

  if (f->proxy == NULL)
    return;
  assert_login_ok (f);
  g_assert_false (consent_needed (f));
  revoked = provider_call (f, "POST", "/control/revoke", NULL);

  /* The cached access token is refused by Dovecot now, the refresh gets
   * invalid_grant: only the user can fix that, and the client is told. */
  reply = imap_login (f);
  g_assert_true (g_str_has_prefix (reply, "a1 NO [UNAVAILABLE]"));
  g_assert_nonnull (strstr (reply, "securemail account oauth2-login"));
  g_assert_nonnull (strstr (reply, "invalid_grant"));
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 2);
  g_assert_true (consent_needed (f));
  /* The refused refresh token is not sent again: the next login is
   * refused at once, the token endpoint not asked. */
  g_free (reply);
  reply = imap_login (f);
  g_assert_true (g_str_has_prefix (reply, "a1 NO [UNAVAILABLE]"));
  g_assert_nonnull (strstr (reply, "invalid_grant"));
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 2);

  cli (f, 0, &status, "status", NULL);
  g_assert_nonnull (strstr (status, "oauth2-login"));

  smtp = sm_test_smtp_open (f->proxy, TRUE);
  mail = sm_test_smtp_command (smtp, "MAIL FROM:<alice@example.test>", "454 4.7.0");
  g_assert_nonnull (strstr (mail, "oauth2-login"));

  /* A new sign-in (here: seeded by hand) and the CLI's call clear it. */
  {
    g_autoptr(JsonObject) seed = provider_call (f, "POST", "/control/seed", "{\"username\": \"alice\"}");
    const char *argv[] = { "gdbus", "call", "--session", "--dest", "org.securemail.Proxy", "--object-path",
                           "/org/securemail/Proxy", "--method", "org.securemail.Proxy1.OAuth2SignedIn", NULL };
    g_autofree char *err = NULL;
    store_refresh_token (f, json_object_get_string_member (seed, "refresh_token"));
    if (sm_test_run (argv, NULL, NULL, NULL, &err) != 0)
      g_error ("OAuth2SignedIn failed: %s", err);
  }
  g_assert_false (consent_needed (f));
  assert_login_ok (f);
}

/* The newest refresh token the provider issued. */
static char *
last_issued_refresh_token (Fixture *f)
{
  g_autoptr(JsonObject) stats = provider_call (f, "GET", "/control/stats", NULL);
  JsonArray *issued = json_object_get_array_member (stats, "issued");
  const char *last = NULL;

  for (guint i = 0; i < json_array_get_length (issued); i++)
    if (g_str_has_prefix (json_array_get_string_element (issued, i), "rt-"))
      last = json_array_get_string_element (issued, i);
  g_assert_nonnull (last);
  return g_strdup (last);
}

static void
test_login_device (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *stored = NULL;
  g_autofree char *issued = NULL;
  g_autofree char *uri = NULL;

  if (f->proxy == NULL)
    return;
  cli (f, 0, &out, "account", "oauth2-login", "--device", NULL);
  uri = g_strdup_printf ("http://127.0.0.1:%u/activate", f->port);
  g_assert_nonnull (strstr (out, uri));
  g_assert_true (g_regex_match_simple ("[0-9]{4}-[0-9]{4}", out, 0, 0));
  g_assert_cmpint (provider_stat (f, "pending"), ==, 1);
  g_assert_cmpint (provider_stat (f, "slow_down"), ==, 1);
  g_assert_cmpint (provider_stat (f, "too_fast"), ==, 0);
  g_assert_cmpint (provider_stat (f, "device_code"), ==, 3);

  stored = keyring_refresh_token (f);
  issued = last_issued_refresh_token (f);
  g_assert_cmpstr (stored, ==, issued);
  assert_login_ok (f);
}

static void
test_login_browser (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *stored = NULL;
  g_autofree char *issued = NULL;

  if (f->proxy == NULL)
    return;
  g_setenv ("BROWSER", g_getenv ("SM_OAUTH2_BROWSER"), TRUE);
  cli (f, 0, &out, "account", "oauth2-login", NULL);
  g_unsetenv ("BROWSER");
  g_assert_nonnull (strstr (out, "code_challenge_method=S256"));
  g_assert_cmpint (provider_stat (f, "authorization_code"), ==, 1);
  stored = keyring_refresh_token (f);
  issued = last_issued_refresh_token (f);
  g_assert_cmpstr (stored, ==, issued);
  assert_login_ok (f);
}

static void
test_login_browser_forged_state (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  if (f->proxy == NULL)
    return;
  before = keyring_refresh_token (f);
  g_setenv ("BROWSER", g_getenv ("SM_OAUTH2_BROWSER"), TRUE);
  g_setenv ("SM_TEST_BROWSER_FORGE_STATE", "1", TRUE);
  cli (f, 1, &out, "account", "oauth2-login", NULL);
  g_unsetenv ("BROWSER");
  g_unsetenv ("SM_TEST_BROWSER_FORGE_STATE");
  g_assert_nonnull (strstr (out, "wrong state"));
  g_assert_cmpint (provider_stat (f, "authorization_code"), ==, 0);
  after = keyring_refresh_token (f);
  g_assert_cmpstr (before, ==, after);
}

/* ---- a fake provider IMAP server: XOAUTH2 only, no SASL-IR ------------------ */

typedef struct {
  GSocketListener *listener;
  guint16 port;
  GThread *thread;
  GString *transcript;          /* decoded SASL responses and lines, for the test */
  char *error;                  /* what went wrong in the thread, or NULL */
} FakeImap;

static char *
fake_line (GDataInputStream *in)
{
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line (in, NULL, NULL, &error);

  if (line != NULL && g_str_has_suffix (line, "\r"))
    line[strlen (line) - 1] = '\0';
  return line;
}

static gboolean
fake_say (GOutputStream *out, const char *text)
{
  return g_output_stream_write_all (out, text, strlen (text), NULL, NULL, NULL);
}

/* Reads "TAG AUTHENTICATE XOAUTH2", sends "+ ", reads the response and
 * records it decoded; returns the tag. */
static char *
fake_authenticate (FakeImap *fi, GDataInputStream *in, GOutputStream *out)
{
  g_autofree char *cmd = fake_line (in);
  g_autofree char *resp = NULL;
  g_autofree guchar *raw = NULL;
  gsize len = 0;
  char *sp;

  if (cmd == NULL || (sp = strchr (cmd, ' ')) == NULL || strcmp (sp, " AUTHENTICATE XOAUTH2") != 0)
    {
      fi->error = g_strdup_printf ("expected AUTHENTICATE XOAUTH2 without SASL-IR, got %s", cmd ? cmd : "EOF");
      return NULL;
    }
  fake_say (out, "+ \r\n");
  resp = fake_line (in);
  raw = g_base64_decode (resp ? resp : "", &len);
  g_string_append_len (fi->transcript, (const char *) raw, (gssize) len);
  g_string_append_c (fi->transcript, '\n');
  return g_strndup (cmd, sp - cmd);
}

static gpointer
fake_imap_thread (gpointer data)
{
  FakeImap *fi = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) conn = g_socket_listener_accept (fi->listener, NULL, NULL, &error);
  g_autoptr(GTlsCertificate) cert = g_tls_certificate_new_from_files (sm_test_env ("SM_TEST_SERVER_CERT"),
                                                                      sm_test_env ("SM_TEST_SERVER_KEY"), &error);
  g_autoptr(GIOStream) tls = NULL;
  g_autoptr(GDataInputStream) in = NULL;
  g_autofree char *tag1 = NULL;
  g_autofree char *tag2 = NULL;
  g_autofree char *dummy = NULL;
  g_autofree char *reply = NULL;
  GOutputStream *out;

  if (conn == NULL || cert == NULL ||
      (tls = g_tls_server_connection_new (G_IO_STREAM (conn), cert, &error)) == NULL ||
      !g_tls_connection_handshake (G_TLS_CONNECTION (tls), NULL, &error))
    {
      fi->error = g_strdup (error ? error->message : "no connection");
      return NULL;
    }
  in = g_data_input_stream_new (g_io_stream_get_input_stream (tls));
  out = g_io_stream_get_output_stream (tls);
  fake_say (out, "* OK fake provider ready\r\n");
  {
    g_autofree char *cap = fake_line (in);   /* "smp3 CAPABILITY" */
    g_autofree char *tag = cap ? g_strndup (cap, strcspn (cap, " ")) : g_strdup ("*");
    g_autofree char *answer = g_strdup_printf ("* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n%s OK done\r\n", tag);
    fake_say (out, answer);
  }
  /* First token: refused with an error challenge (RFC 7628 §3.2.2 form,
   * as Gmail sends for XOAUTH2), which wants an empty response. */
  if ((tag1 = fake_authenticate (fi, in, out)) == NULL)
    return NULL;
  fake_say (out, "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n");
  dummy = fake_line (in);
  g_string_append_printf (fi->transcript, "dummy=[%s]\n", dummy ? dummy : "EOF");
  reply = g_strdup_printf ("%s NO [AUTHENTICATIONFAILED] token expired\r\n", tag1);
  fake_say (out, reply);
  /* Second token: accepted. */
  if ((tag2 = fake_authenticate (fi, in, out)) == NULL)
    return NULL;
  g_free (reply);
  reply = g_strdup_printf ("%s OK [CAPABILITY IMAP4rev1] welcome\r\n", tag2);
  fake_say (out, reply);
  /* Then serve until the proxy goes: LOGOUT or close. */
  for (;;)
    {
      g_autofree char *line = fake_line (in);
      if (line == NULL)
        break;
      if (strstr (line, "LOGOUT") != NULL)
        {
          g_autofree char *bye = g_strdup_printf ("* BYE\r\n%.*s OK bye\r\n", (int) strcspn (line, " "), line);
          fake_say (out, bye);
          break;
        }
    }
  return NULL;
}

static void
test_xoauth2_retry (Fixture *f, gconstpointer data)
{
  FakeImap fi = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(SmTestProxy) fake_proxy = NULL;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *upstream = NULL;
  g_autofree char *extra = NULL;
  g_autofree char *greeting = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *reply = NULL;
  g_auto(GStrv) lines = NULL;

  if (f->proxy == NULL)
    return;
  /* A second proxy for the same account, pointed at the fake. */
  sm_test_proxy_stop (f->proxy);
  fi.listener = g_socket_listener_new ();
  fi.port = g_socket_listener_add_any_inet_port (fi.listener, NULL, &error);
  g_assert_no_error (error);
  fi.transcript = g_string_new (NULL);
  fi.thread = g_thread_new ("fake-imap", fake_imap_thread, &fi);

  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%u\nsmtp = smtp://localhost:%s\n"
                              "username = alice\nca_file = %s\nauth = oauth2\n",
                              fi.port, sm_test_env ("SM_TEST_SUBMISSION_PORT"), sm_test_env ("SM_TEST_CA"));
  extra = g_strdup_printf ("[oauth2]\ntoken_endpoint = http://127.0.0.1:%u/token\nclient_id = " CLIENT_ID "\n",
                           f->port);
  fake_proxy = sm_test_proxy_start (f->address, upstream, NULL, extra);

  c = sm_test_client_connect (fake_proxy->imap_port);
  greeting = sm_test_client_line (c);
  cmd = g_strdup_printf ("a1 LOGIN %s %s\r\n", fake_proxy->address, fake_proxy->local_password);
  sm_test_client_send (c, cmd);
  reply = sm_test_client_until (c, "a1 ");
  sm_test_client_send (c, "a2 LOGOUT\r\n");
  g_thread_join (fi.thread);
  g_socket_listener_close (fi.listener);
  g_object_unref (fi.listener);
  if (fi.error != NULL)
    g_error ("fake provider: %s", fi.error);
  g_assert_nonnull (reply);
  if (!g_str_has_prefix (reply, "a1 OK"))
    g_error ("login through the proxy failed: %s", reply);

  /* Two XOAUTH2 responses with different fresh tokens, and the empty
   * response to the challenge between them. */
  lines = g_strsplit (fi.transcript->str, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 4);
  g_assert_true (g_str_has_prefix (lines[0], "user=alice\001auth=Bearer at-"));
  g_assert_true (g_str_has_suffix (lines[0], "\001\001"));
  g_assert_cmpstr (lines[1], ==, "dummy=[]");
  g_assert_true (g_str_has_prefix (lines[2], "user=alice\001auth=Bearer at-"));
  g_assert_cmpstr (lines[0], !=, lines[2]);
  g_assert_cmpint (provider_stat (f, "refresh"), ==, 2);
  {
    g_autofree char *log = NULL;
    g_autoptr(JsonObject) stats = provider_call (f, "GET", "/control/stats", NULL);
    JsonArray *issued = json_object_get_array_member (stats, "issued");
    g_assert_true (g_file_get_contents (fake_proxy->log_path, &log, NULL, NULL));
    for (guint i = 0; i < json_array_get_length (issued); i++)
      g_assert_null (strstr (log, json_array_get_string_element (issued, i)));
  }
  g_string_free (fi.transcript, TRUE);
  g_free (fi.error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/oauth2/imap/login-and-cache", Fixture, NULL, fixture_setup, test_imap_login, fixture_teardown);
  g_test_add ("/oauth2/smtp/relay", Fixture, NULL, fixture_setup, test_smtp_submit, fixture_teardown);
  g_test_add ("/oauth2/refresh/expired", Fixture, "{\"expires_in\": " G_STRINGIFY (SHORT_LIFETIME_S) ", \"rotate\": true}",
              fixture_setup, test_refresh_expired, fixture_teardown);
  g_test_add ("/oauth2/revoked/consent-needed", Fixture, NULL, fixture_setup, test_revoked, fixture_teardown);
  g_test_add ("/oauth2/login/device", Fixture, NULL, fixture_setup, test_login_device, fixture_teardown);
  g_test_add ("/oauth2/login/browser-pkce", Fixture, NULL, fixture_setup, test_login_browser, fixture_teardown);
  g_test_add ("/oauth2/login/browser-forged-state", Fixture, NULL, fixture_setup, test_login_browser_forged_state,
              fixture_teardown);
  g_test_add ("/oauth2/imap/xoauth2-challenge-retry", Fixture, NULL, fixture_setup, test_xoauth2_retry,
              fixture_teardown);
  return g_test_run ();
}
