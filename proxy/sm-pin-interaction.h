/* sm-pin-interaction.h: answers a TLS client certificate's PIN request from
 * the keyring (issue 7).
 *
 * When the private key of [upstream] client_certificate lives on a PKCS#11
 * token, the TLS library asks for the token's PIN during the handshake
 * through a GTlsInteraction.  This one takes the PIN the user stored with
 * `securemail account set-pin` (SM_KEYRING_CLIENT_CERT_PIN); nobody is
 * prompted, since the proxy runs without a terminal.  It answers once per
 * handshake and never again after a refusal: a token locks itself after a
 * few wrong PINs, and a wrong PIN in the keyring would spend them all.
 * Nothing of the PIN is logged.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SM_TYPE_PIN_INTERACTION (sm_pin_interaction_get_type ())
G_DECLARE_FINAL_TYPE (SmPinInteraction, sm_pin_interaction, SM, PIN_INTERACTION, GTlsInteraction)

/* A new interaction for the PIN stored for @account (transfer full).
 * GTlsInteraction runs its callbacks in the thread-default main context of
 * the thread that creates it: create it in the thread that performs the
 * handshake, under a context that thread owns (sm_tls_client_handshake()
 * does), so the keyring lookup blocks that thread and not the main loop. */
SmPinInteraction *sm_pin_interaction_new (const char *account);

/* Why the last PIN request was not answered (no PIN stored, keyring locked,
 * the PIN was refused, the token is about to lock), fit to show a user; or
 * NULL when every request was answered.  Owned by @self. */
const GError *sm_pin_interaction_get_error (SmPinInteraction *self);

/* TRUE once the interaction gave the token a PIN. */
gboolean sm_pin_interaction_was_asked (SmPinInteraction *self);

G_END_DECLS
