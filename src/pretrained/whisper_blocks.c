/* The first n blocks of the Whisper encoder (see whisper_blocks.h): the
 * encoder's own forward on a shallow copy whose config counts n layers. The
 * copy shares every weight pointer, so nothing is duplicated. */
#include "pretrained/whisper_blocks.h"

#include "core/error.h"

static int check_blocks(const ser_whisper_encoder *enc, int n_blocks) {
  if (n_blocks < 0 || n_blocks > enc->cfg.layers)
    return ser_error(SER_EINVAL, "whisper encoder: %d blocks asked for, the encoder has %d (expected 0..%d)", n_blocks,
                     enc->cfg.layers, enc->cfg.layers);
  return 0;
}

int ser_whisper_encoder_forward_blocks(const ser_whisper_encoder *enc, float *hidden, const float *logmel,
                                       const int32_t *lengths, int B, int T, int n_blocks) {
  int rc = check_blocks(enc, n_blocks);
  if (rc) return rc;
  ser_whisper_encoder part = *enc;
  part.cfg.layers = n_blocks;
  return ser_whisper_encoder_forward(&part, NULL, hidden, logmel, lengths, B, T);
}

int ser_whisper_encoder_forward_blocks_tensor(const ser_whisper_encoder *enc, ser_tensor **hidden,
                                              const ser_tensor *x, const int32_t *lengths, int n_blocks) {
  int rc = check_blocks(enc, n_blocks);
  if (rc) return rc;
  ser_whisper_encoder part = *enc;
  part.cfg.layers = n_blocks;
  ser_tensor *out = NULL;
  rc = ser_whisper_encoder_forward_tensor(&part, &out, hidden, x, lengths);
  ser_tensor_release(out);
  return rc;
}
