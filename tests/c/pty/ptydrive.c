/* ptydrive: runs a command on a pseudo-terminal and drives it like a person at a
 * keyboard, so that the REPL's readline behaviour (prompts, Tab, Ctrl-C, Ctrl-D,
 * history) can be tested. Built by tests/lua/repl_spec.lua; not part of serlua.
 *
 *   ptydrive SCRIPT -- command [args...]
 *
 * SCRIPT has one step per line:
 *   send TEXT     type TEXT (escapes: \n \r \t \e \\ \ooo octal, e.g. \003 = Ctrl-C)
 *   expect TEXT   wait until the output after the previous match contains TEXT
 *   sleep MS      wait MS milliseconds
 * Afterwards ptydrive waits for the command to exit, prints everything it wrote to the
 * terminal, then "[exit N]" (or "[signal N]"). A step that times out (10 s) prints the
 * transcript, "[timeout: TEXT]", and exits 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 10000

static char *out;
static size_t out_len, out_cap, matched;
static int master = -1;
static int child_gone;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads whatever the command wrote, waiting at most ms. Returns 1 after reading,
 * -1 when nothing came, 0 at end of output. */
static int pump(int ms) {
  if (child_gone) return 0;
  struct pollfd p = { .fd = master, .events = POLLIN };
  int r = poll(&p, 1, ms);
  if (r <= 0) return -1;
  char buf[4096];
  ssize_t n = read(master, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return -1;
    child_gone = 1;  /* EIO: the last process on the terminal has closed it */
    return 0;
  }
  if (out_len + (size_t)n + 1 > out_cap) {
    out_cap = (out_len + (size_t)n + 1) * 2;
    out = realloc(out, out_cap);
    if (!out) {
      perror("ptydrive");
      exit(2);
    }
  }
  memcpy(out + out_len, buf, (size_t)n);
  out_len += (size_t)n;
  out[out_len] = '\0';
  return 1;
}

static size_t unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r != '\\' || !r[1]) {
      *w++ = *r;
      continue;
    }
    r++;
    switch (*r) {
      case 'n': *w++ = '\n'; break;
      case 'r': *w++ = '\r'; break;
      case 't': *w++ = '\t'; break;
      case 'e': *w++ = 27; break;
      case '0': case '1': case '2': case '3': {
        int v = 0;
        for (int k = 0; k < 3 && r[k] >= '0' && r[k] <= '7'; k++) v = v * 8 + (r[k] - '0');
        int k = 0;
        while (k < 3 && r[k] >= '0' && r[k] <= '7') k++;
        r += k - 1;
        *w++ = (char)v;
        break;
      }
      default: *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

static void finish(const char *timeout_text, int code) {
  fwrite(out ? out : "", 1, out_len, stdout);
  if (timeout_text) printf("\n[timeout: %s]\n", timeout_text);
  fflush(stdout);
  exit(code);
}

static void expect(const char *text) {
  long deadline = now_ms() + TIMEOUT_MS;
  for (;;) {
    char *hit = out ? memmem(out + matched, out_len - matched, text, strlen(text)) : NULL;
    if (hit) {
      matched = (size_t)(hit - out) + strlen(text);
      return;
    }
    long left = deadline - now_ms();
    if (left <= 0 || pump((int)(left < 100 ? left : 100)) == 0) {
      if (out && memmem(out + matched, out_len - matched, text, strlen(text))) continue;
      finish(text, 2);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: ptydrive SCRIPT -- command [args...]\n");
    return 2;
  }
  FILE *script = fopen(argv[1], "r");
  if (!script) {
    fprintf(stderr, "ptydrive: cannot open %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  struct winsize ws = { .ws_row = 24, .ws_col = 100 };
  pid_t pid = forkpty(&master, NULL, NULL, &ws);
  if (pid < 0) {
    perror("ptydrive: forkpty");
    return 2;
  }
  if (pid == 0) {
    execvp(argv[3], argv + 3);
    fprintf(stderr, "ptydrive: cannot run %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, script)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (strncmp(line, "send ", 5) == 0) {
      size_t len = unescape(line + 5);
      for (size_t off = 0; off < len;) {
        ssize_t w = write(master, line + 5 + off, len - off);
        if (w < 0 && errno != EINTR) finish("write to the terminal failed", 2);
        if (w > 0) off += (size_t)w;
      }
    } else if (strncmp(line, "expect ", 7) == 0) {
      unescape(line + 7);
      expect(line + 7);
    } else if (strncmp(line, "sleep ", 6) == 0) {
      long until = now_ms() + atol(line + 6);
      while (now_ms() < until) pump((int)(until - now_ms()));
    } else if (n > 0) {
      fprintf(stderr, "ptydrive: unknown step '%s'\n", line);
      return 2;
    }
  }
  free(line);
  fclose(script);
  long deadline = now_ms() + TIMEOUT_MS;
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline) pump(50);
  while (pump(0) == 1 && out_len < (1u << 24)) {
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    finish("command did not exit", 2);
  }
  fwrite(out ? out : "", 1, out_len, stdout);
  if (WIFEXITED(status)) printf("\n[exit %d]\n", WEXITSTATUS(status));
  else printf("\n[signal %d]\n", WTERMSIG(status));
  return 0;
}
