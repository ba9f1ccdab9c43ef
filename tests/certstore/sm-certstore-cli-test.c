/* sm-certstore-cli-test.c: a stand-in for the `securemail` main so the
 * tests can run `keys` and `certs` for real until the real binary links
 * certstore. Usage: sm-certstore-cli-test keys|certs SUBCOMMAND ... */
#include "config.h"

#include <locale.h>

#include <glib/gi18n.h>

#include "sm-certstore-cli.h"

int
main (int    argc,
      char **argv)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  if (argc >= 2 && g_str_equal (argv[1], "keys"))
    return sm_keys_cli_run (argc - 1, argv + 1);
  if (argc >= 2 && g_str_equal (argv[1], "certs"))
    return sm_certs_cli_run (argc - 1, argv + 1);
  g_printerr ("usage: %s keys|certs ...\n", argv[0]);
  return 2;
}
