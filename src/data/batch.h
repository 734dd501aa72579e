/* Assembling batches and corpus matrices from rows (no Lua): the loader's gather of a batch
 * from the in-memory [N, ...] matrix, concatenation of parts, stacking decoded clips into a
 * matrix, and trimming / zero-padding clips to a fixed length.
 *
 * Tensors are float32 and must be contiguous where stated; rows are 0-based here (the
 * binding, src/lua/data.c, converts Lua's 1-based lists). Results are new tensors. */
#ifndef SER_DATA_BATCH_H
#define SER_DATA_BATCH_H

#include <stdint.h>

#include "core/tensor.h"

/* out[i][:] = src[rows[i]][:] for i < count, rows of row_len floats; rows are not checked. */
void ser_data_gather_rows(float *out, const float *src, int64_t row_len, const int64_t *rows, int64_t count);

/* out [count, ...] = the given rows of src [N, ...] (contiguous), in the given order. */
int ser_data_gather(ser_tensor **out, const ser_tensor *src, const int64_t *rows, int64_t count);
/* out [b1 + b2 + ..., ...] = parts[0] [b1, ...], parts[1] [b2, ...], ... one after the other;
 * every part contiguous with the same trailing shape. */
int ser_data_cat_rows(ser_tensor **out, ser_tensor *const *parts, int count);
/* out [count, numel] = items of the same number of elements (any shape, any strides), one a row. */
int ser_data_stack(ser_tensor **out, ser_tensor *const *items, int count);
/* out [N, n] = each row of t [N, T] (contiguous) trimmed or zero-padded at the end to n. */
int ser_data_fit_rows(ser_tensor **out, const ser_tensor *t, int64_t n);

#endif
