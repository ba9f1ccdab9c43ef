/* sm-imap-fetch.h: answering FETCH content items from a message we hold.
 *
 * For a protected message the proxy fetches the whole message upstream,
 * builds the decrypted view (sm-secure-view.h) and must then answer every
 * content item of the client's FETCH (BODY[...] and partials, BINARY,
 * RFC822*, BODYSTRUCTURE, BODY, ENVELOPE, PREVIEW) itself, exactly as an
 * IMAP server would (RFC 9051 section 6.4.5 and 7.5.2, RFC 3516), so that
 * the client's cache stays consistent: the same request always gives the
 * same bytes.  Where RFC 9051 leaves room, the answers follow Dovecot 2.3,
 * and tests/proxy/test-imap-fetch.c compares them with a real Dovecot.
 *
 * Three pieces:
 *  - SmImapFetchRequest: a parsed FETCH / UID FETCH command, which tells the
 *    session what to ask the provider for (the metadata items) and what to
 *    answer itself (the content items);
 *  - SmImapFetchMessage: a message parsed once into its MIME tree, rendered
 *    for many requests;
 *  - sm_imap_fetch_response_parse(): splits an untagged FETCH response of
 *    the provider into its items, so the session can merge the metadata
 *    items it relays with the content items it renders.
 *
 * Every input limit is a named constant.  Error messages never quote the
 * input, so they are safe to send back in a BAD.  Nothing here logs message
 * content.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Most fetch attributes in one request (Dovecot has no bound; real clients
 * send fewer than 20). */
#define SM_IMAP_FETCH_MAX_ITEMS          64
/* Most header field names in one HEADER.FIELDS (.NOT) list. */
#define SM_IMAP_FETCH_MAX_HEADER_NAMES   256
/* Most part numbers in one section ("1.2.3" has 3). */
#define SM_IMAP_FETCH_MAX_SECTION_DEPTH  32
/* Largest message we parse for rendering (sizes are sent as 32-bit
 * numbers, RFC 9051 number = 32 bits). */
#define SM_IMAP_FETCH_MAX_MESSAGE_SIZE   ((gsize) 1024 * 1024 * 1024)
/* Items in one parsed FETCH response. */
#define SM_IMAP_FETCH_MAX_RESPONSE_ITEMS 256
/* Nesting of parentheses in one FETCH response value (BODYSTRUCTURE nests
 * one level per MIME level, plus a few). */
#define SM_IMAP_FETCH_MAX_RESPONSE_NESTING 128
/* Characters of PREVIEW text (RFC 8970 section 3: at most 256). */
#define SM_IMAP_FETCH_PREVIEW_CHARS      200
/* Bytes of a part's body read to make its PREVIEW: far more than 200
 * characters need, even with quoted lines and HTML markup to skip. */
#define SM_IMAP_FETCH_PREVIEW_MAX_INPUT  (64 * 1024)

/* ---- requests ------------------------------------------------------------ */

/* A parsed FETCH or UID FETCH command (RFC 9051 section 6.4.5, RFC 3501
 * section 6.4.5). */
typedef struct _SmImapFetchRequest SmImapFetchRequest;

/* @line: one whole client command line without literals, CRLF included,
 * e.g. "a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.2048>)
 * (CHANGEDSINCE 5)\r\n".  Also the macros ALL, FAST, FULL and a single
 * unparenthesised att.  Fails with SM_ERROR_PROTOCOL (message safe to send
 * back in a BAD) when it is not a FETCH it understands, SM_ERROR_TOO_BIG
 * past SM_IMAP_FETCH_MAX_ITEMS or SM_IMAP_FETCH_MAX_HEADER_NAMES.
 * Returns a new request owned by the caller. */
SmImapFetchRequest *sm_imap_fetch_request_parse (const guint8 *line,
                                                 gsize         len,
                                                 GError      **error);
void        sm_imap_fetch_request_free (SmImapFetchRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapFetchRequest, sm_imap_fetch_request_free)

/* The strings below are owned by @req. */
const char *sm_imap_fetch_request_tag       (const SmImapFetchRequest *req);
gboolean    sm_imap_fetch_request_is_uid    (const SmImapFetchRequest *req);
/* The sequence set as sent, e.g. "1:*,7". */
const char *sm_imap_fetch_request_set       (const SmImapFetchRequest *req);
/* The modifiers as sent, e.g. "(CHANGEDSINCE 5)", or NULL. */
const char *sm_imap_fetch_request_modifiers (const SmImapFetchRequest *req);

/* TRUE when any item is answered from message content (BODY[...],
 * BODY.PEEK[...], BINARY*, RFC822, RFC822.HEADER, RFC822.TEXT, RFC822.SIZE,
 * BODY, BODYSTRUCTURE, ENVELOPE, PREVIEW). */
gboolean sm_imap_fetch_request_needs_content (const SmImapFetchRequest *req);
/* TRUE when an item implicitly sets \Seen (BODY[..] and BINARY[..] without
 * .PEEK, RFC822, RFC822.TEXT; RFC 9051 section 6.4.5). */
gboolean sm_imap_fetch_request_sets_seen    (const SmImapFetchRequest *req);
/* The non-content items to ask the provider for, always including UID, as
 * a parenthesised list: "(UID FLAGS INTERNALDATE MODSEQ)".  FLAGS is added
 * when sets_seen (RFC 9051: the server sends the new flags).  Unknown atoms
 * (X-GM-LABELS, EMAILID, SAVEDATE...) are kept here.  Caller frees. */
char    *sm_imap_fetch_request_metadata_items (const SmImapFetchRequest *req);

/* ---- messages and rendering ---------------------------------------------- */

/* A message parsed once (MIME structure), rendered many times. */
typedef struct _SmImapFetchMessage SmImapFetchMessage;

/* Parses @message (RFC 5322, CRLF line ends; a reference is kept).  Fails
 * with SM_ERROR_TOO_BIG past SM_MIME_MAX_DEPTH, SM_MIME_MAX_PARTS,
 * SM_MIME_MAX_HEADER_SIZE or SM_IMAP_FETCH_MAX_MESSAGE_SIZE. */
SmImapFetchMessage *sm_imap_fetch_message_new  (GBytes  *message,
                                                GError **error);
void                sm_imap_fetch_message_free (SmImapFetchMessage *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapFetchMessage, sm_imap_fetch_message_free)

/* RFC822.SIZE: the size of the message in bytes. */
gsize    sm_imap_fetch_message_size (const SmImapFetchMessage *msg);

/* Appends to @out the content items of @req for @msg, in request order,
 * each as `NAME SP value`, separated by single spaces, with no leading or
 * trailing space, e.g. `BODYSTRUCTURE ("text" "plain" ...) BODY[1]<0>
 * {12}\r\n...`.  Literals as {N}\r\n, binary content with NUL as ~{N}\r\n
 * (RFC 3516).  A partial <o.n> is answered as RFC 9051 says (name
 * `BODY[...]<o>`); a section that does not exist gives an empty literal
 * {0}, as Dovecot does.  Appends nothing when the request has no content
 * item.  Fails with SM_ERROR_PROTOCOL for a section that cannot be answered
 * (BINARY of a part whose transfer encoding is unknown: RFC 3516
 * UNKNOWN-CTE), with a message safe for a NO or BAD; @out is then left as
 * it was. */
gboolean sm_imap_fetch_render (const SmImapFetchRequest *req,
                               const SmImapFetchMessage *msg,
                               GByteArray               *out,
                               GError                  **error);

/* ---- responses ----------------------------------------------------------- */

typedef struct {
  char    *name;      /* upper-cased, e.g. "UID", "BODY[HEADER]", "FLAGS", "BODY[]<0>" */
  GBytes  *value;     /* literal/quoted: decoded bytes; list: raw text "(...)"; atom/number: text; NIL: empty */
  gboolean is_nil;
} SmImapFetchItem;

void sm_imap_fetch_item_free (SmImapFetchItem *item);

/* Parses one complete untagged FETCH response
 * "* 12 FETCH (UID 5 BODY[HEADER] {3}\r\nabc)\r\n" (line, literals and
 * continuation lines concatenated as they came off the wire).  Returns
 * FALSE when it is not one: @error is then SM_ERROR_PROTOCOL (malformed) or
 * SM_ERROR_TOO_BIG (past SM_IMAP_FETCH_MAX_RESPONSE_ITEMS or
 * SM_IMAP_FETCH_MAX_RESPONSE_NESTING).  On TRUE, *items is a new GPtrArray
 * of SmImapFetchItem owned by the caller. */
gboolean sm_imap_fetch_response_parse (const guint8 *data,
                                       gsize         len,
                                       guint32      *seq,
                                       GPtrArray   **items,
                                       GError      **error);

G_END_DECLS
