/* libFuzzer target: the ONNX exporter (src/export/) on arbitrary description text, against
 * a fixed set of small tensors (the same names and shapes as fuzz_graph, so the two targets
 * share their regression inputs as seeds). ser_onnx_build must either give bytes that
 * protobuf-c unpacks into a model (opset 17, one input, one output "logits", every node
 * input made earlier or an initializer) or fail with a message naming ONNX, leaving no
 * buffer. Any sanitizer report or memory left allocated (ser_memory_live) is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "graph_tensors.h"
#include "export/onnx.h"
#include "onnx.pb-c.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_onnx: %s\n", what);
  abort();
}

enum { N = FUZZ_GRAPH_N };
static ser_tensor *tensors[N];
static const char *names[N];

/* every node input is the graph input, an initializer or an earlier node's output */
static int wired(const Onnx__GraphProto *g) {
  for (size_t i = 0; i < g->n_node; i++)
    for (size_t k = 0; k < g->node[i]->n_input; k++) {
      const char *in = g->node[i]->input[k];
      int found = strcmp(in, g->input[0]->name) == 0;
      for (size_t j = 0; j < g->n_initializer && !found; j++) found = strcmp(in, g->initializer[j]->name) == 0;
      for (size_t j = 0; j < i && !found; j++) found = strcmp(in, g->node[j]->output[0]) == 0;
      if (!found) return 0;
    }
  return 1;
}

/* The input, then a Whisper window's "frames" (input.context) if any, then a speaker-normalised
 * model's "speaker_shift" and "speaker_scale"; the output "logits", then that model's "pooled". */
static int envelope_ok(const Onnx__GraphProto *g) {
  if (!g || g->n_input < 1 || g->n_output < 1 || strcmp(g->output[0]->name, "logits") != 0) return 0;
  size_t k = 1;
  if (k < g->n_input && !strcmp(g->input[k]->name, "frames")) k++;
  const int speaker = k + 2 == g->n_input && !strcmp(g->input[k]->name, "speaker_shift") &&
                      !strcmp(g->input[k + 1]->name, "speaker_scale");
  if (speaker) k += 2;
  if (k != g->n_input) return 0;
  return speaker ? g->n_output == 2 && !strcmp(g->output[1]->name, "pooled") : g->n_output == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_graph_tensors(tensors, names);
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = 0;
  const size_t live0 = ser_memory_live();
  unsigned char *buf = NULL;
  size_t len = 0;
  ser_error_clear();
  int rc = ser_onnx_build(&buf, &len, text, N, names, tensors, NULL);
  if (rc < 0) {
    if (buf || len) fail("failure left a buffer");
    if (strncmp(ser_errmsg(), "onnx: ", 6) != 0) fail("failure without an 'onnx: ' message");
  } else {
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m) fail("the bytes do not unpack as a ModelProto");
    if (m->n_opset_import != 1 || m->opset_import[0]->version != SER_ONNX_OPSET) fail("wrong opset");
    const Onnx__GraphProto *g = m->graph;
    if (!envelope_ok(g)) fail("wrong graph envelope");
    if (g->n_node < 1 || strcmp(g->node[g->n_node - 1]->output[0], "logits") != 0) fail("no node makes the logits");
    if (!wired(g)) fail("a node reads a value nothing makes");
    onnx__model_proto__free_unpacked(m, NULL);
    free(buf);
  }
  free(text);
  if (ser_memory_live() != live0) fail("memory left allocated");
  return 0;
}
