/* sm-secure-view.c: decrypt, verify, bind the signer, rebuild (issue 4).
 *
 * The walk: the root entity's Content-Type decides the layer (sm-mime.h).
 * Each layer is unwrapped with GPGME on its own context (gpgsm for S/MIME,
 * RFC 8551: decrypt, then verify opaque or detached, as gpgsm has no
 * combined operation; gpg for PGP/MIME, RFC 3156: decrypt_verify), and its
 * plaintext becomes the next root, up to SM_SECURE_VIEW_MAX_LAYERS.  What
 * lies inside an unprotected root is never looked at.  The trust status is
 * then computed from the collected gpgme_signature_t fields (summary,
 * status, validity) and the signer's key, never from gpg's text output.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <libetpan/libetpan.h>

#include "sm-certstore.h"
#include "sm-error.h"
#include "sm-mime.h"
#include "sm-secure-view.h"
#include "sm-wipe.h"

/* SmCertstore must not be used from two threads at once (sm-certstore.h);
 * builds run in several workers, so their few certstore calls take turns. */
static GMutex certstore_lock;

/* ---- trust names ------------------------------------------------------------ */

const char *
sm_trust_header_value (SmTrust trust)
{
  switch (trust)
    {
    case SM_TRUST_VERIFIED: return "verified";
    case SM_TRUST_SIGNED_UNTRUSTED: return "signed-untrusted";
    case SM_TRUST_SIGNER_MISMATCH: return "signer-mismatch";
    case SM_TRUST_INVALID: return "invalid";
    case SM_TRUST_DECRYPT_FAILED: return "decrypt-failed";
    case SM_TRUST_ENCRYPTED_UNSIGNED: return "encrypted-unsigned";
    case SM_TRUST_UNPROTECTED:
    default: return "unprotected";
    }
}

const char *
sm_trust_subject_tag (SmTrust trust)
{
  /* SPEC.md: these exact strings; they are protocol, not translated. */
  switch (trust)
    {
    case SM_TRUST_VERIFIED: return "[Verified]";
    case SM_TRUST_SIGNED_UNTRUSTED: return "[Unverified sender]";
    case SM_TRUST_SIGNER_MISMATCH: return "[WARNING: sender mismatch]";
    case SM_TRUST_INVALID: return "[WARNING: invalid signature]";
    case SM_TRUST_DECRYPT_FAILED: return "[Cannot decrypt]";
    case SM_TRUST_ENCRYPTED_UNSIGNED: return "[Encrypted, unsigned]";
    case SM_TRUST_UNPROTECTED:
    default: return NULL;
    }
}

static const SmTrust all_tagged[] = {
  SM_TRUST_VERIFIED, SM_TRUST_SIGNED_UNTRUSTED, SM_TRUST_SIGNER_MISMATCH,
  SM_TRUST_INVALID, SM_TRUST_DECRYPT_FAILED, SM_TRUST_ENCRYPTED_UNSIGNED,
};

void
sm_secure_view_free (SmSecureView *view)
{
  if (view == NULL)
    return;
  g_clear_pointer (&view->message, g_bytes_unref);
  g_free (view->signer);
  g_free (view->signer_address);
  g_free (view->signer_fingerprint);
  g_free (view->from);
  g_free (view->message_id);
  g_free (view->receipt_to);
  g_free (view->received_mic);
  g_free (view->received_micalg);
  g_free (view->detail);
  g_free (view);
}

/* ---- Subject tags ------------------------------------------------------------- */

/* Removes every trust tag from @text (case-insensitive, anywhere: a sender
 * can put one after "Re: " as easily as at the start).  Returns NULL when
 * there was none. */
static char *
remove_tags (const char *text)
{
  GString *s = g_string_new (text);
  gboolean changed = FALSE;
  gboolean again;

  /* Until nothing is left: removing "[Verified]" from
   * "[Veri[Verified]fied]" makes a new one. */
  do
    {
      again = FALSE;
      for (guint t = 0; t < G_N_ELEMENTS (all_tagged); t++)
        {
          const char *tag = sm_trust_subject_tag (all_tagged[t]);
          gsize n = strlen (tag);
          gsize i = 0;

          while (i + n <= s->len)
            {
              if (g_ascii_strncasecmp (s->str + i, tag, n) == 0)
                {
                  gsize cut = n;

                  /* Take one blank after the tag with it. */
                  if (i + cut < s->len && (s->str[i + cut] == ' ' || s->str[i + cut] == '\t'))
                    cut++;
                  g_string_erase (s, i, cut);
                  changed = again = TRUE;
                }
              else
                i++;
            }
        }
    }
  while (again);

  if (!changed)
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  return g_strstrip (g_string_free (s, FALSE));
}

/* RFC 2047 encoded words for UTF-8 @text, each under 76 characters, split on
 * character boundaries and folded (RFC 2047 section 2). */
static void
append_encoded_words (GString *out, const char *text)
{
  const char *p = text;
  gboolean ascii = TRUE;

  for (const char *q = text; *q != '\0'; q++)
    if ((guchar) *q >= 0x7f || (guchar) *q < 0x20)
      ascii = FALSE;
  if (ascii)
    {
      g_string_append (out, text);
      return;
    }
  while (*p != '\0')
    {
      const char *end = p;
      g_autofree char *b64 = NULL;

      while (*end != '\0' && end - p < 45)
        end = g_utf8_next_char (end);
      b64 = g_base64_encode ((const guchar *) p, end - p);
      if (p != text)
        g_string_append (out, "\r\n ");
      g_string_append_printf (out, "=?UTF-8?B?%s?=", b64);
      p = end;
    }
}

/* Header values we write ourselves (a DN, an address) come from
 * certificates a sender chose: no control characters may reach the header. */
static char *
header_safe (const char *value)
{
  g_autofree char *valid = g_utf8_make_valid (value, -1);
  GString *s = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p++)
    g_string_append_c (s, ((guchar) *p < 0x20 || *p == 0x7f) ? ' ' : *p);
  return g_string_free (s, FALSE);
}

/* gpgsm writes an e-mail address in a subject DN as its OID with the DER
 * value in hex ("1.2.840.113549.1.9.1=#616C696365..."): readable in the
 * X-SecureMail-Signer field as "EMail=alice@...".  Anything that does not
 * decode to printable ASCII is left as it was. */
#define OID_EMAIL "1.2.840.113549.1.9.1=#"

static char *
readable_dn (const char *dn)
{
  GString *out = g_string_new (NULL);
  const char *p = dn;
  const char *hit;

  while ((hit = strstr (p, OID_EMAIL)) != NULL)
    {
      const char *hex = hit + strlen (OID_EMAIL);
      gsize n = strspn (hex, "0123456789abcdefABCDEF");
      g_autoptr(GString) text = g_string_new (NULL);
      gboolean ok = n > 0 && n % 2 == 0;

      for (gsize i = 0; ok && i < n; i += 2)
        {
          int c = g_ascii_xdigit_value (hex[i]) * 16 + g_ascii_xdigit_value (hex[i + 1]);
          ok = c > 0x20 && c < 0x7f && c != ',';
          g_string_append_c (text, (char) c);
        }
      g_string_append_len (out, p, hit - p);
      if (ok)
        g_string_append_printf (out, "EMail=%s", text->str);
      else
        g_string_append_len (out, hit, (gssize) (strlen (OID_EMAIL) + n));
      p = hex + n;
    }
  g_string_append (out, p);
  return g_string_free (out, FALSE);
}

/* ---- header sections ------------------------------------------------------------- */

typedef struct {
  const char *data;   /* borrowed */
  gsize header_len;
  gsize body_start;
  gsize len;
  GArray *fields;
} Entity;

static void
entity_clear (Entity *e)
{
  g_clear_pointer (&e->fields, g_array_unref);
}

static gboolean
entity_init (Entity *e, GBytes *bytes, GError **error)
{
  e->data = g_bytes_get_data (bytes, &e->len);
  if (e->data == NULL)
    e->data = "";
  e->header_len = sm_mime_header_length (e->data, e->len, &e->body_start);
  e->fields = sm_mime_fields_parse (e->data, e->header_len, error);
  return e->fields != NULL;
}

static const SmMimeField *
entity_field (const Entity *e, guint i)
{
  return &g_array_index (e->fields, SmMimeField, i);
}

static char *
entity_value (const Entity *e, const char *name)
{
  int i = sm_mime_fields_find (e->data, e->fields, name);

  return i < 0 ? NULL : sm_mime_field_value (e->data, entity_field (e, i));
}

static guint
entity_count (const Entity *e, const char *name)
{
  guint n = 0;

  for (guint i = 0; i < e->fields->len; i++)
    if (sm_mime_field_is (e->data, entity_field (e, i), name))
      n++;
  return n;
}

static gboolean
is_content_field (const Entity *e, const SmMimeField *f)
{
  return sm_mime_field_has_prefix (e->data, f, "Content-") || sm_mime_field_is (e->data, f, "MIME-Version");
}

/* Our own fields, which only this proxy may set (SPEC.md). */
static gboolean
is_our_field (const Entity *e, const SmMimeField *f)
{
  return sm_mime_field_has_prefix (e->data, f, "X-SecureMail-");
}

/* The single address of a From: value, lower-case; NULL unless the value is
 * exactly one mailbox (RFC 5322 section 3.6.2 allows a list, but then no
 * signer can be bound to "the" sender). */
static char *
single_address (const char *value)
{
  struct mailimf_mailbox_list *list = NULL;
  size_t index = 0;
  char *address = NULL;
  gsize len = strlen (value);

  if (mailimf_mailbox_list_parse (value, len, &index, &list) != MAILIMF_NO_ERROR || list == NULL)
    return NULL;
  /* Trailing junk ("a@b <c@d>") means the parser saw something else than a
   * client shows: refuse to bind rather than guess. */
  while (index < len && g_ascii_isspace (value[index]))
    index++;
  if (index == len && clist_count (list->mb_list) == 1)
    {
      clistiter *it = clist_begin (list->mb_list);
      struct mailimf_mailbox *mb = it ? clist_content (it) : NULL;

      if (mb != NULL && mb->mb_addr_spec != NULL && strchr (mb->mb_addr_spec, '@') != NULL)
        address = g_ascii_strdown (mb->mb_addr_spec, -1);
    }
  mailimf_mailbox_list_free (list);
  return address;
}

static char *
strip_angle (const char *value)
{
  const char *lt = strchr (value, '<');
  const char *gt = lt ? strchr (lt, '>') : NULL;

  if (lt != NULL && gt != NULL)
    return g_strndup (lt + 1, gt - lt - 1);
  return g_strdup (value);
}

/* ---- forged fields on unprotected mail ---------------------------------------- */

static gboolean
subject_has_tag (const Entity *e, const SmMimeField *f, char **stripped)
{
  g_autofree char *value = sm_mime_field_value (e->data, f);
  g_autofree char *decoded = sm_mime_decode_header_value (value);

  *stripped = remove_tags (decoded);
  return *stripped != NULL;
}

static void
append_subject (GString *out, const char *stripped, const char *eol)
{
  g_string_append (out, "Subject: ");
  append_encoded_words (out, stripped);
  g_string_append (out, eol);
}

GBytes *
sm_secure_view_strip_forged (GBytes *raw)
{
  Entity e = { 0 };
  g_autoptr(GString) out = NULL;
  gboolean forged = FALSE;
  const char *eol;

  g_return_val_if_fail (raw != NULL, NULL);

  if (!entity_init (&e, raw, NULL))
    {
      /* Past our header limits: we cannot tell, so we cannot vouch either;
       * the bytes go through as they are, with no status of ours. */
      entity_clear (&e);
      return g_bytes_ref (raw);
    }
  for (guint i = 0; i < e.fields->len && !forged; i++)
    {
      const SmMimeField *f = entity_field (&e, i);
      g_autofree char *stripped = NULL;

      forged = is_our_field (&e, f) || (sm_mime_field_is (e.data, f, "Subject") && subject_has_tag (&e, f, &stripped));
    }
  if (!forged)
    {
      entity_clear (&e);
      return g_bytes_ref (raw);
    }

  /* Our line end is that of the empty line ending the header section (or
   * of its last line), so a second pass adds exactly the same bytes. */
  if (e.header_len < e.len)
    eol = e.data[e.header_len] == '\r' ? "\r\n" : "\n";
  else
    eol = (e.len >= 2 && e.data[e.len - 1] == '\n' && e.data[e.len - 2] == '\r')
          || e.len == 0 || e.data[e.len - 1] != '\n' ? "\r\n" : "\n";

  /* Everything but the forged fields stays as it was, byte for byte,
   * including lines that are not fields at all. */
  out = g_string_sized_new (e.len + 64);
  {
    gsize pos = 0;

    for (guint i = 0; i < e.fields->len; i++)
      {
        const SmMimeField *f = entity_field (&e, i);
        g_autofree char *stripped = NULL;
        gboolean ours = is_our_field (&e, f);
        gboolean tagged = !ours && sm_mime_field_is (e.data, f, "Subject") && subject_has_tag (&e, f, &stripped);

        if (!ours && !tagged)
          continue;
        g_string_append_len (out, e.data + pos, f->start - pos);
        if (tagged)
          append_subject (out, stripped, eol);
        pos = f->start + f->len;
      }
    g_string_append_len (out, e.data + pos, e.header_len - pos);
  }
  if (out->len > 0 && out->str[out->len - 1] != '\n')
    g_string_append (out, eol);
  g_string_append_printf (out, "X-SecureMail-Trust: %s%s", sm_trust_header_value (SM_TRUST_UNPROTECTED), eol);
  if (e.header_len < e.len)
    g_string_append_len (out, e.data + e.header_len, e.len - e.header_len);
  else
    g_string_append (out, eol);
  entity_clear (&e);
  return g_string_free_to_bytes (g_steal_pointer (&out));
}

gboolean
sm_secure_view_is_protected (const char *header,
                             gsize       len)
{
  g_autoptr(SmMimeContentType) ct = NULL;
  gsize body_start;

  g_return_val_if_fail (header != NULL || len == 0, FALSE);
  /* A whole message may be passed as well: only its header section counts. */
  len = sm_mime_header_length (header, len, &body_start);
  ct = sm_mime_content_type_of_header (header, len);
  return sm_mime_layer_of (ct) != SM_MIME_LAYER_NONE;
}

/* ---- GPGME ---------------------------------------------------------------------- */

typedef struct {
  SmProtocol protocol;
  char *fpr;
  gpgme_sigsum_t summary;
  gpgme_error_t status;
  gpgme_validity_t validity;
  gpgme_error_t validity_reason;
  gboolean wrong_key_usage;
} SigInfo;

static void
sig_info_free (SigInfo *s)
{
  g_free (s->fpr);
  g_free (s);
}

typedef struct {
  SmCertstore *store;
  gboolean encrypted;
  gboolean signed_;
  gboolean decrypt_failed;
  gboolean have_protocol;
  SmProtocol protocol;
  char *detail;                 /* translated, first problem found */
  GPtrArray *sigs;              /* SigInfo */
  GBytes *failed_entity;        /* decrypt-failed: the entity we could not open */
  GBytes *signed_content;       /* the exact bytes the innermost signature covers */
} Build;

static void
build_clear (Build *b)
{
  g_free (b->detail);
  g_clear_pointer (&b->sigs, g_ptr_array_unref);
  g_clear_pointer (&b->failed_entity, g_bytes_unref);
  g_clear_pointer (&b->signed_content, g_bytes_unref);
}

/* Remembers what a signature layer covered, for the receipt's MIC; the
 * innermost layer wins, as that is what a sender's proxy signs last. */
static void
build_signed_content (Build *b, GBytes *content)
{
  g_clear_pointer (&b->signed_content, g_bytes_unref);
  b->signed_content = g_bytes_ref (content);
}

static void
build_detail (Build *b, const char *detail)
{
  if (b->detail == NULL)
    b->detail = g_strdup (detail);
}

static void
build_protocol (Build *b, SmProtocol p)
{
  if (!b->have_protocol)
    {
      b->protocol = p;
      b->have_protocol = TRUE;
    }
}

static gpgme_ctx_t
new_context (Build *b, SmProtocol protocol, GError **error)
{
  g_autoptr(GError) local = NULL;
  gpgme_ctx_t ctx = sm_certstore_new_context (b->store, protocol, &local);

  if (ctx == NULL)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_FAILED, "%s", local->message);
      return NULL;
    }
  /* No passphrase callback, ever, on CMS contexts (gpgsm fails with "Not
   * implemented"): keys are unlocked by presets (sm_certstore_unlock()).
   * S/MIME contexts are reused only after clean operations (smime_run()). */
  if (protocol == SM_PROTOCOL_SMIME)
    gpgme_set_offline (ctx, 1);
  return ctx;
}

static void drop_plaintext (gpgme_data_t data);

/* Idle gpgsm servers, reused by whichever worker thread builds next.
 * GPGME starts a `gpgsm --server` process per context; two per S/MIME
 * message (decrypt, then verify the signed content inside) made the first
 * fetch half as fast as a `gpgsm --decrypt` loop (bench/run.sh: 41 vs 84
 * msg/s; 78 msg/s with reuse).  Kept per process rather than per thread:
 * GLib's pool grows to a dozen threads and more while builds wait, and a
 * server per thread meant 27 gpgsm starts for 500 messages (perf).  Taken
 * under smime_gate (smime_run()), so about one is busy at a time.
 * A context is kept only after an operation that went cleanly: GPGME's reset
 * context was seen to fail the next operations after some failures
 * ("Invalid value passed to IPC"), and every operation on a reused context
 * that fails is run again on a fresh one (smime_run()), since its server may
 * still talk to a gpg-agent that was replaced meanwhile. */
typedef struct {
  char *home;            /* the store the context belongs to */
  gpgme_ctx_t ctx;
} SpareContext;

static void
spare_context_free (SpareContext *spare)
{
  if (spare == NULL)
    return;
  gpgme_release (spare->ctx);
  g_free (spare->home);
  g_free (spare);
}

static GMutex spares_lock;
static GQueue spares = G_QUEUE_INIT;    /* SpareContext*, last used first */

/* An idle context of the store at @home, or NULL. */
static gpgme_ctx_t
spare_take (const char *home)
{
  SpareContext *spare = NULL;
  gpgme_ctx_t ctx = NULL;

  g_mutex_lock (&spares_lock);
  for (GList *l = spares.head; l != NULL; l = l->next)
    if (g_strcmp0 (((SpareContext *) l->data)->home, home) == 0)
      {
        spare = l->data;
        g_queue_delete_link (&spares, l);
        break;
      }
  g_mutex_unlock (&spares_lock);
  if (spare != NULL)
    {
      ctx = g_steal_pointer (&spare->ctx);
      spare_context_free (spare);
    }
  return ctx;
}

/* Keeps @ctx for the next build, or releases it when enough are idle. */
static void
spare_give (const char *home, gpgme_ctx_t ctx)
{
  SpareContext *spare = g_new0 (SpareContext, 1);

  spare->home = g_strdup (home);
  spare->ctx = ctx;
  g_mutex_lock (&spares_lock);
  g_queue_push_head (&spares, spare);
  spare = spares.length > SM_SECURE_VIEW_SPARE_SERVERS ? g_queue_pop_tail (&spares) : NULL;
  g_mutex_unlock (&spares_lock);
  /* Outside the lock: releasing waits for that gpgsm to end. */
  spare_context_free (spare);
}

typedef enum {
  SMIME_DECRYPT,          /* in -> out */
  SMIME_VERIFY_OPAQUE,    /* in (signed data) -> out (its content) */
  SMIME_VERIFY_DETACHED,  /* in (signature), text (the signed part) */
} SmimeOp;

/* The per-message gpgsm operations (decrypt, verify) run one at a time in
 * this process.  gpgsm 2.2 guards its keybox with a dot-lock file and waits
 * for a held lock by sleeping 50 ms, doubling up to 800 ms while the same
 * process holds it again at each try.  A DECRYPT holds that lock for its
 * whole run (the recipient search's handle lives until the end, gpg-agent's
 * private-key operation included: strace shows 7 of 7.5 ms), and a VERIFY
 * takes it four times (storing the signature's certificate and its flags).
 * Run side by side, every server but one sleeps: four at once fetched 80-96
 * messages/s where one server alone decrypts and verifies 115/s.  gpg-agent
 * does one private-key operation at a time anyway, so decryptions gain
 * nothing from running together; MIME parsing and rebuilding still run in
 * parallel outside the gate.  The rarer gpgsm runs (a signer's key lookup
 * and certificate collection, once per signer; the refinement of a failed
 * decryption; unlocking; signing outgoing mail) stay outside it and may
 * still meet the lock, at the cost they always had.  A wedged gpg-agent
 * holds the gate until the agent watchdog (SM_SECURE_FETCH_AGENT_STALL_S)
 * replaces it and the operation fails; a keybox lock held by another
 * program stalls every S/MIME build with or without the gate. */
static GMutex smime_gate;
static gint smime_running;        /* operations under way; atomic */
static gint smime_running_peak;   /* most seen at once; atomic */

guint
sm_secure_view_gpgsm_peak (void)
{
  return (guint) g_atomic_int_get (&smime_running_peak);
}

/* Call with smime_gate held. */
static gpgme_error_t
smime_op_once (gpgme_ctx_t ctx, SmimeOp op, gpgme_data_t in, gpgme_data_t text, gpgme_data_t out)
{
  gint now = g_atomic_int_add (&smime_running, 1) + 1;
  gint peak;
  gpgme_error_t err;

  while ((peak = g_atomic_int_get (&smime_running_peak)) < now
         && !g_atomic_int_compare_and_exchange (&smime_running_peak, peak, now))
    ;
  switch (op)
    {
    case SMIME_DECRYPT:
      err = gpgme_op_decrypt (ctx, in, out);
      break;
    case SMIME_VERIFY_OPAQUE:
      err = gpgme_op_verify (ctx, in, NULL, out);
      break;
    case SMIME_VERIFY_DETACHED:
    default:
      err = gpgme_op_verify (ctx, in, text, NULL);
      break;
    }
  g_atomic_int_add (&smime_running, -1);
  return err;
}

/* TRUE when @ctx may serve another operation: no error, and for a
 * verification no signature with a bad status either. */
static gboolean
smime_op_clean (gpgme_ctx_t ctx, SmimeOp op, gpgme_error_t err)
{
  gpgme_verify_result_t result;

  if (err != 0)
    return FALSE;
  if (op == SMIME_DECRYPT)
    return TRUE;
  result = gpgme_op_verify_result (ctx);
  for (gpgme_signature_t sig = result ? result->signatures : NULL; sig != NULL; sig = sig->next)
    if (gpg_err_code (sig->status) != GPG_ERR_NO_ERROR)
      return FALSE;
  return TRUE;
}

/* Runs @op on an idle context (or a new one), under smime_gate: the
 * context is taken inside it, so builds waiting for the gate hold none and
 * about one server is ever busy.  *ctx_out is the context the results are
 * read from; give it to smime_done().  FALSE with @error set when no
 * context could be made. */
static gboolean
smime_run (Build *b, SmimeOp op, gpgme_data_t in, gpgme_data_t text, gpgme_data_t *out,
           gpgme_ctx_t *ctx_out, gpgme_error_t *err, GError **error)
{
  gpgme_ctx_t ctx, stale = NULL;

  g_mutex_lock (&smime_gate);
  ctx = spare_take (sm_certstore_get_home (b->store));
  if (ctx != NULL)
    {
      *err = smime_op_once (ctx, op, in, text, out ? *out : NULL);
      if (*err != 0)
        {
          /* Once more on a fresh server, from the start of the input. */
          stale = g_steal_pointer (&ctx);
          gpgme_data_seek (in, 0, SEEK_SET);
          if (text != NULL)
            gpgme_data_seek (text, 0, SEEK_SET);
          if (out != NULL)
            {
              drop_plaintext (*out);
              gpgme_data_new (out);
            }
        }
    }
  if (ctx == NULL)
    {
      ctx = new_context (b, SM_PROTOCOL_SMIME, error);
      if (ctx != NULL)
        *err = smime_op_once (ctx, op, in, text, out ? *out : NULL);
    }
  g_mutex_unlock (&smime_gate);
  /* Outside the gate: releasing waits for that gpgsm to end. */
  if (stale != NULL)
    gpgme_release (stale);
  if (ctx == NULL)
    return FALSE;
  *ctx_out = ctx;
  return TRUE;
}

/* Keeps @ctx for reuse when @clean, else releases it. */
static void
smime_done (Build *b, gpgme_ctx_t ctx, gboolean clean)
{
  if (clean)
    spare_give (sm_certstore_get_home (b->store), ctx);
  else
    gpgme_release (ctx);
}

/* Plaintext out of a gpgme_data_t, wiped in GPGME's buffer. */
static GBytes *
take_plaintext (gpgme_data_t data)
{
  size_t len = 0;
  char *mem = gpgme_data_release_and_get_mem (data, &len);
  GBytes *bytes = g_bytes_new (mem, len);

  sm_wipe (mem, len);
  gpgme_free (mem);
  return bytes;
}

static void
drop_plaintext (gpgme_data_t data)
{
  if (data != NULL)
    g_bytes_unref (take_plaintext (data));
}

static void
collect_signatures (Build *b, SmProtocol protocol, gpgme_ctx_t ctx)
{
  gpgme_verify_result_t result = gpgme_op_verify_result (ctx);

  b->signed_ = TRUE;
  for (gpgme_signature_t sig = result ? result->signatures : NULL; sig != NULL; sig = sig->next)
    {
      SigInfo *s = g_new0 (SigInfo, 1);

      s->protocol = protocol;
      s->fpr = g_strdup (sig->fpr);
      s->summary = sig->summary;
      s->status = sig->status;
      s->validity = sig->validity;
      s->validity_reason = sig->validity_reason;
      s->wrong_key_usage = sig->wrong_key_usage;
      g_ptr_array_add (b->sigs, s);
    }
}

/* A missing passphrase is the one failure that must not become a status:
 * the client would cache "cannot decrypt" for a message it can read after
 * `securemail unlock`. */
static gboolean
is_locked_error (gpgme_error_t err)
{
  return sm_certstore_error_code_from_gpgme (err) == SM_CERTSTORE_ERROR_LOCKED;
}

/* gpgsm reports "No secret key" also when gpg-agent has the key but no
 * passphrase for it (no pinentry may ask).  When one of the message's
 * recipients is a secret key of ours, the key is there and locked: say so,
 * so that the message is refused until unlock instead of being shown (and
 * cached by the client) as "cannot decrypt". */
static gpgme_error_t
refine_decrypt_error (Build *b, SmProtocol protocol, gpgme_ctx_t ctx, gpgme_error_t err)
{
  gpgme_decrypt_result_t res;
  g_autoptr(GPtrArray) keyids = g_ptr_array_new_with_free_func (g_free);
  gpgme_ctx_t list;
  gpgme_key_t key = NULL;
  gboolean ours = FALSE;

  if (gpgme_err_code (err) != GPG_ERR_NO_SECKEY)
    return err;
  res = gpgme_op_decrypt_result (ctx);
  for (gpgme_recipient_t r = res ? res->recipients : NULL; r != NULL; r = r->next)
    if (r->keyid != NULL)
      g_ptr_array_add (keyids, g_strdup (r->keyid));
  /* A new context: gpgsm's cannot start another operation after a failed one. */
  if (keyids->len == 0 || (list = new_context (b, protocol, NULL)) == NULL)
    return err;
  if (gpgme_op_keylist_start (list, NULL, 1) == 0)
    {
      while (!ours && gpgme_op_keylist_next (list, &key) == 0)
        {
          for (gpgme_subkey_t sub = key->subkeys; sub != NULL && !ours; sub = sub->next)
            for (guint i = 0; i < keyids->len && !ours; i++)
              ours = sub->keyid != NULL && g_ascii_strcasecmp (sub->keyid, keyids->pdata[i]) == 0;
          gpgme_key_unref (key);
        }
      gpgme_op_keylist_end (list);
    }
  gpgme_release (list);
  if (ours)
    g_message ("%s reports no secret key for a message to one of ours: taken as locked",
               protocol == SM_PROTOCOL_SMIME ? "gpgsm" : "gpg");
  return ours ? gpgme_error (GPG_ERR_NO_PASSPHRASE) : err;
}

static gboolean
decrypt_failed (Build *b, GBytes *entity, gpgme_error_t err, GError **error)
{
  if (is_locked_error (err))
    {
      g_message ("Decryption refused for want of a passphrase: %s <%s>", gpgme_strerror (err),
                 gpgme_strsource (err));
      g_set_error (error, SM_ERROR, SM_ERROR_LOCKED,
                   _("SecureMail is locked: unlock it (securemail unlock, or from the tray) to read this encrypted message"));
      return FALSE;
    }
  b->decrypt_failed = TRUE;
  b->failed_entity = g_bytes_ref (entity);
  if (gpgme_err_code (err) == GPG_ERR_NO_SECKEY)
    build_detail (b, _("The message is not encrypted to any of your keys"));
  else
    {
      g_autofree char *d = g_strdup_printf (_("The message cannot be decrypted: %s"), gpgme_strerror (err));
      build_detail (b, d);
    }
  return TRUE;
}

/* S/MIME application/pkcs7-mime (RFC 8551 section 3.2): enveloped-data is
 * decrypted, signed-data verified (opaque).  Sets *@next to the inner
 * entity, or leaves it NULL when the walk ends here. */
static gboolean
unwrap_pkcs7_mime (Build *b, GBytes *entity, const SmMimeContentType *ct, GBytes **next, GError **error)
{
  Entity e = { 0 };
  g_autoptr(GBytes) der = NULL;
  const char *smime_type = sm_mime_content_type_param (ct, "smime-type");
  gboolean want_verify = smime_type != NULL && g_ascii_strcasecmp (smime_type, "signed-data") == 0;
  gpgme_ctx_t ctx;
  gpgme_data_t in = NULL, out = NULL;
  gpgme_error_t err;
  SmimeOp op;
  int encoding = MAILMIME_MECHANISM_8BIT;

  build_protocol (b, SM_PROTOCOL_SMIME);
  if (!entity_init (&e, entity, error))
    return FALSE;
  {
    g_autofree char *cte = entity_value (&e, "Content-Transfer-Encoding");

    if (cte != NULL && g_ascii_strcasecmp (cte, "base64") == 0)
      encoding = MAILMIME_MECHANISM_BASE64;
    else if (cte != NULL && g_ascii_strcasecmp (cte, "quoted-printable") == 0)
      encoding = MAILMIME_MECHANISM_QUOTED_PRINTABLE;
  }
  der = sm_mime_decode_body (e.data + e.body_start, e.len - e.body_start, encoding);
  entity_clear (&e);

  if (!want_verify)
    b->encrypted = TRUE;
  gpgme_data_new_from_mem (&in, g_bytes_get_data (der, NULL), g_bytes_get_size (der), 0);
  gpgme_data_new (&out);
  op = want_verify ? SMIME_VERIFY_OPAQUE : SMIME_DECRYPT;
  if (!smime_run (b, op, in, NULL, &out, &ctx, &err, error))
    {
      drop_plaintext (out);
      gpgme_data_release (in);
      return FALSE;
    }
  if (want_verify)
    {
      if (err)
        {
          /* No signature could be read at all: a signature layer with no
           * valid signer (zero signers) is invalid, never unsigned. */
          g_autofree char *d = g_strdup_printf (_("The signature cannot be checked: %s"), gpgme_strerror (err));
          b->signed_ = TRUE;
          build_detail (b, d);
          drop_plaintext (out);
        }
      else
        {
          collect_signatures (b, SM_PROTOCOL_SMIME, ctx);
          *next = take_plaintext (out);
          build_signed_content (b, *next);
        }
    }
  else
    {
      if (err)
        {
          err = refine_decrypt_error (b, SM_PROTOCOL_SMIME, ctx, err);
          drop_plaintext (out);
          gpgme_data_release (in);
          gpgme_release (ctx);
          return decrypt_failed (b, entity, err, error);
        }
      *next = take_plaintext (out);
    }
  gpgme_data_release (in);
  smime_done (b, ctx, smime_op_clean (ctx, op, err));
  return TRUE;
}

/* multipart/signed (RFC 1847 section 2.1): the first part's exact bytes are
 * verified against the detached signature in the second. */
static gboolean
unwrap_signed (Build *b, GBytes *entity, SmProtocol protocol, GBytes **next, GError **error)
{
  gsize len;
  const char *data = g_bytes_get_data (entity, &len);
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) parts = NULL;
  g_autoptr(GBytes) signature = NULL;
  const SmMimePart *content, *sigpart;
  gpgme_ctx_t ctx;
  gboolean made;   /* a context ran the verification */
  gpgme_data_t text = NULL, sig = NULL;
  gpgme_error_t err;

  build_protocol (b, protocol);
  b->signed_ = TRUE;
  parts = sm_mime_multipart_children (data, len, &local);
  if (parts == NULL)
    {
      if (g_error_matches (local, SM_ERROR, SM_ERROR_TOO_BIG))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      build_detail (b, _("The signed message is malformed"));
      return TRUE;
    }
  if (parts->len != 2)
    {
      /* RFC 1847: exactly two parts.  A third would be content that the
       * signature does not cover. */
      build_detail (b, _("The signed message does not have exactly two parts"));
      return TRUE;
    }
  content = parts->pdata[0];
  sigpart = parts->pdata[1];
  signature = sm_mime_decode_body (data + sigpart->body_start, sigpart->body_len, sigpart->encoding);

  gpgme_data_new_from_mem (&text, data + content->start, content->len, 0);
  gpgme_data_new_from_mem (&sig, g_bytes_get_data (signature, NULL), g_bytes_get_size (signature), 0);
  if (protocol == SM_PROTOCOL_SMIME)
    made = smime_run (b, SMIME_VERIFY_DETACHED, sig, text, NULL, &ctx, &err, error);
  else
    {
      ctx = new_context (b, protocol, error);
      made = ctx != NULL;
      if (made)
        err = gpgme_op_verify (ctx, sig, text, NULL);
    }
  if (!made)
    {
      gpgme_data_release (text);
      gpgme_data_release (sig);
      return FALSE;
    }
  if (err)
    {
      g_autofree char *d = g_strdup_printf (_("The signature cannot be checked: %s"), gpgme_strerror (err));
      build_detail (b, d);
    }
  else
    collect_signatures (b, protocol, ctx);
  gpgme_data_release (text);
  gpgme_data_release (sig);
  if (protocol == SM_PROTOCOL_SMIME)
    smime_done (b, ctx, smime_op_clean (ctx, SMIME_VERIFY_DETACHED, err));
  else
    gpgme_release (ctx);
  /* The content is shown even when the signature is bad: the status says
   * what it is worth. */
  *next = g_bytes_new_from_bytes (entity, content->start, content->len);
  if (!err)
    build_signed_content (b, *next);
  return TRUE;
}

/* An ASCII-armored OpenPGP message (RFC 4880 section 6.2) at the start,
 * leading white space aside. */
static gboolean
looks_armored (GBytes *data)
{
  static const char begin[] = "-----BEGIN PGP MESSAGE-----";
  gsize len = 0;
  const char *p = g_bytes_get_data (data, &len);
  gsize i = 0;

  while (i < len && g_ascii_isspace (p[i]))
    i++;
  return len - i >= sizeof begin - 1 && memcmp (p + i, begin, sizeof begin - 1) == 0;
}

/* multipart/encrypted (RFC 3156 section 4): the second part is the OpenPGP
 * message; decrypt_verify also reads a signature inside it (section 6.2). */
static gboolean
unwrap_pgp_encrypted (Build *b, GBytes *entity, GBytes **next, GError **error)
{
  gsize len;
  const char *data = g_bytes_get_data (entity, &len);
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) parts = NULL;
  g_autoptr(GBytes) cipher = NULL;
  const SmMimePart *encpart;
  gpgme_ctx_t ctx;
  gpgme_data_t in = NULL, out = NULL;
  gpgme_error_t err;
  gpgme_decrypt_result_t dres;
  gpgme_verify_result_t vres;

  build_protocol (b, SM_PROTOCOL_OPENPGP);
  b->encrypted = TRUE;
  parts = sm_mime_multipart_children (data, len, &local);
  if (parts == NULL && g_error_matches (local, SM_ERROR, SM_ERROR_TOO_BIG))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (parts == NULL || parts->len != 2)
    {
      b->decrypt_failed = TRUE;
      b->failed_entity = g_bytes_ref (entity);
      build_detail (b, _("The encrypted message is malformed"));
      return TRUE;
    }
  encpart = parts->pdata[1];
  cipher = sm_mime_decode_body (data + encpart->body_start, encpart->body_len, encpart->encoding);

  for (guint attempt = 1;; attempt++)
    {
      ctx = new_context (b, SM_PROTOCOL_OPENPGP, error);
      if (ctx == NULL)
        return FALSE;
      gpgme_data_new_from_mem (&in, g_bytes_get_data (cipher, NULL), g_bytes_get_size (cipher), 0);
      gpgme_data_new (&out);
      err = gpgme_op_decrypt_verify (ctx, in, out);
      /* "No data": gpg ended without saying it decrypted or failed to.  On
       * an armored message that is gpg gone before its first word (seen
       * rarely in the sanitizer test runs), not the message: once more on a
       * new gpg, before the failure becomes the message's view for good. */
      if (gpgme_err_code (err) != GPG_ERR_NO_DATA || attempt >= SM_SECURE_VIEW_GPG_ATTEMPTS
          || !looks_armored (cipher))
        break;
      g_message ("gpg gave no result for an OpenPGP message (%s); trying again", gpgme_strsource (err));
      drop_plaintext (out);
      gpgme_data_release (in);
      gpgme_release (ctx);
    }
  dres = gpgme_op_decrypt_result (ctx);
  if (!err && dres != NULL && dres->legacy_cipher_nomdc)
    {
      /* Ciphertext without integrity protection can be modified without
       * detection (EFAIL CFB gadgets): its plaintext is never shown. */
      err = gpgme_error (GPG_ERR_BAD_DATA);
    }
  if (err)
    {
      gboolean nomdc = dres != NULL && dres->legacy_cipher_nomdc;

      if (!nomdc)
        err = refine_decrypt_error (b, SM_PROTOCOL_OPENPGP, ctx, err);
      drop_plaintext (out);
      gpgme_data_release (in);
      gpgme_release (ctx);
      if (nomdc || gpgme_err_code (err) == GPG_ERR_BAD_DATA)
        build_detail (b, _("The message is not integrity protected (no MDC) and was not decrypted"));
      return decrypt_failed (b, entity, err, error);
    }
  vres = gpgme_op_verify_result (ctx);
  *next = take_plaintext (out);
  if (vres != NULL && vres->signatures != NULL)
    {
      collect_signatures (b, SM_PROTOCOL_OPENPGP, ctx);
      /* RFC 3156 §6.2: the signature inside covers the whole plaintext. */
      build_signed_content (b, *next);
    }
  gpgme_data_release (in);
  gpgme_release (ctx);
  return TRUE;
}

/* ---- trust ------------------------------------------------------------------------- */

/* Order of precedence when several signatures (or layers) disagree: the
 * worst wins, so one bad signature makes the whole message invalid. */
static int
trust_rank (SmTrust t)
{
  switch (t)
    {
    case SM_TRUST_VERIFIED: return 0;
    case SM_TRUST_SIGNED_UNTRUSTED: return 1;
    case SM_TRUST_SIGNER_MISMATCH: return 2;
    case SM_TRUST_INVALID: return 3;
    default: return 4;
    }
}

typedef struct {
  SmTrust trust;
  char *address;      /* the bound (or first) address of the signer */
  char *label;        /* subject DN or fingerprint */
  char *fpr;          /* primary fingerprint */
  SmKeyInfo *info;
} SigVerdict;

static void
sig_verdict_clear (SigVerdict *v)
{
  g_free (v->address);
  g_free (v->label);
  g_free (v->fpr);
  g_clear_pointer (&v->info, sm_key_info_free);
}

/* ---- signers seen before -------------------------------------------------------------
 *
 * Looking a signer up costs a gpg/gpgsm run with chain validation, and
 * collecting it another one or two plus the certstore's CRL check: several
 * times the decryption itself.  A mailbox holds many messages from the same
 * few signers, so both answers are kept per fingerprint for
 * SM_SECURE_VIEW_SIGNER_TTL_S.  A certificate revoked by a CRL imported
 * meanwhile counts after at most that long; sm_secure_view_forget_signers()
 * drops everything at once (on lock, and after the user changes trust). */

typedef struct {
  gpgme_key_t key;          /* may be NULL: not in the store */
  SmKeyInfo *info;          /* may be NULL: not collected */
  gint64 when;              /* monotonic, microseconds */
} SignerEntry;

static GMutex signers_lock;
static GHashTable *signer_table;   /* "protocol:fpr" -> SignerEntry */

static void
signer_entry_free (SignerEntry *e)
{
  if (e->key != NULL)
    gpgme_key_unref (e->key);
  g_clear_pointer (&e->info, sm_key_info_free);
  g_free (e);
}

void
sm_secure_view_forget_signers (void)
{
  g_mutex_lock (&signers_lock);
  if (signer_table != NULL)
    g_hash_table_remove_all (signer_table);
  g_mutex_unlock (&signers_lock);
}

static char *
signer_key (SmProtocol protocol, const char *fpr)
{
  return g_strdup_printf ("%d:%s", (int) protocol, fpr);
}

/* TRUE with new references in *key and *info (either may be NULL) when the
 * signer was looked up recently. */
static gboolean
signer_cached (SmProtocol protocol, const char *fpr, gpgme_key_t *key, SmKeyInfo **info)
{
  g_autofree char *k = signer_key (protocol, fpr);
  SignerEntry *e;
  gboolean hit = FALSE;

  g_mutex_lock (&signers_lock);
  e = signer_table ? g_hash_table_lookup (signer_table, k) : NULL;
  if (e != NULL && g_get_monotonic_time () - e->when < SM_SECURE_VIEW_SIGNER_TTL_S * G_USEC_PER_SEC)
    {
      if (e->key != NULL)
        gpgme_key_ref (e->key);
      *key = e->key;
      *info = e->info ? sm_key_info_copy (e->info) : NULL;
      hit = TRUE;
    }
  g_mutex_unlock (&signers_lock);
  return hit;
}

static void
signer_remember (SmProtocol protocol, const char *fpr, gpgme_key_t key, const SmKeyInfo *info)
{
  SignerEntry *e = g_new0 (SignerEntry, 1);

  if (key != NULL)
    gpgme_key_ref (key);
  e->key = key;
  e->info = info ? sm_key_info_copy (info) : NULL;
  e->when = g_get_monotonic_time ();
  g_mutex_lock (&signers_lock);
  if (signer_table == NULL)
    signer_table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) signer_entry_free);
  if (g_hash_table_size (signer_table) >= SM_SECURE_VIEW_MAX_SIGNERS)
    g_hash_table_remove_all (signer_table);
  g_hash_table_replace (signer_table, signer_key (protocol, fpr), e);
  g_mutex_unlock (&signers_lock);
}

static gpgme_key_t
lookup_key (Build *b, const SigInfo *s)
{
  gpgme_ctx_t ctx;
  gpgme_key_t key = NULL;

  if (s->fpr == NULL || *s->fpr == '\0')
    return NULL;
  ctx = new_context (b, s->protocol, NULL);
  if (ctx == NULL)
    return NULL;
  gpgme_set_keylist_mode (ctx, GPGME_KEYLIST_MODE_LOCAL
                          | (s->protocol == SM_PROTOCOL_SMIME ? GPGME_KEYLIST_MODE_VALIDATE : 0));
  if (gpgme_get_key (ctx, s->fpr, &key, 0) != 0)
    key = NULL;
  gpgme_release (ctx);
  return key;
}

static void
judge_signature (Build *b, const SigInfo *s, const char *from, SigVerdict *v)
{
  gpgme_err_code_t code = gpgme_err_code (s->status);
  gpgme_key_t key = NULL;
  gboolean bound = FALSE, trusted = FALSE, cached = FALSE;

  v->trust = SM_TRUST_INVALID;
  /* Cryptographically bad, or a key that may no longer sign: RED, revoked,
   * expired (SPEC.md: invalid). */
  if ((s->summary & (GPGME_SIGSUM_RED | GPGME_SIGSUM_KEY_REVOKED | GPGME_SIGSUM_KEY_EXPIRED
                     | GPGME_SIGSUM_SIG_EXPIRED | GPGME_SIGSUM_BAD_POLICY))
      || s->wrong_key_usage)
    {
      build_detail (b, _("The signature is bad, or the signer's key is expired or revoked"));
      return;
    }
  switch (code)
    {
    case GPG_ERR_NO_ERROR:
      break;
    case GPG_ERR_NO_PUBKEY:
      /* We cannot check it; no better than a signature by a stranger's own
       * key, which is what an attacker could make anyway. */
      v->trust = SM_TRUST_SIGNED_UNTRUSTED;
      v->fpr = g_strdup (s->fpr);
      v->label = g_strdup (s->fpr);
      build_detail (b, _("The signer's key or certificate is not available"));
      return;
    default:
      {
        g_autofree char *d = g_strdup_printf (_("The signature is not valid: %s"), gpgme_strerror (s->status));
        build_detail (b, d);
        return;
      }
    }

  if (s->fpr != NULL && signer_cached (s->protocol, s->fpr, &key, &v->info))
    cached = TRUE;
  else
    key = lookup_key (b, s);
  if (key == NULL || key->subkeys == NULL)
    {
      v->trust = SM_TRUST_SIGNED_UNTRUSTED;
      v->fpr = g_strdup (s->fpr);
      v->label = g_strdup (s->fpr);
      build_detail (b, _("The signer's key or certificate is not available"));
      if (key != NULL)
        gpgme_key_unref (key);
      return;
    }
  v->fpr = g_strdup (key->subkeys->fpr);
  if (key->revoked || key->expired)
    {
      build_detail (b, _("The signer's key is expired or revoked"));
      gpgme_key_unref (key);
      return;
    }

  /* Bind the signer to the single From: address: S/MIME certificate e-mail
   * addresses (RFC 8550 section 3), OpenPGP user IDs that are not revoked. */
  for (gpgme_user_id_t uid = key->uids; uid != NULL; uid = uid->next)
    {
      g_autofree char *email = NULL;

      /* An OpenPGP user ID without a valid self-signature was not made by
       * the key's owner; gpgsm marks every e-mail of an untrusted chain
       * invalid, which the trust check below already covers. */
      if (uid->email == NULL || *uid->email == '\0' || uid->revoked
          || (uid->invalid && s->protocol == SM_PROTOCOL_OPENPGP))
        continue;
      /* GPGME gives X.509 addresses in angle brackets. */
      email = strip_angle (uid->email);
      if (v->address == NULL)
        v->address = g_ascii_strdown (email, -1);
      if (from != NULL && g_ascii_strcasecmp (email, from) == 0)
        {
          bound = TRUE;
          g_free (v->address);
          v->address = g_ascii_strdown (email, -1);
          if (s->protocol == SM_PROTOCOL_OPENPGP)
            trusted = uid->validity >= GPGME_VALIDITY_FULL;
        }
    }
  if (s->protocol == SM_PROTOCOL_SMIME)
    {
      /* A chain up to one of our trust anchors. */
      trusted = (s->summary & GPGME_SIGSUM_VALID) != 0 || s->validity >= GPGME_VALIDITY_FULL;
      g_autofree char *dn = readable_dn (key->uids && key->uids->uid ? key->uids->uid : v->fpr);
      v->label = header_safe (dn);
    }
  else
    v->label = g_strdup (v->fpr);
  /* gpgsm marks a certificate without a trusted chain invalid; gpg a key
   * the user disabled.  Neither is a bad signature, but neither is trusted. */
  if (key->invalid || key->disabled)
    trusted = FALSE;

  /* Keep the signer's key for replies; for S/MIME this also runs the
   * certstore's CRL check (gpgsm runs offline, with CRL checks off). */
  if (!cached)
    {
      g_autoptr(GError) local = NULL;

      g_mutex_lock (&certstore_lock);
      v->info = sm_certstore_collect_from_signature (b->store, s->protocol, v->fpr, NULL, &local);
      g_mutex_unlock (&certstore_lock);
      if (v->info == NULL)
        g_debug ("Signer key %s not collected: %s", v->fpr, local->message);
      signer_remember (s->protocol, s->fpr, key, v->info);
    }
  gpgme_key_unref (key);
  if (v->info != NULL
      && (v->info->revocation == SM_REVOCATION_REVOKED || v->info->status == SM_KEY_STATUS_REVOKED
          || v->info->status == SM_KEY_STATUS_EXPIRED))
    {
      build_detail (b, _("The signer's certificate is revoked or expired"));
      return;
    }

  if (!bound)
    {
      v->trust = SM_TRUST_SIGNER_MISMATCH;
      build_detail (b, _("The message is signed by someone other than its sender (From:)"));
    }
  else if (!trusted)
    {
      v->trust = SM_TRUST_SIGNED_UNTRUSTED;
      build_detail (b, s->protocol == SM_PROTOCOL_SMIME
                       ? _("The signer's certificate does not chain to a trusted authority")
                       : _("The signer's key is not trusted"));
    }
  else
    v->trust = SM_TRUST_VERIFIED;
}

/* ---- rebuilding ---------------------------------------------------------------------- */

static gboolean
field_in (const Entity *e, const SmMimeField *f, GPtrArray *names)
{
  for (guint i = 0; names != NULL && i < names->len; i++)
    if (sm_mime_field_is (e->data, f, names->pdata[i]))
      return TRUE;
  return FALSE;
}

/* Copies one header field, minus anything we own, with the Subject's trust
 * tags removed and ours added. */
static void
append_field (GString *out, const Entity *e, const SmMimeField *f, const char *tag, gboolean *subject_done)
{
  if (sm_mime_field_is (e->data, f, "Subject"))
    {
      g_autofree char *stripped = NULL;

      if (*subject_done)
        return;     /* one Subject in the view */
      *subject_done = TRUE;
      if (subject_has_tag (e, f, &stripped))
        {
          g_string_append (out, "Subject: ");
          if (tag != NULL)
            g_string_append_printf (out, "%s%s", tag, *stripped ? " " : "");
          append_encoded_words (out, stripped);
          g_string_append (out, "\r\n");
          return;
        }
      if (tag != NULL)
        {
          /* Keep the sender's bytes (encoded words, folding) after our tag. */
          g_string_append_printf (out, "Subject: %s", tag);
          if (f->value_len > 0 && e->data[f->value_start] != ' ' && e->data[f->value_start] != '\t')
            g_string_append_c (out, ' ');
          g_string_append_len (out, e->data + f->value_start, f->value_len);
          g_string_append (out, "\r\n");
          return;
        }
    }
  g_string_append_len (out, e->data + f->start, f->len);
  if (f->len == 0 || e->data[f->start + f->len - 1] != '\n')
    g_string_append (out, "\r\n");
}

/* The Content-* fields and body of @inner: the view's body (RFC 2045). */
static void
append_content (GString *out, const Entity *inner)
{
  for (guint i = 0; i < inner->fields->len; i++)
    {
      const SmMimeField *f = entity_field (inner, i);

      if (sm_mime_field_has_prefix (inner->data, f, "Content-"))
        {
          g_string_append_len (out, inner->data + f->start, f->len);
          if (f->len == 0 || inner->data[f->start + f->len - 1] != '\n')
            g_string_append (out, "\r\n");
        }
    }
}

/* The body of a view we cannot open: an explanation first, the original
 * protected entity attached so that nothing is lost. */
static GBytes *
failure_entity (const char *explanation, GBytes *original)
{
  g_autofree char *boundary = g_strdup_printf ("=_securemail_%08x%08x", g_random_int (), g_random_int ());
  g_autoptr(GString) s = g_string_new (NULL);
  Entity e = { 0 };

  g_string_append_printf (s, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary);
  g_string_append_printf (s, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", boundary, explanation);
  if (original != NULL && entity_init (&e, original, NULL))
    {
      g_string_append_printf (s, "--%s\r\n", boundary);
      append_content (s, &e);
      g_string_append (s, "Content-Disposition: attachment\r\n\r\n");
      g_string_append_len (s, e.data + e.body_start, e.len - e.body_start);
      g_string_append (s, "\r\n");
    }
  entity_clear (&e);
  g_string_append_printf (s, "--%s--\r\n", boundary);
  return g_string_free_to_bytes (g_steal_pointer (&s));
}

static gboolean
has_protected_headers (const Entity *inner)
{
  g_autoptr(SmMimeContentType) ct = sm_mime_content_type_of_header (inner->data, inner->header_len);

  /* RFC 9788 section 2.1: the hp parameter; and the earlier draft's
   * protected-headers="v1", still sent by Thunderbird and others. */
  return sm_mime_content_type_param (ct, "hp") != NULL
         || g_strcmp0 (sm_mime_content_type_param (ct, "protected-headers"), "v1") == 0;
}

gboolean
sm_secure_view_micalg_lookup (const char *name, GChecksumType *type, const char **canonical)
{
  static const struct {
    const char *names[3];
    GChecksumType type;
  } algs[] = {
    /* RFC 8551 §3.5.3.2 (S/MIME), RFC 3156 §5 (OpenPGP), RFC 3335's bare form */
    { { "sha-256", "pgp-sha256", "sha256" }, G_CHECKSUM_SHA256 },
    { { "sha-384", "pgp-sha384", "sha384" }, G_CHECKSUM_SHA384 },
    { { "sha-512", "pgp-sha512", "sha512" }, G_CHECKSUM_SHA512 },
    { { "sha-1", "pgp-sha1", "sha1" }, G_CHECKSUM_SHA1 },
  };

  g_return_val_if_fail (name != NULL, FALSE);
  for (gsize i = 0; i < G_N_ELEMENTS (algs); i++)
    for (gsize n = 0; n < G_N_ELEMENTS (algs[i].names); n++)
      if (g_ascii_strcasecmp (name, algs[i].names[n]) == 0)
        {
          if (type != NULL)
            *type = algs[i].type;
          if (canonical != NULL)
            *canonical = algs[i].names[0];
          return TRUE;
        }
  return FALSE;
}

/* The receipt digest the sender asked for: the first supported name in
 * "signed-receipt-micalg=importance,alg1,alg2,..." of @options
 * (Disposition-Notification-Options, RFC 8098 §2.2), else the default. */
static const char *
requested_micalg (const char *options, GChecksumType *type)
{
  const char *canonical = NULL;
  g_auto(GStrv) params = NULL;

  sm_secure_view_micalg_lookup (SM_SECURE_VIEW_DEFAULT_MICALG, type, &canonical);
  if (options == NULL || strlen (options) > SM_SECURE_VIEW_MAX_DNO_LEN)
    return canonical;
  params = g_strsplit (options, ";", -1);
  for (guint i = 0; params[i] != NULL; i++)
    {
      char *eq = strchr (params[i], '=');
      g_auto(GStrv) values = NULL;

      if (eq == NULL)
        continue;
      *eq = '\0';
      if (g_ascii_strcasecmp (g_strstrip (params[i]), "signed-receipt-micalg") != 0)
        continue;
      values = g_strsplit (eq + 1, ",", -1);
      /* values[0] is the importance (required/optional). */
      for (guint v = 1; values[0] != NULL && values[v] != NULL; v++)
        if (sm_secure_view_micalg_lookup (g_strstrip (values[v]), type, &canonical))
          return canonical;
    }
  return canonical;
}

SmSecureView *
sm_secure_view_build (SmCertstore       *store,
                      const char        *account_address,
                      GBytes            *raw,
                      SmSecureViewFlags  flags,
                      GError           **error)
{
  g_autoptr(SmSecureView) view = g_new0 (SmSecureView, 1);
  g_autoptr(GBytes) canonical = NULL;
  g_autoptr(GBytes) current = NULL;
  g_autoptr(GPtrArray) hp_names = NULL;
  g_autoptr(GString) out = NULL;
  Build b = { 0 };
  Entity outer = { 0 }, inner = { 0 };
  const Entity *from_source;
  SmTrust trust = SM_TRUST_UNPROTECTED;
  SigVerdict best = { 0 };
  gboolean subject_done = FALSE;
  const char *tag;
  guint layers = 0;

  g_return_val_if_fail (SM_IS_CERTSTORE (store), NULL);
  g_return_val_if_fail (raw != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (g_bytes_get_size (raw) > SM_SECURE_VIEW_MAX_MESSAGE_SIZE)
    {
      g_set_error (error, SM_ERROR, SM_ERROR_TOO_BIG,
                   _("The message is larger than %u MiB and is not decrypted"),
                   (guint) (SM_SECURE_VIEW_MAX_MESSAGE_SIZE / (1024 * 1024)));
      return NULL;
    }

  {
    gsize len, body_start;
    const char *data = g_bytes_get_data (raw, &len);

    if (!sm_secure_view_is_protected (data, data ? sm_mime_header_length (data, len, &body_start) : 0))
      {
        view->message = sm_secure_view_strip_forged (raw);
        view->trust = SM_TRUST_UNPROTECTED;
        if (entity_init (&outer, raw, NULL))
          {
            g_autofree char *f = entity_count (&outer, "From") == 1 ? entity_value (&outer, "From") : NULL;
            g_autofree char *mid = entity_value (&outer, "Message-ID");

            view->from = f ? single_address (f) : NULL;
            view->message_id = mid ? strip_angle (mid) : NULL;
          }
        entity_clear (&outer);
        return g_steal_pointer (&view);
      }
  }

  /* IMAP delivers CRLF; a message stored with bare LFs is read as its
   * canonical form, which is also what its signature covers (RFC 8551
   * section 3.1.1, RFC 3156 section 5). */
  canonical = sm_mime_canonicalize_crlf (raw);
  if (!entity_init (&outer, canonical, error))
    return NULL;

  b.store = store;
  b.sigs = g_ptr_array_new_with_free_func ((GDestroyNotify) sig_info_free);
  current = g_bytes_ref (canonical);

  /* Unwrap layers from the root only. */
  for (;;)
    {
      gsize len, hlen, body_start;
      const char *data = g_bytes_get_data (current, &len);
      g_autoptr(SmMimeContentType) ct = NULL;
      g_autoptr(GBytes) next = NULL;
      SmMimeLayer layer;
      gboolean ok = TRUE;

      if (data == NULL)
        data = "";
      hlen = sm_mime_header_length (data, len, &body_start);
      ct = sm_mime_content_type_of_header (data, hlen);
      layer = sm_mime_layer_of (ct);
      if (layer == SM_MIME_LAYER_NONE || b.decrypt_failed)
        break;
      if (layers++ >= SM_SECURE_VIEW_MAX_LAYERS)
        {
          /* Deeper nesting is no use to anyone but a parser attacker. */
          if (b.encrypted && !b.signed_)
            b.decrypt_failed = TRUE;
          b.signed_ = TRUE;
          build_detail (&b, _("The message has too many layers of encryption or signatures"));
          g_clear_pointer (&current, g_bytes_unref);
          break;
        }
      switch (layer)
        {
        case SM_MIME_LAYER_PKCS7_MIME:
          ok = unwrap_pkcs7_mime (&b, current, ct, &next, error);
          break;
        case SM_MIME_LAYER_SMIME_SIGNED:
          ok = unwrap_signed (&b, current, SM_PROTOCOL_SMIME, &next, error);
          break;
        case SM_MIME_LAYER_PGP_SIGNED:
          ok = unwrap_signed (&b, current, SM_PROTOCOL_OPENPGP, &next, error);
          break;
        case SM_MIME_LAYER_PGP_ENCRYPTED:
          ok = unwrap_pgp_encrypted (&b, current, &next, error);
          break;
        case SM_MIME_LAYER_NONE:
        default:
          g_assert_not_reached ();
        }
      if (!ok)
        {
          entity_clear (&outer);
          build_clear (&b);
          return NULL;
        }
      g_clear_pointer (&current, g_bytes_unref);
      if (next == NULL)
        break;
      current = sm_mime_canonicalize_crlf (next);
    }

  /* The inner entity must itself be within our MIME limits: the session
   * computes BODYSTRUCTURE from it. */
  if (current != NULL && !b.decrypt_failed)
    {
      g_autoptr(GError) local = NULL;
      g_autoptr(GPtrArray) parts = sm_mime_walk (g_bytes_get_data (current, NULL), g_bytes_get_size (current), &local);

      if (parts == NULL && g_error_matches (local, SM_ERROR, SM_ERROR_TOO_BIG))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          entity_clear (&outer);
          build_clear (&b);
          return NULL;
        }
    }

  if (current != NULL && !b.decrypt_failed && !entity_init (&inner, current, error))
    {
      entity_clear (&outer);
      entity_clear (&inner);
      build_clear (&b);
      return NULL;
    }

  /* RFC 9788: the header fields inside the cryptographic envelope are the
   * message's real ones; they replace the outer copies. */
  hp_names = g_ptr_array_new_with_free_func (g_free);
  from_source = &outer;
  if (inner.fields != NULL && has_protected_headers (&inner))
    {
      for (guint i = 0; i < inner.fields->len; i++)
        {
          const SmMimeField *f = entity_field (&inner, i);

          if (is_content_field (&inner, f) || is_our_field (&inner, f) || sm_mime_field_is (inner.data, f, "HP-Outer"))
            continue;
          g_ptr_array_add (hp_names, g_strndup (inner.data + f->start, f->name_len));
        }
      if (entity_count (&inner, "From") > 0)
        from_source = &inner;
    }

  {
    g_autofree char *from_value = entity_count (from_source, "From") == 1 ? entity_value (from_source, "From") : NULL;
    view->from = from_value ? single_address (from_value) : NULL;
  }

  /* The trust status, SPEC.md "Trust status of a message". */
  if (b.decrypt_failed)
    trust = SM_TRUST_DECRYPT_FAILED;
  else if (b.signed_)
    {
      g_autoptr(GHashTable) signers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

      if (b.sigs->len == 0)
        {
          /* A signature layer with no signature in it. */
          trust = SM_TRUST_INVALID;
          build_detail (&b, _("The message claims to be signed but carries no signature"));
        }
      for (guint i = 0; i < b.sigs->len; i++)
        {
          SigVerdict v = { 0 };

          judge_signature (&b, b.sigs->pdata[i], view->from, &v);
          if (v.fpr != NULL)
            g_hash_table_add (signers, g_strdup (v.fpr));
          if (i == 0 || trust_rank (v.trust) > trust_rank (trust))
            {
              trust = v.trust;
              sig_verdict_clear (&best);
              best = v;
            }
          else
            sig_verdict_clear (&v);
        }
      /* Several different signers: nobody in particular vouches for the
       * message as a whole, so it is never "verified". */
      if (g_hash_table_size (signers) > 1 && trust == SM_TRUST_VERIFIED)
        {
          trust = SM_TRUST_SIGNED_UNTRUSTED;
          build_detail (&b, _("The message is signed by several different signers"));
        }
    }
  else if (b.encrypted)
    trust = SM_TRUST_ENCRYPTED_UNSIGNED;

  view->trust = trust;
  view->encrypted = b.encrypted;
  view->signed_ = b.signed_;
  view->protocol = sm_protocol_to_gpgme (b.protocol);
  view->detail = g_strdup (b.detail);
  if (best.address != NULL || best.label != NULL)
    {
      view->signer_address = g_strdup (best.address);
      view->signer_fingerprint = g_strdup (best.fpr);
      view->signer = g_strdup_printf ("%s (%s)", best.address ? best.address : _("no address"),
                                      best.label ? best.label : best.fpr);
      view->signer_collected = best.info != NULL;
    }
  sig_verdict_clear (&best);

  /* ---- the rebuilt message ---- */
  tag = (flags & SM_SECURE_VIEW_SUBJECT_TAGS) ? sm_trust_subject_tag (trust) : NULL;
  out = g_string_sized_new (g_bytes_get_size (canonical) + 512);
  for (guint i = 0; i < outer.fields->len; i++)
    {
      const SmMimeField *f = entity_field (&outer, i);

      if (is_content_field (&outer, f) || is_our_field (&outer, f) || field_in (&outer, f, hp_names))
        continue;
      append_field (out, &outer, f, tag, &subject_done);
    }
  if (hp_names->len > 0)
    for (guint i = 0; i < inner.fields->len; i++)
      {
        const SmMimeField *f = entity_field (&inner, i);

        if (is_content_field (&inner, f) || is_our_field (&inner, f) || sm_mime_field_is (inner.data, f, "HP-Outer"))
          continue;
        append_field (out, &inner, f, tag, &subject_done);
      }
  if (!subject_done && tag != NULL)
    g_string_append_printf (out, "Subject: %s\r\n", tag);
  g_string_append (out, "MIME-Version: 1.0\r\n");
  if (b.decrypt_failed || inner.fields == NULL)
    {
      g_autofree char *text = g_strdup_printf ("%s\r\n\r\n%s",
                                               b.decrypt_failed ? _("SecureMail could not decrypt this message.")
                                                                : _("SecureMail could not check this message."),
                                               b.detail ? b.detail : "");
      g_autoptr(GBytes) body = failure_entity (text, b.failed_entity);
      Entity fe = { 0 };

      entity_init (&fe, body, NULL);
      append_content (out, &fe);
      g_string_append_printf (out, "X-SecureMail-Trust: %s\r\n", sm_trust_header_value (trust));
      if (view->signer != NULL)
        {
          g_autofree char *safe = header_safe (view->signer);
          g_string_append_printf (out, "X-SecureMail-Signer: %s\r\n", safe);
        }
      g_string_append_printf (out, "X-SecureMail-Encrypted: %s\r\n\r\n", b.encrypted ? "yes" : "no");
      g_string_append_len (out, fe.data + fe.body_start, fe.len - fe.body_start);
      entity_clear (&fe);
    }
  else
    {
      append_content (out, &inner);
      g_string_append_printf (out, "X-SecureMail-Trust: %s\r\n", sm_trust_header_value (trust));
      if (view->signer != NULL)
        {
          g_autofree char *safe = header_safe (view->signer);
          g_string_append_printf (out, "X-SecureMail-Signer: %s\r\n", safe);
        }
      g_string_append_printf (out, "X-SecureMail-Encrypted: %s\r\n\r\n", b.encrypted ? "yes" : "no");
      g_string_append_len (out, inner.data + inner.body_start, inner.len - inner.body_start);
    }

  /* Receipts and cache keys come from the fields the client sees. */
  {
    g_autofree char *mid = entity_value (&outer, "Message-ID");
    g_autofree char *dnt = NULL;

    if (inner.fields != NULL && hp_names->len > 0)
      dnt = entity_value (&inner, "Disposition-Notification-To");
    if (dnt == NULL)
      dnt = entity_value (&outer, "Disposition-Notification-To");
    if (mid == NULL && inner.fields != NULL)
      mid = entity_value (&inner, "Message-ID");
    view->message_id = mid ? strip_angle (mid) : NULL;
    if (b.signed_content != NULL)
      {
        g_autofree char *options = NULL;
        g_autoptr(GChecksum) sum = NULL;
        GChecksumType type = G_CHECKSUM_SHA256;
        guint8 digest[64];
        gsize dlen = sizeof digest;

        if (inner.fields != NULL && hp_names->len > 0)
          options = entity_value (&inner, "Disposition-Notification-Options");
        if (options == NULL)
          options = entity_value (&outer, "Disposition-Notification-Options");
        view->received_micalg = g_strdup (requested_micalg (options, &type));
        sum = g_checksum_new (type);
        g_checksum_update (sum, g_bytes_get_data (b.signed_content, NULL), g_bytes_get_size (b.signed_content));
        g_checksum_get_digest (sum, digest, &dlen);
        view->received_mic = g_base64_encode (digest, dlen);
      }
    if (dnt != NULL)
      {
        view->receipt_to = single_address (dnt);
        /* Never ask ourselves for a receipt for our own mail. */
        view->receipt_requested = view->receipt_to != NULL
                                  && !(account_address != NULL && view->from != NULL
                                       && g_ascii_strcasecmp (view->from, account_address) == 0);
      }
  }

  {
    /* Wipe the working copy of the plaintext; the view keeps its own. */
    view->message = g_bytes_new (out->str, out->len);
    sm_wipe (out->str, out->len);
  }
  if (current != NULL)
    g_debug ("Secure view built: %s%s", sm_trust_header_value (trust), b.encrypted ? ", encrypted" : "");
  entity_clear (&outer);
  entity_clear (&inner);
  build_clear (&b);
  return g_steal_pointer (&view);
}
