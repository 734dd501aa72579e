/* Fault injection for tests/lua/atomic_spec.lua: an LD_PRELOAD library that kills its process
 * with SIGKILL at a chosen file-writing call, so the spec can interrupt the library's atomic
 * writers (ser.save, ser.fs.write) at every point of a write, one run per point, instead of
 * at a moment a timer hits (which under load may never be inside a write).
 *
 *   SER_KILLAT=N         at the Nth call of write, fwrite, fsync or rename (counted from 1, all
 *                        calls of the process), write the first half of the bytes (write, fwrite;
 *                        flushed) or nothing (fsync, rename), then SIGKILL. 0 or unset: never.
 *   SER_KILLAT_COUNT=F   write the number of calls seen to the file F at exit (a run without a
 *                        kill: how many points there are to interrupt).
 *
 * The spec compiles it with `cc -shared -fPIC`; nothing of the project links it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long calls, kill_at = -1;

static void report(void) {
  const char *path = getenv("SER_KILLAT_COUNT");
  if (!path) return;
  FILE *f = fopen(path, "w");
  if (!f) return;
  fprintf(f, "%ld\n", calls);
  fclose(f);
}

/* Counts a call; true when this call is the one to kill at. */
static int due(void) {
  if (kill_at < 0) {
    const char *s = getenv("SER_KILLAT");
    kill_at = s ? atol(s) : 0;
    atexit(report);
  }
  return ++calls == kill_at;
}

static void die(void) {
  raise(SIGKILL);
  _exit(137); /* not reached */
}

ssize_t write(int fd, const void *buf, size_t n) {
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
  if (due()) {
    if (n > 1) (void)real(fd, buf, n / 2);
    die();
  }
  return real(fd, buf, n);
}

size_t fwrite(const void *ptr, size_t size, size_t n, FILE *f) {
  static size_t (*real)(const void *, size_t, size_t, FILE *);
  if (!real) real = (size_t (*)(const void *, size_t, size_t, FILE *))dlsym(RTLD_NEXT, "fwrite");
  if (due()) {
    if (size * n > 1) {
      (void)real(ptr, 1, size * n / 2, f);
      fflush(f);
    }
    die();
  }
  return real(ptr, size, n, f);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  if (due()) die();
  return real(fd);
}

int rename(const char *from, const char *to) {
  static int (*real)(const char *, const char *);
  if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
  if (due()) die();
  return real(from, to);
}
