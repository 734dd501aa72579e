#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static atomic_size_t live_bytes;
static atomic_size_t peak_bytes;

static size_t round_up(size_t n) { return (n + 63) & ~(size_t)63; }

void *ser_alloc(size_t bytes) {
  size_t rounded = round_up(bytes ? bytes : 64);
  if (rounded < bytes) {
    ser_error(SER_ENOMEM, "allocation of %zu bytes is too large", bytes);
    return NULL;
  }
  void *p = aligned_alloc(64, rounded);
  if (!p) {
    ser_error(SER_ENOMEM, "out of memory allocating %zu bytes (%zu bytes of tensors live)", bytes,
              (size_t)atomic_load(&live_bytes));
    return NULL;
  }
  size_t now = atomic_fetch_add(&live_bytes, bytes) + bytes;
  size_t peak = atomic_load(&peak_bytes);
  while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
  }
  return p;
}

void *ser_calloc(size_t bytes) {
  void *p = ser_alloc(bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

void ser_free(void *p, size_t bytes) {
  if (!p) return;
  atomic_fetch_sub(&live_bytes, bytes);
  free(p);
}

size_t ser_memory_live(void) { return atomic_load(&live_bytes); }
size_t ser_memory_peak(void) { return atomic_load(&peak_bytes); }
void ser_memory_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }
