/* Exponential moving average of weights (the "EMA model" of timm's ModelEmaV2
 * and torch.optim.swa_utils.AveragedModel with an EMA avg_fn):
 *   avg <- decay * avg + (1 - decay) * src, element by element. */
#include <immintrin.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "optim.h"

/* avg <- d * avg + w * src, eight at a time with the scalar loop's operations
 * (two products, then the sum; no FMA), so the bits are the scalar loop's. The
 * default -march=x86-64-v2 build would otherwise run it with SSE or scalar. */
__attribute__((target("avx2"))) static void ema_avx2(float *a, const float *s, int64_t m, float d, float w) {
  const __m256 vd = _mm256_set1_ps(d), vw = _mm256_set1_ps(w);
  int64_t i = 0;
  for (; i + 8 <= m; i += 8)
    _mm256_storeu_ps(a + i, _mm256_add_ps(_mm256_mul_ps(vd, _mm256_loadu_ps(a + i)),
                                          _mm256_mul_ps(vw, _mm256_loadu_ps(s + i))));
  for (; i < m; i++) a[i] = d * a[i] + w * s[i];
}

int ser_ema_update(ser_tensor *const *avg, ser_tensor *const *src, int n, double decay) {
  if (!(decay >= 0 && decay <= 1))
    return ser_error(SER_EINVAL, "ema_update: decay %g, expected a number in [0, 1]", decay);
  /* Check every pair before writing any, so a bad list leaves the average untouched. */
  for (int k = 0; k < n; k++) {
    if (!avg[k] || !src[k]) return ser_error(SER_EINVAL, "ema_update: tensor %d is missing", k + 1);
    if (!ser_tensor_same_shape(avg[k], src[k]))
      return ser_error(SER_EINVAL, "ema_update: tensor %d: the average and the source differ in shape", k + 1);
    if (!ser_tensor_is_contiguous(avg[k]) || !ser_tensor_is_contiguous(src[k]))
      return ser_error(SER_EINVAL, "ema_update: tensor %d is not contiguous", k + 1);
  }
  const float d = (float)decay, w = (float)(1.0 - decay);
  const int avx2 = ser_cpu_has(SER_CPU_AVX2);
  for (int k = 0; k < n; k++) {
    float *a = ser_tensor_data(avg[k]);
    const float *s = ser_tensor_data(src[k]);
    const int64_t m = ser_tensor_numel(avg[k]);
    if (avx2)
      ema_avx2(a, s, m, d, w);
    else
      for (int64_t i = 0; i < m; i++) a[i] = d * a[i] + w * s[i];
  }
  return 0;
}
