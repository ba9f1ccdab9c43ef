/* test-recent-messages.c: the daemon's ring of recent messages (issue 6),
 * sm_server_note_message() fed with real views (sm_secure_view_build() on
 * PGP/MIME messages signed by real gpg, made by make-crypto-fixtures.sh) and
 * read back over D-Bus through the exported org.securemail.Proxy1 service,
 * as the CLI, the tray and the main window read it.
 *
 * Runs under keyring-wrapper.sh: a private session bus (the service is
 * exported on one connection and called from another) and a keyring for
 * the certstore.  The recipient is bob (OpenPGP secret key, no passphrase);
 * alice's key has ultimate ownertrust, so her signatures are "verified".
 *
 * The certstore is made in test-recent-messages-store.c: its header and
 * sm-config.h (through sm-server.h) define the same enum value names.
 */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>

#include "test-recent-messages-store.h"
#include "sm-dbus-generated.h"
#include "sm-dbus-service.h"
#include "sm-server.h"
#include "sm-tls.h"

#define TEST_CONFIG                                  \
  "[account]\naddress = bob@example.test\n"          \
  "[upstream]\nimap = imaps://imap.example.test\n"   \
  "smtp = smtp://smtp.example.test\n"

#define UIDVALIDITY 1700000001u
/* "Grüße aus Wellington" as an RFC 2047 encoded word. */
#define ENCODED_SUBJECT "=?UTF-8?B?R3LDvMOfZSBhdXMgV2VsbGluZ3Rvbg==?="
#define DECODED_SUBJECT "Grüße aus Wellington"

static char *tmp_dir;
static char *fixtures;
static SmCertstore *store;

typedef struct {
  SmServer *server;
  SmDbusService *service;
  GDBusConnection *service_bus;
  GDBusConnection *client_bus;
  SmDbusProxy1 *proxy;
  GMainLoop *loop;
  guint changed;          /* MessagesChanged signals seen */
} Fixture;

/* ---- helpers ---------------------------------------------------------------- */

void
test_run_tool (const char *const *argv, const char *gnupghome, const char *input)
{
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                                | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) p = NULL;
  g_autoptr(GError) error = NULL;

  if (gnupghome != NULL)
    g_subprocess_launcher_setenv (l, "GNUPGHOME", gnupghome, TRUE);
  p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, input, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
}

static GBytes *
fixture_bytes (const char *name)
{
  return test_fixture_bytes (fixtures, name);
}

/* A view of fixture @name, its Subject replaced by @subject when not NULL
 * (the outer header of a PGP/MIME message is not signed, RFC 3156 section
 * 5, so the signature stays good). */
static SmSecureView *
build_view (const char *name, const char *subject)
{
  g_autoptr(GBytes) raw = fixture_bytes (name);
  g_autoptr(GError) error = NULL;
  SmSecureView *view;

  if (subject != NULL)
    {
      g_autofree char *text = g_strndup (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw));
      g_autoptr(GRegex) re = g_regex_new ("^Subject: [^\r\n]*", G_REGEX_MULTILINE, 0, NULL);
      g_autofree char *line = g_strdup_printf ("Subject: %s", subject);
      char *changed = g_regex_replace_literal (re, text, -1, 0, line, 0, NULL);

      g_bytes_unref (raw);
      raw = g_bytes_new_take (changed, strlen (changed));
    }
  view = sm_secure_view_build (store, "bob@example.test", raw, SM_SECURE_VIEW_SUBJECT_TAGS, &error);
  g_assert_no_error (error);
  g_assert_nonnull (view);
  return view;
}

static void
note (Fixture *f, const char *name, const char *subject, guint32 uid)
{
  g_autoptr(SmSecureView) view = build_view (name, subject);

  sm_server_note_message (f->server, "INBOX", UIDVALIDITY, uid, view);
}

static void
on_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GVariant **out = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (sm_dbus_proxy1_call_list_messages_finish (SM_DBUS_PROXY1 (source), out, result, &error));
  g_assert_no_error (error);
}

/* ListMessages over the bus.  The service runs in this thread, so the call
 * is asynchronous and the loop turns until it is answered. */
static GVariant *
list_messages (Fixture *f, guint limit)
{
  GVariant *entries = NULL;

  sm_dbus_proxy1_call_list_messages (f->proxy, limit, NULL, on_listed, &entries);
  while (entries == NULL)
    g_main_context_iteration (NULL, TRUE);
  return entries;
}

static void
on_messages_changed (SmDbusProxy1 *proxy, Fixture *f)
{
  f->changed++;
}

/* Turns the loop until @f has seen @n MessagesChanged signals in all. */
static void
wait_changed (Fixture *f, guint n)
{
  while (f->changed < n)
    g_main_context_iteration (NULL, TRUE);
}

static const char *
entry_string (GVariant *entry, const char *key)
{
  const char *v = NULL;

  g_assert_true (g_variant_lookup (entry, key, "&s", &v));
  return v;
}

static guint32
entry_uint (GVariant *entry, const char *key)
{
  guint32 v = 0;

  g_assert_true (g_variant_lookup (entry, key, "u", &v));
  return v;
}

static gboolean
entry_flag (GVariant *entry, const char *key)
{
  gboolean v = FALSE;

  g_assert_true (g_variant_lookup (entry, key, "b", &v));
  return v;
}

/* ---- fixture ---------------------------------------------------------------- */

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmConfig) config = sm_config_load_data (TEST_CONFIG, NULL, &error);
  g_autoptr(GTlsCertificate) cert = NULL;
  g_autofree char *data_dir = g_build_filename (tmp_dir, "data", NULL);
  g_autofree char *address = NULL;

  g_assert_no_error (error);
  cert = sm_tls_local_certificate (data_dir, &error);
  g_assert_no_error (error);
  f->server = sm_server_new (g_steal_pointer (&config), cert);

  address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  f->service_bus = g_dbus_connection_new_for_address_sync (address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, &error);
  g_assert_no_error (error);
  f->client_bus = g_dbus_connection_new_for_address_sync (address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, &error);
  g_assert_no_error (error);

  f->service = sm_dbus_service_new (f->server, f->service_bus, &error);
  g_assert_no_error (error);
  f->proxy = sm_dbus_proxy1_proxy_new_sync (f->client_bus, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES,
                                            g_dbus_connection_get_unique_name (f->service_bus),
                                            SM_DBUS_OBJECT_PATH, NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (f->proxy, "messages-changed", G_CALLBACK (on_messages_changed), f);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->proxy);
  g_clear_object (&f->service);
  g_clear_object (&f->server);
  g_dbus_connection_close_sync (f->service_bus, NULL, NULL);
  g_dbus_connection_close_sync (f->client_bus, NULL, NULL);
  g_clear_object (&f->service_bus);
  g_clear_object (&f->client_bus);
}

/* ---- tests ------------------------------------------------------------------ */

/* Three real views come back over D-Bus newest first, with their trust
 * status, signer, sender, decoded Subject (our tag taken off) and Date. */
static void
test_list (Fixture *f, gconstpointer data)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GVariant) verified = NULL;
  g_autoptr(GVariant) invalid = NULL;
  g_autoptr(GVariant) mismatch = NULL;
  g_autoptr(GDateTime) date = g_date_time_new_utc (2026, 11, 28, 10, 0, 0);
  gint64 when = 0;

  entries = list_messages (f, 0);
  g_assert_cmpuint (g_variant_n_children (entries), ==, 0);

  note (f, "pgp-signed.eml", ENCODED_SUBJECT, 42);
  note (f, "pgp-signed-altered.eml", NULL, 43);
  note (f, "pgp-mismatch.eml", NULL, 44);
  wait_changed (f, 3);

  g_clear_pointer (&entries, g_variant_unref);
  entries = list_messages (f, 0);
  g_assert_cmpuint (g_variant_n_children (entries), ==, 3);
  mismatch = g_variant_get_child_value (entries, 0);
  invalid = g_variant_get_child_value (entries, 1);
  verified = g_variant_get_child_value (entries, 2);

  g_assert_cmpuint (entry_uint (verified, "uid"), ==, 42);
  g_assert_cmpuint (entry_uint (verified, "uidvalidity"), ==, UIDVALIDITY);
  g_assert_cmpstr (entry_string (verified, "mailbox"), ==, "INBOX");
  g_assert_cmpstr (entry_string (verified, "trust"), ==, "verified");
  g_assert_cmpstr (entry_string (verified, "from"), ==, "alice@example.test");
  g_assert_true (g_str_has_prefix (entry_string (verified, "signer"), "alice@example.test"));
  g_assert_cmpstr (entry_string (verified, "subject"), ==, DECODED_SUBJECT);
  g_assert_true (g_variant_lookup (verified, "date", "x", &when));
  g_assert_cmpint (when, ==, g_date_time_to_unix (date));
  g_assert_false (entry_flag (verified, "encrypted"));
  g_assert_false (entry_flag (verified, "personal"));

  g_assert_cmpuint (entry_uint (invalid, "uid"), ==, 43);
  g_assert_cmpstr (entry_string (invalid, "trust"), ==, "invalid");
  /* The tag "[WARNING: invalid signature]" is a column, not part of the Subject. */
  g_assert_cmpstr (entry_string (invalid, "subject"), ==, "pgp detached");

  g_assert_cmpuint (entry_uint (mismatch, "uid"), ==, 44);
  g_assert_cmpstr (entry_string (mismatch, "trust"), ==, "signer-mismatch");
  g_assert_true (entry_flag (mismatch, "encrypted"));
  g_assert_true (g_str_has_prefix (entry_string (mismatch, "signer"), "mallory@evil.test"));
}

/* The same (mailbox, UIDVALIDITY, UID) seen again is one entry, moved to
 * the front, its personal mark kept; another UIDVALIDITY is another
 * message.  The limit is honoured. */
static void
test_dedup_and_personal (Fixture *f, gconstpointer data)
{
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GVariant) first = NULL;
  g_autoptr(SmSecureView) view = build_view ("pgp-signed.eml", NULL);

  note (f, "pgp-signed.eml", NULL, 42);
  note (f, "pgp-mismatch.eml", NULL, 44);
  sm_server_set_message_personal (f->server, "INBOX", 42, TRUE);
  note (f, "pgp-signed.eml", NULL, 42);
  sm_server_note_message (f->server, "INBOX", UIDVALIDITY + 1, 42, view);
  wait_changed (f, 5);

  entries = list_messages (f, 0);
  g_assert_cmpuint (g_variant_n_children (entries), ==, 3);
  first = g_variant_get_child_value (entries, 1);
  g_assert_cmpuint (entry_uint (first, "uid"), ==, 42);
  g_assert_cmpuint (entry_uint (first, "uidvalidity"), ==, UIDVALIDITY);
  g_assert_true (entry_flag (first, "personal"));
  g_clear_pointer (&first, g_variant_unref);
  first = g_variant_get_child_value (entries, 0);
  g_assert_cmpuint (entry_uint (first, "uidvalidity"), ==, UIDVALIDITY + 1);
  g_assert_false (entry_flag (first, "personal"));

  g_clear_pointer (&entries, g_variant_unref);
  entries = list_messages (f, 2);
  g_assert_cmpuint (g_variant_n_children (entries), ==, 2);
}

/* The ring never holds more than SM_SERVER_MAX_RECENT_MESSAGES: the oldest
 * go first. */
static void
test_bounded (Fixture *f, gconstpointer data)
{
  g_autoptr(SmSecureView) view = build_view ("pgp-signed.eml", NULL);
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GVariant) newest = NULL;
  g_autoptr(GVariant) oldest = NULL;
  guint n = SM_SERVER_MAX_RECENT_MESSAGES + 50;

  for (guint uid = 1; uid <= n; uid++)
    sm_server_note_message (f->server, "INBOX", UIDVALIDITY, uid, view);
  entries = list_messages (f, 0);
  g_assert_cmpuint (g_variant_n_children (entries), ==, SM_SERVER_MAX_RECENT_MESSAGES);
  newest = g_variant_get_child_value (entries, 0);
  oldest = g_variant_get_child_value (entries, SM_SERVER_MAX_RECENT_MESSAGES - 1);
  g_assert_cmpuint (entry_uint (newest, "uid"), ==, n);
  g_assert_cmpuint (entry_uint (oldest, "uid"), ==, n - SM_SERVER_MAX_RECENT_MESSAGES + 1);
}

/* ---- main ------------------------------------------------------------------- */

static int
rm_rf_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *script = g_getenv ("SM_FIXTURES_SCRIPT");
  const char *argv_fx[] = { "sh", NULL, NULL, NULL };
  const char *kill_argv[] = { "sh", "-c",
                              "find \"$0\" -name gpg-agent.conf | while read -r c; do "
                              "GNUPGHOME=$(dirname \"$c\") gpgconf --kill all; done", NULL, NULL };
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (script == NULL)
    {
      g_test_skip ("SM_FIXTURES_SCRIPT is not set (run through meson test)");
      return g_test_run ();
    }
  tmp_dir = g_dir_make_tmp ("smrm-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  fixtures = g_build_filename (tmp_dir, "fixtures", NULL);
  argv_fx[1] = script;
  argv_fx[2] = fixtures;
  test_run_tool (argv_fx, NULL, NULL);
  store = test_store_new_for_bob (tmp_dir, fixtures);

  g_test_add ("/proxy/messages/list", Fixture, NULL, fixture_set_up, test_list, fixture_tear_down);
  g_test_add ("/proxy/messages/dedup-and-personal", Fixture, NULL, fixture_set_up, test_dedup_and_personal,
              fixture_tear_down);
  g_test_add ("/proxy/messages/bounded", Fixture, NULL, fixture_set_up, test_bounded, fixture_tear_down);
  rc = g_test_run ();

  g_object_unref (store);
  kill_argv[3] = tmp_dir;
  test_run_tool (kill_argv, NULL, NULL);
  nftw (tmp_dir, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
  g_free (tmp_dir);
  g_free (fixtures);
  return rc;
}
