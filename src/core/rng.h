/* Seeded random numbers.
 *
 * Algorithm: PCG32 (O'Neill 2014, XSH-RR output, 64-bit LCG state with
 * multiplier 6364136223846793005) seeded through SplitMix64. Uniforms are the
 * top 24 bits of one draw scaled to [0,1); normals use the Box–Muller
 * transform (both values of a pair are used, the spare is cached in the state).
 * One global generator serves ser.manual_seed; components that need an
 * independent stream (augmentation workers, UMAP) derive one with
 * ser_rng_derive so results do not depend on call interleaving. */
#ifndef SER_CORE_RNG_H
#define SER_CORE_RNG_H
#include <stdint.h>

typedef struct ser_rng {
  uint64_t state, inc;
  int has_spare;
  float spare;
} ser_rng;

void ser_rng_seed(ser_rng *r, uint64_t seed);
uint32_t ser_rng_u32(ser_rng *r);
float ser_rng_uniform(ser_rng *r);                 /* [0, 1) */
float ser_rng_normal(ser_rng *r);                  /* N(0, 1) */
uint32_t ser_rng_below(ser_rng *r, uint32_t n);    /* uniform integer in [0, n), unbiased */
/* A new generator whose stream depends on r's next draw and `stream`. */
void ser_rng_derive(ser_rng *r, uint64_t stream, ser_rng *out);

/* The generator as six 32-bit words (state high/low, increment high/low, has_spare, the spare
 * normal's float bits): numbers a JSON file holds exactly, so a training state can carry a
 * generator and a resumed run draws what the uninterrupted one would have drawn. Setting
 * checks the words (an even increment or has_spare > 1 is no generator's state) and returns
 * SER_EINVAL with a message before changing anything. */
void ser_rng_get_words(const ser_rng *r, uint32_t w[6]);
int ser_rng_set_words(ser_rng *r, const uint32_t w[6]);

ser_rng *ser_rng_global(void);                     /* the generator behind ser.manual_seed */
void ser_manual_seed(uint64_t seed);

#endif
