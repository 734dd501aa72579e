/* The exporter's op table: the emitters of onnx_ops_nn.c, onnx_ops_tensor.c and
 * onnx_whisper.c under the description's op names. A new description op is an emitter in
 * one of those files and a row in its table. */
#include "onnx_ops.h"

#include <stdio.h>
#include <string.h>

static const ox_op WHISPER[] = {{"whisper_encoder", 1, ox_emit_whisper}, {NULL, 0, NULL}};
static const ox_op *const TABLES[] = {ox_ops_nn, ox_ops_tensor, WHISPER};

const ox_op *ox_find_op(const char *name) {
  for (size_t t = 0; t < sizeof TABLES / sizeof TABLES[0]; t++)
    for (const ox_op *op = TABLES[t]; op->name; op++)
      if (strcmp(op->name, name) == 0) return op;
  return NULL;
}

const char *ox_op_names(void) {
  static _Thread_local char buf[512];
  size_t at = 0;
  for (size_t t = 0; t < sizeof TABLES / sizeof TABLES[0]; t++)
    for (const ox_op *op = TABLES[t]; op->name && at < sizeof buf - 32; op++)
      at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", at ? ", " : "", op->name);
  return buf;
}
