/* sm-line-reader.h: blocking, bounded line reading for the proxy's own
 * conversations with the provider (greeting, STARTTLS, login, SMTP
 * submission).  Used from worker threads only; the relay itself is async. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_LINE_READER_CHUNK 4096

typedef struct _SmLineReader SmLineReader;

/* Reads from @stream (a reference is kept). */
SmLineReader *sm_line_reader_new (GInputStream *stream);
void          sm_line_reader_free (SmLineReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmLineReader, sm_line_reader_free)

/* Returns the next line without its CRLF/LF (transfer full), failing with
 * SM_ERROR_TOO_BIG past @max_len bytes, SM_ERROR_UNAVAILABLE at end of
 * stream. */
char *sm_line_reader_read_line (SmLineReader *reader, gsize max_len, GCancellable *cancellable,
                                GError **error);

/* Reads exactly @len bytes (for literals). */
GBytes *sm_line_reader_read_bytes (SmLineReader *reader, gsize len, GCancellable *cancellable,
                                   GError **error);

/* Bytes read from the stream but not consumed yet. */
gsize sm_line_reader_buffered (SmLineReader *reader);
/* Takes the buffered bytes (transfer full; may be empty). */
GBytes *sm_line_reader_steal_buffer (SmLineReader *reader);

/* Puts @bytes back in front of what is buffered (bytes an earlier reader
 * of the same stream read too far, e.g. SmImapUpstream.pending). */
void sm_line_reader_unread (SmLineReader *reader, GBytes *bytes);
/* Replaces the stream (after STARTTLS).  Fails if bytes were buffered from
 * the old one: those came before the TLS handshake and must not be trusted
 * (the STARTTLS command injection class, CVE-2011-0411). */
gboolean sm_line_reader_set_stream (SmLineReader *reader, GInputStream *stream, GError **error);

G_END_DECLS
