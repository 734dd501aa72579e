/* Finite-difference gradient checks, one binary (test_gradcheck) for every op.
 *
 * Each case registers itself with the op it checks:
 *
 *   GRADCHECK_CASE(CONV2D, conv2d_padded) {
 *     ser_tensor *x = gc_randn(2, SER_DIMS(2, 3), 1);   // requires grad
 *     ...
 *     gc_assert(my_fn, &ctx, 2, (ser_tensor *[]){x, w}, 1e-2, 1e-2);
 *   }
 *
 * The final test walks ser_op_table and fails for any op that has no case or
 * whose case never ran the op's backward. */
#ifndef SER_TEST_GRADCHECK_H
#define SER_TEST_GRADCHECK_H

#include "../lib/fixture.h"

void gc_register(const char *name, ser_op op, void (*fn)(void **state));

#define GRADCHECK_CASE(OP, name)                                                          \
  static void gc_##name(void **state);                                                    \
  __attribute__((constructor)) static void gc_register_##name(void) {                     \
    gc_register(#name, SER_OP_##OP, gc_##name);                                           \
  }                                                                                       \
  static void gc_##name(void **state)

/* A tensor of N(0,1) values from a fixed per-call seed; requires_grad as given. */
ser_tensor *gc_randn(int ndim, const int64_t *shape, int requires_grad);
/* Uniform in [lo, hi). */
ser_tensor *gc_uniform(int ndim, const int64_t *shape, float lo, float hi, int requires_grad);
/* Runs ser_gradcheck and fails the test with the core's message if it does not pass. */
void gc_assert(ser_gradcheck_fn f, void *ctx, int n, ser_tensor *const *inputs, double eps, double tol);
/* Releases n tensors. */
void gc_release(int n, ser_tensor *const *ts);

#endif
