/* safetensors: round trip, metadata, layout details of the written file, dtype
 * conversions, and one test per validation rule (crafted files). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_with_metadata),
      cmocka_unit_test(write_errors),
      cmocka_unit_test(read_errors),
      cmocka_unit_test(dtype_conversions),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
