/* The restricted state_dict unpickler (src/io/torch_pickle.c) on pickles written here
 * opcode by opcode: a valid state_dict (memo, shared storage, views, every storage class),
 * then one case per refusal, each checked for the message that names what was met. The
 * zip layer and whole files are tested by tests/lua/torch_pt_spec.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/torch_pickle.h"
#include "lib/fixture.h"

typedef struct {
  unsigned char b[8192];
  size_t n;
} pkl;

static void raw(pkl *p, const void *s, size_t n) {
  memcpy(p->b + p->n, s, n);
  p->n += n;
}
static void op(pkl *p, int c) { p->b[p->n++] = (unsigned char)c; }
static void str(pkl *p, const char *s) {
  const unsigned n = (unsigned)strlen(s);
  op(p, 'X');
  const unsigned char len[4] = {n & 255, (n >> 8) & 255, (n >> 16) & 255, n >> 24};
  raw(p, len, 4);
  raw(p, s, n);
}
static void num(pkl *p, int v) { /* BININT1, or BININT for anything else */
  if (v >= 0 && v < 256) {
    op(p, 'K');
    op(p, v);
  } else {
    op(p, 'J');
    const unsigned u = (unsigned)v;
    const unsigned char b[4] = {u & 255, (u >> 8) & 255, (u >> 16) & 255, u >> 24};
    raw(p, b, 4);
  }
}
static void global(pkl *p, const char *mod, const char *name) {
  op(p, 'c');
  raw(p, mod, strlen(mod));
  op(p, '\n');
  raw(p, name, strlen(name));
  op(p, '\n');
}
static void odict(pkl *p) {
  global(p, "collections", "OrderedDict");
  op(p, ')');
  op(p, 'R');
}
static void ints(pkl *p, int n, const int *v) {
  op(p, '(');
  for (int i = 0; i < n; i++) num(p, v[i]);
  op(p, 't');
}
static void storage(pkl *p, const char *cls, const char *key, int numel) {
  op(p, '(');
  str(p, "storage");
  global(p, "torch", cls);
  str(p, key);
  str(p, "cpu");
  num(p, numel);
  op(p, 't');
  op(p, 'Q');
}
/* _rebuild_tensor_v2(<storage already written by the caller>, offset, size, stride, False, OrderedDict()) */
static void tensor_open(pkl *p) {
  global(p, "torch._utils", "_rebuild_tensor_v2");
  op(p, '(');
}
static void tensor_close(pkl *p, int offset, int ndim, const int *size, const int *stride) {
  num(p, offset);
  ints(p, ndim, size);
  ints(p, ndim, stride);
  op(p, 0x89);
  odict(p);
  op(p, 't');
  op(p, 'R');
}
static void tensor(pkl *p, const char *name, const char *cls, const char *key, int numel, int offset, int ndim,
                   const int *size, const int *stride) {
  str(p, name);
  tensor_open(p);
  storage(p, cls, key, numel);
  tensor_close(p, offset, ndim, size, stride);
}
static void begin(pkl *p) {
  p->n = 0;
  op(p, 0x80);
  op(p, 2);
  odict(p);
  op(p, '(');
}
static void end(pkl *p) {
  op(p, 'u');
  op(p, '.');
}

static void valid_state_dict(void **state) {
  pkl p;
  begin(&p);
  const int s23[2] = {2, 3}, st23[2] = {3, 1}, s32[2] = {3, 2}, st32[2] = {1, 3}, s2[1] = {2}, st2[1] = {2};
  str(&p, "w");
  tensor_open(&p);
  storage(&p, "FloatStorage", "0", 6);
  op(&p, 'q'); /* BINPUT 0: the storage, used again below */
  op(&p, 0);
  tensor_close(&p, 0, 2, s23, st23);
  tensor(&p, "wt", "FloatStorage", "0", 6, 0, 2, s32, st32);
  str(&p, "tail");
  tensor_open(&p);
  op(&p, 'h'); /* BINGET 0 */
  op(&p, 0);
  tensor_close(&p, 1, 1, s2, st2);
  tensor(&p, "h", "HalfStorage", "1", 3, 0, 0, NULL, NULL);
  tensor(&p, "b", "BFloat16Storage", "2", 2, 1, 0, NULL, NULL);
  tensor(&p, "n", "LongStorage", "3", 1, 0, 0, NULL, NULL);
  op(&p, 'u');
  /* the state_dict's _metadata through BUILD, as torch.save writes it */
  op(&p, '}');
  str(&p, "_metadata");
  odict(&p);
  str(&p, "");
  op(&p, '}');
  str(&p, "version");
  num(&p, 1);
  op(&p, 's');
  op(&p, 's');
  op(&p, 's');
  op(&p, 'b');
  op(&p, '.');
  ser_torch_state *st = NULL;
  assert_int_equal(0, ser_torch_unpickle(&st, p.b, p.n, "t.pkl"));
  assert_int_equal(6, st->n);
  const ser_torch_entry *e = st->entries;
  assert_string_equal("w", e[0].name);
  assert_string_equal("0", e[0].storage);
  assert_int_equal(SER_TORCH_F32, e[0].dtype);
  assert_int_equal(2, e[0].ndim);
  assert_int_equal(3, e[0].shape[1]);
  assert_int_equal(1, e[1].stride[0]);
  assert_int_equal(3, e[1].stride[1]);
  assert_string_equal("tail", e[2].name);
  assert_string_equal("0", e[2].storage);
  assert_int_equal(1, e[2].offset);
  assert_int_equal(SER_TORCH_F16, e[3].dtype);
  assert_int_equal(0, e[3].ndim);
  assert_int_equal(SER_TORCH_BF16, e[4].dtype);
  assert_int_equal(1, e[4].offset);
  assert_int_equal(SER_TORCH_I64, e[5].dtype);
  assert_int_equal(8, ser_torch_dtype_size(SER_TORCH_I64));
  ser_torch_state_free(st);
}

/* Runs a pickle that must be refused with a message containing want. */
static void refused(const pkl *p, const char *want) {
  ser_torch_state *st = (ser_torch_state *)1;
  const int rc = ser_torch_unpickle(&st, p->b, p->n, "bad.pkl");
  if (rc == 0 || !strstr(ser_errmsg(), want) || !strstr(ser_errmsg(), "bad.pkl"))
    fail_msg("rc %d, message '%s', expected one containing '%s'", rc, rc ? ser_errmsg() : "", want);
  assert_null(st);
}

static void refuses_code_and_foreign_opcodes(void **state) {
  pkl p = {.n = 0};
  op(&p, 0x80);
  op(&p, 2);
  global(&p, "os", "system");
  str(&p, "touch /tmp/x");
  op(&p, 0x85);
  op(&p, 'R');
  op(&p, '.');
  refused(&p, "byte 2: GLOBAL os system is not allowed");
  p.n = 0;
  global(&p, "builtins", "eval");
  refused(&p, "GLOBAL builtins eval is not allowed");
  p.n = 0;
  global(&p, "torch", "FloatStorage"); /* an allowed global, but not callable */
  op(&p, ')');
  op(&p, 'R');
  refused(&p, "REDUCE calls a torch storage class");
  p.n = 0;
  global(&p, "collections", "OrderedDict");
  op(&p, ')');
  op(&p, 0x81); /* NEWOBJ */
  refused(&p, "opcode NEWOBJ (0x81) is not allowed");
  p.n = 0;
  op(&p, 0x80);
  op(&p, 4);
  op(&p, 0x95); /* protocol 4's FRAME */
  refused(&p, "opcode FRAME (0x95) is not allowed");
  p.n = 0;
  op(&p, 'i'); /* INST */
  refused(&p, "opcode INST (0x69)");
  p.n = 0;
  op(&p, 0xff);
  refused(&p, "byte 0xff is no pickle opcode");
  p.n = 0;
  str(&p, "x");
  op(&p, 'Q'); /* a persistent id that is not a storage */
  refused(&p, "persistent id that is a str");
}

static void refuses_broken_structure(void **state) {
  pkl p = {.n = 0};
  refused(&p, "ends without STOP");
  op(&p, 'R');
  refused(&p, "REDUCE needs 2 values on the stack, it has 0");
  p.n = 0;
  op(&p, 't');
  refused(&p, "TUPLE without a MARK");
  p.n = 0;
  op(&p, ']');
  op(&p, '(');
  op(&p, 'N');
  op(&p, 'u'); /* SETITEMS onto a list */
  refused(&p, "SETITEMS to a list, expected a dict");
  p.n = 0;
  op(&p, 'h');
  op(&p, 7);
  refused(&p, "BINGET of memo entry 7, which was never stored");
  p.n = 0;
  op(&p, 'N');
  op(&p, 'r');
  raw(&p, "\xff\xff\xff\x7f", 4);
  refused(&p, "memo index 2147483647");
  p.n = 0;
  for (int i = 0; i <= SER_TORCH_MAX_MARKS; i++) op(&p, '(');
  refused(&p, "MARKs nested more than 1000 deep");
  p.n = 0;
  op(&p, 'X');
  raw(&p, "\x10\x00\x00\x00" "abc", 7);
  refused(&p, "truncated");
  p.n = 0;
  op(&p, 'U');
  op(&p, 3);
  raw(&p, "a\0b", 3);
  refused(&p, "a string with a NUL byte");
  p.n = 0;
  op(&p, 0x8a);
  op(&p, 9);
  raw(&p, "123456789", 9);
  refused(&p, "LONG1 integer of 9 bytes");
  p.n = 0;
  op(&p, ']');
  op(&p, '.');
  refused(&p, "the pickle holds a list, expected a state_dict");
}

static void refuses_bad_tensors(void **state) {
  const int s23[2] = {2, 3}, st23[2] = {3, 1}, s7[7] = {1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1}, one[1] = {1};
  pkl p;
  begin(&p);
  tensor(&p, "w", "FloatStorage", "0", 6, 1, 2, s23, st23);
  end(&p);
  refused(&p, "tensor 'w' (size [2,3], stride [3,1], offset 1) reaches element 6 of storage '0', which has 6 elements");
  begin(&p);
  const int big[1] = {12}, zero[1] = {0};
  tensor(&p, "e", "FloatStorage", "0", 6, 0, 1, big, zero);
  end(&p);
  refused(&p, "tensor 'e' (size [12]) has 12 elements, more than its storage's 6 (a broadcast view)");
  begin(&p);
  tensor(&p, "d", "FloatStorage", "0", 6, 0, 7, s7, s7);
  end(&p);
  refused(&p, "a tensor with 7 dimensions; at most 6 supported");
  begin(&p);
  tensor(&p, "s", "FloatStorage", "0", 6, 0, 1, one, neg);
  end(&p);
  refused(&p, "stride[0] is -1, expected 0..2^40");
  begin(&p);
  tensor(&p, "k", "FloatStorage", "../etc/passwd", 6, 0, 1, one, one);
  end(&p);
  refused(&p, "storage key '../etc/passwd' is not 1..64 letters, digits or '_'");
  begin(&p);
  tensor(&p, "dup", "FloatStorage", "0", 6, 0, 1, one, one);
  tensor(&p, "dup", "FloatStorage", "0", 6, 0, 1, one, one);
  end(&p);
  refused(&p, "state_dict name 'dup' appears twice");
  begin(&p);
  str(&p, "epoch");
  num(&p, 3);
  end(&p);
  refused(&p, "state_dict entry 'epoch' is a int, expected a tensor");
  begin(&p);
  tensor(&p, "w", "DoubleStorage", "0", 6, 0, 1, one, one);
  end(&p);
  refused(&p, "GLOBAL torch DoubleStorage is not allowed");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(valid_state_dict),
      cmocka_unit_test(refuses_code_and_foreign_opcodes),
      cmocka_unit_test(refuses_broken_structure),
      cmocka_unit_test(refuses_bad_tensors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
