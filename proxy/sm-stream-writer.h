/* sm-stream-writer.h: ordered non-blocking writes to one output stream.
 *
 * A session relays bytes as they arrive and must never block the main loop
 * nor reorder them; the writer queues GBytes, writes one at a time, and
 * tells its owner when the queue drains (to resume reading from the other
 * side: that is the proxy's back-pressure) or when a write fails.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _SmStreamWriter SmStreamWriter;

/* After a write completes with at most this many bytes still queued, the
 * owner is told (on_drained) so it can read more: refilling before the queue
 * runs dry keeps both sockets busy. */
#define SM_STREAM_WRITER_LOW_WATER (128 * 1024)

/* @on_drained runs after a write when at most SM_STREAM_WRITER_LOW_WATER
 * bytes remain queued (check sm_stream_writer_pending() == 0 for "all
 * written"), @on_error
 * once when a write fails (the writer then drops everything queued).
 * Neither holds a reference on @user_data: free the writer first. */
typedef void (*SmStreamWriterFunc) (SmStreamWriter *writer, const GError *error, gpointer user_data);

SmStreamWriter *sm_stream_writer_new (GOutputStream *stream, SmStreamWriterFunc on_drained,
                                      SmStreamWriterFunc on_error, gpointer user_data);
/* @stream must be pollable (sockets and TLS streams are).  Cancels pending
 * writes on free; no callback runs after that. */
void sm_stream_writer_free (SmStreamWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmStreamWriter, sm_stream_writer_free)

/* Queues a copy of @data. */
void sm_stream_writer_write (SmStreamWriter *writer, const void *data, gsize len);
void sm_stream_writer_write_bytes (SmStreamWriter *writer, GBytes *bytes);
void sm_stream_writer_printf (SmStreamWriter *writer, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Bytes queued and not yet written. */
gsize sm_stream_writer_pending (SmStreamWriter *writer);
/* Switches to another stream (after STARTTLS); the queue must be empty. */
void sm_stream_writer_set_stream (SmStreamWriter *writer, GOutputStream *stream);

G_END_DECLS
