/* sm-view-cache.c: the decrypted views shared by the IMAP sessions. */
#include "config.h"

#include <string.h>

#include "sm-view-cache.h"

struct _SmViewCache {
  gsize max_bytes;
  guint max_entries;
  gsize bytes;
  GHashTable *entries;   /* key (owned by Entry) -> Entry */
  GQueue lru;            /* Entry*, most recent at the head */
  GHashTable *plain;     /* keys of messages that need no view */
};

typedef struct {
  char *key;
  const char *mailbox;   /* in key */
  guint32 uidvalidity;
  guint32 uid;
  SmCachedView *cached;
  gsize bytes;
  GList link;            /* in lru; data = the Entry */
} Entry;

SmCachedView *
sm_cached_view_new (SmSecureView *view, SmImapFetchMessage *message)
{
  SmCachedView *cached = g_rc_box_new0 (SmCachedView);

  cached->view = view;
  cached->message = message;
  return cached;
}

SmCachedView *
sm_cached_view_ref (SmCachedView *cached)
{
  return g_rc_box_acquire (cached);
}

static void
cached_view_clear (SmCachedView *cached)
{
  g_clear_pointer (&cached->message, sm_imap_fetch_message_free);
  g_clear_pointer (&cached->view, sm_secure_view_free);
}

void
sm_cached_view_unref (SmCachedView *cached)
{
  g_rc_box_release_full (cached, (GDestroyNotify) cached_view_clear);
}

static gsize
cached_view_bytes (SmCachedView *cached)
{
  /* The rebuilt message dominates; the parsed structure is about as big
   * again in the worst case, so count it twice. */
  return 2 * g_bytes_get_size (cached->view->message) + 1024;
}

static char *
make_key (const char *mailbox, guint32 uidvalidity, guint32 uid)
{
  /* Mailbox names cannot hold NUL, so "\n" would do as well; a separator
   * the name cannot contain keeps "a" 12 and "a1" 2 apart. */
  return g_strdup_printf ("%u/%u/%s", uidvalidity, uid, mailbox);
}

static void
entry_free (Entry *e)
{
  g_free (e->key);
  sm_cached_view_unref (e->cached);
  g_free (e);
}

SmViewCache *
sm_view_cache_new (gsize max_bytes, guint max_entries)
{
  SmViewCache *cache = g_new0 (SmViewCache, 1);

  cache->max_bytes = max_bytes;
  cache->max_entries = max_entries;
  cache->entries = g_hash_table_new (g_str_hash, g_str_equal);
  cache->plain = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&cache->lru);
  return cache;
}

static void
remove_entry (SmViewCache *cache, Entry *e)
{
  g_queue_unlink (&cache->lru, &e->link);
  g_hash_table_remove (cache->entries, e->key);
  cache->bytes -= e->bytes;
  entry_free (e);
}

void
sm_view_cache_clear (SmViewCache *cache)
{
  while (cache->lru.tail != NULL)
    remove_entry (cache, cache->lru.tail->data);
}

void
sm_view_cache_free (SmViewCache *cache)
{
  if (cache == NULL)
    return;
  sm_view_cache_clear (cache);
  g_hash_table_unref (cache->entries);
  g_hash_table_unref (cache->plain);
  g_free (cache);
}

SmCachedView *
sm_view_cache_lookup (SmViewCache *cache, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
  g_autofree char *key = make_key (mailbox, uidvalidity, uid);
  Entry *e = g_hash_table_lookup (cache->entries, key);

  if (e == NULL)
    return NULL;
  g_queue_unlink (&cache->lru, &e->link);
  g_queue_push_head_link (&cache->lru, &e->link);
  return sm_cached_view_ref (e->cached);
}

void
sm_view_cache_insert (SmViewCache *cache, const char *mailbox, guint32 uidvalidity, guint32 uid,
                      SmCachedView *cached)
{
  Entry *e = g_new0 (Entry, 1);
  Entry *old;

  e->key = make_key (mailbox, uidvalidity, uid);
  e->mailbox = e->key + strlen (e->key) - strlen (mailbox);
  e->uidvalidity = uidvalidity;
  e->uid = uid;
  e->cached = sm_cached_view_ref (cached);
  e->bytes = cached_view_bytes (cached);
  e->link.data = e;
  old = g_hash_table_lookup (cache->entries, e->key);
  if (old != NULL)
    remove_entry (cache, old);
  /* A view larger than the whole cache is answered from once and not kept. */
  if (e->bytes > cache->max_bytes)
    {
      entry_free (e);
      return;
    }
  while (cache->lru.tail != NULL &&
         (cache->bytes + e->bytes > cache->max_bytes || cache->lru.length >= cache->max_entries))
    remove_entry (cache, cache->lru.tail->data);
  g_hash_table_insert (cache->entries, e->key, e);
  g_queue_push_head_link (&cache->lru, &e->link);
  cache->bytes += e->bytes;
}

void
sm_view_cache_mark_plain (SmViewCache *cache, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
  if (g_hash_table_size (cache->plain) >= SM_VIEW_CACHE_MAX_PLAIN)
    g_hash_table_remove_all (cache->plain);
  g_hash_table_add (cache->plain, make_key (mailbox, uidvalidity, uid));
}

gboolean
sm_view_cache_is_plain (SmViewCache *cache, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
  g_autofree char *key = make_key (mailbox, uidvalidity, uid);

  return g_hash_table_contains (cache->plain, key);
}

void
sm_view_cache_foreach (SmViewCache *cache, const char *mailbox, guint32 uidvalidity, SmViewCacheFunc func,
                       gpointer user_data)
{
  for (GList *l = cache->lru.head; l != NULL; l = l->next)
    {
      const Entry *e = l->data;

      if (e->uidvalidity == uidvalidity && strcmp (e->mailbox, mailbox) == 0)
        func (e->uid, e->cached, user_data);
    }
}

guint
sm_view_cache_size (SmViewCache *cache)
{
  return cache->lru.length;
}

gsize
sm_view_cache_bytes (SmViewCache *cache)
{
  return cache->bytes;
}
