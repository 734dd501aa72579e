"""Writes the small PyTorch-format checkpoints of tests/data/pt with the standard library only
(no torch): the zip layout of torch.save (PyTorch >= 1.6: <archive>/data.pkl, <archive>/data/<key>,
<archive>/version, stored uncompressed) around pickles written opcode by opcode, as torch.save's
pickler writes a state_dict (protocol 2). torch_pt_spec.lua reads them; the fuzz target
fuzz_torch starts from them (tests/fuzz/gen_seeds.c).

    python3 tests/data/pt/make.py tests/data/pt

tiny.pt holds, with known values:
  w      float32 [2,3]  = [[1,2,3],[4,5,6]]         storage '0' (6 floats 1..6)
  wt     float32 [3,2]  = its transpose: stride (1,3) over storage '0'
  tail   float32 [2]    = [2,4]: offset 1, stride 2, storage '0' again through the memo
  h      float16 [3]    = [1, -5, 0.099975586]       storage '1'
  b      bfloat16 [2]   = [3, -0.5]                  storage '2'
  bn.num_batches_tracked  int64 0-d = 12345          storage '3'
  and the state_dict's _metadata (an OrderedDict attribute set by BUILD).
The others are refused by the reader, each for one reason (see torch_pt_spec.lua).
"""
import struct
import sys
import zipfile


def s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tup(items):
    return b"(" + b"".join(items) + b"t"


ODICT = glob("collections", "OrderedDict") + b")R"


def storage(key, cls, numel, memo=None):
    pid = tup([s("storage"), glob("torch", cls), s(key), s("cpu"), i(numel)]) + b"Q"
    return pid + (b"q" + bytes([memo]) if memo is not None else b"")


def tensor(stor, offset, size, stride):
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + stor + i(offset) + tup([i(x) for x in size])
            + tup([i(x) for x in stride]) + b"\x89" + ODICT + b"t" + b"R")


def state_dict(entries, metadata=True):
    out = b"\x80\x02" + ODICT + b"("
    for name, t in entries:
        out += s(name) + t
    out += b"u"
    if metadata:
        out += b"}" + s("_metadata") + ODICT + s("") + b"}" + s("version") + i(1) + b"s" + b"s" + b"s" + b"b"
    return out + b"."


def put(z, name, data):
    z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)  # fixed time: same bytes every run


def write(path, pkl, records, archive="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        put(z, archive + "/data.pkl", pkl)
        for key, data in records:
            put(z, archive + "/data/" + key, data)
        put(z, archive + "/version", "3\n")


def main():
    d = sys.argv[1]
    floats = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    halfs = struct.pack("<3e", 1.0, -5.0, 0.099975586)
    bf16 = struct.pack("<f", 3.0)[2:] + struct.pack("<f", -0.5)[2:]
    longs = struct.pack("<q", 12345)
    records = [("0", floats), ("1", halfs), ("2", bf16), ("3", longs)]
    pkl = state_dict([
        ("w", tensor(storage("0", "FloatStorage", 6, memo=0), 0, [2, 3], [3, 1])),
        ("wt", tensor(storage("0", "FloatStorage", 6), 0, [3, 2], [1, 3])),
        ("tail", tensor(b"h\x00", 1, [2], [2])),
        ("h", tensor(storage("1", "HalfStorage", 3), 0, [3], [1])),
        ("b", tensor(storage("2", "BFloat16Storage", 2), 0, [2], [1])),
        ("bn.num_batches_tracked", tensor(storage("3", "LongStorage", 1), 0, [], [])),
    ])
    write(d + "/tiny.pt", pkl, records, archive="tiny")
    # A pickle that would run a shell command if it were executed.
    write(d + "/os_system.pt", b"\x80\x02" + glob("os", "system") + s("touch PWNED_BY_PICKLE") + b"\x85R.", [])
    # A view reaching past its storage: [2,3] from offset 2 over 6 floats.
    write(d + "/view_past_storage.pt", state_dict([("w", tensor(storage("0", "FloatStorage", 6), 2, [2, 3], [3, 1]))]),
          [("0", floats)])
    # A storage record shorter than its persistent id says (6 floats, 16 bytes).
    write(d + "/short_storage.pt", state_dict([("w", tensor(storage("0", "FloatStorage", 6), 0, [2, 3], [3, 1]))]),
          [("0", floats[:16])])
    # A storage the pickle names but the archive lacks.
    write(d + "/missing_storage.pt", state_dict([("w", tensor(storage("7", "FloatStorage", 6), 0, [6], [1]))]),
          [("0", floats)])
    # A training checkpoint dict around the state_dict, not a state_dict.
    nested = b"\x80\x02}" + s("model") + ODICT + s("w") + tensor(storage("0", "FloatStorage", 6), 0, [6], [1]) \
        + b"s" + b"s" + s("epoch") + i(3) + b"s."
    write(d + "/nested.pt", nested, [("0", floats)])
    # A TorchScript archive (torch.jit.save) has code and constants, no data.pkl.
    with zipfile.ZipFile(d + "/torchscript.pt", "w", zipfile.ZIP_STORED) as z:
        put(z, "model/code/__torch__.py", "")
        put(z, "model/constants.pkl", b"\x80\x02).")
        put(z, "model/version", "3\n")


if __name__ == "__main__":
    main()
