/* fuzz-driver.c: a main() for the fuzz targets when libFuzzer is not used
 * (gcc builds, -Dfuzzing=false), so that the targets build and run bounded
 * in every CI configuration (DESIGN.md house style 8).
 *
 *   fuzz-imap-command [--iterations=N] [--seconds=S] [--seed=N] FILE|DIR...
 *
 * Runs every file given (every regular file of a directory, in name order)
 * through LLVMFuzzerTestOneInput(), then runs N deterministic pseudo-random
 * mutations of those inputs, stopping early after S seconds.  Defaults come
 * from FUZZ_ITERATIONS, FUZZ_SECONDS and FUZZ_SEED, else the constants
 * below.  There is no coverage feedback: this is a smoke fuzzer that keeps
 * the corpus and the oracles honest; libFuzzer does the real search.
 * Exits 0 when nothing crashed (a finding aborts the process).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "fuzz-common.h"

/* Bounds: with ASan the targets run some thousands of inputs a second, so
 * these keep one run well under 20 s. */
#define DEFAULT_ITERATIONS  20000
#define DEFAULT_SECONDS     10.0
#define DEFAULT_SEED        G_GUINT64_CONSTANT (0x5EC0BE11)
#define MAX_INPUT_SIZE      (16 * 1024)  /* a mutated input never grows past this */
#define MAX_CORPUS_FILE     (1024 * 1024) /* larger files are skipped */
#define POOL_SIZE           256          /* recent mutants kept to mutate further */
#define MAX_STACKED         8            /* mutations applied to one input */

/* Fragments that matter to an IMAP tokenizer, spliced in by mutations. */
static const char * const dictionary[] = {
  "\r\n", "\n", "\r", " ", "\"", "\\", "\\\"", "(", ")", "[", "]", "{", "}",
  "{0}\r\n", "{1}\r\n", "{5}\r\n", "{5+}\r\n", "~{3}\r\n", "~{2+}\r\n",
  "{4294967296}\r\n", "{18446744073709551616}\r\n", "{99999999}\r\n",
  "* ", "+ ", "a1 ", "* 1 FETCH (", "BODY[]", "BODY.PEEK[HEADER.FIELDS (FROM)]",
  "OK ", "NO ", "BAD ", "BYE ", "PREAUTH ", "[CAPABILITY ", "CAPABILITY ",
  "AUTH=PLAIN ", "STARTTLS ", "COMPRESS=DEFLATE ", "LOGIN ", "UID ", "APPEND ",
  "IDLE\r\n", "DONE\r\n", "NIL", "\0", "\xff", "\xc3\xa9",
};

typedef struct {
  guint8 *data;
  gsize len;
} Input;

static void
input_clear (gpointer data)
{
  Input *input = data;

  g_free (input->data);
}

/* Runs one input from a buffer of exactly its size, as libFuzzer does, so
 * that ASan catches a read one past the end. */
static void
run_one (const guint8 *data, gsize len)
{
  g_autofree guint8 *copy = g_memdup2 (data, len);

  LLVMFuzzerTestOneInput (copy, len);
}

static gboolean
parse_u64 (const char *text, guint64 *out)
{
  g_autoptr(GError) error = NULL;

  return g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, out, &error);
}

static void
add_file (GArray *inputs, const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;
  Input input;

  if (!g_file_get_contents (path, &contents, &len, &error))
    {
      g_printerr ("fuzz-driver: %s\n", error->message);
      exit (2);
    }
  if (len > MAX_CORPUS_FILE)
    {
      g_printerr ("fuzz-driver: skipping %s (%" G_GSIZE_FORMAT " bytes)\n", path, len);
      return;
    }
  input.data = (guint8 *) g_steal_pointer (&contents);
  input.len = len;
  g_array_append_val (inputs, input);
}

/* g_ptr_array_sort() passes pointers to the elements. */
static int
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

static void
add_path (GArray *inputs, const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GDir) dir = g_dir_open (path, 0, &error);
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *name;
      guint i;

      if (dir == NULL)
        {
          g_printerr ("fuzz-driver: %s\n", error->message);
          exit (2);
        }
      while ((name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (names, g_build_filename (path, name, NULL));
      /* Directory order differs between file systems; sort so runs repeat. */
      g_ptr_array_sort (names, compare_paths);
      for (i = 0; i < names->len; i++)
        if (g_file_test (names->pdata[i], G_FILE_TEST_IS_REGULAR))
          add_file (inputs, names->pdata[i]);
    }
  else
    add_file (inputs, path);
}

/* Applies 1..MAX_STACKED random edits to @buf (length *len, capacity
 * MAX_INPUT_SIZE). */
static void
mutate (guint8 *buf, gsize *len, const GArray *inputs, guint64 *rng)
{
  guint n_edits = 1 + (guint) (fuzz_next (rng) % MAX_STACKED);
  guint k;

  for (k = 0; k < n_edits; k++)
    {
      gsize at = *len ? (gsize) (fuzz_next (rng) % (*len + 1)) : 0;

      switch (fuzz_next (rng) % 8)
        {
        case 0:   /* flip a bit */
          if (*len > 0)
            buf[at % *len] ^= (guint8) (1u << (fuzz_next (rng) % 8));
          break;
        case 1:   /* set a random byte */
          if (*len > 0)
            buf[at % *len] = (guint8) fuzz_next (rng);
          break;
        case 2:   /* delete a range */
          if (*len > 0)
            {
              gsize start = at % *len;
              gsize n = 1 + (gsize) (fuzz_next (rng) % MIN (*len - start, (gsize) 32));

              memmove (buf + start, buf + start + n, *len - start - n);
              *len -= n;
            }
          break;
        case 3:   /* insert a dictionary fragment */
        case 4:
          {
            const char *word = dictionary[fuzz_next (rng) % G_N_ELEMENTS (dictionary)];
            gsize n = word[0] == '\0' ? 1 : strlen (word);

            if (*len + n <= MAX_INPUT_SIZE)
              {
                memmove (buf + at + n, buf + at, *len - at);
                memcpy (buf + at, word, n);
                *len += n;
              }
            break;
          }
        case 5:   /* duplicate a range */
          if (*len > 0)
            {
              gsize start = (gsize) (fuzz_next (rng) % *len);
              gsize n = 1 + (gsize) (fuzz_next (rng) % MIN (*len - start, (gsize) 64));

              if (*len + n <= MAX_INPUT_SIZE)
                {
                  g_autofree guint8 *piece = g_memdup2 (buf + start, n);

                  memmove (buf + at + n, buf + at, *len - at);
                  memcpy (buf + at, piece, n);
                  *len += n;
                }
            }
          break;
        case 6:   /* splice in part of another corpus input */
          {
            const Input *other = &g_array_index (inputs, Input, fuzz_next (rng) % inputs->len);

            if (other->len > 0)
              {
                gsize start = (gsize) (fuzz_next (rng) % other->len);
                /* MIN evaluates its arguments twice: draw first. */
                gsize want = 1 + (gsize) (fuzz_next (rng) % 256);
                gsize n = MIN (other->len - start, MAX_INPUT_SIZE - *len);

                n = MIN (n, want);
                memmove (buf + at + n, buf + at, *len - at);
                memcpy (buf + at, other->data + start, n);
                *len += n;
              }
            break;
          }
        case 7:   /* truncate */
        default:
          *len = at;
          break;
        }
    }
}

int
main (int argc, char **argv)
{
  g_autoptr(GArray) inputs = g_array_new (FALSE, TRUE, sizeof (Input));
  g_autoptr(GArray) pool = g_array_new (FALSE, TRUE, sizeof (Input));
  g_autoptr(GTimer) timer = g_timer_new ();
  g_autofree guint8 *buf = g_malloc (MAX_INPUT_SIZE);
  guint64 iterations = DEFAULT_ITERATIONS;
  guint64 seed = DEFAULT_SEED;
  guint64 value = 0;
  double seconds = DEFAULT_SECONDS;
  const char *env;
  guint64 done = 0;
  guint64 rng;
  guint i;
  int a;

  g_array_set_clear_func (inputs, input_clear);
  g_array_set_clear_func (pool, input_clear);

  if ((env = g_getenv ("FUZZ_ITERATIONS")) != NULL && parse_u64 (env, &value))
    iterations = value;
  if ((env = g_getenv ("FUZZ_SECONDS")) != NULL)
    seconds = g_ascii_strtod (env, NULL);
  if ((env = g_getenv ("FUZZ_SEED")) != NULL && parse_u64 (env, &value))
    seed = value;

  for (a = 1; a < argc; a++)
    {
      const char *arg = argv[a];

      if (g_str_has_prefix (arg, "--iterations="))
        {
          if (!parse_u64 (arg + strlen ("--iterations="), &iterations))
            goto usage;
        }
      else if (g_str_has_prefix (arg, "--seconds="))
        seconds = g_ascii_strtod (arg + strlen ("--seconds="), NULL);
      else if (g_str_has_prefix (arg, "--seed="))
        {
          if (!parse_u64 (arg + strlen ("--seed="), &seed))
            goto usage;
        }
      else if (g_str_has_prefix (arg, "-"))
        goto usage;
      else
        add_path (inputs, arg);
    }

  if (inputs->len == 0)
    {
      Input empty = { g_malloc (1), 0 };

      g_array_append_val (inputs, empty);
    }

  for (i = 0; i < inputs->len; i++)
    {
      const Input *input = &g_array_index (inputs, Input, i);

      run_one (input->data, input->len);
    }

  rng = seed;
  for (done = 0; done < iterations; done++)
    {
      const Input *base;
      gsize len;

      /* Checking the clock costs little next to a run, but not nothing. */
      if (done % 64 == 0 && g_timer_elapsed (timer, NULL) >= seconds)
        break;

      /* Mostly mutate corpus inputs; sometimes a recent mutant, to go
       * several edits deep. */
      if (pool->len > 0 && fuzz_next (&rng) % 4 == 0)
        base = &g_array_index (pool, Input, fuzz_next (&rng) % pool->len);
      else
        base = &g_array_index (inputs, Input, fuzz_next (&rng) % inputs->len);
      len = MIN (base->len, (gsize) MAX_INPUT_SIZE);
      memcpy (buf, base->data, len);
      mutate (buf, &len, inputs, &rng);
      run_one (buf, len);

      {
        Input mutant = { g_memdup2 (buf, len ? len : 1), len };

        if (pool->len < POOL_SIZE)
          g_array_append_val (pool, mutant);
        else
          {
            guint slot = (guint) (fuzz_next (&rng) % POOL_SIZE);

            input_clear (&g_array_index (pool, Input, slot));
            g_array_index (pool, Input, slot) = mutant;
          }
      }
    }

  g_print ("%s: %u corpus inputs, %" G_GUINT64_FORMAT " mutations in %.1f s (seed %" G_GUINT64_FORMAT "), no crash\n",
           argv[0], inputs->len, done, g_timer_elapsed (timer, NULL), seed);
  return 0;

usage:
  g_printerr ("usage: %s [--iterations=N] [--seconds=S] [--seed=N] FILE|DIR...\n", argv[0]);
  return 2;
}
