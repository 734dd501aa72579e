/* Writes the seed corpora of the fuzz targets: gen_seeds OUTDIR creates
 * OUTDIR/{audio,safetensors,manifest,names,torch,w2v_config,whisper_config,pcm,http}/ with small valid inputs made here
 * (tiny WAV/FLAC/AIFF/OGG/... through libsndfile, safetensors files of every dtype (F16/BF16
 * also as the writer makes them, and a Whisper-checkpoint layout), CSV manifests, sample
 * names of each corpus) and, for torch, the hand-made .pt files of tests/data/pt with their
 * data.pkl records (read with libzip; run from the repository root). Nothing is copied from
 * elsewhere, so the corpora are reproducible from the source tree. Audio seeds start with the
 * option byte that fuzz_audio reads; manifest and names seeds with their mode byte. */

#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"

static const char *outdir;
static int n_written;

static void die(const char *what, const char *detail) {
  fprintf(stderr, "gen_seeds: %s: %s\n", what, detail);
  exit(1);
}

static void put(const char *target, const char *name, int sel, const void *buf, size_t len) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s/%s", outdir, target, name);
  FILE *f = fopen(p, "wb");
  if (!f) die("cannot write", p);
  if (sel >= 0) fputc(sel, f);
  if (len && fwrite(buf, 1, len, f) != len) die("short write", p);
  fclose(f);
  n_written++;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot read back", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) die("cannot read back", path);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* A short tone through libsndfile in the given container/encoding. */
static void audio_seed(const char *name, int format, int sr, int channels, int frames, int sel) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s/.tmp-%s", outdir, name);
  SF_INFO info = {.samplerate = sr, .channels = channels, .format = format};
  SNDFILE *f = sf_open(tmp, SFM_WRITE, &info);
  if (!f) die(name, sf_strerror(NULL));
  float *buf = malloc(sizeof(float) * (size_t)frames * (size_t)channels);
  for (int t = 0; t < frames; t++)
    for (int c = 0; c < channels; c++)
      buf[t * channels + c] = 0.5f * sinf(2.0f * 3.14159265f * 440.0f * (float)(c + 1) * (float)t / (float)sr);
  if (sf_writef_float(f, buf, frames) != frames) die(name, sf_strerror(f));
  sf_close(f);
  free(buf);
  size_t len;
  unsigned char *b = slurp(tmp, &len);
  unlink(tmp);
  put("audio", name, sel, b, len);
  free(b);
}

static void audio_seeds(void) {
  /* sel bits: 0-1 rate (keep/16k/8k/16k), 2 all channels, 3-4 seconds, 5 offset, 6 normalize */
  audio_seed("pcm16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 400, 0x00);
  audio_seed("pcm16_16k_fixed.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 400, 0x09);
  audio_seed("u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 8000, 1, 300, 0x01);
  audio_seed("pcm24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 22050, 2, 200, 0x05);
  audio_seed("pcm32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 44100, 1, 200, 0x01);
  audio_seed("float.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, 200, 0x40);
  audio_seed("double.wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, 16000, 1, 100, 0x21);
  audio_seed("6ch.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 48000, 6, 60, 0x04);
  audio_seed("96k.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 96000, 1, 400, 0x0a);
  audio_seed("ulaw.wav", SF_FORMAT_WAV | SF_FORMAT_ULAW, 8000, 1, 200, 0x01);
  audio_seed("ima.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM, 8000, 1, 505, 0x01);
  audio_seed("ms_adpcm.wav", SF_FORMAT_WAV | SF_FORMAT_MS_ADPCM, 8000, 1, 500, 0x01);
  audio_seed("gsm.wav", SF_FORMAT_WAV | SF_FORMAT_GSM610, 8000, 1, 320, 0x01);
  audio_seed("wavex.wav", SF_FORMAT_WAVEX | SF_FORMAT_PCM_16, 16000, 2, 100, 0x04);
  audio_seed("rf64.wav", SF_FORMAT_RF64 | SF_FORMAT_PCM_16, 16000, 1, 100, 0x00);
  audio_seed("w64.w64", SF_FORMAT_W64 | SF_FORMAT_PCM_16, 16000, 1, 100, 0x00);
  audio_seed("pcm16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 400, 0x00);
  audio_seed("pcm24_2ch.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 44100, 2, 300, 0x05);
  audio_seed("pcm16.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 16000, 1, 200, 0x00);
  audio_seed("float.caf", SF_FORMAT_CAF | SF_FORMAT_FLOAT, 16000, 1, 100, 0x00);
  audio_seed("pcm16.au", SF_FORMAT_AU | SF_FORMAT_PCM_16, 16000, 1, 100, 0x00);
  audio_seed("vorbis.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1, 1600, 0x01);
  audio_seed("opus.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 16000, 1, 960, 0x00);
  audio_seed("pcm16.voc", SF_FORMAT_VOC | SF_FORMAT_PCM_16, 16000, 1, 100, 0x00);
  /* Non-audio and edge inputs the loader must refuse cleanly. */
  put("audio", "text.wav", 0, "this is not audio\n", 18);
  put("audio", "riff_only.wav", 0, "RIFF\x24\x00\x00\x00WAVEfmt ", 16);
}

/* safetensors header + data built by hand, so every dtype and layout is seeded. */
static void st_raw(const char *name, const char *json, const void *dat, size_t dlen) {
  size_t hlen = strlen(json);
  size_t total = 8 + hlen + dlen;
  unsigned char *b = malloc(total);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(b + 8, json, hlen);
  if (dlen) memcpy(b + 8 + hlen, dat, dlen);
  put("safetensors", name, -1, b, total);
  free(b);
}

static void safetensors_seeds(void) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s/.tmp.safetensors", outdir);
  int64_t s1[1] = {3}, s2[2] = {2, 2}, s4[4] = {1, 1, 2, 1};
  float v[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  ser_tensor *t[3] = {ser_tensor_from_data(1, s1, v), ser_tensor_from_data(2, s2, v), ser_tensor_from_data(4, s4, v)};
  const char *names[3] = {"fc.bias", "fc.weight", "features.0.weight"};
  const char *mk[2] = {SER_CHECKPOINT_FORMAT_KEY, "classes"};
  const char *mv[2] = {SER_CHECKPOINT_FORMAT, "neutral,calm,happy"};
  if (ser_safetensors_write(tmp, 3, names, t, 2, mk, mv) < 0) die("safetensors", ser_errmsg());
  size_t len;
  unsigned char *b = slurp(tmp, &len);
  put("safetensors", "checkpoint.safetensors", -1, b, len);
  free(b);
  if (ser_safetensors_write(tmp, 0, NULL, NULL, 0, NULL, NULL) < 0) die("safetensors", ser_errmsg());
  b = slurp(tmp, &len);
  put("safetensors", "empty.safetensors", -1, b, len);
  free(b);
  /* F16 / BF16 written by ser_safetensors_write_as, values at the rounding edges */
  float hv[6] = {1.0f + 0x1p-11f, 65520.0f, 0x1p-25f, -0.0f, 1.0f + 0x1p-8f, 3.14159265f};
  int64_t s6[1] = {6};
  ser_tensor *h[3] = {ser_tensor_from_data(1, s6, hv), ser_tensor_from_data(1, s6, hv), ser_tensor_from_data(1, s6, hv)};
  const char *hn[3] = {"half", "bhalf", "single"};
  const ser_st_dtype hd[3] = {SER_ST_F16, SER_ST_BF16, SER_ST_F32};
  if (ser_safetensors_write_as(tmp, 3, hn, h, hd, 0, NULL, NULL) < 0) die("safetensors", ser_errmsg());
  b = slurp(tmp, &len);
  put("safetensors", "f16_bf16_written.safetensors", -1, b, len);
  free(b);
  /* the layout of an openai/whisper-* checkpoint: encoder and decoder tensors, F16, metadata */
  const char *wn[3] = {"model.encoder.conv1.bias", "model.encoder.layers.0.self_attn.k_proj.weight",
                       "model.decoder.embed_tokens.weight"};
  const ser_st_dtype wd[3] = {SER_ST_F16, SER_ST_F16, SER_ST_F16};
  const char *wk[1] = {"format"}, *wv[1] = {"pt"};
  if (ser_safetensors_write_as(tmp, 3, wn, t, wd, 1, wk, wv) < 0) die("safetensors", ser_errmsg());
  b = slurp(tmp, &len);
  put("safetensors", "whisper_layout.safetensors", -1, b, len);
  free(b);
  for (int i = 0; i < 3; i++) ser_tensor_release(h[i]);
  unlink(tmp);
  for (int i = 0; i < 3; i++) ser_tensor_release(t[i]);

  static const unsigned char d8[16] = {0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64};
  st_raw("f64.safetensors", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", d8, 16);
  st_raw("f16.safetensors", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", d8, 8);
  st_raw("bf16.safetensors", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", d8, 8);
  st_raw("i64.safetensors",
         "{\"__metadata__\":{\"format\":\"pt\"},\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}",
         d8, 8);
  st_raw("mixed.safetensors",
         "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[12,16]},\"a\":{\"dtype\":\"I32\",\"shape\":[3],"
         "\"data_offsets\":[0,12]}}",
         d8, 16);
  st_raw("bool_i8_i16.safetensors",
         "{\"x\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]},\"y\":{\"dtype\":\"I8\",\"shape\":[2],"
         "\"data_offsets\":[2,4]},\"z\":{\"dtype\":\"I16\",\"shape\":[2,1],\"data_offsets\":[4,8]},"
         "\"w\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[8,10]},\"v\":{\"dtype\":\"U32\",\"shape\":[1],"
         "\"data_offsets\":[10,14]}}",
         d8, 14);
  st_raw("zero_dim.safetensors", "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", NULL, 0);
}

static void manifest_seeds(void) {
  static const char *csv[] = {
      "path,label,speaker\na.wav,angry,1\nsub/b.wav,happy,2\n",
      "path,label\n\"a.wav\",\"Neutral\"\n\"sub/b.wav\",sad\n",
      "\xef\xbb\xbfPath, Label ,Speaker,gender\r\na.wav,anger,03,f\r\nmissing.wav,joy,04,m\r\n",
      "label,path,speaker\n\"ps\",\"sub/b.wav\",\"x,y\"\n\"fear\",a.wav,\"multi\nline\"\n",
      "path,label,speaker\n\"a.wav\"\"q\",angry,1\n",
      "path,label,speaker\na.wav,,1\n",
      "path,label\n",
  };
  char name[64];
  for (size_t i = 0; i < sizeof csv / sizeof csv[0]; i++) {
    snprintf(name, sizeof name, "m%zu.csv", i);
    put("manifest", name, (int)(i & 1), csv[i], strlen(csv[i]));
  }
}

static void names_seeds(void) {
  static const char *p[] = {
      "Actor_12/03-01-05-02-01-01-12.wav", "03-02-08-01-02-02-01.wav", "data/1001_DFA_ANG_XX.wav",
      "crema/1091_IWW_HAP_HI.flac", "TESS/OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_dog_ps.wav",
      "AudioData/DC/a01.wav", "savee/JK_sa15.wav", "emodb/wav/03a01Fa.wav", "16b10Wb.wav",
      "angry/speaker7/take1.wav", "Happy/x.wav", "no/scheme/here.wav", "03-01-09-01-01-01-12.wav",
      "ünïcödé dir/03-01-01-01-01-01-01.wav",
  };
  char name[64];
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
    snprintf(name, sizeof name, "n%zu", i);
    put("names", name, (int)(i % 3 == 0), p[i], strlen(p[i]));
  }
}

/* tests/data/pt/<name>.pt as it is, and its data.pkl alone (fuzz_torch reads input that does
 * not start with "PK" as a bare pickle). */
static void torch_seeds(void) {
  static const char *files[] = {"tiny", "os_system", "view_past_storage", "short_storage", "missing_storage", "nested",
                                "torchscript"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1024], name[256];
    snprintf(path, sizeof path, "tests/data/pt/%s.pt", files[i]);
    size_t len;
    unsigned char *b = slurp(path, &len);
    snprintf(name, sizeof name, "%s.pt", files[i]);
    put("torch", name, -1, b, len);
    free(b);
    int err = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &err);
    if (!za) die("cannot open as zip", path);
    for (zip_int64_t k = 0; k < zip_get_num_entries(za, 0); k++) {
      const char *rec = zip_get_name(za, (zip_uint64_t)k, 0);
      zip_stat_t sb;
      if (!rec || !strstr(rec, "data.pkl") || zip_stat_index(za, (zip_uint64_t)k, 0, &sb) < 0) continue;
      unsigned char *pkl = malloc(sb.size + 1);
      zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)k, 0);
      if (!pkl || !zf || zip_fread(zf, pkl, sb.size) != (zip_int64_t)sb.size) die("cannot read data.pkl of", path);
      zip_fclose(zf);
      snprintf(name, sizeof name, "%s.pkl", files[i]);
      put("torch", name, -1, pkl, sb.size);
      free(pkl);
    }
    zip_discard(za);
  }
}

/* config.json / preprocessor_config.json of wav2vec2-family folders (selector 0 / 1) */
static void w2v_config_seeds(void) {
  static const char base[] =
      "{\"model_type\": \"wavlm\", \"conv_dim\": [512, 512, 512, 512, 512, 512, 512], \"conv_kernel\": [10, 3, 3, "
      "3, 3, 2, 2], \"conv_stride\": [5, 2, 2, 2, 2, 2, 2], \"conv_bias\": false, \"feat_extract_norm\": \"group\", "
      "\"feat_extract_activation\": \"gelu\", \"hidden_size\": 768, \"num_attention_heads\": 12, "
      "\"num_hidden_layers\": 12, \"intermediate_size\": 3072, \"hidden_act\": \"gelu\", "
      "\"num_conv_pos_embeddings\": 128, \"num_conv_pos_embedding_groups\": 16, \"do_stable_layer_norm\": false, "
      "\"layer_norm_eps\": 1e-05, \"num_buckets\": 320, \"max_bucket_distance\": 800, \"add_adapter\": false}";
  put("w2v_config", "wavlm_base.json", 0, base, sizeof base - 1);
  static const char large[] =
      "{\"model_type\": \"hubert\", \"feat_extract_norm\": \"layer\", \"conv_bias\": true, "
      "\"do_stable_layer_norm\": true, \"feat_proj_layer_norm\": true, \"hidden_size\": 1024, "
      "\"conv_pos_batch_norm\": false}";
  put("w2v_config", "hubert_large.json", 0, large, sizeof large - 1);
  static const char pre[] = "{\"do_normalize\": true, \"feature_size\": 1, \"sampling_rate\": 16000}";
  put("w2v_config", "preprocessor.json", 1, pre, sizeof pre - 1);
}

/* config.json of Whisper folders: a whole one (whisper-large-v3's sizes) and a partial one. */
static void whisper_config_seeds(void) {
  static const char large[] =
      "{\"model_type\": \"whisper\", \"activation_function\": \"gelu\", \"num_mel_bins\": 128, \"d_model\": 1280, "
      "\"encoder_attention_heads\": 20, \"encoder_layers\": 32, \"encoder_ffn_dim\": 5120, "
      "\"max_source_positions\": 1500, \"decoder_layers\": 32, \"vocab_size\": 51866}";
  put("whisper_config", "large_v3.json", -1, large, sizeof large - 1);
  static const char partial[] = "{\"d_model\": 384, \"encoder_layers\": 4}";
  put("whisper_config", "partial.json", -1, partial, sizeof partial - 1);
}

/* Raw PCM for fuzz_pcm: a tone as s16 and f32, mono and stereo, at the rates the option
 * byte selects (bit 0 format, bits 1-2 channels, bits 3-4 rate, bits 5-7 block size), one
 * cut inside a frame. */
static void pcm_seeds(void) {
  unsigned char buf[8 * 2000];
  for (int sel = 0; sel < 32; sel += 3) {
    int f32 = sel & 1, ch = (sel >> 1) & 3 ? 2 : 1;
    size_t len = 0;
    for (int i = 0; i < 2000 / ch && len + 8 <= sizeof buf; i++) {
      float v = 0.3f * sinf(2.0f * 3.14159265f * 220.0f * (float)i / 16000.0f);
      for (int c = 0; c < ch; c++) {
        if (f32) {
          memcpy(buf + len, &v, 4);
          len += 4;
        } else {
          int16_t s = (int16_t)lrintf(v * 32767.0f);
          buf[len++] = (unsigned char)(s & 0xff);
          buf[len++] = (unsigned char)((uint16_t)s >> 8);
        }
      }
    }
    char name[64];
    snprintf(name, sizeof name, "tone_%02d", sel);
    put("pcm", name, sel | (4 << 5), buf, len);
    snprintf(name, sizeof name, "cut_%02d", sel);
    put("pcm", name, sel | (2 << 5), buf, len - 1);
  }
}

/* Requests as serve.lua's clients send them, and a few that its server must refuse. */
static void http_seeds(void) {
  static const char *const reqs[][2] = {
      {"get_page", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
      {"get_args", "GET /stream?rate=16000&format=f32&x=%41%00 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"post_body", "POST /predict HTTP/1.1\r\nHost: a\r\nContent-Type: audio/wav\r\nContent-Length: 8\r\n\r\nRIFFabcd"},
      {"post_chunked", "POST /stream/ab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"},
      {"over_limit", "POST /predict HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\nabc"},
      {"two_requests", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nDELETE /stream/x HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"http10", "GET /api/info HTTP/1.0\r\n\r\n"},
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) put("http", reqs[i][0], -1, reqs[i][1], strlen(reqs[i][1]));
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_seeds OUTDIR\n");
    return 2;
  }
  outdir = argv[1];
  const char *sub[] = {"", "/audio", "/safetensors", "/manifest", "/names", "/torch", "/w2v_config", "/whisper_config", "/pcm", "/http"};
  for (int i = 0; i < (int)(sizeof sub / sizeof *sub); i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s%s", outdir, sub[i]);
    mkdir(p, 0755);
  }
  audio_seeds();
  safetensors_seeds();
  manifest_seeds();
  names_seeds();
  torch_seeds();
  w2v_config_seeds();
  whisper_config_seeds();
  pcm_seeds();
  http_seeds();
  printf("gen_seeds: %d seed files in %s\n", n_written, outdir);
  return 0;
}
