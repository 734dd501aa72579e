/* ONNX export: a model's graph description (docs/graph.md, written by ser.graph into every
 * checkpoint under the metadata key "graph") and its state_dict tensors -> an ONNX model
 * (opset 17, IR version 8) with dynamic batch and time axes, the class names and feature
 * settings in metadata_props. The protobuf is written by libprotobuf-c from ONNX's own
 * onnx.proto (third_party/onnx/), compiled to C by protoc-c at build time.
 * docs/onnx.md maps each description op to its ONNX nodes. */
#ifndef SER_EXPORT_ONNX_H
#define SER_EXPORT_ONNX_H

#include <stddef.h>

#include "core/tensor.h"

#define SER_ONNX_OPSET 17
#define SER_ONNX_IR_VERSION 8

/* Extra metadata_props entries (e.g. the checkpoint's file name), besides the ones the
 * exporter derives from the description: classes, features, input_shape, graph. */
typedef struct ser_onnx_props {
  int n;
  const char *const *keys;
  const char *const *values;
} ser_onnx_props;

/* graph_json (the description as JSON text) + tensors (state_dict names[i] -> tensors[i],
 * borrowed) -> a serialized ONNX ModelProto in *out (malloc'd; free() it), *out_len bytes.
 * props may be NULL. SER_EINVAL naming the node, op and attribute for a description the
 * exporter cannot map (unknown op, missing tensor, shapes that disagree); SER_EFORMAT for
 * text that is not a serlua graph; SER_ENOMEM. Never writes a file. */
int ser_onnx_build(unsigned char **out, size_t *out_len, const char *graph_json, int n,
                   const char *const *names, ser_tensor *const *tensors, const ser_onnx_props *props);

/* ser_onnx_build, then the bytes written to path atomically (a temporary file beside it,
 * fsync, rename): path holds the old file or the complete new one, never a part. */
int ser_onnx_save(const char *path, const char *graph_json, int n, const char *const *names,
                  ser_tensor *const *tensors, const ser_onnx_props *props);

/* The whole job for a C program: a safetensors checkpoint with a "graph" metadata entry ->
 * an ONNX file at out_path. SER_EINVAL when the checkpoint has no graph (the message says
 * how to add one: ser.graph.attach). */
int ser_onnx_export_checkpoint(const char *ckpt_path, const char *out_path, const ser_onnx_props *props);

#endif
