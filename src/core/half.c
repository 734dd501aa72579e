/* Scalar conversions between float32 and the two 16-bit float formats. */
#include "half.h"

#include <math.h>
#include <string.h>

/* Round to nearest even; overflow (|f| >= 65520) gives infinity, NaN a quiet NaN. */
uint16_t ser_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00;       /* NaN */
  if (ax >= 0x477ff000u) return sign | 0x7c00;      /* rounds past 65504: infinity */
  if (ax >= 0x38800000u) {                          /* normal half: rebias, round 13 bits away */
    const uint32_t r = ax - 0x38000000u;
    return sign | (uint16_t)((r + 0xfffu + ((r >> 13) & 1u)) >> 13);
  }
  /* subnormal half (or zero): units of 2^-24, the scaling is exact, lrintf rounds to even */
  return sign | (uint16_t)lrintf(fabsf(f) * 16777216.0f);
}

float ser_f16_to_f32(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0)
    v = ldexpf((float)man, -24); /* subnormal */
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = ldexpf((float)(man | 0x400), exp - 25);
  return sign ? -v : v;
}

/* bfloat16 is float32's upper half: round to nearest even, NaN stays a quiet NaN. */
uint16_t ser_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float ser_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

