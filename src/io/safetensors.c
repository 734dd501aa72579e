/* safetensors reader/writer (see safetensors.h for the format and the checks). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.h"
#include "../core/half.h"

/* ---- byte order ---- */

static int host_is_le(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

static uint64_t rd_le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* ---- dtypes ---- */

typedef enum { DT_F32, DT_F64, DT_F16, DT_BF16, DT_I64, DT_I32, DT_I16, DT_I8, DT_U64, DT_U32, DT_U16, DT_U8, DT_BOOL } dtype;
static const struct {
  const char *name;
  int size;
} dtypes[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
              {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},   {"BOOL", 1}};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

static int dtype_of(const char *s) {
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp(s, dtypes[i].name) == 0) return i;
  return -1;
}

static float convert_one(const unsigned char *p, int dt) {
  uint64_t u = rd_le(p, dtypes[dt].size);
  switch (dt) {
    case DT_F32: {
      const uint32_t b = (uint32_t)u;
      float f;
      memcpy(&f, &b, 4);
      return f;
    }
    case DT_F64: {
      double d;
      memcpy(&d, &u, 8);
      return (float)d;
    }
    case DT_F16: return ser_f16_to_f32((uint16_t)u);
    case DT_BF16: {
      const uint32_t b = (uint32_t)u << 16;
      float f;
      memcpy(&f, &b, 4);
      return f;
    }
    case DT_I64: return (float)(int64_t)u;
    case DT_I32: return (float)(int32_t)(uint32_t)u;
    case DT_I16: return (float)(int16_t)(uint16_t)u;
    case DT_I8: return (float)(int8_t)(uint8_t)u;
    case DT_BOOL: return u ? 1.0f : 0.0f;
    default: return (float)u; /* unsigned */
  }
}

/* ---- reading ---- */

void ser_safetensors_free(ser_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) {
    free(st->names[i]);
    ser_tensor_release(st->tensors[i]);
  }
  for (int i = 0; i < st->n_meta; i++) {
    free(st->meta_keys[i]);
    free(st->meta_values[i]);
  }
  free(st->names);
  free(st->tensors);
  free(st->meta_keys);
  free(st->meta_values);
  free(st);
}

const char *ser_safetensors_meta(const ser_safetensors *st, const char *key) {
  for (int i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

typedef struct entry {
  const char *name;
  int dtype;
  int ndim;
  int64_t shape[SER_MAX_DIMS];
  uint64_t begin, end;
} entry;

static int cmp_begin(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_uint(const cJSON *j, uint64_t *v) {
  if (!cJSON_IsNumber(j)) return 0;
  const double d = j->valuedouble;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
  *v = (uint64_t)d;
  return 1;
}

static int parse_entry(entry *e, const cJSON *j, const char *label) {
  e->name = j->string;
  if (!e->name || !*e->name)
    return ser_error(SER_EFORMAT, "%s: a tensor has an empty name; expected a state_dict key", label);
  if (!cJSON_IsObject(j))
    return ser_error(SER_EFORMAT, "%s: entry '%s' is not a JSON object; expected {\"dtype\", \"shape\", "
                     "\"data_offsets\"}", label, e->name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
    return ser_error(SER_EFORMAT, "%s: entry '%s' lacks a string \"dtype\", an array \"shape\" or an array "
                     "\"data_offsets\"", label, e->name);
  if ((e->dtype = dtype_of(dt->valuestring)) < 0)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' has dtype '%s'; supported: F32, F64, F16, BF16, I64, I32, I16, I8, "
                     "U64, U32, U16, U8, BOOL", label, e->name, dt->valuestring);
  e->ndim = cJSON_GetArraySize(sh);
  if (e->ndim > SER_MAX_DIMS)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' has %d dimensions, at most %d supported", label, e->name, e->ndim,
                     SER_MAX_DIMS);
  uint64_t numel = 1;
  for (int i = 0; i < e->ndim; i++) {
    uint64_t v;
    if (!json_uint(cJSON_GetArrayItem(sh, i), &v) || v > ((uint64_t)1 << 40))
      return ser_error(SER_EFORMAT, "%s: tensor '%s' has an invalid size at shape[%d]; expected a whole number >= 0",
                       label, e->name, i);
    e->shape[i] = (int64_t)v;
    numel = v == 0 ? 0 : numel * v;
    if (numel > ((uint64_t)1 << 40))
      return ser_error(SER_EFORMAT, "%s: tensor '%s' is too large", label, e->name);
  }
  if (cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &e->begin) ||
      !json_uint(cJSON_GetArrayItem(off, 1), &e->end) || e->end < e->begin)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' has invalid data_offsets; expected [begin, end] with 0 <= begin <= "
                     "end", label, e->name);
  if (e->end - e->begin != numel * (uint64_t)dtypes[e->dtype].size)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' (%s, %s) spans %llu bytes, its shape needs %llu", label, e->name,
                     dtypes[e->dtype].name, ser_shape_str(e->ndim, e->shape), (unsigned long long)(e->end - e->begin),
                     (unsigned long long)(numel * (uint64_t)dtypes[e->dtype].size));
  return 0;
}

static char *dupstr(const char *s) {
  const size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int parse_meta(ser_safetensors *st, const cJSON *m, const char *label) {
  if (!cJSON_IsObject(m))
    return ser_error(SER_EFORMAT, "%s: \"__metadata__\" is not a JSON object of strings", label);
  const int n = cJSON_GetArraySize(m);
  st->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  st->meta_values = calloc((size_t)n + 1, sizeof(char *));
  if (!st->meta_keys || !st->meta_values) return ser_error(SER_ENOMEM, "%s: out of memory", label);
  const cJSON *it;
  cJSON_ArrayForEach(it, m) {
    if (!cJSON_IsString(it))
      return ser_error(SER_EFORMAT, "%s: metadata value of '%s' is not a string (safetensors metadata maps strings "
                       "to strings)", label, it->string);
    st->meta_keys[st->n_meta] = dupstr(it->string);
    st->meta_values[st->n_meta] = dupstr(it->valuestring);
    st->n_meta++;
    if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
      return ser_error(SER_ENOMEM, "%s: out of memory", label);
  }
  return 0;
}

/* Reads the entries and metadata of a parsed header and checks that the
 * tensors tile the data_len data bytes exactly. *out_es (sorted by offset,
 * names pointing into root) is the caller's to free, also on failure. */
static int index_entries(entry **out_es, int *out_n, ser_safetensors *st, const cJSON *root, uint64_t data_len,
                         const char *label) {
  *out_n = 0;
  *out_es = NULL;
  if (!cJSON_IsObject(root))
    return ser_error(SER_EFORMAT, "%s: header is JSON but not an object of tensors", label);
  const int total = cJSON_GetArraySize(root);
  entry *es = calloc((size_t)total + 1, sizeof *es);
  if (!es) return ser_error(SER_ENOMEM, "%s: out of memory", label);
  *out_es = es;
  int n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, root) {
    if (strcmp(it->string, "__metadata__") == 0) {
      if (st->meta_keys) return ser_error(SER_EFORMAT, "%s: \"__metadata__\" appears twice", label);
      const int rc = parse_meta(st, it, label);
      if (rc) return rc;
      continue;
    }
    const int rc = parse_entry(&es[n], it, label);
    if (rc) return rc;
    for (int k = 0; k < n; k++)
      if (strcmp(es[k].name, es[n].name) == 0)
        return ser_error(SER_EFORMAT, "%s: tensor name '%s' appears twice in the header", label, es[n].name);
    n++;
  }
  /* The tensors must tile the data exactly: sorted by offset, each starts where
   * the previous ended, the last ends at the end of the file. */
  qsort(es, (size_t)n, sizeof *es, cmp_begin);
  uint64_t pos = 0;
  for (int k = 0; k < n; k++) {
    if (es[k].end > data_len)
      return ser_error(SER_EFORMAT, "%s: tensor '%s' has data_offsets [%llu, %llu] beyond the %llu data bytes "
                       "(truncated file?)", label, es[k].name, (unsigned long long)es[k].begin,
                       (unsigned long long)es[k].end, (unsigned long long)data_len);
    if (es[k].begin != pos)
      return ser_error(SER_EFORMAT, "%s: tensor '%s' starts at data byte %llu, expected %llu (%s)", label, es[k].name,
                       (unsigned long long)es[k].begin, (unsigned long long)pos,
                       es[k].begin < pos ? "it overlaps the previous tensor" : "a gap before it");
    pos = es[k].end;
  }
  if (pos != data_len)
    return ser_error(SER_EFORMAT, "%s: the tensors cover %llu data bytes but the file holds %llu", label,
                     (unsigned long long)pos, (unsigned long long)data_len);
  *out_n = n;
  return 0;
}

/* Converts numel little-endian values of dtype dt at src into float32. */
static void convert_into(float *dst, const unsigned char *src, int64_t numel, int dt) {
  if (dt == DT_F32 && host_is_le()) {
    memcpy(dst, src, (size_t)numel * 4);
    return;
  }
  const int sz = dtypes[dt].size;
  for (int64_t i = 0; i < numel; i++) dst[i] = convert_one(src + i * sz, dt);
}

static int parse_json(ser_safetensors *st, const cJSON *root, const unsigned char *data, uint64_t data_len,
                      const char *label) {
  entry *es;
  int n;
  int rc = index_entries(&es, &n, st, root, data_len, label);
  if (rc) goto done;
  st->names = calloc((size_t)n + 1, sizeof(char *));
  st->tensors = calloc((size_t)n + 1, sizeof(ser_tensor *));
  if (!st->names || !st->tensors) {
    rc = ser_error(SER_ENOMEM, "%s: out of memory", label);
    goto done;
  }
  for (int k = 0; k < n; k++) {
    ser_tensor *t = ser_tensor_empty(es[k].ndim, es[k].shape);
    char *name = dupstr(es[k].name);
    if (!t || !name) {
      ser_tensor_release(t);
      free(name);
      rc = ser_error_prefix(SER_ENOMEM, "%s: tensor '%s'", label, es[k].name);
      goto done;
    }
    st->names[k] = name;
    st->tensors[k] = t;
    st->n = k + 1;
    convert_into(ser_tensor_data(t), data + es[k].begin, ser_tensor_numel(t), es[k].dtype);
  }
done:
  free(es);
  return rc;
}

/* Parses and checks the hlen header bytes at h (JSON object, no raw control
 * bytes or escaped NULs, only padding after it). */
static int parse_header(cJSON **out, const unsigned char *h, uint64_t hlen, const char *label) {
  *out = NULL;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)hlen, &end, 0);
  if (!root) {
    const char *err = cJSON_GetErrorPtr();
    const long at = err ? (long)(err - (const char *)h) : -1;
    return ser_error(SER_EFORMAT, "%s: header is not valid JSON (error near header byte %ld of %llu)", label, at,
                     (unsigned long long)hlen);
  }
  /* JSON forbids raw control bytes; cJSON accepts them and ends a name at a
   * NUL, so "fc.weight\0junk" would load as "fc.weight" (found by fuzzing). */
  for (const char *p = (const char *)h; p < end; p++)
    if ((unsigned char)*p < 0x20 && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      cJSON_Delete(root);
      return ser_error(SER_EFORMAT, "%s: header holds a raw control byte 0x%02x at header byte %ld (not valid JSON)",
                       label, (unsigned)(unsigned char)*p, (long)(p - (const char *)h));
    }
  /* The escaped form "\u0000" decodes to a NUL too, with the same truncation.
   * Walk the strings (an escaped backslash is skipped as a pair, so "\\u0000"
   * is the harmless literal text). */
  for (const char *p = (const char *)h, *in = NULL; p < end; p++) {
    if (!in) {
      if (*p == '"') in = p;
    } else if (*p == '"') {
      in = NULL;
    } else if (*p == '\\' && p + 1 < end) {
      if (p[1] == 'u' && end - p >= 6 && strncmp(p + 2, "0000", 4) == 0) {
        cJSON_Delete(root);
        return ser_error(SER_EFORMAT, "%s: header holds an escaped NUL (\\u0000) in a string at header byte %ld; "
                         "names and metadata cannot contain NUL", label, (long)(p - (const char *)h));
      }
      p++;
    }
  }
  /* Only the space padding the writer adds may follow the JSON object. */
  for (const char *p = end; p < (const char *)h + hlen; p++)
    if (*p != ' ' && *p != '\0') {
      cJSON_Delete(root);
      return ser_error(SER_EFORMAT, "%s: unexpected bytes after the JSON header (at header byte %ld)", label,
                       (long)(p - (const char *)h));
    }
  *out = root;
  return 0;
}

/* The 8-byte header length, checked against the bytes that follow it. */
static int check_hlen(uint64_t hlen, uint64_t after, const char *label) {
  if (hlen > after)
    return ser_error(SER_EFORMAT, "%s: header length %llu is larger than the %llu bytes that follow it (truncated or "
                     "not a safetensors file)", label, (unsigned long long)hlen, (unsigned long long)after);
  if (hlen > SER_SAFETENSORS_MAX_HEADER)
    return ser_error(SER_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", label,
                     (unsigned long long)hlen, SER_SAFETENSORS_MAX_HEADER);
  return 0;
}

int ser_safetensors_parse(ser_safetensors **out, const unsigned char *buf, size_t len, const char *label) {
  *out = NULL;
  if (len < 8)
    return ser_error(SER_EFORMAT, "%s: truncated: %zu bytes, a safetensors file starts with an 8-byte header length",
                     label, len);
  const uint64_t hlen = rd_le(buf, 8);
  cJSON *root;
  int rc = check_hlen(hlen, len - 8, label);
  if (rc || (rc = parse_header(&root, buf + 8, hlen, label))) return rc;
  ser_safetensors *st = calloc(1, sizeof *st);
  if (!st) {
    cJSON_Delete(root);
    return ser_error(SER_ENOMEM, "%s: out of memory", label);
  }
  rc = parse_json(st, root, buf + 8 + hlen, len - 8 - hlen, label);
  cJSON_Delete(root);
  if (rc) {
    ser_safetensors_free(st);
    return rc;
  }
  *out = st;
  return 0;
}

/* Opens a regular file for reading; *size gets its length. */
static int open_regular(FILE **out, off_t *size, const char *path) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ser_error(SER_EIO, "cannot open '%s': %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return ser_error(SER_EIO, "'%s' is not a regular file", path);
  }
  *size = sb.st_size;
  *out = f;
  return 0;
}

int ser_safetensors_read(ser_safetensors **out, const char *path) {
  *out = NULL;
  FILE *f;
  off_t size;
  const int orc = open_regular(&f, &size, path);
  if (orc) return orc;
  const size_t len = (size_t)size;
  unsigned char *buf = malloc(len ? len : 1);
  if (!buf) {
    fclose(f);
    return ser_error(SER_ENOMEM, "'%s': out of memory reading %zu bytes", path, len);
  }
  const size_t got = fread(buf, 1, len, f);
  const int e = errno;
  fclose(f);
  if (got != len) {
    free(buf);
    return ser_error(SER_EIO, "cannot read '%s': %s", path, strerror(e));
  }
  const int rc = ser_safetensors_parse(out, buf, len, path);
  free(buf);
  return rc;
}

/* ---- reading by name: header first, then only the tensors asked for ---- */

struct ser_safetensors_file {
  FILE *f;
  char *label;
  cJSON *root;           /* entry names point into it */
  entry *es;             /* sorted by offset */
  int n;
  uint64_t data_start;   /* 8 + header length */
  uint64_t bytes_read;   /* header included */
  ser_safetensors *meta; /* only its metadata fields are used */
};

void ser_safetensors_close(ser_safetensors_file *sf) {
  if (!sf) return;
  if (sf->f) fclose(sf->f);
  cJSON_Delete(sf->root);
  free(sf->es);
  free(sf->label);
  ser_safetensors_free(sf->meta);
  free(sf);
}

/* Takes over f (closed on failure too). */
static int open_stream(ser_safetensors_file **out, FILE *f, const char *label) {
  *out = NULL;
  ser_safetensors_file *sf = calloc(1, sizeof *sf);
  if (!sf || !(sf->label = dupstr(label)) || !(sf->meta = calloc(1, sizeof *sf->meta))) {
    if (sf) free(sf->label);
    free(sf);
    fclose(f);
    return ser_error(SER_ENOMEM, "%s: out of memory", label);
  }
  sf->f = f;
  int rc = 0;
  unsigned char head[8];
  off_t size = -1;
  if (fseeko(f, 0, SEEK_END) == 0) size = ftello(f);
  if (size < 0 || fseeko(f, 0, SEEK_SET) != 0) {
    rc = ser_error(SER_EIO, "cannot seek in '%s': %s", label, strerror(errno));
    goto fail;
  }
  if (size < 8 || fread(head, 1, 8, f) != 8) {
    rc = ser_error(SER_EFORMAT, "%s: truncated: %lld bytes, a safetensors file starts with an 8-byte header length",
                   label, (long long)size);
    goto fail;
  }
  const uint64_t hlen = rd_le(head, 8);
  if ((rc = check_hlen(hlen, (uint64_t)size - 8, label))) goto fail;
  unsigned char *h = malloc(hlen ? hlen : 1);
  if (!h) {
    rc = ser_error(SER_ENOMEM, "%s: out of memory for a %llu-byte header", label, (unsigned long long)hlen);
    goto fail;
  }
  if (fread(h, 1, hlen, f) != hlen) {
    free(h);
    rc = ser_error(SER_EIO, "cannot read the header of '%s'", label);
    goto fail;
  }
  sf->bytes_read = 8 + hlen;
  rc = parse_header(&sf->root, h, hlen, label);
  free(h);
  if (rc) goto fail;
  sf->data_start = 8 + hlen;
  if ((rc = index_entries(&sf->es, &sf->n, sf->meta, sf->root, (uint64_t)size - 8 - hlen, label))) goto fail;
  *out = sf;
  return 0;
fail:
  ser_safetensors_close(sf);
  return rc;
}

int ser_safetensors_open(ser_safetensors_file **out, const char *path) {
  *out = NULL;
  FILE *f;
  off_t size;
  const int rc = open_regular(&f, &size, path);
  return rc ? rc : open_stream(out, f, path);
}

int ser_safetensors_open_memory(ser_safetensors_file **out, const unsigned char *buf, size_t len, const char *label) {
  *out = NULL;
  if (len < 8) /* fmemopen refuses an empty buffer; the message is the file's */
    return ser_error(SER_EFORMAT, "%s: truncated: %zu bytes, a safetensors file starts with an 8-byte header length",
                     label, len);
  FILE *f = fmemopen((void *)buf, len, "rb");
  if (!f) return ser_error(SER_EIO, "%s: cannot open the buffer: %s", label, strerror(errno));
  return open_stream(out, f, label);
}

int ser_safetensors_count(const ser_safetensors_file *sf) { return sf->n; }

const char *ser_safetensors_name(const ser_safetensors_file *sf, int i) {
  return i >= 0 && i < sf->n ? sf->es[i].name : NULL;
}

int ser_safetensors_find(const ser_safetensors_file *sf, const char *name) {
  for (int i = 0; i < sf->n; i++)
    if (strcmp(sf->es[i].name, name) == 0) return i;
  return -1;
}

int ser_safetensors_shape(const ser_safetensors_file *sf, int i, int64_t *shape) {
  if (i < 0 || i >= sf->n) return -1;
  for (int d = 0; d < sf->es[i].ndim; d++) shape[d] = sf->es[i].shape[d];
  return sf->es[i].ndim;
}

const char *ser_safetensors_dtype(const ser_safetensors_file *sf, int i) {
  return i >= 0 && i < sf->n ? dtypes[sf->es[i].dtype].name : NULL;
}

const char *ser_safetensors_file_meta(const ser_safetensors_file *sf, const char *key) {
  return ser_safetensors_meta(sf->meta, key);
}

uint64_t ser_safetensors_bytes_read(const ser_safetensors_file *sf) { return sf->bytes_read; }

int ser_safetensors_load(ser_tensor **out, ser_safetensors_file *sf, int i) {
  *out = NULL;
  if (i < 0 || i >= sf->n)
    return ser_error(SER_EINVAL, "%s: no tensor number %d (the file holds %d)", sf->label, i + 1, sf->n);
  const entry *e = &sf->es[i];
  ser_tensor *t = ser_tensor_empty(e->ndim, e->shape);
  if (!t) return ser_error_prefix(SER_ENOMEM, "%s: tensor '%s'", sf->label, e->name);
  const uint64_t bytes = e->end - e->begin;
  const int direct = e->dtype == DT_F32 && host_is_le();
  unsigned char *raw = direct ? (unsigned char *)ser_tensor_data(t) : malloc(bytes ? bytes : 1);
  if (!raw) {
    ser_tensor_release(t);
    return ser_error(SER_ENOMEM, "%s: out of memory reading tensor '%s' (%llu bytes)", sf->label, e->name,
                     (unsigned long long)bytes);
  }
  int rc = 0;
  if (fseeko(sf->f, (off_t)(sf->data_start + e->begin), SEEK_SET) != 0 || fread(raw, 1, bytes, sf->f) != bytes)
    rc = ser_error(SER_EIO, "%s: cannot read tensor '%s' (%llu bytes at data byte %llu): the file changed or is "
                   "unreadable", sf->label, e->name, (unsigned long long)bytes, (unsigned long long)e->begin);
  else
    sf->bytes_read += bytes;
  if (!rc && !direct) convert_into(ser_tensor_data(t), raw, ser_tensor_numel(t), e->dtype);
  if (!direct) free(raw);
  if (rc) {
    ser_tensor_release(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* ---- writing ---- */

static int cmp_name(const void *a, const void *b) {
  const char *const *x = a, *const *y = b;
  return strcmp(*x, *y);
}

/* Writes all of buf, retrying short writes. */
static int write_all(int fd, const void *buf, size_t n) {
  const unsigned char *p = buf;
  while (n) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static const char *st_dtype_name(ser_st_dtype d) {
  return d == SER_ST_F16 ? "F16" : d == SER_ST_BF16 ? "BF16" : "F32";
}
static int st_dtype_size(ser_st_dtype d) { return d == SER_ST_F32 ? 4 : 2; }

static int write_tensor_le(int fd, const ser_tensor *t, ser_st_dtype dt) {
  const int64_t n = ser_tensor_numel(t);
  if (n == 0) return 0;
  if (dt == SER_ST_F32 && ser_tensor_is_contiguous(t) && host_is_le())
    return write_all(fd, ser_tensor_data(t), (size_t)n * 4);
  float *tmp = malloc((size_t)n * 4);
  if (!tmp) {
    errno = ENOMEM;
    return -1;
  }
  ser_tensor_gather_to(t, tmp);
  if (dt != SER_ST_F32) { /* 16-bit values, rounded to nearest even, written little-endian in place */
    unsigned char *b = (unsigned char *)tmp;
    for (int64_t i = 0; i < n; i++) {
      const uint16_t h = dt == SER_ST_F16 ? ser_f32_to_f16(tmp[i]) : ser_f32_to_bf16(tmp[i]);
      b[2 * i] = (unsigned char)(h & 0xff);
      b[2 * i + 1] = (unsigned char)(h >> 8);
    }
    const int rc = write_all(fd, tmp, (size_t)n * 2);
    free(tmp);
    return rc;
  }
  if (!host_is_le()) {
    unsigned char *b = (unsigned char *)tmp;
    for (int64_t i = 0; i < n; i++) {
      unsigned char *q = b + i * 4, c0 = q[0], c1 = q[1];
      q[0] = q[3];
      q[1] = q[2];
      q[2] = c1;
      q[3] = c0;
    }
  }
  const int rc = write_all(fd, tmp, (size_t)n * 4);
  free(tmp);
  return rc;
}

static int build_header(char **json, int n, const char *const *names, ser_tensor *const *tensors,
                        const ser_st_dtype *dts, const int *order, int n_meta, const char *const *meta_keys, const char *const *meta_values) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return SER_ENOMEM;
  if (n_meta > 0) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; m && i < n_meta; i++)
      if (!cJSON_AddStringToObject(m, meta_keys[i], meta_values[i])) m = NULL;
    if (!m) goto oom;
  }
  uint64_t pos = 0;
  for (int k = 0; k < n; k++) {
    const ser_tensor *t = tensors[order[k]];
    cJSON *e = cJSON_AddObjectToObject(root, names[order[k]]);
    const ser_st_dtype dt = dts ? dts[order[k]] : SER_ST_F32;
    if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(dt))) goto oom;
    cJSON *sh = cJSON_AddArrayToObject(e, "shape"), *off;
    if (!sh) goto oom;
    for (int d = 0; d < t->ndim; d++) {
      cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
      if (!v || !cJSON_AddItemToArray(sh, v)) goto oom;
    }
    const uint64_t bytes = (uint64_t)ser_tensor_numel(t) * (uint64_t)st_dtype_size(dt);
    if (!(off = cJSON_AddArrayToObject(e, "data_offsets"))) goto oom;
    cJSON *b = cJSON_CreateNumber((double)pos), *en = cJSON_CreateNumber((double)(pos + bytes));
    if (!b || !en || !cJSON_AddItemToArray(off, b) || !cJSON_AddItemToArray(off, en)) goto oom;
    pos += bytes;
  }
  *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return *json ? 0 : SER_ENOMEM;
oom:
  cJSON_Delete(root);
  return SER_ENOMEM;
}

int ser_safetensors_write(const char *path, int n, const char *const *names, ser_tensor *const *tensors, int n_meta,
                          const char *const *meta_keys, const char *const *meta_values) {
  return ser_safetensors_write_as(path, n, names, tensors, NULL, n_meta, meta_keys, meta_values);
}

int ser_safetensors_write_as(const char *path, int n, const char *const *names, ser_tensor *const *tensors,
                             const ser_st_dtype *dts, int n_meta, const char *const *meta_keys,
                             const char *const *meta_values) {
  for (int i = 0; i < n; i++) {
    if (dts && dts[i] != SER_ST_F32 && dts[i] != SER_ST_F16 && dts[i] != SER_ST_BF16)
      return ser_error(SER_EINVAL, "save '%s': tensor %d has dtype code %d; expected SER_ST_F32, SER_ST_F16 or "
                       "SER_ST_BF16", path, i + 1, (int)dts[i]);
    if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0)
      return ser_error(SER_EINVAL, "save '%s': tensor %d has an invalid name '%s'", path, i + 1,
                       names[i] ? names[i] : "(null)");
    if (!tensors[i]) return ser_error(SER_EINVAL, "save '%s': tensor '%s' is missing", path, names[i]);
  }
  for (int i = 0; i < n_meta; i++)
    if (!meta_keys[i] || !meta_values[i])
      return ser_error(SER_EINVAL, "save '%s': metadata entry %d has no key or value", path, i + 1);
  /* Sorted names give a stable file and make duplicates adjacent. */
  const char **sorted = malloc(sizeof(char *) * (size_t)(n + 1));
  int *order = malloc(sizeof(int) * (size_t)(n + 1));
  if (!sorted || !order) {
    free(sorted);
    free(order);
    return ser_error(SER_ENOMEM, "save '%s': out of memory", path);
  }
  for (int i = 0; i < n; i++) sorted[i] = names[i];
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_name);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0) {
      rc = ser_error(SER_EINVAL, "save '%s': tensor name '%s' appears twice", path, sorted[i]);
      break;
    }
    for (int j = 0; j < n; j++) /* index of the sorted name (names are unique past this check) */
      if (names[j] == sorted[i] || strcmp(names[j], sorted[i]) == 0) {
        order[i] = j;
        break;
      }
  }
  free(sorted);
  char *json = NULL;
  if (!rc && (rc = build_header(&json, n, names, tensors, dts, order, n_meta, meta_keys, meta_values)))
    rc = ser_error(rc, "save '%s': out of memory building the header", path);
  if (rc) {
    free(order);
    return rc;
  }
  const size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
  unsigned char *hdr = malloc(8 + hlen);
  if (!hdr) {
    free(order);
    cJSON_free(json);
    return ser_error(SER_ENOMEM, "save '%s': out of memory", path);
  }
  for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(hdr + 8, json, jlen);
  memset(hdr + 8 + jlen, ' ', hlen - jlen);
  cJSON_free(json);

  /* temp file in the target's folder, so the rename stays on one file system */
  const size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    free(order);
    free(hdr);
    return ser_error(SER_ENOMEM, "save '%s': out of memory", path);
  }
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  const int fd = mkstemp(tmp);
  if (fd < 0) {
    rc = ser_error(SER_EIO, "save '%s': cannot create a temporary file beside it: %s", path, strerror(errno));
    free(tmp);
    free(order);
    free(hdr);
    return rc;
  }
  int bad = write_all(fd, hdr, 8 + hlen);
  for (int k = 0; k < n && !bad; k++) bad = write_tensor_le(fd, tensors[order[k]], dts ? dts[order[k]] : SER_ST_F32);
  if (!bad) bad = fsync(fd);
  int e = errno;
  if (close(fd) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  if (!bad) {
    /* mkstemp creates 0600; give the file the usual 0666 & ~umask */
    const mode_t um = umask(0);
    umask(um);
    chmod(tmp, 0666 & ~um);
    if (rename(tmp, path) != 0) {
      bad = 1;
      e = errno;
    }
  }
  if (bad) {
    unlink(tmp);
    rc = ser_error(SER_EIO, "save '%s': write failed: %s", path, strerror(e));
  } else {
    /* Make the rename itself durable. */
    char *dircopy = malloc(plen + 1);
    if (dircopy) {
      memcpy(dircopy, path, plen + 1);
      const int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
      if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
      }
      free(dircopy);
    }
  }
  free(tmp);
  free(order);
  free(hdr);
  return rc;
}
