/* sm-pin-interaction.h: answers a TLS client certificate's PIN request with
 * the PIN typed at unlock or the one in the keyring (issue 7).
 *
 * When the private key of [upstream] client_certificate lives on a PKCS#11
 * token, the TLS library asks for the token's PIN during the handshake
 * through a GTlsInteraction.  This one takes the PIN the user typed at
 * `securemail unlock --pin` (held in memory until the next lock), else the
 * one stored with `securemail account set-pin` (SM_KEYRING_CLIENT_CERT_PIN);
 * nobody is prompted, since the proxy runs without a terminal.  It answers once per
 * handshake and never again after a refusal: a token locks itself after a
 * few wrong PINs, and a wrong PIN in the keyring would spend them all.
 * Nothing of the PIN is logged.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_TYPE_PIN_INTERACTION (sm_pin_interaction_get_type ())
G_DECLARE_FINAL_TYPE (SmPinInteraction, sm_pin_interaction, SM, PIN_INTERACTION, GTlsInteraction)

/* A new interaction for the PIN stored for @account (transfer full).  The
 * keyring is read here, blocking the caller (a worker thread): GIO runs the
 * PIN request itself in the main context that was the thread default at
 * creation (g_tls_interaction_invoke_ask_password()), which in the daemon
 * is the main loop's, and glib-networking's handshake waits for it from
 * another thread; the request must therefore not block, nor depend on a
 * context the handshaking thread holds.  A missing PIN is reported only if
 * the token asks for one. */
SmPinInteraction *sm_pin_interaction_new (const char *account);

/* Why the last PIN request was not answered (no PIN stored, keyring locked,
 * the PIN was refused, the token is about to lock), fit to show a user; or
 * NULL when every request was answered.  Owned by @self. */
const GError *sm_pin_interaction_get_error (SmPinInteraction *self);

/* Holds @pin (copied, wiped when replaced) for every handshake until it is
 * replaced; NULL or "" forgets it.  The server forgets it on every lock, and
 * a PIN the token refuses is forgotten at once. */
void sm_pin_interaction_set_session_pin (const char *pin);

/* Whether a PIN typed now would be used (D-Bus TokenPinNeeded, the tray's
 * "Type your smartcard PIN" item): TRUE when the token asked for a PIN that
 * SecureMail did not have or refused the one it had, and when an unlock
 * found a token certificate with neither a typed nor a stored PIN.  FALSE
 * again when a PIN is typed, and on every lock.  Any thread. */
gboolean sm_pin_interaction_get_pin_wanted (void);

/* At unlock: with a pkcs11: @client_certificate and no PIN typed, reads the
 * keyring (blocking) for the PIN stored for @account and records whether
 * one is wanted; for anything else none is. */
void sm_pin_interaction_note_unlocked (const char *client_certificate, const char *account);

/* TRUE once the interaction gave the token a PIN. */
gboolean sm_pin_interaction_was_asked (SmPinInteraction *self);

G_END_DECLS
