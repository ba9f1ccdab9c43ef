/* sm-gui-settings.h: the user's securemail.conf as the GUI edits it.
 *
 * The proxy's SmConfig is the validated, read-only view; this is the text the
 * setup assistant and the Settings page change.  A key the administrator set
 * in policy.conf is locked: it shows the policy's value and
 * sm_gui_settings_set() refuses to write it into the user's file.  Saving
 * validates with sm_config_load_data() first, so the GUI never writes a file
 * the proxy would refuse.
 */
#pragma once

#include <glib.h>

#include "sm-config.h"

G_BEGIN_DECLS

typedef struct {
  char *path;          /* the user's file */
  char *policy_path;
  GKeyFile *user;
  GKeyFile *policy;
} SmGuiSettings;

/* Reads both files; missing files count as empty.  @config_path NULL =
 * sm_config_default_path (NULL).  Fails only on a file that cannot be read
 * or parsed. */
SmGuiSettings *sm_gui_settings_load (const char *config_path, GError **error);
void           sm_gui_settings_free (SmGuiSettings *settings);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmGuiSettings, sm_gui_settings_free)

/* The effective value (policy wins), or NULL. */
char    *sm_gui_settings_get       (SmGuiSettings *settings, const char *group, const char *key);
gboolean sm_gui_settings_is_locked (SmGuiSettings *settings, const char *group, const char *key);

/* Sets (or with "" / NULL removes) a key of the user's file.  Returns FALSE,
 * changing nothing, when the key is locked. */
gboolean sm_gui_settings_set (SmGuiSettings *settings, const char *group, const char *key,
                              const char *value);

/* Validates user file + policy as the proxy would.  Returns a new SmConfig. */
SmConfig *sm_gui_settings_to_config (SmGuiSettings *settings, GError **error);

/* Validates, then writes the user's file (0600, atomically), creating its
 * folder. */
gboolean sm_gui_settings_save (SmGuiSettings *settings, GError **error);

G_END_DECLS
