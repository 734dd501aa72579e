/* AdamW update kernel (decoupled weight decay, bias correction, eps outside the sqrt). */
#include <immintrin.h>
#include <math.h>

#include "../core/cpu.h"
#include "optim.h"

/* One element, as PyTorch's single-tensor AdamW computes it in float. */
static inline float adamw_element(float *p, float *m, float *v, float gi, float decay, float step_size,
                                  float bc2_sqrt, float b1, float b2, float a1, float a2, float fe) {
  const float pi = *p * decay;
  const float mi = *m * b1 + a1 * gi;
  const float vi = *v * b2 + a2 * gi * gi;
  *m = mi;
  *v = vi;
  return pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + fe));
}

/* Eight elements per step with the same operations in the same order (no FMA:
 * mul then add, as the scalar code rounds; sqrt and / are correctly rounded in
 * every width), so the result is bit-identical to the scalar loop. The scalar
 * loop stays scalar at -O2 (unknown trip count), and AdamW touches every
 * parameter each step: ~4 % of a CRNN training step on an AVX2-only machine. */
__attribute__((target("avx2"))) static void adamw_avx2(float *p, const float *g, float *m, float *v, size_t n,
                                                       float decay, float step_size, float bc2_sqrt, float b1,
                                                       float b2, float a1, float a2, float fe) {
  const __m256 vdecay = _mm256_set1_ps(decay), vstep = _mm256_set1_ps(step_size);
  const __m256 vbc2 = _mm256_set1_ps(bc2_sqrt), vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
  const __m256 va1 = _mm256_set1_ps(a1), va2 = _mm256_set1_ps(a2), vfe = _mm256_set1_ps(fe);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), vdecay);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), vb1), _mm256_mul_ps(va1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), vb2),
                                    _mm256_mul_ps(_mm256_mul_ps(va2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc2), vfe);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_mul_ps(vstep, _mm256_div_ps(mi, denom))));
  }
  for (; i < n; i++) p[i] = adamw_element(p + i, m + i, v + i, g[i], decay, step_size, bc2_sqrt, b1, b2, a1, a2, fe);
}

void ser_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr, double beta1,
                      double beta2, double eps, double weight_decay) {
  /* Scalars in double as PyTorch computes them in Python floats. */
  const float decay = (float)(1.0 - lr * weight_decay);
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
  const float b1 = (float)beta1, b2 = (float)beta2, fe = (float)eps;
  const float a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
  if (ser_cpu_has(SER_CPU_AVX2)) {
    adamw_avx2(p, g, m, v, n, decay, step_size, bc2_sqrt, b1, b2, a1, a2, fe);
    return;
  }
  for (size_t i = 0; i < n; i++)
    p[i] = adamw_element(p + i, m + i, v + i, g[i], decay, step_size, bc2_sqrt, b1, b2, a1, a2, fe);
}
