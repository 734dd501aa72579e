#include "scratch.h"

#include "../core/alloc.h"

static _Thread_local void *buf[SER_SCRATCH_SLOTS];
static _Thread_local size_t cap[SER_SCRATCH_SLOTS];

void *ser_scratch(int slot, size_t bytes) {
  if (bytes <= cap[slot]) return buf[slot];
  /* Grow by at least half again so a slowly growing sequence of requests does
   * not reallocate every call. */
  size_t want = bytes + bytes / 2;
  void *p = ser_alloc(want);
  if (!p) return NULL;
  ser_free(buf[slot], cap[slot]);
  buf[slot] = p;
  cap[slot] = want;
  return p;
}

void ser_scratch_release(void) {
  for (int i = 0; i < SER_SCRATCH_SLOTS; i++) {
    ser_free(buf[i], cap[i]);
    buf[i] = NULL;
    cap[i] = 0;
  }
}
