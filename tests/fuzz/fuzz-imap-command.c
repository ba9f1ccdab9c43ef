/* fuzz-imap-command.c: the client side of the IMAP proxy.
 *
 * Feeds the input to a scanner whole and in input-derived chunks (the two
 * must agree), assembles each complete command from its lines and literals
 * as the session does, and runs sm_imap_command_peek() on every first line
 * and sm_imap_command_parse() on every command.  The whole input is also
 * parsed as one command, to reach the tokenizer with arbitrary bytes.
 */
#include "fuzz-common.h"

typedef struct {
  GByteArray *command;   /* lines and literal bytes of the current command */
  gboolean have_command;
} CommandState;

/* Checks what sm_imap_command_parse() says about @data against what must
 * hold whatever the input. */
static void
check_parse (const guint8 *data, gsize len)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tag = NULL;
  g_autoptr(SmImapCommand) command = sm_imap_command_parse (data, len, &tag, &error);

  if (command == NULL)
    {
      FUZZ_CHECK (error != NULL);
      FUZZ_CHECK (error->domain == SM_ERROR);
      FUZZ_CHECK (error->code == SM_ERROR_PROTOCOL || error->code == SM_ERROR_TOO_BIG);
      /* The message goes back to the client in a BAD. */
      FUZZ_CHECK (error->message[0] != '\0' && fuzz_is_printable (error->message));
      /* The tag given back is the one sent, and is a valid tag. */
      if (tag != NULL)
        {
          gsize tag_len = strlen (tag);

          FUZZ_CHECK (tag_len > 0 && tag_len <= len && memcmp (tag, data, tag_len) == 0);
          FUZZ_CHECK (tag_len == len || data[tag_len] == ' ' || data[tag_len] == '\r' || data[tag_len] == '\n');
          FUZZ_CHECK (strpbrk (tag, "+(){%*\"\\") == NULL && fuzz_is_printable (tag));
        }
      return;
    }

  FUZZ_CHECK (error == NULL && tag == NULL);
  FUZZ_CHECK (command->tag != NULL && command->tag[0] != '\0');
  FUZZ_CHECK (strpbrk (command->tag, "+(){%*\"\\ ") == NULL && fuzz_is_printable (command->tag));
  FUZZ_CHECK (fuzz_is_upper (command->name) && fuzz_is_printable (command->name));
  FUZZ_CHECK (command->args->len <= SM_IMAP_MAX_ARGS);
  FUZZ_CHECK (len > 0 && data[len - 1] == '\n');

  {
    gsize total = 0;
    guint i;

    for (i = 0; i < command->args->len; i++)
      {
        const SmImapToken *token = g_ptr_array_index (command->args, i);
        gsize n = 0;
        const guint8 *v = g_bytes_get_data (token->value, &n);

        FUZZ_CHECK (token->kind <= SM_IMAP_TOKEN_LIST);
        total += n;
        if (token->kind == SM_IMAP_TOKEN_ATOM)
          {
            /* An atom holds a space only inside a [...] section. */
            FUZZ_CHECK (n > 0);
            FUZZ_CHECK (memchr (v, ' ', n) == NULL || memchr (v, '[', n) != NULL);
          }
        if (token->kind == SM_IMAP_TOKEN_LIST)
          FUZZ_CHECK (n >= 2 && ((v[0] == '(' && v[n - 1] == ')') || (v[0] == '[' && v[n - 1] == ']')));
      }
    FUZZ_CHECK (total <= len);
  }

  /* peek must agree with parse on every command parse accepts. */
  {
    g_autofree char *peek_tag = NULL;
    g_autofree char *peek_name = NULL;

    FUZZ_CHECK (sm_imap_command_peek (data, len, &peek_tag, &peek_name));
    FUZZ_CHECK (g_strcmp0 (peek_tag, command->tag) == 0);
    FUZZ_CHECK (g_str_has_prefix (peek_name, command->name));
    FUZZ_CHECK (strcmp (peek_name, command->name) == 0 || strcmp (command->name, "UID") == 0);
  }
}

static void
check_peek (const guint8 *line, gsize len)
{
  g_autofree char *tag = NULL;
  g_autofree char *name = NULL;

  if (sm_imap_command_peek (line, len, &tag, &name))
    {
      FUZZ_CHECK (tag != NULL && name != NULL);
      FUZZ_CHECK (strlen (tag) < len && memcmp (tag, line, strlen (tag)) == 0);
      FUZZ_CHECK (fuzz_is_upper (name) && fuzz_is_printable (name));
    }
  else
    FUZZ_CHECK (tag == NULL && name == NULL);
}

static void
on_event (SmImapScanner *scanner, const SmImapScanResult *r, gpointer user_data)
{
  CommandState *state = user_data;

  switch (r->event)
    {
    case SM_IMAP_SCAN_LINE:
      if (!r->continuation)
        {
          /* A new command starts: drop a half-assembled one. */
          g_byte_array_set_size (state->command, 0);
          check_peek (r->data, r->len);
          state->have_command = TRUE;
        }
      if (!state->have_command)
        break;
      g_byte_array_append (state->command, r->data, (guint) r->len);
      if (!r->has_literal)
        {
          check_parse (state->command->data, state->command->len);
          g_byte_array_set_size (state->command, 0);
          state->have_command = FALSE;
        }
      break;

    case SM_IMAP_SCAN_LITERAL:
      if (state->have_command)
        g_byte_array_append (state->command, r->data, (guint) r->len);
      break;

    case SM_IMAP_SCAN_LITERAL_TOO_LARGE:
      /* The session answers BAD (the line has the tag) and, for a
       * non-synchronizing literal, closes; model the close as a reset. */
      check_peek (r->data, r->len);
      g_byte_array_set_size (state->command, 0);
      state->have_command = FALSE;
      if (r->literal_nonsync)
        sm_imap_scanner_reset (scanner);
      break;

    case SM_IMAP_SCAN_LINE_TOO_LONG:
      g_byte_array_set_size (state->command, 0);
      state->have_command = FALSE;
      break;

    case SM_IMAP_SCAN_NEED_MORE:
    default:
      break;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CommandState state = { g_byte_array_new (), FALSE };
  guint64 seed = fuzz_hash (data, size);

  fuzz_init ();

  /* on_event() resets the scanner, which changes the events that follow;
   * so whole-versus-chunked is compared without it, and the session model
   * runs as a third pass. */
  fuzz_scan_both_ways (data, size, seed, NULL, NULL);
  {
    gsize max_line;
    guint64 max_literal;
    g_autoptr(GByteArray) transcript = NULL;

    fuzz_pick_limits (seed, &max_line, &max_literal);
    transcript = fuzz_scan (data, size, max_line, max_literal, 0, 0, on_event, &state);
  }
  g_byte_array_unref (state.command);

  check_parse (data, size);
  check_peek (data, size);
  return 0;
}
