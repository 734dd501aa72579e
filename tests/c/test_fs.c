/* src/io/fs.c: folder checks and creation without a shell (what the Lua side's ser.fs and
 * compare.lua's output folders use), each failure with a message naming the path and why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fs.h"
#include "lib/fixture.h"

static char tmpdir[256];

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ser_fs_test.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_is_dir(void **state) {
  (void)state;
  char file[300];
  assert_true(ser_fs_is_dir(tmpdir));
  assert_true(ser_fs_is_dir("/"));
  snprintf(file, sizeof file, "%s/a-file", tmpdir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  assert_false(ser_fs_is_dir(file));
  assert_false(ser_fs_is_dir("/nonexistent/folder"));
  assert_false(ser_fs_is_dir(""));
  assert_false(ser_fs_is_dir(NULL));
}

static void test_is_file_and_join(void **state) {
  (void)state;
  char *file = ser_fs_join(tmpdir, "a-file");
  assert_non_null(file);
  assert_int_equal(strlen(file), strlen(tmpdir) + strlen("/a-file"));
  assert_int_equal(strncmp(file, tmpdir, strlen(tmpdir)), 0);
  assert_string_equal(file + strlen(tmpdir), "/a-file");
  assert_false(ser_fs_is_file(file)); /* not there yet */
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  assert_true(ser_fs_is_file(file));
  assert_false(ser_fs_is_file(tmpdir));    /* a folder */
  assert_false(ser_fs_is_file("/dev/zero")); /* a device: never read as a file */
  assert_false(ser_fs_is_file(""));
  assert_false(ser_fs_is_file(NULL));
  free(file);
}

static void test_mkdir_p_creates_parents(void **state) {
  (void)state;
  char path[400];
  snprintf(path, sizeof path, "%s/a/b//c/", tmpdir);
  assert_int_equal(0, ser_fs_mkdir_p(path));
  assert_true(ser_fs_is_dir(path));
  assert_int_equal(0, ser_fs_mkdir_p(path)); /* existing: fine */
  snprintf(path, sizeof path, "%s/a/b/c/d", tmpdir);
  assert_int_equal(0, ser_fs_mkdir_p(path));
  assert_true(ser_fs_is_dir(path));
}

static void test_mkdir_p_errors(void **state) {
  (void)state;
  char file[300], path[400], want[800];
  snprintf(file, sizeof file, "%s/plain", tmpdir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(path, sizeof path, "%s/x/y", file);
  assert_int_equal(SER_EIO, ser_fs_mkdir_p(path));
  snprintf(want, sizeof want, "mkdir %s: %s exists and is not a folder", path, file);
  assert_string_equal(want, ser_errmsg());
  assert_int_equal(SER_EINVAL, ser_fs_mkdir_p(""));
  assert_string_equal("mkdir: the path is empty; expected a folder name", ser_errmsg());
  assert_int_equal(SER_EINVAL, ser_fs_mkdir_p(NULL));
  /* /proc refuses new folders even to root */
  assert_int_equal(SER_EIO, ser_fs_mkdir_p("/proc/ser-fs-test/x"));
  assert_non_null(strstr(ser_errmsg(), "mkdir /proc/ser-fs-test/x: cannot create /proc/ser-fs-test: "));
}

static void test_isatty(void **state) {
  (void)state;
  assert_false(ser_fs_isatty(-1));
  assert_int_equal(isatty(1) == 1, ser_fs_isatty(1));
  char file[300];
  snprintf(file, sizeof file, "%s/f", tmpdir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  assert_false(ser_fs_isatty(fileno(f)));
  fclose(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_is_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_is_file_and_join, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mkdir_p_creates_parents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mkdir_p_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_isatty, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
