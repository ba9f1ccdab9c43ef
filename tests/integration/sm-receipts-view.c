/* sm-receipts-view: what the IMAP session does for each secure view, for
 * test-receipts while that wiring is not merged: builds the SmSecureView of
 * a message file with the user's own certstore, then calls
 * sm_receipts_on_view() with the user's state.db and spool, exactly as the
 * proxy would (SECUREMAIL_CONFIG, XDG_DATA_HOME select the user).  The
 * proxy must not run meanwhile: its relay worker owns the spool.
 *
 *   sm-receipts-view MESSAGE-FILE
 * prints one line "trust=... requested=0|1 queued=N" (N = spool entries
 * afterwards); exit 0, or 1 with the error on stderr.
 */
#include "config.h"

#include <stdio.h>

/* sm-config.h and certstore's sm-key-info.h share enum value names; see
 * proxy/sm-outgoing.c. */
#define SM_PROTOCOL_SMIME SM_CONFIG_PROTOCOL_SMIME
#define SM_PROTOCOL_OPENPGP SM_CONFIG_PROTOCOL_OPENPGP
#include "sm-config.h"
#include "sm-receipts.h"
#undef SM_PROTOCOL_SMIME
#undef SM_PROTOCOL_OPENPGP
#include "sm-certstore.h"
#include "sm-gnupg-tool.h"
#include "sm-secure-view.h"
#include "sm-spool.h"

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  g_autoptr(SmCertstore) store = NULL;
  g_autoptr(SmReceipts) receipts = NULL;
  g_autoptr(SmSpool) spool = NULL;
  g_autoptr(SmSecureView) view = NULL;
  g_autoptr(GBytes) raw = NULL;
  g_autofree char *data = NULL;
  g_autofree char *db = sm_receipts_default_path ();
  g_autofree char *data_dir = sm_config_data_dir ();
  g_autofree char *spool_dir = g_build_filename (data_dir, "spool", NULL);
  gsize len = 0;

  sm_gnupg_init ();   /* before any thread: see certstore/sm-gnupg-tool.c */

  if (argc != 2)
    {
      g_printerr ("usage: %s MESSAGE-FILE\n", argv[0]);
      return 2;
    }
  if (!g_file_get_contents (argv[1], &data, &len, &error) ||
      (config = sm_config_load (NULL, &error)) == NULL ||
      (store = sm_certstore_new (&error)) == NULL ||
      !sm_certstore_unlock (store, NULL, NULL, &error) ||
      (receipts = sm_receipts_new (db, store, &error)) == NULL ||
      (spool = sm_spool_new (spool_dir, &error)) == NULL)
    goto fail;
  raw = g_bytes_new_take (g_steal_pointer (&data), len);
  view = sm_secure_view_build (store, config->address, raw, SM_SECURE_VIEW_FLAGS_NONE, &error);
  if (view == NULL || !sm_receipts_on_view (receipts, config, spool, view, raw, &error))
    goto fail;
  printf ("trust=%s requested=%d queued=%u\n", sm_trust_header_value (view->trust), view->receipt_requested ? 1 : 0,
          sm_spool_get_size (spool));
  return 0;

fail:
  g_printerr ("sm-receipts-view: %s\n", error->message);
  return 1;
}
