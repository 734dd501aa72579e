#include "scratch.h"

#include <pthread.h>

#include "../core/alloc.h"

static _Thread_local void *buf[SER_SCRATCH_SLOTS];
static _Thread_local size_t cap[SER_SCRATCH_SLOTS];

/* A thread's slots are freed when it exits (a pthread key's destructor): a program that runs
 * each request on a thread of its own (the C inference API in a server), and the OpenMP
 * teams such threads start, would otherwise leave every exited thread's slots allocated. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;
static void on_thread_exit(void *unused) {
  (void)unused;
  ser_scratch_release();
}
static void make_exit_key(void) { exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0; }

void *ser_scratch(int slot, size_t bytes) {
  if (bytes <= cap[slot]) return buf[slot];
  pthread_once(&exit_once, make_exit_key);
  /* any non-NULL value: the destructor runs only for threads that set one */
  if (exit_key_ok && !pthread_getspecific(exit_key)) pthread_setspecific(exit_key, &exit_key);
  /* Grow by at least half again so a slowly growing sequence of requests does
   * not reallocate every call. */
  size_t want = bytes + bytes / 2;
  void *p = ser_alloc(want);
  if (!p) return NULL;
  ser_free(buf[slot], cap[slot]);
  buf[slot] = p;
  cap[slot] = want;
  return p;
}

void ser_scratch_release(void) {
  for (int i = 0; i < SER_SCRATCH_SLOTS; i++) {
    ser_free(buf[i], cap[i]);
    buf[i] = NULL;
    cap[i] = 0;
  }
}
