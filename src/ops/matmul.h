/* Matrix product through OpenBLAS cblas_sgemm, differentiable.
 *   a [..., n, k] @ b [k, m]        -> [..., n, m]   (one GEMM over all leading rows)
 *   a [B..., n, k] @ b [B..., k, m] -> [B..., n, m]  (equal batch dims)
 * 1-D operands follow PyTorch: a [k] is a row vector, b [k] a column vector,
 * and the added dim is removed from the result. */
#ifndef SER_OPS_MATMUL_H
#define SER_OPS_MATMUL_H

#include "../autograd/autograd.h"

int ser_matmul(ser_tensor **out, ser_tensor *a, ser_tensor *b);
int ser_matmul_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);

#endif
