"""Training / inference throughput of the three reference models, PyTorch side.

Run by bench/bench_train.sh next to bench_train.lua (ours). Same protocol:
train step = forward, cross-entropy, backward, AdamW step on batch 8; medians
over R repeats of N steps after two warm-up calls; wall clock. Prints one
"RESULT key=value ..." line per configuration.

    OPENBLAS_NUM_THREADS=1 python3 bench/bench_train.py --model cnn2d --threads 1,2 [--autocast]

--autocast runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16)
(PyTorch's mixed precision: oneDNN's bf16 kernels, AMX where the CPU has it) and
reports side=torch_bf16.
"""
import contextlib
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "lua", "helpers"))
import models_ref  # noqa: E402  (the PyTorch twins of ser.models)

SHAPES = {"cnn2d": (1, 64, 251), "crnn": (1, 64, 251), "cnn1d": (1, 64000), "cnn1d_fb": (1, 64000)}


def time_it(fn, steps, repeats):
    """Wall and CPU (all threads) seconds per call, medians over repeats."""
    fn()
    fn()
    per, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        per.append((time.perf_counter() - t0) / steps)
        cpu.append((time.process_time() - c0) / steps)
    return statistics.median(per), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn2d", choices=sorted(SHAPES))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--autocast", action="store_true", help="bf16 autocast (side=torch_bf16)")
    a = ap.parse_args()

    def cast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if a.autocast else contextlib.nullcontext()
    torch.manual_seed(0)
    model = {"cnn2d": lambda: models_ref.CNN2D(8), "crnn": lambda: models_ref.CRNN(8),
             "cnn1d": lambda: models_ref.CNN1D(8), "cnn1d_fb": lambda: models_ref.CNN1DFilterbank(8)}[a.model]()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x8 = torch.randn(8, *SHAPES[a.model])
    x1 = torch.randn(1, *SHAPES[a.model])
    y8 = torch.arange(8)

    def train_step():
        opt.zero_grad()
        with cast():
            loss = F.cross_entropy(model(x8), y8)
        loss.backward()
        opt.step()

    for th in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(th)
        model.train()
        train_s, train_cpu = time_it(train_step, a.steps, a.repeats)
        model.eval()
        with torch.no_grad(), cast():
            infer8 = time_it(lambda: model(x8), a.steps, a.repeats)[0]
            infer1 = time_it(lambda: model(x1), a.steps * 4, a.repeats)[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        side, amp = ("torch_bf16", "true") if a.autocast else ("torch", "false")
        print(f"RESULT side={side} model={a.model} threads={th} amp={amp} train={8 / train_s:.2f} "
              f"train_cpu={8 / train_cpu:.2f} infer8={8 / infer8:.2f} infer1={1 / infer1:.2f} step_mb=nan rss_mb={rss:.0f} opt=AdamW", flush=True)


if __name__ == "__main__":
    main()
