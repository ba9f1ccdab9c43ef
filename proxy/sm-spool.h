/* sm-spool.h: the durable outbound spool ($XDG_DATA_HOME/securemail/spool/).
 *
 * RFC 5321 §6.1: once the proxy answers 250 to the end of DATA it has
 * accepted responsibility for the message, so the message must survive a
 * crash or a power cut from then on.  Each message is two files:
 *
 *   ID.eml   the bytes to submit (CRLF lines, not dot-stuffed): whatever the
 *            SMTP session hands over, i.e. the protected message only
 *   ID.meta  a GKeyFile: envelope, times, attempts, state, last error
 *
 * Both are written to a "tmp-" name, fsync'ed, renamed into place, and the
 * directory is fsync'ed before sm_spool_add() returns; ID.meta is renamed
 * last, so a message exists exactly when its .meta does.  Loading the spool
 * removes leftovers of an add that did not finish (its client never got
 * 250).  IDs are random hex.  All functions are thread safe.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_SPOOL_DIR_MODE     0700
#define SM_SPOOL_FILE_MODE    0600
#define SM_SPOOL_ID_BYTES     12        /* 24 hex digits */
#define SM_SPOOL_MAX_ENTRIES  10000     /* beyond this, new messages get 452 */
#define SM_SPOOL_MAX_MESSAGE_ID 998     /* RFC 5322 line limit; longer ones are not kept */

typedef enum {
  SM_SPOOL_QUEUED,     /* waiting for its next attempt */
  SM_SPOOL_SENDING,    /* an attempt started and has not ended (after a crash: maybe delivered) */
  SM_SPOOL_FAILED,     /* permanently refused or too old; a report was made */
} SmSpoolState;

typedef struct {
  char *id;
  char *sender;            /* envelope sender; "" for a report (null reverse-path) */
  char **recipients;
  gint64 created;          /* unix seconds */
  gint64 expires;          /* unix seconds: past this, the message fails (age limit) */
  guint attempts;
  gint64 next_attempt_ms;  /* unix milliseconds (test backoffs are shorter than a second) */
  char *last_error;        /* a sentence for the user, or NULL */
  SmSpoolState state;
  char *message_id;        /* the Message-ID header field body, or NULL */
  gboolean is_report;      /* a delivery report made by the proxy: never reported itself */
  guint64 size;            /* bytes of ID.eml */
} SmSpoolEntry;

SmSpoolEntry *sm_spool_entry_copy (const SmSpoolEntry *entry);
void          sm_spool_entry_free (SmSpoolEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSpoolEntry, sm_spool_entry_free)

const char *sm_spool_state_to_string (SmSpoolState state);

#define SM_TYPE_SPOOL (sm_spool_get_type ())
G_DECLARE_FINAL_TYPE (SmSpool, sm_spool, SM, SPOOL, GObject)

/* Opens (creating with SM_SPOOL_DIR_MODE) the spool in @dir and loads it.
 * Entries found in SM_SPOOL_SENDING were in flight when the proxy stopped;
 * they are kept in that state so that the relay worker can tell. */
SmSpool *sm_spool_new (const char *dir, GError **error);

const char *sm_spool_get_dir (SmSpool *spool);

/* Durably adds a message (see above).  @max_age_s sets the entry's expiry.
 * Returns the new ID, or NULL with G_IO_ERROR_NO_SPACE (disk full, quota,
 * SM_SPOOL_MAX_ENTRIES) or another G_IO_ERROR; nothing is left behind on
 * failure. */
char *sm_spool_add (SmSpool *spool, const char *sender, const char * const *recipients,
                    GBytes *message, gboolean is_report, gint64 max_age_s, GError **error);

/* The message bytes of @id. */
GBytes *sm_spool_read_message (SmSpool *spool, const char *id, GError **error);

/* Durably replaces the metadata of @entry->id (G_IO_ERROR_NOT_FOUND if it
 * is gone). */
gboolean sm_spool_update (SmSpool *spool, const SmSpoolEntry *entry, GError **error);

/* Durably removes @id (.meta first, so a crash leaves at worst an orphan
 * .eml that the next load removes). */
gboolean sm_spool_remove (SmSpool *spool, const char *id, GError **error);

/* A copy of @id's metadata, or NULL. */
SmSpoolEntry *sm_spool_lookup (SmSpool *spool, const char *id);
/* Copies of all entries, oldest first (SmSpoolEntry*, owned). */
GPtrArray *sm_spool_list (SmSpool *spool);
guint      sm_spool_get_size (SmSpool *spool);

/* The Message-ID of a message (CRLF lines), without folding whitespace, or
 * NULL.  Exposed for the relay worker's reports. */
char *sm_spool_find_header (GBytes *message, const char *name);

G_END_DECLS
