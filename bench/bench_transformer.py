"""Reference side of bench/bench_transformer.sh: the same ops in PyTorch 1.13,
same RESULT line format. Attention is written as openai/whisper's model.py
writes it (matmuls over [B, H, T, Dh] views, softmax in float32), with
masked_fill(-inf) for the padded keys; bf16 runs it under
torch.autocast("cpu", dtype=torch.bfloat16).

  python3 bench/bench_transformer.py --threads 1,2 --repeats 5 --batch 8 --frames 200 --dim 512 --heads 8
"""
import argparse
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", default="1,2")
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--frames", type=int, default=200)
p.add_argument("--dim", type=int, default=512)
p.add_argument("--heads", type=int, default=8)
a = p.parse_args()
B, T, d, H = a.batch, a.frames, a.dim, a.heads


def attention(q, k, v, mask=None):
    Dh = d // H
    qh = q.view(B, T, H, Dh).permute(0, 2, 1, 3)
    kh = k.view(B, T, H, Dh).permute(0, 2, 3, 1)
    vh = v.view(B, T, H, Dh).permute(0, 2, 1, 3)
    w = (qh @ kh) * Dh ** -0.5
    if mask is not None:
        w = w.masked_fill(mask, float("-inf"))
    w = F.softmax(w.float(), dim=-1).to(q.dtype)
    return (w @ vh).permute(0, 2, 1, 3).flatten(start_dim=2)


def timed(fn):
    fn()
    ms = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        fn()
        ms.append(1000 * (time.perf_counter() - t0))
    return sorted(ms)[(len(ms) - 1) // 2]


torch.manual_seed(1)
q, k, v = torch.randn(B, T, d), torch.randn(B, T, d), torch.randn(B, T, d)
x, h = torch.randn(B, T, d), torch.randn(B, T, 4 * d)
w, b = torch.randn(d), torch.randn(d)
lengths = torch.tensor([max(1, T - 10 * i) for i in range(B)])
mask = (torch.arange(T)[None, :] >= lengths[:, None])[:, None, None, :]
ops = [
    ("attention", lambda: attention(q, k, v), True),
    ("attention_masked", lambda: attention(q, k, v, mask), True),
    ("layer_norm", lambda: F.layer_norm(x, (d,), w, b, 1e-5), False),
    ("gelu", lambda: F.gelu(h), False),
]
for th in [int(s) for s in a.threads.split(",")]:
    torch.set_num_threads(th)
    for prec in ("fp32", "bf16"):
        for name, fn, amp_op in ops:
            if prec == "bf16" and not amp_op:
                continue
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                ms = timed(fn)
            print(f"RESULT side=torch op={name} prec={prec} threads={th} ms={ms:.3f}")
