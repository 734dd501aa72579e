/* The tensor wrapper of the encoders' forward (forward_tensor.h). */
#include "pretrained/forward_tensor.h"

#include "core/error.h"

int ser_encoder_forward_tensor(ser_tensor **out, ser_tensor **hidden, const ser_tensor *x, const int32_t *lengths,
                               const void *enc, ser_encoder_run_fn run, ser_encoder_dims d, const char *who) {
  *out = NULL;
  int rc;
  ser_tensor *xc = ser_tensor_contiguous_raw((ser_tensor *)x);
  ser_tensor *y = xc ? ser_tensor_empty(3, SER_DIMS(d.B, d.frames, d.d_model)) : NULL;
  ser_tensor *hs = y && hidden ? ser_tensor_empty(4, SER_DIMS(d.layers + 1, d.B, d.frames, d.d_model)) : NULL;
  if (!y || (hidden && !hs)) {
    rc = ser_error(SER_ENOMEM, "%s encoder: out of memory for the outputs of %s", who, SER_SHAPE(x));
    goto fail;
  }
  if ((rc = run(enc, ser_tensor_data(y), hs ? ser_tensor_data(hs) : NULL, ser_tensor_data(xc), lengths, d.B, d.n)))
    goto fail;
  if (hidden) {
    if ((rc = ser_tensor_unbind_raw(hidden, hs))) goto fail; /* [L+1, B, T, d] -> L+1 views */
    ser_tensor_release(hs);
  }
  ser_tensor_release(xc);
  *out = y;
  return 0;
fail:
  ser_tensor_release(xc);
  ser_tensor_release(y);
  ser_tensor_release(hs);
  return rc;
}
