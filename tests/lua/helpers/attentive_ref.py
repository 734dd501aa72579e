"""PyTorch 1.13 reference for ser.nn.AttentiveStatsHead (whisper_frames_spec.lua).

Usage: python3 attentive_ref.py DIR
DIR/manifest.txt: one line "name d0xd1x..." per float32 file DIR/<name>.f32 the Lua side
wrote: the input x [L, B, T, d], lengths [B], R [B, classes] (the loss is sum(logits * R)),
and the head's parameters under their state_dict names; a tensor named per_layer (any
value) asks for the per-layer variant (every layer pooled with the same alphas, concatenated). The head is rebuilt here in
float64 from plain torch.nn modules with those names (weights; attention = Sequential(
Linear, Tanh, Linear); mlp = Sequential(Linear, LayerNorm, ReLU, Dropout, Linear)), run in
eval mode, and its logits and the gradients of x and of every parameter are written as
DIR/torch_logits.f32 and DIR/torch_d<name>.f32. Prints "ok" at the end.
"""
import os
import sys

import torch


class AttentiveStatsHead(torch.nn.Module):
    """Softmax weights over layers -> attentive statistics pooling (Okabe et al. 2018) -> MLP."""

    def __init__(self, layers, d, attention, hidden, classes, per_layer=False):
        super().__init__()
        self.per_layer = per_layer
        self.weights = torch.nn.Parameter(torch.zeros(layers))
        self.attention = torch.nn.Sequential(torch.nn.Linear(d, attention), torch.nn.Tanh(),
                                             torch.nn.Linear(attention, 1))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(2 * d, hidden), torch.nn.LayerNorm(hidden),
                                       torch.nn.ReLU(), torch.nn.Dropout(0.0), torch.nn.Linear(hidden, classes))
        if per_layer:
            self.mlp[0] = torch.nn.Linear(layers * 2 * d, hidden)

    def forward(self, x, lengths):
        h = (x * self.weights.softmax(0).view(-1, 1, 1, 1)).sum(0)          # [B, T, d]
        steps = torch.arange(h.shape[1]).view(1, -1)
        valid = steps < lengths.view(-1, 1)
        e = self.attention(h).squeeze(-1).masked_fill(~valid, float("-inf"))
        alpha = e.softmax(1).unsqueeze(-1)

        def stats(v):
            mean = (v * alpha).sum(1)
            var = ((v - mean.unsqueeze(1)) ** 2 * alpha).sum(1)
            return [mean, var.clamp(min=1e-5).sqrt()]

        parts = [p for layer in x for p in stats(layer)] if self.per_layer else stats(h)
        return self.mlp(torch.cat(parts, 1))


def main():
    folder = sys.argv[1]
    t = {}
    with open(os.path.join(folder, "manifest.txt")) as f:
        for line in f:
            name, shape = line.split()
            dims = [int(v) for v in shape.split("x")]
            raw = torch.from_file(os.path.join(folder, name + ".f32"), size=int(torch.tensor(dims).prod()),
                                  dtype=torch.float32)
            t[name] = raw.view(*dims).to(torch.float64)
    x = t.pop("x").requires_grad_(True)
    lengths = t.pop("lengths").long()
    r = t.pop("R")
    per_layer = t.pop("per_layer", None) is not None
    layers, d = x.shape[0], x.shape[3]
    head = AttentiveStatsHead(layers, d, t["attention.0.weight"].shape[0], t["mlp.0.weight"].shape[0],
                              r.shape[1], per_layer).double()
    head.load_state_dict(t, strict=True)
    head.eval()
    logits = head(x, lengths)
    (logits * r).sum().backward()

    def write(name, v):
        v.detach().to(torch.float32).contiguous().numpy().tofile(os.path.join(folder, name + ".f32"))

    write("torch_logits", logits)
    write("torch_dx", x.grad)
    for name, p in head.named_parameters():
        write("torch_d" + name, p.grad)
    print("ok")


if __name__ == "__main__":
    main()
