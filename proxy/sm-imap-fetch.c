/* sm-imap-fetch.c: FETCH requests, responses and content rendering.
 *
 * See sm-imap-fetch.h.  The MIME tree is built here on the raw bytes
 * (header fields through sm-mime.h) rather than from libetpan's tree,
 * because IMAP sections are byte ranges whose exact bounds matter: a part
 * ends before the CRLF that belongs to the next boundary delimiter
 * (RFC 2046 section 5.1.1), and every answer must be byte-exact with what
 * an IMAP server (Dovecot 2.3, our oracle) sends for the same message.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <libetpan/libetpan.h>

#include "sm-error.h"
#include "sm-imap-fetch.h"
#include "sm-mime.h"

/* Dovecot switches from a quoted string to a literal after this many
 * characters that need a backslash: past it the literal is shorter. */
#define QUOTED_MAX_ESCAPES 4

/* ==== requests ============================================================ */

typedef enum {
  ITEM_META,            /* asked of the provider: FLAGS, UID, INTERNALDATE, MODSEQ, unknown atoms */
  ITEM_BODY_SECTION,    /* BODY[...], BODY.PEEK[...] */
  ITEM_BINARY,          /* BINARY[...], BINARY.PEEK[...] (RFC 3516) */
  ITEM_BINARY_SIZE,     /* BINARY.SIZE[...] */
  ITEM_RFC822,
  ITEM_RFC822_HEADER,
  ITEM_RFC822_TEXT,
  ITEM_RFC822_SIZE,
  ITEM_BODY,
  ITEM_BODYSTRUCTURE,
  ITEM_ENVELOPE,
  ITEM_PREVIEW,         /* RFC 8970 */
} ItemKind;

typedef enum {
  SECTION_WHOLE,        /* no section-text: the part (or the whole message) */
  SECTION_HEADER,
  SECTION_HEADER_FIELDS,
  SECTION_HEADER_FIELDS_NOT,
  SECTION_TEXT,
  SECTION_MIME,
} SectionText;

typedef struct {
  ItemKind kind;
  char *meta;                 /* ITEM_META: the attribute, upper-cased */
  gboolean peek;
  guint32 path[SM_IMAP_FETCH_MAX_SECTION_DEPTH];
  guint n_path;
  SectionText text;
  GPtrArray *fields;          /* HEADER.FIELDS (.NOT): names as sent (char *) */
  gboolean partial;
  guint32 offset;
  guint32 count;
  char *name;                 /* the response name without <origin>, e.g. "BODY[1.MIME]" */
} FetchAtt;

struct _SmImapFetchRequest {
  char *tag;
  gboolean uid;
  char *set;
  char *modifiers;
  GPtrArray *atts;            /* FetchAtt * */
};

static void
fetch_att_free (FetchAtt *att)
{
  if (att == NULL)
    return;
  g_free (att->meta);
  g_clear_pointer (&att->fields, g_ptr_array_unref);
  g_free (att->name);
  g_free (att);
}

void
sm_imap_fetch_request_free (SmImapFetchRequest *req)
{
  if (req == NULL)
    return;
  g_free (req->tag);
  g_free (req->set);
  g_free (req->modifiers);
  g_ptr_array_unref (req->atts);
  g_free (req);
}

typedef struct {
  const char *p;
  const char *end;
  /* Set by skip_cfws(): the last comment it skipped, without its
   * parentheses (an address's comment can stand for its display name). */
  const char *comment;
  gsize comment_len;
} Cursor;

static gboolean
cur_eof (const Cursor *c)
{
  return c->p >= c->end;
}

static gboolean
cur_peek (const Cursor *c, char ch)
{
  return c->p < c->end && *c->p == ch;
}

static gboolean
cur_eat (Cursor *c, char ch)
{
  if (!cur_peek (c, ch))
    return FALSE;
  c->p++;
  return TRUE;
}

/* Case-insensitive match of @word at the cursor; consumes it on success. */
static gboolean
cur_eat_word (Cursor *c, const char *word)
{
  gsize n = strlen (word);

  if ((gsize) (c->end - c->p) < n || g_ascii_strncasecmp (c->p, word, n) != 0)
    return FALSE;
  c->p += n;
  return TRUE;
}

/* ATOM-CHAR of RFC 9051 minus "]" (resp-specials), and minus "[" and "<"
 * which start a section or partial inside a fetch attribute. */
static gboolean
is_att_char (char ch)
{
  return ch > 0x20 && ch < 0x7f && strchr ("(){%*\"\\[]<", ch) == NULL;
}

/* ASTRING-CHAR inside a header-list: an atom char or "]", but not the ")"
 * that closes the list. */
static gboolean
is_astring_char (char ch)
{
  return ch > 0x20 && ch < 0x7f && strchr ("(){%*\"\\", ch) == NULL;
}

static void
set_bad (GError **error, const char *message)
{
  g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL, message);
}

static gboolean
parse_number (Cursor *c, guint32 *out)
{
  guint64 v = 0;
  const char *start = c->p;

  while (c->p < c->end && g_ascii_isdigit (*c->p))
    {
      v = v * 10 + (guint64) (*c->p - '0');
      if (v > G_MAXUINT32)
        return FALSE;
      c->p++;
    }
  *out = (guint32) v;
  return c->p > start;
}

/* A quoted string at the cursor (RFC 9051 quoted): returns the unescaped
 * value or NULL. */
static char *
parse_quoted (Cursor *c)
{
  GString *s;

  if (!cur_eat (c, '"'))
    return NULL;
  s = g_string_new (NULL);
  while (c->p < c->end && *c->p != '"')
    {
      if (*c->p == '\r' || *c->p == '\n')
        break;
      if (*c->p == '\\')
        {
          c->p++;
          if (c->p >= c->end || (*c->p != '\\' && *c->p != '"'))
            break;
        }
      g_string_append_c (s, *c->p);
      c->p++;
    }
  if (!cur_eat (c, '"'))
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  return g_string_free (s, FALSE);
}

static void
append_quoted_name (GString *s, const char *name)
{
  g_string_append_c (s, '"');
  for (const char *p = name; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_c (s, '\\');
      g_string_append_c (s, *p);
    }
  g_string_append_c (s, '"');
}

/* header-list = "(" header-fld-name *(SP header-fld-name) ")".  The names
 * go into att->fields; the response name echoes them upper-cased and in the
 * form they were sent (atom or quoted), as Dovecot does. */
static gboolean
parse_header_list (Cursor *c, FetchAtt *att, GString *name, GError **error)
{
  att->fields = g_ptr_array_new_with_free_func (g_free);
  if (!cur_eat (c, ' ') || !cur_eat (c, '('))
    {
      set_bad (error, _("HEADER.FIELDS needs a list of field names"));
      return FALSE;
    }
  g_string_append (name, " (");
  for (;;)
    {
      g_autofree char *field = NULL;
      g_autofree char *upper = NULL;
      gboolean quoted = cur_peek (c, '"');

      if (quoted)
        field = parse_quoted (c);
      else
        {
          const char *start = c->p;

          while (c->p < c->end && is_astring_char (*c->p) && *c->p != ']')
            c->p++;
          if (c->p > start)
            field = g_strndup (start, c->p - start);
        }
      if (field == NULL || field[0] == '\0')
        {
          set_bad (error, _("A header field name in FETCH is malformed"));
          return FALSE;
        }
      if (att->fields->len >= SM_IMAP_FETCH_MAX_HEADER_NAMES)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                       _("FETCH asks for more than %u header fields"), (guint) SM_IMAP_FETCH_MAX_HEADER_NAMES);
          return FALSE;
        }
      upper = g_ascii_strup (field, -1);
      if (att->fields->len > 0)
        g_string_append_c (name, ' ');
      if (quoted)
        append_quoted_name (name, upper);
      else
        g_string_append (name, upper);
      g_ptr_array_add (att->fields, g_steal_pointer (&field));
      if (cur_eat (c, ')'))
        break;
      if (!cur_eat (c, ' '))
        {
          set_bad (error, _("A header field list in FETCH is malformed"));
          return FALSE;
        }
    }
  g_string_append_c (name, ')');
  return TRUE;
}

/* section = "[" [section-spec] "]" (RFC 9051), or section-binary =
 * "[" [section-part] "]" (RFC 3516) when @binary.  The cursor is on "[". */
static gboolean
parse_section (Cursor *c, FetchAtt *att, gboolean binary, GString *name, GError **error)
{
  g_string_append_c (name, '[');
  c->p++;
  while (c->p < c->end && g_ascii_isdigit (*c->p))
    {
      guint32 n;

      if (!parse_number (c, &n) || n == 0)
        {
          set_bad (error, _("A section part number in FETCH is invalid"));
          return FALSE;
        }
      if (att->n_path >= SM_IMAP_FETCH_MAX_SECTION_DEPTH)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                       _("A FETCH section has more than %u part numbers"),
                       (guint) SM_IMAP_FETCH_MAX_SECTION_DEPTH);
          return FALSE;
        }
      att->path[att->n_path++] = n;
      g_string_append_printf (name, "%s%u", att->n_path > 1 ? "." : "", n);
      if (!cur_eat (c, '.'))
        break;
      if (c->p < c->end && !g_ascii_isdigit (*c->p))
        {
          g_string_append_c (name, '.');
          break;
        }
    }
  if (!cur_peek (c, ']'))
    {
      gboolean has_part = att->n_path > 0;

      if (binary)
        {
          set_bad (error, _("A BINARY section takes part numbers only"));
          return FALSE;
        }
      /* The longest keyword first: HEADER.FIELDS.NOT before HEADER.FIELDS
       * before HEADER. */
      if (cur_eat_word (c, "HEADER.FIELDS.NOT"))
        {
          att->text = SECTION_HEADER_FIELDS_NOT;
          g_string_append (name, "HEADER.FIELDS.NOT");
          if (!parse_header_list (c, att, name, error))
            return FALSE;
        }
      else if (cur_eat_word (c, "HEADER.FIELDS"))
        {
          att->text = SECTION_HEADER_FIELDS;
          g_string_append (name, "HEADER.FIELDS");
          if (!parse_header_list (c, att, name, error))
            return FALSE;
        }
      else if (cur_eat_word (c, "HEADER"))
        {
          att->text = SECTION_HEADER;
          g_string_append (name, "HEADER");
        }
      else if (cur_eat_word (c, "TEXT"))
        {
          att->text = SECTION_TEXT;
          g_string_append (name, "TEXT");
        }
      else if (has_part && cur_eat_word (c, "MIME"))
        {
          att->text = SECTION_MIME;
          g_string_append (name, "MIME");
        }
      else
        {
          set_bad (error, _("Unknown FETCH section"));
          return FALSE;
        }
    }
  else if (att->n_path > 0 && name->str[name->len - 1] == '.')
    {
      set_bad (error, _("A FETCH section ends with a dot"));
      return FALSE;
    }
  if (!cur_eat (c, ']'))
    {
      set_bad (error, _("A FETCH section is not closed"));
      return FALSE;
    }
  g_string_append_c (name, ']');
  return TRUE;
}

/* partial = "<" number "." nz-number ">" (RFC 9051). */
static gboolean
parse_partial (Cursor *c, FetchAtt *att, GError **error)
{
  if (!cur_eat (c, '<'))
    return TRUE;
  if (!parse_number (c, &att->offset) || !cur_eat (c, '.') || !parse_number (c, &att->count)
      || att->count == 0 || !cur_eat (c, '>'))
    {
      set_bad (error, _("A FETCH partial range is malformed"));
      return FALSE;
    }
  att->partial = TRUE;
  return TRUE;
}

static FetchAtt *
simple_att (ItemKind kind, const char *name)
{
  FetchAtt *att = g_new0 (FetchAtt, 1);

  att->kind = kind;
  att->name = g_strdup (name);
  if (kind == ITEM_META)
    att->meta = g_strdup (name);
  return att;
}

/* One fetch-att at the cursor. */
static FetchAtt *
parse_att (Cursor *c, GError **error)
{
  static const struct { const char *name; ItemKind kind; } simple[] = {
    { "RFC822", ITEM_RFC822 },
    { "RFC822.HEADER", ITEM_RFC822_HEADER },
    { "RFC822.TEXT", ITEM_RFC822_TEXT },
    { "RFC822.SIZE", ITEM_RFC822_SIZE },
    { "BODYSTRUCTURE", ITEM_BODYSTRUCTURE },
    { "ENVELOPE", ITEM_ENVELOPE },
  };
  const char *start = c->p;
  g_autofree char *word = NULL;
  g_autoptr(GString) name = NULL;
  FetchAtt *att;

  while (c->p < c->end && is_att_char (*c->p))
    c->p++;
  if (c->p == start)
    {
      set_bad (error, _("A FETCH attribute is missing"));
      return NULL;
    }
  word = g_ascii_strup (start, c->p - start);

  if (cur_peek (c, '['))
    {
      ItemKind kind;
      gboolean peek = FALSE;

      if (strcmp (word, "BODY") == 0 || strcmp (word, "BODY.PEEK") == 0)
        kind = ITEM_BODY_SECTION, peek = word[4] == '.';
      else if (strcmp (word, "BINARY") == 0 || strcmp (word, "BINARY.PEEK") == 0)
        kind = ITEM_BINARY, peek = word[6] == '.';
      else if (strcmp (word, "BINARY.SIZE") == 0)
        kind = ITEM_BINARY_SIZE;
      else
        {
          set_bad (error, _("Unknown FETCH attribute with a section"));
          return NULL;
        }
      att = g_new0 (FetchAtt, 1);
      att->kind = kind;
      att->peek = peek;
      /* The response names BODY and BINARY without .PEEK (RFC 9051
       * section 7.5.2). */
      name = g_string_new (kind == ITEM_BODY_SECTION ? "BODY" : kind == ITEM_BINARY ? "BINARY" : "BINARY.SIZE");
      if (!parse_section (c, att, kind != ITEM_BODY_SECTION, name, error)
          || (kind != ITEM_BINARY_SIZE && !parse_partial (c, att, error)))
        {
          fetch_att_free (att);
          return NULL;
        }
      att->name = g_string_free (g_steal_pointer (&name), FALSE);
      return att;
    }

  if (strcmp (word, "BODY") == 0)
    return simple_att (ITEM_BODY, "BODY");
  if (strcmp (word, "BODY.PEEK") == 0 || strcmp (word, "BINARY") == 0
      || strcmp (word, "BINARY.PEEK") == 0 || strcmp (word, "BINARY.SIZE") == 0)
    {
      set_bad (error, _("This FETCH attribute needs a section"));
      return NULL;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (simple); i++)
    if (strcmp (word, simple[i].name) == 0)
      return simple_att (simple[i].kind, simple[i].name);
  if (strcmp (word, "PREVIEW") == 0)
    {
      /* RFC 8970: PREVIEW [SP "(" preview-mod ")"]; LAZY only lets the
       * server skip work, and we always have the content. */
      if ((gsize) (c->end - c->p) >= 7 && g_ascii_strncasecmp (c->p, " (LAZY)", 7) == 0)
        c->p += 7;
      return simple_att (ITEM_PREVIEW, "PREVIEW");
    }
  if (cur_peek (c, '<'))
    {
      set_bad (error, _("A FETCH partial range needs a section"));
      return NULL;
    }
  /* FLAGS, UID, INTERNALDATE, MODSEQ, and extensions we do not know
   * (X-GM-LABELS, EMAILID, SAVEDATE, ...): the provider answers them. */
  return simple_att (ITEM_META, word);
}

static void
add_macro (GPtrArray *atts, const char *macro)
{
  /* RFC 9051 section 6.4.5: ALL, FAST, FULL. */
  g_ptr_array_add (atts, simple_att (ITEM_META, "FLAGS"));
  g_ptr_array_add (atts, simple_att (ITEM_META, "INTERNALDATE"));
  g_ptr_array_add (atts, simple_att (ITEM_RFC822_SIZE, "RFC822.SIZE"));
  if (strcmp (macro, "FAST") != 0)
    g_ptr_array_add (atts, simple_att (ITEM_ENVELOPE, "ENVELOPE"));
  if (strcmp (macro, "FULL") == 0)
    g_ptr_array_add (atts, simple_att (ITEM_BODY, "BODY"));
}

static gboolean
is_set_char (char ch)
{
  return g_ascii_isdigit (ch) || ch == ':' || ch == ',' || ch == '*' || ch == '$';
}

SmImapFetchRequest *
sm_imap_fetch_request_parse (const guint8 *line,
                             gsize         len,
                             GError      **error)
{
  g_autoptr(SmImapFetchRequest) req = g_new0 (SmImapFetchRequest, 1);
  Cursor c = { .p = (const char *) line, .end = (const char *) line + len };
  const char *start;

  g_return_val_if_fail (line != NULL || len == 0, NULL);

  req->atts = g_ptr_array_new_with_free_func ((GDestroyNotify) fetch_att_free);

  if (len == 0)
    {
      set_bad (error, _("Not a FETCH command"));
      return NULL;
    }
  /* The line end: CRLF, or a bare LF as the scanner accepts. */
  if (c.end > c.p && c.end[-1] == '\n')
    c.end--;
  if (c.end > c.p && c.end[-1] == '\r')
    c.end--;
  if (memchr (c.p, '\n', c.end - c.p) != NULL || memchr (c.p, '\r', c.end - c.p) != NULL
      || memchr (c.p, '\0', c.end - c.p) != NULL)
    {
      set_bad (error, _("A FETCH command must be a single line"));
      return NULL;
    }

  start = c.p;
  while (c.p < c.end && *c.p != ' ')
    c.p++;
  if (c.p == start || !cur_eat (&c, ' '))
    {
      set_bad (error, _("The command has no tag"));
      return NULL;
    }
  req->tag = g_strndup (start, c.p - 1 - start);

  if (cur_eat_word (&c, "UID "))
    req->uid = TRUE;
  if (!cur_eat_word (&c, "FETCH ") )
    {
      set_bad (error, _("Not a FETCH command"));
      return NULL;
    }

  start = c.p;
  while (c.p < c.end && is_set_char (*c.p))
    c.p++;
  if (c.p == start || !cur_eat (&c, ' '))
    {
      set_bad (error, _("The FETCH sequence set is malformed"));
      return NULL;
    }
  req->set = g_strndup (start, c.p - 1 - start);

  if (cur_eat (&c, '('))
    {
      for (;;)
        {
          FetchAtt *att = parse_att (&c, error);

          if (att == NULL)
            return NULL;
          if (req->atts->len >= SM_IMAP_FETCH_MAX_ITEMS)
            {
              fetch_att_free (att);
              g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                           _("FETCH asks for more than %u items"), (guint) SM_IMAP_FETCH_MAX_ITEMS);
              return NULL;
            }
          g_ptr_array_add (req->atts, att);
          if (cur_eat (&c, ')'))
            break;
          if (!cur_eat (&c, ' ') || cur_peek (&c, ')'))
            {
              set_bad (error, _("The FETCH item list is malformed"));
              return NULL;
            }
        }
    }
  else
    {
      const char *word_start = c.p;
      FetchAtt *att;

      while (c.p < c.end && is_att_char (*c.p))
        c.p++;
      if (c.p - word_start == 3 && g_ascii_strncasecmp (word_start, "ALL", 3) == 0)
        add_macro (req->atts, "ALL");
      else if (c.p - word_start == 4 && g_ascii_strncasecmp (word_start, "FAST", 4) == 0)
        add_macro (req->atts, "FAST");
      else if (c.p - word_start == 4 && g_ascii_strncasecmp (word_start, "FULL", 4) == 0)
        add_macro (req->atts, "FULL");
      else
        {
          c.p = word_start;
          att = parse_att (&c, error);
          if (att == NULL)
            return NULL;
          g_ptr_array_add (req->atts, att);
        }
    }

  if (cur_eat (&c, ' '))
    {
      /* fetch-modifiers (RFC 7162 CHANGEDSINCE, VANISHED, ...): relayed as
       * sent; only their outer shape is checked. */
      int depth = 0;

      start = c.p;
      if (!cur_peek (&c, '('))
        {
          set_bad (error, _("FETCH modifiers must be a parenthesised list"));
          return NULL;
        }
      for (; c.p < c.end; c.p++)
        {
          if (*c.p == '(')
            depth++;
          else if (*c.p == ')' && --depth == 0)
            break;
          if (depth > SM_IMAP_FETCH_MAX_RESPONSE_NESTING)
            {
              set_bad (error, _("FETCH modifiers nest too deeply"));
              return NULL;
            }
        }
      if (!cur_eat (&c, ')') || c.p - start < 3)
        {
          set_bad (error, _("FETCH modifiers are malformed"));
          return NULL;
        }
      req->modifiers = g_strndup (start, c.p - start);
    }
  if (!cur_eof (&c))
    {
      set_bad (error, _("Unexpected text after the FETCH items"));
      return NULL;
    }
  return g_steal_pointer (&req);
}

const char *
sm_imap_fetch_request_tag (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, NULL);
  return req->tag;
}

gboolean
sm_imap_fetch_request_is_uid (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, FALSE);
  return req->uid;
}

const char *
sm_imap_fetch_request_set (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, NULL);
  return req->set;
}

const char *
sm_imap_fetch_request_modifiers (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, NULL);
  return req->modifiers;
}

gboolean
sm_imap_fetch_request_needs_content (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, FALSE);
  for (guint i = 0; i < req->atts->len; i++)
    if (((FetchAtt *) req->atts->pdata[i])->kind != ITEM_META)
      return TRUE;
  return FALSE;
}

static gboolean
att_sets_seen (const FetchAtt *att)
{
  switch (att->kind)
    {
    case ITEM_BODY_SECTION:
    case ITEM_BINARY:
      return !att->peek;
    case ITEM_RFC822:
    case ITEM_RFC822_TEXT:
      return TRUE;
    default:
      return FALSE;
    }
}

gboolean
sm_imap_fetch_request_sets_seen (const SmImapFetchRequest *req)
{
  g_return_val_if_fail (req != NULL, FALSE);
  for (guint i = 0; i < req->atts->len; i++)
    if (att_sets_seen (req->atts->pdata[i]))
      return TRUE;
  return FALSE;
}

char *
sm_imap_fetch_request_metadata_items (const SmImapFetchRequest *req)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  GString *out = g_string_new ("(UID");

  g_return_val_if_fail (req != NULL, NULL);

  g_ptr_array_add (names, (gpointer) "UID");
  if (sm_imap_fetch_request_sets_seen (req))
    g_ptr_array_add (names, (gpointer) "FLAGS");
  for (guint i = 0; i < req->atts->len; i++)
    {
      const FetchAtt *att = req->atts->pdata[i];
      gboolean seen = FALSE;

      if (att->kind != ITEM_META)
        continue;
      for (guint j = 0; j < names->len && !seen; j++)
        seen = strcmp (names->pdata[j], att->meta) == 0;
      if (!seen)
        g_ptr_array_add (names, att->meta);
    }
  for (guint j = 1; j < names->len; j++)
    {
      g_string_append_c (out, ' ');
      g_string_append (out, names->pdata[j]);
    }
  g_string_append_c (out, ')');
  return g_string_free (out, FALSE);
}

/* ==== the MIME tree ======================================================== */

typedef struct _Entity Entity;
struct _Entity {
  gsize start;            /* the header section */
  gsize header_end;       /* end of the last header line, before the empty line */
  gsize body_start;       /* past the empty line ending the header */
  gsize header_stop;      /* end of the header as HEADER and MIME give it: body_start,
                           * but see header_unterminated() */
  gsize end;              /* end of the body */
  char *type;             /* as written ("text", "PLAIN"...), or NULL: the default applies */
  char *subtype;
  GArray *fields;         /* SmMimeField of the header, offsets relative to start */
  gboolean has_content_type;  /* FALSE: the type is a default (RFC 2045 section 5.2, digest) */
  gboolean multipart;
  gboolean rfc822;        /* message/rfc822 parsed into children[0] */
  GPtrArray *children;    /* Entity * */
};

struct _SmImapFetchMessage {
  GBytes *bytes;
  const char *data;
  gsize len;
  Entity *root;
  guint n_parts;
};

static void
entity_free (Entity *e)
{
  if (e == NULL)
    return;
  g_free (e->type);
  g_free (e->subtype);
  g_clear_pointer (&e->fields, g_array_unref);
  g_clear_pointer (&e->children, g_ptr_array_unref);
  g_free (e);
}

void
sm_imap_fetch_message_free (SmImapFetchMessage *msg)
{
  if (msg == NULL)
    return;
  entity_free (msg->root);
  g_bytes_unref (msg->bytes);
  g_free (msg);
}

/* The raw value of the first field named @name in @e's header, from after
 * the colon up to the final line end, leading and trailing blanks removed,
 * folding kept; NULL when there is none. */
static char *
entity_field_raw (const SmImapFetchMessage *msg, const Entity *e, const char *name)
{
  const char *header = msg->data + e->start;
  int idx = sm_mime_fields_find (header, e->fields, name);
  const SmMimeField *f;
  gsize a, b;

  if (idx < 0)
    return NULL;
  f = &g_array_index (e->fields, SmMimeField, idx);
  a = f->value_start;
  b = f->value_start + f->value_len;
  /* Only the blanks after the colon: a value that starts on a
   * continuation line keeps its folding, as in Dovecot. */
  while (a < b && (header[a] == ' ' || header[a] == '\t'))
    a++;
  while (b > a && strchr (" \t\r\n", header[b - 1]) != NULL)
    b--;
  return g_strndup (header + a, b - a);
}

/* ---- RFC 2045 structured values: Content-Type, Content-Disposition ------- */

typedef struct {
  char *value;            /* type/subtype or disposition type, as written */
  char *subtype;
  GPtrArray *params;      /* alternating name, value (char *), in order */
} Structured;

static void
structured_clear (Structured *s)
{
  g_clear_pointer (&s->value, g_free);
  g_clear_pointer (&s->subtype, g_free);
  g_clear_pointer (&s->params, g_ptr_array_unref);
}

static void
skip_cfws (Cursor *c)
{
  while (c->p < c->end)
    {
      if (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')
        c->p++;
      else if (*c->p == '(')
        {
          /* RFC 5322 comments nest; an unclosed one runs to the end. */
          const char *start = c->p + 1;
          int depth = 0;

          for (; c->p < c->end; c->p++)
            {
              if (*c->p == '\\' && c->p + 1 < c->end)
                c->p++;
              else if (*c->p == '(')
                depth++;
              else if (*c->p == ')' && --depth == 0)
                break;
            }
          c->comment = start;
          c->comment_len = (gsize) (c->p - start);
          if (c->p < c->end)
            c->p++;
        }
      else
        break;
    }
}

/* RFC 2045 token: any CHAR except SPACE, CTLs and tspecials. */
static gboolean
is_token_char (char ch)
{
  return (guchar) ch > 0x20 && (guchar) ch < 0x7f && strchr ("()<>@,;:\\\"/[]?=", ch) == NULL;
}

static char *
parse_token (Cursor *c)
{
  const char *start = c->p;

  while (c->p < c->end && is_token_char (*c->p))
    c->p++;
  return c->p > start ? g_strndup (start, c->p - start) : NULL;
}

/* A quoted string of a header (RFC 5322 section 3.2.4): folding removed,
 * quoted-pairs unescaped.  The cursor is on the opening quote. */
static char *
parse_header_quoted (Cursor *c)
{
  GString *s = g_string_new (NULL);

  c->p++;
  while (c->p < c->end && *c->p != '"')
    {
      if (*c->p == '\\' && c->p + 1 < c->end)
        c->p++;
      else if (*c->p == '\r' || *c->p == '\n')
        {
          c->p++;
          continue;
        }
      g_string_append_c (s, *c->p);
      c->p++;
    }
  cur_eat (c, '"');
  return g_string_free (s, FALSE);
}

/* Parses "type/subtype *(; name=value)" (@with_subtype) or "type *(;
 * name=value)".  Invalid parameters end the list.  A Content-Type is taken
 * leniently, as Dovecot does: a missing type or subtype is an empty string
 * (BODYSTRUCTURE then says ("" "") or ("text" "")); a disposition without
 * a type is no disposition (FALSE). */
static gboolean
structured_parse (const char *value, gboolean with_subtype, Structured *out)
{
  Cursor c = { .p = value, .end = value + strlen (value) };

  memset (out, 0, sizeof *out);
  skip_cfws (&c);
  out->value = parse_token (&c);
  if (out->value == NULL && !with_subtype)
    return FALSE;
  if (out->value == NULL)
    out->value = g_strdup ("");
  if (with_subtype)
    {
      skip_cfws (&c);
      if (cur_eat (&c, '/'))
        {
          skip_cfws (&c);
          out->subtype = parse_token (&c);
        }
      if (out->subtype == NULL)
        out->subtype = g_strdup ("");
    }
  out->params = g_ptr_array_new_with_free_func (g_free);
  for (;;)
    {
      g_autofree char *name = NULL;
      char *val;

      skip_cfws (&c);
      if (!cur_eat (&c, ';'))
        break;
      skip_cfws (&c);
      name = parse_token (&c);
      if (name == NULL)
        break;
      skip_cfws (&c);
      if (!cur_eat (&c, '='))
        break;
      skip_cfws (&c);
      if (cur_peek (&c, '"'))
        val = parse_header_quoted (&c);
      else
        val = parse_token (&c);
      if (val == NULL)
        break;
      g_ptr_array_add (out->params, g_steal_pointer (&name));
      g_ptr_array_add (out->params, val);
    }
  return TRUE;
}

static const char *
structured_param (const Structured *s, const char *name)
{
  for (guint i = 0; s->params != NULL && i + 1 < s->params->len; i += 2)
    if (g_ascii_strcasecmp (s->params->pdata[i], name) == 0)
      return s->params->pdata[i + 1];
  return NULL;
}

/* ---- parsing ----------------------------------------------------------------- */

typedef struct {
  SmImapFetchMessage *msg;
  GError **error;
} ParseCtx;

static gboolean
type_is (const Entity *e, const char *type, const char *subtype)
{
  return e->type != NULL && g_ascii_strcasecmp (e->type, type) == 0
         && (subtype == NULL || g_ascii_strcasecmp (e->subtype, subtype) == 0);
}

static Entity *parse_entity (ParseCtx *ctx, gsize start, gsize end, guint depth,
                             gboolean digest_child, gboolean delimiter_crlf);

/* TRUE when the line at @pos (within [.., end)) is "--" @boundary followed
 * by anything: Dovecot matches boundaries as prefixes; *close is set for
 * the closing delimiter "--boundary--". */
static gboolean
is_boundary_line (const char *data, gsize pos, gsize end, const char *boundary, gsize blen, gboolean *close)
{
  if (end - pos < blen + 2 || data[pos] != '-' || data[pos + 1] != '-'
      || memcmp (data + pos + 2, boundary, blen) != 0)
    return FALSE;
  *close = end - pos >= blen + 4 && data[pos + 2 + blen] == '-' && data[pos + 3 + blen] == '-';
  return TRUE;
}

/* TRUE when the header of the part [start, end) (or, for a message/rfc822
 * part, of the message it holds) has no empty line before @end.  Dovecot
 * 2.3 then counts the line end before the next delimiter into the part (its
 * size, BODY[n]) but not into that header (HEADER, MIME): we do the same,
 * so that clients see the same bytes from us as from the provider. */
static gboolean
header_unterminated (const char *data, gsize start, gsize end)
{
  for (guint depth = 0; depth <= SM_MIME_MAX_DEPTH; depth++)
    {
      gsize body_start;
      gsize header_len = sm_mime_header_length (data + start, end - start, &body_start);
      g_autoptr(SmMimeContentType) ct = NULL;

      if (body_start >= end - start && header_len == body_start)
        return TRUE;
      ct = sm_mime_content_type_of_header (data + start, header_len);
      if (strcmp (ct->type, "message") != 0 || strcmp (ct->subtype, "rfc822") != 0)
        return FALSE;
      start += body_start;
    }
  return FALSE;
}

/* Splits the body of multipart @e into its parts (RFC 2046 section 5.1.1):
 * each part starts after the line end of a delimiter line and ends before
 * the line end that precedes the next delimiter line. */
static gboolean
parse_multipart (ParseCtx *ctx, Entity *e, const char *boundary, guint depth)
{
  const char *data = ctx->msg->data;
  gsize blen = strlen (boundary);
  gsize pos = e->body_start;
  gssize part_start = -1;
  gboolean digest = type_is (e, "multipart", "digest");

  e->children = g_ptr_array_new_with_free_func ((GDestroyNotify) entity_free);
  while (pos < e->end)
    {
      const char *nl = memchr (data + pos, '\n', e->end - pos);
      gsize next = nl ? (gsize) (nl - data) + 1 : e->end;
      gboolean close = FALSE;

      if (is_boundary_line (data, pos, e->end, boundary, blen, &close))
        {
          if (part_start >= 0)
            {
              /* The CRLF before the delimiter belongs to it. */
              gsize part_end = pos;
              Entity *child;

              if (part_end > (gsize) part_start && data[part_end - 1] == '\n')
                part_end--;
              if (part_end > (gsize) part_start && data[part_end - 1] == '\r')
                part_end--;
              gboolean keep_crlf = header_unterminated (data, part_start, part_end)
                                   && part_end < pos;

              if (keep_crlf)
                part_end = pos;
              child = parse_entity (ctx, part_start, MAX (part_end, (gsize) part_start),
                                    depth + 1, digest, keep_crlf);
              if (child == NULL)
                return FALSE;
              g_ptr_array_add (e->children, child);
            }
          if (close)
            return TRUE;
          part_start = next;
        }
      pos = next;
    }
  if (part_start >= 0)
    {
      /* No closing delimiter: the last part runs to the end. */
      Entity *child = parse_entity (ctx, MIN ((gsize) part_start, e->end), e->end, depth + 1, digest, FALSE);

      if (child == NULL)
        return FALSE;
      g_ptr_array_add (e->children, child);
    }
  return TRUE;
}

static Entity *
parse_entity (ParseCtx *ctx, gsize start, gsize end, guint depth, gboolean digest_child,
              gboolean delimiter_crlf)
{
  const char *data = ctx->msg->data;
  g_autoptr(GError) local_error = NULL;
  Entity *e;
  gsize header_len;
  gsize body_start;
  g_autofree char *ct_value = NULL;
  Structured ct = { 0 };

  if (depth > SM_MIME_MAX_DEPTH)
    {
      g_set_error (ctx->error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message nests body parts deeper than %u levels"), (guint) SM_MIME_MAX_DEPTH);
      return NULL;
    }
  if (++ctx->msg->n_parts > SM_MIME_MAX_PARTS)
    {
      g_set_error (ctx->error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message has more than %u body parts"), (guint) SM_MIME_MAX_PARTS);
      return NULL;
    }

  e = g_new0 (Entity, 1);
  e->start = start;
  e->end = end;
  header_len = sm_mime_header_length (data + start, end - start, &body_start);
  if (header_len > SM_MIME_MAX_HEADER_SIZE)
    {
      g_set_error (ctx->error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("A header section is larger than %u bytes"), (guint) SM_MIME_MAX_HEADER_SIZE);
      entity_free (e);
      return NULL;
    }
  e->header_end = start + header_len;
  e->body_start = start + body_start;
  e->header_stop = e->body_start;
  if (delimiter_crlf && e->body_start == end && end - start >= 2)
    e->header_stop = end - 2;
  e->fields = sm_mime_fields_parse (data + start, body_start, &local_error);
  if (e->fields == NULL)
    {
      g_propagate_error (ctx->error, g_steal_pointer (&local_error));
      entity_free (e);
      return NULL;
    }

  ct_value = entity_field_raw (ctx->msg, e, "Content-Type");
  e->has_content_type = ct_value != NULL;
  if (ct_value != NULL && structured_parse (ct_value, TRUE, &ct))
    {
      e->type = g_steal_pointer (&ct.value);
      e->subtype = g_steal_pointer (&ct.subtype);
    }
  else if (digest_child)
    {
      /* RFC 2046 section 5.1.5: the default in a digest. */
      e->type = g_strdup ("message");
      e->subtype = g_strdup ("rfc822");
    }

  if (type_is (e, "multipart", NULL))
    {
      const char *boundary = structured_param (&ct, "boundary");

      e->multipart = TRUE;
      if (boundary != NULL && boundary[0] != '\0')
        {
          if (!parse_multipart (ctx, e, boundary, depth))
            {
              structured_clear (&ct);
              entity_free (e);
              return NULL;
            }
        }
      else
        e->children = g_ptr_array_new_with_free_func ((GDestroyNotify) entity_free);
    }
  else if (type_is (e, "message", "rfc822"))
    {
      /* Parsed as a message whatever its transfer encoding claims (a
       * base64 message/rfc822 is not allowed by RFC 2046 section 5.2.1),
       * as Dovecot does. */
      Entity *inner = parse_entity (ctx, e->body_start, e->end, depth + 1, FALSE, delimiter_crlf);

      if (inner == NULL)
        {
          structured_clear (&ct);
          entity_free (e);
          return NULL;
        }
      e->rfc822 = TRUE;
      e->children = g_ptr_array_new_with_free_func ((GDestroyNotify) entity_free);
      g_ptr_array_add (e->children, inner);
    }
  structured_clear (&ct);
  return e;
}

SmImapFetchMessage *
sm_imap_fetch_message_new (GBytes  *message,
                           GError **error)
{
  g_autoptr(SmImapFetchMessage) msg = g_new0 (SmImapFetchMessage, 1);
  ParseCtx ctx = { msg, error };

  g_return_val_if_fail (message != NULL, NULL);

  msg->bytes = g_bytes_ref (message);
  msg->data = g_bytes_get_data (message, &msg->len);
  if (msg->data == NULL)
    msg->data = "";
  if (msg->len > SM_IMAP_FETCH_MAX_MESSAGE_SIZE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message is larger than %u MB"),
                   (guint) (SM_IMAP_FETCH_MAX_MESSAGE_SIZE / (1024 * 1024)));
      return NULL;
    }
  msg->root = parse_entity (&ctx, 0, msg->len, 0, FALSE, FALSE);
  if (msg->root == NULL)
    return NULL;
  return g_steal_pointer (&msg);
}

gsize
sm_imap_fetch_message_size (const SmImapFetchMessage *msg)
{
  g_return_val_if_fail (msg != NULL, 0);
  return msg->len;
}

/* ==== output helpers ==================================================== */

static void
append_str (GByteArray *out, const char *s)
{
  g_byte_array_append (out, (const guint8 *) s, (guint) strlen (s));
}

static void
append_literal (GByteArray *out, const char *data, gsize len, gboolean binary)
{
  char head[40];

  g_snprintf (head, sizeof head, "%s{%" G_GSIZE_FORMAT "}\r\n", binary ? "~" : "", len);
  append_str (out, head);
  if (len > 0)
    g_byte_array_append (out, (const guint8 *) data, (guint) len);
}

/* nstring as Dovecot writes it: NIL, a quoted string, or a literal when
 * the value has CR, LF, 8-bit bytes or more than QUOTED_MAX_ESCAPES
 * characters to escape. */
static void
append_nstring_len (GByteArray *out, const char *s, gsize len)
{
  guint escapes = 0;

  if (s == NULL)
    {
      append_str (out, "NIL");
      return;
    }
  for (gsize i = 0; i < len; i++)
    {
      guchar ch = s[i];

      if (ch == '"' || ch == '\\')
        escapes++;
      if (ch == '\r' || ch == '\n' || ch == '\0' || ch >= 0x80 || escapes > QUOTED_MAX_ESCAPES)
        {
          append_literal (out, s, len, FALSE);
          return;
        }
    }
  g_byte_array_append (out, (const guint8 *) "\"", 1);
  for (gsize i = 0; i < len; i++)
    {
      if (s[i] == '"' || s[i] == '\\')
        g_byte_array_append (out, (const guint8 *) "\\", 1);
      g_byte_array_append (out, (const guint8 *) s + i, 1);
    }
  g_byte_array_append (out, (const guint8 *) "\"", 1);
}

static void
append_nstring (GByteArray *out, const char *s)
{
  append_nstring_len (out, s, s ? strlen (s) : 0);
}

/* A header value with its folding removed: a line end is dropped, and
 * replaced by a space only when the next line does not start with a blank
 * (Dovecot's envelope Date, In-Reply-To, Message-ID). */
static void
append_nstring_nolf (GByteArray *out, const char *s)
{
  g_autoptr(GString) flat = NULL;

  if (s == NULL || strpbrk (s, "\r\n") == NULL)
    {
      append_nstring (out, s);
      return;
    }
  flat = g_string_new (NULL);
  for (const char *p = s; *p != '\0'; p++)
    {
      if (*p != '\r' && *p != '\n')
        g_string_append_c (flat, *p);
      else if (p[1] != ' ' && p[1] != '\t' && p[1] != '\r' && p[1] != '\n' && p[1] != '\0')
        g_string_append_c (flat, ' ');
    }
  append_nstring (out, flat->str);
}

/* Text meant for people (Subject, display names): runs of blanks and line
 * ends become one space, blanks at both ends go, NUL becomes 0x80.  When
 * anything had to change, or the text has quoted-specials or 8-bit bytes,
 * it is sent as a literal, else as a quoted string (Dovecot's rule, so the
 * client sees the same bytes from us and from the provider). */
static void
append_for_humans (GByteArray *out, const char *s, gsize len)
{
  g_autoptr(GString) clean = g_string_new (NULL);
  gboolean modify = FALSE;
  gboolean last_blank = TRUE;

  for (gsize i = 0; i < len; i++)
    {
      guchar ch = s[i];

      if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
        {
          if (ch != ' ' || last_blank)
            modify = TRUE;
          if (!last_blank)
            g_string_append_c (clean, ' ');
          last_blank = TRUE;
          continue;
        }
      if (ch == 0 || ch == '"' || ch == '\\' || ch >= 0x80)
        modify = TRUE;
      g_string_append_c (clean, ch == 0 ? (char) 0x80 : (char) ch);
      last_blank = FALSE;
    }
  if (clean->len > 0 && clean->str[clean->len - 1] == ' ')
    {
      g_string_truncate (clean, clean->len - 1);
      modify = TRUE;
    }
  if (!modify)
    {
      g_byte_array_append (out, (const guint8 *) "\"", 1);
      g_byte_array_append (out, (const guint8 *) clean->str, (guint) clean->len);
      g_byte_array_append (out, (const guint8 *) "\"", 1);
    }
  else if (clean->len == 0)
    append_str (out, "\"\"");
  else
    append_literal (out, clean->str, clean->len, FALSE);
}

/* ==== ENVELOPE (RFC 9051 section 7.5.2) ==================================== */

typedef struct {
  char *name;     /* display name, unquoted; NULL when none */
  char *route;
  char *mailbox;
  char *host;
  gboolean group_start;  /* (NIL NIL mailbox NIL) */
  gboolean group_end;    /* (NIL NIL NIL NIL) */
} Address;

static void
address_free (Address *a)
{
  g_free (a->name);
  g_free (a->route);
  g_free (a->mailbox);
  g_free (a->host);
  g_free (a);
}

/* A phrase or local-part word: atom (with dots) or quoted string. */
static char *
parse_word (Cursor *c)
{
  const char *start;

  skip_cfws (c);
  if (cur_peek (c, '"'))
    return parse_header_quoted (c);
  start = c->p;
  while (c->p < c->end && (guchar) *c->p > 0x20 && strchr ("()<>@,;:\\\".[]", *c->p) == NULL)
    c->p++;
  return c->p > start ? g_strndup (start, c->p - start) : NULL;
}

/* Reads words separated by blanks and dots until a special: the display
 * name or a local part. */
static char *
parse_phrase (Cursor *c, gboolean *had_dot)
{
  GString *s = NULL;

  *had_dot = FALSE;
  for (;;)
    {
      char *w;

      skip_cfws (c);
      if (cur_peek (c, '.'))
        {
          c->p++;
          *had_dot = TRUE;
          if (s == NULL)
            s = g_string_new (NULL);
          g_string_append_c (s, '.');
          continue;
        }
      w = parse_word (c);
      if (w == NULL)
        break;
      if (s == NULL)
        s = g_string_new (NULL);
      else if (s->len > 0 && s->str[s->len - 1] != '.')
        g_string_append_c (s, ' ');
      g_string_append (s, w);
      g_free (w);
    }
  return s ? g_string_free (s, FALSE) : NULL;
}

/* A local part or domain: atoms and dots, no blanks between them. */
static char *
parse_dot_atoms (Cursor *c)
{
  GString *s = g_string_new (NULL);

  for (;;)
    {
      skip_cfws (c);
      if (cur_peek (c, '['))
        {
          const char *start = c->p;

          while (c->p < c->end && *c->p != ']')
            c->p++;
          cur_eat (c, ']');
          g_string_append_len (s, start, c->p - start);
        }
      else if (cur_peek (c, '"'))
        {
          g_autofree char *q = parse_header_quoted (c);

          g_string_append_c (s, '"');
          g_string_append (s, q);
          g_string_append_c (s, '"');
        }
      else
        {
          const char *start = c->p;

          while (c->p < c->end && (guchar) *c->p > 0x20 && strchr ("()<>@,;:\\\".[]", *c->p) == NULL)
            c->p++;
          if (c->p == start)
            break;
          g_string_append_len (s, start, c->p - start);
        }
      skip_cfws (c);
      if (!cur_peek (c, '.'))
        break;
      c->p++;
      g_string_append_c (s, '.');
    }
  if (s->len == 0)
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  return g_string_free (s, FALSE);
}

/* addr-spec or the inside of angle brackets (with an obsolete route). */
static void
parse_addr_spec (Cursor *c, Address *a, gboolean angle)
{
  skip_cfws (c);
  if (angle && cur_peek (c, '@'))
    {
      const char *start = c->p;

      while (c->p < c->end && *c->p != ':' && *c->p != '>')
        c->p++;
      a->route = g_strndup (start, c->p - start);
      cur_eat (c, ':');
    }
  a->mailbox = parse_dot_atoms (c);
  skip_cfws (c);
  if (cur_eat (c, '@'))
    a->host = parse_dot_atoms (c);
  if (angle)
    {
      while (c->p < c->end && *c->p != '>')
        c->p++;
      cur_eat (c, '>');
    }
}

/* One mailbox: [phrase] "<" addr-spec ">" or addr-spec; what is missing
 * is named MISSING_MAILBOX / MISSING_DOMAIN, as Dovecot does. */
static Address *
parse_mailbox (Cursor *c)
{
  Address *a = g_new0 (Address, 1);
  const char *start;
  gboolean had_dot;
  g_autofree char *phrase = NULL;

  skip_cfws (c);
  start = c->p;
  phrase = parse_phrase (c, &had_dot);
  skip_cfws (c);
  if (cur_eat (c, '<'))
    {
      a->name = g_steal_pointer (&phrase);
      parse_addr_spec (c, a, TRUE);
    }
  else
    {
      c->p = start;
      c->comment = NULL;
      parse_addr_spec (c, a, FALSE);
      skip_cfws (c);
      /* "addr@host (Name)": the comment names the mailbox. */
      if (c->comment != NULL)
        a->name = g_strndup (c->comment, c->comment_len);
    }
  if (a->mailbox == NULL)
    a->mailbox = g_strdup ("MISSING_MAILBOX");
  if (a->host == NULL)
    a->host = g_strdup ("MISSING_DOMAIN");
  return a;
}

/* Skips to the next "," @stop, or the end. */
static void
skip_to (Cursor *c, const char *stops)
{
  while (c->p < c->end && strchr (stops, *c->p) == NULL)
    {
      if (*c->p == '"')
        {
          g_free (parse_header_quoted (c));
          continue;
        }
      if (*c->p == '(')
        {
          skip_cfws (c);
          continue;
        }
      c->p++;
    }
}

static GPtrArray *
parse_address_list (const char *value)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) address_free);
  Cursor c = { .p = value, .end = value + strlen (value) };

  for (;;)
    {
      const char *start;
      gboolean had_dot;
      g_autofree char *phrase = NULL;

      skip_cfws (&c);
      if (cur_eof (&c))
        break;
      start = c.p;
      phrase = parse_phrase (&c, &had_dot);
      skip_cfws (&c);
      if (phrase != NULL && cur_eat (&c, ':'))
        {
          Address *g = g_new0 (Address, 1);

          g->group_start = TRUE;
          g->mailbox = g_steal_pointer (&phrase);
          g_ptr_array_add (list, g);
          for (;;)
            {
              skip_cfws (&c);
              if (cur_eof (&c) || cur_eat (&c, ';'))
                break;
              if (cur_eat (&c, ','))
                continue;
              g_ptr_array_add (list, parse_mailbox (&c));
              skip_to (&c, ",;");
            }
          g = g_new0 (Address, 1);
          g->group_end = TRUE;
          g_ptr_array_add (list, g);
        }
      else
        {
          c.p = start;
          g_ptr_array_add (list, parse_mailbox (&c));
        }
      skip_to (&c, ",");
      if (!cur_eat (&c, ','))
        break;
    }
  return list;
}

static void
append_address_list (GByteArray *out, const char *value)
{
  g_autoptr(GPtrArray) list = NULL;

  if (value == NULL)
    {
      append_str (out, "NIL");
      return;
    }
  list = parse_address_list (value);
  if (list->len == 0)
    {
      append_str (out, "NIL");
      return;
    }
  append_str (out, "(");
  for (guint i = 0; i < list->len; i++)
    {
      const Address *a = list->pdata[i];

      if (a->group_end)
        {
          append_str (out, "(NIL NIL NIL NIL)");
          continue;
        }
      append_str (out, "(");
      if (a->name != NULL)
        append_for_humans (out, a->name, strlen (a->name));
      else
        append_str (out, "NIL");
      append_str (out, " ");
      append_nstring (out, a->route);
      append_str (out, " ");
      append_nstring (out, a->mailbox);
      append_str (out, " ");
      append_nstring (out, a->group_start ? NULL : a->host);
      append_str (out, ")");
    }
  append_str (out, ")");
}

static void
append_envelope (GByteArray *out, const SmImapFetchMessage *msg, const Entity *e)
{
  g_autofree char *date = entity_field_raw (msg, e, "Date");
  g_autofree char *subject = entity_field_raw (msg, e, "Subject");
  g_autofree char *from = entity_field_raw (msg, e, "From");
  g_autofree char *sender = entity_field_raw (msg, e, "Sender");
  g_autofree char *reply_to = entity_field_raw (msg, e, "Reply-To");
  g_autofree char *to = entity_field_raw (msg, e, "To");
  g_autofree char *cc = entity_field_raw (msg, e, "Cc");
  g_autofree char *bcc = entity_field_raw (msg, e, "Bcc");
  g_autofree char *in_reply_to = entity_field_raw (msg, e, "In-Reply-To");
  g_autofree char *message_id = entity_field_raw (msg, e, "Message-ID");

  append_str (out, "(");
  append_nstring_nolf (out, date);
  append_str (out, " ");
  if (subject != NULL)
    append_for_humans (out, subject, strlen (subject));
  else
    append_str (out, "NIL");
  append_str (out, " ");
  append_address_list (out, from);
  append_str (out, " ");
  /* RFC 9051 section 7.5.2: Sender and Reply-To default to From. */
  append_address_list (out, sender ? sender : from);
  append_str (out, " ");
  append_address_list (out, reply_to ? reply_to : from);
  append_str (out, " ");
  append_address_list (out, to);
  append_str (out, " ");
  append_address_list (out, cc);
  append_str (out, " ");
  append_address_list (out, bcc);
  append_str (out, " ");
  append_nstring_nolf (out, in_reply_to);
  append_str (out, " ");
  append_nstring_nolf (out, message_id);
  append_str (out, ")");
}

/* ==== BODYSTRUCTURE / BODY (RFC 9051 section 7.5.2) ======================= */

static guint
count_lines (const char *data, gsize len)
{
  guint n = 0;
  const char *p = data;
  const char *end = data + len;

  while (p < end && (p = memchr (p, '\n', end - p)) != NULL)
    {
      n++;
      p++;
    }
  return n;
}

static void
append_params (GByteArray *out, const Structured *s, gboolean add_charset)
{
  gboolean any = s->params != NULL && s->params->len > 0;

  if (!any && !add_charset)
    {
      append_str (out, "NIL");
      return;
    }
  append_str (out, "(");
  for (guint i = 0; s->params != NULL && i + 1 < s->params->len; i += 2)
    {
      if (i > 0)
        append_str (out, " ");
      append_nstring (out, s->params->pdata[i]);
      append_str (out, " ");
      append_nstring (out, s->params->pdata[i + 1]);
    }
  if (add_charset)
    append_str (out, any ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
  append_str (out, ")");
}

/* body-fld-dsp, body-fld-lang, body-fld-loc. */
static void
append_disposition_etc (GByteArray *out, const SmImapFetchMessage *msg, const Entity *e)
{
  g_autofree char *disposition = entity_field_raw (msg, e, "Content-Disposition");
  g_autofree char *language = entity_field_raw (msg, e, "Content-Language");
  g_autofree char *location = entity_field_raw (msg, e, "Content-Location");
  Structured d = { 0 };

  if (disposition != NULL && structured_parse (disposition, FALSE, &d))
    {
      append_str (out, "(");
      append_nstring (out, d.value);
      append_str (out, " ");
      append_params (out, &d, FALSE);
      append_str (out, ")");
    }
  else
    append_str (out, "NIL");
  structured_clear (&d);

  append_str (out, " ");
  if (language != NULL)
    {
      /* RFC 3282: a comma-separated list of language tags. */
      Cursor c = { .p = language, .end = language + strlen (language) };
      gboolean first = TRUE;

      append_str (out, "(");
      for (;;)
        {
          g_autofree char *tag = NULL;
          const char *start;

          skip_cfws (&c);
          start = c.p;
          while (c.p < c.end && (g_ascii_isalnum (*c.p) || *c.p == '-'))
            c.p++;
          if (c.p > start)
            {
              tag = g_strndup (start, c.p - start);
              if (!first)
                append_str (out, " ");
              append_nstring (out, tag);
              first = FALSE;
            }
          skip_cfws (&c);
          if (!cur_eat (&c, ','))
            break;
        }
      if (first)
        {
          /* No tag at all: NIL rather than an empty list. */
          out->len -= 1;
          append_str (out, "NIL");
        }
      else
        append_str (out, ")");
    }
  else
    append_str (out, "NIL");

  append_str (out, " ");
  append_nstring_nolf (out, location);
}

static void
append_structure (GByteArray *out, const SmImapFetchMessage *msg, const Entity *e, gboolean extended)
{
  g_autofree char *ct_value = entity_field_raw (msg, e, "Content-Type");
  Structured ct = { 0 };
  gboolean have_ct = ct_value != NULL && structured_parse (ct_value, TRUE, &ct);

  if (e->multipart)
    {
      append_str (out, "(");
      if (e->children == NULL || e->children->len == 0)
        {
          /* Dovecot answers a multipart without parts with one empty
           * text/plain part. */
          append_str (out, extended
                      ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
                      : "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
        }
      for (guint i = 0; e->children != NULL && i < e->children->len; i++)
        append_structure (out, msg, e->children->pdata[i], extended);
      append_str (out, " ");
      append_nstring (out, e->subtype);
      if (extended)
        {
          append_str (out, " ");
          append_params (out, &ct, FALSE);
          append_str (out, " ");
          append_disposition_etc (out, msg, e);
        }
      append_str (out, ")");
      structured_clear (&ct);
      return;
    }

  {
    g_autofree char *id = entity_field_raw (msg, e, "Content-ID");
    g_autofree char *description = entity_field_raw (msg, e, "Content-Description");
    g_autofree char *cte = entity_field_raw (msg, e, "Content-Transfer-Encoding");
    gsize body_len = e->end - e->body_start;
    const char *type = e->type ? e->type : "text";
    const char *subtype = e->type ? e->subtype : "plain";
    gboolean text = g_ascii_strcasecmp (type, "text") == 0;
    char num[64];

    append_str (out, "(");
    append_nstring (out, type);
    append_str (out, " ");
    append_nstring (out, subtype);
    append_str (out, " ");
    if (have_ct && e->type != NULL)
      append_params (out, &ct, text && structured_param (&ct, "charset") == NULL);
    else if (e->type != NULL)
      append_str (out, "NIL");   /* message/rfc822 by digest default */
    else
      append_str (out, "(\"charset\" \"us-ascii\")");
    append_str (out, " ");
    append_nstring_nolf (out, id);
    append_str (out, " ");
    append_nstring_nolf (out, description);
    append_str (out, " ");
    append_nstring_nolf (out, cte ? cte : "7bit");
    g_snprintf (num, sizeof num, " %" G_GSIZE_FORMAT, body_len);
    append_str (out, num);
    if (e->rfc822)
      {
        const Entity *inner = e->children->pdata[0];

        append_str (out, " ");
        append_envelope (out, msg, inner);
        append_str (out, " ");
        append_structure (out, msg, inner, extended);
      }
    if (text || e->rfc822)
      {
        g_snprintf (num, sizeof num, " %u", count_lines (msg->data + e->body_start, body_len));
        append_str (out, num);
      }
    if (extended)
      {
        g_autofree char *md5 = entity_field_raw (msg, e, "Content-MD5");

        append_str (out, " ");
        append_nstring_nolf (out, md5);
        append_str (out, " ");
        append_disposition_etc (out, msg, e);
      }
    append_str (out, ")");
  }
  structured_clear (&ct);
}

/* ==== sections ================================================================ */

/* Follows the part numbers of @att (RFC 9051 section 6.4.5): the parts of
 * a multipart are numbered from 1; the parts of a message/rfc822 are those
 * of the message it holds; a non-multipart entity is its own part 1, once:
 * Dovecot answers "1.1" of a single-part message, or "2.1.1" of a leaf
 * part 2.1, with nothing. */
static const Entity *
entity_find (const SmImapFetchMessage *msg, const FetchAtt *att)
{
  const Entity *e = msg->root;
  gboolean self_step = FALSE;

  for (guint i = 0; i < att->n_path; i++)
    {
      guint32 n = att->path[i];
      const Entity *holder = e;

      if (i > 0 && e->rfc822)
        {
          holder = e->children->pdata[0];
          self_step = FALSE;
        }
      if (holder->multipart)
        {
          if (holder->children == NULL || n > holder->children->len)
            return NULL;
          e = holder->children->pdata[n - 1];
          self_step = FALSE;
        }
      else
        {
          if (n != 1 || (self_step && holder == e))
            return NULL;
          e = holder;
          self_step = TRUE;
        }
    }
  return e;
}

/* HEADER.FIELDS (.NOT): the matching fields of the header of @e, original
 * bytes in message order, then the empty line.  .NOT also keeps the lines
 * that are no field at all (no colon), as Dovecot does. */
static GBytes *
header_fields (const SmImapFetchMessage *msg, const Entity *e, const FetchAtt *att)
{
  const char *header = msg->data + e->start;
  gsize header_len = e->header_end - e->start;
  GByteArray *out = g_byte_array_new ();
  gboolean want = att->text == SECTION_HEADER_FIELDS;
  gsize pos = 0;

  for (guint i = 0; i < e->fields->len; i++)
    {
      const SmMimeField *f = &g_array_index (e->fields, SmMimeField, i);
      gboolean match = FALSE;

      if (!want && f->start > pos)
        g_byte_array_append (out, (const guint8 *) header + pos, (guint) (f->start - pos));
      pos = MAX (pos, f->start + f->len);
      for (guint j = 0; j < att->fields->len && !match; j++)
        match = sm_mime_field_is (header, f, att->fields->pdata[j]);
      if (match == want)
        {
          g_byte_array_append (out, (const guint8 *) header + f->start, (guint) f->len);
          /* A last field without a line end still gets one. */
          if (f->len == 0 || header[f->start + f->len - 1] != '\n')
            append_str (out, "\r\n");
        }
    }
  if (!want && header_len > pos)
    {
      g_byte_array_append (out, (const guint8 *) header + pos, (guint) (header_len - pos));
      if (header[header_len - 1] != '\n')
        append_str (out, "\r\n");
    }
  append_str (out, "\r\n");
  return g_byte_array_free_to_bytes (out);
}

/* The bytes BODY[section] stands for; an empty GBytes when the section
 * does not exist (Dovecot sends an empty literal). */
static GBytes *
section_content (const SmImapFetchMessage *msg, const FetchAtt *att)
{
  const Entity *e;

  if (att->n_path == 0 && att->text == SECTION_WHOLE)
    return g_bytes_new_from_bytes (msg->bytes, 0, msg->len);
  e = entity_find (msg, att);
  if (e == NULL)
    return g_bytes_new (NULL, 0);
  switch (att->text)
    {
    case SECTION_WHOLE:
      return g_bytes_new_from_bytes (msg->bytes, e->body_start, e->end - e->body_start);
    case SECTION_MIME:
      return g_bytes_new_from_bytes (msg->bytes, e->start, e->header_stop - e->start);
    case SECTION_HEADER:
    case SECTION_HEADER_FIELDS:
    case SECTION_HEADER_FIELDS_NOT:
    case SECTION_TEXT:
      /* These apply to a message: the top one, or a message/rfc822 part. */
      if (att->n_path > 0)
        {
          if (!e->rfc822)
            return g_bytes_new (NULL, 0);
          e = e->children->pdata[0];
        }
      if (att->text == SECTION_TEXT)
        return g_bytes_new_from_bytes (msg->bytes, e->body_start, e->end - e->body_start);
      if (att->text == SECTION_HEADER)
        return g_bytes_new_from_bytes (msg->bytes, e->start, e->header_stop - e->start);
      return header_fields (msg, e, att);
    default:
      g_assert_not_reached ();
    }
}

/* The transfer encoding of leaf @e: 0 for none to undo (7bit, 8bit,
 * binary, or no field), a MAILMIME_MECHANISM_* to decode, or -1 for one we
 * do not know. */
static int
leaf_encoding (const SmImapFetchMessage *msg, const Entity *e)
{
  g_autofree char *cte = entity_field_raw (msg, e, "Content-Transfer-Encoding");

  if (cte == NULL || g_ascii_strcasecmp (cte, "7bit") == 0 || g_ascii_strcasecmp (cte, "8bit") == 0
      || g_ascii_strcasecmp (cte, "binary") == 0)
    return 0;
  if (g_ascii_strcasecmp (cte, "base64") == 0)
    return MAILMIME_MECHANISM_BASE64;
  if (g_ascii_strcasecmp (cte, "quoted-printable") == 0)
    return MAILMIME_MECHANISM_QUOTED_PRINTABLE;
  return -1;
}

static void binary_convert_body (const SmImapFetchMessage *msg, const Entity *e, GByteArray *out,
                                 gboolean *converted);

/* @e whole (header and body) with every base64 or quoted-printable leaf
 * inside decoded, as Dovecot's BINARY of a multipart or of the whole
 * message gives it: the leaf's Content-Transfer-Encoding fields go, and
 * "Content-Transfer-Encoding: binary" ends its header.  Leaves with an
 * unknown encoding stay as they are. */
static void
binary_convert (const SmImapFetchMessage *msg, const Entity *e, GByteArray *out, gboolean *converted)
{
  const char *header = msg->data + e->start;
  int encoding;
  gsize fields_end = 0;
  g_autoptr(GBytes) body = NULL;

  if (e->multipart || e->rfc822)
    {
      g_byte_array_append (out, (const guint8 *) header, (guint) (e->body_start - e->start));
      binary_convert_body (msg, e, out, converted);
      return;
    }
  encoding = leaf_encoding (msg, e);
  if (encoding <= 0)
    {
      g_byte_array_append (out, (const guint8 *) header, (guint) (e->end - e->start));
      return;
    }
  *converted = TRUE;
  for (guint i = 0; i < e->fields->len; i++)
    {
      const SmMimeField *f = &g_array_index (e->fields, SmMimeField, i);

      fields_end = f->start + f->len;
      if (!sm_mime_field_is (header, f, "Content-Transfer-Encoding"))
        g_byte_array_append (out, (const guint8 *) header + f->start, (guint) f->len);
    }
  append_str (out, "Content-Transfer-Encoding: binary\r\n");
  /* The empty line that ends the header, as it was. */
  g_byte_array_append (out, (const guint8 *) header + fields_end, (guint) (e->body_start - e->start - fields_end));
  body = sm_mime_decode_body (msg->data + e->body_start, e->end - e->body_start, encoding);
  if (g_bytes_get_size (body) > 0)
    g_byte_array_append (out, g_bytes_get_data (body, NULL), (guint) g_bytes_get_size (body));
}

/* The body of multipart or message @e, its parts converted, the bytes
 * around them (preamble, delimiters, epilogue) as they are. */
static void
binary_convert_body (const SmImapFetchMessage *msg, const Entity *e, GByteArray *out, gboolean *converted)
{
  gsize pos = e->body_start;

  for (guint i = 0; e->children != NULL && i < e->children->len; i++)
    {
      const Entity *child = e->children->pdata[i];

      if (child->start > pos)
        g_byte_array_append (out, (const guint8 *) msg->data + pos, (guint) (child->start - pos));
      binary_convert (msg, child, out, converted);
      pos = MAX (pos, child->end);
    }
  if (e->end > pos)
    g_byte_array_append (out, (const guint8 *) msg->data + pos, (guint) (e->end - pos));
}

/* BINARY[part]: the content with its transfer encoding removed (RFC 3516).
 * Sets *decoded when a decoding was applied: Dovecot then sends a literal8
 * whatever the bytes. */
static GBytes *
binary_content (const SmImapFetchMessage *msg, const FetchAtt *att, gboolean *decoded, GError **error)
{
  const Entity *e;
  int encoding;

  *decoded = FALSE;
  if (att->n_path == 0)
    {
      GByteArray *out = g_byte_array_sized_new ((guint) msg->len);

      binary_convert (msg, msg->root, out, decoded);
      return g_byte_array_free_to_bytes (out);
    }
  e = entity_find (msg, att);
  if (e == NULL)
    return g_bytes_new (NULL, 0);
  if (e->multipart || e->rfc822)
    {
      GByteArray *out = g_byte_array_new ();

      binary_convert_body (msg, e, out, decoded);
      return g_byte_array_free_to_bytes (out);
    }
  encoding = leaf_encoding (msg, e);
  if (encoding == 0)
    return g_bytes_new_from_bytes (msg->bytes, e->body_start, e->end - e->body_start);
  if (encoding < 0)
    {
      /* RFC 3516 section 4.3. */
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("[UNKNOWN-CTE] The part has a content transfer encoding that cannot be decoded"));
      return NULL;
    }
  *decoded = TRUE;
  return sm_mime_decode_body (msg->data + e->body_start, e->end - e->body_start, encoding);
}

static void
append_partial (GByteArray *out, const FetchAtt *att, GBytes *content, gboolean binary)
{
  gsize len;
  const char *data = g_bytes_get_data (content, &len);
  char origin[32];

  if (data == NULL)
    data = "";   /* an empty GBytes may have no data pointer */

  append_str (out, att->name);
  if (att->partial)
    {
      gsize from = MIN ((gsize) att->offset, len);
      gsize n = MIN ((gsize) att->count, len - from);

      g_snprintf (origin, sizeof origin, "<%u>", att->offset);
      append_str (out, origin);
      data += from;
      len = n;
    }
  append_str (out, " ");
  append_literal (out, data, len, binary || (len > 0 && memchr (data, '\0', len) != NULL));
}

/* The first text/plain or text/html leaf, depth first through multiparts
 * (not into attached messages), or NULL. */
static const Entity *
preview_part (const Entity *e)
{
  if (e->multipart)
    {
      for (guint i = 0; e->children != NULL && i < e->children->len; i++)
        {
          const Entity *found = preview_part (e->children->pdata[i]);

          if (found != NULL)
            return found;
        }
      return NULL;
    }
  /* A part without Content-Type counts as text here even in a digest, as
   * Dovecot has it. */
  if (!e->has_content_type || type_is (e, "text", "plain") || type_is (e, "text", "html"))
    return e;
  return NULL;
}

/* Appends the visible text of @html: tags dropped, the few entities that
 * matter decoded. */
static void
html_to_text (const char *p, gsize len, GString *text)
{
  static const struct { const char *name; char ch; } entities[] = {
    { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&nbsp;", ' ' }, { "&#39;", '\'' },
  };

  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '<')
        {
          const char *close = memchr (p + i, '>', len - i);

          if (close == NULL)
            break;
          i = (gsize) (close - p);
          g_string_append_c (text, ' ');
          continue;
        }
      if (p[i] == '&')
        {
          gboolean done = FALSE;

          for (gsize k = 0; k < G_N_ELEMENTS (entities) && !done; k++)
            {
              gsize n = strlen (entities[k].name);

              if (len - i >= n && g_ascii_strncasecmp (p + i, entities[k].name, n) == 0)
                {
                  g_string_append_c (text, entities[k].ch);
                  i += n - 1;
                  done = TRUE;
                }
            }
          if (done)
            continue;
        }
      g_string_append_c (text, p[i]);
    }
}

/* PREVIEW (RFC 8970): the start of the first text part, decoded, quoted
 * lines ("> ...") left out and HTML reduced to its text, blanks collapsed,
 * at most SM_IMAP_FETCH_PREVIEW_CHARS characters; "" when there is no
 * text part. */
static void
append_preview (GByteArray *out, const SmImapFetchMessage *msg)
{
  const Entity *e = preview_part (msg->root);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GString) raw = g_string_new (NULL);
  g_autoptr(GString) text = g_string_new (NULL);
  const char *p;
  gsize len;
  guint chars = 0;
  gboolean last_blank = TRUE;
  int encoding;

  if (e == NULL)
    {
      append_str (out, "\"\"");
      return;
    }
  encoding = leaf_encoding (msg, e);
  /* Only the start of the part can reach the preview. */
  body = sm_mime_decode_body (msg->data + e->body_start,
                              MIN (e->end - e->body_start, SM_IMAP_FETCH_PREVIEW_MAX_INPUT),
                              encoding > 0 ? encoding : MAILMIME_MECHANISM_8BIT);
  p = g_bytes_get_data (body, &len);
  if (e->has_content_type)
    {
      /* The preview is UTF-8 (RFC 8970 section 3): convert from the part's
       * charset; what does not convert is repaired below. */
      g_autofree char *ct_value = entity_field_raw (msg, e, "Content-Type");
      Structured ct = { 0 };
      const char *charset;

      if (structured_parse (ct_value, TRUE, &ct) && (charset = structured_param (&ct, "charset")) != NULL
          && g_ascii_strcasecmp (charset, "utf-8") != 0 && g_ascii_strcasecmp (charset, "us-ascii") != 0)
        {
          gsize written = 0;
          g_autofree char *utf8 = NULL;

          /* The cut above may have split a character: drop its bytes. */
          for (gsize cut = 0; utf8 == NULL && cut < 4 && cut < len; cut++)
            utf8 = g_convert (p, (gssize) (len - cut), "UTF-8", charset, NULL, &written, NULL);

          if (utf8 != NULL)
            {
              g_bytes_unref (body);
              body = g_bytes_new_take (g_steal_pointer (&utf8), written);
              p = g_bytes_get_data (body, &len);
            }
        }
      structured_clear (&ct);
    }
  if (e->has_content_type && type_is (e, "text", "html"))
    html_to_text (p, len, raw);
  else
    {
      for (gsize i = 0; i < len;)
        {
          const char *nl = memchr (p + i, '\n', len - i);
          gsize next = nl ? (gsize) (nl - p) + 1 : len;

          if (p[i] != '>')
            {
              g_string_append_len (raw, p + i, next - i);
              g_string_append_c (raw, ' ');
            }
          i = next;
        }
    }
  for (gsize i = 0; i < raw->len && chars < SM_IMAP_FETCH_PREVIEW_CHARS; i++)
    {
      guchar ch = raw->str[i];

      if (g_ascii_isspace (ch) || ch < 0x20)
        {
          if (!last_blank)
            g_string_append_c (text, ' ');
          last_blank = TRUE;
          continue;
        }
      last_blank = FALSE;
      g_string_append_c (text, ch);
      if ((ch & 0xc0) != 0x80)
        chars++;
    }
  while (text->len > 0 && text->str[text->len - 1] == ' ')
    g_string_truncate (text, text->len - 1);
  if (!g_utf8_validate (text->str, text->len, NULL))
    {
      g_autofree char *valid = g_utf8_make_valid (text->str, text->len);

      g_string_assign (text, valid);
    }
  append_nstring_len (out, text->str, text->len);
}

gboolean
sm_imap_fetch_render (const SmImapFetchRequest *req,
                      const SmImapFetchMessage *msg,
                      GByteArray               *out,
                      GError                  **error)
{
  guint initial_len;
  gboolean first = TRUE;

  g_return_val_if_fail (req != NULL, FALSE);
  g_return_val_if_fail (msg != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  initial_len = out->len;
  for (guint i = 0; i < req->atts->len; i++)
    {
      const FetchAtt *att = req->atts->pdata[i];
      char num[64];

      if (att->kind == ITEM_META)
        continue;
      if (!first)
        append_str (out, " ");
      first = FALSE;
      switch (att->kind)
        {
        case ITEM_BODY_SECTION:
          {
            g_autoptr(GBytes) content = section_content (msg, att);

            append_partial (out, att, content, FALSE);
          }
          break;
        case ITEM_BINARY:
        case ITEM_BINARY_SIZE:
          {
            gboolean decoded;
            g_autoptr(GBytes) content = binary_content (msg, att, &decoded, error);

            if (content == NULL)
              {
                g_byte_array_set_size (out, initial_len);
                return FALSE;
              }
            if (att->kind == ITEM_BINARY)
              append_partial (out, att, content, decoded);
            else
              {
                g_snprintf (num, sizeof num, "%s %" G_GSIZE_FORMAT, att->name, g_bytes_get_size (content));
                append_str (out, num);
              }
          }
          break;
        case ITEM_RFC822:
          append_str (out, "RFC822 ");
          append_literal (out, msg->data, msg->len, FALSE);
          break;
        case ITEM_RFC822_HEADER:
          append_str (out, "RFC822.HEADER ");
          append_literal (out, msg->data, msg->root->body_start, FALSE);
          break;
        case ITEM_RFC822_TEXT:
          append_str (out, "RFC822.TEXT ");
          append_literal (out, msg->data + msg->root->body_start, msg->len - msg->root->body_start, FALSE);
          break;
        case ITEM_RFC822_SIZE:
          g_snprintf (num, sizeof num, "RFC822.SIZE %" G_GSIZE_FORMAT, msg->len);
          append_str (out, num);
          break;
        case ITEM_BODY:
          append_str (out, "BODY ");
          append_structure (out, msg, msg->root, FALSE);
          break;
        case ITEM_BODYSTRUCTURE:
          append_str (out, "BODYSTRUCTURE ");
          append_structure (out, msg, msg->root, TRUE);
          break;
        case ITEM_ENVELOPE:
          append_str (out, "ENVELOPE ");
          append_envelope (out, msg, msg->root);
          break;
        case ITEM_PREVIEW:
          append_str (out, "PREVIEW ");
          append_preview (out, msg);
          break;
        case ITEM_META:
        default:
          g_assert_not_reached ();
        }
    }
  return TRUE;
}

/* ==== responses ================================================================= */

void
sm_imap_fetch_item_free (SmImapFetchItem *item)
{
  if (item == NULL)
    return;
  g_free (item->name);
  g_clear_pointer (&item->value, g_bytes_unref);
  g_free (item);
}

/* A literal announcement {N} or ~{N} then CRLF at the cursor; on success
 * the cursor is past the literal's bytes, and *data / *len give them. */
static gboolean
parse_literal (Cursor *c, const char **data, gsize *len)
{
  guint64 n = 0;
  const char *start;

  cur_eat (c, '~');
  if (!cur_eat (c, '{'))
    return FALSE;
  start = c->p;
  while (c->p < c->end && g_ascii_isdigit (*c->p))
    {
      n = n * 10 + (guint64) (*c->p - '0');
      if (n > SM_IMAP_FETCH_MAX_MESSAGE_SIZE)
        return FALSE;
      c->p++;
    }
  if (c->p == start || !cur_eat (c, '}'))
    return FALSE;
  cur_eat (c, '\r');
  if (!cur_eat (c, '\n') || (guint64) (c->end - c->p) < n)
    return FALSE;
  *data = c->p;
  *len = (gsize) n;
  c->p += n;
  return TRUE;
}

/* A parenthesised list at the cursor, nested lists, quoted strings and
 * literals inside skipped whole. */
static gboolean
skip_list (Cursor *c, GError **error)
{
  int depth = 0;

  while (c->p < c->end)
    {
      char ch = *c->p;

      if (ch == '(')
        {
          if (++depth > SM_IMAP_FETCH_MAX_RESPONSE_NESTING)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                           _("A FETCH response nests more than %u lists"),
                           (guint) SM_IMAP_FETCH_MAX_RESPONSE_NESTING);
              return FALSE;
            }
          c->p++;
        }
      else if (ch == ')')
        {
          c->p++;
          if (--depth == 0)
            return TRUE;
        }
      else if (ch == '"')
        {
          g_autofree char *q = parse_quoted (c);

          if (q == NULL)
            break;
        }
      else if (ch == '{' || (ch == '~' && c->p + 1 < c->end && c->p[1] == '{'))
        {
          const char *data;
          gsize len;

          if (!parse_literal (c, &data, &len))
            break;
        }
      else if (ch == '\r' || ch == '\n')
        break;
      else
        c->p++;
    }
  set_bad (error, _("A list in a FETCH response is malformed"));
  return FALSE;
}

/* The item name: an atom with an optional [section] (which may hold a
 * quoted header name or blanks) and <origin>. */
static char *
parse_item_name (Cursor *c)
{
  const char *start = c->p;

  while (c->p < c->end && is_att_char (*c->p))
    c->p++;
  if (c->p == start)
    return NULL;
  if (cur_eat (c, '['))
    {
      while (c->p < c->end && *c->p != ']')
        {
          if (*c->p == '"')
            {
              g_autofree char *q = parse_quoted (c);

              if (q == NULL)
                return NULL;
              continue;
            }
          if (*c->p == '\r' || *c->p == '\n')
            return NULL;
          c->p++;
        }
      if (!cur_eat (c, ']'))
        return NULL;
      if (cur_eat (c, '<'))
        {
          guint32 n;

          if (!parse_number (c, &n) || !cur_eat (c, '>'))
            return NULL;
        }
    }
  return g_ascii_strup (start, c->p - start);
}

gboolean
sm_imap_fetch_response_parse (const guint8 *data,
                              gsize         len,
                              guint32      *seq,
                              GPtrArray   **items,
                              GError      **error)
{
  Cursor c = { .p = (const char *) data, .end = (const char *) data + len };
  g_autoptr(GPtrArray) list = NULL;
  guint32 n;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (items != NULL, FALSE);

  *items = NULL;
  if (!cur_eat_word (&c, "* ") || !parse_number (&c, &n) || n == 0 || !cur_eat_word (&c, " FETCH (")
      || c.end - c.p < 1)
    {
      set_bad (error, _("Not a FETCH response"));
      return FALSE;
    }
  list = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_imap_fetch_item_free);
  if (!cur_eat (&c, ')'))
    for (;;)
      {
        SmImapFetchItem *item;
        char *name = parse_item_name (&c);

        if (name == NULL || !cur_eat (&c, ' '))
          {
            g_free (name);
            set_bad (error, _("A FETCH response item is malformed"));
            return FALSE;
          }
        if (list->len >= SM_IMAP_FETCH_MAX_RESPONSE_ITEMS)
          {
            g_free (name);
            g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                         _("A FETCH response has more than %u items"), (guint) SM_IMAP_FETCH_MAX_RESPONSE_ITEMS);
            return FALSE;
          }
        item = g_new0 (SmImapFetchItem, 1);
        item->name = name;
        g_ptr_array_add (list, item);

        if (cur_peek (&c, '"'))
          {
            char *q = parse_quoted (&c);

            if (q == NULL)
              {
                set_bad (error, _("A quoted string in a FETCH response is malformed"));
                return FALSE;
              }
            item->value = g_bytes_new_take (q, strlen (q));
          }
        else if (cur_peek (&c, '{') || cur_peek (&c, '~'))
          {
            const char *lit;
            gsize lit_len;

            if (!parse_literal (&c, &lit, &lit_len))
              {
                set_bad (error, _("A literal in a FETCH response is malformed"));
                return FALSE;
              }
            item->value = g_bytes_new (lit, lit_len);
          }
        else if (cur_peek (&c, '('))
          {
            const char *start = c.p;

            if (!skip_list (&c, error))
              return FALSE;
            item->value = g_bytes_new (start, c.p - start);
          }
        else
          {
            const char *start = c.p;

            while (c.p < c.end && is_astring_char (*c.p) && *c.p != ')')
              c.p++;
            if (c.p == start)
              {
                set_bad (error, _("A FETCH response item has no value"));
                return FALSE;
              }
            if (c.p - start == 3 && g_ascii_strncasecmp (start, "NIL", 3) == 0)
              {
                item->is_nil = TRUE;
                item->value = g_bytes_new (NULL, 0);
              }
            else
              item->value = g_bytes_new (start, c.p - start);
          }
        if (cur_eat (&c, ')'))
          break;
        if (!cur_eat (&c, ' '))
          {
            set_bad (error, _("FETCH response items are not separated by a space"));
            return FALSE;
          }
      }
  cur_eat (&c, '\r');
  if (!cur_eat (&c, '\n') || !cur_eof (&c))
    {
      set_bad (error, _("A FETCH response does not end after its list"));
      return FALSE;
    }
  if (seq != NULL)
    *seq = n;
  *items = g_steal_pointer (&list);
  return TRUE;
}
