/* test-autoconfig.c: provider settings from autoconfig documents and SRV
 * records (proxy/sm-autoconfig.c), for the setup assistant.
 *
 * - the config-v1.1.xml parser on sample documents (table-driven);
 * - the HTTPS fetch against an in-process loopback HTTPS server whose
 *   certificate the test stack's CA issued for localhost (skipped without
 *   the stack's environment: SM_TEST_SERVER_CERT, SM_TEST_CA), with the
 *   document locations pointed at it; an untrusted certificate is refused;
 * - SRV records (RFC 6186) through a GResolver subclass of the test: no DNS
 *   server runs here, and the real resolver would ask the machine's.
 */
#include <gio/gio.h>
#include <string.h>

#include "sm-autoconfig.h"
#include "sm-error.h"
#include "sm-test-autoconfig.h"

#define ADDRESS "alice.smith@example.org"

/* ---- the parser ------------------------------------------------------------ */

static const char sample[] =
  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
  "<clientConfig version=\"1.1\">\n"
  "  <emailProvider id=\"example.org\">\n"
  "    <domain>example.org</domain>\n"
  "    <displayName>Example Mail</displayName>\n"
  "    <incomingServer type=\"pop3\">\n"
  "      <hostname>pop.example.org</hostname><port>995</port><socketType>SSL</socketType>\n"
  "      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>\n"
  "    </incomingServer>\n"
  "    <incomingServer type=\"imap\">\n"
  "      <hostname>imap.%EMAILDOMAIN%</hostname>\n"
  "      <port>993</port>\n"
  "      <socketType>SSL</socketType>\n"
  "      <username>%EMAILADDRESS%</username>\n"
  "      <authentication>password-cleartext</authentication>\n"
  "    </incomingServer>\n"
  "    <outgoingServer type=\"smtp\">\n"
  "      <hostname>smtp.example.org</hostname>\n"
  "      <port>587</port>\n"
  "      <socketType>STARTTLS</socketType>\n"
  "      <username>%EMAILADDRESS%</username>\n"
  "    </outgoingServer>\n"
  "  </emailProvider>\n"
  "</clientConfig>\n";

typedef struct {
  const char *name;
  const char *xml;
  const char *imap;       /* NULL: the parse must fail */
  const char *smtp;
  const char *username;
  int error_code;
} ParseCase;

static const ParseCase parse_cases[] = {
  { "thunderbird-sample", sample, "imaps://imap.example.org:993", "smtp://smtp.example.org:587", ADDRESS, 0 },
  { "plain-skipped",
    "<clientConfig><emailProvider>"
    "<incomingServer type='imap'><hostname>plain.example.org</hostname><port>143</port><socketType>plain</socketType></incomingServer>"
    "<incomingServer type='imap'><hostname>imap.example.org</hostname><port>143</port><socketType>STARTTLS</socketType>"
    "<username>%EMAILLOCALPART%</username></incomingServer>"
    "<outgoingServer type='smtp'><hostname>plain.example.org</hostname><port>25</port><socketType>plain</socketType></outgoingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>465</port><socketType>SSL</socketType></outgoingServer>"
    "</emailProvider></clientConfig>",
    "imap://imap.example.org:143", "smtps://smtp.example.org:465", "alice.smith", 0 },
  { "only-plain",
    "<clientConfig><emailProvider>"
    "<incomingServer type='imap'><hostname>imap.example.org</hostname><port>143</port><socketType>plain</socketType></incomingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>"
    "</emailProvider></clientConfig>",
    NULL, NULL, NULL, SM_ERROR_PROTOCOL },
  { "bad-host-and-port",
    "<clientConfig><emailProvider>"
    "<incomingServer type='imap'><hostname>evil/path@x</hostname><port>993</port><socketType>SSL</socketType></incomingServer>"
    "<incomingServer type='imap'><hostname>imap.example.org</hostname><port>99999</port><socketType>SSL</socketType></incomingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>"
    "</emailProvider></clientConfig>",
    NULL, NULL, NULL, SM_ERROR_PROTOCOL },
  { "no-username",
    "<clientConfig><emailProvider>"
    "<incomingServer type='imap'><hostname>IMAP.Example.org</hostname><port> 993 </port><socketType>ssl</socketType></incomingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>"
    "</emailProvider></clientConfig>",
    "imaps://IMAP.Example.org:993", "smtp://smtp.example.org:587", NULL, 0 },
  { "wrong-root", "<html><body>Not here</body></html>", NULL, NULL, NULL, SM_ERROR_PROTOCOL },
  { "not-xml", "{\"imap\": \"imap.example.org\"}", NULL, NULL, NULL, SM_ERROR_PROTOCOL },
  { "truncated", "<clientConfig><emailProvider><incomingServer type='imap'>", NULL, NULL, NULL, SM_ERROR_PROTOCOL },
};

static void
test_parse (gconstpointer data)
{
  const ParseCase *c = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = sm_autoconfig_parse (c->xml, -1, ADDRESS, &error);

  if (c->imap == NULL)
    {
      g_assert_null (s);
      g_assert_error (error, SM_ERROR, c->error_code);
      return;
    }
  g_assert_no_error (error);
  g_assert_nonnull (s);
  g_assert_cmpstr (s->imap_url, ==, c->imap);
  g_assert_cmpstr (s->smtp_url, ==, c->smtp);
  g_assert_cmpstr (s->username, ==, c->username);
}

/* A provider that signs in with OAuth2 (the shape of the big providers'
 * documents): the sign-in addresses and scope for the setup assistant, and
 * whether the chosen IMAP server prefers OAuth2. */
static void
test_parse_oauth2 (void)
{
  static const char doc[] =
    "<clientConfig version='1.1'><emailProvider id='example.org'>"
    "<incomingServer type='imap'><hostname>imap.example.org</hostname><port>993</port><socketType>SSL</socketType>"
    "<username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>"
    "<authentication>password-cleartext</authentication></incomingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>465</port><socketType>SSL</socketType>"
    "<authentication>OAuth2</authentication></outgoingServer>"
    "</emailProvider>"
    "<oAuth2><issuer>login.example.org</issuer><scope> https://mail.example.org/ offline_access </scope>"
    "<authURL>https://login.example.org/authorize</authURL>"
    "<tokenURL>https://login.example.org/token</tokenURL></oAuth2>"
    "</clientConfig>";
  static const char password_first[] =
    "<clientConfig><emailProvider>"
    "<incomingServer type='imap'><hostname>imap.example.org</hostname><port>993</port><socketType>SSL</socketType>"
    "<authentication>password-cleartext</authentication><authentication>OAuth2</authentication></incomingServer>"
    "<outgoingServer type='smtp'><hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>"
    "</emailProvider>"
    "<oAuth2><authURL>http://login.example.org/authorize</authURL><tokenURL>https:///token</tokenURL>"
    "<scope></scope></oAuth2>"
    "</clientConfig>";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = sm_autoconfig_parse (doc, -1, ADDRESS, &error);
  g_autoptr(SmProviderSettings) p = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (s->imap_url, ==, "imaps://imap.example.org:993");
  g_assert_true (s->oauth2_first);
  g_assert_cmpstr (s->oauth2_authorization_endpoint, ==, "https://login.example.org/authorize");
  g_assert_cmpstr (s->oauth2_token_endpoint, ==, "https://login.example.org/token");
  g_assert_cmpstr (s->oauth2_scope, ==, "https://mail.example.org/ offline_access");

  /* Password first; a sign-in page over http and a token address without
   * a host are not offered; an empty scope is none. */
  p = sm_autoconfig_parse (password_first, -1, ADDRESS, &error);
  g_assert_no_error (error);
  g_assert_false (p->oauth2_first);
  g_assert_null (p->oauth2_authorization_endpoint);
  g_assert_null (p->oauth2_token_endpoint);
  g_assert_null (p->oauth2_scope);
  g_clear_pointer (&p, sm_provider_settings_free);

  /* The sample of the format has neither. */
  p = sm_autoconfig_parse (sample, -1, ADDRESS, &error);
  g_assert_no_error (error);
  g_assert_false (p->oauth2_first);
  g_assert_null (p->oauth2_token_endpoint);
}

static void
test_parse_too_big (void)
{
  g_autoptr(GString) big = g_string_new ("<clientConfig>");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = NULL;

  while (big->len <= SM_AUTOCONFIG_MAX_BYTES)
    g_string_append (big, "<!-- padding padding padding padding padding -->");
  g_string_append (big, "</clientConfig>");
  s = sm_autoconfig_parse (big->str, (gssize) big->len, ADDRESS, &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
}

/* ---- running a lookup ----------------------------------------------------------- */

static void
on_lookup (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static SmProviderSettings *
lookup (SmAutoconfig *ac, const char *address, GError **error)
{
  GAsyncResult *result = NULL;
  SmProviderSettings *s;

  sm_autoconfig_lookup_async (ac, address, NULL, on_lookup, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  s = sm_autoconfig_lookup_finish (ac, result, error);
  g_object_unref (result);
  return s;
}

/* A lookup that skips HTTPS and asks @r for SRV records. */
static SmAutoconfig *
srv_only (SmTestResolver *r)
{
  SmAutoconfig *ac = sm_autoconfig_new ();
  const char *none[] = { NULL };

  sm_autoconfig_set_url_templates (ac, none);
  sm_autoconfig_set_resolver (ac, G_RESOLVER (r));
  return ac;
}

static void
test_srv (void)
{
  SmTestResolver *r = sm_test_resolver_new ();
  g_autoptr(SmAutoconfig) ac = srv_only (r);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = NULL;

  /* _imaps is decidedly not offered ("."), so STARTTLS on _imap;
   * _submissions (implicit TLS) wins over _submission. */
  sm_test_resolver_add (r, "_imaps._tcp.example.org", ".:0");
  sm_test_resolver_add (r, "_imap._tcp.example.org", "mail.example.org:143");
  sm_test_resolver_add (r, "_submissions._tcp.example.org", "out.example.org:465");
  sm_test_resolver_add (r, "_submission._tcp.example.org", "out.example.org:587");

  s = lookup (ac, "Alice@Example.ORG", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (s->imap_url, ==, "imap://mail.example.org:143");
  g_assert_cmpstr (s->smtp_url, ==, "smtps://out.example.org:465");
  g_assert_null (s->username);
  g_assert_cmpstr (s->source, ==, "the SRV records of example.org");
  g_assert_cmpuint (r->asked->len, ==, 3);
  g_assert_cmpstr (r->asked->pdata[0], ==, "_imaps._tcp.example.org");
  g_object_unref (r);
}

static void
test_nothing_found (void)
{
  SmTestResolver *r = sm_test_resolver_new ();
  g_autoptr(SmAutoconfig) ac = srv_only (r);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = NULL;

  /* Only IMAP: half the settings are not settings. */
  sm_test_resolver_add (r, "_imaps._tcp.example.net", "imap.example.net:993");
  s = lookup (ac, "bob@example.net", &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE);
  g_assert_nonnull (strstr (error->message, "No settings were found for example.net"));
  g_assert_nonnull (strstr (error->message, "Type them"));
  g_clear_error (&error);

  s = lookup (ac, "not an address", &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
  g_object_unref (r);
}

/* ---- HTTPS against a loopback server ---------------------------------------------- */

static gboolean
have_stack_certs (void)
{
  if (g_getenv ("SM_TEST_SERVER_CERT") == NULL || g_getenv ("SM_TEST_CA") == NULL)
    {
      g_test_skip ("needs the test stack's CA and localhost certificate (SM_TEST_SERVER_CERT, SM_TEST_CA)");
      return FALSE;
    }
  return TRUE;
}

/* The first location answers 404, the second (.well-known) the document. */
static void
test_https (void)
{
  SmTestHttps srv = { 0 };
  GSocketService *service = NULL;
  g_autoptr(SmAutoconfig) ac = sm_autoconfig_new ();
  g_autoptr(GTlsDatabase) db = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *t1 = NULL;
  g_autofree char *t2 = NULL;
  g_autofree char *expected_source = NULL;
  guint16 port;

  if (!have_stack_certs ())
    return;
  answer = sm_test_https_ok (sample);
  srv.subdomain_answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  srv.well_known_answer = answer;
  service = sm_test_https_start (&srv, g_getenv ("SM_TEST_SERVER_CERT"), g_getenv ("SM_TEST_SERVER_KEY"), &port);
  t1 = g_strdup_printf ("https://localhost:%u/mail/config-v1.1.xml?emailaddress={address}", port);
  t2 = g_strdup_printf ("https://localhost:%u/.well-known/autoconfig/mail/config-v1.1.xml", port);
  {
    const char *templates[] = { t1, t2, NULL };
    sm_autoconfig_set_url_templates (ac, templates);
  }
  db = g_tls_file_database_new (g_getenv ("SM_TEST_CA"), &error);
  g_assert_no_error (error);
  sm_autoconfig_set_tls_database (ac, db);

  s = lookup (ac, ADDRESS, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (s->imap_url, ==, "imaps://imap.example.org:993");
  g_assert_cmpstr (s->smtp_url, ==, "smtp://smtp.example.org:587");
  g_assert_cmpstr (s->username, ==, ADDRESS);
  expected_source = g_strdup_printf ("https://localhost:%u/.well-known/autoconfig/mail/config-v1.1.xml", port);
  g_assert_cmpstr (s->source, ==, expected_source);

  /* Both locations were asked, in order; the address went URI-escaped in
   * the first, and nothing else of the user's. */
  g_assert_cmpuint (srv.requests->len, ==, 2);
  g_assert_true (g_str_has_prefix (srv.requests->pdata[0],
                                   "GET /mail/config-v1.1.xml?emailaddress=alice.smith%40example.org HTTP/1.0\r\n"));
  g_assert_true (g_str_has_prefix (srv.requests->pdata[1],
                                   "GET /.well-known/autoconfig/mail/config-v1.1.xml HTTP/1.0\r\n"));
  for (guint i = 0; i < srv.requests->len; i++)
    g_assert_null (strstr (srv.requests->pdata[i], "Authorization"));
  sm_test_https_stop (&srv, service);
}

/* A server whose certificate does not chain to the trusted CA gets no
 * request; with no SRV records either, the user is told to type. */
static void
test_https_untrusted (void)
{
  SmTestHttps srv = { 0 };
  GSocketService *service = NULL;
  g_autoptr(SmAutoconfig) ac = sm_autoconfig_new ();
  g_autoptr(GTlsDatabase) db = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmProviderSettings) s = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *t1 = NULL;
  SmTestResolver *r = sm_test_resolver_new ();
  guint16 port;

  if (!have_stack_certs () || g_getenv ("SM_TEST_ROGUE_CERT") == NULL)
    {
      g_object_unref (r);
      return;
    }
  answer = sm_test_https_ok (sample);
  srv.subdomain_answer = answer;
  srv.well_known_answer = answer;
  service = sm_test_https_start (&srv, g_getenv ("SM_TEST_ROGUE_CERT"), g_getenv ("SM_TEST_ROGUE_KEY"), &port);
  t1 = g_strdup_printf ("https://localhost:%u/mail/config-v1.1.xml?emailaddress={address}", port);
  {
    const char *templates[] = { t1, NULL };
    sm_autoconfig_set_url_templates (ac, templates);
  }
  db = g_tls_file_database_new (g_getenv ("SM_TEST_CA"), &error);
  g_assert_no_error (error);
  sm_autoconfig_set_tls_database (ac, db);
  sm_autoconfig_set_resolver (ac, G_RESOLVER (r));

  s = lookup (ac, ADDRESS, &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE);
  g_assert_cmpuint (srv.requests->len, ==, 0);
  g_assert_cmpuint (r->asked->len, ==, 4);   /* then every SRV name */
  sm_test_https_stop (&srv, service);
  g_object_unref (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (parse_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/proxy/autoconfig/parse/%s", parse_cases[i].name);
      g_test_add_data_func (path, &parse_cases[i], test_parse);
    }
  g_test_add_func ("/proxy/autoconfig/parse/oauth2", test_parse_oauth2);
  g_test_add_func ("/proxy/autoconfig/parse/too-big", test_parse_too_big);
  g_test_add_func ("/proxy/autoconfig/srv", test_srv);
  g_test_add_func ("/proxy/autoconfig/nothing-found", test_nothing_found);
  g_test_add_func ("/proxy/autoconfig/https/fetch", test_https);
  g_test_add_func ("/proxy/autoconfig/https/untrusted", test_https_untrusted);
  return g_test_run ();
}
