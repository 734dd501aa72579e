/* The ONNX builder's arena, node / attribute / initializer constructors and value table
 * (see onnx_proto.h). Every message is a protobuf-c struct initialised with its INIT macro;
 * the arena owns all of them and their arrays, so packing reads them and ox_free drops them. */
#include "onnx_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct ox_block {
  ox_block *next;
  max_align_t pad[];
};

void *ox_alloc(ox_ctx *c, size_t bytes) {
  ox_block *b = calloc(1, sizeof(ox_block) + (bytes ? bytes : 1));
  if (!b) {
    ser_error(SER_ENOMEM, "onnx: out of memory (%zu bytes)", bytes);
    return NULL;
  }
  b->next = c->arena;
  c->arena = b;
  return b->pad;
}

char *ox_strdup(ox_ctx *c, const char *s) {
  const size_t n = strlen(s) + 1;
  char *d = ox_alloc(c, n);
  if (d) memcpy(d, s, n);
  return d;
}

void ox_free(ox_ctx *c) {
  for (ox_block *b = c->arena, *nx; b; b = nx) {
    nx = b->next;
    free(b);
  }
  c->arena = NULL;
  free(c->nodes);
  free(c->inits);
  free(c->values);
  c->nodes = NULL;
  c->inits = NULL;
  c->values = NULL;
}

int ox_fail(ox_ctx *c, int code, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->op) return ser_error(code, "onnx: node %d (%s): %s", c->node_index, c->op, msg);
  return ser_error(code, "onnx: %s", msg);
}

const char *ox_shape_str(const ox_value *v) {
  static _Thread_local char ring[4][160];
  static _Thread_local int k;
  char *s = ring[k++ & 3];
  size_t at = 0;
  s[at++] = '[';
  for (int i = 0; i < v->rank && at < 140; i++) {
    if (i) s[at++] = ',';
    if (v->dim[i].v >= 0)
      at += (size_t)snprintf(s + at, 160 - at, "%lld", (long long)v->dim[i].v);
    else
      at += (size_t)snprintf(s + at, 160 - at, "%s", v->dim[i].param ? v->dim[i].param : "?");
  }
  snprintf(s + at, 160 - at, "]");
  return s;
}

/* Grows an array of pointers by one slot; 0 or SER_ENOMEM. */
static int grow(void ***arr, size_t *n, size_t *cap) {
  if (*n < *cap) return 0;
  const size_t nc = *cap ? 2 * *cap : 32;
  void **p = realloc(*arr, nc * sizeof *p);
  if (!p) return ser_error(SER_ENOMEM, "onnx: out of memory");
  *arr = p;
  *cap = nc;
  return 0;
}

const char *ox_tmp(ox_ctx *c, const char *base, const char *tag) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s/%s%d", base, tag, c->n_tmp++);
  return ox_strdup(c, buf);
}

Onnx__NodeProto *ox_node(ox_ctx *c, const char *op_type, int n_in, const char *const *in, const char *out) {
  Onnx__NodeProto *n = ox_alloc(c, sizeof *n);
  char **ins = ox_alloc(c, (size_t)(n_in > 0 ? n_in : 1) * sizeof *ins);
  char **outs = ox_alloc(c, sizeof *outs);
  if (!n || !ins || !outs) return NULL;
  onnx__node_proto__init(n);
  for (int i = 0; i < n_in; i++)
    if (!(ins[i] = ox_strdup(c, in[i]))) return NULL;
  if (!(outs[0] = ox_strdup(c, out))) return NULL;
  n->n_input = (size_t)n_in;
  n->input = ins;
  n->n_output = 1;
  n->output = outs;
  n->op_type = ox_strdup(c, op_type);
  char name[64];
  snprintf(name, sizeof name, "%s_%zu", op_type, c->n_nodes);
  n->name = ox_strdup(c, name);
  if (!n->op_type || !n->name || grow((void ***)&c->nodes, &c->n_nodes, &c->cap_nodes)) return NULL;
  c->nodes[c->n_nodes++] = n;
  return n;
}

static Onnx__AttributeProto *attr_new(ox_ctx *c, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  Onnx__AttributeProto *a = ox_alloc(c, sizeof *a);
  Onnx__AttributeProto **list = ox_alloc(c, (n->n_attribute + 1) * sizeof *list);
  if (!a || !list) return NULL;
  onnx__attribute_proto__init(a);
  if (!(a->name = ox_strdup(c, name))) return NULL;
  a->has_type = 1;
  a->type = type;
  if (n->n_attribute) memcpy(list, n->attribute, n->n_attribute * sizeof *list);
  list[n->n_attribute++] = a;
  n->attribute = list;
  return a;
}

int ox_attr_int(ox_ctx *c, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = attr_new(c, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (!a) return SER_ENOMEM;
  a->has_i = 1;
  a->i = v;
  return 0;
}

int ox_attr_float(ox_ctx *c, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = attr_new(c, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (!a) return SER_ENOMEM;
  a->has_f = 1;
  a->f = v;
  return 0;
}

int ox_attr_ints(ox_ctx *c, Onnx__NodeProto *n, const char *name, int k, const int64_t *v) {
  Onnx__AttributeProto *a = attr_new(c, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  int64_t *d = ox_alloc(c, (size_t)(k > 0 ? k : 1) * sizeof *d);
  if (!a || !d) return SER_ENOMEM;
  if (k > 0) memcpy(d, v, (size_t)k * sizeof *d);
  a->n_ints = (size_t)k;
  a->ints = d;
  return 0;
}

int ox_attr_string(ox_ctx *c, Onnx__NodeProto *n, const char *name, const char *s) {
  Onnx__AttributeProto *a = attr_new(c, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  char *d = ox_strdup(c, s);
  if (!a || !d) return SER_ENOMEM;
  a->has_s = 1;
  a->s.data = (uint8_t *)d;
  a->s.len = strlen(d);
  return 0;
}

static Onnx__TensorProto *init_new(ox_ctx *c, const char *name, int rank, const int64_t *dims, int32_t type,
                                   const void *data, size_t bytes) {
  Onnx__TensorProto *t = ox_alloc(c, sizeof *t);
  int64_t *d = ox_alloc(c, (size_t)(rank > 0 ? rank : 1) * sizeof *d);
  uint8_t *raw = ox_alloc(c, bytes);
  if (!t || !d || !raw) return NULL;
  onnx__tensor_proto__init(t);
  if (rank > 0) memcpy(d, dims, (size_t)rank * sizeof *d);
  t->n_dims = (size_t)rank;
  t->dims = d;
  t->has_data_type = 1;
  t->data_type = type;
  if (!(t->name = ox_strdup(c, name))) return NULL;
  /* raw_data is little-endian by the ONNX spec; the core targets x86-64 (little-endian) */
  memcpy(raw, data, bytes);
  t->has_raw_data = 1;
  t->raw_data.data = raw;
  t->raw_data.len = bytes;
  if (grow((void ***)&c->inits, &c->n_inits, &c->cap_inits)) return NULL;
  c->inits[c->n_inits++] = t;
  return t;
}

static size_t count(int rank, const int64_t *dims) {
  size_t k = 1;
  for (int i = 0; i < rank; i++) k *= (size_t)dims[i];
  return k;
}

int ox_init_float(ox_ctx *c, const char *name, int rank, const int64_t *dims, const float *data) {
  return init_new(c, name, rank, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, data, count(rank, dims) * sizeof(float))
           ? 0
           : SER_ENOMEM;
}

int ox_init_int64(ox_ctx *c, const char *name, int rank, const int64_t *dims, const int64_t *data) {
  return init_new(c, name, rank, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, data, count(rank, dims) * sizeof(int64_t))
           ? 0
           : SER_ENOMEM;
}

const char *ox_scalar(ox_ctx *c, const char *base, float v) {
  const char *name = ox_tmp(c, base, "c");
  if (!name || ox_init_float(c, name, 0, NULL, &v)) return NULL;
  return name;
}

ser_tensor *ox_tensor(ox_ctx *c, const char *name, const char *attr) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->names[i], name) == 0) return c->tensors[i];
  ox_fail(c, SER_EINVAL, "%s names tensor '%s', which the checkpoint does not hold", attr, name);
  return NULL;
}

ox_value *ox_get(ox_ctx *c, const char *name) {
  for (int i = c->n_values - 1; i >= 0; i--)
    if (strcmp(c->values[i].name, name) == 0) return &c->values[i];
  ox_fail(c, SER_EINVAL, "input '%s' is not the graph's input nor the output of an earlier node", name);
  return NULL;
}

ox_value *ox_put(ox_ctx *c, const char *name, int rank, const ox_dim *dim) {
  if (c->n_values == c->cap_values) {
    const int nc = c->cap_values ? 2 * c->cap_values : 32;
    ox_value *p = realloc(c->values, (size_t)nc * sizeof *p);
    if (!p) {
      ser_error(SER_ENOMEM, "onnx: out of memory");
      return NULL;
    }
    c->values = p;
    c->cap_values = nc;
  }
  ox_value *v = &c->values[c->n_values];
  if (!(v->name = ox_strdup(c, name))) return NULL;
  v->rank = rank;
  for (int i = 0; i < rank; i++) v->dim[i] = dim[i];
  c->n_values++;
  return v;
}
