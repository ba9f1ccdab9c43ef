/* sm-stream-writer.c: ordered asynchronous writes to one output stream. */
#include "config.h"

#include <string.h>

#include "sm-stream-writer.h"

struct _SmStreamWriter {
  GOutputStream *stream;
  GQueue queue;           /* GBytes* */
  gsize pending;
  gboolean writing;
  gboolean failed;
  GCancellable *cancellable;
  struct _WriteOp *current;   /* the write in flight, if any */
  SmStreamWriterFunc on_drained;
  SmStreamWriterFunc on_error;
  gpointer user_data;
};

/* The async callback outlives a freed writer; this box tells it so. */
typedef struct _WriteOp {
  SmStreamWriter *writer;   /* NULL once the writer is freed */
  GBytes *bytes;
} WriteOp;

static void write_next (SmStreamWriter *writer);

SmStreamWriter *
sm_stream_writer_new (GOutputStream *stream, SmStreamWriterFunc on_drained,
                      SmStreamWriterFunc on_error, gpointer user_data)
{
  SmStreamWriter *w = g_new0 (SmStreamWriter, 1);
  w->stream = g_object_ref (stream);
  g_queue_init (&w->queue);
  w->cancellable = g_cancellable_new ();
  w->on_drained = on_drained;
  w->on_error = on_error;
  w->user_data = user_data;
  return w;
}

void
sm_stream_writer_free (SmStreamWriter *writer)
{
  if (writer == NULL)
    return;
  if (writer->current != NULL)
    writer->current->writer = NULL;
  g_cancellable_cancel (writer->cancellable);
  g_clear_object (&writer->cancellable);
  g_queue_clear_full (&writer->queue, (GDestroyNotify) g_bytes_unref);
  g_clear_object (&writer->stream);
  g_free (writer);
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  WriteOp *op = user_data;
  SmStreamWriter *w = op->writer;
  g_autoptr(GError) error = NULL;
  gboolean ok = g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error);

  if (w == NULL)
    {
      g_bytes_unref (op->bytes);
      g_free (op);
      return;
    }
  w->current = NULL;
  w->writing = FALSE;
  w->pending -= g_bytes_get_size (op->bytes);
  g_bytes_unref (op->bytes);
  g_free (op);

  if (!ok)
    {
      w->failed = TRUE;
      g_queue_clear_full (&w->queue, (GDestroyNotify) g_bytes_unref);
      w->pending = 0;
      if (w->on_error)
        w->on_error (w, error, w->user_data);
      return;
    }
  if (g_queue_is_empty (&w->queue))
    {
      if (w->on_drained)
        w->on_drained (w, NULL, w->user_data);
      return;
    }
  write_next (w);
}

static void
write_next (SmStreamWriter *w)
{
  WriteOp *op;
  gsize len;
  const void *data;

  if (w->writing || w->failed || g_queue_is_empty (&w->queue))
    return;
  op = g_new0 (WriteOp, 1);
  op->writer = w;
  op->bytes = g_queue_pop_head (&w->queue);
  w->current = op;
  w->writing = TRUE;
  data = g_bytes_get_data (op->bytes, &len);
  g_output_stream_write_all_async (w->stream, data, len, G_PRIORITY_DEFAULT, w->cancellable,
                                   on_written, op);
}

void
sm_stream_writer_write_bytes (SmStreamWriter *writer, GBytes *bytes)
{
  if (writer->failed || g_bytes_get_size (bytes) == 0)
    return;
  writer->pending += g_bytes_get_size (bytes);
  g_queue_push_tail (&writer->queue, g_bytes_ref (bytes));
  write_next (writer);
}

void
sm_stream_writer_write (SmStreamWriter *writer, const void *data, gsize len)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, len);
  sm_stream_writer_write_bytes (writer, bytes);
}

void
sm_stream_writer_printf (SmStreamWriter *writer, const char *format, ...)
{
  va_list ap;
  char *s;
  gsize len;

  va_start (ap, format);
  s = g_strdup_vprintf (format, ap);
  va_end (ap);
  len = strlen (s);
  {
    g_autoptr(GBytes) bytes = g_bytes_new_take (s, len);
    sm_stream_writer_write_bytes (writer, bytes);
  }
}

gsize
sm_stream_writer_pending (SmStreamWriter *writer)
{
  return writer->pending;
}

void
sm_stream_writer_set_stream (SmStreamWriter *writer, GOutputStream *stream)
{
  g_return_if_fail (!writer->writing && g_queue_is_empty (&writer->queue));
  g_set_object (&writer->stream, stream);
}
