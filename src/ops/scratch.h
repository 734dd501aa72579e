/* Per-thread, grow-only scratch buffers for kernels (im2col columns, packed
 * GEMM panels, per-thread gradient partials).
 *
 * Hot loops must not allocate (DESIGN.md), and a fixed pool overflows (ggml#322),
 * so each thread keeps a few numbered slots that only ever grow: the first
 * training step sizes them for the largest layer and later steps reuse them.
 * The memory goes through ser_alloc, so ser.memory() and the peak counters
 * see it. A slot's contents are undefined on return; callers that need zeros
 * clear it. Slots are per thread (OpenMP workers keep theirs for the life of
 * the pool), so two threads never share one; a thread's slots are freed when it exits. */
#ifndef SER_OPS_SCRATCH_H
#define SER_OPS_SCRATCH_H
#include <stddef.h>

enum {
  SER_SCRATCH_COL = 0,     /* im2col / col2im columns */
  SER_SCRATCH_GEMM_A,      /* packed bf16 A panels */
  SER_SCRATCH_GEMM_B,      /* packed bf16 B panels */
  SER_SCRATCH_GEMM_PRE,    /* bf16 A panels packed once for many products (ser_gemm_pack_a) */
  SER_SCRATCH_PARTIAL,     /* per-thread weight-gradient partial sums */
  SER_SCRATCH_SPLIT,       /* even/odd halves of a channel (1-d stride-2 im2col/col2im) */
  SER_SCRATCH_WINO,        /* Winograd tiles of one block (padded rows, V, M) */
  SER_SCRATCH_WINO_U,      /* Winograd-transformed weights (the calling thread's) */
  SER_SCRATCH_WINO_UPACK,  /* the 1-d Winograd's transformed weights packed to bf16 (amp) */
  SER_SCRATCH_ATTN,        /* attention scores / score gradients of one block of query rows */
  SER_SCRATCH_WHISPER,     /* the Whisper encoder's activations (src/pretrained/whisper.c) */
  SER_SCRATCH_W2V,         /* wav2vec 2.0 / HuBERT / WavLM activations (src/pretrained/wav2vec2_forward.c) */
  SER_SCRATCH_W2V_STEM,    /* their feature encoder's conv outputs, one clip at a time */
  SER_SCRATCH_SLOTS
};

/* A buffer of at least `bytes` (64-byte aligned) for this thread's slot, or
 * NULL with ser_error set when memory runs out. */
void *ser_scratch(int slot, size_t bytes);
/* Frees the calling thread's slots now (tests; exiting threads free theirs anyway). */
void ser_scratch_release(void);

#endif
