/* sm-outgoing.h: signing and encrypting a submitted message (issue 4, SMTP).
 *
 * sm_outgoing_protect() turns the message a local client submitted into what
 * goes upstream: always signed with the sender's own identity (S/MIME,
 * RFC 8551, or PGP/MIME, RFC 3156, per `[crypto] protocol`), and encrypted to
 * every envelope recipient plus the sender when keys for all of them are
 * known.  `[crypto] encrypt` decides what happens when some are missing:
 * `required` refuses (SM_ERROR_POLICY, naming them), `if-possible` sends
 * signed only, `never` always sends signed only.
 *
 * The signed entity is canonical (CRLF, 7-bit transfer encodings: 8-bit and
 * fragile bodies are re-encoded as quoted-printable or base64 first, RFC 8551
 * §3.1.1 / RFC 3156 §3) and carries the protected header fields of RFC 9788.
 * Bcc is removed before anything is signed.  With `[crypto] request_receipts
 * = on` the message asks for a signed receipt (Disposition-Notification-To
 * and -Options, RFC 8098 §2.1) inside the signed entity and outside; a
 * report (multipart/report, e.g. a receipt) never asks for one (RFC 8098
 * §2.1: no MDN for an MDN).  Blocking: call it from a worker
 * thread.  Nothing of the message's content is logged.
 */
#pragma once

#include <glib.h>

#include "sm-config.h"

G_BEGIN_DECLS

/* certstore/sm-certstore.h; not included here because certstore's protocol
 * enum and sm-config.h's share value names. */
typedef struct _SmCertstore SmCertstore;

#define SM_OUTGOING_MAX_MESSAGE    (64 * 1024 * 1024)  /* input larger than this is refused */
#define SM_OUTGOING_MAX_HEADER     (1024 * 1024)       /* header section of any entity */
#define SM_OUTGOING_MAX_MIME_DEPTH 16                  /* nested multiparts/messages */
#define SM_OUTGOING_MAX_PARTS      1000                /* MIME parts in one message */
#define SM_OUTGOING_LINE_LIMIT     998                 /* RFC 5322 §2.1.1 */

/* The digest a signed receipt must return (Disposition-Notification-Options
 * signed-receipt-micalg, RFC 8551 §2.7 / RFC 3335 style).  Fixed rather than
 * the signature's own micalg: that one is known only after signing, and the
 * request must be inside the signed content.  Both families' spellings
 * ("sha-256", "pgp-sha256") name the same digest. */
#define SM_OUTGOING_RECEIPT_MICALG "sha-256"

/* What was done to a message; for the spool, the receipts and the logs. */
typedef struct {
  gboolean signed_;           /* always TRUE on success */
  gboolean encrypted;
  SmCryptoProtocol protocol;
  char *micalg;               /* "sha-256" (S/MIME) or "pgp-sha256" (OpenPGP) */
  char *message_id;           /* with angle brackets, as in the header */
  char *mic;                  /* base64 digest (micalg) of the canonical signed entity,
                               * for Received-Content-MIC (receipts) */
  char *signer;               /* fingerprint of the key that signed */
  char *receipt_mic;          /* base64 SM_OUTGOING_RECEIPT_MICALG digest of the canonical
                               * signed entity when a signed receipt was requested
                               * (`[crypto] request_receipts`), else NULL */
  GStrv missing;              /* addresses without a usable key (never NULL) */
} SmOutgoingInfo;

void sm_outgoing_info_free (SmOutgoingInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmOutgoingInfo, sm_outgoing_info_free)

/* Signs, and encrypts where keys and @config allow, @message (CRLF lines,
 * as submitted) from @sender (envelope) to @recipients (envelope,
 * NULL-terminated, Bcc included).  @store NULL means the user's own store
 * (sm_certstore_new(), opened once per process and unlocked from the
 * keyring); calls on a store are serialised internally.
 *
 * Returns the message to relay (new reference) and, when @info is not NULL,
 * a new SmOutgoingInfo.  Errors (SM_ERROR):
 *   SM_ERROR_POLICY   encrypt = required and some recipients have no key:
 *                     the message names them (SMTP 550 5.7.1)
 *   SM_ERROR_LOCKED   gpg-agent has no passphrase: unlock SecureMail (454 4.7.0)
 *   SM_ERROR_CONFIG   no usable own key/certificate: the message says which
 *                     `securemail keys` command fixes it
 *   SM_ERROR_TOO_BIG  a named limit above was exceeded
 *   SM_ERROR_PROTOCOL the message cannot be parsed as RFC 5322/MIME
 *   SM_ERROR_FAILED   anything else (the key store, gpg, gpgsm) */
GBytes *sm_outgoing_protect (SmCertstore        *store,
                             const SmConfig     *config,
                             const char         *sender,
                             const char * const *recipients,
                             GBytes             *message,
                             SmOutgoingInfo    **info,
                             GError            **error);

/* The SMTP reply line for an error of sm_outgoing_protect() (translated,
 * with enhanced status code); *@code gets the reply code.  New string. */
char *sm_outgoing_error_to_smtp (const GError *error, guint *code);

G_END_DECLS
