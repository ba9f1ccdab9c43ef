/* sm-gui-receipt.h: one entry of the daemon's ListReceipts (a sent message's
 * receipt from one recipient), as the main window's Receipts page and the
 * tray's notifications read it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Strings borrowed from the entry they were read from; "" when absent. */
typedef struct {
  const char *message_id;
  const char *recipient;
  const char *status;      /* requested, delivered-verified, failed, overdue */
  const char *signer;      /* who signed the receipt, or "" */
  const char *reason;      /* why it failed, or "" */
  gint64 sent;             /* unix seconds */
  gint64 changed;          /* unix seconds */
} SmGuiReceipt;

/* Reads @entry (a{sv}) into @receipt; it stays valid while @entry lives. */
void sm_gui_receipt_read (GVariant *entry, SmGuiReceipt *receipt);

/* TRUE for the statuses that end the wait (delivered-verified, failed):
 * the ones worth a notification. */
gboolean sm_gui_receipt_is_final (const SmGuiReceipt *receipt);

G_END_DECLS
