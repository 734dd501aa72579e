#include "elementwise.h"

#include <math.h>
#include <string.h>

#include "../core/error.h"

/* ---- broadcasting iteration ----
 * A strided walk over `shape` carrying up to three element offsets; operands
 * that are broadcast along a dim have stride 0 there. The innermost dim is a
 * plain loop so the compiler can vectorise the common contiguous cases. */
typedef struct {
  int ndim;
  int64_t shape[SER_MAX_DIMS];
  int64_t stride[3][SER_MAX_DIMS];
} strided3;

/* Strides of t aligned to an output of rank ndim (right-aligned), 0 where t broadcasts. */
static void broadcast_strides(const ser_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
  int lead = ndim - t->ndim;
  for (int i = 0; i < ndim; i++) {
    int j = i - lead;
    stride[i] = (j < 0 || t->shape[j] != shape[i]) ? 0 : t->stride[j];
  }
}

typedef void (*inner_fn)(int64_t n, float *p0, int64_t s0, const float *p1, int64_t s1, const float *p2, int64_t s2,
                         const void *arg);

static void walk(const strided3 *w, float *b0, const float *b1, const float *b2, inner_fn fn, const void *arg) {
  int nd = w->ndim;
  if (nd == 0) {
    fn(1, b0, 0, b1, 0, b2, 0, arg);
    return;
  }
  for (int i = 0; i < nd; i++)
    if (w->shape[i] == 0) return;
  int64_t idx[SER_MAX_DIMS] = {0};
  int64_t o[3] = {0, 0, 0};
  int last = nd - 1;
  for (;;) {
    fn(w->shape[last], b0 + o[0], w->stride[0][last], b1 ? b1 + o[1] : NULL, w->stride[1][last], b2 ? b2 + o[2] : NULL,
       w->stride[2][last], arg);
    int d = last - 1;
    for (; d >= 0; d--) {
      if (++idx[d] < w->shape[d]) {
        for (int k = 0; k < 3; k++) o[k] += w->stride[k][d];
        break;
      }
      for (int k = 0; k < 3; k++) o[k] -= w->stride[k][d] * (idx[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

int ser_broadcast_shape(const char *op, const ser_tensor *a, const ser_tensor *b, int *ndim, int64_t *shape) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return ser_error(SER_EINVAL, "%s: shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)", op, SER_SHAPE(a),
                       SER_SHAPE(b), i + 1, (long long)sa, (long long)sb);
    shape[i] = sa == 1 ? sb : sa;
  }
  *ndim = nd;
  return 0;
}

/* ---- in-place accumulation ---- */

static void inner_axpy(int64_t n, float *d, int64_t sd, const float *s, int64_t ss, const float *u, int64_t su,
                       const void *arg) {
  float alpha = *(const float *)arg;
  if (sd == 1 && ss == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) d[i] += alpha * s[i];
  } else {
    for (int64_t i = 0; i < n; i++) d[i * sd] += alpha * s[i * ss];
  }
}

int ser_tensor_add_(ser_tensor *dst, const ser_tensor *src, float alpha) {
  int nd;
  int64_t shape[SER_MAX_DIMS];
  int rc = ser_broadcast_shape("add_", dst, src, &nd, shape);
  if (rc) return rc;
  if (nd != dst->ndim || memcmp(shape, dst->shape, (size_t)nd * sizeof(int64_t)))
    return ser_error(SER_EINVAL, "add_: %s cannot be added in place into %s", SER_SHAPE(src), SER_SHAPE(dst));
  strided3 w = {.ndim = nd};
  memcpy(w.shape, shape, sizeof shape);
  broadcast_strides(dst, nd, shape, w.stride[0]);
  broadcast_strides(src, nd, shape, w.stride[1]);
  walk(&w, ser_tensor_data(dst), ser_tensor_data(src), NULL, inner_axpy, &alpha);
  return 0;
}

/* dst (small) += alpha * sum of g over the dims where dst broadcasts: walk g's
 * shape with dst's broadcast strides (0 on reduced dims). Not thread-parallel:
 * several g elements land in one dst element. */
int ser_accumulate_reduced(ser_tensor *dst, const ser_tensor *g, float alpha) {
  if (ser_tensor_same_shape(dst, g)) return ser_tensor_add_(dst, g, alpha);
  strided3 w = {.ndim = g->ndim};
  memcpy(w.shape, g->shape, sizeof w.shape);
  if (dst->ndim > g->ndim) return ser_error(SER_EINVAL, "accumulate: %s cannot reduce into %s", SER_SHAPE(g), SER_SHAPE(dst));
  for (int i = 0; i < dst->ndim; i++) {
    int64_t ds = dst->shape[i], gs = g->shape[i + g->ndim - dst->ndim];
    if (ds != gs && ds != 1)
      return ser_error(SER_EINVAL, "accumulate: %s cannot reduce into %s", SER_SHAPE(g), SER_SHAPE(dst));
  }
  broadcast_strides(dst, w.ndim, w.shape, w.stride[0]);
  broadcast_strides(g, w.ndim, w.shape, w.stride[1]);
  walk(&w, ser_tensor_data(dst), ser_tensor_data(g), NULL, inner_axpy, &alpha);
  return 0;
}

/* ---- binary ops ---- */

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } binop;

static void inner_binary(int64_t n, float *o, int64_t so, const float *a, int64_t sa, const float *b, int64_t sb,
                         const void *arg) {
  binop op = *(const binop *)arg;
  if (so == 1 && sa == 1 && sb == 1) {
    switch (op) {
      /* o is a fresh output, never aliasing a or b */
      case BIN_ADD: _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i]; break;
      case BIN_SUB: _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = a[i] - b[i]; break;
      case BIN_MUL: _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i]; break;
      case BIN_DIV: _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = a[i] / b[i]; break;
    }
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float x = a[i * sa], y = b[i * sb];
    o[i * so] = op == BIN_ADD ? x + y : op == BIN_SUB ? x - y : op == BIN_MUL ? x * y : x / y;
  }
}

/* A new contiguous tensor of the broadcast shape of a and b, filled by fn
 * walking all three with broadcast strides. */
static int broadcast_apply(ser_tensor **out, const char *name, ser_tensor *a, ser_tensor *b, inner_fn fn,
                           const void *arg) {
  *out = NULL;
  int nd;
  int64_t shape[SER_MAX_DIMS];
  int rc = ser_broadcast_shape(name, a, b, &nd, shape);
  if (rc) return rc;
  ser_tensor *o = ser_tensor_empty(nd, shape);
  if (!o) return SER_ENOMEM;
  strided3 w = {.ndim = nd};
  memcpy(w.shape, shape, sizeof shape);
  broadcast_strides(o, nd, shape, w.stride[0]);
  broadcast_strides(a, nd, shape, w.stride[1]);
  broadcast_strides(b, nd, shape, w.stride[2]);
  walk(&w, ser_tensor_data(o), ser_tensor_data(a), ser_tensor_data(b), fn, arg);
  *out = o;
  return 0;
}

static const char *binop_name[] = {"add", "sub", "mul", "div"};
static const ser_op binop_op[] = {SER_OP_ADD, SER_OP_SUB, SER_OP_MUL, SER_OP_DIV};

static int binary(ser_tensor **out, ser_tensor *a, ser_tensor *b, binop op) {
  ser_tensor *o;
  int rc = broadcast_apply(&o, binop_name[op], a, b, inner_binary, &op);
  if (rc) return rc;
  *out = NULL;
  ser_node *node;
  rc = ser_autograd_record(o, binop_op[op], 2, (ser_tensor *[]){a, b}, &node);
  if (rc) {
    ser_tensor_release(o);
    return rc;
  }
  *out = o;
  return 0;
}

int ser_add(ser_tensor **out, ser_tensor *a, ser_tensor *b) { return binary(out, a, b, BIN_ADD); }
int ser_sub(ser_tensor **out, ser_tensor *a, ser_tensor *b) { return binary(out, a, b, BIN_SUB); }
int ser_mul(ser_tensor **out, ser_tensor *a, ser_tensor *b) { return binary(out, a, b, BIN_MUL); }
int ser_div(ser_tensor **out, ser_tensor *a, ser_tensor *b) { return binary(out, a, b, BIN_DIV); }

static int with_scalar(ser_tensor **out, ser_tensor *a, float s, binop op) {
  ser_tensor *c = ser_tensor_full(0, NULL, s);
  if (!c) return SER_ENOMEM;
  int rc = binary(out, a, c, op);
  ser_tensor_release(c);
  return rc;
}
int ser_add_scalar(ser_tensor **out, ser_tensor *a, float s) { return with_scalar(out, a, s, BIN_ADD); }
int ser_mul_scalar(ser_tensor **out, ser_tensor *a, float s) { return with_scalar(out, a, s, BIN_MUL); }

/* Elementwise product/quotient of full-shape tensors, then reduced into gin. */
static int accumulate_product(ser_tensor *gin, const ser_tensor *g, ser_tensor *other, int divide, float sign) {
  ser_tensor *t;
  int rc = divide ? ser_div(&t, (ser_tensor *)g, other) : ser_mul(&t, (ser_tensor *)g, other);
  if (rc) return rc;
  rc = ser_accumulate_reduced(gin, t, sign);
  ser_tensor_release(t);
  return rc;
}

/* The engine runs backward functions with grad mode off, so the forward ops
 * they call record nothing; the explicit scope keeps them safe when called directly. */
static int no_grad_scope_begin(void) { return ser_set_grad_enabled(0); }

int ser_add_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  int rc = 0;
  if (gin[0]) rc = ser_accumulate_reduced(gin[0], g, 1);
  if (!rc && gin[1]) rc = ser_accumulate_reduced(gin[1], g, 1);
  return rc;
}

int ser_sub_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  int rc = 0;
  if (gin[0]) rc = ser_accumulate_reduced(gin[0], g, 1);
  if (!rc && gin[1]) rc = ser_accumulate_reduced(gin[1], g, -1);
  return rc;
}

int ser_mul_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  int prev = no_grad_scope_begin(), rc = 0;
  ser_tensor *a = ser_detach(n->inputs[0]), *b = ser_detach(n->inputs[1]);
  if (gin[0]) rc = accumulate_product(gin[0], g, b, 0, 1);
  if (!rc && gin[1]) rc = accumulate_product(gin[1], g, a, 0, 1);
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_set_grad_enabled(prev);
  return rc;
}

int ser_div_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  int prev = no_grad_scope_begin(), rc = 0;
  ser_tensor *a = ser_detach(n->inputs[0]), *b = ser_detach(n->inputs[1]);
  if (gin[0]) rc = accumulate_product(gin[0], g, b, 1, 1);
  if (!rc && gin[1]) { /* d(a/b)/db = -a/b^2 = -(a/b)/b */
    ser_tensor *q = NULL, *t = NULL;
    rc = ser_div(&q, a, b);
    if (!rc) rc = ser_mul(&t, (ser_tensor *)g, q);
    ser_tensor_release(q);
    if (!rc) rc = accumulate_product(gin[1], t, b, 1, -1);
    ser_tensor_release(t);
  }
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_set_grad_enabled(prev);
  return rc;
}

/* ---- unary ops ----
 * Forward reads a contiguous copy of x (saved for backward when needed) and
 * writes a contiguous output. */

/* Activations are tens of MB per batch: the loops must vectorise. `omp simd`
 * asks for it regardless of GCC's -O2 cost model; large tensors also split
 * across threads. */
#define SIMD_LOOP _Pragma("omp parallel for simd if (count > (1 << 18)) schedule(static)")

typedef enum { UN_NEG, UN_EXP, UN_LOG, UN_SQRT, UN_POW, UN_ABS, UN_CLAMP, UN_RELU, UN_SIGMOID, UN_TANH } unop;

static const ser_op unop_op[] = {SER_OP_NEG,  SER_OP_EXP,   SER_OP_LOG,  SER_OP_SQRT,    SER_OP_POW,
                                 SER_OP_ABS,  SER_OP_CLAMP, SER_OP_RELU, SER_OP_SIGMOID, SER_OP_TANH};

static void unary_kernel(unop op, float *restrict y, const float *restrict x, int64_t count, float p0, float p1) {
  const int64_t n = count;
  switch (op) {
    case UN_NEG: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case UN_EXP: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case UN_LOG: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case UN_SQRT: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case UN_POW: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = p0 == 2.0f ? x[i] * x[i] : powf(x[i], p0); break;
    case UN_ABS: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case UN_CLAMP:
      SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = isnan(x[i]) ? x[i] : x[i] < p0 ? p0 : x[i] > p1 ? p1 : x[i];
      break;
    case UN_RELU: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0; break;
    case UN_SIGMOID: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i])); break;
    case UN_TANH: SIMD_LOOP for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
  }
}

static int unary(ser_tensor **out, ser_tensor *x, unop op, float p0, float p1) {
  *out = NULL;
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  if (!xc) return SER_ENOMEM;
  ser_tensor *y = ser_tensor_empty(x->ndim, x->shape);
  if (!y) {
    ser_tensor_release(xc);
    return SER_ENOMEM;
  }
  unary_kernel(op, ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_numel(y), p0, p1);
  ser_node *node;
  int rc = ser_autograd_record(y, unop_op[op], 1, &x, &node);
  if (rc) {
    ser_tensor_release(xc);
    ser_tensor_release(y);
    return rc;
  }
  if (node) {
    node->saved[0] = ser_detach(xc);       /* input values, contiguous */
    node->saved[1] = ser_tensor_alias(y);  /* output values (alias: no cycle) */
    node->farg[0] = p0;
    node->farg[1] = p1;
  }
  ser_tensor_release(xc);
  *out = y;
  return 0;
}

int ser_neg(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_NEG, 0, 0); }
int ser_exp(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_EXP, 0, 0); }
int ser_log(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_LOG, 0, 0); }
int ser_sqrt(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_SQRT, 0, 0); }
int ser_pow(ser_tensor **out, ser_tensor *x, float p) { return unary(out, x, UN_POW, p, 0); }
int ser_abs(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_ABS, 0, 0); }
int ser_relu(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_RELU, 0, 0); }
int ser_sigmoid(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_SIGMOID, 0, 0); }
int ser_tanh(ser_tensor **out, ser_tensor *x) { return unary(out, x, UN_TANH, 0, 0); }
int ser_clamp(ser_tensor **out, ser_tensor *x, float lo, float hi) {
  if (lo > hi) return ser_error(SER_EINVAL, "clamp: min %g is greater than max %g", lo, hi);
  return unary(out, x, UN_CLAMP, lo, hi);
}

/* gin += g * f'(x, y), with x = saved[0], y = saved[1] */
static int unary_backward(ser_node *n, const ser_tensor *gt, ser_tensor **gin, unop op) {
  if (!gin[0]) return 0;
  const float *restrict g = ser_tensor_data(gt), *restrict x = ser_tensor_data(n->saved[0]),
                        *restrict y = ser_tensor_data(n->saved[1]);
  float *restrict d = ser_tensor_data(gin[0]);
  float p0 = (float)n->farg[0], p1 = (float)n->farg[1];
  const int64_t count = ser_tensor_numel(gt), len = count;
  switch (op) {
    case UN_NEG: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] -= g[i]; break;
    case UN_EXP: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] * y[i]; break;
    case UN_LOG: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] / x[i]; break;
    case UN_SQRT: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] * 0.5f / y[i]; break;
    case UN_POW:
      SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] * p0 * (p0 == 2.0f ? x[i] : powf(x[i], p0 - 1.0f));
      break;
    /* Masks below load g unconditionally so the selects compile to blends. */
    case UN_ABS:
      SIMD_LOOP for (int64_t i = 0; i < len; i++) {
        float gi = g[i];
        d[i] += x[i] > 0 ? gi : x[i] < 0 ? -gi : 0.0f;
      }
      break;
    case UN_CLAMP:
      SIMD_LOOP for (int64_t i = 0; i < len; i++) {
        float gi = g[i];
        d[i] += (x[i] >= p0 && x[i] <= p1) ? gi : 0.0f;
      }
      break;
    case UN_RELU:
      if (n->gin_fresh & 1u) { /* a fresh gradient buffer (autograd.c): write, do not add */
        SIMD_LOOP for (int64_t i = 0; i < len; i++) {
          float gi = g[i];
          d[i] = x[i] > 0 ? gi : 0.0f;
        }
        break;
      }
      SIMD_LOOP for (int64_t i = 0; i < len; i++) {
        float gi = g[i];
        d[i] += x[i] > 0 ? gi : 0.0f;
      }
      break;
    case UN_SIGMOID: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] * y[i] * (1 - y[i]); break;
    case UN_TANH: SIMD_LOOP for (int64_t i = 0; i < len; i++) d[i] += g[i] * (1 - y[i] * y[i]); break;
  }
  return 0;
}

#define UNARY_BACKWARD(name, op) \
  int ser_##name##_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) { return unary_backward(n, g, gin, op); }
UNARY_BACKWARD(neg, UN_NEG)
UNARY_BACKWARD(exp, UN_EXP)
UNARY_BACKWARD(log, UN_LOG)
UNARY_BACKWARD(sqrt, UN_SQRT)
UNARY_BACKWARD(pow, UN_POW)
UNARY_BACKWARD(abs, UN_ABS)
UNARY_BACKWARD(clamp, UN_CLAMP)
UNARY_BACKWARD(relu, UN_RELU)
UNARY_BACKWARD(sigmoid, UN_SIGMOID)
UNARY_BACKWARD(tanh, UN_TANH)

/* ---- comparisons ---- */

static void inner_compare(int64_t n, float *o, int64_t so, const float *a, int64_t sa, const float *b, int64_t sb,
                          const void *arg) {
  ser_cmp c = *(const ser_cmp *)arg;
  for (int64_t i = 0; i < n; i++) {
    float x = a[i * sa], y = b[i * sb];
    int r = c == SER_CMP_EQ ? x == y : c == SER_CMP_NE ? x != y : c == SER_CMP_LT ? x < y
          : c == SER_CMP_LE ? x <= y : c == SER_CMP_GT ? x > y : x >= y;
    o[i * so] = r ? 1.0f : 0.0f;
  }
}

int ser_compare(ser_tensor **out, ser_tensor *a, ser_tensor *b, ser_cmp cmp) {
  return broadcast_apply(out, "compare", a, b, inner_compare, &cmp);
}
