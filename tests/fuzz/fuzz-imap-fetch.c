/* fuzz-imap-fetch.c: the FETCH engine (proxy/sm-imap-fetch.h).
 *
 * The input is used three ways:
 *  - as a message: parsed once, then every request of a fixed set is
 *    rendered from it; rendering never fails except for UNKNOWN-CTE, and
 *    what it writes must parse back as the items of a FETCH response with
 *    the names asked for;
 *  - as a client FETCH command line, into the request parser;
 *  - as a server FETCH response, into the response parser.
 */
#include "fuzz-common.h"

#include "sm-imap-fetch.h"
#include "sm-mime.h"

/* Every item form the renderer knows, with sections that exist in common
 * messages and sections that do not. */
static const char * const requests[] = {
  "f FETCH 1 (BODYSTRUCTURE BODY ENVELOPE RFC822.SIZE PREVIEW)\r\n",
  "f FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.HEADER RFC822.TEXT RFC822)\r\n",
  "f FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[1.1] BODY.PEEK[2.1.2])\r\n",
  "f FETCH 1 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[1.2.HEADER.FIELDS (Subject)] BODY.PEEK[3.1.MIME])\r\n",
  "f FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To \"Subject\")] BODY.PEEK[HEADER.FIELDS.NOT (Content-Type)])\r\n",
  "f FETCH 1 (BODY.PEEK[]<0.1> BODY.PEEK[]<7.100> BODY.PEEK[TEXT]<4294967295.4294967295> BODY.PEEK[1]<1.1>)\r\n",
  "f FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[2]<1.3> BINARY.SIZE[2])\r\n",
  "f FETCH 1 (BINARY.PEEK[] BINARY.SIZE[] BINARY.PEEK[1.1] BINARY.SIZE[2.1])\r\n",
};

static void
check_render (const SmImapFetchRequest *req, const SmImapFetchMessage *msg)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) wrapped = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) items = NULL;
  g_autoptr(GError) parse_error = NULL;
  guint32 seq = 0;
  static const guint8 sentinel[] = "sentinel";

  g_byte_array_append (out, sentinel, sizeof sentinel - 1);
  if (!sm_imap_fetch_render (req, msg, out, &error))
    {
      FUZZ_CHECK (error != NULL && error->domain == SM_ERROR && error->code == SM_ERROR_PROTOCOL);
      FUZZ_CHECK (strstr (error->message, "UNKNOWN-CTE") != NULL);
      /* The output is left as it was. */
      FUZZ_CHECK (out->len == sizeof sentinel - 1);
      return;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (out->len > sizeof sentinel - 1);
  FUZZ_CHECK (memcmp (out->data, sentinel, sizeof sentinel - 1) == 0);
  FUZZ_CHECK (out->data[sizeof sentinel - 1] != ' ');

  /* What we render must be a valid FETCH response body. */
  g_byte_array_append (wrapped, (const guint8 *) "* 1 FETCH (", 11);
  g_byte_array_append (wrapped, out->data + sizeof sentinel - 1, out->len - (sizeof sentinel - 1));
  g_byte_array_append (wrapped, (const guint8 *) ")\r\n", 3);
  FUZZ_CHECK (sm_imap_fetch_response_parse (wrapped->data, wrapped->len, &seq, &items, &parse_error));
  FUZZ_CHECK (seq == 1 && items != NULL && items->len > 0);
  for (guint i = 0; i < items->len; i++)
    {
      const SmImapFetchItem *item = items->pdata[i];

      FUZZ_CHECK (fuzz_is_upper (item->name) || strchr (item->name, '[') != NULL);
      if (strcmp (item->name, "RFC822.SIZE") == 0)
        {
          g_autofree char *text = g_strndup (g_bytes_get_data (item->value, NULL), g_bytes_get_size (item->value));

          FUZZ_CHECK (g_ascii_strtoull (text, NULL, 10) == sm_imap_fetch_message_size (msg));
        }
      if (strcmp (item->name, "BODY[]") == 0 || strcmp (item->name, "RFC822") == 0)
        FUZZ_CHECK (g_bytes_get_size (item->value) == sm_imap_fetch_message_size (msg));
    }
}

static void
check_message (const uint8_t *data, size_t size)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapFetchMessage) msg = sm_imap_fetch_message_new (bytes, &error);

  if (msg == NULL)
    {
      /* Only a named limit refuses a message: anything else is answered. */
      FUZZ_CHECK (error != NULL && error->domain == SM_ERROR && error->code == SM_ERROR_TOO_BIG);
      return;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (sm_imap_fetch_message_size (msg) == size);
  for (gsize i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr(SmImapFetchRequest) req =
        sm_imap_fetch_request_parse ((const guint8 *) requests[i], strlen (requests[i]), NULL);

      FUZZ_CHECK (req != NULL);
      check_render (req, msg);
    }
}

static void
check_request (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmImapFetchRequest) req = sm_imap_fetch_request_parse (data, size, &error);
  g_autofree char *metadata = NULL;

  if (req == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == SM_ERROR);
      FUZZ_CHECK (error->code == SM_ERROR_PROTOCOL || error->code == SM_ERROR_TOO_BIG);
      /* Safe for a BAD: never the input itself, one printable line. */
      FUZZ_CHECK (fuzz_is_printable (error->message));
      return;
    }
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (sm_imap_fetch_request_tag (req)[0] != '\0');
  FUZZ_CHECK (sm_imap_fetch_request_set (req)[0] != '\0');
  FUZZ_CHECK (!sm_imap_fetch_request_sets_seen (req) || sm_imap_fetch_request_needs_content (req));
  metadata = sm_imap_fetch_request_metadata_items (req);
  FUZZ_CHECK (g_str_has_prefix (metadata, "(UID") && g_str_has_suffix (metadata, ")"));
  FUZZ_CHECK (!sm_imap_fetch_request_sets_seen (req) || strstr (metadata, " FLAGS") != NULL);

  {
    /* A request that parses renders from any message. */
    static const char message[] = "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                                  "--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
    g_autoptr(GBytes) bytes = g_bytes_new_static (message, sizeof message - 1);
    g_autoptr(SmImapFetchMessage) msg = sm_imap_fetch_message_new (bytes, NULL);

    FUZZ_CHECK (msg != NULL);
    if (sm_imap_fetch_request_needs_content (req))
      check_render (req, msg);
  }
}

static void
check_response (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) items = NULL;
  guint32 seq = 0;

  if (!sm_imap_fetch_response_parse (data, size, &seq, &items, &error))
    {
      FUZZ_CHECK (items == NULL);
      FUZZ_CHECK (error != NULL && error->domain == SM_ERROR);
      FUZZ_CHECK (fuzz_is_printable (error->message));
      return;
    }
  FUZZ_CHECK (error == NULL && items != NULL && seq > 0);
  FUZZ_CHECK (items->len <= SM_IMAP_FETCH_MAX_RESPONSE_ITEMS);
  for (guint i = 0; i < items->len; i++)
    {
      const SmImapFetchItem *item = items->pdata[i];

      FUZZ_CHECK (item->name != NULL && item->name[0] != '\0' && item->value != NULL);
      FUZZ_CHECK (g_bytes_get_size (item->value) <= size);
      FUZZ_CHECK (!item->is_nil || g_bytes_get_size (item->value) == 0);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();

  check_message (data, size);
  check_request (data, size);
  check_response (data, size);
  return 0;
}
