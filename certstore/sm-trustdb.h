/* sm-trustdb.h: the keyring and trust database that gpg and gpgsm share,
 * kept still under OpenPGP work that runs side by side.
 *
 * Two writers made a gpg searching the keyring fail for an instant with
 * "keydb_search failed: No such file or directory", reported as NO_PUBKEY
 * or as a failed decryption: seen in imap-secure (a first fetch of parallel
 * builds), where the client would then have cached "cannot decrypt" or
 * "signed-untrusted" for a good message.
 * - gpg itself checks (rebuilds) trustdb.gpg in its first run after a key
 *   import or an owner-trust change, beside the other runs;
 * - gpgsm stores a certificate it meets in a signature by renaming
 *   pubring.kbx away and a new one into its place.
 * So the proxy's GnuPG work is bracketed by sm_trustdb_use_begin()/_end(): a
 * begin that finds the files changed since the last check runs `gpg
 * --check-trustdb` alone (waiting for the work in flight, holding new work
 * back), and work during which the files changed (sm_trustdb_use_redo()) is
 * done again.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A check also runs when the last one is older than this, for the checks gpg
 * schedules itself (a key or a signature expiring). */
#define SM_TRUSTDB_RECHECK_S 600
/* A due check waits at most this long for the work in flight to end; then
 * it is left to gpg.  (Signing for an outgoing message is not watched by the
 * proxy's gpg-agent watchdog: behind a wedged agent it never ends, and every
 * begin, the main loop's unlock included, would wait behind it.) */
#define SM_TRUSTDB_DRAIN_TIMEOUT_S 30

/* Work done again because the files changed while it ran: at most this
 * many times after the first run. */
#define SM_TRUSTDB_MAX_REDOS 3

typedef struct _SmTrustdbUse SmTrustdbUse;

/* Marks the start of GnuPG work on the store in @home, after a check of the
 * trust database if it is due (see above), and notes the files' state
 * (inode, size, modification time).  Uses must not nest in one thread: a
 * due check waits for every begun one to end. */
SmTrustdbUse *sm_trustdb_use_begin (const char *home);

/* Whether the work must run again: the files changed since @use began
 * (gpgsm storing a certificate, another process's import), and fewer than
 * SM_TRUSTDB_MAX_REDOS redos were done.  When TRUE, @use has begun anew
 * (with a due check first).  For work whose result a changed keyring may
 * have spoiled:
 *   do { ...clear the last result...; result = work (); }
 *   while (sm_trustdb_use_redo (use)); */
gboolean sm_trustdb_use_redo (SmTrustdbUse *use);

/* Marks its end, and frees @use. */
void sm_trustdb_use_end (SmTrustdbUse *use);

/* How many checks this process has run (tests). */
guint sm_trustdb_checks_run (void);

G_END_DECLS
