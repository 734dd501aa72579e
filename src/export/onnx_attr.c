/* What every ONNX emitter shares: reading a description node's attributes (whole numbers,
 * lists, flags, strings, axes) with messages naming the node and attribute, turning the
 * checkpoint's tensors into initializers under their state_dict names, rank checks, and the
 * one-node helpers (unary, binary, constant reshape, mean over axes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx_attr.h"
#include "onnx_ops.h"

/* ---- attributes of a description node ---------------------------------------------------- */

const cJSON *ox_field(const cJSON *nd, const char *key) { return cJSON_GetObjectItemCaseSensitive(nd, key); }

/* A whole number from JSON (a double holding an integer in int64 range), or fail. */
int ox_whole(ox_ctx *c, const cJSON *j, const char *key, int64_t *out) {
  if (!cJSON_IsNumber(j)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number", key);
  const double d = j->valuedouble;
  if (!(d == floor(d)) || fabs(d) > 9.0e15) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number, got %g", key, d);
  *out = (int64_t)d;
  return 0;
}

/* An int attribute (dflt when absent and !required). */
int ox_get_int(ox_ctx *c, const cJSON *nd, const char *key, int required, int64_t dflt, int64_t *out) {
  const cJSON *j = ox_field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    if (required) return ox_fail(c, SER_EINVAL, "missing attribute '%s' (a whole number)", key);
    *out = dflt;
    return 0;
  }
  return ox_whole(c, j, key, out);
}

/* k ints: a number (repeated k times) or an array of k (or 1) numbers; dflt when absent. */
int ox_get_ints(ox_ctx *c, const cJSON *nd, const char *key, int k, int required, int64_t dflt, int64_t *out) {
  const cJSON *j = ox_field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    if (required) return ox_fail(c, SER_EINVAL, "missing attribute '%s' (a whole number or a list of %d)", key, k);
    for (int i = 0; i < k; i++) out[i] = dflt;
    return 0;
  }
  if (cJSON_IsNumber(j)) {
    int rc = ox_whole(c, j, key, &out[0]);
    for (int i = 1; i < k && !rc; i++) out[i] = out[0];
    return rc;
  }
  const int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
  if (n != k && n != 1)
    return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number or a list of %d of them", key, k);
  for (int i = 0; i < k; i++) {
    int rc = ox_whole(c, cJSON_GetArrayItem(j, n == 1 ? 0 : i), key, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

/* A list of up to SER_MAX_DIMS ints (a single number counts as a list of one); *k its length. */
int ox_get_list(ox_ctx *c, const cJSON *nd, const char *key, int64_t *out, int *k) {
  const cJSON *j = ox_field(nd, key);
  if (cJSON_IsNumber(j)) {
    *k = 1;
    return ox_whole(c, j, key, &out[0]);
  }
  if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 || cJSON_GetArraySize(j) > SER_MAX_DIMS)
    return ox_fail(c, SER_EINVAL, "attribute '%s' must be a whole number or a list of 1 to %d of them", key, SER_MAX_DIMS);
  *k = cJSON_GetArraySize(j);
  for (int i = 0; i < *k; i++) {
    int rc = ox_whole(c, cJSON_GetArrayItem(j, i), key, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

int ox_get_num(ox_ctx *c, const cJSON *nd, const char *key, double dflt, double *out) {
  const cJSON *j = ox_field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be a finite number", key);
  *out = j->valuedouble;
  return 0;
}

int ox_get_bool(ox_ctx *c, const cJSON *nd, const char *key, int dflt, int *out) {
  const cJSON *j = ox_field(nd, key);
  if (!j || cJSON_IsNull(j)) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(j)) return ox_fail(c, SER_EINVAL, "attribute '%s' must be true or false", key);
  *out = cJSON_IsTrue(j);
  return 0;
}

/* A string attribute: NULL when absent (and !required, else fail with *rc set). */
const char *ox_get_str(ox_ctx *c, const cJSON *nd, const char *key, int required, int *rc) {
  const cJSON *j = ox_field(nd, key);
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
int ox_axis(ox_ctx *c, const char *key, int64_t a, int r, int64_t *out) {
  if (a < -r || a >= r) return ox_fail(c, SER_EINVAL, "%s %lld is out of range for a rank-%d input", key, (long long)a, r);
  *out = a < 0 ? a + r : a;
  return 0;
}

/* ---- weights ---------------------------------------------------------------------------- */

int ox_has_init(ox_ctx *c, const char *name) {
  for (size_t i = 0; i < c->n_inits; i++)
    if (strcmp(c->inits[i]->name, name) == 0) return 1;
  return 0;
}

/* A tensor's values, contiguous, in a malloc'd buffer (free it). */
float *ox_values_of(ox_ctx *c, const ser_tensor *t) {
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
int ox_weight(ox_ctx *c, const cJSON *nd, const char *attr, int required, int want_rank, ser_tensor **t,
                  const char **name) {
  int rc;
  *t = NULL;
  *name = ox_get_str(c, nd, attr, required, &rc);
  if (rc || !*name) return rc;
  if (!(*t = ox_tensor(c, *name, attr))) return SER_EINVAL;
  if (want_rank > 0 && (*t)->ndim != want_rank)
    return ox_fail(c, SER_EINVAL, "%s '%s' is %s; expected a rank-%d tensor", attr, *name, SER_SHAPE(*t), want_rank);
  if (ox_has_init(c, *name)) return 0;
  float *v = ox_values_of(c, *t);
  if (!v) return SER_ENOMEM;
  rc = ox_init_float(c, *name, (*t)->ndim, (*t)->shape, v);
  free(v);
  return rc;
}

/* A 1-D parameter of n entries (BatchNorm's and LayerNorm's); fails naming it otherwise. */
int ox_vector(ox_ctx *c, const cJSON *nd, const char *attr, int64_t n, const char **name) {
  ser_tensor *t;
  int rc = ox_weight(c, nd, attr, 1, 1, &t, name);
  if (!rc && t->shape[0] != n)
    rc = ox_fail(c, SER_EINVAL, "%s '%s' has %lld entries; the input has %lld channels", attr, *name,
                 (long long)t->shape[0], (long long)n);
  return rc;
}

const ox_dim OX_DYN = {-1, NULL};


int ox_need_rank(ox_ctx *c, const ox_value *x, int lo, int hi) {
  if (x->rank < lo || x->rank > hi) {
    if (lo == hi) return ox_fail(c, SER_EINVAL, "input '%s' is %s; expected rank %d", x->name, ox_shape_str(x), lo);
    return ox_fail(c, SER_EINVAL, "input '%s' is %s; expected rank %d to %d", x->name, ox_shape_str(x), lo, hi);
  }
  return 0;
}

int ox_unary(ox_ctx *c, const char *op_type, const ox_value *x, const char *out) {
  const char *in[1] = {x->name};
  if (!ox_node(c, op_type, 1, in, out)) return SER_ENOMEM;
  return ox_put(c, out, x->rank, x->dim) ? 0 : SER_ENOMEM;
}

int ox_binary(ox_ctx *c, const char *op_type, const char *a, const char *b, const char *out) {
  const char *in[2] = {a, b};
  return ox_node(c, op_type, 2, in, out) ? 0 : SER_ENOMEM;
}

/* A Reshape to a constant shape (0 = keep that axis, -1 = the rest). */
int ox_reshape_to(ox_ctx *c, const char *in_name, int k, const int64_t *shape, const char *out) {
  const char *sn = ox_tmp(c, out, "shape");
  const int64_t dims[1] = {k};
  if (!sn || ox_init_int64(c, sn, 1, dims, shape)) return SER_ENOMEM;
  const char *in[2] = {in_name, sn};
  return ox_node(c, "Reshape", 2, in, out) ? 0 : SER_ENOMEM;
}

int ox_reduce_mean(ox_ctx *c, const char *in_name, int k, const int64_t *axes, int keep, const char *out) {
  const char *in[1] = {in_name};
  Onnx__NodeProto *n = ox_node(c, "ReduceMean", 1, in, out);
  return (!n || ox_attr_ints(c, n, "axes", k, axes) || ox_attr_int(c, n, "keepdims", keep)) ? SER_ENOMEM : 0;
}

