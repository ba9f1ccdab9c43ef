/* sm-imap-search.h: SEARCH in the decrypted text of protected messages.
 *
 * The provider stores a protected message as ciphertext (and, with RFC 9788
 * header protection, with an outer Subject of "..."), so its answer to
 * SEARCH BODY/TEXT/SUBJECT... is wrong for every protected message.  The
 * proxy holds the decrypted views of the messages it has served
 * (sm-view-cache.h).  For a SEARCH or UID SEARCH, let P be the UIDs of the
 * selected mailbox whose views it holds; each text key k of the criteria
 * (BODY, TEXT, SUBJECT, FROM, TO, CC, BCC, HEADER) is evaluated locally on
 * those views, giving M_k ⊆ P, and rewritten to
 *
 *     OR (k NOT UID P) UID M_k        (just "(k NOT UID P)" when M_k is empty)
 *
 * so that one upstream SEARCH keeps the client's whole boolean expression
 * (NOT, OR, parentheses, flags, dates, sizes), its tag and its form (SEARCH
 * or UID SEARCH, RETURN (...) of RFC 4731, CHARSET), and the provider goes
 * on answering everything else, sequence numbers included.
 *
 * Matching follows RFC 9051 §6.4.4: a case-insensitive substring of the
 * decoded text.  Header fields are unfolded and their RFC 2047 words
 * decoded; bodies of text parts lose their transfer encoding and are
 * converted from their charset to UTF-8; TEXT is header plus body.
 *
 * Every input limit is a named constant.  Error messages never quote the
 * input, so they are safe to send back in a BAD.  Nothing here logs search
 * strings or message content.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Search keys in one command, every kind counted (Dovecot has no bound;
 * clients send a few, a "find in every field" a dozen or so). */
#define SM_IMAP_SEARCH_MAX_KEYS        512
/* Keys answered from the views in one command: each costs a pass over
 * every cached view of the mailbox and a UID set in the rewritten line. */
#define SM_IMAP_SEARCH_MAX_TEXT_KEYS   32
/* Nesting of parentheses, NOT and OR: the parser recurses once per level. */
#define SM_IMAP_SEARCH_MAX_DEPTH       64
/* A whole SEARCH command as the client sent it, literals included. */
#define SM_IMAP_SEARCH_MAX_COMMAND     (64 * 1024)
/* The longest rewritten command the proxy sends.  Dovecot's default
 * imap_max_line_length is 64 KiB and other providers are stricter (8 KiB is
 * the minimum RFC 7162 §4 asks servers to accept), so stay well below:
 * when the UID sets do not fit, the oldest views are left to the provider
 * (sm_imap_search_rewrite()). */
#define SM_IMAP_SEARCH_MAX_UPSTREAM    (32 * 1024)

typedef struct _SmImapSearch SmImapSearch;

/* Parses a whole SEARCH or UID SEARCH command: its line, any literals and
 * continuation lines concatenated as they came off the wire, ending with
 * CRLF (or a bare LF), at most SM_IMAP_SEARCH_MAX_COMMAND bytes.  Fails
 * with SM_ERROR_PROTOCOL for malformed criteria (unbalanced parentheses, a
 * key without its argument, a bad string or literal, a search string not
 * valid in the named CHARSET) and SM_ERROR_TOO_BIG past a limit above; the
 * message is fit for a BAD.  Returns a new search owned by the caller. */
SmImapSearch *sm_imap_search_parse (const guint8 *command,
                                    gsize         len,
                                    GError      **error);
void          sm_imap_search_free  (SmImapSearch *search);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapSearch, sm_imap_search_free)

/* The command's tag (owned by @search). */
const char *sm_imap_search_tag (const SmImapSearch *search);
/* The keys answered from views (0: nothing to do, relay the command). */
guint       sm_imap_search_n_text_keys (const SmImapSearch *search);
/* FALSE when the command holds what the proxy cannot evaluate or rewrite
 * safely: a search key it does not know (an extension: its arguments are
 * unknown), FUZZY, or a CHARSET iconv does not know.  Such a command goes
 * to the provider as it is, which answers it (or refuses it) itself. */
gboolean    sm_imap_search_is_rewritable (const SmImapSearch *search);
/* TRUE when the command carries literals: the rewritten one sends them
 * non-synchronizing (RFC 7888), which the provider must offer. */
gboolean    sm_imap_search_has_literals (const SmImapSearch *search);

/* Evaluates every text key on @message, a whole RFC 5322 message (the view
 * the client is served); @matched receives sm_imap_search_n_text_keys()
 * booleans.  Thread-safe for one @search shared by several threads (it is
 * not changed). */
void    sm_imap_search_match (const SmImapSearch *search,
                              GBytes             *message,
                              gboolean           *matched);

/* The command to send upstream, every text key k rewritten as above.
 * @uids (ascending, no duplicates) are P, the @n_uids messages whose views
 * were matched; @matched holds n_text_keys × n_uids booleans, key by key
 * (matched[k * n_uids + i]: key k on uids[i]).  When the command would be
 * longer than @max_len, the lowest UIDs (the oldest messages) are dropped
 * from P until it fits: those are answered by the provider, as if the proxy
 * had never seen them; *@n_kept (if not NULL) tells how many of P remain
 * (0: the command is the client's, unchanged apart from literals).
 * Literals become non-synchronizing.  Never fails. */
GBytes *sm_imap_search_rewrite (const SmImapSearch *search,
                                const guint32      *uids,
                                guint               n_uids,
                                const gboolean     *matched,
                                gsize               max_len,
                                guint              *n_kept);

G_END_DECLS
