/* classify: the emotion of audio files with a serlua checkpoint, through the C inference API
 * (docs/c-api.md). Build against an installed serlua:
 *
 *   cc classify.c $(pkg-config --cflags --libs ser) -o classify
 *   ./classify results/crnn.safetensors a.wav b.flac
 *
 * Prints, per file, the predicted emotion and every class's probability (predict.lua's line). */
#include <ser/ser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to) {
  fprintf(to, "usage: classify CHECKPOINT FILE...\n"
              "  The emotion of each audio file (wav, flac, ogg, mp3, aiff; any rate, mixed to mono) with a\n"
              "  checkpoint written by serlua's compare.lua (a .safetensors with a graph, docs/graph.md).\n");
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (argc < 3) {
    usage(stderr);
    return 2;
  }
  ser_model *m = ser_model_load(argv[1]);
  if (!m) {
    fprintf(stderr, "classify: %s\n", ser_errmsg());
    return 1;
  }
  int k = ser_model_num_classes(m), failed = 0;
  float *probs = malloc((size_t)k * sizeof *probs);
  for (int f = 2; f < argc && probs; f++) {
    /* the file at its own rate, mixed to mono: the model resamples and windows it itself */
    ser_audio_opts o = ser_audio_opts_default();
    o.sr = 0;
    o.mono = 1;
    o.seconds = 0;
    ser_audio a;
    if (ser_audio_load(&a, argv[f], &o) < 0 || ser_model_predict(m, a.data, a.frames, a.sr, probs) < 0) {
      fprintf(stderr, "%s: %s\n", argv[f], ser_errmsg());
      failed++;
      if (a.data) ser_audio_free(&a);
      continue;
    }
    ser_audio_free(&a);
    int best = 0;
    for (int i = 1; i < k; i++)
      if (probs[i] > probs[best]) best = i;
    printf("%s\t%s\t", argv[f], ser_model_class_name(m, best));
    for (int i = 0; i < k; i++) printf("%s%s %.6f", i ? "  " : "", ser_model_class_name(m, i), probs[i]);
    printf("\n");
  }
  free(probs);
  ser_model_free(m);
  return failed ? 1 : 0;
}
