/* sm-support-report.h: the redacted diagnostics file a user sends to the
 * helpdesk (`securemail support-report FILE`, the Diagnostics page's button).
 *
 * What it holds: the program versions; the settings and the policy (they hold
 * no secret by design, and a key whose name suggests one is dropped anyway);
 * the settings check; the daemon's D-Bus status, key warning and outbound
 * queue (state, attempts, sizes, the recipients' domains: no content, no
 * Subject); counts of recent messages by trust status and of receipts by
 * status; the doctor checks; the own keys' and certificates' fingerprints
 * and expiry; the proxy's last log lines from the user journal.
 *
 * What it never holds: a password, passphrase, private key, Subject or body.
 * Mail addresses other than the account's own are cut to their domain
 * ("…@example.org") wherever they appear (queue errors, log lines).  As a
 * last guard the provider and local passwords and the key passphrases are
 * read from the keyring and cut out if they appear anywhere.
 *
 * GTK-free: the CLI and the GUI both call it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* At most this many of the proxy's log lines go into a report. */
#define SM_SUPPORT_REPORT_LOG_LINES 60
/* How long the report waits for the daemon's answers over D-Bus. */
#define SM_SUPPORT_REPORT_DBUS_TIMEOUT_MS 3000

/* Builds the report (blocking: runs the doctor checks, gpg and the D-Bus
 * calls).  @config_path may be NULL for the default; @front_end (may be NULL)
 * is a line about the calling program, e.g. its toolkit version.  Returns new
 * text. */
char    *sm_support_report_build (const char *config_path, const char *front_end);

/* Builds it and writes it to @out_path, mode 0600 (it describes the user's
 * setup, so it is theirs to hand over). */
gboolean sm_support_report_write (const char *config_path, const char *front_end, const char *out_path,
                                  GError **error);

/* Replaces every occurrence of @secret in @text by "[removed]".  Secrets
 * shorter than 4 characters are left alone (they would cut ordinary words);
 * no secret this project makes is that short. */
void     sm_support_report_cut_secret (GString *text, const char *secret);

/* A copy of @text with every mail address except @keep (may be NULL;
 * compared without case) cut to its domain: "bob@example.org" becomes
 * "…@example.org". */
char    *sm_support_report_reduce_addresses (const char *text, const char *keep);

G_END_DECLS
