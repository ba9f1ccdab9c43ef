/* sm-mime.h: the small amount of MIME the secure view needs, on raw bytes.
 *
 * Header fields are located on the raw bytes (so that a rebuilt message
 * keeps every field it does not change byte for byte) and their values are
 * parsed with libetpan (RFC 5322, RFC 2045).  Multipart bodies are split by
 * libetpan's mailmime_parse(), whose part ranges (mm_mime_start/mm_length)
 * are the exact original bytes between the boundary delimiters, without the
 * CRLF that belongs to the delimiter (RFC 2046 section 5.1.1): that is what
 * RFC 1847 section 2.1 signs, so signed parts are verified on those bytes and
 * never on a re-serialisation.
 *
 * Every input limit is a named constant; exceeding one is an SM_ERROR_TOO_BIG.
 * Nothing here logs message content.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Deepest nesting of multiparts and messages we walk (Dovecot uses 100; no
 * real mail comes close to 32). */
#define SM_MIME_MAX_DEPTH         32
/* Most body parts in one message, counting every level. */
#define SM_MIME_MAX_PARTS         1000
/* Largest header section of one entity. */
#define SM_MIME_MAX_HEADER_SIZE   (1024 * 1024)
/* Most header fields in one header section. */
#define SM_MIME_MAX_FIELDS        4096

/* One header field, as offsets into the header section it came from. */
typedef struct {
  gsize start;        /* first byte of the field name */
  gsize len;          /* the whole field: continuation lines and the final line end */
  gsize name_len;     /* the name, without the colon or any blank before it */
  gsize value_start;  /* first byte after the colon */
  gsize value_len;    /* up to, not including, the final line end */
} SmMimeField;

/* Finds the end of the header section of @data: returns the length of the
 * header section including the line end of its last field, and sets
 * @body_start past the empty line (to @len when there is none).  Accepts
 * CRLF and bare LF. */
gsize     sm_mime_header_length (const char *data,
                                 gsize       len,
                                 gsize      *body_start);

/* The fields of the header section @header (@len bytes).  Lines that are
 * neither a field nor a continuation (no colon) are skipped, as most clients
 * do.  Returns an array of SmMimeField, or NULL with SM_ERROR_TOO_BIG. */
GArray   *sm_mime_fields_parse  (const char *header,
                                 gsize       len,
                                 GError    **error);

/* TRUE when @field of @header is named @name (case-insensitive). */
gboolean  sm_mime_field_is      (const char        *header,
                                 const SmMimeField *field,
                                 const char        *name);
/* TRUE when the field name starts with @prefix (case-insensitive). */
gboolean  sm_mime_field_has_prefix (const char        *header,
                                    const SmMimeField *field,
                                    const char        *prefix);

/* The value of @field unfolded (CR and LF removed) and trimmed. */
char     *sm_mime_field_value   (const char        *header,
                                 const SmMimeField *field);

/* The index of the first field named @name, or -1. */
int       sm_mime_fields_find   (const char *header,
                                 GArray     *fields,
                                 const char *name);

/* A parsed Content-Type (RFC 2045 section 5.1); type and subtype lower-case,
 * parameter names lower-case. */
typedef struct {
  char *type;
  char *subtype;
  GHashTable *params;
} SmMimeContentType;

void               sm_mime_content_type_free  (SmMimeContentType *ct);
/* Parses the value of a Content-Type field; NULL when it does not parse. */
SmMimeContentType *sm_mime_content_type_parse (const char *value);
const char        *sm_mime_content_type_param (const SmMimeContentType *ct,
                                               const char              *name);
/* The Content-Type of the header section @header, or text/plain (RFC 2045
 * section 5.2) when it has none or it does not parse.  The first field wins,
 * as everywhere else in this code. */
SmMimeContentType *sm_mime_content_type_of_header (const char *header,
                                                   gsize       len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmMimeContentType, sm_mime_content_type_free)

/* The cryptographic layer a Content-Type announces. */
typedef enum {
  SM_MIME_LAYER_NONE,
  SM_MIME_LAYER_PKCS7_MIME,       /* application/(x-)pkcs7-mime: RFC 8551 section 3.2 */
  SM_MIME_LAYER_SMIME_SIGNED,     /* multipart/signed, protocol (x-)pkcs7-signature: RFC 8551 section 3.5.3 */
  SM_MIME_LAYER_PGP_SIGNED,       /* multipart/signed, protocol application/pgp-signature: RFC 3156 section 5 */
  SM_MIME_LAYER_PGP_ENCRYPTED,    /* multipart/encrypted, protocol application/pgp-encrypted: RFC 3156 section 4 */
} SmMimeLayer;

SmMimeLayer sm_mime_layer_of (const SmMimeContentType *ct);

/* One body part of a parsed entity, as offsets into the parsed bytes. */
typedef struct {
  guint depth;                /* 0: the entity itself */
  char *type;                 /* "text/plain", lower-case */
  gsize start;                /* the part with its header section */
  gsize len;
  gsize body_start;           /* the body alone (still transfer-encoded) */
  gsize body_len;
  int encoding;               /* libetpan MAILMIME_MECHANISM_* */
} SmMimePart;

void sm_mime_part_free (SmMimePart *part);

/* Parses the MIME entity @data (a message or a body part) with libetpan and
 * returns every body part in document order (SmMimePart; the entity itself
 * first, at depth 0).  Fails with SM_ERROR_TOO_BIG past SM_MIME_MAX_DEPTH,
 * SM_MIME_MAX_PARTS or SM_MIME_MAX_HEADER_SIZE, and with SM_ERROR_PROTOCOL
 * when libetpan cannot parse it. */
GPtrArray *sm_mime_walk (const char *data,
                         gsize       len,
                         GError    **error);

/* The direct children of the multipart entity @data: exact byte ranges of
 * each part (RFC 2046 section 5.1.1).  Array of SmMimePart at depth 1.
 * Fails when @data is not a multipart or breaks a limit. */
GPtrArray *sm_mime_multipart_children (const char *data,
                                       gsize       len,
                                       GError    **error);

/* Removes the transfer encoding of a part body (base64, quoted-printable;
 * others are copied). */
GBytes    *sm_mime_decode_body (const char *body,
                                gsize       len,
                                int         encoding);

/* @data with every bare LF (and lone CR) turned into CRLF, the canonical
 * form of RFC 5322 and of signed MIME (RFC 1847 section 2.1).  Returns a new
 * reference to @data itself when it already is canonical. */
GBytes    *sm_mime_canonicalize_crlf (GBytes *data);

/* Decodes RFC 2047 encoded words of an unstructured field value to UTF-8. */
char      *sm_mime_decode_header_value (const char *value);

G_END_DECLS
