/* Aligned allocation with accounting.
 *
 * Every tensor buffer goes through here so that the live byte count is known:
 * the Lua binding uses it to drive the garbage collector (Lua cannot see tensor
 * memory otherwise — Torch7's lesson) and ser.memory() reports it. Buffers are
 * 64-byte aligned for AVX-512 loads. Thread-safe. */
#ifndef SER_CORE_ALLOC_H
#define SER_CORE_ALLOC_H
#include <stddef.h>

void *ser_alloc(size_t bytes);          /* NULL (with ser_error set) on failure; 0 bytes ok */
void *ser_calloc(size_t bytes);         /* zero-filled */
void ser_free(void *p, size_t bytes);   /* bytes must equal the allocated size */
size_t ser_memory_live(void);           /* bytes currently allocated through ser_alloc */
size_t ser_memory_peak(void);
void ser_memory_reset_peak(void);
/* Freed blocks of 64 KiB and more are cached for reuse (same sizes recur every
 * training step); these report and release that cache. Default limit 512 MiB,
 * or SER_CACHE_MB from the environment (0 turns the cache off); when full, the
 * blocks freed longest ago are released first. */
size_t ser_memory_cached(void);
void ser_memory_trim(void);
void ser_memory_set_cache_limit(size_t bytes);

#endif
