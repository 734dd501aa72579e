/* Shared by the fuzz targets that read a checkpoint's graph description (fuzz_graph: the C
 * API's parser and runner; fuzz_onnx: the ONNX exporter): the tensors a description may name,
 * small and finite (running_var 1, the rest 0.5), so that a parsed description can be run
 * or written out. */
#ifndef SER_FUZZ_GRAPH_TENSORS_H
#define SER_FUZZ_GRAPH_TENSORS_H

#include <string.h>

#include "core/tensor.h"

static const struct {
  const char *name;
  int ndim;
  int64_t shape[4];
} fuzz_graph_specs[] = {
    {"c.weight", 3, {4, 1, 9}}, {"c.bias", 1, {4}}, {"c2.weight", 4, {4, 1, 3, 3}}, {"bn.weight", 1, {4}},
    {"bn.bias", 1, {4}}, {"bn.running_mean", 1, {4}}, {"bn.running_var", 1, {4}}, {"l.weight", 2, {3, 4}},
    {"l.bias", 1, {3}}, {"rnn.weight_ih_l0", 2, {8, 4}}, {"rnn.weight_hh_l0", 2, {8, 2}}, {"rnn.bias_ih_l0", 1, {8}},
    {"rnn.bias_hh_l0", 1, {8}}, {"p", 1, {4}},
};
enum { FUZZ_GRAPH_N = sizeof fuzz_graph_specs / sizeof fuzz_graph_specs[0] };

/* Makes the tensors once (a process-wide set, as the targets keep them) and their names. */
static inline void fuzz_graph_tensors(ser_tensor **tensors, const char **names) {
  if (tensors[0]) return;
  for (int i = 0; i < FUZZ_GRAPH_N; i++) {
    tensors[i] = ser_tensor_full(fuzz_graph_specs[i].ndim, fuzz_graph_specs[i].shape, 0.5f);
    if (!strcmp(fuzz_graph_specs[i].name, "bn.running_var")) ser_tensor_fill(tensors[i], 1.0f);
    names[i] = fuzz_graph_specs[i].name;
  }
}

#endif
