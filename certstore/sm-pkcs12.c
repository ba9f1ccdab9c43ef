/* sm-pkcs12.c: PKCS#12 re-encoding with GnuTLS (RFC 7292). */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs12.h>
#include <gnutls/x509.h>

#include "sm-certstore-error.h"
#include "sm-pkcs12.h"

#define SM_PKCS12_MAX_CHAIN 16

gboolean
sm_pkcs12_sniff (GBytes *data)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (data, &len);

  if (len >= 4 && p[0] == 0x30)
    {
      /* PFX ::= SEQUENCE { version INTEGER (3), ... }: after the outer
       * length comes 02 01 03. */
      gsize off = 1;

      if (p[off] & 0x80)
        off += 1 + (p[off] & 0x7f);
      else
        off += 1;
      return off + 3 <= len && p[off] == 0x02 && p[off + 1] == 0x01 && p[off + 2] == 0x03;
    }
  return len > 0 && g_strstr_len ((const char *) p, MIN (len, 4096), "-----BEGIN PKCS12-----") != NULL;
}

static void
gnutls_failure (GError    **error,
                int         ret,
                const char *doing)
{
  SmCertstoreError code = SM_CERTSTORE_ERROR_BAD_DATA;
  const char *advice = _("check that it is a PKCS#12 (.p12/.pfx) file with your key");

  switch (ret)
    {
    case GNUTLS_E_MAC_VERIFY_FAILED:
    case GNUTLS_E_DECRYPTION_FAILED:
      code = SM_CERTSTORE_ERROR_BAD_PASSPHRASE;
      advice = _("the password of the PKCS#12 file is wrong; try again");
      break;
    case GNUTLS_E_UNKNOWN_CIPHER_TYPE:
    case GNUTLS_E_UNKNOWN_HASH_ALGORITHM:
    case GNUTLS_E_UNKNOWN_ALGORITHM:
    case GNUTLS_E_UNKNOWN_PK_ALGORITHM:
    case GNUTLS_E_UNKNOWN_CIPHER_SUITE:
    case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
      code = SM_CERTSTORE_ERROR_UNSUPPORTED;
      advice = _("it uses a cipher SecureMail cannot read; re-export it with `openssl pkcs12 -export -legacy` and import that file");
      break;
    default:
      break;
    }
  g_set_error (error, SM_CERTSTORE_ERROR, code, "%s: %s (%s)", doing, advice, gnutls_strerror (ret));
}

GBytes *
sm_pkcs12_reencode (GBytes     *data,
                    const char *password,
                    const char *new_password,
                    GError    **error)
{
  gnutls_pkcs12_t in = NULL, out = NULL;
  gnutls_pkcs12_bag_t cert_bag = NULL, key_bag = NULL;
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t *chain = NULL;
  unsigned int chain_len = 0, chain_used;
  gnutls_datum_t in_datum, key_der = { NULL, 0 }, out_der = { NULL, 0 };
  guint8 key_id_buf[64];
  size_t key_id_size = sizeof key_id_buf;
  gnutls_datum_t key_id;
  GBytes *result = NULL;
  const char *pass = (password != NULL && *password != '\0') ? password : NULL;
  gsize size;
  int ret;

  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (new_password != NULL && *new_password != '\0', NULL);

  in_datum.data = (unsigned char *) g_bytes_get_data (data, &size);
  in_datum.size = (unsigned int) size;
  if (size == 0 || size > SM_PKCS12_MAX_SIZE)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The file is empty or larger than %d KiB, so it is not a PKCS#12 key file"),
                   SM_PKCS12_MAX_SIZE / 1024);
      return NULL;
    }

  gnutls_global_init ();
  if ((ret = gnutls_pkcs12_init (&in)) < 0
      || ((ret = gnutls_pkcs12_import (in, &in_datum, GNUTLS_X509_FMT_DER, 0)) < 0
          && (ret = gnutls_pkcs12_import (in, &in_datum, GNUTLS_X509_FMT_PEM, 0)) < 0))
    {
      gnutls_failure (error, ret, _("Reading the PKCS#12 file"));
      goto out;
    }

  /* An empty password is encoded either as no password or as "" depending on
   * the tool that wrote the file; try both. */
  ret = gnutls_pkcs12_verify_mac (in, pass);
  if (ret < 0 && pass == NULL)
    {
      ret = gnutls_pkcs12_verify_mac (in, "");
      if (ret >= 0)
        pass = "";
    }
  if (ret < 0)
    {
      gnutls_failure (error, ret, _("Opening the PKCS#12 file"));
      goto out;
    }

  ret = gnutls_pkcs12_simple_parse (in, pass, &key, &chain, &chain_len, NULL, NULL, NULL,
                                    GNUTLS_PKCS12_SP_INCLUDE_SELF_SIGNED);
  if (ret < 0 || key == NULL || chain_len == 0)
    {
      if (ret >= 0)
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                     _("The PKCS#12 file holds no private key with its certificate; ask the issuer for a complete .p12 file"));
      else
        gnutls_failure (error, ret, _("Opening the PKCS#12 file"));
      goto out;
    }
  chain_used = MIN (chain_len, SM_PKCS12_MAX_CHAIN);

  /* gpgsm ties the key to its certificate by public key, not by localKeyId,
   * but we set the id anyway so other readers pair them too. */
  if ((ret = gnutls_x509_crt_get_key_id (chain[0], 0, key_id_buf, &key_id_size)) < 0)
    {
      gnutls_failure (error, ret, _("Reading the certificate"));
      goto out;
    }
  key_id.data = key_id_buf;
  key_id.size = (unsigned int) key_id_size;

  if ((ret = gnutls_pkcs12_init (&out)) < 0
      || (ret = gnutls_pkcs12_bag_init (&cert_bag)) < 0
      || (ret = gnutls_pkcs12_bag_init (&key_bag)) < 0)
    {
      gnutls_failure (error, ret, _("Preparing the key for import"));
      goto out;
    }

  for (unsigned int i = 0; i < chain_used; i++)
    {
      int idx = gnutls_pkcs12_bag_set_crt (cert_bag, chain[i]);

      if (idx < 0)
        {
          gnutls_failure (error, idx, _("Preparing the key for import"));
          goto out;
        }
      if (i == 0)
        gnutls_pkcs12_bag_set_key_id (cert_bag, idx, &key_id);
    }

  if ((ret = gnutls_pkcs12_bag_encrypt (cert_bag, new_password, GNUTLS_PKCS_PKCS12_3DES)) < 0
      || (ret = gnutls_pkcs12_set_bag (out, cert_bag)) < 0
      || (ret = gnutls_x509_privkey_export2_pkcs8 (key, GNUTLS_X509_FMT_DER, new_password,
                                                  GNUTLS_PKCS_PKCS12_3DES, &key_der)) < 0)
    {
      gnutls_failure (error, ret, _("Preparing the key for import"));
      goto out;
    }

  ret = gnutls_pkcs12_bag_set_data (key_bag, GNUTLS_BAG_PKCS8_ENCRYPTED_KEY, &key_der);
  if (ret >= 0)
    ret = gnutls_pkcs12_bag_set_key_id (key_bag, ret, &key_id);
  if (ret >= 0)
    ret = gnutls_pkcs12_set_bag (out, key_bag);
  if (ret >= 0)
    ret = gnutls_pkcs12_generate_mac2 (out, GNUTLS_MAC_SHA1, new_password);
  if (ret >= 0)
    ret = gnutls_pkcs12_export2 (out, GNUTLS_X509_FMT_DER, &out_der);
  if (ret < 0)
    {
      gnutls_failure (error, ret, _("Preparing the key for import"));
      goto out;
    }

  result = g_bytes_new (out_der.data, out_der.size);

out:
  if (key_der.data != NULL)
    {
      explicit_bzero (key_der.data, key_der.size);
      gnutls_free (key_der.data);
    }
  if (out_der.data != NULL)
    gnutls_free (out_der.data);
  if (key != NULL)
    gnutls_x509_privkey_deinit (key);
  for (unsigned int i = 0; chain != NULL && i < chain_len; i++)
    gnutls_x509_crt_deinit (chain[i]);
  gnutls_free (chain);
  if (cert_bag != NULL)
    gnutls_pkcs12_bag_deinit (cert_bag);
  if (key_bag != NULL)
    gnutls_pkcs12_bag_deinit (key_bag);
  if (in != NULL)
    gnutls_pkcs12_deinit (in);
  if (out != NULL)
    gnutls_pkcs12_deinit (out);
  gnutls_global_deinit ();
  return result;
}
