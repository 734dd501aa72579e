#include "alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Live bytes are what callers hold; cached bytes are freed blocks kept for
 * reuse. A training step allocates the same activation and gradient sizes
 * every step; handing those back to the system and mapping them again costs
 * page faults and kernel zeroing (~12% of a CNN2D step before this cache).
 * Large blocks are therefore kept, keyed by exact rounded size, up to a cap. */
static atomic_size_t live_bytes;
static atomic_size_t peak_bytes;

#define CACHE_MIN_BYTES (64u << 10)   /* smaller blocks: malloc's own bins are fast */
#define CACHE_SLOTS 512
static size_t cache_cap_bytes = (size_t)1 << 30; /* SER_CACHE_MB overrides (0 = no cache) */
static pthread_once_t cache_cap_once = PTHREAD_ONCE_INIT;

static void read_cache_cap(void) {
  const char *env = getenv("SER_CACHE_MB");
  if (env && *env) {
    char *end;
    unsigned long long mb = strtoull(env, &end, 10);
    if (*end == 0) cache_cap_bytes = (size_t)mb << 20;
  }
}
static struct {
  void *ptr;
  size_t size;
} cache[CACHE_SLOTS];
static int cache_count;
static size_t cache_bytes;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t round_up(size_t n) {
  if (n < CACHE_MIN_BYTES) return (n + 63) & ~(size_t)63;
  return (n + 4095) & ~(size_t)4095; /* page granularity so near sizes share blocks */
}

static void *cache_take(size_t rounded) {
  void *p = NULL;
  pthread_mutex_lock(&cache_lock);
  for (int i = cache_count - 1; i >= 0; i--) /* most recently freed first: still in cache */
    if (cache[i].size == rounded) {
      p = cache[i].ptr;
      cache[i] = cache[--cache_count];
      cache_bytes -= rounded;
      break;
    }
  pthread_mutex_unlock(&cache_lock);
  return p;
}

static int cache_put(void *p, size_t rounded) {
  int kept = 0;
  pthread_once(&cache_cap_once, read_cache_cap);
  pthread_mutex_lock(&cache_lock);
  if (cache_count < CACHE_SLOTS && cache_bytes + rounded <= cache_cap_bytes) {
    cache[cache_count].ptr = p;
    cache[cache_count].size = rounded;
    cache_count++;
    cache_bytes += rounded;
    kept = 1;
  }
  pthread_mutex_unlock(&cache_lock);
  return kept;
}

void *ser_alloc(size_t bytes) {
  size_t rounded = round_up(bytes ? bytes : 64);
  if (rounded < bytes) {
    ser_error(SER_ENOMEM, "allocation of %zu bytes is too large", bytes);
    return NULL;
  }
  void *p = rounded >= CACHE_MIN_BYTES ? cache_take(rounded) : NULL;
  if (!p) p = aligned_alloc(64, rounded);
  if (!p) {
    ser_memory_trim(); /* the cache may hold what we need, in other sizes */
    p = aligned_alloc(64, rounded);
  }
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
  size_t rounded = round_up(bytes ? bytes : 64);
  if (rounded >= CACHE_MIN_BYTES && cache_put(p, rounded)) return;
  free(p);
}

size_t ser_memory_live(void) { return atomic_load(&live_bytes); }
size_t ser_memory_peak(void) { return atomic_load(&peak_bytes); }
void ser_memory_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }

size_t ser_memory_cached(void) {
  pthread_mutex_lock(&cache_lock);
  size_t n = cache_bytes;
  pthread_mutex_unlock(&cache_lock);
  return n;
}

void ser_memory_trim(void) {
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < cache_count; i++) free(cache[i].ptr);
  cache_count = 0;
  cache_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
}

void ser_memory_set_cache_limit(size_t bytes) {
  pthread_once(&cache_cap_once, read_cache_cap);
  pthread_mutex_lock(&cache_lock);
  cache_cap_bytes = bytes;
  pthread_mutex_unlock(&cache_lock);
  if (ser_memory_cached() > bytes) ser_memory_trim();
}
