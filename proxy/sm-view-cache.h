/* sm-view-cache.h: the decrypted views the proxy has built, shared by all
 * IMAP sessions of the account.
 *
 * Keyed by mailbox name, UIDVALIDITY and UID (RFC 9051 §2.3.1.1: that
 * triple names one message for ever), so every session and every later
 * FETCH answers from the same rebuilt message and client caches stay
 * consistent.  Memory only: decrypted content never goes to disk.  Bounded
 * by bytes and entries; the least recently used view goes first.  Used from
 * the main thread only.
 */
#pragma once

#include <glib.h>

#include "sm-imap-fetch.h"
#include "sm-secure-view.h"

G_BEGIN_DECLS

#define SM_VIEW_CACHE_MAX_BYTES    (256 * 1024 * 1024)
#define SM_VIEW_CACHE_MAX_ENTRIES  20000
/* Messages remembered as plain (no view needed); the set starts over when
 * full.  About 100 bytes each. */
#define SM_VIEW_CACHE_MAX_PLAIN    100000

/* One cached view: the trust result and the message parsed for FETCH.
 * Reference counted, so that a FETCH in progress keeps what it answers
 * from even when the cache evicts it. */
typedef struct {
  SmSecureView *view;
  SmImapFetchMessage *message;
} SmCachedView;

SmCachedView *sm_cached_view_new   (SmSecureView *view, SmImapFetchMessage *message);  /* takes both */
SmCachedView *sm_cached_view_ref   (SmCachedView *cached);
void          sm_cached_view_unref (SmCachedView *cached);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmCachedView, sm_cached_view_unref)

typedef struct _SmViewCache SmViewCache;

SmViewCache  *sm_view_cache_new    (gsize max_bytes, guint max_entries);
void          sm_view_cache_free   (SmViewCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmViewCache, sm_view_cache_free)

/* A new reference, or NULL.  A hit makes the entry the most recent. */
SmCachedView *sm_view_cache_lookup (SmViewCache *cache, const char *mailbox,
                                    guint32 uidvalidity, guint32 uid);
/* Adds (or replaces) the entry; takes its own reference. */
void          sm_view_cache_insert (SmViewCache *cache, const char *mailbox,
                                    guint32 uidvalidity, guint32 uid, SmCachedView *cached);
/* A message seen to need no view (not protected, nothing forged): a later
 * FETCH of only such messages is relayed without looking at them again.
 * UIDVALIDITY and UID name one unchanging message, so this stays true. */
void          sm_view_cache_mark_plain (SmViewCache *cache, const char *mailbox,
                                        guint32 uidvalidity, guint32 uid);
gboolean      sm_view_cache_is_plain   (SmViewCache *cache, const char *mailbox,
                                        guint32 uidvalidity, guint32 uid);

/* Calls @func for every view of @mailbox at @uidvalidity, in no
 * particular order, without making them recent (SEARCH looks at all of them,
 * sm-imap-search.h).  @func gets a borrowed reference and must not change
 * the cache. */
typedef void (*SmViewCacheFunc) (guint32 uid, SmCachedView *cached, gpointer user_data);
void          sm_view_cache_foreach (SmViewCache *cache, const char *mailbox, guint32 uidvalidity,
                                     SmViewCacheFunc func, gpointer user_data);

/* Forgets every view (on lock). */
void          sm_view_cache_clear  (SmViewCache *cache);
guint         sm_view_cache_size   (SmViewCache *cache);
gsize         sm_view_cache_bytes  (SmViewCache *cache);

G_END_DECLS
