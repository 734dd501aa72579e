/* One emitter per op of the graph description (docs/graph.md): reads the node's attributes,
 * checks them against the tracked input shape, appends the ONNX nodes (opset 17) and
 * initializers, and records the output value's shape. docs/onnx.md is the table of this file.
 * PyTorch semantics are the reference throughout (the description's ops are PyTorch's). */
#include "onnx_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- attributes of a description node ---------------------------------------------------- */

static const cJSON *field(const cJSON *nd, const char *key) { return cJSON_GetObjectItemCaseSensitive(nd, key); }

/* A whole number from JSON (a double holding an integer in int64 range), or fail. */
static int whole(ox_ctx *c, const cJSON *j, const char *key, int64_t *out) {
  if (!cJSON_IsNumber(j)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number", key);
  const double d = j->valuedouble;
  if (!(d == floor(d)) || fabs(d) > 9.0e15) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number, got %g", key, d);
  *out = (int64_t)d;
  return 0;
}

/* An int attribute (dflt when absent and !required). */
static int get_int(ox_ctx *c, const cJSON *nd, const char *key, int required, int64_t dflt, int64_t *out) {
  const cJSON *j = field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    if (required) return ox_fail(c, SER_EINVAL, "missing attribute '%s' (a whole number)", key);
    *out = dflt;
    return 0;
  }
  return whole(c, j, key, out);
}

/* k ints: a number (repeated k times) or an array of k (or 1) numbers; dflt when absent. */
static int get_ints(ox_ctx *c, const cJSON *nd, const char *key, int k, int required, int64_t dflt, int64_t *out) {
  const cJSON *j = field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    if (required) return ox_fail(c, SER_EINVAL, "missing attribute '%s' (a whole number or a list of %d)", key, k);
    for (int i = 0; i < k; i++) out[i] = dflt;
    return 0;
  }
  if (cJSON_IsNumber(j)) {
    int rc = whole(c, j, key, &out[0]);
    for (int i = 1; i < k && !rc; i++) out[i] = out[0];
    return rc;
  }
  const int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
  if (n != k && n != 1)
    return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number or a list of %d of them", key, k);
  for (int i = 0; i < k; i++) {
    int rc = whole(c, cJSON_GetArrayItem(j, n == 1 ? 0 : i), key, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

/* A list of up to SER_MAX_DIMS ints (a single number counts as a list of one); *k its length. */
static int get_list(ox_ctx *c, const cJSON *nd, const char *key, int64_t *out, int *k) {
  const cJSON *j = field(nd, key);
  if (cJSON_IsNumber(j)) {
    *k = 1;
    return whole(c, j, key, &out[0]);
  }
  if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 || cJSON_GetArraySize(j) > SER_MAX_DIMS)
    return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number or a list of 1 to %d of them", key, SER_MAX_DIMS);
  *k = cJSON_GetArraySize(j);
  for (int i = 0; i < *k; i++) {
    int rc = whole(c, cJSON_GetArrayItem(j, i), key, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

static int get_num(ox_ctx *c, const cJSON *nd, const char *key, double dflt, double *out) {
  const cJSON *j = field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a finite number", key);
  *out = j->valuedouble;
  return 0;
}

static int get_bool(ox_ctx *c, const cJSON *nd, const char *key, int dflt, int *out) {
  const cJSON *j = field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(j)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be true or false", key);
  *out = cJSON_IsTrue(j);
  return 0;
}

/* A string attribute: NULL when absent (and !required, else fail with *rc set). */
static const char *get_str(ox_ctx *c, const cJSON *nd, const char *key, int required, int *rc) {
  const cJSON *j = field(nd, key);
  *rc = 0;
  if ((!j || cJSON_IsNull(j)) && !required) return NULL;
  if (!cJSON_IsString(j) || !j->valuestring[0]) {
    *rc = ox_fail(c, SER_EINVAL, "attribute '%s' must be a non-empty string%s", key,
                  required && !j ? " (missing)" : "");
    return NULL;
  }
  return j->valuestring;
}

/* A dimension index of a rank-r value, negatives counted from the end -> 0 .. r-1. */
static int axis(ox_ctx *c, const char *key, int64_t a, int r, int64_t *out) {
  if (a < -r || a >= r) return ox_fail(c, SER_EINVAL, "%s %lld is out of range for a rank-%d input", key, (long long)a, r);
  *out = a < 0 ? a + r : a;
  return 0;
}

/* ---- weights ---------------------------------------------------------------------------- */

static int has_init(ox_ctx *c, const char *name) {
  for (size_t i = 0; i < c->n_inits; i++)
    if (strcmp(c->inits[i]->name, name) == 0) return 1;
  return 0;
}

/* A tensor's values, contiguous, in a malloc'd buffer (free it). */
static float *values_of(ox_ctx *c, const ser_tensor *t) {
  const int64_t n = ser_tensor_numel(t);
  float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof *buf);
  if (!buf) {
    ox_fail(c, SER_ENOMEM, "out of memory copying a %s tensor", SER_SHAPE(t));
    return NULL;
  }
  ser_tensor_gather_to(t, buf);
  return buf;
}

/* The state_dict tensor named by attribute attr (required or not) as an initializer under
 * its own name, so the ONNX file's weights keep PyTorch's names. *t receives the tensor
 * (NULL for an absent optional one); *name its name. want_rank > 0 checks the rank. */
static int weight(ox_ctx *c, const cJSON *nd, const char *attr, int required, int want_rank, ser_tensor **t,
                  const char **name) {
  int rc;
  *t = NULL;
  *name = get_str(c, nd, attr, required, &rc);
  if (rc || !*name) return rc;
  if (!(*t = ox_tensor(c, *name, attr))) return SER_EINVAL;
  if (want_rank > 0 && (*t)->ndim != want_rank)
    return ox_fail(c, SER_EINVAL, "%s '%s' is %s; expected a rank-%d tensor", attr, *name, SER_SHAPE(*t), want_rank);
  if (has_init(c, *name)) return 0;
  float *v = values_of(c, *t);
  if (!v) return SER_ENOMEM;
  rc = ox_init_float(c, *name, (*t)->ndim, (*t)->shape, v);
  free(v);
  return rc;
}

/* A 1-D parameter of n entries (BatchNorm's and LayerNorm's); fails naming it otherwise. */
static int vector(ox_ctx *c, const cJSON *nd, const char *attr, int64_t n, const char **name) {
  ser_tensor *t;
  int rc = weight(c, nd, attr, 1, 1, &t, name);
  if (!rc && t->shape[0] != n)
    rc = ox_fail(c, SER_EINVAL, "%s '%s' has %lld entries; the input has %lld channels", attr, *name,
                 (long long)t->shape[0], (long long)n);
  return rc;
}

static const ox_dim DYN = {-1, NULL};

static ox_dim dim_of(int64_t v) { return (ox_dim){v, NULL}; }

/* ---- ops -------------------------------------------------------------------------------- */

static int need_rank(ox_ctx *c, const ox_value *x, int lo, int hi) {
  if (x->rank < lo || x->rank > hi) {
    if (lo == hi) return ox_fail(c, SER_EINVAL, "input '%s' is %s; expected rank %d", x->name, ox_shape_str(x), lo);
    return ox_fail(c, SER_EINVAL, "input '%s' is %s; expected rank %d to %d", x->name, ox_shape_str(x), lo, hi);
  }
  return 0;
}

/* output size of a convolution / pooling window along one axis (PyTorch's formula) */
static ox_dim window_out(ox_dim in, int64_t k, int64_t s, int64_t p, int64_t d, int ceil_mode) {
  if (in.v < 0) return DYN;
  const int64_t span = in.v + 2 * p - d * (k - 1) - 1;
  if (span < 0) return dim_of(0);
  int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= in.v + p) o--;
  return dim_of(o);
}

static int emit_conv(ox_ctx *c, const cJSON *nd, int sd, const ox_value *x, const char *out) {
  int rc = need_rank(c, x, sd + 2, sd + 2);
  ser_tensor *w, *b;
  const char *wn, *bn;
  if (rc || (rc = weight(c, nd, "weight", 1, sd + 2, &w, &wn)) || (rc = weight(c, nd, "bias", 0, 1, &b, &bn))) return rc;
  int64_t groups, st[2], pad[2], dil[2], pads[4], k[2];
  if ((rc = get_int(c, nd, "groups", 0, 1, &groups)) || (rc = get_ints(c, nd, "stride", sd, 0, 1, st)) ||
      (rc = get_ints(c, nd, "padding", sd, 0, 0, pad)) || (rc = get_ints(c, nd, "dilation", sd, 0, 1, dil)))
    return rc;
  if (groups < 1 || w->shape[0] % groups) return ox_fail(c, SER_EINVAL, "groups %lld does not divide the %lld output channels", (long long)groups, (long long)w->shape[0]);
  if (x->dim[1].v >= 0 && x->dim[1].v != w->shape[1] * groups)
    return ox_fail(c, SER_EINVAL, "input '%s' is %s with %lld channels; weight '%s' %s expects %lld", x->name, ox_shape_str(x),
                   (long long)x->dim[1].v, wn, SER_SHAPE(w), (long long)(w->shape[1] * groups));
  if (b && b->shape[0] != w->shape[0])
    return ox_fail(c, SER_EINVAL, "bias '%s' has %lld entries; weight '%s' has %lld output channels", bn, (long long)b->shape[0], wn, (long long)w->shape[0]);
  for (int i = 0; i < sd; i++) {
    if (st[i] < 1 || dil[i] < 1 || pad[i] < 0) return ox_fail(c, SER_EINVAL, "stride and dilation must be >= 1 and padding >= 0");
    pads[i] = pads[i + sd] = pad[i];
    k[i] = w->shape[2 + i];
  }
  const char *in[3] = {x->name, wn, bn};
  Onnx__NodeProto *n = ox_node(c, "Conv", b ? 3 : 2, in, out);
  if (!n || ox_attr_ints(c, n, "kernel_shape", sd, k) || ox_attr_ints(c, n, "strides", sd, st) ||
      ox_attr_ints(c, n, "pads", 2 * sd, pads) || ox_attr_ints(c, n, "dilations", sd, dil) || ox_attr_int(c, n, "group", groups))
    return SER_ENOMEM;
  ox_dim d[SER_MAX_DIMS] = {x->dim[0], dim_of(w->shape[0])};
  for (int i = 0; i < sd; i++) d[2 + i] = window_out(x->dim[2 + i], k[i], st[i], pad[i], dil[i], 0);
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_conv1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_conv(c, nd, 1, x, out); }
static int emit_conv2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_conv(c, nd, 2, x, out); }

static int emit_batchnorm(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc = need_rank(c, x, 2, 5);
  if (rc) return rc;
  if (x->dim[1].v < 0) return ox_fail(c, SER_EINVAL, "input '%s' is %s: the channel dim (1) must have a fixed size", x->name, ox_shape_str(x));
  const char *in[5];
  double eps;
  if ((rc = vector(c, nd, "weight", x->dim[1].v, &in[1])) || (rc = vector(c, nd, "bias", x->dim[1].v, &in[2])) ||
      (rc = vector(c, nd, "running_mean", x->dim[1].v, &in[3])) || (rc = vector(c, nd, "running_var", x->dim[1].v, &in[4])) ||
      (rc = get_num(c, nd, "eps", 1e-5, &eps)))
    return rc;
  in[0] = x->name;
  Onnx__NodeProto *n = ox_node(c, "BatchNormalization", 5, in, out);
  if (!n || ox_attr_float(c, n, "epsilon", (float)eps)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

static int unary(ox_ctx *c, const char *op_type, const ox_value *x, const char *out) {
  const char *in[1] = {x->name};
  if (!ox_node(c, op_type, 1, in, out)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

int ox_binary(ox_ctx *c, const char *op_type, const char *a, const char *b, const char *out) {
  const char *in[2] = {a, b};
  return ox_node(c, op_type, 2, in, out) ? 0 : SER_ENOMEM;
}

static int emit_relu(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return unary(c, "Relu", x, out); }

/* GELU: opset 17 has no Gelu op (it arrives in opset 20), so the formula: exact
 * 0.5 x (1 + erf(x / sqrt 2)), or with tanh_form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
int ox_gelu(ox_ctx *c, const char *x, int tanh_form, const char *out) {
  const char *inner = ox_tmp(c, out, "gelu"), *act = ox_tmp(c, out, "gelu"), *one_p = ox_tmp(c, out, "gelu"),
             *half_x = ox_tmp(c, out, "gelu"), *one = ox_scalar(c, out, 1.0f), *half = ox_scalar(c, out, 0.5f);
  if (!inner || !act || !one_p || !half_x || !one || !half) return SER_ENOMEM;
  if (tanh_form) {
    const char *x2 = ox_tmp(c, out, "gelu"), *x3 = ox_tmp(c, out, "gelu"), *cx3 = ox_tmp(c, out, "gelu"), *sum = ox_tmp(c, out, "gelu"),
               *k = ox_scalar(c, out, 0.044715f), *s = ox_scalar(c, out, (float)sqrt(2.0 / M_PI));
    if (!x2 || !x3 || !cx3 || !sum || !k || !s || ox_binary(c, "Mul", x, x, x2) || ox_binary(c, "Mul", x2, x, x3) ||
        ox_binary(c, "Mul", x3, k, cx3) || ox_binary(c, "Add", x, cx3, sum) || ox_binary(c, "Mul", sum, s, inner))
      return SER_ENOMEM;
    const char *in[1] = {inner};
    if (!ox_node(c, "Tanh", 1, in, act)) return SER_ENOMEM;
  } else {
    const char *r2 = ox_scalar(c, out, (float)M_SQRT2);
    if (!r2 || ox_binary(c, "Div", x, r2, inner)) return SER_ENOMEM;
    const char *in[1] = {inner};
    if (!ox_node(c, "Erf", 1, in, act)) return SER_ENOMEM;
  }
  if (ox_binary(c, "Add", act, one, one_p) || ox_binary(c, "Mul", x, half, half_x) || ox_binary(c, "Mul", half_x, one_p, out))
    return SER_ENOMEM;
  return 0;
}

static int emit_gelu(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc;
  const char *approx = get_str(c, nd, "approximate", 0, &rc);
  if (rc) return rc;
  const int tanh_form = approx && strcmp(approx, "tanh") == 0;
  if (approx && !tanh_form && strcmp(approx, "none") != 0)
    return ox_fail(c, SER_EINVAL, "approximate must be \"none\" or \"tanh\", got \"%s\"", approx);
  if ((rc = ox_gelu(c, x->name, tanh_form, out))) return rc;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

static int emit_maxpool(ox_ctx *c, const cJSON *nd, int sd, const ox_value *x, const char *out) {
  int rc = need_rank(c, x, sd + 2, sd + 2);
  int64_t k[2], st[2], pad[2], dil[2], pads[4];
  int ceil_mode;
  if (rc || (rc = get_ints(c, nd, "kernel", sd, 1, 0, k))) return rc;
  const cJSON *sj = field(nd, "stride");
  if (!sj || cJSON_IsNull(sj) || (cJSON_IsArray(sj) && cJSON_GetArraySize(sj) == 0)) {
    memcpy(st, k, sizeof st);  /* PyTorch: stride defaults to the kernel size */
  } else if ((rc = get_ints(c, nd, "stride", sd, 0, 1, st))) {
    return rc;
  }
  if ((rc = get_ints(c, nd, "padding", sd, 0, 0, pad)) || (rc = get_ints(c, nd, "dilation", sd, 0, 1, dil)) ||
      (rc = get_bool(c, nd, "ceil_mode", 0, &ceil_mode)))
    return rc;
  for (int i = 0; i < sd; i++) {
    if (k[i] < 1 || st[i] < 1 || dil[i] < 1 || pad[i] < 0 || 2 * pad[i] > k[i])
      return ox_fail(c, SER_EINVAL, "kernel, stride and dilation must be >= 1 and padding between 0 and half the kernel");
    pads[i] = pads[i + sd] = pad[i];
  }
  const char *in[1] = {x->name};
  Onnx__NodeProto *n = ox_node(c, "MaxPool", 1, in, out);
  if (!n || ox_attr_ints(c, n, "kernel_shape", sd, k) || ox_attr_ints(c, n, "strides", sd, st) ||
      ox_attr_ints(c, n, "pads", 2 * sd, pads) || ox_attr_ints(c, n, "dilations", sd, dil) ||
      (ceil_mode && ox_attr_int(c, n, "ceil_mode", 1)))
    return SER_ENOMEM;
  ox_dim d[SER_MAX_DIMS] = {x->dim[0], x->dim[1]};
  for (int i = 0; i < sd; i++) d[2 + i] = window_out(x->dim[2 + i], k[i], st[i], pad[i], dil[i], ceil_mode);
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_maxpool1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_maxpool(c, nd, 1, x, out); }
static int emit_maxpool2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_maxpool(c, nd, 2, x, out); }

/* Adaptive average pooling has no ONNX op. Axes pooled to 1 become a ReduceMean (their
 * size may be dynamic: the time axis), axes kept at their size are left alone, and an axis
 * of fixed size n pooled to m bins that divide it evenly is an AveragePool of kernel =
 * stride = n/m (PyTorch's bins are then exactly those windows). Anything else is refused. */
static int emit_adaptive(ox_ctx *c, const cJSON *nd, int sd, const ox_value *x, const char *out) {
  int rc = need_rank(c, x, sd + 2, sd + 2);
  int64_t o[2];
  if (rc) return rc;
  const cJSON *oj = field(nd, "output_size");
  if (cJSON_IsArray(oj) && cJSON_GetArraySize(oj) == sd) {
    for (int i = 0; i < sd; i++) {  /* null keeps that axis's size, as PyTorch's None */
      const cJSON *e = cJSON_GetArrayItem(oj, i);
      if (cJSON_IsNull(e)) o[i] = -1;
      else if ((rc = whole(c, e, "output_size", &o[i]))) return rc;
    }
  } else if ((rc = get_ints(c, nd, "output_size", sd, 1, 1, o))) {
    return rc;
  }
  int64_t reduce[2], k[2];
  int n_reduce = 0, pool = 0;
  ox_dim d[SER_MAX_DIMS] = {x->dim[0], x->dim[1]};
  for (int i = 0; i < sd; i++) {
    const ox_dim in = x->dim[2 + i];
    k[i] = 1;
    d[2 + i] = in;
    if (o[i] == -1 || (in.v >= 0 && o[i] == in.v)) continue;
    if (o[i] < 1) return ox_fail(c, SER_EINVAL, "output_size %lld must be >= 1", (long long)o[i]);
    d[2 + i] = dim_of(o[i]);
    if (o[i] == 1) {
      reduce[n_reduce++] = 2 + i;
    } else if (in.v < 0) {
      return ox_fail(c, SER_EINVAL, "pooling axis %d of '%s' %s (size known only at run time) to %lld bins has no ONNX form; "
                     "only pooling such an axis to 1 exports", 2 + i, x->name, ox_shape_str(x), (long long)o[i]);
    } else if (in.v % o[i] != 0) {
      return ox_fail(c, SER_EINVAL, "pooling axis %d of '%s' %s from %lld to %lld bins gives unequal bins; "
                     "ONNX export needs a size that the bins divide", 2 + i, x->name, ox_shape_str(x), (long long)in.v, (long long)o[i]);
    } else {
      k[i] = in.v / o[i];
      pool = 1;
    }
  }
  if (n_reduce == sd && sd > 0) {   /* everything to 1: the global pool */
    const char *in[1] = {x->name};
    if (!ox_node(c, "GlobalAveragePool", 1, in, out)) return SER_ENOMEM;
    return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
  }
  const char *cur = x->name;
  if (n_reduce) {
    const char *r = pool ? ox_tmp(c, out, "mean") : out;
    const char *in[1] = {cur};
    Onnx__NodeProto *n = r ? ox_node(c, "ReduceMean", 1, in, r) : NULL;
    if (!n || ox_attr_ints(c, n, "axes", n_reduce, reduce) || ox_attr_int(c, n, "keepdims", 1)) return SER_ENOMEM;
    cur = r;
  }
  if (pool) {
    const char *in[1] = {cur};
    Onnx__NodeProto *n = ox_node(c, "AveragePool", 1, in, out);
    if (!n || ox_attr_ints(c, n, "kernel_shape", sd, k) || ox_attr_ints(c, n, "strides", sd, k)) return SER_ENOMEM;
  } else if (!n_reduce) {  /* every axis kept: an identity */
    if (unary(c, "Identity", x, out)) return SER_ENOMEM;
    return 0;
  }
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_adaptive1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_adaptive(c, nd, 1, x, out); }
static int emit_adaptive2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_adaptive(c, nd, 2, x, out); }

/* A Reshape to a constant shape (0 = keep that axis, -1 = the rest). */
int ox_reshape_to(ox_ctx *c, const char *in_name, int k, const int64_t *shape, const char *out) {
  const char *sn = ox_tmp(c, out, "shape");
  const int64_t dims[1] = {k};
  if (!sn || ox_init_int64(c, sn, 1, dims, shape)) return SER_ENOMEM;
  const char *in[2] = {in_name, sn};
  return ox_node(c, "Reshape", 2, in, out) ? 0 : SER_ENOMEM;
}

static int emit_flatten(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t s, e;
  int rc = need_rank(c, x, 1, SER_MAX_DIMS);
  if (rc || (rc = get_int(c, nd, "start_dim", 0, 1, &s)) || (rc = get_int(c, nd, "end_dim", 0, -1, &e)) ||
      (rc = axis(c, "start_dim", s, x->rank, &s)) || (rc = axis(c, "end_dim", e, x->rank, &e)))
    return rc;
  if (e != x->rank - 1) return ox_fail(c, SER_EINVAL, "end_dim must be the last axis (-1); got %lld of rank %d", (long long)e, x->rank);
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < s; i++) d[i] = x->dim[i];
  d[s] = dim_of(1);
  for (int i = (int)s; i < x->rank; i++) d[s] = (d[s].v < 0 || x->dim[i].v < 0) ? DYN : dim_of(d[s].v * x->dim[i].v);
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

/* Linear: Gemm (transB) on a matrix; on higher ranks MatMul with the transposed weight
 * (stored as "<weight>.T") and an Add of the bias, since Gemm takes 2-D inputs only. */
static int emit_linear(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc;
  const char *wn, *bn;
  ser_tensor *b;
  if ((rc = need_rank(c, x, 1, SER_MAX_DIMS))) return rc;
  wn = get_str(c, nd, "weight", 1, &rc);
  if (rc) return rc;
  ser_tensor *w = ox_tensor(c, wn, "weight");
  if (!w) return SER_EINVAL;
  if (w->ndim != 2) return ox_fail(c, SER_EINVAL, "weight '%s' is %s; expected [out, in]", wn, SER_SHAPE(w));
  const ox_dim last = x->dim[x->rank - 1];
  if (last.v >= 0 && last.v != w->shape[1])
    return ox_fail(c, SER_EINVAL, "input '%s' is %s with %lld features; weight '%s' %s expects %lld", x->name, ox_shape_str(x),
                   (long long)last.v, wn, SER_SHAPE(w), (long long)w->shape[1]);
  if ((rc = weight(c, nd, "bias", 0, 1, &b, &bn))) return rc;
  if (b && b->shape[0] != w->shape[0])
    return ox_fail(c, SER_EINVAL, "bias '%s' has %lld entries; weight '%s' has %lld outputs", bn, (long long)b->shape[0], wn, (long long)w->shape[0]);
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < x->rank; i++) d[i] = x->dim[i];
  d[x->rank - 1] = dim_of(w->shape[0]);
  if (x->rank == 2) {
    if ((rc = weight(c, nd, "weight", 1, 2, &w, &wn))) return rc;
    const char *in[3] = {x->name, wn, bn};
    Onnx__NodeProto *n = ox_node(c, "Gemm", b ? 3 : 2, in, out);
    if (!n || ox_attr_int(c, n, "transB", 1)) return SER_ENOMEM;
  } else {
    char tn[512];
    snprintf(tn, sizeof tn, "%s.T", wn);
    if (!has_init(c, tn)) {
      float *v = values_of(c, w);
      float *t = v ? malloc((size_t)ser_tensor_numel(w) * sizeof *t) : NULL;
      if (!t) {
        free(v);
        return ox_fail(c, SER_ENOMEM, "out of memory transposing '%s'", wn);
      }
      const int64_t O = w->shape[0], I = w->shape[1], dims[2] = {I, O};
      for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) t[i * O + o] = v[o * I + i];
      rc = ox_init_float(c, tn, 2, dims, t);
      free(v);
      free(t);
      if (rc) return rc;
    }
    const char *mm = b ? ox_tmp(c, out, "matmul") : out;
    if (!mm || ox_binary(c, "MatMul", x->name, tn, mm) || (b && ox_binary(c, "Add", mm, bn, out))) return SER_ENOMEM;
  }
  return ox_put(c, out, x->rank, d) ? 0 : SER_ENOMEM;
}

/* PyTorch stacks an LSTM's gates i,f,g,o; ONNX i,o,f,c (c = PyTorch's g). Row block
 * ONNX_GATE[j] of the ONNX matrix is PyTorch's block j-th listed here. */
static const int ONNX_GATE[4] = {0, 3, 1, 2};

/* Copies a PyTorch [4H, cols] gate stack into ONNX order at dst. */
static void reorder_gates(float *dst, const float *src, int64_t H, int64_t cols) {
  for (int g = 0; g < 4; g++) memcpy(dst + (size_t)(g * H * cols), src + (size_t)(ONNX_GATE[g] * H * cols), (size_t)(H * cols) * sizeof(float));
}

/* One LSTM layer's W [D,4H,I], R [D,4H,H], B [D,8H] (Wb then Rb) from prefix.weight_ih_l<k>
 * (and _reverse, bias_ih, bias_hh), gates reordered. */
static int lstm_layer_weights(ox_ctx *c, const char *prefix, int layer, int dirs, int64_t H, int64_t I, int bias,
                              const char *wn, const char *rn, const char *bn) {
  const int64_t wd[3] = {dirs, 4 * H, I}, rd[3] = {dirs, 4 * H, H}, bd[2] = {dirs, 8 * H};
  float *W = calloc((size_t)(dirs * 4 * H * I), sizeof *W), *R = calloc((size_t)(dirs * 4 * H * H), sizeof *R),
        *B = calloc((size_t)(dirs * 8 * H), sizeof *B);
  int rc = 0;
  if (!W || !R || !B) rc = ox_fail(c, SER_ENOMEM, "out of memory for the LSTM weights");
  static const char *const kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  for (int dir = 0; dir < dirs && !rc; dir++) {
    for (int kk = 0; kk < (bias ? 4 : 2) && !rc; kk++) {
      char name[512];
      snprintf(name, sizeof name, "%s.%s_l%d%s", prefix, kinds[kk], layer, dir ? "_reverse" : "");
      ser_tensor *t = ox_tensor(c, name, "prefix");
      if (!t) {
        rc = SER_EINVAL;
        break;
      }
      const int64_t cols = kk == 0 ? I : kk == 1 ? H : 1;
      const int want_rank = kk < 2 ? 2 : 1;
      if (t->ndim != want_rank || t->shape[0] != 4 * H || (want_rank == 2 && t->shape[1] != cols)) {
        rc = ox_fail(c, SER_EINVAL, "'%s' is %s; expected [%lld%s%s] (hidden %lld, input %lld)", name, SER_SHAPE(t), (long long)(4 * H),
                     want_rank == 2 ? "," : "", want_rank == 2 ? (kk == 0 ? "input" : "hidden") : "", (long long)H, (long long)I);
        break;
      }
      float *v = values_of(c, t);
      if (!v) {
        rc = SER_ENOMEM;
        break;
      }
      if (kk == 0) reorder_gates(W + dir * 4 * H * I, v, H, I);
      else if (kk == 1) reorder_gates(R + dir * 4 * H * H, v, H, H);
      else reorder_gates(B + dir * 8 * H + (kk == 3 ? 4 * H : 0), v, H, 1);
      free(v);
    }
  }
  if (!rc) rc = ox_init_float(c, wn, 3, wd, W);
  if (!rc) rc = ox_init_float(c, rn, 3, rd, R);
  if (!rc) rc = ox_init_float(c, bn, 2, bd, B);
  free(W);
  free(R);
  free(B);
  return rc;
}

/* nn.LSTM (batch_first, one or more layers, uni- or bidirectional) -> per layer one ONNX
 * LSTM over [T,B,I] (onnxruntime runs layout = 0 only, so batch-first input is transposed
 * first), its Y [T,D,B,H] transposed to [T,B,D,H] and reshaped to [T,B,D*H] (PyTorch's
 * concatenation of the two directions), and the result transposed back to [B,T,D*H]. */
static int emit_lstm(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc = need_rank(c, x, 3, 3);
  int64_t H, layers;
  int bidir, batch_first, bias;
  const char *prefix = rc ? NULL : get_str(c, nd, "prefix", 1, &rc);
  if (rc || (rc = get_int(c, nd, "hidden", 1, 0, &H)) || (rc = get_int(c, nd, "layers", 0, 1, &layers)) ||
      (rc = get_bool(c, nd, "bidirectional", 0, &bidir)) || (rc = get_bool(c, nd, "batch_first", 1, &batch_first)) ||
      (rc = get_bool(c, nd, "bias", 1, &bias)))
    return rc;
  if (H < 1 || layers < 1 || layers > 64) return ox_fail(c, SER_EINVAL, "hidden must be >= 1 and layers 1 to 64, got %lld and %lld", (long long)H, (long long)layers);
  const int dirs = bidir ? 2 : 1;
  char wname[512];
  snprintf(wname, sizeof wname, "%s.weight_ih_l0", prefix);
  ser_tensor *w0 = ox_tensor(c, wname, "prefix");
  if (!w0) return SER_EINVAL;
  if (w0->ndim != 2) return ox_fail(c, SER_EINVAL, "'%s' is %s; expected [4*hidden, input]", wname, SER_SHAPE(w0));
  const int64_t I0 = w0->shape[1];
  const ox_dim feat = x->dim[2];
  if (feat.v >= 0 && feat.v != I0)
    return ox_fail(c, SER_EINVAL, "input '%s' is %s with %lld features per step; '%s' %s expects %lld", x->name, ox_shape_str(x),
                   (long long)feat.v, wname, SER_SHAPE(w0), (long long)I0);
  const ox_dim B = batch_first ? x->dim[0] : x->dim[1], T = batch_first ? x->dim[1] : x->dim[0];
  static const int64_t TBI[3] = {1, 0, 2}, TBDH[4] = {0, 2, 1, 3}, KEEP2[3] = {0, 0, -1};
  const char *cur = x->name;
  if (batch_first) {
    const char *t = ox_tmp(c, out, "tbi");
    const char *in[1] = {cur};
    Onnx__NodeProto *n = t ? ox_node(c, "Transpose", 1, in, t) : NULL;
    if (!n || ox_attr_ints(c, n, "perm", 3, TBI)) return SER_ENOMEM;
    cur = t;
  }
  for (int l = 0; l < layers; l++) {
    char wn[600], rn[600], bn[600];
    snprintf(wn, sizeof wn, "%s.onnx_W_l%d", prefix, l);
    snprintf(rn, sizeof rn, "%s.onnx_R_l%d", prefix, l);
    snprintf(bn, sizeof bn, "%s.onnx_B_l%d", prefix, l);
    const int64_t I = l == 0 ? I0 : dirs * H;
    if (!has_init(c, wn) && (rc = lstm_layer_weights(c, prefix, l, dirs, H, I, bias, wn, rn, bn))) return rc;
    const char *y = ox_tmp(c, out, "y"), *yt = ox_tmp(c, out, "tbdh"), *ycat = (l == layers - 1 && !batch_first) ? out : ox_tmp(c, out, "tbh");
    const char *in[4] = {cur, wn, rn, bn};
    Onnx__NodeProto *n = (y && yt && ycat) ? ox_node(c, "LSTM", 4, in, y) : NULL;
    if (!n || ox_attr_int(c, n, "hidden_size", H) || ox_attr_string(c, n, "direction", bidir ? "bidirectional" : "forward"))
      return SER_ENOMEM;
    const char *tin[1] = {y};
    Onnx__NodeProto *tn = ox_node(c, "Transpose", 1, tin, yt);
    if (!tn || ox_attr_ints(c, tn, "perm", 4, TBDH) || ox_reshape_to(c, yt, 3, KEEP2, ycat)) return SER_ENOMEM;
    cur = ycat;
  }
  if (batch_first) {
    const char *in[1] = {cur};
    Onnx__NodeProto *n = ox_node(c, "Transpose", 1, in, out);
    if (!n || ox_attr_ints(c, n, "perm", 3, TBI)) return SER_ENOMEM;
  }
  ox_dim d[3] = {batch_first ? B : T, batch_first ? T : B, dim_of(dirs * H)};
  return ox_put(c, out, 3, d) ? 0 : SER_ENOMEM;
}

static int emit_transpose(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t perm[SER_MAX_DIMS];
  int k, rc = get_list(c, nd, "perm", perm, &k);
  if (rc) return rc;
  if (k != x->rank) return ox_fail(c, SER_EINVAL, "perm has %d entries; input '%s' is %s (rank %d)", k, x->name, ox_shape_str(x), x->rank);
  int seen[SER_MAX_DIMS] = {0};
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < k; i++) {
    if ((rc = axis(c, "perm entry", perm[i], k, &perm[i]))) return rc;
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
  int k, rc = get_list(c, nd, "shape", shape, &k);
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
      d[i] = dim_of(shape[i]);
    }
    known = (known < 0 || d[i].v < 0) ? -1 : known * d[i].v;
  }
  if (infer >= 0) d[infer] = (total >= 0 && known > 0) ? dim_of(total / known) : DYN;
  if (infer >= 0 && total >= 0 && known > 0 && total % known)
    return ox_fail(c, SER_EINVAL, "shape cannot hold the %lld values of '%s' %s", (long long)total, x->name, ox_shape_str(x));
  if (ox_reshape_to(c, x->name, k, shape, out)) return SER_ENOMEM;
  return ox_put(c, out, k, d) ? 0 : SER_ENOMEM;
}

/* dims (a number or a list) -> sorted distinct 0-based axes; the output shape with keepdim. */
static int reduce_axes(ox_ctx *c, const cJSON *nd, const ox_value *x, int64_t *axes, int *k, int *keep, ox_dim *d, int *rank) {
  int rc = get_list(c, nd, "dims", axes, k);
  if (rc || (rc = get_bool(c, nd, "keepdim", 0, keep))) return rc;
  int on[SER_MAX_DIMS] = {0};
  for (int i = 0; i < *k; i++) {
    if ((rc = axis(c, "dims entry", axes[i], x->rank, &axes[i]))) return rc;
    if (on[axes[i]]++) return ox_fail(c, SER_EINVAL, "dims names axis %lld twice", (long long)axes[i]);
  }
  *k = 0;
  *rank = 0;
  for (int i = 0; i < x->rank; i++) {
    if (on[i]) axes[(*k)++] = i;
    if (!on[i]) d[(*rank)++] = x->dim[i];
    else if (*keep) d[(*rank)++] = dim_of(1);
  }
  return 0;
}

int ox_reduce_mean(ox_ctx *c, const char *in_name, int k, const int64_t *axes, int keep, const char *out) {
  const char *in[1] = {in_name};
  Onnx__NodeProto *n = ox_node(c, "ReduceMean", 1, in, out);
  return (!n || ox_attr_ints(c, n, "axes", k, axes) || ox_attr_int(c, n, "keepdims", keep)) ? SER_ENOMEM : 0;
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
  if (rc || (rc = get_bool(c, nd, "unbiased", 1, &unbiased)) || (rc = get_num(c, nd, "eps", 0.0, &eps))) return rc;
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
  int rc = get_int(c, nd, "axis", 1, 0, &a);
  if (rc || (rc = axis(c, "axis", a, x[0].rank, &a))) return rc;
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
        if (j) d[i] = (d[i].v < 0 || aj.v < 0) ? DYN : dim_of(d[i].v + aj.v);
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
  int rc = need_rank(c, x, 1, SER_MAX_DIMS);
  const ox_dim last = x->dim[x->rank - 1];
  double eps;
  const char *in[3] = {x->name};
  if (rc) return rc;
  if (last.v < 0) return ox_fail(c, SER_EINVAL, "input '%s' is %s: the normalised last axis must have a fixed size", x->name, ox_shape_str(x));
  if ((rc = vector(c, nd, "weight", last.v, &in[1])) || (rc = vector(c, nd, "bias", last.v, &in[2])) ||
      (rc = get_num(c, nd, "eps", 1e-5, &eps)))
    return rc;
  Onnx__NodeProto *n = ox_node(c, "LayerNormalization", 3, in, out);
  if (!n || ox_attr_int(c, n, "axis", -1) || ox_attr_float(c, n, "epsilon", (float)eps)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

static int emit_softmax(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int64_t a;
  int rc = get_int(c, nd, "axis", 0, -1, &a);
  if (rc || (rc = axis(c, "axis", a, x->rank, &a))) return rc;
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
  const char *tn = get_str(c, nd, "tensor", 1, &rc);
  if (rc || (rc = get_list(c, nd, "shape", shape, &k))) return rc;
  ser_tensor *t = ox_tensor(c, tn, "tensor");
  if (!t) return SER_EINVAL;
  int64_t n = 1;
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < k; i++) {
    if (shape[i] < 1) return ox_fail(c, SER_EINVAL, "shape entry %lld must be >= 1", (long long)shape[i]);
    n *= shape[i];
    d[i] = dim_of(shape[i]);
  }
  if (n != ser_tensor_numel(t))
    return ox_fail(c, SER_EINVAL, "tensor '%s' %s has %lld values; shape needs %lld", tn, SER_SHAPE(t), (long long)ser_tensor_numel(t), (long long)n);
  float *v = values_of(c, t);
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
    const ox_dim da = ia >= 0 ? a->dim[ia] : dim_of(1), db = ib >= 0 ? b->dim[ib] : dim_of(1);
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
  int rc = get_int(c, nd, "axis", 1, 0, &a);
  if (rc || (rc = axis(c, "axis", a, x->rank, &a)) || (rc = get_int(c, nd, "start", 1, 0, &start)) ||
      (rc = get_int(c, nd, "length", 1, 0, &len)))
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
  d[a] = dim_of(len);
  return ox_put(c, out, x->rank, d) ? 0 : SER_ENOMEM;
}

/* ---- the table -------------------------------------------------------------------------- */

static const ox_op OPS[] = {
  {"conv1d", 1, emit_conv1d},
  {"conv2d", 1, emit_conv2d},
  {"batchnorm", 1, emit_batchnorm},
  {"relu", 1, emit_relu},
  {"gelu", 1, emit_gelu},
  {"maxpool1d", 1, emit_maxpool1d},
  {"maxpool2d", 1, emit_maxpool2d},
  {"adaptive_avgpool1d", 1, emit_adaptive1d},
  {"adaptive_avgpool2d", 1, emit_adaptive2d},
  {"flatten", 1, emit_flatten},
  {"linear", 1, emit_linear},
  {"lstm", 1, emit_lstm},
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
  {"whisper_encoder", 1, ox_emit_whisper},
};

const ox_op *ox_find_op(const char *name) {
  for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
    if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
  return NULL;
}

const char *ox_op_names(void) {
  static _Thread_local char buf[512];
  size_t at = 0;
  for (size_t i = 0; i < sizeof OPS / sizeof OPS[0] && at < sizeof buf - 32; i++)
    at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? ", " : "", OPS[i].name);
  return buf;
}
