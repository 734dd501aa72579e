/* libFuzzer target: the PyTorch .pt reader (src/io/torch_zip.c through libzip) and its
 * restricted unpickler (src/io/torch_pickle.c) on arbitrary bytes. An input that starts
 * with "PK" is read as a whole .pt archive; anything else goes straight to the unpickler
 * as a data.pkl (libzip's CRC check would stop most mutations of a pickle inside a zip).
 * Either the result is fully valid (every view inside its storage, every element readable)
 * or the call fails with a message naming the input; ser_alloc accounting must return to
 * where it was, so leaks in error paths are caught too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/torch_pickle.h"
#include "io/torch_zip.h"
#include "check_tensors.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_torch: %s\n", what);
  abort();
}

static void check_failure(const char *label) {
  const char *msg = ser_errmsg();
  if (!msg || !*msg) fail("failure without a message");
  if (!strstr(msg, label)) fail("message does not name the input");
}

static void check_entries(const ser_torch_state *st) {
  for (int i = 0; i < st->n; i++) {
    const ser_torch_entry *e = &st->entries[i];
    if (!e->name || !*e->name || !e->storage || !*e->storage) fail("entry without a name or storage key");
    if (e->ndim < 0 || e->ndim > SER_MAX_DIMS) fail("dimension count out of range");
    int64_t numel = 1, last = e->offset;
    for (int d = 0; d < e->ndim; d++) {
      if (e->shape[d] < 0 || e->stride[d] < 0) fail("negative size or stride");
      numel *= e->shape[d];
    }
    for (int d = 0; numel > 0 && d < e->ndim; d++) last += (e->shape[d] - 1) * e->stride[d];
    if (numel > e->storage_numel) fail("view with more elements than its storage");
    if (numel > 0 && last >= e->storage_numel) fail("view reaches past its storage");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const size_t live0 = ser_memory_live();
  ser_error_clear();
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
    ser_safetensors *st = NULL;
    if (ser_torch_parse(&st, data, size, "fuzz.pt") < 0) {
      if (st) fail("failure left *out non-NULL");
      check_failure("fuzz.pt");
    } else {
      if (!st) fail("success with *out NULL");
      const char *bad = fuzz_check_tensors(st);
      if (bad) fail(bad);
      ser_safetensors_free(st);
    }
  } else {
    ser_torch_state *st = NULL;
    if (ser_torch_unpickle(&st, data, size, "fuzz.pkl") < 0) {
      if (st) fail("failure left *out non-NULL");
      check_failure("fuzz.pkl");
    } else {
      if (!st) fail("success with *out NULL");
      check_entries(st);
      ser_torch_state_free(st);
    }
  }
  if (ser_memory_live() != live0) fail("ser_alloc accounting does not return to its start (leak)");
  return 0;
}
