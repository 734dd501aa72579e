/* libFuzzer target: the parser of amp's rule table (~/.cache/serlua/amp-*.tsv,
 * src/ops/gemm_rule.c) on arbitrary bytes, which need not end in a NUL. It must
 * never read past the input, and every class it accepts must be in range with
 * a decision (1 fp32, 2 bf16) and non-negative times; the count it returns is
 * at most the number of lines. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/gemm_rule.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_amp_table: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static signed char dec[SER_GEMM_RULE_CLASSES];
  static float tf[SER_GEMM_RULE_CLASSES], tb[SER_GEMM_RULE_CLASSES];
  memset(dec, 0, sizeof dec);
  /* an exact-size copy so that ASan sees any read past the end */
  char *text = malloc(size ? size : 1);
  if (!text) return 0;
  memcpy(text, data, size);
  const int got = ser_gemm_rule_parse(text, size, "fuzz key", dec, tf, tb);
  size_t lines = 1;
  for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
  if (got < 0 || (size_t)got > lines) fail("more classes than lines");
  for (int c = 0; c < SER_GEMM_RULE_CLASSES; c++) {
    if (dec[c] != 0 && dec[c] != 1 && dec[c] != 2) fail("decision out of range");
    if (dec[c] && (!(tf[c] >= 0) || !(tb[c] >= 0))) fail("negative or NaN time accepted");
  }
  free(text);
  return 0;
}
