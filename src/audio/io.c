#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/resample.h"
#include "core/alloc.h"
#include "core/error.h"

enum { SER_AUDIO_MIN_SR = 1000, SER_AUDIO_MAX_SR = 768000, SER_AUDIO_MAX_CHANNELS = 64 };

const char *const ser_audio_extensions[] = {"wav", "flac", "ogg", "mp3", "aiff", "aif", NULL};

int ser_audio_has_extension(const char *path) {
  if (!path) return 0;
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash)) return 0;
  for (const char *const *e = ser_audio_extensions; *e; e++)
    if (!strcasecmp(dot + 1, *e)) return 1;
  return 0;
}

ser_audio_opts ser_audio_opts_default(void) {
  ser_audio_opts o = {.sr = 16000, .mono = 1, .offset = 0.0, .seconds = 0.0, .normalize = 0};
  return o;
}

void ser_audio_free(ser_audio *a) {
  if (!a) return;
  if (a->data) ser_free(a->data, (size_t)(a->frames * a->channels) * sizeof(float));
  a->data = NULL;
  a->frames = 0;
}

int64_t ser_audio_find_nonfinite(const float *x, int64_t n, int64_t *count) {
  /* Fast vectorised pass: x - x is 0 for finite x, NaN for NaN/Inf. */
  int any = 0;
#pragma omp simd reduction(| : any)
  for (int64_t i = 0; i < n; i++) any |= (x[i] - x[i]) != 0.0f;
  if (!any) {
    if (count) *count = 0;
    return -1;
  }
  int64_t first = -1, c = 0;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) {
      if (first < 0) first = i;
      c++;
    }
  if (count) *count = c;
  return first;
}

void ser_audio_peak_normalize(float *x, int64_t n) {
  float peak = 0.0f;
  for (int64_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(x[i]));
  /* Divide rather than multiply by 1/peak: for a subnormal peak the
   * reciprocal overflows to Inf, while x / peak stays within [-1, 1]. */
  if (peak > 0.0f)
    for (int64_t i = 0; i < n; i++) x[i] /= peak;
}

/* Checks what libsndfile would report vaguely ("System error", "Format not
 * recognised") so that the message says what is wrong with the path itself. */
static int check_path(const char *path, int64_t *file_bytes) {
  struct stat st;
  if (!path || !*path) return ser_error(SER_EINVAL, "audio: empty path");
  if (stat(path, &st) != 0) return ser_error(SER_EIO, "cannot open '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return ser_error(SER_EIO, "cannot open '%s': it is a directory, expected an audio file", path);
  if (st.st_size == 0) return ser_error(SER_EFORMAT, "cannot decode '%s': the file is empty (0 bytes)", path);
  if (file_bytes) *file_bytes = (int64_t)st.st_size;
  return 0;
}

static SNDFILE *open_read(const char *path, SF_INFO *info, int64_t *file_bytes) {
  if (check_path(path, file_bytes) < 0) return NULL;
  memset(info, 0, sizeof *info);
  SNDFILE *f = sf_open(path, SFM_READ, info);
  if (!f) {
    ser_error(SER_EFORMAT, "cannot decode '%s': %s (expected WAV, FLAC, OGG, AIFF or another libsndfile format)",
              path, sf_strerror(NULL));
    return NULL;
  }
  /* Bounds on what a header may declare: a 100-byte file claiming 1.3 GHz or
   * 254 channels made the loader allocate gigabytes or run soxr for seconds
   * (found by fuzz_audio); no speech recording is outside these. */
  if (info->channels < 1 || info->channels > SER_AUDIO_MAX_CHANNELS || info->samplerate < SER_AUDIO_MIN_SR ||
      info->samplerate > SER_AUDIO_MAX_SR) {
    ser_error(SER_EFORMAT, "cannot decode '%s': header declares %d channels at %d Hz; expected 1..%d channels at %d..%d Hz",
              path, info->channels, info->samplerate, SER_AUDIO_MAX_CHANNELS, SER_AUDIO_MIN_SR, SER_AUDIO_MAX_SR);
    sf_close(f);
    return NULL;
  }
  return f;
}

int ser_audio_info_get(ser_audio_info *out, const char *path) {
  SF_INFO info;
  SNDFILE *f = open_read(path, &info, NULL);
  if (!f) return SER_EFORMAT;
  out->frames = info.frames;
  out->channels = info.channels;
  out->sr = info.samplerate;
  out->format = info.format;
  SF_FORMAT_INFO major = {.format = info.format & SF_FORMAT_TYPEMASK};
  SF_FORMAT_INFO sub = {.format = info.format & SF_FORMAT_SUBMASK};
  sf_command(NULL, SFC_GET_FORMAT_INFO, &major, sizeof major);
  sf_command(NULL, SFC_GET_FORMAT_INFO, &sub, sizeof sub);
  snprintf(out->format_name, sizeof out->format_name, "%s / %s", major.name ? major.name : "?",
           sub.name ? sub.name : "?");
  sf_close(f);
  return 0;
}

/* A header's frame count is a claim, not a size to allocate: a 93-byte FLAC whose
 * STREAMINFO claims 4.3 billion frames made the loader ask for 17 + 34 GB before
 * reading a byte (found by fuzz_audio). The decode buffer therefore starts at what
 * the file could hold uncompressed (one float per byte of file, the ratio of 8-bit
 * PCM; exact for honest WAVs, so they are decoded without a copy), at least this
 * much, and doubles as frames arrive, never past the frames the caller asked for. */
enum { SER_AUDIO_FIRST_BUFFER_BYTES = 4 << 20 };

/* Reads up to `want` frames (interleaved, `C` channels) starting at frame `start`
 * into a buffer that it allocates and grows with what the decoder actually
 * delivers, so memory follows the data and the request, never the header alone.
 * Seeks when the format allows it, else reads and discards. A read that ends
 * before the frame count the header promised is reported as truncation. On
 * success *buf_out holds exactly `want` frames in *bytes_out bytes. */
static int read_frames(SNDFILE *f, const SF_INFO *info, const char *path, int64_t file_bytes, int64_t start,
                       int64_t want, float **buf_out, size_t *bytes_out) {
  const int C = info->channels;
  int64_t got = 0;
  *buf_out = NULL;
  *bytes_out = 0;
  if (start > 0) {
    if (info->seekable && sf_seek(f, start, SEEK_SET) == start) {
      /* positioned */
    } else {
      float tmp[4096];
      int64_t skip = start, per = 4096 / C;
      while (skip > 0) {
        int64_t k = skip < per ? skip : per;
        sf_count_t r = sf_readf_float(f, tmp, k);
        if (r <= 0) break;
        skip -= r;
      }
    }
  }
  int64_t first = SER_AUDIO_FIRST_BUFFER_BYTES / ((int64_t)C * (int64_t)sizeof(float));
  if (file_bytes / C > first) first = file_bytes / C;
  int64_t cap = want < first ? want : first;
  size_t bytes = (size_t)cap * (size_t)C * sizeof(float);
  float *buf = ser_alloc(bytes);
  if (!buf) return ser_error_prefix(SER_ENOMEM, "audio.load '%s'", path);
  while (got < want) {
    if (got == cap) {
      int64_t ncap = cap > want / 2 ? want : 2 * cap;
      size_t nbytes = (size_t)ncap * (size_t)C * sizeof(float);
      float *nbuf = ser_alloc(nbytes);
      if (!nbuf) {
        ser_free(buf, bytes);
        return ser_error_prefix(SER_ENOMEM, "audio.load '%s'", path);
      }
      memcpy(nbuf, buf, (size_t)got * (size_t)C * sizeof(float));
      ser_free(buf, bytes);
      buf = nbuf, bytes = nbytes, cap = ncap;
    }
    sf_count_t r = sf_readf_float(f, buf + got * C, cap - got);
    if (r <= 0) break;
    got += r;
  }
  /* libsndfile reads what is there of a cut-off file without failing: a WAV
   * whose data chunk is shorter than its header says shows up only in the
   * log ("data : 32000 (should be 16000)"), a damaged FLAC as "ERROR : ...". */
  int rc = 0;
  char log[8192];
  log[0] = 0;
  sf_command(f, SFC_GET_LOG_INFO, log, sizeof log);
  for (char *line = log; line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = 0;
    int chunk = !strncmp(line, "data", 4) || !strncmp(line, "SSND", 4);
    if ((chunk && strstr(line, "(should be")) || !strncmp(line, "ERROR", 5)) {
      rc = ser_error(SER_EFORMAT, "cannot decode '%s': truncated or corrupt (libsndfile: \"%s\")", path, line);
      break;
    }
    line = next;
  }
  int err = rc < 0 ? SF_ERR_NO_ERROR : sf_error(f);
  if (err != SF_ERR_NO_ERROR)
    rc = ser_error(SER_EFORMAT, "cannot decode '%s': %s after %lld frames (corrupt or truncated file)", path,
                   sf_error_number(err), (long long)(start + got));
  else if (rc == 0 && got < want)
    rc = ser_error(SER_EFORMAT,
                   "cannot decode '%s': truncated or corrupt, the header promises %lld frames (%.1f s at %d Hz) "
                   "but only %lld could be read",
                   path, (long long)info->frames, (double)info->frames / info->samplerate, info->samplerate,
                   (long long)(start + got));
  if (rc < 0) {
    ser_free(buf, bytes);
    return rc;
  }
  *buf_out = buf;
  *bytes_out = bytes;
  return 0;
}

int ser_audio_load(ser_audio *out, const char *path, const ser_audio_opts *opts_in) {
  ser_audio_opts opts = opts_in ? *opts_in : ser_audio_opts_default();
  memset(out, 0, sizeof *out);
  if (opts.sr < 0) return ser_error(SER_EINVAL, "audio.load: sr must be positive (or 0 to keep the file's rate), got %d", opts.sr);
  if (!(opts.offset >= 0) || !isfinite(opts.offset))
    return ser_error(SER_EINVAL, "audio.load: offset must be >= 0 seconds, got %g", opts.offset);
  if (!(opts.seconds >= 0) || !isfinite(opts.seconds))
    return ser_error(SER_EINVAL, "audio.load: seconds must be > 0 (or 0 for the whole file), got %g", opts.seconds);

  SF_INFO info;
  int64_t file_bytes = 0;
  SNDFILE *f = open_read(path, &info, &file_bytes);
  if (!f) return SER_EFORMAT;
  if (info.frames <= 0) {
    sf_close(f);
    return ser_error(SER_EFORMAT, "cannot decode '%s': it holds no audio frames (header only)", path);
  }
  int C = info.channels, file_sr = info.samplerate;
  int64_t start = (int64_t)llround(opts.offset * file_sr);
  int64_t avail = info.frames > start ? info.frames - start : 0;
  int64_t want = avail;
  /* Keep only `seconds` at the file's rate before resampling, as librosa.load(duration=) does. */
  if (opts.seconds > 0) {
    int64_t lim = (int64_t)llround(opts.seconds * file_sr);
    if (lim < want) want = lim;
  }
  if (avail == 0) {
    sf_close(f);
    return ser_error(SER_EINVAL, "audio.load '%s': offset %g s is at or past the end (%.3f s, %lld frames at %d Hz)",
                     path, opts.offset, (double)info.frames / file_sr, (long long)info.frames, file_sr);
  }
  int OC = opts.mono ? 1 : C;
  int sr = opts.sr > 0 ? opts.sr : file_sr;
  int64_t n = sr != file_sr ? ser_resample_length(want, file_sr, sr, SER_RESAMPLE_SOXR) : want;
  int64_t final_n = opts.seconds > 0 ? (int64_t)llround(opts.seconds * sr) : n;
  if (final_n < 1) final_n = 1;

  /* Decode into an interleaved buffer that grows with the data (read_frames), then
   * mix or split it into planes. A one-channel file is its own plane. */
  float *inter = NULL;
  size_t inter_bytes = 0;
  int rc = read_frames(f, &info, path, file_bytes, start, want, &inter, &inter_bytes);
  sf_close(f);
  if (rc < 0) return rc;
  int64_t nbad = 0, bad = ser_audio_find_nonfinite(inter, want * C, &nbad);
  if (bad >= 0) {
    ser_free(inter, inter_bytes);
    return ser_error(SER_EFORMAT, "'%s' contains %lld non-finite samples (NaN/Inf), the first at frame %lld", path,
                     (long long)nbad, (long long)(start + bad / C));
  }
  float *planes = inter;
  size_t plane_bytes = inter_bytes;
  if (C > 1) {
    plane_bytes = (size_t)want * (size_t)OC * sizeof(float);
    planes = ser_alloc(plane_bytes);
    if (!planes) {
      ser_free(inter, inter_bytes);
      return ser_error_prefix(SER_ENOMEM, "audio.load '%s'", path);
    }
    if (opts.mono) {
      /* Scale before summing: channels near FLT_MAX would overflow the sum. */
      float inv = 1.0f / (float)C;
      for (int64_t t = 0; t < want; t++) {
        float acc = 0.0f;
        for (int c = 0; c < C; c++) acc += inter[t * C + c] * inv;
        planes[t] = acc;
      }
    } else {
      for (int64_t t = 0; t < want; t++)
        for (int c = 0; c < C; c++) planes[(int64_t)c * want + t] = inter[t * C + c];
    }
    ser_free(inter, inter_bytes);
  }

  /* Resample (or copy) each plane into the output, trimmed or zero-padded to final_n. */
  float *data = planes;
  size_t out_bytes = (size_t)final_n * (size_t)OC * sizeof(float);
  if (sr != file_sr || final_n != want) {
    data = ser_alloc(out_bytes);
    if (!data) {
      ser_free(planes, plane_bytes);
      return ser_error_prefix(SER_ENOMEM, "audio.load '%s'", path);
    }
    int64_t keep = n < final_n ? n : final_n;
    for (int c = 0; c < OC && rc == 0; c++) {
      float *dst = data + (int64_t)c * final_n;
      const float *src = planes + (int64_t)c * want;
      if (sr != file_sr) rc = ser_resample_soxr_n(dst, keep, src, want, file_sr, sr);
      else memcpy(dst, src, (size_t)keep * sizeof(float));
      memset(dst + keep, 0, (size_t)(final_n - keep) * sizeof(float));
    }
    ser_free(planes, plane_bytes);
    if (rc < 0) {
      ser_free(data, out_bytes);
      return ser_error_prefix(rc, "audio.load '%s'", path);
    }
  }
  if (sr != file_sr) {
    /* Decoded samples were checked above; the resampler must not create non-finite ones. */
    int64_t nbad2, bad2 = ser_audio_find_nonfinite(data, final_n * OC, &nbad2);
    if (bad2 >= 0) {
      ser_free(data, out_bytes);
      return ser_error(SER_EFORMAT, "'%s': resampling %d Hz -> %d Hz produced %lld non-finite samples", path, file_sr,
                       sr, (long long)nbad2);
    }
  }
  if (opts.normalize) ser_audio_peak_normalize(data, final_n * OC);
  out->data = data;
  out->frames = final_n;
  out->channels = OC;
  out->sr = sr;
  return 0;
}

static int format_for(const char *path, int *format) {
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash)) dot = "";
  if (!strcasecmp(dot, ".wav")) *format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  else if (!strcasecmp(dot, ".flac")) *format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
  else if (!strcasecmp(dot, ".aif") || !strcasecmp(dot, ".aiff")) *format = SF_FORMAT_AIFF | SF_FORMAT_PCM_16;
  else if (!strcasecmp(dot, ".ogg")) *format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  else if (!strcasecmp(dot, ".mp3")) *format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
  else
    return ser_error(SER_EINVAL, "audio.save: cannot tell the format of '%s' from its extension '%s' (expected .wav, .flac, .aif, .aiff, .ogg or .mp3)",
                     path, dot);
  return 0;
}

int ser_audio_save(const char *path, const float *data, int64_t frames, int channels, int sr) {
  int format = 0;
  if (!path || !*path) return ser_error(SER_EINVAL, "audio.save: empty path");
  if (format_for(path, &format) < 0) return SER_EINVAL;
  if (channels < 1 || frames < 1)
    return ser_error(SER_EINVAL, "audio.save '%s': need at least one channel and one frame, got %d x %lld", path,
                     channels, (long long)frames);
  if (sr < 1 || sr > 1000000) return ser_error(SER_EINVAL, "audio.save '%s': sample rate %d Hz out of range (1..1000000)", path, sr);
  int64_t nbad, bad = ser_audio_find_nonfinite(data, frames * channels, &nbad);
  if (bad >= 0)
    return ser_error(SER_EINVAL, "audio.save '%s': %lld non-finite samples (NaN/Inf), the first at index %lld", path,
                     (long long)nbad, (long long)bad);

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return ser_error(SER_ENOMEM, "audio.save: out of memory");
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int rc = ser_error(SER_EIO, "audio.save: cannot create a temporary file next to '%s': %s", path, strerror(errno));
    free(tmp);
    return rc;
  }
  fchmod(fd, 0644);
  SF_INFO info = {.samplerate = sr, .channels = channels, .format = format};
  SNDFILE *f = sf_open_fd(fd, SFM_WRITE, &info, 1);
  if (!f) {
    int rc = ser_error(SER_EIO, "audio.save '%s': libsndfile refused %d ch at %d Hz: %s", path, channels, sr,
                       sf_strerror(NULL));
    close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
  }
  /* Integer formats: clip instead of wrapping around on |x| > 1. */
  sf_command(f, SFC_SET_CLIPPING, NULL, SF_TRUE);
  float buf[4096];
  int64_t per = 4096 / channels, done = 0;
  int rc = 0;
  while (done < frames) {
    int64_t k = frames - done < per ? frames - done : per;
    for (int64_t t = 0; t < k; t++)
      for (int c = 0; c < channels; c++) buf[t * channels + c] = data[(int64_t)c * frames + done + t];
    if (sf_writef_float(f, buf, k) != k) {
      rc = ser_error(SER_EIO, "audio.save '%s': write failed after %lld frames: %s", path, (long long)done, sf_strerror(f));
      break;
    }
    done += k;
  }
  /* Data on disk before the rename makes it visible. */
  if (rc == 0) sf_write_sync(f);
  if (sf_close(f) != 0 && rc == 0) rc = ser_error(SER_EIO, "audio.save '%s': closing the file failed", path);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = ser_error(SER_EIO, "audio.save: cannot rename the temporary file to '%s': %s", path, strerror(errno));
  if (rc != 0) unlink(tmp);
  free(tmp);
  return rc;
}
