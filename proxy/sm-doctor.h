/* sm-doctor.h: the numbered checks of `securemail doctor` (and the
 * Diagnostics page).  Each check says what it tested, whether it passed, and
 * when it failed, what to do: a helpdesk reads these out over the phone. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  SM_CHECK_PASS,
  SM_CHECK_FAIL,
  SM_CHECK_SKIP,     /* could not run because an earlier check failed */
} SmCheckResult;

typedef struct {
  guint number;
  char *id;          /* stable, for scripts: "config", "keyring", ... */
  char *title;
  SmCheckResult result;
  char *detail;      /* what was found */
  char *fix;         /* what to do; NULL when passed */
} SmCheck;

void sm_check_free (SmCheck *check);

/* The client certificate check warns this many days before it expires. */
#define SM_DOCTOR_CERT_EXPIRY_WARN_DAYS 30

/* Runs every check (blocking: network and keyring).  @config_path may be
 * NULL for the default.  Returns an array of SmCheck*. */
GPtrArray *sm_doctor_run (const char *config_path);

G_END_DECLS
