/* sm-input-pump.h: non-blocking reading for the sessions.
 *
 * A pump watches one pollable input stream, reads what is there into a
 * buffer shared by all pumps (reads and processing happen in the main thread
 * one at a time, so an idle connection holds no read buffer), and hands the
 * bytes to its owner's step function until they are consumed or the owner
 * says it is paused.  Unprocessed bytes wait in a backlog until
 * sm_input_pump_resume().  This is the proxy's back-pressure.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_INPUT_PUMP_CHUNK (64 * 1024)

typedef struct _SmInputPump SmInputPump;

/* Processes some of @buf; returns how many bytes it consumed (> 0 when
 * len > 0 unless it paused). */
typedef gsize    (*SmInputPumpStep) (GObject *owner, const guint8 *buf, gsize len);
/* TRUE while the owner cannot take input (also when it is closing). */
typedef gboolean (*SmInputPumpPaused) (GObject *owner);
/* End of stream (@error NULL) or a read error. */
typedef void     (*SmInputPumpEof) (GObject *owner, const GError *error);

/* @owner is not referenced except while a callback runs. */
SmInputPump *sm_input_pump_new (GInputStream *stream, GObject *owner, SmInputPumpStep step,
                                SmInputPumpPaused paused, SmInputPumpEof eof);
void         sm_input_pump_free (SmInputPump *pump);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmInputPump, sm_input_pump_free)

/* Processes the backlog, then watches the stream unless paused. */
void     sm_input_pump_resume (SmInputPump *pump);
/* Stops watching (the backlog is kept). */
void     sm_input_pump_stop (SmInputPump *pump);
/* TRUE while the pump watches its stream (for diagnostics). */
gboolean sm_input_pump_is_watching (SmInputPump *pump);
/* Bytes received but not processed yet. */
gsize    sm_input_pump_backlog (SmInputPump *pump);
/* Adds bytes to the front of the stream (data read by someone else). */
void     sm_input_pump_push (SmInputPump *pump, const guint8 *data, gsize len);
/* Reads from another stream from now on (after STARTTLS). */
void     sm_input_pump_set_stream (SmInputPump *pump, GInputStream *stream);


#define SM_LINGER_TIMEOUT_MS 2000               /* how long a closing socket keeps reading */
#define SM_LINGER_MAX_BYTES  (4 * 1024 * 1024)  /* and how much it reads before giving up */

/* Closes @connection gracefully: shuts down the sending side (so what was
 * written, a BYE or a 421, is delivered) and discards input for a while
 * before closing.  Closing at once with unread input would make the kernel
 * send a reset, and the peer could lose the final reply (RFC 9051 §7.1.5,
 * RFC 5321 §3.8).  Takes its own reference. */
void sm_socket_linger_close (GSocketConnection *connection);

G_END_DECLS
