/* test-config.c: table-driven tests for loading and validating securemail.conf
 * and policy.conf (proxy/sm-config.h), and for what securemail-proxy does
 * with a bad file (SPEC.md "Programs": exit 2, one line naming the key).
 *
 * Good cases check the parsed values, including every default; bad cases
 * check that loading fails with SM_ERROR_CONFIG and that the message names
 * the file, "[group] key" and the reason, since that line is all a user or a
 * helpdesk sees.
 */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>

#include "sm-config.h"
#include "sm-error.h"

#define MAX_NEEDLES 4
/* Any regular file: sm_config only checks that client_certificate exists;
 * its content is read at each connection (tests/integration/test-clientcert.c). */
#define CLIENT_CERT_FILE "/etc/hostname"

/* The smallest valid user file. */
#define MINIMAL                                      \
  "[account]\naddress = alice@example.test\n"        \
  "[upstream]\nimap = imaps://imap.example.test\n"   \
  "smtp = smtp://smtp.example.test\n"

typedef void (*ConfigCheck) (const SmConfig *config);

typedef struct {
  const char *path;
  const char *user;      /* securemail.conf text */
  const char *policy;    /* policy.conf text, may be NULL */
  ConfigCheck check;     /* good cases */
  const char *needles[MAX_NEEDLES];  /* bad cases: substrings of the error */
} ConfigCase;

/* ---- checks of good configs ------------------------------------------------ */

/* Issue 7: a certificate on a token; the key is found by the same URI. */
static void
check_client_cert_pkcs11 (const SmConfig *c)
{
  g_assert_cmpint (c->auth, ==, SM_AUTH_CERTIFICATE);
  g_assert_cmpstr (c->client_certificate, ==, "pkcs11:token=SecureMail;object=alice;type=cert");
  g_assert_null (c->client_key);
}

/* A certificate can go with a password login too (providers that want
 * both); the file is only checked to exist here. */
static void
check_client_cert_with_password (const SmConfig *c)
{
  g_assert_cmpint (c->auth, ==, SM_AUTH_PASSWORD);
  g_assert_cmpstr (c->client_certificate, ==, CLIENT_CERT_FILE);
  g_assert_cmpstr (c->client_key, ==, "pkcs11:token=SecureMail;object=alice;type=private");
}

static void
check_defaults (const SmConfig *c)
{
  g_assert_cmpstr (c->address, ==, "alice@example.test");
  g_assert_null (c->personal_address);
  g_assert_null (c->display_name);
  g_assert_cmpstr (c->imap.url, ==, "imaps://imap.example.test");
  g_assert_cmpstr (c->imap.host, ==, "imap.example.test");
  g_assert_cmpuint (c->imap.port, ==, 993);
  g_assert_true (c->imap.implicit_tls);
  g_assert_cmpstr (c->smtp.host, ==, "smtp.example.test");
  g_assert_cmpuint (c->smtp.port, ==, 587);
  g_assert_false (c->smtp.implicit_tls);
  /* No username: the address is the login name. */
  g_assert_cmpstr (c->username, ==, "alice@example.test");
  g_assert_cmpint (c->auth, ==, SM_AUTH_PASSWORD);
  g_assert_null (c->ca_file);
  g_assert_null (c->pin_sha256);
  g_assert_null (c->client_certificate);
  g_assert_null (c->client_key);
  g_assert_cmpstr (c->listen_imap.host, ==, "127.0.0.1");
  g_assert_cmpuint (c->listen_imap.port, ==, 1143);
  g_assert_cmpstr (c->listen_smtp.host, ==, "127.0.0.1");
  g_assert_cmpuint (c->listen_smtp.port, ==, 1025);
  g_assert_cmpint (c->protocol, ==, SM_PROTOCOL_SMIME);
  g_assert_cmpint (c->encrypt, ==, SM_ENCRYPT_IF_POSSIBLE);
  g_assert_true (c->subject_tags);
  g_assert_true (c->request_receipts);
  g_assert_true (c->send_receipts);
  g_assert_cmpint (c->receipt_overdue_s, ==, 3 * 24 * 3600);
  g_assert_true (c->allowed_upstreams == NULL || c->allowed_upstreams[0] == NULL);
  g_assert_cmpstr (c->personal_tag, ==, "[PERSONAL]");
  g_assert_true (c->personal_enforce);
  g_assert_false (c->allow_remote_listen);
  g_assert_null (c->trust_anchors_dir);
  g_assert_null (c->contact_email);
  g_assert_null (c->contact_phone);
  /* Issue 7: locked at start unless the policy allows auto-unlock; locks
   * with the screen and before sleep. */
  g_assert_cmpint (c->auto_unlock, ==, SM_AUTO_UNLOCK_OFF);
  g_assert_true (c->start_locked);
  g_assert_cmpuint (c->idle_lock_minutes, ==, SM_CONFIG_DEFAULT_IDLE_LOCK_MIN);
  g_assert_true (c->lock_on_screen_lock);
  g_assert_true (c->lock_on_suspend);
  /* Nothing is locked without a policy. */
  g_assert_false (sm_config_is_locked (c, "account", "address"));
  g_assert_false (sm_config_is_locked (c, "crypto", "encrypt"));
}

static void
check_everything (const SmConfig *c)
{
  /* Addresses are stored lower-cased; other strings as written, stripped. */
  g_assert_cmpstr (c->address, ==, "alice@example.test");
  g_assert_cmpstr (c->personal_address, ==, "alice@personaluse.example.test");
  g_assert_cmpstr (c->display_name, ==, "Alice Example");
  g_assert_cmpuint (c->imap.port, ==, 1993);
  g_assert_cmpstr (c->smtp.host, ==, "smtp.example.test");
  g_assert_cmpuint (c->smtp.port, ==, 2465);
  g_assert_true (c->smtp.implicit_tls);
  g_assert_cmpstr (c->username, ==, "alice");
  g_assert_nonnull (c->pin_sha256);
  g_assert_cmpuint (g_bytes_get_size (c->pin_sha256), ==, 32);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (c->pin_sha256, NULL))[0], ==, 0x00);
  g_assert_cmpstr (c->listen_imap.host, ==, "::1");
  g_assert_cmpuint (c->listen_imap.port, ==, 11143);
  g_assert_cmpstr (c->listen_smtp.host, ==, "localhost");
  g_assert_cmpuint (c->listen_smtp.port, ==, 0);
  g_assert_cmpint (c->protocol, ==, SM_PROTOCOL_OPENPGP);
  g_assert_cmpint (c->encrypt, ==, SM_ENCRYPT_REQUIRED);
  g_assert_false (c->subject_tags);
  g_assert_false (c->request_receipts);
  g_assert_false (c->send_receipts);
  g_assert_nonnull (c->allowed_upstreams);
  g_assert_cmpstr (c->allowed_upstreams[0], ==, "*.example.test");
  g_assert_cmpstr (c->allowed_upstreams[1], ==, "mail.other.test");
  g_assert_null (c->allowed_upstreams[2]);
  g_assert_cmpstr (c->personal_tag, ==, "[PRIVATE]");
  g_assert_false (c->personal_enforce);
  g_assert_cmpstr (c->contact_email, ==, "securemailadmin@business.example");
  g_assert_cmpstr (c->contact_phone, ==, "+64 4 000 0000");
}

static void
check_starttls_imap_tls_smtp (const SmConfig *c)
{
  g_assert_cmpuint (c->imap.port, ==, 143);
  g_assert_false (c->imap.implicit_tls);
  g_assert_cmpuint (c->smtp.port, ==, 465);
  g_assert_true (c->smtp.implicit_tls);
}

static void
check_case_folded (const SmConfig *c)
{
  g_assert_cmpstr (c->address, ==, "alice@example.test");
  g_assert_cmpstr (c->imap.host, ==, "imap.example.test");
  g_assert_true (c->imap.implicit_tls);
  g_assert_cmpuint (c->imap.port, ==, 993);
}

static void
check_ipv6_upstream (const SmConfig *c)
{
  g_autofree char *s = sm_endpoint_to_string (&c->imap);
  g_autofree char *s2 = sm_endpoint_to_string (&c->smtp);
  g_assert_cmpstr (c->imap.host, ==, "::1");
  g_assert_cmpuint (c->imap.port, ==, 993);
  g_assert_cmpstr (s, ==, "[::1]:993");
  g_assert_cmpstr (s2, ==, "127.0.0.1:25");
}

static void
check_trailing_slash (const SmConfig *c)
{
  g_assert_cmpstr (c->imap.host, ==, "imap.example.test");
  g_assert_cmpuint (c->imap.port, ==, 993);
}

static void
check_bools_true (const SmConfig *c)
{
  g_assert_true (c->subject_tags);
  g_assert_true (c->request_receipts);
  g_assert_true (c->personal_enforce);
}

static void
check_bools_false (const SmConfig *c)
{
  g_assert_false (c->subject_tags);
  g_assert_false (c->request_receipts);
  g_assert_false (c->personal_enforce);
}

static void
check_encrypt_never (const SmConfig *c)
{
  g_assert_cmpint (c->encrypt, ==, SM_ENCRYPT_NEVER);
}

static void
check_empty_optionals (const SmConfig *c)
{
  g_assert_null (c->personal_address);
  g_assert_null (c->display_name);
  g_assert_null (c->ca_file);
  g_assert_null (c->pin_sha256);
  g_assert_null (c->contact_email);
  /* An empty username falls back to the address. */
  g_assert_cmpstr (c->username, ==, "alice@example.test");
}

static void
check_remote_listen (const SmConfig *c)
{
  g_assert_true (c->allow_remote_listen);
  g_assert_true (sm_config_is_locked (c, "policy", "allow_remote_listen"));
  g_assert_cmpstr (c->listen_imap.host, ==, "0.0.0.0");
  g_assert_cmpstr (c->listen_smtp.host, ==, "192.0.2.7");
}

/* The administrator can force the unlock gate closed at start. */
static void
check_start_locked_by_policy (const SmConfig *c)
{
  g_assert_true (c->start_locked);
  g_assert_true (sm_config_is_locked (c, "security", "start_locked"));
  g_assert_cmpuint (c->idle_lock_minutes, ==, 15);
}

/* The administrator allows auto-unlock with the login keyring: the proxy
 * starts unlocked unless the user asks otherwise. */
static void
check_auto_unlock_by_policy (const SmConfig *c)
{
  g_assert_cmpint (c->auto_unlock, ==, SM_AUTO_UNLOCK_LOGIN_KEYRING);
  g_assert_true (sm_config_is_locked (c, "security", "auto_unlock"));
  g_assert_false (c->start_locked);
  g_assert_false (sm_config_is_locked (c, "security", "start_locked"));
}

static void
check_auto_unlock_declined_by_user (const SmConfig *c)
{
  g_assert_cmpint (c->auto_unlock, ==, SM_AUTO_UNLOCK_LOGIN_KEYRING);
  g_assert_true (c->start_locked);
}

static void
check_auto_unlock_user_off_allowed (const SmConfig *c)
{
  g_assert_cmpint (c->auto_unlock, ==, SM_AUTO_UNLOCK_LOGIN_KEYRING);
  g_assert_false (c->start_locked);
}

static void
check_session_locks_off (const SmConfig *c)
{
  g_assert_false (c->lock_on_screen_lock);
  g_assert_false (c->lock_on_suspend);
  g_assert_true (c->start_locked);
}

/* The administrator can keep the screen-lock and suspend locks on. */
static void
check_session_locks_by_policy (const SmConfig *c)
{
  g_assert_true (c->lock_on_screen_lock);
  g_assert_true (c->lock_on_suspend);
  g_assert_true (sm_config_is_locked (c, "security", "lock_on_screen_lock"));
  g_assert_true (sm_config_is_locked (c, "security", "lock_on_suspend"));
}

static void
check_allowed_upstreams (const SmConfig *c)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (sm_config_is_locked (c, "policy", "allowed_upstreams"));
  g_assert_true (sm_config_check_upstream_allowed (c, "imap.example.test", NULL));
  g_assert_true (sm_config_check_upstream_allowed (c, "IMAP.Example.TEST", NULL));
  g_assert_true (sm_config_check_upstream_allowed (c, "mx.backup.test", NULL));
  g_assert_false (sm_config_check_upstream_allowed (c, "example.test.evil.test", &error));
  g_assert_error (error, SM_ERROR, SM_ERROR_POLICY);
  g_assert_nonnull (strstr (error->message, "example.test.evil.test"));
  g_clear_error (&error);
  g_assert_false (sm_config_check_upstream_allowed (c, "evil.test", &error));
  g_assert_error (error, SM_ERROR, SM_ERROR_POLICY);
}

static void
check_trust_anchors_dir (const SmConfig *c)
{
  g_assert_cmpstr (c->trust_anchors_dir, ==, "/etc/securemail/anchors");
  g_assert_true (sm_config_is_locked (c, "policy", "trust_anchors_dir"));
}

static void
check_receipt_overdue (const SmConfig *c)
{
  g_assert_cmpint (c->receipt_overdue_s, ==, 36 * 3600);
}

/* [oauth2] (issue 7): auth = oauth2 with the endpoints of a provider. */
#define OAUTH2_MINIMAL MINIMAL "auth = oauth2\n[oauth2]\ntoken_endpoint = https://login.example.test/token\n" \
  "client_id = securemail-desktop\n"

static void
check_oauth2 (const SmConfig *c)
{
  g_assert_cmpint (c->auth, ==, SM_AUTH_OAUTH2);
  g_assert_cmpstr (c->oauth2.token_endpoint, ==, "https://login.example.test/token");
  g_assert_cmpstr (c->oauth2.client_id, ==, "securemail-desktop");
  g_assert_cmpstr (c->oauth2.authorization_endpoint, ==, "https://login.example.test/authorize");
  g_assert_cmpstr (c->oauth2.device_authorization_endpoint, ==, "http://127.0.0.1:11600/device");
  g_assert_cmpstr (c->oauth2.scope, ==, "https://mail.example.test/imap offline_access");
  g_assert_null (c->oauth2.client_secret);
}

static void
check_oauth2_minimal (const SmConfig *c)
{
  g_assert_cmpint (c->auth, ==, SM_AUTH_OAUTH2);
  g_assert_null (c->oauth2.authorization_endpoint);
  g_assert_null (c->oauth2.device_authorization_endpoint);
  g_assert_null (c->oauth2.scope);
}

static const ConfigCase cases[] = {
  /* ---- good ---- */
  { "/proxy/config/good/minimal-defaults", MINIMAL, NULL, check_defaults, { NULL } },
  { "/proxy/config/good/policy-file-empty", MINIMAL, "", check_defaults, { NULL } },
  { "/proxy/config/good/client-certificate-pkcs11",
    MINIMAL "auth = certificate   # issue 7\nclient_certificate = pkcs11:token=SecureMail;object=alice;type=cert\n",
    NULL, check_client_cert_pkcs11, { NULL } },
  { "/proxy/config/good/client-certificate-with-password",
    MINIMAL "client_certificate = " CLIENT_CERT_FILE "\nclient_key = pkcs11:token=SecureMail;object=alice;type=private\n",
    NULL, check_client_cert_with_password, { NULL } },
  { "/proxy/config/good/every-key",
    "[account]\naddress = Alice@Example.TEST\npersonal_address = alice@personaluse.example.test\n"
    "display_name =   Alice Example  \n"
    "[upstream]\nimap = imaps://imap.example.test:1993\nsmtp = smtps://smtp.example.test:2465\n"
    "username = alice\nauth = password\nca_file =\n"
    "pin_sha256 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "[listen]\nimap = [::1]:11143\nsmtp = localhost:0\n"
    "[crypto]\nprotocol = openpgp\nencrypt = required\nsubject_tags = off\nrequest_receipts = no\n"
    "send_receipts = never\n"
    "[policy]\nallowed_upstreams = *.example.test, Mail.Other.TEST\npersonal_tag = [PRIVATE]\n"
    "personal_enforce = false\n"
    "[admin]\ncontact_email = securemailadmin@business.example\ncontact_phone = +64 4 000 0000\n",
    NULL, check_everything, { NULL } },
  { "/proxy/config/good/default-ports",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imap://imap.example.test\n"
    "smtp = smtps://smtp.example.test\n",
    NULL, check_starttls_imap_tls_smtp, { NULL } },
  { "/proxy/config/good/case-folded",
    "[account]\naddress = ALICE@EXAMPLE.TEST\n[upstream]\nimap = IMAPS://IMAP.Example.Test\n"
    "smtp = smtp://smtp.example.test\n",
    NULL, check_case_folded, { NULL } },
  { "/proxy/config/good/ipv6-upstream",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://[::1]\nsmtp = smtp://127.0.0.1:25\n",
    NULL, check_ipv6_upstream, { NULL } },
  { "/proxy/config/good/trailing-slash",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.example.test/\n"
    "smtp = smtp://smtp.example.test\n",
    NULL, check_trailing_slash, { NULL } },
  { "/proxy/config/good/bools-true",
    MINIMAL "[crypto]\nsubject_tags = ON\nrequest_receipts = 1\n[policy]\npersonal_enforce = Yes\n",
    NULL, check_bools_true, { NULL } },
  { "/proxy/config/good/bools-false",
    MINIMAL "[crypto]\nsubject_tags = False\nrequest_receipts = 0\n[policy]\npersonal_enforce = NO\n",
    NULL, check_bools_false, { NULL } },
  { "/proxy/config/good/receipt-overdue", MINIMAL "[crypto]\nreceipt_overdue = 36H\n", NULL,
    check_receipt_overdue, { NULL } },
  { "/proxy/config/good/encrypt-never", MINIMAL "[crypto]\nencrypt = never\n", NULL, check_encrypt_never, { NULL } },
  { "/proxy/config/good/empty-optionals",
    MINIMAL "username =\nca_file =\npin_sha256 =\n[account]\npersonal_address =\ndisplay_name =\n"
    "[admin]\ncontact_email =\n",
    NULL, check_empty_optionals, { NULL } },
  { "/proxy/config/good/remote-listen-allowed-by-policy",
    MINIMAL "[listen]\nimap = 0.0.0.0:1143\nsmtp = 192.0.2.7:1025\n",
    "[policy]\nallow_remote_listen = on\n", check_remote_listen, { NULL } },
  { "/proxy/config/good/start-locked-by-policy",
    MINIMAL "[security]\nstart_locked = off\nidle_lock = 15\n", "[security]\nstart_locked = on\n",
    check_start_locked_by_policy, { NULL } },
  { "/proxy/config/good/auto-unlock-by-policy", MINIMAL, "[security]\nauto_unlock = login-keyring\n",
    check_auto_unlock_by_policy, { NULL } },
  { "/proxy/config/good/auto-unlock-declined-by-user", MINIMAL "[security]\nstart_locked = on\n",
    "[security]\nauto_unlock = login-keyring\n", check_auto_unlock_declined_by_user, { NULL } },
  { "/proxy/config/good/auto-unlock-user-off-allowed", MINIMAL "[security]\nstart_locked = off\n",
    "[security]\nauto_unlock = login-keyring\n", check_auto_unlock_user_off_allowed, { NULL } },
  { "/proxy/config/good/session-locks-off",
    MINIMAL "[security]\nlock_on_screen_lock = off\nlock_on_suspend = no\n", NULL, check_session_locks_off,
    { NULL } },
  { "/proxy/config/good/session-locks-by-policy",
    MINIMAL "[security]\nlock_on_screen_lock = off\nlock_on_suspend = off\n",
    "[security]\nlock_on_screen_lock = on\nlock_on_suspend = on\n", check_session_locks_by_policy, { NULL } },
  { "/proxy/config/good/allowed-upstreams-match",
    MINIMAL, "[policy]\nallowed_upstreams = *.example.test;mx.backup.test\n", check_allowed_upstreams, { NULL } },
  { "/proxy/config/good/trust-anchors-dir-in-policy",
    MINIMAL, "[policy]\ntrust_anchors_dir = /etc/securemail/anchors\n", check_trust_anchors_dir, { NULL } },

  /* ---- [account] ---- */
  { "/proxy/config/bad/address/missing",
    "[upstream]\nimap = imaps://imap.example.test\nsmtp = smtp://smtp.example.test\n", NULL, NULL,
    { "securemail.conf", "[account] address", "required" } },
  { "/proxy/config/bad/address/empty",
    "[account]\naddress =\n[upstream]\nimap = imaps://imap.example.test\nsmtp = smtp://smtp.example.test\n",
    NULL, NULL, { "[account] address", "required" } },
  { "/proxy/config/bad/address/no-at",
    "[account]\naddress = alice\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "securemail.conf", "[account] address", "alice", "not an e-mail address" } },
  { "/proxy/config/bad/address/no-domain",
    "[account]\naddress = alice@\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/address/two-at",
    "[account]\naddress = a@b@example.test\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/address/space",
    "[account]\naddress = al ice@example.test\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/address/display-form",
    "[account]\naddress = Alice <alice@example.test>\n[upstream]\nimap = imaps://i.example.test\n"
    "smtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/address/double-dot",
    "[account]\naddress = alice@example..test\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/address/trailing-dot",
    "[account]\naddress = alice.@example.test\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[account] address", "not an e-mail address" } },
  { "/proxy/config/bad/personal-address",
    MINIMAL "[account]\npersonal_address = personal\n", NULL, NULL,
    { "[account] personal_address", "not an e-mail address" } },
  { "/proxy/config/bad/display-name-newline",
    MINIMAL "[account]\ndisplay_name = Alice\\nBcc: mallory@evil.test\n", NULL, NULL,
    { "[account] display_name", "single line" } },

  /* ---- [upstream] ---- */
  { "/proxy/config/bad/upstream/imap-missing",
    "[account]\naddress = alice@example.test\n[upstream]\nsmtp = smtp://smtp.example.test\n", NULL, NULL,
    { "[upstream] imap", "required" } },
  { "/proxy/config/bad/upstream/smtp-missing",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.example.test\n", NULL, NULL,
    { "[upstream] smtp", "required" } },
  { "/proxy/config/bad/upstream/http",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = http://imap.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "securemail.conf", "[upstream] imap", "imaps://", "http://imap.example.test" } },
  { "/proxy/config/bad/upstream/no-scheme",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imap.example.test:993\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap", "imaps://" } },
  { "/proxy/config/bad/upstream/smtp-with-imap-scheme",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://i.example.test\nsmtp = imaps://s.example.test\n",
    NULL, NULL, { "[upstream] smtp", "smtps://" } },
  { "/proxy/config/bad/upstream/port-0",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.example.test:0\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap", "port" } },
  { "/proxy/config/bad/upstream/port-70000",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://i.example.test\nsmtp = smtp://s.example.test:70000\n",
    NULL, NULL, { "[upstream] smtp" } },
  { "/proxy/config/bad/upstream/path",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.example.test/INBOX\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap", "path" } },
  { "/proxy/config/bad/upstream/userinfo",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://alice:pw@imap.example.test\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap", "user" } },
  { "/proxy/config/bad/upstream/query",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.example.test?tls=off\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap", "query" } },
  { "/proxy/config/bad/upstream/no-host",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://\nsmtp = smtp://s.example.test\n",
    NULL, NULL, { "[upstream] imap" } },
  { "/proxy/config/bad/upstream/auth-enum",
    MINIMAL "auth = kerberos\n", NULL, NULL, { "[upstream] auth", "kerberos" } },
  { "/proxy/config/good/oauth2",
    OAUTH2_MINIMAL "authorization_endpoint = https://login.example.test/authorize\n"
    "device_authorization_endpoint = http://127.0.0.1:11600/device\n"
    "scope = https://mail.example.test/imap offline_access\n"
    "[policy]\nallowed_upstreams = *.example.test 127.0.0.1\n",
    NULL, check_oauth2, { NULL } },
  { "/proxy/config/good/oauth2-minimal", OAUTH2_MINIMAL, NULL, check_oauth2_minimal, { NULL } },
  { "/proxy/config/bad/oauth2/no-token-endpoint",
    MINIMAL "auth = oauth2\n[oauth2]\nclient_id = x\n", NULL, NULL, { "[oauth2] token_endpoint", "missing" } },
  { "/proxy/config/bad/oauth2/no-client-id",
    MINIMAL "auth = oauth2\n[oauth2]\ntoken_endpoint = https://login.example.test/token\n", NULL, NULL,
    { "[oauth2] client_id", "missing" } },
  { "/proxy/config/bad/oauth2/plain-http",
    OAUTH2_MINIMAL "authorization_endpoint = http://login.example.test/authorize\n", NULL, NULL,
    { "[oauth2] authorization_endpoint", "https://", "unencrypted" } },
  { "/proxy/config/bad/oauth2/userinfo",
    MINIMAL "auth = oauth2\n[oauth2]\nclient_id = x\ntoken_endpoint = https://u:pw@login.example.test/t\n",
    NULL, NULL, { "[oauth2] token_endpoint", "user name" } },
  { "/proxy/config/bad/oauth2/not-a-url",
    MINIMAL "auth = oauth2\n[oauth2]\nclient_id = x\ntoken_endpoint = ftp://login.example.test/t\n",
    NULL, NULL, { "[oauth2] token_endpoint", "https://" } },
  { "/proxy/config/bad/oauth2/not-allowed",
    OAUTH2_MINIMAL "device_authorization_endpoint = https://evil.test/device\n"
    "[policy]\nallowed_upstreams = *.example.test\n", NULL, NULL,
    { "[oauth2] device_authorization_endpoint", "evil.test", "allowed_upstreams" } },
  { "/proxy/config/bad/oauth2/token-not-allowed-by-policy",
    OAUTH2_MINIMAL, "[policy]\nallowed_upstreams = imap.example.test smtp.example.test\n",
    NULL, { "[oauth2] token_endpoint", "login.example.test" } },
  { "/proxy/config/bad/upstream/certificate-without-client-certificate",
    MINIMAL "auth = certificate\n", NULL, NULL, { "[upstream] client_certificate", "missing", "certificate" } },
  { "/proxy/config/bad/upstream/client-certificate-relative",
    MINIMAL "auth = certificate\nclient_certificate = alice.pem\n", NULL, NULL,
    { "[upstream] client_certificate", "alice.pem", "pkcs11:" } },
  { "/proxy/config/bad/upstream/client-certificate-missing-file",
    MINIMAL "auth = certificate\nclient_certificate = /nonexistent/securemail-test/alice.pem\n", NULL, NULL,
    { "[upstream] client_certificate", "/nonexistent/securemail-test/alice.pem" } },
  { "/proxy/config/bad/upstream/client-certificate-uri-space",
    MINIMAL "auth = certificate\nclient_certificate = pkcs11:token=My Card\n", NULL, NULL,
    { "[upstream] client_certificate", "white space" } },
  { "/proxy/config/bad/upstream/client-key-alone",
    MINIMAL "client_key = pkcs11:token=SecureMail;object=alice;type=private\n", NULL, NULL,
    { "[upstream] client_key", "client_certificate" } },
  { "/proxy/config/bad/upstream/ca-file-missing",
    MINIMAL "ca_file = /nonexistent/securemail-test/ca.pem\n", NULL, NULL,
    { "[upstream] ca_file", "/nonexistent/securemail-test/ca.pem" } },
  { "/proxy/config/bad/upstream/pin-short",
    MINIMAL "pin_sha256 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NULL, NULL,
    { "[upstream] pin_sha256", "44" } },
  { "/proxy/config/bad/upstream/pin-long",
    MINIMAL "pin_sha256 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", NULL, NULL,
    { "[upstream] pin_sha256", "SHA-256" } },
  { "/proxy/config/bad/upstream/pin-not-base64",
    MINIMAL "pin_sha256 = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", NULL, NULL,
    { "[upstream] pin_sha256" } },
  { "/proxy/config/bad/upstream/username-newline",
    MINIMAL "username = alice\\r\\nA1 LOGOUT\n", NULL, NULL, { "[upstream] username", "single line" } },

  /* ---- [listen] ---- */
  { "/proxy/config/bad/listen/no-port",
    MINIMAL "[listen]\nimap = 127.0.0.1\n", NULL, NULL, { "[listen] imap", "127.0.0.1:1143" } },
  { "/proxy/config/bad/listen/host-name",
    MINIMAL "[listen]\nsmtp = mail.example.test:1025\n", NULL, NULL, { "[listen] smtp", "numeric" } },
  { "/proxy/config/bad/listen/port-text",
    MINIMAL "[listen]\nimap = 127.0.0.1:imap\n", NULL, NULL, { "[listen] imap" } },
  { "/proxy/config/bad/listen/port-empty",
    MINIMAL "[listen]\nimap = 127.0.0.1:\n", NULL, NULL, { "[listen] imap" } },
  { "/proxy/config/bad/listen/port-70000",
    MINIMAL "[listen]\nsmtp = 127.0.0.1:70000\n", NULL, NULL, { "[listen] smtp" } },
  { "/proxy/config/bad/listen/non-loopback-imap",
    MINIMAL "[listen]\nimap = 0.0.0.0:1143\n", NULL, NULL, { "securemail.conf", "[listen] imap", "loopback" } },
  { "/proxy/config/bad/listen/non-loopback-smtp",
    MINIMAL "[listen]\nsmtp = 192.0.2.7:1025\n", NULL, NULL, { "[listen] smtp", "loopback" } },
  { "/proxy/config/bad/listen/non-loopback-ipv6",
    MINIMAL "[listen]\nimap = [::]:1143\n", NULL, NULL, { "[listen] imap", "loopback" } },
  { "/proxy/config/bad/listen/policy-says-off",
    MINIMAL "[listen]\nimap = 0.0.0.0:1143\n", "[policy]\nallow_remote_listen = off\n", NULL,
    { "[listen] imap", "loopback" } },

  /* ---- [crypto] ---- */
  { "/proxy/config/bad/crypto/protocol", MINIMAL "[crypto]\nprotocol = pgp\n", NULL, NULL,
    { "[crypto] protocol", "smime or openpgp", "pgp" } },
  { "/proxy/config/bad/crypto/encrypt", MINIMAL "[crypto]\nencrypt = always\n", NULL, NULL,
    { "[crypto] encrypt", "always" } },
  { "/proxy/config/bad/crypto/subject-tags", MINIMAL "[crypto]\nsubject_tags = maybe\n", NULL, NULL,
    { "[crypto] subject_tags", "on or off" } },
  { "/proxy/config/bad/crypto/request-receipts", MINIMAL "[crypto]\nrequest_receipts = 2\n", NULL, NULL,
    { "[crypto] request_receipts", "on or off" } },
  { "/proxy/config/bad/security/start-locked", MINIMAL "[security]\nstart_locked = sometimes\n", NULL, NULL,
    { "[security] start_locked" } },
  { "/proxy/config/bad/security/start-locked-off-without-policy", MINIMAL "[security]\nstart_locked = off\n",
    NULL, NULL, { "securemail.conf", "[security] start_locked", "auto_unlock = login-keyring", "policy.conf" } },
  { "/proxy/config/bad/security/start-locked-off-in-policy-alone", MINIMAL, "[security]\nstart_locked = off\n",
    NULL, { "policy.conf: [security] start_locked", "auto_unlock = login-keyring" } },
  { "/proxy/config/bad/security/auto-unlock-in-user-file", MINIMAL "[security]\nauto_unlock = login-keyring\n",
    NULL, NULL, { "securemail.conf", "[security] auto_unlock", "administrator" } },
  { "/proxy/config/bad/security/auto-unlock-value", MINIMAL, "[security]\nauto_unlock = yes\n", NULL,
    { "policy.conf", "[security] auto_unlock", "off or login-keyring", "yes" } },
  { "/proxy/config/bad/security/lock-on-screen-lock", MINIMAL "[security]\nlock_on_screen_lock = later\n", NULL,
    NULL, { "[security] lock_on_screen_lock", "on or off" } },
  { "/proxy/config/bad/security/lock-on-suspend", MINIMAL "[security]\nlock_on_suspend = 2\n", NULL, NULL,
    { "[security] lock_on_suspend", "on or off" } },
  { "/proxy/config/bad/security/idle-lock", MINIMAL "[security]\nidle_lock = 10m\n", NULL, NULL,
    { "[security] idle_lock", "minutes", "10m" } },
  { "/proxy/config/bad/security/idle-lock-too-long", MINIMAL "[security]\nidle_lock = 999999\n", NULL, NULL,
    { "[security] idle_lock", "10080" } },
  { "/proxy/config/bad/crypto/receipt-overdue-word", MINIMAL "[crypto]\nreceipt_overdue = soon\n", NULL, NULL,
    { "[crypto] receipt_overdue", "3d, 12h or 90m", "soon" } },
  { "/proxy/config/bad/crypto/receipt-overdue-zero", MINIMAL "[crypto]\nreceipt_overdue = 0d\n", NULL, NULL,
    { "[crypto] receipt_overdue", "at most a year" } },
  { "/proxy/config/bad/crypto/receipt-overdue-too-long", MINIMAL "[crypto]\nreceipt_overdue = 400d\n", NULL,
    NULL, { "[crypto] receipt_overdue", "at most a year" } },
  { "/proxy/config/bad/crypto/receipt-overdue-negative", MINIMAL "[crypto]\nreceipt_overdue = -5h\n", NULL,
    NULL, { "[crypto] receipt_overdue" } },
  { "/proxy/config/bad/crypto/send-receipts", MINIMAL "[crypto]\nsend_receipts = yes\n", NULL, NULL,
    { "[crypto] send_receipts", "auto or never" } },

  /* ---- [policy] ---- */
  { "/proxy/config/bad/policy/personal-enforce", MINIMAL "[policy]\npersonal_enforce = enforce\n", NULL, NULL,
    { "[policy] personal_enforce", "on or off" } },
  { "/proxy/config/bad/policy/personal-tag-empty", MINIMAL "[policy]\npersonal_tag =\n", NULL, NULL,
    { "[policy] personal_tag" } },
  { "/proxy/config/bad/policy/allow-remote-listen-in-user-file",
    MINIMAL "[policy]\nallow_remote_listen = on\n", NULL, NULL,
    { "securemail.conf", "[policy] allow_remote_listen", "administrator" } },
  { "/proxy/config/bad/policy/trust-anchors-dir-in-user-file",
    MINIMAL "[policy]\ntrust_anchors_dir = /tmp\n", NULL, NULL,
    { "[policy] trust_anchors_dir", "administrator" } },
  { "/proxy/config/bad/policy/allowed-upstreams-refuse-imap",
    MINIMAL, "[policy]\nallowed_upstreams = *.corp.example\n", NULL,
    { "[upstream] imap", "imap.example.test", "allowed_upstreams" } },
  { "/proxy/config/bad/policy/allowed-upstreams-refuse-smtp",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.corp.example\n"
    "smtp = smtp://smtp.example.test\n",
    "[policy]\nallowed_upstreams = *.corp.example\n", NULL,
    { "[upstream] smtp", "smtp.example.test", "allowed_upstreams" } },
  { "/proxy/config/bad/policy/allowed-upstreams-suffix-trick",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = imaps://imap.corp.example.evil.test\n"
    "smtp = smtp://smtp.corp.example\n",
    "[policy]\nallowed_upstreams = *.corp.example\n", NULL,
    { "[upstream] imap", "allowed_upstreams" } },
  { "/proxy/config/bad/policy/bad-value-in-policy-file",
    MINIMAL, "[crypto]\nencrypt = sometimes\n", NULL, { "policy.conf", "[crypto] encrypt", "sometimes" } },

  /* ---- [admin] ---- */
  { "/proxy/config/bad/admin/contact-email", MINIMAL "[admin]\ncontact_email = helpdesk\n", NULL, NULL,
    { "[admin] contact_email", "helpdesk" } },

  /* ---- unknown keys and groups ---- */
  { "/proxy/config/bad/unknown/key", MINIMAL "[account]\nadress = alice@example.test\n", NULL, NULL,
    { "securemail.conf", "[account] adress", "unknown key" } },
  { "/proxy/config/bad/unknown/group", MINIMAL "[acount]\naddress = alice@example.test\n", NULL, NULL,
    { "[acount] address", "unknown key" } },
  { "/proxy/config/bad/unknown/key-in-policy", MINIMAL, "[policy]\nallowed_upstream = *\n", NULL,
    { "policy.conf", "[policy] allowed_upstream", "unknown key" } },
};

static void
test_good (gconstpointer data)
{
  const ConfigCase *tc = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = sm_config_load_data (tc->user, tc->policy, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);
  tc->check (config);
}

static void
test_bad (gconstpointer data)
{
  const ConfigCase *tc = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = sm_config_load_data (tc->user, tc->policy, &error);

  g_assert_null (config);
  g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
  /* securemail-proxy prints it as its single line. */
  g_assert_null (strpbrk (error->message, "\r\n"));
  g_assert_nonnull (tc->needles[0]);
  for (guint i = 0; i < MAX_NEEDLES && tc->needles[i]; i++)
    if (strstr (error->message, tc->needles[i]) == NULL)
      g_error ("%s: “%s” does not mention “%s”", tc->path, error->message, tc->needles[i]);
}

/* ---- policy locking ------------------------------------------------------ */

static void
test_policy_wins (void)
{
  const char *user = MINIMAL
    "[account]\ndisplay_name = Alice\n"
    "[crypto]\nencrypt = never\nsubject_tags = off\nprotocol = openpgp\n"
    "[policy]\npersonal_enforce = off\n"
    "[admin]\ncontact_phone = 123\n";
  const char *policy =
    "[crypto]\nencrypt = required\nprotocol = smime\n"
    "[policy]\npersonal_enforce = on\nallowed_upstreams = *.example.test\n"
    "[admin]\ncontact_email = helpdesk@business.example\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) c = sm_config_load_data (user, policy, &error);

  g_assert_no_error (error);
  /* Set in both: the policy's value, locked. */
  g_assert_cmpint (c->encrypt, ==, SM_ENCRYPT_REQUIRED);
  g_assert_true (sm_config_is_locked (c, "crypto", "encrypt"));
  g_assert_cmpint (c->protocol, ==, SM_PROTOCOL_SMIME);
  g_assert_true (sm_config_is_locked (c, "crypto", "protocol"));
  g_assert_true (c->personal_enforce);
  g_assert_true (sm_config_is_locked (c, "policy", "personal_enforce"));
  /* Only in the policy: set and locked. */
  g_assert_cmpstr (c->contact_email, ==, "helpdesk@business.example");
  g_assert_true (sm_config_is_locked (c, "admin", "contact_email"));
  g_assert_true (sm_config_is_locked (c, "policy", "allowed_upstreams"));
  /* Only in the user's file: the user's value, not locked. */
  g_assert_false (c->subject_tags);
  g_assert_false (sm_config_is_locked (c, "crypto", "subject_tags"));
  g_assert_cmpstr (c->contact_phone, ==, "123");
  g_assert_false (sm_config_is_locked (c, "admin", "contact_phone"));
  g_assert_cmpstr (c->display_name, ==, "Alice");
  g_assert_false (sm_config_is_locked (c, "account", "display_name"));
  /* In neither: the default, not locked. */
  g_assert_true (c->request_receipts);
  g_assert_false (sm_config_is_locked (c, "crypto", "request_receipts"));
  /* Names are exact. */
  g_assert_false (sm_config_is_locked (c, "crypto", "Encrypt"));
  g_assert_false (sm_config_is_locked (c, "policy", "encrypt"));
}

/* The administrator may even set the account: the user's file then cannot
 * change it. */
static void
test_policy_locks_account (void)
{
  const char *user = "[account]\naddress = mallory@example.test\n"
                     "[upstream]\nimap = imaps://evil.test\nsmtp = smtps://evil.test\n";
  const char *policy = "[account]\naddress = alice@example.test\n"
                       "[upstream]\nimap = imaps://imap.example.test\nsmtp = smtps://smtp.example.test\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) c = sm_config_load_data (user, policy, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (c->address, ==, "alice@example.test");
  g_assert_cmpstr (c->imap.host, ==, "imap.example.test");
  g_assert_cmpstr (c->smtp.host, ==, "smtp.example.test");
  g_assert_true (sm_config_is_locked (c, "account", "address"));
  g_assert_true (sm_config_is_locked (c, "upstream", "imap"));
  g_assert_false (sm_config_is_locked (c, "upstream", "username"));
  /* The policy alone is a complete configuration. */
  {
    g_autoptr(SmConfig) c2 = sm_config_load_data ("", policy, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (c2->address, ==, "alice@example.test");
  }
}

/* A policy value checked against a policy glob: the administrator's own
 * upstream must be allowed by the administrator's own list. */
static void
test_policy_upstream_refused (void)
{
  const char *policy = "[upstream]\nimap = imaps://imap.other.test\n[policy]\nallowed_upstreams = *.example.test\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) c = sm_config_load_data (MINIMAL, policy, &error);

  g_assert_null (c);
  g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "[upstream] imap"));
  g_assert_nonnull (strstr (error->message, "imap.other.test"));
}

/* ---- sm_config_load() and the daemon ------------------------------------- */

typedef struct {
  char *dir;
} FileFixture;

static void
file_fixture_set_up (FileFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("sm-test-config-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
file_fixture_tear_down (FileFixture *f, gconstpointer data)
{
  g_autoptr(GDir) d = g_dir_open (f->dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *p = g_build_filename (f->dir, name, NULL);
      g_unlink (p);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
}

static char *
write_file (FileFixture *f, const char *name, const char *text)
{
  char *path = g_build_filename (f->dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
  return path;
}

/* sm_config_load() names the real file paths. */
static void
test_load_file (FileFixture *f, gconstpointer data)
{
  g_autofree char *good = write_file (f, "good.conf", MINIMAL);
  g_autofree char *bad = write_file (f, "bad.conf", MINIMAL "[crypto]\nencrypt = sometimes\n");
  g_autofree char *policy = write_file (f, "policy.conf", "[crypto]\nsubject_tags = off\n");
  g_autofree char *missing = g_build_filename (f->dir, "missing.conf", NULL);
  g_autoptr(GError) error = NULL;

  g_setenv ("SECUREMAIL_POLICY", policy, TRUE);
  {
    g_autoptr(SmConfig) c = sm_config_load (good, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (c->path, ==, good);
    g_assert_cmpstr (c->policy_path, ==, policy);
    g_assert_false (c->subject_tags);
    g_assert_true (sm_config_is_locked (c, "crypto", "subject_tags"));
  }
  {
    g_autoptr(SmConfig) c = sm_config_load (bad, &error);
    g_assert_null (c);
    g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
    g_assert_true (g_str_has_prefix (error->message, bad));
    g_assert_nonnull (strstr (error->message, "[crypto] encrypt"));
    g_clear_error (&error);
  }
  {
    /* The user's file must exist... */
    g_autoptr(SmConfig) c = sm_config_load (missing, &error);
    g_assert_null (c);
    g_assert_error (error, SM_ERROR, SM_ERROR_CONFIG);
    g_assert_nonnull (strstr (error->message, missing));
    g_clear_error (&error);
  }
  {
    /* ...the policy file need not. */
    g_autoptr(SmConfig) c = NULL;
    g_setenv ("SECUREMAIL_POLICY", missing, TRUE);
    c = sm_config_load (good, &error);
    g_assert_no_error (error);
    g_assert_true (c->subject_tags);
  }
  {
    /* SECUREMAIL_CONFIG is the default path. */
    g_autoptr(SmConfig) c = NULL;
    g_setenv ("SECUREMAIL_CONFIG", good, TRUE);
    c = sm_config_load (NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (c->path, ==, good);
    g_unsetenv ("SECUREMAIL_CONFIG");
  }
  g_unsetenv ("SECUREMAIL_POLICY");
}

typedef struct {
  const char *path;
  const char *user;       /* NULL: the config file does not exist */
  const char *policy;     /* NULL: no policy file */
  const char *needles[MAX_NEEDLES];
  gboolean names_policy;  /* the line names the policy file, not the user's */
} DaemonCase;

static const DaemonCase daemon_cases[] = {
  { "/proxy/config/daemon/http-upstream",
    "[account]\naddress = alice@example.test\n[upstream]\nimap = http://imap.example.test\nsmtp = smtp://s.example.test\n",
    NULL, { "[upstream] imap", "http://imap.example.test" }, FALSE },
  { "/proxy/config/daemon/unknown-key", MINIMAL "[listen]\nimpa = 127.0.0.1:1143\n", NULL,
    { "[listen] impa", "unknown key" }, FALSE },
  { "/proxy/config/daemon/remote-listen", MINIMAL "[listen]\nsmtp = 0.0.0.0:1025\n", NULL,
    { "[listen] smtp", "loopback" }, FALSE },
  { "/proxy/config/daemon/missing-address",
    "[upstream]\nimap = imaps://imap.example.test\nsmtp = smtp://s.example.test\n", NULL,
    { "[account] address", "required" }, FALSE },
  { "/proxy/config/daemon/bad-policy-value", MINIMAL, "[crypto]\nencrypt = sometimes\n",
    { "[crypto] encrypt", "sometimes" }, TRUE },
  { "/proxy/config/daemon/policy-allowed-upstreams", MINIMAL, "[policy]\nallowed_upstreams = *.corp.example\n",
    { "[upstream] imap", "allowed_upstreams" }, FALSE },
  { "/proxy/config/daemon/not-a-keyfile", "this is not an INI file\n", NULL, { "" }, FALSE },
  { "/proxy/config/daemon/missing-file", NULL, NULL, { "" }, FALSE },
};

/* securemail-proxy --config BAD: exit 2, exactly one line on stderr, naming
 * the file and (for a key) "[group] key", nothing on stdout. */
static void
test_daemon (FileFixture *f, gconstpointer data)
{
  const DaemonCase *tc = data;
  const char *proxy = g_getenv ("SM_PROXY");
  g_autofree char *config = NULL;
  g_autofree char *policy = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *home = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = g_get_environ ();
  int status = 0;

  if (proxy == NULL)
    {
      g_test_skip ("SM_PROXY is not set (run through meson test)");
      return;
    }
  config = tc->user ? write_file (f, "securemail.conf", tc->user) : g_build_filename (f->dir, "none.conf", NULL);
  policy = tc->policy ? write_file (f, "policy.conf", tc->policy) : g_build_filename (f->dir, "no-policy.conf", NULL);
  home = g_build_filename (f->dir, "home", NULL);
  env = g_environ_setenv (env, "SECUREMAIL_POLICY", policy, TRUE);
  env = g_environ_setenv (env, "XDG_DATA_HOME", home, TRUE);
  env = g_environ_setenv (env, "XDG_CONFIG_HOME", home, TRUE);
  env = g_environ_setenv (env, "LC_ALL", "C.UTF-8", TRUE);
  env = g_environ_unsetenv (env, "SECUREMAIL_CONFIG");
  env = g_environ_unsetenv (env, "G_MESSAGES_DEBUG");
  {
    const char *argv[] = { proxy, "--config", config, NULL };
    g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error);
  }
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status));
  if (WEXITSTATUS (status) != 2)
    g_error ("%s: exit %d, stderr: %s", tc->path, WEXITSTATUS (status), err);
  g_assert_cmpstr (out, ==, "");
  /* Exactly one line. */
  g_assert_true (g_str_has_suffix (err, "\n"));
  g_assert_true (strchr (err, '\n') == err + strlen (err) - 1);
  g_assert_true (g_str_has_prefix (err, "securemail-proxy: "));
  g_assert_nonnull (strstr (err, tc->names_policy ? policy : config));
  for (guint i = 0; i < MAX_NEEDLES && tc->needles[i]; i++)
    if (strstr (err, tc->needles[i]) == NULL)
      g_error ("%s: “%s” does not mention “%s”", tc->path, err, tc->needles[i]);
  /* It failed before creating anything. */
  g_assert_false (g_file_test (home, G_FILE_TEST_EXISTS));
}

/* The example of SPEC.md "Config keys", verbatim with its trailing
 * comments, must load: helpdesks copy it. */
static void
test_spec_example (void)
{
  const char *spec =
    "[account]\n"
    "address = alice@example.test           # the authenticated FROM: address; also the local user name\n"
    "personal_address = alice@personaluse.example.test   # optional identity for [PERSONAL] mail\n"
    "display_name = Alice Example\n"
    "\n"
    "[upstream]\n"
    "imap = imaps://imap.example.test:993   # imaps:// = implicit TLS; imap://host:143 = STARTTLS, required\n"
    "smtp = smtp://smtp.example.test:587    # smtps:// = implicit TLS; smtp://host:587 = STARTTLS, required\n"
    "username = alice\n"
    "auth = password                        # password | oauth2 | certificate\n"
    "ca_file =                              # extra trust anchors (PEM) for the provider's TLS certificate\n"
    "pin_sha256 =                           # optional base64 SHA-256 of the provider's SubjectPublicKeyInfo\n"
    "\n"
    "[listen]\n"
    "imap = 127.0.0.1:1143\n"
    "smtp = 127.0.0.1:1025\n"
    "\n"
    "[crypto]\n"
    "protocol = smime                       # smime | openpgp\n"
    "encrypt = if-possible                  # required | if-possible | never\n"
    "subject_tags = on                      # trust tags in the Subject, for clients that show nothing else\n"
    "request_receipts = on\n"
    "send_receipts = auto                   # auto | never\n"
    "\n"
    "[policy]\n"
    "allowed_upstreams =                    # host globs the proxy may connect to; empty = any\n"
    "personal_tag = [PERSONAL]\n"
    "personal_enforce = on                  # [PERSONAL] mail must come from personal_address\n"
    "\n"
    "[admin]\n"
    "contact_email = securemailadmin@business.example\n"
    "contact_phone = +64 4 000 0000\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = sm_config_load_data (spec, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpstr (config->address, ==, "alice@example.test");
  g_assert_cmpstr (config->personal_address, ==, "alice@personaluse.example.test");
  g_assert_cmpstr (config->imap.host, ==, "imap.example.test");
  g_assert_cmpuint (config->smtp.port, ==, 587);
  g_assert_false (config->smtp.implicit_tls);
  g_assert_null (config->ca_file);
  g_assert_null (config->pin_sha256);
  g_assert_cmpint (config->auth, ==, SM_AUTH_PASSWORD);
  g_assert_cmpint (config->encrypt, ==, SM_ENCRYPT_IF_POSSIBLE);
  g_assert_cmpstr (config->personal_tag, ==, "[PERSONAL]");
  g_assert_null (config->allowed_upstreams[0]);
  g_assert_cmpstr (config->contact_phone, ==, "+64 4 000 0000");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_test_add_data_func (cases[i].path, &cases[i], cases[i].check ? test_good : test_bad);
  g_test_add_func ("/proxy/config/spec-example", test_spec_example);
  g_test_add_func ("/proxy/config/policy/wins-and-locks", test_policy_wins);
  g_test_add_func ("/proxy/config/policy/locks-account", test_policy_locks_account);
  g_test_add_func ("/proxy/config/policy/own-upstream-refused", test_policy_upstream_refused);
  g_test_add ("/proxy/config/load-file", FileFixture, NULL, file_fixture_set_up, test_load_file,
              file_fixture_tear_down);
  for (gsize i = 0; i < G_N_ELEMENTS (daemon_cases); i++)
    g_test_add (daemon_cases[i].path, FileFixture, &daemon_cases[i], file_fixture_set_up, test_daemon,
                file_fixture_tear_down);
  return g_test_run ();
}
