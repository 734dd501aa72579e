/* See fs.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int ser_fs_is_dir(const char *path) {
  struct stat st;
  return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ser_fs_is_file(const char *path) {
  struct stat st;
  return path && *path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *ser_fs_join(const char *dir, const char *name) {
  const size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* mkdir of one component; an existing folder is fine, an existing file is not. */
static int make_one(const char *path, const char *whole) {
  if (mkdir(path, 0777) == 0 || ser_fs_is_dir(path)) return 0;
  int e = errno;
  if (e == EEXIST) return ser_error(SER_EIO, "mkdir %s: %s exists and is not a folder", whole, path);
  return ser_error(SER_EIO, "mkdir %s: cannot create %s: %s", whole, path, strerror(e));
}

int ser_fs_mkdir_p(const char *path) {
  if (!path || !*path) return ser_error(SER_EINVAL, "mkdir: the path is empty; expected a folder name");
  if (ser_fs_is_dir(path)) return 0;
  size_t n = strlen(path);
  char *buf = malloc(n + 1);
  if (!buf) return ser_error(SER_ENOMEM, "mkdir %s: out of memory", path);
  memcpy(buf, path, n + 1);
  int rc = 0;
  /* every prefix ending before a '/' (skipping the root's), then the whole path */
  for (size_t i = 1; i < n && rc == 0; i++) {
    if (buf[i] != '/' || buf[i - 1] == '/') continue;
    buf[i] = '\0';
    rc = make_one(buf, path);
    buf[i] = '/';
  }
  if (rc == 0) rc = make_one(buf, path);
  free(buf);
  return rc;
}

int ser_fs_isatty(int fd) { return fd >= 0 && isatty(fd) == 1; }

int ser_fs_read_small(char **out, size_t *len, const char *path, size_t cap, const char *who, const char *expected) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return ser_error(SER_EIO, "%s: cannot open '%s': %s", who, path, strerror(errno));
  char *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return ser_error(SER_ENOMEM, "%s: out of memory reading '%s'", who, path);
  }
  /* one byte more than allowed: a file of exactly cap bytes is accepted (and its 0 fits),
   * one more refused */
  errno = 0;
  const size_t n = fread(buf, 1, cap + 1, f);
  const int failed = ferror(f), err = errno;   /* a folder opens, and fails here (EISDIR) */
  fclose(f);
  if (failed || n > cap) {
    free(buf);
    if (failed) return ser_error(SER_EIO, "%s: cannot read '%s': %s", who, path, strerror(err ? err : EIO));
    return ser_error(SER_EFORMAT, "%s: '%s' is larger than %zu KiB; expected %s", who, path, cap >> 10, expected);
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return 0;
}
