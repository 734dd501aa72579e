/* Replays inputs through a fuzz target without libFuzzer (tests/fuzz/replay.sh, CI's
 * `FUZZ_REPLAY_ONLY=1 make fuzz`). Linked against the AddressSanitizer + UBSan build that
 * `make check-asan` has just made, so CI does not compile the whole library a third time with
 * clang only to run each committed input once. The checks per input are libFuzzer's -runs=0
 * ones: the input in a buffer of exactly its size (an overread is an ASan report), sanitizer
 * reports abort (replay.sh sets the limits: 512 MB per allocation, 1 GB RSS), and a 10 s alarm
 * stands for -timeout=10. On the first failure the process ends non-zero; the "Running:" line
 * before it names the input. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* defined by the targets that prepare something once (a folder, a Lua state) */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *current = "";

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "replay: timeout: an input ran more than 10 s: ";
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, current, strlen(current));
  (void)!write(2, "\n", 1);
  _exit(70);
}

/* The file's bytes in a buffer of exactly their size (NULL on a read error). */
static uint8_t *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *buf = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  *size = n > 0 ? (size_t)n : 0;
  return buf;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  signal(SIGALRM, on_alarm);
  for (int i = 1; i < argc; i++) {
    size_t n;
    uint8_t *data = slurp(argv[i], &n);
    if (!data) {
      fprintf(stderr, "replay: cannot read the input %s\n", argv[i]);
      return 2;
    }
    current = argv[i];
    fprintf(stderr, "Running: %s\n", argv[i]);
    alarm(10);
    LLVMFuzzerTestOneInput(data, n);
    alarm(0);
    free(data);
  }
  fprintf(stderr, "replay: %d inputs, no failure\n", argc - 1);
  return 0;
}
