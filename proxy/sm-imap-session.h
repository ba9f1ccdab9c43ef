/* sm-imap-session.h: one mail client's IMAP connection to the proxy.
 *
 * Before login the proxy is the IMAP server (greeting, CAPABILITY,
 * STARTTLS with the local certificate, LOGIN / AUTHENTICATE PLAIN against
 * the local password).  After it, the session opens its own verified
 * connection to the provider and relays both directions, watching lines
 * and literals with SmImapScanner so that it can filter CAPABILITY, refuse
 * what it cannot relay faithfully (COMPRESS, STARTTLS) and end cleanly when
 * either side goes away.
 */
#pragma once

#include <gio/gio.h>

#include "sm-server.h"

G_BEGIN_DECLS

#define SM_IMAP_READ_CHUNK          (64 * 1024)
#define SM_IMAP_MAX_QUEUED          (512 * 1024)  /* bytes queued to one side before reading pauses */
#define SM_IMAP_PREAUTH_MAX_LINE    (8 * 1024)
#define SM_IMAP_MAX_RESPONSE_LINE   (8 * 1024 * 1024)   /* e.g. SEARCH results of big mailboxes */
#define SM_IMAP_MAX_RESPONSE_LITERAL (G_GUINT64_CONSTANT (4) * 1024 * 1024 * 1024)  /* streamed, never buffered */
#define SM_IMAP_PREAUTH_TIMEOUT_S   120
#define SM_IMAP_MAX_AUTH_FAILURES   3
/* Largest UID set checked against the messages known to be plain before a
 * content FETCH is relayed without a look at the headers. */
#define SM_IMAP_KNOWN_PLAIN_MAX_UIDS 10000

#define SM_TYPE_IMAP_SESSION (sm_imap_session_get_type ())
G_DECLARE_FINAL_TYPE (SmImapSession, sm_imap_session, SM, IMAP_SESSION, GObject)

/* Starts serving @connection (sends the greeting).  The server keeps the
 * session alive until it calls sm_server_session_closed(). */
SmImapSession *sm_imap_session_new (SmServer *server, GSocketConnection *connection);

/* One line describing the session's state for diagnostics (no content,
 * no secrets).  Returns a new string. */
char *sm_imap_session_describe (SmImapSession *session);

/* Sends BYE (when possible) and closes both sides. */
void sm_imap_session_close (SmImapSession *session, const char *bye_text);

G_END_DECLS
