/* sm-tls.c: verified upstream TLS and the local self-signed certificate. */
#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <sys/random.h>

#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-pin-interaction.h"
#include "sm-wipe.h"
#include "sm-tls.h"
#include "sm-trust-database.h"

static char *
describe_flags (GTlsCertificateFlags flags)
{
  GString *s = g_string_new (NULL);

  if (flags & G_TLS_CERTIFICATE_UNKNOWN_CA)
    g_string_append (s, _("it is not signed by a trusted authority; "));
  if (flags & G_TLS_CERTIFICATE_BAD_IDENTITY)
    g_string_append (s, _("it is for a different host name; "));
  if (flags & G_TLS_CERTIFICATE_NOT_ACTIVATED)
    g_string_append (s, _("it is not valid yet; "));
  if (flags & G_TLS_CERTIFICATE_EXPIRED)
    g_string_append (s, _("it has expired; "));
  if (flags & G_TLS_CERTIFICATE_REVOKED)
    g_string_append (s, _("it has been revoked; "));
  if (flags & G_TLS_CERTIFICATE_INSECURE)
    g_string_append (s, _("it uses an insecure algorithm; "));
  if (flags & G_TLS_CERTIFICATE_GENERIC_ERROR || s->len == 0)
    g_string_append (s, _("it could not be verified; "));
  g_string_truncate (s, s->len - 2);
  return g_string_free (s, FALSE);
}

char *
sm_tls_certificate_spki_sha256 (GTlsCertificate *cert, GError **error)
{
  g_autoptr(GByteArray) der = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t in, spki = { NULL, 0 };
  char *result = NULL;
  int r;

  g_object_get (cert, "certificate", &der, NULL);
  if (der == NULL)
    goto fail;
  in.data = der->data;
  in.size = der->len;
  if ((r = gnutls_x509_crt_init (&crt)) < 0 || (r = gnutls_x509_crt_import (crt, &in, GNUTLS_X509_FMT_DER)) < 0 ||
      (r = gnutls_pubkey_init (&pub)) < 0 || (r = gnutls_pubkey_import_x509 (pub, crt, 0)) < 0 ||
      (r = gnutls_pubkey_export2 (pub, GNUTLS_X509_FMT_DER, &spki)) < 0)
    goto fail;
  {
    g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
    guint8 digest[32];
    gsize dlen = sizeof digest;
    g_checksum_update (sum, spki.data, spki.size);
    g_checksum_get_digest (sum, digest, &dlen);
    result = g_base64_encode (digest, dlen);
  }
fail:
  if (result == NULL)
    g_set_error_literal (error, SM_ERROR, SM_ERROR_TLS,
                         _("Cannot read the provider's certificate public key"));
  gnutls_free (spki.data);
  if (pub)
    gnutls_pubkey_deinit (pub);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  return result;
}

GIOStream *
sm_tls_client_handshake (GIOStream *base, const SmConfig *config, const char *host, guint16 port,
                         GCancellable *cancellable, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GIOStream) tls = NULL;
  g_autoptr(GSocketConnectable) identity = g_network_address_new (host, port);
  g_autoptr(GTlsDatabase) database = sm_trust_database_get_shared (config->ca_file, error);
  GTlsBackend *backend = g_tls_backend_get_default ();
  g_autoptr(SmPinInteraction) interaction = NULL;

  if (database == NULL)
    return NULL;
  /* The database is given at construction: see sm-trust-database.h. */
  tls = g_initable_new (g_tls_backend_get_client_connection_type (backend), NULL, &local,
                        "base-io-stream", base, "server-identity", identity, "database", database, NULL);
  if (tls == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                   _("TLS is not available (%s). Install glib-networking."), local->message);
      return NULL;
    }
  if (config->client_certificate != NULL)
    {
      g_autoptr(GTlsCertificate) mine = sm_tls_client_certificate (config, error);
      if (mine == NULL)
        return NULL;
      g_tls_connection_set_certificate (G_TLS_CONNECTION (tls), mine);
      /* A token asks for its PIN during the handshake (see
       * sm-pin-interaction.h); files never do. */
      if (g_str_has_prefix (config->client_certificate, "pkcs11:"))
        {
          interaction = sm_pin_interaction_new (config->address);
          g_tls_connection_set_interaction (G_TLS_CONNECTION (tls), G_TLS_INTERACTION (interaction));
        }
    }
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), cancellable, &local))
    {
      const GError *pin_error = interaction ? sm_pin_interaction_get_error (interaction) : NULL;
      if (pin_error != NULL)
        g_set_error_literal (error, SM_ERROR, pin_error->code, pin_error->message);
      else if (config->client_certificate == NULL &&
               g_error_matches (local, G_TLS_ERROR, G_TLS_ERROR_CERTIFICATE_REQUIRED))
        g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                     _("The provider at %s:%u asks for a client certificate. Set [upstream] "
                       "client_certificate to the certificate your provider issued to you."),
                     host, port);
      else if (g_error_matches (local, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE))
        {
          g_autofree char *why = describe_flags (
              g_tls_connection_get_peer_certificate_errors (G_TLS_CONNECTION (tls)));
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("The certificate of %s:%u was refused: %s. If your provider uses a "
                         "private authority, set [upstream] ca_file to its certificate; otherwise "
                         "call your helpdesk, the connection may be intercepted."),
                       host, port, why);
        }
      else if (config->client_certificate != NULL)
        /* Servers answer a certificate they do not accept with a bare alert
         * (RFC 8446 §4.4.2.4): say which one we sent. */
        g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                     _("TLS with %s:%u failed: %s. The provider may have refused the client "
                       "certificate %s: check that [upstream] client_certificate is the one your "
                       "provider issued and that it is still valid."),
                     host, port, local->message, config->client_certificate);
      else
        g_set_error (error, SM_ERROR, SM_ERROR_TLS, _("TLS with %s:%u failed: %s"), host, port,
                     local->message);
      return NULL;
    }

  if (config->pin_sha256 != NULL)
    {
      GTlsCertificate *peer = g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (tls));
      g_autofree char *got = peer ? sm_tls_certificate_spki_sha256 (peer, NULL) : NULL;
      g_autofree char *want = g_base64_encode (g_bytes_get_data (config->pin_sha256, NULL),
                                               g_bytes_get_size (config->pin_sha256));
      if (got == NULL || strcmp (got, want) != 0)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("The certificate of %s:%u does not match [upstream] pin_sha256 (it has "
                         "%s). If the provider changed its key, ask your administrator for the "
                         "new pin."),
                       host, port, got ? got : "?");
          return NULL;
        }
    }
  return g_steal_pointer (&tls);
}

/* ---- the client certificate (issue 7) ------------------------------------ */

static gboolean
is_pkcs12_path (const char *path)
{
  g_autofree char *lower = g_ascii_strdown (path, -1);
  return g_str_has_suffix (lower, ".p12") || g_str_has_suffix (lower, ".pfx");
}

static GTlsCertificate *
load_pkcs12 (const SmConfig *config, GError **error)
{
  g_autoptr(GError) local = NULL;
  char *pin = sm_keyring_lookup (SM_KEYRING_CLIENT_CERT_PIN, config->address, &local);
  GTlsCertificate *cert;

  if (pin == NULL && !g_error_matches (local, SM_ERROR, SM_ERROR_NO_SECRET))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  g_clear_error (&local);
  cert = g_tls_certificate_new_from_file_with_password (config->client_certificate, pin ? pin : "", &local);
  sm_keyring_free (pin);
  if (cert == NULL)
    g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                 _("Cannot open the client certificate %s (%s). If it has a password, store it "
                   "with “securemail account set-pin”; otherwise correct [upstream] "
                   "client_certificate."),
                 config->client_certificate, local->message);
  return cert;
}

GTlsCertificate *
sm_tls_client_certificate (const SmConfig *config, GError **error)
{
  const char *path = config->client_certificate;
  g_autoptr(GError) local = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GDateTime) not_before = NULL, not_after = NULL;
  g_autofree char *key_uri = NULL;
  g_autoptr(GByteArray) key = NULL;

  if (path == NULL)
    return NULL;
  if (g_str_has_prefix (path, "pkcs11:"))
    {
      if (config->client_key != NULL && !g_str_has_prefix (config->client_key, "pkcs11:"))
        {
          g_set_error_literal (error, SM_ERROR, SM_ERROR_TLS,
                               _("[upstream] client_key must be a pkcs11: URI too when "
                                 "client_certificate is one"));
          return NULL;
        }
      cert = g_tls_certificate_new_from_pkcs11_uris (path, config->client_key, &local);
      if (cert == NULL)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("Cannot find the client certificate %s (%s). Insert the smartcard or "
                         "token; if it is inserted, correct [upstream] client_certificate "
                         "(“p11tool --list-all-certs” lists the certificates it holds)."),
                       path, local->message);
          return NULL;
        }
    }
  else if (is_pkcs12_path (path))
    {
      if ((cert = load_pkcs12 (config, error)) == NULL)
        return NULL;
    }
  else
    {
      cert = config->client_key ? g_tls_certificate_new_from_files (path, config->client_key, &local)
                                : g_tls_certificate_new_from_file (path, &local);
      if (cert == NULL)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                       _("Cannot read the client certificate %s (%s). It must hold the "
                         "certificate and its private key, unencrypted, in PEM (or the key in "
                         "[upstream] client_key); a password-protected key must be a PKCS#12 "
                         "file (.p12)."),
                       path, local->message);
          return NULL;
        }
    }

  /* A file without its key would only fail later, inside the handshake,
   * with a message that names neither. */
  g_object_get (cert, "private-key", &key, "private-key-pkcs11-uri", &key_uri, NULL);
  if (key != NULL)
    sm_wipe (key->data, key->len);
  if (key == NULL && key_uri == NULL && !g_str_has_prefix (path, "pkcs11:"))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                   _("The client certificate %s comes without its private key. Add the key to "
                     "the file or name it in [upstream] client_key."),
                   path);
      return NULL;
    }

  not_before = g_tls_certificate_get_not_valid_before (cert);
  not_after = g_tls_certificate_get_not_valid_after (cert);
  if ((not_after != NULL && g_date_time_compare (now, not_after) > 0) ||
      (not_before != NULL && g_date_time_compare (now, not_before) < 0))
    {
      GDateTime *when = not_after != NULL && g_date_time_compare (now, not_after) > 0 ? not_after : not_before;
      g_autofree char *date = g_date_time_format (when, "%Y-%m-%d %H:%M UTC");
      g_set_error (error, SM_ERROR, SM_ERROR_TLS,
                   when == not_after
                       ? _("The client certificate %s expired on %s. Ask your provider for a new "
                           "one and set [upstream] client_certificate to it.")
                       : _("The client certificate %s is not valid before %s. Check the "
                           "computer's clock."),
                   path, date);
      return NULL;
    }
  return g_steal_pointer (&cert);
}

char *
sm_tls_certificate_describe (GTlsCertificate *cert, GDateTime **not_after)
{
  g_autofree char *subject = NULL;

  g_object_get (cert, "subject-name", &subject, NULL);
  if (not_after != NULL)
    *not_after = g_tls_certificate_get_not_valid_after (cert);
  return g_strdup (subject ? subject : _("(no subject)"));
}

static gboolean
generate_local_certificate (const char *path, GError **error)
{
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t cert_pem = { NULL, 0 }, key_pem = { NULL, 0 };
  guint8 serial[16];
  const guint8 ip4[4] = { 127, 0, 0, 1 };
  const guint8 ip6[16] = { [15] = 1 };
  time_t now = time (NULL);
  g_autoptr(GString) out = NULL;
  gboolean ok = FALSE;
  int r = GNUTLS_E_RANDOM_FAILED;

  if (getrandom (serial, sizeof serial, 0) != sizeof serial)
    goto fail;
  serial[0] &= 0x7f; /* a positive INTEGER (RFC 5280 §4.1.2.2) */
  if ((r = gnutls_x509_privkey_init (&key)) < 0 ||
      (r = gnutls_x509_privkey_generate (key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
      (r = gnutls_x509_crt_init (&crt)) < 0 || (r = gnutls_x509_crt_set_version (crt, 3)) < 0 ||
      (r = gnutls_x509_crt_set_serial (crt, serial, sizeof serial)) < 0 ||
      (r = gnutls_x509_crt_set_activation_time (crt, now - 3600)) < 0 ||
      (r = gnutls_x509_crt_set_expiration_time (crt, now + (time_t) SM_TLS_LOCAL_CERT_DAYS * 86400)) < 0 ||
      (r = gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9)) < 0 ||
      (r = gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                          "SecureMail local proxy", 22)) < 0 ||
      (r = gnutls_x509_crt_set_subject_alt_name (crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND)) < 0 ||
      (r = gnutls_x509_crt_set_subject_alt_name (crt, GNUTLS_SAN_IPADDRESS, ip4, 4, GNUTLS_FSAN_APPEND)) < 0 ||
      (r = gnutls_x509_crt_set_subject_alt_name (crt, GNUTLS_SAN_IPADDRESS, ip6, 16, GNUTLS_FSAN_APPEND)) < 0 ||
      (r = gnutls_x509_crt_set_key (crt, key)) < 0 ||
      (r = gnutls_x509_crt_set_basic_constraints (crt, 0, -1)) < 0 ||
      (r = gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
      (r = gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
      (r = gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
      (r = gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &cert_pem)) < 0 ||
      (r = gnutls_x509_privkey_export2_pkcs8 (key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &key_pem)) < 0)
    goto fail;

  out = g_string_new_len ((const char *) cert_pem.data, cert_pem.size);
  g_string_append_len (out, (const char *) key_pem.data, key_pem.size);
  /* g_file_set_contents_full() writes a temporary file with the final mode
   * and renames it, so the key is never readable by others, even briefly. */
  ok = g_file_set_contents_full (path, out->str, out->len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
  sm_wipe (out->str, out->len);
  sm_wipe (key_pem.data, key_pem.size);
  goto done;
fail:
  g_set_error (error, SM_ERROR, SM_ERROR_TLS, _("Cannot create the local TLS certificate: %s"),
               gnutls_strerror (r));
done:
  gnutls_free (cert_pem.data);
  gnutls_free (key_pem.data);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  if (key)
    gnutls_x509_privkey_deinit (key);
  return ok;
}

GTlsCertificate *
sm_tls_local_certificate (const char *data_dir, GError **error)
{
  g_autofree char *path = g_build_filename (data_dir, SM_TLS_LOCAL_CERT_FILE, NULL);

  if (g_mkdir_with_parents (data_dir, 0700) != 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, _("Cannot create %s: %s"), data_dir,
                   g_strerror (errno));
      return NULL;
    }
  if (!g_file_test (path, G_FILE_TEST_EXISTS) && !generate_local_certificate (path, error))
    return NULL;
  return g_tls_certificate_new_from_file (path, error);
}
