/* The ONNX builder's internals: one arena holds every protobuf-c message of a model being
 * built (freed at once, so an error halfway leaks nothing), the node and initializer lists,
 * and the values the description names with their shapes (tracked so that each op can check
 * its input and so the adaptive pools, flatten and reshape know the sizes ONNX needs).
 * Not a public header: src/export/onnx.h is. */
#ifndef SER_EXPORT_ONNX_PROTO_H
#define SER_EXPORT_ONNX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "onnx.pb-c.h"

typedef struct ox_block ox_block;

/* One dimension: a size (>= 0), or -1 when it is only known at run time; param names a
 * dynamic axis ("batch", "time") while it passes through unchanged, else NULL. */
typedef struct {
  int64_t v;
  const char *param;
} ox_dim;

typedef struct {
  const char *name;
  int rank;
  ox_dim dim[SER_MAX_DIMS];
} ox_value;

typedef struct {
  ox_block *arena;
  Onnx__NodeProto **nodes;
  size_t n_nodes, cap_nodes;
  Onnx__TensorProto **inits;
  size_t n_inits, cap_inits;
  ox_value *values;
  int n_values, cap_values;
  int n, n_tmp;
  const char *const *names;
  ser_tensor *const *tensors;
  /* the checkpoint's path (NULL when built from text): a relative encoder folder is also
   * looked for beside it */
  const char *ckpt_path;
  /* the second graph input, int64 [batch]: each clip's own log-mel frames at the start of a
   * padded Whisper window (the description's input.context), which the whisper_encoder
   * pools over; NULL for a model of one input */
  const char *frames;
  /* 1 for a speaker-normalised whisper model (input.speaker_norm): the whisper_encoder node's
   * pooled output is a second graph output, "pooled", and is normalised with two more graph
   * inputs, "speaker_shift" and "speaker_scale", before the nodes after it */
  int speaker;
  /* the node being emitted, for messages: index (0-based, as in the description) and op */
  int node_index;
  const char *op;
} ox_ctx;

/* Arena: zeroed memory that lives until ox_free. NULL (and the error set) when out of memory. */
void *ox_alloc(ox_ctx *c, size_t bytes);
char *ox_strdup(ox_ctx *c, const char *s);
void ox_free(ox_ctx *c);

/* A fresh value name "<base>/<tag><k>" for the helper values one op needs. */
const char *ox_tmp(ox_ctx *c, const char *base, const char *tag);

/* Appends a node op_type(inputs) -> outputs; NULL when out of memory. Attributes follow. */
Onnx__NodeProto *ox_node(ox_ctx *c, const char *op_type, int n_in, const char *const *in, const char *out);
int ox_attr_int(ox_ctx *c, Onnx__NodeProto *n, const char *name, int64_t v);
int ox_attr_float(ox_ctx *c, Onnx__NodeProto *n, const char *name, float v);
int ox_attr_ints(ox_ctx *c, Onnx__NodeProto *n, const char *name, int k, const int64_t *v);
int ox_attr_string(ox_ctx *c, Onnx__NodeProto *n, const char *name, const char *s);

/* Initializers (graph constants) from float or int64 data (copied). */
int ox_init_float(ox_ctx *c, const char *name, int rank, const int64_t *dims, const float *data);
int ox_init_int64(ox_ctx *c, const char *name, int rank, const int64_t *dims, const int64_t *data);
/* A float scalar constant (rank 0) under a fresh name; NULL when out of memory. */
const char *ox_scalar(ox_ctx *c, const char *base, float v);

/* state_dict tensor by name; NULL with the error set (naming the node) when absent. */
ser_tensor *ox_tensor(ox_ctx *c, const char *name, const char *attr);

/* Values named by the description (and helpers). ox_get: NULL + error when unknown. */
ox_value *ox_get(ox_ctx *c, const char *name);
ox_value *ox_put(ox_ctx *c, const char *name, int rank, const ox_dim *dim);

/* ser_error with "onnx: node <i> (<op>): " in front. */
int ox_fail(ox_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "[batch,1,64,time]" for messages (thread-local ring like ser_shape_str). */
const char *ox_shape_str(const ox_value *v);

#endif
