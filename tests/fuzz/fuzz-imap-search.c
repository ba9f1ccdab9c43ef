/* fuzz-imap-search.c: SEARCH in decrypted text (proxy/sm-imap-search.h).
 *
 * The input is a client command, then optionally a NUL byte and a message.
 * The command goes through the criteria parser; a parsed one is matched
 * against the message and rewritten for an input-derived set of views and
 * length limit, and the rewritten command must parse again with the same
 * text keys (or be refused only for size or depth, which the rewrite adds).
 * Rewriting with no views must be a fixed point: the client's command with
 * its literals made non-synchronizing, nothing else.
 */
#include "fuzz-common.h"

#include "sm-imap-search.h"

/* Views in one simulated mailbox: enough for ranges, gaps and the length
 * fallback, few enough to keep each run fast. */
#define FUZZ_SEARCH_MAX_VIEWS 64

static void
check_error (const GError *error)
{
  FUZZ_CHECK (error != NULL && error->domain == SM_ERROR);
  FUZZ_CHECK (error->code == SM_ERROR_PROTOCOL || error->code == SM_ERROR_TOO_BIG);
  /* The message goes back to the client in a BAD. */
  FUZZ_CHECK (error->message[0] != '\0' && fuzz_is_printable (error->message));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* The driver hands an empty input over as NULL. */
  const uint8_t *nul = size > 0 ? memchr (data, '\0', size) : NULL;
  gsize cmd_len = nul ? (gsize) (nul - data) : size;
  g_autoptr(GBytes) message = nul ? g_bytes_new (nul + 1, size - cmd_len - 1) : g_bytes_new_static ("", 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapSearch) search = NULL;
  g_autoptr(GBytes) normal = NULL;
  g_autoptr(GBytes) rewritten = NULL;
  g_autofree gboolean *one = NULL;
  g_autofree gboolean *matched = NULL;
  guint32 uids[FUZZ_SEARCH_MAX_VIEWS];
  guint64 state = fuzz_hash (data, size);
  guint keys, n, kept = 0;
  gsize max_len;

  fuzz_init ();
  search = sm_imap_search_parse (data, cmd_len, &error);
  if (search == NULL)
    {
      check_error (error);
      return 0;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (sm_imap_search_tag (search)[0] != '\0');
  keys = sm_imap_search_n_text_keys (search);
  FUZZ_CHECK (keys <= SM_IMAP_SEARCH_MAX_TEXT_KEYS);
  FUZZ_CHECK (keys == 0 || sm_imap_search_is_rewritable (search));

  /* No views: the command as sent, literals aside; and that again. */
  normal = sm_imap_search_rewrite (search, NULL, 0, NULL, SM_IMAP_SEARCH_MAX_UPSTREAM, &kept);
  FUZZ_CHECK (kept == 0);
  FUZZ_CHECK (g_bytes_get_size (normal) >= 1);
  FUZZ_CHECK (((const guint8 *) g_bytes_get_data (normal, NULL))[g_bytes_get_size (normal) - 1] == '\n');
  {
    g_autoptr(GError) again_error = NULL;
    g_autoptr(SmImapSearch) again = sm_imap_search_parse (g_bytes_get_data (normal, NULL),
                                                          g_bytes_get_size (normal), &again_error);
    g_autoptr(GBytes) same = NULL;

    /* A literal made "{N+}" is two bytes longer and can cross the limit. */
    if (again == NULL)
      {
        FUZZ_CHECK (again_error != NULL && again_error->code == SM_ERROR_TOO_BIG);
        return 0;
      }
    FUZZ_CHECK (sm_imap_search_n_text_keys (again) == keys);
    FUZZ_CHECK (sm_imap_search_is_rewritable (again) == sm_imap_search_is_rewritable (search));
    same = sm_imap_search_rewrite (again, NULL, 0, NULL, SM_IMAP_SEARCH_MAX_UPSTREAM, NULL);
    FUZZ_CHECK (g_bytes_equal (same, normal));
  }

  /* A mailbox of views, all the message of the input. */
  one = g_new0 (gboolean, MAX (keys, 1));
  sm_imap_search_match (search, message, one);
  n = (guint) (fuzz_next (&state) % (FUZZ_SEARCH_MAX_VIEWS + 1));
  matched = g_new0 (gboolean, (gsize) MAX (keys, 1) * MAX (n, 1));
  for (guint i = 0; i < n; i++)
    {
      /* Ascending, with runs and gaps. */
      uids[i] = (i == 0 ? 0 : uids[i - 1]) + 1 + (guint32) (fuzz_next (&state) % 3);
      for (guint k = 0; k < keys; k++)
        matched[(gsize) k * n + i] = one[k] && fuzz_next (&state) % 2 == 0;
    }
  max_len = g_bytes_get_size (normal) + (gsize) (fuzz_next (&state) % 2048);
  rewritten = sm_imap_search_rewrite (search, uids, n, matched, max_len, &kept);
  FUZZ_CHECK (kept <= n);
  FUZZ_CHECK (keys > 0 || kept == 0 || g_bytes_equal (rewritten, normal));
  FUZZ_CHECK (kept == 0 || g_bytes_get_size (rewritten) <= max_len);
  if (kept == 0)
    FUZZ_CHECK (g_bytes_equal (rewritten, normal));
  {
    g_autoptr(GError) again_error = NULL;
    g_autoptr(SmImapSearch) again = sm_imap_search_parse (g_bytes_get_data (rewritten, NULL),
                                                          g_bytes_get_size (rewritten), &again_error);

    if (again == NULL)
      FUZZ_CHECK (again_error != NULL && again_error->code == SM_ERROR_TOO_BIG);
    else
      {
        FUZZ_CHECK (sm_imap_search_n_text_keys (again) == keys);
        FUZZ_CHECK (g_strcmp0 (sm_imap_search_tag (again), sm_imap_search_tag (search)) == 0);
      }
  }
  return 0;
}
