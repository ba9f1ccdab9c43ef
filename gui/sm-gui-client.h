/* sm-gui-client.h: what a mail client needs to talk to the proxy: the exact
 * Thunderbird and Outlook settings (the same text as `securemail
 * client-config`) and a Thunderbird autoconfig file. */
#pragma once

#include <glib.h>

#include "sm-config.h"

G_BEGIN_DECLS

/* @which: "thunderbird" or "outlook".  Returns new text, several lines. */
char *sm_gui_client_settings_text (const SmConfig *config, const char *which);

/* A Thunderbird autoconfig document (config-v1.1.xml, the format of
 * https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat)
 * pointing at the local listeners.  Returns new text. */
char *sm_gui_autoconfig_xml (const SmConfig *config);
gboolean sm_gui_write_autoconfig (const SmConfig *config, const char *path, GError **error);

G_END_DECLS
