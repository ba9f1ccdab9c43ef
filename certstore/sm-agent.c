/* sm-agent.c: probing and replacing a GnuPG home's gpg-agent. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <glib/gi18n.h>

#include "sm-agent.h"
#include "sm-certstore-error.h"
#include "sm-gnupg-tool.h"

/* An Assuan greeting is one short line ("OK Pleased to meet you"). */
#define SM_AGENT_GREETING_MAX 1000

char *
sm_agent_socket_path (const char *home, GError **error)
{
  const char *args[] = { "--list-dirs", "agent-socket", NULL };
  g_autoptr(GBytes) out = NULL;
  g_autofree char *text = NULL;

  if (!sm_gnupg_tool_run (home, "gpgconf", args, NULL, NULL, &out, NULL, error))
    return NULL;
  text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  g_strstrip (text);
  if (*text == '\0')
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("gpgconf did not name the gpg-agent socket"));
      return NULL;
    }
  /* gpgconf percent-escapes special characters (%3a for ':'). */
  return g_uri_unescape_string (text, NULL);
}

static GSocket *
connect_agent (const char *socket_path, guint timeout_s)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (socket_path);

  if (socket == NULL)
    return NULL;
  g_socket_set_timeout (socket, timeout_s);
  /* A wedged agent's socket still accepts: the kernel completes the
   * connection from the listen backlog. */
  if (!g_socket_connect (socket, address, NULL, NULL))
    return NULL;
  return g_steal_pointer (&socket);
}

/* The inode of the socket listening on @socket_path, from /proc/net/unix
 * ("Num RefCount Protocol Flags Type St Inode Path"), or 0. */
static guint64
listening_inode (const char *socket_path)
{
  g_autofree char *table = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/net/unix", &table, NULL, NULL))
    return 0;
  lines = g_strsplit (table, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) f = g_strsplit_set (lines[i], " ", -1);
      const char *col[8] = { NULL };
      guint n = 0;

      for (guint j = 0; f[j] != NULL && n < G_N_ELEMENTS (col); j++)
        if (*f[j] != '\0')
          col[n++] = f[j];
      /* St 01 = unconnected: the listening socket, not its connections. */
      if (n == 8 && strcmp (col[7], socket_path) == 0 && strcmp (col[5], "01") == 0)
        return g_ascii_strtoull (col[6], NULL, 10);
    }
  return 0;
}

/* The process of our user holding socket @inode open, or 0.  The agent
 * forks after creating its socket, so the socket's peer credentials name
 * the parent that exited, not the agent. */
static GPid
holder_of (guint64 inode)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  g_autofree char *want = g_strdup_printf ("socket:[%" G_GUINT64_FORMAT "]", inode);
  const char *name;

  if (proc == NULL || inode == 0)
    return 0;
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *fd_dir = NULL;
      g_autoptr(GDir) fds = NULL;
      const char *fd;
      GStatBuf st;
      GPid pid;

      if (!g_ascii_isdigit (*name) || (pid = (GPid) atoi (name)) == getpid ())
        continue;
      fd_dir = g_strdup_printf ("/proc/%s/fd", name);
      if (g_stat (fd_dir, &st) != 0 || st.st_uid != getuid () || (fds = g_dir_open (fd_dir, 0, NULL)) == NULL)
        continue;
      while ((fd = g_dir_read_name (fds)) != NULL)
        {
          g_autofree char *link = g_build_filename (fd_dir, fd, NULL);
          g_autofree char *target = g_file_read_link (link, NULL);

          if (g_strcmp0 (target, want) == 0)
            return pid;
        }
    }
  return 0;
}

SmAgentState
sm_agent_probe (const char *socket_path, guint timeout_s, GPid *pid)
{
  g_autoptr(GSocket) socket = connect_agent (socket_path, timeout_s);
  char line[SM_AGENT_GREETING_MAX];
  gsize have = 0;

  if (pid != NULL)
    *pid = 0;
  if (socket == NULL)
    return SM_AGENT_ABSENT;
  if (pid != NULL)
    *pid = holder_of (listening_inode (socket_path));
  while (have < sizeof line - 1)
    {
      gssize n = g_socket_receive (socket, line + have, sizeof line - 1 - have, NULL, NULL);

      if (n <= 0)
        return SM_AGENT_SILENT;   /* timed out or closed without a greeting */
      have += (gsize) n;
      if (memchr (line, '\n', have) != NULL)
        break;
    }
  line[have] = '\0';
  return g_str_has_prefix (line, "OK") ? SM_AGENT_ANSWERS : SM_AGENT_SILENT;
}

gboolean
sm_agent_kill (const char *socket_path, GError **error)
{
  guint64 inode = listening_inode (socket_path);
  GPid pid;

  if (inode == 0)
    return TRUE;   /* nobody listens */
  pid = holder_of (inode);
  if (pid <= 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("No process of ours holds %s; gpg-agent was left alone"), socket_path);
      return FALSE;
    }
  if (kill (pid, SIGKILL) != 0 && errno != ESRCH)
    {
      int saved = errno;
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("Could not stop gpg-agent (process %d): %s"), (int) pid, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}
