/* sm-imap-parser.h: incremental IMAP stream scanner, command tokenizer and
 * response classifier (RFC 9051 / RFC 3501 syntax, RFC 7888 literals).
 *
 * The proxy relays bytes; it only needs to know where lines and literals
 * start and end, the tag and name of each command, and the kind of each
 * response.  The scanner never buffers literal bytes: it hands them back as
 * pointers into the caller's buffer so that a 50 MB APPEND streams through
 * in constant memory.  Only a line is accumulated, up to max_line bytes.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Named limits (DESIGN.md house style 6). */
#define SM_IMAP_MAX_LINE              (64 * 1024)          /* one command/response line, CRLF included */
#define SM_IMAP_MAX_LITERAL           (G_GUINT64_CONSTANT (64) * 1024 * 1024)  /* one literal in a relayed command */
#define SM_IMAP_MAX_PREAUTH_LITERAL   1024                 /* literals before login (user name, password) */
#define SM_IMAP_MAX_ARGS              64                   /* tokens in a parsed (pre-auth) command */
/* Nesting of ( ) and [ ] in a command token or a response code.  RFC 9051
 * sets no bound; real clients nest a few levels (search-key OR trees,
 * BODY[HEADER.FIELDS (...)]), so 32 is generous and keeps the tokenizer's
 * bracket stack on the C stack. */
#define SM_IMAP_MAX_NESTING           32

typedef enum {
  SM_IMAP_SCAN_NEED_MORE,         /* all input consumed, nothing complete yet */
  SM_IMAP_SCAN_LINE,              /* a complete line (CRLF or bare LF included) */
  SM_IMAP_SCAN_LITERAL,           /* some literal bytes, pointing into the input */
  SM_IMAP_SCAN_LINE_TOO_LONG,     /* a line exceeded max_line; the rest of it up to LF is skipped */
  SM_IMAP_SCAN_LITERAL_TOO_LARGE, /* a line announced a literal above max_literal (the line itself is in data) */
} SmImapScanEvent;

typedef struct {
  SmImapScanEvent event;
  /* LINE and LITERAL_TOO_LARGE: the whole line, owned by the scanner, valid
   * until the next call.  LITERAL: the literal bytes, pointing into the
   * caller's input.  Otherwise NULL/0. */
  const guint8 *data;
  gsize len;
  /* LINE only: TRUE when this line continues a command or response after a
   * literal (it does not start with a tag). */
  gboolean continuation;
  /* LINE only: the line ends with a literal announcement {N}, {N+}, ~{N},
   * ~{N+} outside any quoted string; its size and whether it is
   * non-synchronizing (RFC 7888 "+") or binary (RFC 3516 "~").
   * These four are also filled for LITERAL_TOO_LARGE, so that the caller
   * can tell a synchronizing literal (refuse it) from a non-synchronizing
   * one (close); a size that overflows 64 bits reads as G_MAXUINT64.
   * The "{" must follow a space or "(" as in the RFC 9051 grammar, so that
   * "foo{5}" is not taken for a literal. */
  gboolean has_literal;
  guint64 literal_size;
  gboolean literal_nonsync;
  gboolean literal_binary;
  /* LITERAL only: TRUE on the chunk that completes the literal. */
  gboolean literal_done;
} SmImapScanResult;

typedef struct _SmImapScanner SmImapScanner;

/* Returns a new scanner (free with sm_imap_scanner_free()).  max_line bounds
 * the accumulated line, max_literal the announced literal size. */
SmImapScanner *sm_imap_scanner_new (gsize max_line, guint64 max_literal);
void           sm_imap_scanner_free (SmImapScanner *scanner);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapScanner, sm_imap_scanner_free)

/* Consumes input from buf (len bytes) up to the first event and fills @out
 * (which is overwritten; it owns nothing).
 * Returns the number of bytes consumed (may be 0 only when len is 0).  Call
 * again with the rest of the buffer until it returns NEED_MORE.  After
 * LINE with has_literal, the next literal_size bytes are returned as LITERAL
 * events, then lines continue with continuation = TRUE (a {0} literal gives
 * no LITERAL event: the next line is simply a continuation).  After
 * LITERAL_TOO_LARGE the scanner stays in line state: the caller refuses the
 * command (a synchronizing literal is never sent by the client), or closes
 * the connection for a non-synchronizing one. */
gsize sm_imap_scanner_feed (SmImapScanner *scanner, const guint8 *buf, gsize len,
                            SmImapScanResult *out);

/* Drops any partial line and pending literal: back to the start of a new
 * command.  Used when the server refused a synchronizing literal, so the
 * client will not send it. */
void     sm_imap_scanner_reset (SmImapScanner *scanner);
/* TRUE while the scanner is inside a literal (bytes still expected). */
gboolean sm_imap_scanner_in_literal (SmImapScanner *scanner);
/* Literal bytes still expected (0 outside a literal). */
guint64  sm_imap_scanner_literal_remaining (SmImapScanner *scanner);

/* ---- commands ---------------------------------------------------------- */

typedef enum {
  SM_IMAP_TOKEN_ATOM,       /* atom, number, or anything unquoted incl. NIL */
  SM_IMAP_TOKEN_QUOTED,     /* "..." with \\ and \" unescaped */
  SM_IMAP_TOKEN_LITERAL,    /* {N} / {N+} / ~{N} literal contents */
  SM_IMAP_TOKEN_LIST,       /* a parenthesized list or [...] section: raw text, brackets included.
                             * A section attached to an atom (BODY.PEEK[HEADER.FIELDS (TO)]<0.9>,
                             * [Gmail]/Drafts) stays part of that ATOM; only a token that is
                             * exactly one [...] is a LIST. */
} SmImapTokenKind;

typedef struct {
  SmImapTokenKind kind;
  GBytes *value;            /* decoded value; may contain NUL for literals */
} SmImapToken;

typedef struct {
  char *tag;                /* as sent */
  char *name;               /* command name, upper-cased ("UID FETCH" is name "UID", args[0] "FETCH") */
  GPtrArray *args;          /* SmImapToken*, owned */
} SmImapCommand;

void sm_imap_command_free (SmImapCommand *command);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapCommand, sm_imap_command_free)

/* Parses one complete command: the first line, its literals and
 * continuation lines concatenated exactly as they came off the wire, ending
 * with CRLF (or a bare LF).  Fails with SM_ERROR_PROTOCOL and a message fit
 * for a BAD reply on malformed input, SM_ERROR_TOO_BIG above
 * SM_IMAP_MAX_ARGS tokens or SM_IMAP_MAX_NESTING levels of brackets.  When
 * parsing fails after the tag was read, *tag_out (if given) receives it
 * (caller frees) so the BAD can be tagged; else, and on success, NULL.
 * Error messages never quote the input, so they are safe to send back.
 * Returns a new command owned by the caller. */
SmImapCommand *sm_imap_command_parse (const guint8 *data, gsize len,
                                      char **tag_out, GError **error);

/* Cheap look at the first line of a command while relaying: the tag and the
 * upper-cased command name (for UID commands, "UID FETCH" etc.).  Returns
 * FALSE when the line has no tag and name (garbage or a continuation).
 * On TRUE the caller owns *tag_out and *name_out (either may be NULL when
 * not wanted); on FALSE they are set to NULL. */
gboolean sm_imap_command_peek (const guint8 *line, gsize len,
                               char **tag_out, char **name_out);

/* ---- responses ----------------------------------------------------------- */

typedef enum {
  SM_IMAP_RESPONSE_INVALID,
  SM_IMAP_RESPONSE_UNTAGGED,     /* "* ..." */
  SM_IMAP_RESPONSE_TAGGED,       /* "tag OK|NO|BAD ..." */
  SM_IMAP_RESPONSE_CONTINUATION, /* "+ ..." */
} SmImapResponseKind;

typedef enum {
  SM_IMAP_STATUS_NONE,       /* untagged data (FETCH, EXISTS, CAPABILITY, ...) or continuation */
  SM_IMAP_STATUS_OK,
  SM_IMAP_STATUS_NO,
  SM_IMAP_STATUS_BAD,
  SM_IMAP_STATUS_PREAUTH,
  SM_IMAP_STATUS_BYE,
} SmImapStatus;

typedef struct {
  SmImapResponseKind kind;
  SmImapStatus status;
  char *tag;           /* TAGGED only */
  char *keyword;       /* untagged: upper-cased first word after "* " or after the number ("EXISTS", "FETCH", "CAPABILITY", "OK"...);
                        * tagged: the status word ("OK", "NO", "BAD") */
  guint32 number;      /* untagged "* N KEYWORD": N, else 0 */
  char *code;          /* response code inside [...] without the brackets, if any (e.g. "CAPABILITY IMAP4rev1 IDLE") */
  char *text;          /* human-readable text after status and code, without CRLF; for untagged
                        * data ("* CAPABILITY ...", "* 3 FETCH (...)") the rest of the line after the
                        * keyword; for a continuation the text after "+ ".  Never NULL unless INVALID. */
} SmImapResponse;

void sm_imap_response_clear (SmImapResponse *response);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SmImapResponse, sm_imap_response_clear)

/* Classifies one response line (not a continuation line after a literal).
 * Never fails: unparseable input gives kind INVALID.  @out must be zeroed
 * (g_auto) or hold an earlier result: its old strings are freed first, so
 * one struct can be reused in a loop.  The caller owns the new strings
 * (free with sm_imap_response_clear()). */
void sm_imap_response_classify (const guint8 *line, gsize len, SmImapResponse *out);

/* Capabilities the proxy can relay faithfully: filters a space-separated
 * capability list (as in "* CAPABILITY ..." or a [CAPABILITY ...] code),
 * dropping COMPRESS=*, STARTTLS, LOGINDISABLED, AUTH=* (the proxy does its own
 * login), and any name in @extra_drop.  Returns a newly allocated list. */
/* Also dropped: SASL-IR (no AUTHENTICATE is offered), UNAUTHENTICATE
 * (RFC 8437: would reset the upstream login the proxy made),
 * LOGIN-REFERRALS and MAILBOX-REFERRALS (RFC 2221, RFC 2193: would send the
 * client straight to the provider, around the proxy).  Matching is
 * ASCII case-insensitive; an @extra_drop entry ending in "=" drops every
 * capability with that prefix (e.g. "CONTEXT=").  Order is kept; the
 * result is joined with single spaces. */
char *sm_imap_capabilities_filter (const char *caps, const char * const *extra_drop);

G_END_DECLS
