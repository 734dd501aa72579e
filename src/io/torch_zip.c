/* PyTorch .pt (zip) reader: libzip for the archive, torch_pickle.c for data.pkl,
 * then every tensor view checked against its storage record and copied to float32. */
#include "torch_zip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "../core/error.h"
#include "../core/half.h"
#include "torch_pickle.h"

/* A zip starts with a local file header "PK\3\4" (its byte 8, the compression method, is 0
 * or 8) or, empty, with the end record "PK\5\6". A safetensors file starts with its header
 * length and then the JSON's '{' at byte 8, and "PK\5\6" as a length would exceed the
 * 100 MiB limit: the two cannot be confused. The old format starts with PROTO 2 and LONG1
 * of torch's 10-byte magic number. */
int ser_torch_sniff(const char *path) {
  static const unsigned char legacy[14] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  unsigned char head[14] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  const size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  if (n >= 9 && !memcmp(head, "PK\3\4", 4) && head[8] != '{') return 1;
  if (n >= 4 && !memcmp(head, "PK\5\6", 4)) return 1;
  if (n == sizeof legacy && !memcmp(head, legacy, sizeof legacy)) return 2;
  return 0;
}

/* A record's bytes, read in chunks of at most 1 MiB more than already arrived;
 * more than max bytes is an error. */
static int read_record(zip_t *za, zip_int64_t idx, const char *name, uint64_t max, unsigned char **out, size_t *len,
                       const char *label) {
  *out = NULL;
  *len = 0;
  zip_stat_t sb;
  zip_stat_init(&sb);
  if (zip_stat_index(za, (zip_uint64_t)idx, 0, &sb) < 0)
    return ser_error(SER_EFORMAT, "%s: record '%s': %s", label, name, zip_strerror(za));
  if ((sb.valid & ZIP_STAT_SIZE) && sb.size > max)
    return ser_error(SER_EFORMAT, "%s: record '%s' holds %llu bytes; expected at most %llu", label, name,
                     (unsigned long long)sb.size, (unsigned long long)max);
  zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
  if (!zf) return ser_error(SER_EFORMAT, "%s: record '%s' cannot be opened: %s", label, name, zip_strerror(za));
  size_t cap = 0, n = 0;
  unsigned char *buf = NULL;
  int rc = 0;
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        rc = ser_error(SER_EFORMAT, "%s: record '%s' holds more than %llu bytes", label, name, (unsigned long long)max);
        break;
      }
      const size_t grow = cap < ((size_t)1 << 20) ? (cap ? cap : 4096) : ((size_t)1 << 20);
      unsigned char *b = realloc(buf, cap + grow + 1);
      if (!b) {
        rc = ser_error(SER_ENOMEM, "%s: out of memory reading record '%s'", label, name);
        break;
      }
      buf = b;
      cap += grow;
    }
    const zip_int64_t got = zip_fread(zf, buf + n, cap - n);
    if (got < 0) {
      rc = ser_error(SER_EFORMAT, "%s: record '%s' is damaged: %s", label, name, zip_file_strerror(zf));
      break;
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  zip_fclose(zf);
  if (!rc && n > max)
    rc = ser_error(SER_EFORMAT, "%s: record '%s' holds %zu bytes; expected at most %llu", label, name, n,
                   (unsigned long long)max);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return 0;
}

typedef struct storage {
  const char *key;
  unsigned char *bytes;
  size_t len;
} storage;

static float element(const unsigned char *p, ser_torch_dtype dt) {
  switch (dt) {
    case SER_TORCH_F32: {
      uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      float f;
      memcpy(&f, &u, 4);
      return f;
    }
    case SER_TORCH_F16: return ser_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case SER_TORCH_BF16: return ser_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case SER_TORCH_I64: {
      uint64_t u = 0;
      for (int i = 7; i >= 0; i--) u = (u << 8) | p[i];
      return (float)(int64_t)u;
    }
  }
  return 0.0f;
}

/* The view (offset, size, stride) of a storage, copied in C order as float32. */
static ser_tensor *gather(const ser_torch_entry *e, const unsigned char *bytes, const char *label) {
  ser_tensor *t = ser_tensor_empty(e->ndim, e->shape);
  if (!t) {
    ser_error_prefix(SER_ENOMEM, "%s: tensor '%s'", label, e->name);
    return NULL;
  }
  const int64_t numel = ser_tensor_numel(t);
  const int size = ser_torch_dtype_size(e->dtype);
  float *dst = ser_tensor_data(t);
  int64_t idx[SER_MAX_DIMS] = {0}, at = e->offset;
  for (int64_t j = 0; j < numel; j++) {
    dst[j] = element(bytes + (size_t)at * (size_t)size, e->dtype);
    for (int d = e->ndim - 1; d >= 0; d--) { /* odometer over the indices, last fastest */
      if (++idx[d] < e->shape[d]) {
        at += e->stride[d];
        break;
      }
      at -= (idx[d] - 1) * e->stride[d];
      idx[d] = 0;
    }
  }
  return t;
}

static int has_suffix(const char *s, const char *suf) {
  const size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The archive's folder: the X of the one X/data.pkl record. */
static int find_archive(zip_t *za, char *prefix, size_t cap, zip_int64_t *pkl, const char *label) {
  const zip_int64_t n = zip_get_num_entries(za, 0);
  int found = 0, torchscript = 0;
  for (zip_int64_t i = 0; i < n; i++) {
    const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
    if (!name) continue;
    const char *slash = strchr(name, '/');
    if (slash && strcmp(slash, "/data.pkl") == 0) {
      if (found++) return ser_error(SER_EFORMAT, "%s: more than one data.pkl (%s/data.pkl and %s); expected one "
                                    "torch.save archive", label, prefix, name);
      const size_t len = (size_t)(slash - name);
      if (len == 0 || len >= cap)
        return ser_error(SER_EFORMAT, "%s: archive folder of '%s' is empty or longer than %zu bytes", label, name, cap - 1);
      memcpy(prefix, name, len);
      prefix[len] = '\0';
      *pkl = i;
    }
    if (has_suffix(name, "/constants.pkl") || strstr(name, "/code/")) torchscript = 1;
  }
  if (found) return 0;
  if (torchscript)
    return ser_error(SER_EFORMAT, "%s: a TorchScript archive (torch.jit.save), not a state_dict; save the weights with "
                     "torch.save(model.state_dict(), path)", label);
  return ser_error(SER_EFORMAT, "%s: a zip archive without <archive>/data.pkl (%lld records), so not a checkpoint of "
                   "torch.save; expected torch.save(model.state_dict(), path)", label, (long long)n);
}

static int load(ser_safetensors **out, zip_t *za, const char *label) {
  char prefix[256], rec[512];
  zip_int64_t pkl = -1;
  int rc = find_archive(za, prefix, sizeof prefix, &pkl, label);
  if (rc) return rc;
  snprintf(rec, sizeof rec, "%s/byteorder", prefix);
  const zip_int64_t bo = zip_name_locate(za, rec, 0);
  if (bo >= 0) {
    unsigned char *b;
    size_t n;
    if ((rc = read_record(za, bo, rec, 16, &b, &n, label))) return rc;
    const int little = n == 6 && memcmp(b, "little", 6) == 0;
    free(b);
    if (!little) return ser_error(SER_EUNSUPPORTED, "%s: %s is not 'little': big-endian checkpoints are not supported",
                                  label, rec);
  }
  unsigned char *pk;
  size_t pk_len;
  snprintf(rec, sizeof rec, "%s/data.pkl", prefix);
  if ((rc = read_record(za, pkl, rec, SER_TORCH_MAX_PICKLE, &pk, &pk_len, label))) return rc;
  char plabel[1024];
  snprintf(plabel, sizeof plabel, "%s: %s", label, rec);
  ser_torch_state *st;
  rc = ser_torch_unpickle(&st, pk, pk_len, plabel);
  free(pk);
  if (rc) return rc;

  ser_safetensors *res = calloc(1, sizeof *res);
  storage *cache = calloc((size_t)st->n + 1, sizeof *cache);
  int n_cache = 0;
  if (res) {
    res->names = calloc((size_t)st->n + 1, sizeof(char *));
    res->tensors = calloc((size_t)st->n + 1, sizeof(ser_tensor *));
  }
  if (!res || !cache || !res->names || !res->tensors) rc = ser_error(SER_ENOMEM, "%s: out of memory", label);
  for (int i = 0; !rc && i < st->n; i++) {
    const ser_torch_entry *e = &st->entries[i];
    storage *s = NULL;
    for (int c = 0; c < n_cache && !s; c++)
      if (strcmp(cache[c].key, e->storage) == 0) s = &cache[c];
    const uint64_t want = (uint64_t)e->storage_numel * (uint64_t)ser_torch_dtype_size(e->dtype);
    if (!s) {
      snprintf(rec, sizeof rec, "%s/data/%s", prefix, e->storage);
      const zip_int64_t idx = zip_name_locate(za, rec, 0);
      if (idx < 0) {
        rc = ser_error(SER_EFORMAT, "%s: tensor '%s' uses storage '%s', but the archive has no record %s", label,
                       e->name, e->storage, rec);
        break;
      }
      s = &cache[n_cache++];
      s->key = e->storage;
      if ((rc = read_record(za, idx, rec, want, &s->bytes, &s->len, label))) break;
    }
    if ((uint64_t)s->len != want) {
      rc = ser_error(SER_EFORMAT, "%s: storage '%s' of tensor '%s' holds %zu bytes; its %lld %s elements need %llu "
                     "(truncated or damaged); nothing was loaded", label, e->storage, e->name, s->len,
                     (long long)e->storage_numel, ser_torch_dtype_name(e->dtype), (unsigned long long)want);
      break;
    }
    if (!(res->names[i] = strdup(e->name))) {
      rc = ser_error(SER_ENOMEM, "%s: out of memory", label);
      break;
    }
    res->n = i + 1;
    if (!(res->tensors[i] = gather(e, s->bytes, label))) rc = SER_ENOMEM;
  }
  for (int c = 0; c < n_cache; c++) free(cache[c].bytes);
  free(cache);
  ser_torch_state_free(st);
  if (rc) {
    ser_safetensors_free(res);
    return rc;
  }
  *out = res;
  return 0;
}

static int open_failed(int code, const char *label) {
  zip_error_t ze;
  zip_error_init_with_code(&ze, code);
  const int rc = ser_error(code == ZIP_ER_OPEN || code == ZIP_ER_READ ? SER_EIO : SER_EFORMAT,
                           "%s: not a readable zip archive (%s); a PyTorch checkpoint from torch.save is a complete zip "
                           "file (truncated or damaged?)", label, zip_error_strerror(&ze));
  zip_error_fini(&ze);
  return rc;
}

int ser_torch_read(ser_safetensors **out, const char *path) {
  *out = NULL;
  if (ser_torch_sniff(path) == 2)
    return ser_error(SER_EUNSUPPORTED, "%s: a PyTorch checkpoint in the format before 1.6 (a bare pickle); load it in "
                     "PyTorch and save it again with torch.save(state_dict, path), which writes the zip format", path);
  int code = 0;
  zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!za) {
    if (code == ZIP_ER_NOENT || code == ZIP_ER_OPEN)
      return ser_error(SER_EIO, "%s: cannot open the file", path);
    return open_failed(code, path);
  }
  const int rc = load(out, za, path);
  zip_discard(za);
  return rc;
}

int ser_torch_parse(ser_safetensors **out, const unsigned char *buf, size_t len, const char *label) {
  *out = NULL;
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
  if (!src) {
    zip_error_fini(&ze);
    return ser_error(SER_ENOMEM, "%s: out of memory", label);
  }
  zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
  if (!za) {
    zip_source_free(src);
    const int rc = open_failed(zip_error_code_zip(&ze), label);
    zip_error_fini(&ze);
    return rc;
  }
  zip_error_fini(&ze);
  const int rc = load(out, za, label);
  zip_discard(za);
  return rc;
}
