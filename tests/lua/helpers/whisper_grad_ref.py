"""PyTorch autograd reference for the fine-tuning module (whisper_finetune_spec.lua).

  whisper_grad_ref.py grad MODEL X.f32 B N_MELS T LENGTHS R.f32 R2.f32 OUT_DIR

Builds the encoder of MODEL in float64 with whisper_ref.py's plain torch.nn
re-implementation, runs each clip b of X [B, N_MELS, T] ALONE on its first
LENGTHS[b] frames, and back-propagates

  loss = sum_b sum_{t < ceil(LENGTHS[b] / 2)} ( hs_L[b, t] . R[b, t] + last[b, t] . R2[b, t] )

(hs_L: the last block's output before the final LayerNorm, last: after it; R, R2
[B, ceil(T/2), d]). Writes OUT_DIR/loss.f64 (one float64) and OUT_DIR/<name>.f32
with the gradient of every encoder parameter (WhisperEncoder names: conv1.weight,
layers.1.fc2.bias, ...). Prints "ok" at the end.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from whisper_ref import load  # noqa: E402


def grad(model, xpath, B, n_mels, T, lengths, rpath, r2path, out):
    enc, m, d, layers = load(model)
    assert m == n_mels, (m, n_mels)
    T2 = (T + 1) // 2
    x = torch.from_numpy(np.fromfile(xpath, dtype="<f4")).reshape(B, n_mels, T).to(torch.float64)
    R = torch.from_numpy(np.fromfile(rpath, dtype="<f4")).reshape(B, T2, d).to(torch.float64)
    R2 = torch.from_numpy(np.fromfile(r2path, dtype="<f4")).reshape(B, T2, d).to(torch.float64)
    enc.zero_grad()
    total = 0.0
    for b in range(B):
        y, hs = enc(x[b:b + 1, :, :lengths[b]])
        t2 = y.shape[1]
        loss = (hs[-1][0] * R[b, :t2]).sum() + (y[0] * R2[b, :t2]).sum()
        loss.backward()
        total += loss.item()
    os.makedirs(out, exist_ok=True)
    np.array([total], dtype="<f8").tofile(os.path.join(out, "loss.f64"))
    for name, p in enc.named_parameters():
        if p.grad is not None:
            p.grad.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(out, name + ".f32"))


def main():
    if sys.argv[1] != "grad":
        raise SystemExit("unknown command " + sys.argv[1])
    lengths = [int(v) for v in sys.argv[7].split(",")]
    grad(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), lengths, sys.argv[8],
         sys.argv[9], sys.argv[10])
    print("ok")


if __name__ == "__main__":
    main()
