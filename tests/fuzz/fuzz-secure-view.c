/* fuzz-secure-view.c: the MIME side of the secure view, without crypto.
 *
 * Arbitrary bytes go through what the proxy runs on every incoming message
 * before any key is touched: sm_secure_view_is_protected() on the header,
 * sm_secure_view_strip_forged() on unprotected mail, and the libetpan MIME
 * walker and multipart splitter that feed GPGME the exact signed bytes.
 */
#include "fuzz-common.h"

/* sm-config.h first: the IMAP session includes both, so this also checks
 * that sm-secure-view.h stays free of certstore's clashing enum names. */
#include "sm-config.h"
#include "sm-mime.h"
#include "sm-secure-view.h"

static gboolean
has_field (const char *data, gsize len, const char *prefix, const char *except)
{
  gsize body_start;
  gsize hlen = sm_mime_header_length (data, len, &body_start);
  g_autoptr(GArray) fields = sm_mime_fields_parse (data, hlen, NULL);

  if (fields == NULL)
    return FALSE;
  for (guint i = 0; i < fields->len; i++)
    {
      const SmMimeField *f = &g_array_index (fields, SmMimeField, i);

      FUZZ_CHECK (f->start + f->len <= hlen);
      FUZZ_CHECK (f->value_start + f->value_len <= hlen);
      if (sm_mime_field_has_prefix (data, f, prefix))
        {
          g_autofree char *value = sm_mime_field_value (data, f);
          g_autofree char *name = g_strndup (data + f->start, f->name_len);

          if (except == NULL || g_ascii_strcasecmp (name, "X-SecureMail-Trust") != 0
              || strcmp (value, except) != 0)
            return TRUE;
        }
    }
  return FALSE;
}

static void
check_parts (const char *data, gsize len, GPtrArray *parts, GError *error, guint max_depth)
{
  if (parts == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == SM_ERROR);
      FUZZ_CHECK (error->code == SM_ERROR_TOO_BIG || error->code == SM_ERROR_PROTOCOL);
      return;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (parts->len <= SM_MIME_MAX_PARTS);
  for (guint i = 0; i < parts->len; i++)
    {
      const SmMimePart *p = parts->pdata[i];
      g_autoptr(GBytes) decoded = NULL;

      FUZZ_CHECK (p->depth <= max_depth);
      FUZZ_CHECK (p->start <= len && p->len <= len - p->start);
      FUZZ_CHECK (p->body_start <= len && p->body_len <= len - p->body_start);
      decoded = sm_mime_decode_body (data + p->body_start, p->body_len, p->encoding);
      FUZZ_CHECK (decoded != NULL);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *text = (const char *) data;
  g_autoptr(GBytes) raw = g_bytes_new_static (data, size);
  g_autoptr(GBytes) stripped = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autoptr(GBytes) canonical = NULL;
  gsize body_start;
  gsize hlen;

  fuzz_init ();

  /* The header decides, and the body never changes the answer. */
  hlen = sm_mime_header_length (text, size, &body_start);
  FUZZ_CHECK (hlen <= size && body_start <= size && hlen <= body_start);
  FUZZ_CHECK (sm_secure_view_is_protected (text, size) == sm_secure_view_is_protected (text, hlen));

  /* Forged fields: the same bytes back, or a copy where the only field of
   * ours is the one we add, and which a second pass leaves as it is. */
  stripped = sm_secure_view_strip_forged (raw);
  FUZZ_CHECK (stripped != NULL);
  if (stripped != raw)
    {
      gsize slen;
      const char *s = g_bytes_get_data (stripped, &slen);

      FUZZ_CHECK (!has_field (s, slen, "X-SecureMail-", "unprotected"));
      again = sm_secure_view_strip_forged (stripped);
      FUZZ_CHECK (g_bytes_equal (again, stripped));
    }
  else
    FUZZ_CHECK (!has_field (text, size, "X-SecureMail-", NULL) || hlen > SM_MIME_MAX_HEADER_SIZE);

  /* The structure walker and the multipart splitter. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) parts = sm_mime_walk (text, size, &error);

    check_parts (text, size, parts, error, SM_MIME_MAX_DEPTH);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) parts = sm_mime_multipart_children (text, size, &error);

    check_parts (text, size, parts, error, 1);
  }

  /* Canonical CRLF: idempotent, and only line ends change. */
  canonical = sm_mime_canonicalize_crlf (raw);
  {
    g_autoptr(GBytes) twice = sm_mime_canonicalize_crlf (canonical);

    FUZZ_CHECK (twice == canonical);
    FUZZ_CHECK (g_bytes_get_size (canonical) >= size);
  }
  return 0;
}
