/* libFuzzer target: the graph description's reader (src/infer/graph.c, src/infer/prep.c) on
 * arbitrary text, against a fixed set of tensors (conv, batchnorm, linear, LSTM weights of
 * small shapes). Parsing must either give a checked plan or fail with a message; a plan whose
 * clip is short is then run on a small clip, which must either give the output value or fail
 * with a message. Any sanitizer report, a failure without a message, or memory left allocated
 * is a bug: each input runs twice and the second run must leave ser_memory_live where it was
 * (the first fills the core's process-wide caches: mel filterbanks, FFT plans, scratch). The
 * text also goes through the check of a checkpoint's recipe against its graph, both ways round. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "graph_tensors.h"
#include "infer/graph.h"
#include "infer/prep.h"
#include "io/recipe_graph.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_graph: %s\n", what);
  abort();
}

enum { N = FUZZ_GRAPH_N };
static ser_tensor *tensors[N];
static const char *names[N];

static ser_tensor *lookup(void *ctx, const char *name) {
  (void)ctx;
  for (int i = 0; i < N; i++)
    if (!strcmp(names[i], name)) return tensors[i];
  return NULL;
}

static void one(const char *text);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_graph_tensors(tensors, names);
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = 0;
  one(text);
  const size_t live0 = ser_memory_live();
  one(text);
  if (ser_memory_live() != live0) fail("memory left allocated");
  free(text);
  return 0;
}

static void one(const char *text) {
  ser_graph *g = NULL;
  ser_prep p;
  /* ser_model_load and the ONNX export compare the description with the checkpoint's recipe:
   * the text as the graph against a recipe, then as the recipe against a whisper graph */
  static const char *const recipe = "{\"model\": {\"context\": 30, \"speaker_norm\": true}}";
  static const char *const whisper = "{\"input\": {\"features\": {\"kind\": \"whisper_logmel\"}, \"context\": 30}}";
  ser_error_clear();
  if (ser_recipe_graph_check(recipe, text) < 0 && !*ser_errmsg()) fail("recipe check failure without a message");
  ser_error_clear();
  if (ser_recipe_graph_check(text, whisper) < 0 && !*ser_errmsg()) fail("recipe check failure without a message");
  ser_error_clear();
  int rc = ser_graph_parse(&g, text, lookup, NULL);
  if (rc < 0) {
    if (g) fail("failure left *out non-NULL");
    if (!*ser_errmsg()) fail("graph failure without a message");
  } else {
    if (!g || g->n_nodes < 1 || g->output <= 0 || g->output >= g->n_values) fail("success with an inconsistent plan");
    ser_error_clear();
    rc = ser_prep_parse(&p, text);
    if (rc < 0 && !*ser_errmsg()) fail("input failure without a message");
    /* run short clips of graphs without an encoder (none is loaded here) */
    if (rc == 0 && !g->enc_path && p.kind != SER_PREP_WHISPER && p.seconds * p.sr <= 4000 && p.read_seconds * p.sr <= 8000) {
      float clip[1200];
      for (int i = 0; i < 1200; i++) clip[i] = (float)((i * 37 % 101) - 50) / 100.0f;
      ser_tensor *x = NULL, *y = NULL;
      int64_t own = 0;
      ser_error_clear();
      if (ser_prep_run(&x, &own, &p, clip, 1200, 8000) < 0) {
        if (!*ser_errmsg()) fail("clip failure without a message");
      } else {
        ser_error_clear();
        if (ser_graph_run(&y, g, x, &(ser_graph_run_opts){.own_frames = own}) < 0) {
          if (y) fail("run failure left *out non-NULL");
          if (!*ser_errmsg()) fail("run failure without a message");
        } else if (!y) {
          fail("run success without an output");
        }
      }
      ser_tensor_release(x);
      ser_tensor_release(y);
    }
    ser_graph_free(g);
  }
}
