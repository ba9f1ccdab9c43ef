/* sm-pin-interaction.c: the client certificate's PIN, typed at unlock or from the keyring. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-passphrase-store.h"
#include "sm-pin-interaction.h"

/* The PIN typed at unlock (sm_pin_interaction_set_session_pin()), shared by
 * every handshake until the next lock.  Wiped when replaced. */
static GMutex session_lock;
static SmSecret *session_pin;
static gboolean pin_wanted;   /* see sm_pin_interaction_get_pin_wanted() */
/* Counts sm_pin_interaction_set_session_pin() calls: a handshake that began
 * before the user typed a PIN must neither forget that PIN nor ask for one
 * again when it fails with the old one. */
static guint session_generation;

/* Sets pin_wanted, unless a PIN was typed since @generation. */
static void
set_pin_wanted_since (guint generation, gboolean wanted)
{
  g_mutex_lock (&session_lock);
  if (generation == session_generation)
    pin_wanted = wanted;
  g_mutex_unlock (&session_lock);
}

void
sm_pin_interaction_set_session_pin (const char *pin)
{
  g_mutex_lock (&session_lock);
  g_clear_pointer (&session_pin, sm_secret_free);
  if (pin != NULL && *pin != '\0')
    session_pin = sm_secret_dup (pin);
  /* Typed: nothing more to ask for until the token says otherwise.
   * Forgotten (a lock): the next unlock decides again. */
  pin_wanted = FALSE;
  session_generation++;
  g_mutex_unlock (&session_lock);
}

/* Forgets the session PIN the token refused, unless another was typed
 * since @generation. */
static void
forget_refused_session_pin (guint generation)
{
  g_mutex_lock (&session_lock);
  if (generation == session_generation)
    g_clear_pointer (&session_pin, sm_secret_free);
  g_mutex_unlock (&session_lock);
}

gboolean
sm_pin_interaction_get_pin_wanted (void)
{
  gboolean wanted;

  g_mutex_lock (&session_lock);
  wanted = pin_wanted;
  g_mutex_unlock (&session_lock);
  return wanted;
}

void
sm_pin_interaction_note_unlocked (const char *client_certificate, const char *account)
{
  g_autoptr(GError) error = NULL;
  char *stored;
  gboolean typed;
  guint generation;

  g_mutex_lock (&session_lock);
  typed = session_pin != NULL;
  generation = session_generation;
  g_mutex_unlock (&session_lock);
  if (typed || client_certificate == NULL || !g_str_has_prefix (client_certificate, "pkcs11:") || account == NULL)
    {
      set_pin_wanted_since (generation, FALSE);
      return;
    }
  /* A locked or absent keyring counts as no PIN: typing one helps then too.
   * A PIN typed during the lookup wins (the generation moved on). */
  stored = sm_keyring_lookup (SM_KEYRING_CLIENT_CERT_PIN, account, &error);
  set_pin_wanted_since (generation, stored == NULL);
  sm_keyring_free (stored);
}

struct _SmPinInteraction {
  GTlsInteraction parent_instance;
  char *pin;            /* non-pageable, from sm_keyring_lookup(); NULL when none */
  SmSecret *typed;      /* a copy of the session PIN, preferred; NULL when none */
  GError *lookup_error; /* why there is no PIN */
  GError *error;        /* why the last request failed, or NULL */
  gboolean answered;    /* a PIN was given in this handshake */
  guint generation;     /* session_generation when this interaction was made */
};

G_DEFINE_FINAL_TYPE (SmPinInteraction, sm_pin_interaction, G_TYPE_TLS_INTERACTION)

/* @wanted: whether a PIN typed by the user would help (not when the token
 * has one try left: then only its own tool should spend it). */
static GTlsInteractionResult
fail (SmPinInteraction *self, GError **error, GError *why, gboolean wanted)
{
  set_pin_wanted_since (self->generation, wanted);
  g_clear_error (&self->error);
  self->error = why;
  g_set_error_literal (error, SM_ERROR, why->code, why->message);
  return G_TLS_INTERACTION_FAILED;
}

static GTlsInteractionResult
sm_pin_interaction_ask_password (GTlsInteraction *interaction, GTlsPassword *password,
                                 GCancellable *cancellable, GError **error)
{
  SmPinInteraction *self = SM_PIN_INTERACTION (interaction);
  GTlsPasswordFlags flags = g_tls_password_get_flags (password);

  /* A second request in one handshake means the first PIN was wrong
   * (G_TLS_PASSWORD_RETRY): never offer it again. */
  if (self->answered || (flags & G_TLS_PASSWORD_RETRY))
    {
      if (self->typed == NULL)
        return fail (self, error,
                     g_error_new (SM_ERROR, SM_ERROR_AUTH,
                                  _("The token of the client certificate refused the PIN stored in "
                                    "the keyring. Store the right one with “securemail account "
                                    "set-pin”; SecureMail does not try it again, so that the token "
                                    "does not lock itself.")),
                     TRUE);
      /* Forgotten at once, so that no other handshake offers it either. */
      forget_refused_session_pin (self->generation);
      return fail (self, error,
                   g_error_new (SM_ERROR, SM_ERROR_AUTH,
                                _("The token of the client certificate refused the PIN typed at "
                                  "unlock; SecureMail forgot it and does not try it again. Run "
                                  "“securemail unlock --pin” with the right PIN.")),
                   TRUE);
    }
  /* PKCS#11 tokens report when a wrong PIN would lock them (RFC 7512 does
   * not; the flag comes from CKF_USER_PIN_FINAL_TRY). */
  if (flags & G_TLS_PASSWORD_FINAL_TRY)
    return fail (self, error,
                 g_error_new (SM_ERROR, SM_ERROR_AUTH,
                              _("The token of the client certificate has one PIN try left; "
                                "SecureMail will not spend it. Unlock the token with its own "
                                "tool (or ask your helpdesk), then store the PIN again with "
                                "“securemail account set-pin”.")),
                 FALSE);
  /* Given: wanted again only if the token refuses it (the retry above). */
  set_pin_wanted_since (self->generation, FALSE);
  if (self->typed != NULL)
    {
      g_tls_password_set_value (password, (const guchar *) self->typed, (gssize) strlen (self->typed));
      self->answered = TRUE;
      return G_TLS_INTERACTION_HANDLED;
    }
  if (self->pin == NULL && g_error_matches (self->lookup_error, SM_ERROR, SM_ERROR_NO_SECRET))
    return fail (self, error,
                 g_error_new (SM_ERROR, SM_ERROR_NO_SECRET,
                              _("The token of the client certificate needs its PIN: type it at "
                                "“securemail unlock --pin” (kept until SecureMail locks), or store it "
                                "with “securemail account set-pin”.")),
                 TRUE);
  if (self->pin == NULL)
    return fail (self, error, g_error_copy (self->lookup_error), TRUE);
  /* GTlsPassword keeps a copy; ours is wiped at finalize. */
  g_tls_password_set_value (password, (const guchar *) self->pin, (gssize) strlen (self->pin));
  self->answered = TRUE;
  return G_TLS_INTERACTION_HANDLED;
}

static void
sm_pin_interaction_finalize (GObject *object)
{
  SmPinInteraction *self = SM_PIN_INTERACTION (object);

  sm_keyring_free (self->pin);
  g_clear_pointer (&self->typed, sm_secret_free);
  g_clear_error (&self->lookup_error);
  g_clear_error (&self->error);
  G_OBJECT_CLASS (sm_pin_interaction_parent_class)->finalize (object);
}

static void
sm_pin_interaction_class_init (SmPinInteractionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_pin_interaction_finalize;
  G_TLS_INTERACTION_CLASS (klass)->ask_password = sm_pin_interaction_ask_password;
}

static void
sm_pin_interaction_init (SmPinInteraction *self)
{
}

SmPinInteraction *
sm_pin_interaction_new (const char *account)
{
  SmPinInteraction *self;

  g_return_val_if_fail (account != NULL, NULL);
  self = g_object_new (SM_TYPE_PIN_INTERACTION, NULL);
  g_mutex_lock (&session_lock);
  if (session_pin != NULL)
    self->typed = sm_secret_dup (session_pin);
  self->generation = session_generation;
  g_mutex_unlock (&session_lock);
  if (self->typed == NULL)
    self->pin = sm_keyring_lookup (SM_KEYRING_CLIENT_CERT_PIN, account, &self->lookup_error);
  return self;
}

const GError *
sm_pin_interaction_get_error (SmPinInteraction *self)
{
  g_return_val_if_fail (SM_IS_PIN_INTERACTION (self), NULL);
  return self->error;
}

gboolean
sm_pin_interaction_was_asked (SmPinInteraction *self)
{
  g_return_val_if_fail (SM_IS_PIN_INTERACTION (self), FALSE);
  return self->answered;
}
