/* sm-login-limiter.h: rate limiting of local logins (issue 7).
 *
 * A mail client logs in to the proxy with the local password; someone on
 * the same machine (or, where the policy allows remote listeners, on the
 * network) could try to guess it.  Failures are counted per client address,
 * across sessions and across IMAP and SMTP: each failure's answer waits
 * longer (SM_LOGIN_LIMITER_BASE_DELAY_MS, doubling, at most
 * SM_LOGIN_LIMITER_MAX_DELAY_MS), and SM_LOGIN_LIMITER_LOCKOUT_FAILURES in
 * a row lock the address out for SM_LOGIN_LIMITER_LOCKOUT_S, during which
 * even the right password is refused without being checked.  A successful
 * login forgets the address.  On a desktop every local client is 127.0.0.1,
 * so a misconfigured client counts against the others too: the lockout is
 * short and the refusal says when to try again.
 *
 * Each failure is logged with the protocol, the address and the count;
 * never the user name (people type passwords there) nor the password.
 * The server owns one limiter (sm_server_get_login_limiter()); it is used
 * from the main context only.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_LOGIN_LIMITER_BASE_DELAY_MS      1500     /* the answer to the first failure */
#define SM_LOGIN_LIMITER_MAX_DELAY_MS       15000    /* the delay stops doubling here */
#define SM_LOGIN_LIMITER_LOCKOUT_FAILURES   10       /* failures in a row that lock an address out */
#define SM_LOGIN_LIMITER_LOCKOUT_S          300      /* how long */
#define SM_LOGIN_LIMITER_FORGET_S           3600     /* failures older than this are forgotten */
#define SM_LOGIN_LIMITER_MAX_CLIENTS        1024     /* addresses remembered; the oldest go first */

#define SM_TYPE_LOGIN_LIMITER (sm_login_limiter_get_type ())
G_DECLARE_FINAL_TYPE (SmLoginLimiter, sm_login_limiter, SM, LOGIN_LIMITER, GObject)

/* Monotonic microseconds; replaceable for tests. */
typedef gint64 (*SmLoginLimiterClock) (gpointer user_data);

SmLoginLimiter *sm_login_limiter_new (void);

/* Tests: use @clock instead of g_get_monotonic_time(). */
void sm_login_limiter_set_clock (SmLoginLimiter *self, SmLoginLimiterClock clock, gpointer user_data);

/* Tests only: the server reads a factor in (0, 1] from this variable and
 * applies it to the delays and the lockout, so that an end-to-end test of a
 * lockout takes seconds, not minutes.  Anything else means 1. */
#define SM_LOGIN_LIMITER_SCALE_ENV "SECUREMAIL_TEST_LOGIN_SCALE"
void sm_login_limiter_set_scale (SmLoginLimiter *self, double scale);

/* The key of @connection's peer for the calls below: its IP address
 * without the port (a new connection has a new port).  Returns a new
 * string ("unknown" when the peer address cannot be read). */
char *sm_login_limiter_client_of (GSocketConnection *connection);

/* 0 when @client may try to log in now; otherwise the seconds (at least 1)
 * its lockout still lasts. */
guint sm_login_limiter_locked_for (SmLoginLimiter *self, const char *client);

/* Records a failed login of @client over @protocol ("IMAP", "SMTP") and
 * logs it.  Returns how many milliseconds the failure's answer must wait. */
guint sm_login_limiter_failed (SmLoginLimiter *self, const char *client, const char *protocol);

/* A successful login: @client's failures are forgotten. */
void sm_login_limiter_succeeded (SmLoginLimiter *self, const char *client);

G_END_DECLS
