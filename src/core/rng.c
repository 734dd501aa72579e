#include "rng.h"

#include <math.h>
#include <string.h>

#include "error.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void ser_rng_seed(ser_rng *r, uint64_t seed) {
  uint64_t s = seed;
  r->state = splitmix64(&s);
  r->inc = splitmix64(&s) | 1u;
  r->has_spare = 0;
  r->spare = 0;
}

uint32_t ser_rng_u32(ser_rng *r) {
  uint64_t old = r->state;
  r->state = old * 6364136223846793005ull + r->inc;
  uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float ser_rng_uniform(ser_rng *r) { return (float)(ser_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float ser_rng_normal(ser_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u1, u2;
  do {
    u1 = (ser_rng_u32(r) + 1.0) / 4294967297.0; /* (0, 1): log(u1) finite */
  } while (u1 <= 0.0);
  u2 = ser_rng_u32(r) / 4294967296.0;
  double mag = sqrt(-2.0 * log(u1));
  r->spare = (float)(mag * sin(2.0 * M_PI * u2));
  r->has_spare = 1;
  return (float)(mag * cos(2.0 * M_PI * u2));
}

uint32_t ser_rng_below(ser_rng *r, uint32_t n) {
  if (n == 0) return 0;
  uint32_t threshold = (uint32_t)(-n) % n; /* reject the biased low values */
  for (;;) {
    uint32_t x = ser_rng_u32(r);
    if (x >= threshold) return x % n;
  }
}

void ser_rng_derive(ser_rng *r, uint64_t stream, ser_rng *out) {
  uint64_t seed = ((uint64_t)ser_rng_u32(r) << 32 | ser_rng_u32(r)) ^ (stream * 0xD1B54A32D192ED03ull);
  ser_rng_seed(out, seed);
}

void ser_rng_get_words(const ser_rng *r, uint32_t w[6]) {
  w[0] = (uint32_t)(r->state >> 32);
  w[1] = (uint32_t)r->state;
  w[2] = (uint32_t)(r->inc >> 32);
  w[3] = (uint32_t)r->inc;
  w[4] = r->has_spare ? 1u : 0u;
  memcpy(&w[5], &r->spare, sizeof(float));
}

int ser_rng_set_words(ser_rng *r, const uint32_t w[6]) {
  if ((w[3] & 1u) == 0)
    return ser_error(SER_EINVAL, "rng state: the increment (words 3-4) is even (%u); a PCG32 increment is odd",
                     (unsigned)w[3]);
  if (w[4] > 1)
    return ser_error(SER_EINVAL, "rng state: has_spare (word 5) is %u; expected 0 or 1", (unsigned)w[4]);
  float spare;
  memcpy(&spare, &w[5], sizeof(float));
  if (w[4] && !isfinite(spare))
    return ser_error(SER_EINVAL, "rng state: the spare normal (word 6) is not a finite number");
  r->state = (uint64_t)w[0] << 32 | w[1];
  r->inc = (uint64_t)w[2] << 32 | w[3];
  r->has_spare = (int)w[4];
  r->spare = w[4] ? spare : 0.0f;
  return 0;
}

static int global_ready; /* the global generator belongs to the Lua thread; workers derive their own */
static ser_rng global_rng;

ser_rng *ser_rng_global(void) {
  if (!global_ready) {
    ser_rng_seed(&global_rng, 0);
    global_ready = 1;
  }
  return &global_rng;
}

void ser_manual_seed(uint64_t seed) {
  ser_rng_seed(&global_rng, seed);
  global_ready = 1;
}
