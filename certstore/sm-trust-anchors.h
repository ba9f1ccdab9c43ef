/* sm-trust-anchors.h: the S/MIME trust anchors of one GnuPG home.
 *
 * gpg-agent only knows trustlist.txt (fingerprint + flags). We also need to
 * know who added an anchor, because the administrator's anchors (from the
 * folder named by `[policy] trust_anchors_dir` in policy.conf) are locked.
 * So the list lives in securemail-anchors.ini next to trustlist.txt, and
 * trustlist.txt is always regenerated from it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SM_POLICY_FILE_DEFAULT "/etc/securemail/policy.conf"
#define SM_POLICY_FILE_ENV     "SECUREMAIL_POLICY"
#define SM_TRUST_ANCHORS_FILE  "securemail-anchors.ini"
#define SM_TRUSTLIST_FILE      "trustlist.txt"

typedef struct {
  char *fingerprint;    /* SHA-1, upper-case hex without colons (as gpgsm) */
  char *subject;        /* for listings */
  gboolean admin;       /* from the policy folder: the user cannot remove it */
} SmTrustAnchor;

void           sm_trust_anchor_free (SmTrustAnchor *anchor);
SmTrustAnchor *sm_trust_anchor_new  (const char *fingerprint,
                                     const char *subject,
                                     gboolean    admin);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmTrustAnchor, sm_trust_anchor_free)

/* Reads the anchors of @home; an absent file is an empty list. */
GPtrArray *sm_trust_anchors_load (const char *home,
                                  GError    **error);

/* Writes @anchors (SmTrustAnchor) to the ini file and regenerates
 * trustlist.txt. Sets @changed (may be NULL) when trustlist.txt's content
 * changed, i.e. gpg-agent needs to re-read it. */
gboolean   sm_trust_anchors_save (const char *home,
                                  GPtrArray  *anchors,
                                  gboolean   *changed,
                                  GError    **error);

/* The policy file in force: $SECUREMAIL_POLICY or /etc/securemail/policy.conf. */
const char *sm_policy_file_path (void);

/* `[policy] trust_anchors_dir` from the policy file, or NULL (no error) when
 * there is no policy file or no such key. A relative path is taken relative
 * to the policy file's folder. */
char      *sm_policy_get_trust_anchors_dir (GError **error);

G_END_DECLS
