#include "data/batch.h"

#include <string.h>

#include "core/error.h"

void ser_data_gather_rows(float *out, const float *src, int64_t row_len, const int64_t *rows, int64_t count) {
  for (int64_t i = 0; i < count; i++) memcpy(out + i * row_len, src + rows[i] * row_len, (size_t)row_len * sizeof *out);
}

int ser_data_gather(ser_tensor **out, const ser_tensor *src, const int64_t *rows, int64_t count) {
  *out = NULL;
  if (src->ndim < 1 || !ser_tensor_is_contiguous(src))
    return ser_error(SER_EINVAL, "gather: expected a contiguous tensor with a row dimension, got %s", SER_SHAPE(src));
  if (count < 1) return ser_error(SER_EINVAL, "gather: empty row list");
  int64_t nrows = src->shape[0], row = nrows ? ser_tensor_numel(src) / nrows : 0;
  for (int64_t i = 0; i < count; i++)
    if (rows[i] < 0 || rows[i] >= nrows)
      return ser_error(SER_EINVAL, "gather: entry %lld is row %lld, expected 0..%lld (0-based)", (long long)i + 1,
                       (long long)rows[i], (long long)nrows - 1);
  int64_t shape[SER_MAX_DIMS];
  memcpy(shape, src->shape, sizeof shape);
  shape[0] = count;
  ser_tensor *t = ser_tensor_empty(src->ndim, shape);
  if (!t) return SER_ENOMEM;
  ser_data_gather_rows(ser_tensor_data(t), ser_tensor_data(src), row, rows, count);
  *out = t;
  return 0;
}

int ser_data_cat_rows(ser_tensor **out, ser_tensor *const *parts, int count) {
  *out = NULL;
  if (count < 1) return ser_error(SER_EINVAL, "cat_rows: empty list");
  int64_t shape[SER_MAX_DIMS], rows = 0;
  int ndim = parts[0]->ndim;
  memcpy(shape, parts[0]->shape, sizeof shape);
  for (int i = 0; i < count; i++) {
    const ser_tensor *t = parts[i];
    if (t->ndim < 1 || !ser_tensor_is_contiguous(t))
      return ser_error(SER_EINVAL, "cat_rows: part %d must be a contiguous tensor with a row dimension, got %s", i + 1,
                       SER_SHAPE(t));
    int same = t->ndim == ndim;
    for (int d = 1; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same)
      return ser_error(SER_EINVAL, "cat_rows: part %d has shape %s, part 1 has %s; all parts must agree after dim 1",
                       i + 1, SER_SHAPE(t), ser_shape_str(ndim, shape));
    rows += t->shape[0];
  }
  shape[0] = rows;
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  if (!t) return SER_ENOMEM;
  float *o = ser_tensor_data(t);
  for (int i = 0; i < count; i++) {
    int64_t n = ser_tensor_numel(parts[i]);
    memcpy(o, ser_tensor_data(parts[i]), (size_t)n * sizeof *o);
    o += n;
  }
  *out = t;
  return 0;
}

int ser_data_stack(ser_tensor **out, ser_tensor *const *items, int count) {
  *out = NULL;
  if (count < 1) return ser_error(SER_EINVAL, "stack: empty list");
  int64_t numel = ser_tensor_numel(items[0]);
  for (int i = 1; i < count; i++)
    if (ser_tensor_numel(items[i]) != numel)
      return ser_error(SER_EINVAL, "stack: item %d has %lld elements %s, item 1 has %lld; all must be the same length",
                       i + 1, (long long)ser_tensor_numel(items[i]), SER_SHAPE(items[i]), (long long)numel);
  ser_tensor *t = ser_tensor_empty(2, SER_DIMS(count, numel));
  if (!t) return SER_ENOMEM;
  for (int i = 0; i < count; i++) ser_tensor_gather_to(items[i], ser_tensor_data(t) + (int64_t)i * numel);
  *out = t;
  return 0;
}

int ser_data_fit_rows(ser_tensor **out, const ser_tensor *t, int64_t n) {
  *out = NULL;
  if (t->ndim != 2 || !ser_tensor_is_contiguous(t))
    return ser_error(SER_EINVAL, "fit_rows: expected a contiguous [N, T] tensor, got %s", SER_SHAPE(t));
  if (n < 1) return ser_error(SER_EINVAL, "fit_rows: length %lld must be positive", (long long)n);
  int64_t rows = t->shape[0], T = t->shape[1], keep = T < n ? T : n;
  ser_tensor *o = ser_tensor_zeros(2, SER_DIMS(rows, n));
  if (!o) return SER_ENOMEM;
  for (int64_t r = 0; r < rows; r++)
    memcpy(ser_tensor_data(o) + r * n, ser_tensor_data(t) + r * T, (size_t)keep * sizeof(float));
  *out = o;
  return 0;
}
