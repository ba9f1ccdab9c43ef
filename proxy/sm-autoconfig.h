/* sm-autoconfig.h: finding a provider's IMAP and SMTP settings from the
 * e-mail address alone, for the setup assistant (issue 6).
 *
 * In this order, the first that answers wins:
 *  1. the domain's Thunderbird autoconfig document, over HTTPS only:
 *     https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDRESS,
 *     then https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml;
 *  2. the domain's SRV records (RFC 6186, with RFC 8314's implicit-TLS
 *     names first): _imaps._tcp, _imap._tcp, _submissions._tcp,
 *     _submission._tcp.
 * Mozilla's central ISPDB is not asked: it would tell a third party which
 * domain the user is setting up.  Plain HTTP is never used (anyone on the
 * path could point the user at their own server), redirects are not
 * followed, and servers offered without TLS (socketType "plain") are
 * skipped.  The lookup never has the password: it runs before the
 * password is typed, and the document is only read.
 *
 * The settings found are a suggestion the user sees and may change; the
 * connection test (verified TLS, the admin's allowed_upstreams) is what
 * accepts them.  GTK-free, so it can be tested without a display. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Bytes of an autoconfig document read at most (real ones are a few KiB). */
#define SM_AUTOCONFIG_MAX_BYTES   (64 * 1024)
/* Seconds one HTTPS fetch (connect, TLS, answer) may take. */
#define SM_AUTOCONFIG_TIMEOUT_S   10
/* Bytes of an HTTP response header read at most. */
#define SM_AUTOCONFIG_MAX_HEADER  (16 * 1024)

/* The default document locations; "{domain}" and "{address}" (URI-escaped)
 * are filled in. */
#define SM_AUTOCONFIG_URL_SUBDOMAIN   "https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={address}"
#define SM_AUTOCONFIG_URL_WELL_KNOWN  "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"

typedef struct {
  char *imap_url;     /* "imaps://host:993" (TLS) or "imap://host:143" (STARTTLS) */
  char *smtp_url;     /* "smtps://host:465" or "smtp://host:587" */
  char *username;     /* the login name with placeholders filled in, or NULL if the document names none */
  char *source;       /* where they came from, for the user: the URL, or "SRV records of DOMAIN" */
  /* From the document's <oAuth2> element (https:// addresses only; NULL
   * when absent) and the chosen IMAP server's <authentication> list:
   * oauth2_first when that list starts with OAuth2, the provider's
   * preferred way in. */
  char *oauth2_authorization_endpoint;   /* <authURL> */
  char *oauth2_token_endpoint;           /* <tokenURL> */
  char *oauth2_scope;                    /* <scope> */
  gboolean oauth2_first;
} SmProviderSettings;

void sm_provider_settings_free (SmProviderSettings *settings);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmProviderSettings, sm_provider_settings_free)

/* Reads a config-v1.1.xml document for @address: the first IMAP incoming
 * server and the first SMTP outgoing server that use SSL/TLS or STARTTLS,
 * with %EMAILADDRESS%, %EMAILLOCALPART% and %EMAILDOMAIN% filled in.
 * SM_ERROR_PROTOCOL when the document is not one, or names no usable pair. */
SmProviderSettings *sm_autoconfig_parse (const char *xml, gssize length, const char *address, GError **error);

#define SM_TYPE_AUTOCONFIG (sm_autoconfig_get_type ())
G_DECLARE_FINAL_TYPE (SmAutoconfig, sm_autoconfig, SM, AUTOCONFIG, GObject)

SmAutoconfig *sm_autoconfig_new (void);

/* For tests: other document locations (NULL-terminated; each must start
 * with "https://"), the trust database for their certificates (NULL = the
 * system's), and the resolver for SRV (NULL = the default).  Call before
 * a lookup starts. */
void sm_autoconfig_set_url_templates (SmAutoconfig *self, const char * const *templates);
void sm_autoconfig_set_tls_database  (SmAutoconfig *self, GTlsDatabase *database);
void sm_autoconfig_set_resolver      (SmAutoconfig *self, GResolver *resolver);

/* Looks up the settings for @address (in a worker thread).  When nothing
 * answered, _finish() fails with SM_ERROR_UNAVAILABLE and a sentence for
 * the user that says what was tried and to type the settings. */
void                sm_autoconfig_lookup_async  (SmAutoconfig        *self,
                                                 const char          *address,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
SmProviderSettings *sm_autoconfig_lookup_finish (SmAutoconfig  *self,
                                                 GAsyncResult  *result,
                                                 GError       **error);

G_END_DECLS
