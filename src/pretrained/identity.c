/* Encoder identity and location (identity.h). */
#include "pretrained/identity.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/sha256.h"

/* SHA-256 of a regular file into hex; anything else (missing, a folder, a device) is an error. */
static int hash_regular_file(char hex[65], const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return ser_error(SER_EIO, "%s cannot be read (no such file)", path);
  if (!S_ISREG(st.st_mode)) return ser_error(SER_EINVAL, "%s is not a regular file", path);
  return ser_sha256_file(hex, path);
}

int ser_encoder_identity(char hex[65], const char *path) {
  char weights[PATH_MAX + 32], config[PATH_MAX + 32], w[65], c[65], text[200];
  struct stat st;
  int rc;
  if (strlen(path) >= PATH_MAX) return ser_error(SER_EINVAL, "encoder path is longer than %d bytes", PATH_MAX);
  const int dir = ser_fs_is_dir(path);
  snprintf(weights, sizeof weights, dir ? "%s/model.safetensors" : "%s", path);
  snprintf(config, sizeof config, "%s/config.json", path);
  if ((rc = hash_regular_file(w, weights)) < 0) return rc;
  int n = snprintf(text, sizeof text, "weights%c%s", 0, w);
  if (dir && stat(config, &st) == 0) {
    if ((rc = hash_regular_file(c, config)) < 0) return rc;
    n += snprintf(text + n, sizeof text - (size_t)n, "%cconfig%c%s", 0, 0, c);
  }
  ser_sha256_hex(hex, text, (size_t)n);
  return 0;
}

const char *ser_encoder_resolve(char *buf, size_t size, const char *path, const char *ckpt_path) {
  if (access(path, F_OK) == 0 || path[0] == '/' || !ckpt_path) return path;
  const char *slash = strrchr(ckpt_path, '/');
  snprintf(buf, size, "%.*s/%s", slash ? (int)(slash - ckpt_path) : 1, slash ? ckpt_path : ".", path);
  return access(buf, F_OK) == 0 ? buf : path;
}
