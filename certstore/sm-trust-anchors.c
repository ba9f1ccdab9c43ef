/* sm-trust-anchors.c: trust anchors, trustlist.txt and the admin policy. */
#include "config.h"

#include <errno.h>

#include <glib/gi18n.h>

#include "sm-certstore-error.h"
#include "sm-trust-anchors.h"

/* "S" = valid for S/MIME; "relax" lets CA certificates without a
 * critical basicConstraints (common in business CAs) act as anchors, see
 * gpg-agent(1), trustlist.txt. */
#define SM_TRUSTLIST_FLAGS "S relax"

void
sm_trust_anchor_free (SmTrustAnchor *anchor)
{
  if (anchor == NULL)
    return;
  g_free (anchor->fingerprint);
  g_free (anchor->subject);
  g_free (anchor);
}

SmTrustAnchor *
sm_trust_anchor_new (const char *fingerprint,
                     const char *subject,
                     gboolean    admin)
{
  SmTrustAnchor *anchor = g_new0 (SmTrustAnchor, 1);

  anchor->fingerprint = g_ascii_strup (fingerprint, -1);
  anchor->subject = g_strdup (subject ? subject : "");
  anchor->admin = admin;
  return anchor;
}

GPtrArray *
sm_trust_anchors_load (const char *home,
                       GError    **error)
{
  g_autoptr(GPtrArray) anchors = g_ptr_array_new_with_free_func ((GDestroyNotify) sm_trust_anchor_free);
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = g_build_filename (home, SM_TRUST_ANCHORS_FILE, NULL);
  g_autoptr(GError) local = NULL;
  g_auto(GStrv) groups = NULL;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_steal_pointer (&anchors);
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_HOME,
                   _("Cannot read the trust anchor list %s (%s); restore it from a backup or remove it and add the anchors again"),
                   path, local->message);
      return NULL;
    }

  groups = g_key_file_get_groups (kf, NULL);
  for (guint i = 0; groups[i] != NULL; i++)
    {
      g_autofree char *subject = g_key_file_get_string (kf, groups[i], "subject", NULL);
      g_autofree char *source = g_key_file_get_string (kf, groups[i], "source", NULL);

      g_ptr_array_add (anchors, sm_trust_anchor_new (groups[i], subject,
                                                     g_strcmp0 (source, "admin") == 0));
    }
  return g_steal_pointer (&anchors);
}

static char *
colon_fingerprint (const char *fpr)
{
  GString *out = g_string_new (NULL);

  for (gsize i = 0; fpr[i] != '\0'; i++)
    {
      if (i > 0 && i % 2 == 0)
        g_string_append_c (out, ':');
      g_string_append_c (out, g_ascii_toupper (fpr[i]));
    }
  return g_string_free (out, FALSE);
}

gboolean
sm_trust_anchors_save (const char *home,
                       GPtrArray  *anchors,
                       gboolean   *changed,
                       GError    **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GString) trustlist = g_string_new (
    "# Written by SecureMail from " SM_TRUST_ANCHORS_FILE "; edits here are overwritten.\n"
    "# Use `securemail certs trust FILE` to add a CA.\n");
  g_autofree char *ini_path = g_build_filename (home, SM_TRUST_ANCHORS_FILE, NULL);
  g_autofree char *tl_path = g_build_filename (home, SM_TRUSTLIST_FILE, NULL);
  g_autofree char *old = NULL;
  g_autofree char *ini_data = NULL;
  gsize ini_len;

  for (guint i = 0; i < anchors->len; i++)
    {
      SmTrustAnchor *a = anchors->pdata[i];
      g_autofree char *colons = colon_fingerprint (a->fingerprint);

      g_key_file_set_string (kf, a->fingerprint, "subject", a->subject);
      g_key_file_set_string (kf, a->fingerprint, "source", a->admin ? "admin" : "user");
      g_string_append_printf (trustlist, "# %s%s\n%s " SM_TRUSTLIST_FLAGS "\n",
                              a->subject, a->admin ? " (administrator)" : "", colons);
    }

  ini_data = g_key_file_to_data (kf, &ini_len, NULL);
  if (!g_file_set_contents_full (ini_path, ini_data, (gssize) ini_len,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;

  if (changed != NULL)
    *changed = !g_file_get_contents (tl_path, &old, NULL, NULL) || !g_str_equal (old, trustlist->str);
  return g_file_set_contents_full (tl_path, trustlist->str, (gssize) trustlist->len,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

const char *
sm_policy_file_path (void)
{
  const char *env = g_getenv (SM_POLICY_FILE_ENV);

  return env != NULL && *env != '\0' ? env : SM_POLICY_FILE_DEFAULT;
}

char *
sm_policy_get_trust_anchors_dir (GError **error)
{
  const char *path = sm_policy_file_path ();
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  g_autofree char *dir = NULL;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return NULL;
      g_set_error (error, SM_CERTSTORE_ERROR, SM_CERTSTORE_ERROR_FAILED,
                   _("The administrator's policy file %s cannot be read (%s); contact your administrator"),
                   path, local->message);
      return NULL;
    }

  dir = g_key_file_get_string (kf, "policy", "trust_anchors_dir", NULL);
  if (dir != NULL)
    g_strstrip (dir);
  if (dir == NULL || *dir == '\0')
    return NULL;
  if (!g_path_is_absolute (dir))
    {
      g_autofree char *base = g_path_get_dirname (path);
      return g_build_filename (base, dir, NULL);
    }
  return g_steal_pointer (&dir);
}
