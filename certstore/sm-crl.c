/* sm-crl.c: CRL storage and revocation checks with GnuTLS. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "sm-certstore-error.h"
#include "sm-crl.h"

gboolean
sm_crl_sniff (GBytes *data)
{
  gsize len;
  const char *p = g_bytes_get_data (data, &len);
  gnutls_x509_crl_t crl;
  gnutls_datum_t d;
  gboolean ok;

  if (len == 0)
    return FALSE;
  if (g_strstr_len (p, MIN (len, 4096), "-----BEGIN X509 CRL-----") != NULL)
    return TRUE;
  if ((guint8) p[0] != 0x30 || len > SM_CRL_MAX_SIZE)
    return FALSE;
  if (gnutls_x509_crl_init (&crl) < 0)
    return FALSE;
  d.data = (unsigned char *) p;
  d.size = (unsigned int) len;
  ok = gnutls_x509_crl_import (crl, &d, GNUTLS_X509_FMT_DER) >= 0;
  gnutls_x509_crl_deinit (crl);
  return ok;
}

static gboolean
crl_load (GBytes            *data,
          gnutls_x509_crl_t *out,
          GError           **error)
{
  gnutls_x509_crl_t crl;
  gnutls_datum_t d;
  gsize len;
  int ret;

  d.data = (unsigned char *) g_bytes_get_data (data, &len);
  d.size = (unsigned int) len;
  if (len == 0 || len > SM_CRL_MAX_SIZE)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
                   _("The CRL file is empty or larger than %d MiB"), SM_CRL_MAX_SIZE / (1024 * 1024));
      return FALSE;
    }
  if ((ret = gnutls_x509_crl_init (&crl)) < 0)
    goto fail;
  if ((ret = gnutls_x509_crl_import (crl, &d, GNUTLS_X509_FMT_DER)) < 0
      && (ret = gnutls_x509_crl_import (crl, &d, GNUTLS_X509_FMT_PEM)) < 0)
    {
      gnutls_x509_crl_deinit (crl);
      goto fail;
    }
  *out = crl;
  return TRUE;

fail:
  g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_BAD_DATA,
               _("The file is not a readable certificate revocation list (%s)"), gnutls_strerror (ret));
  return FALSE;
}

/* File name for the CRL of an issuer: a hash of its raw DER name, so that
 * differently printed but identical names map to the same file. */
static char *
crl_path_for_issuer (const char           *dir,
                     const gnutls_datum_t *raw_dn)
{
  g_autofree char *hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, raw_dn->data, raw_dn->size);
  g_autofree char *name = g_strconcat (hex, ".crl", NULL);

  return g_build_filename (dir, name, NULL);
}

gboolean
sm_crl_store_add (const char  *dir,
                  GBytes      *crl_data,
                  GPtrArray   *ca_certs,
                  char       **issuer_dn,
                  GError     **error)
{
  gnutls_x509_crl_t crl = NULL, old = NULL;
  gnutls_x509_crt_t issuer = NULL;
  gnutls_datum_t raw_dn = { NULL, 0 }, printable = { NULL, 0 }, der = { NULL, 0 };
  g_autofree char *path = NULL;
  g_autofree char *old_contents = NULL;
  gsize old_len;
  gboolean ok = FALSE;
  unsigned int verify = 0;
  int ret;

  g_return_val_if_fail (dir != NULL && crl_data != NULL && ca_certs != NULL, FALSE);

  gnutls_global_init ();
  if (!crl_load (crl_data, &crl, error))
    goto out;

  gnutls_x509_crl_get_raw_issuer_dn (crl, &raw_dn);
  gnutls_x509_crl_get_issuer_dn3 (crl, &printable, 0);

  for (guint i = 0; i < ca_certs->len && issuer == NULL; i++)
    {
      gnutls_x509_crt_t crt;
      gnutls_datum_t d, subject = { NULL, 0 };
      gsize len;

      d.data = (unsigned char *) g_bytes_get_data (ca_certs->pdata[i], &len);
      d.size = (unsigned int) len;
      if (gnutls_x509_crt_init (&crt) < 0)
        continue;
      if (gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_DER) >= 0
          && gnutls_x509_crt_get_raw_dn (crt, &subject) >= 0
          && subject.size == raw_dn.size && memcmp (subject.data, raw_dn.data, raw_dn.size) == 0)
        issuer = crt;
      else
        gnutls_x509_crt_deinit (crt);
      gnutls_free (subject.data);
    }

  if (issuer == NULL)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_CRL,
                   _("The CRL was issued by “%s”, whose CA certificate is not in the key store; import or trust that CA certificate first"),
                   printable.data ? (const char *) printable.data : "?");
      goto out;
    }

  ret = gnutls_x509_crl_verify (crl, &issuer, 1, 0, &verify);
  if (ret < 0 || verify != 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_CRL,
                   _("The CRL's signature does not verify with the certificate of “%s”; it was altered or comes from another CA"),
                   printable.data ? (const char *) printable.data : "?");
      goto out;
    }

  if (g_mkdir_with_parents (dir, 0700) < 0)
    {
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_IO,
                   _("Could not create %s: %s"), dir, g_strerror (errno));
      goto out;
    }

  /* Never replace a newer CRL by an older one: that would un-revoke. */
  path = crl_path_for_issuer (dir, &raw_dn);
  if (g_file_get_contents (path, &old_contents, &old_len, NULL))
    {
      g_autoptr(GBytes) old_bytes = g_bytes_new_take (g_steal_pointer (&old_contents), old_len);

      if (crl_load (old_bytes, &old, NULL)
          && gnutls_x509_crl_get_this_update (old) > gnutls_x509_crl_get_this_update (crl))
        {
          g_debug ("Keeping the newer stored CRL of %s", printable.data);
          ok = TRUE;
          goto out;
        }
    }

  if ((ret = gnutls_x509_crl_export2 (crl, GNUTLS_X509_FMT_DER, &der)) < 0
      || !g_file_set_contents_full (path, (const char *) der.data, der.size,
                                    G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    {
      if (ret < 0)
        g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_IO,
                     _("Could not store the CRL (%s)"), gnutls_strerror (ret));
      goto out;
    }
  ok = TRUE;

out:
  if (ok && issuer_dn != NULL)
    *issuer_dn = g_strdup (printable.data ? (const char *) printable.data : "");
  gnutls_free (raw_dn.data);
  gnutls_free (printable.data);
  gnutls_free (der.data);
  if (issuer != NULL)
    gnutls_x509_crt_deinit (issuer);
  if (crl != NULL)
    gnutls_x509_crl_deinit (crl);
  if (old != NULL)
    gnutls_x509_crl_deinit (old);
  gnutls_global_deinit ();
  return ok;
}

SmRevocation
sm_crl_check (const char  *dir,
              GBytes      *cert_der,
              gint64       now,
              char       **detail)
{
  gnutls_x509_crt_t crt = NULL;
  gnutls_x509_crl_t crl = NULL;
  gnutls_datum_t d, raw_dn = { NULL, 0 }, printable = { NULL, 0 };
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  gsize len;
  SmRevocation result = SM_REVOCATION_NOT_CHECKED;
  g_autofree char *text = NULL;

  g_return_val_if_fail (dir != NULL && cert_der != NULL, SM_REVOCATION_NOT_CHECKED);

  gnutls_global_init ();
  d.data = (unsigned char *) g_bytes_get_data (cert_der, &len);
  d.size = (unsigned int) len;
  if (gnutls_x509_crt_init (&crt) < 0 || gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_DER) < 0)
    {
      text = g_strdup (_("revocation not checked: the certificate could not be read"));
      goto out;
    }
  gnutls_x509_crt_get_raw_issuer_dn (crt, &raw_dn);
  gnutls_x509_crt_get_issuer_dn3 (crt, &printable, 0);
  path = crl_path_for_issuer (dir, &raw_dn);

  if (!g_file_get_contents (path, &contents, &len, NULL))
    {
      text = g_strdup_printf (_("revocation not checked: no CRL from “%s” has been imported"),
                              printable.data ? (const char *) printable.data : "?");
      goto out;
    }
  else
    {
      g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&contents), len);

      if (!crl_load (bytes, &crl, NULL))
        {
          text = g_strdup (_("revocation not checked: the stored CRL is unreadable; import it again"));
          goto out;
        }
    }

  if (gnutls_x509_crt_check_revocation (crt, &crl, 1) == 1)
    {
      result = SM_REVOCATION_REVOKED;
      text = g_strdup_printf (_("revoked (listed on the CRL of “%s”)"),
                              printable.data ? (const char *) printable.data : "?");
    }
  else
    {
      time_t next = gnutls_x509_crl_get_next_update (crl);

      if (next != (time_t) -1 && next < now)
        {
          g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (next);
          g_autofree char *when = g_date_time_format (dt, "%Y-%m-%d");

          result = SM_REVOCATION_GOOD_STALE;
          text = g_strdup_printf (_("not revoked according to a CRL that expired on %s; import a current CRL"), when);
        }
      else
        {
          result = SM_REVOCATION_GOOD;
          text = g_strdup (_("not revoked (CRL checked)"));
        }
    }

out:
  if (detail != NULL)
    *detail = g_steal_pointer (&text);
  gnutls_free (raw_dn.data);
  gnutls_free (printable.data);
  if (crt != NULL)
    gnutls_x509_crt_deinit (crt);
  if (crl != NULL)
    gnutls_x509_crl_deinit (crl);
  gnutls_global_deinit ();
  return result;
}
