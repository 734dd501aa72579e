/* Shared by the fuzz targets whose parsers return a ser_safetensors (fuzz_safetensors,
 * fuzz_torch): every tensor and name present, every element read so that ASan sees any
 * storage smaller than its shape. Returns what is wrong, or NULL. */
#ifndef SER_FUZZ_CHECK_TENSORS_H
#define SER_FUZZ_CHECK_TENSORS_H

#include <stdint.h>

#include "core/tensor.h"
#include "io/safetensors.h"

static inline const char *fuzz_check_tensors(const ser_safetensors *st) {
  for (int i = 0; i < st->n; i++) {
    const ser_tensor *t = st->tensors[i];
    if (!t || !st->names[i] || !*st->names[i]) return "missing tensor or name";
    const float *p = ser_tensor_data(t);
    volatile float acc = 0.0f;
    for (int64_t k = 0; k < ser_tensor_numel(t); k++) acc += p[k];
    (void)acc;
  }
  return NULL;
}

#endif
