/* sm-trustdb.c: one gpg --check-trustdb at a time, with no other GnuPG work
 * of the process beside it (see the header for why). */
#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include "sm-gnupg-tool.h"
#include "sm-trustdb.h"

/* What a check depends on: the keyrings (an import) and the trust database
 * (an owner trust).  gpg replaces pubring.kbx by a rename or appends to it,
 * and writes trustdb.gpg in place, so inode, size and modification time
 * together see every change. */
static const char *const watched_files[] = { "pubring.kbx", "pubring.gpg", "trustdb.gpg" };

typedef struct {
  char *home;
  struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    gint64 mtime_ns;
  } files[G_N_ELEMENTS (watched_files)];
} Stamp;

static GMutex lock;
static GCond changed;
static guint users;            /* pieces of work begun and not ended */
static gboolean checking;      /* a check runs: new work waits */
static Stamp checked;          /* the files as the last check left them */
static gint64 checked_at;      /* monotonic µs of the last check, 0: none */
static guint checks_run;
/* Uses begun by this thread: a nested begin that finds a check due would
 * wait for itself. */
static GPrivate depth;

static void
stamp_take (Stamp *stamp, const char *home)
{
  memset (stamp, 0, sizeof *stamp);
  stamp->home = g_strdup (home);
  for (gsize i = 0; i < G_N_ELEMENTS (watched_files); i++)
    {
      g_autofree char *path = g_build_filename (home, watched_files[i], NULL);
      struct stat st;

      /* A missing file stays all zeros: its creation is a change. */
      if (stat (path, &st) != 0)
        continue;
      stamp->files[i].dev = st.st_dev;
      stamp->files[i].ino = st.st_ino;
      stamp->files[i].size = st.st_size;
      stamp->files[i].mtime_ns = (gint64) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    }
}

static gboolean
stamp_equal (const Stamp *a, const Stamp *b)
{
  return g_strcmp0 (a->home, b->home) == 0 && memcmp (a->files, b->files, sizeof a->files) == 0;
}

static void
stamp_clear (Stamp *stamp)
{
  g_clear_pointer (&stamp->home, g_free);
}

static void
stamp_copy (Stamp *to, const Stamp *from)
{
  *to = *from;
  to->home = g_strdup (from->home);
}

struct _SmTrustdbUse {
  Stamp start;   /* the files when the work began */
  guint redos;
};

static void
run_check (const char *home)
{
  static const char *const args[] = { "--batch", "--check-trustdb", NULL };
  g_autoptr(GError) error = NULL;

  /* A failed check is no worse than before: gpg checks again itself. */
  if (!sm_gnupg_tool_run (home, "gpg", args, NULL, NULL, NULL, NULL, &error))
    g_message ("Could not check gpg's trust database: %s", error->message);
  else
    g_debug ("Checked gpg's trust database of %s", home);
}

/* Begins a use after a due check; *@start gets the files as the work
 * finds them. */
static void
enter (const char *home, Stamp *start)
{
  Stamp now;
  guint mine = GPOINTER_TO_UINT (g_private_get (&depth));

  /* A programming error; it must not also hang the process, so a nested
   * begin neither waits nor checks. */
  if (mine > 0)
    g_critical ("sm_trustdb_use_begin() inside a use of the same thread");
  g_private_set (&depth, GUINT_TO_POINTER (mine + 1));

  g_mutex_lock (&lock);
  while (checking && mine == 0)
    g_cond_wait (&changed, &lock);
  /* After the wait: a check that just ended changed trustdb.gpg itself.
   * (Three stat() calls under the lock.) */
  stamp_take (&now, home);
  if (mine == 0 && !checking &&
      (checked_at == 0 || !stamp_equal (&now, &checked) ||
       g_get_monotonic_time () - checked_at >= (gint64) SM_TRUSTDB_RECHECK_S * G_USEC_PER_SEC))
    {
      Stamp after;
      gint64 deadline = g_get_monotonic_time () + (gint64) SM_TRUSTDB_DRAIN_TIMEOUT_S * G_USEC_PER_SEC;
      gboolean drained = TRUE;

      checking = TRUE;
      while (users > 0 && drained)
        drained = g_cond_wait_until (&changed, &lock, deadline) || users == 0;
      g_mutex_unlock (&lock);

      if (drained)
        run_check (home);
      else
        g_message ("GnuPG work has run for %d s: gpg's trust database is left for gpg to check",
                   SM_TRUSTDB_DRAIN_TIMEOUT_S);
      /* Taken after the check: it writes trustdb.gpg itself.  (Without a
       * check, the next one is due at the next change.) */
      stamp_take (&after, home);

      g_mutex_lock (&lock);
      stamp_clear (&checked);
      stamp_clear (&now);
      checked = after;
      stamp_copy (&now, &after);
      checked_at = g_get_monotonic_time ();
      if (drained)
        checks_run++;
      checking = FALSE;
      g_cond_broadcast (&changed);
    }
  users++;
  g_mutex_unlock (&lock);
  *start = now;
}

static void
leave (void)
{
  guint mine = GPOINTER_TO_UINT (g_private_get (&depth));

  g_warn_if_fail (mine > 0);
  g_private_set (&depth, GUINT_TO_POINTER (mine > 0 ? mine - 1 : 0));
  g_mutex_lock (&lock);
  g_warn_if_fail (users > 0);
  if (users > 0 && --users == 0)
    g_cond_broadcast (&changed);
  g_mutex_unlock (&lock);
}

SmTrustdbUse *
sm_trustdb_use_begin (const char *home)
{
  SmTrustdbUse *use;

  g_return_val_if_fail (home != NULL, NULL);
  use = g_new0 (SmTrustdbUse, 1);
  enter (home, &use->start);
  return use;
}

gboolean
sm_trustdb_use_redo (SmTrustdbUse *use)
{
  g_autofree char *home = NULL;
  Stamp now;
  gboolean still;

  g_return_val_if_fail (use != NULL, FALSE);
  stamp_take (&now, use->start.home);
  still = stamp_equal (&now, &use->start);
  stamp_clear (&now);
  if (still || use->redos >= SM_TRUSTDB_MAX_REDOS)
    return FALSE;
  use->redos++;
  g_debug ("The key store changed while GnuPG work ran: doing it again");
  /* Through a begin again: a change of the trust database gets its check
   * before the next gpg runs. */
  home = g_steal_pointer (&use->start.home);
  leave ();
  enter (home, &use->start);
  return TRUE;
}

void
sm_trustdb_use_end (SmTrustdbUse *use)
{
  g_return_if_fail (use != NULL);
  leave ();
  stamp_clear (&use->start);
  g_free (use);
}

guint
sm_trustdb_checks_run (void)
{
  guint n;

  g_mutex_lock (&lock);
  n = checks_run;
  g_mutex_unlock (&lock);
  return n;
}
