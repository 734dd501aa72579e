#include "resample.h"

#include <math.h>
#include <soxr.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int64_t ser_resample_length(int64_t n, int from, int to, ser_resample_method method) {
  if (from <= 0 || to <= 0 || n < 0) return -1;
  if (from == to) return n;
  if (method == SER_RESAMPLE_SINC) {
    int64_t g = gcd64(from, to), o = from / g, w = to / g;
    return (w * n + o - 1) / o; /* ceil(new * n / orig) in integers, as torchaudio */
  }
  return (int64_t)ceil((double)n * (double)to / (double)from);
}

int ser_resample_soxr(float *out, const float *in, int64_t n, double from, double to) {
  if (!(from > 0) || !(to > 0))
    return ser_error(SER_EINVAL, "resample: rates must be positive, got %g -> %g Hz", from, to);
  return ser_resample_soxr_n(out, (int64_t)ceil((double)n * to / from), in, n, from, to);
}

int ser_resample_soxr_n(float *out, int64_t olen, const float *in, int64_t n, double from, double to) {
  if (!(from > 0) || !(to > 0))
    return ser_error(SER_EINVAL, "resample: rates must be positive, got %g -> %g Hz", from, to);
  if (from == to) {
    int64_t k = olen < n ? olen : n;
    memcpy(out, in, (size_t)k * sizeof *out);
    for (int64_t i = k; i < olen; i++) out[i] = 0.0f;
    return 0;
  }
  if (n == 0 || olen == 0) {
    for (int64_t i = 0; i < olen; i++) out[i] = 0.0f;
    return 0;
  }
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  /* One thread per conversion: our callers already run files/rows in parallel. */
  soxr_runtime_spec_t rt = soxr_runtime_spec(1);
  size_t idone = 0, odone = 0;
  soxr_error_t err = soxr_oneshot(from, to, 1, in, (size_t)n, &idone, out, (size_t)olen, &odone, &io, &q, &rt);
  if (err) return ser_error(SER_EINVAL, "resample: libsoxr failed (%s) for %g -> %g Hz", err, from, to);
  /* soxr may deliver a sample or two fewer than ceil(); the tail is silence-level. */
  for (int64_t i = (int64_t)odone; i < olen; i++) out[i] = 0.0f;
  return 0;
}

/* Builds the [new][klen] kernel exactly as torchaudio 0.13's
 * _get_sinc_resample_kernel with a float32 waveform. torchaudio evaluates it in
 * float32; we evaluate in double and round once, which is closer to the ideal
 * kernel and within ~1e-7 of theirs. */
static float *sinc_kernel(int64_t orig, int64_t newf, int64_t *width_out, int64_t *klen_out) {
  const double lowpass_filter_width = 6.0, rolloff = 0.99;
  double base = (double)(orig < newf ? orig : newf) * rolloff;
  int64_t width = (int64_t)ceil(lowpass_filter_width * (double)orig / base);
  int64_t klen = 2 * width + orig;
  float *k = ser_alloc((size_t)(newf * klen) * sizeof *k);
  if (!k) return NULL;
  for (int64_t j = 0; j < newf; j++) {
    for (int64_t i = 0; i < klen; i++) {
      double idx = (double)(i - width) / (double)orig;
      double t = (-(double)j / (double)newf + idx) * base;
      if (t < -lowpass_filter_width) t = -lowpass_filter_width;
      if (t > lowpass_filter_width) t = lowpass_filter_width;
      double c = cos(t * M_PI / lowpass_filter_width / 2.0);
      double window = c * c;
      double tp = t * M_PI;
      double s = tp == 0.0 ? 1.0 : sin(tp) / tp;
      k[j * klen + i] = (float)(s * window * base / (double)orig);
    }
  }
  *width_out = width;
  *klen_out = klen;
  return k;
}

int ser_resample_sinc(float *out, const float *in, int64_t n, int from, int to) {
  if (from <= 0 || to <= 0)
    return ser_error(SER_EINVAL, "resample: rates must be positive, got %d -> %d Hz", from, to);
  if (from == to) {
    memcpy(out, in, (size_t)n * sizeof *out);
    return 0;
  }
  int64_t g = gcd64(from, to), orig = from / g, newf = to / g;
  if (orig * newf > 4000000)
    return ser_error(SER_EINVAL,
                     "resample: %d -> %d Hz reduces to %lld/%lld phases, too many for the sinc "
                     "method (use method 'soxr')",
                     from, to, (long long)orig, (long long)newf);
  int64_t width, klen;
  float *k = sinc_kernel(orig, newf, &width, &klen);
  if (!k) return SER_ENOMEM;
  int64_t olen = ser_resample_length(n, from, to, SER_RESAMPLE_SINC);
  /* Output sample o = frame*newf + phase reads padded[frame*orig + i], i < klen,
   * where padded[p] = in[p - width] (zero outside). */
  for (int64_t o = 0; o < olen; o++) {
    int64_t frame = o / newf, phase = o % newf;
    const float *kr = k + phase * klen;
    int64_t start = frame * orig - width; /* index into `in` of kernel tap 0 */
    int64_t i0 = start < 0 ? -start : 0;
    int64_t i1 = klen;
    if (start + i1 > n) i1 = n - start;
    float acc = 0.0f;
    for (int64_t i = i0; i < i1; i++) acc += kr[i] * in[start + i];
    out[o] = acc;
  }
  ser_free(k, (size_t)(newf * klen) * sizeof *k);
  return 0;
}
