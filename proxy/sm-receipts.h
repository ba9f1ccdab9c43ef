/* sm-receipts.h: signed delivery receipts and their state (issue 5).
 *
 * Three jobs, one SQLite file ($XDG_DATA_HOME/securemail/state.db):
 *
 *   request  the SMTP path records every message sent with a receipt
 *            request (sm_receipts_record_sent()): its Message-ID, the MIC of
 *            its signed content and one row per envelope recipient, status
 *            "requested";
 *   answer   for a served message that asks for a receipt, is verified and
 *            was not answered before, a signed MDN (RFC 8098:
 *            multipart/report; report-type=disposition-notification, with
 *            Received-Content-MIC as in RFC 3335 / RFC 8551 §2.7) goes to the
 *            spool; never for anything that is not verified, so an attacker
 *            learns nothing from a receipt he forged a request for;
 *   match    an incoming MDN is matched to the sent log by
 *            Original-Message-ID: verified, signed by the recipient, MIC
 *            equal -> "delivered-verified"; otherwise "failed" with the reason.
 *
 * The database runs in WAL mode with synchronous=FULL (a commit is on disk
 * when it returns), its schema is versioned with PRAGMA user_version, and
 * the file is created 0600.  Every function is thread safe: the IMAP
 * session calls sm_receipts_on_view() from worker threads and the SMTP
 * session sm_receipts_record_sent() from its relay threads.  Nothing of a
 * message's content is logged or stored; Message-IDs and addresses are.
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"
#include "sm-outgoing.h"
#include "sm-secure-view.h"
#include "sm-spool.h"

G_BEGIN_DECLS

#define SM_RECEIPTS_DB_NAME           "state.db"
#define SM_RECEIPTS_SCHEMA_VERSION    1
#define SM_RECEIPTS_FILE_MODE         0600
#define SM_RECEIPTS_BUSY_TIMEOUT_MS   5000        /* the CLI may read while the proxy writes */
/* Largest message/disposition-notification part we read (RFC 8098 §3.2
 * fields only; a real one is a few hundred bytes). */
#define SM_RECEIPTS_MAX_REPORT_SIZE   (64 * 1024)
/* Longest Message-ID or address kept (RFC 5322 line limit). */
#define SM_RECEIPTS_MAX_FIELD_LEN     998
/* Most recipients recorded for one sent message (the SMTP session's own
 * RCPT limit is lower). */
#define SM_RECEIPTS_MAX_RECIPIENTS    1000

typedef enum {
  SM_RECEIPT_REQUESTED,
  SM_RECEIPT_DELIVERED_VERIFIED,
  SM_RECEIPT_FAILED,
  SM_RECEIPT_OVERDUE,          /* requested, and older than [crypto] receipt_overdue */
} SmReceiptStatus;

/* "requested", "delivered-verified", "failed", "overdue" (the CLI's and the
 * JSON's words; not translated). */
const char *sm_receipt_status_to_string (SmReceiptStatus status);

/* One recipient of one sent message. */
typedef struct {
  char *message_id;        /* with angle brackets */
  char *recipient;         /* lower-case address */
  SmReceiptStatus status;
  gint64 sent;             /* unix seconds */
  gint64 changed;          /* unix seconds of the last status change (= sent while requested) */
  char *signer;            /* delivered-verified/failed: who signed the receipt, or NULL */
  char *reason;            /* failed: why (translated when it was recorded), or NULL */
  char *micalg;            /* of the recorded MIC */
} SmReceiptRow;

void sm_receipt_row_free (SmReceiptRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmReceiptRow, sm_receipt_row_free)

/* certstore/sm-certstore.h (see sm-outgoing.h for why it is not included). */
typedef struct _SmCertstore SmCertstore;

#define SM_TYPE_RECEIPTS (sm_receipts_get_type ())
G_DECLARE_FINAL_TYPE (SmReceipts, sm_receipts, SM, RECEIPTS, GObject)

/* $XDG_DATA_HOME/securemail/state.db.  New string. */
char *sm_receipts_default_path (void);

/* Opens (creating it, and its directory 0700) the database at @path.
 * @store signs the receipts this side sends; NULL = the user's own store
 * (as sm_outgoing_protect()).  The "changed" signal is emitted in the
 * thread-default main context of the caller.  Fails with SM_ERROR_FAILED
 * (cannot open, newer schema) naming the file. */
SmReceipts *sm_receipts_new (const char *path, SmCertstore *store, GError **error);

/* The process's own instance at sm_receipts_default_path(), opened on first
 * use (any thread; its "changed" signal then goes to the global default
 * main context).  Borrowed: do not unref.  NULL with @error when it cannot
 * be opened. */
SmReceipts *sm_receipts_get_default (GError **error);

/* Records a message just spooled: @info from sm_outgoing_protect(),
 * @recipients the envelope recipients.  Does nothing (TRUE) when @info has
 * no receipt_mic (no receipt was requested).  @receipts NULL = the default
 * instance.  Recording the same Message-ID again adds only new recipients. */
gboolean sm_receipts_record_sent (SmReceipts         *receipts,
                                  const SmOutgoingInfo *info,
                                  const char * const *recipients,
                                  GError            **error);

/* Called for every SmSecureView the IMAP session builds (worker thread).
 * An MDN (multipart/report; report-type=disposition-notification) is
 * matched to the sent log; a message asking for a receipt gets one when it
 * is verified, `send_receipts = auto`, Disposition-Notification-To is the
 * verified sender, and none was sent for its Message-ID before (at most
 * once, recorded before the receipt is spooled).  The receipt goes to
 * @spool with a null reverse-path (RFC 8098 §2.1); the caller kicks its
 * relay worker afterwards.  @raw is the message as fetched; the view
 * carries all that is read today.
 *
 * Returns FALSE only when a receipt should be sent and could not be (the
 * key store is locked, the spool is full, state.db cannot be written): the
 * Message-ID is then not marked answered, so the next view of the message
 * tries again.  A receipt that does not match is not an error: its row
 * becomes "failed" (or it is ignored when it names no message of ours). */
gboolean sm_receipts_on_view (SmReceipts         *receipts,
                              const SmConfig     *config,
                              SmSpool            *spool,
                              const SmSecureView *view,
                              GBytes             *raw,
                              GError            **error);

/* The unsigned MDN (RFC 8098 §3, CRLF lines) that sm_receipts_on_view()
 * signs: a human part and the message/disposition-notification part with
 * Reporting-UA, Final-Recipient: rfc822;@final_recipient,
 * Original-Message-ID (@original_message_id, with or without <>),
 * Disposition: automatic-action/MDN-sent-automatically; processed and
 * Received-Content-MIC: @mic, @micalg.  Exposed for tests. */
GBytes *sm_receipts_build_mdn (const char *from,
                               const char *to,
                               const char *original_message_id,
                               const char *final_recipient,
                               const char *mic,
                               const char *micalg);

/* Every recipient row, oldest message first (SmReceiptRow*, owned).  Rows
 * still "requested" @overdue_after_s seconds after being sent (at @now,
 * unix seconds) are listed as SM_RECEIPT_OVERDUE. */
GPtrArray *sm_receipts_list (SmReceipts *receipts,
                             gint64      now,
                             gint64      overdue_after_s,
                             GError    **error);

G_END_DECLS
