/* sm-sender-check.h: binding a submitted message to the account.
 *
 * SPEC.md: the FROM: address is authenticated and bound to an accountable
 * sender.  A message the local client submits must have exactly one From:
 * header with exactly one address, that address must be the account's (or
 * its personal address), the envelope sender must match it, and a Subject
 * carrying the [PERSONAL] tag must come from the personal address when the
 * policy enforces it.  Headers are parsed with libetpan (RFC 5322).
 */
#pragma once

#include <glib.h>

#include "sm-config.h"

G_BEGIN_DECLS

#define SM_SENDER_CHECK_MAX_HEADER (1024 * 1024)  /* header section we parse */

typedef struct {
  char *from;           /* the From: address, lower-cased */
  char *subject;        /* decoded to UTF-8, or NULL */
  gboolean personal;    /* the Subject carries the personal tag */
} SmSenderInfo;

void sm_sender_info_free (SmSenderInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmSenderInfo, sm_sender_info_free)

/* Checks @message (CRLF lines) against @config for @envelope_from.  Fails
 * with SM_ERROR_POLICY (a 550 5.7.1 with the message as text) or
 * SM_ERROR_PROTOCOL (unparseable headers: 554 5.6.0). */
SmSenderInfo *sm_sender_check (const SmConfig *config, const char *envelope_from,
                               const char *message, gsize len, GError **error);

/* TRUE when @address is one the account may send as. */
gboolean sm_sender_address_allowed (const SmConfig *config, const char *address);

G_END_DECLS
