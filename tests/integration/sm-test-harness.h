/* sm-test-harness.h: running the real securemail-proxy against the real test
 * mail stack (tests/stack/mailstack.sh) from GLib tests.
 *
 * The stack's ports and CA come from the SM_TEST_* environment that
 * tests/run-all.sh exports; without it every test that needs it skips.  The
 * keyring is the private gnome-keyring that tests/stack/keyring-run.sh starts
 * around each test binary.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_TEST_LSAN_EXIT_CODE   23      /* LeakSanitizer's default exit code */
#define SM_TEST_START_TIMEOUT_MS 30000   /* a loaded CI machine runs two builds' tests */
/* One helper program (the CLI, curl, a python client) under ASan on a loaded
 * machine takes seconds; minutes mean it hangs. */
#define SM_TEST_RUN_TIMEOUT_S      180
#define SM_TEST_STOP_TIMEOUT_S     60    /* SIGTERM to exit: sessions closed, workers joined */
#define SM_TEST_BACKTRACE_TIMEOUT_S 60   /* gdb attaching to a stuck process */

typedef struct {
  char *dir;              /* per-proxy directory: config, log */
  char *config_path;
  char *policy_path;
  char *log_path;
  char *data_home;        /* XDG_DATA_HOME given to the proxy */
  char *address;
  char *local_password;
  guint16 imap_port;
  guint16 smtp_port;
  GSubprocess *process;
} SmTestProxy;

/* TRUE when the mail stack's environment is present; otherwise marks the
 * test skipped and returns FALSE. */
gboolean sm_test_require_stack (void);

/* The stack's values. */
const char *sm_test_env (const char *name);
guint16     sm_test_env_port (const char *name);

/* A free TCP port on 127.0.0.1 (bound and released). */
guint16 sm_test_free_port (void);

/* A default [upstream] section for @user of the stack: IMAPS and submission
 * with STARTTLS, ca_file = the test CA.  Returns a new string. */
char *sm_test_upstream_section (const char *user);

/* Writes a config for @address with @upstream_section (and @extra lines,
 * may be NULL), stores @provider_password with the real CLI, fetches the
 * local password with the CLI, starts the proxy and waits until both
 * listeners accept connections.  Fails the test on any problem. */
SmTestProxy *sm_test_proxy_start (const char *address, const char *upstream_section,
                                  const char *provider_password, const char *extra);

/* The policy sm_test_proxy_start() writes: the administrator allows
 * auto-unlock with the login keyring (issue 7), so the proxy starts
 * unlocked as the tests that are not about the gate expect.  Without it
 * the proxy starts locked. */
#define SM_TEST_DEFAULT_POLICY "[security]\nauto_unlock = login-keyring\n"

/* sm_test_proxy_start() with @policy as the administrator's policy.conf
 * (NULL = none at all: the defaults of a machine without a policy). */
SmTestProxy *sm_test_proxy_start_with_policy (const char *address, const char *upstream_section,
                                              const char *provider_password, const char *extra,
                                              const char *policy);

/* SIGTERM, wait, and check it exited 0 (unless it already died). */
void sm_test_proxy_stop (SmTestProxy *proxy);
void sm_test_proxy_free (SmTestProxy *proxy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmTestProxy, sm_test_proxy_free)

/* The threads of process @pid (gdb) and the process tree, for a test that
 * gives up on a hung process. */
char *sm_test_describe_stuck (const char *pid);

/* Runs argv (NULL-terminated) with @input on stdin and extra environment
 * @envp ("NAME=value", may be NULL); returns the exit status and the
 * outputs.  A program that cannot be started, or that runs longer than
 * SM_TEST_RUN_TIMEOUT_S, fails the test (the latter with its threads). */
int sm_test_run (const char * const *argv, const char * const *envp, const char *input,
                 char **out, char **err);

/* Runs @prog (and the arguments after @err, NULL-terminated) with the
 * proxy's environment (config, policy, XDG_DATA_HOME), like sm_test_cli(). */
int sm_test_proxy_run (SmTestProxy *proxy, const char *prog, const char *input, char **out, char **err,
                       ...) G_GNUC_NULL_TERMINATED;

/* Starts a stopped (or killed) proxy again with the same config and data,
 * logging to @log_name in its directory, and waits until it listens. */
void sm_test_proxy_restart (SmTestProxy *proxy, const char *log_name);

/* Runs the securemail CLI with the proxy's config. */
int sm_test_cli (SmTestProxy *proxy, const char *input, char **out, char **err, ...) G_GNUC_NULL_TERMINATED;

/* `securemail ARGS...` that must succeed: fails the test with its command
 * line and stderr otherwise; returns its stdout (transfer full). */
char *sm_test_cli_ok (SmTestProxy *proxy, const char *input, ...) G_GNUC_NULL_TERMINATED;

/* Runs /usr/bin/python3 -c @script with @args; stdout/stderr returned. */
int sm_test_python (SmTestProxy *proxy, const char *script, char **out, char **err, ...) G_GNUC_NULL_TERMINATED;

/* A blocking line-oriented TCP client for raw protocol tests. */
typedef struct {
  GSocketConnection *conn;
  GDataInputStream *in;
  GOutputStream *out;
} SmTestClient;

SmTestClient *sm_test_client_connect (guint16 port);
void          sm_test_client_free (SmTestClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmTestClient, sm_test_client_free)
void          sm_test_client_send (SmTestClient *client, const char *data);
/* The next line without CRLF, or NULL at end of stream / timeout. */
char         *sm_test_client_line (SmTestClient *client);
/* Reads lines until one starts with @prefix; returns it (or NULL at EOF). */
char         *sm_test_client_until (SmTestClient *client, const char *prefix);
/* TRUE when the server closes the connection within @timeout_ms, reading
 * and discarding whatever comes before. */
gboolean      sm_test_client_wait_closed (SmTestClient *client, guint timeout_ms);

/* Whether a file under the stack's maildir of @user contains @needle, polled
 * for up to @timeout_ms (delivery is asynchronous). */
gboolean sm_test_maildir_wait (const char *user, const char *needle, guint timeout_ms);

G_END_DECLS

/* ---- appended helpers (SMTP, maildir contents, raw reads) ---------------- */

G_BEGIN_DECLS

/* Reads one SMTP reply (RFC 5321 §4.2.1), all its lines; returns the last
 * line ("250 2.0.0 ..."), or NULL at end of stream / timeout.  The earlier
 * lines of a multi-line reply are appended to @lines when given. */
char *sm_test_smtp_reply (SmTestClient *client, GPtrArray *lines);

/* The contents of the file in @user's maildir that contains @needle, polled
 * like sm_test_maildir_wait(); NULL if none appeared in time. */
char *sm_test_maildir_read (const char *user, const char *needle, guint timeout_ms);

/* Reads everything the server sends until it closes the connection (TRUE)
 * or @timeout_ms pass (FALSE); the bytes, buffered ones included, go to
 * @data when given. */
gboolean sm_test_client_read_to_close (SmTestClient *client, guint timeout_ms, GByteArray *data);

/* Reads one SMTP reply and fails the test unless it starts with @prefix;
 * returns its last line. */
char *sm_test_smtp_expect (SmTestClient *client, const char *prefix);
/* Sends @cmd (without CRLF) and sm_test_smtp_expect()s @prefix. */
char *sm_test_smtp_command (SmTestClient *client, const char *cmd, const char *prefix);
/* Sends the IMAP command @cmd ("tag NAME args", without CRLF), reads lines
 * up to the one with its tag and fails the test unless that one starts with
 * "tag @status" (e.g. "OK", "NO [CANNOT]"); returns it. */
char *sm_test_imap_command (SmTestClient *client, const char *cmd, const char *status);
/* Sends "@tag LOGIN address password" for @proxy's account (@password NULL:
 * the local password) on @client, whose greeting was read; returns the
 * tagged reply, whatever it is. */
char *sm_test_imap_login (SmTestClient *client, SmTestProxy *proxy, const char *tag, const char *password);
/* base64 of the RFC 4616 PLAIN response "\0user\0password". */
char *sm_test_sasl_plain (const char *user, const char *password);
/* Connects to the proxy's SMTP listener, reads the greeting and says EHLO;
 * with @login also AUTH PLAIN with the local password (expects 235). */
SmTestClient *sm_test_smtp_open (SmTestProxy *proxy, gboolean login);
/* Sends @message (CRLF lines) dot-stuffed, then the final dot; returns the
 * reply to it (NULL at end of stream). */
char *sm_test_smtp_data (SmTestClient *client, const char *message);
/* One message from @from to @to through @proxy's SMTP listener (logged
 * in): MAIL, RCPT (each expecting 250), DATA; returns the final reply. */
char *sm_test_smtp_submit (SmTestProxy *proxy, const char *from, const char *to, const char *message);

G_END_DECLS

/* ---- the proxy's D-Bus interface --------------------------------------------- */

G_BEGIN_DECLS

#define SM_TEST_DBUS_WAIT_MS 10000

/* Waits until `securemail status` reaches @proxy over D-Bus (its listeners
 * are up before it owns its bus name); fails the test after
 * SM_TEST_DBUS_WAIT_MS. */
void sm_test_proxy_wait_dbus (SmTestProxy *proxy);

/* Asks @proxy over D-Bus to read its key store again (CheckKeys, what the
 * GUI does after making a key) and waits for the answer; fails the test if
 * the call fails. */
void sm_test_proxy_check_keys (SmTestProxy *proxy);

/* ---- straight to Dovecot, around the proxy ------------------------------------ */

/* APPENDs a small message from bob@example.test with @subject (and a fixed
 * Date) to @user's INBOX directly over IMAPS; returns its UID as text. */
char *sm_test_direct_append (const char *user, const char *subject);
/* The FETCH FLAGS response line of @uid in @user's INBOX, read directly. */
char *sm_test_direct_flags (const char *user, const char *uid);

G_END_DECLS

/* ---- two accounts: keys and reading -------------------------------------------- */

G_BEGIN_DECLS

/* @to imports @from's own public OpenPGP key with the CLI and trusts it
 * fully, as a user does after checking the fingerprint. */
void sm_test_introduce (SmTestProxy *from, SmTestProxy *to);
/* What a mail client does to read its INBOX: every message whole, through
 * @p's IMAP listener (which builds each protected one's view, and so
 * answers or matches receipts); exactly one must carry @marker. */
void sm_test_fetch_all (SmTestProxy *p, const char *marker);

G_END_DECLS

/* ---- being the desktop's screensaver (issue 7) -------------------------------- */

G_BEGIN_DECLS

/* This process takes (or gives back) @name, e.g. org.gnome.ScreenSaver, on
 * the session bus, as the screensaver does: the proxy listens only to the
 * name's owner. */
void sm_test_session_own_name (const char *name);
void sm_test_session_release_name (const char *name);
/* Emits ActiveChanged(@active) of interface @name at @path on the session
 * bus, as GNOME's and the freedesktop screensavers do on locking. */
void sm_test_screensaver_emit (const char *name, const char *path, gboolean active);

/* Runs a setup tool (sm_test_run()); its failure fails the test with what
 * it said. */
void sm_test_must_run (const char * const *argv, const char * const *envp);

/* A softhsm2 PKCS#11 token holding alice's key and certificate of the
 * stack's client CA (SM_TEST_CLIENT_CERT_DIR), its PIN SM_TEST_TOKEN_PIN. */
#define SM_TEST_TOKEN_LABEL    "sm-test-token"
#define SM_TEST_TOKEN_PIN      "480213"     /* distinctive, so a log search is meaningful */
#define SM_TEST_TOKEN_SO_PIN   "5678"
#define SM_TEST_TOKEN_CERT_URI "pkcs11:token=" SM_TEST_TOKEN_LABEL ";object=alice;type=cert"

/* Creates that token in @dir (a fresh directory the caller removes) and
 * sets SOFTHSM2_CONF for this process, and so for the proxy and CLI it
 * starts.  FALSE (test skipped) without softhsm2-util or p11tool. */
gboolean sm_test_make_token (const char *dir);

/* [upstream] for alice with certificate login (auth = certificate): IMAPS,
 * and the submission port that takes client certificates. */
char *sm_test_cert_upstream (const char *client_certificate);

G_END_DECLS
