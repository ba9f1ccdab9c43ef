/* sm-gui-receipt.c: a ListReceipts entry. */
#include "config.h"

#include "sm-gui-receipt.h"

void
sm_gui_receipt_read (GVariant *entry, SmGuiReceipt *receipt)
{
  *receipt = (SmGuiReceipt) { "", "", "", "", "", 0, 0 };
  g_variant_lookup (entry, "message_id", "&s", &receipt->message_id);
  g_variant_lookup (entry, "recipient", "&s", &receipt->recipient);
  g_variant_lookup (entry, "status", "&s", &receipt->status);
  g_variant_lookup (entry, "signer", "&s", &receipt->signer);
  g_variant_lookup (entry, "reason", "&s", &receipt->reason);
  g_variant_lookup (entry, "sent", "x", &receipt->sent);
  g_variant_lookup (entry, "changed", "x", &receipt->changed);
}

gboolean
sm_gui_receipt_is_final (const SmGuiReceipt *receipt)
{
  return g_strcmp0 (receipt->status, "delivered-verified") == 0 || g_strcmp0 (receipt->status, "failed") == 0;
}
