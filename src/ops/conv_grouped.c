/* Grouped 1-d convolution (see conv_grouped.h): one ungrouped convolution per
 * (image, group) on the group's slice of channels, which is contiguous within
 * an image in [B, C, L]. */
#include "conv_grouped.h"

#include <stdio.h>

#include "../core/error.h"

/* The geometry of one (image, group) convolution. */
static int group_geom(ser_conv_geom *one, const ser_conv_geom *g, int groups, const char *op) {
  if (groups < 1 || g->C % groups || g->OC % groups)
    return ser_error(SER_EINVAL, "%s: %d groups must divide the %d input and %d output channels", op, groups, g->C,
                     g->OC);
  if (g->H != 1 || g->KH != 1)
    return ser_error(SER_EINVAL, "%s: only 1-d (H = KH = 1) is grouped, got H %d, KH %d", op, g->H, g->KH);
  *one = *g;
  one->B = 1;
  one->C = g->C / groups;
  one->OC = g->OC / groups;
  return ser_conv_geom_init(one, op);
}

int ser_conv1d_grouped_forward(float *out, const float *in, const float *weight, const float *bias, int groups,
                               const ser_conv_geom *g) {
  ser_conv_geom one;
  int rc = group_geom(&one, g, groups, "conv1d grouped");
  if (rc) return rc;
  const int64_t W = g->W, OW = one.OW, wsz = (int64_t)one.OC * one.C * one.KW;
  for (int b = 0; b < g->B; b++)
    for (int k = 0; k < groups; k++) {
      const float *x = in + ((int64_t)b * g->C + (int64_t)k * one.C) * W;
      float *y = out + ((int64_t)b * g->OC + (int64_t)k * one.OC) * OW;
      if ((rc = ser_conv2d_forward(y, x, weight + k * wsz, bias ? bias + (int64_t)k * one.OC : NULL, &one)))
        return rc;
    }
  return 0;
}

int ser_conv1d_grouped_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                const float *weight, int groups, const ser_conv_geom *g) {
  ser_conv_geom one;
  int rc = group_geom(&one, g, groups, "conv1d grouped backward");
  if (rc) return rc;
  const int64_t W = g->W, OW = one.OW, wsz = (int64_t)one.OC * one.C * one.KW;
  for (int b = 0; b < g->B; b++)
    for (int k = 0; k < groups; k++) {
      const int64_t xo = ((int64_t)b * g->C + (int64_t)k * one.C) * W;
      const int64_t yo = ((int64_t)b * g->OC + (int64_t)k * one.OC) * OW;
      if ((rc = ser_conv2d_backward(din ? din + xo : NULL, dweight ? dweight + k * wsz : NULL,
                                    dbias ? dbias + (int64_t)k * one.OC : NULL, dout + yo, in + xo, weight + k * wsz,
                                    &one)))
        return rc;
    }
  return 0;
}

/* ---- autograd op ---- */

/* iarg: stride, padding, dilation, groups */
static int geom_of(ser_conv_geom *g, const ser_tensor *x, const ser_tensor *w, const int64_t *arg, const char *op) {
  for (int i = 0; i < 3; i++)
    if (x->shape[i] > 0x3fffffff || w->shape[i] > 0x3fffffff)
      return ser_error(SER_EINVAL, "%s: dimension too large; input %s, weight %s", op, SER_SHAPE(x), SER_SHAPE(w));
  *g = (ser_conv_geom){.B = (int)x->shape[0], .C = (int)x->shape[1], .H = 1, .W = (int)x->shape[2],
                       .OC = (int)w->shape[0], .KH = 1, .KW = (int)w->shape[2], .sh = 1, .sw = (int)arg[0], .ph = 0,
                       .pw = (int)arg[1], .dh = 1, .dw = (int)arg[2]};
  int rc = ser_conv_geom_init(g, op);
  if (rc) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ser_errmsg());
    return ser_error(rc, "%s; input %s, weight %s", msg, SER_SHAPE(x), SER_SHAPE(w));
  }
  return 0;
}

int ser_conv1d_grouped(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, int groups,
                       const ser_conv_opts *o) {
  const char *op = "conv1d grouped";
  *out = NULL;
  if (!x || !w) return ser_error(SER_EINVAL, "%s: input and weight are required", op);
  if (x->ndim != 3) return ser_error(SER_EINVAL, "%s: input must be 3D [B,C,L], got %s", op, SER_SHAPE(x));
  if (w->ndim != 3) return ser_error(SER_EINVAL, "%s: weight must be 3D [OC,C/groups,K], got %s", op, SER_SHAPE(w));
  if (groups < 1 || x->shape[1] % groups || w->shape[0] % groups)
    return ser_error(SER_EINVAL, "%s: %d groups must divide the input's %lld channels and the weight's %lld outputs; "
                     "input %s, weight %s", op, groups, (long long)x->shape[1], (long long)w->shape[0], SER_SHAPE(x),
                     SER_SHAPE(w));
  if (x->shape[1] / groups != w->shape[1])
    return ser_error(SER_EINVAL, "%s: input has %lld channels in %d groups (%lld each), weight expects %lld per group; "
                     "input %s, weight %s", op, (long long)x->shape[1], groups, (long long)(x->shape[1] / groups),
                     (long long)w->shape[1], SER_SHAPE(x), SER_SHAPE(w));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return ser_error(SER_EINVAL, "%s: bias must be [%lld] (one per output channel), got %s; weight %s", op,
                     (long long)w->shape[0], SER_SHAPE(b), SER_SHAPE(w));
  ser_conv_opts d = SER_CONV_OPTS_DEFAULT;
  if (!o) o = &d;
  const int64_t arg[4] = {o->stride[0], o->padding[0], o->dilation[0], groups};
  ser_conv_geom g;
  int rc = geom_of(&g, x, w, arg, op);
  if (rc) return rc;
  ser_tensor *y = ser_tensor_empty(3, SER_DIMS(g.B, g.OC, g.OW));
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  ser_tensor *bc = b ? ser_tensor_contiguous_raw(b) : NULL;
  rc = SER_ENOMEM;
  if (y && xc && wc && (!b || bc))
    rc = ser_conv1d_grouped_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_data(wc),
                                    bc ? ser_tensor_data(bc) : NULL, groups, &g);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  ser_tensor_release(bc);
  if (rc) {
    ser_tensor_release(y);
    return ser_error_prefix(rc, "%s", op);
  }
  ser_tensor *inputs[3] = {x, w, b};
  ser_node *node = NULL;
  if ((rc = ser_autograd_record(y, SER_OP_CONV1D_GROUPED, 3, inputs, &node))) {
    ser_tensor_release(y);
    return rc;
  }
  if (node)
    for (int i = 0; i < 4; i++) node->iarg[i] = arg[i];
  *out = y;
  return 0;
}

int ser_conv1d_grouped_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  const char *op = "conv1d grouped backward";
  ser_tensor *x = node->inputs[0], *w = node->inputs[1];
  ser_conv_geom g;
  int rc = geom_of(&g, x, w, node->iarg, op);
  if (rc) return rc;
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  rc = SER_ENOMEM;
  if (xc && wc)
    rc = ser_conv1d_grouped_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL, gin[1] ? ser_tensor_data(gin[1]) : NULL,
                                     (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL,
                                     ser_tensor_data(gout), ser_tensor_data(xc), ser_tensor_data(wc),
                                     (int)node->iarg[3], &g);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  return rc ? ser_error_prefix(rc, "%s", op) : 0;
}
