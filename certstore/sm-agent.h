/* sm-agent.h: a look at a GnuPG home's gpg-agent from outside.
 *
 * GPGME operations have no deadline, and gpg-agent 2.2.40 was seen to stop
 * answering new connections for good after heavy concurrent use (its
 * connection thread reading while the client waits for the greeting).  The
 * proxy's decryptions would then wait for ever.  These calls let a watchdog
 * tell a silent agent from a busy one and replace it; they speak to the
 * socket directly, because every GnuPG tool would wait on that agent too.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* How long a healthy agent may take to greet a new connection: it answers
 * from a fresh thread at once, even while busy with other clients. */
#define SM_AGENT_PROBE_TIMEOUT_S 5

typedef enum {
  SM_AGENT_ABSENT,    /* nobody listens: the next GnuPG operation starts an agent */
  SM_AGENT_ANSWERS,   /* greeted with "OK" */
  SM_AGENT_SILENT,    /* connected, but no greeting in time (or not an agent) */
} SmAgentState;

/* The agent socket of GnuPG home @home (`gpgconf --list-dirs agent-socket`).
 * Newly allocated, or NULL with @error set. */
char *sm_agent_socket_path (const char *home, GError **error);

/* Connects to @socket_path and waits up to @timeout_s for the greeting.
 * @pid (may be NULL) gets the pid of our process that holds the listening
 * socket (found in /proc: Linux only), else 0. */
SmAgentState sm_agent_probe (const char *socket_path, guint timeout_s, GPid *pid);

/* Kills the process of our user that listens on @socket_path with SIGKILL
 * (a wedged agent never finishes the graceful shutdown SIGTERM asks for).
 * TRUE when it was killed or nobody listens. */
gboolean sm_agent_kill (const char *socket_path, GError **error);

G_END_DECLS
