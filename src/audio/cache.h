/* Decoding many files at once, and a process-wide cache of decoded audio.
 *
 * Training reads the same few thousand clips every epoch; decoding and
 * resampling them again each time was most of the reference pipeline's data
 * time. ser_audio_load_cached keeps a copy of every result keyed by the path,
 * the load options and the file's identity (device, inode, size, mtime), so a
 * file changed on disk is decoded afresh. The cache has a byte limit
 * (SER_AUDIO_CACHE_MB, default 2048; ser_audio_cache_set_limit); once full,
 * new results are returned but not kept. Thread-safe. */
#ifndef SER_AUDIO_CACHE_H
#define SER_AUDIO_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "audio/io.h"

/* As ser_audio_load, through the cache (use_cache 0 bypasses it). */
int ser_audio_load_cached(ser_audio *out, const char *path, const ser_audio_opts *opts, int use_cache);

/* Decodes n files over ser_num_threads() threads. out[i] is filled on
 * success; on failure rc[i] < 0 and msg[i] (malloc'd, caller frees) says why.
 * Returns the number of failures (>= 0). */
int ser_audio_load_many(ser_audio *out, int *rc, char **msg, const char *const *paths, int n,
                        const ser_audio_opts *opts, int use_cache);

typedef struct ser_audio_cache_stats {
  size_t entries, bytes, limit;
  uint64_t hits, misses, rejected; /* rejected: results not kept because the cache was full */
} ser_audio_cache_stats;
void ser_audio_cache_get_stats(ser_audio_cache_stats *s);
void ser_audio_cache_clear(void);
void ser_audio_cache_set_limit(size_t bytes);

#endif
