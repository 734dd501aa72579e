/* Differentiable shape ops. view/permute/narrow/select return views sharing
 * the input's storage; contiguous/cat copy. Dims are 0-based. */
#ifndef SER_OPS_SHAPE_H
#define SER_OPS_SHAPE_H

#include "../autograd/autograd.h"

int ser_view(ser_tensor **out, ser_tensor *x, int ndim, const int64_t *shape);     /* x contiguous; one -1 */
int ser_reshape(ser_tensor **out, ser_tensor *x, int ndim, const int64_t *shape);  /* copies if needed */
int ser_permute(ser_tensor **out, ser_tensor *x, const int *perm);
int ser_transpose(ser_tensor **out, ser_tensor *x, int d0, int d1);
int ser_narrow(ser_tensor **out, ser_tensor *x, int dim, int64_t start, int64_t length);
int ser_select(ser_tensor **out, ser_tensor *x, int dim, int64_t index);
int ser_contiguous(ser_tensor **out, ser_tensor *x);                                /* x itself if contiguous */
int ser_cat(ser_tensor **out, ser_tensor *const *xs, int n, int dim);
int ser_squeeze(ser_tensor **out, ser_tensor *x, int dim);     /* dim < 0: all size-1 dims */
int ser_unsqueeze(ser_tensor **out, ser_tensor *x, int dim);   /* new size-1 dim at position dim */
int ser_flatten(ser_tensor **out, ser_tensor *x, int start, int end);

int ser_view_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_permute_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_narrow_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_select_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_contiguous_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_cat_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);

#endif
