/* test-sender-check.c: table-driven tests for binding a submitted message to
 * the account (proxy/sm-sender-check.h).
 *
 * Every case builds its configuration with sm_config_load_data() (the same
 * path the daemon takes), runs sm_sender_check() on a header section and
 * checks either the result (From: address, decoded Subject, personal flag)
 * or the error: its code decides the SMTP reply (SM_ERROR_POLICY = 550 5.7.1,
 * SM_ERROR_PROTOCOL = 554 5.6.0) and its text is what the user reads, so it
 * must name what is wrong.
 */
#include <string.h>

#include "sm-config.h"
#include "sm-error.h"
#include "sm-sender-check.h"

#define ACCOUNT  "alice@example.test"
#define PERSONAL "alice@personal.example.test"
#define NO_ERROR (-1)
#define ANY_ERROR (-2)   /* refused, whichever code */
#define MAX_NEEDLES 3

typedef struct {
  const char *path;
  const char *personal_address;   /* NULL: none configured */
  gboolean enforce_off;           /* [policy] personal_enforce = off */
  const char *personal_tag;       /* NULL: the default [PERSONAL] */
  const char *envelope;           /* NULL: ACCOUNT */
  const char *message;
  int error_code;                 /* NO_ERROR, ANY_ERROR or an SmErrorCode */
  const char *error_needles[MAX_NEEDLES];  /* substrings of the error message */
  const char *from;               /* expected info->from on success */
  const char *subject;            /* expected decoded subject (NULL: no Subject) */
  gboolean personal;              /* expected info->personal */
} SenderCase;

#define CRLF "\r\n"

static const SenderCase cases[] = {
  /* ---- accepted ---- */
  { "/proxy/sender-check/good/plain",
    .message = "From: alice@example.test" CRLF "To: bob@example.test" CRLF "Subject: hello" CRLF CRLF "body" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "hello" },
  { "/proxy/sender-check/good/display-name",
    .message = "From: Alice Example <alice@example.test>" CRLF "Subject: hi" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "hi" },
  { "/proxy/sender-check/good/case-insensitive",
    /* Addresses are compared without case; the result is lower-cased. */
    .envelope = "ALICE@Example.TEST",
    .message = "From: <Alice@EXAMPLE.test>" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT },
  { "/proxy/sender-check/good/encoded-display-name",
    .message = "From: =?utf-8?q?Al=C3=AFce_Ex=C3=A4mple?= <alice@example.test>" CRLF
               "Subject: =?utf-8?b?R3LDvMOfZQ==?=" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "Grüße" },
  { "/proxy/sender-check/good/sender-is-account",
    .message = "From: alice@example.test" CRLF "Sender: alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT },
  { "/proxy/sender-check/good/folded-from",
    .message = "From: Alice" CRLF "  Example <alice@example.test>" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT },
  { "/proxy/sender-check/good/lf-only",
    /* Bare LF line ends (the SMTP session stores CRLF, but the check must
     * not depend on it). */
    .message = "From: alice@example.test\nSubject: lf\n\nbody\n",
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "lf" },
  { "/proxy/sender-check/good/lf-only-from-in-body-ignored",
    /* The blank line ends the header: a From: below it is body text. */
    .message = "From: alice@example.test\n\nFrom: mallory@evil.test\n",
    .error_code = NO_ERROR, .from = ACCOUNT },
  { "/proxy/sender-check/good/no-subject",
    .message = "From: alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = NULL },
  { "/proxy/sender-check/good/tag-in-body-only",
    .message = "From: alice@example.test" CRLF "Subject: hi" CRLF CRLF "[PERSONAL]" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "hi", .personal = FALSE },

  /* ---- From: refused by policy (550 5.7.1) ---- */
  { "/proxy/sender-check/from/someone-else",
    .envelope = ACCOUNT,
    .message = "From: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "mallory@evil.test", ACCOUNT } },
  { "/proxy/sender-check/from/display-name-trick",
    /* The display name looks like the account; the address is not. */
    .message = "From: \"alice@example.test\" <mallory@evil.test>" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "mallory@evil.test" } },
  { "/proxy/sender-check/from/encoded-display-name-trick",
    .message = "From: =?utf-8?q?alice=40example=2Etest?= <mallory@evil.test>" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "mallory@evil.test" } },
  { "/proxy/sender-check/from/two-headers",
    .message = "From: alice@example.test" CRLF "From: alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/two-headers-second-foreign",
    .message = "From: alice@example.test" CRLF "Subject: s" CRLF "From: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/two-addresses",
    .message = "From: alice@example.test, mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/two-addresses-same",
    .message = "From: alice@example.test, Alice <alice@example.test>" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/missing",
    .message = "To: bob@example.test" CRLF "Subject: no from" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "no From:" } },
  { "/proxy/sender-check/from/only-in-body",
    .message = "Subject: s" CRLF CRLF "From: alice@example.test" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "no From:" } },
  { "/proxy/sender-check/from/envelope-mismatch",
    /* Both addresses are the user's, but they must agree. */
    .personal_address = PERSONAL,
    .envelope = PERSONAL,
    .message = "From: alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { ACCOUNT, PERSONAL, "envelope" } },
  { "/proxy/sender-check/from/envelope-foreign",
    .envelope = "mallory@evil.test",
    .message = "From: alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "mallory@evil.test", "envelope" } },

  /* ---- From: that cannot be read the way a recipient would (554 5.6.0) ---- */
  { "/proxy/sender-check/from/group-syntax",
    .message = "From: Friends: alice@example.test;" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },
  { "/proxy/sender-check/from/unparseable-order",
    .message = "From: <mallory@evil.test> alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:", "Name <address>" } },
  { "/proxy/sender-check/from/unparseable-semicolon",
    .message = "From: alice@example.test;mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },
  { "/proxy/sender-check/from/unparseable-trailing-comma",
    .message = "From: alice@example.test," CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },
  { "/proxy/sender-check/from/unbalanced-angle",
    /* Whatever libetpan makes of it, it is not the account's address. */
    .message = "From: <<alice@example.test" CRLF CRLF "x" CRLF,
    .error_code = ANY_ERROR },
  { "/proxy/sender-check/from/null-address",
    .message = "From: <>" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },
  { "/proxy/sender-check/from/continuation-line-from",
    /* A folded line that looks like a second From: is part of the first. */
    .message = "From: alice@example.test" CRLF "\tFrom: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },
  { "/proxy/sender-check/from/space-before-colon",
    /* obs-from (RFC 5322 §4.5.1): "From :" is a From: header too. */
    .message = "From: alice@example.test" CRLF "From : mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/case-of-name",
    .message = "from: alice@example.test" CRLF "FROM:mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "exactly one From:" } },
  { "/proxy/sender-check/from/quoted-local-part",
    .message = "From: \"mallory@evil.test\"@example.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "is not yours" } },
  { "/proxy/sender-check/from/trailing-dot-domain",
    .message = "From: alice@example.test." CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "alice@example.test.", "is not yours" } },
  { "/proxy/sender-check/from/empty",
    .message = "From:" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "From:" } },

  /* ---- Sender: ---- */
  { "/proxy/sender-check/sender/someone-else",
    .message = "From: alice@example.test" CRLF "Sender: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "Sender:", "mallory@evil.test" } },
  { "/proxy/sender-check/sender/unparseable",
    .message = "From: alice@example.test" CRLF "Sender: <<<" CRLF CRLF "x" CRLF,
    .error_code = ANY_ERROR, .error_needles = { "Sender:" } },
  { "/proxy/sender-check/sender/empty",
    .message = "From: alice@example.test" CRLF "Sender:" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "Sender:" } },
  { "/proxy/sender-check/sender/personal-address",
    .personal_address = PERSONAL,
    .message = "From: alice@example.test" CRLF "Sender: alice@personal.example.test" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT },

  /* ---- [PERSONAL] ---- */
  { "/proxy/sender-check/personal/no-personal-address",
    .message = "From: alice@example.test" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]", "personal address", "none is set up" } },
  { "/proxy/sender-check/personal/from-account",
    .personal_address = PERSONAL,
    .message = "From: alice@example.test" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]", PERSONAL } },
  { "/proxy/sender-check/personal/from-personal",
    .personal_address = PERSONAL,
    .envelope = PERSONAL,
    .message = "From: Alice <alice@personal.example.test>" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = PERSONAL, .subject = "[PERSONAL] dinner", .personal = TRUE },
  { "/proxy/sender-check/personal/personal-address-without-tag",
    /* The personal address may send untagged mail too. */
    .personal_address = PERSONAL,
    .envelope = PERSONAL,
    .message = "From: alice@personal.example.test" CRLF "Subject: plain" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = PERSONAL, .subject = "plain", .personal = FALSE },
  { "/proxy/sender-check/personal/lower-case-tag",
    .message = "From: alice@example.test" CRLF "Subject: re: [personal] dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]" } },
  { "/proxy/sender-check/personal/enforce-off",
    .enforce_off = TRUE,
    .message = "From: alice@example.test" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "[PERSONAL] dinner", .personal = TRUE },
  { "/proxy/sender-check/personal/enforce-off-with-personal-address",
    .enforce_off = TRUE,
    .personal_address = PERSONAL,
    .message = "From: alice@example.test" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .personal = TRUE, .subject = "[PERSONAL] dinner" },
  { "/proxy/sender-check/personal/encoded-b",
    /* "[PERSONAL] dinner" in an RFC 2047 B encoded word. */
    .message = "From: alice@example.test" CRLF "Subject: =?utf-8?B?W1BFUlNPTkFMXSBkaW5uZXI=?=" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]" } },
  { "/proxy/sender-check/personal/encoded-q-split",
    /* The tag split over two encoded words (RFC 2047 §6.2: the space between
     * adjacent encoded words is dropped). */
    .message = "From: alice@example.test" CRLF "Subject: =?utf-8?q?=5BPERS?= =?iso-8859-1?q?ONAL=5D_x?=" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]" } },
  { "/proxy/sender-check/personal/encoded-from-personal",
    .personal_address = PERSONAL,
    .envelope = PERSONAL,
    .message = "From: alice@personal.example.test" CRLF "Subject: =?utf-8?B?W1BFUlNPTkFMXSBkaW5uZXI=?=" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = PERSONAL, .subject = "[PERSONAL] dinner", .personal = TRUE },
  { "/proxy/sender-check/personal/folded-subject",
    .message = "From: alice@example.test" CRLF "Subject: re: something long" CRLF " [PERSONAL]" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]" } },
  { "/proxy/sender-check/personal/custom-tag",
    .personal_tag = "{private}",
    .message = "From: alice@example.test" CRLF "Subject: {Private} dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_POLICY, .error_needles = { "{private}" } },
  { "/proxy/sender-check/personal/custom-tag-default-not-special",
    .personal_tag = "{private}",
    .message = "From: alice@example.test" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = NO_ERROR, .from = ACCOUNT, .subject = "[PERSONAL] dinner", .personal = FALSE },
  { "/proxy/sender-check/personal/lf-only",
    .message = "From: alice@example.test\nSubject: [PERSONAL] x\n\nbody\n",
    .error_code = SM_ERROR_POLICY, .error_needles = { "[PERSONAL]" } },
  /* The whole header must parse: libetpan stops at the first line it cannot
   * parse, and what follows would go unchecked. */
  { "/proxy/sender-check/header/from-after-bad-line",
    .message = "From: alice@example.test" CRLF "X Y: z" CRLF "From: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "cannot be parsed" } },
  { "/proxy/sender-check/header/sender-after-bad-line",
    .message = "From: alice@example.test" CRLF "no colon here" CRLF "Sender: mallory@evil.test" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "cannot be parsed" } },
  { "/proxy/sender-check/header/personal-after-bad-line",
    .message = "From: alice@example.test" CRLF ":x" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "cannot be parsed" } },
  { "/proxy/sender-check/header/personal-in-second-subject",
    .message = "From: alice@example.test" CRLF "Subject: hello" CRLF "Subject: [PERSONAL] dinner" CRLF CRLF "x" CRLF,
    .error_code = SM_ERROR_PROTOCOL, .error_needles = { "more than one Subject" } },
};

static SmConfig *
config_for (const SenderCase *tc)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  SmConfig *config;

  data = g_strdup_printf ("[account]\naddress = " ACCOUNT "\n%s%s%s\n"
                          "[upstream]\nimap = imaps://imap.example.test\nsmtp = smtps://smtp.example.test\n"
                          "[policy]\npersonal_enforce = %s\n%s%s\n",
                          tc->personal_address ? "personal_address = " : "",
                          tc->personal_address ? tc->personal_address : "",
                          tc->personal_address ? "\n" : "",
                          tc->enforce_off ? "off" : "on",
                          tc->personal_tag ? "personal_tag = " : "",
                          tc->personal_tag ? tc->personal_tag : "");
  config = sm_config_load_data (data, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpint (config->personal_enforce, ==, !tc->enforce_off);
  g_assert_cmpstr (config->personal_address, ==, tc->personal_address);
  return config;
}

static void
test_case (gconstpointer data)
{
  const SenderCase *tc = data;
  g_autoptr(SmConfig) config = config_for (tc);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSenderInfo) info = NULL;
  const char *envelope = tc->envelope ? tc->envelope : ACCOUNT;

  info = sm_sender_check (config, envelope, tc->message, strlen (tc->message), &error);
  if (tc->error_code == NO_ERROR)
    {
      g_assert_no_error (error);
      g_assert_nonnull (info);
      g_assert_cmpstr (info->from, ==, tc->from);
      g_assert_cmpstr (info->subject, ==, tc->subject);
      g_assert_cmpint (info->personal, ==, tc->personal);
      return;
    }
  g_assert_null (info);
  g_assert_nonnull (error);
  if (tc->error_code == ANY_ERROR)
    g_assert_true (error->domain == SM_ERROR &&
                   (error->code == SM_ERROR_POLICY || error->code == SM_ERROR_PROTOCOL));
  else
    g_assert_error (error, SM_ERROR, tc->error_code);
  /* One line: it becomes the text of an SMTP reply. */
  g_assert_null (strpbrk (error->message, "\r\n"));
  for (guint i = 0; i < MAX_NEEDLES && tc->error_needles[i]; i++)
    if (strstr (error->message, tc->error_needles[i]) == NULL)
      g_error ("%s: “%s” does not mention “%s”", tc->path, error->message, tc->error_needles[i]);
}

/* The message may not be NUL-terminated: only @len bytes count. */
static void
test_length_bounded (void)
{
  g_autoptr(SmConfig) config = config_for (&cases[0]);
  const char full[] = "From: alice@example.test" CRLF CRLF "From: mallory@evil.test" CRLF "tail";
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSenderInfo) info = NULL;
  /* A copy without the terminating NUL, in a buffer of exactly that size. */
  gsize len = strlen (full);
  g_autofree char *copy = g_memdup2 (full, len);

  info = sm_sender_check (config, ACCOUNT, copy, len, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (info->from, ==, ACCOUNT);

  /* Cut inside the first header line: no complete From:. */
  g_clear_pointer (&info, sm_sender_info_free);
  info = sm_sender_check (config, ACCOUNT, copy, 10, &error);
  g_assert_null (info);
  g_assert_nonnull (error);
}

/* A header section over SM_SENDER_CHECK_MAX_HEADER is refused as a protocol
 * error, one just under it is parsed. */
static void
test_header_limit (void)
{
  g_autoptr(SmConfig) config = config_for (&cases[0]);
  g_autoptr(GString) msg = g_string_new ("From: alice@example.test\r\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSenderInfo) info = NULL;
  guint n = 0;

  /* X-Filler lines of 100 bytes each, to just below the limit. */
  while (msg->len + 100 + 2 + 8 < SM_SENDER_CHECK_MAX_HEADER)
    {
      g_string_append_printf (msg, "X-Filler-%06u: ", n++);
      g_string_append_len (msg, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdef", 100 - 19);
      g_string_append (msg, "\r\n");
    }
  g_string_append (msg, "\r\nbody\r\n");
  info = sm_sender_check (config, ACCOUNT, msg->str, msg->len, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (info->from, ==, ACCOUNT);
  g_clear_pointer (&info, sm_sender_info_free);

  /* Grow the header past the limit. */
  g_string_insert (msg, 0, "X-Big: ");
  while (strstr (msg->str, "\r\n\r\n") - msg->str <= SM_SENDER_CHECK_MAX_HEADER)
    g_string_insert (msg, 7, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n ");
  info = sm_sender_check (config, ACCOUNT, msg->str, msg->len, &error);
  g_assert_null (info);
  g_assert_error (error, SM_ERROR, SM_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "too large"));
}

/* sm_sender_address_allowed(): the account and the personal address only. */
static void
test_address_allowed (void)
{
  SenderCase with_personal = { .personal_address = PERSONAL };
  SenderCase without = { 0 };
  g_autoptr(SmConfig) c1 = config_for (&with_personal);
  g_autoptr(SmConfig) c2 = config_for (&without);

  g_assert_true (sm_sender_address_allowed (c1, ACCOUNT));
  g_assert_true (sm_sender_address_allowed (c1, "ALICE@example.TEST"));
  g_assert_true (sm_sender_address_allowed (c1, PERSONAL));
  g_assert_false (sm_sender_address_allowed (c1, "alice@example.test.evil.test"));
  g_assert_false (sm_sender_address_allowed (c1, "alice@example.tes"));
  g_assert_false (sm_sender_address_allowed (c1, ""));
  g_assert_true (sm_sender_address_allowed (c2, ACCOUNT));
  g_assert_false (sm_sender_address_allowed (c2, PERSONAL));
  g_assert_false (sm_sender_address_allowed (c2, "mallory@evil.test"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_test_add_data_func (cases[i].path, &cases[i], test_case);
  g_test_add_func ("/proxy/sender-check/length-bounded", test_length_bounded);
  g_test_add_func ("/proxy/sender-check/header-limit", test_header_limit);
  g_test_add_func ("/proxy/sender-check/address-allowed", test_address_allowed);
  return g_test_run ();
}
