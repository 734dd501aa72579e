/* The identity of a pretrained encoder's files, and where a checkpoint's encoder is.
 *
 * A head trained on a frozen encoder records the encoder's folder and its identity; the C
 * inference API and the ONNX exporter refuse an encoder whose files have changed since.
 * The identity is the one ser.data.embedding_cache computes on the Lua side: the SHA-256 of
 * "weights\0<sha256 of model.safetensors>" followed, when the folder has a config.json, by
 * "\0config\0<sha256 of config.json>". */
#ifndef SER_PRETRAINED_IDENTITY_H
#define SER_PRETRAINED_IDENTITY_H

#include <stddef.h>

/* hex: 64 hex digits and a NUL. path: an encoder folder or its .safetensors file. Only
 * regular files are read, so a path naming a device (/dev/zero) is refused, not hashed
 * forever. 0 or a negative SER_E* code with the message set. */
int ser_encoder_identity(char hex[65], const char *path);

/* The encoder path a checkpoint names, as written when it exists, else relative to the
 * checkpoint's folder (a model moved together with its encoder). Returns path or buf. */
const char *ser_encoder_resolve(char *buf, size_t size, const char *path, const char *ckpt_path);

#endif
