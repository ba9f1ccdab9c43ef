/* fuzz-imap-response.c: the server side of the IMAP proxy.
 *
 * Feeds the input to a scanner whole and in input-derived chunks (the two
 * must agree), classifies every response line that is not the continuation
 * of a literal, and filters every capability list it finds (CAPABILITY
 * data and [CAPABILITY ...] codes).  The whole input is also classified as
 * one line and filtered as one capability string.
 */
#include "fuzz-common.h"

static const char * const fuzz_extra_drop[] = { "ID", "CONTEXT=", "", NULL };

/* Checks the filter's output against its input: every name kept is one of
 * the input's, none of them is one that must go, and the result is a fixed
 * point. */
static void
check_filter (const char *caps, const char * const *extra_drop)
{
  g_autofree char *filtered = sm_imap_capabilities_filter (caps, extra_drop);
  g_autofree char *again = NULL;
  g_auto(GStrv) names = NULL;
  gsize i;

  FUZZ_CHECK (filtered != NULL);
  FUZZ_CHECK (strlen (filtered) <= strlen (caps));
  FUZZ_CHECK (filtered[0] != ' ' && strstr (filtered, "  ") == NULL);
  names = g_strsplit (filtered, " ", -1);
  for (i = 0; names[i] != NULL; i++)
    {
      const char *name = names[i];

      if (name[0] == '\0')
        {
          FUZZ_CHECK (filtered[0] == '\0');
          continue;
        }
      FUZZ_CHECK (strstr (caps, name) != NULL);
      FUZZ_CHECK (g_ascii_strncasecmp (name, "AUTH=", 5) != 0);
      FUZZ_CHECK (g_ascii_strncasecmp (name, "COMPRESS=", 9) != 0);
      FUZZ_CHECK (g_ascii_strcasecmp (name, "STARTTLS") != 0);
      FUZZ_CHECK (g_ascii_strcasecmp (name, "LOGINDISABLED") != 0);
      FUZZ_CHECK (g_ascii_strcasecmp (name, "SASL-IR") != 0);
      if (extra_drop != NULL)
        {
          FUZZ_CHECK (g_ascii_strcasecmp (name, "ID") != 0);
          FUZZ_CHECK (g_ascii_strncasecmp (name, "CONTEXT=", 8) != 0);
        }
    }

  again = sm_imap_capabilities_filter (filtered, extra_drop);
  FUZZ_CHECK (strcmp (again, filtered) == 0);
}

static void
check_classify (const guint8 *line, gsize len)
{
  g_auto(SmImapResponse) response = { 0 };

  sm_imap_response_classify (line, len, &response);
  switch (response.kind)
    {
    case SM_IMAP_RESPONSE_INVALID:
      FUZZ_CHECK (response.status == SM_IMAP_STATUS_NONE && response.number == 0);
      FUZZ_CHECK (response.tag == NULL && response.keyword == NULL);
      FUZZ_CHECK (response.code == NULL && response.text == NULL);
      return;

    case SM_IMAP_RESPONSE_UNTAGGED:
      FUZZ_CHECK (len >= 3 && line[0] == '*' && line[1] == ' ');
      FUZZ_CHECK (response.tag == NULL && fuzz_is_upper (response.keyword));
      FUZZ_CHECK (response.status == SM_IMAP_STATUS_NONE || response.number == 0);
      break;

    case SM_IMAP_RESPONSE_TAGGED:
      FUZZ_CHECK (response.tag != NULL && response.tag[0] != '\0');
      FUZZ_CHECK (strncmp ((const char *) line, response.tag, strlen (response.tag)) == 0);
      FUZZ_CHECK (response.status == SM_IMAP_STATUS_OK || response.status == SM_IMAP_STATUS_NO ||
                  response.status == SM_IMAP_STATUS_BAD);
      FUZZ_CHECK (fuzz_is_upper (response.keyword));
      break;

    case SM_IMAP_RESPONSE_CONTINUATION:
      FUZZ_CHECK (line[0] == '+' && response.status == SM_IMAP_STATUS_NONE);
      FUZZ_CHECK (response.tag == NULL && response.keyword == NULL);
      break;

    default:
      FUZZ_CHECK (FALSE);
    }

  FUZZ_CHECK (response.text != NULL);
  FUZZ_CHECK (strchr (response.text, '\n') == NULL || memchr (line, '\n', len - 1) != NULL);
  if (response.code != NULL)
    {
      FUZZ_CHECK (strlen (response.code) < len);
      if (g_ascii_strncasecmp (response.code, "CAPABILITY ", 11) == 0)
        check_filter (response.code + 11, NULL);
    }
  if (g_strcmp0 (response.keyword, "CAPABILITY") == 0)
    {
      check_filter (response.text, NULL);
      check_filter (response.text, fuzz_extra_drop);
    }
}

static void
on_event (SmImapScanner *scanner, const SmImapScanResult *r, gpointer user_data)
{
  if ((r->event == SM_IMAP_SCAN_LINE || r->event == SM_IMAP_SCAN_LITERAL_TOO_LARGE) && !r->continuation)
    check_classify (r->data, r->len);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  guint64 seed = fuzz_hash (data, size);

  fuzz_init ();

  fuzz_scan_both_ways (data, size, seed, on_event, NULL);

  check_classify (data, size);
  {
    /* Not g_strndup(): libFuzzer may pass data == NULL with size 0. */
    g_autofree char *caps = g_malloc0 (size + 1);

    if (size > 0)
      memcpy (caps, data, size);

    check_filter (caps, NULL);
    check_filter (caps, fuzz_extra_drop);
  }
  return 0;
}
