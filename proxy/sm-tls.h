/* sm-tls.h: TLS towards the provider (always verified) and the local
 * listeners' self-signed certificate.
 *
 * Debian's libetpan does not verify certificates (DESIGN.md "Known traps"),
 * so every upstream TLS session is GIO's (glib-networking) and goes through
 * sm_tls_client_handshake(): the system trust store, plus the anchors of
 * [upstream] ca_file, plus an optional SubjectPublicKeyInfo pin.
 */
#pragma once

#include <gio/gio.h>

#include "sm-config.h"

G_BEGIN_DECLS

#define SM_TLS_LOCAL_CERT_FILE     "local-tls.pem"
#define SM_TLS_LOCAL_CERT_DAYS     (10 * 365)
#define SM_TLS_HANDSHAKE_TIMEOUT_S 30

/* Wraps @base in a client TLS connection to @host and performs the
 * handshake (blocking; call from a worker thread).  A certificate that does
 * not verify against the system store or @config's ca_file, or does not match
 * @config's pin_sha256, fails with SM_ERROR_TLS and a message saying why and
 * what to do.  With [upstream] client_certificate set, presents it
 * (sm_tls_client_certificate()); a PIN problem fails with SM_ERROR_AUTH or
 * the keyring's error.  Returns the new TLS stream (transfer full). */
GIOStream *sm_tls_client_handshake (GIOStream *base, const SmConfig *config, const char *host,
                                    guint16 port, GCancellable *cancellable, GError **error);

/* The client certificate of [upstream] client_certificate (and
 * client_key), with its private key or the PKCS#11 URI of it (issue 7):
 *  - "pkcs11:..." (RFC 7512): a certificate on a token; the key is found by
 *    the same URI unless client_key names it; the token's PIN is asked for
 *    during the handshake (SmPinInteraction);
 *  - a file ending in .p12 or .pfx: PKCS#12, opened with the PIN from the
 *    keyring (SM_KEYRING_CLIENT_CERT_PIN) or, without one, an empty password;
 *  - any other file: PEM with the certificate (and chain) and an unencrypted
 *    private key, or the key in client_key.
 * Fails with SM_ERROR_TLS (or the keyring's error) and a message that names
 * the setting and the fix; an expired or not yet valid certificate fails
 * too, before the provider sees it.  Blocking.  Returns a new certificate
 * (transfer full) or NULL when @config has no client certificate and no
 * error. */
GTlsCertificate *sm_tls_client_certificate (const SmConfig *config, GError **error);

/* "CN=..., O=..." of @cert and, in *not_after (may be NULL), when it
 * expires (transfer full; NULL when unknown).  Returns a new string. */
char *sm_tls_certificate_describe (GTlsCertificate *cert, GDateTime **not_after);

/* The base64 SHA-256 of @cert's SubjectPublicKeyInfo, as pin_sha256 takes
 * it.  Returns a new string or NULL with @error set. */
char *sm_tls_certificate_spki_sha256 (GTlsCertificate *cert, GError **error);

/* Loads $data_dir/local-tls.pem, creating a self-signed certificate for
 * localhost/127.0.0.1/::1 with a fresh ECDSA P-256 key (mode 0600) the first
 * time.  Returns the certificate with its key (transfer full). */
GTlsCertificate *sm_tls_local_certificate (const char *data_dir, GError **error);

G_END_DECLS
