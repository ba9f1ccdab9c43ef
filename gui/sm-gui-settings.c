/* sm-gui-settings.c: the user's settings file as the GUI edits it. */
#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "sm-gui-settings.h"

static gboolean
load_keyfile (GKeyFile *kf, const char *path, GError **error)
{
  g_autoptr(GError) e = NULL;

  if (g_key_file_load_from_file (kf, path, G_KEY_FILE_KEEP_COMMENTS, &e))
    return TRUE;
  if (g_error_matches (e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    return TRUE;
  g_set_error (error, e->domain, e->code, "%s: %s", path, e->message);
  return FALSE;
}

SmGuiSettings *
sm_gui_settings_load (const char *config_path, GError **error)
{
  g_autoptr(SmGuiSettings) s = g_new0 (SmGuiSettings, 1);

  s->path = sm_config_default_path (config_path);
  s->policy_path = g_strdup (sm_config_policy_path ());
  s->user = g_key_file_new ();
  s->policy = g_key_file_new ();
  if (!load_keyfile (s->user, s->path, error) || !load_keyfile (s->policy, s->policy_path, error))
    return NULL;
  return g_steal_pointer (&s);
}

void
sm_gui_settings_free (SmGuiSettings *s)
{
  if (s == NULL)
    return;
  g_free (s->path);
  g_free (s->policy_path);
  g_clear_pointer (&s->user, g_key_file_free);
  g_clear_pointer (&s->policy, g_key_file_free);
  g_free (s);
}

gboolean
sm_gui_settings_is_locked (SmGuiSettings *s, const char *group, const char *key)
{
  return g_key_file_has_key (s->policy, group, key, NULL);
}

char *
sm_gui_settings_get (SmGuiSettings *s, const char *group, const char *key)
{
  char *v = g_key_file_get_string (s->policy, group, key, NULL);
  if (v == NULL)
    v = g_key_file_get_string (s->user, group, key, NULL);
  if (v != NULL)
    g_strstrip (v);
  return v;
}

gboolean
sm_gui_settings_set (SmGuiSettings *s, const char *group, const char *key, const char *value)
{
  if (sm_gui_settings_is_locked (s, group, key))
    return FALSE;
  if (value == NULL || *value == '\0')
    g_key_file_remove_key (s->user, group, key, NULL);
  else
    g_key_file_set_string (s->user, group, key, value);
  return TRUE;
}

static char *
keyfile_text (GKeyFile *kf)
{
  return g_key_file_to_data (kf, NULL, NULL);
}

SmConfig *
sm_gui_settings_to_config (SmGuiSettings *s, GError **error)
{
  g_autofree char *user = keyfile_text (s->user);
  g_autofree char *policy = keyfile_text (s->policy);
  SmConfig *config = sm_config_load_data (user, policy, error);

  if (config != NULL)
    {
      g_free (config->path);
      config->path = g_strdup (s->path);
      g_free (config->policy_path);
      config->policy_path = g_strdup (s->policy_path);
    }
  return config;
}

gboolean
sm_gui_settings_save (SmGuiSettings *s, GError **error)
{
  g_autoptr(SmConfig) config = sm_gui_settings_to_config (s, error);
  g_autofree char *dir = g_path_get_dirname (s->path);
  g_autofree char *text = NULL;
  g_autoptr(GString) out = NULL;

  if (config == NULL)
    return FALSE;
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   _("Could not create the folder %s: %s"), dir, g_strerror (errno));
      return FALSE;
    }
  text = keyfile_text (s->user);
  out = g_string_new (NULL);
  if (!g_str_has_prefix (text, "#"))
    g_string_append (out, "# SecureMail settings, written by securemail-setup.\n"
                            "# Keys set in the administrator's policy.conf win over these.\n");
  g_string_append (out, text);
  return g_file_set_contents_full (s->path, out->str, (gssize) out->len,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}
