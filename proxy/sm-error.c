/* sm-error.c: the project's error domain. */
#include "sm-error.h"

G_DEFINE_QUARK (securemail-error-quark, sm_error)
