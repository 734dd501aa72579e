#include "activation.h"

#include <emmintrin.h>
#include <math.h>
#include <omp.h>

#include "../core/error.h"
#include "rowops.h"

/* SSE2 selects (baseline on x86-64) rather than a C ternary: GCC will not
 * if-convert a float comparison while -ftrapping-math is on (the default),
 * so the plain loop stays scalar with a branch that mispredicts half the time
 * on activations (7 ns per element measured). The loops are memory-bound, so
 * 4 lanes are enough. */
void ser_leaky_relu_forward(float *out, const float *in, int64_t n, float slope) {
#pragma omp parallel if (n > 262144)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lo = n * t / nt / 4 * 4, hi = t == nt - 1 ? n : n * (t + 1) / nt / 4 * 4;
    __m128 zero = _mm_setzero_ps(), s = _mm_set1_ps(slope);
    int64_t i = lo;
    for (; i + 4 <= hi; i += 4) {
      __m128 a = _mm_loadu_ps(in + i), m = _mm_cmpgt_ps(a, zero);
      _mm_storeu_ps(out + i, _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, _mm_mul_ps(a, s))));
    }
    for (; i < hi; i++) out[i] = in[i] > 0.0f ? in[i] : in[i] * slope;
  }
}

void ser_leaky_relu_backward(float *din, const float *dout, const float *in, int64_t n, float slope) {
#pragma omp parallel if (n > 262144)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lo = n * t / nt / 4 * 4, hi = t == nt - 1 ? n : n * (t + 1) / nt / 4 * 4;
    __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f), s = _mm_set1_ps(slope);
    int64_t i = lo;
    for (; i + 4 <= hi; i += 4) {
      __m128 m = _mm_cmpgt_ps(_mm_loadu_ps(in + i), zero);
      __m128 k = _mm_or_ps(_mm_and_ps(m, one), _mm_andnot_ps(m, s));
      _mm_storeu_ps(din + i, _mm_add_ps(_mm_loadu_ps(din + i), _mm_mul_ps(_mm_loadu_ps(dout + i), k)));
    }
    for (; i < hi; i++) din[i] += in[i] > 0.0f ? dout[i] : dout[i] * slope;
  }
}

int ser_leaky_relu(ser_tensor **out, ser_tensor *x, double slope) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "leaky_relu: input is required");
  if (!isfinite(slope)) return ser_error(SER_EINVAL, "leaky_relu: negative slope must be finite, got %g", slope);
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *y = ser_tensor_empty(x->ndim, x->shape);
  int rc = (!xc || !y) ? SER_ENOMEM : 0;
  if (!rc) {
    ser_leaky_relu_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_numel(x), (float)slope);
    ser_node *node = NULL;
    rc = ser_autograd_record(y, SER_OP_LEAKY_RELU, 1, &x, &node);
    if (!rc && node) {
      node->saved[0] = ser_detach(xc);
      node->farg[0] = slope;
    }
  }
  ser_tensor_release(xc);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_leaky_relu_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (gin[0])
    ser_leaky_relu_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), ser_tensor_data(node->saved[0]),
                            ser_tensor_numel(gout), (float)node->farg[0]);
  return 0;
}

/* Chunks of whole cache lines per thread; the row kernels do the vector work. */
#define GELU_PAR_MIN (1 << 16)

void ser_gelu_forward(float *out, const float *in, int64_t n) {
#pragma omp parallel if (n > GELU_PAR_MIN)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lo = n * t / nt / 16 * 16, hi = t == nt - 1 ? n : n * (t + 1) / nt / 16 * 16;
    if (hi > lo) ser_row_gelu(out + lo, in + lo, hi - lo);
  }
}

void ser_gelu_backward(float *din, const float *dout, const float *in, int64_t n) {
#pragma omp parallel if (n > GELU_PAR_MIN)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lo = n * t / nt / 16 * 16, hi = t == nt - 1 ? n : n * (t + 1) / nt / 16 * 16;
    if (hi > lo) ser_row_gelu_backward(din + lo, dout + lo, in + lo, hi - lo);
  }
}

int ser_gelu(ser_tensor **out, ser_tensor *x) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "gelu: input is required");
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *y = ser_tensor_empty(x->ndim, x->shape);
  int rc = (!xc || !y) ? SER_ENOMEM : 0;
  if (!rc) {
    ser_gelu_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_numel(x));
    ser_node *node = NULL;
    rc = ser_autograd_record(y, SER_OP_GELU, 1, &x, &node);
    if (!rc && node) node->saved[0] = ser_detach(xc);
  }
  ser_tensor_release(xc);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_gelu_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (gin[0])
    ser_gelu_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), ser_tensor_data(node->saved[0]),
                      ser_tensor_numel(gout));
  return 0;
}
