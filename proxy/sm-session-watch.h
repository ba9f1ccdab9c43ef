/* sm-session-watch.h: when the desktop session locks or the computer
 * sleeps, the unlock gate should close too (issue 7).
 *
 * SmSessionWatch listens, on the system bus, to logind
 * (org.freedesktop.login1): the Manager's PrepareForSleep(true), and for
 * this process's session the Session's Lock signal and its LockedHint
 * property turning true.  The session is the one XDG_SESSION_ID names,
 * else logind's session of our PID, else (a systemd user service is in no
 * session) the user's Display session.  On the session bus it listens to the
 * screensavers' ActiveChanged(true): GNOME's org.gnome.ScreenSaver and the
 * freedesktop org.freedesktop.ScreenSaver (KDE, Xfce, ...).  Each of these
 * emits "lock-requested"; the server (sm-server.c) owns the watch and locks.
 *
 * Before sleep it holds a logind "delay" inhibitor lock, so that logind
 * waits (at most its InhibitDelayMaxSec) until the handlers of
 * "lock-requested" have run and gpg-agent has forgotten the passphrases;
 * it releases the lock right after, and takes a new one on resume.
 *
 * A missing bus or service is normal (a server, a desktop without logind or
 * a screensaver): logged once at debug level, never an error.  A service
 * that starts later is picked up when its name appears.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_LOGIND_NAME             "org.freedesktop.login1"
#define SM_LOGIND_PATH             "/org/freedesktop/login1"
#define SM_LOGIND_MANAGER_IFACE    "org.freedesktop.login1.Manager"
#define SM_LOGIND_SESSION_IFACE    "org.freedesktop.login1.Session"
#define SM_LOGIND_USER_IFACE       "org.freedesktop.login1.User"
#define SM_GNOME_SCREENSAVER_NAME  "org.gnome.ScreenSaver"
#define SM_FDO_SCREENSAVER_NAME    "org.freedesktop.ScreenSaver"

/* Why the watch asks for the lock. */
typedef enum {
  SM_SESSION_EVENT_SCREEN_LOCKED,   /* logind Lock / LockedHint, or a screensaver became active */
  SM_SESSION_EVENT_SUSPEND,         /* logind PrepareForSleep(true) */
} SmSessionEvent;

#define SM_TYPE_SESSION_WATCH (sm_session_watch_get_type ())
G_DECLARE_FINAL_TYPE (SmSessionWatch, sm_session_watch, SM, SESSION_WATCH, GObject)

/* A watch for the screen lock and/or suspend ([security]
 * lock_on_screen_lock, lock_on_suspend).  It does nothing until started.
 *
 * Signal "lock-requested" (SmSessionEvent event, const char *source):
 * @source names what was seen, for the log ("logind Session.Lock"). */
SmSessionWatch *sm_session_watch_new (gboolean on_screen_lock, gboolean on_suspend);

/* Connects to the buses (asynchronously) and subscribes. */
void sm_session_watch_start (SmSessionWatch *watch);
/* Unsubscribes and releases the inhibitor lock; no signal after this. */
void sm_session_watch_stop (SmSessionWatch *watch);

G_END_DECLS
