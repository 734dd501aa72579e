/* Restricted state_dict unpickler (see torch_pickle.h for what is accepted).
 * Values are built bottom-up on a stack and owned by one arena, so shared values
 * (memo) and even cycles need no reference counting and nothing recurses. */
#include "torch_pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;
typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_STORAGE } gkind;

typedef struct val val;
struct val {
  vkind kind;
  int64_t i;       /* BOOL, INT; STORAGE: numel */
  double f;        /* FLOAT */
  char *s;         /* STR; STORAGE: key */
  val **items;     /* TUPLE, LIST, DICT (key, value, key, value, ...) */
  size_t n, cap;
  gkind g;         /* GLOBAL */
  ser_torch_dtype dtype; /* GLOBAL storage class, STORAGE */
  val *storage;    /* TENSOR */
  int64_t offset;
  int ndim;
  int64_t shape[SER_MAX_DIMS], stride[SER_MAX_DIMS];
};

static const struct {
  const char *cls;
  int size;
} storages[] = {{"FloatStorage", 4}, {"HalfStorage", 2}, {"BFloat16Storage", 2}, {"LongStorage", 8}};

int ser_torch_dtype_size(ser_torch_dtype dt) { return storages[dt].size; }
const char *ser_torch_dtype_name(ser_torch_dtype dt) { return storages[dt].cls; }

/* Largest size, element count or index accepted (2^40, as the safetensors reader). */
#define BIG ((int64_t)1 << 40)

typedef struct pk {
  const unsigned char *start, *p, *end;
  const char *label;
  size_t op_at; /* offset of the opcode being run, for messages */
  val **stack;
  size_t sp, scap;
  size_t marks[SER_TORCH_MAX_MARKS];
  size_t nmarks;
  val **memo;
  size_t memo_cap;
  val **arena;
  size_t na, acap;
} pk;

static const char *op_name(int op) {
  static const struct {
    int op;
    const char *name;
  } names[] = {
      {'(', "MARK"},        {'.', "STOP"},        {'0', "POP"},           {'1', "POP_MARK"},       {'2', "DUP"},
      {'F', "FLOAT"},       {'I', "INT"},         {'J', "BININT"},        {'K', "BININT1"},        {'L', "LONG"},
      {'M', "BININT2"},     {'N', "NONE"},        {'P', "PERSID"},        {'Q', "BINPERSID"},      {'R', "REDUCE"},
      {'S', "STRING"},      {'T', "BINSTRING"},   {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},    {'X', "BINUNICODE"},
      {'a', "APPEND"},      {'b', "BUILD"},       {'c', "GLOBAL"},        {'d', "DICT"},           {'}', "EMPTY_DICT"},
      {'e', "APPENDS"},     {'g', "GET"},         {'h', "BINGET"},        {'i', "INST"},           {'j', "LONG_BINGET"},
      {'l', "LIST"},        {']', "EMPTY_LIST"},  {'o', "OBJ"},           {'p', "PUT"},            {'q', "BINPUT"},
      {'r', "LONG_BINPUT"}, {'s', "SETITEM"},     {'t', "TUPLE"},         {')', "EMPTY_TUPLE"},    {'u', "SETITEMS"},
      {'G', "BINFLOAT"},    {0x80, "PROTO"},      {0x81, "NEWOBJ"},       {0x82, "EXT1"},          {0x83, "EXT2"},
      {0x84, "EXT4"},       {0x85, "TUPLE1"},     {0x86, "TUPLE2"},       {0x87, "TUPLE3"},        {0x88, "NEWTRUE"},
      {0x89, "NEWFALSE"},   {0x8a, "LONG1"},      {0x8b, "LONG4"},        {'B', "BINBYTES"},       {'C', "SHORT_BINBYTES"},
      {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"},
      {0x91, "FROZENSET"},  {0x92, "NEWOBJ_EX"},  {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},       {0x95, "FRAME"},
      {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
  };
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (names[k].op == op) return names[k].name;
  return NULL;
}

static int fail(pk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(pk *k, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ser_error(SER_EFORMAT, "%s, byte %zu: %s; nothing was loaded", k->label, k->op_at, msg);
}

static const char *kind_name(const val *v) {
  switch (v->kind) {
    case V_NONE: return "None";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_TUPLE: return "tuple";
    case V_LIST: return "list";
    case V_DICT: return "dict";
    case V_GLOBAL:
      return v->g == G_ORDERED_DICT ? "collections.OrderedDict" : v->g == G_REBUILD_TENSOR_V2 ? "torch._utils._rebuild_tensor_v2"
                                                                                           : "a torch storage class";
    case V_STORAGE: return "storage";
    case V_TENSOR: return "tensor";
  }
  return "?";
}

static val *new_val(pk *k, vkind kind) {
  if (k->na == k->acap) {
    const size_t cap = k->acap ? 2 * k->acap : 256;
    val **a = realloc(k->arena, cap * sizeof *a);
    if (!a) return NULL;
    k->arena = a;
    k->acap = cap;
  }
  val *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->kind = kind;
  k->arena[k->na++] = v;
  return v;
}

static int add_item(val *c, val *item) {
  if (c->n == c->cap) {
    const size_t cap = c->cap ? 2 * c->cap : 4;
    val **a = realloc(c->items, cap * sizeof *a);
    if (!a) return -1;
    c->items = a;
    c->cap = cap;
  }
  c->items[c->n++] = item;
  return 0;
}

/* Values above the innermost MARK (pickle's stack after a MARK starts empty). */
static size_t base(const pk *k) { return k->nmarks ? k->marks[k->nmarks - 1] : 0; }

static int need(pk *k, size_t n, const char *op) {
  if (k->sp - base(k) < n)
    return fail(k, "%s needs %zu value%s on the stack, it has %zu", op, n, n == 1 ? "" : "s", k->sp - base(k));
  return 0;
}

static int push(pk *k, val *v) {
  if (!v) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  if (k->sp >= SER_TORCH_MAX_STACK) return fail(k, "more than %d values on the pickle stack", SER_TORCH_MAX_STACK);
  if (k->sp == k->scap) {
    const size_t cap = k->scap ? 2 * k->scap : 64;
    val **a = realloc(k->stack, cap * sizeof *a);
    if (!a) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
    k->stack = a;
    k->scap = cap;
  }
  k->stack[k->sp++] = v;
  return 0;
}

static int take(pk *k, size_t n, const unsigned char **out) {
  if ((size_t)(k->end - k->p) < n)
    return fail(k, "the pickle ends %zu byte%s into an argument of %zu bytes (truncated)", (size_t)(k->end - k->p),
                k->end - k->p == 1 ? "" : "s", n);
  *out = k->p;
  k->p += n;
  return 0;
}

static uint64_t le(const unsigned char *b, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

static int take_le(pk *k, int n, uint64_t *v) {
  const unsigned char *b = NULL;
  const int rc = take(k, (size_t)n, &b);
  if (!rc) *v = le(b, n);
  return rc;
}

static int push_int(pk *k, int64_t i) {
  val *v = new_val(k, V_INT);
  if (v) v->i = i;
  return push(k, v);
}

static int push_str(pk *k, const unsigned char *b, size_t n) {
  if (memchr(b, 0, n)) return fail(k, "a string with a NUL byte (state_dict names and storage keys have none)");
  val *v = new_val(k, V_STR);
  if (v && !(v->s = malloc(n + 1))) v = NULL;
  if (v) {
    memcpy(v->s, b, n);
    v->s[n] = '\0';
  }
  return push(k, v);
}

/* A GLOBAL's module or name line, up to '\n'; printable ASCII only. */
static int read_line(pk *k, char *dst, size_t cap) {
  const unsigned char *nl = memchr(k->p, '\n', (size_t)(k->end - k->p));
  if (!nl) return fail(k, "GLOBAL's module and name lines are cut off (truncated)");
  const size_t n = (size_t)(nl - k->p);
  if (n >= cap) return fail(k, "GLOBAL names a %zu-byte module or name; at most %zu bytes expected", n, cap - 1);
  for (size_t i = 0; i < n; i++) dst[i] = k->p[i] >= 0x20 && k->p[i] < 0x7f ? (char)k->p[i] : '?';
  dst[n] = '\0';
  k->p = nl + 1;
  return 0;
}

static int op_global(pk *k) {
  char mod[128], name[128];
  int rc;
  if ((rc = read_line(k, mod, sizeof mod)) || (rc = read_line(k, name, sizeof name))) return rc;
  val *v = new_val(k, V_GLOBAL);
  if (!v) return push(k, v);
  if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict")) {
    v->g = G_ORDERED_DICT;
  } else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) {
    v->g = G_REBUILD_TENSOR_V2;
  } else {
    int found = -1;
    for (int d = 0; d < (int)(sizeof storages / sizeof storages[0]); d++)
      if (!strcmp(mod, "torch") && !strcmp(name, storages[d].cls)) found = d;
    if (found < 0)
      return fail(k, "GLOBAL %s %s is not allowed: a state_dict needs only collections.OrderedDict, "
                  "torch._utils._rebuild_tensor_v2 and torch.FloatStorage/HalfStorage/BFloat16Storage/LongStorage "
                  "(nothing in the file is executed)", mod, name);
    v->g = G_STORAGE;
    v->dtype = (ser_torch_dtype)found;
  }
  return push(k, v);
}

static int int_arg(pk *k, const val *v, const char *what, int64_t *out) {
  if (v->kind != V_INT && v->kind != V_BOOL) return fail(k, "%s is a %s, expected an int", what, kind_name(v));
  if (v->i < 0 || v->i > BIG) return fail(k, "%s is %lld, expected 0..2^40", what, (long long)v->i);
  *out = v->i;
  return 0;
}

static int int_tuple(pk *k, const val *t, const char *what, int64_t *out) {
  if (t->kind != V_TUPLE) return fail(k, "_rebuild_tensor_v2's %s is a %s, expected a tuple of ints", what, kind_name(t));
  if (t->n > SER_MAX_DIMS) return fail(k, "a tensor with %zu dimensions; at most %d supported", t->n, SER_MAX_DIMS);
  for (size_t i = 0; i < t->n; i++) {
    char w[64];
    snprintf(w, sizeof w, "%s[%zu]", what, i);
    const int rc = int_arg(k, t->items[i], w, &out[i]);
    if (rc) return rc;
  }
  return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
static val *rebuild_tensor(pk *k, const val *args, int *rc) {
  *rc = 0;
  if (args->n != 6 && args->n != 7) {
    *rc = fail(k, "_rebuild_tensor_v2 called with %zu arguments, expected 6 or 7", args->n);
    return NULL;
  }
  val *const *a = args->items;
  if (a[0]->kind != V_STORAGE) {
    *rc = fail(k, "_rebuild_tensor_v2's storage is a %s, expected a storage (persistent id)", kind_name(a[0]));
    return NULL;
  }
  if (a[4]->kind != V_BOOL || a[5]->kind != V_DICT || (args->n == 7 && a[6]->kind != V_NONE && a[6]->kind != V_DICT)) {
    *rc = fail(k, "_rebuild_tensor_v2's requires_grad, backward_hooks, metadata are %s, %s, %s; expected bool, "
               "OrderedDict, dict or None", kind_name(a[4]), kind_name(a[5]), args->n == 7 ? kind_name(a[6]) : "-");
    return NULL;
  }
  if (a[2]->kind == V_TUPLE && a[3]->kind == V_TUPLE && a[2]->n != a[3]->n) {
    *rc = fail(k, "a tensor with %zu sizes and %zu strides", a[2]->n, a[3]->n);
    return NULL;
  }
  val *t = new_val(k, V_TENSOR);
  if (!t) {
    *rc = ser_error(SER_ENOMEM, "%s: out of memory", k->label);
    return NULL;
  }
  t->storage = a[0];
  if ((*rc = int_arg(k, a[1], "_rebuild_tensor_v2's storage_offset", &t->offset)) ||
      (*rc = int_tuple(k, a[2], "size", t->shape)) || (*rc = int_tuple(k, a[3], "stride", t->stride)))
    return NULL;
  t->ndim = (int)a[2]->n;
  return t;
}

static int op_reduce(pk *k) {
  int rc = need(k, 2, "REDUCE");
  if (rc) return rc;
  val *args = k->stack[k->sp - 1], *fn = k->stack[k->sp - 2];
  if (fn->kind != V_GLOBAL || fn->g == G_STORAGE)
    return fail(k, "REDUCE calls %s; only collections.OrderedDict and torch._utils._rebuild_tensor_v2 may be called",
                kind_name(fn));
  if (args->kind != V_TUPLE) return fail(k, "REDUCE's arguments are a %s, expected a tuple", kind_name(args));
  val *out;
  if (fn->g == G_ORDERED_DICT) {
    if (args->n != 0)
      return fail(k, "collections.OrderedDict called with %zu arguments; a state_dict's are made empty", args->n);
    if (!(out = new_val(k, V_DICT))) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  } else if (!(out = rebuild_tensor(k, args, &rc))) {
    return rc;
  }
  k->sp -= 2;
  return push(k, out);
}

/* ('storage', <storage class>, key, location, numel) -> a storage */
static int op_persid(pk *k) {
  int rc = need(k, 1, "BINPERSID");
  if (rc) return rc;
  const val *pid = k->stack[k->sp - 1];
  if (pid->kind != V_TUPLE || pid->n != 5 || pid->items[0]->kind != V_STR || strcmp(pid->items[0]->s, "storage") != 0)
    return fail(k, "a persistent id that is a %s%s; only ('storage', class, key, location, numel) is accepted",
                kind_name(pid), pid->kind == V_TUPLE ? " of another form" : "");
  val *const *a = pid->items;
  if (a[1]->kind != V_GLOBAL || a[1]->g != G_STORAGE)
    return fail(k, "a storage whose class is %s, expected torch.FloatStorage/HalfStorage/BFloat16Storage/LongStorage",
                kind_name(a[1]));
  if (a[2]->kind != V_STR || a[3]->kind != V_STR)
    return fail(k, "a storage whose key and location are %s and %s, expected strings", kind_name(a[2]), kind_name(a[3]));
  const size_t n = strlen(a[2]->s);
  if (n == 0 || n > SER_TORCH_MAX_KEY || strspn(a[2]->s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != n)
    return fail(k, "storage key '%.80s' is not 1..%d letters, digits or '_'", a[2]->s, SER_TORCH_MAX_KEY);
  val *s = new_val(k, V_STORAGE);
  if (!s) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  if ((rc = int_arg(k, a[4], "a storage's element count", &s->i))) return rc;
  s->dtype = a[1]->dtype;
  s->s = a[2]->s; /* owned by the key string's value, which the arena keeps */
  k->sp--;
  return push(k, s);
}

static int op_memo_put(pk *k, uint64_t idx) {
  if (k->sp == base(k)) return fail(k, "BINPUT with an empty stack");
  if (idx >= SER_TORCH_MAX_MEMO) return fail(k, "memo index %llu; at most %d entries accepted", (unsigned long long)idx,
                                             SER_TORCH_MAX_MEMO);
  if (idx >= k->memo_cap) {
    size_t cap = k->memo_cap ? k->memo_cap : 64;
    while (cap <= idx) cap *= 2;
    val **m = realloc(k->memo, cap * sizeof *m);
    if (!m) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
    memset(m + k->memo_cap, 0, (cap - k->memo_cap) * sizeof *m);
    k->memo = m;
    k->memo_cap = cap;
  }
  k->memo[idx] = k->stack[k->sp - 1];
  return 0;
}

static int op_memo_get(pk *k, uint64_t idx) {
  if (idx >= k->memo_cap || !k->memo[idx]) return fail(k, "BINGET of memo entry %llu, which was never stored",
                                                       (unsigned long long)idx);
  return push(k, k->memo[idx]);
}

/* Drops the innermost MARK; *first is where it stood (the values above it are the operands). */
static int pop_mark(pk *k, const char *op, size_t *first) {
  if (!k->nmarks) return fail(k, "%s without a MARK", op);
  *first = k->marks[--k->nmarks];
  return 0;
}

static int op_tuple_n(pk *k, size_t n) {
  char op[16];
  snprintf(op, sizeof op, "TUPLE%zu", n);
  int rc = need(k, n, op);
  if (rc) return rc;
  val *t = new_val(k, V_TUPLE);
  if (!t) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  for (size_t i = k->sp - n; i < k->sp; i++)
    if (add_item(t, k->stack[i])) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  k->sp -= n;
  return push(k, t);
}

static int run(pk *k, val **result) {
  for (;;) {
    k->op_at = (size_t)(k->p - k->start);
    if (k->p >= k->end) return fail(k, "the pickle ends without STOP (truncated)");
    const int op = *k->p++;
    const unsigned char *b = NULL;
    int rc = 0;
    size_t first = 0;
    uint64_t u = 0;
    val *v;
    switch (op) {
      case 0x80: rc = take(k, 1, &b); break; /* PROTO */
      case '.':                              /* STOP */
        if ((rc = need(k, 1, "STOP"))) return rc;
        *result = k->stack[k->sp - 1];
        return 0;
      case '(':
        if (k->nmarks == SER_TORCH_MAX_MARKS) return fail(k, "MARKs nested more than %d deep", SER_TORCH_MAX_MARKS);
        k->marks[k->nmarks++] = k->sp;
        break;
      case 'N': rc = push(k, new_val(k, V_NONE)); break;
      case 0x88:
      case 0x89:
        if ((v = new_val(k, V_BOOL))) v->i = op == 0x88;
        rc = push(k, v);
        break;
      case 'J':
        if (!(rc = take_le(k, 4, &u))) rc = push_int(k, (int32_t)(uint32_t)u);
        break;
      case 'K':
        if (!(rc = take_le(k, 1, &u))) rc = push_int(k, (int64_t)u);
        break;
      case 'M':
        if (!(rc = take_le(k, 2, &u))) rc = push_int(k, (int64_t)u);
        break;
      case 0x8a: { /* LONG1: little-endian two's complement */
        if ((rc = take(k, 1, &b))) break;
        const int n = b[0];
        if (n > 8) return fail(k, "LONG1 integer of %d bytes; at most 8 supported", n);
        if ((rc = take(k, (size_t)n, &b))) break;
        u = le(b, n);
        if (n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
        rc = push_int(k, (int64_t)u);
        break;
      }
      case 'G': {
        if ((rc = take(k, 8, &b))) break;
        u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | b[i]; /* big-endian */
        if ((v = new_val(k, V_FLOAT))) memcpy(&v->f, &u, 8);
        rc = push(k, v);
        break;
      }
      case 'X':
        if ((rc = take_le(k, 4, &u)) || (rc = take(k, (size_t)u, &b))) break;
        rc = push_str(k, b, (size_t)u);
        break;
      case 'U': {
        if ((rc = take(k, 1, &b))) break;
        const size_t n = b[0];
        if ((rc = take(k, n, &b))) break;
        rc = push_str(k, b, n);
        break;
      }
      case ')': rc = push(k, new_val(k, V_TUPLE)); break;
      case ']': rc = push(k, new_val(k, V_LIST)); break;
      case '}': rc = push(k, new_val(k, V_DICT)); break;
      case 0x85: rc = op_tuple_n(k, 1); break;
      case 0x86: rc = op_tuple_n(k, 2); break;
      case 0x87: rc = op_tuple_n(k, 3); break;
      case 't':
        if ((rc = pop_mark(k, "TUPLE", &first))) break;
        if (!(v = new_val(k, V_TUPLE))) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
        for (size_t i = first; i < k->sp; i++)
          if (add_item(v, k->stack[i])) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
        k->sp = first;
        rc = push(k, v);
        break;
      case 'a':
        if ((rc = need(k, 2, "APPEND"))) break;
        v = k->stack[k->sp - 2];
        if (v->kind != V_LIST) return fail(k, "APPEND to a %s, expected a list", kind_name(v));
        if (add_item(v, k->stack[k->sp - 1])) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
        k->sp--;
        break;
      case 'e':
      case 'u': {
        const char *name = op == 'e' ? "APPENDS" : "SETITEMS";
        if ((rc = pop_mark(k, name, &first))) break;
        if (first <= base(k)) return fail(k, "%s with nothing below its MARK to add to", name);
        v = k->stack[first - 1];
        if (v->kind != (op == 'e' ? V_LIST : V_DICT))
          return fail(k, "%s to a %s, expected a %s", name, kind_name(v), op == 'e' ? "list" : "dict");
        if (op == 'u' && (k->sp - first) % 2) return fail(k, "SETITEMS with an odd number (%zu) of keys and values",
                                                          k->sp - first);
        for (size_t i = first; i < k->sp; i++)
          if (add_item(v, k->stack[i])) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
        k->sp = first;
        break;
      }
      case 's':
        if ((rc = need(k, 3, "SETITEM"))) break;
        v = k->stack[k->sp - 3];
        if (v->kind != V_DICT) return fail(k, "SETITEM on a %s, expected a dict", kind_name(v));
        if (add_item(v, k->stack[k->sp - 2]) || add_item(v, k->stack[k->sp - 1]))
          return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
        k->sp -= 2;
        break;
      case 'q':
      case 'r':
        if (!(rc = take_le(k, op == 'q' ? 1 : 4, &u))) rc = op_memo_put(k, u);
        break;
      case 'h':
      case 'j':
        if (!(rc = take_le(k, op == 'h' ? 1 : 4, &u))) rc = op_memo_get(k, u);
        break;
      case 'c': rc = op_global(k); break;
      case 'R': rc = op_reduce(k); break;
      case 'Q': rc = op_persid(k); break;
      case 'b': /* BUILD: only the state_dict's _metadata on an OrderedDict, which is not needed */
        if ((rc = need(k, 2, "BUILD"))) break;
        if (k->stack[k->sp - 2]->kind != V_DICT || k->stack[k->sp - 1]->kind != V_DICT)
          return fail(k, "BUILD sets the state of a %s to a %s; only a dict's attributes (a state_dict's _metadata) "
                      "are accepted", kind_name(k->stack[k->sp - 2]), kind_name(k->stack[k->sp - 1]));
        k->sp--;
        break;
      default: {
        const char *name = op_name(op);
        if (name)
          return fail(k, "opcode %s (0x%02x) is not allowed: a state_dict from torch.save needs only the "
                      "weights-only subset of pickle protocol 2", name, op);
        return fail(k, "byte 0x%02x is no pickle opcode (not a torch.save state_dict, or corrupt)", op);
      }
    }
    if (rc) return rc;
  }
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(((const ser_torch_entry *)a)->name, ((const ser_torch_entry *)b)->name);
}

/* Checks one tensor's view against its storage and fills the entry. */
static int make_entry(pk *k, ser_torch_entry *e, const char *name, const val *t) {
  const val *s = t->storage;
  int64_t numel = 1, last = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (__builtin_mul_overflow(numel, t->shape[d], &numel) || numel > BIG)
      return ser_error(SER_EFORMAT, "%s: tensor '%s' of size %s has more than 2^40 elements; nothing was loaded", k->label, name,
                       ser_shape_str(t->ndim, t->shape));
  }
  for (int d = 0; numel > 0 && d < t->ndim; d++) {
    int64_t span;
    if (__builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &span) || __builtin_add_overflow(last, span, &last))
      last = INT64_MAX;
  }
  if (numel > 0 && last >= s->i)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' (size %s, stride %s, offset %lld) reaches element %lld of storage "
                     "'%s', which has %lld elements; nothing was loaded", k->label, name,
                     ser_shape_str(t->ndim, t->shape), ser_shape_str(t->ndim, t->stride), (long long)t->offset,
                     (long long)last, s->s, (long long)s->i);
  /* a broadcast view (stride 0) could ask for far more memory than the file holds */
  if (numel > s->i)
    return ser_error(SER_EFORMAT, "%s: tensor '%s' (size %s) has %lld elements, more than its storage's %lld (a "
                     "broadcast view); save it with .contiguous(); nothing was loaded", k->label, name,
                     ser_shape_str(t->ndim, t->shape), (long long)numel, (long long)s->i);
  e->name = strdup(name);
  e->storage = strdup(s->s);
  if (!e->name || !e->storage) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  e->dtype = s->dtype;
  e->storage_numel = s->i;
  e->offset = t->offset;
  e->ndim = t->ndim;
  memcpy(e->shape, t->shape, sizeof e->shape);
  memcpy(e->stride, t->stride, sizeof e->stride);
  return 0;
}

static int collect(pk *k, const val *d, ser_torch_state *st) {
  if (d->kind != V_DICT)
    return ser_error(SER_EFORMAT, "%s: the pickle holds a %s, expected a state_dict (a dict of names to tensors); "
                     "nothing was loaded", k->label, kind_name(d));
  const size_t n = d->n / 2;
  if (n > (size_t)1 << 24) return ser_error(SER_EFORMAT, "%s: %zu tensors; at most 2^24 accepted", k->label, n);
  st->entries = calloc(n ? n : 1, sizeof *st->entries);
  if (!st->entries) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  for (size_t i = 0; i < n; i++) {
    const val *key = d->items[2 * i], *t = d->items[2 * i + 1];
    if (key->kind != V_STR)
      return ser_error(SER_EFORMAT, "%s: state_dict key %zu is a %s, expected a str; nothing was loaded", k->label, i + 1,
                       kind_name(key));
    if (!*key->s) return ser_error(SER_EFORMAT, "%s: state_dict key %zu is empty; nothing was loaded", k->label, i + 1);
    if (t->kind != V_TENSOR)
      return ser_error(SER_EFORMAT, "%s: state_dict entry '%s' is a %s, expected a tensor (a plain state_dict, as "
                       "torch.save(model.state_dict()) writes); nothing was loaded", k->label, key->s, kind_name(t));
    const int rc = make_entry(k, &st->entries[st->n], key->s, t);
    st->n++;
    if (rc) return rc;
  }
  /* duplicate names: a sorted copy */
  ser_torch_entry *sorted = malloc((n ? n : 1) * sizeof *sorted);
  if (!sorted) return ser_error(SER_ENOMEM, "%s: out of memory", k->label);
  memcpy(sorted, st->entries, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_names);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(sorted[i - 1].name, sorted[i].name)) {
      const int rc = ser_error(SER_EFORMAT, "%s: state_dict name '%s' appears twice; nothing was loaded", k->label,
                               sorted[i].name);
      free(sorted);
      return rc;
    }
  free(sorted);
  return 0;
}

void ser_torch_state_free(ser_torch_state *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) {
    free(s->entries[i].name);
    free(s->entries[i].storage);
  }
  free(s->entries);
  free(s);
}

int ser_torch_unpickle(ser_torch_state **out, const unsigned char *buf, size_t len, const char *label) {
  *out = NULL;
  pk k = {.start = buf, .p = buf, .end = buf + len, .label = label};
  val *result = NULL;
  ser_torch_state *st = NULL;
  int rc = run(&k, &result);
  if (!rc) {
    st = calloc(1, sizeof *st);
    rc = st ? collect(&k, result, st) : ser_error(SER_ENOMEM, "%s: out of memory", label);
  }
  for (size_t i = 0; i < k.na; i++) {
    if (k.arena[i]->kind != V_STORAGE) free(k.arena[i]->s);
    free(k.arena[i]->items);
    free(k.arena[i]);
  }
  free(k.arena);
  free(k.stack);
  free(k.memo);
  if (rc) {
    ser_torch_state_free(st);
    return rc;
  }
  *out = st;
  return 0;
}
