/* The list of an encoder's own weights (weights.h). */
#include "pretrained/weights.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int ser_pretrained_weights_add(ser_pretrained_weights *w, ser_tensor *t, const char *name, const char *who) {
  if (w->n == w->cap) {
    const int cap = w->cap ? 2 * w->cap : 64;
    ser_tensor **ts = realloc(w->tensors, sizeof *ts * (size_t)cap);
    if (ts) w->tensors = ts;
    char **nm = ts ? realloc(w->names, sizeof *nm * (size_t)cap) : NULL;
    if (nm) w->names = nm;
    if (!ts || !nm) return ser_error(SER_ENOMEM, "%s: out of memory", who);
    w->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return ser_error(SER_ENOMEM, "%s: out of memory", who);
  w->tensors[w->n] = t;
  w->names[w->n++] = copy;
  return 0;
}

void ser_pretrained_weights_free(ser_pretrained_weights *w) {
  for (int i = 0; i < w->n; i++) {
    ser_tensor_release(w->tensors[i]);
    free(w->names[i]);
  }
  free(w->tensors);
  free(w->names);
  *w = (ser_pretrained_weights){0};
}

ser_tensor *ser_pretrained_weights_get(const ser_pretrained_weights *w, int i, const char **name) {
  if (i < 0 || i >= w->n) return NULL;
  if (name) *name = w->names[i];
  return w->tensors[i];
}
