#include "linear.h"

#include "../core/error.h"
#include "gemm.h"

void ser_linear_forward(float *out, const float *in, const float *weight, const float *bias, int rows, int IN,
                        int OUT) {
  if (bias)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < OUT; o++) out[(size_t)r * OUT + o] = bias[o];
  ser_gemm(0, 1, rows, OUT, IN, 1.0f, in, IN, weight, IN, bias ? 1.0f : 0.0f, out, OUT);
}

void ser_linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                         const float *weight, int rows, int IN, int OUT) {
  if (din) ser_gemm(0, 0, rows, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, din, IN);
  if (dweight) ser_gemm(1, 0, OUT, IN, rows, 1.0f, dout, OUT, in, IN, 1.0f, dweight, IN);
  if (dbias)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < OUT; o++) dbias[o] += dout[(size_t)r * OUT + o];
}

static int dims(const ser_tensor *x, const ser_tensor *w, int *rows, int *IN, int *OUT) {
  int64_t r = 1;
  for (int i = 0; i < x->ndim - 1; i++) r *= x->shape[i];
  if (r > 0x7fffffff || x->shape[x->ndim - 1] > 0x7fffffff || w->shape[0] > 0x7fffffff)
    return ser_error(SER_EINVAL, "linear: input %s or weight %s is too large", SER_SHAPE(x), SER_SHAPE(w));
  *rows = (int)r, *IN = (int)w->shape[1], *OUT = (int)w->shape[0];
  return 0;
}

int ser_linear(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b) {
  *out = NULL;
  if (!x || !w) return ser_error(SER_EINVAL, "linear: input and weight are required");
  if (w->ndim != 2) return ser_error(SER_EINVAL, "linear: weight must be 2D [out,in], got %s", SER_SHAPE(w));
  if (x->ndim < 1) return ser_error(SER_EINVAL, "linear: input must have at least 1 dim [...,in], got %s", SER_SHAPE(x));
  if (x->shape[x->ndim - 1] != w->shape[1])
    return ser_error(SER_EINVAL, "linear: input has %lld features, weight expects %lld; input %s, weight %s",
                     (long long)x->shape[x->ndim - 1], (long long)w->shape[1], SER_SHAPE(x), SER_SHAPE(w));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return ser_error(SER_EINVAL, "linear: bias must be [%lld] (one per output), got %s; weight %s",
                     (long long)w->shape[0], SER_SHAPE(b), SER_SHAPE(w));
  int rows, IN, OUT, rc = dims(x, w, &rows, &IN, &OUT);
  if (rc) return rc;
  int64_t shape[SER_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[x->ndim - 1] = OUT;
  ser_tensor *y = ser_tensor_empty(x->ndim, shape);
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  ser_tensor *bc = b ? ser_tensor_contiguous_raw(b) : NULL;
  rc = (!y || !xc || !wc || (b && !bc)) ? SER_ENOMEM : 0;
  if (!rc)
    ser_linear_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_data(wc), bc ? ser_tensor_data(bc) : NULL,
                       rows, IN, OUT);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  ser_tensor_release(bc);
  ser_node *node = NULL;
  if (!rc) rc = ser_autograd_record(y, SER_OP_LINEAR, 3, (ser_tensor *[]){x, w, b}, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_linear_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  ser_tensor *x = node->inputs[0], *w = node->inputs[1];
  int rows, IN, OUT, rc = dims(x, w, &rows, &IN, &OUT);
  if (rc) return rc;
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  if (xc && wc)
    ser_linear_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL, gin[1] ? ser_tensor_data(gin[1]) : NULL,
                        (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL, ser_tensor_data(gout),
                        ser_tensor_data(xc), ser_tensor_data(wc), rows, IN, OUT);
  else
    rc = SER_ENOMEM;
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  return rc;
}
