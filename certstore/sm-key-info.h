/* sm-key-info.h: a plain, GPGME-independent snapshot of one key or
 * certificate, as the CLI, the tray and the proxy need to show or choose it.
 *
 * Snapshots are immutable after sm_key_info_new_from_gpgme() returns and are
 * safe to hand to other threads; they hold no secret material.
 */
#pragma once

#include <glib-object.h>
#include <gpgme.h>

G_BEGIN_DECLS

typedef enum {
  SM_PROTOCOL_OPENPGP,
  SM_PROTOCOL_SMIME,
} SmProtocol;

/* Overall usability, worst first wins when several apply. */
typedef enum {
  SM_KEY_STATUS_VALID,        /* usable; for S/MIME the chain reaches a trust anchor */
  SM_KEY_STATUS_UNTRUSTED,    /* S/MIME: no trusted chain; OpenPGP: never used here */
  SM_KEY_STATUS_EXPIRED,
  SM_KEY_STATUS_REVOKED,
  SM_KEY_STATUS_INVALID,      /* malformed, disabled, or rejected by GnuPG */
} SmKeyStatus;

/* Result of the certstore's own CRL check (S/MIME only). */
typedef enum {
  SM_REVOCATION_NOT_CHECKED,  /* no CRL for the issuer is present: say so */
  SM_REVOCATION_GOOD,         /* a current CRL from the issuer does not list it */
  SM_REVOCATION_GOOD_STALE,   /* not listed, but the CRL is past its nextUpdate */
  SM_REVOCATION_REVOKED,      /* listed on a verified CRL of the issuer */
} SmRevocation;

typedef struct {
  SmProtocol protocol;
  char *fingerprint;          /* OpenPGP: v4 fingerprint; S/MIME: SHA-1 of the cert, as gpgsm */
  char *keygrip;              /* primary key's keygrip, or NULL */
  char *user_id;              /* OpenPGP primary user id; S/MIME subject DN */
  char *issuer;               /* S/MIME issuer DN; NULL for OpenPGP */
  char *serial;               /* S/MIME serial (hex); NULL for OpenPGP */
  char *chain_id;             /* S/MIME issuer's fingerprint, if known */
  GStrv addresses;            /* lower-cased e-mail addresses, never NULL */
  gboolean secret;            /* we hold the secret key: one of our identities */
  gboolean can_sign;
  gboolean can_encrypt;
  gboolean can_certify;       /* S/MIME: a CA certificate */
  gint64 created;             /* Unix time, 0 if unknown */
  gint64 expires;             /* Unix time, 0 = never */
  SmKeyStatus status;
  SmRevocation revocation;
  char *status_detail;        /* translated, one line; why it is not VALID or what was not checked */
  gboolean is_anchor;         /* S/MIME: listed in trustlist.txt */
  gboolean admin_anchor;      /* ... by the administrator's policy: locked */
} SmKeyInfo;

GType sm_key_info_get_type (void) G_GNUC_CONST;
#define SM_TYPE_KEY_INFO (sm_key_info_get_type ())

/* Returns a new snapshot of @key (not consumed). @now is the reference time
 * for expiry (g_get_real_time () / G_USEC_PER_SEC normally). */
SmKeyInfo *sm_key_info_new_from_gpgme (gpgme_key_t key,
                                       gint64      now);
SmKeyInfo *sm_key_info_copy (const SmKeyInfo *info);
void       sm_key_info_free (SmKeyInfo *info);

/* TRUE if @info lists @address (compared case-insensitively). */
gboolean   sm_key_info_has_address (const SmKeyInfo *info,
                                    const char      *address);

/* Whole days from @now until expiry (negative when already expired), or
 * G_MAXINT when the key never expires. */
int        sm_key_info_days_left (const SmKeyInfo *info,
                                  gint64           now);

const char *sm_protocol_to_string (SmProtocol protocol);     /* "openpgp" / "smime" */
gboolean    sm_protocol_from_string (const char *str,
                                     SmProtocol *protocol);
gpgme_protocol_t sm_protocol_to_gpgme (SmProtocol protocol);
const char *sm_key_status_to_string (SmKeyStatus status);    /* "valid", "expired", ... (stable, for --json) */
const char *sm_revocation_to_string (SmRevocation revocation);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmKeyInfo, sm_key_info_free)

G_END_DECLS
