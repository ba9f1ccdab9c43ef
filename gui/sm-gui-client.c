/* sm-gui-client.c: mail client settings for the setup assistant. */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "sm-gui-client.h"

char *
sm_gui_client_settings_text (const SmConfig *c, const char *which)
{
  GString *s = g_string_new (NULL);

  /* The msgids are those of `securemail client-config` (proxy/securemail.c),
   * so both say the same in every language. */
  if (g_strcmp0 (which, "outlook") == 0)
    {
      g_string_append (s, _("Outlook: File → Add Account → Advanced options → “Let me set up my account "
                            "manually” → IMAP:\n"));
      g_string_append_printf (s, _("  Email address:     %s\n"), c->address);
      g_string_append_printf (s, _("  Incoming mail:     server %s, port %u, encryption STARTTLS\n"),
                              c->listen_imap.host, c->listen_imap.port);
      g_string_append_printf (s, _("  Outgoing mail:     server %s, port %u, encryption STARTTLS\n"),
                              c->listen_smtp.host, c->listen_smtp.port);
      g_string_append_printf (s, _("  User name:         %s\n"), c->address);
      g_string_append (s, _("  Password:          the output of “securemail account local-password”\n"));
      g_string_append (s, _("  Outgoing server requires authentication: yes, same as incoming\n"));
    }
  else
    {
      g_string_append (s, _("Thunderbird: Account Settings → Account Actions → Add Mail Account, then "
                            "“Configure manually”:\n"));
      g_string_append_printf (s, _("  Your name:         %s\n"), c->display_name ? c->display_name : "");
      g_string_append_printf (s, _("  Email address:     %s\n"), c->address);
      g_string_append_printf (s, _("  Incoming:          IMAP, server %s, port %u, STARTTLS, Normal password\n"),
                              c->listen_imap.host, c->listen_imap.port);
      g_string_append_printf (s, _("  Outgoing:          SMTP, server %s, port %u, STARTTLS, Normal password\n"),
                              c->listen_smtp.host, c->listen_smtp.port);
      g_string_append_printf (s, _("  Username (both):   %s\n"), c->address);
      g_string_append (s, _("  Password:          the output of “securemail account local-password”\n"));
      g_string_append_printf (s, _("Thunderbird asks to accept the certificate of %s once: accept it permanently; it "
                                   "is SecureMail's own local certificate.\n"),
                              c->listen_imap.host);
    }
  return g_string_free (s, FALSE);
}

char *
sm_gui_autoconfig_xml (const SmConfig *c)
{
  const char *at = strchr (c->address, '@');
  const char *domain = at ? at + 1 : c->address;

  /* The local listeners offer STARTTLS and take the local password in
   * cleartext inside it ("password-cleartext" = Thunderbird's "Normal
   * password").  The user name is the account address (SPEC.md). */
  return g_markup_printf_escaped (
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<clientConfig version=\"1.1\">\n"
      "  <emailProvider id=\"securemail.localhost\">\n"
      "    <domain>%s</domain>\n"
      "    <displayName>SecureMail (%s)</displayName>\n"
      "    <displayShortName>SecureMail</displayShortName>\n"
      "    <incomingServer type=\"imap\">\n"
      "      <hostname>%s</hostname>\n"
      "      <port>%u</port>\n"
      "      <socketType>STARTTLS</socketType>\n"
      "      <authentication>password-cleartext</authentication>\n"
      "      <username>%s</username>\n"
      "    </incomingServer>\n"
      "    <outgoingServer type=\"smtp\">\n"
      "      <hostname>%s</hostname>\n"
      "      <port>%u</port>\n"
      "      <socketType>STARTTLS</socketType>\n"
      "      <authentication>password-cleartext</authentication>\n"
      "      <username>%s</username>\n"
      "    </outgoingServer>\n"
      "  </emailProvider>\n"
      "</clientConfig>\n",
      domain, c->address,
      c->listen_imap.host, c->listen_imap.port, c->address,
      c->listen_smtp.host, c->listen_smtp.port, c->address);
}

gboolean
sm_gui_write_autoconfig (const SmConfig *config, const char *path, GError **error)
{
  g_autofree char *xml = sm_gui_autoconfig_xml (config);
  return g_file_set_contents_full (path, xml, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}
