/* test-upstream-faults.c: the real securemail-proxy against in-process fake
 * IMAP and SMTP providers, for faults a real server will not produce: a
 * connection closed in the middle of a literal or between responses, no
 * STARTTLS, bytes injected after STARTTLS, malformed greetings and replies,
 * a server that never speaks, refusals at DATA.
 *
 * Each fake is a thread with a blocking GSocketListener on 127.0.0.1:0 that
 * serves one connection at a time with a scripted handler.  With TLS it
 * presents the stack's server certificate (SM_TEST_SERVER_CERT/KEY), which
 * the proxy verifies with ca_file = SM_TEST_CA, so the only thing that
 * differs from a real provider is the fault.  Everything the fake reads from
 * the proxy is kept in a transcript, so that a test can say what the proxy
 * never sent (a password in clear, an AUTH after a refused STARTTLS).
 */
#include <glib.h>
#include <string.h>

#include "sm-test-harness.h"
/* The proxy's named timeouts and limits (macros only; nothing is linked). */
#include "../../proxy/sm-upstream.h"

#define FAKE_IO_TIMEOUT_S      (SM_UPSTREAM_IO_TIMEOUT_S + 30)   /* longer than the proxy waits */
#define PROMPT_MS              15000     /* "promptly": no hang, no waiting for the 60 s I/O timeout
                                            (5 s was too short for the ASan build on a busy machine) */
#define USERNAME               "alice"
#define AFTER_TLS_MARK         "\n--- TLS ---\n"

/* ---- fake servers ---------------------------------------------------------- */

typedef struct _Fake Fake;
typedef struct _FakeConn FakeConn;
typedef void (*FakeHandler) (FakeConn *fc);

struct _Fake {
  GSocketListener *listener;
  guint16 port;
  GThread *thread;
  GCancellable *cancellable;
  FakeHandler handler;
  gboolean tls;                 /* TLS handshake on accept (imaps://, smtps://) */
  GTlsCertificate *cert;
  GMutex lock;
  GCond cond;
  GString *transcript;          /* what the proxy sent, all connections; under lock */
  guint accepted;
  guint finished;
};

struct _FakeConn {
  Fake *fake;
  guint index;                  /* 0 for the first connection */
  GSocketConnection *socket;
  GIOStream *stream;            /* the socket, or TLS over it */
  GDataInputStream *in;
  GOutputStream *out;
};

static void
fake_record (Fake *fake, const char *data, gsize len)
{
  g_mutex_lock (&fake->lock);
  g_string_append_len (fake->transcript, data, len);
  g_mutex_unlock (&fake->lock);
}

static char *
fake_transcript (Fake *fake)
{
  char *s;

  g_mutex_lock (&fake->lock);
  s = g_strndup (fake->transcript->str, fake->transcript->len);
  g_mutex_unlock (&fake->lock);
  return s;
}

/* Waits until @n connections have been handled completely. */
static void
fake_wait_finished (Fake *fake, guint n, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  g_mutex_lock (&fake->lock);
  while (fake->finished < n)
    if (!g_cond_wait_until (&fake->cond, &fake->lock, deadline))
      break;
  g_assert_cmpuint (fake->finished, >=, n);
  g_mutex_unlock (&fake->lock);
}

static void
fake_conn_set_stream (FakeConn *fc, GIOStream *stream)
{
  g_set_object (&fc->stream, stream);
  g_clear_object (&fc->in);
  fc->in = g_data_input_stream_new (g_io_stream_get_input_stream (stream));
  /* Dropping it at STARTTLS must not close the socket under the TLS stream. */
  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (fc->in), FALSE);
  g_data_input_stream_set_newline_type (fc->in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  fc->out = g_io_stream_get_output_stream (stream);
}

/* Server side TLS over the TCP connection; FALSE if the handshake failed. */
static gboolean
fake_tls (FakeConn *fc)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) tls = g_tls_server_connection_new (G_IO_STREAM (fc->socket), fc->fake->cert, &error);

  g_assert_no_error (error);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), fc->fake->cancellable, &error))
    {
      if (g_test_verbose ())
        g_printerr ("fake: TLS handshake failed: %s\n", error->message);
      return FALSE;
    }
  fake_conn_set_stream (fc, tls);
  fake_record (fc->fake, AFTER_TLS_MARK, strlen (AFTER_TLS_MARK));
  return TRUE;
}

static void
fake_send (FakeConn *fc, const char *data)
{
  g_autoptr(GError) error = NULL;

  if (g_test_verbose ())
    g_printerr ("fake> %s", data);
  g_output_stream_write_all (fc->out, data, strlen (data), NULL, fc->fake->cancellable, &error);
  if (error != NULL && g_test_verbose ())
    g_printerr ("fake: write failed: %s\n", error->message);
}

static void
fake_sendf (FakeConn *fc, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
fake_sendf (FakeConn *fc, const char *format, ...)
{
  va_list ap;
  g_autofree char *s = NULL;

  va_start (ap, format);
  s = g_strdup_vprintf (format, ap);
  va_end (ap);
  fake_send (fc, s);
}

/* The next line from the proxy (without CRLF), recorded; NULL at EOF. */
static char *
fake_line (FakeConn *fc)
{
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line (fc->in, &len, fc->fake->cancellable, &error);

  if (line == NULL)
    {
      if (error != NULL && g_test_verbose ())
        g_printerr ("fake: read failed: %s\n", error->message);
      return NULL;
    }
  if (g_test_verbose ())
    g_printerr ("fake< %s\n", line);
  fake_record (fc->fake, line, len);
  fake_record (fc->fake, "\r\n", 2);
  return line;
}

/* Reads and records until the proxy closes (or the fake is stopped). */
static void
fake_read_to_eof (FakeConn *fc)
{
  guint8 buf[4096];
  gssize n;

  while ((n = g_input_stream_read (G_INPUT_STREAM (fc->in), buf, sizeof buf, fc->fake->cancellable, NULL)) > 0)
    fake_record (fc->fake, (const char *) buf, (gsize) n);
}

static gpointer
fake_thread (gpointer data)
{
  Fake *fake = data;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      GSocketConnection *conn = g_socket_listener_accept (fake->listener, NULL, fake->cancellable, &error);
      FakeConn fc = { fake, 0, NULL, NULL, NULL, NULL };

      if (conn == NULL)
        break;
      g_mutex_lock (&fake->lock);
      fc.index = fake->accepted++;
      g_mutex_unlock (&fake->lock);
      fc.socket = conn;
      g_socket_set_timeout (g_socket_connection_get_socket (conn), FAKE_IO_TIMEOUT_S);
      fake_conn_set_stream (&fc, G_IO_STREAM (conn));
      if (!fake->tls || fake_tls (&fc))
        fake->handler (&fc);
      g_io_stream_close (fc.stream, NULL, NULL);
      g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
      g_clear_object (&fc.in);
      g_clear_object (&fc.stream);
      g_object_unref (conn);
      g_mutex_lock (&fake->lock);
      fake->finished++;
      g_cond_broadcast (&fake->cond);
      g_mutex_unlock (&fake->lock);
    }
  return NULL;
}

static Fake *
fake_start (FakeHandler handler, gboolean tls)
{
  Fake *fake = g_new0 (Fake, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) addr = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  fake->handler = handler;
  fake->tls = tls;
  fake->cancellable = g_cancellable_new ();
  fake->transcript = g_string_new (NULL);
  g_mutex_init (&fake->lock);
  g_cond_init (&fake->cond);
  fake->cert = g_tls_certificate_new_from_files (sm_test_env ("SM_TEST_SERVER_CERT"),
                                                 sm_test_env ("SM_TEST_SERVER_KEY"), &error);
  g_assert_no_error (error);
  fake->listener = g_socket_listener_new ();
  g_socket_listener_add_address (fake->listener, addr, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                 &bound, &error);
  g_assert_no_error (error);
  fake->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  fake->thread = g_thread_new ("fake-provider", fake_thread, fake);
  return fake;
}

static void
fake_stop (Fake *fake)
{
  if (fake == NULL)
    return;
  g_cancellable_cancel (fake->cancellable);
  g_socket_listener_close (fake->listener);
  g_thread_join (fake->thread);
  g_object_unref (fake->listener);
  g_object_unref (fake->cancellable);
  g_object_unref (fake->cert);
  g_string_free (fake->transcript, TRUE);
  g_mutex_clear (&fake->lock);
  g_cond_clear (&fake->cond);
  g_free (fake);
}

/* ---- a fake IMAP provider ---------------------------------------------------- */

typedef struct {
  const char *greeting;        /* NULL: "* OK fake IMAP ready" */
  const char *caps;            /* NULL: "IMAP4rev1 AUTH=PLAIN" (+ STARTTLS in clear) */
  const char *starttls_extra;  /* sent right after the STARTTLS OK, before the handshake */
} ImapOpts;

/* Splits "tag NAME args" into the tag and the upper-cased name ("UID
 * FETCH" counts as FETCH). */
static void
imap_split (const char *line, char **tag, char **name)
{
  g_auto(GStrv) w = g_strsplit (line, " ", 4);
  const char *n = w[0] && w[1] ? w[1] : "";

  if (g_ascii_strcasecmp (n, "UID") == 0 && w[2] != NULL)
    n = w[2];
  *tag = g_strdup (w[0] ? w[0] : "*");
  *name = g_ascii_strup (n, -1);
}

/* Greets and serves CAPABILITY, STARTTLS, AUTHENTICATE PLAIN and LOGIN until
 * the proxy has logged in; FALSE when it went away before. */
static gboolean
imap_login (FakeConn *fc, const ImapOpts *o)
{
  gboolean tls = fc->fake->tls;

  fake_sendf (fc, "%s\r\n", o->greeting ? o->greeting : "* OK fake IMAP ready");
  for (;;)
    {
      g_autofree char *line = fake_line (fc);
      g_autofree char *tag = NULL;
      g_autofree char *name = NULL;

      if (line == NULL)
        return FALSE;
      imap_split (line, &tag, &name);
      if (strcmp (name, "CAPABILITY") == 0)
        fake_sendf (fc, "* CAPABILITY %s\r\n%s OK done\r\n",
                    o->caps ? o->caps : (tls ? "IMAP4rev1 AUTH=PLAIN" : "IMAP4rev1 STARTTLS AUTH=PLAIN"), tag);
      else if (strcmp (name, "STARTTLS") == 0)
        {
          fake_sendf (fc, "%s OK Begin TLS negotiation now\r\n%s", tag, o->starttls_extra ? o->starttls_extra : "");
          if (!fake_tls (fc))
            return FALSE;
          tls = TRUE;
        }
      else if (strcmp (name, "AUTHENTICATE") == 0)
        {
          g_autofree char *response = NULL;
          fake_send (fc, "+ \r\n");
          response = fake_line (fc);
          if (response == NULL)
            return FALSE;
          fake_sendf (fc, "%s OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] Logged in\r\n", tag);
          return TRUE;
        }
      else if (strcmp (name, "LOGIN") == 0)
        {
          fake_sendf (fc, "%s OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] Logged in\r\n", tag);
          return TRUE;
        }
      else if (strcmp (name, "LOGOUT") == 0)
        {
          fake_sendf (fc, "* BYE bye\r\n%s OK done\r\n", tag);
          return FALSE;
        }
      else
        fake_sendf (fc, "%s BAD unexpected\r\n", tag);
    }
}

#define LITERAL_SIZE 1000
#define LITERAL_SENT 500

/* The literal's bytes: printable and position-dependent, so that a lost or
 * repeated chunk shows. */
static char *
literal_bytes (void)
{
  char *s = g_malloc (LITERAL_SIZE + 1);
  for (guint i = 0; i < LITERAL_SIZE; i++)
    s[i] = (char) ('a' + (i * 7) % 26);
  s[LITERAL_SIZE] = '\0';
  return s;
}

/* How a fake answers one command after login: handled it, end the
 * connection, or let imap_serve() give the usual answer. */
typedef enum { IMAP_CMD_DEFAULT, IMAP_CMD_HANDLED, IMAP_CMD_END } ImapCmd;
typedef ImapCmd (*ImapCommandFn) (FakeConn *fc, const char *line, const char *tag, const char *name,
                                  gpointer data);

/* Logs the proxy in, then answers commands until the connection ends:
 * @fn first (may be NULL), else LOGOUT with BYE and the rest with OK. */
static void
imap_serve (FakeConn *fc, ImapCommandFn fn, gpointer data)
{
  const ImapOpts o = { 0 };

  if (!imap_login (fc, &o))
    return;
  for (;;)
    {
      g_autofree char *line = fake_line (fc);
      g_autofree char *tag = NULL;
      g_autofree char *name = NULL;
      ImapCmd done;

      if (line == NULL)
        return;
      imap_split (line, &tag, &name);
      done = fn ? fn (fc, line, tag, name, data) : IMAP_CMD_DEFAULT;
      if (done == IMAP_CMD_END)
        return;
      if (done == IMAP_CMD_HANDLED)
        continue;
      if (strcmp (name, "LOGOUT") == 0)
        {
          fake_sendf (fc, "* BYE bye\r\n%s OK done\r\n", tag);
          return;
        }
      fake_sendf (fc, "%s OK %s done\r\n", tag, name);
    }
}

/* The proxy's first question for a content FETCH (sm-secure-fetch.h): the
 * header of each message, to see which ones are protected.  A plain one. */
#define PLAIN_HEADER "From: carol@example.test\r\nSubject: plain\r\n\r\n"

static gboolean
answer_prequery (FakeConn *fc, const char *line, const char *tag)
{
  if (strstr (line, "BODY.PEEK[HEADER]") == NULL)
    return FALSE;
  fake_sendf (fc, "* 1 FETCH (UID 7 RFC822.SIZE %u BODY[HEADER] {%u}\r\n%s)\r\n%s OK FETCH done\r\n",
              LITERAL_SIZE, (guint) strlen (PLAIN_HEADER), PLAIN_HEADER, tag);
  return TRUE;
}

/* After login: SELECT and NOOP answered; FETCH answered with a 1000-byte
 * literal, of which the first connection sends only 500 bytes and closes.
 * With @in_prequery (the data) the cut comes in the proxy's own header
 * FETCH. */
static ImapCmd
cut_literal_command (FakeConn *fc, const char *line, const char *tag, const char *name, gpointer data)
{
  gboolean in_prequery = GPOINTER_TO_INT (data);
  g_autofree char *lit = NULL;

  if (strcmp (name, "FETCH") != 0)
    return IMAP_CMD_DEFAULT;
  if (!(in_prequery && fc->index == 0) && answer_prequery (fc, line, tag))
    return IMAP_CMD_HANDLED;
  lit = literal_bytes ();
  fake_sendf (fc, "* 1 FETCH (UID 7 BODY[] {%u}\r\n", LITERAL_SIZE);
  if (fc->index == 0)
    {
      /* Half of the literal, then the connection ends. */
      g_output_stream_write_all (fc->out, lit, LITERAL_SENT, NULL, NULL, NULL);
      g_output_stream_flush (fc->out, NULL, NULL);
      return IMAP_CMD_END;
    }
  fake_send (fc, lit);
  fake_sendf (fc, ")\r\n%s OK FETCH done\r\n", tag);
  return IMAP_CMD_HANDLED;
}

static void
imap_mid_literal (FakeConn *fc)
{
  imap_serve (fc, cut_literal_command, GINT_TO_POINTER (FALSE));
}

static void
imap_mid_prequery (FakeConn *fc)
{
  imap_serve (fc, cut_literal_command, GINT_TO_POINTER (TRUE));
}

/* A provider without LITERAL+ (RFC 7888): the literal of an APPEND, or of
 * a SEARCH, waits for its "+".  Records what it stored. */
static ImapCmd
append_sync_command (FakeConn *fc, const char *line, const char *tag, const char *name, gpointer data)
{
  const char *brace = strrchr (line, '{');
  guint64 n = brace ? g_ascii_strtoull (brace + 1, NULL, 10) : 0;
  g_autofree char *buf = NULL;
  g_autofree char *rest = NULL;
  gsize got = 0;
  gboolean search = strcmp (name, "SEARCH") == 0;

  if (search ? brace == NULL : strcmp (name, "APPEND") != 0)
    return IMAP_CMD_DEFAULT;
  buf = g_malloc (n + 1);
  fake_send (fc, "+ go ahead\r\n");
  if (!g_input_stream_read_all (G_INPUT_STREAM (fc->in), buf, n, &got, NULL, NULL) || got != n)
    return IMAP_CMD_END;
  fake_record (fc->fake, buf, got);
  rest = fake_line (fc);    /* the line end after the literal */
  if (search)
    fake_sendf (fc, "* SEARCH 4\r\n%s OK SEARCH done\r\n", tag);
  else
    fake_sendf (fc, "%s OK [APPENDUID 1 1] APPEND done\r\n", tag);
  return IMAP_CMD_HANDLED;
}

static void
imap_append_sync (FakeConn *fc)
{
  imap_serve (fc, append_sync_command, NULL);
}

/* After login: the first NOOP gets a complete answer, then the connection
 * ends between two responses. */
static void
imap_close_between (FakeConn *fc)
{
  const ImapOpts o = { 0 };
  g_autofree char *line = NULL;
  g_autofree char *tag = NULL;
  g_autofree char *name = NULL;

  if (!imap_login (fc, &o) || (line = fake_line (fc)) == NULL)
    return;
  imap_split (line, &tag, &name);
  fake_sendf (fc, "* 3 EXISTS\r\n%s OK %s done\r\n", tag, name);
}

/* After login: half a response line, then the connection ends. */
static void
imap_close_mid_line (FakeConn *fc)
{
  const ImapOpts o = { 0 };
  g_autofree char *line = NULL;

  if (!imap_login (fc, &o) || (line = fake_line (fc)) == NULL)
    return;
  fake_send (fc, "* 1 FETCH (FLAGS (\\Seen");
}

/* Plain imap:// without STARTTLS in its capabilities. */
static void
imap_no_starttls (FakeConn *fc)
{
  const ImapOpts o = { .caps = "IMAP4rev1 AUTH=PLAIN LOGIN" };

  if (imap_login (fc, &o))
    return;
  fake_read_to_eof (fc);
}

/* STARTTLS answered, then bytes injected before the handshake. */
static void
imap_starttls_injection (FakeConn *fc)
{
  const ImapOpts o = { .starttls_extra = "* OK [ALERT] injected before TLS\r\n" };

  if (imap_login (fc, &o))
    return;
  fake_read_to_eof (fc);
}

/* A well-behaved imap:// provider with STARTTLS: the control case. */
static void
imap_good (FakeConn *fc)
{
  imap_serve (fc, NULL, NULL);
}

/* Accepts and says nothing until the proxy gives up. */
static void
stall (FakeConn *fc)
{
  fake_read_to_eof (fc);
}

/* Malformed greetings and replies before login, table-driven: each case is
 * what the fake says at each step (then it closes the connection), and what
 * the proxy must answer. */
typedef enum {
  AT_GREETING,       /* close after the greeting */
  AT_CAPABILITY,     /* close after the reply to CAPABILITY */
  AT_AUTHENTICATE,   /* close after the reply to AUTHENTICATE */
  AT_LOGIN,          /* close after the reply to the PLAIN response */
} GarbageStage;

typedef struct {
  const char *path;
  const char *greeting;          /* raw bytes, sent as they are */
  gsize greeting_len;            /* 0: strlen */
  GarbageStage close_at;
  const char *reply;             /* the raw reply at close_at ("%s" = the tag); earlier steps are normal */
  gboolean password_sent;        /* the proxy got as far as sending the password */
  const char *needle;            /* in the client's NO */
} GarbageCase;

static const GarbageCase *current_garbage;   /* set by the fixture; read by the fake thread */

static void
imap_garbage (FakeConn *fc)
{
  const GarbageCase *gc = current_garbage;

  g_output_stream_write_all (fc->out, gc->greeting, gc->greeting_len ? gc->greeting_len : strlen (gc->greeting),
                             NULL, NULL, NULL);
  if (gc->close_at == AT_GREETING)
    return;   /* returning closes the connection */
  for (;;)
    {
      g_autofree char *line = fake_line (fc);
      g_autofree char *tag = NULL;
      g_autofree char *name = NULL;

      if (line == NULL)
        return;
      imap_split (line, &tag, &name);
      if (strcmp (name, "CAPABILITY") == 0)
        {
          if (gc->close_at == AT_CAPABILITY)
            {
              fake_sendf (fc, gc->reply, tag);
              return;
            }
          fake_sendf (fc, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n", tag);
        }
      else if (strcmp (name, "AUTHENTICATE") == 0)
        {
          if (gc->close_at == AT_AUTHENTICATE)
            {
              fake_sendf (fc, gc->reply, tag);
              return;
            }
          fake_send (fc, "+ \r\n");
          g_free (fake_line (fc));
          fake_sendf (fc, gc->reply, tag);
          return;
        }
      else
        fake_sendf (fc, "%s BAD unexpected\r\n", tag);
    }
}

/* ---- a fake SMTP provider -------------------------------------------------- */

typedef enum {
  SMTP_OK,
  SMTP_NO_STARTTLS,
  SMTP_STARTTLS_REFUSED,
  SMTP_STARTTLS_INJECTION,
  SMTP_MAIL_4XX,
  SMTP_DATA_4XX,
  SMTP_END_5XX,
  SMTP_CLOSE_IN_DATA,
  SMTP_MALFORMED_EHLO,
  SMTP_EXTERNAL,          /* not a fault: offers AUTH EXTERNAL and accepts only that (issue 7) */
} SmtpFault;

static SmtpFault current_smtp_fault;
static GString *smtp_data_seen;      /* the DATA bytes as they came on the wire; under the fake's lock */

static void
smtp_fake (FakeConn *fc)
{
  SmtpFault fault = current_smtp_fault;
  gboolean tls = fc->fake->tls;

  fake_send (fc, "220 fake.example.test ESMTP\r\n");
  for (;;)
    {
      g_autofree char *line = fake_line (fc);
      g_autofree char *verb = NULL;

      if (line == NULL)
        return;
      verb = g_ascii_strup (line, strcspn (line, " "));
      if (strcmp (verb, "EHLO") == 0)
        {
          if (fault == SMTP_MALFORMED_EHLO)
            {
              fake_send (fc, "250-fake.example.test\r\nhello there\r\n");
              continue;
            }
          fake_send (fc, "250-fake.example.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n");
          if (!tls && fault != SMTP_NO_STARTTLS)
            fake_send (fc, "250-STARTTLS\r\n");
          fake_send (fc, fault == SMTP_EXTERNAL ? "250 AUTH PLAIN LOGIN EXTERNAL\r\n" : "250 AUTH PLAIN LOGIN\r\n");
        }
      else if (strcmp (verb, "STARTTLS") == 0)
        {
          if (fault == SMTP_STARTTLS_REFUSED)
            {
              fake_send (fc, "454 4.7.0 TLS not available due to temporary reason\r\n");
              continue;
            }
          fake_send (fc, fault == SMTP_STARTTLS_INJECTION
                           ? "220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
                           : "220 2.0.0 Ready to start TLS\r\n");
          if (!fake_tls (fc))
            return;
          tls = TRUE;
        }
      else if (strcmp (verb, "AUTH") == 0)
        fake_send (fc, fault != SMTP_EXTERNAL || strcmp (line, "AUTH EXTERNAL =") == 0
                         ? "235 2.7.0 Authentication successful\r\n"
                         : "535 5.7.8 Only EXTERNAL here\r\n");
      else if (strcmp (verb, "MAIL") == 0)
        fake_send (fc, fault == SMTP_MAIL_4XX ? "452 4.3.1 Insufficient system storage\r\n" : "250 2.1.0 Ok\r\n");
      else if (strcmp (verb, "RCPT") == 0)
        fake_send (fc, "250 2.1.5 Ok\r\n");
      else if (strcmp (verb, "DATA") == 0)
        {
          g_autoptr(GString) data = g_string_new (NULL);
          if (fault == SMTP_DATA_4XX)
            {
              fake_send (fc, "451 4.3.0 Mail server temporarily rejected message\r\n");
              continue;
            }
          fake_send (fc, "354 End data with <CR><LF>.<CR><LF>\r\n");
          /* Raw bytes up to CRLF.CRLF, stuffing left in. */
          for (;;)
            {
              guint8 b;
              if (g_input_stream_read (G_INPUT_STREAM (fc->in), &b, 1, NULL, NULL) != 1)
                return;
              g_string_append_c (data, (char) b);
              if (fault == SMTP_CLOSE_IN_DATA && data->len == 10)
                return;
              if (g_str_has_suffix (data->str, "\r\n.\r\n") || strcmp (data->str, ".\r\n") == 0)
                break;
            }
          fake_record (fc->fake, data->str, data->len);
          g_mutex_lock (&fc->fake->lock);
          g_string_append_len (smtp_data_seen, data->str, data->len);
          g_mutex_unlock (&fc->fake->lock);
          fake_send (fc, fault == SMTP_END_5XX
                           ? "554-5.7.1 Message rejected\r\n554 5.7.1 Looks like spam to us\r\n"
                           : "250 2.0.0 Ok: queued as FAKE\r\n");
        }
      else if (strcmp (verb, "RSET") == 0 || strcmp (verb, "NOOP") == 0)
        fake_send (fc, "250 2.0.0 Ok\r\n");
      else if (strcmp (verb, "QUIT") == 0)
        {
          fake_send (fc, "221 2.0.0 Bye\r\n");
          return;
        }
      else
        fake_send (fc, "502 5.5.2 Error: command not recognized\r\n");
    }
}

/* ---- fixture ---------------------------------------------------------------- */

typedef struct {
  FakeHandler imap;
  gboolean imap_implicit;   /* imaps:// (and the fake does TLS at once) */
  gboolean imap_fake_tls;   /* the fake does TLS at accept (normally = imap_implicit) */
  FakeHandler smtp;
  gboolean smtp_implicit;
  SmtpFault smtp_fault;
  const GarbageCase *garbage;
  gboolean client_cert;     /* auth = certificate with the stack's alice certificate (issue 7) */
} Setup;

typedef struct {
  Fake *imap;
  Fake *smtp;
  SmTestProxy *proxy;
  char *password;           /* the provider password the proxy holds */
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const Setup *s = data;
  g_autofree char *upstream = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  guint16 imap_port, smtp_port;

  if (!sm_test_require_stack ())
    return;
  current_garbage = s->garbage;
  current_smtp_fault = s->smtp_fault;
  smtp_data_seen = g_string_new (NULL);
  f->password = g_strdup_printf ("fake-provider-pw-%s", uuid);
  if (s->imap)
    f->imap = fake_start (s->imap, s->imap_fake_tls);
  if (s->smtp)
    f->smtp = fake_start (s->smtp, s->smtp_implicit);
  imap_port = f->imap ? f->imap->port : sm_test_free_port ();
  smtp_port = f->smtp ? f->smtp->port : sm_test_free_port ();
  upstream = g_strdup_printf ("[upstream]\nimap = %s://127.0.0.1:%u\nsmtp = %s://127.0.0.1:%u\n"
                              "username = " USERNAME "\nca_file = %s\n%s%s%s",
                              s->imap_implicit ? "imaps" : "imap", imap_port,
                              s->smtp_implicit ? "smtps" : "smtp", smtp_port, sm_test_env ("SM_TEST_CA"),
                              s->client_cert ? "auth = certificate\nclient_certificate = " : "",
                              s->client_cert ? sm_test_env ("SM_TEST_CLIENT_CERT_DIR") : "",
                              s->client_cert ? "/alice-combined.pem\n" : "");
  /* auth = certificate: no provider password in the keyring at all. */
  f->proxy = sm_test_proxy_start ("alice@example.test", upstream, s->client_cert ? NULL : f->password, NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->proxy != NULL)
    {
      /* However the provider misbehaved, the proxy logged no GLib warning
       * or critical (an API misuse on the way, e.g. a string that is not
       * UTF-8 for D-Bus). */
      g_autofree char *log = NULL;
      sm_test_proxy_stop (f->proxy);
      g_assert_true (g_file_get_contents (f->proxy->log_path, &log, NULL, NULL));
      if (strstr (log, "-CRITICAL **") != NULL || strstr (log, "-WARNING **") != NULL)
        g_error ("securemail-proxy logged a warning:\n%s", log);
    }
  g_clear_pointer (&f->proxy, sm_test_proxy_free);
  g_clear_pointer (&f->imap, fake_stop);
  g_clear_pointer (&f->smtp, fake_stop);
  if (smtp_data_seen)
    g_string_free (smtp_data_seen, TRUE);
  smtp_data_seen = NULL;
  g_free (f->password);
}

/* TRUE when @transcript holds the password in clear or as a PLAIN response. */
static gboolean
holds_password (const char *transcript, const char *password)
{
  g_autofree char *b64 = sm_test_sasl_plain (USERNAME, password);
  g_autofree char *b64_pw = g_base64_encode ((const guchar *) password, strlen (password));

  return strstr (transcript, password) != NULL || strstr (transcript, b64) != NULL ||
         strstr (transcript, b64_pw) != NULL;
}

/* ---- IMAP client helpers ---------------------------------------------------- */

static SmTestClient *
imap_connect (SmTestProxy *p)
{
  SmTestClient *c = sm_test_client_connect (p->imap_port);
  g_autofree char *greeting = sm_test_client_line (c);

  g_assert_nonnull (greeting);
  g_assert_true (g_str_has_prefix (greeting, "* OK"));
  return c;
}

/* A client logged in through the proxy with INBOX selected (tags a1, a2). */
static SmTestClient *
imap_open_selected (SmTestProxy *p)
{
  SmTestClient *c = imap_connect (p);
  g_autofree char *line = sm_test_imap_login (c, p, "a1", NULL);

  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a2 SELECT INBOX\r\n");
  line = sm_test_client_until (c, "a2 ");
  g_assert_true (g_str_has_prefix (line, "a2 OK"));
  return c;
}

/* A new connection is greeted and answers CAPABILITY: the proxy is alive. */
static void
assert_proxy_serves (SmTestProxy *p)
{
  g_autoptr(SmTestClient) c = imap_connect (p);
  g_autofree char *line = NULL;

  sm_test_client_send (c, "z1 CAPABILITY\r\n");
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "* CAPABILITY IMAP4rev1"));
  g_clear_pointer (&line, g_free);
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "z1 OK"));
}

/* ---- IMAP tests ------------------------------------------------------------- */

static void
test_imap_mid_literal (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autoptr(GByteArray) rest = g_byte_array_new ();
  g_autofree char *line = NULL;
  g_autofree char *lit = literal_bytes ();
  gint64 t0;

  if (f->proxy == NULL)
    return;
  c = imap_open_selected (f->proxy);

  t0 = g_get_monotonic_time ();
  sm_test_client_send (c, "a3 UID FETCH 7 BODY.PEEK[]\r\n");
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, "* 1 FETCH (UID 7 BODY[] {1000}");
  /* The 500 bytes the provider sent, then the connection closes: no BYE
   * that the client would take for message content, and no hang. */
  g_assert_true (sm_test_client_read_to_close (c, PROMPT_MS, rest));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, PROMPT_MS * 1000);
  g_assert_cmpuint (rest->len, ==, LITERAL_SENT);
  g_assert_cmpmem (rest->data, rest->len, lit, LITERAL_SENT);

  /* The proxy still serves: a new session logs in (the fake's second
   * connection answers in full) and fetches the whole message. */
  {
    g_autoptr(SmTestClient) c2 = imap_connect (f->proxy);
    g_autofree char *l2 = sm_test_imap_login (c2, f->proxy, "b1", NULL);
    g_autofree char *body = g_malloc (LITERAL_SIZE);
    gsize got = 0;

    g_assert_true (g_str_has_prefix (l2, "b1 OK"));
    g_clear_pointer (&l2, g_free);
    sm_test_client_send (c2, "b2 UID FETCH 7 BODY.PEEK[]\r\n");
    l2 = sm_test_client_line (c2);
    g_assert_cmpstr (l2, ==, "* 1 FETCH (UID 7 BODY[] {1000}");
    g_assert_true (g_input_stream_read_all (G_INPUT_STREAM (c2->in), body, LITERAL_SIZE, &got, NULL, NULL));
    g_assert_cmpmem (body, got, lit, LITERAL_SIZE);
    g_clear_pointer (&l2, g_free);
    l2 = sm_test_client_line (c2);
    g_assert_cmpstr (l2, ==, ")");
    g_clear_pointer (&l2, g_free);
    l2 = sm_test_client_line (c2);
    g_assert_true (g_str_has_prefix (l2, "b2 OK"));
  }
}

/* The provider drops while the proxy reads a response for itself (the
 * header pre-query of a content FETCH): the client has seen nothing of it,
 * so it gets a BYE [UNAVAILABLE] and no partial data. */
static void
test_imap_mid_prequery (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_open_selected (f->proxy);
  sm_test_client_send (c, "a3 UID FETCH 7 BODY.PEEK[]\r\n");
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "* BYE [UNAVAILABLE]"));
  g_assert_true (sm_test_client_wait_closed (c, PROMPT_MS));
  assert_proxy_serves (f->proxy);
}

/* The client's copy for Sent, through a provider without LITERAL+: the
 * proxy answers the client's "+" itself, encrypts the copy to the account's
 * key, and sends it once the provider says "+", which the client never
 * sees. */
static void
test_imap_append_sync (Fixture *f, gconstpointer data)
{
  static const char msg[] = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: copy\r\n\r\n"
                            "PLAINTEXT-MARKER of the kept copy\r\n";
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *seen = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  cmd = g_strdup_printf ("a2 APPEND Sent (\\Seen) {%zu}\r\n", strlen (msg));
  sm_test_client_send (c, cmd);
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "+ "));
  g_assert_null (strstr (line, "go ahead"));     /* the proxy's, not the provider's */
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, msg);
  sm_test_client_send (c, "\r\n");
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "a2 OK"));
  seen = fake_transcript (f->imap);
  g_assert_nonnull (strstr (seen, "APPEND Sent (\\Seen) {"));
  g_assert_nonnull (strstr (seen, "multipart/encrypted"));
  g_assert_null (strstr (seen, "PLAINTEXT-MARKER"));
}

/* A SEARCH with a literal, through a provider without LITERAL+: the proxy
 * could not send it on non-synchronizing, so it relays it as it is, the
 * provider's "+" included; a malformed SEARCH never reaches the provider. */
static void
test_imap_search_sync (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *seen = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a2 SEARCH CHARSET UTF-8 BODY {6}\r\n");
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, "+ go ahead");
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "NEEDLE\r\n");
  line = sm_test_client_until (c, "a2 ");
  g_assert_true (g_str_has_prefix (line, "a2 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a3 SEARCH (BODY x\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a3 BAD "));
  seen = fake_transcript (f->imap);
  g_assert_nonnull (strstr (seen, "a2 SEARCH CHARSET UTF-8 BODY {6}\r\n"));
  g_assert_nonnull (strstr (seen, "NEEDLE"));
  g_assert_null (strstr (seen, "a3 "));
}

static void
test_imap_close_between (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  gint64 t0;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  t0 = g_get_monotonic_time ();
  sm_test_client_send (c, "a2 NOOP\r\n");
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, "* 3 EXISTS");
  g_clear_pointer (&line, g_free);
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a2 OK"));
  g_clear_pointer (&line, g_free);
  /* Then, unasked, the reason the session ends (RFC 9051 §7.1.5). */
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "* BYE [UNAVAILABLE] "))
    g_error ("expected * BYE [UNAVAILABLE], got “%s”", line);
  g_assert_true (sm_test_client_wait_closed (c, PROMPT_MS));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, PROMPT_MS * 1000);
  assert_proxy_serves (f->proxy);
  /* status reports the lost connection. */
  {
    g_autofree char *out = NULL;
    g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
    g_assert_nonnull (strstr (out, "\"upstream_reachable\" : false"));
  }
}

static void
test_imap_close_mid_line (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a2 FETCH 1 FLAGS\r\n");
  /* The half line is not passed on: the next line is the BYE, whole. */
  line = sm_test_client_line (c);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "* BYE [UNAVAILABLE] "))
    g_error ("expected * BYE [UNAVAILABLE], got “%s”", line);
  g_assert_true (sm_test_client_wait_closed (c, PROMPT_MS));
  assert_proxy_serves (f->proxy);
}

static void
test_imap_no_starttls (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *transcript = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "a1 NO [UNAVAILABLE] "))
    g_error ("expected NO [UNAVAILABLE], got “%s”", line);
  g_assert_nonnull (strstr (line, "STARTTLS"));
  /* The proxy closed its connection to the fake; what did the fake get? */
  fake_wait_finished (f->imap, 1, PROMPT_MS);
  transcript = fake_transcript (f->imap);
  g_assert_nonnull (strstr (transcript, "CAPABILITY"));
  g_assert_false (holds_password (transcript, f->password));
  g_assert_null (strstr (transcript, "LOGIN"));
  g_assert_null (strstr (transcript, "AUTHENTICATE"));
  g_assert_null (strstr (transcript, "STARTTLS"));
  /* The client may try again, with the same answer; the session lives on. */
  g_clear_pointer (&line, g_free);
  line = sm_test_imap_login (c, f->proxy, "a2", NULL);
  g_assert_true (g_str_has_prefix (line, "a2 NO [UNAVAILABLE] "));
}

static void
test_imap_starttls_injection (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *transcript = NULL;
  const char *after_tls;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "a1 NO [UNAVAILABLE] "))
    g_error ("expected NO [UNAVAILABLE], got “%s”", line);
  g_assert_nonnull (strstr (line, "before the TLS handshake"));
  fake_wait_finished (f->imap, 1, PROMPT_MS);
  transcript = fake_transcript (f->imap);
  g_assert_nonnull (strstr (transcript, "STARTTLS"));
  g_assert_false (holds_password (transcript, f->password));
  /* Nothing at all was sent inside the TLS session it refused to use. */
  after_tls = strstr (transcript, AFTER_TLS_MARK);
  if (after_tls != NULL)
    g_assert_cmpstr (after_tls, ==, AFTER_TLS_MARK);
  assert_proxy_serves (f->proxy);
}

/* The control case for the two above: the same fake, well-behaved. */
static void
test_imap_starttls_good (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *transcript = NULL;
  const char *after_tls;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_true (g_str_has_prefix (line, "a1 OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS]"));
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a2 NOOP\r\n");
  line = sm_test_client_line (c);
  g_assert_cmpstr (line, ==, "a2 OK NOOP done");
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a3 LOGOUT\r\n");
  line = sm_test_client_until (c, "a3 ");
  g_assert_true (g_str_has_prefix (line, "a3 OK"));
  g_assert_true (sm_test_client_wait_closed (c, PROMPT_MS));
  fake_wait_finished (f->imap, 1, PROMPT_MS);
  transcript = fake_transcript (f->imap);
  /* The password went, but only after TLS. */
  after_tls = strstr (transcript, AFTER_TLS_MARK);
  g_assert_nonnull (after_tls);
  g_assert_true (holds_password (after_tls, f->password));
  {
    g_autofree char *before = g_strndup (transcript, after_tls - transcript);
    g_assert_false (holds_password (before, f->password));
  }
}

static const GarbageCase garbage_cases[] = {
  { "/proxy/upstream-faults/imap/garbage/greeting-not-imap", "220 smtp.example.test ESMTP\r\n", 0, AT_GREETING,
    NULL, FALSE, "did not greet as an IMAP server" },
  { "/proxy/upstream-faults/imap/garbage/greeting-preauth", "* PREAUTH welcome\r\n", 0, AT_GREETING, NULL,
    FALSE, "PREAUTH" },
  { "/proxy/upstream-faults/imap/garbage/greeting-bye", "* BYE too many connections\r\n", 0, AT_GREETING, NULL,
    FALSE, "did not greet" },
  { "/proxy/upstream-faults/imap/garbage/greeting-binary", "\x16\x03\x01\x00\xff\x00\x01garbage\xff\xfe\r\n", 18,
    AT_GREETING, NULL, FALSE, "did not greet" },
  { "/proxy/upstream-faults/imap/garbage/greeting-no-newline", "* OK hello", 0, AT_GREETING, NULL, FALSE,
    "closed" },
  { "/proxy/upstream-faults/imap/garbage/greeting-then-close", "* OK hello\r\n", 0, AT_CAPABILITY, "",
    FALSE, "closed" },
  { "/proxy/upstream-faults/imap/garbage/capability-garbage-then-close", "* OK hello\r\n", 0, AT_CAPABILITY,
    "lorem ipsum\r\n* 1 nonsense (((\r\n)))\r\n\r\n%s WHAT\r\n", FALSE, "closed" },
  { "/proxy/upstream-faults/imap/garbage/capability-bye", "* OK hello\r\n", 0, AT_CAPABILITY,
    "* BYE shutting down\r\n", FALSE, "shutting down" },
  /* Provider text is quoted to the client and into D-Bus status: control
   * bytes and invalid UTF-8 must not get through (a bare CR could end the
   * client's line early; invalid UTF-8 breaks the D-Bus string). */
  { "/proxy/upstream-faults/imap/garbage/bye-control-bytes", "* OK hello\r\n", 0, AT_CAPABILITY,
    "* BYE shut\x01" "down\rnow \xff\xfe" " end\r\n", FALSE, "shut?down?now" },
  { "/proxy/upstream-faults/imap/garbage/capability-huge-literal", "* OK hello\r\n", 0, AT_CAPABILITY,
    "* CAPABILITY {999999999}\r\n", FALSE, "literal" },
  { "/proxy/upstream-faults/imap/garbage/authenticate-refused", "* OK hello\r\n", 0, AT_AUTHENTICATE,
    "%s NO no PLAIN here\r\n", FALSE, "AUTHENTICATE" },
  { "/proxy/upstream-faults/imap/garbage/login-refused", "* OK hello\r\n", 0, AT_LOGIN,
    "%s NO [AUTHENTICATIONFAILED] Invalid credentials\r\n", TRUE, "refused the login" },
  { "/proxy/upstream-faults/imap/garbage/login-garbage-then-close", "* OK hello\r\n", 0, AT_LOGIN,
    "\x01\x02\x03 what\r\n%s FOO\r\n", TRUE, "closed" },
};

/* The greeting or a reply is garbage: a clear NO [UNAVAILABLE], no crash,
 * and the proxy keeps serving. */
static void
test_imap_garbage (Fixture *f, gconstpointer data)
{
  const GarbageCase *gc = current_garbage;
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  g_autofree char *transcript = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "a1 NO [UNAVAILABLE] "))
    g_error ("%s: expected NO [UNAVAILABLE], got “%s”", gc->path, line);
  if (strstr (line, gc->needle) == NULL)
    g_error ("%s: “%s” does not mention “%s”", gc->path, line, gc->needle);
  /* Whatever of the garbage is quoted, the reply is one valid UTF-8 line. */
  g_assert_true (g_utf8_validate (line, -1, NULL));
  fake_wait_finished (f->imap, 1, PROMPT_MS);
  transcript = fake_transcript (f->imap);
  g_assert_cmpint (holds_password (transcript, f->password), ==, gc->password_sent);
  /* status (over D-Bus) reports it. */
  {
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int rc = sm_test_cli (f->proxy, NULL, &out, &err, "status", "--json", NULL);
    if (rc != 0)
      g_error ("%s: securemail status failed (%d): %s", gc->path, rc, err);
    g_assert_nonnull (strstr (out, "\"upstream_reachable\" : false"));
    g_assert_true (g_utf8_validate (out, -1, NULL));
  }
  /* The same session still works for what does not need the provider. */
  g_clear_pointer (&line, g_free);
  sm_test_client_send (c, "a2 NOOP\r\n");
  line = sm_test_client_line (c);
  g_assert_true (g_str_has_prefix (line, "a2 OK"));
  assert_proxy_serves (f->proxy);
}

/* A greeting line longer than SM_UPSTREAM_MAX_LINE. */
static void
imap_long_greeting (FakeConn *fc)
{
  g_autofree char *big = g_strnfill (SM_UPSTREAM_MAX_LINE + 1024, 'x');

  fake_send (fc, "* OK ");
  fake_send (fc, big);
  fake_send (fc, "\r\n");
  fake_read_to_eof (fc);
}

static void
test_imap_long_greeting (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;

  if (f->proxy == NULL)
    return;
  c = imap_connect (f->proxy);
  line = sm_test_imap_login (c, f->proxy, "a1", NULL);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "a1 NO [UNAVAILABLE] "));
  g_assert_nonnull (strstr (line, "longer than"));
  g_assert_cmpuint (strlen (line), <, 1024);
  assert_proxy_serves (f->proxy);
}

/* A provider that accepts and never speaks: the login fails within the
 * proxy's own timeouts, and everyone else is served meanwhile. */
static void
test_imap_stalled (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *line = NULL;
  gint64 t0, elapsed;

  if (f->proxy == NULL)
    return;
#if SM_UPSTREAM_IO_TIMEOUT_S + 10 > 70
  if (g_getenv ("SM_TEST_SLOW") == NULL)
    {
      g_test_skip ("waits for SM_UPSTREAM_IO_TIMEOUT_S; set SM_TEST_SLOW=1 to run it");
      return;
    }
#endif
  c = imap_connect (f->proxy);
  g_socket_set_timeout (g_socket_connection_get_socket (c->conn), SM_UPSTREAM_CONNECT_TIMEOUT_S + SM_UPSTREAM_IO_TIMEOUT_S + 30);
  t0 = g_get_monotonic_time ();
  sm_test_client_send (c, "a1 LOGIN \"");
  sm_test_client_send (c, f->proxy->address);
  sm_test_client_send (c, "\" \"");
  sm_test_client_send (c, f->proxy->local_password);
  sm_test_client_send (c, "\"\r\n");
  /* While that login waits, the proxy answers others at once. */
  g_usleep (G_USEC_PER_SEC);
  assert_proxy_serves (f->proxy);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 10 * G_USEC_PER_SEC);

  line = sm_test_client_line (c);
  elapsed = g_get_monotonic_time () - t0;
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, "a1 NO [UNAVAILABLE] "))
    g_error ("expected NO [UNAVAILABLE], got “%s”", line);
  if (g_test_verbose ())
    g_printerr ("stalled login refused after %.1f s: %s\n", elapsed / 1e6, line);
  /* Not before the I/O timeout (it did wait), and not much after it. */
  g_assert_cmpint (elapsed, >=, (SM_UPSTREAM_IO_TIMEOUT_S - 1) * G_USEC_PER_SEC);
  g_assert_cmpint (elapsed, <=, (SM_UPSTREAM_IO_TIMEOUT_S + 10) * G_USEC_PER_SEC);
  fake_wait_finished (f->imap, 1, PROMPT_MS);
  assert_proxy_serves (f->proxy);
}

/* ---- SMTP tests -------------------------------------------------------------- */

static char *
simple_message (void)
{
  return g_strdup ("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fake\r\n\r\n"
                   "hello\r\n.leading dot\r\n..\r\n.\r\nend\r\n");
}

/* The proxy queues what it accepts (issue 5): "250 2.0.0 Queued as ID". */
static void
assert_queued (const char *reply)
{
  if (!g_str_has_prefix (reply, "250 2.0.0 Queued as "))
    g_error ("expected “250 2.0.0 Queued as ID”, got “%s”", reply);
}

/* Polls `securemail queue list --json` until it contains @a and @b (may be
 * NULL); fails after PROMPT_MS. */
static void
wait_queue_shows (SmTestProxy *p, const char *a, const char *b)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) PROMPT_MS * 1000;

  for (;;)
    {
      g_autofree char *out = NULL;
      g_assert_cmpint (sm_test_cli (p, NULL, &out, NULL, "queue", "list", "--json", NULL), ==, 0);
      if (strstr (out, a) != NULL && (b == NULL || strstr (out, b) != NULL))
        return;
      if (g_get_monotonic_time () > deadline)
        g_error ("the queue never showed “%s”:\n%s", a, out);
      g_usleep (50 * 1000);
    }
}

/* Submits simple_message() through the proxy; returns the final reply. */
static char *
smtp_submit (SmTestProxy *p)
{
  g_autoptr(SmTestClient) c = sm_test_smtp_open (p, TRUE);
  g_autofree char *msg = simple_message ();
  char *reply;

  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  reply = sm_test_smtp_data (c, msg);
  g_assert_nonnull (reply);
  /* Whatever the outcome, the session is usable afterwards. */
  g_free (sm_test_smtp_command (c, "NOOP", "250 "));
  g_free (sm_test_smtp_command (c, "QUIT", "221 "));
  return reply;
}

/* The control case: a well-behaved smtps:// fake.  What it receives is the
 * message, dot-stuffed again on the wire (RFC 5321 §4.5.2). */
static void
test_smtp_good (Fixture *f, gconstpointer data)
{
  g_autofree char *reply = NULL;
  g_autofree char *transcript = NULL;
  g_autofree char *seen = NULL;

  if (f->proxy == NULL)
    return;
  reply = smtp_submit (f->proxy);
  assert_queued (reply);
  fake_wait_finished (f->smtp, 1, PROMPT_MS);
  g_mutex_lock (&f->smtp->lock);
  seen = g_strdup (smtp_data_seen->str);
  g_mutex_unlock (&f->smtp->lock);
  /* Signed by the proxy (issue 4), and dot-stuffed again on the wire inside
   * the signed part; DATA ends with the one terminating dot. */
  g_assert_nonnull (strstr (seen, "Content-Type: multipart/signed; protocol=\"application/pgp-signature\""));
  g_assert_nonnull (strstr (seen, "\r\n\r\nhello\r\n..leading dot\r\n...\r\n..\r\nend\r\n"));
  g_assert_true (g_str_has_suffix (seen, "--\r\n.\r\n"));
  g_assert_null (strstr (seen, "\r\n.\r\n--"));   /* no unstuffed lone dot before the end */
  transcript = fake_transcript (f->smtp);
  g_assert_nonnull (strstr (transcript, "MAIL FROM:<alice@example.test>"));
  g_assert_nonnull (strstr (transcript, "RCPT TO:<bob@example.test>"));
  g_assert_true (holds_password (transcript, f->password));
}

/* auth = certificate (issue 7): AUTH EXTERNAL with the empty initial
 * response (RFC 4954 §4, RFC 4422 App. A), and no password anywhere. */
static void
test_smtp_external (Fixture *f, gconstpointer data)
{
  g_autofree char *reply = NULL;
  g_autofree char *transcript = NULL;

  if (f->proxy == NULL)
    return;
  reply = smtp_submit (f->proxy);
  assert_queued (reply);
  fake_wait_finished (f->smtp, 1, PROMPT_MS);
  transcript = fake_transcript (f->smtp);
  g_assert_nonnull (strstr (transcript, "AUTH EXTERNAL =\r\n"));
  g_assert_null (strstr (transcript, "AUTH PLAIN"));
  g_assert_null (strstr (transcript, "AUTH LOGIN"));
  g_assert_nonnull (strstr (transcript, "RCPT TO:<bob@example.test>"));
}

/* Bare LF line ends from the client reach the provider as CRLF. */
static void
test_smtp_bare_lf (Fixture *f, gconstpointer data)
{
  g_autoptr(SmTestClient) c = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *seen = NULL;

  if (f->proxy == NULL)
    return;
  c = sm_test_smtp_open (f->proxy, TRUE);
  g_free (sm_test_smtp_command (c, "MAIL FROM:<alice@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "RCPT TO:<bob@example.test>", "250 "));
  g_free (sm_test_smtp_command (c, "DATA", "354 "));
  sm_test_client_send (c, "From: alice@example.test\nSubject: lf\n\none\ntwo\r\n.\r\n");
  reply = sm_test_smtp_reply (c, NULL);
  assert_queued (reply);
  fake_wait_finished (f->smtp, 1, PROMPT_MS);
  g_mutex_lock (&f->smtp->lock);
  seen = g_strdup (smtp_data_seen->str);
  g_mutex_unlock (&f->smtp->lock);
  /* Every line reached the provider with CRLF, inside the signed message. */
  g_assert_nonnull (strstr (seen, "\r\n\r\none\r\ntwo\r\n"));
  g_assert_true (g_str_has_suffix (seen, "\r\n.\r\n"));
  for (const char *p = seen; (p = strchr (p, '\n')) != NULL; p++)
    g_assert_true (p > seen && p[-1] == '\r');
}

/* smtp:// to a provider that offers no STARTTLS, or refuses it, or injects
 * bytes after it: the message waits in the queue, whose last error names
 * STARTTLS/TLS, and no AUTH is ever sent. */
typedef struct {
  const char *needle;
  gboolean tls_happened;
} SmtpTlsExpect;

static void
test_smtp_tls_refused (Fixture *f, gconstpointer data)
{
  const SmtpTlsExpect *e = (const SmtpTlsExpect *) ((const Setup *) data + 1);
  g_autofree char *reply = NULL;
  g_autofree char *transcript = NULL;

  if (f->proxy == NULL)
    return;
  reply = smtp_submit (f->proxy);
  assert_queued (reply);
  wait_queue_shows (f->proxy, e->needle, "\"state\" : \"queued\"");
  fake_wait_finished (f->smtp, 1, PROMPT_MS);
  transcript = fake_transcript (f->smtp);
  g_assert_nonnull (strstr (transcript, "EHLO"));
  g_assert_null (strstr (transcript, "AUTH"));
  g_assert_null (strstr (transcript, "MAIL FROM"));
  g_assert_false (holds_password (transcript, f->password));
  g_assert_cmpint (strstr (transcript, AFTER_TLS_MARK) != NULL, ==, e->tls_happened);
}

/* The provider refuses at MAIL, at DATA or after the data: the message was
 * queued, and the provider's code, enhanced code and text are the queue's
 * last error (4xx: queued for a retry; 5xx: failed, and a report to the
 * sender is attempted through the provider, which refuses it too). */
typedef struct {
  const char *prefix;
  const char *text;
} SmtpRefusalExpect;

static void
test_smtp_refused (Fixture *f, gconstpointer data)
{
  const SmtpRefusalExpect *e = (const SmtpRefusalExpect *) ((const Setup *) data + 1);
  g_autofree char *reply = NULL;
  g_autofree char *transcript = NULL;
  g_autofree char *said = g_strdup_printf ("%s%s\"", e->prefix, e->text);
  gboolean permanent = e->prefix[0] == '5';

  if (f->proxy == NULL)
    return;
  reply = smtp_submit (f->proxy);
  assert_queued (reply);
  wait_queue_shows (f->proxy, said, permanent ? "\"state\" : \"failed\"" : "\"state\" : \"queued\"");
  /* A 5xx makes a report, sent on a second connection. */
  fake_wait_finished (f->smtp, permanent ? 2 : 1, PROMPT_MS);
  transcript = fake_transcript (f->smtp);
  /* The transaction was reset and the connection ended politely. */
  g_assert_nonnull (strstr (transcript, "RSET\r\n"));
  g_assert_true (g_str_has_suffix (transcript, "QUIT\r\n"));
  /* The provider answered, so it is reachable, whatever its verdict. */
  {
    g_autofree char *out = NULL;
    g_assert_cmpint (sm_test_cli (f->proxy, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
    g_assert_nonnull (strstr (out, "\"upstream_reachable\" : true"));
  }
}

/* The provider goes away in the middle of DATA, or answers EHLO with
 * garbage: the message stays queued, and the queue says why. */
static void
test_smtp_broken (Fixture *f, gconstpointer data)
{
  const char *needle = *(const char * const *) ((const Setup *) data + 1);
  g_autofree char *reply = NULL;

  if (f->proxy == NULL)
    return;
  reply = smtp_submit (f->proxy);
  assert_queued (reply);
  wait_queue_shows (f->proxy, needle, "\"state\" : \"queued\"");
}

/* ---- registration ------------------------------------------------------------ */

/* A Setup followed by the test's own expectations. */
typedef struct { Setup s; SmtpTlsExpect e; } TlsCase;
typedef struct { Setup s; SmtpRefusalExpect e; } RefusalCase;
typedef struct { Setup s; const char *needle; } BrokenCase;

#define IMAPS(h)    .imap = (h), .imap_implicit = TRUE, .imap_fake_tls = TRUE
#define IMAP(h)     .imap = (h), .imap_implicit = FALSE, .imap_fake_tls = FALSE
#define SMTPS(flt)  .smtp = smtp_fake, .smtp_implicit = TRUE, .smtp_fault = (flt)
#define SMTP(flt)   .smtp = smtp_fake, .smtp_implicit = FALSE, .smtp_fault = (flt)

static const Setup mid_literal = { IMAPS (imap_mid_literal) };
static const Setup mid_prequery = { IMAPS (imap_mid_prequery) };
static const Setup append_sync = { IMAPS (imap_append_sync) };
static const Setup close_between = { IMAPS (imap_close_between) };
static const Setup close_mid_line = { IMAPS (imap_close_mid_line) };
static const Setup no_starttls = { IMAP (imap_no_starttls) };
static const Setup starttls_injection = { IMAP (imap_starttls_injection) };
static const Setup starttls_good = { IMAP (imap_good) };
static const Setup long_greeting = { IMAPS (imap_long_greeting) };
/* imaps:// to a fake that never starts TLS: the proxy waits in the handshake. */
static const Setup stalled = { .imap = stall, .imap_implicit = TRUE, .imap_fake_tls = FALSE };

static const Setup smtp_good = { SMTPS (SMTP_OK) };
static const Setup smtp_bare_lf = { SMTPS (SMTP_OK) };
static const TlsCase smtp_no_starttls = { { SMTP (SMTP_NO_STARTTLS) }, { "STARTTLS", FALSE } };
static const TlsCase smtp_starttls_refused = { { SMTP (SMTP_STARTTLS_REFUSED) }, { "STARTTLS", FALSE } };
/* Refused before the handshake: the injected bytes are seen as soon as
 * the 220 arrives, so no TLS is started on a tampered connection. */
static const TlsCase smtp_starttls_injection = { { SMTP (SMTP_STARTTLS_INJECTION) },
                                                 { "before the TLS handshake", FALSE } };
static const RefusalCase smtp_mail_4xx = { { SMTPS (SMTP_MAIL_4XX) },
                                           { "452 4.3.1 ", "Insufficient system storage" } };
static const RefusalCase smtp_data_4xx = { { SMTPS (SMTP_DATA_4XX) },
                                           { "451 4.3.0 ", "Mail server temporarily rejected message" } };
static const RefusalCase smtp_end_5xx = { { SMTPS (SMTP_END_5XX) }, { "554 5.7.1 ", "Looks like spam to us" } };
static const BrokenCase smtp_close_in_data = { { SMTPS (SMTP_CLOSE_IN_DATA) }, "closed the connection" };
static const Setup smtp_external = { SMTPS (SMTP_EXTERNAL), .client_cert = TRUE };
static const BrokenCase smtp_malformed_ehlo = { { SMTPS (SMTP_MALFORMED_EHLO) }, "malformed" };

static Setup garbage_setups[G_N_ELEMENTS (garbage_cases)];

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, setup, fn) g_test_add ((path), Fixture, (setup), fixture_setup, (fn), fixture_teardown)
  ADD ("/proxy/upstream-faults/imap/close-mid-literal", &mid_literal, test_imap_mid_literal);
  ADD ("/proxy/upstream-faults/imap/close-mid-prequery", &mid_prequery, test_imap_mid_prequery);
  ADD ("/proxy/upstream-faults/imap/append-sent-without-literal-plus", &append_sync, test_imap_append_sync);
  ADD ("/proxy/upstream-faults/imap/search-without-literal-plus", &append_sync, test_imap_search_sync);
  ADD ("/proxy/upstream-faults/imap/close-between-responses", &close_between, test_imap_close_between);
  ADD ("/proxy/upstream-faults/imap/close-mid-line", &close_mid_line, test_imap_close_mid_line);
  ADD ("/proxy/upstream-faults/imap/no-starttls", &no_starttls, test_imap_no_starttls);
  ADD ("/proxy/upstream-faults/imap/starttls-injection", &starttls_injection, test_imap_starttls_injection);
  ADD ("/proxy/upstream-faults/imap/starttls-good", &starttls_good, test_imap_starttls_good);
  ADD ("/proxy/upstream-faults/imap/long-greeting", &long_greeting, test_imap_long_greeting);
  for (gsize i = 0; i < G_N_ELEMENTS (garbage_cases); i++)
    {
      garbage_setups[i] = (Setup) { IMAPS (imap_garbage), .garbage = &garbage_cases[i] };
      ADD (garbage_cases[i].path, &garbage_setups[i], test_imap_garbage);
    }
  ADD ("/proxy/upstream-faults/imap/stalled", &stalled, test_imap_stalled);

  ADD ("/proxy/upstream-faults/smtp/good", &smtp_good, test_smtp_good);
  ADD ("/proxy/upstream-faults/smtp/bare-lf", &smtp_bare_lf, test_smtp_bare_lf);
  ADD ("/proxy/upstream-faults/smtp/auth-external", &smtp_external, test_smtp_external);
  ADD ("/proxy/upstream-faults/smtp/no-starttls", &smtp_no_starttls, test_smtp_tls_refused);
  ADD ("/proxy/upstream-faults/smtp/starttls-refused", &smtp_starttls_refused, test_smtp_tls_refused);
  ADD ("/proxy/upstream-faults/smtp/starttls-injection", &smtp_starttls_injection, test_smtp_tls_refused);
  ADD ("/proxy/upstream-faults/smtp/mail-4xx", &smtp_mail_4xx, test_smtp_refused);
  ADD ("/proxy/upstream-faults/smtp/data-4xx", &smtp_data_4xx, test_smtp_refused);
  ADD ("/proxy/upstream-faults/smtp/end-of-data-5xx", &smtp_end_5xx, test_smtp_refused);
  ADD ("/proxy/upstream-faults/smtp/close-in-data", &smtp_close_in_data, test_smtp_broken);
  ADD ("/proxy/upstream-faults/smtp/malformed-ehlo", &smtp_malformed_ehlo, test_smtp_broken);
#undef ADD
  return g_test_run ();
}
