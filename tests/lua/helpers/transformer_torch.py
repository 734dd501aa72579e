"""PyTorch 1.13 references for transformer_spec.lua: layer_norm, gelu, softmax,
log_softmax, batched matmul, scaled dot-product attention with a key-padding
mask (written in plain torch ops, masked_fill(-inf)) and a multi-head attention
block with Hugging Face's projection names.

Usage: python3 transformer_torch.py DIR
DIR/manifest.txt has one case a line: `<case> <op> t:<name>=<d0>x<d1>... a:<name>=<value> ...`.
Inputs are DIR/<case>_<name>.f32 (raw little-endian float32, C order); `R` is
the upstream gradient. The computation runs in float64 from the float32
inputs (so the answers are exact for those inputs) and writes
DIR/<case>_out.f32 and DIR/<case>_d<name>.f32 for every differentiable input,
rounded to float32. Prints "ok" at the end.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F


def load(path, shape):
    n = math.prod(shape)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != 4 * n:
        raise SystemExit(f"{path}: {len(data)} bytes, expected {4 * n} for shape {shape}")
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).to(torch.float64)


def save(path, t):
    flat = t.detach().to(torch.float32).contiguous().view(-1).tolist()
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))


def attention(q, k, v, heads, scale, lengths):
    B, Tq, E = q.shape
    Tk, Dh = k.shape[1], E // heads
    qh = q.view(B, Tq, heads, Dh).transpose(1, 2)
    kh = k.view(B, Tk, heads, Dh).transpose(1, 2)
    vh = v.view(B, Tk, heads, Dh).transpose(1, 2)
    s = torch.matmul(qh, kh.transpose(-1, -2)) * scale
    if lengths is not None:
        pad = torch.arange(Tk)[None, :] >= lengths[:, None]       # [B, Tk], True = padding
        s = s.masked_fill(pad[:, None, None, :], float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, vh).transpose(1, 2).reshape(B, Tq, E)


def run(op, t, a):
    if op == "layer_norm":
        return F.layer_norm(t["x"], (t["x"].shape[-1],), t.get("weight"), t.get("bias"), float(a["eps"]))
    if op == "gelu":
        return F.gelu(t["x"])
    if op == "softmax":
        return torch.softmax(t["x"], dim=int(a["dim"]) - 1)
    if op == "log_softmax":
        return torch.log_softmax(t["x"], dim=int(a["dim"]) - 1)
    if op == "bmm":
        return torch.bmm(t["a"], t["b"])
    lengths = t["lengths"].round().long() if "lengths" in t else None
    if op == "attention":
        return attention(t["q"], t["k"], t["v"], int(a["heads"]), float(a["scale"]), lengths)
    if op == "mha":  # Hugging Face WhisperAttention: k_proj without bias
        x, heads = t["x"], int(a["heads"])
        q = F.linear(x, t["q_proj.weight"], t["q_proj.bias"])
        k = F.linear(x, t["k_proj.weight"], t.get("k_proj.bias"))
        v = F.linear(x, t["v_proj.weight"], t["v_proj.bias"])
        o = attention(q, k, v, heads, (x.shape[-1] // heads) ** -0.5, lengths)
        return F.linear(o, t["out_proj.weight"], t["out_proj.bias"])
    raise SystemExit(f"unknown op {op}")


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    with open(os.path.join(d, "manifest.txt")) as f:
        lines = [l.split() for l in f if l.strip()]
    for case, op, *args in lines:
        t, a = {}, {}
        for arg in args:
            kind, rest = arg.split(":", 1)
            name, value = rest.split("=", 1)
            if kind == "t":
                shape = [int(s) for s in value.split("x")]
                t[name] = load(os.path.join(d, f"{case}_{name}.f32"), shape)
                if name not in ("R", "lengths"):
                    t[name].requires_grad_(True)
            else:
                a[name] = value
        out = run(op, t, a)
        (out * t["R"]).sum().backward()
        save(os.path.join(d, f"{case}_out.f32"), out)
        for name, x in t.items():
            if x.requires_grad:
                save(os.path.join(d, f"{case}_d{name}.f32"), x.grad)
    print("ok")


if __name__ == "__main__":
    main()
