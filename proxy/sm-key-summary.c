/* sm-key-summary.c: the user's keys in a line each, and expiry warnings. */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-certstore.h"
#include "sm-key-summary.h"
#include "sm-passphrase-store.h"
#include "sm-support-report.h"

static char *
describe (const SmKeyInfo *k)
{
  const char *kind = k->protocol == SM_PROTOCOL_OPENPGP ? _("OpenPGP key") : _("S/MIME certificate");
  g_autofree char *who = k->addresses && k->addresses[0] ? g_strjoinv (", ", k->addresses)
                                                          : g_strdup (k->user_id ? k->user_id : "");
  g_autofree char *until = NULL;
  g_autofree char *state = NULL;

  if (k->expires > 0)
    {
      g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local (k->expires);
      g_autofree char *date = g_date_time_format (dt, "%Y-%m-%d");
      until = g_strdup_printf (_("valid until %s"), date);
    }
  else
    until = g_strdup (_("does not expire"));
  if (k->status != SM_KEY_STATUS_VALID)
    state = g_strdup_printf (" — %s%s%s", sm_key_status_to_string (k->status),
                             k->status_detail ? ": " : "", k->status_detail ? k->status_detail : "");
  /* TRANSLATORS: "OpenPGP key for alice@example.org, valid until 2028-11-28" */
  return g_strdup_printf (_("%s for %s, %s%s\n    fingerprint %s"), kind, who, until, state ? state : "",
                          k->fingerprint);
}

GPtrArray *
sm_key_summary_list (gboolean include_certs, GError **error)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (error);
  g_autoptr(GPtrArray) own = NULL;
  GPtrArray *lines;

  if (store == NULL)
    return NULL;
  own = sm_certstore_list_own_keys (store, error);
  if (own == NULL)
    return NULL;
  lines = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < own->len; i++)
    g_ptr_array_add (lines, describe (own->pdata[i]));
  if (include_certs)
    {
      g_autoptr(GPtrArray) certs = sm_certstore_list_certs (store, NULL);
      for (guint i = 0; certs && i < certs->len; i++)
        {
          const SmKeyInfo *k = certs->pdata[i];
          g_autofree char *d = describe (k);
          g_ptr_array_add (lines, g_strdup_printf ("%s%s", k->is_anchor ? _("Trusted authority: ") : _("Correspondent: "), d));
        }
    }
  return lines;
}

gboolean
sm_key_summary_soonest_expiry (int days_ahead, char **warning, char **fingerprint, int *days_left, GError **error)
{
  g_autoptr(SmCertstore) store = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  const SmExpiryWarning *w;
  const SmKeyInfo *k;
  const char *who;

  *warning = NULL;
  if (fingerprint)
    *fingerprint = NULL;
  if (days_left)
    *days_left = 0;
  store = sm_certstore_new (error);
  if (store == NULL)
    return FALSE;
  warnings = sm_certstore_get_expiry_warnings (store, days_ahead, error);
  if (warnings == NULL)
    return FALSE;
  if (warnings->len == 0)
    return TRUE;

  /* Soonest first: one warning at a time is what a user can act on. */
  w = warnings->pdata[0];
  k = w->key;
  who = k->addresses && k->addresses[0] ? k->addresses[0] : (k->user_id ? k->user_id : k->fingerprint);
  if (k->is_anchor && !k->secret)
    *warning = w->days_left <= 0
      ? g_strdup_printf (_("The certificate authority %s has expired: ask your administrator for its new certificate"), who)
      : g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                      "The certificate authority %s expires in %d day: ask your administrator for its new certificate",
                                      "The certificate authority %s expires in %d days: ask your administrator for its new certificate",
                                      w->days_left),
                         who, w->days_left);
  else if (k->protocol == SM_PROTOCOL_OPENPGP)
    *warning = w->days_left <= 0
      ? g_strdup_printf (_("Your OpenPGP key for %s has expired: make a new one under Keys and certificates"), who)
      : g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                      "Your OpenPGP key for %s expires in %d day: make a new one under Keys and certificates",
                                      "Your OpenPGP key for %s expires in %d days: make a new one under Keys and certificates",
                                      w->days_left),
                         who, w->days_left);
  else
    *warning = w->days_left <= 0
      ? g_strdup_printf (_("Your S/MIME certificate for %s has expired: ask your administrator for a new one"), who)
      : g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                      "Your S/MIME certificate for %s expires in %d day: ask your administrator for a new one",
                                      "Your S/MIME certificate for %s expires in %d days: ask your administrator for a new one",
                                      w->days_left),
                         who, w->days_left);
  if (fingerprint)
    *fingerprint = g_strdup (k->fingerprint);
  if (days_left)
    *days_left = w->days_left;
  return TRUE;
}

void
sm_key_summary_cut_passphrases (GString *text)
{
  g_autoptr(SmCertstore) store = sm_certstore_new (NULL);
  g_autoptr(GPtrArray) own = store ? sm_certstore_list_own_keys (store, NULL) : NULL;

  for (guint i = 0; own && i < own->len; i++)
    {
      const SmKeyInfo *k = own->pdata[i];
      g_autoptr(SmSecret) passphrase = k->keygrip ? sm_passphrase_store_lookup (k->keygrip, NULL, NULL) : NULL;

      sm_support_report_cut_secret (text, passphrase);
    }
}
