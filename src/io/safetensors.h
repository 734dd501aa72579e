/* safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "F32", "shape": [2,3], "data_offsets": [begin, end]}, ...}
 * then the tensor bytes (little-endian, C order); offsets are relative to the
 * end of the header. This is the checkpoint format: tensor names are PyTorch
 * state_dict keys, so files move between serlua and PyTorch.
 *
 * Writing: float32 tensors (or, per tensor, F16 / BF16 rounded to nearest
 * even with ser_safetensors_write_as), names sorted, data in name order, header padded
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

#include "../core/half.h" /* the float16 / bfloat16 conversions the file formats use */
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

/* Storage types the writer can produce. */
typedef enum { SER_ST_F32 = 0, SER_ST_F16 = 1, SER_ST_BF16 = 2 } ser_st_dtype;
/* ser_safetensors_write with a dtype per tensor (dtypes NULL: all F32). Values
 * are rounded to nearest even; F16 overflow (|x| >= 65520) becomes infinity. */
int ser_safetensors_write_as(const char *path, int n, const char *const *names, ser_tensor *const *tensors,
                             const ser_st_dtype *dtypes, int n_meta, const char *const *meta_keys,
                             const char *const *meta_values);


/* Reads a file; on failure *out is NULL and the message names the file and the problem. */
int ser_safetensors_read(ser_safetensors **out, const char *path);
/* The same from a memory buffer (label names it in messages). */
int ser_safetensors_parse(ser_safetensors **out, const unsigned char *buf, size_t len, const char *label);
void ser_safetensors_free(ser_safetensors *st); /* NULL-safe */
/* Value of a metadata key, or NULL. */
const char *ser_safetensors_meta(const ser_safetensors *st, const char *key);

/* Reading by name from a large file (a full openai/whisper-* checkpoint holds a
 * decoder the encoder never needs): open reads and validates the header only
 * (every rule above, against the file's size), load reads one tensor's bytes
 * by offset and converts them to float32. Tensors are indexed 0..count-1 in
 * the order of their data. */
typedef struct ser_safetensors_file ser_safetensors_file;
int ser_safetensors_open(ser_safetensors_file **out, const char *path);
/* The same over a memory buffer (tests, fuzzing); buf must outlive the handle. */
int ser_safetensors_open_memory(ser_safetensors_file **out, const unsigned char *buf, size_t len, const char *label);
void ser_safetensors_close(ser_safetensors_file *sf); /* NULL-safe */
int ser_safetensors_count(const ser_safetensors_file *sf);
const char *ser_safetensors_name(const ser_safetensors_file *sf, int i);   /* NULL when out of range */
int ser_safetensors_find(const ser_safetensors_file *sf, const char *name);  /* index, or -1 */
int ser_safetensors_shape(const ser_safetensors_file *sf, int i, int64_t *shape /* [SER_MAX_DIMS] */); /* ndim */
const char *ser_safetensors_dtype(const ser_safetensors_file *sf, int i);  /* "F16", "F32", ... */
const char *ser_safetensors_file_meta(const ser_safetensors_file *sf, const char *key);
/* A new float32 tensor with tensor i's values; reads only its bytes. */
int ser_safetensors_load(ser_tensor **out, ser_safetensors_file *sf, int i);
/* Bytes read from the file so far (header included): tests check that unused tensors stay on disk. */
uint64_t ser_safetensors_bytes_read(const ser_safetensors_file *sf);

#endif
