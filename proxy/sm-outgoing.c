/* sm-outgoing.c: signing and encrypting a submitted message (issue 4, SMTP).
 *
 * The steps, in order:
 *   1. split the header with libetpan (mailimf_ignore_field_parse() gives
 *      each field's exact bytes, folding included); drop Bcc; add Date and
 *      Message-ID when missing;
 *   2. choose: our own identity must exist (else nothing is sent), then look
 *      up keys for every envelope recipient plus the sender; decide whether
 *      to encrypt or refuse (`[crypto] encrypt`);
 *   3. build the signed entity: RFC 9788 protected header fields, the
 *      message's Content-* fields and body, every leaf that is 8-bit or
 *      otherwise fragile re-encoded to quoted-printable/base64, all CRLF
 *      (RFC 8551 §3.1.1, RFC 3156 §3/§5: signed content must survive
 *      relays byte for byte);
 *   4. sign (and encrypt) with GPGME through the certstore's contexts;
 *   5. assemble the outer message: the original non-MIME header fields
 *      (Subject obscured when encrypting), MIME-Version and the new body.
 *
 * Buffers that hold plaintext are wiped before they are freed.  Nothing of
 * the content, the Subject or the addresses is logged.
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include <gpgme.h>
#include <libetpan/libetpan.h>

/* sm-config.h and certstore's sm-key-info.h both call their protocol values
 * SM_PROTOCOL_SMIME / SM_PROTOCOL_OPENPGP (with different numbers).  Here
 * the config's are seen as SM_CONFIG_PROTOCOL_*, certstore's keep theirs. */
#define SM_PROTOCOL_SMIME SM_CONFIG_PROTOCOL_SMIME
#define SM_PROTOCOL_OPENPGP SM_CONFIG_PROTOCOL_OPENPGP
#include "sm-config.h"
#include "sm-outgoing.h"
#undef SM_PROTOCOL_SMIME
#undef SM_PROTOCOL_OPENPGP

#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-trustdb.h"
#include "sm-wipe.h"

/* RFC 9788 §4.2 suggests "[...]" for an obscured Subject; we use "...", what
 * Thunderbird, Enigmail and the draft it came from (and most deployed
 * readers of protected headers) write and recognise.  Only when encrypting:
 * a signed-only message's Subject is readable anyway. */
#define OBSCURED_SUBJECT "..."

/* Protects every use of a SmCertstore: its calls must not run in two
 * threads at once, and the SMTP worker threads share one store. */
static GMutex store_lock;
static SmCertstore *default_store;

/* ---- small helpers ---------------------------------------------------------- */

void
sm_outgoing_info_free (SmOutgoingInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->micalg);
  g_free (info->message_id);
  g_free (info->mic);
  g_free (info->signer);
  g_free (info->receipt_mic);
  g_strfreev (info->missing);
  g_free (info);
}

static void
wipe_string_free (GString *s)
{
  if (s == NULL)
    return;
  sm_wipe (s->str, s->len);
  g_string_free (s, TRUE);
}

typedef GString SmSecretString;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSecretString, wipe_string_free)

/* One header field: its exact bytes (ending in CRLF) and its name. */
typedef struct {
  char *name;
  char *raw;
} Field;

static void
field_free (Field *f)
{
  g_free (f->name);
  if (f->raw)
    sm_wipe (f->raw, strlen (f->raw));
  g_free (f->raw);
  g_free (f);
}

static Field *
field_new (const char *name, const char *raw)
{
  Field *f = g_new0 (Field, 1);

  f->name = g_strdup (name);
  f->raw = g_strdup (raw);
  return f;
}

static gboolean
field_is (const Field *f, const char *name)
{
  return g_ascii_strcasecmp (f->name, name) == 0;
}

/* The value after "Name:" (still folded, with its CRLF). */
static const char *
field_value (const Field *f)
{
  const char *colon = strchr (f->raw, ':');
  return colon ? colon + 1 : "";
}

/* Content-* and MIME-Version belong to the body (RFC 2045 §9). */
static gboolean
field_is_structural (const Field *f)
{
  return g_ascii_strncasecmp (f->name, "Content-", 8) == 0 || field_is (f, "MIME-Version");
}

/* Splits the header of @data into fields (libetpan, RFC 5322 §2.2).  *@body
 * gets the offset of the body (@len when there is none). */
static GPtrArray *
parse_header (const char *data, gsize len, gsize *body, GError **error)
{
  g_autoptr(GPtrArray) fields = g_ptr_array_new_with_free_func ((GDestroyNotify) field_free);
  gsize pos = 0;

  while (pos < len)
    {
      size_t idx = pos;
      const char *colon;
      g_autofree char *name = NULL;
      g_autofree char *raw = NULL;
      gsize n;

      if (data[pos] == '\r' && pos + 1 < len && data[pos + 1] == '\n')
        {
          *body = pos + 2;
          return g_steal_pointer (&fields);
        }
      if (pos > SM_OUTGOING_MAX_HEADER)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                       _("The message header is larger than %u bytes"), (guint) SM_OUTGOING_MAX_HEADER);
          return NULL;
        }
      if (mailimf_ignore_field_parse (data, len, &idx) != MAILIMF_NO_ERROR || idx <= pos ||
          (colon = memchr (data + pos, ':', idx - pos)) == NULL)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL,
                       _("The message has a malformed header line; it cannot be signed"));
          return NULL;
        }
      n = colon - (data + pos);
      while (n > 0 && (data[pos + n - 1] == ' ' || data[pos + n - 1] == '\t'))
        n--;
      name = g_strndup (data + pos, n);
      raw = g_strndup (data + pos, idx - pos);
      if (!g_str_has_suffix (raw, "\r\n"))
        {
          char *t = g_strconcat (raw, "\r\n", NULL);
          sm_wipe (raw, strlen (raw));
          g_free (raw);
          raw = t;
        }
      g_ptr_array_add (fields, field_new (name, raw));
      pos = idx;
    }
  *body = len;
  return g_steal_pointer (&fields);
}

static const Field *
find_field (GPtrArray *fields, const char *name)
{
  for (guint i = 0; i < fields->len; i++)
    if (field_is (fields->pdata[i], name))
      return fields->pdata[i];
  return NULL;
}

/* Base64 in 76-column CRLF lines (RFC 2045 §6.8). */
static void
append_base64 (GString *out, const guint8 *data, gsize len)
{
  g_autofree char *b64 = g_base64_encode (data, len);
  gsize n = strlen (b64);

  for (gsize i = 0; i < n; i += 76)
    {
      g_string_append_len (out, b64 + i, MIN (76, n - i));
      g_string_append (out, "\r\n");
    }
}

/* Quoted-printable (RFC 2045 §6.7) for text: CRLF stays a hard line break;
 * 8-bit bytes, "=", bare CR/LF, trailing white space and a "From " at the
 * start of a line (RFC 3156 §3) are encoded, lines are kept under 76. */
static void
append_qp (GString *out, const guint8 *data, gsize len)
{
  static const char hex[] = "0123456789ABCDEF";
  gsize col = 0;

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = data[i];
      gboolean at_eol = (i + 1 == len) || (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n');
      gboolean enc;

      if (c == '\r' && i + 1 < len && data[i + 1] == '\n')
        {
          g_string_append (out, "\r\n");
          col = 0;
          i++;
          continue;
        }
      enc = c == '=' || c >= 0x7f || (c < 32 && c != '\t') || ((c == ' ' || c == '\t') && at_eol) ||
            (col == 0 && c == 'F' && len - i >= 5 && memcmp (data + i, "From ", 5) == 0) ||
            (col == 0 && c == '.');
      if (col + (enc ? 3 : 1) > 75)
        {
          g_string_append (out, "=\r\n");
          col = 0;
          /* after a soft break this is a new line start: re-check the rules */
          if (!enc && c == '.')
            enc = TRUE;
          if (!enc && c == 'F' && len - i >= 5 && memcmp (data + i, "From ", 5) == 0)
            enc = TRUE;
        }
      if (enc)
        {
          g_string_append_c (out, '=');
          g_string_append_c (out, hex[c >> 4]);
          g_string_append_c (out, hex[c & 15]);
          col += 3;
        }
      else
        {
          g_string_append_c (out, (char) c);
          col++;
        }
    }
}

/* TRUE when @data could be changed by a relay: 8-bit or NUL bytes, bare CR
 * or LF, over-long lines, trailing white space, "From " line starts. */
static gboolean
is_fragile (const char *data, gsize len)
{
  gsize col = 0;

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = (guint8) data[i];

      if (c == '\r' && i + 1 < len && data[i + 1] == '\n')
        {
          if (i > 0 && (data[i - 1] == ' ' || data[i - 1] == '\t') && col > 0)
            return TRUE;
          col = 0;
          i++;
          continue;
        }
      if (c >= 0x80 || c == 0 || c == '\r' || c == '\n')
        return TRUE;
      if (col == 0 && len - i >= 5 && memcmp (data + i, "From ", 5) == 0)
        return TRUE;
      if (++col > SM_OUTGOING_LINE_LIMIT)
        return TRUE;
    }
  /* a last line without CRLF ending in white space */
  return len > 0 && col > 0 && (data[len - 1] == ' ' || data[len - 1] == '\t');
}

static gboolean
is_7bit_clean (const char *data, gsize len)
{
  gsize col = 0;

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = (guint8) data[i];

      if (c == '\r' && i + 1 < len && data[i + 1] == '\n')
        {
          col = 0;
          i++;
          continue;
        }
      if (c >= 0x80 || c == 0 || c == '\r' || c == '\n' || ++col > SM_OUTGOING_LINE_LIMIT)
        return FALSE;
    }
  return TRUE;
}

/* TRUE when the message is a report (RFC 6522 multipart/report): delivery
 * and disposition notifications never ask for a receipt themselves
 * (RFC 8098 §2.1, RFC 3464 §2). */
static gboolean
is_report (GPtrArray *fields)
{
  const Field *ct = find_field (fields, "Content-Type");
  struct mailmime_content *content = NULL;
  const char *v;
  size_t idx = 0;
  gboolean report = FALSE;

  if (ct == NULL)
    return FALSE;
  v = field_value (ct);
  if (mailmime_content_parse (v, strlen (v), &idx, &content) == MAILIMF_NO_ERROR && content != NULL)
    {
      report = content->ct_type->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE &&
               content->ct_type->tp_data.tp_composite_type->ct_type == MAILMIME_COMPOSITE_TYPE_MULTIPART &&
               content->ct_subtype != NULL && g_ascii_strcasecmp (content->ct_subtype, "report") == 0;
      mailmime_content_free (content);
    }
  return report;
}

/* Replaces any receipt request of the client with ours (RFC 8098 §2.1,
 * signed receipts as in RFC 8551 §2.7 / RFC 3335): receipts go to the
 * authenticated sender, signed with the protocol we sign with, and carry
 * a SM_OUTGOING_RECEIPT_MICALG digest of the signed content.  These fields
 * are not structural, so they end up both in the protected header inside
 * the signature and outside. */
static void
add_receipt_request (GPtrArray *fields, const char *sender, gboolean smime)
{
  g_autofree char *to = g_strdup_printf ("Disposition-Notification-To: <%s>\r\n", sender);
  g_autofree char *options =
    g_strdup_printf ("Disposition-Notification-Options: signed-receipt-protocol=required,%s;\r\n"
                     " signed-receipt-micalg=required,%s\r\n",
                     smime ? "application/pkcs7-signature" : "application/pgp-signature",
                     SM_OUTGOING_RECEIPT_MICALG);

  for (guint i = fields->len; i > 0; i--)
    {
      const Field *f = fields->pdata[i - 1];
      if (field_is (f, "Disposition-Notification-To") || field_is (f, "Disposition-Notification-Options"))
        g_ptr_array_remove_index (fields, i - 1);
    }
  g_ptr_array_add (fields, field_new ("Disposition-Notification-To", to));
  g_ptr_array_add (fields, field_new ("Disposition-Notification-Options", options));
}

/* ---- canonical entity ----------------------------------------------------------- */

typedef struct {
  guint parts;
} Canon;

typedef struct {
  int type;            /* MAILMIME_TYPE_* */
  int subtype_kind;    /* composite: MAILMIME_COMPOSITE_TYPE_*; discrete: MAILMIME_DISCRETE_TYPE_* */
  char *boundary;
  int encoding;        /* MAILMIME_MECHANISM_*, 7BIT when absent */
} PartType;

static void
part_type_read (GPtrArray *fields, PartType *pt)
{
  const Field *ct = find_field (fields, "Content-Type");
  const Field *cte = find_field (fields, "Content-Transfer-Encoding");

  pt->type = MAILMIME_TYPE_DISCRETE_TYPE;
  pt->subtype_kind = MAILMIME_DISCRETE_TYPE_TEXT;
  pt->boundary = NULL;
  pt->encoding = MAILMIME_MECHANISM_7BIT;
  if (ct != NULL)
    {
      const char *v = field_value (ct);
      size_t idx = 0;
      struct mailmime_content *content = NULL;

      if (mailmime_content_parse (v, strlen (v), &idx, &content) == MAILIMF_NO_ERROR && content != NULL)
        {
          pt->type = content->ct_type->tp_type;
          if (pt->type == MAILMIME_TYPE_COMPOSITE_TYPE)
            pt->subtype_kind = content->ct_type->tp_data.tp_composite_type->ct_type;
          else
            pt->subtype_kind = content->ct_type->tp_data.tp_discrete_type->dt_type;
          if (pt->type == MAILMIME_TYPE_COMPOSITE_TYPE && pt->subtype_kind == MAILMIME_COMPOSITE_TYPE_MULTIPART)
            pt->boundary = g_strdup (mailmime_content_param_get (content, (char *) "boundary"));
          mailmime_content_free (content);
        }
      else
        {
          /* Unreadable: treat as opaque data (RFC 2045 §5.2 says text/plain,
           * but base64 is safe for anything). */
          pt->subtype_kind = MAILMIME_DISCRETE_TYPE_APPLICATION;
        }
    }
  if (cte != NULL)
    {
      const char *v = field_value (cte);
      size_t idx = 0;
      struct mailmime_mechanism *mech = NULL;

      if (mailmime_encoding_parse (v, strlen (v), &idx, &mech) == MAILIMF_NO_ERROR && mech != NULL)
        {
          pt->encoding = mech->enc_type;
          mailmime_mechanism_free (mech);
        }
      else
        pt->encoding = MAILMIME_MECHANISM_TOKEN;
    }
}

/* Appends @raw (a Content-Type field) with "; @extra" added before its CRLF. */
static void
append_content_type (GString *out, const char *raw, const char *extra)
{
  gsize n = strlen (raw);

  if (extra == NULL)
    {
      g_string_append (out, raw);
      return;
    }
  while (n > 0 && (raw[n - 1] == '\r' || raw[n - 1] == '\n' || raw[n - 1] == ' ' || raw[n - 1] == '\t' ||
                   raw[n - 1] == ';'))
    n--;
  g_string_append_len (out, raw, n);
  g_string_append_printf (out, ";\r\n %s\r\n", extra);
}

static gboolean canon_entity (Canon *c, const char *data, gsize len, guint depth, const char *prefix,
                              const char *ct_extra, GString *out, GError **error);

/* A multipart body (RFC 2046 §5.1.1): every part canonicalised, the
 * delimiters written fresh, an 8-bit preamble or epilogue dropped (no reader
 * shows them). */
static gboolean
canon_multipart (Canon *c, const char *body, gsize len, const char *boundary, guint depth, GString *out,
                 GError **error)
{
  g_autofree char *delim = g_strconcat ("--", boundary, NULL);
  gsize dlen = strlen (delim);
  gsize pos = 0, part_start = 0;
  gboolean in_parts = FALSE, closed = FALSE;
  gsize close_end = len;

  while (pos <= len && !closed)
    {
      const char *eol = pos < len ? g_strstr_len (body + pos, len - pos, "\r\n") : NULL;
      gsize line_end = eol ? (gsize) (eol - body) : len;
      gsize next = eol ? line_end + 2 : len + 1;
      gboolean is_delim = FALSE, is_close = FALSE;

      if (line_end - pos >= dlen && memcmp (body + pos, delim, dlen) == 0)
        {
          gsize k = pos + dlen;
          if (line_end - k >= 2 && body[k] == '-' && body[k + 1] == '-')
            {
              is_close = TRUE;
              k += 2;
            }
          is_delim = TRUE;
          for (; k < line_end; k++)
            if (body[k] != ' ' && body[k] != '\t')
              is_delim = is_close = FALSE;
        }
      if (is_delim)
        {
          /* The CRLF before a delimiter belongs to it (RFC 2046 §5.1.1). */
          gsize end = pos >= 2 ? pos - 2 : 0;

          if (!in_parts)
            {
              if (pos > 0 && is_7bit_clean (body, end))
                {
                  g_string_append_len (out, body, end);
                  g_string_append (out, "\r\n");
                }
            }
          else
            {
              g_string_append_printf (out, "%s\r\n", delim);
              if (!canon_entity (c, body + part_start, end > part_start ? end - part_start : 0, depth + 1,
                                 NULL, NULL, out, error))
                return FALSE;
              g_string_append (out, "\r\n");
            }
          in_parts = TRUE;
          part_start = MIN (next, len);
          if (is_close)
            {
              closed = TRUE;
              close_end = MIN (next, len);
            }
        }
      pos = next;
    }
  if (!in_parts)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL,
                   _("A multipart section of the message has no parts; it cannot be signed"));
      return FALSE;
    }
  if (!closed)
    {
      /* Truncated: the last part runs to the end. */
      g_string_append_printf (out, "%s\r\n", delim);
      if (!canon_entity (c, body + part_start, len - part_start, depth + 1, NULL, NULL, out, error))
        return FALSE;
      g_string_append (out, "\r\n");
      close_end = len;
    }
  g_string_append_printf (out, "%s--\r\n", delim);
  if (close_end < len && is_7bit_clean (body + close_end, len - close_end))
    g_string_append_len (out, body + close_end, len - close_end);
  return TRUE;
}

/* Writes the entity @data (header and body) to @out in a form no relay will
 * change.  @prefix (may be NULL) is written before its header fields, and
 * @ct_extra (may be NULL) is added to its Content-Type as a parameter. */
static gboolean
canon_entity (Canon *c, const char *data, gsize len, guint depth, const char *prefix, const char *ct_extra,
              GString *out, GError **error)
{
  g_autoptr(GPtrArray) fields = NULL;
  gsize body_at = 0;
  const char *body;
  gsize body_len;
  PartType pt;
  gboolean multipart, message, fragile, reencode;
  const char *new_cte = NULL;
  gboolean drop_cte = FALSE;

  if (depth > SM_OUTGOING_MAX_MIME_DEPTH)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message nests MIME parts deeper than %u levels"), (guint) SM_OUTGOING_MAX_MIME_DEPTH);
      return FALSE;
    }
  if (++c->parts > SM_OUTGOING_MAX_PARTS)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message has more than %u MIME parts"), (guint) SM_OUTGOING_MAX_PARTS);
      return FALSE;
    }
  fields = parse_header (data, len, &body_at, error);
  if (fields == NULL)
    return FALSE;
  body = data + body_at;
  body_len = len - body_at;
  part_type_read (fields, &pt);

  multipart = pt.type == MAILMIME_TYPE_COMPOSITE_TYPE && pt.subtype_kind == MAILMIME_COMPOSITE_TYPE_MULTIPART &&
              pt.boundary != NULL && *pt.boundary != '\0';
  message = pt.type == MAILMIME_TYPE_COMPOSITE_TYPE && pt.subtype_kind == MAILMIME_COMPOSITE_TYPE_MESSAGE;
  fragile = pt.encoding != MAILMIME_MECHANISM_QUOTED_PRINTABLE && pt.encoding != MAILMIME_MECHANISM_BASE64 &&
            is_fragile (body, body_len);
  reencode = fragile && !multipart && !message;
  if (reencode)
    new_cte = pt.type == MAILMIME_TYPE_DISCRETE_TYPE && pt.subtype_kind == MAILMIME_DISCRETE_TYPE_TEXT
                ? "quoted-printable" : "base64";
  /* A multipart whose parts are now 7-bit is 7-bit (RFC 2045 §6.4). */
  if (multipart && (pt.encoding == MAILMIME_MECHANISM_8BIT || pt.encoding == MAILMIME_MECHANISM_BINARY))
    drop_cte = TRUE;

  if (prefix != NULL)
    g_string_append (out, prefix);
  for (guint i = 0; i < fields->len; i++)
    {
      const Field *f = fields->pdata[i];

      if (field_is (f, "Content-Transfer-Encoding") && (new_cte != NULL || drop_cte))
        continue;
      if (field_is (f, "Content-Type"))
        append_content_type (out, f->raw, ct_extra);
      else
        g_string_append (out, f->raw);
    }
  if (find_field (fields, "Content-Type") == NULL && (ct_extra != NULL || reencode))
    {
      /* RFC 2045 §5.2's default, made explicit; 8-bit text from a client
       * that left it out is UTF-8 in practice. */
      const char *raw = is_7bit_clean (body, body_len) ? "Content-Type: text/plain; charset=us-ascii\r\n"
                                                        : "Content-Type: text/plain; charset=utf-8\r\n";
      append_content_type (out, raw, ct_extra);
    }
  if (new_cte != NULL)
    g_string_append_printf (out, "Content-Transfer-Encoding: %s\r\n", new_cte);
  g_string_append (out, "\r\n");

  if (multipart)
    {
      gboolean ok = canon_multipart (c, body, body_len, pt.boundary, depth, out, error);
      g_free (pt.boundary);
      return ok;
    }
  g_free (pt.boundary);
  if (message && body_len > 0)
    return canon_entity (c, body, body_len, depth + 1, NULL, NULL, out, error);
  if (new_cte == NULL)
    g_string_append_len (out, body, body_len);
  else if (g_str_equal (new_cte, "quoted-printable"))
    append_qp (out, (const guint8 *) body, body_len);
  else
    append_base64 (out, (const guint8 *) body, body_len);
  return TRUE;
}

/* ---- keys and GPGME ------------------------------------------------------------- */

/* Certstore errors become SM_ERROR with the certstore's helpdesk text. */
static void
propagate_store_error (GError **error, GError *src)
{
  SmErrorCode code = SM_ERROR_FAILED;

  if (src->domain == SM_CERTSTORE_ERROR)
    switch (src->code)
      {
      case SM_CERTSTORE_ERROR_LOCKED:
      case SM_CERTSTORE_ERROR_BAD_PASSPHRASE:
        code = SM_ERROR_LOCKED;
        break;
      case SM_CERTSTORE_ERROR_KEYRING:
        code = SM_ERROR_KEYRING;
        break;
      case SM_CERTSTORE_ERROR_NO_KEY:
      case SM_CERTSTORE_ERROR_EXPIRED:
      case SM_CERTSTORE_ERROR_REVOKED:
      case SM_CERTSTORE_ERROR_UNTRUSTED:
        code = SM_ERROR_CONFIG;
        break;
      default:
        break;
      }
  g_set_error_literal (error, SM_ERROR, code, src->message);
}

static gboolean
gpgme_failed (GError **error, gpgme_error_t err, const char *doing)
{
  g_autoptr(GError) local = NULL;

  sm_certstore_set_gpgme_error (&local, err, doing);
  propagate_store_error (error, local);
  return FALSE;
}

static GBytes *
take_data (gpgme_data_t d)
{
  size_t len = 0;
  char *mem = gpgme_data_release_and_get_mem (d, &len);
  GBytes *b = g_bytes_new (mem ? mem : "", len);

  gpgme_free (mem);
  return b;
}

/* gpg writes armor with LF; mail needs CRLF. */
static void
append_crlf (GString *out, GBytes *text)
{
  gsize len;
  const char *p = g_bytes_get_data (text, &len);

  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
        g_string_append_c (out, '\r');
      g_string_append_c (out, p[i]);
    }
  if (len > 0 && p[len - 1] != '\n')
    g_string_append (out, "\r\n");
}

/* micalg names: RFC 8551 §3.5.3.2 (S/MIME) and RFC 3156 §5 (OpenPGP). */
static gboolean
micalg_for (gpgme_hash_algo_t algo, gboolean smime, char **micalg, GChecksumType *type)
{
  const char *name;

  switch (algo)
    {
    case GPGME_MD_SHA1:   *type = G_CHECKSUM_SHA1;   name = smime ? "sha-1" : "pgp-sha1"; break;
    case GPGME_MD_SHA256: *type = G_CHECKSUM_SHA256; name = smime ? "sha-256" : "pgp-sha256"; break;
    case GPGME_MD_SHA384: *type = G_CHECKSUM_SHA384; name = smime ? "sha-384" : "pgp-sha384"; break;
    case GPGME_MD_SHA512: *type = G_CHECKSUM_SHA512; name = smime ? "sha-512" : "pgp-sha512"; break;
    default:
      return FALSE;
    }
  *micalg = g_strdup (name);
  return TRUE;
}

static char *
compute_mic (GChecksumType type, const GString *content)
{
  g_autoptr(GChecksum) sum = g_checksum_new (type);
  guint8 digest[64];
  gsize dlen = sizeof digest;

  g_checksum_update (sum, (const guchar *) content->str, content->len);
  g_checksum_get_digest (sum, digest, &dlen);
  return g_base64_encode (digest, dlen);
}

static char *
new_boundary (void)
{
  g_autofree char *uuid = g_uuid_string_random ();
  /* "=_" cannot occur in quoted-printable or base64 text (RFC 2045 §6.7). */
  return g_strdup_printf ("=_sm-%s", uuid);
}

static char *
rfc5322_date (void)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  gint64 off = g_date_time_get_utc_offset (now) / G_TIME_SPAN_MINUTE;

  return g_strdup_printf ("%s, %02d %s %04d %02d:%02d:%02d %c%02d%02d",
                          days[g_date_time_get_day_of_week (now) - 1], g_date_time_get_day_of_month (now),
                          months[g_date_time_get_month (now) - 1], g_date_time_get_year (now),
                          g_date_time_get_hour (now), g_date_time_get_minute (now),
                          g_date_time_get_second (now), off < 0 ? '-' : '+', (int) (ABS (off) / 60),
                          (int) (ABS (off) % 60));
}

static SmCertstore *
get_default_store_locked (GError **error)
{
  g_autoptr(GError) local = NULL;

  if (default_store != NULL)
    return default_store;
  default_store = sm_certstore_new (&local);
  if (default_store == NULL)
    {
      propagate_store_error (error, local);
      return NULL;
    }
  /* Hand the keyring's passphrases to gpg-agent once, as the CLI's
   * `securemail unlock` does; a failure shows up as "locked" per message. */
  if (!sm_certstore_unlock (default_store, NULL, NULL, &local))
    g_message ("Could not unlock the key store yet: %s", local->message);
  return default_store;
}

/* ---- the whole operation ---------------------------------------------------------- */

typedef struct {
  SmProtocol protocol;
  gpgme_key_t signer;
  GPtrArray *recipients;        /* gpgme_key_t, NULL-terminated when used */
} Keys;

static void
keys_clear (Keys *k)
{
  if (k->signer)
    gpgme_key_unref (k->signer);
  if (k->recipients)
    g_ptr_array_unref (k->recipients);
}

static void
key_unref_cb (gpointer key)
{
  if (key)
    gpgme_key_unref (key);
}

/* Chooses the keys with the store locked.  Returns FALSE with @error set;
 * *@missing gets the addresses without keys and their reasons. */
static gboolean
choose_keys (SmCertstore *store, const SmConfig *config, const char *sender, const char *const *recipients,
             Keys *keys, GPtrArray *missing, GPtrArray *reasons, char **signer_fpr, gpgme_ctx_t *ctx,
             GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(SmKeyInfo) own = NULL;
  g_autoptr(GPtrArray) addresses = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(SmRecipientLookup) lookup = NULL;

  own = sm_certstore_get_own_identity (store, keys->protocol, sender, &local);
  if (own == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  *signer_fpr = g_strdup (own->fingerprint);
  keys->signer = sm_certstore_get_gpgme_key (store, keys->protocol, own->fingerprint, TRUE, &local);
  if (keys->signer == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }

  /* Everyone in the envelope, Bcc included, and the sender so the Sent copy
   * stays readable; each address once. */
  for (guint i = 0; recipients[i] != NULL; i++)
    {
      char *a = g_ascii_strdown (recipients[i], -1);
      if (g_hash_table_contains (seen, a))
        {
          g_free (a);
          continue;
        }
      g_hash_table_add (seen, a);
      g_ptr_array_add (addresses, a);
    }
  {
    char *a = g_ascii_strdown (sender, -1);
    if (!g_hash_table_contains (seen, a))
      {
        g_hash_table_add (seen, a);
        g_ptr_array_add (addresses, a);
      }
    else
      g_free (a);
  }
  g_ptr_array_add (addresses, NULL);

  if (config->encrypt != SM_ENCRYPT_NEVER)
    {
      lookup = sm_certstore_lookup_recipients (store, keys->protocol, (const char *const *) addresses->pdata,
                                               &local);
      if (lookup == NULL)
        {
          propagate_store_error (error, local);
          return FALSE;
        }
      for (guint i = 0; i < lookup->missing->len; i++)
        {
          g_ptr_array_add (missing, g_strdup (lookup->missing->pdata[i]));
          g_ptr_array_add (reasons, g_strdup (lookup->reasons->pdata[i]));
        }
      if (lookup->missing->len == 0)
        {
          keys->recipients = g_ptr_array_new_with_free_func (key_unref_cb);
          for (guint i = 0; i < lookup->keys->len; i++)
            {
              const SmKeyInfo *k = lookup->keys->pdata[i];
              gpgme_key_t key = sm_certstore_get_gpgme_key (store, keys->protocol, k->fingerprint, FALSE, &local);

              if (key == NULL)
                {
                  propagate_store_error (error, local);
                  return FALSE;
                }
              g_ptr_array_add (keys->recipients, key);
            }
          g_ptr_array_add (keys->recipients, NULL);
        }
    }

  *ctx = sm_certstore_new_context (store, keys->protocol, &local);
  if (*ctx == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  return TRUE;
}

static GBytes *
protect (SmCertstore        *store,
         const SmConfig     *config,
         const char         *sender,
         const char * const *recipients,
         GBytes             *message,
         SmOutgoingInfo    **info,
         GError            **error)
{
  const char *data;
  gsize len, body_at = 0;
  g_autoptr(GPtrArray) fields = NULL;
  g_autoptr(GPtrArray) missing = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) reasons = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *signer_fpr = NULL;
  g_autofree char *message_id = NULL;
  g_autofree char *micalg = NULL;
  g_autofree char *mic = NULL;
  g_autofree char *receipt_mic = NULL;
  g_autofree char *boundary = NULL;
  g_autoptr(SmSecretString) protected_fields = NULL;
  g_autoptr(SmSecretString) content = NULL;
  g_autoptr(SmSecretString) entity = NULL;
  g_autoptr(SmSecretString) signed_part = NULL;
  g_autoptr(GString) out = NULL;
  g_autoptr(GBytes) sig = NULL;
  Keys keys = { 0, };
  gpgme_ctx_t ctx = NULL;
  gpgme_data_t in = NULL, dout = NULL;
  gpgme_error_t err;
  gpgme_sign_result_t sres;
  GChecksumType mic_type = G_CHECKSUM_SHA256;
  gboolean smime, encrypt, ok, receipt;
  Canon canon = { 0, };
  const Field *mid;

  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (sender != NULL, NULL);
  g_return_val_if_fail (recipients != NULL, NULL);
  g_return_val_if_fail (message != NULL, NULL);

  smime = config->protocol == SM_CONFIG_PROTOCOL_SMIME;
  keys.protocol = smime ? SM_PROTOCOL_SMIME : SM_PROTOCOL_OPENPGP;
  data = g_bytes_get_data (message, &len);
  if (len > SM_OUTGOING_MAX_MESSAGE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG, _("The message is larger than %u bytes"),
                   (guint) SM_OUTGOING_MAX_MESSAGE);
      return NULL;
    }

  /* 1. The header. */
  fields = parse_header (data, len, &body_at, error);
  if (fields == NULL)
    return NULL;
  for (guint i = fields->len; i > 0; i--)
    {
      const Field *f = fields->pdata[i - 1];
      /* Bcc recipients are not disclosed (RFC 5322 §3.6.3): the envelope
       * already has them. */
      if (field_is (f, "Bcc") || field_is (f, "Resent-Bcc"))
        g_ptr_array_remove_index (fields, i - 1);
    }
  if (find_field (fields, "Date") == NULL)
    {
      g_autofree char *date = rfc5322_date ();
      g_autofree char *raw = g_strdup_printf ("Date: %s\r\n", date);
      g_ptr_array_insert (fields, 0, field_new ("Date", raw));
    }
  if ((mid = find_field (fields, "Message-ID")) != NULL)
    message_id = g_strstrip (g_strdelimit (g_strdup (field_value (mid)), "\r\n", ' '));
  else
    {
      const char *at = strrchr (sender, '@');
      g_autofree char *uuid = g_uuid_string_random ();
      g_autofree char *raw = NULL;

      message_id = g_strdup_printf ("<%s@%s>", uuid, at && at[1] ? at + 1 : "securemail.invalid");
      raw = g_strdup_printf ("Message-ID: %s\r\n", message_id);
      g_ptr_array_add (fields, field_new ("Message-ID", raw));
    }

  receipt = config->request_receipts && !is_report (fields);
  if (receipt)
    add_receipt_request (fields, sender, smime);

  /* 2. The keys. */
  g_mutex_lock (&store_lock);
  if (store == NULL)
    store = get_default_store_locked (error);
  ok = store != NULL &&
       choose_keys (store, config, sender, recipients, &keys, missing, reasons, &signer_fpr, &ctx, error);
  g_mutex_unlock (&store_lock);
  if (!ok)
    goto fail;

  encrypt = keys.recipients != NULL;
  if (!encrypt && config->encrypt == SM_ENCRYPT_REQUIRED)
    {
      g_autoptr(GString) names = g_string_new (NULL);
      g_ptr_array_add (missing, NULL);
      g_ptr_array_add (reasons, NULL);
      for (guint i = 0; missing->pdata[i] != NULL; i++)
        g_string_append_printf (names, "%s%s", i ? ", " : "", (char *) missing->pdata[i]);
      g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                   _("Not sent: your organisation requires encryption, and there is no usable key for %s (%s)"),
                   names->str, (char *) reasons->pdata[0]);
      g_ptr_array_set_size (missing, missing->len - 1);
      g_ptr_array_set_size (reasons, reasons->len - 1);
      goto fail;
    }

  /* 3. The signed entity.  RFC 9788 §4.1: the cryptographic payload carries
   * copies of every non-structural header field; when encrypting, HP-Outer
   * records what the outside shows (§2.2) and hp="cipher", else hp="clear". */
  protected_fields = g_string_new (NULL);
  for (guint i = 0; i < fields->len; i++)
    {
      const Field *f = fields->pdata[i];
      if (!field_is_structural (f))
        g_string_append (protected_fields, f->raw);
    }
  if (encrypt)
    for (guint i = 0; i < fields->len; i++)
      {
        const Field *f = fields->pdata[i];
        if (field_is_structural (f))
          continue;
        if (field_is (f, "Subject"))
          g_string_append (protected_fields, "HP-Outer: Subject: " OBSCURED_SUBJECT "\r\n");
        else
          g_string_append_printf (protected_fields, "HP-Outer: %s", f->raw);
      }
  /* The body with the message's own Content-* fields: that is the entity
   * canon_entity() reads. */
  content = g_string_new (NULL);
  for (guint i = 0; i < fields->len; i++)
    {
      const Field *f = fields->pdata[i];
      if (g_ascii_strncasecmp (f->name, "Content-", 8) == 0)
        g_string_append (content, f->raw);
    }
  g_string_append (content, "\r\n");
  g_string_append_len (content, data + body_at, len - body_at);
  entity = g_string_new (NULL);
  if (!canon_entity (&canon, content->str, content->len, 0, protected_fields->str,
                     encrypt ? "hp=\"cipher\"" : "hp=\"clear\"", entity, error))
    goto fail;

  /* 4. Sign (and, for OpenPGP, encrypt in the same pass: RFC 3156 §6.2). */
  gpgme_set_armor (ctx, !smime);
  gpgme_set_textmode (ctx, 0);
  err = gpgme_signers_add (ctx, keys.signer);
  if (!err)
    err = gpgme_data_new_from_mem (&in, entity->str, entity->len, 0);
  if (!err)
    err = gpgme_data_new (&dout);
  if (err)
    {
      gpgme_failed (error, err, _("Preparing to sign the message"));
      goto fail;
    }
  if (encrypt && !smime)
    /* certstore's note: OpenPGP keys it hands out for recipients are ones the
     * user imported for them; gpg's web of trust would call them unknown. */
    err = gpgme_op_encrypt_sign (ctx, (gpgme_key_t *) keys.recipients->pdata, GPGME_ENCRYPT_ALWAYS_TRUST, in,
                                 dout);
  else
    err = gpgme_op_sign (ctx, in, dout, GPGME_SIG_MODE_DETACH);
  if (err)
    {
      gpgme_failed (error, err, encrypt && !smime ? _("Signing and encrypting the message")
                                                  : _("Signing the message"));
      goto fail;
    }
  sres = gpgme_op_sign_result (ctx);
  if (sres == NULL || sres->signatures == NULL || sres->invalid_signers != NULL ||
      !micalg_for (sres->signatures->hash_algo, smime, &micalg, &mic_type))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED,
                   _("Signing the message gave no usable signature; run `securemail doctor`"));
      goto fail;
    }
  mic = compute_mic (mic_type, entity);
  if (receipt)
    receipt_mic = compute_mic (G_CHECKSUM_SHA256, entity);
  gpgme_data_release (in);
  in = NULL;
  sig = take_data (dout);
  dout = NULL;

  /* 5. The outer message. */
  boundary = new_boundary ();
  out = g_string_new (NULL);
  for (guint i = 0; i < fields->len; i++)
    {
      const Field *f = fields->pdata[i];
      if (field_is_structural (f))
        continue;
      if (encrypt && field_is (f, "Subject"))
        g_string_append (out, "Subject: " OBSCURED_SUBJECT "\r\n");
      else
        g_string_append (out, f->raw);
    }
  g_string_append (out, "MIME-Version: 1.0\r\n");

  if (encrypt && !smime)
    {
      g_string_append_printf (out,
                              "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
                              " boundary=\"%s\"\r\n\r\n"
                              "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
                              "--%s\r\n"
                              "Content-Type: application/pgp-encrypted\r\n"
                              "Content-Description: PGP/MIME version identification\r\n\r\n"
                              "Version: 1\r\n\r\n"
                              "--%s\r\n"
                              "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
                              "Content-Description: OpenPGP encrypted message\r\n"
                              "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n",
                              boundary, boundary, boundary);
      append_crlf (out, sig);
      g_string_append_printf (out, "\r\n--%s--\r\n", boundary);
    }
  else
    {
      /* multipart/signed (RFC 1847 §2.1, RFC 8551 §3.5.3, RFC 3156 §5). The
       * CRLF before each delimiter belongs to the delimiter, so the signed
       * bytes are exactly @entity. */
      signed_part = g_string_new (NULL);
      g_string_append_printf (signed_part,
                              "Content-Type: multipart/signed; protocol=\"%s\"; micalg=%s;\r\n"
                              " boundary=\"%s\"\r\n\r\n"
                              "%s\r\n"
                              "--%s\r\n",
                              smime ? "application/pkcs7-signature" : "application/pgp-signature", micalg,
                              boundary,
                              smime ? "This is a cryptographically signed message in MIME format."
                                    : "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)",
                              boundary);
      g_string_append_len (signed_part, entity->str, entity->len);
      g_string_append_printf (signed_part, "\r\n--%s\r\n", boundary);
      if (smime)
        {
          g_string_append (signed_part,
                           "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
                           "Content-Transfer-Encoding: base64\r\n"
                           "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
                           "Content-Description: S/MIME Cryptographic Signature\r\n\r\n");
          append_base64 (signed_part, g_bytes_get_data (sig, NULL), g_bytes_get_size (sig));
        }
      else
        {
          g_string_append (signed_part,
                           "Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
                           "Content-Description: OpenPGP digital signature\r\n"
                           "Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n");
          append_crlf (signed_part, sig);
        }
      g_string_append_printf (signed_part, "\r\n--%s--\r\n", boundary);

      if (!encrypt)
        g_string_append_len (out, signed_part->str, signed_part->len);
      else
        {
          /* S/MIME: gpgsm cannot sign and encrypt in one pass; the signed
           * entity is enveloped whole (RFC 8551 §3.7). */
          g_autoptr(GBytes) cipher = NULL;

          gpgme_signers_clear (ctx);
          gpgme_set_armor (ctx, 0);
          err = gpgme_data_new_from_mem (&in, signed_part->str, signed_part->len, 0);
          if (!err)
            err = gpgme_data_new (&dout);
          if (!err)
            err = gpgme_op_encrypt (ctx, (gpgme_key_t *) keys.recipients->pdata, GPGME_ENCRYPT_ALWAYS_TRUST,
                                    in, dout);
          if (err)
            {
              gpgme_failed (error, err, _("Encrypting the message"));
              goto fail;
            }
          gpgme_data_release (in);
          in = NULL;
          cipher = take_data (dout);
          dout = NULL;
          g_string_append (out,
                           "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
                           " name=\"smime.p7m\"\r\n"
                           "Content-Transfer-Encoding: base64\r\n"
                           "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
                           "Content-Description: S/MIME Encrypted Message\r\n\r\n");
          append_base64 (out, g_bytes_get_data (cipher, NULL), g_bytes_get_size (cipher));
        }
    }

  gpgme_release (ctx);
  keys_clear (&keys);
  if (info != NULL)
    {
      SmOutgoingInfo *i = g_new0 (SmOutgoingInfo, 1);

      i->signed_ = TRUE;
      i->encrypted = encrypt;
      i->protocol = config->protocol;
      i->micalg = g_steal_pointer (&micalg);
      i->message_id = g_steal_pointer (&message_id);
      i->mic = g_steal_pointer (&mic);
      i->signer = g_steal_pointer (&signer_fpr);
      i->receipt_mic = g_steal_pointer (&receipt_mic);
      g_ptr_array_add (missing, NULL);
      i->missing = g_strdupv ((char **) missing->pdata);
      *info = i;
    }
  g_debug ("Outgoing message %s and %s", encrypt ? "signed" : "signed only",
           encrypt ? "encrypted" : "not encrypted");
  {
    gsize n = out->len;
    return g_bytes_new_take (g_string_free (g_steal_pointer (&out), FALSE), n);
  }

fail:
  if (in)
    gpgme_data_release (in);
  if (dout)
    gpgme_data_release (dout);
  if (ctx)
    gpgme_release (ctx);
  keys_clear (&keys);
  return NULL;
}

GBytes *
sm_outgoing_protect (SmCertstore        *store,
                     const SmConfig     *config,
                     const char         *sender,
                     const char * const *recipients,
                     GBytes             *message,
                     SmOutgoingInfo    **info,
                     GError            **error)
{
  /* The home is known before the store: the default one opens inside. */
  g_autofree char *home = store != NULL ? g_strdup (sm_certstore_get_home (store)) : sm_certstore_default_home ();
  SmTrustdbUse *use = sm_trustdb_use_begin (home);
  g_autoptr(SmOutgoingInfo) this_info = NULL;
  g_autoptr(GError) local = NULL;
  GBytes *protected_msg = NULL;

  /* A keyring that changed meanwhile (a fetch's gpgsm storing a
   * certificate) may have hidden a recipient's key for an instant:
   * "if-possible" would then send without encryption. */
  do
    {
      g_clear_pointer (&protected_msg, g_bytes_unref);
      g_clear_pointer (&this_info, sm_outgoing_info_free);
      g_clear_error (&local);
      protected_msg = protect (store, config, sender, recipients, message, info ? &this_info : NULL, &local);
    }
  while (sm_trustdb_use_redo (use));
  sm_trustdb_use_end (use);
  if (protected_msg == NULL && local != NULL)
    g_propagate_error (error, g_steal_pointer (&local));
  else if (info != NULL)
    *info = g_steal_pointer (&this_info);
  return protected_msg;
}

char *
sm_outgoing_error_to_smtp (const GError *error, guint *code)
{
  guint c;
  const char *enhanced;

  if (error->domain != SM_ERROR)
    {
      c = 451;
      enhanced = "4.7.0";
    }
  else
    switch (error->code)
      {
      case SM_ERROR_POLICY:   c = 550; enhanced = "5.7.1"; break;
      case SM_ERROR_LOCKED:
      case SM_ERROR_KEYRING:  c = 454; enhanced = "4.7.0"; break;
      case SM_ERROR_CONFIG:   c = 554; enhanced = "5.7.0"; break;
      case SM_ERROR_TOO_BIG:  c = 552; enhanced = "5.3.4"; break;
      case SM_ERROR_PROTOCOL: c = 554; enhanced = "5.6.0"; break;
      default:                c = 451; enhanced = "4.7.0"; break;
      }
  if (code != NULL)
    *code = c;
  if (error->domain == SM_ERROR && (error->code == SM_ERROR_LOCKED || error->code == SM_ERROR_KEYRING))
    return g_strdup_printf (_("%u %s Not sent: unlock SecureMail and send again (%s)"), c, enhanced,
                            error->message);
  return g_strdup_printf ("%u %s %s", c, enhanced, error->message);
}
