/* libFuzzer target: the safetensors reader (src/io/safetensors.c) on arbitrary bytes.
 * The parser must either return a fully validated file or fail with a message; any
 * sanitizer report, a non-float tensor, a count that does not match, or a failure
 * without a message is a bug. Memory held by the result must all be released
 * (ser_memory_live back to where it was), so leaks in error paths are caught too.
 * The reader by name (ser_safetensors_open_memory + ser_safetensors_load) runs on
 * the same bytes and must agree with the whole-file parser: the same verdict,
 * the same names and the same values bit for bit; and every value written back
 * as F16 / BF16 must round-trip (a rounded value rounds to itself). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "check_tensors.h"
#include "core/half.h"

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
  ser_safetensors_file *sf = NULL;
  const int rc2 = ser_safetensors_open_memory(&sf, data, size, "fuzz.safetensors");
  if ((rc2 < 0) != (rc < 0)) fail("the reader by name and the parser disagree on validity");
  if (rc2 < 0) {
    if (sf) fail("open failure left *out non-NULL");
    if (!strstr(ser_errmsg(), "fuzz.safetensors")) fail("open message does not name the file");
  } else {
    ser_safetensors *st2 = NULL;
    if (ser_safetensors_parse(&st2, data, size, "fuzz.safetensors") < 0) fail("second parse failed");
    if (ser_safetensors_count(sf) != st2->n) fail("tensor counts differ");
    for (int i = 0; i < st2->n; i++) {
      if (strcmp(ser_safetensors_name(sf, i), st2->names[i]) != 0) fail("names or their order differ");
      ser_tensor *t = NULL;
      if (ser_safetensors_load(&t, sf, i) < 0 || !t) fail("load of a listed tensor failed");
      const int64_t n = ser_tensor_numel(t);
      if (n != ser_tensor_numel(st2->tensors[i])) fail("element counts differ");
      const float *a = ser_tensor_data(t), *b = ser_tensor_data(st2->tensors[i]);
      if (n && memcmp(a, b, (size_t)n * 4) != 0) fail("values differ between the two readers");
      for (int64_t k = 0; k < n; k++) {
        const float h = ser_f16_to_f32(ser_f32_to_f16(a[k])), g = ser_bf16_to_f32(ser_f32_to_bf16(a[k]));
        if (h == h && ser_f16_to_f32(ser_f32_to_f16(h)) != h) fail("an F16-rounded value does not round-trip");
        if (g == g && ser_bf16_to_f32(ser_f32_to_bf16(g)) != g) fail("a BF16-rounded value does not round-trip");
      }
      ser_tensor_release(t);
    }
    if (ser_safetensors_load(&(ser_tensor *){NULL}, sf, st2->n) >= 0) fail("load past the end succeeded");
    ser_safetensors_free(st2);
    ser_safetensors_close(sf);
  }
  if (ser_memory_live() != live0) fail("ser_alloc accounting does not return to its start (leak)");
  return 0;
}
