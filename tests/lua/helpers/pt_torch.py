"""The PyTorch side of torch_pt_spec.lua: the seed notebook's three models (models_ref.py,
the notebook's names) saved with torch.save(model.state_dict()), as a user of the notebook
has them, with their logits on a random input.

Usage: python3 pt_torch.py DIR
Writes, for name in cnn2d, crnn, cnn1d (8 classes, CRNN hidden 32; BatchNorm statistics
from one training-mode pass, so that loading them matters):
  DIR/<name>.pt, DIR/<name>_x.f32 (input), DIR/<name>_logits.f32
  DIR/<name>_fp16.pt, DIR/<name>_bf16.pt: the state_dict in float16 / bfloat16
    (num_batches_tracked stays int64), and <name>_fp16_logits.f32 / _bf16_logits.f32: the
    logits of the model with those rounded weights, computed in float32
Also DIR/crnn_views.pt: the CRNN state_dict with every matrix stored transposed
(w.t().contiguous().t(): non-contiguous, stride (1, rows)) and the LSTM's biases as
offset views into one shared storage; its logits are crnn_logits.f32.
Prints "ok" at the end.
"""
import collections
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_ref  # noqa: E402


def f32(t, path):
    t.detach().numpy().astype("<f4").tofile(path)


def rounded(model, sd, dtype):
    low = collections.OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items())
    back = copy.deepcopy(model)
    back.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in low.items()})
    return low, back


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    specs = [("cnn2d", models_ref.CNN2D(8), (2, 1, 64, 32)), ("crnn", models_ref.CRNN(8, 32), (2, 1, 64, 32)),
             ("cnn1d", models_ref.CNN1D(8), (2, 1, 4000))]
    for name, model, shape in specs:
        x = torch.randn(shape)
        model.train()
        with torch.no_grad():
            model(x * 0.5 + 0.1)
        model.eval()
        f32(x, f"{d}/{name}_x.f32")
        sd = model.state_dict()
        torch.save(sd, f"{d}/{name}.pt")
        with torch.no_grad():
            f32(model(x), f"{d}/{name}_logits.f32")
            for tag, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                low, back = rounded(model, sd, dtype)
                torch.save(low, f"{d}/{name}_{tag}.pt")
                f32(back(x), f"{d}/{name}_{tag}_logits.f32")
        if name == "crnn":
            views = collections.OrderedDict((k, v.t().contiguous().t() if v.dim() == 2 else v) for k, v in sd.items())
            assert not views["head.0.weight"].is_contiguous() and views["head.0.weight"].stride() == (1, 8)
            biases = [k for k in sd if k.startswith("rnn.bias")]
            packed = torch.cat([sd[k] for k in biases])
            at = 0
            for k in biases:
                views[k] = packed[at:at + sd[k].numel()]
                at += sd[k].numel()
            assert views[biases[-1]].storage_offset() > 0
            torch.save(views, f"{d}/crnn_views.pt")
    print("ok")


if __name__ == "__main__":
    main()
