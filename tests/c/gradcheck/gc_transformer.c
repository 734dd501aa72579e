/* Finite-difference checks of the transformer ops: layer_norm (affine and
 * not, a large mean), gelu, and scaled dot-product attention (self and cross,
 * with and without a key-padding mask, through strided inputs, and a whole
 * self-attention block where q, k and v come from one input). */
#include "gradcheck.h"

#define EPS 1e-2
#define TOL 2e-3  /* errors measured ~1e-4 here; the project default is 2e-2 */

static int f_layer_norm(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  (void)ctx;
  return ser_layer_norm(out, in[0], in[1], in[2], 1e-5);
}

static int f_layer_norm_plain(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_layer_norm(out, in[0], NULL, NULL, *(double *)ctx);
}

GRADCHECK_CASE(LAYER_NORM, layer_norm_affine_3d) {
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 3, 6), 1), gc_uniform(1, SER_DIMS(6), 0.5f, 1.5f, 1),
                       gc_randn(1, SER_DIMS(6), 1)};
  float *x = ser_tensor_data(in[0]);
  for (int i = 0; i < 36; i++) x[i] += 3.0f; /* a mean far from 0 */
  gc_assert(f_layer_norm, NULL, 3, in, EPS, TOL);
  gc_release(3, in);
}

GRADCHECK_CASE(LAYER_NORM, layer_norm_no_affine_large_eps) {
  double eps = 0.5;
  ser_tensor *x = gc_randn(2, SER_DIMS(4, 5), 1);
  gc_assert(f_layer_norm_plain, &eps, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

static int f_gelu(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  (void)ctx;
  return ser_gelu(out, in[0]);
}

GRADCHECK_CASE(GELU, gelu) {
  ser_tensor *x = gc_uniform(2, SER_DIMS(3, 7), -4.0f, 4.0f, 1);
  gc_assert(f_gelu, NULL, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

typedef struct attn_ctx {
  const int32_t *len;
  int heads;
  double scale;
} attn_ctx;

static int f_attention(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  attn_ctx *c = ctx;
  return ser_scaled_dot_product_attention(out, in[0], in[1], in[2], c->len, c->heads, c->scale);
}

GRADCHECK_CASE(ATTENTION, attention_cross_no_mask) {
  attn_ctx c = {NULL, 2, 0.6};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 3, 6), 1), gc_randn(3, SER_DIMS(2, 5, 6), 1),
                       gc_randn(3, SER_DIMS(2, 5, 6), 1)};
  gc_assert(f_attention, &c, 3, in, EPS, TOL);
  gc_release(3, in);
}

/* lengths 2 and 4 of 4 keys; the masked keys' gradient is checked to be 0 by
 * the finite difference too (their numeric derivative is exactly 0) */
GRADCHECK_CASE(ATTENTION, attention_self_key_padding_mask) {
  const int32_t len[2] = {2, 4};
  attn_ctx c = {len, 3, 0.5};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 4, 6), 1), gc_randn(3, SER_DIMS(2, 4, 6), 1),
                       gc_randn(3, SER_DIMS(2, 4, 6), 1)};
  gc_assert(f_attention, &c, 3, in, EPS, TOL);
  gc_release(3, in);
}

/* q, k, v as non-contiguous views (a permuted [B, E, T] tensor) */
static int f_attention_strided(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  attn_ctx *c = ctx;
  ser_tensor *qt = NULL, *kt = NULL;
  int rc = ser_permute(&qt, in[0], (int[]){0, 2, 1});
  if (!rc) rc = ser_permute(&kt, in[1], (int[]){0, 2, 1});
  if (!rc) rc = ser_scaled_dot_product_attention(out, qt, kt, kt, c->len, c->heads, c->scale);
  ser_tensor_release(qt);
  ser_tensor_release(kt);
  return rc;
}

GRADCHECK_CASE(ATTENTION, attention_strided_inputs_k_is_v) {
  const int32_t len[2] = {3, 1};
  attn_ctx c = {len, 1, 0.7};
  ser_tensor *in[2] = {gc_randn(3, SER_DIMS(2, 4, 2), 1), gc_randn(3, SER_DIMS(2, 4, 3), 1)};
  gc_assert(f_attention_strided, &c, 2, in, EPS, TOL);
  gc_release(2, in);
}

/* x -> q, k, v projections -> attention -> output projection: x's gradient
 * sums three paths; the layer Whisper's encoder is made of. */
static int f_self_attention_block(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  attn_ctx *c = ctx;
  ser_tensor *q = NULL, *k = NULL, *v = NULL, *a = NULL;
  int rc = ser_linear(&q, in[0], in[1], in[2]);
  if (!rc) rc = ser_linear(&k, in[0], in[3], NULL);
  if (!rc) rc = ser_linear(&v, in[0], in[4], NULL);
  if (!rc) rc = ser_scaled_dot_product_attention(&a, q, k, v, c->len, c->heads, c->scale);
  if (!rc) rc = ser_linear(out, a, in[5], NULL);
  ser_tensor_release(q);
  ser_tensor_release(k);
  ser_tensor_release(v);
  ser_tensor_release(a);
  return rc;
}

GRADCHECK_CASE(ATTENTION, attention_self_attention_block) {
  const int32_t len[2] = {5, 3};
  attn_ctx c = {len, 2, 0.5};
  ser_tensor *in[6] = {gc_randn(3, SER_DIMS(2, 5, 4), 1), gc_uniform(2, SER_DIMS(4, 4), -0.5f, 0.5f, 1),
                       gc_randn(1, SER_DIMS(4), 1),        gc_uniform(2, SER_DIMS(4, 4), -0.5f, 0.5f, 1),
                       gc_uniform(2, SER_DIMS(4, 4), -0.5f, 0.5f, 1), gc_uniform(2, SER_DIMS(4, 4), -0.5f, 0.5f, 1)};
  gc_assert(f_self_attention_block, &c, 6, in, EPS, TOL);
  gc_release(6, in);
}
