#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"

typedef struct entry {
  struct entry *next;
  char *path;
  ser_audio_opts opts;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  ser_audio audio;
  size_t bytes;
} entry;

#define NBUCKETS 4096
static entry *buckets[NBUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t total_bytes, n_entries, limit_bytes;
static int limit_set;
static uint64_t hits, misses, rejected;

static size_t limit_locked(void) {
  if (!limit_set) {
    const char *env = getenv("SER_AUDIO_CACHE_MB");
    long mb = env ? atol(env) : 2048;
    limit_bytes = mb > 0 ? (size_t)mb << 20 : 0;
    limit_set = 1;
  }
  return limit_bytes;
}

static uint64_t hash_key(const char *path, const ser_audio_opts *o) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) h = (h ^ *p) * 1099511628211ull;
  h = (h ^ (uint64_t)o->sr) * 1099511628211ull;
  h = (h ^ (uint64_t)(o->seconds * 1000.0)) * 1099511628211ull;
  return h;
}

static int same_opts(const ser_audio_opts *a, const ser_audio_opts *b) {
  return a->sr == b->sr && !!a->mono == !!b->mono && a->offset == b->offset && a->seconds == b->seconds &&
         !!a->normalize == !!b->normalize;
}

static int copy_audio(ser_audio *dst, const ser_audio *src) {
  size_t bytes = (size_t)(src->frames * src->channels) * sizeof(float);
  *dst = *src;
  dst->data = ser_alloc(bytes);
  if (!dst->data) return SER_ENOMEM;
  memcpy(dst->data, src->data, bytes);
  return 0;
}

int ser_audio_load_cached(ser_audio *out, const char *path, const ser_audio_opts *opts_in, int use_cache) {
  ser_audio_opts opts = opts_in ? *opts_in : ser_audio_opts_default();
  if (!use_cache) return ser_audio_load(out, path, &opts);
  struct stat st;
  /* A missing file is reported by the loader with its own message. */
  if (!path || stat(path, &st) != 0) return ser_audio_load(out, path, &opts);
  uint64_t h = hash_key(path, &opts);
  size_t b = (size_t)(h % NBUCKETS);
  pthread_mutex_lock(&lock);
  for (entry *e = buckets[b]; e; e = e->next) {
    if (strcmp(e->path, path) || !same_opts(&e->opts, &opts)) continue;
    if (e->dev == st.st_dev && e->ino == st.st_ino && e->size == st.st_size &&
        e->mtime.tv_sec == st.st_mtim.tv_sec && e->mtime.tv_nsec == st.st_mtim.tv_nsec) {
      hits++;
      int rc = copy_audio(out, &e->audio);
      pthread_mutex_unlock(&lock);
      return rc;
    }
    break; /* stale: decoded again below and replaced */
  }
  misses++;
  pthread_mutex_unlock(&lock);

  int rc = ser_audio_load(out, path, &opts);
  if (rc < 0) return rc;

  entry *e = calloc(1, sizeof *e);
  size_t bytes = (size_t)(out->frames * out->channels) * sizeof(float);
  if (!e || !(e->path = strdup(path)) || copy_audio(&e->audio, out) < 0) {
    if (e) free(e->path);
    free(e);
    ser_error_clear();
    return 0; /* not cached, but the caller has its audio */
  }
  e->opts = opts;
  e->dev = st.st_dev;
  e->ino = st.st_ino;
  e->size = st.st_size;
  e->mtime = st.st_mtim;
  e->bytes = bytes;
  pthread_mutex_lock(&lock);
  /* Drop a stale entry for the same key (another thread may also have inserted one). */
  for (entry **pp = &buckets[b]; *pp;) {
    entry *o = *pp;
    if (!strcmp(o->path, path) && same_opts(&o->opts, &opts)) {
      *pp = o->next;
      total_bytes -= o->bytes;
      n_entries--;
      ser_audio_free(&o->audio);
      free(o->path);
      free(o);
    } else {
      pp = &o->next;
    }
  }
  if (total_bytes + bytes <= limit_locked()) {
    e->next = buckets[b];
    buckets[b] = e;
    total_bytes += bytes;
    n_entries++;
    e = NULL;
  } else {
    rejected++;
  }
  pthread_mutex_unlock(&lock);
  if (e) {
    ser_audio_free(&e->audio);
    free(e->path);
    free(e);
  }
  return 0;
}

int ser_audio_load_many(ser_audio *out, int *rc, char **msg, const char *const *paths, int n,
                        const ser_audio_opts *opts, int use_cache) {
  int nt = ser_num_threads();
  if (nt > n) nt = n;
  if (nt < 1) nt = 1;
  int failures = 0;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(+ : failures)
  for (int i = 0; i < n; i++) {
    msg[i] = NULL;
    rc[i] = ser_audio_load_cached(&out[i], paths[i], opts, use_cache);
    if (rc[i] < 0) {
      /* The message lives in this worker's thread-local error state: copy it. */
      msg[i] = strdup(ser_errmsg());
      failures++;
    }
  }
  return failures;
}

void ser_audio_cache_get_stats(ser_audio_cache_stats *s) {
  pthread_mutex_lock(&lock);
  s->entries = n_entries;
  s->bytes = total_bytes;
  s->limit = limit_locked();
  s->hits = hits;
  s->misses = misses;
  s->rejected = rejected;
  pthread_mutex_unlock(&lock);
}

void ser_audio_cache_clear(void) {
  pthread_mutex_lock(&lock);
  for (int b = 0; b < NBUCKETS; b++) {
    entry *e = buckets[b];
    while (e) {
      entry *next = e->next;
      ser_audio_free(&e->audio);
      free(e->path);
      free(e);
      e = next;
    }
    buckets[b] = NULL;
  }
  total_bytes = n_entries = 0;
  hits = misses = rejected = 0;
  pthread_mutex_unlock(&lock);
}

void ser_audio_cache_set_limit(size_t bytes) {
  pthread_mutex_lock(&lock);
  limit_bytes = bytes;
  limit_set = 1;
  pthread_mutex_unlock(&lock);
}
