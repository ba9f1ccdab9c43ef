/* sm-doctor.c: the numbered checks of `securemail doctor`. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-config.h"
#include "sm-dbus-service.h"
#include "sm-doctor.h"
#include "sm-error.h"
#include "sm-keyring.h"
#include "sm-tls.h"
#include "sm-upstream.h"

void
sm_check_free (SmCheck *check)
{
  if (check == NULL)
    return;
  g_free (check->id);
  g_free (check->title);
  g_free (check->detail);
  g_free (check->fix);
  g_free (check);
}

static SmCheck *
add (GPtrArray *checks, const char *id, const char *title)
{
  SmCheck *c = g_new0 (SmCheck, 1);
  c->number = checks->len + 1;
  c->id = g_strdup (id);
  c->title = g_strdup (title);
  c->result = SM_CHECK_SKIP;
  g_ptr_array_add (checks, c);
  return c;
}

static void
pass (SmCheck *c, const char *detail)
{
  c->result = SM_CHECK_PASS;
  c->detail = g_strdup (detail);
}

static void
fail (SmCheck *c, const char *detail, const char *fix)
{
  c->result = SM_CHECK_FAIL;
  c->detail = g_strdup (detail);
  c->fix = g_strdup (fix);
}

static void
skip (SmCheck *c, const char *why)
{
  c->result = SM_CHECK_SKIP;
  c->detail = g_strdup (why);
}

/* TRUE when a proxy owns the bus name (then its listeners are in use by it,
 * which is right). */
static gboolean
proxy_running (void)
{
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr(GVariant) r = NULL;
  gboolean has = FALSE;

  if (bus == NULL)
    return FALSE;
  r = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "NameHasOwner",
                                   g_variant_new ("(s)", SM_DBUS_NAME), G_VARIANT_TYPE ("(b)"),
                                   G_DBUS_CALL_FLAGS_NONE, 5000, NULL, NULL);
  if (r != NULL)
    g_variant_get (r, "(b)", &has);
  return has;
}

static gboolean
port_free (const SmListenAddress *la, GError **error)
{
  g_autoptr(GSocketListener) l = g_socket_listener_new ();
  g_autoptr(GInetAddress) a = g_inet_address_new_from_string (
      g_strcmp0 (la->host, "localhost") == 0 ? "127.0.0.1" : la->host);
  g_autoptr(GSocketAddress) sa = NULL;

  if (a == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_CONFIG, _("“%s” is not an address"), la->host);
      return FALSE;
    }
  sa = g_inet_socket_address_new (a, la->port);
  if (!g_socket_listener_add_address (l, sa, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL, NULL, error))
    return FALSE;
  g_socket_listener_close (l);
  return TRUE;
}

/* What to do when the provider refused the login. */
static const char *
login_fix (const SmConfig *config)
{
  if (config->auth == SM_AUTH_CERTIFICATE)
    return _("Set [upstream] client_certificate to the certificate your provider issued to you "
             "(and its PIN with “securemail account set-pin”), or ask the provider whether it "
             "accepts it.");
  return _("Store the right password with “securemail account set-password”.");
}

/* Issue 7: which client certificate is presented and until when it is
 * valid; a certificate that expires within SM_DOCTOR_CERT_EXPIRY_WARN_DAYS
 * still passes, with the date in front.  Returns TRUE when logins can go on
 * (passed, or no client certificate configured). */
static gboolean
check_client_certificate (const SmConfig *config, SmCheck *c)
{
  g_autoptr(GError) e = NULL;
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autoptr(GDateTime) not_after = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *subject = NULL;
  g_autofree char *until = NULL;
  g_autofree char *d = NULL;

  if (config->client_certificate == NULL)
    {
      pass (c, _("none configured (not needed with a password login)"));
      return TRUE;
    }
  cert = sm_tls_client_certificate (config, &e);
  if (cert == NULL)
    {
      fail (c, e->message,
            _("Correct [upstream] client_certificate (a pkcs11: URI of your smartcard or a "
              "certificate file), insert the smartcard, or store its PIN with “securemail "
              "account set-pin”."));
      return FALSE;
    }
  subject = sm_tls_certificate_describe (cert, &not_after);
  until = not_after ? g_date_time_format (not_after, "%Y-%m-%d") : g_strdup (_("unknown"));
  if (not_after != NULL &&
      g_date_time_difference (not_after, now) < (GTimeSpan) SM_DOCTOR_CERT_EXPIRY_WARN_DAYS * G_TIME_SPAN_DAY)
    d = g_strdup_printf (_("%s (%s), expires SOON, on %s: ask your provider for a new one"),
                         config->client_certificate, subject, until);
  else
    d = g_strdup_printf (_("%s (%s), valid until %s"), config->client_certificate, subject, until);
  pass (c, d);
  return TRUE;
}

GPtrArray *
sm_doctor_run (const char *config_path)
{
  GPtrArray *checks = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_check_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = NULL;
  SmCheck *c_config, *c_keyring, *c_local, *c_provider, *c_cert, *c_imap, *c_smtp, *c_listen;
  char *password = NULL;
  gboolean can_login = FALSE;

  c_config = add (checks, "config", _("Settings file is valid"));
  c_keyring = add (checks, "keyring", _("The keyring can be used"));
  c_local = add (checks, "local-password", _("A local mail client password exists"));
  c_provider = add (checks, "provider-password", _("The provider password is stored"));
  c_cert = add (checks, "client-certificate", _("The client certificate can be used"));
  c_imap = add (checks, "upstream-imap", _("Provider IMAP: reachable, certificate verified, login works"));
  c_smtp = add (checks, "upstream-smtp", _("Provider SMTP: reachable, certificate verified, login works"));
  c_listen = add (checks, "listeners", _("Local IMAP and SMTP ports are served by SecureMail or free"));

  config = sm_config_load (config_path, &error);
  if (config == NULL)
    {
      g_autofree char *path = sm_config_default_path (config_path);
      g_autofree char *fix = g_strdup_printf (_("Correct the line named above in %s, or run "
                                                "securemail-setup to write a new one."),
                                              path);
      fail (c_config, error->message, fix);
      skip (c_keyring, _("needs valid settings"));
      skip (c_local, _("needs valid settings"));
      skip (c_provider, _("needs valid settings"));
      skip (c_cert, _("needs valid settings"));
      skip (c_imap, _("needs valid settings"));
      skip (c_smtp, _("needs valid settings"));
      skip (c_listen, _("needs valid settings"));
      return checks;
    }
  {
    g_autofree char *d = g_strdup_printf (_("%s, account %s"), config->path, config->address);
    pass (c_config, d);
  }
  if (config->auth == SM_AUTH_OAUTH2)
    {
      /* The same check, for a sign-in: it passes when a fresh access token
       * could be had from the stored refresh token. */
      g_free (c_provider->title);
      c_provider->title = g_strdup (_("The provider sign-in (OAuth2) is stored and still accepted"));
    }

  /* Keyring and the local password. */
  {
    g_autoptr(GError) e = NULL;
    char *local = sm_keyring_lookup (SM_KEYRING_LOCAL_PASSWORD, config->address, &e);
    if (local == NULL && !g_error_matches (e, SM_ERROR, SM_ERROR_NO_SECRET))
      {
        fail (c_keyring, e->message,
              _("Log in to the desktop so that the keyring is unlocked (on a server: start "
                "gnome-keyring-daemon in the D-Bus session), then run doctor again."));
        skip (c_local, _("needs the keyring"));
        skip (c_provider, _("needs the keyring"));
        skip (c_cert, _("needs the keyring"));
        skip (c_imap, _("needs the keyring"));
        skip (c_smtp, _("needs the keyring"));
      }
    else
      {
        pass (c_keyring, _("reachable and unlocked"));
        if (local == NULL)
          fail (c_local, e->message,
                _("Run “securemail account local-password” and type the password it shows into "
                  "your mail client."));
        else
          pass (c_local, _("present"));
        sm_keyring_free (local);
        g_clear_error (&e);
        if (config->auth == SM_AUTH_CERTIFICATE)
          {
            pass (c_provider, _("not needed: [upstream] auth = certificate"));
            can_login = check_client_certificate (config, c_cert);
            if (!can_login)
              {
                skip (c_imap, _("needs the client certificate"));
                skip (c_smtp, _("needs the client certificate"));
              }
          }
        else if (!sm_upstream_get_secret (config, &password, NULL, &e))
          {
            fail (c_provider, e->message,
                  config->auth == SM_AUTH_OAUTH2
                      ? _("Run “securemail account oauth2-login” and sign in to your provider.")
                      : _("Run “securemail account set-password” and type the password your provider "
                          "gave you."));
            skip (c_imap, _("needs the provider password"));
            skip (c_smtp, _("needs the provider password"));
            check_client_certificate (config, c_cert);
          }
        else
          {
            pass (c_provider, _("present"));
            can_login = check_client_certificate (config, c_cert);
            if (!can_login)
              {
                skip (c_imap, _("needs the client certificate"));
                skip (c_smtp, _("needs the client certificate"));
              }
          }
      }
  }

  if (can_login)
    {
      g_autoptr(GError) e = NULL;
      g_autoptr(SmImapUpstream) up = sm_imap_upstream_open (config, password, NULL, &e);
      g_autoptr(SmSmtpClient) smtp = NULL;
      g_autofree char *fix_for_tls = g_strdup (
          _("If your provider uses a private certificate authority, set [upstream] ca_file to its "
            "certificate (ask your administrator); never turn verification off."));

      if (up != NULL)
        {
          g_autofree char *d = config->auth == SM_AUTH_CERTIFICATE
                                   ? g_strdup_printf (_("%s: logged in with the client certificate"), config->imap.url)
                                   : g_strdup_printf (_("%s: logged in as %s"), config->imap.url, config->username);
          pass (c_imap, d);
          g_io_stream_close (up->stream, NULL, NULL);
        }
      else if (g_error_matches (e, SM_ERROR, SM_ERROR_TLS))
        fail (c_imap, e->message, fix_for_tls);
      else if (g_error_matches (e, SM_ERROR, SM_ERROR_AUTH))
        fail (c_imap, e->message, login_fix (config));
      else
        fail (c_imap, e->message,
              _("Check [upstream] imap in the settings and the network; if both are right, the "
                "provider may be down: try again later."));
      g_clear_error (&e);

      smtp = sm_smtp_client_open (config, password, NULL, &e);
      if (smtp != NULL)
        {
          g_autofree char *d = NULL;
          if (config->auth != SM_AUTH_CERTIFICATE)
            d = g_strdup_printf (_("%s: logged in as %s"), config->smtp.url, config->username);
          else
            /* Without AUTH EXTERNAL the provider checks the certificate only
             * when mail is sent (sm_smtp_client_open()). */
            d = g_strdup_printf (_("%s: connected with the client certificate"), config->smtp.url);
          pass (c_smtp, d);
          sm_smtp_client_quit (smtp);
        }
      else if (g_error_matches (e, SM_ERROR, SM_ERROR_TLS))
        fail (c_smtp, e->message, fix_for_tls);
      else if (g_error_matches (e, SM_ERROR, SM_ERROR_AUTH))
        fail (c_smtp, e->message, login_fix (config));
      else
        fail (c_smtp, e->message,
              _("Check [upstream] smtp in the settings and the network; if both are right, the "
                "provider may be down: try again later."));
      sm_keyring_free (password);
    }

  if (proxy_running ())
    pass (c_listen, _("securemail-proxy is running and serving them"));
  else
    {
      g_autoptr(GError) e = NULL;
      if (port_free (&config->listen_imap, &e) && port_free (&config->listen_smtp, &e))
        pass (c_listen, _("free; securemail-proxy is not running yet"));
      else
        fail (c_listen, e->message,
              _("Another program uses the port: stop it, or change [listen] imap / smtp and the "
                "mail client's settings."));
    }
  return checks;
}
