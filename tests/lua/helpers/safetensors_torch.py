"""The PyTorch side of checkpoint_spec.lua: a minimal safetensors reader/writer
(Debian's PyTorch 1.13 has no `safetensors` package; the format is an 8-byte
little-endian header length, a JSON header, then raw little-endian data) and
the model round trips.

Usage: python3 safetensors_torch.py DIR
DIR/manifest.txt lists "name classes hidden d0xd1x..." per model that the Lua
side saved as DIR/<name>.safetensors with its input DIR/<name>_x.f32. For each:
  - load our checkpoint into the PyTorch module (strict) and write its logits on
    the input to DIR/<name>_torch_logits.f32;
  - write a fresh PyTorch model (seed 0) as DIR/torch_<name>.safetensors and its
    logits as DIR/torch_<name>_logits.f32.
Also writes DIR/dtypes.safetensors (F64, F16, BF16, I64 and BOOL tensors with
foreign, non-JSON metadata). Prints "ok" at the end.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_ref  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


def st_read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    sd = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]) if end > b else \
            torch.empty(0, dtype=DTYPES[e["dtype"]])
        sd[name] = t.reshape(e["shape"]).clone()
    return sd, meta


def st_write(path, sd, meta=None):
    header, chunks, pos = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in sorted(sd):
        t = sd[name].detach().contiguous().cpu().reshape(-1)  # 1-D: a 0-d tensor cannot be viewed as bytes
        raw = (t.to(torch.uint8) if t.dtype == torch.bool else t.view(torch.uint8)).numpy().tobytes()
        shape = list(sd[name].shape)
        header[name] = {"dtype": NAMES[t.dtype], "shape": shape, "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def build(name, classes, hidden):
    if name == "crnn":
        return models_ref.CRNN(classes, hidden)
    return {"cnn2d": models_ref.CNN2D, "cnn1d": models_ref.CNN1D}[name](classes)


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    with open(os.path.join(d, "manifest.txt")) as f:
        rows = [line.split() for line in f if line.strip()]
    for name, classes, hidden, shape in rows:
        classes, hidden = int(classes), int(hidden)
        shape = [int(s) for s in shape.split("x")]
        x = torch.frombuffer(bytearray(open(os.path.join(d, name + "_x.f32"), "rb").read()),
                             dtype=torch.float32).reshape(shape)
        sd, meta = st_read(os.path.join(d, name + ".safetensors"))
        assert meta.get("format") == "serlua-1", meta
        assert json.loads(meta["model"]) == name, meta
        model = build(name, classes, hidden)
        model.load_state_dict(sd, strict=True)  # every key and shape must match
        model.eval()
        with torch.no_grad():
            model(x).numpy().astype("<f4").tofile(os.path.join(d, name + "_torch_logits.f32"))
        torch.manual_seed(0)
        theirs = build(name, classes, hidden)
        # Non-trivial BatchNorm statistics, so that loading them matters.
        theirs.train()
        with torch.no_grad():
            theirs(x * 0.5 + 0.1)
        theirs.eval()
        st_write(os.path.join(d, "torch_" + name + ".safetensors"), theirs.state_dict(),
                 {"written_by": "torch " + torch.__version__})
        with torch.no_grad():
            theirs(x).numpy().astype("<f4").tofile(os.path.join(d, "torch_" + name + "_logits.f32"))
    st_write(os.path.join(d, "dtypes.safetensors"), {
        "f64": torch.tensor([0.1, -2.5], dtype=torch.float64),
        "f16": torch.tensor([1.0, -5.0, 0.099975586], dtype=torch.float16),
        "bf16": torch.tensor([3.0, -0.5], dtype=torch.bfloat16),
        "i64": torch.tensor(12345, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
    }, {"note": "plain text, not JSON"})
    print("ok")


if __name__ == "__main__":
    main()
