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

/* Logs one line per live IMAP session (state, queues; never content). */
void sm_server_log_sessions (SmServer *server);

/* Called by sessions when they end. */
void sm_server_session_closed (SmServer *server, GObject *session);

G_END_DECLS
