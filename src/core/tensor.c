#include "tensor.h"

#include <stdatomic.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "rng.h"

int64_t ser_tensor_numel(const ser_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int ser_tensor_is_contiguous(const ser_tensor *t) {
  int64_t expect = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != expect) return 0;
    expect *= t->shape[i];
  }
  return 1;
}

int ser_tensor_same_shape(const ser_tensor *a, const ser_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *ser_shape_str(int ndim, const int64_t *shape) {
  static _Thread_local char ring[8][128];
  static _Thread_local int next;
  char *buf = ring[next++ & 7];
  size_t len = 0;
  buf[len++] = '[';
  for (int i = 0; i < ndim && len < 100; i++)
    len += (size_t)snprintf(buf + len, 128 - len, i ? ",%lld" : "%lld", (long long)shape[i]);
  snprintf(buf + len, 128 - len, "]");
  return buf;
}

/* ---- lifetime ---- */

static ser_storage *storage_new(size_t numel) {
  ser_storage *s = malloc(sizeof *s);
  if (!s) {
    ser_error(SER_ENOMEM, "out of memory");
    return NULL;
  }
  s->data = ser_alloc(numel * sizeof(float));
  if (!s->data) {
    free(s);
    return NULL;
  }
  s->numel = numel;
  s->refcount = 1;
  return s;
}

static void storage_release(ser_storage *s) {
  if (s && --s->refcount == 0) {
    ser_free(s->data, s->numel * sizeof(float));
    free(s);
  }
}

static ser_tensor *header_new(ser_storage *s, int ndim, const int64_t *shape, const int64_t *stride,
                              int64_t offset) {
  ser_tensor *t = calloc(1, sizeof *t);
  if (!t) {
    ser_error(SER_ENOMEM, "out of memory");
    return NULL;
  }
  t->refcount = 1;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->stride[i] = stride[i];
  }
  t->offset = offset;
  t->storage = s;
  s->refcount++;
  return t;
}

ser_tensor *ser_tensor_retain(ser_tensor *t) {
  if (t) t->refcount++;
  return t;
}

/* Set once by the autograd layer (any thread, the same value): atomic so that the store in
 * one thread and the loads in others are not a data race. */
static _Atomic(ser_node_release_fn) node_release;

void ser_tensor_set_node_release(ser_node_release_fn fn) { atomic_store_explicit(&node_release, fn, memory_order_release); }

void ser_tensor_release(ser_tensor *t) {
  if (!t || --t->refcount > 0) return;
  storage_release(t->storage);
  ser_tensor_release(t->grad);
  if (t->grad_fn) atomic_load_explicit(&node_release, memory_order_acquire)(t->grad_fn);
  free(t);
}

/* ---- creation ---- */

static int check_shape(int ndim, const int64_t *shape, size_t *numel) {
  if (ndim < 0 || ndim > SER_MAX_DIMS)
    return ser_error(SER_EINVAL, "tensor: %d dimensions, expected 0 to %d", ndim, SER_MAX_DIMS);
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return ser_error(SER_EINVAL, "tensor: negative size %lld in shape %s", (long long)shape[i],
                       ser_shape_str(ndim, shape));
    if (shape[i] && n > ((size_t)1 << 40) / (size_t)shape[i])
      return ser_error(SER_EINVAL, "tensor: shape %s is too large", ser_shape_str(ndim, shape));
    n *= (size_t)shape[i];
  }
  *numel = n;
  return 0;
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
}

ser_tensor *ser_tensor_empty(int ndim, const int64_t *shape) {
  size_t numel;
  if (check_shape(ndim, shape, &numel)) return NULL;
  ser_storage *s = storage_new(numel);
  if (!s) return NULL;
  int64_t stride[SER_MAX_DIMS];
  contiguous_strides(ndim, shape, stride);
  ser_tensor *t = header_new(s, ndim, shape, stride, 0);
  storage_release(s);
  return t;
}

ser_tensor *ser_tensor_zeros(int ndim, const int64_t *shape) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  if (t) memset(t->storage->data, 0, t->storage->numel * sizeof(float));
  return t;
}

ser_tensor *ser_tensor_full(int ndim, const int64_t *shape, float value) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  if (t) ser_tensor_fill(t, value);
  return t;
}

ser_tensor *ser_tensor_empty_like(const ser_tensor *t) { return ser_tensor_empty(t->ndim, t->shape); }
ser_tensor *ser_tensor_zeros_like(const ser_tensor *t) { return ser_tensor_zeros(t->ndim, t->shape); }

ser_tensor *ser_tensor_from_data(int ndim, const int64_t *shape, const float *data) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  if (t) memcpy(t->storage->data, data, (size_t)ser_tensor_numel(t) * sizeof(float));
  return t;
}

int ser_tensor_arange(ser_tensor **out, double start, double end, double step) {
  *out = NULL;
  if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(end))
    return ser_error(SER_EINVAL, "arange: start %g, end %g, step %g: expected finite values and a non-zero step",
                     start, end, step);
  double count = ceil((end - start) / step);
  if (count < 0) count = 0;
  if (count > 1e10) return ser_error(SER_EINVAL, "arange: %g elements is too many", count);
  int64_t n = (int64_t)count;
  ser_tensor *t = ser_tensor_empty(1, &n);
  if (!t) return SER_ENOMEM;
  float *d = ser_tensor_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = (float)(start + (double)i * step);
  *out = t;
  return 0;
}

/* Visits every element of a view in row-major order: fn(ptr) */
#define FOR_EACH_ELEMENT(t, ptr, body)                                          \
  do {                                                                         \
    int64_t idx_[SER_MAX_DIMS] = {0};                                          \
    int64_t n_ = ser_tensor_numel(t);                                          \
    float *base_ = ser_tensor_data(t);                                         \
    int64_t off_ = 0;                                                          \
    for (int64_t k_ = 0; k_ < n_; k_++) {                                      \
      float *ptr = base_ + off_;                                               \
      body;                                                                    \
      for (int d_ = (t)->ndim - 1; d_ >= 0; d_--) {                            \
        if (++idx_[d_] < (t)->shape[d_]) {                                     \
          off_ += (t)->stride[d_];                                             \
          break;                                                               \
        }                                                                      \
        off_ -= (t)->stride[d_] * (idx_[d_] - 1);                              \
        idx_[d_] = 0;                                                          \
      }                                                                        \
    }                                                                          \
  } while (0)

void ser_tensor_fill(ser_tensor *t, float value) {
  if (ser_tensor_is_contiguous(t)) {
    float *d = ser_tensor_data(t);
    int64_t n = ser_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) d[i] = value;
    return;
  }
  FOR_EACH_ELEMENT(t, p, *p = value);
}

void ser_tensor_fill_uniform(ser_tensor *t, float lo, float hi, ser_rng *rng) {
  if (!rng) rng = ser_rng_global();
  FOR_EACH_ELEMENT(t, p, *p = lo + (hi - lo) * ser_rng_uniform(rng));
}

void ser_tensor_fill_normal(ser_tensor *t, float mean, float std, ser_rng *rng) {
  if (!rng) rng = ser_rng_global();
  FOR_EACH_ELEMENT(t, p, *p = mean + std * ser_rng_normal(rng));
}

void ser_tensor_gather_to(const ser_tensor *t, float *dst) {
  if (ser_tensor_is_contiguous(t)) {
    memcpy(dst, ser_tensor_data(t), (size_t)ser_tensor_numel(t) * sizeof(float));
    return;
  }
  int64_t i = 0;
  FOR_EACH_ELEMENT(t, p, dst[i++] = *p);
}

static int64_t flat_offset(const ser_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t n = t->shape[d];
    off += (i % n) * t->stride[d];
    i /= n;
  }
  return off;
}

float ser_tensor_get_flat(const ser_tensor *t, int64_t i) { return ser_tensor_data(t)[flat_offset(t, i)]; }
void ser_tensor_set_flat(ser_tensor *t, int64_t i, float v) { ser_tensor_data(t)[flat_offset(t, i)] = v; }

/* ---- files ---- */

int ser_tensor_fromfile(ser_tensor **out, const char *path, int ndim, const int64_t *shape) {
  *out = NULL;
  size_t numel;
  int rc = check_shape(ndim, shape, &numel);
  if (rc) return ser_error_prefix(rc, "fromfile '%s'", path);
  FILE *f = fopen(path, "rb");
  if (!f) return ser_error(SER_EIO, "fromfile: cannot open '%s': %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) {
    fclose(f);
    return ser_error(SER_EIO, "fromfile: '%s' is not a regular file", path);
  }
  long bytes = ftell(f);
  rewind(f);
  if (bytes < 0 || (size_t)bytes != numel * sizeof(float)) {
    fclose(f);
    return ser_error(SER_EFORMAT, "fromfile: '%s' has %ld bytes, shape %s needs %zu (float32)", path, bytes,
                     ser_shape_str(ndim, shape), numel * sizeof(float));
  }
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  if (!t) {
    fclose(f);
    return SER_ENOMEM;
  }
  size_t got = fread(ser_tensor_data(t), sizeof(float), numel, f);
  fclose(f);
  if (got != numel) {
    ser_tensor_release(t);
    return ser_error(SER_EIO, "fromfile: short read from '%s' (%zu of %zu floats)", path, got, numel);
  }
  *out = t; /* x86-64 is little-endian, as the format */
  return 0;
}

int ser_tensor_tofile(const ser_tensor *t, const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
    return ser_error(SER_EINVAL, "tofile: path is too long");
  FILE *f = fopen(tmp, "wb");
  if (!f) return ser_error(SER_EIO, "tofile: cannot create '%s': %s", tmp, strerror(errno));
  int64_t n = ser_tensor_numel(t);
  size_t wrote;
  if (ser_tensor_is_contiguous(t)) {
    wrote = fwrite(ser_tensor_data(t), sizeof(float), (size_t)n, f);
  } else {
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!buf) {
      fclose(f);
      remove(tmp);
      return ser_error(SER_ENOMEM, "tofile: out of memory");
    }
    ser_tensor_gather_to(t, buf);
    wrote = fwrite(buf, sizeof(float), (size_t)n, f);
    free(buf);
  }
  int bad = wrote != (size_t)n || fflush(f) != 0 || fsync(fileno(f)) != 0;
  if (fclose(f) != 0) bad = 1;
  if (bad || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return ser_error(SER_EIO, "tofile: cannot write '%s': %s", path, strerror(e));
  }
  return 0;
}

/* ---- views ---- */

int ser_tensor_view_raw(ser_tensor **out, ser_tensor *t, int ndim, const int64_t *shape) {
  *out = NULL;
  if (ndim < 0 || ndim > SER_MAX_DIMS)
    return ser_error(SER_EINVAL, "view: %d dimensions, expected 0 to %d", ndim, SER_MAX_DIMS);
  int64_t resolved[SER_MAX_DIMS];
  int infer = -1;
  int64_t known = 1, numel = ser_tensor_numel(t);
  for (int i = 0; i < ndim; i++) {
    resolved[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0) return ser_error(SER_EINVAL, "view: only one dimension can be -1, got %s", ser_shape_str(ndim, shape));
      infer = i;
    } else if (shape[i] < 0) {
      return ser_error(SER_EINVAL, "view: invalid size %lld in %s", (long long)shape[i], ser_shape_str(ndim, shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known)
      return ser_error(SER_EINVAL, "view: shape %s is invalid for input of size %lld %s",
                       ser_shape_str(ndim, shape), (long long)numel, SER_SHAPE(t));
    resolved[infer] = numel / known;
    known = numel;
  }
  if (known != numel)
    return ser_error(SER_EINVAL, "view: shape %s is invalid for input of size %lld %s", ser_shape_str(ndim, shape),
                     (long long)numel, SER_SHAPE(t));
  if (!ser_tensor_is_contiguous(t))
    return ser_error(SER_EINVAL, "view: input %s is not contiguous; call contiguous() or use reshape()", SER_SHAPE(t));
  int64_t stride[SER_MAX_DIMS];
  contiguous_strides(ndim, resolved, stride);
  *out = header_new(t->storage, ndim, resolved, stride, t->offset);
  return *out ? 0 : SER_ENOMEM;
}

int ser_tensor_permute_raw(ser_tensor **out, ser_tensor *t, const int *perm) {
  *out = NULL;
  int seen[SER_MAX_DIMS] = {0};
  int64_t shape[SER_MAX_DIMS], stride[SER_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]]++)
      return ser_error(SER_EINVAL, "permute: dims must be a permutation of 1..%d (dim %d repeated or out of range)",
                       t->ndim, perm[i] + 1);
    shape[i] = t->shape[perm[i]];
    stride[i] = t->stride[perm[i]];
  }
  *out = header_new(t->storage, t->ndim, shape, stride, t->offset);
  return *out ? 0 : SER_ENOMEM;
}

int ser_tensor_narrow_raw(ser_tensor **out, ser_tensor *t, int dim, int64_t start, int64_t length) {
  *out = NULL;
  if (dim < 0 || dim >= t->ndim)
    return ser_error(SER_EINVAL, "narrow: dim %d out of range for a %d-d tensor", dim + 1, t->ndim);
  if (start < 0 || length < 0 || start + length > t->shape[dim])
    return ser_error(SER_EINVAL, "narrow: elements %lld..%lld of dim %d are out of range 1..%lld (shape %s)",
                     (long long)start + 1, (long long)(start + length), dim + 1, (long long)t->shape[dim], SER_SHAPE(t));
  int64_t shape[SER_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[dim] = length;
  *out = header_new(t->storage, t->ndim, shape, t->stride, t->offset + start * t->stride[dim]);
  return *out ? 0 : SER_ENOMEM;
}

int ser_tensor_select_raw(ser_tensor **out, ser_tensor *t, int dim, int64_t index) {
  *out = NULL;
  if (dim < 0 || dim >= t->ndim)
    return ser_error(SER_EINVAL, "select: dim %d out of range for a %d-d tensor", dim + 1, t->ndim);
  if (index < 0 || index >= t->shape[dim])
    return ser_error(SER_EINVAL, "select: index %lld out of range 1..%lld for dim %d of %s", (long long)index + 1,
                     (long long)t->shape[dim], dim + 1, SER_SHAPE(t));
  int64_t shape[SER_MAX_DIMS], stride[SER_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (i == dim) continue;
    shape[k] = t->shape[i];
    stride[k++] = t->stride[i];
  }
  *out = header_new(t->storage, t->ndim - 1, shape, stride, t->offset + index * t->stride[dim]);
  return *out ? 0 : SER_ENOMEM;
}

int ser_tensor_unbind_raw(ser_tensor **parts, ser_tensor *t) {
  const int64_t n = t->ndim >= 1 ? t->shape[0] : 0;
  for (int64_t i = 0; i < n; i++) parts[i] = NULL;
  for (int64_t i = 0; i < n; i++) {
    const int rc = ser_tensor_select_raw(&parts[i], t, 0, i);
    if (rc) {
      for (int64_t k = 0; k < i; k++) {
        ser_tensor_release(parts[k]);
        parts[k] = NULL;
      }
      return rc;
    }
  }
  return 0;
}

ser_tensor *ser_tensor_alias(ser_tensor *t) { return header_new(t->storage, t->ndim, t->shape, t->stride, t->offset); }

ser_tensor *ser_tensor_clone_raw(const ser_tensor *t) {
  ser_tensor *c = ser_tensor_empty(t->ndim, t->shape);
  if (c) ser_tensor_gather_to(t, ser_tensor_data(c));
  return c;
}

ser_tensor *ser_tensor_contiguous_raw(ser_tensor *t) {
  if (ser_tensor_is_contiguous(t)) return ser_tensor_retain(t);
  return ser_tensor_clone_raw(t);
}

int ser_tensor_copy_(ser_tensor *dst, const ser_tensor *src) {
  if (ser_tensor_numel(dst) != ser_tensor_numel(src))
    return ser_error(SER_EINVAL, "copy: source %s and destination %s differ in size", SER_SHAPE(src), SER_SHAPE(dst));
  if (ser_tensor_is_contiguous(dst)) {
    ser_tensor_gather_to(src, ser_tensor_data(dst));
    return 0;
  }
  float *buf = malloc((size_t)ser_tensor_numel(src) * sizeof(float) + 4);
  if (!buf) return ser_error(SER_ENOMEM, "copy: out of memory");
  ser_tensor_gather_to(src, buf);
  int64_t i = 0;
  FOR_EACH_ELEMENT(dst, p, *p = buf[i++]);
  free(buf);
  return 0;
}
