/* sm-wipe.h: wiping secrets before memory is freed or reused (DESIGN.md
 * house style 5).  Unlike a bare explicit_bzero() these accept an empty
 * buffer whose pointer is NULL (an empty GByteArray has none), which
 * explicit_bzero() must not be given. */
#pragma once

#include <glib.h>
#include <string.h>

static inline void
sm_wipe (gpointer data, gsize len)
{
  if (data != NULL && len > 0)
    explicit_bzero (data, len);
}

static inline void
sm_wipe_byte_array (GByteArray *array)
{
  if (array != NULL)
    sm_wipe (array->data, array->len);
}
