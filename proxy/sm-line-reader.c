/* sm-line-reader.c: blocking, bounded line reading. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-wipe.h"
#include "sm-line-reader.h"

struct _SmLineReader {
  GInputStream *stream;
  GByteArray *buf;
};

SmLineReader *
sm_line_reader_new (GInputStream *stream)
{
  SmLineReader *reader = g_new0 (SmLineReader, 1);
  reader->stream = g_object_ref (stream);
  reader->buf = g_byte_array_new ();
  return reader;
}

void
sm_line_reader_free (SmLineReader *reader)
{
  if (reader == NULL)
    return;
  g_clear_object (&reader->stream);
  /* The buffer may have held a password echo or a login line. */
  sm_wipe_byte_array (reader->buf);
  g_byte_array_unref (reader->buf);
  g_free (reader);
}

static gboolean
fill (SmLineReader *reader, GCancellable *cancellable, GError **error)
{
  guint8 chunk[SM_LINE_READER_CHUNK];
  g_autoptr(GError) local = NULL;
  gssize n = g_input_stream_read (reader->stream, chunk, sizeof chunk, cancellable, &local);

  if (n < 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_UNAVAILABLE, _("Connection to the provider failed: %s"),
                   local->message);
      return FALSE;
    }
  if (n == 0)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_UNAVAILABLE,
                           _("The provider closed the connection"));
      return FALSE;
    }
  g_byte_array_append (reader->buf, chunk, (guint) n);
  return TRUE;
}

char *
sm_line_reader_read_line (SmLineReader *reader, gsize max_len, GCancellable *cancellable,
                          GError **error)
{
  gsize scanned = 0;

  for (;;)
    {
      /* An empty GByteArray has no data pointer: memchr() must not see it. */
      guint8 *lf = reader->buf->len > scanned
                       ? memchr (reader->buf->data + scanned, '\n', reader->buf->len - scanned)
                       : NULL;
      if (lf != NULL)
        {
          gsize len = lf - reader->buf->data;
          char *line;
          if (len > max_len)
            break;
          line = g_strndup ((const char *) reader->buf->data, len > 0 && lf[-1] == '\r' ? len - 1 : len);
          g_byte_array_remove_range (reader->buf, 0, (guint) len + 1);
          return line;
        }
      scanned = reader->buf->len;
      if (scanned > max_len)
        break;
      if (!fill (reader, cancellable, error))
        return NULL;
    }
  g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
               _("The provider sent a line longer than %" G_GSIZE_FORMAT " bytes"), max_len);
  return NULL;
}

GBytes *
sm_line_reader_read_bytes (SmLineReader *reader, gsize len, GCancellable *cancellable,
                           GError **error)
{
  GBytes *out;

  while (reader->buf->len < len)
    if (!fill (reader, cancellable, error))
      return NULL;
  out = g_bytes_new (reader->buf->data, len);
  g_byte_array_remove_range (reader->buf, 0, (guint) len);
  return out;
}

gsize
sm_line_reader_buffered (SmLineReader *reader)
{
  return reader->buf->len;
}

GBytes *
sm_line_reader_steal_buffer (SmLineReader *reader)
{
  GBytes *out = g_bytes_new (reader->buf->data, reader->buf->len);
  g_byte_array_set_size (reader->buf, 0);
  return out;
}

gboolean
sm_line_reader_set_stream (SmLineReader *reader, GInputStream *stream, GError **error)
{
  if (reader->buf->len > 0)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The provider sent data before the TLS handshake; refusing it"));
      return FALSE;
    }
  g_set_object (&reader->stream, stream);
  return TRUE;
}

void
sm_line_reader_unread (SmLineReader *reader, GBytes *bytes)
{
  gsize len = 0;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  if (len > 0)
    g_byte_array_prepend (reader->buf, data, (guint) len);
}
