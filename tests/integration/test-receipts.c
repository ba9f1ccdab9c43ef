/* test-receipts.c: a signed receipt end to end through the real stack
 * (issue 5).  Two accounts, each with its own proxy, home and OpenPGP key
 * (alice@example.test, bob@example.test); each has imported the other's
 * public key and marked it trusted, as users do after checking a
 * fingerprint.
 *
 *   1. alice's proxy takes a message for bob over SMTP: signed, encrypted,
 *      with a receipt request, through Postfix into bob's maildir;
 *      `securemail receipts --json` shows "requested";
 *   2. what landed in bob's maildir goes through what bob's IMAP session does
 *      per message (sm-receipts-view: secure view + sm_receipts_on_view(),
 *      the IMAP wiring being the lead's), which queues one signed receipt,
 *      and only one when run again;
 *   3. bob's proxy starts and its relay worker submits the receipt;
 *   4. the receipt in alice's maildir goes through the same for alice, and
 *      `securemail receipts --json` shows "delivered-verified", signed by bob.
 *
 * The proxies take turns: both would own the same D-Bus name in this test's
 * session bus, and sm-receipts-view must not share a spool with a running
 * relay worker.
 */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "sm-test-harness.h"

#define DELIVERY_TIMEOUT_MS 30000

typedef struct {
  SmTestProxy *alice;
  SmTestProxy *bob;
  char *marker;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *up_alice = NULL, *up_bob = NULL;
  g_autofree char *uuid = g_uuid_string_random ();

  f->marker = g_strdup_printf ("receipts-e2e-%s", uuid);
  if (!sm_test_require_stack ())
    return;
  up_alice = sm_test_upstream_section ("alice");
  up_bob = sm_test_upstream_section ("bob");
  /* Start each once (config, password, key), then let them take turns. */
  f->alice = sm_test_proxy_start ("alice@example.test", up_alice, sm_test_env ("SM_TEST_PASSWORD"), NULL);
  sm_test_proxy_stop (f->alice);
  f->bob = sm_test_proxy_start ("bob@example.test", up_bob, sm_test_env ("SM_TEST_PASSWORD"), NULL);
  sm_test_proxy_stop (f->bob);
  sm_test_introduce (f->alice, f->bob);
  sm_test_introduce (f->bob, f->alice);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->alice, sm_test_proxy_free);
  g_clear_pointer (&f->bob, sm_test_proxy_free);
  g_free (f->marker);
}

/* The proxy's log has no GLib warning or critical (one in a worker thread
 * would not fail anything else). */
static void
assert_log_clean (SmTestProxy *p)
{
  g_autofree char *log = NULL;

  g_assert_true (g_file_get_contents (p->log_path, &log, NULL, NULL));
  if (strstr (log, "-WARNING **") != NULL || strstr (log, "-CRITICAL **") != NULL)
    g_error ("securemail-proxy logged a warning:\n%s", log);
}

/* Runs sm-receipts-view on @message as @p's user; returns its line. */
static char *
receipts_view (SmTestProxy *p, const char *name, const char *message)
{
  g_autofree char *file = g_build_filename (p->dir, name, NULL);
  g_autofree char *out = NULL, *err = NULL;

  g_assert_true (g_file_set_contents (file, message, -1, NULL));
  if (sm_test_proxy_run (p, sm_test_env ("SM_RECEIPTS_VIEW"), NULL, &out, &err, file, NULL) != 0)
    g_error ("sm-receipts-view failed: %s", err);
  return g_strstrip (g_steal_pointer (&out));
}

/* `securemail receipts --json` of @p: the recipients of message @mid. */
static JsonArray *
receipts_json (SmTestProxy *p, const char *mid, JsonParser **keep)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  JsonArray *messages;

  if (sm_test_cli (p, NULL, &out, &err, "receipts", "--json", NULL) != 0)
    g_error ("securemail receipts --json failed: %s", err);
  *keep = json_parser_new ();
  json_parser_load_from_data (*keep, out, -1, &error);
  g_assert_no_error (error);
  messages = json_node_get_array (json_parser_get_root (*keep));
  for (guint i = 0; i < json_array_get_length (messages); i++)
    {
      JsonObject *m = json_array_get_object_element (messages, i);
      if (g_strcmp0 (json_object_get_string_member (m, "message_id"), mid) == 0)
        return json_object_get_array_member (m, "recipients");
    }
  g_error ("%s is not in securemail receipts:\n%s", mid, out);
  return NULL;
}

static void
test_delivered_verified (Fixture *f, gconstpointer data)
{
  g_autofree char *mid = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *err = NULL;
  g_autofree char *landed = NULL;
  g_autofree char *line = NULL;
  g_autofree char *needle = NULL;
  g_autofree char *mdn = NULL;
  g_autofree char *text = NULL;
  g_autoptr(JsonParser) parser = NULL;
  JsonArray *rcpts;
  JsonObject *r;

  if (f->alice == NULL)
    return;

  /* 1. alice sends. */
  sm_test_proxy_restart (f->alice, "proxy-send.log");
  mid = g_strdup_printf ("<%s@example.test>", f->marker);
  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\n"
                         "To: Bob <bob@example.test>\r\n"
                         "Subject: receipts e2e\r\n"
                         "Message-ID: %s\r\n"
                         "\r\n"
                         "Please confirm you have this.\r\n", mid);
  file = g_build_filename (f->alice->dir, "send.eml", NULL);
  g_assert_true (g_file_set_contents (file, msg, -1, NULL));
  url = g_strdup_printf ("smtp://127.0.0.1:%u", f->alice->smtp_port);
  user = g_strdup_printf ("%s:%s", f->alice->address, f->alice->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "60", url, "-u", user,
                           "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                           "--upload-file", file, NULL };
    if (sm_test_run (argv, NULL, NULL, NULL, &err) != 0)
      g_error ("curl failed: %s", err);
  }
  landed = sm_test_maildir_read ("bob", mid, DELIVERY_TIMEOUT_MS);
  g_assert_nonnull (landed);
  /* Encrypted to bob, and the request is visible outside too. */
  g_assert_nonnull (strstr (landed, "multipart/encrypted"));
  g_assert_nonnull (strstr (landed, "Disposition-Notification-To: <alice@example.test>"));
  sm_test_proxy_stop (f->alice);
  assert_log_clean (f->alice);
  rcpts = receipts_json (f->alice, mid, &parser);
  g_assert_cmpuint (json_array_get_length (rcpts), ==, 1);
  r = json_array_get_object_element (rcpts, 0);
  g_assert_cmpstr (json_object_get_string_member (r, "recipient"), ==, "bob@example.test");
  g_assert_cmpstr (json_object_get_string_member (r, "status"), ==, "requested");
  g_clear_object (&parser);

  /* 2. bob's side serves it: one receipt, and only one. */
  line = receipts_view (f->bob, "landed.eml", landed);
  g_assert_cmpstr (line, ==, "trust=verified requested=1 queued=1");
  g_clear_pointer (&line, g_free);
  line = receipts_view (f->bob, "landed.eml", landed);
  g_assert_cmpstr (line, ==, "trust=verified requested=1 queued=1");
  g_clear_pointer (&line, g_free);

  /* 3. bob's relay worker sends it. */
  sm_test_proxy_restart (f->bob, "proxy-relay.log");
  needle = g_strdup_printf ("In-Reply-To: %s", mid);
  mdn = sm_test_maildir_read ("alice", needle, DELIVERY_TIMEOUT_MS);
  if (mdn == NULL)
    {
      g_autofree char *log = NULL;
      g_file_get_contents (f->bob->log_path, &log, NULL, NULL);
      g_error ("no receipt reached alice; bob's proxy log:\n%s", log ? log : "");
    }
  sm_test_proxy_stop (f->bob);
  assert_log_clean (f->bob);
  /* Protected on the way: the report is inside the encryption. */
  g_assert_nonnull (strstr (mdn, "multipart/encrypted"));
  g_assert_null (strstr (mdn, "Received-Content-MIC"));
  /* RFC 8098 §2.1: sent with a null reverse-path. */
  g_assert_nonnull (strstr (mdn, "Return-Path: <>"));

  /* 4. alice's side matches it. */
  line = receipts_view (f->alice, "receipt.eml", mdn);
  g_assert_cmpstr (line, ==, "trust=verified requested=0 queued=0");
  rcpts = receipts_json (f->alice, mid, &parser);
  g_assert_cmpuint (json_array_get_length (rcpts), ==, 1);
  r = json_array_get_object_element (rcpts, 0);
  g_assert_cmpstr (json_object_get_string_member (r, "status"), ==, "delivered-verified");
  g_assert_nonnull (strstr (json_object_get_string_member (r, "signer"), "bob@example.test"));
  g_assert_true (json_object_get_null_member (r, "reason"));

  /* The text listing says the same. */
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (sm_test_cli (f->alice, NULL, &text, &err, "receipts", NULL), ==, 0);
  g_assert_nonnull (strstr (text, mid));
  g_assert_nonnull (strstr (text, "delivered-verified"));
}

/* The same journey with nothing but mail clients on both sides: bob's
 * client reads the message through bob's proxy, which answers with a
 * signed receipt by itself; alice's client reads the receipt through
 * alice's proxy, which matches it. */
static void
test_through_imap (Fixture *f, gconstpointer data)
{
  g_autofree char *mid = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *file = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user = NULL;
  g_autofree char *err = NULL;
  g_autofree char *landed = NULL;
  g_autofree char *needle = NULL;
  g_autofree char *mdn = NULL;
  g_autoptr(JsonParser) parser = NULL;
  const char *status = NULL;
  JsonArray *rcpts;

  if (f->alice == NULL)
    return;
  sm_test_proxy_restart (f->alice, "proxy-send.log");
  mid = g_strdup_printf ("<%s-imap@example.test>", f->marker);
  msg = g_strdup_printf ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
                         "Subject: receipts through IMAP\r\nMessage-ID: %s\r\n\r\n"
                         "Read through IMAP: %s\r\n", mid, f->marker);
  file = g_build_filename (f->alice->dir, "send-imap.eml", NULL);
  g_assert_true (g_file_set_contents (file, msg, -1, NULL));
  url = g_strdup_printf ("smtp://127.0.0.1:%u", f->alice->smtp_port);
  user = g_strdup_printf ("%s:%s", f->alice->address, f->alice->local_password);
  {
    const char *argv[] = { "curl", "-sS", "--max-time", "60", url, "-u", user,
                           "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                           "--upload-file", file, NULL };
    if (sm_test_run (argv, NULL, NULL, NULL, &err) != 0)
      g_error ("curl failed: %s", err);
  }
  landed = sm_test_maildir_read ("bob", mid, DELIVERY_TIMEOUT_MS);
  g_assert_nonnull (landed);
  sm_test_proxy_stop (f->alice);

  /* Bob's client reads his INBOX through his proxy; the receipt goes out. */
  sm_test_proxy_restart (f->bob, "proxy-imap-read.log");
  sm_test_fetch_all (f->bob, mid);
  needle = g_strdup_printf ("In-Reply-To: %s", mid);
  mdn = sm_test_maildir_read ("alice", needle, DELIVERY_TIMEOUT_MS);
  if (mdn == NULL)
    {
      g_autofree char *log = NULL;
      g_file_get_contents (f->bob->log_path, &log, NULL, NULL);
      g_error ("no receipt reached alice; bob's proxy log:\n%s", log ? log : "");
    }
  sm_test_proxy_stop (f->bob);
  assert_log_clean (f->bob);

  /* Alice's client reads hers; her proxy matches the receipt. */
  sm_test_proxy_restart (f->alice, "proxy-imap-match.log");
  sm_test_fetch_all (f->alice, mid);
  for (guint i = 0; i < 100; i++)
    {
      g_clear_object (&parser);
      rcpts = receipts_json (f->alice, mid, &parser);
      g_assert_cmpuint (json_array_get_length (rcpts), ==, 1);
      status = json_object_get_string_member (json_array_get_object_element (rcpts, 0), "status");
      if (g_strcmp0 (status, "delivered-verified") == 0)
        break;
      g_usleep (100 * 1000);   /* the match runs in a worker thread */
    }
  g_assert_cmpstr (status, ==, "delivered-verified");
  /* The tray's view of it: ListReceipts over D-Bus from the running proxy. */
  {
    g_autofree char *out = NULL;
    g_autofree char *derr = NULL;
    const char *argv[] = { "gdbus", "call", "--session", "--dest", "org.securemail.Proxy",
                           "--object-path", "/org/securemail/Proxy",
                           "--method", "org.securemail.Proxy1.ListReceipts", NULL };

    g_assert_cmpint (sm_test_run (argv, NULL, NULL, &out, &derr), ==, 0);
    g_assert_nonnull (strstr (out, mid));
    g_assert_nonnull (strstr (out, "'delivered-verified'"));
    g_assert_nonnull (strstr (out, "bob@example.test"));
  }
  sm_test_proxy_stop (f->alice);
  assert_log_clean (f->alice);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/proxy/receipts/e2e/delivered-verified", Fixture, NULL, fixture_setup, test_delivered_verified,
              fixture_teardown);
  g_test_add ("/proxy/receipts/e2e/through-imap", Fixture, NULL, fixture_setup, test_through_imap,
              fixture_teardown);
  return g_test_run ();
}
