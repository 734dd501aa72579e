/* safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "F32", "shape": [2,3], "data_offsets": [begin, end]}, ...}
 * then the tensor bytes (little-endian, C order); offsets are relative to the
 * end of the header. This is the checkpoint format: tensor names are PyTorch
 * state_dict keys, so files move between serlua and PyTorch.
 *
 * Writing: float32 tensors, names sorted, data in name order, header padded
 * with spaces to a multiple of 8; written to a temp file in the same folder,
 * fsync'd and renamed over the target (a crash leaves the old file or the new
 * one, never half of one).
 *
 * Reading validates everything before returning anything: header length
 * within the file, JSON (parsed with cJSON), each entry's dtype, shape and
 * offsets (inside the data, exactly numel·size bytes, no overlaps or gaps,
 * covering the data), duplicate names, metadata values being strings.
 * F32 is read as is; F64, F16, BF16 and the integer/bool dtypes are converted
 * to float32 (PyTorch state_dicts hold int64 num_batches_tracked). */
#ifndef SER_IO_SAFETENSORS_H
#define SER_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"

/* The metadata key and value that mark a serlua checkpoint and its version. */
#define SER_CHECKPOINT_FORMAT_KEY "format"
#define SER_CHECKPOINT_FORMAT "serlua-1"

/* Largest header accepted (the reference implementation's limit). */
#define SER_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef struct ser_safetensors {
  int n;
  char **names;          /* in file order of their data */
  ser_tensor **tensors;  /* float32, contiguous */
  int n_meta;
  char **meta_keys;
  char **meta_values;
} ser_safetensors;

/* Writes n tensors and n_meta string pairs (either count may be 0). Names must
 * be unique, non-empty and not "__metadata__". */
int ser_safetensors_write(const char *path, int n, const char *const *names, ser_tensor *const *tensors, int n_meta,
                          const char *const *meta_keys, const char *const *meta_values);

/* Reads a file; on failure *out is NULL and the message names the file and the problem. */
int ser_safetensors_read(ser_safetensors **out, const char *path);
/* The same from a memory buffer (label names it in messages). */
int ser_safetensors_parse(ser_safetensors **out, const unsigned char *buf, size_t len, const char *label);
void ser_safetensors_free(ser_safetensors *st); /* NULL-safe */
/* IEEE 754 half precision -> float (also used by the .pt reader, torch_zip.c). */
float ser_f16_to_f32(uint16_t h);
/* Value of a metadata key, or NULL. */
const char *ser_safetensors_meta(const ser_safetensors *st, const char *key);

#endif
