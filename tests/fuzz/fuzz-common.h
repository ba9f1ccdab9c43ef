/* fuzz-common.h: helpers shared by the IMAP fuzz targets.
 *
 * Everything here is deterministic in the input: libFuzzer and fuzz-driver.c
 * must be able to replay a crash from the saved input alone.
 */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "sm-error.h"
#include "sm-imap-parser.h"

/* The libFuzzer entry point, defined by each target (fuzz-imap-*.c) and
 * called by libFuzzer or by fuzz-driver.c. */
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A failed oracle must crash so that libFuzzer saves the input; abort()
 * also works under the plain driver and under ASan. */
#define FUZZ_CHECK(cond) \
  G_STMT_START { \
    if (G_UNLIKELY (!(cond))) \
      { \
        g_printerr ("%s:%d: fuzz oracle failed: %s\n", __FILE__, __LINE__, #cond); \
        abort (); \
      } \
  } G_STMT_END

/* A g_return_if_fail() in the parser means the harness misused the API or
 * the parser broke its own invariant: either way, a finding. */
static inline void
fuzz_init (void)
{
  static gboolean done = FALSE;

  if (!done)
    {
      g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
      done = TRUE;
    }
}

/* FNV-1a: a seed derived from the input, so chunking replays exactly. */
static inline guint64
fuzz_hash (const uint8_t *data, size_t size)
{
  guint64 h = G_GUINT64_CONSTANT (14695981039346656037);
  size_t i;

  for (i = 0; i < size; i++)
    {
      h ^= data[i];
      h *= G_GUINT64_CONSTANT (1099511628211);
    }
  return h;
}

/* splitmix64: small, fast, and good enough to pick chunk sizes. */
static inline guint64
fuzz_next (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Scanner limits picked from the input: small ones reach LINE_TOO_LONG and
 * LITERAL_TOO_LARGE with short inputs, the real ones check the defaults. */
static inline void
fuzz_pick_limits (guint64 seed, gsize *max_line, guint64 *max_literal)
{
  *max_line = (seed & 1) ? SM_IMAP_MAX_LINE : 1 + (gsize) ((seed >> 8) % 80);
  *max_literal = (seed & 2) ? SM_IMAP_MAX_PREAUTH_LITERAL : (guint64) ((seed >> 16) % 40);
}

/* Called for each scanner event; the transcript gets a chunking-independent
 * record of it. */
typedef void (*FuzzEventFunc) (SmImapScanner *scanner, const SmImapScanResult *r, gpointer user_data);

/* Appends a chunking-independent record of @r to @transcript: lines whole,
 * literal chunks merged into one record. */
static inline void
fuzz_transcript_add (GByteArray *transcript, const SmImapScanResult *r, gboolean *in_literal_record)
{
  if (r->event == SM_IMAP_SCAN_LITERAL)
    {
      if (!*in_literal_record)
        {
          g_byte_array_append (transcript, (const guint8 *) "B", 1);
          *in_literal_record = TRUE;
        }
      g_byte_array_append (transcript, r->data, (guint) r->len);
      if (r->literal_done)
        {
          g_byte_array_append (transcript, (const guint8 *) "E", 1);
          *in_literal_record = FALSE;
        }
      return;
    }

  {
    guint8 header[4] = { 'L', (guint8) r->event,
                         (guint8) (r->continuation | r->has_literal << 1 |
                                   r->literal_nonsync << 2 | r->literal_binary << 3),
                         0 };
    guint64 sizes[2] = { r->literal_size, r->len };

    g_byte_array_append (transcript, header, sizeof header);
    g_byte_array_append (transcript, (const guint8 *) sizes, sizeof sizes);
    if (r->data != NULL)
      g_byte_array_append (transcript, r->data, (guint) r->len);
  }
}

/* Runs @data through a fresh scanner in chunks (chunk_max 0: all at once),
 * checking the feed contract on every call, calling @func per event, and
 * returns the transcript (caller owns).  Each chunk is copied to a buffer
 * of its own size so that ASan sees any read past it. */
static inline GByteArray *
fuzz_scan (const uint8_t *data, size_t size, gsize max_line, guint64 max_literal,
           guint64 chunk_seed, gsize chunk_max, FuzzEventFunc func, gpointer user_data)
{
  g_autoptr(SmImapScanner) scanner = sm_imap_scanner_new (max_line, max_literal);
  GByteArray *transcript = g_byte_array_new ();
  gboolean in_literal_record = FALSE;
  guint64 rng = chunk_seed;
  size_t pos = 0;

  while (pos < size)
    {
      gsize n = chunk_max == 0 ? size - pos : 1 + (gsize) (fuzz_next (&rng) % chunk_max);
      g_autofree guint8 *chunk = NULL;
      gsize off = 0;

      n = MIN (n, size - pos);
      chunk = g_memdup2 (data + pos, n);
      for (;;)
        {
          SmImapScanResult r;
          gsize used = sm_imap_scanner_feed (scanner, chunk + off, n - off, &r);

          FUZZ_CHECK (used <= n - off);
          FUZZ_CHECK (used > 0 || n - off == 0);
          if (r.event == SM_IMAP_SCAN_NEED_MORE)
            {
              FUZZ_CHECK (used == n - off);
              FUZZ_CHECK (r.data == NULL && r.len == 0);
              break;
            }
          switch (r.event)
            {
            case SM_IMAP_SCAN_LINE:
              FUZZ_CHECK (r.len > 0 && r.len <= max_line && r.data[r.len - 1] == '\n');
              FUZZ_CHECK (!r.has_literal || r.literal_size <= max_literal);
              FUZZ_CHECK (r.has_literal || (r.literal_size == 0 && !r.literal_nonsync && !r.literal_binary));
              FUZZ_CHECK (memchr (r.data, '\n', r.len) == r.data + r.len - 1);
              break;
            case SM_IMAP_SCAN_LITERAL:
              FUZZ_CHECK (r.data == chunk + off && r.len == used && r.len > 0);
              FUZZ_CHECK (r.literal_done == !sm_imap_scanner_in_literal (scanner));
              break;
            case SM_IMAP_SCAN_LINE_TOO_LONG:
              FUZZ_CHECK (r.data == NULL && r.len == 0);
              break;
            case SM_IMAP_SCAN_LITERAL_TOO_LARGE:
              FUZZ_CHECK (r.has_literal && r.literal_size > max_literal);
              FUZZ_CHECK (r.len > 0 && r.len <= max_line && r.data[r.len - 1] == '\n');
              FUZZ_CHECK (!sm_imap_scanner_in_literal (scanner));
              break;
            case SM_IMAP_SCAN_NEED_MORE:
            default:
              FUZZ_CHECK (FALSE);
            }
          fuzz_transcript_add (transcript, &r, &in_literal_record);
          if (func != NULL)
            func (scanner, &r, user_data);
          off += used;
        }
      pos += n;
    }

  {
    /* What is left of a literal goes into the transcript too. */
    guint64 remaining = sm_imap_scanner_literal_remaining (scanner);

    FUZZ_CHECK ((remaining > 0) == sm_imap_scanner_in_literal (scanner));
    g_byte_array_append (transcript, (const guint8 *) &remaining, sizeof remaining);
  }
  return transcript;
}

/* Scans @data whole and in chunks derived from @seed, and checks that both
 * give the same events.  Only the whole-input run calls @func. */
static inline void
fuzz_scan_both_ways (const uint8_t *data, size_t size, guint64 seed,
                     FuzzEventFunc func, gpointer user_data)
{
  gsize max_line;
  guint64 max_literal;
  g_autoptr(GByteArray) whole = NULL;
  g_autoptr(GByteArray) chunked = NULL;
  /* Chunks of 1..N bytes, N from the seed: often 1, sometimes larger. */
  static const gsize chunk_maxes[] = { 1, 2, 3, 7, 16, 64, 509 };
  gsize chunk_max = chunk_maxes[(seed >> 24) % G_N_ELEMENTS (chunk_maxes)];

  fuzz_pick_limits (seed, &max_line, &max_literal);
  whole = fuzz_scan (data, size, max_line, max_literal, 0, 0, func, user_data);
  chunked = fuzz_scan (data, size, max_line, max_literal, seed, chunk_max, NULL, NULL);
  FUZZ_CHECK (whole->len == chunked->len);
  FUZZ_CHECK (memcmp (whole->data, chunked->data, whole->len) == 0);
}

/* TRUE when @s is non-empty and has no lower-case ASCII letter. */
static inline gboolean
fuzz_is_upper (const char *s)
{
  if (s == NULL || *s == '\0')
    return FALSE;
  for (; *s != '\0'; s++)
    if (g_ascii_islower (*s))
      return FALSE;
  return TRUE;
}

/* TRUE when @s is printable ASCII: safe to put in an IMAP response. */
static inline gboolean
fuzz_is_printable (const char *s)
{
  for (; *s != '\0'; s++)
    if (*s < 0x20 || *s >= 0x7f)
      return FALSE;
  return TRUE;
}
