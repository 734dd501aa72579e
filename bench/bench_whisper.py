"""PyTorch side of bench/bench_whisper.sh: the Whisper encoder's forward as a plain
torch.nn re-implementation (tests/lua/helpers/whisper_ref.py's Encoder, imported,
weights converted to float32), fp32 and under torch.autocast("cpu", dtype=torch.bfloat16).

  /usr/bin/python3 bench/bench_whisper.py --serve --models NAME=PATH,... [--batch 8 --frames 400 --threads 2]

Loads every model, prints "ready", then answers lines on stdin: "NAME PREC" (PREC fp32
or amp = bf16 autocast) runs one forward of a batch [B, n_mels, T] under no_grad and
prints "ms=<wall ms> cpu=<CPU ms of all threads>"; "quit" ends. The driver alternates these with ours.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lua", "helpers"))
import whisper_ref  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--serve", action="store_true")
p.add_argument("--models", required=True)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--frames", type=int, default=400)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)

encs, inputs = {}, {}
for item in a.models.split(","):
    name, path = item.split("=", 1)
    enc, n_mels, _, _ = whisper_ref.load(path)
    encs[name] = enc.float().eval()
    torch.manual_seed(7)
    inputs[name] = torch.randn(a.batch, n_mels, a.frames) * 0.5
print("ready", flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == "quit":
        break
    name, prec = line.split()
    enc, x = encs[name], inputs[name]
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.process_time()
        if prec == "amp":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y, _ = enc(x)
        else:
            y, _ = enc(x)
        ms, cpu = 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)
    del y
    print("ms=%.3f cpu=%.3f" % (ms, cpu), flush=True)
