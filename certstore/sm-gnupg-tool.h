/* sm-gnupg-tool.h: running GnuPG's programs directly, for the few things
 * GPGME cannot do for gpgsm (its engine has no passphrase inquiry handler, see
 * DESIGN.md): PKCS#12 import/export, CSR generation, passphrase presets,
 * stopping an agent, asking the agent about a key.
 *
 * A passphrase never goes on a command line (it would show in ps); it is
 * written to a pipe that the child reads as fd 3 (`--passphrase-fd 3`) or,
 * for gpg-preset-passphrase, as stdin.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Upper bound for what we read back from a GnuPG child; a p12 or an armored
 * export of a whole key store is far below this. */
#define SM_GNUPG_TOOL_MAX_OUTPUT (64 * 1024 * 1024)
/* Longest a GnuPG tool may run (S/MIME key generation included) before it
 * is stopped. */
#define SM_GNUPG_TOOL_TIMEOUT_S  120

/* Descriptor numbers sm_gnupg_init() prepares libassuan's child environment
 * for (the soft RLIMIT_NOFILE if lower; 1024 on a default desktop). */
#define SM_GNUPG_PREPARED_FDS_MAX 4096

/* Initialises GPGME once per process (gpgme_check_version) and makes its
 * engine start-up safe in a multi-threaded process (it sets two environment
 * variables: see the .c file).  Call it before the first GPGME context, and
 * early in main() of a program that starts threads. */
void sm_gnupg_init (void);

/* Path of a GnuPG program: "gpg", "gpgsm", "gpgconf" (from GPGME's engine
 * configuration) or "gpg-preset-passphrase" (from gpgconf's libexecdir).
 * Returns a newly allocated path, or NULL with @error set. */
char *sm_gnupg_tool_path (const char *name,
                          GError    **error);

/* Runs the program @name with GNUPGHOME=@home and @args (argv without
 * argv[0]). @stdin_data may be NULL. @passphrase, if not NULL, is readable by
 * the child on fd 3. On success stores the child's stdout in @stdout_data (if
 * not NULL). On a non-zero exit, sets SM_CERTSTORE_ERROR_FAILED with the last
 * line the program wrote to stderr, and also returns the whole stderr in
 * @stderr_text (if not NULL, in both cases) so callers can classify it. */
gboolean sm_gnupg_tool_run (const char         *home,
                            const char         *name,
                            const char *const  *args,
                            GBytes             *stdin_data,
                            const char         *passphrase,
                            GBytes            **stdout_data,
                            char              **stderr_text,
                            GError            **error);

/* Stops gpg-agent (and dirmngr) of @home: `gpgconf --kill all`. Errors are
 * only logged: this is called on cleanup paths. */
void sm_gnupg_tool_kill_agent (const char *home);

/* Asks the agent of @home to re-read gpg-agent.conf and trustlist.txt. Note
 * that this also flushes its passphrase cache, so callers preset again. */
gboolean sm_gnupg_tool_reload_agent (const char *home,
                                     GError    **error);

/* Sends one Assuan @command to the agent of @home (gpg-connect-agent; it
 * starts the agent if needed). On success stores the first status line
 * without its "S " (e.g. "KEYINFO <grip> D - - - P - - -") in @status_line
 * if not NULL (NULL when there was none); an "ERR" answer fails with the
 * agent's text. @command must not carry secrets: it is on the command
 * line. */
gboolean sm_gnupg_tool_agent_command (const char *home,
                                      const char *command,
                                      char      **status_line,
                                      GError    **error);

G_END_DECLS
