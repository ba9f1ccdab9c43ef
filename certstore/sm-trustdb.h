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
 * back), and work during which the files changed (sm_trustdb_stamp()) is
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

/* Marks the start of GnuPG work on the store in @home, after a check of the
 * trust database if it is due (see above).  Calls must not nest in one
 * thread: a due check waits for every begun piece of work to end. */
void sm_trustdb_use_begin (const char *home);

/* Marks its end. */
void sm_trustdb_use_end (void);

/* The state of the keyring and trust database files of @home (inode, size,
 * modification time) as a string: two equal results mean nothing wrote
 * them in between.  gpgsm stores a certificate it meets in a signature by
 * writing a new pubring.kbx and renaming the old one away first, and a gpg
 * searching the keyring in that instant fails (ENOENT, reported as "no
 * public key" or a failed decryption): work whose keyring changed while it
 * ran is done again (sm-secure-fetch.c). */
char *sm_trustdb_stamp (const char *home);
/* At most this many times (after the first run). */
#define SM_TRUSTDB_MAX_REDOS 3

/* How many checks this process has run (tests). */
guint sm_trustdb_checks_run (void);

G_END_DECLS
