/* safetensors: round trip, metadata, layout details of the written file, dtype
 * conversions, and one test per validation rule (crafted files). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/recipe_graph.h"
#include "io/safetensors.h"
#include "lib/fixture.h"

static char tmpdir[256];

static int setup(void **state) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ser_st_test.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
      unlink(p);
    }
  if (d) closedir(d);
  rmdir(tmpdir);
  return 0;
}

static int count_files(void) {
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d))) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* header length (LE) + json padded with spaces + data */
static unsigned char *craft(const char *json, const void *data, size_t dlen, size_t *len) {
  const size_t j = strlen(json);
  unsigned char *b = malloc(8 + j + dlen + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)j >> (8 * i));
  memcpy(b + 8, json, j);
  if (dlen) memcpy(b + 8 + j, data, dlen);
  *len = 8 + j + dlen;
  return b;
}

static void expect_error(const char *json, const void *data, size_t dlen, const char *needle) {
  size_t len;
  unsigned char *b = craft(json, data, dlen, &len);
  ser_safetensors *st = (ser_safetensors *)1;
  assert_int_equal(ser_safetensors_parse(&st, b, len, "x.safetensors"), SER_EFORMAT);
  assert_null(st);
  printf("  %s\n", ser_errmsg());
  if (!strstr(ser_errmsg(), needle)) {
    printf("  (expected the message to contain '%s')\n", needle);
    fail();
  }
  free(b);
}

static void round_trip_with_metadata(void **state) {
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
  const float a[6] = {1, -2, 3.5f, 4, 5, 6}, b[3] = {0.25f, -0.5f, 1e-30f};
  ser_tensor *ta = ser_tensor_from_data(2, SER_DIMS(2, 3), a), *tb = ser_tensor_from_data(1, SER_DIMS(3), b);
  ser_tensor *scalar = ser_tensor_full(0, NULL, 7.0f), *tav;
  assert_int_equal(ser_tensor_permute_raw(&tav, ta, (const int[]){1, 0}), 0); /* a non-contiguous view */
  const char *names[4] = {"z.weight", "a.bias", "features.1.num_batches_tracked", "transposed"};
  ser_tensor *ts[4] = {ta, tb, scalar, tav};
  const char *mk[2] = {"format", "classes"}, *mv[2] = {"serlua-1", "[\"angry\",\"calm\"]"};
  assert_int_equal(ser_safetensors_write(path, 4, names, ts, 2, mk, mv), 0);
  assert_int_equal(count_files(), 1); /* no temp file left behind */

  /* the file layout: header length multiple of 8, data in sorted-name order */
  FILE *f = fopen(path, "rb");
  unsigned char head[8];
  assert_int_equal(fread(head, 1, 8, f), 8);
  fclose(f);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | head[i];
  assert_int_equal(hlen % 8, 0);

  ser_safetensors *st;
  assert_int_equal(ser_safetensors_read(&st, path), 0);
  assert_int_equal(st->n, 4);
  assert_string_equal(st->names[0], "a.bias"); /* data order = sorted names */
  assert_string_equal(st->names[3], "z.weight");
  assert_memory_equal(ser_tensor_data(st->tensors[0]), b, sizeof b);
  assert_memory_equal(ser_tensor_data(st->tensors[3]), a, sizeof a);
  assert_int_equal(st->tensors[1]->ndim, 0);
  assert_float_equal(ser_tensor_data(st->tensors[1])[0], 7.0f, 0);
  assert_string_equal(st->names[2], "transposed");
  assert_int_equal(st->tensors[2]->shape[0], 3);
  const float at[6] = {1, 4, -2, 5, 3.5f, 6};
  assert_memory_equal(ser_tensor_data(st->tensors[2]), at, sizeof at);
  assert_string_equal(ser_safetensors_meta(st, "format"), "serlua-1");
  assert_string_equal(ser_safetensors_meta(st, "classes"), "[\"angry\",\"calm\"]");
  assert_null(ser_safetensors_meta(st, "nope"));
  ser_safetensors_free(st);

  /* overwriting replaces the file atomically */
  assert_int_equal(ser_safetensors_write(path, 1, names + 1, ts + 1, 0, NULL, NULL), 0);
  assert_int_equal(ser_safetensors_read(&st, path), 0);
  assert_int_equal(st->n, 1);
  assert_int_equal(st->n_meta, 0);
  ser_safetensors_free(st);
  assert_int_equal(count_files(), 1);
  ser_tensor_release(ta);
  ser_tensor_release(tb);
  ser_tensor_release(scalar);
  ser_tensor_release(tav);
}

static void write_errors(void **state) {
  const float a[2] = {1, 2};
  ser_tensor *t = ser_tensor_from_data(1, SER_DIMS(2), a);
  const int files_before = count_files();
  char path[512];
  snprintf(path, sizeof path, "%s/x.safetensors", tmpdir);
  const char *dup[2] = {"w", "w"};
  assert_int_equal(ser_safetensors_write(path, 2, dup, (ser_tensor *[]){t, t}, 0, NULL, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "'w' appears twice"));
  const char *meta_name[1] = {"__metadata__"};
  assert_int_equal(ser_safetensors_write(path, 1, meta_name, &t, 0, NULL, NULL), SER_EINVAL);
  assert_int_equal(ser_safetensors_write("/nonexistent-dir/x.safetensors", 1, dup, &t, 0, NULL, NULL), SER_EIO);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(count_files(), files_before); /* failed writes leave nothing behind */
  ser_tensor_release(t);
}

static void read_errors(void **state) {
  const float d[4] = {1, 2, 3, 4};
  ser_safetensors *st;
  assert_int_equal(ser_safetensors_parse(&st, (const unsigned char *)"abc", 3, "x.safetensors"), SER_EFORMAT);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "truncated"));
  /* header length larger than the file */
  unsigned char big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
  assert_int_equal(ser_safetensors_parse(&st, big, 10, "x.safetensors"), SER_EFORMAT);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "header length 65535"));
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", d, 8, "not valid JSON");
  expect_error("[1,2]", NULL, 0, "not an object");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", d, 8, "beyond the 8 data bytes");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
               " \"v\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", d, 12, "overlaps");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", d, 8, "a gap before it");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 8, "cover 4 data bytes");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", d, 8, "its shape needs 12");
  expect_error("{\"w\": {\"dtype\": \"C64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", d, 8, "dtype 'C64'");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", d, 4, "shape[0]");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", d, 4, "invalid data_offsets");
  expect_error("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
               " \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", d, 8, "appears twice");
  expect_error("{\"__metadata__\": {\"epochs\": 35}}", NULL, 0, "not a string");
  expect_error("{\"w\": 3}", NULL, 0, "not a JSON object");
  expect_error("{} x", NULL, 0, "after the JSON header");
  /* an escaped NUL would cut the name short ("fc.weight\u0000junk" -> "fc.weight") */
  expect_error("{\"fc.weight\\u0000junk\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4,
               "escaped NUL");
  /* ... but an escaped backslash followed by the text u0000 is an ordinary name */
  size_t len;
  unsigned char *ok = craft("{\"a\\\\u0000\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", d, 4, &len);
  assert_int_equal(ser_safetensors_parse(&st, ok, len, "ok"), 0);
  assert_string_equal(st->names[0], "a\\u0000");
  ser_safetensors_free(st);
  free(ok);
  assert_int_equal(ser_safetensors_read(&st, "/nonexistent/file.safetensors"), SER_EIO);
  printf("  %s\n", ser_errmsg());
}

/* F16 / BF16 / F64 / I64 / BOOL are converted to float32 (PyTorch writes int64 num_batches_tracked). */
static void dtype_conversions(void **state) {
  unsigned char data[64];
  size_t o = 0;
  const uint16_t f16[3] = {0x3c00, 0xc500, 0x0001};  /* 1, -5, smallest subnormal */
  const uint16_t bf16[2] = {0x3f80, 0xc0a0};         /* 1, -5 */
  const double f64[1] = {0.1};
  const int64_t i64[1] = {-123456};
  const unsigned char bl[2] = {0, 1};
  memcpy(data + o, f16, 6), o += 6;
  memcpy(data + o, bf16, 4), o += 4;
  memcpy(data + o, f64, 8), o += 8;
  memcpy(data + o, i64, 8), o += 8;
  memcpy(data + o, bl, 2), o += 2;
  const char *json = "{\"h\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 6]},"
                     " \"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [6, 10]},"
                     " \"d\": {\"dtype\": \"F64\", \"shape\": [], \"data_offsets\": [10, 18]},"
                     " \"n\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [18, 26]},"
                     " \"m\": {\"dtype\": \"BOOL\", \"shape\": [2], \"data_offsets\": [26, 28]}}";
  size_t len;
  unsigned char *b = craft(json, data, o, &len);
  ser_safetensors *st;
  assert_int_equal(ser_safetensors_parse(&st, b, len, "conv"), 0);
  assert_int_equal(st->n, 5);
  const float *h = ser_tensor_data(st->tensors[0]);
  assert_float_equal(h[0], 1.0f, 0);
  assert_float_equal(h[1], -5.0f, 0);
  assert_float_equal(h[2], 5.9604645e-08f, 1e-14);
  assert_float_equal(ser_tensor_data(st->tensors[1])[1], -5.0f, 0);
  assert_float_equal(ser_tensor_data(st->tensors[2])[0], 0.1f, 0);
  assert_int_equal(st->tensors[2]->ndim, 0);
  assert_float_equal(ser_tensor_data(st->tensors[3])[0], -123456.0f, 0);
  assert_float_equal(ser_tensor_data(st->tensors[4])[1], 1.0f, 0);
  ser_safetensors_free(st);
  free(b);
}

/* float -> F16 rounding: hand-picked edges, every half value back to itself,
 * and (where the compiler has _Float16) agreement with its conversion on many
 * random floats. */
static void f16_rounding(void **state) {
  const struct { float f; uint16_t h; } cases[] = {
      {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00},
      {1e10f, 0x7c00}, {-1e10f, 0xfc00}, {1.0f + 0x1p-11f, 0x3c00} /* tie -> even */,
      {1.0f + 0x3p-11f, 0x3c02} /* tie -> even (up) */, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000} /* tie -> 0 */,
      {0x1.8p-25f, 0x0001}, {0x1p-14f, 0x0400}, {0x1.ff8p-15f, 0x03ff}, {0x1.ffcp-15f, 0x0400} /* largest subnormal; a tie above it rounds up to the smallest normal */,
      {-0.0f, 0x8000}, {INFINITY, 0x7c00}, {1e-30f, 0x0000}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (ser_f32_to_f16(cases[i].f) != cases[i].h)
      printf("  f16(%a) = 0x%04x, expected 0x%04x\n", (double)cases[i].f, ser_f32_to_f16(cases[i].f), cases[i].h);
    assert_int_equal(ser_f32_to_f16(cases[i].f), cases[i].h);
  }
  const uint16_t nan = ser_f32_to_f16(NAN);
  assert_true((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaNs */
    assert_int_equal(ser_f32_to_f16(ser_f16_to_f32((uint16_t)h)), h);
  }
#ifdef __FLT16_MAX__
  uint32_t s = 12345;
  for (int i = 0; i < 2000000; i++) {
    s = s * 1664525u + 1013904223u;
    uint32_t bits = (s & 0x8fffffffu) | (((s >> 3) % 40 + 96) << 23); /* exponents around the half range */
    float f;
    memcpy(&f, &bits, 4);
    _Float16 r = (_Float16)f;
    uint16_t want;
    memcpy(&want, &r, 2);
    if (ser_f32_to_f16(f) != want) printf("  f16(%a) = 0x%04x, the compiler gives 0x%04x\n", (double)f,
                                          ser_f32_to_f16(f), want);
    assert_int_equal(ser_f32_to_f16(f), want);
  }
#else
  printf("  (no _Float16 in this compiler: the random comparison is skipped)\n");
#endif
}

/* F16 and BF16 tensors written per tensor, read back as the rounded values. */
static void write_f16_bf16(void **state) {
  char path[512];
  snprintf(path, sizeof path, "%s/half.safetensors", tmpdir);
  const float v[5] = {1.0f + 0x1p-11f, 3.14159265f, -65520.0f, 0x1p-25f, 1.0f + 0x1p-8f};
  ser_tensor *t = ser_tensor_from_data(1, SER_DIMS(5), v);
  const char *names[3] = {"h", "b", "f"};
  ser_tensor *ts[3] = {t, t, t};
  const ser_st_dtype dts[3] = {SER_ST_F16, SER_ST_BF16, SER_ST_F32};
  assert_int_equal(ser_safetensors_write_as(path, 3, names, ts, dts, 0, NULL, NULL), 0);
  ser_safetensors_file *sf;
  assert_int_equal(ser_safetensors_open(&sf, path), 0);
  assert_string_equal(ser_safetensors_dtype(sf, ser_safetensors_find(sf, "h")), "F16");
  assert_string_equal(ser_safetensors_dtype(sf, ser_safetensors_find(sf, "b")), "BF16");
  assert_string_equal(ser_safetensors_dtype(sf, ser_safetensors_find(sf, "f")), "F32");
  ser_safetensors_close(sf);
  ser_safetensors *st;
  assert_int_equal(ser_safetensors_read(&st, path), 0);
  const float *b = ser_tensor_data(st->tensors[0]), *f = ser_tensor_data(st->tensors[1]),
              *h = ser_tensor_data(st->tensors[2]);
  assert_string_equal(st->names[0], "b");
  for (int i = 0; i < 5; i++) {
    assert_true(h[i] == ser_f16_to_f32(ser_f32_to_f16(v[i])) || (isinf(h[i]) && v[i] < -65504));
    assert_true(b[i] == ser_bf16_to_f32(ser_f32_to_bf16(v[i])));
    assert_true(f[i] == v[i]);
  }
  assert_float_equal(h[0], 1.0f, 0);         /* tie to even */
  assert_float_equal(h[1], 3.140625f, 0);
  assert_true(isinf(h[2]) && h[2] < 0);
  assert_float_equal(h[3], 0.0f, 0);
  assert_float_equal(b[4], 1.0f, 0);         /* bf16 tie to even */
  assert_float_equal(b[1], 3.140625f, 0);
  ser_safetensors_free(st);
  /* a bad dtype code is refused before anything is written */
  const ser_st_dtype bad[1] = {(ser_st_dtype)7};
  assert_int_equal(ser_safetensors_write_as(path, 1, names, ts, bad, 0, NULL, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "dtype code 7"));
  ser_tensor_release(t);
}

/* The reader by name reads the header and the tensors asked for, nothing else:
 * a made-up checkpoint with a 16 MB "decoder" tensor beside a small encoder one. */
static void read_by_name(void **state) {
  char path[512];
  snprintf(path, sizeof path, "%s/full.safetensors", tmpdir);
  const int64_t big_n = 4 * 1024 * 1024;
  ser_tensor *big = ser_tensor_zeros(1, SER_DIMS(big_n));
  const float w[6] = {1, 2, 3, 4, 5, 6};
  ser_tensor *small = ser_tensor_from_data(2, SER_DIMS(2, 3), w);
  const char *names[2] = {"model.decoder.embed_tokens.weight", "model.encoder.conv1.bias"};
  ser_tensor *ts[2] = {big, small};
  const ser_st_dtype dts[2] = {SER_ST_F32, SER_ST_F16};
  const char *mk[1] = {"format"}, *mv[1] = {"pt"};
  assert_int_equal(ser_safetensors_write_as(path, 2, names, ts, dts, 1, mk, mv), 0);
  ser_tensor_release(big);

  const size_t live0 = ser_memory_live();
  ser_memory_reset_peak();
  ser_safetensors_file *sf;
  assert_int_equal(ser_safetensors_open(&sf, path), 0);
  assert_int_equal(ser_safetensors_count(sf), 2);
  assert_string_equal(ser_safetensors_file_meta(sf, "format"), "pt");
  const uint64_t header = ser_safetensors_bytes_read(sf);
  assert_true(header < 4096);
  const int i = ser_safetensors_find(sf, "model.encoder.conv1.bias");
  assert_true(i >= 0);
  assert_int_equal(ser_safetensors_find(sf, "model.encoder.nope"), -1);
  int64_t shape[SER_MAX_DIMS];
  assert_int_equal(ser_safetensors_shape(sf, i, shape), 2);
  assert_int_equal(shape[1], 3);
  ser_tensor *got;
  assert_int_equal(ser_safetensors_load(&got, sf, i), 0);
  assert_memory_equal(ser_tensor_data(got), w, sizeof w);
  /* 12 bytes of F16 data read after the header; the 16 MB tensor never left the disk */
  printf("  header %llu bytes, total read %llu bytes, peak ser_alloc growth %zu bytes\n",
         (unsigned long long)header, (unsigned long long)ser_safetensors_bytes_read(sf),
         ser_memory_peak() - live0);
  assert_int_equal(ser_safetensors_bytes_read(sf), header + 12);
  assert_true(ser_memory_peak() - live0 < 4096);
  ser_tensor_release(got);
  assert_int_equal(ser_safetensors_load(&got, sf, 5), SER_EINVAL);
  assert_null(got);
  printf("  %s\n", ser_errmsg());
  ser_safetensors_close(sf);
  ser_tensor_release(small);

  /* a truncated copy is refused at open, naming the file and the byte counts */
  char cut[512];
  snprintf(cut, sizeof cut, "%s/cut.safetensors", tmpdir);
  FILE *in = fopen(path, "rb"), *out = fopen(cut, "wb");
  unsigned char buf[65536];
  size_t k, total = 0;
  while ((k = fread(buf, 1, sizeof buf, in)) > 0 && total < 1000000) {
    fwrite(buf, 1, k, out);
    total += k;
  }
  fclose(in);
  fclose(out);
  assert_int_equal(ser_safetensors_open(&sf, cut), SER_EFORMAT);
  assert_null(sf);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "cut.safetensors"));
  assert_non_null(strstr(ser_errmsg(), "truncated"));
  unlink(cut);
  /* the same checks as the whole-file reader, on a crafted buffer */
  size_t len;
  const float d[2] = {1, 2};
  unsigned char *b = craft("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", d, 8, &len);
  assert_int_equal(ser_safetensors_open_memory(&sf, b, len, "mem.safetensors"), SER_EFORMAT);
  assert_non_null(strstr(ser_errmsg(), "its shape needs 12"));
  free(b);
  assert_int_equal(ser_safetensors_open_memory(&sf, (const unsigned char *)"abc", 3, "mem.safetensors"), SER_EFORMAT);
  assert_non_null(strstr(ser_errmsg(), "truncated"));
  assert_int_equal(ser_safetensors_open(&sf, "/nonexistent/x.safetensors"), SER_EIO);
}

/* A checkpoint's recipe against its graph description: only the whisper family's window and
 * speaker normalisation are compared; nothing to compare is no error. */
static void recipe_against_graph(void **state) {
  (void)state;
  const char *whisper = "{\"input\": {\"features\": {\"kind\": \"whisper_logmel\"}, \"context\": 30, \"speaker_norm\": true}}";
  assert_int_equal(0, ser_recipe_graph_check(NULL, whisper));
  assert_int_equal(0, ser_recipe_graph_check("{\"model\": {\"context\": 30, \"speaker_norm\": true}}", whisper));
  assert_int_equal(0, ser_recipe_graph_check("{\"model\": {\"context\": 30}}", whisper));   /* not said: not compared */
  assert_int_equal(SER_EFORMAT, ser_recipe_graph_check("{\"model\": {\"speaker_norm\": true}}", whisper));
  assert_non_null(strstr(ser_errmsg(), "model.context (0 s) and the graph's input.context (30 s) disagree"));
  assert_int_equal(SER_EFORMAT, ser_recipe_graph_check("{\"model\": {\"context\": 30, \"speaker_norm\": false}}", whisper));
  assert_non_null(strstr(ser_errmsg(), "ser.graph.attach"));
  /* a spectral model's graph carries neither; an unreadable recipe or graph is left to its reader */
  assert_int_equal(0, ser_recipe_graph_check("{\"model\": {\"context\": 30}}", "{\"input\": {\"features\": {\"kind\": \"logmel\"}}}"));
  assert_int_equal(0, ser_recipe_graph_check("not json", whisper));
  assert_int_equal(0, ser_recipe_graph_check("{\"model\": 3}", "[1, 2"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_with_metadata),
      cmocka_unit_test(write_errors),
      cmocka_unit_test(read_errors),
      cmocka_unit_test(dtype_conversions),
      cmocka_unit_test(f16_rounding),
      cmocka_unit_test(write_f16_bf16),
      cmocka_unit_test(read_by_name),
      cmocka_unit_test(recipe_against_graph),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
