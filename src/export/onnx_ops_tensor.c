/* The ONNX emitters of the tensor ops of the graph description (docs/graph.md): flatten,
 * transpose, reshape, the reductions (mean, var, std, sum), concat, layernorm, softmax,
 * param, the elementwise arithmetic and slice. Conventions as onnx_ops_nn.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx_attr.h"
#include "onnx_ops.h"

static int emit_flatten(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t s, e;
  int rc = ox_need_rank(c, x, 1, SER_MAX_DIMS);
  if (rc || (rc = ox_get_int(c, nd, "start_dim", 0, 1, &s)) || (rc = ox_get_int(c, nd, "end_dim", 0, -1, &e)) ||
      (rc = ox_axis(c, "start_dim", s, x->rank, &s)) || (rc = ox_axis(c, "end_dim", e, x->rank, &e)))
    return rc;
  if (e != x->rank - 1) return ox_fail(c, SER_EINVAL, "end_dim must be the last axis (-1); got %lld of rank %d", (long long)e, x->rank);
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < s; i++) d[i] = x->dim[i];
  d[s] = ox_dim_of(1);
  for (int i = (int)s; i < x->rank; i++) d[s] = (d[s].v < 0 || x->dim[i].v < 0) ? OX_DYN : ox_dim_of(d[s].v * x->dim[i].v);
  if (x->rank - s == 1) d[s] = x->dim[s];
  if (s == 1) {  /* PyTorch's flatten(1) is ONNX's Flatten(axis = 1) exactly */
    const char *in[1] = {x->name};
    Onnx__NodeProto *n = ox_node(c, "Flatten", 1, in, out);
    if (!n || ox_attr_int(c, n, "axis", 1)) return SER_ENOMEM;
  } else {
    int64_t shape[SER_MAX_DIMS] = {0};
    shape[s] = -1;
    if (ox_reshape_to(c, x->name, (int)s + 1, shape, out)) return SER_ENOMEM;
  }
  return ox_put(c, out, (int)s + 1, d) ? 0 : SER_ENOMEM;
}

static int emit_transpose(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t perm[SER_MAX_DIMS];
  int k, rc = ox_get_list(c, nd, "perm", perm, &k);
  if (rc) return rc;
  if (k != x->rank) return ox_fail(c, SER_EINVAL, "perm has %d entries; input '%s' is %s (rank %d)", k, x->name, ox_shape_str(x), x->rank);
  int seen[SER_MAX_DIMS] = {0};
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < k; i++) {
    if ((rc = ox_axis(c, "perm entry", perm[i], k, &perm[i]))) return rc;
    if (seen[perm[i]]++) return ox_fail(c, SER_EINVAL, "perm names axis %lld twice", (long long)perm[i]);
    d[i] = x->dim[perm[i]];
  }
  const char *in[1] = {x->name};
  Onnx__NodeProto *n = ox_node(c, "Transpose", 1, in, out);
  if (!n || ox_attr_ints(c, n, "perm", k, perm)) return SER_ENOMEM;
  return ox_put(c, out, k, d) ? 0 : SER_ENOMEM;
}

static int emit_reshape(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t shape[SER_MAX_DIMS];
  int k, rc = ox_get_list(c, nd, "shape", shape, &k);
  if (rc) return rc;
  ox_dim d[SER_MAX_DIMS];
  int infer = -1;
  int64_t known = 1, total = 1;
  for (int i = 0; i < x->rank; i++) total = (total < 0 || x->dim[i].v < 0) ? -1 : total * x->dim[i].v;
  for (int i = 0; i < k; i++) {
    if (shape[i] == -1) {
      if (infer >= 0) return ox_fail(c, SER_EINVAL, "shape has more than one -1");
      infer = i;
      continue;
    }
    if (shape[i] < -1) return ox_fail(c, SER_EINVAL, "shape entry %lld must be >= -1", (long long)shape[i]);
    if (shape[i] == 0) {
      if (i >= x->rank) return ox_fail(c, SER_EINVAL, "shape entry %d is 0 (keep) but input '%s' is %s", i, x->name, ox_shape_str(x));
      d[i] = x->dim[i];
    } else {
      d[i] = ox_dim_of(shape[i]);
    }
    known = (known < 0 || d[i].v < 0) ? -1 : known * d[i].v;
  }
  if (infer >= 0) d[infer] = (total >= 0 && known > 0) ? ox_dim_of(total / known) : OX_DYN;
  if (infer >= 0 && total >= 0 && known > 0 && total % known)
    return ox_fail(c, SER_EINVAL, "shape cannot hold the %lld values of '%s' %s", (long long)total, x->name, ox_shape_str(x));
  if (ox_reshape_to(c, x->name, k, shape, out)) return SER_ENOMEM;
  return ox_put(c, out, k, d) ? 0 : SER_ENOMEM;
}

/* dims (a number or a list) -> sorted distinct 0-based axes; the output shape with keepdim. */
static int reduce_axes(ox_ctx *c, const cJSON *nd, const ox_value *x, int64_t *axes, int *k, int *keep, ox_dim *d, int *rank) {
  int rc = ox_get_list(c, nd, "dims", axes, k);
  if (rc || (rc = ox_get_bool(c, nd, "keepdim", 0, keep))) return rc;
  int on[SER_MAX_DIMS] = {0};
  for (int i = 0; i < *k; i++) {
    if ((rc = ox_axis(c, "dims entry", axes[i], x->rank, &axes[i]))) return rc;
    if (on[axes[i]]++) return ox_fail(c, SER_EINVAL, "dims names axis %lld twice", (long long)axes[i]);
  }
  *k = 0;
  *rank = 0;
  for (int i = 0; i < x->rank; i++) {
    if (on[i]) axes[(*k)++] = i;
    if (!on[i]) d[(*rank)++] = x->dim[i];
    else if (*keep) d[(*rank)++] = ox_dim_of(1);
  }
  return 0;
}

static int emit_mean(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t axes[SER_MAX_DIMS];
  int k, keep, rank;
  ox_dim d[SER_MAX_DIMS];
  int rc = reduce_axes(c, nd, x, axes, &k, &keep, d, &rank);
  if (rc || (rc = ox_reduce_mean(c, x->name, k, axes, keep, out))) return rc;
  return ox_put(c, out, rank, d) ? 0 : SER_ENOMEM;
}

/* var / std over dims: mean of squared deviations, times n/(n-1) when unbiased (n from the
 * input's shape at run time when an axis is dynamic), plus eps when given, then the square
 * root for std. */
static int variance(ox_ctx *c, const cJSON *nd, const ox_value *x, const char *out, int take_sqrt) {
  int64_t axes[SER_MAX_DIMS];
  int k, keep, rank, unbiased;
  double eps;
  ox_dim d[SER_MAX_DIMS];
  int rc = reduce_axes(c, nd, x, axes, &k, &keep, d, &rank);
  if (rc || (rc = ox_get_bool(c, nd, "unbiased", 1, &unbiased)) || (rc = ox_get_num(c, nd, "eps", 0.0, &eps))) return rc;
  const char *m = ox_tmp(c, out, "mean"), *dev = ox_tmp(c, out, "dev"), *sq = ox_tmp(c, out, "sq");
  const char *v = (unbiased || eps != 0.0 || take_sqrt) ? ox_tmp(c, out, "var") : out;
  if (!m || !dev || !sq || !v || ox_reduce_mean(c, x->name, k, axes, 1, m) || ox_binary(c, "Sub", x->name, m, dev) ||
      ox_binary(c, "Mul", dev, dev, sq) || ox_reduce_mean(c, sq, k, axes, keep, v))
    return SER_ENOMEM;
  if (unbiased) {
    const char *vu = (eps != 0.0 || take_sqrt) ? ox_tmp(c, out, "var") : out;
    int64_t n = 1;
    for (int i = 0; i < k; i++) n = (n < 0 || x->dim[axes[i]].v < 0) ? -1 : n * x->dim[axes[i]].v;
    if (!vu) return SER_ENOMEM;
    if (n >= 0) {
      const char *r = ox_scalar(c, out, n > 1 ? (float)((double)n / (double)(n - 1)) : NAN);
      if (!r || ox_binary(c, "Mul", v, r, vu)) return SER_ENOMEM;
    } else {  /* n = product of the reduced axes' run-time sizes */
      const char *shp = ox_tmp(c, out, "n"), *ax = ox_tmp(c, out, "n"), *sel = ox_tmp(c, out, "n"), *prod = ox_tmp(c, out, "n"),
                 *nf = ox_tmp(c, out, "n"), *nm1 = ox_tmp(c, out, "n"), *ratio = ox_tmp(c, out, "n"), *one = ox_scalar(c, out, 1.0f);
      const int64_t kd[1] = {k};
      if (!shp || !ax || !sel || !prod || !nf || !nm1 || !ratio || !one || ox_init_int64(c, ax, 1, kd, axes)) return SER_ENOMEM;
      const char *in1[1] = {x->name};
      if (!ox_node(c, "Shape", 1, in1, shp) || ox_binary(c, "Gather", shp, ax, sel)) return SER_ENOMEM;
      const char *in2[1] = {sel};
      Onnx__NodeProto *pn = ox_node(c, "ReduceProd", 1, in2, prod);
      if (!pn || ox_attr_int(c, pn, "keepdims", 0)) return SER_ENOMEM;
      const char *in3[1] = {prod};
      Onnx__NodeProto *cn = ox_node(c, "Cast", 1, in3, nf);
      if (!cn || ox_attr_int(c, cn, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) || ox_binary(c, "Sub", nf, one, nm1) ||
          ox_binary(c, "Div", nf, nm1, ratio) || ox_binary(c, "Mul", v, ratio, vu))
        return SER_ENOMEM;
    }
    v = vu;
  }
  if (eps != 0.0) {
    const char *ve = take_sqrt ? ox_tmp(c, out, "var") : out, *e = ox_scalar(c, out, (float)eps);
    if (!ve || !e || ox_binary(c, "Add", v, e, ve)) return SER_ENOMEM;
    v = ve;
  }
  if (take_sqrt) {
    const char *in[1] = {v};
    if (!ox_node(c, "Sqrt", 1, in, out)) return SER_ENOMEM;
  }
  return ox_put(c, out, rank, d) ? 0 : SER_ENOMEM;
}

static int emit_var(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return variance(c, nd, x, out, 0); }
static int emit_std(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return variance(c, nd, x, out, 1); }

static int emit_concat(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t a;
  int rc = ox_get_int(c, nd, "axis", 1, 0, &a);
  if (rc || (rc = ox_axis(c, "axis", a, x[0].rank, &a))) return rc;
  ox_dim d[SER_MAX_DIMS];
  const char *in[16];
  if (nx > 16) return ox_fail(c, SER_EINVAL, "concat of %d inputs; at most 16", nx);
  for (int i = 0; i < x[0].rank; i++) d[i] = x[0].dim[i];
  for (int j = 0; j < nx; j++) {
    in[j] = x[j].name;
    if (x[j].rank != x[0].rank)
      return ox_fail(c, SER_EINVAL, "inputs '%s' %s and '%s' %s differ in rank", x[0].name, ox_shape_str(&x[0]), x[j].name, ox_shape_str(&x[j]));
    for (int i = 0; i < x[0].rank; i++) {
      const ox_dim a0 = x[0].dim[i], aj = x[j].dim[i];
      if (i == a) {
        if (j) d[i] = (d[i].v < 0 || aj.v < 0) ? OX_DYN : ox_dim_of(d[i].v + aj.v);
      } else if (a0.v >= 0 && aj.v >= 0 && a0.v != aj.v) {
        return ox_fail(c, SER_EINVAL, "inputs '%s' %s and '%s' %s differ off the concat axis %lld", x[0].name, ox_shape_str(&x[0]),
                       x[j].name, ox_shape_str(&x[j]), (long long)a);
      }
    }
  }
  Onnx__NodeProto *n = ox_node(c, "Concat", nx, in, out);
  if (!n || ox_attr_int(c, n, "axis", a)) return SER_ENOMEM;
  return ox_put(c, out, x[0].rank, d) ? 0 : SER_ENOMEM;
}

static int emit_layernorm(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc = ox_need_rank(c, x, 1, SER_MAX_DIMS);
  const ox_dim last = x->dim[x->rank - 1];
  double eps;
  const char *in[3] = {x->name};
  if (rc) return rc;
  if (last.v < 0) return ox_fail(c, SER_EINVAL, "input '%s' is %s: the normalised last axis must have a fixed size", x->name, ox_shape_str(x));
  if ((rc = ox_vector(c, nd, "weight", last.v, &in[1])) || (rc = ox_vector(c, nd, "bias", last.v, &in[2])) ||
      (rc = ox_get_num(c, nd, "eps", 1e-5, &eps)))
    return rc;
  Onnx__NodeProto *n = ox_node(c, "LayerNormalization", 3, in, out);
  if (!n || ox_attr_int(c, n, "axis", -1) || ox_attr_float(c, n, "epsilon", (float)eps)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

static int emit_softmax(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t a;
  int rc = ox_get_int(c, nd, "axis", 0, -1, &a);
  if (rc || (rc = ox_axis(c, "axis", a, x->rank, &a))) return rc;
  const char *in[1] = {x->name};
  Onnx__NodeProto *n = ox_node(c, "Softmax", 1, in, out);
  if (!n || ox_attr_int(c, n, "axis", a)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}


/* param: a state_dict entry as a graph constant of the given shape (an initializer named
 * after the value, so no node makes it). */
static int emit_param(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t shape[SER_MAX_DIMS];
  int k, rc;
  const char *tn = ox_get_str(c, nd, "tensor", 1, &rc);
  if (rc || (rc = ox_get_list(c, nd, "shape", shape, &k))) return rc;
  ser_tensor *t = ox_tensor(c, tn, "tensor");
  if (!t) return SER_EINVAL;
  int64_t n = 1;
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < k; i++) {
    if (shape[i] < 1) return ox_fail(c, SER_EINVAL, "shape entry %lld must be >= 1", (long long)shape[i]);
    n *= shape[i];
    d[i] = ox_dim_of(shape[i]);
  }
  if (n != ser_tensor_numel(t))
    return ox_fail(c, SER_EINVAL, "tensor '%s' %s has %lld values; shape needs %lld", tn, SER_SHAPE(t), (long long)ser_tensor_numel(t), (long long)n);
  float *v = ox_values_of(c, t);
  if (!v) return SER_ENOMEM;
  rc = ox_init_float(c, out, k, shape, v);
  free(v);
  if (rc) return rc;
  return ox_put(c, out, k, d) ? 0 : SER_ENOMEM;
}

/* add / sub / mul / div: NumPy broadcasting, as ONNX's own. */
static int elementwise(ox_ctx *c, const char *op_type, const ox_value *x, const char *out) {
  const ox_value *a = &x[0], *b = &x[1];
  const int r = a->rank > b->rank ? a->rank : b->rank;
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < r; i++) {
    const int ia = i - (r - a->rank), ib = i - (r - b->rank);
    const ox_dim da = ia >= 0 ? a->dim[ia] : ox_dim_of(1), db = ib >= 0 ? b->dim[ib] : ox_dim_of(1);
    if (da.v == 1) d[i] = db;
    else if (db.v == 1) d[i] = da;
    else if (da.v >= 0 && db.v >= 0 && da.v != db.v)
      return ox_fail(c, SER_EINVAL, "'%s' %s and '%s' %s do not broadcast", a->name, ox_shape_str(a), b->name, ox_shape_str(b));
    else d[i] = da.v >= 0 ? da : db;
  }
  if (ox_binary(c, op_type, a->name, b->name, out)) return SER_ENOMEM;
  return ox_put(c, out, r, d) ? 0 : SER_ENOMEM;
}

static int emit_add(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return elementwise(c, "Add", x, out); }
static int emit_sub(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return elementwise(c, "Sub", x, out); }
static int emit_mul(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return elementwise(c, "Mul", x, out); }
static int emit_div(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return elementwise(c, "Div", x, out); }

/* sum: ReduceSum, whose axes are an input tensor since opset 13 (ReduceMean's move in 18). */
static int emit_sum(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t axes[SER_MAX_DIMS];
  int k, keep, rank;
  ox_dim d[SER_MAX_DIMS];
  int rc = reduce_axes(c, nd, x, axes, &k, &keep, d, &rank);
  if (rc) return rc;
  const char *an = ox_tmp(c, out, "axes");
  const int64_t kd[1] = {k};
  if (!an || ox_init_int64(c, an, 1, kd, axes)) return SER_ENOMEM;
  const char *in[2] = {x->name, an};
  Onnx__NodeProto *n = ox_node(c, "ReduceSum", 2, in, out);
  if (!n || ox_attr_int(c, n, "keepdims", keep)) return SER_ENOMEM;
  return ox_put(c, out, rank, d) ? 0 : SER_ENOMEM;
}

/* slice: x.narrow(axis, start, length) -> Slice with constant starts / ends / axes. */
static int emit_slice(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t a, start, len;
  int rc = ox_get_int(c, nd, "axis", 1, 0, &a);
  if (rc || (rc = ox_axis(c, "axis", a, x->rank, &a)) || (rc = ox_get_int(c, nd, "start", 1, 0, &start)) ||
      (rc = ox_get_int(c, nd, "length", 1, 0, &len)))
    return rc;
  if (start < 0 || len < 1 || (x->dim[a].v >= 0 && start + len > x->dim[a].v))
    return ox_fail(c, SER_EINVAL, "start %lld, length %lld do not fit axis %lld of '%s' %s", (long long)start, (long long)len,
                   (long long)a, x->name, ox_shape_str(x));
  const char *sn = ox_tmp(c, out, "starts"), *en = ox_tmp(c, out, "ends"), *an = ox_tmp(c, out, "axes");
  const int64_t one[1] = {1}, e = start + len;
  if (!sn || !en || !an || ox_init_int64(c, sn, 1, one, &start) || ox_init_int64(c, en, 1, one, &e) || ox_init_int64(c, an, 1, one, &a))
    return SER_ENOMEM;
  const char *in[4] = {x->name, sn, en, an};
  if (!ox_node(c, "Slice", 4, in, out)) return SER_ENOMEM;
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < x->rank; i++) d[i] = x->dim[i];
  d[a] = ox_dim_of(len);
  return ox_put(c, out, x->rank, d) ? 0 : SER_ENOMEM;
}

const ox_op ox_ops_tensor[] = {
  {"flatten", 1, emit_flatten},
  {"transpose", 1, emit_transpose},
  {"reshape", 1, emit_reshape},
  {"mean", 1, emit_mean},
  {"var", 1, emit_var},
  {"std", 1, emit_std},
  {"concat", -1, emit_concat},
  {"layernorm", 1, emit_layernorm},
  {"softmax", 1, emit_softmax},
  {"param", 0, emit_param},
  {"add", 2, emit_add},
  {"sub", 2, emit_sub},
  {"mul", 2, emit_mul},
  {"div", 2, emit_div},
  {"sum", 1, emit_sum},
  {"slice", 1, emit_slice},
  {NULL, 0, NULL},
};
