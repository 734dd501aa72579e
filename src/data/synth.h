/* Synthetic "emotional speech" for a corpus that needs no download.
 *
 * Each clip is a short utterance of voiced syllables: a Rosenberg glottal pulse train with
 * jitter and shimmer, a spectral-tilt low-pass, aspiration noise, a cascade of four formant
 * resonators gliding between vowels, and noise-burst consonants at syllable onsets, under a
 * syllable envelope, with a quiet noise floor around it. The emotion sets the pitch level,
 * range and contour, tempo, loudness, jitter, tilt, breathiness and tremor (after the usual
 * acoustic correlates: anger loud, fast, flat-tilted; sadness slow, low, steep-tilted and
 * breathy; surprise with a final rise; ...). The speaker sets the voice: base f0 (odd speakers
 * low like RAVDESS's male actors, even ones high), formant scale, speaking rate, loudness.
 * The statement fixes the vowel sequence, so the "words" do not depend on the emotion.
 *
 * Everything is a pure function of (seed, clip fields): the same seed gives the same audio
 * bit for bit whatever the thread count. */
#ifndef SER_DATA_SYNTH_H
#define SER_DATA_SYNTH_H
#include <stdint.h>

#define SER_SYNTH_EMOTIONS 8 /* neutral calm happy sad angry fearful disgust surprised */

typedef struct {
  int speaker;    /* >= 1 */
  int emotion;    /* 0..7 in RAVDESS code order */
  int intensity;  /* 0 normal, 1 strong (emotion cues exaggerated by half) */
  int statement;  /* >= 1: which vowel sequence ("sentence") */
  int repetition; /* >= 1: another take, different details */
} ser_synth_clip;

/* Renders one clip of n samples at sample rate sr into out. */
int ser_synth_render(float *out, int64_t n, int sr, const ser_synth_clip *clip, uint64_t seed);
/* Renders n_clips clips into out[n_clips * n] (row per clip), threaded over clips. */
int ser_synth_render_many(float *out, int64_t n, int sr, const ser_synth_clip *clips, int n_clips,
                          uint64_t seed);
/* Name of emotion e (0-based), or NULL when out of range. */
const char *ser_synth_emotion_name(int e);

#endif
