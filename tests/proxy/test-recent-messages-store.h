/* test-recent-messages-store.h: the certstore half of test-recent-messages,
 * in a unit of its own because sm-certstore.h and sm-config.h (which the
 * server's header pulls in) share enum value names. */
#pragma once

#include <gio/gio.h>

/* certstore/sm-certstore.h, kept opaque here. */
typedef struct _SmCertstore SmCertstore;

/* The bytes of @name in @fixtures (asserts it can be read). */
GBytes      *test_fixture_bytes (const char *fixtures, const char *name);

/* Runs @argv with GNUPGHOME=@gnupghome (may be NULL) and @input on stdin;
 * asserts success.  Defined in test-recent-messages.c. */
void         test_run_tool (const char *const *argv, const char *gnupghome, const char *input);

/* A store in @tmp_dir/bob with bob's OpenPGP secret key, alice's and
 * mallory's public keys, and alice's key given ultimate ownertrust (bob has
 * checked it).  Free with g_object_unref(); stop its agent with gpgconf. */
SmCertstore *test_store_new_for_bob (const char *tmp_dir, const char *fixtures);
