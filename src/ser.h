/* serlua's public C API: link libser.a (or libser.so) and include this header.
 * Nothing here depends on Lua. */
#ifndef SER_H
#define SER_H

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "core/comm.h"
#include "core/cpu.h"
#include "autograd/autograd.h"
#include "ops/ops.h"
#include "audio/audio.h"
#include "augment/augment.h"
#include "data/data.h"
#include "optim/optim.h"
#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "io/torch_zip.h"
#include "io/fs.h"
#include "io/recipe_graph.h"
#include "eval/metrics.h"
#include "eval/umap.h"
#include "pretrained/identity.h"
#include "pretrained/whisper.h"
#include "pretrained/whisper_blocks.h"
#include "infer/infer.h"
#include "export/onnx.h"
#include "pretrained/wav2vec2.h"
#include "http/server.h"

#define SER_VERSION "0.1.0"

#endif
