/* sm-pkcs12.h: make any PKCS#12 bundle readable by gpgsm 2.2.
 *
 * gpgsm 2.2 only reads the legacy PKCS#12 ciphers (3DES, RC2); OpenSSL 3
 * writes PBES2/AES-256 with an HMAC-SHA256 PRF by default, which gpgsm
 * rejects ("encryptedData error at pkcs5PBES2-params"). Rather than send the
 * user off to re-export, we open the bundle with GnuTLS (which reads both) and
 * re-encode it with 3DES under a fresh passphrase, which is also the
 * passphrase the key gets inside gpg-agent.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Bundles bigger than this are not key bundles. */
#define SM_PKCS12_MAX_SIZE (1024 * 1024)

/* TRUE if @data looks like a PKCS#12 PFX (DER or PEM "PKCS12"). */
gboolean sm_pkcs12_sniff (GBytes *data);

/* Opens @data with @password ("" or NULL for none) and returns a DER
 * PKCS#12 holding the same private key and certificate chain, encrypted with
 * PBE-SHA1-3DES and MAC'd under @new_password. Errors:
 * SM_CERTSTORE_ERROR_BAD_PASSPHRASE (wrong password),
 * SM_CERTSTORE_ERROR_BAD_DATA (not a PKCS#12 / no key in it),
 * SM_CERTSTORE_ERROR_UNSUPPORTED (a cipher GnuTLS cannot read either). */
GBytes  *sm_pkcs12_reencode (GBytes     *data,
                             const char *password,
                             const char *new_password,
                             GError    **error);

G_END_DECLS
