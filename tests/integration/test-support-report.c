/* test-support-report.c: `securemail support-report FILE` and the key-expiry
 * warning of `securemail status` (an OpenPGP key and an S/MIME certificate
 * that expire in 10 days), with the real proxy, CLI, gpg, gpgsm and keyring.
 *
 * The account's provider SMTP is a closed port, so a message submitted
 * through the proxy stays in the queue: the report must describe it (state,
 * recipients' domains) without its Subject, body or recipients' addresses,
 * and must hold no secret of the keyring (passwords, key passphrases). */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sm-test-harness.h"

/* The provider password stored for the account: long and unusual, so that
 * finding it anywhere in the report means it leaked (the test stack's
 * "pass" would also match ordinary words). */
#define PROVIDER_PASSWORD "Wq7-provider-Secret-93x"
/* Days of validity of the key that must trigger the expiry warning: inside
 * the 30-day threshold with room for rounding. */
#define SHORT_KEY_DAYS 10

typedef struct {
  SmTestProxy *proxy;
  char *run;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *upstream = NULL;

  f->run = g_strdup_printf ("sr%.8s", uuid);
  if (!sm_test_require_stack ())
    return;
  /* Submission on a port nobody listens on: mail waits in the queue. */
  upstream = g_strdup_printf ("[upstream]\nimap = imaps://localhost:%s\nsmtp = smtp://localhost:%u\n"
                              "username = alice\nca_file = %s\n",
                              sm_test_env ("SM_TEST_IMAPS_PORT"), sm_test_free_port (), sm_test_env ("SM_TEST_CA"));
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, PROVIDER_PASSWORD, NULL);
  sm_test_proxy_wait_dbus (f->proxy);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->proxy != NULL)
    sm_test_proxy_stop (f->proxy);
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  g_free (f->run);
}

/* Every secret value the keyring holds under @schema ("secret = ..." lines
 * of secret-tool), added to @secrets. */
static void
collect_secrets (SmTestProxy *p, const char *schema, GPtrArray *secrets)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_cmpint (sm_test_proxy_run (p, "secret-tool", NULL, &out, &err, "search", "--all", "--unlock",
                                      "xdg:schema", schema, NULL), ==, 0);
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    if (g_str_has_prefix (lines[i], "secret = "))
      g_ptr_array_add (secrets, g_strdup (lines[i] + strlen ("secret = ")));
}

static void
test_report (Fixture *f, gconstpointer data)
{
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  g_autofree char *message = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *path = NULL;
  g_autofree char *report = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *again = NULL;
  g_autoptr(GPtrArray) secrets = g_ptr_array_new_with_free_func (g_free);
  const char *sections[] = {
    "SecureMail support report", "versions: SecureMail ", "== settings: ", "address = alice@example.test",
    "== settings check ==", "== securemail-proxy (D-Bus) ==", "running: yes", "key warning: none",
    "recent messages by trust:", "receipts by status:", "== outbound queue ==", "messages: 1",
    "2 recipient(s) at example.test, elsewhere.example", "== checks (securemail doctor) ==",
    "[OK] Settings file is valid", "== own keys and certificates ==", "OpenPGP key for alice@example.test",
    "fingerprint ", "== proxy log (user journal, last lines) ==",
  };
  GStatBuf st;

  if (f->proxy == NULL)
    return;

  /* A queued message whose Subject, body and recipients must stay out. */
  subject = g_strdup_printf ("Quarterly figures %s", f->run);
  body = g_strdup_printf ("The confidential body %s", f->run);
  message = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: <bob@example.test>, <carol@elsewhere.example>\r\n"
                             "Subject: %s\r\nDate: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
                             "Message-ID: <%s@example.test>\r\n\r\n%s\r\n",
                             subject, f->run, body);
  {
    g_autoptr(SmTestClient) c = sm_test_smtp_open (f->proxy, TRUE);
    g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
    g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250 "));
    g_free (sm_test_smtp_command (c, "RCPT TO:<carol@elsewhere.example>", "250 "));
    g_free (sm_test_smtp_command (c, "DATA", "354 "));
    reply = sm_test_smtp_data (c, message);
    g_assert_nonnull (reply);
    g_assert_true (g_str_has_prefix (reply, "250 "));
  }

  path = g_build_filename (f->proxy->dir, "support-report.txt", NULL);
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "support-report", path, NULL), ==, 0);
  g_assert_nonnull (strstr (out, path));
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (g_file_get_contents (path, &report, NULL, NULL));
  if (g_test_verbose ())
    g_printerr ("%s", report);

  for (gsize i = 0; i < G_N_ELEMENTS (sections); i++)
    if (strstr (report, sections[i]) == NULL)
      g_error ("the report lacks “%s”:\n%s", sections[i], report);

  /* Nothing of the message but its size and domains... */
  g_assert_null (strstr (report, f->run));
  g_assert_null (strstr (report, "Quarterly"));
  g_assert_null (strstr (report, "confidential"));
  g_assert_null (strstr (report, "bob@"));
  g_assert_null (strstr (report, "carol@"));
  /* ... and no secret: the provider and local passwords, the key
   * passphrases, whatever the keyring holds. */
  g_assert_null (strstr (report, PROVIDER_PASSWORD));
  g_assert_null (strstr (report, f->proxy->local_password));
  collect_secrets (f->proxy, "org.securemail.Secret", secrets);
  collect_secrets (f->proxy, "org.securemail.Passphrase", secrets);
  g_assert_cmpuint (secrets->len, >=, 3);   /* provider, local, one key */
  for (guint i = 0; i < secrets->len; i++)
    if (strstr (report, secrets->pdata[i]) != NULL)
      g_error ("keyring secret %u is in the report", i);
  g_assert_null (strstr (report, "PRIVATE KEY"));

  /* An existing file is never overwritten. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "support-report", path, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "already exists"));
  g_assert_true (g_file_get_contents (path, &again, NULL, NULL));
  g_assert_cmpstr (again, ==, report);
}

/* A key that expires within the threshold: the daemon says so over D-Bus,
 * and `securemail status` shows it, in words and in --json. */
static void
test_key_expiry (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *days;

  if (f->proxy == NULL)
    return;
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "status", NULL), ==, 0);
  g_assert_null (strstr (out, "Keys:"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "keys", "generate", "--protocol", "openpgp",
                                "--days", G_STRINGIFY (SHORT_KEY_DAYS), NULL), ==, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* What the GUI does after making or importing a key. */
  sm_test_proxy_check_keys (f->proxy);

  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "status", NULL), ==, 0);
  if (strstr (out, "Keys:              Your OpenPGP key for alice@example.test expires in ") == NULL)
    g_error ("no key warning in:\n%s", out);
  g_assert_nonnull (strstr (out, "days: make a new one under Keys and certificates"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "status", "--json", NULL), ==, 0);
  days = strstr (out, "\"key_days_left\" : ");
  g_assert_nonnull (days);
  days += strlen ("\"key_days_left\" : ");
  /* Whole days left, rounded down: 9 a moment after making a 10-day key. */
  g_assert_true (g_str_has_prefix (days, "9") || g_str_has_prefix (days, "10"));
}

/* The same for an S/MIME certificate that an organisation's CA issued for
 * 10 days (made here as tests/certstore/make-test-ca.sh makes its users),
 * imported as PKCS#12: the warning says to ask the administrator. */
static void
test_key_expiry_smime (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *ca = NULL;
  g_autofree char *p12 = NULL;
  const char *script =
    "set -e; cd \"$1\"; umask 077\n"
    "openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.pem "
    "  -subj '/O=SecureMail Test/CN=Expiry Test CA' -addext 'basicConstraints=critical,CA:TRUE' "
    "  -addext 'keyUsage=critical,keyCertSign,cRLSign' -addext 'subjectKeyIdentifier=hash' 2>/dev/null\n"
    "openssl req -newkey rsa:2048 -nodes -keyout alice.key -out alice.csr "
    "  -subj '/O=SecureMail Test/CN=alice/emailAddress=alice@example.test' 2>/dev/null\n"
    "printf '%s\\n' 'basicConstraints = critical, CA:FALSE' "
    "  'keyUsage = critical, digitalSignature, keyEncipherment' 'extendedKeyUsage = emailProtection' "
    "  'subjectAltName = email:alice@example.test' 'subjectKeyIdentifier = hash' "
    "  'authorityKeyIdentifier = keyid' > alice.ext\n"
    "openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days \"$2\" "
    "  -extfile alice.ext -out alice.pem 2>/dev/null\n"
    /* gpgsm 2.2 reads only the legacy PKCS#12 form (make-test-ca.sh). */
    "openssl pkcs12 -export -in alice.pem -inkey alice.key -certfile ca.pem -name alice "
    "  -passout pass:p12pass -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 -out alice.p12\n";

  if (f->proxy == NULL)
    return;
  {
    const char *argv[] = { "sh", "-c", script, "sh", f->proxy->dir, G_STRINGIFY (SHORT_KEY_DAYS), NULL };
    if (sm_test_run (argv, NULL, NULL, &out, &err) != 0)
      g_error ("making the certificate failed: %s", err);
  }
  ca = g_build_filename (f->proxy->dir, "ca.pem", NULL);
  p12 = g_build_filename (f->proxy->dir, "alice.p12", NULL);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  if (sm_test_cli (f->proxy, NULL, &out, &err, "certs", "trust", ca, NULL) != 0)
    g_error ("certs trust: %s", err);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  if (sm_test_cli (f->proxy, "p12pass\n", &out, &err, "keys", "import", p12, NULL) != 0)
    g_error ("keys import: %s", err);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  sm_test_proxy_check_keys (f->proxy);
  g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, &err, "status", NULL), ==, 0);
  if (strstr (out, "Keys:              Your S/MIME certificate for alice@example.test expires in ") == NULL)
    g_error ("no certificate warning in:\n%s", out);
  g_assert_nonnull (strstr (out, "days: ask your administrator for a new one"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/support-report/cli", Fixture, NULL, fixture_setup, test_report, fixture_teardown);
  g_test_add ("/support-report/key-expiry-status", Fixture, NULL, fixture_setup, test_key_expiry, fixture_teardown);
  g_test_add ("/support-report/key-expiry-smime", Fixture, NULL, fixture_setup, test_key_expiry_smime,
              fixture_teardown);
  return g_test_run ();
}
