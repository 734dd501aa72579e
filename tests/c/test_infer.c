/* src/infer/: the C inference API on small checkpoints written here (a waveform model:
 * conv1d -> relu -> adaptive pool -> flatten -> linear). Checks the probabilities against the
 * same ops run by hand, every class of bad input (a graph that is not JSON, an unknown op, a
 * missing tensor, a tensor of the wrong shape, a truncated file, a checkpoint without a
 * graph, inconsistent speaker normalisation, empty and non-finite PCM, absurd rates) giving a
 * message and no crash, that threads predicting at once (own models and one shared model) get the
 * single-threaded results, and the speaker API (ser_speaker_*) on a speaker-normalised log-mel
 * model: its statistics by hand, and its misuse refused. The parity with predict.lua on every model kind is
 * tests/lua/infer_spec.lua. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "infer/infer.h"
#include "io/safetensors.h"
#include "lib/fixture.h"
#include "ops/ops.h"

static char tmpdir[256];

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ser_infer_test.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The graph of the test model; %s slots: the input's extra fields, the features' extra
 * fields, the first node's op, the linear weight's name. */
static const char *graph_fmt =
    "{\"format\":\"serlua-graph\",\"version\":1,\"model\":\"T\",\"classes\":[\"a\",\"b\",\"c\"],"
    "\"input\":{\"sr\":8000,\"seconds\":0.25,\"window\":\"fixed\",\"read_seconds\":0.25%s,"
    "\"features\":{\"kind\":\"waveform\",\"normalize\":true%s},\"shape\":[\"batch\",1,\"samples\"]},"
    "\"nodes\":[{\"op\":\"%s\",\"inputs\":[\"input\"],\"output\":\"h1\",\"weight\":\"c.weight\",\"bias\":\"c.bias\","
    "\"stride\":[2],\"padding\":[4],\"dilation\":[1],\"groups\":1},"
    "{\"op\":\"relu\",\"inputs\":[\"h1\"],\"output\":\"h2\"},"
    "{\"op\":\"adaptive_avgpool1d\",\"inputs\":[\"h2\"],\"output\":\"h3\",\"output_size\":[1]},"
    "{\"op\":\"flatten\",\"inputs\":[\"h3\"],\"output\":\"h4\",\"start_dim\":1},"
    "{\"op\":\"linear\",\"inputs\":[\"h4\"],\"output\":\"h5\",\"weight\":\"%s\",\"bias\":\"l.bias\"}],"
    "\"output\":\"h5\"}";

static ser_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  ser_rng r;
  ser_rng_seed(&r, seed);
  ser_tensor_fill_normal(t, 0.0f, 1.0f, &r);
  return t;
}

/* Writes the test model with the given graph text (NULL: no graph) and linear weight shape. */
static void write_model(const char *path, const char *graph, int64_t lin_in) {
  ser_tensor *t[4] = {randn(3, SER_DIMS(4, 1, 9), 1), randn(1, SER_DIMS(4), 2), randn(2, SER_DIMS(3, lin_in), 3),
                      randn(1, SER_DIMS(3), 4)};
  const char *names[4] = {"c.weight", "c.bias", "l.weight", "l.bias"};
  const char *mk[] = {"graph"}, *mv[] = {graph};
  assert_int_equal(ser_safetensors_write(path, 4, names, t, graph ? 1 : 0, mk, mv), 0);
  for (int i = 0; i < 4; i++) ser_tensor_release(t[i]);
}

static char *graph_text(const char *input_extra, const char *feat_extra, const char *op, const char *lin) {
  static char buf[4096];
  snprintf(buf, sizeof buf, graph_fmt, input_extra, feat_extra, op, lin);
  return buf;
}

static const char *model_path(const char *name) {
  static char p[16][400];   /* a ring: the last 16 paths stay valid */
  static int k;
  k = (k + 1) % 16;
  snprintf(p[k], sizeof p[k], "%s/%s.safetensors", tmpdir, name);
  return p[k];
}

static void make_good(void) { write_model(model_path("good"), graph_text("", "", "conv1d", "l.weight"), 4); }

static void signal(float *x, int64_t n, int rate, double f0) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(0.3 * sin(2 * M_PI * f0 * (double)i / rate) + 0.05 * sin(0.37 * i));
}

static ser_tensor *find(const ser_safetensors *st, const char *name) {
  for (int i = 0; i < st->n; i++)
    if (!strcmp(st->names[i], name)) return st->tensors[i];
  fail_msg("no tensor %s", name);
  return NULL;
}

/* The model's probabilities recomputed with the ops by hand (at 8 kHz, 0.25 s = 2000 samples). */
static void by_hand(float *probs, const float *pcm) {
  ser_safetensors *st;
  assert_int_equal(ser_safetensors_read(&st, model_path("good")), 0);
  ser_tensor *x = ser_tensor_from_data(2, SER_DIMS(1, 2000), pcm), *h1, *h2, *h3, *h4, *h5, *p, *xv;
  ser_feat_normalize_rows(ser_tensor_data(x), 1, 2000);
  ser_conv_opts o = {{2, 1}, {4, 0}, {1, 1}};
  assert_int_equal(ser_view(&xv, x, 3, SER_DIMS(1, 1, 2000)), 0);
  assert_int_equal(ser_conv1d(&h1, xv, find(st, "c.weight"), find(st, "c.bias"), &o), 0);
  assert_int_equal(ser_relu(&h2, h1), 0);
  assert_int_equal(ser_adaptive_avg_pool1d(&h3, h2, 1), 0);
  assert_int_equal(ser_flatten(&h4, h3, 1, 2), 0);
  assert_int_equal(ser_linear(&h5, h4, find(st, "l.weight"), find(st, "l.bias")), 0);
  assert_int_equal(ser_softmax(&p, h5, 1), 0);
  memcpy(probs, ser_tensor_data(p), 3 * sizeof(float));
  ser_tensor *all[] = {x, xv, h1, h2, h3, h4, h5, p};
  for (int i = 0; i < 8; i++) ser_tensor_release(all[i]);
  ser_safetensors_free(st);
}

static void test_predicts_what_the_ops_compute(void **state) {
  (void)state;
  make_good();
  ser_model *m = ser_model_load(model_path("good"));
  assert_non_null(m);
  assert_int_equal(ser_model_num_classes(m), 3);
  assert_string_equal(ser_model_class_name(m, 2), "c");
  assert_null(ser_model_class_name(m, 3));
  assert_null(ser_model_class_name(m, -1));
  assert_int_equal(ser_model_sample_rate(m), 8000);
  float pcm[3000], probs[3], want[3];
  signal(pcm, 3000, 8000, 220);
  assert_int_equal(ser_model_predict(m, pcm, 3000, 8000, probs), 0);   /* longer than 0.25 s: the first 2000 */
  by_hand(want, pcm);
  for (int i = 0; i < 3; i++) assert_float_equal(probs[i], want[i], 1e-6);
  /* shorter: zero-padded to the window */
  float pad[2000] = {0};
  memcpy(pad, pcm, 1500 * sizeof(float));
  assert_int_equal(ser_model_predict(m, pcm, 1500, 8000, probs), 0);
  by_hand(want, pad);
  for (int i = 0; i < 3; i++) assert_float_equal(probs[i], want[i], 1e-6);
  /* another rate is resampled: the same tone at 48 kHz gives nearly the same probabilities */
  static float hi[18000];
  signal(hi, 18000, 48000, 220);
  float p48[3], p8[3];
  signal(pcm, 3000, 8000, 220);
  assert_int_equal(ser_model_predict(m, hi, 18000, 48000, p48), 0);
  assert_int_equal(ser_model_predict(m, pcm, 3000, 8000, p8), 0);
  float s = 0;
  for (int i = 0; i < 3; i++) s += p48[i];
  assert_float_equal(s, 1.0f, 1e-5);
  ser_model_free(m);
  ser_model_free(NULL);
}

static void expect_load_error(const char *path, const char *needle) {
  ser_model *m = ser_model_load(path);
  if (m || !strstr(ser_errmsg(), needle)) {
    print_error("loading %s: expected a message with '%s', got %s\n", path, needle, m ? "a model" : ser_errmsg());
    ser_model_free(m);
    fail();
  }
}

static void test_bad_checkpoints(void **state) {
  (void)state;
  const char *p = model_path("bad");
  write_model(p, "{\"format\":\"serlua-graph\", \"version\":1, \"nodes\": [", 4);
  expect_load_error(p, "not valid JSON");
  write_model(p, graph_text("", "", "conv7d", "l.weight"), 4);
  expect_load_error(p, "unknown op 'conv7d'");
  write_model(p, graph_text("", "", "conv1d", "l.missing"), 4);
  expect_load_error(p, "does not hold");
  write_model(p, graph_text("", "", "conv1d", "l.weight"), 5);   /* linear [3,5] after 4 channels */
  expect_load_error(p, "linear");
  write_model(p, graph_text("", "", "conv2d", "l.weight"), 4);   /* a 3-d weight for conv2d */
  expect_load_error(p, "expected 4 dims");
  write_model(p, graph_text(",\"speaker_norm\":true", "", "conv1d", "l.weight"), 4);
  expect_load_error(p, "input.speaker_norm must be true exactly when input.normalize");
  write_model(p, graph_text(",\"speaker_norm\":true,\"normalize\":\"speaker\"", "", "conv1d", "l.weight"), 4);
  expect_load_error(p, "\"clip\" for waveform features");
  write_model(p, graph_text(",\"normalize\":\"speakers\"", "", "conv1d", "l.weight"), 4);
  expect_load_error(p, "'normalize' must be");
  write_model(p, graph_text("", ",\"kind2\":1", "conv1d", "l.weight"), 4);
  expect_load_error(p, "kind2");
  char *g = strdup(graph_text("", "", "conv1d", "l.weight"));
  char *v = strstr(g, "\"version\":1");
  v[10] = '2';
  write_model(p, g, 4);
  expect_load_error(p, "version 2");
  free(g);
  g = strdup(graph_text("", "", "conv1d", "l.weight"));
  strstr(g, "\"waveform\"")[1] = 'W';
  write_model(p, g, 4);
  expect_load_error(p, "Waveform");
  free(g);
  write_model(p, NULL, 4);
  expect_load_error(p, "no graph");
  expect_load_error(model_path("nonexistent"), "nonexistent");
  /* a truncated file: each prefix of a good one is refused with a message */
  make_good();
  FILE *f = fopen(model_path("good"), "rb");
  static unsigned char buf[1 << 16];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  for (size_t cut = 0; cut < len; cut += len / 13 + 1) {
    f = fopen(p, "wb");
    fwrite(buf, 1, cut, f);
    fclose(f);
    ser_model *m = ser_model_load(p);
    assert_null(m);
    assert_true(strlen(ser_errmsg()) > 0);
  }
}

/* An LSTM whose hh bias has `bias_len` entries (8 = 4 x hidden 2 is right). */
static void write_lstm_model(const char *path, int64_t bias_len) {
  const char *graph =
      "{\"format\":\"serlua-graph\",\"version\":1,\"classes\":[\"a\",\"b\",\"c\"],"
      "\"input\":{\"sr\":8000,\"seconds\":0.1,\"window\":\"fixed\",\"read_seconds\":0.1,"
      "\"features\":{\"kind\":\"waveform\"}},"
      "\"nodes\":[{\"op\":\"conv1d\",\"inputs\":[\"input\"],\"output\":\"h1\",\"weight\":\"c.weight\","
      "\"stride\":[2],\"padding\":[4]},{\"op\":\"transpose\",\"inputs\":[\"h1\"],\"output\":\"h2\",\"perm\":[0,2,1]},"
      "{\"op\":\"lstm\",\"inputs\":[\"h2\"],\"output\":\"h3\",\"prefix\":\"rnn\",\"input_size\":4,\"hidden\":2},"
      "{\"op\":\"mean\",\"inputs\":[\"h3\"],\"output\":\"h4\",\"dims\":[1]},"
      "{\"op\":\"linear\",\"inputs\":[\"h4\"],\"output\":\"h5\",\"weight\":\"l.weight\"}],\"output\":\"h5\"}";
  ser_tensor *t[6] = {randn(3, SER_DIMS(4, 1, 9), 1), randn(2, SER_DIMS(8, 4), 2), randn(2, SER_DIMS(8, 2), 3),
                      randn(1, SER_DIMS(8), 4), randn(1, SER_DIMS(bias_len), 5), randn(2, SER_DIMS(3, 2), 6)};
  const char *names[6] = {"c.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                          "l.weight"};
  const char *mk[] = {"graph"}, *mv[] = {graph};
  assert_int_equal(ser_safetensors_write(path, 6, names, t, 1, mk, mv), 0);
  for (int i = 0; i < 6; i++) ser_tensor_release(t[i]);
}

static void test_lstm_checks(void **state) {
  (void)state;
  const char *p = model_path("lstm");
  write_lstm_model(p, 8);
  ser_model *m = ser_model_load(p);
  assert_non_null(m);
  float pcm[800], probs[3];
  signal(pcm, 800, 8000, 200);
  assert_int_equal(ser_model_predict(m, pcm, 800, 8000, probs), 0);
  assert_float_equal(probs[0] + probs[1] + probs[2], 1.0f, 1e-5);
  ser_model_free(m);
  write_lstm_model(p, 7);
  expect_load_error(p, "tensor 'rnn.bias_hh_l0' is [7]; expected [8]");
}

static void test_bad_pcm(void **state) {
  (void)state;
  make_good();
  ser_model *m = ser_model_load(model_path("good"));
  assert_non_null(m);
  float pcm[1000], probs[3];
  signal(pcm, 1000, 8000, 300);
  assert_true(ser_model_predict(m, pcm, 0, 8000, probs) < 0);
  assert_non_null(strstr(ser_errmsg(), "empty"));
  assert_true(ser_model_predict(m, NULL, 10, 8000, probs) < 0);
  assert_true(ser_model_predict(m, pcm, 1000, 0, probs) < 0);
  assert_non_null(strstr(ser_errmsg(), "sample rate 0"));
  assert_true(ser_model_predict(m, pcm, 1000, -44100, probs) < 0);
  assert_true(ser_model_predict(m, pcm, 1000, 2000000000, probs) < 0);
  assert_non_null(strstr(ser_errmsg(), "out of range"));
  pcm[17] = NAN;
  assert_true(ser_model_predict(m, pcm, 1000, 8000, probs) < 0);
  assert_non_null(strstr(ser_errmsg(), "non-finite"));
  pcm[17] = INFINITY;
  assert_true(ser_model_predict(m, pcm, 1000, 8000, probs) < 0);
  pcm[17] = 0;
  assert_true(ser_model_predict(NULL, pcm, 1000, 8000, probs) < 0);
  assert_true(ser_model_predict(m, pcm, 1000, 8000, NULL) < 0);
  /* a one-sample clip is a clip (zero-padded), not an error */
  assert_int_equal(ser_model_predict(m, pcm, 1, 8000, probs), 0);
  ser_model_free(m);
}

/* Writes a checkpoint of two tensors (released here) with the graph text. */
static void write_graph_model(const char *path, const char *graph, const char **names, ser_tensor **t) {
  const char *mk[] = {"graph"}, *mv[] = {graph};
  assert_int_equal(ser_safetensors_write(path, 2, names, t, 1, mk, mv), 0);
  ser_tensor_release(t[0]);
  ser_tensor_release(t[1]);
}

/* A log-mel model (conv2d on [1, 1, 16, frames]) whose STFT size is n_fft: threads with
 * different sizes create FFT plans, filterbanks and windows at once. */
static const char *logmel_model(int n_fft) {
  char graph[2048], name[64];
  snprintf(graph, sizeof graph,
           "{\"format\":\"serlua-graph\",\"version\":1,\"classes\":[\"a\",\"b\",\"c\"],"
           "\"input\":{\"sr\":8000,\"seconds\":0.5,\"window\":\"fixed\",\"read_seconds\":0.5,"
           "\"features\":{\"kind\":\"logmel\",\"sr\":8000,\"n_fft\":%d,\"hop\":64,\"n_mels\":16,\"fmax\":4000}},"
           "\"nodes\":[{\"op\":\"conv2d\",\"inputs\":[\"input\"],\"output\":\"h1\",\"weight\":\"k.weight\","
           "\"padding\":[1,1]},{\"op\":\"relu\",\"inputs\":[\"h1\"],\"output\":\"h2\"},"
           "{\"op\":\"adaptive_avgpool2d\",\"inputs\":[\"h2\"],\"output\":\"h3\",\"output_size\":[1,1]},"
           "{\"op\":\"flatten\",\"inputs\":[\"h3\"],\"output\":\"h4\",\"start_dim\":1},"
           "{\"op\":\"linear\",\"inputs\":[\"h4\"],\"output\":\"h5\",\"weight\":\"l.weight\"}],\"output\":\"h5\"}",
           n_fft);
  snprintf(name, sizeof name, "logmel%d", n_fft);
  const char *path = model_path(name);
  write_graph_model(path, graph, (const char *[]){"k.weight", "l.weight"},
                    (ser_tensor *[]){randn(4, SER_DIMS(4, 1, 3, 3), 5), randn(2, SER_DIMS(3, 4), 6)});
  return path;
}

typedef struct job {
  ser_model *own;         /* NULL: load `path` in the thread */
  const char *path;
  double f0;
  float probs[3];
  int rc;
} job;

static void *worker(void *arg) {
  job *j = arg;
  ser_model *m = j->own ? j->own : ser_model_load(j->path);
  if (!m) {
    j->rc = -100;
    return NULL;
  }
  float pcm[4000];
  signal(pcm, 4000, 16000, j->f0);
  for (int rep = 0; rep < 20 && j->rc == 0; rep++) {
    float p[3];
    j->rc = ser_model_predict(m, pcm, 4000, 16000, p);
    if (rep && memcmp(p, j->probs, sizeof p)) j->rc = -200;   /* every repetition the same */
    memcpy(j->probs, p, sizeof p);
  }
  /* an error in this thread leaves the other threads' messages alone */
  float q[3];
  if (ser_model_predict(m, pcm, 4000, 0, q) == 0) j->rc = -300;
  if (!j->own) ser_model_free(m);
  return NULL;
}

/* ser_memory_live() once it has stopped changing for 100 ms (at most 5 s) */
static size_t settled_memory_live(void) {
  size_t last = ser_memory_live();
  for (int quiet = 0, tries = 0; quiet < 10 && tries < 500; tries++) {
    usleep(10000);
    size_t now = ser_memory_live();
    quiet = now == last ? quiet + 1 : 0;
    last = now;
  }
  return last;
}

static void test_threads(void **state) {
  (void)state;
  make_good();
  enum { N = 4 };
  /* the threads' own models: log-mel models of four STFT sizes (created here, first used in
   * the threads) and the waveform model; the shared one: the waveform model */
  static const int sizes[N] = {256, 320, 400, 512};
  const char *paths[N];
  for (int i = 0; i < N; i++) paths[i] = i == N - 1 ? model_path("good") : logmel_model(sizes[i]);
  job single[N], own[N], shared[N];
  pthread_t th[2 * N];
  for (int i = 0; i < N; i++) {
    own[i] = (job){NULL, paths[i], 100.0 + 70 * i, {0}, 0};
    shared[i] = (job){NULL, NULL, 100.0 + 70 * i, {0}, 0};
  }
  ser_model *m = ser_model_load(model_path("good"));
  assert_non_null(m);
  for (int i = 0; i < N; i++) shared[i].own = m;
  /* twice: the first round fills the process-wide caches (FFT plans, filterbanks); after the
   * second, the exited threads (and their OpenMP teams) must have left nothing allocated */
  size_t live = 0;
  for (int round = 0; round < 2; round++) {
    /* the first round's OpenMP workers end after their parent threads were joined, and free
     * their thread caches as they go: count from a quiet state, not from mid-teardown */
    live = settled_memory_live();
    for (int i = 0; i < N; i++) {
      own[i].rc = shared[i].rc = 0;
      pthread_create(&th[i], NULL, worker, &own[i]);
      pthread_create(&th[N + i], NULL, worker, &shared[i]);
    }
    for (int i = 0; i < 2 * N; i++) pthread_join(th[i], NULL);
  }
  /* libgomp ends a finished thread's team when that thread exits; give the workers a moment */
  for (int tries = 0; tries < 500 && ser_memory_live() != live; tries++) usleep(10000);
  if (ser_memory_live() != live)
    fail_msg("threads that ended left %lld bytes allocated", (long long)(ser_memory_live() - live));
  /* the same jobs one after another on this thread */
  for (int i = 0; i < N; i++) {
    single[i] = (job){NULL, paths[i], 100.0 + 70 * i, {0}, 0};
    worker(&single[i]);
    assert_int_equal(single[i].rc, 0);
    assert_int_equal(own[i].rc, 0);
    for (int k = 0; k < 3; k++) assert_float_equal(own[i].probs[k], single[i].probs[k], 1e-7);
    single[i] = (job){m, NULL, 100.0 + 70 * i, {0}, 0};
    worker(&single[i]);
    assert_int_equal(shared[i].rc, 0);
    for (int k = 0; k < 3; k++) assert_float_equal(shared[i].probs[k], single[i].probs[k], 1e-7);
  }
  ser_model_free(m);
}

/* A speaker-normalised log-mel model (normalize = mode) whose logits are W * mean(x) + b over
 * every bin and frame of the normalised features x [1, 1, 16, frames]. */
static const char *speaker_model(const char *mode) {
  char graph[2048], name[64];
  snprintf(graph, sizeof graph,
           "{\"format\":\"serlua-graph\",\"version\":1,\"classes\":[\"a\",\"b\",\"c\"],"
           "\"input\":{\"sr\":8000,\"seconds\":0.5,\"window\":\"fixed\",\"read_seconds\":0.5,"
           "\"speaker_norm\":true,\"normalize\":\"%s\","
           "\"features\":{\"kind\":\"logmel\",\"sr\":8000,\"n_fft\":256,\"hop\":64,\"n_mels\":16,\"fmax\":4000}},"
           "\"nodes\":[{\"op\":\"mean\",\"inputs\":[\"input\"],\"output\":\"h1\",\"dims\":[1,2,3]},"
           "{\"op\":\"reshape\",\"inputs\":[\"h1\"],\"output\":\"h2\",\"shape\":[1,1]},"
           "{\"op\":\"linear\",\"inputs\":[\"h2\"],\"output\":\"h3\",\"weight\":\"l.weight\",\"bias\":\"l.bias\"}],"
           "\"output\":\"h3\"}",
           mode);
  snprintf(name, sizeof name, "speaker_%s", mode);
  const char *path = model_path(name);
  write_graph_model(path, graph, (const char *[]){"l.weight", "l.bias"},
                    (ser_tensor *[]){randn(2, SER_DIMS(3, 1), 7), randn(1, SER_DIMS(3), 8)});
  return path;
}

static void test_speaker(void **state) {
  (void)state;
  float a[4000], b[4000], logits[3], other[3];
  signal(a, 4000, 8000, 180);
  signal(b, 4000, 8000, 620);
  for (int i = 0; i < 4000; i++) b[i] *= 3;
  static const char *const modes[] = {"speaker", "speaker_bins"};
  for (int k = 0; k < 2; k++) {
    ser_model *m = ser_model_load(speaker_model(modes[k]));
    assert_non_null(m);
    assert_int_equal(ser_model_speaker_norm(m), 1);
    /* one clip has no speaker statistics */
    assert_true(ser_model_predict(m, a, 4000, 8000, logits) < 0);
    assert_non_null(strstr(ser_errmsg(), "ser_speaker_add"));
    ser_speaker *s = ser_speaker_new(m);
    assert_non_null(s);
    assert_true(ser_model_logits_speaker(m, s, a, 4000, 8000, logits) < 0);
    assert_non_null(strstr(ser_errmsg(), "no clips yet"));
    /* a refused clip adds nothing */
    a[5] = NAN;
    assert_true(ser_speaker_add(s, a, 4000, 8000) < 0);
    assert_non_null(strstr(ser_errmsg(), "non-finite"));
    a[5] = 0;
    assert_int_equal(ser_speaker_num_clips(s), 0);
    assert_int_equal(ser_speaker_add(s, a, 4000, 8000), 0);
    assert_int_equal(ser_speaker_num_clips(s), 1);
    /* the speaker is this clip alone: its normalised features have mean 0 over every bin and
     * frame (either mode), so the logits are the bias */
    ser_safetensors *st;
    assert_int_equal(ser_safetensors_read(&st, model_path(k ? "speaker_speaker_bins" : "speaker_speaker")), 0);
    const float *bias = ser_tensor_data(find(st, "l.bias"));
    assert_int_equal(ser_model_logits_speaker(m, s, a, 4000, 8000, logits), 0);
    for (int i = 0; i < 3; i++) assert_float_equal(logits[i], bias[i], 1e-5);
    /* another clip of the speaker moves the statistics, and so the first clip's logits */
    assert_int_equal(ser_speaker_add(s, b, 4000, 8000), 0);
    assert_int_equal(ser_model_logits_speaker(m, s, a, 4000, 8000, other), 0);
    assert_true(fabsf(other[0] - bias[0]) > 1e-3);
    /* the kept clips give what their samples give, with the statistics of both clips */
    float kept[3], probs[3], kept_probs[3];
    assert_int_equal(ser_model_logits_speaker_clip(m, s, 0, kept), 0);
    for (int i = 0; i < 3; i++) assert_float_equal(kept[i], other[i], 1e-6);
    assert_int_equal(ser_model_predict_speaker(m, s, b, 4000, 8000, probs), 0);
    assert_int_equal(ser_model_predict_speaker_clip(m, s, 1, kept_probs), 0);
    for (int i = 0; i < 3; i++) assert_float_equal(kept_probs[i], probs[i], 1e-6);
    assert_true(ser_model_predict_speaker_clip(m, s, 2, kept) < 0);
    assert_non_null(strstr(ser_errmsg(), "clip 2 of a speaker with 2 clips (0 to 1)"));
    assert_true(ser_model_logits_speaker_clip(m, s, -1, kept) < 0);
    assert_true(ser_model_predict_speaker_clip(m, s, 0, NULL) < 0);
    ser_safetensors_free(st);
    /* a speaker belongs to its model; NULLs are refused */
    ser_model *m2 = ser_model_load(speaker_model(modes[k]));
    assert_non_null(m2);
    assert_true(ser_model_predict_speaker(m2, s, a, 4000, 8000, logits) < 0);
    assert_non_null(strstr(ser_errmsg(), "another model"));
    assert_true(ser_model_predict_speaker(m, NULL, a, 4000, 8000, logits) < 0);
    assert_true(ser_model_predict_speaker(m, s, a, 4000, 8000, NULL) < 0);
    assert_true(ser_speaker_add(NULL, a, 4000, 8000) < 0);
    assert_true(ser_speaker_add(s, a, 0, 8000) < 0);
    assert_int_equal(ser_speaker_num_clips(s), 2);
    ser_model_free(m2);
    ser_speaker_free(s);
    ser_model_free(m);
  }
  /* a model without speaker normalisation takes no speaker */
  make_good();
  ser_model *g = ser_model_load(model_path("good"));
  assert_non_null(g);
  assert_int_equal(ser_model_speaker_norm(g), 0);
  assert_null(ser_speaker_new(g));
  assert_non_null(strstr(ser_errmsg(), "without speaker normalisation"));
  assert_null(ser_speaker_new(NULL));
  ser_speaker_free(NULL);
  ser_model_free(g);
}

/* Threads predicting one speaker's kept clips at once (predicting with a speaker is read only). */
typedef struct speaker_job {
  const ser_model *m;
  const ser_speaker *s;
  float probs[2][3];
  int rc;
} speaker_job;

static void *speaker_worker(void *arg) {
  speaker_job *j = arg;
  for (int round = 0; round < 50 && !j->rc; round++)
    for (int c = 0; c < 2 && !j->rc; c++) j->rc = ser_model_predict_speaker_clip(j->m, j->s, c, j->probs[c]);
  return NULL;
}

static void test_speaker_threads(void **state) {
  (void)state;
  float a[4000], b[4000], want[2][3];
  signal(a, 4000, 8000, 180);
  signal(b, 4000, 8000, 620);
  ser_model *m = ser_model_load(speaker_model("speaker_bins"));
  assert_non_null(m);
  ser_speaker *s = ser_speaker_new(m);
  assert_non_null(s);
  assert_int_equal(ser_speaker_add(s, a, 4000, 8000), 0);
  assert_int_equal(ser_speaker_add(s, b, 4000, 8000), 0);
  for (int c = 0; c < 2; c++) assert_int_equal(ser_model_predict_speaker_clip(m, s, c, want[c]), 0);
  enum { N = 4 };
  speaker_job jobs[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    jobs[i] = (speaker_job){m, s, {{0}}, 0};
    pthread_create(&th[i], NULL, speaker_worker, &jobs[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    assert_int_equal(jobs[i].rc, 0);
    for (int c = 0; c < 2; c++)
      for (int k = 0; k < 3; k++) assert_float_equal(jobs[i].probs[c][k], want[c][k], 1e-7);
  }
  ser_speaker_free(s);
  ser_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_predicts_what_the_ops_compute),
      cmocka_unit_test(test_bad_checkpoints),
      cmocka_unit_test(test_lstm_checks),
      cmocka_unit_test(test_bad_pcm),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_speaker),
      cmocka_unit_test(test_speaker_threads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
