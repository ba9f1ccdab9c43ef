/* test-imap-parser.c: table-driven tests for the IMAP stream scanner, command
 * tokenizer, peek, response classifier and capability filter
 * (proxy/sm-imap-parser.h).
 *
 * Every scanner case is fed three ways (whole, byte by byte, and in
 * pseudo-random chunks from several fixed seeds) and must give the same
 * event sequence each time: the proxy reads from sockets, which split the
 * stream anywhere.
 */
#include <string.h>

#include "sm-error.h"
#include "sm-imap-parser.h"

/* ---- scanner ------------------------------------------------------------- */

#define MAX_EXPECTED_EVENTS 8
#define N_RANDOM_SEEDS      8

typedef struct {
  SmImapScanEvent event;   /* NEED_MORE (0) ends the list */
  const char *data;        /* LINE, LITERAL_TOO_LARGE: the line; LITERAL: all its bytes */
  gsize data_len;          /* 0: strlen (data) */
  gboolean continuation;
  gboolean has_literal;
  guint64 literal_size;
  gboolean nonsync;
  gboolean binary;
  gboolean literal_done;   /* LITERAL: the last chunk said so */
} ExpectedEvent;

typedef struct {
  const char *path;
  const char *input;
  gsize input_len;          /* 0: strlen (input) */
  gsize max_line;           /* 0: SM_IMAP_MAX_LINE */
  guint64 max_literal;      /* 0: SM_IMAP_MAX_LITERAL */
  guint64 remaining_at_end; /* literal bytes still expected after all input */
  ExpectedEvent events[MAX_EXPECTED_EVENTS];
} ScannerCase;

/* One event as recorded, literal chunks merged. */
typedef struct {
  SmImapScanEvent event;
  GByteArray *data;
  gboolean continuation;
  gboolean has_literal;
  guint64 literal_size;
  gboolean nonsync;
  gboolean binary;
  gboolean literal_done;
} RecordedEvent;

typedef struct {
  SmImapScanner *scanner;
  GArray *events;          /* RecordedEvent */
} ScannerFixture;

static void
recorded_event_clear (gpointer data)
{
  RecordedEvent *ev = data;

  g_clear_pointer (&ev->data, g_byte_array_unref);
}

static void
scanner_fixture_set_up (ScannerFixture *fixture, gconstpointer user_data)
{
  const ScannerCase *tc = user_data;

  fixture->scanner = sm_imap_scanner_new (tc->max_line ? tc->max_line : SM_IMAP_MAX_LINE,
                                          tc->max_literal ? tc->max_literal : SM_IMAP_MAX_LITERAL);
  fixture->events = g_array_new (FALSE, TRUE, sizeof (RecordedEvent));
  g_array_set_clear_func (fixture->events, recorded_event_clear);
}

static void
scanner_fixture_tear_down (ScannerFixture *fixture, gconstpointer user_data)
{
  g_clear_pointer (&fixture->scanner, sm_imap_scanner_free);
  g_clear_pointer (&fixture->events, g_array_unref);
}

/* Feeds one chunk completely, recording events and checking the feed
 * contract on every call. */
static void
feed_chunk (ScannerFixture *fixture, const guint8 *chunk, gsize len)
{
  gsize pos = 0;

  for (;;)
    {
      SmImapScanResult r;
      gsize n = sm_imap_scanner_feed (fixture->scanner, chunk + pos, len - pos, &r);

      g_assert_cmpuint (n, <=, len - pos);
      if (len - pos > 0)
        g_assert_cmpuint (n, >, 0);

      if (r.event == SM_IMAP_SCAN_NEED_MORE)
        {
          g_assert_cmpuint (n, ==, len - pos);
          g_assert_null (r.data);
          return;
        }

      if (r.event == SM_IMAP_SCAN_LITERAL)
        {
          RecordedEvent *last = fixture->events->len > 0
            ? &g_array_index (fixture->events, RecordedEvent, fixture->events->len - 1)
            : NULL;

          /* Literal bytes point into our own chunk, at what was consumed. */
          g_assert_true (r.data == chunk + pos);
          g_assert_cmpuint (r.len, ==, n);
          g_assert_cmpuint (r.len, >, 0);
          g_assert_cmpint (r.literal_done, ==, !sm_imap_scanner_in_literal (fixture->scanner));
          if (last != NULL && last->event == SM_IMAP_SCAN_LITERAL && !last->literal_done)
            {
              g_byte_array_append (last->data, r.data, (guint) r.len);
              last->literal_done = r.literal_done;
            }
          else
            {
              RecordedEvent ev = { .event = r.event, .data = g_byte_array_new (),
                                   .literal_done = r.literal_done };

              g_byte_array_append (ev.data, r.data, (guint) r.len);
              g_array_append_val (fixture->events, ev);
            }
        }
      else
        {
          RecordedEvent ev = { .event = r.event, .continuation = r.continuation,
                               .has_literal = r.has_literal, .literal_size = r.literal_size,
                               .nonsync = r.literal_nonsync, .binary = r.literal_binary };

          if (r.data != NULL)
            {
              ev.data = g_byte_array_new ();
              g_byte_array_append (ev.data, r.data, (guint) r.len);
            }
          else
            g_assert_cmpuint (r.len, ==, 0);
          g_array_append_val (fixture->events, ev);
        }
      pos += n;
    }
}

static void
check_events (ScannerFixture *fixture, const ScannerCase *tc, const char *mode)
{
  guint i, n_expected = 0;

  while (n_expected < MAX_EXPECTED_EVENTS && tc->events[n_expected].event != SM_IMAP_SCAN_NEED_MORE)
    n_expected++;

  g_test_message ("%s: %s: %u events", tc->path, mode, fixture->events->len);
  g_assert_cmpuint (fixture->events->len, ==, n_expected);
  for (i = 0; i < n_expected; i++)
    {
      const ExpectedEvent *want = &tc->events[i];
      const RecordedEvent *got = &g_array_index (fixture->events, RecordedEvent, i);

      g_assert_cmpint (got->event, ==, want->event);
      if (want->data != NULL)
        {
          gsize want_len = want->data_len ? want->data_len : strlen (want->data);

          g_assert_nonnull (got->data);
          g_assert_cmpmem (got->data->data, got->data->len, want->data, want_len);
        }
      else
        g_assert_null (got->data);
      g_assert_cmpint (got->continuation, ==, want->continuation);
      g_assert_cmpint (got->has_literal, ==, want->has_literal);
      g_assert_cmpuint (got->literal_size, ==, want->literal_size);
      g_assert_cmpint (got->nonsync, ==, want->nonsync);
      g_assert_cmpint (got->binary, ==, want->binary);
      g_assert_cmpint (got->literal_done, ==, want->literal_done);
    }

  g_assert_cmpuint (sm_imap_scanner_literal_remaining (fixture->scanner), ==, tc->remaining_at_end);
  g_assert_cmpint (sm_imap_scanner_in_literal (fixture->scanner), ==, tc->remaining_at_end > 0);
}

static void
restart (ScannerFixture *fixture)
{
  sm_imap_scanner_reset (fixture->scanner);
  g_array_set_size (fixture->events, 0);
}

static void
test_scanner_case (ScannerFixture *fixture, gconstpointer user_data)
{
  const ScannerCase *tc = user_data;
  const guint8 *input = (const guint8 *) tc->input;
  gsize len = tc->input_len ? tc->input_len : strlen (tc->input);
  gsize pos;
  guint seed;

  /* Whole input at once. */
  feed_chunk (fixture, input, len);
  check_events (fixture, tc, "whole");

  /* Byte by byte, each byte in its own buffer so that a scanner keeping a
   * pointer into an old buffer would be caught by ASan. */
  restart (fixture);
  for (pos = 0; pos < len; pos++)
    {
      g_autofree guint8 *one = g_memdup2 (input + pos, 1);

      feed_chunk (fixture, one, 1);
    }
  check_events (fixture, tc, "byte-by-byte");

  /* Pseudo-random chunk sizes; the seeds are fixed so a failure repeats. */
  for (seed = 1; seed <= N_RANDOM_SEEDS; seed++)
    {
      g_autoptr(GRand) rand = g_rand_new_with_seed (seed);

      restart (fixture);
      for (pos = 0; pos < len;)
        {
          /* MIN evaluates its arguments twice: draw the size first. */
          gsize want = (gsize) g_rand_int_range (rand, 1, 17);
          gsize n = MIN (want, len - pos);
          g_autofree guint8 *chunk = g_memdup2 (input + pos, n);

          feed_chunk (fixture, chunk, n);
          pos += n;
        }
      check_events (fixture, tc, "random chunks");
    }
}

#define LINE(d)            { SM_IMAP_SCAN_LINE, d, 0, FALSE, FALSE, 0, FALSE, FALSE, FALSE }
#define CONT_LINE(d)       { SM_IMAP_SCAN_LINE, d, 0, TRUE, FALSE, 0, FALSE, FALSE, FALSE }
#define LIT_LINE(d, n)     { SM_IMAP_SCAN_LINE, d, 0, FALSE, TRUE, n, FALSE, FALSE, FALSE }
#define CONT_LIT_LINE(d, n) { SM_IMAP_SCAN_LINE, d, 0, TRUE, TRUE, n, FALSE, FALSE, FALSE }
#define LITERAL(d)         { SM_IMAP_SCAN_LITERAL, d, 0, FALSE, FALSE, 0, FALSE, FALSE, TRUE }
#define TOO_LONG           { SM_IMAP_SCAN_LINE_TOO_LONG, NULL, 0, FALSE, FALSE, 0, FALSE, FALSE, FALSE }

static const ScannerCase scanner_cases[] = {
  { "/proxy/imap/scanner/line-crlf", "a1 NOOP\r\n", 0, 0, 0, 0,
    { LINE ("a1 NOOP\r\n") } },
  { "/proxy/imap/scanner/line-bare-lf", "a1 NOOP\nb2 LOGOUT\n", 0, 0, 0, 0,
    { LINE ("a1 NOOP\n"), LINE ("b2 LOGOUT\n") } },
  { "/proxy/imap/scanner/empty-line", "\r\n\n", 0, 0, 0, 0,
    { LINE ("\r\n"), LINE ("\n") } },
  { "/proxy/imap/scanner/bare-cr-is-not-a-terminator", "a\rb NOOP\r\n", 0, 0, 0, 0,
    { LINE ("a\rb NOOP\r\n") } },
  { "/proxy/imap/scanner/partial-line-waits", "a NOOP\r\nb CAPAB", 0, 0, 0, 0,
    { LINE ("a NOOP\r\n") } },
  /* RFC 9051 section 6.2.3 example, with literals for both arguments. */
  { "/proxy/imap/scanner/login-sync-literals",
    "A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\nA002 NOOP\r\n", 0, 0, 0, 0,
    { LIT_LINE ("A001 LOGIN {11}\r\n", 11), LITERAL ("FRED FOOBAR"),
      CONT_LIT_LINE (" {7}\r\n", 7), LITERAL ("fat man"), CONT_LINE ("\r\n"),
      LINE ("A002 NOOP\r\n") } },
  /* RFC 7888 section 4 style APPEND with LITERAL+. */
  { "/proxy/imap/scanner/append-literal-plus",
    "A003 APPEND saved (\\Seen) {12+}\r\nSubject: x\r\n\r\n", 0, 0, 0, 0,
    { { SM_IMAP_SCAN_LINE, "A003 APPEND saved (\\Seen) {12+}\r\n", 0, FALSE, TRUE, 12, TRUE, FALSE, FALSE },
      LITERAL ("Subject: x\r\n"), CONT_LINE ("\r\n") } },
  /* RFC 3516 section 4.3: literal8 may carry NUL. */
  { "/proxy/imap/scanner/binary-literal",
    "a APPEND box ~{3}\r\n\0\1\2\r\n", 24, 0, 0, 0,
    { { SM_IMAP_SCAN_LINE, "a APPEND box ~{3}\r\n", 0, FALSE, TRUE, 3, FALSE, TRUE, FALSE },
      { SM_IMAP_SCAN_LITERAL, "\0\1\2", 3, FALSE, FALSE, 0, FALSE, FALSE, TRUE },
      CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/binary-literal-plus",
    "a APPEND box ~{2+}\r\nab\r\n", 0, 0, 0, 0,
    { { SM_IMAP_SCAN_LINE, "a APPEND box ~{2+}\r\n", 0, FALSE, TRUE, 2, TRUE, TRUE, FALSE },
      LITERAL ("ab"), CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/literal-after-paren", "* 1 FETCH (ENVELOPE (({2}\r\nab NIL)))\r\n", 0, 0, 0, 0,
    { LIT_LINE ("* 1 FETCH (ENVELOPE (({2}\r\n", 2), LITERAL ("ab"), CONT_LINE (" NIL)))\r\n") } },
  { "/proxy/imap/scanner/fetch-response-literal",
    "* 1 FETCH (BODY[] {5}\r\nHello)\r\n* 2 FETCH (FLAGS ())\r\n", 0, 0, 0, 0,
    { LIT_LINE ("* 1 FETCH (BODY[] {5}\r\n", 5), LITERAL ("Hello"), CONT_LINE (")\r\n"),
      LINE ("* 2 FETCH (FLAGS ())\r\n") } },
  /* The literal's bytes are never scanned: a brace line inside is data. */
  { "/proxy/imap/scanner/literal-contains-announcement", "a X {8}\r\n{3}\r\nab\n\r\n", 0, 0, 0, 0,
    { LIT_LINE ("a X {8}\r\n", 8), LITERAL ("{3}\r\nab\n"), CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/zero-literal", "a LOGIN {0}\r\n {0}\r\n\r\n", 0, 0, 0, 0,
    { LIT_LINE ("a LOGIN {0}\r\n", 0), CONT_LIT_LINE (" {0}\r\n", 0), CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/literal-bare-lf", "a X {2}\nab\n", 0, 0, 0, 0,
    { LIT_LINE ("a X {2}\n", 2), LITERAL ("ab"), CONT_LINE ("\n") } },
  { "/proxy/imap/scanner/partial-literal", "a X {10}\r\nabc", 0, 0, 0, 7,
    { LIT_LINE ("a X {10}\r\n", 10),
      { SM_IMAP_SCAN_LITERAL, "abc", 0, FALSE, FALSE, 0, FALSE, FALSE, FALSE } } },
  /* Quoted strings (RFC 9051 section 4.3): "{N}" inside one is text. */
  { "/proxy/imap/scanner/brace-in-unterminated-quote", "a LOGIN \"u\" \"p {5}\r\nb NOOP\r\n", 0, 0, 0, 0,
    { LINE ("a LOGIN \"u\" \"p {5}\r\n"), LINE ("b NOOP\r\n") } },
  { "/proxy/imap/scanner/brace-after-escaped-quote", "a LOGIN \"u\\\" {5}\r\n", 0, 0, 0, 0,
    { LINE ("a LOGIN \"u\\\" {5}\r\n") } },
  { "/proxy/imap/scanner/brace-after-escaped-backslash", "a LOGIN \"u\\\\\" {2}\r\nab\r\n", 0, 0, 0, 0,
    { LIT_LINE ("a LOGIN \"u\\\\\" {2}\r\n", 2), LITERAL ("ab"), CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/backslash-outside-quote", "a STORE 1 FLAGS \\Seen {2}\r\nab\r\n", 0, 0, 0, 0,
    { LIT_LINE ("a STORE 1 FLAGS \\Seen {2}\r\n", 2), LITERAL ("ab"), CONT_LINE ("\r\n") } },
  /* Not announcements: the "{" must start a token, hold digits, and end the line. */
  { "/proxy/imap/scanner/brace-glued-to-atom", "a X foo{2}\r\nab\r\n", 0, 0, 0, 0,
    { LINE ("a X foo{2}\r\n"), LINE ("ab\r\n") } },
  { "/proxy/imap/scanner/binary-glued-to-atom", "a X foo~{2}\r\n", 0, 0, 0, 0,
    { LINE ("a X foo~{2}\r\n") } },
  { "/proxy/imap/scanner/brace-forms-that-are-not-literals",
    "a X {}\r\na X {+}\r\na X {5\r\na X {5}x\r\na X {5} \r\na X {a}\r\n{2}\r\n", 0, 0, 0, 0,
    { LINE ("a X {}\r\n"), LINE ("a X {+}\r\n"), LINE ("a X {5\r\n"), LINE ("a X {5}x\r\n"),
      LINE ("a X {5} \r\n"), LINE ("a X {a}\r\n"), LINE ("{2}\r\n") } },
  { "/proxy/imap/scanner/tilde-apart-is-not-binary", "a X ~ {1}\r\nz\r\n", 0, 0, 0, 0,
    { LIT_LINE ("a X ~ {1}\r\n", 1), LITERAL ("z"), CONT_LINE ("\r\n") } },
  /* Line limit: max_line counts the terminator. */
  { "/proxy/imap/scanner/line-at-limit", "abcdefg\r\n", 0, 9, 0, 0,
    { LINE ("abcdefg\r\n") } },
  { "/proxy/imap/scanner/line-over-limit", "abcdefgh\r\nb NOOP\r\n", 0, 9, 0, 0,
    { TOO_LONG, LINE ("b NOOP\r\n") } },
  { "/proxy/imap/scanner/line-far-over-limit", "0123456789012345678901234567890123\r\nb NOOP\n", 0, 9, 0, 0,
    { TOO_LONG, LINE ("b NOOP\n") } },
  { "/proxy/imap/scanner/line-over-limit-unfinished", "0123456789012345", 0, 9, 0, 0,
    { TOO_LONG } },
  { "/proxy/imap/scanner/max-line-one", "\na\nb\n\n", 0, 1, 0, 0,
    { LINE ("\n"), TOO_LONG, TOO_LONG, LINE ("\n") } },
  { "/proxy/imap/scanner/continuation-over-limit", "a X {2}\r\nab 0123456789012\r\nb NOOP\r\n", 0, 12, 0, 0,
    { LIT_LINE ("a X {2}\r\n", 2), LITERAL ("ab"), TOO_LONG, LINE ("b NOOP\r\n") } },
  /* Literal limit: the scanner stays in line state. */
  { "/proxy/imap/scanner/literal-at-limit", "a LOGIN {10}\r\n0123456789\r\n", 0, 0, 10, 0,
    { LIT_LINE ("a LOGIN {10}\r\n", 10), LITERAL ("0123456789"), CONT_LINE ("\r\n") } },
  { "/proxy/imap/scanner/literal-over-limit", "a LOGIN {11}\r\nb NOOP\r\n", 0, 0, 10, 0,
    { { SM_IMAP_SCAN_LITERAL_TOO_LARGE, "a LOGIN {11}\r\n", 0, FALSE, TRUE, 11, FALSE, FALSE, FALSE },
      LINE ("b NOOP\r\n") } },
  { "/proxy/imap/scanner/literal-plus-over-limit", "a APPEND x ~{11+}\r\n", 0, 0, 10, 0,
    { { SM_IMAP_SCAN_LITERAL_TOO_LARGE, "a APPEND x ~{11+}\r\n", 0, FALSE, TRUE, 11, TRUE, TRUE, FALSE } } },
  { "/proxy/imap/scanner/second-literal-over-limit", "a LOGIN {1}\r\nu {11}\r\nb NOOP\r\n", 0, 0, 10, 0,
    { LIT_LINE ("a LOGIN {1}\r\n", 1), LITERAL ("u"),
      { SM_IMAP_SCAN_LITERAL_TOO_LARGE, " {11}\r\n", 0, TRUE, TRUE, 11, FALSE, FALSE, FALSE },
      LINE ("b NOOP\r\n") } },
  { "/proxy/imap/scanner/literal-size-overflow", "a X {184467440737095516160}\r\n", 0, 0, 0, 0,
    { { SM_IMAP_SCAN_LITERAL_TOO_LARGE, "a X {184467440737095516160}\r\n", 0, FALSE, TRUE,
        G_MAXUINT64, FALSE, FALSE, FALSE } } },
};

static void
test_scanner_reset (void)
{
  g_autoptr(SmImapScanner) scanner = sm_imap_scanner_new (SM_IMAP_MAX_LINE, SM_IMAP_MAX_PREAUTH_LITERAL);
  const char *announce = "a LOGIN {5}\r\n";
  const char *next = "b NOOP\r\n";
  SmImapScanResult r;
  gsize n;

  n = sm_imap_scanner_feed (scanner, (const guint8 *) announce, strlen (announce), &r);
  g_assert_cmpuint (n, ==, strlen (announce));
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LINE);
  g_assert_true (r.has_literal);
  g_assert_true (sm_imap_scanner_in_literal (scanner));
  g_assert_cmpuint (sm_imap_scanner_literal_remaining (scanner), ==, 5);

  /* The server refused the synchronizing literal: the client will not
   * send it, and its next line is a new command. */
  sm_imap_scanner_reset (scanner);
  g_assert_false (sm_imap_scanner_in_literal (scanner));
  g_assert_cmpuint (sm_imap_scanner_literal_remaining (scanner), ==, 0);

  n = sm_imap_scanner_feed (scanner, (const guint8 *) next, strlen (next), &r);
  g_assert_cmpuint (n, ==, strlen (next));
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LINE);
  g_assert_false (r.continuation);
  g_assert_cmpmem (r.data, r.len, next, strlen (next));

  /* A partial line is dropped too. */
  n = sm_imap_scanner_feed (scanner, (const guint8 *) "garbage", 7, &r);
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_NEED_MORE);
  sm_imap_scanner_reset (scanner);
  n = sm_imap_scanner_feed (scanner, (const guint8 *) next, strlen (next), &r);
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LINE);
  g_assert_cmpmem (r.data, r.len, next, strlen (next));

  /* An empty feed consumes nothing. */
  n = sm_imap_scanner_feed (scanner, NULL, 0, &r);
  g_assert_cmpuint (n, ==, 0);
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_NEED_MORE);
}

/* A literal the size of SM_IMAP_MAX_LITERAL streams through in chunks
 * without the scanner growing: only the announcement line is held. */
static void
test_scanner_large_literal (void)
{
  g_autoptr(SmImapScanner) scanner = sm_imap_scanner_new (SM_IMAP_MAX_LINE, SM_IMAP_MAX_LITERAL);
  g_autofree char *announce = g_strdup_printf ("a APPEND INBOX {%" G_GUINT64_FORMAT "+}\r\n",
                                               (guint64) SM_IMAP_MAX_LITERAL);
  g_autofree guint8 *block = g_malloc0 (64 * 1024);
  guint64 seen = 0;
  guint chunks_done = 0;
  SmImapScanResult r;

  sm_imap_scanner_feed (scanner, (const guint8 *) announce, strlen (announce), &r);
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LINE);
  g_assert_cmpuint (r.literal_size, ==, SM_IMAP_MAX_LITERAL);
  g_assert_true (r.literal_nonsync);

  while (seen < SM_IMAP_MAX_LITERAL)
    {
      gsize n = sm_imap_scanner_feed (scanner, block, 64 * 1024, &r);

      g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LITERAL);
      g_assert_true (r.data == block);
      seen += n;
      chunks_done += r.literal_done;
    }
  g_assert_cmpuint (seen, ==, SM_IMAP_MAX_LITERAL);
  g_assert_cmpuint (chunks_done, ==, 1);
  g_assert_false (sm_imap_scanner_in_literal (scanner));

  sm_imap_scanner_feed (scanner, (const guint8 *) "\r\n", 2, &r);
  g_assert_cmpint (r.event, ==, SM_IMAP_SCAN_LINE);
  g_assert_true (r.continuation);
}

/* ---- command tokenizer --------------------------------------------------- */

/* Out-parameters start out pointing here, so a function that forgets to
 * set one is caught (the API overwrites them without freeing). */
static char sentinel[] = "sentinel";

/* Takes ownership of what a function stored in an out-parameter. */
static char *
take_out_param (char *value)
{
  g_assert_true (value != sentinel);
  return value;
}

typedef struct {
  SmImapTokenKind kind;
  const char *value;
  gsize value_len;   /* 0: strlen (value) */
} ExpectedToken;

#define MAX_EXPECTED_TOKENS 6

typedef struct {
  const char *path;
  const char *input;
  gsize input_len;   /* 0: strlen (input) */
  const char *tag;
  const char *name;
  guint n_args;
  ExpectedToken args[MAX_EXPECTED_TOKENS];
} GoodCommandCase;

#define ATOM(v)   { SM_IMAP_TOKEN_ATOM, v, 0 }
#define QUOTED(v) { SM_IMAP_TOKEN_QUOTED, v, 0 }
#define LIT(v)    { SM_IMAP_TOKEN_LITERAL, v, 0 }
#define LIST(v)   { SM_IMAP_TOKEN_LIST, v, 0 }

static const GoodCommandCase good_commands[] = {
  { "/proxy/imap/command/good/noop", "a1 NOOP\r\n", 0, "a1", "NOOP", 0, { { 0 } } },
  { "/proxy/imap/command/good/name-upper-cased-bare-lf", "a1 noop\n", 0, "a1", "NOOP", 0, { { 0 } } },
  { "/proxy/imap/command/good/tag-with-bracket", "t]1 CAPABILITY\r\n", 0, "t]1", "CAPABILITY", 0, { { 0 } } },
  { "/proxy/imap/command/good/login-atoms", "A001 LOGIN fred@example.org s3cr3t\r\n", 0, "A001", "LOGIN", 2,
    { ATOM ("fred@example.org"), ATOM ("s3cr3t") } },
  { "/proxy/imap/command/good/login-literals", "A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n", 0,
    "A001", "LOGIN", 2, { LIT ("FRED FOOBAR"), LIT ("fat man") } },
  { "/proxy/imap/command/good/login-nonsync-literals", "a LOGIN {3+}\r\nu\"s {4+}\r\np)w\\\r\n", 0,
    "a", "LOGIN", 2, { LIT ("u\"s"), LIT ("p)w\\") } },
  { "/proxy/imap/command/good/login-quoted-escapes", "a LOGIN \"fr\\\"ed\" \"p\\\\w d\"\r\n", 0,
    "a", "LOGIN", 2, { QUOTED ("fr\"ed"), QUOTED ("p\\w d") } },
  { "/proxy/imap/command/good/empty-quoted-and-wildcard", "a LIST \"\" *\r\n", 0, "a", "LIST", 2,
    { QUOTED (""), ATOM ("*") } },
  { "/proxy/imap/command/good/zero-literals", "a LOGIN {0}\r\n {0}\r\n\r\n", 0, "a", "LOGIN", 2,
    { LIT (""), LIT ("") } },
  { "/proxy/imap/command/good/binary-literal-nul", "a APPEND INBOX ~{3}\r\nx\0y\r\n", 26, "a", "APPEND", 2,
    { ATOM ("INBOX"), { SM_IMAP_TOKEN_LITERAL, "x\0y", 3 } } },
  { "/proxy/imap/command/good/append-flags-literal", "a APPEND INBOX (\\Seen \\Draft) {5+}\r\nhello\r\n", 0,
    "a", "APPEND", 3, { ATOM ("INBOX"), LIST ("(\\Seen \\Draft)"), LIT ("hello") } },
  { "/proxy/imap/command/good/uid-fetch-list", "a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)])\r\n", 0,
    "a", "UID", 3, { ATOM ("FETCH"), ATOM ("1:*"), LIST ("(FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)])") } },
  { "/proxy/imap/command/good/section-in-atom", "a FETCH 1 BODY.PEEK[HEADER.FIELDS (FROM \"X)]\")]<0.100>\r\n", 0,
    "a", "FETCH", 2, { ATOM ("1"), ATOM ("BODY.PEEK[HEADER.FIELDS (FROM \"X)]\")]<0.100>") } },
  { "/proxy/imap/command/good/gmail-mailbox-atom", "a SELECT [Gmail]/Drafts\r\n", 0, "a", "SELECT", 1,
    { ATOM ("[Gmail]/Drafts") } },
  { "/proxy/imap/command/good/unclosed-bracket-atom", "a SELECT [Gmail\r\n", 0, "a", "SELECT", 1,
    { ATOM ("[Gmail") } },
  { "/proxy/imap/command/good/bracket-section-token", "a X [A (B C)] y\r\n", 0, "a", "X", 2,
    { LIST ("[A (B C)]"), ATOM ("y") } },
  { "/proxy/imap/command/good/literal-inside-list", "a SEARCH (OR (SUBJECT {3}\r\na)b) FROM x)\r\n", 0,
    "a", "SEARCH", 1, { LIST ("(OR (SUBJECT {3}\r\na)b) FROM x)") } },
  { "/proxy/imap/command/good/bracket-char-inside-list", "a X (a] b)\r\n", 0, "a", "X", 1,
    { LIST ("(a] b)") } },
  { "/proxy/imap/command/good/extra-spaces", "a LOGIN  u   p  \r\n", 0, "a", "LOGIN", 2,
    { ATOM ("u"), ATOM ("p") } },
  { "/proxy/imap/command/good/utf8-atom", "a SELECT Entw\xc3\xbcrfe\r\n", 0, "a", "SELECT", 1,
    { ATOM ("Entw\xc3\xbcrfe") } },
  { "/proxy/imap/command/good/id-nil", "a ID NIL\r\n", 0, "a", "ID", 1, { ATOM ("NIL") } },
  { "/proxy/imap/command/good/idle", "a0042 IDLE\r\n", 0, "a0042", "IDLE", 0, { { 0 } } },
};

static void
test_command_good (gconstpointer user_data)
{
  const GoodCommandCase *tc = user_data;
  gsize len = tc->input_len ? tc->input_len : strlen (tc->input);
  g_autoptr(GError) error = NULL;
  char *tag_out = sentinel;
  g_autoptr(SmImapCommand) command = sm_imap_command_parse ((const guint8 *) tc->input, len, &tag_out, &error);
  g_autofree char *tag = take_out_param (tag_out);
  guint i;

  g_assert_no_error (error);
  g_assert_nonnull (command);
  g_assert_null (tag);
  g_assert_cmpstr (command->tag, ==, tc->tag);
  g_assert_cmpstr (command->name, ==, tc->name);
  g_assert_cmpuint (command->args->len, ==, tc->n_args);
  for (i = 0; i < tc->n_args; i++)
    {
      const SmImapToken *token = g_ptr_array_index (command->args, i);
      gsize want_len = tc->args[i].value_len ? tc->args[i].value_len : strlen (tc->args[i].value);
      gsize got_len = 0;
      const void *got = g_bytes_get_data (token->value, &got_len);

      g_assert_cmpint (token->kind, ==, tc->args[i].kind);
      g_assert_cmpmem (got, got_len, tc->args[i].value, want_len);
    }
}

typedef struct {
  const char *path;
  const char *input;
  gsize input_len;   /* 0: strlen (input) */
  int code;          /* SmErrorCode */
  const char *tag;   /* expected *tag_out, NULL when the tag itself is bad */
} BadCommandCase;

static const BadCommandCase bad_commands[] = {
  { "/proxy/imap/command/bad/empty", "", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/empty-line", "\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/no-tag", " NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/plus-in-tag", "a+b NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/plus-tag", "+ NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/paren-in-tag", "a(b NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/star-in-tag", "a* NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/eight-bit-tag", "\xc3\xa9 NOOP\r\n", 0, SM_ERROR_PROTOCOL, NULL },
  { "/proxy/imap/command/bad/tag-only", "a\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/tag-space", "a1  \r\n", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/bad-name", "a1 NO(OP\r\n", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/no-crlf", "a1 NOOP", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/no-crlf-after-arg", "a1 LOGIN u p", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/trailing-data", "a1 NOOP\r\nb NOOP\r\n", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/lone-cr", "a1 NOOP\rx\n", 0, SM_ERROR_PROTOCOL, "a1" },
  { "/proxy/imap/command/bad/unterminated-quote", "a LOGIN \"fred\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/bad-escape", "a LOGIN \"fr\\ed\" x\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/nul-in-quote", "a LOGIN \"f\0d\" x\r\n", 17, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-short", "a LOGIN {5}\r\nabc\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-no-size", "a LOGIN {}\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-no-brace", "a LOGIN {5\r\nabcde\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-no-crlf", "a LOGIN {2}x\r\nab\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-huge", "a LOGIN {99999999999999999999999}\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-glued", "a LOGIN u{1}\r\nx\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/literal-glued-in-list", "a X (u{1}\r\nx)\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/unclosed-list", "a FETCH 1 (FLAGS\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/unclosed-list-at-end", "a FETCH 1 (FLAGS", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/close-paren-in-atom", "a FETCH 1 FLAGS)\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/stray-close-paren", "a FETCH 1 )\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/mismatched-brackets", "a FETCH 1 ([)]\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/quote-in-section", "a FETCH 1 BODY[\"x]\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/no-space-after-quoted", "a X \"a\"b\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/no-space-after-list", "a X (a)b\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/no-space-after-literal", "a X {1}\r\nzz\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/tab-in-atom", "a X foo\tbar\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/quote-in-atom", "a X foo\"bar\r\n", 0, SM_ERROR_PROTOCOL, "a" },
  { "/proxy/imap/command/bad/control-in-list", "a X (a\001)\r\n", 0, SM_ERROR_PROTOCOL, "a" },
};

static void
test_command_bad (gconstpointer user_data)
{
  const BadCommandCase *tc = user_data;
  gsize len = tc->input_len ? tc->input_len : strlen (tc->input);
  g_autoptr(GError) error = NULL;
  char *tag_out = sentinel;
  g_autoptr(SmImapCommand) command = sm_imap_command_parse ((const guint8 *) tc->input, len, &tag_out, &error);
  g_autofree char *tag = take_out_param (tag_out);
  const char *c;

  g_assert_null (command);
  g_assert_error (error, SM_ERROR, tc->code);
  g_assert_cmpstr (tag, ==, tc->tag);
  /* The message becomes the text of a BAD: printable ASCII, one line. */
  g_assert_cmpuint (strlen (error->message), >, 0);
  for (c = error->message; *c != '\0'; c++)
    g_assert_true (*c >= 0x20 && *c < 0x7f);
}

/* SM_IMAP_MAX_ARGS tokens parse; one more is SM_ERROR_TOO_BIG. */
static void
test_command_max_args (void)
{
  g_autoptr(GString) line = g_string_new ("t9 STORE");
  g_autoptr(SmImapCommand) ok = NULL;
  g_autoptr(SmImapCommand) too_many = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *tag = NULL;
  guint i;

  for (i = 0; i < SM_IMAP_MAX_ARGS; i++)
    g_string_append (line, " x");
  g_string_append (line, "\r\n");
  ok = sm_imap_command_parse ((const guint8 *) line->str, line->len, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ok->args->len, ==, SM_IMAP_MAX_ARGS);

  g_string_truncate (line, line->len - 2);
  g_string_append (line, " x\r\n");
  too_many = sm_imap_command_parse ((const guint8 *) line->str, line->len, &tag, &error);
  g_assert_null (too_many);
  g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
  g_assert_cmpstr (tag, ==, "t9");
}

/* SM_IMAP_MAX_NESTING levels of lists parse; one more is SM_ERROR_TOO_BIG,
 * in a list and in a section alike. */
static void
test_command_nesting (void)
{
  guint depth;

  for (depth = SM_IMAP_MAX_NESTING; depth <= SM_IMAP_MAX_NESTING + 1; depth++)
    {
      g_autoptr(GString) list = g_string_new ("n SEARCH ");
      g_autoptr(GString) section = g_string_new ("n FETCH 1 BODY[");
      g_autoptr(SmImapCommand) command = NULL;
      g_autoptr(SmImapCommand) command2 = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GError) error2 = NULL;
      guint i;

      for (i = 0; i < depth; i++)
        g_string_append_c (list, '(');
      g_string_append (list, "ALL");
      for (i = 0; i < depth; i++)
        g_string_append_c (list, ')');
      g_string_append (list, "\r\n");

      for (i = 1; i < depth; i++)
        g_string_append_c (section, '(');
      for (i = 1; i < depth; i++)
        g_string_append_c (section, ')');
      g_string_append (section, "]\r\n");

      command = sm_imap_command_parse ((const guint8 *) list->str, list->len, NULL, &error);
      command2 = sm_imap_command_parse ((const guint8 *) section->str, section->len, NULL, &error2);
      if (depth <= SM_IMAP_MAX_NESTING)
        {
          g_assert_no_error (error);
          g_assert_no_error (error2);
          g_assert_cmpuint (command->args->len, ==, 1);
          g_assert_cmpuint (command2->args->len, ==, 2);
        }
      else
        {
          g_assert_error (error, SM_ERROR, SM_ERROR_TOO_BIG);
          g_assert_error (error2, SM_ERROR, SM_ERROR_TOO_BIG);
        }
    }
}

/* ---- peek ---------------------------------------------------------------- */

typedef struct {
  const char *path;
  const char *line;
  gboolean ok;
  const char *tag;
  const char *name;
} PeekCase;

static const PeekCase peek_cases[] = {
  { "/proxy/imap/peek/noop", "a1 NOOP\r\n", TRUE, "a1", "NOOP" },
  { "/proxy/imap/peek/lower-case", "a1 select INBOX\r\n", TRUE, "a1", "SELECT" },
  { "/proxy/imap/peek/no-crlf", "a1 LOGOUT", TRUE, "a1", "LOGOUT" },
  { "/proxy/imap/peek/uid-fetch", "a2 uid fetch 1:* (FLAGS)\r\n", TRUE, "a2", "UID FETCH" },
  { "/proxy/imap/peek/uid-alone", "a2 UID\r\n", TRUE, "a2", "UID" },
  { "/proxy/imap/peek/extra-spaces", "a2  UID  MOVE 1 x\r\n", TRUE, "a2", "UID MOVE" },
  { "/proxy/imap/peek/uid-garbage", "a2 UID (x)\r\n", TRUE, "a2", "UID" },
  { "/proxy/imap/peek/literal-announce", "A001 LOGIN {11}\r\n", TRUE, "A001", "LOGIN" },
  { "/proxy/imap/peek/idle-done", "DONE\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/continuation", " {7}\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/auth-response", "dGVzdA==\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/auth-cancel", "*\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/empty", "", FALSE, NULL, NULL },
  { "/proxy/imap/peek/tag-space-only", "a1 \r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/plus-tag", "+ NOOP\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/name-glued-to-brace", "a1 LOGIN{3}\r\n", FALSE, NULL, NULL },
  { "/proxy/imap/peek/eight-bit-tag", "a\x80 NOOP\r\n", FALSE, NULL, NULL },
};

static void
test_peek (gconstpointer user_data)
{
  const PeekCase *tc = user_data;
  char *tag_out = sentinel;
  char *name_out = sentinel;
  gboolean ok = sm_imap_command_peek ((const guint8 *) tc->line, strlen (tc->line), &tag_out, &name_out);
  g_autofree char *tag = take_out_param (tag_out);
  g_autofree char *name = take_out_param (name_out);

  g_assert_cmpint (ok, ==, tc->ok);
  g_assert_cmpstr (tag, ==, tc->tag);
  g_assert_cmpstr (name, ==, tc->name);
}

static void
test_peek_null_outputs (void)
{
  g_autofree char *name = NULL;

  g_assert_true (sm_imap_command_peek ((const guint8 *) "x UID STORE 1\r\n", 15, NULL, &name));
  g_assert_cmpstr (name, ==, "UID STORE");
  g_assert_true (sm_imap_command_peek ((const guint8 *) "x NOOP\r\n", 8, NULL, NULL));
  g_assert_false (sm_imap_command_peek ((const guint8 *) "x\r\n", 3, NULL, NULL));
}

/* ---- responses ----------------------------------------------------------- */

typedef struct {
  const char *path;
  const char *line;
  SmImapResponseKind kind;
  SmImapStatus status;
  const char *tag;
  const char *keyword;
  guint32 number;
  const char *code;
  const char *text;
} ResponseCase;

static const ResponseCase response_cases[] = {
  { "/proxy/imap/response/greeting", "* OK [CAPABILITY IMAP4rev1 IDLE] Dovecot ready.\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_OK, NULL, "OK", 0, "CAPABILITY IMAP4rev1 IDLE", "Dovecot ready." },
  { "/proxy/imap/response/exists", "* 5 EXISTS\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NONE, NULL, "EXISTS", 5, NULL, "" },
  { "/proxy/imap/response/fetch", "* 3 fetch (FLAGS (\\Seen) BODY[] {5}\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NONE, NULL, "FETCH", 3, NULL, "(FLAGS (\\Seen) BODY[] {5}" },
  { "/proxy/imap/response/number-max", "* 4294967295 EXPUNGE\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NONE, NULL, "EXPUNGE", G_MAXUINT32, NULL, "" },
  { "/proxy/imap/response/capability", "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NONE, NULL, "CAPABILITY", 0, NULL, "IMAP4rev1 STARTTLS AUTH=PLAIN" },
  { "/proxy/imap/response/search-empty", "* SEARCH\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NONE, NULL, "SEARCH", 0, NULL, "" },
  { "/proxy/imap/response/bye", "* BYE [UNAVAILABLE] shutting down\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_BYE, NULL, "BYE", 0, "UNAVAILABLE", "shutting down" },
  { "/proxy/imap/response/preauth", "* preauth welcome\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_PREAUTH, NULL, "PREAUTH", 0, NULL, "welcome" },
  { "/proxy/imap/response/untagged-no", "* NO [ALERT] quota\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_NO, NULL, "NO", 0, "ALERT", "quota" },
  { "/proxy/imap/response/untagged-bad", "* BAD\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_BAD, NULL, "BAD", 0, NULL, "" },
  { "/proxy/imap/response/unclosed-code", "* OK [ALERT unterminated\r\n",
    SM_IMAP_RESPONSE_UNTAGGED, SM_IMAP_STATUS_OK, NULL, "OK", 0, NULL, "[ALERT unterminated" },
  { "/proxy/imap/response/tagged-ok", "a1 OK [READ-WRITE] SELECT completed\r\n",
    SM_IMAP_RESPONSE_TAGGED, SM_IMAP_STATUS_OK, "a1", "OK", 0, "READ-WRITE", "SELECT completed" },
  { "/proxy/imap/response/tagged-no-nested-code", "a2 NO [BADCHARSET (UTF-8 \"X]\" [y])] nope\r\n",
    SM_IMAP_RESPONSE_TAGGED, SM_IMAP_STATUS_NO, "a2", "NO", 0, "BADCHARSET (UTF-8 \"X]\" [y])", "nope" },
  { "/proxy/imap/response/tagged-bad-lower", "t]3 bad syntax error\n",
    SM_IMAP_RESPONSE_TAGGED, SM_IMAP_STATUS_BAD, "t]3", "BAD", 0, NULL, "syntax error" },
  { "/proxy/imap/response/tagged-no-text", "a1 OK\r\n",
    SM_IMAP_RESPONSE_TAGGED, SM_IMAP_STATUS_OK, "a1", "OK", 0, NULL, "" },
  { "/proxy/imap/response/continuation", "+ Ready for literal\r\n",
    SM_IMAP_RESPONSE_CONTINUATION, SM_IMAP_STATUS_NONE, NULL, NULL, 0, NULL, "Ready for literal" },
  { "/proxy/imap/response/continuation-bare", "+\r\n",
    SM_IMAP_RESPONSE_CONTINUATION, SM_IMAP_STATUS_NONE, NULL, NULL, 0, NULL, "" },
  { "/proxy/imap/response/continuation-base64", "+ dGVzdA==\r\n",
    SM_IMAP_RESPONSE_CONTINUATION, SM_IMAP_STATUS_NONE, NULL, NULL, 0, NULL, "dGVzdA==" },
  { "/proxy/imap/response/continuation-code", "+ [ALERT] go\r\n",
    SM_IMAP_RESPONSE_CONTINUATION, SM_IMAP_STATUS_NONE, NULL, NULL, 0, "ALERT", "go" },
  /* Unparseable: INVALID, everything else empty. */
  { "/proxy/imap/response/invalid/empty", "", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/crlf", "\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/star-only", "*\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/star-space", "* \r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/star-glued", "*5 EXISTS\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/number-overflow", "* 4294967296 EXISTS\r\n",
    SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/number-only", "* 5\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/tagged-unknown", "a1 FOO bar\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/tagged-preauth", "a1 PREAUTH x\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/plus-glued", "+x\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/bad-tag", "a(1 OK\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/tag-only", "a1\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
  { "/proxy/imap/response/invalid/literal-continuation", ")\r\n", SM_IMAP_RESPONSE_INVALID, 0, NULL, NULL, 0, NULL, NULL },
};

static void
test_response (gconstpointer user_data)
{
  const ResponseCase *tc = user_data;
  g_auto(SmImapResponse) response = { 0 };

  /* Classify something else first: the struct is reused, and nothing of
   * the first result may leak into the second. */
  sm_imap_response_classify ((const guint8 *) "x9 NO [Q] z\r\n", 13, &response);
  g_assert_cmpint (response.kind, ==, SM_IMAP_RESPONSE_TAGGED);

  sm_imap_response_classify ((const guint8 *) tc->line, strlen (tc->line), &response);
  g_assert_cmpint (response.kind, ==, tc->kind);
  g_assert_cmpint (response.status, ==, tc->status);
  g_assert_cmpstr (response.tag, ==, tc->tag);
  g_assert_cmpstr (response.keyword, ==, tc->keyword);
  g_assert_cmpuint (response.number, ==, tc->number);
  g_assert_cmpstr (response.code, ==, tc->code);
  g_assert_cmpstr (response.text, ==, tc->text);
}

/* A code nested deeper than SM_IMAP_MAX_NESTING is not taken as a code. */
static void
test_response_code_nesting (void)
{
  guint depth;

  for (depth = SM_IMAP_MAX_NESTING; depth <= SM_IMAP_MAX_NESTING + 1; depth++)
    {
      g_autoptr(GString) line = g_string_new ("* OK ");
      g_auto(SmImapResponse) response = { 0 };
      guint i;

      for (i = 0; i < depth; i++)
        g_string_append_c (line, '[');
      for (i = 0; i < depth; i++)
        g_string_append_c (line, ']');
      g_string_append (line, " t\r\n");
      sm_imap_response_classify ((const guint8 *) line->str, line->len, &response);
      g_assert_cmpint (response.kind, ==, SM_IMAP_RESPONSE_UNTAGGED);
      if (depth <= SM_IMAP_MAX_NESTING)
        {
          g_assert_nonnull (response.code);
          g_assert_cmpuint (strlen (response.code), ==, 2 * (depth - 1));
          g_assert_cmpstr (response.text, ==, "t");
        }
      else
        g_assert_null (response.code);
    }
}

/* ---- capabilities -------------------------------------------------------- */

typedef struct {
  const char *path;
  const char *caps;
  const char *extra[3];
  const char *want;
} CapabilityCase;

static const CapabilityCase capability_cases[] = {
  { "/proxy/imap/capabilities/dovecot",
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN LOGINDISABLED COMPRESS=DEFLATE",
    { NULL }, "IMAP4rev1 ID ENABLE IDLE LITERAL+" },
  { "/proxy/imap/capabilities/case-insensitive", "imap4rev1 starttls Auth=Plain compress=deflate idle",
    { NULL }, "imap4rev1 idle" },
  { "/proxy/imap/capabilities/referrals-unauth", "IMAP4rev1 MAILBOX-REFERRALS UNAUTHENTICATE MOVE",
    { NULL }, "IMAP4rev1 MOVE" },
  { "/proxy/imap/capabilities/near-misses-kept", "STARTTLSX AUTH COMPRESS XAUTH=Y IMAP4rev2",
    { NULL }, "STARTTLSX AUTH COMPRESS XAUTH=Y IMAP4rev2" },
  { "/proxy/imap/capabilities/extra-exact", "IMAP4rev1 ID IDLE MOVE",
    { "id", "MOVE", NULL }, "IMAP4rev1 IDLE" },
  { "/proxy/imap/capabilities/qresync-notify", "IMAP4rev1 CONDSTORE QRESYNC NOTIFY QRESYNCX",
    { NULL }, "IMAP4rev1 CONDSTORE QRESYNCX" },
  { "/proxy/imap/capabilities/extra-prefix", "CONTEXT=SEARCH CONTEXT=SORT ESEARCH",
    { "CONTEXT=", NULL }, "ESEARCH" },
  { "/proxy/imap/capabilities/extra-empty-entry", "IMAP4rev1 IDLE", { "", NULL }, "IMAP4rev1 IDLE" },
  { "/proxy/imap/capabilities/whitespace", "  IMAP4rev1 \t  IDLE  \r\n", { NULL }, "IMAP4rev1 IDLE" },
  { "/proxy/imap/capabilities/all-dropped", "STARTTLS AUTH=GSSAPI", { NULL }, "" },
  { "/proxy/imap/capabilities/empty", "", { NULL }, "" },
};

static void
test_capabilities (gconstpointer user_data)
{
  const CapabilityCase *tc = user_data;
  g_autofree char *got = sm_imap_capabilities_filter (tc->caps, tc->extra);

  g_assert_cmpstr (got, ==, tc->want);
}

static void
test_capabilities_no_extra (void)
{
  g_autofree char *got = sm_imap_capabilities_filter ("IMAP4rev1 AUTH=PLAIN X", NULL);

  g_assert_cmpstr (got, ==, "IMAP4rev1 X");
}

int
main (int argc, char **argv)
{
  gsize i;

  g_test_init (&argc, &argv, NULL);

  for (i = 0; i < G_N_ELEMENTS (scanner_cases); i++)
    g_test_add (scanner_cases[i].path, ScannerFixture, &scanner_cases[i],
                scanner_fixture_set_up, test_scanner_case, scanner_fixture_tear_down);
  g_test_add_func ("/proxy/imap/scanner/reset", test_scanner_reset);
  g_test_add_func ("/proxy/imap/scanner/large-literal-streams", test_scanner_large_literal);

  for (i = 0; i < G_N_ELEMENTS (good_commands); i++)
    g_test_add_data_func (good_commands[i].path, &good_commands[i], test_command_good);
  for (i = 0; i < G_N_ELEMENTS (bad_commands); i++)
    g_test_add_data_func (bad_commands[i].path, &bad_commands[i], test_command_bad);
  g_test_add_func ("/proxy/imap/command/max-args", test_command_max_args);
  g_test_add_func ("/proxy/imap/command/nesting", test_command_nesting);

  for (i = 0; i < G_N_ELEMENTS (peek_cases); i++)
    g_test_add_data_func (peek_cases[i].path, &peek_cases[i], test_peek);
  g_test_add_func ("/proxy/imap/peek/null-outputs", test_peek_null_outputs);

  for (i = 0; i < G_N_ELEMENTS (response_cases); i++)
    g_test_add_data_func (response_cases[i].path, &response_cases[i], test_response);
  g_test_add_func ("/proxy/imap/response/code-nesting", test_response_code_nesting);

  for (i = 0; i < G_N_ELEMENTS (capability_cases); i++)
    g_test_add_data_func (capability_cases[i].path, &capability_cases[i], test_capabilities);
  g_test_add_func ("/proxy/imap/capabilities/no-extra", test_capabilities_no_extra);

  return g_test_run ();
}
