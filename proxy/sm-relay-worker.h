/* sm-relay-worker.h: delivers the spool (sm-spool.h) to the provider.
 *
 * One worker thread takes the due messages oldest first, one at a time,
 * over one SMTP connection per round.  A message leaves the queue when the
 * provider accepted it for every recipient.  While the provider cannot be
 * reached or answers 4xx, it is retried with exponential backoff; a 5xx, or
 * no success within the age limit, ends it: the entry stays listed as
 * "failed", a delivery report (RFC 3464) goes back to the sender through
 * the provider, and "delivery-failed" is emitted for the tray.  The queue
 * keeps the session's all-or-nothing rule: a message goes to all its
 * recipients or to none, so one refused recipient fails the message and
 * the report says so for each recipient.
 *
 * Exactly once: an attempt is recorded ("sending") in the spool before it
 * starts and the message is removed right after the provider's 250.  After
 * a crash, a message still marked "sending" is sent again: the provider
 * offers nothing to ask whether it already took it (submission has no
 * lookup by Message-ID), so that one message may arrive twice; no other
 * message can.
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"
#include "sm-spool.h"

G_BEGIN_DECLS

#define SM_RELAY_FIRST_RETRY_S   30              /* first retry after a temporary failure */
#define SM_RELAY_RETRY_FACTOR    2               /* each further retry waits this much longer */
#define SM_RELAY_MAX_RETRY_S     (30 * 60)       /* ... but never longer than this */
#define SM_RELAY_MAX_AGE_S       (5 * 24 * 3600) /* not delivered by then: failed, reported */
/* Tests: multiply every retry delay by this (a float, e.g. 0.01). */
#define SM_RELAY_RETRY_SCALE_ENV "SECUREMAIL_TEST_RETRY_SCALE"
/* Tests: the age limit in seconds instead of SM_RELAY_MAX_AGE_S. */
#define SM_RELAY_MAX_AGE_ENV     "SECUREMAIL_QUEUE_MAX_AGE_S"

#define SM_TYPE_RELAY_WORKER (sm_relay_worker_get_type ())
G_DECLARE_FINAL_TYPE (SmRelayWorker, sm_relay_worker, SM, RELAY_WORKER, GObject)

/* @config must outlive the worker.  Signals ("queue-changed",
 * "delivery-failed" (id, reason), "upstream-status" (ok, error)) are
 * emitted in the thread-default main context of the caller of
 * sm_relay_worker_start(). */
SmRelayWorker *sm_relay_worker_new (SmSpool *spool, const SmConfig *config);

void sm_relay_worker_start (SmRelayWorker *worker);
/* Cancels the attempt in progress (it stays queued) and joins the thread. */
void sm_relay_worker_stop (SmRelayWorker *worker);

/* Something was queued: look at the queue now.  Any thread. */
void sm_relay_worker_kick (SmRelayWorker *worker);

SmSpool *sm_relay_worker_get_spool (SmRelayWorker *worker);
/* The age limit in seconds (SM_RELAY_MAX_AGE_S unless the test variable says otherwise). */
gint64   sm_relay_worker_get_max_age (SmRelayWorker *worker);

/* The wait before retry number @attempts (1 = after the first failure). */
gint64 sm_relay_worker_backoff_ms (SmRelayWorker *worker, guint attempts);

/* Queues @id again now, failed or waiting, with a new age limit.
 * G_IO_ERROR_NOT_FOUND, or G_IO_ERROR_BUSY while it is being sent. */
gboolean sm_relay_worker_retry (SmRelayWorker *worker, const char *id, GError **error);
/* Removes @id from the queue, unsent.  Errors as for retry. */
gboolean sm_relay_worker_delete (SmRelayWorker *worker, const char *id, GError **error);

G_END_DECLS
