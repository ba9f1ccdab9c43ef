/* sm-smtp-session.h: one mail client's SMTP submission to the proxy.
 *
 * The proxy is the submission server (RFC 6409) for the local client:
 * EHLO, STARTTLS with the local certificate, AUTH PLAIN/LOGIN against the
 * local password, MAIL/RCPT/DATA with SIZE, 8BITMIME, PIPELINING and
 * ENHANCEDSTATUSCODES.  The message is checked (sm_sender_check()) and
 * handed to the provider's submission server; the client's reply says what
 * the provider said, so nothing is accepted that was not delivered onwards.
 */
#pragma once

#include <gio/gio.h>

#include "sm-server.h"

G_BEGIN_DECLS

#define SM_SMTP_MAX_COMMAND_LINE  4096                 /* RFC 5321 §4.5.3.1.4 says 512; AUTH lines are longer */
#define SM_SMTP_MAX_MESSAGE_SIZE  (50 * 1024 * 1024)   /* announced with SIZE (RFC 1870) */
#define SM_SMTP_MAX_RECIPIENTS    500                  /* RFC 5321 §4.5.3.1.8 asks for at least 100 */
#define SM_SMTP_MAX_QUEUED        (256 * 1024)
#define SM_SMTP_IDLE_TIMEOUT_S    300                  /* RFC 5321 §4.5.3.2.7 */
#define SM_SMTP_MAX_AUTH_FAILURES 3
#define SM_SMTP_MAX_ERRORS        10                   /* bad commands before the session is dropped */

#define SM_TYPE_SMTP_SESSION (sm_smtp_session_get_type ())
G_DECLARE_FINAL_TYPE (SmSmtpSession, sm_smtp_session, SM, SMTP_SESSION, GObject)

SmSmtpSession *sm_smtp_session_new (SmServer *server, GSocketConnection *connection);

/* Sends @reply (a full reply line without CRLF, may be NULL) and closes. */
void sm_smtp_session_close (SmSmtpSession *session, const char *reply);

G_END_DECLS
