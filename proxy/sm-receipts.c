/* sm-receipts.c: signed delivery receipts and state.db (issue 5).
 *
 * Schema (version 1, PRAGMA user_version):
 *   sent(message_id, sent_at, micalg, mic)             one row per message
 *   sent_recipients(message_id, recipient, status,      one row per envelope
 *                   changed_at, signer, reason)          recipient
 *   answered(message_id, receipt_to, answered_at,       receipts this side sent:
 *            spool_id)                                   at most one per Message-ID
 * "overdue" is never stored: it is "requested" seen later than
 * [crypto] receipt_overdue, so changing the setting applies at once.
 *
 * A status only gets better by a verified receipt: a failure (bad MIC, bad
 * signature, wrong signer) never overwrites "delivered-verified", so a
 * forged receipt arriving after the real one cannot undo it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "sm-error.h"
#include "sm-mime.h"
#include "sm-receipts.h"
#include "sm-relay-worker.h"

/* What the MDN's Reporting-UA names (RFC 8098 §3.2.1). */
#define REPORTING_UA "securemail-proxy; SecureMail Desktop " PACKAGE_VERSION

struct _SmReceipts {
  GObject parent_instance;

  GMutex lock;               /* one statement sequence at a time on db */
  sqlite3 *db;
  char *path;
  gpointer store;            /* SmCertstore, or NULL = the user's own */
  GMainContext *context;     /* where "changed" is emitted */
};

enum { SIGNAL_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (SmReceipts, sm_receipts, G_TYPE_OBJECT)

static const char schema_v1[] =
  "CREATE TABLE sent ("
  "  message_id TEXT PRIMARY KEY,"
  "  sent_at INTEGER NOT NULL,"
  "  micalg TEXT NOT NULL,"
  "  mic TEXT NOT NULL);"
  "CREATE TABLE sent_recipients ("
  "  message_id TEXT NOT NULL REFERENCES sent (message_id) ON DELETE CASCADE,"
  "  recipient TEXT NOT NULL,"
  "  status TEXT NOT NULL CHECK (status IN ('requested', 'delivered-verified', 'failed')),"
  "  changed_at INTEGER NOT NULL,"
  "  signer TEXT,"
  "  reason TEXT,"
  "  PRIMARY KEY (message_id, recipient));"
  "CREATE TABLE answered ("
  "  message_id TEXT PRIMARY KEY,"
  "  receipt_to TEXT NOT NULL,"
  "  answered_at INTEGER NOT NULL,"
  "  spool_id TEXT);"
  "PRAGMA user_version = 1;";

/* ---- rows and names ---------------------------------------------------------- */

const char *
sm_receipt_status_to_string (SmReceiptStatus status)
{
  switch (status)
    {
    case SM_RECEIPT_DELIVERED_VERIFIED: return "delivered-verified";
    case SM_RECEIPT_FAILED: return "failed";
    case SM_RECEIPT_OVERDUE: return "overdue";
    case SM_RECEIPT_REQUESTED:
    default: return "requested";
    }
}

static SmReceiptStatus
status_from_string (const char *s)
{
  if (g_strcmp0 (s, "delivered-verified") == 0)
    return SM_RECEIPT_DELIVERED_VERIFIED;
  if (g_strcmp0 (s, "failed") == 0)
    return SM_RECEIPT_FAILED;
  return SM_RECEIPT_REQUESTED;
}

void
sm_receipt_row_free (SmReceiptRow *row)
{
  if (row == NULL)
    return;
  g_free (row->message_id);
  g_free (row->recipient);
  g_free (row->signer);
  g_free (row->reason);
  g_free (row->micalg);
  g_free (row);
}

/* "<id@host>" from any of "id@host", " <id@host> "; NULL when empty or
 * longer than SM_RECEIPTS_MAX_FIELD_LEN. */
static char *
normalize_message_id (const char *value)
{
  g_autofree char *s = NULL;
  gsize n;

  if (value == NULL)
    return NULL;
  s = g_strstrip (g_strdup (value));
  n = strlen (s);
  if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
    {
      s[n - 1] = '\0';
      memmove (s, s + 1, n - 1);
    }
  if (*s == '\0' || strlen (s) > SM_RECEIPTS_MAX_FIELD_LEN || strpbrk (s, "<>\r\n") != NULL)
    return NULL;
  return g_strdup_printf ("<%s>", s);
}

/* A lower-case bare address from "a@b", "<a@b>", "rfc822; a@b". */
static char *
normalize_address (const char *value)
{
  g_autofree char *s = NULL;
  const char *semi;
  gsize n;

  if (value == NULL)
    return NULL;
  /* RFC 8098 §3.2.4: address-type ";" generic-address */
  semi = strchr (value, ';');
  s = g_strstrip (g_strdup (semi ? semi + 1 : value));
  n = strlen (s);
  if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
    {
      s[n - 1] = '\0';
      memmove (s, s + 1, n - 1);
      g_strstrip (s);
    }
  if (*s == '\0' || strlen (s) > SM_RECEIPTS_MAX_FIELD_LEN || strchr (s, '@') == NULL ||
      strpbrk (s, " \t\r\n<>,;") != NULL)
    return NULL;
  return g_ascii_strdown (s, -1);
}

/* ---- the object --------------------------------------------------------------- */

static void
sm_receipts_finalize (GObject *object)
{
  SmReceipts *self = SM_RECEIPTS (object);

  if (self->db != NULL)
    sqlite3_close (self->db);
  g_clear_object (&self->store);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_free (self->path);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (sm_receipts_parent_class)->finalize (object);
}

static void
sm_receipts_class_init (SmReceiptsClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_receipts_finalize;

  /* SmReceipts::changed (message_id): a recipient's status of that sent
   * message changed, or a message was recorded.  For the tray (D-Bus). */
  signals[SIGNAL_CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                          NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
sm_receipts_init (SmReceipts *self)
{
  g_mutex_init (&self->lock);
}

static gboolean
db_failed (SmReceipts *self, GError **error, const char *doing)
{
  g_set_error (error, SM_ERROR, SM_ERROR_FAILED, "%s: %s (%s)", doing, sqlite3_errmsg (self->db), self->path);
  return FALSE;
}

static gboolean
db_exec (SmReceipts *self, const char *sql, GError **error)
{
  char *msg = NULL;

  if (sqlite3_exec (self->db, sql, NULL, NULL, &msg) != SQLITE_OK)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("The receipts database %s cannot be used: %s"), self->path,
                   msg ? msg : sqlite3_errmsg (self->db));
      sqlite3_free (msg);
      return FALSE;
    }
  return TRUE;
}

static gboolean
open_db (SmReceipts *self, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (self->path);
  sqlite3_stmt *st = NULL;
  int version = 0;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int e = errno;
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("Cannot create %s: %s"), dir, g_strerror (e));
      return FALSE;
    }
  /* Created 0600 before SQLite sees it (it would use 0644 & ~umask). */
  fd = g_open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, SM_RECEIPTS_FILE_MODE);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("Cannot open %s: %s"), self->path, g_strerror (e));
      return FALSE;
    }
  close (fd);
  if (sqlite3_open_v2 (self->path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK)
    return db_failed (self, error, _("Cannot open the receipts database"));
  sqlite3_busy_timeout (self->db, SM_RECEIPTS_BUSY_TIMEOUT_MS);
  /* WAL: readers (the CLI) never block the proxy; synchronous=FULL: a
   * commit has been fsync'ed when it returns, so "answered" survives a
   * power cut and a receipt is never sent twice. */
  if (!db_exec (self, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", error))
    return FALSE;
  if (sqlite3_prepare_v2 (self->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return db_failed (self, error, _("Cannot read the receipts database"));
  if (sqlite3_step (st) == SQLITE_ROW)
    version = sqlite3_column_int (st, 0);
  sqlite3_finalize (st);
  if (version > SM_RECEIPTS_SCHEMA_VERSION)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED,
                   _("The receipts database %s was written by a newer SecureMail (schema %d); update SecureMail"),
                   self->path, version);
      return FALSE;
    }
  if (version == 0)
    {
      /* One transaction: a crash leaves either no schema or all of it. */
      g_autofree char *sql = g_strconcat ("BEGIN IMMEDIATE;", schema_v1, "COMMIT;", NULL);
      if (!db_exec (self, sql, error))
        {
          sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
          return FALSE;
        }
    }
  return TRUE;
}

char *
sm_receipts_default_path (void)
{
  g_autofree char *dir = sm_config_data_dir ();
  return g_build_filename (dir, SM_RECEIPTS_DB_NAME, NULL);
}

SmReceipts *
sm_receipts_new (const char *path, SmCertstore *store, GError **error)
{
  g_autoptr(SmReceipts) self = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  self = g_object_new (SM_TYPE_RECEIPTS, NULL);
  self->path = g_strdup (path);
  self->store = store ? g_object_ref ((GObject *) store) : NULL;
  self->context = g_main_context_ref_thread_default ();
  if (!open_db (self, error))
    return NULL;
  return g_steal_pointer (&self);
}

SmReceipts *
sm_receipts_get_default (GError **error)
{
  static GMutex default_lock;
  static SmReceipts *default_receipts;
  SmReceipts *r;

  g_mutex_lock (&default_lock);
  if (default_receipts == NULL)
    {
      g_autofree char *path = sm_receipts_default_path ();

      default_receipts = sm_receipts_new (path, NULL, error);
      /* Whichever thread opened it, "changed" goes to the main loop's
       * context (the global default one, which the main thread owns: it
       * must not be pushed from here). */
      if (default_receipts != NULL)
        {
          g_main_context_unref (default_receipts->context);
          default_receipts->context = g_main_context_ref (g_main_context_default ());
        }
    }
  r = default_receipts;
  g_mutex_unlock (&default_lock);
  return r;
}

typedef struct {
  SmReceipts *self;
  char *message_id;
} ChangedData;

static gboolean
emit_changed_cb (gpointer user_data)
{
  ChangedData *d = user_data;

  g_signal_emit (d->self, signals[SIGNAL_CHANGED], 0, d->message_id);
  return G_SOURCE_REMOVE;
}

static void
changed_data_free (gpointer user_data)
{
  ChangedData *d = user_data;

  g_object_unref (d->self);
  g_free (d->message_id);
  g_free (d);
}

static void
emit_changed (SmReceipts *self, const char *message_id)
{
  ChangedData *d = g_new0 (ChangedData, 1);

  d->self = g_object_ref (self);
  d->message_id = g_strdup (message_id);
  g_main_context_invoke_full (self->context, G_PRIORITY_DEFAULT, emit_changed_cb, d, changed_data_free);
}

/* ---- statements ----------------------------------------------------------------- */

/* Prepares @sql and binds the NULL-terminated text arguments in order
 * (NULL binds SQL NULL: pass the count in @n). */
static sqlite3_stmt *
prepare (SmReceipts *self, const char *sql, GError **error, guint n, ...)
{
  sqlite3_stmt *st = NULL;
  va_list ap;

  if (sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL) != SQLITE_OK)
    {
      db_failed (self, error, _("The receipts database cannot be read"));
      return NULL;
    }
  va_start (ap, n);
  for (guint i = 0; i < n; i++)
    {
      const char *v = va_arg (ap, const char *);
      if (v != NULL)
        sqlite3_bind_text (st, (int) i + 1, v, -1, SQLITE_TRANSIENT);
      else
        sqlite3_bind_null (st, (int) i + 1);
    }
  va_end (ap);
  return st;
}

static gboolean
step_done (SmReceipts *self, sqlite3_stmt *st, GError **error)
{
  int rc = sqlite3_step (st);

  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    return db_failed (self, error, _("The receipts database cannot be written"));
  return TRUE;
}

/* ---- recording sent messages ------------------------------------------------------ */

gboolean
sm_receipts_record_sent (SmReceipts *self, const SmOutgoingInfo *info, const char * const *recipients,
                         GError **error)
{
  g_autofree char *mid = NULL;
  g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, g_get_real_time () / G_USEC_PER_SEC);
  sqlite3_stmt *st;
  gboolean ok = TRUE;

  g_return_val_if_fail (info != NULL, FALSE);
  g_return_val_if_fail (recipients != NULL, FALSE);

  if (info->receipt_mic == NULL)
    return TRUE;
  if (self == NULL && (self = sm_receipts_get_default (error)) == NULL)
    return FALSE;
  mid = normalize_message_id (info->message_id);
  if (mid == NULL)
    {
      g_debug ("A sent message without a usable Message-ID is not tracked for receipts");
      return TRUE;
    }

  g_mutex_lock (&self->lock);
  ok = db_exec (self, "BEGIN IMMEDIATE", error);
  if (ok && (st = prepare (self, "INSERT OR IGNORE INTO sent (message_id, sent_at, micalg, mic) VALUES (?, ?, ?, ?)",
                           error, 4, mid, now, SM_OUTGOING_RECEIPT_MICALG, info->receipt_mic)) != NULL)
    ok = step_done (self, st, error);
  else
    ok = FALSE;
  for (guint i = 0; ok && recipients[i] != NULL && i < SM_RECEIPTS_MAX_RECIPIENTS; i++)
    {
      g_autofree char *rcpt = normalize_address (recipients[i]);

      if (rcpt == NULL)
        continue;
      st = prepare (self,
                    "INSERT OR IGNORE INTO sent_recipients (message_id, recipient, status, changed_at) "
                    "VALUES (?, ?, 'requested', ?)", error, 3, mid, rcpt, now);
      ok = st != NULL && step_done (self, st, error);
    }
  if (ok)
    ok = db_exec (self, "COMMIT", error);
  if (!ok)
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&self->lock);
  if (ok)
    emit_changed (self, mid);
  return ok;
}

/* ---- building an MDN ---------------------------------------------------------------- */

/* An unstructured header value: as is when ASCII, else one RFC 2047
 * encoded word (our own short, translated Subject). */
static char *
encode_header_text (const char *text)
{
  g_autofree char *b64 = NULL;

  for (const char *p = text; *p; p++)
    if ((guchar) *p >= 0x80)
      {
        b64 = g_base64_encode ((const guchar *) text, strlen (text));
        return g_strdup_printf ("=?UTF-8?B?%s?=", b64);
      }
  return g_strdup (text);
}

GBytes *
sm_receipts_build_mdn (const char *from, const char *to, const char *original_message_id,
                       const char *final_recipient, const char *mic, const char *micalg)
{
  g_autofree char *mid = normalize_message_id (original_message_id);
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *subject = encode_header_text (_("Signed receipt: your message was delivered and verified"));
  g_autoptr(GString) s = g_string_new (NULL);

  g_return_val_if_fail (from != NULL && to != NULL && final_recipient != NULL, NULL);
  g_return_val_if_fail (mid != NULL && mic != NULL && micalg != NULL, NULL);

  g_string_append_printf (s, "From: <%s>\r\n", from);
  g_string_append_printf (s, "To: <%s>\r\n", to);
  g_string_append_printf (s, "Subject: %s\r\n", subject);
  g_string_append_printf (s, "In-Reply-To: %s\r\nReferences: %s\r\n", mid, mid);
  /* RFC 3834 §5: automatic responses say so; nobody answers them. */
  g_string_append (s, "Auto-Submitted: auto-replied\r\n");
  g_string_append (s, "MIME-Version: 1.0\r\n");
  /* RFC 6522: multipart/report; RFC 8098 §3: report-type. */
  g_string_append_printf (s,
                          "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
                          " boundary=\"=_smmdn-%s\"\r\n\r\n",
                          uuid);
  g_string_append_printf (s, "--=_smmdn-%s\r\n", uuid);
  g_string_append (s, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
  g_string_append_printf (s, _("The message %s sent to %s was delivered, decrypted and its signature "
                               "verified by SecureMail. This receipt is signed; it does not mean that "
                               "the message was read.\r\n"),
                          mid, final_recipient);
  g_string_append_printf (s, "\r\n--=_smmdn-%s\r\n", uuid);
  /* RFC 8098 §3.2: the machine-readable part. */
  g_string_append (s, "Content-Type: message/disposition-notification\r\n\r\n");
  g_string_append_printf (s, "Reporting-UA: %s\r\n", REPORTING_UA);
  g_string_append_printf (s, "Final-Recipient: rfc822;%s\r\n", final_recipient);
  g_string_append_printf (s, "Original-Message-ID: %s\r\n", mid);
  g_string_append (s, "Disposition: automatic-action/MDN-sent-automatically; processed\r\n");
  /* RFC 3335 §5.2 / RFC 2634 receipts: the digest of the signed content the
   * recipient verified, which the sender compares with its own. */
  g_string_append_printf (s, "Received-Content-MIC: %s, %s\r\n", mic, micalg);
  g_string_append_printf (s, "\r\n--=_smmdn-%s--\r\n", uuid);
  return g_string_free_to_bytes (g_steal_pointer (&s));
}

/* ---- answering ------------------------------------------------------------------------- */

/* Claims @mid for a receipt: TRUE when this call did (nobody had), FALSE
 * with no error when it was answered before. */
static gboolean
claim_answer (SmReceipts *self, const char *mid, const char *to, gboolean *claimed, GError **error)
{
  g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, g_get_real_time () / G_USEC_PER_SEC);
  sqlite3_stmt *st = prepare (self, "INSERT OR IGNORE INTO answered (message_id, receipt_to, answered_at) "
                                    "VALUES (?, ?, ?)", error, 3, mid, to, now);

  if (st == NULL || !step_done (self, st, error))
    return FALSE;
  *claimed = sqlite3_changes (self->db) == 1;
  return TRUE;
}

static gboolean
answer (SmReceipts *self, const SmConfig *config, SmSpool *spool, const SmSecureView *view, GError **error)
{
  g_autofree char *mid = normalize_message_id (view->message_id);
  g_autofree char *to = normalize_address (view->receipt_to);
  g_autofree char *me = normalize_address (config->address);
  g_autoptr(GBytes) mdn = NULL;
  g_autoptr(GBytes) protected_mdn = NULL;
  g_autofree char *spool_id = NULL;
  g_autoptr(GError) local = NULL;
  gboolean claimed = FALSE;
  sqlite3_stmt *st;

  if (mid == NULL || to == NULL || me == NULL || view->received_mic == NULL || view->received_micalg == NULL)
    return TRUE;
  /* Only to the verified sender: the proxy must not become a way to make a
   * signed statement reach a third party (RFC 8098 §2.1 leaves this to the
   * user agent; automatic answers are the narrow case). */
  if (view->from == NULL || g_ascii_strcasecmp (view->from, to) != 0)
    {
      g_debug ("Receipt requested to an address other than the sender: not sent");
      return TRUE;
    }

  g_mutex_lock (&self->lock);
  if (!claim_answer (self, mid, to, &claimed, error))
    {
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
  g_mutex_unlock (&self->lock);
  if (!claimed)
    return TRUE;

  {
    const char *rcpts[] = { to, NULL };

    mdn = sm_receipts_build_mdn (me, to, mid, me, view->received_mic, view->received_micalg);
    protected_mdn = sm_outgoing_protect (self->store, config, me, rcpts, mdn, NULL, &local);
    /* RFC 8098 §2.1: an MDN has a null reverse-path, so that nothing ever
     * answers it; the spool's report flag keeps it out of failure reports. */
    if (protected_mdn != NULL)
      spool_id = sm_spool_add (spool, "", rcpts, protected_mdn, TRUE, SM_RELAY_MAX_AGE_S, &local);
  }

  g_mutex_lock (&self->lock);
  if (spool_id == NULL)
    {
      /* Not sent: release the claim, so that the next view tries again. */
      st = prepare (self, "DELETE FROM answered WHERE message_id = ?", NULL, 1, mid);
      if (st != NULL)
        step_done (self, st, NULL);
      g_mutex_unlock (&self->lock);
      g_propagate_prefixed_error (error, g_steal_pointer (&local), _("The signed receipt was not sent: "));
      return FALSE;
    }
  st = prepare (self, "UPDATE answered SET spool_id = ? WHERE message_id = ?", NULL, 2, spool_id, mid);
  if (st != NULL)
    step_done (self, st, NULL);
  g_mutex_unlock (&self->lock);
  g_message ("Signed receipt queued as %s", spool_id);
  return TRUE;
}

/* ---- matching ----------------------------------------------------------------------------- */

typedef struct {
  char *original_message_id;
  char *final_recipient;
  char *disposition;
  char *mic;
  char *micalg;
} Report;

static void
report_clear (Report *r)
{
  g_free (r->original_message_id);
  g_free (r->final_recipient);
  g_free (r->disposition);
  g_free (r->mic);
  g_free (r->micalg);
}

static gboolean
is_mdn (GBytes *message)
{
  gsize len, body_start;
  const char *data = g_bytes_get_data (message, &len);
  g_autoptr(SmMimeContentType) ct = NULL;
  const char *rt;

  if (data == NULL)
    return FALSE;
  ct = sm_mime_content_type_of_header (data, sm_mime_header_length (data, len, &body_start));
  rt = sm_mime_content_type_param (ct, "report-type");
  return g_strcmp0 (ct->type, "multipart") == 0 && g_strcmp0 (ct->subtype, "report") == 0 && rt != NULL &&
         g_ascii_strcasecmp (rt, "disposition-notification") == 0;
}

static char *
report_field (const char *header, GArray *fields, const char *name)
{
  int i = sm_mime_fields_find (header, fields, name);
  return i < 0 ? NULL : sm_mime_field_value (header, &g_array_index (fields, SmMimeField, i));
}

/* Reads the message/disposition-notification part of @message (RFC 8098
 * §3.1).  FALSE when there is none or it breaks a limit. */
static gboolean
parse_report (GBytes *message, Report *r)
{
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  g_autoptr(GPtrArray) parts = sm_mime_multipart_children (data, len, NULL);

  for (guint i = 0; parts != NULL && i < parts->len; i++)
    {
      const SmMimePart *p = parts->pdata[i];
      const char *part = data + p->start;
      gsize part_body, fields_body, hlen;
      g_autoptr(GArray) fields = NULL;
      g_autofree char *mic = NULL;

      if (g_strcmp0 (p->type, "message/disposition-notification") != 0)
        continue;
      if (p->len > SM_RECEIPTS_MAX_REPORT_SIZE)
        return FALSE;
      /* The part's own header, then the notification fields. */
      sm_mime_header_length (part, p->len, &part_body);
      hlen = sm_mime_header_length (part + part_body, p->len - part_body, &fields_body);
      fields = sm_mime_fields_parse (part + part_body, hlen, NULL);
      if (fields == NULL)
        return FALSE;
      r->original_message_id = report_field (part + part_body, fields, "Original-Message-ID");
      r->final_recipient = report_field (part + part_body, fields, "Final-Recipient");
      r->disposition = report_field (part + part_body, fields, "Disposition");
      mic = report_field (part + part_body, fields, "Received-Content-MIC");
      if (mic != NULL)
        {
          /* RFC 3335 §5.2: "Received-Content-MIC: <base64>, <micalg>" */
          char *comma = strchr (mic, ',');
          if (comma != NULL)
            {
              *comma = '\0';
              r->micalg = g_strstrip (g_strdup (comma + 1));
            }
          r->mic = g_strstrip (g_strdup (mic));
        }
      return TRUE;
    }
  return FALSE;
}

/* RFC 8098 §3.2.6: "action-mode/sending-mode; disposition-type[/modifier]";
 * only a plain "processed" (what we send) counts as delivered. */
static gboolean
disposition_processed (const char *disposition, char **type)
{
  const char *semi = disposition ? strchr (disposition, ';') : NULL;
  g_autofree char *t = NULL;

  if (semi == NULL)
    return FALSE;
  t = g_strstrip (g_strdup (semi + 1));
  for (char *p = t; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '/')
      *p = '\0';
  *type = g_strdup (t);
  return g_ascii_strcasecmp (t, "processed") == 0;
}

static gboolean
row_exists (SmReceipts *self, const char *mid, const char *recipient)
{
  sqlite3_stmt *st = prepare (self, "SELECT 1 FROM sent_recipients WHERE message_id = ? AND recipient = ?", NULL,
                              2, mid, recipient);
  gboolean found;

  if (st == NULL)
    return FALSE;
  found = sqlite3_step (st) == SQLITE_ROW;
  sqlite3_finalize (st);
  return found;
}

/* The recorded MIC of @mid: TRUE and the two strings, or FALSE. */
static gboolean
sent_mic (SmReceipts *self, const char *mid, char **mic, char **micalg)
{
  sqlite3_stmt *st = prepare (self, "SELECT mic, micalg FROM sent WHERE message_id = ?", NULL, 1, mid);
  gboolean found = FALSE;

  if (st == NULL)
    return FALSE;
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      *mic = g_strdup ((const char *) sqlite3_column_text (st, 0));
      *micalg = g_strdup ((const char *) sqlite3_column_text (st, 1));
      found = TRUE;
    }
  sqlite3_finalize (st);
  return found;
}

static gboolean
set_status (SmReceipts *self, const char *mid, const char *recipient, SmReceiptStatus status, const char *signer,
            const char *reason, GError **error)
{
  g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, g_get_real_time () / G_USEC_PER_SEC);
  /* A failure never replaces a verified receipt (see the top of the file). */
  const char *sql = status == SM_RECEIPT_DELIVERED_VERIFIED
                      ? "UPDATE sent_recipients SET status = ?, changed_at = ?, signer = ?, reason = ? "
                        "WHERE message_id = ? AND recipient = ?"
                      : "UPDATE sent_recipients SET status = ?, changed_at = ?, signer = ?, reason = ? "
                        "WHERE message_id = ? AND recipient = ? AND status != 'delivered-verified'";
  sqlite3_stmt *st = prepare (self, sql, error, 6, sm_receipt_status_to_string (status), now, signer, reason, mid,
                              recipient);

  return st != NULL && step_done (self, st, error);
}

static gboolean
match (SmReceipts *self, const SmSecureView *view, GError **error)
{
  Report r = { 0 };
  g_autofree char *mid = NULL;
  g_autofree char *final = NULL;
  g_autofree char *signer = NULL;
  g_autofree char *mic = NULL;
  g_autofree char *micalg = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *dtype = NULL;
  const char *row = NULL;
  SmReceiptStatus status = SM_RECEIPT_FAILED;
  gboolean ok;

  if (!parse_report (view->message, &r))
    {
      g_message ("A receipt without a readable disposition notification was ignored");
      report_clear (&r);
      return TRUE;
    }
  mid = normalize_message_id (r.original_message_id);
  final = normalize_address (r.final_recipient);
  signer = view->signer_address ? g_ascii_strdown (view->signer_address, -1) : NULL;

  g_mutex_lock (&self->lock);
  if (mid == NULL || !sent_mic (self, mid, &mic, &micalg))
    {
      g_mutex_unlock (&self->lock);
      /* Not ours (or not any more): nothing to show, nothing to say. */
      g_message ("A receipt for a message not in the sent log was ignored");
      report_clear (&r);
      return TRUE;
    }

  if (view->trust != SM_TRUST_VERIFIED)
    {
      /* The row it claims to be for shows why it does not count. */
      row = final;
      reason = view->signed_ || view->encrypted
                 ? g_strdup_printf (_("bad signature: the receipt is %s"), sm_trust_header_value (view->trust))
                 : g_strdup (_("bad signature: the receipt is not signed"));
    }
  else if (signer == NULL || final == NULL || g_ascii_strcasecmp (signer, final) != 0 ||
           !row_exists (self, mid, signer))
    {
      row = final;
      reason = g_strdup_printf (_("not the recipient's certificate: the receipt is signed by %s"),
                                view->signer ? view->signer : _("an unknown key"));
    }
  else
    {
      GChecksumType a = G_CHECKSUM_SHA256, b = G_CHECKSUM_SHA1;

      row = signer;
      if (r.mic == NULL || r.micalg == NULL || !sm_secure_view_micalg_lookup (r.micalg, &a, NULL) ||
          !sm_secure_view_micalg_lookup (micalg, &b, NULL) || a != b || strcmp (r.mic, mic) != 0)
        reason = g_strdup (_("MIC mismatch: the recipient verified different content than was sent"));
      else if (!disposition_processed (r.disposition, &dtype))
        reason = g_strdup_printf (_("the recipient's system reported “%s”"), dtype ? dtype : _("no disposition"));
      else
        status = SM_RECEIPT_DELIVERED_VERIFIED;
    }

  if (row == NULL || !row_exists (self, mid, row))
    {
      g_mutex_unlock (&self->lock);
      g_message ("A receipt naming no recipient of the sent message was ignored");
      report_clear (&r);
      return TRUE;
    }
  ok = set_status (self, mid, row, status, view->signer, reason, error);
  g_mutex_unlock (&self->lock);
  if (ok)
    {
      g_message ("Receipt matched: %s", sm_receipt_status_to_string (status));
      emit_changed (self, mid);
    }
  report_clear (&r);
  return ok;
}

gboolean
sm_receipts_on_view (SmReceipts *self, const SmConfig *config, SmSpool *spool, const SmSecureView *view,
                     GBytes *raw, GError **error)
{
  g_return_val_if_fail (SM_IS_RECEIPTS (self), FALSE);
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (view != NULL, FALSE);

  if (view->message != NULL && is_mdn (view->message))
    return match (self, view, error);
  if (!view->receipt_requested)
    return TRUE;
  /* Never for a message that is not verified: a receipt would tell an
   * attacker that a forged or altered message got through. */
  if (view->trust != SM_TRUST_VERIFIED || !config->send_receipts)
    return TRUE;
  g_return_val_if_fail (SM_IS_SPOOL (spool), FALSE);
  return answer (self, config, spool, view, error);
}

/* ---- listing --------------------------------------------------------------------------------- */

GPtrArray *
sm_receipts_list (SmReceipts *self, gint64 now, gint64 overdue_after_s, GError **error)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_receipt_row_free);
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (SM_IS_RECEIPTS (self), NULL);

  g_mutex_lock (&self->lock);
  st = prepare (self,
                "SELECT s.message_id, r.recipient, r.status, s.sent_at, r.changed_at, r.signer, r.reason, s.micalg "
                "FROM sent s JOIN sent_recipients r ON r.message_id = s.message_id "
                "ORDER BY s.sent_at, s.rowid, r.recipient", error, 0);
  if (st == NULL)
    {
      g_mutex_unlock (&self->lock);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      SmReceiptRow *row = g_new0 (SmReceiptRow, 1);

      row->message_id = g_strdup ((const char *) sqlite3_column_text (st, 0));
      row->recipient = g_strdup ((const char *) sqlite3_column_text (st, 1));
      row->status = status_from_string ((const char *) sqlite3_column_text (st, 2));
      row->sent = sqlite3_column_int64 (st, 3);
      row->changed = sqlite3_column_int64 (st, 4);
      row->signer = g_strdup ((const char *) sqlite3_column_text (st, 5));
      row->reason = g_strdup ((const char *) sqlite3_column_text (st, 6));
      row->micalg = g_strdup ((const char *) sqlite3_column_text (st, 7));
      if (row->status == SM_RECEIPT_REQUESTED && now - row->sent >= overdue_after_s)
        row->status = SM_RECEIPT_OVERDUE;
      g_ptr_array_add (rows, row);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      db_failed (self, error, _("The receipts database cannot be read"));
      g_mutex_unlock (&self->lock);
      return NULL;
    }
  g_mutex_unlock (&self->lock);
  return g_steal_pointer (&rows);
}
