/* float32 N-d tensors: refcounted views over refcounted storage.
 *
 * Conventions (all of src/ follows them):
 * - Every function returning a ser_tensor* through an out-parameter or as its
 *   result hands the caller one new reference; the caller ser_tensor_release()s
 *   it. Input tensors are borrowed.
 * - Functions that can fail on user input return int (0 or a negative SER_E*
 *   code, message in ser_errmsg()), outputs first: ser_add(&out, a, b).
 * - Dimensions and indices are 0-based here; the Lua binding converts from
 *   1-based and resolves negative dims.
 * - Shapes are printed as [2,3,5]; error messages use ser_shape_str(). */
#ifndef SER_CORE_TENSOR_H
#define SER_CORE_TENSOR_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#define SER_MAX_DIMS 6

/* Reference counts are atomic: a model's weights (and the feature caches' tensors) are read by
 * several threads at once (one model shared by threads in the C inference API), and every op
 * retains and releases its inputs. */
typedef struct ser_storage {
  float *data;       /* 64-byte aligned, owned */
  size_t numel;
  _Atomic int refcount;
} ser_storage;

typedef struct ser_node ser_node; /* autograd record, see src/autograd/autograd.h */

typedef struct ser_tensor {
  _Atomic int refcount;
  int ndim;
  int64_t shape[SER_MAX_DIMS];
  int64_t stride[SER_MAX_DIMS]; /* in elements */
  int64_t offset;               /* in elements, into storage->data */
  ser_storage *storage;
  /* autograd */
  int requires_grad;            /* leaf: user asked for a gradient; non-leaf: produced from one */
  struct ser_tensor *grad;      /* accumulated gradient of a leaf (contiguous), or NULL */
  ser_node *grad_fn;            /* op that produced this tensor; NULL for leaves */
} ser_tensor;

/* Releases a tensor's graph node (grad_fn) when the tensor goes. The core knows nothing of
 * autograd: the autograd layer installs its release function (src/autograd/autograd.c
 * does so in ser_autograd_record, before it attaches any node), so every tensor that has a
 * node finds the hook set, in C programs that never call an init function too. */
typedef void (*ser_node_release_fn)(ser_node *node);
void ser_tensor_set_node_release(ser_node_release_fn fn);

static inline float *ser_tensor_data(const ser_tensor *t) { return t->storage->data + t->offset; }
int64_t ser_tensor_numel(const ser_tensor *t);
int ser_tensor_is_contiguous(const ser_tensor *t);
int ser_tensor_same_shape(const ser_tensor *a, const ser_tensor *b);
/* Formats a shape as "[2,3,5]" into a thread-local ring of buffers (valid for a few calls). */
const char *ser_shape_str(int ndim, const int64_t *shape);
#define SER_SHAPE(t) ser_shape_str((t)->ndim, (t)->shape)

/* Lifetime */
ser_tensor *ser_tensor_retain(ser_tensor *t);
void ser_tensor_release(ser_tensor *t);          /* NULL-safe */

/* Creation (contiguous). Return NULL with ser_error set on a bad shape or no memory. */
ser_tensor *ser_tensor_empty(int ndim, const int64_t *shape);  /* uninitialised */
ser_tensor *ser_tensor_zeros(int ndim, const int64_t *shape);
ser_tensor *ser_tensor_full(int ndim, const int64_t *shape, float value);
ser_tensor *ser_tensor_empty_like(const ser_tensor *t);        /* contiguous, same shape */
ser_tensor *ser_tensor_zeros_like(const ser_tensor *t);
ser_tensor *ser_tensor_from_data(int ndim, const int64_t *shape, const float *data); /* copies */
/* Shape helpers for 1..4 dims: ser_tensor_zeros(2, SER_DIMS(3, 4)) */
#define SER_DIMS(...) ((const int64_t[]){__VA_ARGS__})
int ser_tensor_arange(ser_tensor **out, double start, double end, double step);
/* Random fills use the given generator (NULL = the global one); sequential, so
 * deterministic for a seed whatever the thread count. */
struct ser_rng;
void ser_tensor_fill_uniform(ser_tensor *t, float lo, float hi, struct ser_rng *rng);
void ser_tensor_fill_normal(ser_tensor *t, float mean, float std, struct ser_rng *rng);
void ser_tensor_fill(ser_tensor *t, float value);               /* works on views */

/* Raw little-endian float32 files */
int ser_tensor_fromfile(ser_tensor **out, const char *path, int ndim, const int64_t *shape);
int ser_tensor_tofile(const ser_tensor *t, const char *path);   /* atomic: temp + rename */

/* Views (share storage; no copy). Not recorded by autograd: the differentiable
 * versions are ser_view, ser_permute, ... in src/ops/shape.h. */
int ser_tensor_view_raw(ser_tensor **out, ser_tensor *t, int ndim, const int64_t *shape); /* one -1 allowed; t contiguous */
int ser_tensor_permute_raw(ser_tensor **out, ser_tensor *t, const int *perm);
int ser_tensor_narrow_raw(ser_tensor **out, ser_tensor *t, int dim, int64_t start, int64_t length);
int ser_tensor_select_raw(ser_tensor **out, ser_tensor *t, int dim, int64_t index); /* drops dim */
/* parts[i] = select(t, 0, i) for every i of t's first dim; on failure none is left. */
int ser_tensor_unbind_raw(ser_tensor **parts, ser_tensor *t);
/* An alias sharing t's storage and geometry with no autograd history (detach). */
ser_tensor *ser_tensor_alias(ser_tensor *t);
/* Copies (never views; no autograd) */
ser_tensor *ser_tensor_contiguous_raw(ser_tensor *t);  /* new ref: t itself if already contiguous */
ser_tensor *ser_tensor_clone_raw(const ser_tensor *t); /* always a fresh contiguous copy */
int ser_tensor_copy_(ser_tensor *dst, const ser_tensor *src); /* same numel... same shape required */

/* Element access by flat logical index (row-major over the view); slow, for
 * bindings and tests. */
float ser_tensor_get_flat(const ser_tensor *t, int64_t i);
void ser_tensor_set_flat(ser_tensor *t, int64_t i, float v);
/* Copies the view's elements in row-major order into dst (numel floats). */
void ser_tensor_gather_to(const ser_tensor *t, float *dst);

#endif
