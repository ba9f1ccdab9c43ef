/* sm-config.h: the user's settings and the administrator's policy.
 *
 * The INI keys are those of SPEC.md.  A key set in the policy file
 * (/etc/securemail/policy.conf, or $SECUREMAIL_POLICY) is locked: it wins over
 * the user's file, and the GUI shows it as not editable.  Loading validates
 * every key; the first problem found is reported as one line naming the key
 * and the reason, which securemail-proxy prints before exiting with 2.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SM_CONFIG_DEFAULT_POLICY_PATH "/etc/securemail/policy.conf"
#define SM_CONFIG_MAX_FILE_SIZE       (256 * 1024)   /* a config larger than this is a mistake */
/* [security] idle_lock: minutes without client activity before the gate
 * closes again; 0 = never. */
#define SM_CONFIG_DEFAULT_IDLE_LOCK_MIN 0
#define SM_CONFIG_MAX_IDLE_LOCK_MIN     (7 * 24 * 60)
/* [crypto] receipt_overdue: the default, and the longest we accept (a
 * receipt later than a year is no receipt). */
#define SM_CONFIG_DEFAULT_RECEIPT_OVERDUE "3d"
#define SM_CONFIG_MAX_RECEIPT_OVERDUE_S   (366 * 24 * 3600)

typedef enum {
  SM_AUTH_PASSWORD,
  SM_AUTH_OAUTH2,
  SM_AUTH_CERTIFICATE,
} SmAuthMethod;

typedef enum {
  SM_PROTOCOL_SMIME,
  SM_PROTOCOL_OPENPGP,
} SmCryptoProtocol;

typedef enum {
  SM_ENCRYPT_REQUIRED,
  SM_ENCRYPT_IF_POSSIBLE,
  SM_ENCRYPT_NEVER,
} SmEncryptPolicy;

/* [security] auto_unlock (policy file only): whether the proxy may open
 * the unlock gate at start with the passphrases of the login keyring. */
typedef enum {
  SM_AUTO_UNLOCK_OFF,            /* start locked; the user unlocks */
  SM_AUTO_UNLOCK_LOGIN_KEYRING,  /* the desktop login already unlocked the keyring: start unlocked */
} SmAutoUnlock;

typedef struct {
  char *url;              /* as written, for messages */
  char *host;
  guint16 port;
  gboolean implicit_tls;  /* imaps:// / smtps://; otherwise STARTTLS is required */
} SmEndpoint;

/* [oauth2] (issue 7): the provider's OAuth 2.0 endpoints for
 * [upstream] auth = oauth2.  Every URL is https://, or http:// to a loopback
 * address only (RFC 8252 §8.3 allows nothing else in the clear), and its
 * host must pass [policy] allowed_upstreams like the mail hosts.  The
 * refresh token is never here: it lives in the keyring. */
typedef struct {
  char *token_endpoint;                 /* RFC 6749 §3.2; required for oauth2 */
  char *authorization_endpoint;         /* RFC 6749 §3.1; NULL = no browser login */
  char *device_authorization_endpoint;  /* RFC 8628 §3.1; NULL = no --device login */
  char *client_id;                      /* required for oauth2 */
  char *client_secret;                  /* NULL; an installed app's "secret" is public (RFC 8252 §8.5) */
  char *scope;                          /* space separated; NULL = the provider's default */
} SmOAuth2Settings;

typedef struct {
  char *host;             /* numeric address or "localhost" */
  guint16 port;           /* 0 = pick a free port (tests) */
} SmListenAddress;

typedef struct {
  char *path;             /* the user's file that was read (may not exist) */
  char *policy_path;      /* the policy file that was read (may not exist) */

  /* [account] */
  char *address;
  char *personal_address; /* NULL when unset */
  char *display_name;     /* NULL when unset */

  /* [upstream] */
  SmEndpoint imap;
  SmEndpoint smtp;
  char *username;
  SmAuthMethod auth;
  char *ca_file;          /* NULL when unset */
  GBytes *pin_sha256;     /* 32 bytes, NULL when unset */
  /* TLS client authentication (issue 7): a "pkcs11:" URI (RFC 7512) of the
   * certificate on a token, or a PEM / PKCS#12 file.  Presented whenever it
   * is set; with auth = certificate the login is SASL EXTERNAL.  NULL when
   * unset. */
  char *client_certificate;
  char *client_key;       /* a separate PEM key file or "pkcs11:" URI; NULL = with the certificate */

  /* [oauth2] (used when auth = oauth2) */
  SmOAuth2Settings oauth2;

  /* [listen] */
  SmListenAddress listen_imap;
  SmListenAddress listen_smtp;

  /* [crypto] */
  SmCryptoProtocol protocol;
  SmEncryptPolicy encrypt;
  gboolean subject_tags;
  gboolean request_receipts;
  gboolean send_receipts;
  gint64 receipt_overdue_s;   /* a requested receipt is "overdue" after this many seconds */

  /* [policy] */
  char **allowed_upstreams;   /* host globs; empty = any */
  char *personal_tag;
  gboolean personal_enforce;
  gboolean allow_remote_listen;  /* policy file only */
  char *trust_anchors_dir;       /* policy file only, NULL when unset */

  /* [security] (issue 7, the unlock gate) */
  SmAutoUnlock auto_unlock;   /* policy file only; default off */
  gboolean start_locked;      /* start with the gate closed: the user unlocks.  Default on;
                               * off only where auto_unlock allows it (then off by default) */
  guint idle_lock_minutes;    /* 0 = no auto-lock */
  gboolean lock_on_screen_lock;  /* lock when logind or the screensaver locks the screen */
  gboolean lock_on_suspend;      /* lock when logind prepares for sleep */
  /* [admin] */
  char *contact_email;
  char *contact_phone;

  GHashTable *locked;     /* "group.key" set in the policy file */
} SmConfig;

void sm_config_free (SmConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmConfig, sm_config_free)

/* The user's config path: @override if given, else $SECUREMAIL_CONFIG, else
 * $XDG_CONFIG_HOME/securemail/securemail.conf.  Returns a new string. */
char *sm_config_default_path (const char *override);
/* The policy path: $SECUREMAIL_POLICY, else SM_CONFIG_DEFAULT_POLICY_PATH. */
const char *sm_config_policy_path (void);
/* $XDG_DATA_HOME/securemail (not created).  Returns a new string. */
char *sm_config_data_dir (void);

/* Loads and validates.  @path NULL = sm_config_default_path (NULL).  On a
 * bad value fails with SM_ERROR_CONFIG and a message of the form
 * "[upstream] imap: <reason>" naming the file.  Returns a new config. */
SmConfig *sm_config_load (const char *path, GError **error);
/* The same from in-memory text, for tests and the setup assistant. */
SmConfig *sm_config_load_data (const char *user_data, const char *policy_data, GError **error);

/* TRUE when the administrator locked "group.key". */
gboolean sm_config_is_locked (const SmConfig *config, const char *group, const char *key);

/* Checks @host against [policy] allowed_upstreams (case-insensitive globs).
 * Fails with SM_ERROR_POLICY saying so. */
gboolean sm_config_check_upstream_allowed (const SmConfig *config, const char *host, GError **error);

/* Parses a duration "N" (seconds) or "Ns", "Nm", "Nh", "Nd", "Nw" into
 * seconds.  FALSE when it is not one, or negative. */
gboolean sm_config_parse_duration (const char *text, gint64 *seconds);

/* TRUE for "localhost" and loopback address literals (127.0.0.0/8, ::1). */
gboolean sm_config_host_is_loopback (const char *host);

/* "host:port" for messages.  Returns a new string. */
char *sm_endpoint_to_string (const SmEndpoint *endpoint);

G_END_DECLS
