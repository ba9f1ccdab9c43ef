/* sm-gnupg-tool.c: running gpg, gpgsm, gpgconf and gpg-preset-passphrase. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>
#include <gpgme.h>

#include "sm-certstore-error.h"
#include "sm-gnupg-tool.h"

/* The variables libassuan sets in every engine child (gpgsm --server and
 * the like) between fork and exec: its client's pid, and for a socketpair
 * connection (GPGME's gpgsm engine) the descriptor number of the child's
 * end. */
#define ASSUAN_PIPE_CONNECT_PID "_assuan_pipe_connect_pid"
#define ASSUAN_CONNECTION_FD    "_assuan_connection_fd"

/* libassuan's child calls setenv() for those two after fork and before exec.
 * In a multi-threaded process only async-signal-safe work is safe there,
 * and glibc's setenv() allocates unless the variable is already in the
 * environment (its slot is reused) and the "NAME=value" string was set
 * before (glibc keeps every string it made and finds it again).  Seen: the
 * ASan build's forked child spinning forever on a sanitizer allocator lock
 * that another thread held at the fork, so the S/MIME operation waiting for
 * its gpgsm never returned (receipts-e2e and imap-secure hung so in CI; a
 * stress program with three allocating threads hung at once without this,
 * never with it).  So both
 * variables are set here, the descriptor to every number the process can
 * have open, and left at values a child started otherwise ignores: the
 * child's calls then allocate nothing. */
static void
prepare_assuan_child_environment (void)
{
  struct rlimit nofile = { 0 };
  char value[32];
  rlim_t fds = SM_GNUPG_PREPARED_FDS_MAX;

  g_snprintf (value, sizeof value, "%lu", (unsigned long) getpid ());
  g_setenv (ASSUAN_PIPE_CONNECT_PID, value, TRUE);
  if (getrlimit (RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < fds)
    fds = nofile.rlim_cur;
  for (rlim_t fd = 0; fd < fds; fd++)
    {
      g_snprintf (value, sizeof value, "%lu", (unsigned long) fd);
      g_setenv (ASSUAN_CONNECTION_FD, value, TRUE);
    }
  /* Not a descriptor: a pipe server reading it finds no socket there. */
  g_setenv (ASSUAN_CONNECTION_FD, "-1", TRUE);
}

void
sm_gnupg_init (void)
{
  static gsize initialised = 0;

  if (g_once_init_enter (&initialised))
    {
      gpgme_check_version (NULL);
      prepare_assuan_child_environment ();
      g_once_init_leave (&initialised, 1);
    }
}

char *
sm_gnupg_tool_path (const char *name,
                    GError    **error)
{
  const char *dirinfo_key = NULL;
  const char *path;

  g_return_val_if_fail (name != NULL, NULL);

  sm_gnupg_init ();
  if (g_str_equal (name, "gpg"))
    dirinfo_key = "gpg-name";
  else if (g_str_equal (name, "gpgsm"))
    dirinfo_key = "gpgsm-name";
  else if (g_str_equal (name, "gpgconf"))
    dirinfo_key = "gpgconf-name";

  if (dirinfo_key != NULL)
    path = gpgme_get_dirinfo (dirinfo_key);
  else
    {
      const char *libexecdir = gpgme_get_dirinfo ("libexecdir");

      const char *bindir = gpgme_get_dirinfo ("bindir");
      g_autofree char *candidate = NULL;
      g_autofree char *in_bindir = NULL;

      /* gpg-preset-passphrase lives in libexecdir, gpg-connect-agent in
       * bindir. */
      candidate = g_build_filename (libexecdir ? libexecdir : "/usr/lib/gnupg", name, NULL);
      if (g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
        return g_steal_pointer (&candidate);
      in_bindir = g_build_filename (bindir ? bindir : "/usr/bin", name, NULL);
      if (g_file_test (in_bindir, G_FILE_TEST_IS_EXECUTABLE))
        return g_steal_pointer (&in_bindir);
      path = NULL;
    }

  if (path == NULL || !g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_ENGINE,
                   _("The GnuPG program “%s” was not found; install the `gnupg`, `gpgsm` and `gnupg-agent` packages"),
                   name);
      return NULL;
    }
  return g_strdup (path);
}

static char *
last_line (const char *text)
{
  g_auto(GStrv) lines = NULL;

  if (text == NULL)
    return g_strdup ("");
  lines = g_strsplit (text, "\n", -1);
  for (int i = (int) g_strv_length (lines) - 1; i >= 0; i--)
    {
      g_strstrip (lines[i]);
      if (lines[i][0] != '\0')
        return g_strdup (lines[i]);
    }
  return g_strdup ("");
}

typedef struct {
  GSubprocess *proc;
  GAsyncResult *result;
  gboolean timed_out;
} Communicate;

static void
on_communicated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Communicate *c = user_data;

  c->result = g_object_ref (result);
}

static gboolean
on_tool_timeout (gpointer user_data)
{
  Communicate *c = user_data;

  c->timed_out = TRUE;
  g_subprocess_force_exit (c->proc);
  return G_SOURCE_REMOVE;
}

/* g_subprocess_communicate() with a deadline.  gpg-agent 2.2 has been seen
 * to leave a connection unanswered (gpgconf --launch waiting for ever under
 * load): without a bound, every caller of the key store behind it waits too.
 * The tool is killed after SM_GNUPG_TOOL_TIMEOUT_S; its pipes then close. */
static gboolean
communicate_bounded (GSubprocess *proc, const char *name, GBytes *stdin_data, GBytes **out,
                     GBytes **err_bytes, GError **error)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSource) timeout = g_timeout_source_new_seconds (SM_GNUPG_TOOL_TIMEOUT_S);
  Communicate c = { proc, NULL, FALSE };
  gboolean ok;

  g_main_context_push_thread_default (context);
  g_source_set_callback (timeout, on_tool_timeout, &c, NULL);
  g_source_attach (timeout, context);
  g_subprocess_communicate_async (proc, stdin_data, NULL, on_communicated, &c);
  while (c.result == NULL)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  ok = g_subprocess_communicate_finish (proc, c.result, out, err_bytes, error);
  g_object_unref (c.result);
  /* The child is reaped by GLib's worker; wait for that so the exit status
   * is known below. */
  if (ok)
    ok = g_subprocess_wait (proc, NULL, error);
  g_main_context_pop_thread_default (context);
  if (ok && c.timed_out)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("%s did not finish within %d seconds and was stopped"), name, SM_GNUPG_TOOL_TIMEOUT_S);
      return FALSE;
    }
  return ok;
}

gboolean
sm_gnupg_tool_run (const char        *home,
                   const char        *name,
                   const char *const *args,
                   GBytes            *stdin_data,
                   const char        *passphrase,
                   GBytes           **stdout_data,
                   char             **stderr_text,
                   GError           **error)
{
  g_autofree char *path = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err_bytes = NULL;
  g_autoptr(GBytes) empty = NULL;
  g_autofree char *err_text = NULL;
  /* stdin is always a pipe: with no data it reads EOF at once, so a child
   * never consumes the CLI's own stdin (where a recovery code may wait). */
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                           | G_SUBPROCESS_FLAGS_STDERR_PIPE;

  g_return_val_if_fail (home != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  path = sm_gnupg_tool_path (name, error);
  if (path == NULL)
    return FALSE;

  g_ptr_array_add (argv, path);
  for (guint i = 0; args != NULL && args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (flags);
  g_subprocess_launcher_setenv (launcher, "GNUPGHOME", home, TRUE);
  /* We classify some of GnuPG's messages; keep them untranslated. */
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "LANGUAGE");

  if (passphrase != NULL)
    {
      int fds[2];
      gsize len = strlen (passphrase);

      if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
        return FALSE;
      /* A pipe holds at least 4 KiB; passphrases are far shorter, so this
       * write cannot block. */
      if (len >= 4096 || write (fds[1], passphrase, len) != (ssize_t) len)
        {
          close (fds[0]);
          close (fds[1]);
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("Could not hand the passphrase to %s"), name);
          return FALSE;
        }
      close (fds[1]);
      g_subprocess_launcher_take_fd (launcher, fds[0], 3);
    }

  proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, error);
  if (proc == NULL)
    return FALSE;

  if (stdin_data == NULL)
    stdin_data = empty = g_bytes_new_static ("", 0);
  if (!communicate_bounded (proc, name, stdin_data, &out, &err_bytes, error))
    return FALSE;

  if (err_bytes != NULL)
    err_text = g_strndup (g_bytes_get_data (err_bytes, NULL), g_bytes_get_size (err_bytes));

  if (!g_subprocess_get_if_exited (proc) || g_subprocess_get_exit_status (proc) != 0)
    {
      g_autofree char *line = last_line (err_text);

      g_debug ("%s %s failed: %s", name, args && args[0] ? args[0] : "", err_text ? err_text : "");
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("%s failed: %s"), name, line);
      if (stderr_text != NULL)
        *stderr_text = g_steal_pointer (&err_text);
      return FALSE;
    }

  if (out != NULL && g_bytes_get_size (out) > SM_GNUPG_TOOL_MAX_OUTPUT)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("%s produced more than %d MiB of output"), name,
                   SM_GNUPG_TOOL_MAX_OUTPUT / (1024 * 1024));
      return FALSE;
    }

  if (stdout_data != NULL)
    *stdout_data = out ? g_steal_pointer (&out) : g_bytes_new (NULL, 0);
  if (stderr_text != NULL)
    *stderr_text = g_steal_pointer (&err_text);
  return TRUE;
}

void
sm_gnupg_tool_kill_agent (const char *home)
{
  const char *args[] = { "--kill", "all", NULL };
  g_autoptr(GError) error = NULL;

  if (!sm_gnupg_tool_run (home, "gpgconf", args, NULL, NULL, NULL, NULL, &error))
    g_debug ("Stopping gpg-agent of %s: %s", home, error->message);
}

gboolean
sm_gnupg_tool_reload_agent (const char *home,
                            GError    **error)
{
  const char *args[] = { "--reload", "gpg-agent", NULL };

  return sm_gnupg_tool_run (home, "gpgconf", args, NULL, NULL, NULL, NULL, error);
}

gboolean
sm_gnupg_tool_agent_command (const char *home,
                             const char *command,
                             char      **status_line,
                             GError    **error)
{
  const char *args[] = { command, "/bye", NULL };
  g_autoptr(GBytes) out = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  g_return_val_if_fail (status_line == NULL || *status_line == NULL, FALSE);

  if (!sm_gnupg_tool_run (home, "gpg-connect-agent", args, NULL, NULL, &out, NULL, error))
    return FALSE;
  text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  lines = g_strsplit (text, "\n", -1);
  /* gpg-connect-agent exits 0 whatever the agent answers: the answer is in
   * the last "OK" or "ERR code text" line, data in "S ..." lines. */
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_strchomp (lines[i]);
      if (g_str_has_prefix (lines[i], "ERR "))
        {
          g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                       _("gpg-agent refused a request: %s"), lines[i] + 4);
          return FALSE;
        }
      if (g_str_has_prefix (lines[i], "S ") && status_line != NULL && *status_line == NULL)
        *status_line = g_strdup (lines[i] + 2);
    }
  return TRUE;
}
