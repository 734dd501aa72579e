/* The model graph description (docs/graph.md) as a plan of core ops: parsed from its JSON
 * text with cJSON, every node checked (op, inputs defined before use, attributes of the right
 * type and range, tensors present in the checkpoint with the shapes the op needs) before
 * anything runs. ser_graph_run executes the plan on the input value without autograd. */
#ifndef SER_INFER_GRAPH_H
#define SER_INFER_GRAPH_H
#include <stdint.h>
#include "core/tensor.h"

typedef enum {
  SER_G_CONV1D, SER_G_CONV2D, SER_G_BATCHNORM, SER_G_RELU, SER_G_GELU, SER_G_MAXPOOL1D, SER_G_MAXPOOL2D,
  SER_G_AAPOOL1D, SER_G_AAPOOL2D, SER_G_FLATTEN, SER_G_LINEAR, SER_G_LSTM, SER_G_TRANSPOSE, SER_G_RESHAPE,
  SER_G_MEAN, SER_G_STD, SER_G_CONCAT, SER_G_LAYERNORM, SER_G_SOFTMAX, SER_G_PARAM, SER_G_ADD, SER_G_SUB,
  SER_G_MUL, SER_G_DIV, SER_G_SUM, SER_G_SLICE, SER_G_WHISPER, SER_G_AVGPOOL1D, SER_G_AVGPOOL2D, SER_G_LOG,
  SER_G_OP_COUNT
} ser_graph_op;

/* The op's name in the format ("conv2d", ...). */
const char *ser_graph_op_name(ser_graph_op op);

/* Looks a tensor up by state_dict name (NULL: absent). */
typedef ser_tensor *(*ser_graph_lookup_fn)(void *ctx, const char *name);

#define SER_GRAPH_MAX_INPUTS 8
typedef struct ser_graph_node {
  ser_graph_op op;
  int n_in, in[SER_GRAPH_MAX_INPUTS], out;  /* value indices; value 0 is "input" */
  int n_t;
  ser_tensor **t;                   /* tensor attributes, borrowed from the checkpoint */
  int k[3][2];                      /* conv: stride, padding, dilation; pools: kernel, stride, padding */
  int nd;                           /* length of shape / perm */
  int64_t shape[SER_MAX_DIMS];      /* reshape, param; output_size of the adaptive pools */
  int perm[SER_MAX_DIMS];
  unsigned dims;                    /* mean, std, sum: bit mask */
  int keepdim, unbiased, axis, start_dim;
  int64_t start, length;
  double eps;                       /* norms, std; log: log(x + eps) */
  int lstm_layers, lstm_dirs, lstm_bias;
  int64_t lstm_in, lstm_hidden;
  struct ser_whisper_encoder *enc;  /* owned by the model (ser_infer_model), not the graph */
} ser_graph_node;

typedef struct ser_graph {
  int n_nodes;
  ser_graph_node *nodes;
  int n_values, output;
  char **values;                    /* value names, [0] = "input" */
  int n_classes;
  char **classes;
  /* the whisper_encoder node's encoder attributes (path NULL without one) */
  char *enc_path, *enc_sha256;
  int enc_layers, enc_d_model, enc_n_mels;
} ser_graph;

/* Parses and checks the graph JSON text against the checkpoint's tensors (lookup). Tensors
 * stay the caller's. On failure *out is NULL and the message names the node and the problem. */
int ser_graph_parse(ser_graph **out, const char *json, ser_graph_lookup_fn lookup, void *ctx);
void ser_graph_free(ser_graph *g); /* NULL-safe */
/* Per-run options of ser_graph_run (NULL: all zero). */
typedef struct ser_graph_run_opts {
  /* The clip's own frames at the start of a padded Whisper window (ser_prep_run's), which the
   * whisper_encoder node pools after attending over the whole window; 0: all of x is the clip. */
  int64_t own_frames;
  /* Speaker normalisation of the whisper_encoder node's output (its pooled hidden states,
   * n_norm values): y = (y - shift) * scale elementwise before the nodes after it; NULL: none. */
  const float *shift, *scale;
  int64_t n_norm;
  /* Stop at the whisper_encoder node and return its output (a speaker's statistics are
   * gathered there) instead of the graph's. */
  int until_encoder;
  /* x is the whisper_encoder node's output (what until_encoder returned), not the input: the
   * nodes after it run (with the speaker normalisation above), the encoder does not. x is
   * then copied, not retained, so threads may run with one x at once. */
  int from_encoder;
} ser_graph_run_opts;

/* Runs the nodes on x (the input value, borrowed) -> *out (a new reference: the output value). */
int ser_graph_run(ser_tensor **out, const ser_graph *g, ser_tensor *x, const ser_graph_run_opts *o);

#endif
