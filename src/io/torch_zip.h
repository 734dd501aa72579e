/* PyTorch checkpoints written by torch.save(model.state_dict()) in PyTorch >= 1.6:
 * a zip archive (read with libzip) holding
 *   <archive>/data.pkl     the state_dict as a pickle (torch_pickle.h reads it without
 *                          executing anything)
 *   <archive>/data/<key>   one record per storage: its raw little-endian elements
 *   <archive>/version, <archive>/byteorder (newer versions; "little" is required)
 * Every tensor is a view (offset, size, stride) of a storage; each is checked against
 * its storage's record (size = numel x element size, the view inside it) and copied
 * into a contiguous float32 tensor (float16, bfloat16 and int64 converted). Storages
 * shared by several tensors are read once. Records are read in bounded chunks, so a
 * record that claims more bytes than it holds costs no more memory than it holds.
 * The older non-zip torch.save format (pickles only) is refused with a message saying
 * how to re-save. */
#ifndef SER_IO_TORCH_ZIP_H
#define SER_IO_TORCH_ZIP_H

#include <stddef.h>

#include "safetensors.h"

#define SER_TORCH_MAX_PICKLE (64u << 20) /* bytes of data.pkl accepted */

/* What a file's first bytes say: 1 a zip archive (PyTorch >= 1.6), 2 the older format
 * (torch.save before 1.6 or with _use_new_zipfile_serialization=False: pickles starting
 * with torch's magic number), 0 anything else, safetensors included (also when the file
 * cannot be read: the caller's own reader reports that). */
int ser_torch_sniff(const char *path);

/* Reads a .pt file / buffer into names and float32 tensors (no metadata: n_meta = 0).
 * On failure *out is NULL and the message names the file and the problem. */
int ser_torch_read(ser_safetensors **out, const char *path);
int ser_torch_parse(ser_safetensors **out, const unsigned char *buf, size_t len, const char *label);

#endif
