/* sm-key-gate.h: the key half of the unlock gate (issue 7).
 *
 * Closing the gate makes gpg-agent forget every passphrase preset for the
 * user's GnuPG home; opening it presets them again, from the login keyring
 * (as at start) or from a passphrase the user typed.  The server keeps the
 * gate's state (sm_server_lock()/sm_server_unlock()); these calls only touch
 * gpg-agent and the keyring.  They block (they run gpgconf, gpg and
 * gpg-preset-passphrase): a few tens of milliseconds.
 *
 * Kept apart from sm-server.c because certstore's headers and sm-config.h
 * define the same protocol enum value names.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The bytes a trial signature covers when checking a typed passphrase. */
#define SM_KEY_GATE_PROBE "SecureMail unlock check"

/* gpg-agent of the user's store forgets every cached passphrase (gpgconf
 * --reload, which flushes the cache).  TRUE when there is no store yet. */
gboolean sm_key_gate_forget (GError **error);

/* Presets the passphrases of the user's secret keys into gpg-agent: those
 * the keyring holds, and with @passphrase (may be NULL) the typed one for
 * every key the keyring holds none for.  A typed passphrase is checked with
 * a trial signature by each such key; a wrong one fails with SM_ERROR_AUTH
 * and is forgotten again.  @n_keys (may be NULL) receives the number of keys
 * unlocked.  Keyring trouble fails with SM_ERROR_KEYRING. */
gboolean sm_key_gate_remember (const char *passphrase, guint *n_keys, GError **error);

G_END_DECLS
