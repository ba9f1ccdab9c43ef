/* sm-key-info.c: snapshots of GPGME keys. */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "sm-key-info.h"

G_DEFINE_BOXED_TYPE (SmKeyInfo, sm_key_info, sm_key_info_copy, sm_key_info_free)

const char *
sm_protocol_to_string (SmProtocol protocol)
{
  return protocol == SM_PROTOCOL_SMIME ? "smime" : "openpgp";
}

gboolean
sm_protocol_from_string (const char *str,
                         SmProtocol *protocol)
{
  g_return_val_if_fail (protocol != NULL, FALSE);

  if (str == NULL)
    return FALSE;
  if (g_ascii_strcasecmp (str, "smime") == 0 || g_ascii_strcasecmp (str, "s/mime") == 0
      || g_ascii_strcasecmp (str, "cms") == 0)
    *protocol = SM_PROTOCOL_SMIME;
  else if (g_ascii_strcasecmp (str, "openpgp") == 0 || g_ascii_strcasecmp (str, "pgp") == 0)
    *protocol = SM_PROTOCOL_OPENPGP;
  else
    return FALSE;
  return TRUE;
}

gpgme_protocol_t
sm_protocol_to_gpgme (SmProtocol protocol)
{
  return protocol == SM_PROTOCOL_SMIME ? GPGME_PROTOCOL_CMS : GPGME_PROTOCOL_OpenPGP;
}

const char *
sm_key_status_to_string (SmKeyStatus status)
{
  switch (status)
    {
    case SM_KEY_STATUS_VALID: return "valid";
    case SM_KEY_STATUS_UNTRUSTED: return "untrusted";
    case SM_KEY_STATUS_EXPIRED: return "expired";
    case SM_KEY_STATUS_REVOKED: return "revoked";
    case SM_KEY_STATUS_INVALID: return "invalid";
    default: g_assert_not_reached ();
    }
}

const char *
sm_revocation_to_string (SmRevocation revocation)
{
  switch (revocation)
    {
    case SM_REVOCATION_NOT_CHECKED: return "not-checked";
    case SM_REVOCATION_GOOD: return "good";
    case SM_REVOCATION_GOOD_STALE: return "good-stale-crl";
    case SM_REVOCATION_REVOKED: return "revoked";
    default: g_assert_not_reached ();
    }
}

static void
add_address (GPtrArray  *addresses,
             const char *address)
{
  g_autofree char *lower = NULL;

  if (address == NULL || *address == '\0' || strchr (address, '@') == NULL)
    return;
  lower = g_ascii_strdown (address, -1);
  for (guint i = 0; i < addresses->len; i++)
    if (g_str_equal (addresses->pdata[i], lower))
      return;
  g_ptr_array_add (addresses, g_steal_pointer (&lower));
}

/* gpgsm reports e-mail addresses as extra user ids "<addr>" and may also
 * have one in the subject's emailAddress RDN (uid->email is set for both). */
static void
collect_addresses (gpgme_key_t key,
                   GPtrArray  *addresses)
{
  for (gpgme_user_id_t uid = key->uids; uid != NULL; uid = uid->next)
    {
      /* gpgsm marks every uid of a certificate with an untrusted chain
       * invalid; the address is still the certificate's. For OpenPGP an
       * invalid uid has no valid self-signature: not the key's address. */
      if (uid->revoked || (uid->invalid && key->protocol == GPGME_PROTOCOL_OpenPGP))
        continue;
      if (uid->address != NULL)
        add_address (addresses, uid->address);
      else if (uid->email != NULL)
        {
          g_autofree char *trimmed = g_strdup (uid->email);
          char *start = trimmed;
          gsize len;

          /* "<alice@example.test>" -> "alice@example.test" */
          if (*start == '<')
            start++;
          len = strlen (start);
          if (len > 0 && start[len - 1] == '>')
            start[len - 1] = '\0';
          add_address (addresses, start);
        }
    }
}

/* gpgsm prints RDNs it has no name for as "OID=#HEX"; the one everybody
 * has, emailAddress (PKCS#9, 1.2.840.113549.1.9.1), reads better as
 * "EMail=alice@example.test". Other RDNs are left as they are. */
static char *
pretty_dn (const char *dn)
{
  static const char oid[] = "1.2.840.113549.1.9.1=#";
  GString *out;
  const char *p;

  if (dn == NULL)
    return NULL;
  out = g_string_new (NULL);
  p = dn;
  for (;;)
    {
      const char *hit = strstr (p, oid);
      const char *hex;
      GString *value;

      if (hit == NULL)
        break;
      g_string_append_len (out, p, hit - p);
      hex = hit + strlen (oid);
      value = g_string_new (NULL);
      while (g_ascii_isxdigit (hex[0]) && g_ascii_isxdigit (hex[1]))
        {
          char c = (char) (g_ascii_xdigit_value (hex[0]) * 16 + g_ascii_xdigit_value (hex[1]));

          /* Printable ASCII only: anything else stays in hex form. */
          if (c < 0x20 || c > 0x7e || c == ',')
            break;
          g_string_append_c (value, c);
          hex += 2;
        }
      if (*hex == '\0' || *hex == ',')
        {
          g_string_append_printf (out, "EMail=%s", value->str);
          p = hex;
        }
      else
        {
          g_string_append (out, oid);
          p = hit + strlen (oid);
        }
      g_string_free (value, TRUE);
    }
  g_string_append (out, p);
  return g_string_free (out, FALSE);
}

SmKeyInfo *
sm_key_info_new_from_gpgme (gpgme_key_t key,
                            gint64      now)
{
  g_autoptr(GPtrArray) addresses = g_ptr_array_new_with_free_func (g_free);
  SmKeyInfo *info;
  gpgme_subkey_t primary;
  gint64 enc_expires = -1;  /* latest expiry among usable encryption subkeys; 0 = never */

  g_return_val_if_fail (key != NULL && key->subkeys != NULL, NULL);

  primary = key->subkeys;
  info = g_new0 (SmKeyInfo, 1);
  info->protocol = key->protocol == GPGME_PROTOCOL_CMS ? SM_PROTOCOL_SMIME : SM_PROTOCOL_OPENPGP;
  info->fingerprint = g_strdup (primary->fpr);
  info->keygrip = g_strdup (primary->keygrip);
  info->user_id = key->protocol == GPGME_PROTOCOL_CMS
                  ? pretty_dn (key->uids ? key->uids->uid : NULL)
                  : g_strdup (key->uids ? key->uids->uid : NULL);
  info->secret = key->secret;
  info->can_sign = key->can_sign;
  info->can_encrypt = key->can_encrypt;
  info->can_certify = key->can_certify;
  info->created = primary->timestamp > 0 ? primary->timestamp : 0;
  info->expires = primary->expires > 0 ? primary->expires : 0;
  info->revocation = SM_REVOCATION_NOT_CHECKED;

  if (key->protocol == GPGME_PROTOCOL_CMS)
    {
      info->issuer = pretty_dn (key->issuer_name);
      info->serial = g_strdup (key->issuer_serial);
      info->chain_id = g_strdup (key->chain_id);
    }
  else
    {
      /* A key is only as useful as its encryption subkey: warn when that one
       * runs out even if the primary lives longer. */
      for (gpgme_subkey_t sub = primary->next; sub != NULL; sub = sub->next)
        {
          if (!sub->can_encrypt || sub->revoked || sub->disabled || sub->invalid)
            continue;
          if (sub->expires <= 0)
            enc_expires = 0;
          else if (enc_expires != 0 && sub->expires > enc_expires)
            enc_expires = sub->expires;
        }
      if (enc_expires > 0 && (info->expires == 0 || enc_expires < info->expires))
        info->expires = enc_expires;
    }

  collect_addresses (key, addresses);
  g_ptr_array_add (addresses, NULL);
  info->addresses = (GStrv) g_ptr_array_free (g_steal_pointer (&addresses), FALSE);

  if (key->revoked)
    {
      info->status = SM_KEY_STATUS_REVOKED;
      info->status_detail = g_strdup (_("revoked by its owner or issuer"));
    }
  else if (key->expired || (info->expires != 0 && info->expires <= now))
    {
      info->status = SM_KEY_STATUS_EXPIRED;
      info->status_detail = g_strdup (_("expired"));
    }
  else if (key->protocol == GPGME_PROTOCOL_CMS && key->invalid)
    {
      /* With GPGME_KEYLIST_MODE_VALIDATE gpgsm flags a certificate invalid
       * when its chain does not end at an anchor in trustlist.txt. */
      info->status = SM_KEY_STATUS_UNTRUSTED;
      info->status_detail = g_strdup (_("no trusted chain to a trust anchor"));
    }
  else if (key->invalid || key->disabled)
    {
      info->status = SM_KEY_STATUS_INVALID;
      info->status_detail = g_strdup (key->disabled ? _("disabled") : _("invalid"));
    }
  else
    info->status = SM_KEY_STATUS_VALID;

  return info;
}

SmKeyInfo *
sm_key_info_copy (const SmKeyInfo *info)
{
  SmKeyInfo *copy;

  g_return_val_if_fail (info != NULL, NULL);

  copy = g_memdup2 (info, sizeof *info);
  copy->fingerprint = g_strdup (info->fingerprint);
  copy->keygrip = g_strdup (info->keygrip);
  copy->user_id = g_strdup (info->user_id);
  copy->issuer = g_strdup (info->issuer);
  copy->serial = g_strdup (info->serial);
  copy->chain_id = g_strdup (info->chain_id);
  copy->addresses = g_strdupv (info->addresses);
  copy->status_detail = g_strdup (info->status_detail);
  return copy;
}

void
sm_key_info_free (SmKeyInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->fingerprint);
  g_free (info->keygrip);
  g_free (info->user_id);
  g_free (info->issuer);
  g_free (info->serial);
  g_free (info->chain_id);
  g_strfreev (info->addresses);
  g_free (info->status_detail);
  g_free (info);
}

gboolean
sm_key_info_has_address (const SmKeyInfo *info,
                         const char      *address)
{
  g_return_val_if_fail (info != NULL, FALSE);
  g_return_val_if_fail (address != NULL, FALSE);

  for (guint i = 0; info->addresses[i] != NULL; i++)
    if (g_ascii_strcasecmp (info->addresses[i], address) == 0)
      return TRUE;
  return FALSE;
}

int
sm_key_info_days_left (const SmKeyInfo *info,
                       gint64           now)
{
  gint64 seconds;

  g_return_val_if_fail (info != NULL, 0);

  if (info->expires == 0)
    return G_MAXINT;
  seconds = info->expires - now;
  /* Round towards "less time left": a key expiring in 23 hours has 0 days. */
  if (seconds >= 0)
    return (int) (seconds / 86400);
  return (int) -((-seconds + 86399) / 86400);
}
