/* sm-secure-view.h: the decrypted, verified view of an incoming message.
 *
 * The IMAP session fetches a protected message whole, hands it to
 * sm_secure_view_build() in a worker thread, and answers every FETCH item
 * from the rebuilt message it returns (issue 4).  The trust status follows
 * SPEC.md "Trust status of a message" exactly and is computed from GPGME's
 * result structures only.
 *
 * Only a cryptographic layer at the root of the message counts (and the
 * layers directly inside it, e.g. signed then encrypted): protected parts
 * nested inside unprotected content are never decrypted into a view, so
 * attacker-chosen plaintext is never merged with decrypted plaintext (EFAIL
 * direct exfiltration) and a signed part forwarded inside an unsigned
 * message is not shown as signed.
 *
 * Decrypted content is never logged and never written anywhere but the
 * returned GBytes.
 */
#pragma once

#include <gio/gio.h>
#include <gpgme.h>

G_BEGIN_DECLS

/* certstore/sm-certstore.h; not included here because certstore's protocol
 * enum and sm-config.h's share value names, and the IMAP session includes
 * sm-config.h. */
typedef struct _SmCertstore SmCertstore;

/* Largest message we decrypt and verify (whole, as fetched). */
#define SM_SECURE_VIEW_MAX_MESSAGE_SIZE  (64 * 1024 * 1024)
/* Most cryptographic layers unwrapped from the root (signed inside
 * encrypted inside signed is the "triple wrap" of RFC 8551 section 3.7). */
#define SM_SECURE_VIEW_MAX_LAYERS        3
/* Idle `gpgsm --server` processes kept for the next S/MIME messages.  One
 * is busy at a time (its operations run one at a time); the others cover
 * builds still reading their results. */
#define SM_SECURE_VIEW_SPARE_SERVERS     4
/* gpg runs per OpenPGP message when one ends with no result at all. */
#define SM_SECURE_VIEW_GPG_ATTEMPTS      2
/* How long a signer's key and certificate status, once looked up, are
 * reused for other messages (see sm_secure_view_forget_signers()). */
#define SM_SECURE_VIEW_SIGNER_TTL_S      300
/* Most signers remembered (the table starts over beyond it). */
#define SM_SECURE_VIEW_MAX_SIGNERS       1024
/* The receipt digest when the sender named none we support. */
#define SM_SECURE_VIEW_DEFAULT_MICALG    "sha-256"
/* Longest Disposition-Notification-Options value we read. */
#define SM_SECURE_VIEW_MAX_DNO_LEN       1024

typedef enum {
  SM_TRUST_UNPROTECTED,
  SM_TRUST_VERIFIED,
  SM_TRUST_SIGNED_UNTRUSTED,
  SM_TRUST_SIGNER_MISMATCH,
  SM_TRUST_INVALID,
  SM_TRUST_DECRYPT_FAILED,
  SM_TRUST_ENCRYPTED_UNSIGNED,
} SmTrust;

/* The `X-SecureMail-Trust:` value ("verified", ...). */
const char *sm_trust_header_value (SmTrust trust);
/* The Subject tag ("[Verified]", ...), or NULL for SM_TRUST_UNPROTECTED. */
const char *sm_trust_subject_tag  (SmTrust trust);

typedef enum {
  SM_SECURE_VIEW_FLAGS_NONE = 0,
  SM_SECURE_VIEW_SUBJECT_TAGS = 1 << 0,   /* [crypto] subject_tags = on */
} SmSecureViewFlags;

typedef struct {
  GBytes   *message;            /* the rebuilt RFC 5322 message (CRLF) the client sees */
  SmTrust   trust;
  gboolean  encrypted;          /* the root was an encryption layer */
  gboolean  signed_;            /* a signature layer was found (good or not) */
  char     *signer;             /* "address (subject DN)" / "address (fingerprint)", or NULL */
  char     *signer_address;     /* lower-case, or NULL */
  char     *signer_fingerprint; /* or NULL */
  gpgme_protocol_t protocol;    /* of the outermost layer: GPGME_PROTOCOL_CMS or _OpenPGP */
  char     *from;               /* the single From: address shown (lower-case), or NULL */
  char     *message_id;         /* without <>, or NULL */
  gboolean  receipt_requested;  /* Disposition-Notification-To present (RFC 8098) */
  char     *receipt_to;         /* its address, or NULL */
  char     *received_mic;       /* base64 digest of the signed content that was verified
                                 * (the innermost signature layer's exact bytes, what the
                                 * sender's sm-outgoing hashed), for Received-Content-MIC;
                                 * NULL when nothing was signed */
  char     *received_micalg;    /* its algorithm: the first one we support of the sender's
                                 * signed-receipt-micalg (RFC 8551 §2.7 style), default
                                 * SM_SECURE_VIEW_DEFAULT_MICALG; "sha-256" spelling */
  gboolean  signer_collected;   /* the signer's key/certificate is in the certstore
                                 * (sm_certstore_get_key() with signer_fingerprint) */
  char     *detail;             /* translated, one line: why this status; no message content */
} SmSecureView;

void sm_secure_view_free (SmSecureView *view);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSecureView, sm_secure_view_free)

/* TRUE when the header section @header (@len bytes, folded fields and any
 * case allowed) announces a cryptographic layer at the root: an
 * application/(x-)pkcs7-mime body, or multipart/signed with protocol
 * application/(x-)pkcs7-signature or application/pgp-signature, or
 * multipart/encrypted with protocol application/pgp-encrypted.  Cheap: the
 * IMAP session calls it on BODY.PEEK[HEADER] to decide whether to fetch the
 * message whole. */
gboolean      sm_secure_view_is_protected (const char *header,
                                           gsize       len);

/* Decrypts and verifies @raw (the whole message as fetched) with the keys of
 * @store and rebuilds it for the client.  @account_address is the user's own
 * address (receipts are never requested from ourselves).  Blocking: call it
 * from a worker thread.  Calls into @store are serialised internally, so
 * several builds may run at once.
 *
 * A message that is not protected at the root gets SM_TRUST_UNPROTECTED and
 * the bytes of sm_secure_view_strip_forged().  Fails only with:
 *   SM_ERROR_TOO_BIG  past SM_SECURE_VIEW_MAX_MESSAGE_SIZE or a MIME limit;
 *   SM_ERROR_LOCKED   a key's passphrase is not in gpg-agent: the session
 *                     answers NO [UNAVAILABLE] and never serves ciphertext;
 *   SM_ERROR_FAILED   gpg/gpgsm cannot run.
 * Returns a new view (free with sm_secure_view_free()). */
SmSecureView *sm_secure_view_build (SmCertstore       *store,
                                    const char        *account_address,
                                    GBytes            *raw,
                                    SmSecureViewFlags  flags,
                                    GError           **error);

/* For unprotected messages: when @raw carries any X-SecureMail-* field or
 * a Subject trust tag, returns a copy without them and with
 * `X-SecureMail-Trust: unprotected`; otherwise a new reference to @raw
 * itself, byte for byte. */
GBytes       *sm_secure_view_strip_forged (GBytes *raw);

/* Forgets the signers looked up so far: the next message of each is
 * checked against the key store again (call on lock and after trust
 * changes). */
void          sm_secure_view_forget_signers (void);
/* The most S/MIME decryptions and verifications seen running at once in
 * this process: 1 while they run one at a time, as they must (see
 * smime_gate in sm-secure-view.c).  For the tests. */
guint         sm_secure_view_gpgsm_peak (void);
/* Maps a micalg name of either family ("sha-256", "sha256", "pgp-sha256",
 * any case) to its checksum type and canonical "sha-256" spelling (static).
 * FALSE for names we do not support (MD5 and unknown ones). */
gboolean      sm_secure_view_micalg_lookup (const char    *name,
                                            GChecksumType *type,
                                            const char   **canonical);

G_END_DECLS
