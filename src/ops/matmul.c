#include "matmul.h"

#include <cblas.h>
#include <string.h>

#include "../core/error.h"

/* Both operands as contiguous matrices-with-batch: a [batch, n, k], b [bb, k, m] with bb = batch or 1. */
typedef struct {
  int64_t batch, n, k, m;
  int b_shared;
} mm_geom;

static int geometry(ser_tensor *a, ser_tensor *b, mm_geom *g, int *out_ndim, int64_t *out_shape) {
  if (a->ndim == 0 || b->ndim == 0)
    return ser_error(SER_EINVAL, "matmul: both arguments need at least 1 dimension, got %s and %s", SER_SHAPE(a),
                     SER_SHAPE(b));
  int64_t an = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], ak = a->shape[a->ndim - 1];
  int64_t bk = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2], bm = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
  if (ak != bk)
    return ser_error(SER_EINVAL, "matmul: inner sizes differ: %s @ %s (%lld vs %lld)", SER_SHAPE(a), SER_SHAPE(b),
                     (long long)ak, (long long)bk);
  int a_batch_nd = a->ndim > 2 ? a->ndim - 2 : 0, b_batch_nd = b->ndim > 2 ? b->ndim - 2 : 0;
  g->n = an;
  g->k = ak;
  g->m = bm;
  g->batch = 1;
  for (int i = 0; i < a_batch_nd; i++) g->batch *= a->shape[i];
  if (b_batch_nd == 0) {
    g->b_shared = 1;
  } else {
    if (a_batch_nd != b_batch_nd || memcmp(a->shape, b->shape, (size_t)a_batch_nd * sizeof(int64_t)))
      return ser_error(SER_EINVAL, "matmul: batch dims of %s and %s differ; expected equal batch dims or a 2-d b",
                       SER_SHAPE(a), SER_SHAPE(b));
    g->b_shared = 0;
  }
  int nd = 0;
  for (int i = 0; i < a_batch_nd; i++) out_shape[nd++] = a->shape[i];
  if (a->ndim > 1) out_shape[nd++] = an;
  if (b->ndim > 1) out_shape[nd++] = bm;
  *out_ndim = nd;
  return 0;
}

/* C[batch] (+)= op(A[batch]) op(B[batch or shared]) with row-major matrices. */
static void gemm_batched(int64_t batch, int b_shared, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB, float beta,
                         float *C, int64_t strideC) {
  for (int64_t i = 0; i < batch; i++)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                1.0f, A + i * strideA, (int)lda, B + (b_shared ? 0 : i * strideB), (int)ldb, beta, C + i * strideC,
                (int)N);
}

int ser_matmul(ser_tensor **out, ser_tensor *a, ser_tensor *b) {
  *out = NULL;
  mm_geom g;
  int nd;
  int64_t shape[SER_MAX_DIMS];
  int rc = geometry(a, b, &g, &nd, shape);
  if (rc) return rc;
  ser_tensor *ac = ser_tensor_contiguous_raw(a), *bc = ser_tensor_contiguous_raw(b);
  ser_tensor *o = ser_tensor_empty(nd, shape);
  if (!ac || !bc || !o) {
    rc = SER_ENOMEM;
    goto done;
  }
  if (g.b_shared) /* all leading rows of a in one GEMM */
    gemm_batched(1, 1, 0, 0, g.batch * g.n, g.m, g.k, ser_tensor_data(ac), g.k, 0, ser_tensor_data(bc), g.m, 0, 0.0f,
                 ser_tensor_data(o), 0);
  else
    gemm_batched(g.batch, 0, 0, 0, g.n, g.m, g.k, ser_tensor_data(ac), g.k, g.n * g.k, ser_tensor_data(bc), g.m,
                 g.k * g.m, 0.0f, ser_tensor_data(o), g.n * g.m);
  ser_node *node;
  rc = ser_autograd_record(o, SER_OP_MATMUL, 2, (ser_tensor *[]){a, b}, &node);
  if (!rc && node) {
    node->saved[0] = ser_detach(ac);
    node->saved[1] = ser_detach(bc);
  }
done:
  ser_tensor_release(ac);
  ser_tensor_release(bc);
  if (rc)
    ser_tensor_release(o);
  else
    *out = o;
  return rc;
}

/* da += g b^T ; db += a^T g (summed over the batch when b is shared). */
int ser_matmul_backward(ser_node *n, const ser_tensor *gt, ser_tensor **gin) {
  ser_tensor *a = n->saved[0], *b = n->saved[1];
  mm_geom g;
  int nd;
  int64_t shape[SER_MAX_DIMS];
  int rc = geometry(a, b, &g, &nd, shape);
  if (rc) return rc;
  const float *G = ser_tensor_data(gt), *A = ser_tensor_data(a), *B = ser_tensor_data(b);
  if (gin[0]) {
    if (g.b_shared)
      gemm_batched(1, 1, 0, 1, g.batch * g.n, g.k, g.m, G, g.m, 0, B, g.m, 0, 1.0f, ser_tensor_data(gin[0]), 0);
    else
      gemm_batched(g.batch, 0, 0, 1, g.n, g.k, g.m, G, g.m, g.n * g.m, B, g.m, g.k * g.m, 1.0f,
                   ser_tensor_data(gin[0]), g.n * g.k);
  }
  if (gin[1]) {
    if (g.b_shared) /* [k, batch*n] @ [batch*n, m] */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.k, (int)g.m, (int)(g.batch * g.n), 1.0f, A, (int)g.k, G,
                  (int)g.m, 1.0f, ser_tensor_data(gin[1]), (int)g.m);
    else
      gemm_batched(g.batch, 0, 1, 0, g.k, g.m, g.n, A, g.k, g.n * g.k, G, g.m, g.n * g.m, 1.0f, ser_tensor_data(gin[1]),
                   g.k * g.m);
  }
  return 0;
}
