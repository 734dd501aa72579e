#include "layernorm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "../core/error.h"
#include "rowops.h"

/* Rows are independent: threads split them when there is enough work. */
#define PAR_MIN_WORK (1 << 16)

void ser_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *weight,
                           const float *bias, int64_t rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > PAR_MIN_WORK)
  for (int64_t r = 0; r < rows; r++)
    ser_row_layernorm(out + r * dim, mean ? mean + r : NULL, rstd ? rstd + r : NULL, in + r * dim, weight, bias, dim,
                      eps);
}

/* din row by row; dweight and dbias by column blocks (each thread sums its
 * columns over all rows), so no per-thread partials and the same sums in the
 * same order whatever the thread count. Rows are summed in float in groups of
 * RGROUP and the groups in double: a float running sum over thousands of rows
 * (B*T of a transformer) would lose digits. */
enum { CBLOCK = 64, RGROUP = 32 };

static void dparams_block(float *dweight, float *dbias, const float *dout, const float *in, const float *mean,
                          const float *rstd, int64_t rows, int dim, int c0, int len) {
  float gw[CBLOCK], gb[CBLOCK];
  double sw[CBLOCK] = {0}, sb[CBLOCK] = {0};
  for (int64_t r0 = 0; r0 < rows; r0 += RGROUP) {
    memset(gw, 0, sizeof gw);
    memset(gb, 0, sizeof gb);
    int64_t r1 = r0 + RGROUP < rows ? r0 + RGROUP : rows;
    for (int64_t r = r0; r < r1; r++)
      ser_row_layernorm_backward(NULL, gw, gb, dout + r * dim + c0, in + r * dim + c0, NULL, mean[r], rstd[r], len);
    for (int c = 0; c < len; c++) sw[c] += gw[c], sb[c] += gb[c];
  }
  for (int c = 0; c < len; c++) {
    if (dweight) dweight[c0 + c] += (float)sw[c];
    if (dbias) dbias[c0 + c] += (float)sb[c];
  }
}

void ser_layernorm_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                            const float *weight, const float *mean, const float *rstd, int64_t rows, int dim) {
  const int par = rows * dim > PAR_MIN_WORK;
  if (din) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < rows; r++)
      ser_row_layernorm_backward(din + r * dim, NULL, NULL, dout + r * dim, in + r * dim, weight, mean[r], rstd[r],
                                 dim);
  }
  if (dweight || dbias) {
    const int nblocks = (dim + CBLOCK - 1) / CBLOCK;
#pragma omp parallel for schedule(static) if (par && nblocks > 1)
    for (int cb = 0; cb < nblocks; cb++) {
      int c0 = cb * CBLOCK, len = dim - c0 < CBLOCK ? dim - c0 : CBLOCK;
      dparams_block(dweight, dbias, dout, in, mean, rstd, rows, dim, c0, len);
    }
  }
}

int ser_layer_norm(ser_tensor **out, ser_tensor *x, ser_tensor *weight, ser_tensor *bias, double eps) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "layer_norm: input is required");
  if (x->ndim < 1) return ser_error(SER_EINVAL, "layer_norm: input must have at least 1 dim [..., dim], got %s", SER_SHAPE(x));
  const int64_t dim = x->shape[x->ndim - 1];
  if (dim < 1 || dim > 0x7fffffff)
    return ser_error(SER_EINVAL, "layer_norm: last dim of input %s must be in 1..2147483647", SER_SHAPE(x));
  if (weight && (weight->ndim != 1 || weight->shape[0] != dim))
    return ser_error(SER_EINVAL, "layer_norm: weight must be [%lld] (the input's last dim), got %s; input %s",
                     (long long)dim, SER_SHAPE(weight), SER_SHAPE(x));
  if (bias && (bias->ndim != 1 || bias->shape[0] != dim))
    return ser_error(SER_EINVAL, "layer_norm: bias must be [%lld] (the input's last dim), got %s; input %s",
                     (long long)dim, SER_SHAPE(bias), SER_SHAPE(x));
  if (!(eps >= 0) || !isfinite(eps))
    return ser_error(SER_EINVAL, "layer_norm: eps must be a finite number >= 0, got %g", eps);
  const int64_t rows = ser_tensor_numel(x) / dim;
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  ser_tensor *wc = weight ? ser_tensor_contiguous_raw(weight) : NULL, *bc = bias ? ser_tensor_contiguous_raw(bias) : NULL;
  ser_tensor *y = ser_tensor_empty(x->ndim, x->shape);
  const int need = ser_autograd_needed(3, (ser_tensor *[]){x, weight, bias});
  ser_tensor *mean = need ? ser_tensor_empty(1, (int64_t[]){rows}) : NULL;
  ser_tensor *rstd = need ? ser_tensor_empty(1, (int64_t[]){rows}) : NULL;
  int rc = (!xc || !y || (weight && !wc) || (bias && !bc) || (need && (!mean || !rstd))) ? SER_ENOMEM : 0;
  if (!rc) {
    ser_layernorm_forward(ser_tensor_data(y), mean ? ser_tensor_data(mean) : NULL, rstd ? ser_tensor_data(rstd) : NULL,
                          ser_tensor_data(xc), wc ? ser_tensor_data(wc) : NULL, bc ? ser_tensor_data(bc) : NULL, rows,
                          (int)dim, (float)eps);
    ser_node *node = NULL;
    rc = ser_autograd_record(y, SER_OP_LAYER_NORM, 3, (ser_tensor *[]){x, weight, bias}, &node);
    if (!rc && node) {
      node->saved[0] = ser_detach(xc);
      node->saved[1] = wc ? ser_detach(wc) : NULL;
      node->saved[2] = mean;
      node->saved[3] = rstd;
      mean = rstd = NULL;
    }
  }
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  ser_tensor_release(bc);
  ser_tensor_release(mean);
  ser_tensor_release(rstd);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_layer_norm_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  const ser_tensor *x = node->saved[0], *w = node->saved[1];
  const int64_t dim = x->shape[x->ndim - 1], rows = ser_tensor_numel(x) / dim;
  ser_layernorm_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL,
                         (gin[1] && node->inputs[1]) ? ser_tensor_data(gin[1]) : NULL,
                         (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL, ser_tensor_data(gout),
                         ser_tensor_data(x), w ? ser_tensor_data(w) : NULL, ser_tensor_data(node->saved[2]),
                         ser_tensor_data(node->saved[3]), rows, (int)dim);
  return 0;
}
