/* sm-imap-parser.c: incremental IMAP stream scanner, command tokenizer,
 * response classifier and capability filter.
 *
 * Everything here faces untrusted bytes: a client on the loopback that may be
 * any program, and a provider's server.  So every loop is bounded by its
 * input, every size is checked before use, nesting is bounded by
 * SM_IMAP_MAX_NESTING, and no error message quotes the input (it goes back
 * to the client verbatim as the text of a BAD, RFC 9051 section 7.1.3).
 *
 * Grammar references are to RFC 9051 section 9 (formal syntax) unless noted;
 * the same productions exist in RFC 3501 section 9.
 */
#include "sm-imap-parser.h"

#include <string.h>

#include "sm-error.h"

/* ---- character classes (RFC 9051 section 9) ------------------------------ */

/* CTL = %x00-1F / %x7F */
static inline gboolean
is_ctl (guint8 c)
{
  return c < 0x20 || c == 0x7f;
}

/* ATOM-CHAR = <any CHAR except atom-specials>, where
 * atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
 *                 quoted-specials / resp-specials. */
static inline gboolean
is_atom_char (guint8 c)
{
  if (c <= 0x20 || c >= 0x7f)
    return FALSE;
  switch (c)
    {
    case '(': case ')': case '{':
    case '%': case '*':          /* list-wildcards */
    case '"': case '\\':         /* quoted-specials */
    case ']':                    /* resp-specials */
      return FALSE;
    default:
      return TRUE;
    }
}

/* tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR /
 * resp-specials, so "]" is allowed and "+" is not (it would be confused
 * with a continuation request, section 7.5). */
static inline gboolean
is_tag_char (guint8 c)
{
  return c == ']' || (c != '+' && is_atom_char (c));
}

static inline gboolean
is_eol (guint8 c)
{
  return c == '\r' || c == '\n';
}

/* A literal's "{" must start a token: it follows SP or "(" (section 9,
 * "literal" is an alternative of "string", which is always a whole
 * argument or list element). */
static inline gboolean
may_precede_literal (guint8 c)
{
  return c == ' ' || c == '(';
}

/* Parses decimal digits [p, end) into a guint64, saturating at G_MAXUINT64
 * (a size that large is refused by every caller anyway). */
static guint64
parse_u64_saturating (const guint8 *p, const guint8 *end)
{
  guint64 n = 0;

  for (; p < end; p++)
    {
      guint d = (guint) (*p - '0');

      if (n > (G_MAXUINT64 - d) / 10)
        return G_MAXUINT64;
      n = n * 10 + d;
    }
  return n;
}

/* ---- scanner ------------------------------------------------------------- */

typedef enum {
  SCAN_STATE_LINE,     /* accumulating a line up to LF */
  SCAN_STATE_LITERAL,  /* passing literal bytes through */
  SCAN_STATE_SKIP,     /* discarding the rest of an over-long line */
} ScanState;

struct _SmImapScanner {
  gsize max_line;
  guint64 max_literal;
  ScanState state;
  GByteArray *line;            /* the line being accumulated, <= max_line bytes */
  gboolean line_handed_out;    /* line holds a line returned by the last call */
  guint64 literal_remaining;
  gboolean continuation;       /* the next line continues a command after a literal */
};

/* Returns a new scanner owned by the caller.  max_line counts the line
 * terminator; it must be at least 1 (a bare LF). */
SmImapScanner *
sm_imap_scanner_new (gsize max_line, guint64 max_literal)
{
  SmImapScanner *self;

  g_return_val_if_fail (max_line > 0, NULL);
  g_return_val_if_fail (max_line <= G_MAXUINT, NULL);   /* GByteArray's length is a guint */

  self = g_new0 (SmImapScanner, 1);
  self->max_line = max_line;
  self->max_literal = max_literal;
  self->state = SCAN_STATE_LINE;
  /* Preallocate a little; the array grows up to max_line at most. */
  self->line = g_byte_array_sized_new ((guint) MIN (max_line, 1024));
  return self;
}

/* Frees @scanner (nullable) and the line it holds. */
void
sm_imap_scanner_free (SmImapScanner *scanner)
{
  if (scanner == NULL)
    return;
  g_byte_array_unref (scanner->line);
  g_free (scanner);
}

void
sm_imap_scanner_reset (SmImapScanner *scanner)
{
  g_return_if_fail (scanner != NULL);

  g_byte_array_set_size (scanner->line, 0);
  scanner->line_handed_out = FALSE;
  scanner->state = SCAN_STATE_LINE;
  scanner->literal_remaining = 0;
  scanner->continuation = FALSE;
}

gboolean
sm_imap_scanner_in_literal (SmImapScanner *scanner)
{
  g_return_val_if_fail (scanner != NULL, FALSE);

  return scanner->state == SCAN_STATE_LITERAL;
}

guint64
sm_imap_scanner_literal_remaining (SmImapScanner *scanner)
{
  g_return_val_if_fail (scanner != NULL, 0);

  return scanner->state == SCAN_STATE_LITERAL ? scanner->literal_remaining : 0;
}

/* TRUE when position @pos of @line lies inside a quoted string.  A quoted
 * string cannot span lines (QUOTED-CHAR excludes CR and LF), so every line
 * starts outside one; inside, "\" escapes the next byte (section 9,
 * quoted-specials).  Outside a quote "\" is an ordinary byte (\Seen). */
static gboolean
in_quote_at (const guint8 *line, gsize pos)
{
  gboolean quoted = FALSE;
  gsize i;

  for (i = 0; i < pos; i++)
    {
      if (!quoted)
        quoted = line[i] == '"';
      else if (line[i] == '\\')
        i++;
      else if (line[i] == '"')
        quoted = FALSE;
    }
  return quoted;
}

/* Looks for a literal announcement at the end of a complete line:
 * literal = "{" number64 ["+"] "}" CRLF (RFC 9051, RFC 7888 section 3 for
 * "+"), literal8 = "~{" number64 ["+"] "}" CRLF (RFC 3516 section 4.3). */
static gboolean
find_literal (const guint8 *line, gsize len,
              guint64 *size, gboolean *nonsync, gboolean *binary)
{
  gsize end = len;
  gsize i, digits_end, brace;

  if (end > 0 && line[end - 1] == '\n')
    end--;
  if (end > 0 && line[end - 1] == '\r')
    end--;
  if (end == 0 || line[end - 1] != '}')
    return FALSE;

  i = end - 1;
  *nonsync = i > 0 && line[i - 1] == '+';
  if (*nonsync)
    i--;
  digits_end = i;
  while (i > 0 && g_ascii_isdigit (line[i - 1]))
    i--;
  if (i == digits_end || i == 0 || line[i - 1] != '{')
    return FALSE;
  brace = i - 1;

  *binary = brace > 0 && line[brace - 1] == '~';
  {
    gsize start = *binary ? brace - 1 : brace;

    if (start == 0 || !may_precede_literal (line[start - 1]))
      return FALSE;
    if (in_quote_at (line, start))
      return FALSE;
  }

  *size = parse_u64_saturating (line + i, line + digits_end);
  return TRUE;
}

/* Fills @out for the line now complete in scanner->line and moves to the
 * state that follows it. */
static void
finish_line (SmImapScanner *self, SmImapScanResult *out)
{
  guint64 size = 0;
  gboolean nonsync = FALSE, binary = FALSE;

  out->event = SM_IMAP_SCAN_LINE;
  out->data = self->line->data;
  out->len = self->line->len;
  out->continuation = self->continuation;
  self->continuation = FALSE;
  self->line_handed_out = TRUE;

  if (!find_literal (self->line->data, self->line->len, &size, &nonsync, &binary))
    return;

  out->has_literal = TRUE;
  out->literal_size = size;
  out->literal_nonsync = nonsync;
  out->literal_binary = binary;

  if (size > self->max_literal)
    {
      /* Stay in line state: a synchronizing literal will not be sent once
       * the command is refused (RFC 9051 section 7.5); for a
       * non-synchronizing one the caller closes the connection. */
      out->event = SM_IMAP_SCAN_LITERAL_TOO_LARGE;
      return;
    }

  /* The line after the literal continues the same command or response. */
  self->continuation = TRUE;
  if (size > 0)
    {
      self->state = SCAN_STATE_LITERAL;
      self->literal_remaining = size;
    }
}

gsize
sm_imap_scanner_feed (SmImapScanner *scanner, const guint8 *buf, gsize len,
                      SmImapScanResult *out)
{
  gsize pos = 0;

  g_return_val_if_fail (out != NULL, 0);
  memset (out, 0, sizeof *out);
  out->event = SM_IMAP_SCAN_NEED_MORE;
  g_return_val_if_fail (scanner != NULL, 0);
  g_return_val_if_fail (buf != NULL || len == 0, 0);

  /* The line handed out by the previous call was valid until now. */
  if (scanner->line_handed_out)
    {
      g_byte_array_set_size (scanner->line, 0);
      scanner->line_handed_out = FALSE;
    }

  while (pos < len)
    {
      switch (scanner->state)
        {
        case SCAN_STATE_LITERAL:
          {
            /* Literal bytes are never copied: hand back the caller's. */
            gsize n = (gsize) MIN ((guint64) (len - pos), scanner->literal_remaining);

            g_assert (n > 0);
            out->event = SM_IMAP_SCAN_LITERAL;
            out->data = buf + pos;
            out->len = n;
            scanner->literal_remaining -= n;
            if (scanner->literal_remaining == 0)
              {
                out->literal_done = TRUE;
                scanner->state = SCAN_STATE_LINE;
              }
            return pos + n;
          }

        case SCAN_STATE_SKIP:
          {
            const guint8 *lf = memchr (buf + pos, '\n', len - pos);

            if (lf == NULL)
              return len;
            pos = (gsize) (lf - buf) + 1;
            scanner->state = SCAN_STATE_LINE;
            break;
          }

        case SCAN_STATE_LINE:
          {
            gsize room = scanner->max_line - scanner->line->len;
            gsize look = MIN (room, len - pos);
            const guint8 *lf;

            g_assert (room > 0);
            lf = memchr (buf + pos, '\n', look);
            if (lf != NULL)
              {
                gsize n = (gsize) (lf - (buf + pos)) + 1;

                g_byte_array_append (scanner->line, buf + pos, (guint) n);
                finish_line (scanner, out);
                return pos + n;
              }

            g_byte_array_append (scanner->line, buf + pos, (guint) look);
            pos += look;
            if (scanner->line->len == scanner->max_line)
              {
                /* max_line bytes and still no LF: whatever ends the line
                 * would exceed the limit, so say so now rather than buffer
                 * more.  The command is lost; what follows its LF starts
                 * afresh, not as a continuation. */
                g_byte_array_set_size (scanner->line, 0);
                scanner->state = SCAN_STATE_SKIP;
                scanner->continuation = FALSE;
                out->event = SM_IMAP_SCAN_LINE_TOO_LONG;
                return pos;
              }
            break;
          }

        default:
          g_assert_not_reached ();
        }
    }

  return len;
}

/* ---- command tokenizer --------------------------------------------------- */

/* Error texts are fixed strings, not translated: they are IMAP protocol
 * text (the BAD response), which RFC 3501 clients expect in ASCII. */
static void
set_protocol_error (GError **error, const char *message)
{
  g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL, message);
}

static void
token_free (gpointer data)
{
  SmImapToken *token = data;

  g_bytes_unref (token->value);
  g_free (token);
}

/* Frees @command (nullable), its strings and its tokens. */
void
sm_imap_command_free (SmImapCommand *command)
{
  if (command == NULL)
    return;
  g_free (command->tag);
  g_free (command->name);
  if (command->args != NULL)
    g_ptr_array_unref (command->args);
  g_free (command);
}

/* Reads a line terminator at *pp (CRLF or bare LF) and advances past it. */
static gboolean
skip_eol (const guint8 **pp, const guint8 *end)
{
  const guint8 *p = *pp;

  if (p < end && *p == '\r')
    p++;
  if (p < end && *p == '\n')
    {
      *pp = p + 1;
      return TRUE;
    }
  return FALSE;
}

/* Reads a quoted string starting at the opening DQUOTE at *pp and advances
 * past the closing one.  If @value is not NULL the unescaped contents are
 * appended to it.  quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR excludes
 * CR, LF and NUL, and "\" may only escape "\" or DQUOTE (section 9). */
static gboolean
read_quoted (const guint8 **pp, const guint8 *end, GByteArray *value, GError **error)
{
  const guint8 *p = *pp + 1;

  while (p < end)
    {
      guint8 c = *p;

      if (c == '"')
        {
          *pp = p + 1;
          return TRUE;
        }
      if (is_eol (c))
        break;
      if (c == '\0')
        {
          set_protocol_error (error, "NUL byte in quoted string");
          return FALSE;
        }
      if (c == '\\')
        {
          if (p + 1 >= end || (p[1] != '\\' && p[1] != '"'))
            {
              set_protocol_error (error, "Invalid escape in quoted string (only \\\\ and \\\" are allowed)");
              return FALSE;
            }
          c = p[1];
          p++;
        }
      if (value != NULL)
        g_byte_array_append (value, &c, 1);
      p++;
    }

  set_protocol_error (error, "Unterminated quoted string");
  return FALSE;
}

/* Reads a literal announcement and its contents: *pp points at "{" or at
 * the "~" of "~{".  On success *pp is past the contents and *contents /
 * *size (nullable) locate them inside the input. */
static gboolean
read_literal (const guint8 **pp, const guint8 *end,
              const guint8 **contents, guint64 *size_out, GError **error)
{
  const guint8 *p = *pp;
  const guint8 *digits;
  guint64 size;

  if (*p == '~')
    p++;
  g_assert (p < end && *p == '{');
  p++;
  digits = p;
  while (p < end && g_ascii_isdigit (*p))
    p++;
  if (p == digits)
    {
      set_protocol_error (error, "Invalid literal: missing size");
      return FALSE;
    }
  size = parse_u64_saturating (digits, p);
  if (p < end && *p == '+')   /* RFC 7888 section 3: non-synchronizing */
    p++;
  if (p >= end || *p != '}')
    {
      set_protocol_error (error, "Invalid literal: expected '}'");
      return FALSE;
    }
  p++;
  if (!skip_eol (&p, end))
    {
      set_protocol_error (error, "Invalid literal: '}' must be followed by CRLF");
      return FALSE;
    }
  if (size > (guint64) (end - p))
    {
      set_protocol_error (error, "Literal is longer than the data sent");
      return FALSE;
    }
  if (contents != NULL)
    *contents = p;
  if (size_out != NULL)
    *size_out = size;
  *pp = p + size;
  return TRUE;
}

/* TRUE when *p starts a literal: "{" or "~{". */
static inline gboolean
at_literal (const guint8 *p, const guint8 *end)
{
  return *p == '{' || (*p == '~' && p + 1 < end && p[1] == '{');
}

typedef enum {
  NEST_OK,
  NEST_UNTERMINATED,   /* the line ended before the closing bracket */
  NEST_ERROR,          /* malformed contents or too deep */
} NestResult;

/* Skips a bracketed group starting at the "(" or "[" at @start, with
 * nested lists, sections, quoted strings and literals inside, and sets
 * *out_end past the matching closer.  "]" inside a "(" group is an ordinary
 * ASTRING-CHAR; ")" inside a "[" group without its "(" is an error. */
static NestResult
skip_nested (const guint8 *start, const guint8 *end, const guint8 **out_end, GError **error)
{
  guint8 closers[SM_IMAP_MAX_NESTING];
  guint depth = 0;
  const guint8 *p = start;

  while (p < end)
    {
      guint8 c = *p;

      if (c == '(' || c == '[')
        {
          if (depth == SM_IMAP_MAX_NESTING)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                           "Lists nested too deeply (limit %d)", SM_IMAP_MAX_NESTING);
              return NEST_ERROR;
            }
          closers[depth++] = c == '(' ? ')' : ']';
          p++;
        }
      else if (c == ')' || c == ']')
        {
          g_assert (depth > 0);
          if (closers[depth - 1] == c)
            {
              depth--;
              if (depth == 0)
                {
                  *out_end = p + 1;
                  return NEST_OK;
                }
            }
          else if (c == ')')
            {
              set_protocol_error (error, "Unbalanced brackets: ')' inside '['");
              return NEST_ERROR;
            }
          p++;
        }
      else if (c == '"')
        {
          if (!read_quoted (&p, end, NULL, error))
            return NEST_ERROR;
        }
      else if (at_literal (p, end))
        {
          if (!may_precede_literal (p[-1]))
            {
              set_protocol_error (error, "Unexpected '{' inside a list");
              return NEST_ERROR;
            }
          if (!read_literal (&p, end, NULL, NULL, error))
            return NEST_ERROR;
        }
      else if (is_eol (c))
        break;
      else if (is_ctl (c))
        {
          set_protocol_error (error, "Invalid control character inside a list");
          return NEST_ERROR;
        }
      else
        p++;
    }

  set_protocol_error (error, closers[depth - 1] == ')' ? "Missing ')'" : "Missing ']'");
  return NEST_UNTERMINATED;
}

/* Reads an atom-like token at *pp: anything unquoted up to SP or the end
 * of the line.  A "[" opens a section that runs to its matching "]" and may
 * hold spaces, lists and strings (BODY[HEADER.FIELDS (FROM TO)]); a "["
 * that is never closed is an ordinary ASTRING-CHAR ("[Gmail" is a valid
 * atom).  Bytes >= 0x80 are let through: clients send raw UTF-8 mailbox
 * names (RFC 6855, RFC 9051 section 5.1) and the proxy relays them. */
static gboolean
read_atom (const guint8 **pp, const guint8 *end, GError **error)
{
  const guint8 *p = *pp;

  while (p < end && *p != ' ' && !is_eol (*p))
    {
      guint8 c = *p;

      if (c == '[')
        {
          const guint8 *after = NULL;
          g_autoptr(GError) local_error = NULL;

          switch (skip_nested (p, end, &after, &local_error))
            {
            case NEST_OK:
              p = after;
              continue;
            case NEST_UNTERMINATED:
              break;
            case NEST_ERROR:
            default:
              g_propagate_error (error, g_steal_pointer (&local_error));
              return FALSE;
            }
        }
      else if (c == '(' || c == ')' || c == '{' || c == '"')
        {
          set_protocol_error (error, c == ')' ? "Unexpected ')'" : "Invalid character in atom");
          return FALSE;
        }
      else if (is_ctl (c))
        {
          set_protocol_error (error, "Invalid control character in atom");
          return FALSE;
        }
      p++;
    }

  g_assert (p > *pp);
  *pp = p;
  return TRUE;
}

static void
add_token (GPtrArray *args, SmImapTokenKind kind, const guint8 *data, gsize len)
{
  SmImapToken *token = g_new0 (SmImapToken, 1);

  token->kind = kind;
  token->value = g_bytes_new (data, len);
  g_ptr_array_add (args, token);
}

/* Reads the tag at *pp.  Returns it (caller owns) or NULL with @error set. */
static char *
read_tag (const guint8 **pp, const guint8 *end, GError **error)
{
  const guint8 *p = *pp;

  while (p < end && is_tag_char (*p))
    p++;
  if (p == *pp)
    {
      if (p >= end || is_eol (*p) || *p == ' ')
        set_protocol_error (error, "Missing tag");
      else
        set_protocol_error (error, "Invalid characters in tag");
      return NULL;
    }
  if (p < end && *p != ' ' && !is_eol (*p))
    {
      set_protocol_error (error, "Invalid characters in tag");
      return NULL;
    }

  {
    char *tag = g_strndup ((const char *) *pp, (gsize) (p - *pp));

    *pp = p;
    return tag;
  }
}

/* Reads an atom (a command name, a response keyword) at *pp and returns it
 * upper-cased (caller owns), or NULL if there is none or it is followed by
 * anything but SP or the end of the line. */
static char *
read_upper_atom (const guint8 **pp, const guint8 *end)
{
  const guint8 *p = *pp;
  char *word;

  while (p < end && is_atom_char (*p))
    p++;
  if (p == *pp || (p < end && *p != ' ' && !is_eol (*p)))
    return NULL;
  word = g_ascii_strup ((const char *) *pp, (gssize) (p - *pp));
  *pp = p;
  return word;
}

SmImapCommand *
sm_imap_command_parse (const guint8 *data, gsize len, char **tag_out, GError **error)
{
  g_autoptr(SmImapCommand) command = NULL;
  g_autoptr(GError) local_error = NULL;
  const guint8 *p = data;
  const guint8 *end = data + len;

  if (tag_out != NULL)
    *tag_out = NULL;
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (len == 0 || is_eol (data[0]))
    {
      set_protocol_error (error, "Empty command line");
      return NULL;
    }

  command = g_new0 (SmImapCommand, 1);
  command->args = g_ptr_array_new_with_free_func (token_free);

  /* command = tag SP (command-any / ...) CRLF (section 9) */
  command->tag = read_tag (&p, end, error);
  if (command->tag == NULL)
    return NULL;

  if (p >= end || *p != ' ')
    {
      set_protocol_error (&local_error, "Missing command name");
      goto fail;
    }
  while (p < end && *p == ' ')
    p++;
  if (p >= end || is_eol (*p))
    {
      set_protocol_error (&local_error, "Missing command name");
      goto fail;
    }
  command->name = read_upper_atom (&p, end);
  if (command->name == NULL)
    {
      set_protocol_error (&local_error, "Invalid characters in command name");
      goto fail;
    }

  for (;;)
    {
      const guint8 *start;

      if (p >= end)
        {
          set_protocol_error (&local_error, "Command is not terminated by CRLF");
          goto fail;
        }
      if (is_eol (*p))
        {
          if (!skip_eol (&p, end))
            {
              set_protocol_error (&local_error, "CR not followed by LF");
              goto fail;
            }
          if (p != end)
            {
              set_protocol_error (&local_error, "Unexpected data after the end of the command");
              goto fail;
            }
          break;
        }
      if (*p != ' ')
        {
          set_protocol_error (&local_error, "Missing space between arguments");
          goto fail;
        }
      /* Extra spaces (and one before CRLF) are tolerated: some clients
       * send them and refusing buys nothing. */
      while (p < end && *p == ' ')
        p++;
      if (p >= end || is_eol (*p))
        continue;

      if (command->args->len >= SM_IMAP_MAX_ARGS)
        {
          g_set_error (&local_error, SM_ERROR, SM_ERROR_TOO_BIG,
                       "Too many arguments (limit %d)", SM_IMAP_MAX_ARGS);
          goto fail;
        }

      start = p;
      if (*p == '"')
        {
          g_autoptr(GByteArray) value = g_byte_array_new ();

          if (!read_quoted (&p, end, value, &local_error))
            goto fail;
          add_token (command->args, SM_IMAP_TOKEN_QUOTED, value->data, value->len);
        }
      else if (at_literal (p, end))
        {
          const guint8 *contents = NULL;
          guint64 size = 0;

          if (!read_literal (&p, end, &contents, &size, &local_error))
            goto fail;
          add_token (command->args, SM_IMAP_TOKEN_LITERAL, contents, (gsize) size);
        }
      else if (*p == '(')
        {
          if (skip_nested (p, end, &p, &local_error) != NEST_OK)
            goto fail;
          add_token (command->args, SM_IMAP_TOKEN_LIST, start, (gsize) (p - start));
        }
      else if (*p == ')')
        {
          set_protocol_error (&local_error, "Unexpected ')'");
          goto fail;
        }
      else
        {
          SmImapTokenKind kind = SM_IMAP_TOKEN_ATOM;

          if (!read_atom (&p, end, &local_error))
            goto fail;
          /* A token that is exactly one [...] section is a LIST. */
          if (*start == '[' && p[-1] == ']')
            {
              const guint8 *section_end = NULL;

              if (skip_nested (start, p, &section_end, NULL) == NEST_OK && section_end == p)
                kind = SM_IMAP_TOKEN_LIST;
            }
          add_token (command->args, kind, start, (gsize) (p - start));
        }
    }

  return g_steal_pointer (&command);

fail:
  if (tag_out != NULL)
    *tag_out = g_strdup (command->tag);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return NULL;
}

gboolean
sm_imap_command_peek (const guint8 *line, gsize len, char **tag_out, char **name_out)
{
  g_autofree char *tag = NULL;
  g_autofree char *name = NULL;
  const guint8 *p = line;
  const guint8 *end = line + len;

  if (tag_out != NULL)
    *tag_out = NULL;
  if (name_out != NULL)
    *name_out = NULL;
  g_return_val_if_fail (line != NULL || len == 0, FALSE);

  /* Same spacing rules as sm_imap_command_parse(), so that the two agree on
   * every command the parser accepts. */
  tag = read_tag (&p, end, NULL);
  if (tag == NULL || p >= end || *p != ' ')
    return FALSE;
  while (p < end && *p == ' ')
    p++;
  name = read_upper_atom (&p, end);
  if (name == NULL)
    return FALSE;

  /* uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
   * (section 9): the interesting name is the pair. */
  if (strcmp (name, "UID") == 0 && p < end && *p == ' ')
    {
      const guint8 *q = p;
      g_autofree char *sub = NULL;

      while (q < end && *q == ' ')
        q++;
      sub = read_upper_atom (&q, end);

      if (sub != NULL)
        {
          g_autofree char *pair = g_strconcat (name, " ", sub, NULL);

          g_free (name);
          name = g_steal_pointer (&pair);
        }
    }

  if (tag_out != NULL)
    *tag_out = g_steal_pointer (&tag);
  if (name_out != NULL)
    *name_out = g_steal_pointer (&name);
  return TRUE;
}

/* ---- responses ----------------------------------------------------------- */

void
sm_imap_response_clear (SmImapResponse *response)
{
  if (response == NULL)
    return;
  g_free (response->tag);
  g_free (response->keyword);
  g_free (response->code);
  g_free (response->text);
  memset (response, 0, sizeof *response);
}

static SmImapStatus
status_from_word (const char *word)
{
  if (strcmp (word, "OK") == 0)
    return SM_IMAP_STATUS_OK;
  if (strcmp (word, "NO") == 0)
    return SM_IMAP_STATUS_NO;
  if (strcmp (word, "BAD") == 0)
    return SM_IMAP_STATUS_BAD;
  if (strcmp (word, "PREAUTH") == 0)
    return SM_IMAP_STATUS_PREAUTH;
  if (strcmp (word, "BYE") == 0)
    return SM_IMAP_STATUS_BYE;
  return SM_IMAP_STATUS_NONE;
}

/* resp-text = ["[" resp-text-code "]" SP] text (section 9).  Codes may hold
 * lists and quoted strings ([BADCHARSET (UTF-8 "X")], RFC 9051 section
 * 7.1), so brackets are matched with nesting; a code that never closes, or
 * nests deeper than SM_IMAP_MAX_NESTING, is taken as plain text. */
static void
parse_resp_text (const guint8 *p, const guint8 *end, SmImapResponse *out)
{
  if (p < end && *p == '[')
    {
      const guint8 *q = p + 1;
      guint depth = 1;
      gboolean quoted = FALSE;

      for (; q < end && depth > 0 && depth <= SM_IMAP_MAX_NESTING; q++)
        {
          if (quoted)
            {
              if (*q == '\\')
                q++;
              else if (*q == '"')
                quoted = FALSE;
            }
          else if (*q == '"')
            quoted = TRUE;
          else if (*q == '[')
            depth++;
          else if (*q == ']')
            depth--;
        }
      if (depth == 0)
        {
          /* q is just past the closing bracket. */
          out->code = g_strndup ((const char *) p + 1, (gsize) (q - 1 - (p + 1)));
          p = q;
          if (p < end && *p == ' ')
            p++;
        }
    }
  out->text = g_strndup ((const char *) p, (gsize) (end - p));
}

void
sm_imap_response_classify (const guint8 *line, gsize len, SmImapResponse *out)
{
  const guint8 *p = line;
  const guint8 *end;

  g_return_if_fail (out != NULL);
  sm_imap_response_clear (out);
  g_return_if_fail (line != NULL || len == 0);

  end = line + len;
  if (end > p && end[-1] == '\n')
    end--;
  if (end > p && end[-1] == '\r')
    end--;
  if (p >= end)
    return;

  /* continue-req = "+" SP (resp-text / base64) CRLF (section 7.5).  Some
   * servers omit the SP and text; accept a bare "+". */
  if (*p == '+')
    {
      p++;
      if (p < end && *p != ' ')
        return;
      if (p < end)
        p++;
      out->kind = SM_IMAP_RESPONSE_CONTINUATION;
      parse_resp_text (p, end, out);
      return;
    }

  /* response-data = "*" SP (resp-cond-state / resp-cond-bye /
   * mailbox-data / message-data / capability-data / ...) CRLF */
  if (*p == '*')
    {
      g_autofree char *keyword = NULL;
      guint32 number = 0;
      gboolean has_number = FALSE;

      p++;
      if (p >= end || *p != ' ')
        return;
      p++;

      /* message-data = nz-number SP ("EXPUNGE" / ("FETCH" SP msg-att)),
       * mailbox-data also has number SP "EXISTS" / "RECENT". */
      if (p < end && g_ascii_isdigit (*p))
        {
          guint64 n = 0;

          for (; p < end && g_ascii_isdigit (*p); p++)
            {
              n = n * 10 + (guint) (*p - '0');
              if (n > G_MAXUINT32)
                return;
            }
          if (p >= end || *p != ' ')
            return;
          p++;
          number = (guint32) n;
          has_number = TRUE;
        }

      keyword = read_upper_atom (&p, end);
      if (keyword == NULL)
        return;
      if (p < end)
        p++;   /* the SP after the keyword */

      out->kind = SM_IMAP_RESPONSE_UNTAGGED;
      out->number = number;
      out->status = has_number ? SM_IMAP_STATUS_NONE : status_from_word (keyword);
      out->keyword = g_steal_pointer (&keyword);
      if (out->status != SM_IMAP_STATUS_NONE)
        parse_resp_text (p, end, out);
      else
        out->text = g_strndup ((const char *) p, (gsize) (end - p));
      return;
    }

  /* response-tagged = tag SP resp-cond-state CRLF, where resp-cond-state =
   * ("OK" / "NO" / "BAD") SP resp-text.  The SP and text are required by
   * the grammar but some servers send "a1 OK"; accept that. */
  {
    g_autofree char *tag = read_tag (&p, end, NULL);
    g_autofree char *keyword = NULL;
    SmImapStatus status;

    if (tag == NULL || p >= end || *p != ' ')
      return;
    p++;
    keyword = read_upper_atom (&p, end);
    if (keyword == NULL)
      return;
    status = status_from_word (keyword);
    if (status != SM_IMAP_STATUS_OK && status != SM_IMAP_STATUS_NO &&
        status != SM_IMAP_STATUS_BAD)
      return;
    if (p < end)
      p++;

    out->kind = SM_IMAP_RESPONSE_TAGGED;
    out->status = status;
    out->tag = g_steal_pointer (&tag);
    out->keyword = g_steal_pointer (&keyword);
    parse_resp_text (p, end, out);
  }
}

/* ---- capabilities -------------------------------------------------------- */

typedef struct {
  const char *name;
  gboolean prefix;   /* matches NAME=anything */
} DroppedCapability;

/* What the proxy cannot relay faithfully, and why:
 * - COMPRESS=* (RFC 4978): the proxy must read the stream.
 * - STARTTLS, LOGINDISABLED (RFC 9051 section 6.2): the client talks to the
 *   proxy on loopback; the proxy does TLS to the provider itself.
 * - AUTH=*, SASL-IR (RFC 4959): the proxy logs in upstream itself.
 * - UNAUTHENTICATE (RFC 8437): would undo that login.
 * - LOGIN-REFERRALS (RFC 2221), MAILBOX-REFERRALS (RFC 2193): would send the
 *   client to the provider directly, around the proxy.
 * - QRESYNC (RFC 7162): VANISHED responses and FETCH modifiers renumber
 *   messages behind the back of an intercepted FETCH; CONDSTORE stays.
 * - NOTIFY (RFC 5465): unsolicited FETCH responses may carry message
 *   content the proxy never asked for, i.e. ciphertext of protected mail. */
static const DroppedCapability dropped_capabilities[] = {
  { "COMPRESS=", TRUE },
  { "STARTTLS", FALSE },
  { "LOGINDISABLED", FALSE },
  { "AUTH=", TRUE },
  { "SASL-IR", FALSE },
  { "UNAUTHENTICATE", FALSE },
  { "LOGIN-REFERRALS", FALSE },
  { "MAILBOX-REFERRALS", FALSE },
  { "QRESYNC", FALSE },
  { "NOTIFY", FALSE },
};

static gboolean
capability_matches (const char *cap, gsize len, const char *name, gboolean prefix)
{
  gsize name_len = strlen (name);

  if (prefix)
    return len >= name_len && g_ascii_strncasecmp (cap, name, name_len) == 0;
  return len == name_len && g_ascii_strncasecmp (cap, name, name_len) == 0;
}

static gboolean
capability_dropped (const char *cap, gsize len, const char * const *extra_drop)
{
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (dropped_capabilities); i++)
    if (capability_matches (cap, len, dropped_capabilities[i].name, dropped_capabilities[i].prefix))
      return TRUE;

  for (; extra_drop != NULL && *extra_drop != NULL; extra_drop++)
    {
      const char *name = *extra_drop;
      gsize name_len = strlen (name);

      if (name_len == 0)
        continue;
      if (capability_matches (cap, len, name, name[name_len - 1] == '='))
        return TRUE;
    }
  return FALSE;
}

static inline gboolean
is_capability_separator (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *
sm_imap_capabilities_filter (const char *caps, const char * const *extra_drop)
{
  GString *out;
  const char *p = caps;

  g_return_val_if_fail (caps != NULL, NULL);

  out = g_string_new (NULL);
  for (;;)
    {
      const char *start;

      while (*p != '\0' && is_capability_separator (*p))
        p++;
      if (*p == '\0')
        break;
      start = p;
      while (*p != '\0' && !is_capability_separator (*p))
        p++;
      if (capability_dropped (start, (gsize) (p - start), extra_drop))
        continue;
      if (out->len > 0)
        g_string_append_c (out, ' ');
      g_string_append_len (out, start, p - start);
    }
  return g_string_free (out, FALSE);
}
