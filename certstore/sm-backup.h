/* sm-backup.h: one encrypted file that brings a user's keys back.
 *
 * "If the decryption key is lost, then messages are useless": `keys backup`
 * writes the secret keys of both protocols, their passphrases, the OpenPGP
 * ownertrust, the S/MIME certificates, trust anchors and CRLs into one
 * OpenPGP symmetrically encrypted file (gpg, AES with MDC integrity
 * protection) whose passphrase is a generated recovery code of 36 digits in
 * 9 groups of 4, like Autocrypt's Setup Code (Autocrypt Level 1 §4.4.3):
 * about 119 bits, easy to copy down, shown once.
 *
 * Restore decrypts and checks everything first, imports into a temporary
 * GnuPG home next to the real one, and only then swaps it into place (the
 * old home is kept aside, never deleted). A wrong code, a truncated or an
 * altered file fails before anything is imported.
 */
#pragma once

#include "sm-certstore.h"
#include "sm-passphrase-store.h"

G_BEGIN_DECLS

#define SM_RECOVERY_CODE_DIGITS 36
#define SM_RECOVERY_CODE_GROUP  4
/* Backups larger than this are not ours. */
#define SM_BACKUP_MAX_SIZE (256 * 1024 * 1024)
#define SM_BACKUP_MAGIC    "SECUREMAIL-KEY-BACKUP"
#define SM_BACKUP_VERSION  1

/* A new random recovery code, formatted "1234-5678-...-9012". */
SmSecret *sm_backup_generate_recovery_code (GError **error);

/* Accepts what a person typed (spaces, dashes, line breaks allowed) and
 * returns the canonical form, or SM_CERTSTORE_ERROR_BAD_RECOVERY_CODE with a
 * hint (wrong number of digits, a letter instead of a digit). */
SmSecret *sm_backup_normalize_recovery_code (const char *input,
                                             GError    **error);

/* Writes the backup of @store to @path (mode 0600) and returns the recovery
 * code in @recovery_code: it is not stored anywhere, show it once. */
gboolean  sm_backup_write   (SmCertstore *store,
                             const char  *path,
                             SmSecret   **recovery_code,
                             GError     **error);

/* Restores @path into @store's home. @previous_home receives where the old
 * home was moved (NULL if there was none). The passphrases go to the
 * keyring and are preset into the new agent. */
gboolean  sm_backup_restore (SmCertstore *store,
                             const char  *path,
                             const char  *recovery_code,
                             char       **previous_home,
                             GError     **error);

G_END_DECLS
