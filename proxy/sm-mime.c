/* sm-mime.c: header fields on raw bytes, MIME structure through libetpan.
 *
 * See sm-mime.h for why fields are located on the raw bytes and why
 * multipart children are taken as libetpan's exact byte ranges.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <libetpan/libetpan.h>

#include "sm-error.h"
#include "sm-mime.h"

gsize
sm_mime_header_length (const char *data,
                       gsize       len,
                       gsize      *body_start)
{
  gsize i = 0;

  /* Line by line: the header section ends at the first empty line. */
  while (i < len)
    {
      const char *nl = memchr (data + i, '\n', len - i);
      gsize line_end = nl ? (gsize) (nl - data) + 1 : len;
      gsize content = line_end - i;

      if (nl != NULL)
        content--;
      if (content > 0 && data[i + content - 1] == '\r')
        content--;
      if (content == 0 && nl != NULL)
        {
          *body_start = line_end;
          return i;
        }
      i = line_end;
    }
  *body_start = len;
  return len;
}

GArray *
sm_mime_fields_parse (const char *header,
                      gsize       len,
                      GError    **error)
{
  g_autoptr(GArray) fields = g_array_new (FALSE, TRUE, sizeof (SmMimeField));
  SmMimeField *current = NULL;
  gsize i = 0;

  if (len > SM_MIME_MAX_HEADER_SIZE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("A header section is larger than %u bytes"), (guint) SM_MIME_MAX_HEADER_SIZE);
      return NULL;
    }

  while (i < len)
    {
      const char *nl = memchr (header + i, '\n', len - i);
      gsize line_end = nl ? (gsize) (nl - header) + 1 : len;
      gsize content_end = line_end;

      if (nl != NULL)
        content_end--;
      if (content_end > i && header[content_end - 1] == '\r')
        content_end--;

      if ((header[i] == ' ' || header[i] == '\t') && current != NULL)
        {
          /* A continuation line (RFC 5322 section 2.2.3, folding). */
          current->len = line_end - current->start;
          current->value_len = content_end - current->value_start;
        }
      else
        {
          const char *colon = memchr (header + i, ':', content_end - i);

          current = NULL;
          if (colon != NULL && colon > header + i)
            {
              SmMimeField f = { 0 };
              gsize name_end = colon - header;

              /* "Subject :" is obsolete syntax (RFC 5322 section 4.5.3),
               * still accepted by libetpan and by clients. */
              while (name_end > i && (header[name_end - 1] == ' ' || header[name_end - 1] == '\t'))
                name_end--;
              if (fields->len >= SM_MIME_MAX_FIELDS)
                {
                  g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                               _("A header section has more than %u fields"), (guint) SM_MIME_MAX_FIELDS);
                  return NULL;
                }
              f.start = i;
              f.len = line_end - i;
              f.name_len = name_end - i;
              f.value_start = (colon - header) + 1;
              f.value_len = content_end - f.value_start;
              g_array_append_val (fields, f);
              current = &g_array_index (fields, SmMimeField, fields->len - 1);
            }
        }
      i = line_end;
    }
  return g_steal_pointer (&fields);
}

gboolean
sm_mime_field_is (const char        *header,
                  const SmMimeField *field,
                  const char        *name)
{
  return strlen (name) == field->name_len
         && g_ascii_strncasecmp (header + field->start, name, field->name_len) == 0;
}

gboolean
sm_mime_field_has_prefix (const char        *header,
                          const SmMimeField *field,
                          const char        *prefix)
{
  gsize n = strlen (prefix);

  return field->name_len >= n && g_ascii_strncasecmp (header + field->start, prefix, n) == 0;
}

char *
sm_mime_field_value (const char        *header,
                     const SmMimeField *field)
{
  GString *s = g_string_sized_new (field->value_len);

  for (gsize i = 0; i < field->value_len; i++)
    {
      char c = header[field->value_start + i];

      if (c != '\r' && c != '\n')
        g_string_append_c (s, c);
    }
  return g_strstrip (g_string_free (s, FALSE));
}

int
sm_mime_fields_find (const char *header,
                     GArray     *fields,
                     const char *name)
{
  for (guint i = 0; i < fields->len; i++)
    if (sm_mime_field_is (header, &g_array_index (fields, SmMimeField, i), name))
      return (int) i;
  return -1;
}

/* ---- Content-Type -------------------------------------------------------- */

void
sm_mime_content_type_free (SmMimeContentType *ct)
{
  if (ct == NULL)
    return;
  g_free (ct->type);
  g_free (ct->subtype);
  g_hash_table_unref (ct->params);
  g_free (ct);
}

static char *
etpan_type_name (struct mailmime_type *type)
{
  if (type == NULL)
    return NULL;
  if (type->tp_type == MAILMIME_TYPE_DISCRETE_TYPE && type->tp_data.tp_discrete_type != NULL)
    {
      switch (type->tp_data.tp_discrete_type->dt_type)
        {
        case MAILMIME_DISCRETE_TYPE_TEXT: return g_strdup ("text");
        case MAILMIME_DISCRETE_TYPE_IMAGE: return g_strdup ("image");
        case MAILMIME_DISCRETE_TYPE_AUDIO: return g_strdup ("audio");
        case MAILMIME_DISCRETE_TYPE_VIDEO: return g_strdup ("video");
        case MAILMIME_DISCRETE_TYPE_APPLICATION: return g_strdup ("application");
        case MAILMIME_DISCRETE_TYPE_EXTENSION:
          return type->tp_data.tp_discrete_type->dt_extension
                 ? g_ascii_strdown (type->tp_data.tp_discrete_type->dt_extension, -1) : NULL;
        default: return NULL;
        }
    }
  if (type->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE && type->tp_data.tp_composite_type != NULL)
    {
      switch (type->tp_data.tp_composite_type->ct_type)
        {
        case MAILMIME_COMPOSITE_TYPE_MESSAGE: return g_strdup ("message");
        case MAILMIME_COMPOSITE_TYPE_MULTIPART: return g_strdup ("multipart");
        case MAILMIME_COMPOSITE_TYPE_EXTENSION:
          return type->tp_data.tp_composite_type->ct_token
                 ? g_ascii_strdown (type->tp_data.tp_composite_type->ct_token, -1) : NULL;
        default: return NULL;
        }
    }
  return NULL;
}

static SmMimeContentType *
content_type_from_etpan (struct mailmime_content *content)
{
  g_autoptr(SmMimeContentType) ct = g_new0 (SmMimeContentType, 1);

  ct->params = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (content == NULL || content->ct_subtype == NULL)
    return NULL;
  ct->type = etpan_type_name (content->ct_type);
  if (ct->type == NULL)
    return NULL;
  ct->subtype = g_ascii_strdown (content->ct_subtype, -1);
  for (clistiter *it = content->ct_parameters ? clist_begin (content->ct_parameters) : NULL;
       it != NULL; it = clist_next (it))
    {
      struct mailmime_parameter *p = clist_content (it);

      /* The first occurrence of a parameter wins, as for fields. */
      if (p->pa_name != NULL && p->pa_value != NULL)
        {
          g_autofree char *name = g_ascii_strdown (p->pa_name, -1);

          if (!g_hash_table_contains (ct->params, name))
            g_hash_table_insert (ct->params, g_steal_pointer (&name), g_strdup (p->pa_value));
        }
    }
  return g_steal_pointer (&ct);
}

static SmMimeContentType *
content_type_default (void)
{
  SmMimeContentType *ct = g_new0 (SmMimeContentType, 1);

  ct->type = g_strdup ("text");
  ct->subtype = g_strdup ("plain");
  ct->params = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return ct;
}

SmMimeContentType *
sm_mime_content_type_parse (const char *value)
{
  struct mailmime_content *content = NULL;
  size_t index = 0;
  SmMimeContentType *ct;

  if (mailmime_content_parse (value, strlen (value), &index, &content) != MAILIMF_NO_ERROR)
    return NULL;
  ct = content_type_from_etpan (content);
  mailmime_content_free (content);
  return ct;
}

const char *
sm_mime_content_type_param (const SmMimeContentType *ct,
                            const char              *name)
{
  return g_hash_table_lookup (ct->params, name);
}

SmMimeContentType *
sm_mime_content_type_of_header (const char *header,
                                gsize       len)
{
  g_autoptr(GArray) fields = sm_mime_fields_parse (header, len, NULL);
  int idx;
  g_autofree char *value = NULL;
  SmMimeContentType *ct;

  if (fields == NULL || (idx = sm_mime_fields_find (header, fields, "Content-Type")) < 0)
    return content_type_default ();
  value = sm_mime_field_value (header, &g_array_index (fields, SmMimeField, idx));
  ct = sm_mime_content_type_parse (value);
  return ct ? ct : content_type_default ();
}

SmMimeLayer
sm_mime_layer_of (const SmMimeContentType *ct)
{
  const char *protocol;

  if (ct == NULL)
    return SM_MIME_LAYER_NONE;
  if (strcmp (ct->type, "application") == 0
      && (strcmp (ct->subtype, "pkcs7-mime") == 0 || strcmp (ct->subtype, "x-pkcs7-mime") == 0))
    return SM_MIME_LAYER_PKCS7_MIME;
  if (strcmp (ct->type, "multipart") != 0)
    return SM_MIME_LAYER_NONE;
  protocol = sm_mime_content_type_param (ct, "protocol");
  if (protocol == NULL)
    return SM_MIME_LAYER_NONE;
  if (strcmp (ct->subtype, "signed") == 0)
    {
      if (g_ascii_strcasecmp (protocol, "application/pkcs7-signature") == 0
          || g_ascii_strcasecmp (protocol, "application/x-pkcs7-signature") == 0)
        return SM_MIME_LAYER_SMIME_SIGNED;
      if (g_ascii_strcasecmp (protocol, "application/pgp-signature") == 0)
        return SM_MIME_LAYER_PGP_SIGNED;
    }
  if (strcmp (ct->subtype, "encrypted") == 0
      && g_ascii_strcasecmp (protocol, "application/pgp-encrypted") == 0)
    return SM_MIME_LAYER_PGP_ENCRYPTED;
  return SM_MIME_LAYER_NONE;
}

/* ---- structure ------------------------------------------------------------ */

void
sm_mime_part_free (SmMimePart *part)
{
  if (part == NULL)
    return;
  g_free (part->type);
  g_free (part);
}

/* libetpan recurses once per nesting level and has no depth limit of its
 * own.  Every level of nesting needs a Content-Type field of its own at the
 * start of a line, so counting those bounds the recursion before libetpan
 * sees the data. */
static gboolean
check_nesting_bound (const char *data,
                     gsize       len,
                     GError    **error)
{
  static const char name[] = "content-type";
  guint count = 0;
  gsize i = 0;

  while (i < len)
    {
      const char *nl;

      if (len - i >= sizeof name - 1 && g_ascii_strncasecmp (data + i, name, sizeof name - 1) == 0
          && ++count > SM_MIME_MAX_PARTS)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                       _("The message has more than %u body parts"), (guint) SM_MIME_MAX_PARTS);
          return FALSE;
        }
      nl = memchr (data + i, '\n', len - i);
      if (nl == NULL)
        break;
      i = (nl - data) + 1;
    }
  return TRUE;
}

static struct mailmime *
parse_entity (const char *data,
              gsize       len,
              GError    **error)
{
  struct mailmime *mime = NULL;
  size_t index = 0;
  gsize body_start;

  if (sm_mime_header_length (data, len, &body_start) > SM_MIME_MAX_HEADER_SIZE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("A header section is larger than %u bytes"), (guint) SM_MIME_MAX_HEADER_SIZE);
      return NULL;
    }
  if (!check_nesting_bound (data, len, error))
    return NULL;
  if (mailmime_parse (data, len, &index, &mime) != MAILIMF_NO_ERROR || mime == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The MIME structure cannot be parsed"));
      return NULL;
    }
  return mime;
}

/* mailmime_parse() wraps its input in a MAILMIME_MESSAGE: the entity is
 * the message's body. */
static struct mailmime *
entity_root (struct mailmime *mime)
{
  if (mime->mm_type == MAILMIME_MESSAGE && mime->mm_data.mm_message.mm_msg_mime != NULL)
    return mime->mm_data.mm_message.mm_msg_mime;
  return mime;
}

static gboolean
in_range (const char *base, gsize len, const char *p, gsize n)
{
  return p != NULL && p >= base && (gsize) (p - base) <= len && n <= len - (gsize) (p - base);
}

static SmMimePart *
part_new (const char *base, gsize len, struct mailmime *m, guint depth)
{
  SmMimePart *part = g_new0 (SmMimePart, 1);
  g_autoptr(SmMimeContentType) ct = content_type_from_etpan (m->mm_content_type);

  part->depth = depth;
  part->type = ct ? g_strdup_printf ("%s/%s", ct->type, ct->subtype) : g_strdup ("text/plain");
  if (in_range (base, len, m->mm_mime_start, m->mm_length))
    {
      part->start = m->mm_mime_start - base;
      part->len = m->mm_length;
    }
  if (m->mm_body != NULL && m->mm_body->dt_type == MAILMIME_DATA_TEXT
      && in_range (base, len, m->mm_body->dt_data.dt_text.dt_data, m->mm_body->dt_data.dt_text.dt_length))
    {
      part->body_start = m->mm_body->dt_data.dt_text.dt_data - base;
      part->body_len = m->mm_body->dt_data.dt_text.dt_length;
    }
  else
    part->body_start = part->start + part->len;
  part->encoding = m->mm_mime_fields ? mailmime_transfer_encoding_get (m->mm_mime_fields)
                                     : MAILMIME_MECHANISM_8BIT;
  return part;
}

static gboolean
walk (const char *base, gsize len, struct mailmime *m, guint depth, GPtrArray *parts, GError **error)
{
  if (depth > SM_MIME_MAX_DEPTH)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message nests body parts deeper than %u levels"), (guint) SM_MIME_MAX_DEPTH);
      return FALSE;
    }
  if (parts->len >= SM_MIME_MAX_PARTS)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message has more than %u body parts"), (guint) SM_MIME_MAX_PARTS);
      return FALSE;
    }
  g_ptr_array_add (parts, part_new (base, len, m, depth));

  if (m->mm_type == MAILMIME_MULTIPLE && m->mm_data.mm_multipart.mm_mp_list != NULL)
    {
      for (clistiter *it = clist_begin (m->mm_data.mm_multipart.mm_mp_list); it != NULL; it = clist_next (it))
        if (!walk (base, len, clist_content (it), depth + 1, parts, error))
          return FALSE;
    }
  else if (m->mm_type == MAILMIME_MESSAGE && m->mm_data.mm_message.mm_msg_mime != NULL)
    {
      if (!walk (base, len, m->mm_data.mm_message.mm_msg_mime, depth + 1, parts, error))
        return FALSE;
    }
  return TRUE;
}

GPtrArray *
sm_mime_walk (const char *data,
              gsize       len,
              GError    **error)
{
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_mime_part_free);
  struct mailmime *mime = parse_entity (data, len, error);
  gboolean ok;

  if (mime == NULL)
    return NULL;
  ok = walk (data, len, entity_root (mime), 0, parts, error);
  mailmime_free (mime);
  return ok ? g_steal_pointer (&parts) : NULL;
}

GPtrArray *
sm_mime_multipart_children (const char *data,
                            gsize       len,
                            GError    **error)
{
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_mime_part_free);
  struct mailmime *mime = parse_entity (data, len, error);
  struct mailmime *root;

  if (mime == NULL)
    return NULL;
  root = entity_root (mime);
  if (root->mm_type != MAILMIME_MULTIPLE || root->mm_data.mm_multipart.mm_mp_list == NULL)
    {
      mailmime_free (mime);
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("A multipart body has no parts"));
      return NULL;
    }
  for (clistiter *it = clist_begin (root->mm_data.mm_multipart.mm_mp_list); it != NULL; it = clist_next (it))
    {
      struct mailmime *child = clist_content (it);

      if (parts->len >= SM_MIME_MAX_PARTS)
        {
          mailmime_free (mime);
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                       _("The message has more than %u body parts"), (guint) SM_MIME_MAX_PARTS);
          return NULL;
        }
      if (!in_range (data, len, child->mm_mime_start, child->mm_length))
        {
          mailmime_free (mime);
          g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL, _("A multipart body part cannot be located"));
          return NULL;
        }
      g_ptr_array_add (parts, part_new (data, len, child, 1));
    }
  mailmime_free (mime);
  return g_steal_pointer (&parts);
}

/* Quoted-printable (RFC 2045 section 6.7), lenient as readers are:
 * a malformed escape is kept as it is. */
static GBytes *
decode_qp (const char *body, gsize len)
{
  /* Decoding never lengthens: one buffer of @len, written in place (a
   * GByteArray append per byte cost a third of a SEARCH, measured). */
  guint8 *out = g_malloc (MAX (len, 1));
  gsize n = 0;

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = body[i];

      if (c == '=' && i + 1 < len && body[i + 1] == '\n')
        i += 1;                                   /* soft line break, bare LF */
      else if (c == '=' && i + 2 < len && body[i + 1] == '\r' && body[i + 2] == '\n')
        i += 2;                                   /* soft line break */
      else if (c == '=' && i + 2 < len && g_ascii_isxdigit (body[i + 1]) && g_ascii_isxdigit (body[i + 2]))
        {
          out[n++] = (guint8) ((g_ascii_xdigit_value (body[i + 1]) << 4) | g_ascii_xdigit_value (body[i + 2]));
          i += 2;
        }
      else
        out[n++] = c;
    }
  return g_bytes_new_take (out, n);
}

GBytes *
sm_mime_decode_body (const char *body,
                     gsize       len,
                     int         encoding)
{
  /* GLib's decoders rather than mailmime_part_parse(): libetpan 1.9.4
   * reads past the end of some malformed bodies (found by
   * tests/fuzz/fuzz-secure-view under ASan). */
  if (encoding == MAILMIME_MECHANISM_BASE64)
    {
      /* g_base64_decode_step() skips characters outside the alphabet
       * (line ends, blanks), as RFC 2045 section 6.8 asks. */
      guchar *out = g_malloc ((len / 4) * 3 + 3);
      gint state = 0;
      guint save = 0;
      gsize n = g_base64_decode_step (body, len, out, &state, &save);

      return g_bytes_new_take (out, n);
    }
  if (encoding == MAILMIME_MECHANISM_QUOTED_PRINTABLE)
    return decode_qp (body, len);
  return g_bytes_new (body, len);
}

GBytes *
sm_mime_canonicalize_crlf (GBytes *data)
{
  gsize len;
  const char *p = g_bytes_get_data (data, &len);
  gboolean canonical = TRUE;
  GByteArray *out;

  for (gsize i = 0; i < len && canonical; i++)
    {
      if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
        canonical = FALSE;
      else if (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n'))
        canonical = FALSE;
    }
  if (canonical)
    return g_bytes_ref (data);

  out = g_byte_array_sized_new (len + len / 32 + 2);
  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '\r')
        {
          g_byte_array_append (out, (const guint8 *) "\r\n", 2);
          if (i + 1 < len && p[i + 1] == '\n')
            i++;
        }
      else if (p[i] == '\n')
        g_byte_array_append (out, (const guint8 *) "\r\n", 2);
      else
        g_byte_array_append (out, (const guint8 *) p + i, 1);
    }
  return g_byte_array_free_to_bytes (out);
}

char *
sm_mime_decode_header_value (const char *value)
{
  char *decoded = NULL;
  size_t index = 0;
  char *result;

  if (mailmime_encoded_phrase_parse ("utf-8", value, strlen (value), &index, "utf-8", &decoded)
      != MAILIMF_NO_ERROR || decoded == NULL)
    return g_strdup (value);
  result = g_strdup (decoded);
  free (decoded);
  if (!g_utf8_validate (result, -1, NULL))
    {
      char *valid = g_utf8_make_valid (result, -1);

      g_free (result);
      result = valid;
    }
  return result;
}
