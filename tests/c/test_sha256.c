/* src/io/sha256.c: FIPS 180-4 test vectors, incremental updates across block boundaries equal
 * one-shot hashing, files equal their bytes, and an unreadable file is an error naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/sha256.h"
#include "lib/fixture.h"

static void test_vectors(void **state) {
  (void)state;
  char hex[65];
  ser_sha256_hex(hex, "", 0);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ser_sha256_hex(hex, "abc", 3);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  ser_sha256_hex(hex, two, strlen(two));
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  char *million = malloc(1000000);
  assert_non_null(million);
  memset(million, 'a', 1000000);
  ser_sha256_hex(hex, million, 1000000);
  assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(million);
}

static void test_incremental_and_file(void **state) {
  (void)state;
  enum { N = 70001 };
  unsigned char *buf = malloc(N);
  assert_non_null(buf);
  for (int i = 0; i < N; i++) buf[i] = (unsigned char)(i * 131 + 7);
  char want[65], got[65];
  ser_sha256_hex(want, buf, N);
  static const size_t steps[] = {1, 3, 55, 56, 63, 64, 65, 4096};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    ser_sha256 s;
    uint8_t d[32];
    ser_sha256_init(&s);
    for (size_t at = 0; at < N; at += steps[k]) ser_sha256_update(&s, buf + at, at + steps[k] <= N ? steps[k] : N - at);
    ser_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(got, want);
  }
  char path[] = "/tmp/ser_sha256_test.XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, N, f), N);
  fclose(f);
  assert_int_equal(ser_sha256_file(got, path), 0);
  assert_string_equal(got, want);
  remove(path);
  free(buf);
  assert_int_equal(ser_sha256_file(got, "/nonexistent/clip.wav"), SER_EIO);
  assert_non_null(strstr(ser_errmsg(), "/nonexistent/clip.wav"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_incremental_and_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
