"""PyTorch references for the Whisper front end and encoder (pretrained_spec.lua).

A re-implementation in plain torch.nn of openai/whisper's AudioEncoder in Hugging
Face names (modeling_whisper.WhisperEncoder), not serlua code: the spec compares
ours against it. Run by Debian's /usr/bin/python3 (PyTorch 1.13, torchaudio 0.13).

  whisper_ref.py logmel WAV.f32 N N_MELS OUT.f32 [WAV.f32 N N_MELS OUT.f32 ...]
      Whisper's log-mel of 16 kHz clips (N float32 samples; several in one call, so that the
      spec pays for one torch start-up): torch.stft (n_fft 400,
      hop 160, periodic Hann, centred, reflect), |X|^2 without the last frame,
      torchaudio melscale_fbanks(norm="slaney", mel_scale="slaney") over 0-8 kHz,
      log10(max(x, 1e-10)), max(x, max - 8), (x + 4) / 4. Writes [N_MELS, N // 160].

  whisper_ref.py make DIR LAYERS D_MODEL HEADS N_MELS SEED
      A small random encoder of Whisper's layout: DIR/model.safetensors (float16,
      "model.encoder.*" names, plus a "model.decoder.*" tensor the loader must skip)
      and DIR/config.json.

  whisper_ref.py encode MODEL X.f32 B N_MELS T LENGTHS OUT_PREFIX
      Runs each clip b of X [B, N_MELS, T] ALONE on its first LENGTHS[b] frames
      (LENGTHS comma-separated), in float64, and writes OUT_PREFIX_last.f32
      [B, ceil(T/2), d] and OUT_PREFIX_hidden.f32 [L+1, B, ceil(T/2), d] (the
      embeddings, then each block's output), rows past a clip's ceil(len/2) zero.
      MODEL is a folder (model.safetensors + config.json) or a .safetensors file.
Prints "ok" at the end.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_torch import st_read, st_write  # noqa: E402


def logmel(x, n_mels):
    window = torch.hann_window(400)  # periodic
    st = torch.stft(x, 400, 160, window=window, center=True, pad_mode="reflect", return_complex=True)
    mag = st[..., :-1].abs() ** 2
    import torchaudio
    fb = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, n_mels, 16000, norm="slaney", mel_scale="slaney")
    mel = fb.T @ mag
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, d = x.shape
        dh = d // self.heads
        q = (self.q_proj(x) * dh ** -0.5).view(B, T, self.heads, dh).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.heads, dh).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.heads, dh).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out_proj((p @ v).transpose(1, 2).reshape(B, T, d))


class Layer(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = Attention(d, heads)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)

    def forward(self, x):
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Encoder(nn.Module):
    def __init__(self, n_mels, d, heads, layers, ffn, positions):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(positions, d)
        self.layers = nn.ModuleList([Layer(d, heads, ffn) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, x):  # x [1, n_mels, T], one clip, no padding
        h = F.gelu(self.conv2(F.gelu(self.conv1(x)))).transpose(1, 2)
        h = h + self.embed_positions.weight[: h.shape[1]]
        hs = [h]
        for layer in self.layers:
            h = layer(h)
            hs.append(h)
        return self.layer_norm(h), hs


def sinusoids(length, channels):
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def make(folder, layers, d, heads, n_mels, seed):
    torch.manual_seed(seed)
    ffn, positions = 4 * d, 1500
    enc = Encoder(n_mels, d, heads, layers, ffn, positions)
    sd = {}
    for k, v in enc.state_dict().items():
        if k.endswith("norm.weight"):
            v = 1.0 + 0.1 * torch.randn_like(v)
        elif k.endswith("norm.bias"):
            v = 0.1 * torch.randn_like(v)
        elif k == "embed_positions.weight":
            v = sinusoids(positions, d)
        sd["model.encoder." + k] = v.to(torch.float16)
    sd["model.decoder.embed_tokens.weight"] = torch.randn(64, d).to(torch.float16)
    os.makedirs(folder, exist_ok=True)
    st_write(os.path.join(folder, "model.safetensors"), sd, {"format": "pt"})
    config = {"model_type": "whisper", "num_mel_bins": n_mels, "max_source_positions": positions, "d_model": d,
              "encoder_attention_heads": heads, "encoder_layers": layers, "encoder_ffn_dim": ffn,
              "activation_function": "gelu"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def load(model):
    path = os.path.join(model, "model.safetensors") if os.path.isdir(model) else model
    sd, _ = st_read(path)
    enc_sd = {}
    for k, v in sd.items():
        k = k[len("model."):] if k.startswith("model.") else k
        if k.startswith("encoder."):
            enc_sd[k[len("encoder."):]] = v.to(torch.float64)
    d = enc_sd["conv1.weight"].shape[0]
    n_mels = enc_sd["conv1.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[1]) for k in enc_sd if k.startswith("layers."))
    ffn = enc_sd["layers.0.fc1.weight"].shape[0]
    positions = enc_sd["embed_positions.weight"].shape[0]
    heads = None
    cfg = os.path.join(model, "config.json") if os.path.isdir(model) else None
    if cfg and os.path.exists(cfg):
        with open(cfg) as f:
            heads = json.load(f)["encoder_attention_heads"]
    if heads is None:
        heads = d // 64
    enc = Encoder(n_mels, d, heads, layers, ffn, positions).to(torch.float64)
    enc.load_state_dict(enc_sd, strict=True)
    return enc, n_mels, d, layers


def encode(model, xpath, B, n_mels, T, lengths, prefix):
    enc, m, d, layers = load(model)
    assert m == n_mels, (m, n_mels)
    x = torch.from_numpy(__import__("numpy").fromfile(xpath, dtype="<f4")).reshape(B, n_mels, T).to(torch.float64)
    T2 = (T + 1) // 2
    last = torch.zeros(B, T2, d, dtype=torch.float64)
    hidden = torch.zeros(layers + 1, B, T2, d, dtype=torch.float64)
    with torch.no_grad():
        for b in range(B):
            n = lengths[b]
            y, hs = enc(x[b:b + 1, :, :n])
            t2 = y.shape[1]
            last[b, :t2] = y[0]
            for i, h in enumerate(hs):
                hidden[i, b, :t2] = h[0]
    last.to(torch.float32).numpy().tofile(prefix + "_last.f32")
    hidden.to(torch.float32).numpy().tofile(prefix + "_hidden.f32")


def main():
    cmd = sys.argv[1]
    if cmd == "logmel":
        import numpy as np
        args = sys.argv[2:]
        if not args or len(args) % 4:
            raise SystemExit("logmel takes WAV.f32 N N_MELS OUT.f32, once or more")
        for i in range(0, len(args), 4):
            n, n_mels = int(args[i + 1]), int(args[i + 2])
            x = torch.from_numpy(np.fromfile(args[i], dtype="<f4", count=n))
            logmel(x, n_mels).numpy().astype("<f4").tofile(args[i + 3])
    elif cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    elif cmd == "encode":
        lengths = [int(v) for v in sys.argv[7].split(",")]
        encode(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), lengths, sys.argv[8])
    else:
        raise SystemExit("unknown command " + cmd)
    print("ok")


if __name__ == "__main__":
    main()
