/* sm-secure-fetch.h: one client FETCH answered from decrypted views.
 *
 * When a client asks for message content (FETCH or UID FETCH of BODY[...],
 * BODYSTRUCTURE, RFC822.SIZE, ...), the IMAP session stops relaying and
 * hands the command to an SmSecureFetch, which talks to the provider with
 * its own tags while the client waits:
 *
 *  1. pre-query: `UID RFC822.SIZE BODY.PEEK[HEADER]` for the client's set, to
 *     learn which messages are protected at the root (or carry forged
 *     X-SecureMail fields or Subject tags);
 *  2. for those not in the view cache, in rounds of a bounded number of
 *     messages and bytes: `BODY.PEEK[]`, then sm_secure_view_build() in
 *     worker threads (several at once: the decryptions use every core);
 *  3. `UID STORE +FLAGS.SILENT (\Seen)` when the client's items set \Seen;
 *  4. the client's non-content items from the provider (FLAGS, UID, ...),
 *     to which it appends the content items rendered from the view;
 *  5. the other messages: the client's own command, restricted to their
 *     UIDs, goes to the provider with the client's tag and is relayed as
 *     usual (or, when there are none, the proxy answers the tag itself).
 *
 * A protected message is never served as ciphertext: while a key is locked
 * the whole command gets `NO [UNAVAILABLE]`.  Unsolicited responses (EXISTS,
 * EXPUNGE, flag changes) that arrive meanwhile go to the client at once.
 * Everything runs in the main thread except the builds.
 */
#pragma once

#include <gio/gio.h>

#include "sm-imap-fetch.h"
#include "sm-secure-view.h"
#include "sm-view-cache.h"

G_BEGIN_DECLS

/* Protected messages decrypted per round, and the bytes fetched per round:
 * bounds the memory one FETCH of a big mailbox holds at a time. */
#define SM_SECURE_FETCH_ROUND_MESSAGES  200
#define SM_SECURE_FETCH_ROUND_BYTES     (64 * 1024 * 1024)
/* The longest UID set the proxy sends in one command (Dovecot's default
 * imap_max_line_length is 64 KiB); longer sets are split. */
#define SM_SECURE_FETCH_MAX_SET_LEN     (8 * 1024)
/* A whole provider response assembled while a FETCH is intercepted: one
 * message at most as large as the secure view accepts, and its line. */
#define SM_SECURE_FETCH_MAX_RESPONSE    (SM_SECURE_VIEW_MAX_MESSAGE_SIZE + 1024 * 1024)
/* Messages decrypted at once: this many per core, and at least
 * SM_SECURE_FETCH_MIN_PARALLEL.  An OpenPGP decryption spends much of its
 * time starting gpg and waiting for gpg-agent, so one per core leaves the
 * cores idle; four per core added little over two (measured).  S/MIME's
 * gpgsm operations run one at a time whatever this says (smime_gate in
 * sm-secure-view.c); the builds around them still run side by side. */
#define SM_SECURE_FETCH_PER_CORE        2
#define SM_SECURE_FETCH_MIN_PARALLEL    2
/* At most one re-preset of the keyring's passphrases per this many seconds
 * (a mailbox of locked messages must not start one per message). */
#define SM_SECURE_FETCH_REPRESET_INTERVAL_S 10
/* gpg-agent watchdog (certstore/sm-agent.h): every this many seconds it
 * looks at the decryptions running; one that has run longer than
 * SM_SECURE_FETCH_AGENT_STALL_S gets the agent probed, and an agent that
 * does not greet a new connection is replaced.  A 64 MiB message takes a few
 * seconds; a stall is a wedged agent. */
#define SM_SECURE_FETCH_WATCH_INTERVAL_S 5
#define SM_SECURE_FETCH_AGENT_STALL_S    30

typedef struct {
  /* Sends a command line (CRLF included) to the provider. */
  void (*to_upstream) (gpointer owner, const guint8 *data, gsize len);
  /* Sends bytes to the client. */
  void (*to_client)   (gpointer owner, const guint8 *data, gsize len);
  /* The flow needs no more provider responses and may be freed.
   * @passthrough, if not NULL, is a command line (client's tag) the session
   * sends to the provider and then relays as an ordinary command; NULL
   * means the client's command has been answered. */
  void (*finished)    (gpointer owner, GBytes *passthrough);
  /* Reading from the provider may go on (builds caught up). */
  void (*resume)      (gpointer owner);
  /* A view was built (for the recent-messages list and receipts). */
  void (*view_built)  (gpointer owner, guint32 uid, SmCachedView *cached);
} SmSecureFetchHooks;

#define SM_TYPE_SECURE_FETCH (sm_secure_fetch_get_type ())
G_DECLARE_FINAL_TYPE (SmSecureFetch, sm_secure_fetch, SM, SECURE_FETCH, GObject)

/* @mailbox NULL or @uidvalidity 0: not cached.  Takes @request. */
SmSecureFetch *sm_secure_fetch_new (SmImapFetchRequest       *request,
                                    GBytes                   *command_line,
                                    SmViewCache              *cache,
                                    const char               *mailbox,
                                    guint32                   uidvalidity,
                                    gboolean                  read_only,
                                    const char               *account_address,
                                    SmSecureViewFlags         view_flags,
                                    const SmSecureFetchHooks *hooks,
                                    gpointer                  owner);

/* Sends the first command. */
void     sm_secure_fetch_start    (SmSecureFetch *self);

/* One complete provider response (first line, literals and continuation
 * lines as received).  Returns TRUE when the flow consumed it, FALSE when
 * the session should pass it to the client. */
gboolean sm_secure_fetch_response (SmSecureFetch *self, const guint8 *data, gsize len);

/* TRUE while too many fetched messages wait for their build: the session
 * stops reading from the provider until resume(). */
gboolean sm_secure_fetch_paused   (SmSecureFetch *self);

/* The session is going away: no hook is called any more. */
void     sm_secure_fetch_cancel   (SmSecureFetch *self);

/* The process's key store for incoming mail (opened and unlocked from the
 * keyring on first use), or NULL with @error. */
SmCertstore *sm_secure_fetch_get_store (GError **error);

/* Opens that store in a worker thread now, if the gate is open and the
 * store is not open yet (once per process): listing the keys and handing
 * their passphrases to gpg-agent takes about a second, which the first FETCH
 * would otherwise wait for.  It matters for a proxy that starts unlocked
 * (the policy's auto-unlock); after an Unlock the passphrases are already
 * there (sm-key-gate.c) and only the store is opened.  A build that comes
 * meanwhile waits for it, as for its own.  A keyring not ready yet at login
 * is mended as before: the first build finds its key locked and hands the
 * passphrases over again. */
void         sm_secure_fetch_prepare (void);

/* Whether the unlock gate is open (sm-server.c keeps this current).  Only
 * while it is open may a decryption that finds gpg-agent without a
 * passphrase hand the keyring's passphrases to the agent again and retry
 * (the agent was restarted, or lost them under load); a closed gate is
 * never reopened this way. */
void         sm_secure_fetch_set_gate_open (gboolean open);

G_END_DECLS
