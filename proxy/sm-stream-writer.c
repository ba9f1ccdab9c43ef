/* sm-stream-writer.c: ordered non-blocking writes to one output stream.
 *
 * Writes go straight to the socket when it takes them (the usual case on
 * loopback), and wait for a writable source only when it does not.  An
 * earlier version used g_output_stream_write_all_async() per chunk; its
 * GTask per write cost more CPU than the TLS decryption (perf, issue 2's
 * fetch benchmark). */
#include "config.h"

#include <string.h>

#include "sm-stream-writer.h"

struct _SmStreamWriter {
  GOutputStream *stream;      /* a GPollableOutputStream */
  GQueue queue;               /* GBytes* */
  gsize head_offset;          /* bytes of the head already written */
  gsize pending;
  gboolean failed;
  GError *error;              /* the failure, until reported */
  GSource *writable;          /* waiting for the socket, or NULL */
  guint notify_id;            /* idle that reports drain or failure */
  SmStreamWriterFunc on_drained;
  SmStreamWriterFunc on_error;
  gpointer user_data;
};

SmStreamWriter *
sm_stream_writer_new (GOutputStream *stream, SmStreamWriterFunc on_drained,
                      SmStreamWriterFunc on_error, gpointer user_data)
{
  SmStreamWriter *w = g_new0 (SmStreamWriter, 1);

  g_return_val_if_fail (G_IS_POLLABLE_OUTPUT_STREAM (stream), NULL);
  w->stream = g_object_ref (stream);
  g_queue_init (&w->queue);
  w->on_drained = on_drained;
  w->on_error = on_error;
  w->user_data = user_data;
  return w;
}

static void
stop_waiting (SmStreamWriter *w)
{
  if (w->writable != NULL)
    {
      g_source_destroy (w->writable);
      g_clear_pointer (&w->writable, g_source_unref);
    }
}

void
sm_stream_writer_free (SmStreamWriter *writer)
{
  if (writer == NULL)
    return;
  stop_waiting (writer);
  g_clear_handle_id (&writer->notify_id, g_source_remove);
  g_queue_clear_full (&writer->queue, (GDestroyNotify) g_bytes_unref);
  g_clear_error (&writer->error);
  g_clear_object (&writer->stream);
  g_free (writer);
}

/* Callbacks always run from the main loop, never inside write(): the owner
 * may be in the middle of processing input when it queues a reply. */
static gboolean
notify (gpointer user_data)
{
  SmStreamWriter *w = user_data;

  w->notify_id = 0;
  if (w->error != NULL)
    {
      g_autoptr(GError) error = g_steal_pointer (&w->error);
      if (w->on_error)
        w->on_error (w, error, w->user_data);
      return G_SOURCE_REMOVE;
    }
  if (w->pending <= SM_STREAM_WRITER_LOW_WATER && w->on_drained)
    w->on_drained (w, NULL, w->user_data);
  return G_SOURCE_REMOVE;
}

static void
schedule_notify (SmStreamWriter *w)
{
  if (w->notify_id == 0)
    w->notify_id = g_idle_add (notify, w);
}

static gboolean on_writable (GObject *stream, gpointer user_data);

/* Writes as much as the stream takes now; waits for the socket when it
 * blocks, reports through notify() when done or failed. */
static void
flush (SmStreamWriter *w)
{
  while (!g_queue_is_empty (&w->queue))
    {
      GBytes *head = g_queue_peek_head (&w->queue);
      gsize len;
      const guint8 *data = g_bytes_get_data (head, &len);
      g_autoptr(GError) error = NULL;
      gssize n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (w->stream),
                                                            data + w->head_offset, len - w->head_offset,
                                                            NULL, &error);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          if (w->writable == NULL)
            {
              w->writable = g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (w->stream), NULL);
              g_source_set_callback (w->writable, G_SOURCE_FUNC (on_writable), w, NULL);
              g_source_attach (w->writable, NULL);
            }
          return;
        }
      if (n < 0)
        {
          w->failed = TRUE;
          w->error = g_steal_pointer (&error);
          g_queue_clear_full (&w->queue, (GDestroyNotify) g_bytes_unref);
          w->pending = 0;
          w->head_offset = 0;
          stop_waiting (w);
          schedule_notify (w);
          return;
        }
      w->pending -= (gsize) n;
      w->head_offset += (gsize) n;
      if (w->head_offset == len)
        {
          g_bytes_unref (g_queue_pop_head (&w->queue));
          w->head_offset = 0;
        }
    }
  stop_waiting (w);
  schedule_notify (w);
}

static gboolean
on_writable (GObject *stream, gpointer user_data)
{
  SmStreamWriter *w = user_data;

  /* This source is done either way: flush() makes a new one if the socket
   * blocks again. */
  g_clear_pointer (&w->writable, g_source_unref);
  flush (w);
  return G_SOURCE_REMOVE;
}

void
sm_stream_writer_write_bytes (SmStreamWriter *writer, GBytes *bytes)
{
  if (writer->failed || g_bytes_get_size (bytes) == 0)
    return;
  writer->pending += g_bytes_get_size (bytes);
  g_queue_push_tail (&writer->queue, g_bytes_ref (bytes));
  if (writer->writable == NULL)
    flush (writer);
}

void
sm_stream_writer_write (SmStreamWriter *writer, const void *data, gsize len)
{
  g_autoptr(GBytes) bytes = NULL;

  if (writer->failed || len == 0)
    return;
  /* Fast path: nothing queued, try to write straight from the caller's
   * buffer and copy only what the socket did not take. */
  if (g_queue_is_empty (&writer->queue))
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (writer->stream), data,
                                                            len, NULL, &error);
      if (n == (gssize) len)
        {
          schedule_notify (writer);
          return;
        }
      if (n > 0)
        {
          data = (const guint8 *) data + n;
          len -= (gsize) n;
        }
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          writer->failed = TRUE;
          writer->error = g_steal_pointer (&error);
          schedule_notify (writer);
          return;
        }
    }
  bytes = g_bytes_new (data, len);
  sm_stream_writer_write_bytes (writer, bytes);
}

void
sm_stream_writer_printf (SmStreamWriter *writer, const char *format, ...)
{
  va_list ap;
  g_autofree char *s = NULL;

  va_start (ap, format);
  s = g_strdup_vprintf (format, ap);
  va_end (ap);
  sm_stream_writer_write (writer, s, strlen (s));
}

gsize
sm_stream_writer_pending (SmStreamWriter *writer)
{
  return writer->pending;
}

void
sm_stream_writer_set_stream (SmStreamWriter *writer, GOutputStream *stream)
{
  g_return_if_fail (g_queue_is_empty (&writer->queue) && G_IS_POLLABLE_OUTPUT_STREAM (stream));
  stop_waiting (writer);
  g_set_object (&writer->stream, stream);
}
