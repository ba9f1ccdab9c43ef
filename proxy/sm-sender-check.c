/* sm-sender-check.c: binding a submitted message to the account. */
#include "config.h"

#include <glib/gi18n.h>
#include <libetpan/libetpan.h>
#include <string.h>

#include "sm-error.h"
#include "sm-sender-check.h"

void
sm_sender_info_free (SmSenderInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->from);
  g_free (info->subject);
  g_free (info);
}

gboolean
sm_sender_address_allowed (const SmConfig *config, const char *address)
{
  return g_ascii_strcasecmp (address, config->address) == 0 ||
         (config->personal_address != NULL && g_ascii_strcasecmp (address, config->personal_address) == 0);
}

/* Length of the header section, blank line excluded (RFC 5322 §2.1). */
static gsize
header_length (const char *message, gsize len)
{
  for (gsize i = 0; i + 1 < len; i++)
    if (message[i] == '\n' && (message[i + 1] == '\n' || (message[i + 1] == '\r' && i + 2 < len && message[i + 2] == '\n')))
      return i + 1;
  return len;
}

static char *
decode_subject (const char *raw)
{
  size_t index = 0;
  char *decoded = NULL;

  if (mailmime_encoded_phrase_parse ("utf-8", raw, strlen (raw), &index, "utf-8", &decoded) ==
      MAILIMF_NO_ERROR && decoded != NULL)
    {
      char *out = g_utf8_make_valid (decoded, -1);
      free (decoded);
      return out;
    }
  return g_utf8_make_valid (raw, -1);
}

SmSenderInfo *
sm_sender_check (const SmConfig *config, const char *envelope_from, const char *message,
                 gsize len, GError **error)
{
  g_autoptr(SmSenderInfo) info = g_new0 (SmSenderInfo, 1);
  struct mailimf_fields *fields = NULL;
  size_t index = 0;
  gsize hlen = header_length (message, len);
  guint from_count = 0, from_addresses = 0, subject_count = 0;
  clistiter *it;

  if (hlen > SM_SENDER_CHECK_MAX_HEADER)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL, _("The message header is too large"));
      return NULL;
    }
  /* libetpan stops at the first line it cannot parse and reports success
   * for what came before; whatever follows (a second From:, a Subject with
   * the personal tag) would then go unchecked.  The whole header must parse. */
  if (mailimf_fields_parse (message, hlen, &index, &fields) != MAILIMF_NO_ERROR || fields == NULL ||
      index != hlen)
    {
      if (fields != NULL)
        mailimf_fields_free (fields);
      g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                           _("The message header cannot be parsed (RFC 5322)"));
      return NULL;
    }

  for (it = clist_begin (fields->fld_list); it != NULL; it = clist_next (it))
    {
      struct mailimf_field *f = clist_content (it);
      switch (f->fld_type)
        {
        case MAILIMF_FIELD_FROM:
          from_count++;
          for (clistiter *m = clist_begin (f->fld_data.fld_from->frm_mb_list->mb_list); m; m = clist_next (m))
            {
              struct mailimf_mailbox *mb = clist_content (m);
              from_addresses++;
              if (info->from == NULL && mb->mb_addr_spec != NULL)
                info->from = g_ascii_strdown (mb->mb_addr_spec, -1);
            }
          break;
        case MAILIMF_FIELD_SENDER:
          {
            /* A Sender: naming someone else would show "on behalf of" in
             * clients: the accountable sender must be the account. */
            const char *s = f->fld_data.fld_sender->snd_mb->mb_addr_spec;
            if (s == NULL || !sm_sender_address_allowed (config, s))
              {
                g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                             _("The Sender: header names %s; SecureMail only sends as %s"),
                             s ? s : "?", config->address);
                mailimf_fields_free (fields);
                return NULL;
              }
          }
          break;
        case MAILIMF_FIELD_SUBJECT:
          /* RFC 5322 §3.6: at most one.  Clients show different ones, so a
           * second could carry the personal tag past this check. */
          if (++subject_count > 1)
            {
              g_set_error_literal (error, SM_ERROR, SM_ERROR_PROTOCOL,
                                   _("The message has more than one Subject: header"));
              mailimf_fields_free (fields);
              return NULL;
            }
          info->subject = decode_subject (f->fld_data.fld_subject->sbj_value);
          break;
        case MAILIMF_FIELD_OPTIONAL_FIELD:
          {
            /* libetpan keeps a From:/Sender: it cannot parse as an
             * optional field; the provider or the recipient's client might
             * read it differently, so it is refused, not ignored. */
            const char *name = f->fld_data.fld_optional_field->fld_name;
            if (g_ascii_strcasecmp (name, "From") == 0 || g_ascii_strcasecmp (name, "Sender") == 0)
              {
                g_set_error (error, SM_ERROR, SM_ERROR_PROTOCOL,
                             _("The %s: header cannot be parsed; write it as Name <address>"), name);
                mailimf_fields_free (fields);
                return NULL;
              }
          }
          break;
        default:
          break;
        }
    }
  mailimf_fields_free (fields);

  if (from_count == 0)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_POLICY, _("The message has no From: header"));
      return NULL;
    }
  if (from_count > 1 || from_addresses != 1 || info->from == NULL)
    {
      g_set_error_literal (error, SM_ERROR, SM_ERROR_POLICY,
                           _("The message must have exactly one From: address"));
      return NULL;
    }
  if (!sm_sender_address_allowed (config, info->from))
    {
      g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                   _("The From: address %s is not yours; SecureMail sends only as %s"), info->from,
                   config->address);
      return NULL;
    }
  if (g_ascii_strcasecmp (info->from, envelope_from) != 0)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                   _("The From: address %s differs from the envelope sender %s"), info->from,
                   envelope_from);
      return NULL;
    }
  if (info->subject != NULL && config->personal_tag != NULL)
    {
      g_autofree char *subject = g_utf8_casefold (info->subject, -1);
      g_autofree char *tag = g_utf8_casefold (config->personal_tag, -1);
      info->personal = strstr (subject, tag) != NULL;
    }
  if (info->personal && config->personal_enforce &&
      (config->personal_address == NULL || g_ascii_strcasecmp (info->from, config->personal_address) != 0))
    {
      if (config->personal_address == NULL)
        g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                     _("Mail marked %s must come from your personal address, and none is set up; "
                       "remove the tag or ask your administrator"),
                     config->personal_tag);
      else
        g_set_error (error, SM_ERROR, SM_ERROR_POLICY,
                     _("Mail marked %s must be sent from your personal address %s"),
                     config->personal_tag, config->personal_address);
      return NULL;
    }
  return g_steal_pointer (&info);
}
