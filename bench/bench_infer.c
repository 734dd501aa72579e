/* Latency and throughput of ser_model_predict (the C inference API) per checkpoint, one clip
 * at a time on the calling thread: a 3 s clip at 16 kHz and the same length at 48 kHz (with
 * resampling), after two warm-up calls.
 *   bench_infer REPEATS CKPT...   (bench/bench_infer.sh makes the checkpoints and runs it) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ser.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static float *clip(int rate, double seconds, int64_t *n) {
  *n = (int64_t)(rate * seconds);
  float *x = malloc((size_t)*n * sizeof *x);
  for (int64_t i = 0; i < *n; i++) {
    double t = (double)i / rate;
    x[i] = (float)((t > 0.5 && t < 2.5 ? 0.3 : 0.001) * sin(2 * M_PI * (150 + 40 * sin(3 * t)) * t));
  }
  return x;
}

int main(int argc, char **argv) {
  if (argc < 3 || !strcmp(argv[1], "--help")) {
    fprintf(argc < 3 ? stderr : stdout, "usage: bench_infer REPEATS CKPT...\n");
    return argc < 3 ? 2 : 0;
  }
  int repeats = atoi(argv[1]);
  if (repeats < 1) repeats = 1;
  printf("%-28s %6s %10s %10s %10s\n", "checkpoint", "rate", "median ms", "mean ms", "clips/s");
  for (int a = 2; a < argc; a++) {
    ser_model *m = ser_model_load(argv[a]);
    if (!m) {
      fprintf(stderr, "bench_infer: %s\n", ser_errmsg());
      return 1;
    }
    float *probs = malloc((size_t)ser_model_num_classes(m) * sizeof *probs);
    const int rates[] = {16000, 48000};
    for (int r = 0; r < 2; r++) {
      int64_t n;
      float *x = clip(rates[r], 3.0, &n);
      double *t = malloc((size_t)repeats * sizeof *t), sum = 0;
      for (int w = 0; w < 2; w++) ser_model_predict(m, x, n, rates[r], probs);
      for (int i = 0; i < repeats; i++) {
        double t0 = now();
        if (ser_model_predict(m, x, n, rates[r], probs) < 0) {
          fprintf(stderr, "bench_infer: %s\n", ser_errmsg());
          return 1;
        }
        t[i] = now() - t0;
        sum += t[i];
      }
      qsort(t, (size_t)repeats, sizeof *t, cmp);
      const char *base = strrchr(argv[a], '/');
      printf("%-28s %6d %10.2f %10.2f %10.1f\n", base ? base + 1 : argv[a], rates[r], 1e3 * t[repeats / 2],
             1e3 * sum / repeats, repeats / sum);
      free(t);
      free(x);
    }
    free(probs);
    ser_model_free(m);
  }
  return 0;
}
