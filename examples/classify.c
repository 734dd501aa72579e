/* classify: the emotion of audio files with a serlua checkpoint, through the C inference API
 * (docs/c-api.md). Build against an installed serlua:
 *
 *   cc classify.c $(pkg-config --cflags --libs ser) -o classify
 *   ./classify results/crnn.safetensors a.wav b.flac
 *
 * Prints, per file, the predicted emotion and every class's probability (predict.lua's line).
 * A speaker-normalised model needs --speaker and files of one speaker (their statistics are
 * taken over all of them, as predict.lua does for one speaker's files). */
#include <ser/ser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to) {
  fprintf(to, "usage: classify [--speaker] CHECKPOINT FILE...\n"
              "  The emotion of each audio file (wav, flac, ogg, mp3, aiff; any rate, mixed to mono) with a\n"
              "  checkpoint written by serlua's compare.lua (a .safetensors with a graph, docs/graph.md).\n"
              "  --speaker  the files are one speaker's clips: the speaker's statistics are taken over all\n"
              "             of them first (needed by, and only for, speaker-normalised models)\n");
}

/* The file at its own rate, mixed to mono (the model resamples and windows it itself); 0 or -1
 * with the message printed. */
static int load(ser_audio *a, const char *path) {
  ser_audio_opts o = ser_audio_opts_default();
  o.sr = 0;
  o.mono = 1;
  o.seconds = 0;
  if (ser_audio_load(a, path, &o) == 0) return 0;
  fprintf(stderr, "%s: %s\n", path, ser_errmsg());
  if (a->data) ser_audio_free(a);
  return -1;
}

static void print_line(const ser_model *m, const char *path, const float *probs) {
  int k = ser_model_num_classes(m), best = 0;
  for (int i = 1; i < k; i++)
    if (probs[i] > probs[best]) best = i;
  printf("%s\t%s\t", path, ser_model_class_name(m, best));
  for (int i = 0; i < k; i++) printf("%s%s %.6f", i ? "  " : "", ser_model_class_name(m, i), probs[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  int first = 1, speaker = 0;
  if (argc > 1 && !strcmp(argv[1], "--speaker")) speaker = 1, first = 2;
  if (argc < first + 2) {
    usage(stderr);
    return 2;
  }
  ser_model *m = ser_model_load(argv[first]);
  if (!m) {
    fprintf(stderr, "classify: %s\n", ser_errmsg());
    return 1;
  }
  if (ser_model_speaker_norm(m) && !speaker) {
    fprintf(stderr, "classify: %s is speaker-normalised: give --speaker and clips of one speaker\n", argv[first]);
    ser_model_free(m);
    return 2;
  }
  ser_speaker *s = speaker ? ser_speaker_new(m) : NULL;
  if (speaker && !s) {
    fprintf(stderr, "classify: %s\n", ser_errmsg());
    ser_model_free(m);
    return 2;
  }
  int failed = 0;
  char *refused = calloc((size_t)argc, 1);   /* files already reported */
  for (int f = first + 1; s && refused && f < argc; f++) {   /* the speaker's statistics over every file first */
    ser_audio a;
    if (load(&a, argv[f]) < 0) {
      refused[f] = 1;
      continue;
    }
    if (ser_speaker_add(s, a.data, a.frames, a.sr) < 0) {
      fprintf(stderr, "%s: %s\n", argv[f], ser_errmsg());
      refused[f] = 1;
    }
    ser_audio_free(&a);
  }
  float *probs = malloc((size_t)ser_model_num_classes(m) * sizeof *probs);
  if (!probs || !refused) {
    fprintf(stderr, "classify: out of memory\n");
    failed = 1;
  }
  for (int f = first + 1; f < argc && probs && refused; f++) {
    ser_audio a;
    if (refused[f] || load(&a, argv[f]) < 0) {
      failed++;
      continue;
    }
    int rc = s ? ser_model_predict_speaker(m, s, a.data, a.frames, a.sr, probs)
               : ser_model_predict(m, a.data, a.frames, a.sr, probs);
    ser_audio_free(&a);
    if (rc < 0) {
      fprintf(stderr, "%s: %s\n", argv[f], ser_errmsg());
      failed++;
      continue;
    }
    print_line(m, argv[f], probs);
  }
  free(probs);
  free(refused);
  ser_speaker_free(s);
  ser_model_free(m);
  return failed ? 1 : 0;
}
