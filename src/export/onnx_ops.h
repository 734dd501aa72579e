/* The op table of the ONNX exporter: one emitter per op of the graph description
 * (docs/graph.md), in onnx_ops_nn.c, onnx_ops_tensor.c and onnx_whisper.c; onnx_ops.c looks
 * them up. Not a public header. */
#ifndef SER_EXPORT_ONNX_OPS_H
#define SER_EXPORT_ONNX_OPS_H

#include <cjson/cJSON.h>

#include "onnx_proto.h"

/* x: the node's inputs (copies of the tracked values, n_in of them); out: its output name.
 * Appends the ONNX nodes and initializers and records out's shape; 0 or SER_E* with the
 * message naming the node (ox_fail). */
typedef int (*ox_emit_fn)(ox_ctx *c, const cJSON *node, const ox_value *x, int n_in, const char *out);

typedef struct {
  const char *name;
  int n_in;          /* inputs the op takes; -1: one or more */
  ox_emit_fn emit;
} ox_op;

/* Helpers shared by the emitter files: value names in, one node (or a few) out
 * (onnx_attr.c; ox_gelu in onnx_ops_nn.c). */
int ox_binary(ox_ctx *c, const char *op_type, const char *a, const char *b, const char *out);
int ox_reshape_to(ox_ctx *c, const char *in_name, int k, const int64_t *shape, const char *out);
int ox_reduce_mean(ox_ctx *c, const char *in_name, int k, const int64_t *axes, int keep, const char *out);
int ox_gelu(ox_ctx *c, const char *x, int tanh_form, const char *out);

/* The emitters by file, each list ending with a NULL name. */
extern const ox_op ox_ops_nn[];      /* onnx_ops_nn.c: conv, batchnorm, activations, pools, linear, lstm */
extern const ox_op ox_ops_tensor[];  /* onnx_ops_tensor.c: shapes, reductions, arithmetic */

/* whisper_encoder (onnx_whisper.c): the frozen Whisper encoder and its pooling as ONNX ops. */
int ox_emit_whisper(ox_ctx *c, const cJSON *node, const ox_value *x, int n_in, const char *out);

const ox_op *ox_find_op(const char *name);  /* NULL for an op the exporter does not know */
const char *ox_op_names(void);              /* "conv1d, conv2d, ..." for messages */

#endif
