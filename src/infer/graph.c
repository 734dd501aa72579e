/* The graph description's reader (docs/graph.md): JSON -> a checked plan of core ops. */
#include "infer/graph.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

static const char *const op_names[] = {
  "conv1d", "conv2d", "batchnorm", "relu", "gelu", "maxpool1d", "maxpool2d", "adaptive_avgpool1d",
  "adaptive_avgpool2d", "flatten", "linear", "lstm", "transpose", "reshape", "mean", "std", "concat",
  "layernorm", "softmax", "param", "add", "sub", "mul", "div", "sum", "slice", "whisper_encoder",
  "avgpool1d", "avgpool2d", "log",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == SER_G_OP_COUNT, "one name per graph op");

const char *ser_graph_op_name(ser_graph_op op) { return op < SER_G_OP_COUNT ? op_names[op] : "?"; }

/* Bounds on what a graph may ask for: larger values are a damaged or hostile file. */
#define MAX_NODES 4096
#define MAX_CLASSES 4096
#define MAX_SMALL 1000000

typedef struct parser {
  ser_graph *g;
  ser_graph_lookup_fn lookup;
  void *ctx;
  int node;          /* index of the node being read, for messages */
  const char *opname;
} parser;

static int fail(parser *p, const char *fmt, const char *a, const char *b) {
  return ser_error(SER_EFORMAT, "graph node %d (%s): %s%s%s", p->node, p->opname ? p->opname : "?", a, fmt, b);
}

static char *dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* An integer attribute within [lo, hi]; def when absent (required when def is INT_MIN-ish). */
#define REQUIRED (-2147483647 - 1)
static int get_int(parser *p, const cJSON *n, const char *key, int def, int lo, int hi, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, key);
  if (!v) {
    if (def == REQUIRED)
      return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s' is missing (an integer)", p->node, p->opname, key);
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
    return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s' must be a whole number in %d..%d", p->node,
                     p->opname, key, lo, hi);
  *out = (int)v->valuedouble;
  return 0;
}

static int get_bool(parser *p, const cJSON *n, const char *key, int def, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, key);
  if (!v) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsBool(v))
    return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s' must be true or false", p->node, p->opname, key);
  *out = cJSON_IsTrue(v);
  return 0;
}

static int get_double(parser *p, const cJSON *n, const char *key, double def, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, key);
  if (!v) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
    return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s' must be a finite number >= 0", p->node, p->opname,
                     key);
  *out = v->valuedouble;
  return 0;
}

/* A list of whole numbers in [lo, hi], of length in [min_n, max_n]. */
static int get_list(parser *p, const cJSON *n, const char *key, int min_n, int max_n, int64_t lo, int64_t hi,
                    int64_t *out, int *count) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, key);
  int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
  if (len < min_n || len > max_n)
    return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s' must be a list of %d to %d whole numbers", p->node,
                     p->opname, key, min_n, max_n);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < (double)lo ||
        e->valuedouble > (double)hi)
      return ser_error(SER_EFORMAT, "graph node %d (%s): attribute '%s'[%d] must be a whole number in %lld..%lld",
                       p->node, p->opname, key, i, (long long)lo, (long long)hi);
    out[i++] = (int64_t)e->valuedouble;
  }
  *count = len;
  return 0;
}

/* A per-spatial-dim list of nd positive (or >= 0) values into k[2]. */
static int get_pair(parser *p, const cJSON *n, const char *key, int nd, int lo, int def, int *k) {
  if (!cJSON_GetObjectItemCaseSensitive(n, key) && def >= 0) {
    k[0] = k[1] = def;
    return 0;
  }
  int64_t v[2];
  int c;
  int rc = get_list(p, n, key, nd, nd, lo, 65536, v, &c);
  if (rc < 0) return rc;
  k[0] = (int)v[0];
  k[1] = nd == 2 ? (int)v[1] : 1;
  return 0;
}

/* A tensor attribute: the name of a checkpoint tensor of ndim dims (ndim 0: any). Optional
 * tensors (required 0) may be absent or JSON null; *t is then NULL. */
static int get_tensor(parser *p, const cJSON *n, const char *key, int ndim, int required, ser_tensor **t) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, key);
  *t = NULL;
  if (!v || cJSON_IsNull(v)) {
    if (!required) return 0;
    return ser_error(SER_EFORMAT, "graph node %d (%s): tensor attribute '%s' is missing (a state_dict name)", p->node,
                     p->opname, key);
  }
  if (!cJSON_IsString(v))
    return ser_error(SER_EFORMAT, "graph node %d (%s): tensor attribute '%s' must be a state_dict name (a string)",
                     p->node, p->opname, key);
  ser_tensor *x = p->lookup(p->ctx, v->valuestring);
  if (!x)
    return ser_error(SER_EFORMAT, "graph node %d (%s): %s names tensor '%s', which the checkpoint does not hold",
                     p->node, p->opname, key, v->valuestring);
  if (ndim && x->ndim != ndim)
    return ser_error(SER_EFORMAT, "graph node %d (%s): tensor '%s' (%s) is %s; expected %d dims", p->node, p->opname, key,
                     v->valuestring, SER_SHAPE(x), ndim);
  *t = x;
  return 0;
}

static int expect_len(parser *p, const ser_tensor *t, const char *what, int64_t n) {
  if (t && (t->ndim != 1 || t->shape[0] != n))
    return ser_error(SER_EFORMAT, "graph node %d (%s): %s is %s; expected [%lld]", p->node, p->opname, what, SER_SHAPE(t),
                     (long long)n);
  return 0;
}

static int alloc_tensors(ser_graph_node *nd, int n) {
  nd->t = calloc((size_t)n, sizeof *nd->t);
  nd->n_t = n;
  return nd->t ? 0 : ser_error(SER_ENOMEM, "graph: out of memory");
}

/* A dims list -> bit mask. */
static int get_dims(parser *p, const cJSON *n, ser_graph_node *nd) {
  int64_t v[SER_MAX_DIMS];
  int c;
  int rc = get_list(p, n, "dims", 1, SER_MAX_DIMS, 0, SER_MAX_DIMS - 1, v, &c);
  if (rc < 0) return rc;
  nd->dims = 0;
  for (int i = 0; i < c; i++) nd->dims |= 1u << v[i];
  return get_bool(p, n, "keepdim", 0, &nd->keepdim);
}

static int parse_op_attrs(parser *p, const cJSON *n, ser_graph_node *nd) {
  int rc = 0;
  ser_tensor **t;
  switch (nd->op) {
    case SER_G_CONV1D:
    case SER_G_CONV2D: {
      int sp = nd->op == SER_G_CONV2D ? 2 : 1, groups;
      if ((rc = alloc_tensors(nd, 2)) < 0) return rc;
      t = nd->t;
      if ((rc = get_tensor(p, n, "weight", sp + 2, 1, &t[0])) < 0 || (rc = get_tensor(p, n, "bias", 1, 0, &t[1])) < 0 ||
          (rc = expect_len(p, t[1], "bias", t[0]->shape[0])) < 0 || (rc = get_pair(p, n, "stride", sp, 1, 1, nd->k[0])) < 0 ||
          (rc = get_pair(p, n, "padding", sp, 0, 0, nd->k[1])) < 0 ||
          (rc = get_pair(p, n, "dilation", sp, 1, 1, nd->k[2])) < 0 || (rc = get_int(p, n, "groups", 1, 1, 1, &groups)) < 0)
        return rc;
      return 0;
    }
    case SER_G_BATCHNORM: {
      static const char *const keys[] = {"weight", "bias", "running_mean", "running_var"};
      if ((rc = alloc_tensors(nd, 4)) < 0) return rc;
      for (int i = 0; i < 4; i++)
        if ((rc = get_tensor(p, n, keys[i], 1, 1, &nd->t[i])) < 0 ||
            (rc = expect_len(p, nd->t[i], keys[i], nd->t[0]->shape[0])) < 0)
          return rc;
      return get_double(p, n, "eps", 1e-5, &nd->eps);
    }
    case SER_G_LAYERNORM:
      if ((rc = alloc_tensors(nd, 2)) < 0) return rc;
      if ((rc = get_tensor(p, n, "weight", 1, 1, &nd->t[0])) < 0 || (rc = get_tensor(p, n, "bias", 1, 1, &nd->t[1])) < 0 ||
          (rc = expect_len(p, nd->t[1], "bias", nd->t[0]->shape[0])) < 0)
        return rc;
      return get_double(p, n, "eps", 1e-5, &nd->eps);
    case SER_G_LINEAR:
      if ((rc = alloc_tensors(nd, 2)) < 0) return rc;
      if ((rc = get_tensor(p, n, "weight", 2, 1, &nd->t[0])) < 0 || (rc = get_tensor(p, n, "bias", 1, 0, &nd->t[1])) < 0)
        return rc;
      return expect_len(p, nd->t[1], "bias", nd->t[0]->shape[0]);
    case SER_G_MAXPOOL1D:
    case SER_G_MAXPOOL2D:
    case SER_G_AVGPOOL1D:
    case SER_G_AVGPOOL2D: {
      int sp = nd->op == SER_G_MAXPOOL2D || nd->op == SER_G_AVGPOOL2D ? 2 : 1;
      if ((rc = get_pair(p, n, "kernel", sp, 1, -1, nd->k[0])) < 0) return rc;
      if ((rc = get_pair(p, n, "stride", sp, 1, -1, nd->k[1])) < 0) return rc;
      return get_pair(p, n, "padding", sp, 0, 0, nd->k[2]);
    }
    case SER_G_AAPOOL1D:
    case SER_G_AAPOOL2D: {
      int sp = nd->op == SER_G_AAPOOL2D ? 2 : 1;   /* 0 keeps that axis (run.c) */
      return get_list(p, n, "output_size", sp, sp, 0, MAX_SMALL, nd->shape, &nd->nd);
    }
    case SER_G_FLATTEN:
      return get_int(p, n, "start_dim", REQUIRED, 0, SER_MAX_DIMS - 1, &nd->start_dim);
    case SER_G_LOG:
      return get_double(p, n, "eps", 0, &nd->eps);
    case SER_G_LSTM: {
      const cJSON *pre = cJSON_GetObjectItemCaseSensitive(n, "prefix");
      int in, hid, bf;
      if (!cJSON_IsString(pre)) return fail(p, "'prefix' must be a string (the LSTM's state_dict prefix)", "", "");
      if ((rc = get_int(p, n, "input_size", REQUIRED, 1, MAX_SMALL, &in)) < 0 ||
          (rc = get_int(p, n, "hidden", REQUIRED, 1, MAX_SMALL, &hid)) < 0 ||
          (rc = get_int(p, n, "layers", 1, 1, 64, &nd->lstm_layers)) < 0 ||
          (rc = get_bool(p, n, "bidirectional", 0, &nd->lstm_dirs)) < 0 ||
          (rc = get_bool(p, n, "bias", 1, &nd->lstm_bias)) < 0 || (rc = get_bool(p, n, "batch_first", 1, &bf)) < 0)
        return rc;
      if (!bf) return fail(p, "batch_first = false is not supported (the models run [B, T, F])", "", "");
      nd->lstm_dirs += 1;
      nd->lstm_in = in;
      nd->lstm_hidden = hid;
      int per = nd->lstm_bias ? 4 : 2, count = nd->lstm_layers * nd->lstm_dirs * per;
      if ((rc = alloc_tensors(nd, count)) < 0) return rc;
      static const char *const kinds[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
      int i = 0;
      for (int l = 0; l < nd->lstm_layers; l++)
        for (int d = 0; d < nd->lstm_dirs; d++)
          for (int w = 0; w < per; w++, i++) {
            char name[512];
            snprintf(name, sizeof name, "%s.%s_l%d%s", pre->valuestring, kinds[w], l, d ? "_reverse" : "");
            nd->t[i] = p->lookup(p->ctx, name);
            int64_t rows = 4 * (int64_t)hid, cols = w == 0 ? (l == 0 ? in : (int64_t)hid * nd->lstm_dirs) : hid;
            const ser_tensor *x = nd->t[i];
            if (!x)
              return ser_error(SER_EFORMAT, "graph node %d (lstm): the checkpoint holds no tensor '%s'", p->node, name);
            if (w < 2 && (x->ndim != 2 || x->shape[0] != rows || x->shape[1] != cols))
              return ser_error(SER_EFORMAT, "graph node %d (lstm): tensor '%s' is %s; expected [%lld,%lld]", p->node, name,
                               SER_SHAPE(x), (long long)rows, (long long)cols);
            if (w >= 2 && (x->ndim != 1 || x->shape[0] != rows))
              return ser_error(SER_EFORMAT, "graph node %d (lstm): tensor '%s' is %s; expected [%lld]", p->node, name,
                               SER_SHAPE(x), (long long)rows);
          }
      return 0;
    }
    case SER_G_TRANSPOSE: {
      int64_t v[SER_MAX_DIMS];
      unsigned seen = 0;
      if ((rc = get_list(p, n, "perm", 1, SER_MAX_DIMS, 0, SER_MAX_DIMS - 1, v, &nd->nd)) < 0) return rc;
      for (int i = 0; i < nd->nd; i++) {
        if (v[i] >= nd->nd || (seen & (1u << v[i]))) return fail(p, "'perm' is not a permutation of 0..n-1", "", "");
        seen |= 1u << v[i];
        nd->perm[i] = (int)v[i];
      }
      return 0;
    }
    case SER_G_RESHAPE: {
      int infer = 0;
      if ((rc = get_list(p, n, "shape", 1, SER_MAX_DIMS, -1, INT32_MAX, nd->shape, &nd->nd)) < 0) return rc;
      for (int i = 0; i < nd->nd; i++) infer += nd->shape[i] == -1;
      return infer > 1 ? fail(p, "'shape' has more than one -1", "", "") : 0;
    }
    case SER_G_MEAN:
    case SER_G_SUM:
      return get_dims(p, n, nd);
    case SER_G_STD:
      if ((rc = get_dims(p, n, nd)) < 0 || (rc = get_bool(p, n, "unbiased", 1, &nd->unbiased)) < 0) return rc;
      return get_double(p, n, "eps", 0, &nd->eps);
    case SER_G_CONCAT:
    case SER_G_SOFTMAX:
      return get_int(p, n, "axis", REQUIRED, 0, SER_MAX_DIMS - 1, &nd->axis);
    case SER_G_SLICE: {
      int start, length;
      if ((rc = get_int(p, n, "axis", REQUIRED, 0, SER_MAX_DIMS - 1, &nd->axis)) < 0 ||
          (rc = get_int(p, n, "start", REQUIRED, 0, INT32_MAX, &start)) < 0 ||
          (rc = get_int(p, n, "length", REQUIRED, 1, INT32_MAX, &length)) < 0)
        return rc;
      nd->start = start;
      nd->length = length;
      return 0;
    }
    case SER_G_PARAM: {
      int64_t numel = 1;
      if ((rc = alloc_tensors(nd, 1)) < 0 || (rc = get_tensor(p, n, "tensor", 0, 1, &nd->t[0])) < 0 ||
          (rc = get_list(p, n, "shape", 1, SER_MAX_DIMS, 1, INT32_MAX, nd->shape, &nd->nd)) < 0)
        return rc;
      for (int i = 0; i < nd->nd; i++) numel *= nd->shape[i];
      if (numel != ser_tensor_numel(nd->t[0]))
        return ser_error(SER_EFORMAT, "graph node %d (param): tensor %s has %lld values; 'shape' asks for %lld", p->node,
                         SER_SHAPE(nd->t[0]), (long long)ser_tensor_numel(nd->t[0]), (long long)numel);
      return 0;
    }
    case SER_G_WHISPER: {
      ser_graph *g = p->g;
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(n, "encoder"), *path, *sha, *pool;
      path = cJSON_GetObjectItemCaseSensitive(e, "path");
      sha = cJSON_GetObjectItemCaseSensitive(e, "sha256");
      pool = cJSON_GetObjectItemCaseSensitive(n, "pooling");
      if (!cJSON_IsObject(e) || !cJSON_IsString(path) || !cJSON_IsString(sha) || strlen(sha->valuestring) != 64)
        return fail(p, "'encoder' must be {path = folder, sha256 = 64 hex digits, layers, d_model, n_mels}", "", "");
      if (!cJSON_IsString(pool) || strcmp(pool->valuestring, "mean_std"))
        return fail(p, "'pooling' must be \"mean_std\"", "", "");
      if (g->enc_path) return fail(p, "a graph may hold one whisper_encoder node", "", "");
      parser q = *p;
      if ((rc = get_int(&q, e, "layers", REQUIRED, 1, 1024, &g->enc_layers)) < 0 ||
          (rc = get_int(&q, e, "d_model", REQUIRED, 1, 65536, &g->enc_d_model)) < 0 ||
          (rc = get_int(&q, e, "n_mels", REQUIRED, 1, 512, &g->enc_n_mels)) < 0)
        return rc;
      g->enc_path = dup(path->valuestring);
      g->enc_sha256 = dup(sha->valuestring);
      return g->enc_path && g->enc_sha256 ? 0 : ser_error(SER_ENOMEM, "graph: out of memory");
    }
    default:
      return 0;
  }
}

/* Inputs each op takes (-1: two or more). */
static int arity(ser_graph_op op) {
  switch (op) {
    case SER_G_PARAM: return 0;
    case SER_G_ADD: case SER_G_SUB: case SER_G_MUL: case SER_G_DIV: return 2;
    case SER_G_CONCAT: return -1;
    default: return 1;
  }
}

static int value_index(const ser_graph *g, const char *name) {
  for (int i = 0; i < g->n_values; i++)
    if (!strcmp(g->values[i], name)) return i;
  return -1;
}

static int parse_node(parser *p, const cJSON *n, ser_graph_node *nd) {
  ser_graph *g = p->g;
  p->opname = NULL;
  if (!cJSON_IsObject(n)) return ser_error(SER_EFORMAT, "graph node %d is not an object", p->node);
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(n, "op");
  if (!cJSON_IsString(op)) return ser_error(SER_EFORMAT, "graph node %d has no 'op' (a string)", p->node);
  int k = 0;
  while (k < SER_G_OP_COUNT && strcmp(op_names[k], op->valuestring)) k++;
  if (k == SER_G_OP_COUNT)
    return ser_error(SER_EUNSUPPORTED, "graph node %d: unknown op '%.64s' (this reader knows the ops of docs/graph.md, "
                     "version 1)", p->node, op->valuestring);
  nd->op = (ser_graph_op)k;
  p->opname = op_names[k];
  const cJSON *ins = cJSON_GetObjectItemCaseSensitive(n, "inputs"), *e;
  int want = arity(nd->op), have = cJSON_IsArray(ins) ? cJSON_GetArraySize(ins) : (ins ? -1 : 0);
  /* an empty Lua table is written as {}: a param node's inputs may be an empty object */
  if (!cJSON_IsArray(ins) && cJSON_IsObject(ins) && !ins->child) have = 0;
  if (have < 0 || (want >= 0 && have != want) || (want < 0 && (have < 2 || have > SER_GRAPH_MAX_INPUTS)))
    return ser_error(SER_EFORMAT, "graph node %d (%s): 'inputs' must list %s value name%s, got %d", p->node, p->opname,
                     want == 0 ? "no" : want == 1 ? "one" : want == 2 ? "two" : "2 to 8", want == 1 ? "" : "s", have);
  if (cJSON_IsArray(ins)) cJSON_ArrayForEach(e, ins) {
      int v = cJSON_IsString(e) ? value_index(g, e->valuestring) : -1;
      if (v < 0)
        return ser_error(SER_EFORMAT, "graph node %d (%s): input %s is not a value defined by an earlier node or \"input\"",
                         p->node, p->opname, cJSON_IsString(e) ? e->valuestring : "(not a string)");
      nd->in[nd->n_in++] = v;
    }
  const cJSON *out = cJSON_GetObjectItemCaseSensitive(n, "output");
  if (!cJSON_IsString(out) || !out->valuestring[0])
    return ser_error(SER_EFORMAT, "graph node %d (%s): 'output' must be a value name", p->node, p->opname);
  if (value_index(g, out->valuestring) >= 0)
    return ser_error(SER_EFORMAT, "graph node %d (%s): output '%s' is defined twice", p->node, p->opname, out->valuestring);
  int rc = parse_op_attrs(p, n, nd);
  if (rc < 0) return rc;
  if (!(g->values[g->n_values] = dup(out->valuestring))) return ser_error(SER_ENOMEM, "graph: out of memory");
  nd->out = g->n_values++;
  return 0;
}

int ser_graph_parse(ser_graph **out, const char *json, ser_graph_lookup_fn lookup, void *ctx) {
  *out = NULL;
  cJSON *root = cJSON_Parse(json);
  if (!root) return ser_error(SER_EFORMAT, "the graph is not valid JSON (near byte %ld)",
                              (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0));
  int rc = 0;
  ser_graph *g = calloc(1, sizeof *g);
  parser p = {g, lookup, ctx, -1, NULL};
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
  const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
  const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
  const cJSON *outv = cJSON_GetObjectItemCaseSensitive(root, "output"), *e;
  if (!g) {
    rc = ser_error(SER_ENOMEM, "graph: out of memory");
  } else if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "serlua-graph")) {
    rc = ser_error(SER_EFORMAT, "the graph is not a serlua-graph description (its 'format' must be \"serlua-graph\")");
  } else if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
    rc = ser_error(SER_EUNSUPPORTED, "the graph has version %g; this reader knows version 1",
                   cJSON_IsNumber(ver) ? ver->valuedouble : -1.0);
  } else if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 1 || cJSON_GetArraySize(nodes) > MAX_NODES) {
    rc = ser_error(SER_EFORMAT, "the graph's 'nodes' must be a list of 1 to %d nodes", MAX_NODES);
  } else if (!cJSON_IsArray(classes) || cJSON_GetArraySize(classes) < 2 || cJSON_GetArraySize(classes) > MAX_CLASSES) {
    rc = ser_error(SER_EFORMAT, "the graph's 'classes' must be a list of 2 to %d class names", MAX_CLASSES);
  } else if (!cJSON_IsString(outv)) {
    rc = ser_error(SER_EFORMAT, "the graph's 'output' must name a value");
  }
  if (rc == 0) {
    int nn = cJSON_GetArraySize(nodes), nc = cJSON_GetArraySize(classes);
    g->nodes = calloc((size_t)nn, sizeof *g->nodes);
    g->values = calloc((size_t)nn + 1, sizeof *g->values);
    g->classes = calloc((size_t)nc, sizeof *g->classes);
    if (!g->nodes || !g->values || !g->classes || !(g->values[0] = dup("input"))) rc = ser_error(SER_ENOMEM, "graph: out of memory");
    if (rc == 0) g->n_values = 1;
    cJSON_ArrayForEach(e, classes) {
      if (rc < 0) break;
      if (!cJSON_IsString(e)) rc = ser_error(SER_EFORMAT, "the graph's class %d is not a string", g->n_classes);
      else if (!(g->classes[g->n_classes++] = dup(e->valuestring))) rc = ser_error(SER_ENOMEM, "graph: out of memory");
    }
    cJSON_ArrayForEach(e, nodes) {
      if (rc < 0) break;
      p.node = g->n_nodes;
      rc = parse_node(&p, e, &g->nodes[g->n_nodes]);
      g->n_nodes++;
    }
    if (rc == 0 && (g->output = value_index(g, outv->valuestring)) <= 0)
      rc = ser_error(SER_EFORMAT, "the graph's output '%s' is not a value any node defines", outv->valuestring);
  }
  cJSON_Delete(root);
  if (rc < 0) {
    ser_graph_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void ser_graph_free(ser_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].t);
  for (int i = 0; i < g->n_values; i++) free(g->values[i]);
  for (int i = 0; i < g->n_classes; i++) free(g->classes[i]);
  free(g->nodes);
  free(g->values);
  free(g->classes);
  free(g->enc_path);
  free(g->enc_sha256);
  free(g);
}
