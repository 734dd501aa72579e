/* CNN1D's convolutions (batch 8, [8,1,64000] input): im2col + GEMM against
 * the polyphase Winograd (src/ops/winograd1d.c) for layers 2-4 and the direct
 * one-channel kernel (src/ops/conv1d_c1.c) for layer 1 (the "winograd" column
 * there), forward + backward (input
 * gradient except for the first layer, weight and bias gradients), fp32 and
 * amp, the two paths interleaved repeat by repeat in one process so that a
 * loaded machine slows both alike. Prints the median wall and CPU seconds of
 * each layer and path, and the ratio. Run through bench/bench_conv1d.sh.
 *   bench_conv1d [repeats [fp32|amp]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "ops/conv.h"
#include "ops/gemm.h"

static double now(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static float *rnd(size_t n) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
  return p;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  const char *only = argc > 2 ? argv[2] : ""; /* "fp32" or "amp": that precision only */
  ser_threads_init();
  static const int L[4][3] = {{1, 32, 64000}, {32, 64, 32000}, {64, 128, 16000}, {128, 256, 8000}};
  const int B = 8;
  printf("threads %d, %d repeats, medians; seconds per batch of 8 (forward + backward)\n", ser_num_threads(),
         reps);
  for (int amp = 0; amp <= 1; amp++) {
    if (amp && !ser_bf16_supported()) break;
    if ((amp && !strcmp(only, "fp32")) || (!amp && !strcmp(only, "amp"))) continue;
    double tot[2][2] = {{0, 0}, {0, 0}};
    for (int l = 0; l < 4; l++) {
      ser_conv_geom g = {B, L[l][0], 1, L[l][2], L[l][1], 1, 9, 1, 2, 0, 4, 1, 1, 0, 0};
      ser_conv_geom_init(&g, "bench");
      size_t ni = (size_t)B * g.C * g.W, nw = (size_t)g.OC * g.C * 9, no = (size_t)B * g.OC * g.OW;
      float *in = rnd(ni), *w = rnd(nw), *b = rnd(g.OC), *dout = rnd(no), *out = malloc(no * 4);
      float *din = l ? malloc(ni * 4) : NULL, *dw = malloc(nw * 4), *db = malloc(g.OC * 4);
      double wall[2][64], cpu[2][64];
      for (int r = -1; r < reps && r < 64; r++)
        for (int path = 0; path < 2; path++) {
          ser_conv_set_winograd1d(path);
          ser_conv_set_direct_c1(path);
          ser_set_amp(amp);
          double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
          ser_conv2d_forward(out, in, w, b, &g);
          if (din) memset(din, 0, ni * 4);
          memset(dw, 0, nw * 4), memset(db, 0, g.OC * 4);
          ser_conv2d_backward(din, dw, db, dout, in, w, &g);
          ser_set_amp(0);
          if (r >= 0) wall[path][r] = now(CLOCK_MONOTONIC) - w0, cpu[path][r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
      double mw[2], mc[2];
      for (int path = 0; path < 2; path++) {
        qsort(wall[path], reps, sizeof(double), cmp);
        qsort(cpu[path], reps, sizeof(double), cmp);
        mw[path] = wall[path][reps / 2], mc[path] = cpu[path][reps / 2];
        tot[path][0] += mw[path], tot[path][1] += mc[path];
      }
      printf("%s C%-3d OC%-3d W%-5d  im2col %.3f s (CPU %.3f)  winograd %.3f s (CPU %.3f)  %.2fx (CPU %.2fx)\n",
             amp ? "amp " : "fp32", g.C, g.OC, g.W, mw[0], mc[0], mw[1], mc[1], mw[0] / mw[1], mc[0] / mc[1]);
      free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
    }
    printf("%s all four      im2col %.3f s (CPU %.3f)  winograd %.3f s (CPU %.3f)  %.2fx (CPU %.2fx)\n",
           amp ? "amp " : "fp32", tot[0][0], tot[0][1], tot[1][0], tot[1][1], tot[0][0] / tot[1][0],
           tot[0][1] / tot[1][1]);
  }
  ser_conv_set_winograd1d(1);
  ser_conv_set_direct_c1(1);
  return 0;
}
