/* classify: the emotion of audio files with a serlua checkpoint, through the C inference API
 * (docs/c-api.md). Build against an installed serlua:
 *
 *   cc classify.c $(pkg-config --cflags --libs ser) -o classify
 *   ./classify results/crnn.safetensors a.wav b.flac
 *
 * Prints, per file, the predicted emotion and every class's probability (predict.lua's line).
 * A speaker-normalised model needs the speaker's statistics: --speaker when the files are one
 * speaker's (taken over all of them, as predict.lua does for one speaker's files), or
 * --speaker-clips DIR for the speaker's clips in a folder (stream.lua's and serve.lua's flag). */
#include <ser/ser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to) {
  fprintf(to, "usage: classify [--speaker | --speaker-clips DIR] CHECKPOINT FILE...\n"
              "  The emotion of each audio file (wav, flac, ogg, mp3, aiff; any rate, mixed to mono) with a\n"
              "  checkpoint written by serlua's compare.lua (a .safetensors with a graph, docs/graph.md).\n"
              "  Speaker-normalised models need one of (and other models take neither):\n"
              "  --speaker            the files are one speaker's clips: the speaker's statistics are taken\n"
              "                       over all of them first\n"
              "  --speaker-clips DIR  the speaker's statistics from the audio files under DIR (include the\n"
              "                       files you classify to get predict.lua's numbers for them)\n");
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

/* Adds one file to the speaker: its clip number, or -1 with the reason printed. */
static int add_clip(ser_speaker *s, const char *path) {
  ser_audio a;
  if (load(&a, path) < 0) return -1;
  int rc = ser_speaker_add(s, a.data, a.frames, a.sr);
  ser_audio_free(&a);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", path, ser_errmsg());
    return -1;
  }
  return ser_speaker_num_clips(s) - 1;
}

/* Adds the audio files under dir (or the audio file dir) to the speaker; 0, or -1 with the
 * reason printed when it cannot be read or gives no clip. A file that cannot be read is
 * reported and left out. */
static int enrol_folder(ser_speaker *s, const char *dir) {
  ser_filelist files;
  if (ser_audio_has_extension(dir) && ser_fs_is_file(dir)) {
    add_clip(s, dir);
  } else if (ser_corpus_walk(&files, dir, 0) < 0) {
    fprintf(stderr, "classify: --speaker-clips %s: %s\n", dir, ser_errmsg());
    return -1;
  } else {
    for (size_t i = 0; i < files.n; i++)
      if (ser_audio_has_extension(files.paths[i])) add_clip(s, files.paths[i]);
    ser_filelist_free(&files);
  }
  if (ser_speaker_num_clips(s) > 0) return 0;
  fprintf(stderr, "classify: --speaker-clips %s: no clip of the speaker could be added (expected audio files: "
          "wav, flac, ogg, mp3, aiff)\n", dir);
  return -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  int first = 1, speaker = 0;
  const char *clips_dir = NULL;
  if (argc > 1 && !strcmp(argv[1], "--speaker")) speaker = 1, first = 2;
  if (argc > 2 && !strcmp(argv[1], "--speaker-clips")) speaker = 1, clips_dir = argv[2], first = 3;
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
    fprintf(stderr, "classify: %s is speaker-normalised: give --speaker and clips of one speaker, or --speaker-clips "
            "DIR\n", argv[first]);
    ser_model_free(m);
    return 2;
  }
  if (speaker && !ser_model_speaker_norm(m)) {
    fprintf(stderr, "classify: %s was trained without speaker normalisation: classify its files without --speaker "
            "or --speaker-clips\n", argv[first]);
    ser_model_free(m);
    return 2;
  }
  ser_speaker *s = speaker ? ser_speaker_new(m) : NULL;
  if (speaker && !s) {
    fprintf(stderr, "classify: %s\n", ser_errmsg());
    ser_model_free(m);
    return 1;
  }
  int failed = 0;
  /* --speaker: the files are the speaker's clips. The statistics are over all of them, so each
   * is predicted after all are added, from what the speaker kept of it (a Whisper model's
   * encoder runs once per file); clip[f]: file f's clip number (-1: refused, reported). */
  const int kept = speaker && !clips_dir;
  int *clip = calloc((size_t)argc, sizeof *clip);
  float *probs = malloc((size_t)ser_model_num_classes(m) * sizeof *probs);
  if (!probs || !clip) {
    fprintf(stderr, "classify: out of memory\n");
    failed = 1;
  }
  for (int f = first + 1; kept && clip && f < argc; f++) clip[f] = add_clip(s, argv[f]);
  if (clips_dir && enrol_folder(s, clips_dir) < 0) failed = 1;
  for (int f = first + 1; f < argc && probs && clip && !failed; f++) {
    int rc;
    if (kept) {
      if (clip[f] < 0) {
        failed++;
        continue;
      }
      rc = ser_model_predict_speaker_clip(m, s, clip[f], probs);
    } else {
      ser_audio a;
      if (load(&a, argv[f]) < 0) {
        failed++;
        continue;
      }
      rc = s ? ser_model_predict_speaker(m, s, a.data, a.frames, a.sr, probs)
             : ser_model_predict(m, a.data, a.frames, a.sr, probs);
      ser_audio_free(&a);
    }
    if (rc < 0) {
      fprintf(stderr, "%s: %s\n", argv[f], ser_errmsg());
      failed++;
      continue;
    }
    print_line(m, argv[f], probs);
  }
  free(probs);
  free(clip);
  ser_speaker_free(s);
  ser_model_free(m);
  return failed ? 1 : 0;
}
