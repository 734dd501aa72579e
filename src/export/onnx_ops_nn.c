/* The ONNX emitters of the network layers of the graph description (docs/graph.md):
 * convolutions, BatchNorm, activations, pooling, Linear and the LSTM (with its gate
 * reordering). Each reads its node's attributes, checks them against the tracked input
 * shape, appends ONNX nodes (opset 17) and initializers and records the output's shape;
 * PyTorch's semantics are the reference. docs/onnx.md is the table of this file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx_attr.h"
#include "onnx_ops.h"

/* output size of a convolution / pooling window along one axis (PyTorch's formula) */
static ox_dim window_out(ox_dim in, int64_t k, int64_t s, int64_t p, int64_t d, int ceil_mode) {
  if (in.v < 0) return OX_DYN;
  const int64_t span = in.v + 2 * p - d * (k - 1) - 1;
  if (span < 0) return ox_dim_of(0);
  int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= in.v + p) o--;
  return ox_dim_of(o);
}

static int emit_conv(ox_ctx *c, const cJSON *nd, int sd, const ox_value *x, const char *out) {
  int rc = ox_need_rank(c, x, sd + 2, sd + 2);
  ser_tensor *w, *b;
  const char *wn, *bn;
  if (rc || (rc = ox_weight(c, nd, "weight", 1, sd + 2, &w, &wn)) || (rc = ox_weight(c, nd, "bias", 0, 1, &b, &bn))) return rc;
  int64_t groups, st[2], pad[2], dil[2], pads[4], k[2];
  if ((rc = ox_get_int(c, nd, "groups", 0, 1, &groups)) || (rc = ox_get_ints(c, nd, "stride", sd, 0, 1, st)) ||
      (rc = ox_get_ints(c, nd, "padding", sd, 0, 0, pad)) || (rc = ox_get_ints(c, nd, "dilation", sd, 0, 1, dil)))
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
  ox_dim d[SER_MAX_DIMS] = {x->dim[0], ox_dim_of(w->shape[0])};
  for (int i = 0; i < sd; i++) d[2 + i] = window_out(x->dim[2 + i], k[i], st[i], pad[i], dil[i], 0);
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_conv1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_conv(c, nd, 1, x, out); }
static int emit_conv2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_conv(c, nd, 2, x, out); }

static int emit_batchnorm(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc = ox_need_rank(c, x, 2, 5);
  if (rc) return rc;
  if (x->dim[1].v < 0) return ox_fail(c, SER_EINVAL, "input '%s' is %s: the channel dim (1) must have a fixed size", x->name, ox_shape_str(x));
  const char *in[5];
  double eps;
  if ((rc = ox_vector(c, nd, "weight", x->dim[1].v, &in[1])) || (rc = ox_vector(c, nd, "bias", x->dim[1].v, &in[2])) ||
      (rc = ox_vector(c, nd, "running_mean", x->dim[1].v, &in[3])) || (rc = ox_vector(c, nd, "running_var", x->dim[1].v, &in[4])) ||
      (rc = ox_get_num(c, nd, "eps", 1e-5, &eps)))
    return rc;
  in[0] = x->name;
  Onnx__NodeProto *n = ox_node(c, "BatchNormalization", 5, in, out);
  if (!n || ox_attr_float(c, n, "epsilon", (float)eps)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

static int emit_relu(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return ox_unary(c, "Relu", x, out); }

/* log(x + eps): Log, after an Add of the constant when eps > 0 */
static int emit_log(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  double eps;
  int rc = ox_get_num(c, nd, "eps", 0, &eps);
  if (rc) return rc;
  if (!(eps >= 0) || !isfinite(eps)) return ox_fail(c, SER_EINVAL, "eps must be a finite number >= 0, got %g", eps);
  if (eps == 0) return ox_unary(c, "Log", x, out);
  const char *shifted = ox_tmp(c, out, "log"), *e = ox_scalar(c, out, (float)eps);
  if (!shifted || !e || ox_binary(c, "Add", x->name, e, shifted)) return SER_ENOMEM;
  const char *in[1] = {shifted};
  if (!ox_node(c, "Log", 1, in, out)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

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
  const char *approx = ox_get_str(c, nd, "approximate", 0, &rc);
  if (rc) return rc;
  const int tanh_form = approx && strcmp(approx, "tanh") == 0;
  if (approx && !tanh_form && strcmp(approx, "none") != 0)
    return ox_fail(c, SER_EINVAL, "approximate must be \"none\" or \"tanh\", got \"%s\"", approx);
  if ((rc = ox_gelu(c, x->name, tanh_form, out))) return rc;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

/* MaxPool, or (avg) AveragePool with the padding counted as zeros (PyTorch's count_include_pad) */
static int emit_pool(ox_ctx *c, const cJSON *nd, int sd, int avg, const ox_value *x, const char *out) {
  int rc = ox_need_rank(c, x, sd + 2, sd + 2);
  int64_t k[2], st[2], pad[2], dil[2], pads[4];
  int ceil_mode;
  if (rc || (rc = ox_get_ints(c, nd, "kernel", sd, 1, 0, k))) return rc;
  const cJSON *sj = ox_field(nd, "stride");
  if (!sj || cJSON_IsNull(sj) || (cJSON_IsArray(sj) && cJSON_GetArraySize(sj) == 0)) {
    memcpy(st, k, sizeof st);  /* PyTorch: stride defaults to the kernel size */
  } else if ((rc = ox_get_ints(c, nd, "stride", sd, 0, 1, st))) {
    return rc;
  }
  if ((rc = ox_get_ints(c, nd, "padding", sd, 0, 0, pad)) || (rc = ox_get_ints(c, nd, "dilation", sd, 0, 1, dil)) ||
      (rc = ox_get_bool(c, nd, "ceil_mode", 0, &ceil_mode)))
    return rc;
  for (int i = 0; i < sd; i++) {
    if (k[i] < 1 || st[i] < 1 || dil[i] < 1 || pad[i] < 0 || 2 * pad[i] > k[i])
      return ox_fail(c, SER_EINVAL, "kernel, stride and dilation must be >= 1 and padding between 0 and half the kernel");
    if (avg && dil[i] != 1) return ox_fail(c, SER_EINVAL, "average pooling has no dilation (got %lld)", (long long)dil[i]);
    pads[i] = pads[i + sd] = pad[i];
  }
  const char *in[1] = {x->name};
  Onnx__NodeProto *n = ox_node(c, avg ? "AveragePool" : "MaxPool", 1, in, out);
  if (!n || ox_attr_ints(c, n, "kernel_shape", sd, k) || ox_attr_ints(c, n, "strides", sd, st) ||
      ox_attr_ints(c, n, "pads", 2 * sd, pads) || (!avg && ox_attr_ints(c, n, "dilations", sd, dil)) ||
      (avg && ox_attr_int(c, n, "count_include_pad", 1)) || (ceil_mode && ox_attr_int(c, n, "ceil_mode", 1)))
    return SER_ENOMEM;
  ox_dim d[SER_MAX_DIMS] = {x->dim[0], x->dim[1]};
  for (int i = 0; i < sd; i++) d[2 + i] = window_out(x->dim[2 + i], k[i], st[i], pad[i], dil[i], ceil_mode);
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_maxpool1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_pool(c, nd, 1, 0, x, out); }
static int emit_maxpool2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_pool(c, nd, 2, 0, x, out); }
static int emit_avgpool1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_pool(c, nd, 1, 1, x, out); }
static int emit_avgpool2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_pool(c, nd, 2, 1, x, out); }

/* Adaptive average pooling has no ONNX op. Axes pooled to 1 become a ReduceMean (their
 * size may be dynamic: the time axis), axes kept at their size are left alone, and an axis
 * of fixed size n pooled to m bins that divide it evenly is an AveragePool of kernel =
 * stride = n/m (PyTorch's bins are then exactly those windows). Anything else is refused. */
static int emit_adaptive(ox_ctx *c, const cJSON *nd, int sd, const ox_value *x, const char *out) {
  int rc = ox_need_rank(c, x, sd + 2, sd + 2);
  int64_t o[2];
  if (rc) return rc;
  const cJSON *oj = ox_field(nd, "output_size");
  if (cJSON_IsArray(oj) && cJSON_GetArraySize(oj) == sd) {
    for (int i = 0; i < sd; i++) {  /* null or 0 keeps that axis's size, as PyTorch's None */
      const cJSON *e = cJSON_GetArrayItem(oj, i);
      if (cJSON_IsNull(e)) o[i] = -1;
      else if ((rc = ox_whole(c, e, "output_size", &o[i]))) return rc;
      else if (o[i] == 0) o[i] = -1;
    }
  } else if ((rc = ox_get_ints(c, nd, "output_size", sd, 1, 1, o))) {
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
    d[2 + i] = ox_dim_of(o[i]);
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
    if (ox_unary(c, "Identity", x, out)) return SER_ENOMEM;
    return 0;
  }
  return ox_put(c, out, sd + 2, d) ? 0 : SER_ENOMEM;
}

static int emit_adaptive1d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_adaptive(c, nd, 1, x, out); }
static int emit_adaptive2d(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) { return emit_adaptive(c, nd, 2, x, out); }

/* Linear: Gemm (transB) on a matrix; on higher ranks MatMul with the transposed weight
 * (stored as "<weight>.T") and an Add of the bias, since Gemm takes 2-D inputs only. */
static int emit_linear(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  int rc;
  const char *wn, *bn;
  ser_tensor *b;
  if ((rc = ox_need_rank(c, x, 1, SER_MAX_DIMS))) return rc;
  wn = ox_get_str(c, nd, "weight", 1, &rc);
  if (rc) return rc;
  ser_tensor *w = ox_tensor(c, wn, "weight");
  if (!w) return SER_EINVAL;
  if (w->ndim != 2) return ox_fail(c, SER_EINVAL, "weight '%s' is %s; expected [out, in]", wn, SER_SHAPE(w));
  const ox_dim last = x->dim[x->rank - 1];
  if (last.v >= 0 && last.v != w->shape[1])
    return ox_fail(c, SER_EINVAL, "input '%s' is %s with %lld features; weight '%s' %s expects %lld", x->name, ox_shape_str(x),
                   (long long)last.v, wn, SER_SHAPE(w), (long long)w->shape[1]);
  if ((rc = ox_weight(c, nd, "bias", 0, 1, &b, &bn))) return rc;
  if (b && b->shape[0] != w->shape[0])
    return ox_fail(c, SER_EINVAL, "bias '%s' has %lld entries; weight '%s' has %lld outputs", bn, (long long)b->shape[0], wn, (long long)w->shape[0]);
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < x->rank; i++) d[i] = x->dim[i];
  d[x->rank - 1] = ox_dim_of(w->shape[0]);
  if (x->rank == 2) {
    if ((rc = ox_weight(c, nd, "weight", 1, 2, &w, &wn))) return rc;
    const char *in[3] = {x->name, wn, bn};
    Onnx__NodeProto *n = ox_node(c, "Gemm", b ? 3 : 2, in, out);
    if (!n || ox_attr_int(c, n, "transB", 1)) return SER_ENOMEM;
  } else {
    char tn[512];
    snprintf(tn, sizeof tn, "%s.T", wn);
    if (!ox_has_init(c, tn)) {
      float *v = ox_values_of(c, w);
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
      float *v = ox_values_of(c, t);
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
  int rc = ox_need_rank(c, x, 3, 3);
  int64_t H, layers;
  int bidir, batch_first, bias;
  const char *prefix = rc ? NULL : ox_get_str(c, nd, "prefix", 1, &rc);
  if (rc || (rc = ox_get_int(c, nd, "hidden", 1, 0, &H)) || (rc = ox_get_int(c, nd, "layers", 0, 1, &layers)) ||
      (rc = ox_get_bool(c, nd, "bidirectional", 0, &bidir)) || (rc = ox_get_bool(c, nd, "batch_first", 1, &batch_first)) ||
      (rc = ox_get_bool(c, nd, "bias", 1, &bias)))
    return rc;
  if (H < 1 || layers < 1 || layers > 64) return ox_fail(c, SER_EINVAL, "hidden must be >= 1 and layers 1 to 64, got %lld and %lld", (long long)H, (long long)layers);
  const int dirs = bidir ? 2 : 1;
  char wname[512];
  snprintf(wname, sizeof wname, "%s.weight_ih_l0", prefix);
  ser_tensor *w0 = ox_tensor(c, wname, "prefix");
  if (!w0) return SER_EINVAL;
  if (w0->ndim != 2) return ox_fail(c, SER_EINVAL, "'%s' is %s; expected [4*hidden, input]", wname, SER_SHAPE(w0));
  /* before any buffer is sized by hidden: the weights say how large it can be (a division,
   * so that a huge hidden cannot overflow) */
  if (w0->shape[0] % 4 != 0 || w0->shape[0] / 4 != H)
    return ox_fail(c, SER_EINVAL, "'%s' is %s; hidden %lld needs [4*hidden, input]", wname, SER_SHAPE(w0), (long long)H);
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
    if (!ox_has_init(c, wn) && (rc = lstm_layer_weights(c, prefix, l, dirs, H, I, bias, wn, rn, bn))) return rc;
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
  ox_dim d[3] = {batch_first ? B : T, batch_first ? T : B, ox_dim_of(dirs * H)};
  return ox_put(c, out, 3, d) ? 0 : SER_ENOMEM;
}

const ox_op ox_ops_nn[] = {
  {"conv1d", 1, emit_conv1d},
  {"conv2d", 1, emit_conv2d},
  {"batchnorm", 1, emit_batchnorm},
  {"relu", 1, emit_relu},
  {"log", 1, emit_log},
  {"gelu", 1, emit_gelu},
  {"maxpool1d", 1, emit_maxpool1d},
  {"avgpool1d", 1, emit_avgpool1d},
  {"avgpool2d", 1, emit_avgpool2d},
  {"maxpool2d", 1, emit_maxpool2d},
  {"adaptive_avgpool1d", 1, emit_adaptive1d},
  {"adaptive_avgpool2d", 1, emit_adaptive2d},
  {"linear", 1, emit_linear},
  {"lstm", 1, emit_lstm},
  {NULL, 0, NULL},
};
