/* sm-crl.h: certificate revocation lists (RFC 5280 §5) kept in the GnuPG
 * home's crls/ folder and checked by the certstore itself.
 *
 * Why not gpgsm's own CRL checking: it needs dirmngr, which fetches CRLs
 * over the network and, when it cannot, makes every validation fail. With
 * `disable-crl-checks` in gpgsm.conf and this module instead, a CRL that
 * the user or the administrator imported is honoured, and where there is
 * none the listing says plainly that revocation was not checked.
 */
#pragma once

#include <glib.h>

#include "sm-key-info.h"

G_BEGIN_DECLS

/* CRLs bigger than this are refused (a large CA's CRL is a few MiB). */
#define SM_CRL_MAX_SIZE (16 * 1024 * 1024)

/* TRUE if @data is a PEM "X509 CRL" or a DER CertificateList. */
gboolean     sm_crl_sniff (GBytes *data);

/* Verifies @crl_data's signature with the first of @ca_certs (DER
 * certificates) whose subject is the CRL's issuer and stores it in @dir,
 * unless a CRL from the same issuer with a later thisUpdate is already
 * there. Returns the issuer's DN in @issuer_dn (may be NULL). */
gboolean     sm_crl_store_add (const char  *dir,
                               GBytes      *crl_data,
                               GPtrArray   *ca_certs,
                               char       **issuer_dn,
                               GError     **error);

/* Checks one DER certificate against the stored CRL of its issuer.
 * @detail receives a translated one-line explanation. */
SmRevocation sm_crl_check (const char  *dir,
                           GBytes      *cert_der,
                           gint64       now,
                           char       **detail);

G_END_DECLS
