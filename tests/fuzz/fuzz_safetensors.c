/* libFuzzer target: the safetensors reader (src/io/safetensors.c) on arbitrary bytes.
 * The parser must either return a fully validated file or fail with a message; any
 * sanitizer report, a non-float tensor, a count that does not match, or a failure
 * without a message is a bug. Memory held by the result must all be released
 * (ser_memory_live back to where it was), so leaks in error paths are caught too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "check_tensors.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_safetensors: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const size_t live0 = ser_memory_live();
  ser_safetensors *st = NULL;
  ser_error_clear();
  const int rc = ser_safetensors_parse(&st, data, size, "fuzz.safetensors");
  if (rc < 0) {
    if (st) fail("failure left *out non-NULL");
    const char *msg = ser_errmsg();
    if (!msg || !*msg) fail("failure without a message");
    if (!strstr(msg, "fuzz.safetensors")) fail("message does not name the file");
  } else {
    if (!st) fail("success with *out NULL");
    const char *bad = fuzz_check_tensors(st);
    if (bad) fail(bad);
    for (int i = 0; i < st->n_meta; i++)
      if (!st->meta_keys[i] || !st->meta_values[i]) fail("missing metadata key or value");
    ser_safetensors_free(st);
  }
  if (ser_memory_live() != live0) fail("ser_alloc accounting does not return to its start (leak)");
  return 0;
}
