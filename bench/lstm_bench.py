"""PyTorch side of bench/lstm.sh: the CRNN's BiLSTM (batch_first, input 128,
hidden 128) at batch B, T steps. Prints "fwd_bwd_ms=X fwd_ms=Y" (medians).
Usage: python3 lstm_bench.py THREADS B T REPEATS"""
import sys
import time

import torch

threads, B, T, reps = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
lstm = torch.nn.LSTM(128, 128, batch_first=True, bidirectional=True)
x = torch.randn(B, T, 128, requires_grad=True)
R = torch.randn(B, T, 256)


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def fwd_bwd():
    out, _ = lstm(x)
    (out * R).sum().backward()


def fwd():
    with torch.no_grad():
        lstm(x)


res = {}
for name, fn in (("fwd_bwd_ms", fwd_bwd), ("fwd_ms", fwd)):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        times.append((time.perf_counter() - t0) / 10 * 1e3)
    res[name] = median(times)
print(" ".join(f"{k}={v:.4f}" for k, v in res.items()))
