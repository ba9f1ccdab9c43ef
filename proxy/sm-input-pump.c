/* sm-input-pump.c: non-blocking reading for the sessions. */
#include "config.h"

#include "sm-input-pump.h"

struct _SmInputPump {
  GInputStream *stream;
  GObject *owner;
  SmInputPumpStep step;
  SmInputPumpPaused paused;
  SmInputPumpEof eof;
  GSource *source;      /* NULL while not watching */
  GByteArray *backlog;  /* NULL when empty, so idle pumps hold nothing */
  gboolean busy;        /* inside feed(): resume() must not recurse */
};

static guint8 shared_buffer[SM_INPUT_PUMP_CHUNK];

SmInputPump *
sm_input_pump_new (GInputStream *stream, GObject *owner, SmInputPumpStep step,
                   SmInputPumpPaused paused, SmInputPumpEof eof)
{
  SmInputPump *pump = g_new0 (SmInputPump, 1);

  g_return_val_if_fail (G_IS_POLLABLE_INPUT_STREAM (stream), NULL);
  pump->stream = g_object_ref (stream);
  pump->owner = owner;
  pump->step = step;
  pump->paused = paused;
  pump->eof = eof;
  return pump;
}

void
sm_input_pump_stop (SmInputPump *pump)
{
  if (pump->source != NULL)
    {
      g_source_destroy (pump->source);
      g_clear_pointer (&pump->source, g_source_unref);
    }
}

void
sm_input_pump_free (SmInputPump *pump)
{
  if (pump == NULL)
    return;
  sm_input_pump_stop (pump);
  g_clear_object (&pump->stream);
  g_clear_pointer (&pump->backlog, g_byte_array_unref);
  g_free (pump);
}

static void
backlog_append (SmInputPump *pump, const guint8 *data, gsize len)
{
  if (len == 0)
    return;
  if (pump->backlog == NULL)
    pump->backlog = g_byte_array_new ();
  g_byte_array_append (pump->backlog, data, (guint) len);
}

/* Steps through @buf while the owner takes input; keeps the rest. */
static void
feed (SmInputPump *pump, const guint8 *buf, gsize len)
{
  gsize off = 0;

  pump->busy = TRUE;
  while (off < len && !pump->paused (pump->owner))
    {
      gsize used = pump->step (pump->owner, buf + off, len - off);
      if (used == 0)
        break;
      off += used;
    }
  pump->busy = FALSE;
  backlog_append (pump, buf + off, len - off);
}

static void watch (SmInputPump *pump);

/* Reads and processes until the stream would block, ends, or the owner
 * pauses.  Never returns to the main loop with data that only the stream
 * object holds: a TLS stream keeps the rest of a decrypted record when a read
 * asks for less than the record, and its socket does not become readable
 * again for it (seen as a stalled FETCH in the benchmark).  Returns FALSE
 * when the stream ended or failed (the owner was told). */
static gboolean
drain (SmInputPump *pump)
{
  while (!pump->paused (pump->owner) && pump->backlog == NULL)
    {
      g_autoptr(GError) error = NULL;
      gsize filled = 0;
      gssize n = 0;

      /* A TLS stream returns one record (at most 16 KB) per read: gather
       * what is there into one chunk so the owner relays it in one write. */
      while (filled < sizeof shared_buffer)
        {
          n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (pump->stream),
                                                        shared_buffer + filled, sizeof shared_buffer - filled,
                                                        NULL, &error);
          if (n <= 0)
            break;
          filled += (gsize) n;
        }
      if (filled > 0)
        feed (pump, shared_buffer, filled);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return TRUE;
      if (n <= 0 && filled < sizeof shared_buffer)
        {
          /* End of stream or an error after whatever came before it. */
          sm_input_pump_stop (pump);
          pump->eof (pump->owner, error);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
on_readable (GObject *stream, gpointer user_data)
{
  SmInputPump *pump = user_data;
  g_autoptr(GObject) keep = g_object_ref (pump->owner);

  (void) keep;   /* held until return: a callback below may drop the last reference */

  if (!drain (pump))
    return G_SOURCE_REMOVE;
  if (pump->source != NULL && (pump->backlog != NULL || pump->paused (pump->owner)))
    {
      sm_input_pump_stop (pump);
      return G_SOURCE_REMOVE;
    }
  return pump->source != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static void
watch (SmInputPump *pump)
{
  if (pump->source != NULL)
    return;
  pump->source = g_pollable_input_stream_create_source (G_POLLABLE_INPUT_STREAM (pump->stream), NULL);
  g_source_set_callback (pump->source, G_SOURCE_FUNC (on_readable), pump, NULL);
  g_source_attach (pump->source, NULL);
}

void
sm_input_pump_resume (SmInputPump *pump)
{
  g_autoptr(GObject) keep = g_object_ref (pump->owner);

  (void) keep;   /* held until return: a callback below may drop the last reference */

  if (pump->busy)
    return;   /* the running feed() continues by itself */
  if (pump->backlog != NULL)
    {
      g_autoptr(GByteArray) backlog = g_steal_pointer (&pump->backlog);
      feed (pump, backlog->data, backlog->len);
    }
  if (pump->backlog == NULL && !pump->paused (pump->owner))
    {
      /* Read at once: the stream may hold data that will never make its
       * source fire (see drain()). */
      pump->busy = TRUE;
      if (!drain (pump))
        {
          pump->busy = FALSE;
          return;
        }
      pump->busy = FALSE;
      if (pump->backlog == NULL && !pump->paused (pump->owner))
        watch (pump);
    }
}

gboolean
sm_input_pump_is_watching (SmInputPump *pump)
{
  return pump->source != NULL;
}

gsize
sm_input_pump_backlog (SmInputPump *pump)
{
  return pump->backlog ? pump->backlog->len : 0;
}

void
sm_input_pump_push (SmInputPump *pump, const guint8 *data, gsize len)
{
  g_autoptr(GByteArray) old = g_steal_pointer (&pump->backlog);

  backlog_append (pump, data, len);
  if (old != NULL)
    backlog_append (pump, old->data, old->len);
}

void
sm_input_pump_set_stream (SmInputPump *pump, GInputStream *stream)
{
  g_return_if_fail (G_IS_POLLABLE_INPUT_STREAM (stream));
  sm_input_pump_stop (pump);
  g_set_object (&pump->stream, stream);
}

typedef struct {
  GSocketConnection *connection;
  GSource *read_source;
  guint timeout_id;
  gsize discarded;
} Linger;

static void
linger_finish (Linger *l)
{
  g_clear_handle_id (&l->timeout_id, g_source_remove);
  if (l->read_source)
    {
      g_source_destroy (l->read_source);
      g_clear_pointer (&l->read_source, g_source_unref);
    }
  g_socket_close (g_socket_connection_get_socket (l->connection), NULL);
  g_object_unref (l->connection);
  g_free (l);
}

static gboolean
linger_timeout (gpointer user_data)
{
  Linger *l = user_data;
  l->timeout_id = 0;
  linger_finish (l);
  return G_SOURCE_REMOVE;
}

static gboolean
linger_readable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  Linger *l = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_receive_with_blocking (socket, (char *) shared_buffer, sizeof shared_buffer, FALSE, NULL, &error);

  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  if (n > 0 && (l->discarded += (gsize) n) < SM_LINGER_MAX_BYTES)
    return G_SOURCE_CONTINUE;
  g_clear_pointer (&l->read_source, g_source_unref);   /* returning REMOVE destroys it */
  linger_finish (l);
  return G_SOURCE_REMOVE;
}

void
sm_socket_linger_close (GSocketConnection *connection)
{
  GSocket *socket = g_socket_connection_get_socket (connection);
  Linger *l;

  if (g_socket_is_closed (socket))
    return;
  if (!g_socket_shutdown (socket, FALSE, TRUE, NULL))
    {
      g_socket_close (socket, NULL);
      return;
    }
  l = g_new0 (Linger, 1);
  l->connection = g_object_ref (connection);
  l->read_source = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (l->read_source, G_SOURCE_FUNC (linger_readable), l, NULL);
  g_source_attach (l->read_source, NULL);
  l->timeout_id = g_timeout_add (SM_LINGER_TIMEOUT_MS, linger_timeout, l);
}
