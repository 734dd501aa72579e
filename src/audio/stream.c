#include "stream.h"

#include <math.h>
#include <soxr.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* Slack beyond window + hop, so that a push moves a useful amount at a time even when the
 * ring is nearly full of the next window's samples. */
#define STREAM_CHUNK 4096
#define MAX_CHANNELS 64
/* Float PCM is nominally within [-1, 1]. Far beyond it is not audio but a wrong format (s16
 * read as f32, say), and values near FLT_MAX would overflow to infinity in the resampler. */
#define MAX_ABS 1e4f

struct ser_stream {
  double in_rate;
  int rate;
  int64_t window, hop;
  soxr_t soxr;        /* NULL when in_rate == rate */
  float *ring;        /* absolute sample i at ring[i % cap] */
  int64_t cap;
  float *tmp;         /* the resampler's output before it goes into the ring */
  int64_t total;      /* samples at rate received */
  int64_t next;       /* start of the next window; the ring keeps [next, total) */
  int64_t last_end;   /* end of the last window given out (0: none yet) */
  int finishing;      /* finish was called: no more pushes */
  int flushed;        /* ... and the resampler's delay is all in the ring */
};

int ser_pcm_sample_bytes(ser_pcm_format fmt) {
  return fmt == SER_PCM_S16 ? 2 : fmt == SER_PCM_F32 ? 4 : 0;
}

int64_t ser_pcm_decode(float *out, const unsigned char *bytes, size_t n, ser_pcm_format fmt, int channels,
                       size_t *used) {
  *used = 0;
  int b = ser_pcm_sample_bytes(fmt);
  if (b == 0) return ser_error(SER_EINVAL, "pcm: unknown sample format %d (expected s16 or f32)", (int)fmt);
  if (channels < 1 || channels > MAX_CHANNELS)
    return ser_error(SER_EINVAL, "pcm: channels must be in 1..%d, got %d", MAX_CHANNELS, channels);
  size_t fbytes = (size_t)b * (size_t)channels, frames = n / fbytes;
  const float scale = 1.0f / (float)channels;
  for (size_t f = 0; f < frames; f++) {
    const unsigned char *p = bytes + f * fbytes;
    float acc = 0.0f;
    for (int c = 0; c < channels; c++, p += b) {
      if (fmt == SER_PCM_S16) {
        int16_t v = (int16_t)(uint16_t)(p[0] | (p[1] << 8));
        acc += (float)v / 32768.0f;
      } else {
        uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        float v;
        memcpy(&v, &u, sizeof v);
        if (!isfinite(v))
          return ser_error(SER_EFORMAT, "pcm: f32 sample at byte %zu of this block is %s; samples must be finite",
                           (size_t)(p - bytes), isnan(v) ? "NaN" : "infinite");
        if (fabsf(v) > MAX_ABS)
          return ser_error(SER_EFORMAT,
                           "pcm: f32 sample at byte %zu of this block is %g; float PCM is expected within [-1, 1] "
                           "(at most +-%g accepted): is the format right?",
                           (size_t)(p - bytes), (double)v, (double)MAX_ABS);
        acc += v;
      }
    }
    out[f] = channels == 1 ? acc : acc * scale;
  }
  *used = frames * fbytes;
  return (int64_t)frames;
}

void ser_frame_db(float *out, const float *x, int64_t n, int64_t frame) {
  if (frame < 1) frame = 1;
  for (int64_t f = 0, i = 0; i < n; f++, i += frame) {
    int64_t m = n - i < frame ? n - i : frame;
    double ss = 0.0;
    for (int64_t k = 0; k < m; k++) ss += (double)x[i + k] * (double)x[i + k];
    double ms = ss / (double)m;
    out[f] = ms > 1e-12 ? (float)(10.0 * log10(ms)) : -120.0f;
  }
}

int ser_stream_new(ser_stream **out, const ser_stream_opts *o) {
  *out = NULL;
  if (!(o->in_rate >= 1000 && o->in_rate <= 768000))
    return ser_error(SER_EINVAL, "stream: input rate must be 1000..768000 Hz, got %g", o->in_rate);
  if (o->rate < 1000 || o->rate > 768000)
    return ser_error(SER_EINVAL, "stream: model rate must be 1000..768000 Hz, got %d", o->rate);
  /* an hour of samples at 768 kHz bounds the ring at ~11 GB; the Lua side asks far less */
  if (o->window < 1 || o->window > (int64_t)o->rate * 3600)
    return ser_error(SER_EINVAL, "stream: window must be 1..%lld samples (an hour), got %lld",
                     (long long)o->rate * 3600, (long long)o->window);
  if (o->hop < 1 || o->hop > o->window)
    return ser_error(SER_EINVAL, "stream: hop must be 1..%lld samples (at most the window), got %lld",
                     (long long)o->window, (long long)o->hop);
  ser_stream *s = ser_alloc(sizeof *s);
  if (!s) return SER_ENOMEM;
  memset(s, 0, sizeof *s);
  s->in_rate = o->in_rate;
  s->rate = o->rate;
  s->window = o->window;
  s->hop = o->hop;
  s->cap = o->window + o->hop + STREAM_CHUNK;
  s->ring = ser_alloc((size_t)s->cap * sizeof *s->ring);
  s->tmp = ser_alloc((size_t)s->cap * sizeof *s->tmp);
  if (!s->ring || !s->tmp) {
    ser_stream_free(s);
    return SER_ENOMEM;
  }
  if (o->in_rate != (double)o->rate) {
    soxr_error_t err = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    s->soxr = soxr_create(o->in_rate, (double)o->rate, 1, &err, &io, &q, &rt);
    if (!s->soxr || err) {
      ser_stream_free(s);
      return ser_error(SER_EINVAL, "stream: libsoxr cannot convert %g -> %d Hz (%s)", o->in_rate, o->rate,
                       err ? err : "no resampler");
    }
  }
  *out = s;
  return 0;
}

void ser_stream_free(ser_stream *s) {
  if (!s) return;
  if (s->soxr) soxr_delete(s->soxr);
  ser_free(s->ring, s->ring ? (size_t)s->cap * sizeof *s->ring : 0);
  ser_free(s->tmp, s->tmp ? (size_t)s->cap * sizeof *s->tmp : 0);
  ser_free(s, sizeof *s);
}

/* Room in the ring: samples from `next` on are still needed by a window. */
static int64_t ring_free(const ser_stream *s) { return s->cap - (s->total - s->next); }

static void ring_put(ser_stream *s, const float *x, int64_t n) {
  for (int64_t i = 0; i < n;) {
    int64_t at = (s->total + i) % s->cap, run = s->cap - at;
    if (run > n - i) run = n - i;
    memcpy(s->ring + at, x + i, (size_t)run * sizeof *x);
    i += run;
  }
  s->total += n;
}

int64_t ser_stream_push(ser_stream *s, const float *x, int64_t n) {
  if (s->finishing) return ser_error(SER_ESTATE, "stream: push after finish (the input has ended)");
  if (n < 0) return ser_error(SER_EINVAL, "stream: push of %lld samples", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(x[i]))
      return ser_error(SER_EINVAL, "stream: sample %lld of this push is %s; samples must be finite",
                       (long long)i + 1, isnan(x[i]) ? "NaN" : "infinite");
    if (fabsf(x[i]) > MAX_ABS)
      return ser_error(SER_EINVAL, "stream: sample %lld of this push is %g; samples are expected within [-1, 1] (at "
                       "most +-%g accepted)", (long long)i + 1, (double)x[i], (double)MAX_ABS);
  }
  int64_t room = ring_free(s);
  if (n == 0 || room <= 0) return 0;
  if (!s->soxr) {
    int64_t k = n < room ? n : room;
    ring_put(s, x, k);
    return k;
  }
  size_t idone = 0, odone = 0;
  soxr_error_t err = soxr_process(s->soxr, x, (size_t)n, &idone, s->tmp, (size_t)room, &odone);
  if (err) return ser_error(SER_EINVAL, "stream: libsoxr failed (%s)", err);
  ring_put(s, s->tmp, (int64_t)odone);
  return (int64_t)idone;
}

int ser_stream_finish(ser_stream *s) {
  s->finishing = 1;
  if (s->flushed) return 0;
  if (!s->soxr) {
    s->flushed = 1;
    return 0;
  }
  /* soxr hands out its delayed samples on calls with no input, until one gives fewer than
   * asked for */
  for (;;) {
    int64_t room = ring_free(s);
    if (room <= 0) return 1;
    size_t odone = 0;
    soxr_error_t err = soxr_process(s->soxr, NULL, 0, NULL, s->tmp, (size_t)room, &odone);
    if (err) return ser_error(SER_EINVAL, "stream: libsoxr failed while flushing (%s)", err);
    ring_put(s, s->tmp, (int64_t)odone);
    if ((int64_t)odone < room) {
      s->flushed = 1;
      return 0;
    }
  }
}

int64_t ser_stream_window(const ser_stream *s) { return s->window; }
int64_t ser_stream_samples(const ser_stream *s) { return s->total; }
int ser_stream_finished(const ser_stream *s) { return s->flushed; }

static void ring_get(const ser_stream *s, float *out, int64_t start, int64_t len) {
  for (int64_t i = 0; i < len;) {
    int64_t at = (start + i) % s->cap, run = s->cap - at;
    if (run > len - i) run = len - i;
    memcpy(out + i, s->ring + at, (size_t)run * sizeof *out);
    i += run;
  }
}

int ser_stream_next_window(ser_stream *s, float *out, int64_t *start, int64_t *len) {
  if (s->total - s->next >= s->window) {
    ring_get(s, out, s->next, s->window);
    *start = s->next;
    *len = s->window;
    s->last_end = s->next + s->window;
    s->next += s->hop;
    return 1;
  }
  /* after the end: one last window over the tail no full window reached */
  if (s->flushed && s->total > s->last_end && s->next < s->total) {
    ring_get(s, out, s->next, s->total - s->next);
    *start = s->next;
    *len = s->total - s->next;
    s->last_end = s->total;
    s->next += s->hop;
    return 1;
  }
  return 0;
}
