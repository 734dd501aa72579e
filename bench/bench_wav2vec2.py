"""PyTorch side of bench/bench_wav2vec2.sh.

  /usr/bin/python3 bench/bench_wav2vec2.py --make DIR CLIPS.safetensors
      writes DIR/hubert_base and DIR/wavlm_base (random weights, Hugging Face folders) and their
      float64 hidden states on the clips (tests/lua/helpers/wav2vec2_ref.py)
  /usr/bin/python3 bench/bench_wav2vec2.py --time VARIANT [--batch 4 --seconds 4 --threads 2 --repeats 5]
      the same model in float32: torchaudio 0.13's hubert_base(), or for WavLM torchaudio's stem with
      the re-implemented blocks; median wall and CPU ms of one forward of a batch [B, seconds * 16000]
      under no_grad, fp32 and torch.autocast("cpu", bfloat16). Prints one line per precision.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lua", "helpers"))
import wav2vec2_ref  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--make", nargs=2, metavar=("DIR", "CLIPS"))
p.add_argument("--time", metavar="VARIANT")
p.add_argument("--models", default="hubert_base,wavlm_base", help="the variants --make writes")
p.add_argument("--batch", type=int, default=2)
p.add_argument("--seconds", type=float, default=4.0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)

if a.make:
    for v in a.models.split(","):
        wav2vec2_ref.make(os.path.join(a.make[0], v), v, a.make[1])
    print("ok")
    sys.exit(0)
if not a.time:
    sys.exit(__doc__)

v = wav2vec2_ref.VARIANTS[a.time]
ta, blocks = wav2vec2_ref.build(v)
ta.eval()
torch.manual_seed(7)
x = torch.randn(a.batch, int(a.seconds * 16000)) * 0.1


def forward():
    if blocks is None:
        return ta(x)[0]
    feats, _ = ta.feature_extractor(x, None)
    h, _ = ta.encoder._preprocess(feats, None)
    t = ta.encoder.transformer
    h = t._preprocess(h)
    T = h.shape[1]
    pos = torch.arange(T)
    bias = blocks[0].rel_attn_embed.weight[wav2vec2_ref.bucket(pos[None, :] - pos[:, None], v["buckets"],
                                                               v["distance"])].permute(2, 0, 1)
    for blk in blocks:
        h = blk(h, bias)
    return h


for prec in ("fp32", "amp"):
    walls, cpus = [], []
    for r in range(a.repeats + 1):
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                if prec == "amp":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        y = forward()
                else:
                    y = forward()
            except RuntimeError as e:  # torch 1.13's CPU autocast has no bf16 GroupNorm
                print("torch %s %s failed: %s" % (a.time, prec, str(e).splitlines()[0]), flush=True)
                break
            w, c = time.perf_counter() - t0, time.process_time() - c0
        if r:  # the first run warms up
            walls.append(1000 * w)
            cpus.append(1000 * c)
    if walls:
        print("torch %s %s ms=%.1f cpu=%.1f" % (a.time, prec, statistics.median(walls), statistics.median(cpus)),
              flush=True)
