/* Streaming audio for sliding-window inference over long or live input (ser.stream,
 * experiments/stream.lua):
 *
 * - raw PCM bytes (little-endian s16 or f32, interleaved channels) -> mono float, keeping
 *   whatever does not make a whole frame for the caller to complete with the next read;
 * - a streaming resampler (libsoxr, the HQ recipe that loading uses) from the rate of the
 *   pushed samples to the model's rate, bypassed when the two are equal;
 * - a ring of the most recent samples at the model's rate, from which windows of `window`
 *   samples are cut every `hop` samples; after the end of input, one shorter final window
 *   covers the tail that no full window reached;
 * - frame energies for the voice-activity gate.
 *
 * Memory is fixed when the stream is made (window + hop + a chunk of slack samples), whatever
 * the length of the input: ser_stream_push takes only as much as the ring can hold, and the
 * caller takes the ready windows out (ser_stream_next_window) before pushing the rest. */
#ifndef SER_AUDIO_STREAM_H
#define SER_AUDIO_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SER_PCM_S16 = 0, SER_PCM_F32 = 1 } ser_pcm_format;

/* Bytes of one sample of a format (2 or 4). */
int ser_pcm_sample_bytes(ser_pcm_format fmt);

/* Decodes the whole frames (one sample per channel) of bytes[0..n): little-endian, channels
 * interleaved and averaged into one; s16 scaled by 1/32768 (libsndfile's scaling). out must
 * hold n / (sample bytes * channels) samples. Returns the count of samples written, or a
 * negative SER_E* (channels outside 1..64, an unknown format, an f32 sample that is not
 * finite or beyond +-1e4, far outside audio's [-1, 1]: the message names its byte offset).
 * *used gets the bytes consumed: the trailing bytes of an incomplete frame are left for the
 * next call. */
int64_t ser_pcm_decode(float *out, const unsigned char *bytes, size_t n, ser_pcm_format fmt, int channels,
                       size_t *used);

/* dBFS of each frame of x[0..n): 10 log10(mean square), with a floor of -120 dB for digital
 * silence. Frames are `frame` samples from x[0]; the last one may be shorter. out holds
 * ceil(n / frame) values. */
void ser_frame_db(float *out, const float *x, int64_t n, int64_t frame);

typedef struct ser_stream ser_stream;

typedef struct ser_stream_opts {
  double in_rate;  /* Hz of the pushed samples (> 0) */
  int rate;        /* Hz of the windows (the model's rate) */
  int64_t window;  /* samples per window at rate (>= 1) */
  int64_t hop;     /* samples between window starts at rate (1..window) */
} ser_stream_opts;

int ser_stream_new(ser_stream **out, const ser_stream_opts *o);
void ser_stream_free(ser_stream *s);  /* NULL is fine */

/* Feeds x[0..n) (at in_rate). Returns how many samples were taken (0..n): fewer when the ring
 * holds samples that a window not yet taken still needs; take the ready windows and push the
 * rest. Negative SER_E* (nothing taken) for a sample that is not finite or beyond +-1e4, a
 * push after finish, or a resampler failure. */
int64_t ser_stream_push(ser_stream *s, const float *x, int64_t n);

/* Marks the end of input and flushes the resampler's delay into the ring. Returns 0 when all
 * of it is in, 1 when the ring is full: take the ready windows and call again. */
int ser_stream_finish(ser_stream *s);

/* Maximum samples of a window (the window length), for sizing the buffer of next_window. */
int64_t ser_stream_window(const ser_stream *s);

/* The next window: returns 1 with its samples in out[0..*len) and its first sample's index
 * at rate in *start (window k starts at k * hop); 0 when none is ready. *len is the window
 * length except for the final window after finish, which spans [start, end of input). */
int ser_stream_next_window(ser_stream *s, float *out, int64_t *start, int64_t *len);

/* Samples at rate received so far, and whether finish has completed. */
int64_t ser_stream_samples(const ser_stream *s);
int ser_stream_finished(const ser_stream *s);

#endif
