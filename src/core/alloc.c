#include "alloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Live bytes are what callers hold; cached bytes are freed blocks kept for
 * reuse. A training step allocates the same activation and gradient sizes
 * every step; handing those back to the system and mapping them again costs
 * page faults and kernel zeroing (~12% of a CNN2D step before this cache).
 * Large blocks are therefore kept, keyed by exact rounded size, up to a cap.
 * When a freed block does not fit under the cap, the blocks freed longest ago
 * go back to the system to make room: the cache follows the sizes in use now
 * (one model's steps, then the next model's, then evaluation's) instead of
 * filling up with the first sizes it saw and refusing every later one. */
static atomic_size_t live_bytes;
static atomic_size_t peak_bytes;

#define CACHE_MIN_BYTES (64u << 10)   /* smaller blocks: malloc's own bins are fast */
#define CACHE_SLOTS 512
#define CACHE_DEFAULT_BYTES ((size_t)512 << 20)
static size_t cache_cap_bytes = CACHE_DEFAULT_BYTES; /* SER_CACHE_MB overrides (0 = no cache) */
static pthread_once_t cache_cap_once = PTHREAD_ONCE_INIT;

/* Blocks of this size and more are mapped by malloc on their own and unmapped by free.
 * glibc's default threshold moves up (to 32 MiB) after the first large free, and then
 * large blocks come from the heap, whose freed holes are rarely returned to the system:
 * the process keeps every peak it ever had. A fixed threshold keeps RSS to what is live
 * plus this cache. (A process-wide malloc setting; it only changes where blocks of
 * 256 KiB and more come from.) */
#define MMAP_THRESHOLD_BYTES (256 << 10)

static void read_cache_cap(void) {
  const char *env = getenv("SER_CACHE_MB");
  if (env && *env) {
    char *end;
    unsigned long long mb = strtoull(env, &end, 10);
    if (*end == 0) cache_cap_bytes = (size_t)mb << 20;
  }
#ifdef M_MMAP_THRESHOLD
  mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
#endif
}
static struct {
  void *ptr;
  size_t size;
  uint64_t stamp; /* order of freeing: the smallest was freed longest ago */
} cache[CACHE_SLOTS];
static int cache_count;
static size_t cache_bytes;
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t round_up(size_t n) {
  if (n < CACHE_MIN_BYTES) return (n + 63) & ~(size_t)63;
  return (n + 4095) & ~(size_t)4095; /* page granularity so near sizes share blocks */
}

static void *cache_take(size_t rounded) {
  void *p = NULL;
  pthread_mutex_lock(&cache_lock);
  int best = -1;
  for (int i = 0; i < cache_count; i++) /* most recently freed first: still in cache */
    if (cache[i].size == rounded && (best < 0 || cache[i].stamp > cache[best].stamp)) best = i;
  if (best >= 0) {
    p = cache[best].ptr;
    cache[best] = cache[--cache_count];
    cache_bytes -= rounded;
  }
  pthread_mutex_unlock(&cache_lock);
  return p;
}

/* Keeps p, evicting the oldest blocks as needed; returns 0 when p cannot be kept (larger
 * than the whole cap). Evicted blocks are freed after the lock is dropped. */
static int cache_put(void *p, size_t rounded) {
  pthread_once(&cache_cap_once, read_cache_cap);
  void *evicted[CACHE_SLOTS];
  int n_evicted = 0, kept = 0;
  pthread_mutex_lock(&cache_lock);
  if (rounded <= cache_cap_bytes) {
    while (cache_count > 0 && (cache_count == CACHE_SLOTS || cache_bytes + rounded > cache_cap_bytes)) {
      int old = 0;
      for (int i = 1; i < cache_count; i++)
        if (cache[i].stamp < cache[old].stamp) old = i;
      evicted[n_evicted++] = cache[old].ptr;
      cache_bytes -= cache[old].size;
      cache[old] = cache[--cache_count];
    }
    cache[cache_count].ptr = p;
    cache[cache_count].size = rounded;
    cache[cache_count].stamp = ++cache_clock;
    cache_count++;
    cache_bytes += rounded;
    kept = 1;
  }
  pthread_mutex_unlock(&cache_lock);
  for (int i = 0; i < n_evicted; i++) free(evicted[i]);
  return kept;
}

void *ser_alloc(size_t bytes) {
  pthread_once(&cache_cap_once, read_cache_cap);
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
  /* Blocks under the mmap threshold live in malloc's arenas (one per thread that allocated:
   * the prefetch worker, the OpenMP team); their freed pages stay resident until trimmed.
   * Between two models of the main job that was ~200 MB the next model started with. */
  malloc_trim(0);
}

void ser_memory_set_cache_limit(size_t bytes) {
  pthread_once(&cache_cap_once, read_cache_cap);
  pthread_mutex_lock(&cache_lock);
  cache_cap_bytes = bytes;
  pthread_mutex_unlock(&cache_lock);
  if (ser_memory_cached() > bytes) ser_memory_trim();
}
