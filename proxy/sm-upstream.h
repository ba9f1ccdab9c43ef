/* sm-upstream.h: the proxy's connections to the provider.
 *
 * Every connection is checked against [policy] allowed_upstreams, uses
 * implicit TLS or a STARTTLS that the provider must offer (never a
 * downgrade), and is verified by sm_tls_client_handshake().  These calls
 * block; the sessions run them in GTask worker threads.
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"

G_BEGIN_DECLS

#define SM_UPSTREAM_CONNECT_TIMEOUT_S 20     /* TCP connect */
#define SM_UPSTREAM_IO_TIMEOUT_S      60     /* each read/write while logging in or submitting */
#define SM_UPSTREAM_MAX_LINE          (64 * 1024)
#define SM_UPSTREAM_MAX_HANDSHAKE_LITERAL (64 * 1024)  /* literals the proxy reads itself at login */

typedef struct {
  GSocketConnection *socket;  /* the TCP connection under the TLS stream */
  GIOStream *stream;          /* the verified TLS stream */
  GBytes *pending;            /* bytes already read after login; deliver before reading more */
  char *capabilities;         /* the provider's capabilities after login, space separated */
  char *greeting;             /* the provider's greeting text, for status/doctor */
} SmImapUpstream;

void sm_imap_upstream_free (SmImapUpstream *upstream);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmImapUpstream, sm_imap_upstream_free)

/* Connects to [upstream] imap, establishes verified TLS, logs in as
 * [upstream] username with @password (NULL with auth = certificate, which
 * logs in with SASL EXTERNAL, RFC 4422 Appendix A).  Errors: SM_ERROR_POLICY,
 * SM_ERROR_UNAVAILABLE (cannot connect), SM_ERROR_TLS, SM_ERROR_AUTH (the
 * provider refused the login), SM_ERROR_PROTOCOL.  Messages are fit to show
 * a user.  On success the socket has no timeout (IDLE may last 29 minutes). */
SmImapUpstream *sm_imap_upstream_open (const SmConfig *config, const char *password,
                                       GCancellable *cancellable, GError **error);

/* Sets the IMAP keyword @keyword (e.g. "$Personal") on message @uid of
 * @mailbox (its name as the client sent it: ASCII, modified UTF-7):
 * SELECT, UID STORE +FLAGS, LOGOUT on @upstream, which must be freshly
 * logged in and is spent afterwards.  Fails with SM_ERROR_FAILED (with the
 * provider's reason) when the mailbox cannot be opened, the store is
 * refused, or no message has that UID; SM_ERROR_UNAVAILABLE on connection
 * problems.  Blocking. */
gboolean sm_imap_upstream_add_keyword (SmImapUpstream *upstream, const char *mailbox, guint32 uid,
                                       const char *keyword, GCancellable *cancellable, GError **error);

#define SM_UPSTREAM_MAX_QUOTED_TEXT 300   /* characters of provider text quoted to users */

/* Provider text quoted in a reply, a log or D-Bus status: made valid UTF-8,
 * control characters replaced, cut to SM_UPSTREAM_MAX_QUOTED_TEXT.  A
 * provider (or whoever sits in front of it) must not be able to inject
 * lines into our replies or break the D-Bus string.  Returns a new string. */
char *sm_upstream_sanitize_text (const char *text);

/* The secret sm_imap_upstream_open() and sm_smtp_client_open() take for
 * @config's [upstream] auth: TRUE with *secret the provider password from
 * the keyring, or for oauth2 a current access token
 * (sm_oauth2_get_access_token(); the logins then use SASL OAUTHBEARER, or
 * XOAUTH2 when only that is offered); TRUE with *secret NULL for
 * certificate (the TLS client certificate logs in).  Fails like those
 * (SM_ERROR_NO_SECRET, SM_ERROR_CONSENT, ...).  Blocking.  Free *secret
 * with sm_keyring_free(). */
gboolean sm_upstream_get_secret (const SmConfig *config, char **secret, GCancellable *cancellable,
                                 GError **error);

/* Opens the TCP connection to @endpoint after the policy check, with
 * SM_UPSTREAM_CONNECT_TIMEOUT_S and SM_UPSTREAM_IO_TIMEOUT_S set. */
GSocketConnection *sm_upstream_connect (const SmConfig *config, const SmEndpoint *endpoint,
                                        GCancellable *cancellable, GError **error);

/* ---- SMTP submission ----------------------------------------------------- */

typedef struct {
  guint code;                 /* 250, 550, ... */
  char *enhanced;             /* "5.7.1" or NULL */
  char *text;                 /* the text of the last line, without code */
} SmSmtpReply;

void sm_smtp_reply_free (SmSmtpReply *reply);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSmtpReply, sm_smtp_reply_free)

typedef struct _SmSmtpClient SmSmtpClient;

/* Connects to [upstream] smtp with verified TLS and authenticates with
 * @password, or with auth = certificate (@password NULL) by AUTH EXTERNAL
 * when the provider offers it, else by the TLS client certificate alone. */
SmSmtpClient *sm_smtp_client_open (const SmConfig *config, const char *password,
                                   GCancellable *cancellable, GError **error);
void          sm_smtp_client_free (SmSmtpClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSmtpClient, sm_smtp_client_free)

/* TRUE when the provider announced the EHLO keyword @ext (e.g. "DSN"). */
gboolean sm_smtp_client_has_extension (SmSmtpClient *client, const char *ext);
/* TRUE when the provider offered the SASL @mechanism (e.g. "EXTERNAL") in
 * its EHLO AUTH line (for the setup assistant's connection test: without
 * EXTERNAL a certificate login to SMTP is only proven by the first
 * message). */
gboolean sm_smtp_client_offers_auth (SmSmtpClient *client, const char *mechanism);

/* Submits one message (CRLF lines, not dot-stuffed) to all @recipients.
 * Returns TRUE when the provider accepted it for every recipient.  When the
 * provider refused (any 4xx/5xx), returns FALSE with SM_ERROR_FAILED, the
 * transaction reset, and *refusal set to the provider's reply (the first
 * refused recipient's, if any); on a connection problem *refusal stays NULL. */
gboolean sm_smtp_client_send (SmSmtpClient *client, const char *sender,
                              const char * const *recipients, GBytes *message,
                              SmSmtpReply **refusal, GCancellable *cancellable, GError **error);

/* Options for sm_smtp_client_send_full() (issue 5, the outbound queue). */
typedef struct {
  /* RFC 3461: when the provider announces DSN, MAIL gets RET=HDRS
   * ENVID=@envid and every RCPT NOTIFY=FAILURE,DELAY.  NULL: no DSN. */
  const char *dsn_envid;
  /* Out: the index in @recipients of the recipient the provider refused at
   * RCPT, or -1 (refused elsewhere, or not refused). */
  int refused_recipient;
} SmSmtpSendOptions;

/* sm_smtp_client_send() with @options (may be NULL: the same as
 * sm_smtp_client_send()).  An empty @sender is the null reverse-path
 * "MAIL FROM:<>" of a delivery report (RFC 5321 §4.5.5). */
gboolean sm_smtp_client_send_full (SmSmtpClient *client, const char *sender,
                                   const char * const *recipients, GBytes *message,
                                   SmSmtpSendOptions *options, SmSmtpReply **refusal,
                                   GCancellable *cancellable, GError **error);

/* Sends QUIT (best effort). */
void sm_smtp_client_quit (SmSmtpClient *client);

G_END_DECLS
