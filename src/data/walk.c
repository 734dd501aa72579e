#include "data/walk.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

/* (device, inode) of the folders on the current path: a folder met again below itself is a
 * symlink cycle. */
typedef struct {
  dev_t dev;
  ino_t ino;
} dir_id;

static int push(char ***arr, size_t *n, size_t *cap, char *s) {
  if (!s) return ser_error(SER_ENOMEM, "scan: out of memory while listing files");
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    char **grown = realloc(*arr, nc * sizeof *grown);
    if (!grown) {
      free(s);
      return ser_error(SER_ENOMEM, "scan: out of memory while listing %zu files", *n);
    }
    *arr = grown;
    *cap = nc;
  }
  (*arr)[(*n)++] = s;
  return 0;
}

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, dir, a);
  size_t k = a;
  if (a > 0 && dir[a - 1] != '/') s[k++] = '/';
  memcpy(s + k, name, b + 1);
  return s;
}

static int problem(ser_filelist *out, const char *path, const char *reason) {
  size_t len = strlen(path) + strlen(reason) + 3;
  char *s = malloc(len);
  if (s) snprintf(s, len, "%s: %s", path, reason);
  return push(&out->problems, &out->n_problems, &out->cap_problems, s);
}

static int walk(ser_filelist *out, const char *dir, int depth, int max_depth, dir_id *stack, int nstack) {
  DIR *d = opendir(dir);
  if (!d) return problem(out, dir, strerror(errno));
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ".", "..", hidden files, macOS "._x.wav" forks */
    char *path = join(dir, e->d_name);
    if (!path) {
      rc = ser_error(SER_ENOMEM, "scan: out of memory");
      break;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
      rc = problem(out, path, errno == ENOENT ? "dangling symbolic link" : strerror(errno));
      free(path);
    } else if (S_ISDIR(st.st_mode)) {
      int cycle = 0;
      for (int i = 0; i < nstack; i++) cycle |= stack[i].dev == st.st_dev && stack[i].ino == st.st_ino;
      if (cycle) {
        rc = problem(out, path, "symbolic link back to a folder above it (cycle), not followed");
      } else if (max_depth > 0 && depth + 1 > max_depth) {
        rc = problem(out, path, "deeper than the scan's max_depth, not searched");
      } else if (nstack >= 64) {
        rc = problem(out, path, "more than 64 folder levels deep, not searched");
      } else {
        stack[nstack] = (dir_id){ st.st_dev, st.st_ino };
        rc = walk(out, path, depth + 1, max_depth, stack, nstack + 1);
      }
      free(path);
    } else if (S_ISREG(st.st_mode)) {
      rc = push(&out->paths, &out->n, &out->cap, path);
    } else {
      free(path); /* sockets, fifos, devices: not corpus files */
    }
  }
  closedir(d);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ser_corpus_walk(ser_filelist *out, const char *dir, int max_depth) {
  memset(out, 0, sizeof *out);
  if (!dir || !*dir) return ser_error(SER_EINVAL, "scan: empty folder name");
  struct stat st;
  if (stat(dir, &st) != 0) return ser_error(SER_EIO, "scan: cannot open folder '%s': %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return ser_error(SER_EINVAL, "scan: '%s' is not a folder (give the corpus root folder)", dir);
  dir_id stack[65];
  stack[0] = (dir_id){ st.st_dev, st.st_ino };
  int rc = walk(out, dir, 0, max_depth, stack, 1);
  if (rc < 0) {
    ser_filelist_free(out);
    return rc;
  }
  if (out->n > 1) qsort(out->paths, out->n, sizeof *out->paths, cmp_str);   /* an empty folder has no array */
  return 0;
}

void ser_filelist_free(ser_filelist *list) {
  for (size_t i = 0; i < list->n; i++) free(list->paths[i]);
  for (size_t i = 0; i < list->n_problems; i++) free(list->problems[i]);
  free(list->paths);
  free(list->problems);
  memset(list, 0, sizeof *list);
}
