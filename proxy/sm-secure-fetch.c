/* sm-secure-fetch.c: one client FETCH answered from decrypted views. */
#include "config.h"

#include <glib/gi18n.h>
#include <stdlib.h>
#include <string.h>

#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-imap-parser.h"
#include "sm-mime.h"
#include "sm-agent.h"
#include "sm-gnupg-tool.h"
#include "sm-secure-fetch.h"
#include "sm-trustdb.h"

/* Fields of a message too large to check that the placeholder view keeps,
 * so the client can still list it. */
static const char * const placeholder_fields[] = {
  "From", "To", "Cc", "Date", "Subject", "Message-ID", "In-Reply-To", "References", NULL,
};

typedef enum {
  STEP_PREQUERY,     /* which messages need a view */
  STEP_BODIES,       /* whole messages of one round, builds running */
  STEP_SEEN,         /* \Seen for the round */
  STEP_META,         /* the client's other items, answered with the views */
  STEP_PLAIN,        /* the other messages, in pieces, relayed */
  STEP_DONE,
} Step;

typedef struct {
  guint32 seq;
  guint32 uid;
  guint64 size;
  GBytes *header;           /* from the pre-query, until the view exists */
  SmCachedView *cached;
  gboolean fetched;         /* BODY[] arrived this round */
  gboolean answered;        /* the client got its FETCH response */
} Msg;

struct _SmSecureFetch {
  GObject parent_instance;

  SmImapFetchRequest *request;
  GBytes *command_line;
  SmViewCache *cache;               /* not owned: the server's */
  char *mailbox;
  guint32 uidvalidity;
  gboolean read_only;
  char *account_address;
  SmSecureViewFlags view_flags;
  SmSecureFetchHooks hooks;
  gpointer owner;                   /* NULL once cancelled */
  GCancellable *cancellable;

  Step step;
  char *tag;                        /* of the provider command in flight */
  GPtrArray *msgs;                  /* Msg*, in pre-query order */
  GPtrArray *plain;                 /* guint32 UIDs that need no view (boxed in pointers) */
  GHashTable *by_uid;               /* uid -> Msg* of the messages that need a view */
  GPtrArray *views;                 /* Msg* that need a view, in order */
  guint round_start, round_end;     /* [start, end) of views in this round */
  guint builds_pending;
  guint64 bytes_pending;            /* raw bytes waiting for a build */
  gboolean tagged_done;             /* the round's BODY[] command has completed */
  gboolean locked;                  /* a build found a key locked */
  char *failure;                    /* a build failed otherwise: the client gets NO */
  GPtrArray *plain_sets;            /* STEP_PLAIN: UID sets still to send */
};

G_DEFINE_FINAL_TYPE (SmSecureFetch, sm_secure_fetch, G_TYPE_OBJECT)

static void next_step (SmSecureFetch *self);

static void
msg_free (Msg *m)
{
  g_clear_pointer (&m->header, g_bytes_unref);
  g_clear_pointer (&m->cached, sm_cached_view_unref);
  g_free (m);
}

static void
sm_secure_fetch_finalize (GObject *object)
{
  SmSecureFetch *self = SM_SECURE_FETCH (object);

  g_clear_pointer (&self->request, sm_imap_fetch_request_free);
  g_clear_pointer (&self->command_line, g_bytes_unref);
  g_free (self->mailbox);
  g_free (self->account_address);
  g_free (self->tag);
  g_free (self->failure);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->msgs, g_ptr_array_unref);
  g_clear_pointer (&self->plain, g_ptr_array_unref);
  g_clear_pointer (&self->views, g_ptr_array_unref);
  g_clear_pointer (&self->by_uid, g_hash_table_unref);
  g_clear_pointer (&self->plain_sets, g_ptr_array_unref);
  G_OBJECT_CLASS (sm_secure_fetch_parent_class)->finalize (object);
}

static void
sm_secure_fetch_class_init (SmSecureFetchClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_secure_fetch_finalize;
}

static void
sm_secure_fetch_init (SmSecureFetch *self)
{
  self->cancellable = g_cancellable_new ();
  self->msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) msg_free);
  self->plain = g_ptr_array_new ();
  self->views = g_ptr_array_new ();
  self->by_uid = g_hash_table_new (NULL, NULL);
}

SmSecureFetch *
sm_secure_fetch_new (SmImapFetchRequest *request, GBytes *command_line, SmViewCache *cache,
                     const char *mailbox, guint32 uidvalidity, gboolean read_only,
                     const char *account_address, SmSecureViewFlags view_flags,
                     const SmSecureFetchHooks *hooks, gpointer owner)
{
  SmSecureFetch *self = g_object_new (SM_TYPE_SECURE_FETCH, NULL);

  self->request = request;
  self->command_line = g_bytes_ref (command_line);
  self->cache = cache;
  self->mailbox = uidvalidity != 0 ? g_strdup (mailbox) : NULL;
  self->uidvalidity = uidvalidity;
  self->read_only = read_only;
  self->account_address = g_strdup (account_address);
  self->view_flags = view_flags;
  self->hooks = *hooks;
  self->owner = owner;
  return self;
}

void
sm_secure_fetch_cancel (SmSecureFetch *self)
{
  self->owner = NULL;
  g_cancellable_cancel (self->cancellable);
}

/* ---- the key store ---------------------------------------------------------- */

static GMutex store_lock;
static SmCertstore *incoming_store;

/* GnuPG work in flight (builds and unlocks), for the agent watchdog. */
static GMutex ops_lock;
static GHashTable *ops_started;   /* gint64* start times (monotonic µs) */
static gint agent_generation;     /* bumped when the watchdog replaced gpg-agent */

static void
gnupg_op_begin (gint64 *started)
{
  g_mutex_lock (&ops_lock);
  if (ops_started == NULL)
    ops_started = g_hash_table_new (NULL, NULL);
  *started = g_get_monotonic_time ();
  g_hash_table_add (ops_started, started);
  g_mutex_unlock (&ops_lock);
}

static void
gnupg_op_end (gint64 *started)
{
  g_mutex_lock (&ops_lock);
  g_hash_table_remove (ops_started, started);
  g_mutex_unlock (&ops_lock);
}

/* Start time of the longest-running GnuPG work, or 0. */
static gint64
oldest_gnupg_op (void)
{
  GHashTableIter iter;
  gpointer key;
  gint64 oldest = 0;

  g_mutex_lock (&ops_lock);
  if (ops_started != NULL)
    {
      g_hash_table_iter_init (&iter, ops_started);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        if (oldest == 0 || *(gint64 *) key < oldest)
          oldest = *(gint64 *) key;
    }
  g_mutex_unlock (&ops_lock);
  return oldest;
}

/* sm_certstore_unlock() under the watchdog's eye: it lists keys through
 * GPGME, which waits on gpg-agent like a decryption. */
static gboolean
tracked_unlock (SmCertstore *store, GError **error)
{
  gint64 started;
  gboolean ok;
  SmTrustdbUse *use = sm_trustdb_use_begin (sm_certstore_get_home (store));

  gnupg_op_begin (&started);
  ok = sm_certstore_unlock (store, NULL, NULL, error);
  gnupg_op_end (&started);
  sm_trustdb_use_end (use);
  return ok;
}

static gint gate_open = TRUE;
static gint64 last_represet;   /* monotonic µs, under store_lock */

void
sm_secure_fetch_set_gate_open (gboolean open)
{
  g_atomic_int_set (&gate_open, open);
}

static gpointer agent_watch_thread (gpointer data);

/* Why the keyring's passphrases go to gpg-agent again. */
typedef enum {
  REPRESET_LOST,        /* a build found a key locked: at most once per
                         * SM_SECURE_FETCH_REPRESET_INTERVAL_S */
  REPRESET_NEW_AGENT,   /* the watchdog replaced the agent: once per
                         * replacement, whenever the last re-preset was */
} RepresetReason;

static gint represet_generation;   /* under store_lock */

/* tracked_unlock() while the gate is open, on a worker thread.  A lock that
 * comes meanwhile has gpg-agent forget (sm-server.c) perhaps before the last
 * passphrases arrive, so the agent is told to forget once more if the gate
 * is closed afterwards.  (Should an unlock slip in between, the next build
 * finds its key locked and represet() hands the keyring's passphrases over
 * again.) */
static gboolean
unlock_while_open (SmCertstore *store, const char *failure)
{
  g_autoptr(GError) local = NULL;
  gboolean ok;

  if (!g_atomic_int_get (&gate_open))
    return FALSE;
  ok = tracked_unlock (store, &local);
  if (!ok)
    g_message ("%s: %s", failure, local->message);
  g_clear_error (&local);
  if (!g_atomic_int_get (&gate_open) && !sm_gnupg_tool_reload_agent (sm_certstore_get_home (store), &local))
    g_message ("Locked while the key passphrases went to gpg-agent, and it could not be told to forget them: %s",
               local->message);
  return ok;
}

/* Hands the keyring's passphrases to gpg-agent again, unless the gate is
 * closed or @reason says it is not due (@generation: the agent's, for
 * REPRESET_NEW_AGENT).  Returns TRUE when a retry may help: another build
 * may just have re-preset. */
static gboolean
represet (SmCertstore *store, RepresetReason reason, gint generation)
{
  gint64 now = g_get_monotonic_time ();
  gboolean due;

  if (!g_atomic_int_get (&gate_open))
    return FALSE;
  g_mutex_lock (&store_lock);
  if (reason == REPRESET_NEW_AGENT)
    {
      due = represet_generation != generation;
      represet_generation = generation;
    }
  else
    due = now - last_represet >= SM_SECURE_FETCH_REPRESET_INTERVAL_S * G_USEC_PER_SEC;
  if (due)
    {
      last_represet = now;
      if (unlock_while_open (store, reason == REPRESET_LOST
                                      ? "gpg-agent has no key passphrase and the keyring could not give it"
                                      : "The new gpg-agent could not get the key passphrases from the keyring")
          && reason == REPRESET_LOST)
        g_message ("gpg-agent had lost a key passphrase; it was handed over again from the keyring");
    }
  g_mutex_unlock (&store_lock);
  return TRUE;
}

SmCertstore *
sm_secure_fetch_get_store (GError **error)
{
  SmCertstore *store;

  g_mutex_lock (&store_lock);
  if (incoming_store == NULL)
    {
      store = sm_certstore_new (error);
      if (store != NULL)
        {
          g_thread_unref (g_thread_new ("sm-agent-watch", agent_watch_thread,
                                        g_strdup (sm_certstore_get_home (store))));
          /* The keyring's passphrases go to gpg-agent once; a key still
           * locked shows up per message as SM_ERROR_LOCKED. */
          unlock_while_open (store, "Could not unlock the key store yet");
          g_message ("The key store for incoming mail is open");
        }
      g_atomic_pointer_set (&incoming_store, store);
    }
  store = incoming_store;
  g_mutex_unlock (&store_lock);
  return store;
}

static void
prepare_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  g_autoptr(GError) error = NULL;

  if (g_atomic_int_get (&gate_open) && sm_secure_fetch_get_store (&error) == NULL)
    g_message ("Could not open the key store for incoming mail: %s", error->message);
  /* GTask wants a result; nobody waits for it. */
  g_task_return_boolean (task, TRUE);
}

void
sm_secure_fetch_prepare (void)
{
  g_autoptr(GTask) task = NULL;

  /* Read without store_lock: this runs on the main loop, and that lock is
   * held while passphrases go to gpg-agent (seconds with a stuck agent). */
  if (g_atomic_pointer_get (&incoming_store) != NULL || !g_atomic_int_get (&gate_open))
    return;
  task = g_task_new (NULL, NULL, NULL, NULL);
  g_task_set_source_tag (task, sm_secure_fetch_prepare);
  g_task_run_in_thread (task, prepare_thread);
}

/* ---- sending ------------------------------------------------------------------ */

static void
send_command (SmSecureFetch *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
send_command (SmSecureFetch *self, const char *format, ...)
{
  static guint counter;
  g_autoptr(GString) line = g_string_new (NULL);
  va_list ap;

  g_free (self->tag);
  self->tag = g_strdup_printf ("SMF%u", ++counter);
  g_string_append_printf (line, "%s ", self->tag);
  va_start (ap, format);
  g_string_append_vprintf (line, format, ap);
  va_end (ap);
  g_string_append (line, "\r\n");
  if (self->owner != NULL)
    self->hooks.to_upstream (self->owner, (const guint8 *) line->str, line->len);
}

static void
to_client (SmSecureFetch *self, const char *data, gsize len)
{
  if (self->owner != NULL)
    self->hooks.to_client (self->owner, (const guint8 *) data, len);
}

static void
finish (SmSecureFetch *self, GBytes *passthrough)
{
  gpointer owner = self->owner;

  self->step = STEP_DONE;
  self->owner = NULL;
  if (owner != NULL)
    self->hooks.finished (owner, passthrough);
}

/* Answers the client's command ourselves and ends. */
static void
finish_with (SmSecureFetch *self, const char *status_and_text)
{
  g_autofree char *line = g_strdup_printf ("%s %s\r\n", sm_imap_fetch_request_tag (self->request),
                                           status_and_text);

  to_client (self, line, strlen (line));
  finish (self, NULL);
}

static int
compare_uid (gconstpointer a, gconstpointer b)
{
  guint32 x = GPOINTER_TO_UINT (*(gpointer *) a), y = GPOINTER_TO_UINT (*(gpointer *) b);

  return x < y ? -1 : x > y;
}

/* UID sets ("3:7,9") for @uids (guint32 in pointers), each at most
 * SM_SECURE_FETCH_MAX_SET_LEN long. */
static GPtrArray *
uid_sets (GPtrArray *uids)
{
  GPtrArray *sets = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) sorted = g_ptr_array_copy (uids, NULL, NULL);
  GString *cur = g_string_new (NULL);

  g_ptr_array_sort (sorted, compare_uid);
  for (guint i = 0; i < sorted->len;)
    {
      guint32 first = GPOINTER_TO_UINT (sorted->pdata[i]), last = first;
      char piece[32];

      for (i++; i < sorted->len; i++)
        {
          guint32 u = GPOINTER_TO_UINT (sorted->pdata[i]);
          if (u == last)
            continue;                   /* duplicates */
          if (u != last + 1)
            break;
          last = u;
        }
      if (first == last)
        g_snprintf (piece, sizeof piece, "%u", first);
      else
        g_snprintf (piece, sizeof piece, "%u:%u", first, last);
      if (cur->len > 0 && cur->len + 1 + strlen (piece) > SM_SECURE_FETCH_MAX_SET_LEN)
        {
          g_ptr_array_add (sets, g_string_free (cur, FALSE));
          cur = g_string_new (NULL);
        }
      if (cur->len > 0)
        g_string_append_c (cur, ',');
      g_string_append (cur, piece);
    }
  if (cur->len > 0)
    g_ptr_array_add (sets, g_string_free (cur, FALSE));
  else
    g_string_free (cur, TRUE);
  return sets;
}

/* The client's command line after its sequence set: the items, any
 * modifiers and the line end, exactly as sent. */
static const char *
command_rest (SmSecureFetch *self, gsize *len)
{
  gsize total;
  const char *line = g_bytes_get_data (self->command_line, &total);
  const char *end = line + total;
  const char *p = line;
  guint words = sm_imap_fetch_request_is_uid (self->request) ? 4 : 3;   /* tag [UID] FETCH set */

  for (guint w = 0; w < words && p < end; w++)
    {
      while (p < end && *p != ' ')
        p++;
      if (p < end)
        p++;
    }
  *len = (gsize) (end - p);
  return p;
}

/* ---- responses ------------------------------------------------------------------- */

static const SmImapFetchItem *
find_item (GPtrArray *items, const char *name)
{
  for (guint i = 0; i < items->len; i++)
    {
      const SmImapFetchItem *it = items->pdata[i];
      if (strcmp (it->name, name) == 0)
        return it;
    }
  return NULL;
}

static gboolean
item_number (GPtrArray *items, const char *name, guint64 *out)
{
  const SmImapFetchItem *it = find_item (items, name);
  g_autofree char *text = NULL;
  char *end = NULL;

  if (it == NULL || it->is_nil || it->value == NULL)
    return FALSE;
  text = g_strndup (g_bytes_get_data (it->value, NULL), g_bytes_get_size (it->value));
  if (!g_ascii_isdigit (text[0]))
    return FALSE;
  *out = g_ascii_strtoull (text, &end, 10);
  return *end == '\0';
}

/* TRUE when the header needs a view: a protected root, or fields and tags
 * only the proxy may write, which a sender could forge. */
static gboolean
header_needs_view (GBytes *header)
{
  gsize len;
  const char *data = g_bytes_get_data (header, &len);
  g_autoptr(GBytes) stripped = NULL;

  if (sm_secure_view_is_protected (data, len))
    return TRUE;
  stripped = sm_secure_view_strip_forged (header);
  return stripped != header;
}

static void
on_prequery_item (SmSecureFetch *self, guint32 seq, GPtrArray *items)
{
  const SmImapFetchItem *hdr = find_item (items, "BODY[HEADER]");
  guint64 uid = 0, size = 0;
  Msg *m;

  if (!item_number (items, "UID", &uid) || uid == 0 || uid > G_MAXUINT32)
    return;
  item_number (items, "RFC822.SIZE", &size);
  if (hdr == NULL || hdr->is_nil || hdr->value == NULL || !header_needs_view (hdr->value))
    {
      g_ptr_array_add (self->plain, GUINT_TO_POINTER ((guint32) uid));
      if (self->mailbox != NULL && hdr != NULL && !hdr->is_nil && hdr->value != NULL)
        sm_view_cache_mark_plain (self->cache, self->mailbox, self->uidvalidity, (guint32) uid);
      return;
    }
  if (g_hash_table_contains (self->by_uid, GUINT_TO_POINTER ((guint32) uid)))
    return;
  m = g_new0 (Msg, 1);
  m->seq = seq;
  m->uid = (guint32) uid;
  m->size = size;
  m->header = g_bytes_ref (hdr->value);
  if (self->mailbox != NULL)
    m->cached = sm_view_cache_lookup (self->cache, self->mailbox, self->uidvalidity, m->uid);
  g_ptr_array_add (self->msgs, m);
  g_ptr_array_add (self->views, m);
  g_hash_table_insert (self->by_uid, GUINT_TO_POINTER (m->uid), m);
}

/* ---- building views ---------------------------------------------------------------- */

/* The view of a message SecureMail will not check (larger than its limits):
 * the listing fields, an explanation, and never the content. */
static SmCachedView *
placeholder_view (GBytes *header, SmSecureViewFlags flags, const char *why, GError **error)
{
  g_autoptr(GBytes) stripped = sm_secure_view_strip_forged (header);
  gsize len;
  const char *data = g_bytes_get_data (stripped, &len);
  g_autoptr(GArray) fields = sm_mime_fields_parse (data, len, error);
  g_autoptr(GString) out = g_string_new (NULL);
  g_autoptr(SmSecureView) view = g_new0 (SmSecureView, 1);
  const char *tag = (flags & SM_SECURE_VIEW_SUBJECT_TAGS) ? sm_trust_subject_tag (SM_TRUST_DECRYPT_FAILED) : NULL;
  gboolean subject_done = FALSE;
  g_autoptr(GBytes) message = NULL;
  SmImapFetchMessage *parsed;

  if (fields == NULL)
    return NULL;
  for (guint i = 0; i < fields->len; i++)
    {
      const SmMimeField *f = &g_array_index (fields, SmMimeField, i);
      gboolean keep = FALSE;

      for (guint k = 0; placeholder_fields[k] != NULL && !keep; k++)
        keep = sm_mime_field_is (data, f, placeholder_fields[k]);
      if (!keep)
        continue;
      if (tag != NULL && !subject_done && sm_mime_field_is (data, f, "Subject"))
        {
          g_string_append_printf (out, "Subject: %s", tag);
          g_string_append_len (out, data + f->value_start, (gssize) (f->len - (f->value_start - f->start)));
          subject_done = TRUE;
          continue;
        }
      g_string_append_len (out, data + f->start, (gssize) f->len);
    }
  if (tag != NULL && !subject_done)
    g_string_append_printf (out, "Subject: %s\r\n", tag);
  g_string_append_printf (out, "MIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n"
                          "X-SecureMail-Trust: %s\r\n"
                          "X-SecureMail-Encrypted: yes\r\n\r\n"
                          "%s\r\n", sm_trust_header_value (SM_TRUST_DECRYPT_FAILED), why);
  message = g_bytes_new (out->str, out->len);
  parsed = sm_imap_fetch_message_new (message, error);
  if (parsed == NULL)
    return NULL;
  view->message = g_steal_pointer (&message);
  view->trust = SM_TRUST_DECRYPT_FAILED;
  view->encrypted = TRUE;
  view->detail = g_strdup (why);
  return sm_cached_view_new (g_steal_pointer (&view), parsed);
}

typedef struct {
  GBytes *raw;
  char *account_address;
  SmSecureViewFlags flags;
  guint32 uid;
} BuildData;

static void
build_data_free (BuildData *data)
{
  g_bytes_unref (data->raw);
  g_free (data->account_address);
  g_free (data);
}

/* Builds run on GLib's worker threads, which grow well past the number of
 * cores when work blocks on gpg; more decryptions at once than cores only
 * adds gpg processes competing for them (and for gpg-agent).  A counting
 * gate keeps one build per core running. */
static GMutex slots_lock;
static GCond slots_cond;
static guint slots_busy;

static void
build_slot_acquire (void)
{
  guint max = MAX (SM_SECURE_FETCH_MIN_PARALLEL, SM_SECURE_FETCH_PER_CORE * g_get_num_processors ());

  g_mutex_lock (&slots_lock);
  while (slots_busy >= max)
    g_cond_wait (&slots_cond, &slots_lock);
  slots_busy++;
  g_mutex_unlock (&slots_lock);
}

static void
build_slot_release (void)
{
  g_mutex_lock (&slots_lock);
  slots_busy--;
  g_cond_signal (&slots_cond);
  g_mutex_unlock (&slots_lock);
}

static SmSecureView *
build_view (SmCertstore *store, BuildData *data, GError **error)
{
  SmSecureView *view = NULL;
  g_autoptr(GError) local = NULL;
  SmTrustdbUse *use;
  gint64 started;

  build_slot_acquire ();
  use = sm_trustdb_use_begin (sm_certstore_get_home (store));
  gnupg_op_begin (&started);
  /* A build during which the keyring changed may have met no keyring at
   * all for an instant: a "no public key" or a failed decryption the client
   * would cache.  (Builds store nothing themselves but gpgsm's certificates
   * from signatures, so a second build normally finds the files still.) */
  do
    {
      g_clear_pointer (&view, sm_secure_view_free);
      g_clear_error (&local);
      view = sm_secure_view_build (store, data->account_address, data->raw, data->flags, &local);
    }
  while (sm_trustdb_use_redo (use));
  gnupg_op_end (&started);
  sm_trustdb_use_end (use);
  build_slot_release ();
  if (view == NULL && local != NULL)
    g_propagate_error (error, g_steal_pointer (&local));
  return view;
}

/* The watchdog of the store's gpg-agent (certstore/sm-agent.h), for the
 * life of the process.  Killing a silent agent makes the gpgsm/gpg behind
 * the stuck builds fail at once; build_thread() sees the new generation and
 * builds again on a fresh agent, which the next GnuPG call starts. */
static gpointer
agent_watch_thread (gpointer data)
{
  g_autofree char *home = data;
  g_autofree char *socket_path = NULL;
  gint64 last_probe = 0;

  for (;;)
    {
      gint64 now, oldest;
      SmAgentState state;
      GPid pid = 0;

      g_usleep (SM_SECURE_FETCH_WATCH_INTERVAL_S * G_USEC_PER_SEC);
      now = g_get_monotonic_time ();
      oldest = oldest_gnupg_op ();
      if (oldest == 0 || now - oldest < SM_SECURE_FETCH_AGENT_STALL_S * G_USEC_PER_SEC ||
          now - last_probe < SM_SECURE_FETCH_AGENT_STALL_S * G_USEC_PER_SEC)
        continue;
      last_probe = now;
      if (socket_path == NULL)
        {
          g_autoptr(GError) error = NULL;
          socket_path = sm_agent_socket_path (home, &error);
          if (socket_path == NULL)
            {
              g_message ("gpg-agent watchdog: %s", error->message);
              continue;
            }
        }
      state = sm_agent_probe (socket_path, SM_AGENT_PROBE_TIMEOUT_S, &pid);
      if (state != SM_AGENT_SILENT)
        {
          g_debug ("A decryption has run for %" G_GINT64_FORMAT " s; gpg-agent %s",
                   (now - oldest) / G_USEC_PER_SEC, state == SM_AGENT_ANSWERS ? "answers" : "is not running");
          continue;
        }
      {
        g_autoptr(GError) error = NULL;

        g_message ("gpg-agent (process %d) has not answered for %d s while a decryption waits: "
                   "replacing it", (int) pid, SM_AGENT_PROBE_TIMEOUT_S);
        /* The generation changes first: a build failing because of the
         * kill must see it. */
        g_atomic_int_inc (&agent_generation);
        if (!sm_agent_kill (socket_path, &error))
          g_message ("gpg-agent watchdog: %s", error->message);
      }
    }
  return NULL;
}

static void
build_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  BuildData *data = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmSecureView) view = NULL;
  SmImapFetchMessage *parsed;
  SmCertstore *store = sm_secure_fetch_get_store (&error);
  gint generation;

  if (store == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  generation = g_atomic_int_get (&agent_generation);
  view = build_view (store, data, &error);
  if (view == NULL && generation != g_atomic_int_get (&agent_generation))
    {
      /* The watchdog replaced a wedged gpg-agent under this build: the new
       * one needs the passphrases, then the build runs again. */
      g_clear_error (&error);
      represet (store, REPRESET_NEW_AGENT, g_atomic_int_get (&agent_generation));
      view = build_view (store, data, &error);
    }
  else if (view == NULL && g_error_matches (error, SM_ERROR, SM_ERROR_LOCKED) &&
           represet (store, REPRESET_LOST, 0))
    {
      g_clear_error (&error);
      view = build_view (store, data, &error);
    }
  if (view == NULL && g_error_matches (error, SM_ERROR, SM_ERROR_TOO_BIG))
    {
      gsize body_start = 0;
      gsize hlen = sm_mime_header_length (g_bytes_get_data (data->raw, NULL), g_bytes_get_size (data->raw),
                                          &body_start);
      g_autoptr(GBytes) header = g_bytes_new_from_bytes (data->raw, 0, hlen);
      SmCachedView *cached;

      g_message ("A protected message is beyond SecureMail's limits: %s", error->message);
      g_clear_error (&error);
      cached = placeholder_view (header, data->flags,
                                 _("SecureMail did not check this message: it is larger or more deeply "
                                   "nested than SecureMail accepts. Ask the sender to send it in smaller parts."),
                                 &error);
      if (cached == NULL)
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_pointer (task, cached, (GDestroyNotify) sm_cached_view_unref);
      return;
    }
  if (view == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  parsed = sm_imap_fetch_message_new (view->message, &error);
  if (parsed == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_pointer (task, sm_cached_view_new (g_steal_pointer (&view), parsed),
                         (GDestroyNotify) sm_cached_view_unref);
}

static void
maybe_round_done (SmSecureFetch *self)
{
  if (self->step == STEP_BODIES && self->tagged_done && self->builds_pending == 0)
    next_step (self);
}

static void
on_built (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmSecureFetch *self = SM_SECURE_FETCH (source);
  BuildData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autoptr(SmCachedView) cached = g_task_propagate_pointer (G_TASK (result), &error);
  gboolean was_paused = sm_secure_fetch_paused (self);
  Msg *m;

  self->builds_pending--;
  self->bytes_pending -= g_bytes_get_size (data->raw);
  if (self->owner == NULL)
    return;
  m = g_hash_table_lookup (self->by_uid, GUINT_TO_POINTER (data->uid));
  if (cached == NULL)
    {
      if (g_error_matches (error, SM_ERROR, SM_ERROR_LOCKED))
        self->locked = TRUE;
      else if (self->failure == NULL)
        {
          g_message ("Could not check a protected message: %s", error->message);
          self->failure = g_strdup (error->message);
        }
    }
  else if (m != NULL)
    {
      m->cached = sm_cached_view_ref (cached);
      g_clear_pointer (&m->header, g_bytes_unref);
      if (self->mailbox != NULL)
        sm_view_cache_insert (self->cache, self->mailbox, self->uidvalidity, m->uid, cached);
      if (self->hooks.view_built != NULL)
        self->hooks.view_built (self->owner, m->uid, cached);
    }
  if (was_paused && !sm_secure_fetch_paused (self) && self->owner != NULL)
    self->hooks.resume (self->owner);
  maybe_round_done (self);
}

gboolean
sm_secure_fetch_paused (SmSecureFetch *self)
{
  return self->bytes_pending > SM_SECURE_FETCH_ROUND_BYTES;
}

static void
on_body_item (SmSecureFetch *self, GPtrArray *items)
{
  const SmImapFetchItem *body = find_item (items, "BODY[]");
  guint64 uid = 0;
  Msg *m;
  BuildData *data;
  g_autoptr(GTask) task = NULL;

  if (!item_number (items, "UID", &uid))
    return;
  m = g_hash_table_lookup (self->by_uid, GUINT_TO_POINTER ((guint32) uid));
  if (m == NULL || m->fetched || body->is_nil || body->value == NULL)
    return;
  m->fetched = TRUE;
  data = g_new0 (BuildData, 1);
  data->raw = g_bytes_ref (body->value);
  data->account_address = g_strdup (self->account_address);
  data->flags = self->view_flags;
  data->uid = m->uid;
  task = g_task_new (self, self->cancellable, on_built, NULL);
  g_task_set_task_data (task, data, (GDestroyNotify) build_data_free);
  self->builds_pending++;
  self->bytes_pending += g_bytes_get_size (data->raw);
  g_task_run_in_thread (task, build_thread);
}

/* Appends the content items to the provider's answer for the other items:
 * "* 3 FETCH (UID 9 FLAGS (\Seen))" becomes "* 3 FETCH (UID 9 FLAGS (\Seen) BODY[] {..}..)". */
static void
on_meta_item (SmSecureFetch *self, const guint8 *data, gsize len, GPtrArray *items)
{
  guint64 uid = 0;
  Msg *m;
  gsize close;
  g_autoptr(GByteArray) out = NULL;
  g_autoptr(GError) error = NULL;

  if (!item_number (items, "UID", &uid))
    return;
  m = g_hash_table_lookup (self->by_uid, GUINT_TO_POINTER ((guint32) uid));
  if (m == NULL || m->answered || m->cached == NULL)
    return;
  /* The closing parenthesis of the attribute list: the last one before
   * the line end (the parser accepted the response, so it is there). */
  for (close = len; close > 0 && data[close - 1] != ')'; close--)
    ;
  if (close == 0)
    return;
  out = g_byte_array_sized_new ((guint) MIN (len + sm_imap_fetch_message_size (m->cached->message) + 256, G_MAXUINT));
  g_byte_array_append (out, data, (guint) (close - 1));
  g_byte_array_append (out, (const guint8 *) " ", 1);
  if (!sm_imap_fetch_render (self->request, m->cached->message, out, &error))
    {
      /* The request was parsed before; a section that does not parse is the
       * client's mistake and would be for every message alike. */
      if (self->failure == NULL)
        self->failure = g_strdup (error->message);
      return;
    }
  g_byte_array_append (out, (const guint8 *) ")\r\n", 3);
  m->answered = TRUE;
  to_client (self, (const char *) out->data, out->len);
}

gboolean
sm_secure_fetch_response (SmSecureFetch *self, const guint8 *data, gsize len)
{
  g_auto(SmImapResponse) resp = { 0 };
  const guint8 *nl = memchr (data, '\n', len);
  gsize line_len = nl ? (gsize) (nl - data) + 1 : len;
  guint32 seq = 0;
  g_autoptr(GPtrArray) items = NULL;
  g_autoptr(GError) error = NULL;

  if (self->step == STEP_DONE)
    return FALSE;
  sm_imap_response_classify (data, line_len, &resp);
  if (resp.kind == SM_IMAP_RESPONSE_TAGGED && g_strcmp0 (resp.tag, self->tag) == 0)
    {
      if (resp.status != SM_IMAP_STATUS_OK)
        {
          /* Relay the provider's refusal under the client's tag (its text
           * is the provider's; it is not content). */
          g_autofree char *text = g_strndup ((const char *) data + strlen (resp.tag) + 1,
                                             line_len - strlen (resp.tag) - 1);
          g_strchomp (text);
          if (self->step == STEP_SEEN)
            {
              next_step (self);      /* \Seen is best effort on a read-only mailbox */
              return TRUE;
            }
          finish_with (self, text);
          return TRUE;
        }
      if (self->step == STEP_BODIES)
        {
          self->tagged_done = TRUE;
          maybe_round_done (self);
        }
      else
        next_step (self);
      return TRUE;
    }
  if (resp.kind != SM_IMAP_RESPONSE_UNTAGGED)
    return FALSE;
  if (g_strcmp0 (resp.keyword, "EXPUNGE") == 0 && resp.number > 0)
    {
      /* Sequence numbers above it move down (RFC 9051 §7.5.1); the
       * message itself is gone. */
      for (guint i = 0; i < self->msgs->len; i++)
        {
          Msg *m = self->msgs->pdata[i];
          if (m->seq > resp.number)
            m->seq--;
        }
      return FALSE;
    }
  if (g_strcmp0 (resp.keyword, "FETCH") != 0 || self->step == STEP_PLAIN)
    return FALSE;
  if (!sm_imap_fetch_response_parse (data, len, &seq, &items, &error))
    {
      g_debug ("Unparsed FETCH response relayed: %s", error ? error->message : "?");
      return FALSE;
    }
  switch (self->step)
    {
    case STEP_PREQUERY:
      if (find_item (items, "BODY[HEADER]") == NULL)
        return FALSE;
      on_prequery_item (self, seq, items);
      return TRUE;
    case STEP_BODIES:
      if (find_item (items, "BODY[]") == NULL)
        return FALSE;
      on_body_item (self, items);
      return TRUE;
    case STEP_META:
      {
        guint64 uid = 0;
        Msg *m;
        if (!item_number (items, "UID", &uid))
          return FALSE;
        m = g_hash_table_lookup (self->by_uid, GUINT_TO_POINTER ((guint32) uid));
        if (m == NULL || m->answered)
          return FALSE;
        on_meta_item (self, data, len, items);
        return TRUE;
      }
    default:
      return FALSE;
    }
}

/* ---- the steps ------------------------------------------------------------------ */

static void
start_round (SmSecureFetch *self)
{
  g_autoptr(GPtrArray) need = g_ptr_array_new ();
  g_autoptr(GPtrArray) sets = NULL;
  guint64 bytes = 0;
  guint i;

  self->round_start = self->round_end;
  for (i = self->round_start; i < self->views->len && i - self->round_start < SM_SECURE_FETCH_ROUND_MESSAGES; i++)
    {
      Msg *m = self->views->pdata[i];

      if (m->cached != NULL)
        continue;
      if (m->size > SM_SECURE_VIEW_MAX_MESSAGE_SIZE)
        {
          g_autoptr(GError) error = NULL;
          m->cached = placeholder_view (m->header, self->view_flags,
                                        _("SecureMail did not check this message: it is larger than "
                                          "SecureMail accepts. Ask the sender to send it in smaller parts."),
                                        &error);
          if (m->cached == NULL)
            g_message ("No placeholder for a message beyond the limits: %s", error->message);
          continue;
        }
      if (need->len > 0 && bytes + m->size > SM_SECURE_FETCH_ROUND_BYTES)
        break;
      bytes += m->size;
      g_ptr_array_add (need, GUINT_TO_POINTER (m->uid));
    }
  self->round_end = i;
  self->step = STEP_BODIES;
  self->tagged_done = FALSE;
  if (need->len == 0)
    {
      self->tagged_done = TRUE;
      maybe_round_done (self);
      return;
    }
  /* A round's UIDs fit one set: at most ROUND_MESSAGES numbers. */
  sets = uid_sets (need);
  send_command (self, "UID FETCH %s (UID BODY.PEEK[])", (const char *) sets->pdata[0]);
}

static GPtrArray *
round_uids (SmSecureFetch *self)
{
  GPtrArray *uids = g_ptr_array_new ();

  for (guint i = self->round_start; i < self->round_end; i++)
    {
      Msg *m = self->views->pdata[i];
      if (m->cached != NULL)
        g_ptr_array_add (uids, GUINT_TO_POINTER (m->uid));
    }
  return uids;
}

static void
start_plain (SmSecureFetch *self)
{
  gsize rest_len;
  const char *rest = command_rest (self, &rest_len);

  if (self->plain->len == 0)
    {
      finish_with (self, _("OK FETCH completed (SecureMail)"));
      return;
    }
  self->plain_sets = uid_sets (self->plain);
  if (self->plain_sets->len == 1)
    {
      /* The usual case: the client's own command for the other messages,
       * relayed (and streamed) like any other. */
      g_autoptr(GString) line = g_string_new (NULL);
      g_autoptr(GBytes) bytes = NULL;

      g_string_append_printf (line, "%s UID FETCH %s ", sm_imap_fetch_request_tag (self->request),
                              (const char *) self->plain_sets->pdata[0]);
      g_string_append_len (line, rest, (gssize) rest_len);
      bytes = g_string_free_to_bytes (g_steal_pointer (&line));
      finish (self, bytes);
      return;
    }
  self->step = STEP_PLAIN;
  next_step (self);
}

static void
next_step (SmSecureFetch *self)
{
  if (self->owner == NULL)
    return;
  switch (self->step)
    {
    case STEP_PREQUERY:
      if (self->views->len == 0)
        {
          /* Nothing protected: the client's command goes up unchanged. */
          finish (self, self->command_line);
          return;
        }
      self->round_end = 0;
      start_round (self);
      return;

    case STEP_BODIES:
      if (self->locked)
        {
          finish_with (self, _("NO [UNAVAILABLE] SecureMail is locked: unlock it (from the tray, or "
                               "with “securemail unlock”) to read encrypted mail"));
          return;
        }
      if (self->failure != NULL)
        {
          g_autofree char *text = g_strdup_printf (_("NO [UNAVAILABLE] SecureMail could not check "
                                                     "these messages: %s"), self->failure);
          g_strdelimit (text, "\r\n", ' ');
          finish_with (self, text);
          return;
        }
      if (sm_imap_fetch_request_sets_seen (self->request) && !self->read_only)
        {
          g_autoptr(GPtrArray) uids = round_uids (self);
          g_autoptr(GPtrArray) sets = uid_sets (uids);

          if (sets->len > 0)
            {
              self->step = STEP_SEEN;
              send_command (self, "UID STORE %s +FLAGS.SILENT (\\Seen)", (const char *) sets->pdata[0]);
              return;
            }
        }
      G_GNUC_FALLTHROUGH;
    case STEP_SEEN:
      {
        g_autoptr(GPtrArray) uids = round_uids (self);
        g_autoptr(GPtrArray) sets = uid_sets (uids);
        g_autofree char *meta = sm_imap_fetch_request_metadata_items (self->request);

        self->step = STEP_META;
        if (sets->len == 0)
          {
            next_step (self);
            return;
          }
        send_command (self, "UID FETCH %s %s", (const char *) sets->pdata[0], meta);
        return;
      }

    case STEP_META:
      if (self->failure != NULL)
        {
          g_autofree char *text = g_strdup_printf ("BAD %s", self->failure);
          g_strdelimit (text, "\r\n", ' ');
          finish_with (self, text);
          return;
        }
      if (self->round_end < self->views->len)
        {
          start_round (self);
          return;
        }
      start_plain (self);
      return;

    case STEP_PLAIN:
      if (self->plain_sets->len == 0)
        {
          finish_with (self, _("OK FETCH completed (SecureMail)"));
          return;
        }
      {
        gsize rest_len;
        const char *rest = command_rest (self, &rest_len);
        g_autofree char *set = g_ptr_array_steal_index (self->plain_sets, 0);
        g_autofree char *tail = g_strndup (rest, rest_len);

        g_strchomp (tail);
        send_command (self, "UID FETCH %s %s", set, tail);
      }
      return;

    case STEP_DONE:
      return;
    }
}

void
sm_secure_fetch_start (SmSecureFetch *self)
{
  const char *mods = sm_imap_fetch_request_modifiers (self->request);

  self->step = STEP_PREQUERY;
  send_command (self, "%sFETCH %s (UID RFC822.SIZE BODY.PEEK[HEADER])%s%s",
                sm_imap_fetch_request_is_uid (self->request) ? "UID " : "",
                sm_imap_fetch_request_set (self->request), mods ? " " : "", mods ? mods : "");
}
