/* test-recent-messages-store.c: see test-recent-messages-store.h. */
#include "config.h"

#include "sm-certstore.h"
#include "test-recent-messages-store.h"

GBytes *
test_fixture_bytes (const char *fixtures, const char *name)
{
  g_autofree char *path = g_build_filename (fixtures, name, NULL);
  char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_bytes_new_take (contents, len);
}

SmCertstore *
test_store_new_for_bob (const char *tmp_dir, const char *fixtures)
{
  g_autofree char *home = g_build_filename (tmp_dir, "bob", NULL);
  g_autofree char *conf = g_build_filename (home, "gpg-agent.conf", NULL);
  g_autofree char *fpr_path = g_build_filename (fixtures, "pgp-alice.fpr", NULL);
  g_autofree char *fpr = NULL;
  g_autofree char *ownertrust = NULL;
  const char *names[] = { "pgp-alice-public.asc", "pgp-mallory-public.asc" };
  const char *argv[] = { "gpg", "--batch", "--import-ownertrust", NULL };
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GPtrArray) own = NULL;
  g_autoptr(GError) error = NULL;
  SmCertstore *store;

  g_assert_cmpint (g_mkdir_with_parents (home, 0700), ==, 0);
  g_assert_true (g_file_set_contents (conf, "s2k-count 65536\n", -1, NULL));
  store = sm_certstore_new_for_home (home, &error);
  g_assert_no_error (error);
  secret = test_fixture_bytes (fixtures, "pgp-bob-secret.asc");
  own = sm_certstore_import_own (store, secret, "", &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GBytes) data = test_fixture_bytes (fixtures, names[i]);
      g_autoptr(GPtrArray) keys = sm_certstore_import_certs (store, data, NULL, &error);
      g_assert_no_error (error);
    }
  g_assert_true (g_file_get_contents (fpr_path, &fpr, NULL, NULL));
  ownertrust = g_strdup_printf ("%s:6:\n", g_strstrip (fpr));
  test_run_tool (argv, home, ownertrust);
  return store;
}
