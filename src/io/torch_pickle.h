/* A restricted unpickler for the data.pkl of torch.save(model.state_dict())
 * (PyTorch >= 1.6 zip format, pickle protocol 2). Nothing is executed: the pickle
 * is read as data, and only what a state_dict needs is accepted, as
 * torch.load(weights_only=True) does:
 *
 *   opcodes  PROTO STOP MARK NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1
 *            BINFLOAT BINUNICODE SHORT_BINSTRING EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
 *            EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS BINPUT LONG_BINPUT
 *            BINGET LONG_BINGET GLOBAL REDUCE BUILD BINPERSID
 *   globals  collections.OrderedDict (called with no arguments),
 *            torch._utils._rebuild_tensor_v2 (storage, offset, size, stride,
 *              requires_grad, backward_hooks[, metadata]),
 *            torch.FloatStorage / HalfStorage / BFloat16Storage / LongStorage
 *              (only inside a persistent id)
 *   BUILD    only on a dict (the state_dict's _metadata attribute, ignored)
 *   persistent ids  ('storage', <storage class>, key, location, numel)
 *
 * Anything else is refused with a message naming it (e.g. "GLOBAL os system is
 * not allowed"). The result must be a dict of string names to tensors. Limits:
 * stack depth, nesting of MARKs, memo indices, string lengths and dimensions are
 * bounded; every read is checked against the end of the buffer. The storages'
 * bytes live elsewhere (torch_pt.c reads them from the zip and checks each view
 * against its storage). */
#ifndef SER_IO_TORCH_PICKLE_H
#define SER_IO_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"

typedef enum { SER_TORCH_F32, SER_TORCH_F16, SER_TORCH_BF16, SER_TORCH_I64 } ser_torch_dtype;

#define SER_TORCH_MAX_STACK 100000    /* values on the pickle stack */
#define SER_TORCH_MAX_MARKS 1000      /* nested MARKs */
#define SER_TORCH_MAX_MEMO (1 << 20)  /* memo indices 0 .. MAX-1 */
#define SER_TORCH_MAX_KEY 64          /* storage key length ([A-Za-z0-9_]) */

typedef struct ser_torch_entry {
  char *name;            /* the state_dict key */
  char *storage;         /* storage key: the archive's data/<storage> record */
  ser_torch_dtype dtype;
  int64_t storage_numel; /* elements of the storage, from its persistent id */
  int64_t offset;        /* storage offset, in elements */
  int ndim;
  int64_t shape[SER_MAX_DIMS];
  int64_t stride[SER_MAX_DIMS];
} ser_torch_entry;

typedef struct ser_torch_state {
  int n;
  ser_torch_entry *entries; /* in the dict's order */
} ser_torch_state;

/* Element size of a storage dtype in bytes, and its PyTorch storage class name. */
int ser_torch_dtype_size(ser_torch_dtype dt);
const char *ser_torch_dtype_name(ser_torch_dtype dt);

/* Parses a state_dict pickle; label names it in messages ("file.pt: data.pkl").
 * On failure *out is NULL and the message says what was met, at which byte. */
int ser_torch_unpickle(ser_torch_state **out, const unsigned char *buf, size_t len, const char *label);
void ser_torch_state_free(ser_torch_state *s); /* NULL-safe */

#endif
