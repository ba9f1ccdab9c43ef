/* sm-server.h: the proxy's listeners and the state its sessions share.
 *
 * SmServer owns the configuration, the local TLS certificate, the IMAP and
 * SMTP listeners and the live sessions.  It counts sessions against the named
 * limits and keeps the status the D-Bus service reports (last error,
 * upstream reachability).
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"
#include "sm-secure-view.h"

G_BEGIN_DECLS

#define SM_SERVER_MAX_IMAP_SESSIONS 512   /* Thunderbird opens 5 per account; 200 in the benchmark */
#define SM_SERVER_MAX_SMTP_SESSIONS 64

#define SM_TYPE_SERVER (sm_server_get_type ())
G_DECLARE_FINAL_TYPE (SmServer, sm_server, SM, SERVER, GObject)

/* Takes ownership of @config. */
SmServer *sm_server_new (SmConfig *config, GTlsCertificate *local_cert);

/* Binds both listeners.  Fails with a message naming the address. */
gboolean sm_server_start (SmServer *server, GError **error);
/* Stops listening and closes every session. */
void     sm_server_stop (SmServer *server);

const SmConfig  *sm_server_get_config (SmServer *server);
GTlsCertificate *sm_server_get_local_certificate (SmServer *server);
/* The bound ports (useful when the config said port 0). */
guint16 sm_server_get_imap_port (SmServer *server);
guint16 sm_server_get_smtp_port (SmServer *server);

guint sm_server_get_imap_session_count (SmServer *server);
guint sm_server_get_smtp_session_count (SmServer *server);

/* Status for `securemail status` and the tray.  The last upstream error (a
 * user-facing sentence, never a secret) and whether the last upstream
 * attempt worked. */
void        sm_server_report_upstream (SmServer *server, gboolean ok, const char *error_message);
const char *sm_server_get_last_error (SmServer *server);
gboolean    sm_server_get_upstream_ok (SmServer *server);   /* TRUE until a failure is seen */

/* The outbound queue (issue 5): the spool in sm_config_data_dir()/spool and
 * its relay worker, both made by sm_server_start(); NULL before. */
typedef struct _SmRelayWorker SmRelayWorker;
SmRelayWorker *sm_server_get_queue (SmServer *server);

/* The decrypted views shared by the IMAP sessions (made on first use). */
typedef struct _SmViewCache SmViewCache;
SmViewCache *sm_server_get_view_cache (SmServer *server);

/* Local login failures per client address, shared by the IMAP and SMTP
 * sessions (issue 7; sm-login-limiter.h).  Owned by the server. */
typedef struct _SmLoginLimiter SmLoginLimiter;
SmLoginLimiter *sm_server_get_login_limiter (SmServer *server);

/* ---- the unlock gate (issue 7) ---------------------------------------------
 *
 * While locked, gpg-agent holds no passphrase of the user's keys and the
 * sessions refuse mail: SMTP 454 4.7.0 (sm-smtp-session.c), IMAP NO
 * [UNAVAILABLE]; both say to unlock SecureMail.  The proxy starts locked
 * when [security] start_locked is on (the default unless the policy allows
 * auto_unlock = login-keyring); otherwise the gate is open and the login
 * keyring's passphrases go to gpg-agent when first needed.  With [security]
 * idle_lock = N it locks itself after N minutes without client activity;
 * with lock_on_screen_lock and lock_on_suspend (both on by default) when
 * the session's screen locks or the computer is about to sleep
 * (SmSessionWatch, started by sm_server_start()). */

/* How often the idle auto-lock looks at the clock (at most). */
#define SM_SERVER_IDLE_CHECK_S 30
/* Tests only: a factor in (0, 1] on [security] idle_lock, so that a one
 * minute setting locks within a second (like SECUREMAIL_TEST_RETRY_SCALE). */
#define SM_SERVER_IDLE_SCALE_ENV "SECUREMAIL_TEST_IDLE_SCALE"

/* Why the gate is closed (D-Bus LockReason, the tray's status line). */
typedef enum {
  SM_LOCK_REASON_NONE,           /* open */
  SM_LOCK_REASON_START,          /* started locked ([security] start_locked) */
  SM_LOCK_REASON_USER,           /* Lock: the tray, `securemail lock` */
  SM_LOCK_REASON_IDLE,           /* [security] idle_lock */
  SM_LOCK_REASON_SCREEN_LOCKED,  /* [security] lock_on_screen_lock (sm-session-watch.h) */
  SM_LOCK_REASON_SUSPEND,        /* [security] lock_on_suspend */
} SmLockReason;

/* The D-Bus spelling: "" (open), "start", "user", "idle", "screen-locked",
 * "suspend".  Static strings. */
const char  *sm_lock_reason_to_string (SmLockReason reason);

gboolean     sm_server_is_locked (SmServer *server);
SmLockReason sm_server_get_lock_reason (SmServer *server);
/* Closes the gate: gpg-agent forgets the passphrases (sm_key_gate_forget()).
 * The gate is closed even when gpg-agent could not be reached (then it
 * fails, saying so).  Emits "lock-changed" when the state changed.  The
 * reason is SM_LOCK_REASON_USER. */
gboolean sm_server_lock (SmServer *server, GError **error);
/* Opens the gate: presets the passphrases from the keyring, and with
 * @passphrase_or_null the typed passphrase (or smartcard PIN) for keys the
 * keyring holds none for (checked; a wrong one fails with SM_ERROR_AUTH and
 * the gate stays closed).  Emits "lock-changed" when the state changed. */
gboolean sm_server_unlock (SmServer *server, const char *passphrase_or_null, GError **error);
/* A client did something (a command, a login, a message): restarts the idle
 * time of [security] idle_lock.  Cheap: call it from any session. */
void     sm_server_note_activity (SmServer *server);

/* ---- recent messages (issue 6) ----------------------------------------------
 *
 * A bounded ring of summaries of the messages the IMAP sessions decrypted and
 * verified, newest first, for `securemail messages`, the tray and the main
 * window.  Memory only: a decrypted Subject is never written to disk or to a
 * log. */

/* Summaries kept; the oldest is dropped past this (the tray shows ten). */
#define SM_SERVER_MAX_RECENT_MESSAGES 100
/* Longest Subject, signer or sender kept, in bytes (a display line, not
 * the message). */
#define SM_SERVER_MAX_SUMMARY_TEXT    998

typedef struct {
  char    *mailbox;       /* UTF-8 as the client named it */
  guint32  uidvalidity;
  guint32  uid;
  SmTrust  trust;
  char    *signer;        /* "" when unsigned */
  char    *from;          /* "" when none */
  char    *subject;       /* decoded (RFC 2047), without our trust tag; "" when none */
  gint64   date;          /* the Date: field, unix seconds; 0 when missing or unreadable */
  gboolean encrypted;
  gboolean personal;      /* marked [PERSONAL] ($Personal upstream) */
} SmMessageSummary;

/* Records the view the IMAP session built for (@mailbox, @uidvalidity,
 * @uid).  Called on the main thread.  A message seen again replaces its old
 * entry (keeping its personal mark) and becomes the newest.  Emits
 * "messages-changed". */
void sm_server_note_message (SmServer *server, const char *mailbox, guint32 uidvalidity,
                             guint32 uid, const SmSecureView *view);

/* The newest @limit summaries (0 = all), newest first, as borrowed
 * SmMessageSummary pointers valid until the next change of the ring.  Free
 * the array only. */
GPtrArray *sm_server_list_messages (SmServer *server, guint limit);

/* Sets the personal mark of every entry for @mailbox @uid (any
 * UIDVALIDITY: the caller just stored the keyword in the current one).
 * Emits "messages-changed" when an entry changed. */
void sm_server_set_message_personal (SmServer *server, const char *mailbox, guint32 uid,
                                     gboolean personal);

/* ---- [PERSONAL] marking (SPEC.md "[PERSONAL]") ----------------------------- */

/* The IMAP keyword of a message marked personal. */
#define SM_PERSONAL_KEYWORD "$Personal"

/* Sets SM_PERSONAL_KEYWORD on message @uid of @mailbox at the provider, over
 * a connection of its own (the provider password from the keyring), in a
 * worker thread; then marks the ring's entries personal.  Refused with
 * SM_ERROR_LOCKED while the gate is closed. */
void     sm_server_mark_personal_async  (SmServer *server, const char *mailbox, guint32 uid,
                                         GCancellable *cancellable, GAsyncReadyCallback callback,
                                         gpointer user_data);
gboolean sm_server_mark_personal_finish (SmServer *server, GAsyncResult *result, GError **error);

/* Logs one line per live IMAP session (state, queues; never content). */
void sm_server_log_sessions (SmServer *server);

/* Called by sessions when they end. */
void sm_server_session_closed (SmServer *server, GObject *session);

G_END_DECLS
