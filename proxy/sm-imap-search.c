/* sm-imap-search.c: SEARCH criteria parsed, matched on views, rewritten. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-imap-search.h"
#include "sm-mime.h"

typedef enum {
  KEY_BODY,
  KEY_TEXT,
  KEY_HEADER,
} KeyKind;

/* One key answered from the views. */
typedef struct {
  KeyKind kind;
  char *field;            /* KEY_HEADER: the field name, lower-case */
  char *needle;           /* the search string, UTF-8, folded (fold()) */
  gsize start, end;       /* the key and its arguments in search->line */
} TextKey;

struct _SmImapSearch {
  char *tag;
  GByteArray *line;       /* the command, literals made non-synchronizing */
  GPtrArray *keys;        /* TextKey */
  gboolean rewritable;
  gboolean has_literals;
};

static void
text_key_free (TextKey *key)
{
  g_free (key->field);
  g_free (key->needle);
  g_free (key);
}

void
sm_imap_search_free (SmImapSearch *search)
{
  if (search == NULL)
    return;
  g_free (search->tag);
  g_byte_array_unref (search->line);
  g_ptr_array_unref (search->keys);
  g_free (search);
}

const char *
sm_imap_search_tag (const SmImapSearch *search)
{
  return search->tag;
}

guint
sm_imap_search_n_text_keys (const SmImapSearch *search)
{
  return search->keys->len;
}

gboolean
sm_imap_search_is_rewritable (const SmImapSearch *search)
{
  return search->rewritable;
}

gboolean
sm_imap_search_has_literals (const SmImapSearch *search)
{
  return search->has_literals;
}

/* Case-insensitive comparison form of UTF-8 text (RFC 9051 §6.4.4 leaves
 * the folding to the server): Unicode case folding, then NFKC so that
 * composed and decomposed accents, and ligatures, compare equal.
 *
 * Both are slow on long text (about 5 ms for 28 KB, measured), and most
 * text is ASCII, where they amount to lower-casing.  No composition ever
 * joins a character to an ASCII one that follows it, and case folding works
 * character by character, so the text is cut before each ASCII character:
 * ASCII is lower-cased, and only a non-ASCII run together with the ASCII
 * character before it (a base letter an accent may compose with) goes
 * through the full Unicode functions. */
static char *
fold (const char *text, gssize len)
{
  g_autofree char *valid = g_utf8_make_valid (text != NULL ? text : "", text != NULL ? len : 0);
  GString *out = g_string_sized_new (strlen (valid));
  const char *p = valid;

  for (;;)
    {
      const char *q = p, *base, *end;
      gsize done = out->len;

      while (*q != '\0' && (guchar) *q < 0x80)
        q++;
      /* ASCII up to q; its last character may start the next segment. */
      base = *q != '\0' && q > p ? q - 1 : q;
      g_string_append_len (out, p, base - p);
      for (gsize i = done; i < out->len; i++)
        if (out->str[i] >= 'A' && out->str[i] <= 'Z')
          out->str[i] += 'a' - 'A';
      if (*q == '\0')
        break;
      end = q;
      while ((guchar) *end >= 0x80)
        end++;
      {
        g_autofree char *folded = g_utf8_casefold (base, end - base);
        g_autofree char *normal = g_utf8_normalize (folded, -1, G_NORMALIZE_ALL_COMPOSE);

        g_string_append (out, normal != NULL ? normal : folded);
      }
      p = end;
    }
  return g_string_free (out, FALSE);
}

/* ---- parsing ------------------------------------------------------------- */

typedef enum {
  TOK_END,
  TOK_LPAREN,
  TOK_RPAREN,
  TOK_ATOM,
  TOK_STRING,         /* quoted string or literal */
} TokKind;

typedef struct {
  TokKind kind;
  GByteArray *value;  /* ATOM and STRING: the decoded bytes */
  gsize start;        /* in the normalized line */
  gsize end;
} Token;

typedef struct {
  const guint8 *in;
  gsize len;
  gsize pos;
  GByteArray *out;    /* in[0..pos), literals made non-synchronizing */
  SmImapSearch *search;
  char *charset;      /* CHARSET given, or NULL */
  guint n_keys;
  gboolean stop;      /* an unknown key: its arity is unknown, stop here */
} Parser;

static void
token_clear (Token *tok)
{
  g_clear_pointer (&tok->value, g_byte_array_unref);
  tok->kind = TOK_END;
}

/* Token values are NUL-terminated (not counted in len), so that an empty
 * one has data too and string functions can take it. */
static void
terminate_value (Token *tok)
{
  static const guint8 nul = 0;

  g_byte_array_append (tok->value, &nul, 1);
  g_byte_array_set_size (tok->value, tok->value->len - 1);
}

static void
copy_input (Parser *p, gsize n)
{
  g_byte_array_append (p->out, p->in + p->pos, (guint) n);
  p->pos += n;
}

static gboolean
at_line_end (Parser *p)
{
  return p->pos >= p->len || p->in[p->pos] == '\r' || p->in[p->pos] == '\n';
}

static gboolean
fail (GError **error, const char *message)
{
  g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL, message);
  return FALSE;
}

/* A literal "{N}", "{N+}" at p->pos, then its line end and N bytes. */
static gboolean
read_literal (Parser *p, Token *tok, GError **error)
{
  gsize i = p->pos + 1;
  guint64 n = 0;
  char header[40];

  if (i >= p->len || !g_ascii_isdigit (p->in[i]))
    return fail (error, _("Malformed literal in the search criteria"));
  for (; i < p->len && g_ascii_isdigit (p->in[i]); i++)
    {
      n = n * 10 + (guint64) (p->in[i] - '0');
      if (n > SM_IMAP_SEARCH_MAX_COMMAND)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("Search command longer than %d bytes"),
                       SM_IMAP_SEARCH_MAX_COMMAND);
          return FALSE;
        }
    }
  if (i < p->len && p->in[i] == '+')
    i++;
  if (i >= p->len || p->in[i] != '}')
    return fail (error, _("Malformed literal in the search criteria"));
  i++;
  if (i < p->len && p->in[i] == '\r')
    i++;
  if (i >= p->len || p->in[i] != '\n')
    return fail (error, _("A literal must end its line"));
  i++;
  if (p->len - i < n)
    return fail (error, _("A literal in the search criteria is shorter than announced"));
  tok->kind = TOK_STRING;
  tok->start = p->out->len;
  /* Normalized: the proxy holds the bytes already, so the provider must
   * not ask for them (RFC 7888 LITERAL+). */
  g_snprintf (header, sizeof header, "{%" G_GUINT64_FORMAT "+}\r\n", n);
  g_byte_array_append (p->out, (const guint8 *) header, (guint) strlen (header));
  p->pos = i;
  tok->value = g_byte_array_new ();
  g_byte_array_append (tok->value, p->in + p->pos, (guint) n);
  copy_input (p, n);
  terminate_value (tok);
  tok->end = p->out->len;
  p->search->has_literals = TRUE;
  return TRUE;
}

static gboolean
read_quoted (Parser *p, Token *tok, GError **error)
{
  gsize i = p->pos + 1;

  tok->kind = TOK_STRING;
  tok->value = g_byte_array_new ();
  for (; i < p->len; i++)
    {
      guint8 c = p->in[i];

      if (c == '"')
        break;
      if (c == '\r' || c == '\n' || c == '\0')
        return fail (error, _("Unterminated quoted string in the search criteria"));
      if (c == '\\')
        {
          /* RFC 9051 quoted-specials: only \" and \\ are escapes. */
          if (i + 1 >= p->len || (p->in[i + 1] != '"' && p->in[i + 1] != '\\'))
            return fail (error, _("Bad escape in a quoted string of the search criteria"));
          c = p->in[++i];
        }
      g_byte_array_append (tok->value, &c, 1);
    }
  if (i >= p->len)
    return fail (error, _("Unterminated quoted string in the search criteria"));
  terminate_value (tok);
  tok->start = p->out->len;
  copy_input (p, i + 1 - p->pos);
  tok->end = p->out->len;
  return TRUE;
}

/* A string ends where a space, a ")" or the line end follows (RFC 9051
 * §9: search keys are separated by SP); "\"x\"UID" is not two tokens. */
static gboolean
check_string_end (Parser *p, GError **error)
{
  if (p->pos < p->len && strchr (" )\r\n", p->in[p->pos]) == NULL)
    return fail (error, _("A space must follow a string in the search criteria"));
  return TRUE;
}

/* The next token; spaces before it are copied. */
static gboolean
next_token (Parser *p, Token *tok, GError **error)
{
  gsize start;

  token_clear (tok);
  while (p->pos < p->len && p->in[p->pos] == ' ')
    copy_input (p, 1);
  tok->start = tok->end = p->out->len;
  if (at_line_end (p))
    return TRUE;
  switch (p->in[p->pos])
    {
    case '(':
      tok->kind = TOK_LPAREN;
      copy_input (p, 1);
      tok->end = p->out->len;
      return TRUE;
    case ')':
      tok->kind = TOK_RPAREN;
      copy_input (p, 1);
      tok->end = p->out->len;
      return TRUE;
    case '"':
      return read_quoted (p, tok, error) && check_string_end (p, error);
    case '{':
      return read_literal (p, tok, error) && check_string_end (p, error);
    case '~':
      if (p->pos + 1 < p->len && p->in[p->pos + 1] == '{')
        return fail (error, _("Binary literals are not allowed in SEARCH"));
      break;
    case '\0':
      return fail (error, _("NUL character in the search criteria"));
    default:
      break;
    }
  start = p->pos;
  while (p->pos < p->len && !at_line_end (p) && p->in[p->pos] != ' ' && p->in[p->pos] != '(' &&
         p->in[p->pos] != ')' && p->in[p->pos] != '\0')
    copy_input (p, 1);
  if (p->pos < p->len && p->in[p->pos] == '\0')
    return fail (error, _("NUL character in the search criteria"));
  tok->kind = TOK_ATOM;
  tok->value = g_byte_array_new ();
  g_byte_array_append (tok->value, p->in + start, (guint) (p->pos - start));
  terminate_value (tok);
  tok->end = p->out->len;
  return TRUE;
}

static gboolean
atom_is (const Token *tok, const char *word)
{
  return tok->kind == TOK_ATOM && tok->value->len == strlen (word) &&
         g_ascii_strncasecmp ((const char *) tok->value->data, word, tok->value->len) == 0;
}

/* An astring argument (atom, quoted string or literal). */
static gboolean
next_astring (Parser *p, Token *tok, GError **error)
{
  if (!next_token (p, tok, error))
    return FALSE;
  if (tok->kind != TOK_ATOM && tok->kind != TOK_STRING)
    return fail (error, _("A search key is missing its argument"));
  return TRUE;
}

/* The search string @value as folded UTF-8, from the command's CHARSET
 * (RFC 9051 §6.4.4; without one, UTF-8, of which US-ASCII is a part). */
static char *
needle_of (Parser *p, const GByteArray *value, GError **error)
{
  g_autofree char *utf8 = NULL;

  if (p->charset != NULL && g_ascii_strcasecmp (p->charset, "UTF-8") != 0 &&
      g_ascii_strcasecmp (p->charset, "US-ASCII") != 0)
    {
      gsize written = 0;

      utf8 = g_convert ((const char *) value->data, value->len, "UTF-8", p->charset, NULL, &written, NULL);
      if (utf8 == NULL)
        {
          fail (error, _("A search string is not valid in the CHARSET given"));
          return NULL;
        }
      return fold (utf8, (gssize) written);
    }
  return fold ((const char *) value->data, value->len);
}

static const char * const no_arg_keys[] = {
  "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
  "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
  "SAVEDATESUPPORTED",                          /* RFC 8514 */
  NULL
};

static const char * const one_arg_keys[] = {
  "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "KEYWORD", "UNKEYWORD",
  "LARGER", "SMALLER", "UID",
  "OLDER", "YOUNGER",                           /* RFC 5032 WITHIN */
  "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE",       /* RFC 8514 */
  "EMAILID", "THREADID",                        /* RFC 8474 */
  "FILTER",                                     /* RFC 5466 */
  NULL
};

/* The header field each address or subject key reads (RFC 9051 §6.4.4). */
static const struct {
  const char *key;
  const char *field;
} header_keys[] = {
  { "SUBJECT", "subject" }, { "FROM", "from" }, { "TO", "to" }, { "CC", "cc" }, { "BCC", "bcc" },
};

static gboolean
in_list (const char * const *list, const Token *tok)
{
  for (guint i = 0; list[i] != NULL; i++)
    if (atom_is (tok, list[i]))
      return TRUE;
  return FALSE;
}

/* A sequence set used as a key: "1:4,7", "*", "$" (RFC 5182). */
static gboolean
is_sequence_set (const Token *tok)
{
  if (tok->kind != TOK_ATOM || tok->value->len == 0)
    return FALSE;
  for (guint i = 0; i < tok->value->len; i++)
    if (!g_ascii_isdigit (tok->value->data[i]) && strchr (":,*$", tok->value->data[i]) == NULL)
      return FALSE;
  return TRUE;
}

static gboolean
add_text_key (Parser *p, KeyKind kind, const char *field, gsize start, const Token *arg, GError **error)
{
  TextKey *key;
  char *needle;

  if (p->search->keys->len >= SM_IMAP_SEARCH_MAX_TEXT_KEYS)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("More than %d text search keys in one command"),
                   SM_IMAP_SEARCH_MAX_TEXT_KEYS);
      return FALSE;
    }
  needle = needle_of (p, arg->value, error);
  if (needle == NULL)
    return FALSE;
  key = g_new0 (TextKey, 1);
  key->kind = kind;
  key->field = g_strdup (field);
  key->needle = needle;
  key->start = start;
  key->end = arg->end;
  g_ptr_array_add (p->search->keys, key);
  return TRUE;
}

static gboolean parse_key (Parser *p, Token *tok, guint depth, GError **error);

/* The next token, which must start a search key, parsed as one. */
static gboolean
parse_next_key (Parser *p, guint depth, GError **error)
{
  Token tok = { 0 };
  gboolean ok = next_token (p, &tok, error) && parse_key (p, &tok, depth, error);

  token_clear (&tok);
  return ok;
}

/* One search-key (RFC 9051 §9 "search-key") that starts with @tok. */
static gboolean
parse_key (Parser *p, Token *tok, guint depth, GError **error)
{
  Token arg = { 0 };
  gboolean ok = TRUE;
  gsize start = tok->start;

  if (p->stop)
    return TRUE;
  if (depth > SM_IMAP_SEARCH_MAX_DEPTH || ++p->n_keys > SM_IMAP_SEARCH_MAX_KEYS)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("Search criteria too complex (more than %d keys "
                                                         "or %d levels)"),
                   SM_IMAP_SEARCH_MAX_KEYS, SM_IMAP_SEARCH_MAX_DEPTH);
      return FALSE;
    }
  switch (tok->kind)
    {
    case TOK_END:
      return fail (error, _("A search key is missing"));
    case TOK_RPAREN:
      return fail (error, _("Unbalanced parentheses in the search criteria"));
    case TOK_STRING:
      return fail (error, _("A string where a search key was expected"));
    case TOK_LPAREN:
      {
        guint inside = 0;

        for (;;)
          {
            if (!next_token (p, &arg, error))
              return token_clear (&arg), FALSE;
            if (arg.kind == TOK_RPAREN)
              break;
            if (arg.kind == TOK_END)
              {
                token_clear (&arg);
                return fail (error, _("Unbalanced parentheses in the search criteria"));
              }
            if (!parse_key (p, &arg, depth + 1, error))
              return token_clear (&arg), FALSE;
            if (p->stop)
              return token_clear (&arg), TRUE;
            inside++;
          }
        token_clear (&arg);
        if (inside == 0)
          return fail (error, _("Empty parentheses in the search criteria"));
        return TRUE;
      }
    case TOK_ATOM:
      break;
    }

  if (atom_is (tok, "NOT") || atom_is (tok, "FUZZY"))
    {
      /* FUZZY (RFC 6203) lets the provider relax the key inside it, which
       * the rewritten form cannot express. */
      if (atom_is (tok, "FUZZY"))
        p->search->rewritable = FALSE;
      return parse_next_key (p, depth + 1, error);
    }
  if (atom_is (tok, "OR"))
    return parse_next_key (p, depth + 1, error) && parse_next_key (p, depth + 1, error);
  if (in_list (no_arg_keys, tok) || is_sequence_set (tok))
    return TRUE;
  if (in_list (one_arg_keys, tok))
    {
      ok = next_astring (p, &arg, error);
      token_clear (&arg);
      return ok;
    }
  if (atom_is (tok, "BODY") || atom_is (tok, "TEXT"))
    {
      ok = next_astring (p, &arg, error) &&
           add_text_key (p, atom_is (tok, "BODY") ? KEY_BODY : KEY_TEXT, NULL, start, &arg, error);
      token_clear (&arg);
      return ok;
    }
  for (guint i = 0; i < G_N_ELEMENTS (header_keys); i++)
    if (atom_is (tok, header_keys[i].key))
      {
        ok = next_astring (p, &arg, error) && add_text_key (p, KEY_HEADER, header_keys[i].field, start, &arg, error);
        token_clear (&arg);
        return ok;
      }
  if (atom_is (tok, "HEADER"))
    {
      g_autofree char *field = NULL;

      if (!next_astring (p, &arg, error))
        return token_clear (&arg), FALSE;
      field = g_ascii_strdown ((const char *) arg.value->data, arg.value->len);
      if (strlen (field) != arg.value->len || field[0] == '\0')
        {
          token_clear (&arg);
          return fail (error, _("Bad header field name in the search criteria"));
        }
      ok = next_astring (p, &arg, error) && add_text_key (p, KEY_HEADER, field, start, &arg, error);
      token_clear (&arg);
      return ok;
    }
  if (atom_is (tok, "MODSEQ"))
    {
      /* RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer;
       * an entry name is always a quoted string. */
      if (!next_astring (p, &arg, error))
        return token_clear (&arg), FALSE;
      if (arg.kind == TOK_STRING)
        ok = next_astring (p, &arg, error) && next_astring (p, &arg, error);
      token_clear (&arg);
      return ok;
    }
  if (atom_is (tok, "ANNOTATION"))
    {
      /* RFC 5257: ANNOTATION entry attrib value. */
      ok = next_astring (p, &arg, error) && next_astring (p, &arg, error) && next_astring (p, &arg, error);
      token_clear (&arg);
      return ok;
    }
  /* An extension the proxy does not know: how many arguments follow is
   * unknown, so the rest cannot be read. */
  p->search->rewritable = FALSE;
  p->stop = TRUE;
  return TRUE;
}

/* tag ["UID" SP] "SEARCH" [SP "RETURN" SP "(" ... ")"] [SP "CHARSET" SP astring] 1*(SP search-key) */
static gboolean
parse_command (Parser *p, GError **error)
{
  Token tok = { 0 };
  gboolean ok = FALSE;

  if (!next_token (p, &tok, error))
    goto out;
  if (tok.kind != TOK_ATOM)
    {
      fail (error, _("Missing tag"));
      goto out;
    }
  p->search->tag = g_strndup ((const char *) tok.value->data, tok.value->len);
  if (!next_token (p, &tok, error))
    goto out;
  if (atom_is (&tok, "UID") && !next_token (p, &tok, error))
    goto out;
  if (!atom_is (&tok, "SEARCH"))
    {
      fail (error, _("Not a SEARCH command"));
      goto out;
    }
  if (!next_token (p, &tok, error))
    goto out;
  if (atom_is (&tok, "RETURN"))
    {
      /* RFC 4731 search-return-opts: relayed as they are. */
      guint depth = 1;

      if (!next_token (p, &tok, error))
        goto out;
      if (tok.kind != TOK_LPAREN)
        {
          fail (error, _("Malformed RETURN options in SEARCH"));
          goto out;
        }
      while (depth > 0)
        {
          if (!next_token (p, &tok, error))
            goto out;
          if (tok.kind == TOK_END)
            {
              fail (error, _("Malformed RETURN options in SEARCH"));
              goto out;
            }
          if (tok.kind == TOK_RPAREN)
            depth--;
          else if (tok.kind == TOK_LPAREN && ++depth > SM_IMAP_SEARCH_MAX_DEPTH)
            {
              g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("Search return options nested too deep"));
              goto out;
            }
        }
      if (!next_token (p, &tok, error))
        goto out;
    }
  if (atom_is (&tok, "CHARSET"))
    {
      GIConv conv;

      if (!next_astring (p, &tok, error))
        goto out;
      p->charset = g_strndup ((const char *) tok.value->data, tok.value->len);
      conv = g_iconv_open ("UTF-8", p->charset);
      if (conv == (GIConv) -1 || strlen (p->charset) != tok.value->len || tok.value->len == 0)
        {
          /* The provider answers NO [BADCHARSET] (RFC 9051 §7.1). */
          p->search->rewritable = FALSE;
          p->stop = TRUE;
        }
      if (conv != (GIConv) -1)
        g_iconv_close (conv);
      if (!next_token (p, &tok, error))
        goto out;
    }
  if (tok.kind == TOK_END)
    {
      fail (error, _("SEARCH needs at least one search key"));
      goto out;
    }
  while (tok.kind != TOK_END)
    {
      /* After an unknown key the rest is only read through, so that its
       * literals are made non-synchronizing all the same. */
      if (!p->stop && !parse_key (p, &tok, 0, error))
        goto out;
      if (!next_token (p, &tok, error))
        goto out;
    }
  if (p->pos < p->len && p->in[p->pos] == '\r')
    copy_input (p, 1);
  if (p->pos >= p->len || p->in[p->pos] != '\n')
    {
      fail (error, _("The SEARCH command does not end with its line"));
      goto out;
    }
  copy_input (p, 1);
  if (p->pos != p->len)
    {
      fail (error, _("Data after the SEARCH command"));
      goto out;
    }
  ok = TRUE;
out:
  token_clear (&tok);
  return ok;
}

SmImapSearch *
sm_imap_search_parse (const guint8 *command, gsize len, GError **error)
{
  g_autoptr(SmImapSearch) search = g_new0 (SmImapSearch, 1);
  Parser p = { 0 };

  g_return_val_if_fail (command != NULL || len == 0, NULL);

  search->line = g_byte_array_new ();
  search->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) text_key_free);
  search->rewritable = TRUE;
  if (len > SM_IMAP_SEARCH_MAX_COMMAND)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("Search command longer than %d bytes"),
                   SM_IMAP_SEARCH_MAX_COMMAND);
      return NULL;
    }
  p.in = command;
  p.len = len;
  p.out = search->line;
  p.search = search;
  if (!parse_command (&p, error))
    {
      g_free (p.charset);
      return NULL;
    }
  g_free (p.charset);
  if (!search->rewritable)
    g_ptr_array_set_size (search->keys, 0);   /* relayed as sent, literals aside */
  return g_steal_pointer (&search);
}

/* ---- matching ------------------------------------------------------------ */

typedef struct {
  char *name;      /* lower-case */
  char *value;     /* decoded, folded */
} Field;

static void
field_free (Field *f)
{
  g_free (f->name);
  g_free (f->value);
  g_free (f);
}

/* The header section of @data as fields with decoded, folded values. */
static GPtrArray *
decode_fields (const char *data, gsize hlen)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) field_free);
  g_autoptr(GArray) fields = sm_mime_fields_parse (data, hlen, NULL);

  for (guint i = 0; fields != NULL && i < fields->len; i++)
    {
      const SmMimeField *f = &g_array_index (fields, SmMimeField, i);
      g_autofree char *raw = sm_mime_field_value (data, f);
      g_autofree char *decoded = sm_mime_decode_header_value (raw);
      Field *field = g_new0 (Field, 1);

      field->name = g_ascii_strdown (data + f->start, (gssize) f->name_len);
      field->value = fold (decoded ? decoded : raw, -1);
      g_ptr_array_add (out, field);
    }
  return out;
}

/* The text of one text part: transfer encoding removed, converted from
 * its charset to UTF-8 (what does not convert is repaired), folded. */
static char *
decode_text_part (const char *data, const SmMimePart *part)
{
  gsize hlen = part->body_start - part->start, len = 0, body_start;
  g_autoptr(SmMimeContentType) ct = sm_mime_content_type_of_header (data + part->start,
                                                                   sm_mime_header_length (data + part->start, hlen,
                                                                                          &body_start));
  g_autoptr(GBytes) body = sm_mime_decode_body (data + part->body_start, part->body_len, part->encoding);
  const char *text = g_bytes_get_data (body, &len);
  const char *charset = ct ? sm_mime_content_type_param (ct, "charset") : NULL;

  if (charset != NULL && g_ascii_strcasecmp (charset, "utf-8") != 0 && g_ascii_strcasecmp (charset, "us-ascii") != 0)
    {
      gsize written = 0;
      g_autofree char *utf8 = g_convert (text ? text : "", (gssize) len, "UTF-8", charset, NULL, &written, NULL);

      if (utf8 != NULL)
        return fold (utf8, (gssize) written);
    }
  return fold (text ? text : "", (gssize) len);
}

/* The bodies of every text part (type text), one after the other. */
static char *
decode_body (const char *data, gsize len, gsize body_start)
{
  g_autoptr(GPtrArray) parts = sm_mime_walk (data, len, NULL);
  GString *out = g_string_new (NULL);

  if (parts == NULL)
    {
      /* libetpan could not parse it: the raw body is the best we have. */
      g_autofree char *raw = fold (data + body_start, (gssize) (len - body_start));
      g_string_append (out, raw);
      return g_string_free (out, FALSE);
    }
  for (guint i = 0; i < parts->len; i++)
    {
      const SmMimePart *part = g_ptr_array_index (parts, i);

      if (part->type != NULL && g_str_has_prefix (part->type, "text/"))
        {
          g_autofree char *text = decode_text_part (data, part);

          g_string_append (out, text);
          g_string_append_c (out, '\n');
        }
    }
  return g_string_free (out, FALSE);
}

void
sm_imap_search_match (const SmImapSearch *search, GBytes *message, gboolean *matched)
{
  gsize len = 0, body_start = 0, hlen;
  const char *data = g_bytes_get_data (message, &len);
  g_autoptr(GPtrArray) fields = NULL;
  g_autofree char *body = NULL;

  g_return_if_fail (matched != NULL);

  if (data == NULL)
    data = "";
  hlen = sm_mime_header_length (data, len, &body_start);
  for (guint k = 0; k < search->keys->len; k++)
    {
      const TextKey *key = g_ptr_array_index (search->keys, k);

      matched[k] = FALSE;
      if (key->kind != KEY_BODY && fields == NULL)
        fields = decode_fields (data, hlen);
      if (key->kind != KEY_HEADER && body == NULL)
        body = decode_body (data, len, body_start);
      if (key->kind != KEY_HEADER && strstr (body, key->needle) != NULL)
        matched[k] = TRUE;
      for (guint i = 0; !matched[k] && key->kind != KEY_BODY && i < fields->len; i++)
        {
          const Field *f = g_ptr_array_index (fields, i);

          if (key->kind == KEY_HEADER && strcmp (f->name, key->field) != 0)
            continue;
          /* HEADER with an empty string matches every message that has
           * the field (RFC 9051 §6.4.4). */
          if (strstr (f->value, key->needle) != NULL || (key->kind == KEY_TEXT && strstr (f->name, key->needle)))
            matched[k] = TRUE;
        }
    }
}

/* ---- rewriting ----------------------------------------------------------- */

/* "3:7,9" for the UIDs of @uids whose @pick is TRUE (all when @pick is
 * NULL); empty when none. */
static void
append_uid_set (GString *out, const guint32 *uids, guint n, const gboolean *pick)
{
  gboolean any = FALSE;

  for (guint i = 0; i < n;)
    {
      guint32 first, last;

      if (pick != NULL && !pick[i])
        {
          i++;
          continue;
        }
      first = last = uids[i];
      /* A run of consecutive UIDs, all picked. */
      for (i++; i < n && uids[i] == last + 1 && (pick == NULL || pick[i]); i++)
        last = uids[i];
      if (any)
        g_string_append_c (out, ',');
      if (first == last)
        g_string_append_printf (out, "%u", first);
      else
        g_string_append_printf (out, "%u:%u", first, last);
      any = TRUE;
    }
}

static GByteArray *
build (const SmImapSearch *search, const guint32 *uids, guint n, const gboolean *matched, guint stride,
       guint offset)
{
  GByteArray *out = g_byte_array_sized_new (search->line->len + 64);
  g_autoptr(GString) p_set = g_string_new (NULL);
  gsize copied = 0;

  append_uid_set (p_set, uids, n, NULL);
  for (guint k = 0; k < search->keys->len; k++)
    {
      const TextKey *key = g_ptr_array_index (search->keys, k);
      g_autoptr(GString) m_set = g_string_new (NULL);
      g_autoptr(GString) head = g_string_new (NULL);
      g_autoptr(GString) tail = g_string_new (NULL);

      g_byte_array_append (out, search->line->data + copied, (guint) (key->start - copied));
      copied = key->end;
      if (n == 0)
        {
          g_byte_array_append (out, search->line->data + key->start, (guint) (key->end - key->start));
          continue;
        }
      append_uid_set (m_set, uids, n, matched + (gsize) k * stride + offset);
      if (m_set->len > 0)
        g_string_append (head, "OR ");
      g_string_append_c (head, '(');
      g_string_append_printf (tail, " NOT UID %s)", p_set->str);
      if (m_set->len > 0)
        g_string_append_printf (tail, " UID %s", m_set->str);
      g_byte_array_append (out, (const guint8 *) head->str, (guint) head->len);
      g_byte_array_append (out, search->line->data + key->start, (guint) (key->end - key->start));
      g_byte_array_append (out, (const guint8 *) tail->str, (guint) tail->len);
    }
  g_byte_array_append (out, search->line->data + copied, (guint) (search->line->len - copied));
  return out;
}

/* Dropping this fraction of the remaining views per attempt finds a
 * command that fits in a few passes while keeping most views. */
#define DROP_DIVISOR 8

GBytes *
sm_imap_search_rewrite (const SmImapSearch *search, const guint32 *uids, guint n_uids,
                        const gboolean *matched, gsize max_len, guint *n_kept)
{
  guint first = 0;

  g_return_val_if_fail (n_uids == 0 || (uids != NULL && matched != NULL), NULL);

  if (!search->rewritable)
    n_uids = 0;
  for (;;)
    {
      GByteArray *out = build (search, n_uids > 0 ? uids + first : NULL, n_uids - first, matched, n_uids, first);

      if (out->len <= max_len || first == n_uids)
        {
          if (n_kept != NULL)
            *n_kept = n_uids - first;
          return g_byte_array_free_to_bytes (out);
        }
      g_byte_array_unref (out);
      first += MAX (1, (n_uids - first) / DROP_DIVISOR);
    }
}
