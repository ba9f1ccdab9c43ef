/* sm-spool.c: the durable outbound spool. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm-spool.h"

#define META_GROUP "message"
#define TMP_PREFIX "tmp-"

struct _SmSpool {
  GObject parent_instance;

  char *dir;
  GMutex lock;            /* guards entries */
  GHashTable *entries;    /* id -> SmSpoolEntry* (owned) */
};

G_DEFINE_FINAL_TYPE (SmSpool, sm_spool, G_TYPE_OBJECT)

SmSpoolEntry *
sm_spool_entry_copy (const SmSpoolEntry *e)
{
  SmSpoolEntry *c = g_new0 (SmSpoolEntry, 1);

  *c = *e;
  c->id = g_strdup (e->id);
  c->sender = g_strdup (e->sender);
  c->recipients = g_strdupv (e->recipients);
  c->last_error = g_strdup (e->last_error);
  c->message_id = g_strdup (e->message_id);
  return c;
}

void
sm_spool_entry_free (SmSpoolEntry *e)
{
  if (e == NULL)
    return;
  g_free (e->id);
  g_free (e->sender);
  g_strfreev (e->recipients);
  g_free (e->last_error);
  g_free (e->message_id);
  g_free (e);
}

const char *
sm_spool_state_to_string (SmSpoolState state)
{
  switch (state)
    {
    case SM_SPOOL_SENDING:
      return "sending";
    case SM_SPOOL_FAILED:
      return "failed";
    case SM_SPOOL_QUEUED:
    default:
      return "queued";
    }
}

static SmSpoolState
state_from_string (const char *s)
{
  if (g_strcmp0 (s, "sending") == 0)
    return SM_SPOOL_SENDING;
  if (g_strcmp0 (s, "failed") == 0)
    return SM_SPOOL_FAILED;
  return SM_SPOOL_QUEUED;
}

static void
sm_spool_finalize (GObject *object)
{
  SmSpool *self = SM_SPOOL (object);

  g_hash_table_unref (self->entries);
  g_mutex_clear (&self->lock);
  g_free (self->dir);
  G_OBJECT_CLASS (sm_spool_parent_class)->finalize (object);
}

static void
sm_spool_class_init (SmSpoolClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_spool_finalize;
}

static void
sm_spool_init (SmSpool *self)
{
  g_mutex_init (&self->lock);
  self->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) sm_spool_entry_free);
}

/* ---- files --------------------------------------------------------------- */

static void
set_errno_error (GError **error, int err, const char *what, const char *path)
{
  g_autofree char *name = g_filename_display_name (path);

  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), _("Cannot %s the outbound queue file %s: %s"),
               what, name, g_strerror (err));
}

static gboolean
fsync_dir (const char *dir, GError **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int err;

  if (fd < 0)
    {
      set_errno_error (error, errno, _("open"), dir);
      return FALSE;
    }
  if (fsync (fd) != 0)
    {
      err = errno;
      close (fd);
      set_errno_error (error, err, _("sync"), dir);
      return FALSE;
    }
  close (fd);
  return TRUE;
}

/* Writes @data to @tmp (new, SM_SPOOL_FILE_MODE), fsyncs it and renames it
 * to @final.  On failure nothing named @tmp or @final is left by us. */
static gboolean
write_durably (const char *tmp, const char *final, const void *data, gsize len, GError **error)
{
  int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, SM_SPOOL_FILE_MODE);
  const char *p = data;
  int err;

  if (fd < 0)
    {
      set_errno_error (error, errno, _("create"), tmp);
      return FALSE;
    }
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          err = n < 0 ? errno : ENOSPC;
          goto fail;
        }
      p += n;
      len -= (gsize) n;
    }
  /* tmpfs and some network file systems report ENOSPC only here. */
  if (fsync (fd) != 0)
    {
      err = errno;
      goto fail;
    }
  if (close (fd) != 0)
    {
      fd = -1;
      err = errno;
      goto fail;
    }
  fd = -1;
  if (rename (tmp, final) != 0)
    {
      err = errno;
      goto fail;
    }
  return TRUE;

fail:
  if (fd >= 0)
    close (fd);
  g_unlink (tmp);
  set_errno_error (error, err, _("write"), final);
  return FALSE;
}

static char *
path_of (SmSpool *self, const char *prefix, const char *id, const char *ext)
{
  g_autofree char *name = g_strconcat (prefix, id, ext, NULL);
  return g_build_filename (self->dir, name, NULL);
}

static char *
meta_to_data (const SmSpoolEntry *e, gsize *len)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();

  g_key_file_set_string (kf, META_GROUP, "sender", e->sender);
  g_key_file_set_string_list (kf, META_GROUP, "recipients", (const char * const *) e->recipients,
                              g_strv_length (e->recipients));
  g_key_file_set_int64 (kf, META_GROUP, "created", e->created);
  g_key_file_set_int64 (kf, META_GROUP, "expires", e->expires);
  g_key_file_set_uint64 (kf, META_GROUP, "attempts", e->attempts);
  g_key_file_set_int64 (kf, META_GROUP, "next_attempt_ms", e->next_attempt_ms);
  g_key_file_set_string (kf, META_GROUP, "state", sm_spool_state_to_string (e->state));
  g_key_file_set_boolean (kf, META_GROUP, "report", e->is_report);
  g_key_file_set_uint64 (kf, META_GROUP, "size", e->size);
  if (e->last_error)
    g_key_file_set_string (kf, META_GROUP, "last_error", e->last_error);
  if (e->message_id)
    g_key_file_set_string (kf, META_GROUP, "message_id", e->message_id);
  return g_key_file_to_data (kf, len, NULL);
}

static SmSpoolEntry *
meta_from_file (const char *path, const char *id, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(SmSpoolEntry) e = g_new0 (SmSpoolEntry, 1);
  g_autofree char *state = NULL;
  g_autoptr(GError) local = NULL;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    return NULL;
  e->id = g_strdup (id);
  e->sender = g_key_file_get_string (kf, META_GROUP, "sender", &local);
  e->recipients = g_key_file_get_string_list (kf, META_GROUP, "recipients", NULL, local ? NULL : &local);
  if (local != NULL || e->recipients == NULL || e->recipients[0] == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: no envelope", path);
      return NULL;
    }
  e->created = g_key_file_get_int64 (kf, META_GROUP, "created", NULL);
  e->expires = g_key_file_get_int64 (kf, META_GROUP, "expires", NULL);
  e->attempts = (guint) g_key_file_get_uint64 (kf, META_GROUP, "attempts", NULL);
  e->next_attempt_ms = g_key_file_get_int64 (kf, META_GROUP, "next_attempt_ms", NULL);
  state = g_key_file_get_string (kf, META_GROUP, "state", NULL);
  e->state = state_from_string (state);
  e->is_report = g_key_file_get_boolean (kf, META_GROUP, "report", NULL);
  e->size = g_key_file_get_uint64 (kf, META_GROUP, "size", NULL);
  e->last_error = g_key_file_get_string (kf, META_GROUP, "last_error", NULL);
  e->message_id = g_key_file_get_string (kf, META_GROUP, "message_id", NULL);
  return g_steal_pointer (&e);
}

static gboolean
is_id (const char *s, gsize len)
{
  if (len != SM_SPOOL_ID_BYTES * 2)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean
load (SmSpool *self, GError **error)
{
  g_autoptr(GDir) d = g_dir_open (self->dir, 0, error);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  gboolean removed = FALSE;

  if (d == NULL)
    return FALSE;
  while ((name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (name));

  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      g_autofree char *path = g_build_filename (self->dir, n, NULL);
      gsize len = strlen (n);

      if (g_str_has_prefix (n, TMP_PREFIX))
        {
          /* An add or update that did not finish. */
          g_message ("Outbound queue: removing the unfinished file %s", n);
          g_unlink (path);
          removed = TRUE;
        }
      else if (g_str_has_suffix (n, ".meta") && is_id (n, len - 5))
        {
          g_autofree char *id = g_strndup (n, len - 5);
          g_autofree char *eml = path_of (self, "", id, ".eml");
          g_autoptr(GError) local = NULL;
          SmSpoolEntry *e;

          if (!g_file_test (eml, G_FILE_TEST_IS_REGULAR))
            {
              g_warning ("Outbound queue: %s has no message file; removing it", n);
              g_unlink (path);
              removed = TRUE;
              continue;
            }
          e = meta_from_file (path, id, &local);
          if (e == NULL)
            {
              /* Never delete what we cannot read: it may be someone's mail. */
              g_warning ("Outbound queue: cannot read %s (%s); leaving it alone", n, local->message);
              continue;
            }
          g_hash_table_insert (self->entries, e->id, e);
        }
    }
  /* A message file without metadata: its add did not finish (the client
   * never got 250), or its removal did. */
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      gsize len = strlen (n);
      if (g_str_has_suffix (n, ".eml") && is_id (n, len - 4))
        {
          g_autofree char *id = g_strndup (n, len - 4);
          g_autofree char *meta = path_of (self, "", id, ".meta");
          if (!g_file_test (meta, G_FILE_TEST_EXISTS))
            {
              g_autofree char *path = g_build_filename (self->dir, n, NULL);
              g_message ("Outbound queue: removing %s, whose metadata was never written", n);
              g_unlink (path);
              removed = TRUE;
            }
        }
    }
  if (removed)
    return fsync_dir (self->dir, error);
  return TRUE;
}

SmSpool *
sm_spool_new (const char *dir, GError **error)
{
  g_autoptr(SmSpool) self = g_object_new (SM_TYPE_SPOOL, NULL);

  self->dir = g_strdup (dir);
  if (g_mkdir_with_parents (dir, SM_SPOOL_DIR_MODE) != 0 || g_chmod (dir, SM_SPOOL_DIR_MODE) != 0)
    {
      int err = errno;
      g_autofree char *name = g_filename_display_name (dir);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   _("Cannot create the outbound queue %s: %s"), name, g_strerror (err));
      return NULL;
    }
  if (!load (self, error))
    return NULL;
  return g_steal_pointer (&self);
}

const char *
sm_spool_get_dir (SmSpool *self)
{
  return self->dir;
}

static char *
new_id (void)
{
  guint8 raw[SM_SPOOL_ID_BYTES];
  GString *s = g_string_sized_new (SM_SPOOL_ID_BYTES * 2);

  if (getrandom (raw, sizeof raw, 0) != (ssize_t) sizeof raw)
    for (gsize i = 0; i < sizeof raw; i++)
      raw[i] = (guint8) g_random_int ();
  for (gsize i = 0; i < sizeof raw; i++)
    g_string_append_printf (s, "%02x", raw[i]);
  return g_string_free (s, FALSE);
}

char *
sm_spool_find_header (GBytes *message, const char *name)
{
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  const char *p = data, *end = data + len;
  gsize nlen = strlen (name);

  while (p < end)
    {
      const char *lf = memchr (p, '\n', end - p);
      const char *eol = lf ? lf : end;
      gsize n = (gsize) (eol - p);
      if (n > 0 && p[n - 1] == '\r')
        n--;
      if (n == 0)
        break;   /* end of the header */
      if (n > nlen && g_ascii_strncasecmp (p, name, nlen) == 0 && p[nlen] == ':')
        {
          GString *v = g_string_new_len (p + nlen + 1, (gssize) (n - nlen - 1));
          /* Unfold (RFC 5322 §2.2.3). */
          for (const char *q = lf ? lf + 1 : end; q < end && (*q == ' ' || *q == '\t');)
            {
              const char *lf2 = memchr (q, '\n', end - q);
              const char *e2 = lf2 ? lf2 : end;
              gsize m = (gsize) (e2 - q);
              if (m > 0 && q[m - 1] == '\r')
                m--;
              g_string_append_len (v, q, (gssize) m);
              q = lf2 ? lf2 + 1 : end;
            }
          g_strstrip (v->str);
          if (v->str[0] == '\0' || strlen (v->str) > SM_SPOOL_MAX_MESSAGE_ID)
            {
              g_string_free (v, TRUE);
              return NULL;
            }
          {
            char *valid = g_utf8_make_valid (v->str, -1);
            g_string_free (v, TRUE);
            return valid;
          }
        }
      p = lf ? lf + 1 : end;
    }
  return NULL;
}

char *
sm_spool_add (SmSpool *self, const char *sender, const char * const *recipients, GBytes *message,
              gboolean is_report, gint64 max_age_s, GError **error)
{
  g_autofree char *id = NULL;
  g_autofree char *eml = NULL, *eml_tmp = NULL, *meta = NULL, *meta_tmp = NULL;
  g_autofree char *meta_data = NULL;
  g_autoptr(SmSpoolEntry) e = g_new0 (SmSpoolEntry, 1);
  gsize len, meta_len;
  const void *data = g_bytes_get_data (message, &len);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_return_val_if_fail (recipients != NULL && recipients[0] != NULL, NULL);

  if (sm_spool_get_size (self) >= SM_SPOOL_MAX_ENTRIES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   _("The outbound queue is full (%u messages); wait until the provider takes them"),
                   (guint) SM_SPOOL_MAX_ENTRIES);
      return NULL;
    }
  id = new_id ();
  eml = path_of (self, "", id, ".eml");
  eml_tmp = path_of (self, TMP_PREFIX, id, ".eml");
  meta = path_of (self, "", id, ".meta");
  meta_tmp = path_of (self, TMP_PREFIX, id, ".meta");

  e->id = g_strdup (id);
  e->sender = g_strdup (sender ? sender : "");
  e->recipients = g_strdupv ((char **) recipients);
  e->created = now;
  e->expires = now + max_age_s;
  e->next_attempt_ms = now * 1000;
  e->state = SM_SPOOL_QUEUED;
  e->is_report = is_report;
  e->size = len;
  e->message_id = sm_spool_find_header (message, "Message-ID");
  meta_data = meta_to_data (e, &meta_len);

  if (!write_durably (eml_tmp, eml, data ? data : "", len, error))
    return NULL;
  if (!write_durably (meta_tmp, meta, meta_data, meta_len, error))
    {
      g_unlink (eml);
      return NULL;
    }
  /* The renames are durable only once the directory is. */
  if (!fsync_dir (self->dir, error))
    {
      g_unlink (meta);
      g_unlink (eml);
      return NULL;
    }
  g_mutex_lock (&self->lock);
  g_hash_table_insert (self->entries, e->id, e);
  e = NULL;
  g_mutex_unlock (&self->lock);
  return g_steal_pointer (&id);
}

GBytes *
sm_spool_read_message (SmSpool *self, const char *id, GError **error)
{
  g_autofree char *path = path_of (self, "", id, ".eml");
  g_autoptr(GMappedFile) map = g_mapped_file_new (path, FALSE, error);

  if (map == NULL)
    return NULL;
  return g_mapped_file_get_bytes (map);
}

gboolean
sm_spool_update (SmSpool *self, const SmSpoolEntry *entry, GError **error)
{
  g_autofree char *meta = path_of (self, "", entry->id, ".meta");
  g_autofree char *meta_tmp = path_of (self, TMP_PREFIX, entry->id, ".meta");
  g_autofree char *data = NULL;
  gsize len;
  gboolean ok;

  g_mutex_lock (&self->lock);
  if (!g_hash_table_contains (self->entries, entry->id))
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("No message %s in the outbound queue"), entry->id);
      return FALSE;
    }
  /* Under the lock: two writers of one .meta must not interleave. */
  data = meta_to_data (entry, &len);
  ok = write_durably (meta_tmp, meta, data, len, error) && fsync_dir (self->dir, error);
  if (ok)
    {
      SmSpoolEntry *copy = sm_spool_entry_copy (entry);
      g_hash_table_replace (self->entries, copy->id, copy);
    }
  g_mutex_unlock (&self->lock);
  return ok;
}

gboolean
sm_spool_remove (SmSpool *self, const char *id, GError **error)
{
  g_autofree char *meta = path_of (self, "", id, ".meta");
  g_autofree char *eml = path_of (self, "", id, ".eml");
  gboolean ok;

  g_mutex_lock (&self->lock);
  if (!g_hash_table_contains (self->entries, id))
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("No message %s in the outbound queue"), id);
      return FALSE;
    }
  if (g_unlink (meta) != 0 && errno != ENOENT)
    {
      set_errno_error (error, errno, _("remove"), meta);
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
  g_hash_table_remove (self->entries, id);
  g_unlink (eml);
  ok = fsync_dir (self->dir, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

SmSpoolEntry *
sm_spool_lookup (SmSpool *self, const char *id)
{
  SmSpoolEntry *e, *copy = NULL;

  g_mutex_lock (&self->lock);
  e = g_hash_table_lookup (self->entries, id);
  if (e != NULL)
    copy = sm_spool_entry_copy (e);
  g_mutex_unlock (&self->lock);
  return copy;
}

static gint
by_created (gconstpointer a, gconstpointer b)
{
  const SmSpoolEntry *x = *(SmSpoolEntry * const *) a, *y = *(SmSpoolEntry * const *) b;

  if (x->created != y->created)
    return x->created < y->created ? -1 : 1;
  return strcmp (x->id, y->id);
}

GPtrArray *
sm_spool_list (SmSpool *self)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_spool_entry_free);
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (list, sm_spool_entry_copy (value));
  g_mutex_unlock (&self->lock);
  g_ptr_array_sort (list, by_created);
  return list;
}

guint
sm_spool_get_size (SmSpool *self)
{
  guint n;

  g_mutex_lock (&self->lock);
  n = g_hash_table_size (self->entries);
  g_mutex_unlock (&self->lock);
  return n;
}
