/* sm-certstore-cli.h: the `securemail keys` and `securemail certs`
 * subcommands (SPEC.md, "Command line").
 *
 * The `securemail` main dispatches here with argv[0] = "keys" or "certs".
 * Exit 0 on success; otherwise non-zero (1 = failed, 2 = usage) with one
 * line on stderr that says what to do next. Listings take --json.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* securemail keys list [--json]
 *                 generate [--protocol openpgp|smime] [--address ADDR] [--name NAME]
 *                          [--request FILE] [--days N]
 *                 import FILE        (PKCS#12 password / key passphrase on stdin or prompted)
 *                 export FILE        ("-" = stdout) [--protocol P]
 *                 backup FILE        (prints the recovery code once)
 *                 restore FILE       (recovery code on stdin or prompted)
 *                 unlock             (preset passphrases from the keyring into gpg-agent) */
int sm_keys_cli_run  (int    argc,
                      char **argv);

/* securemail certs list [--json]
 *                  import FILE       (certificates, OpenPGP public keys, CRLs)
 *                  trust FILE        (add a CA as S/MIME trust anchor)
 *                  untrust FINGERPRINT  (remove a user-added anchor) */
int sm_certs_cli_run (int    argc,
                      char **argv);

G_END_DECLS
