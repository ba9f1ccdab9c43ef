/* test-imap-search.c: the SEARCH criteria parser, matcher and rewriter
 * (proxy/sm-imap-search.h), table-driven. */
#include <string.h>

#include "sm-error.h"
#include "sm-imap-search.h"

static SmImapSearch *
parse (const char *command, GError **error)
{
  return sm_imap_search_parse ((const guint8 *) command, strlen (command), error);
}

/* ---- parsing ---------------------------------------------------------------- */

typedef struct {
  const char *command;
  int code;                 /* -1: parses; else the SM_ERROR code */
  guint text_keys;
  gboolean rewritable;
} ParseCase;

static const ParseCase parse_cases[] = {
  { "a SEARCH ALL\r\n", -1, 0, TRUE },
  { "a SEARCH UNSEEN SINCE 1-Feb-2024 LARGER 100 1:5,7 UID 3:* KEYWORD $Junk\r\n", -1, 0, TRUE },
  { "a UID SEARCH BODY hello\r\n", -1, 1, TRUE },
  { "a uid search body hello\n", -1, 1, TRUE },
  { "a SEARCH TEXT \"two words\" SUBJECT x FROM y TO z CC w BCC v\r\n", -1, 6, TRUE },
  { "a SEARCH HEADER Subject \"\" HEADER X-Foo bar\r\n", -1, 2, TRUE },
  { "a SEARCH OR BODY x (NOT SUBJECT y SEEN) NOT TEXT z\r\n", -1, 3, TRUE },
  { "a SEARCH RETURN (MIN MAX COUNT ALL) BODY x\r\n", -1, 1, TRUE },
  { "a UID SEARCH RETURN () CHARSET UTF-8 BODY x\r\n", -1, 1, TRUE },
  { "a SEARCH RETURN (PARTIAL (1:10)) BODY x\r\n", -1, 1, TRUE },
  { "a SEARCH CHARSET ISO-8859-1 BODY {3}\r\n\xe9t\xe9\r\n", -1, 1, TRUE },
  { "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 BODY x\r\n", -1, 1, TRUE },
  { "a SEARCH MODSEQ 5 BODY x\r\n", -1, 1, TRUE },
  { "a SEARCH ANNOTATION /comment value.priv x BODY y\r\n", -1, 1, TRUE },
  /* Relayed as they are: an unknown key, FUZZY, an unknown charset. */
  { "a SEARCH X-GM-RAW \"has:attachment\" BODY x\r\n", -1, 0, FALSE },
  { "a SEARCH FUZZY BODY x\r\n", -1, 0, FALSE },
  { "a SEARCH CHARSET X-NO-SUCH-CHARSET BODY x\r\n", -1, 0, FALSE },
  { "a SEARCH CHARSET \"\" BODY x\r\n", -1, 0, FALSE },
  { "a SEARCH HEADER \"\" x\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY \"\" HEADER Subject \"\"\r\n", -1, 2, TRUE },
  /* Malformed: BAD. */
  { "a SEARCH\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH HEADER Subject\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH (BODY x\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY x)\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH ()\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH OR BODY x\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH NOT\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY \"open\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY \"bad \\escape\"\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY (x)\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY \"x\"SEEN\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY {1}\r\nxSEEN\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH \"ALL\"\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY {10}\r\nshort\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY {x}\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY ~{3}\r\nabc\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH RETURN (MIN BODY x\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH RETURN MIN BODY x\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH CHARSET UTF-8\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH CHARSET US-ASCII BODY x", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH BODY x\r\nmore\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a FETCH 1 BODY[]\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
  { "a SEARCH CHARSET ISO-2022-JP BODY {2}\r\n\x1b$\r\n", SM_ERROR_PROTOCOL, 0, FALSE },
};

static void
test_parse_table (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (parse_cases); i++)
    {
      const ParseCase *c = &parse_cases[i];
      g_autoptr(GError) error = NULL;
      g_autoptr(SmImapSearch) s = parse (c->command, &error);

      g_autofree char *shown = g_strescape (c->command, NULL);

      g_test_message ("case %u: %s", i, shown);
      if (c->code >= 0)
        {
          g_assert_null (s);
          g_assert_error (error, SM_ERROR, c->code);
          /* Safe to send back: the message never quotes the input. */
          g_assert_null (strstr (error->message, "\r"));
          continue;
        }
      g_assert_no_error (error);
      g_assert_nonnull (s);
      g_assert_cmpstr (sm_imap_search_tag (s), ==, "a");
      g_assert_cmpuint (sm_imap_search_n_text_keys (s), ==, c->text_keys);
      g_assert_cmpint (sm_imap_search_is_rewritable (s), ==, c->rewritable);
    }
}

static void
test_parse_limits (void)
{
  g_autoptr(GString) deep = g_string_new ("a SEARCH ");
  g_autoptr(GString) many = g_string_new ("a SEARCH");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapSearch) s = NULL;

  for (guint i = 0; i < SM_IMAP_SEARCH_MAX_DEPTH + 2; i++)
    g_string_append (deep, "NOT ");
  g_string_append (deep, "ALL\r\n");
  s = parse (deep->str, &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
  g_clear_error (&error);

  for (guint i = 0; i < SM_IMAP_SEARCH_MAX_TEXT_KEYS + 1; i++)
    g_string_append (many, " BODY x");
  g_string_append (many, "\r\n");
  s = parse (many->str, &error);
  g_assert_null (s);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
}

/* ---- rewriting ---------------------------------------------------------------- */

typedef struct {
  const char *command;
  const char *expected;
} RewriteCase;

/* P = 2, 3, 4, 9; every text key matches UIDs 3 and 9 (the pattern below). */
static const RewriteCase rewrite_cases[] = {
  { "a SEARCH BODY x\r\n", "a SEARCH OR (BODY x NOT UID 2:4,9) UID 3,9\r\n" },
  { "t1 UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN TEXT \"a b\"\r\n",
    "t1 UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN OR (TEXT \"a b\" NOT UID 2:4,9) UID 3,9\r\n" },
  { "a SEARCH NOT SUBJECT q OR FROM r SEEN\r\n",
    "a SEARCH NOT OR (SUBJECT q NOT UID 2:4,9) UID 3,9 OR OR (FROM r NOT UID 2:4,9) UID 3,9 SEEN\r\n" },
  { "a SEARCH (HEADER Subject s)\r\n", "a SEARCH (OR (HEADER Subject s NOT UID 2:4,9) UID 3,9)\r\n" },
  /* Literals become non-synchronizing. */
  { "a SEARCH CHARSET UTF-8 BODY {2}\r\nhi\r\n", "a SEARCH CHARSET UTF-8 OR (BODY {2+}\r\nhi NOT UID 2:4,9) UID 3,9\r\n" },
  /* Nothing to rewrite. */
  { "a SEARCH SEEN\r\n", "a SEARCH SEEN\r\n" },
  { "a SEARCH X-GM-RAW {3}\r\nfoo BODY x\r\n", "a SEARCH X-GM-RAW {3+}\r\nfoo BODY x\r\n" },
};

static void
test_rewrite_table (void)
{
  static const guint32 uids[] = { 2, 3, 4, 9 };

  for (guint i = 0; i < G_N_ELEMENTS (rewrite_cases); i++)
    {
      const RewriteCase *c = &rewrite_cases[i];
      g_autoptr(GError) error = NULL;
      g_autoptr(SmImapSearch) s = parse (c->command, &error);
      g_autofree gboolean *matched = NULL;
      g_autoptr(GBytes) out = NULL;
      g_autofree char *text = NULL;
      guint n = G_N_ELEMENTS (uids), keys, kept = 0;
      gsize len;

      g_autofree char *shown = g_strescape (c->command, NULL);

      g_test_message ("case %u: %s", i, shown);
      g_assert_no_error (error);
      keys = sm_imap_search_n_text_keys (s);
      matched = g_new0 (gboolean, MAX (1, keys * n));
      for (guint k = 0; k < keys; k++)
        matched[k * n + 1] = matched[k * n + 3] = TRUE;
      out = sm_imap_search_rewrite (s, uids, n, matched, SM_IMAP_SEARCH_MAX_UPSTREAM, &kept);
      text = g_strndup (g_bytes_get_data (out, &len), g_bytes_get_size (out));
      g_assert_cmpstr (text, ==, c->expected);
      g_assert_cmpuint (kept, ==, sm_imap_search_is_rewritable (s) ? n : 0);
    }
}

/* No key matched: the views are only excluded. */
static void
test_rewrite_no_match (void)
{
  static const guint32 uids[] = { 7 };
  const gboolean matched[] = { FALSE };
  g_autoptr(SmImapSearch) s = parse ("a SEARCH BODY x\r\n", NULL);
  g_autoptr(GBytes) out = sm_imap_search_rewrite (s, uids, 1, matched, SM_IMAP_SEARCH_MAX_UPSTREAM, NULL);
  g_autofree char *text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));

  g_assert_cmpstr (text, ==, "a SEARCH (BODY x NOT UID 7)\r\n");
}

/* A set too long for the limit: the oldest views are left to the provider
 * and the newest are kept. */
static void
test_rewrite_too_long (void)
{
  const guint n = 20000;
  g_autofree guint32 *uids = g_new (guint32, n);
  g_autofree gboolean *matched = g_new0 (gboolean, n);
  g_autoptr(SmImapSearch) s = parse ("a SEARCH BODY x\r\n", NULL);
  g_autoptr(GBytes) out = NULL;
  g_autofree char *text = NULL;
  guint kept = 0;
  g_autofree char *last = NULL;

  for (guint i = 0; i < n; i++)
    {
      uids[i] = 2 * i + 1;        /* no two consecutive: no ranges */
      matched[i] = i % 3 == 0;
    }
  out = sm_imap_search_rewrite (s, uids, n, matched, 4096, &kept);
  g_assert_cmpuint (g_bytes_get_size (out), <=, 4096);
  g_assert_cmpuint (kept, >, 100);
  g_assert_cmpuint (kept, <, n);
  text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  last = g_strdup_printf ("%u)", uids[n - 1]);
  g_assert_nonnull (strstr (text, last));
  g_assert_true (g_str_has_prefix (text, "a SEARCH OR (BODY x NOT UID "));
  g_assert_null (strstr (text, "UID 1,"));
}

/* ---- matching ------------------------------------------------------------------ */

static const char message_qp[] =
  "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.test>\r\n"
  "To: bob@example.test\r\n"
  "Subject: =?ISO-8859-1?Q?R=E9sum=E9?= of the\r\n"
  " quarter\r\n"
  "X-SecureMail-Trust: verified\r\n"
  "MIME-Version: 1.0\r\n"
  "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
  "\r\n"
  "--b1\r\n"
  "Content-Type: text/plain; charset=iso-8859-1\r\n"
  "Content-Transfer-Encoding: quoted-printable\r\n"
  "\r\n"
  "Die Gr=FC=DFe aus M=FCnchen, the launch code is=\r\n"
  " ZEBRA-42.\r\n"
  "--b1\r\n"
  "Content-Type: text/html; charset=utf-8\r\n"
  "Content-Transfer-Encoding: base64\r\n"
  "\r\n"
  "PHA+U2Vjb25kIHBhcnQ6IE9TVFJJQ0g8L3A+\r\n"     /* <p>Second part: OSTRICH</p> */
  "--b1\r\n"
  "Content-Type: application/octet-stream\r\n"
  "Content-Transfer-Encoding: base64\r\n"
  "\r\n"
  "SElEREVOIEFUVEFDSE1FTlQ=\r\n"                /* HIDDEN ATTACHMENT */
  "--b1--\r\n";

typedef struct {
  const char *criteria;     /* after "a SEARCH " */
  gboolean matches;
} MatchCase;

static const MatchCase match_cases[] = {
  { "BODY zebra-42", TRUE },                      /* soft line break joined, any case */
  { "BODY \"code is ZEBRA\"", TRUE },
  { "BODY ostrich", TRUE },                       /* base64 part */
  { "BODY \"hidden attachment\"", FALSE },        /* not a text part */
  { "BODY PHA+U2Vjb25k", FALSE },                 /* the encoded form is not the text */
  { "BODY \"Gr=FC\"", FALSE },
  { "CHARSET UTF-8 BODY {7}\r\nGR\xc3\x9c\xc3\x9f" "E", TRUE },     /* Unicode case folding */
  { "CHARSET ISO-8859-1 BODY {7}\r\nm\xfcnchen", TRUE },           /* the command's charset */
  { "BODY juergen", FALSE },                      /* header only */
  { "TEXT juergen", TRUE },
  { "TEXT ostrich", TRUE },
  { "SUBJECT \"of the quarter\"", TRUE },         /* unfolded */
  { "CHARSET UTF-8 SUBJECT {6}\r\nr\xc3\xa9sum", TRUE },   /* RFC 2047 decoded */
  { "SUBJECT quarter", TRUE },
  { "SUBJECT zebra", FALSE },
  { "FROM {5}\r\nj\xc3\xbcrg", TRUE },
  { "FROM bob", FALSE },
  { "TO bob@example", TRUE },
  { "CC bob", FALSE },
  { "HEADER X-SecureMail-Trust VERIFIED", TRUE },
  { "HEADER x-securemail-trust \"\"", TRUE },     /* empty: the field exists */
  { "HEADER X-Absent \"\"", FALSE },
};

static void
test_match_table (void)
{
  g_autoptr(GBytes) msg = g_bytes_new_static (message_qp, strlen (message_qp));

  for (guint i = 0; i < G_N_ELEMENTS (match_cases); i++)
    {
      const MatchCase *c = &match_cases[i];
      g_autofree char *cmd = g_strdup_printf ("a SEARCH %s\r\n", c->criteria);
      g_autoptr(GError) error = NULL;
      g_autoptr(SmImapSearch) s = parse (cmd, &error);
      gboolean matched = !c->matches;

      g_autofree char *shown = g_strescape (c->criteria, NULL);

      g_test_message ("case %u: %s", i, shown);
      g_assert_no_error (error);
      g_assert_cmpuint (sm_imap_search_n_text_keys (s), ==, 1);
      sm_imap_search_match (s, msg, &matched);
      g_assert_cmpint (matched, ==, c->matches);
    }
}

/* Unicode folding: decomposed and composed accents, a ligature and ß
 * compare equal in either direction, an accent is not dropped, and the
 * ASCII fast path cuts no character in two. */
static void
test_match_unicode (void)
{
  static const char msg[] =
    "Subject: Cafe\xcc\x81 und Stra\xc3\x9f" "e\r\n"          /* "Cafe" + U+0301, "Straße" */
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Die \xef\xac\x81nanzen, na\xc3\xafve Zo\xc3\xab.\r\n";       /* "ﬁnanzen", "naïve", "Zoë" */
  static const struct {
    const char *criteria;
    gboolean matches;
  } cases[] = {
    { "CHARSET UTF-8 SUBJECT {5}\r\ncaf\xc3\xa9", TRUE },       /* composed é finds decomposed */
    { "SUBJECT strasse", TRUE },
    { "CHARSET UTF-8 SUBJECT {7}\r\nSTRA\xc3\x9f" "E", TRUE },
    { "SUBJECT \"cafe und\"", FALSE },                          /* the accent counts */
    { "BODY finanzen", TRUE },                                   /* the ligature */
    { "CHARSET UTF-8 BODY {6}\r\nNA\xc3\x8fVE", TRUE },
    { "BODY naive", FALSE },
    { "BODY zoe", FALSE },                                       /* "zoë" is not "zoe" */
    { "CHARSET UTF-8 BODY {5}\r\nzoe\xcc\x88", TRUE },           /* decomposed finds composed */
  };
  g_autoptr(GBytes) message = g_bytes_new_static (msg, strlen (msg));

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *cmd = g_strdup_printf ("a SEARCH %s\r\n", cases[i].criteria);
      g_autoptr(GError) error = NULL;
      g_autoptr(SmImapSearch) s = parse (cmd, &error);
      gboolean matched = !cases[i].matches;

      g_test_message ("unicode case %u", i);
      g_assert_no_error (error);
      sm_imap_search_match (s, message, &matched);
      g_assert_cmpint (matched, ==, cases[i].matches);
    }
}

/* Several keys at once, a message that is not MIME at all, and one that
 * is not even a header. */
static void
test_match_plain_and_garbage (void)
{
  static const char plain[] = "Subject: hello\r\n\r\nJust Text, no MIME.\r\n";
  static const char garbage[] = "\x01\x02 no header here \xff\xfe";
  g_autoptr(SmImapSearch) s = parse ("a SEARCH BODY \"just text\" TEXT hello SUBJECT mime\r\n", NULL);
  g_autoptr(GBytes) m1 = g_bytes_new_static (plain, strlen (plain));
  g_autoptr(GBytes) m2 = g_bytes_new_static (garbage, sizeof garbage - 1);
  g_autoptr(GBytes) m3 = g_bytes_new_static ("", 0);
  gboolean matched[3];

  sm_imap_search_match (s, m1, matched);
  g_assert_true (matched[0]);
  g_assert_true (matched[1]);
  g_assert_false (matched[2]);
  sm_imap_search_match (s, m2, matched);
  g_assert_false (matched[0] || matched[1] || matched[2]);
  sm_imap_search_match (s, m3, matched);
  g_assert_false (matched[0] || matched[1] || matched[2]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proxy/imap/search/parse", test_parse_table);
  g_test_add_func ("/proxy/imap/search/parse-limits", test_parse_limits);
  g_test_add_func ("/proxy/imap/search/rewrite", test_rewrite_table);
  g_test_add_func ("/proxy/imap/search/rewrite-no-match", test_rewrite_no_match);
  g_test_add_func ("/proxy/imap/search/rewrite-too-long", test_rewrite_too_long);
  g_test_add_func ("/proxy/imap/search/match", test_match_table);
  g_test_add_func ("/proxy/imap/search/match-unicode", test_match_unicode);
  g_test_add_func ("/proxy/imap/search/match-plain-and-garbage", test_match_plain_and_garbage);
  return g_test_run ();
}
