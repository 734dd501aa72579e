# Reference side of bench/bench_data.sh: the original pipeline's per-epoch data
# preparation with torchaudio 0.13 — every access decodes the file again
# (torchaudio.load, resample to 16 kHz when needed, pad/trim to 4 s), applies the
# reference augmentation (gain U(0.8,1.2), noise sigma 0.005 p=0.3; pitch shift is
# left out: torchaudio's takes ~12 s per clip and librosa is not a Debian package,
# BASELINES.md gives librosa 0.9.2 at ~65 ms per clip), computes the log-mel (64 mels,
# dB, clamp -80, z-norm) and one time + one frequency mask.
#   python3 bench/bench_data.py DATA_DIR N_CLIPS
import glob
import os
import sys
import time

import torch
import torchaudio
import torchaudio.transforms as TT

root = sys.argv[1]
n = int(sys.argv[2])
files = sorted(f for f in glob.glob(os.path.join(root, "**", "*"), recursive=True)
               if f.lower().endswith((".wav", ".flac")))
files = [f for f in files if int(os.path.basename(f).split(".")[0].split("-")[-1]) <= 16][:n]
mel = TT.MelSpectrogram(16000, n_fft=1024, hop_length=256, n_mels=64, f_min=20, f_max=7600)
db = TT.AmplitudeToDB()
tmask, fmask = TT.TimeMasking(16), TT.FrequencyMasking(8)
g = torch.Generator().manual_seed(1)


def clip(path):
    x, sr = torchaudio.load(path)
    x = x.mean(0)
    if sr != 16000:
        x = torchaudio.functional.resample(x, sr, 16000)
    x = torch.nn.functional.pad(x, (0, max(0, 64000 - x.numel())))[:64000]
    x = x * (0.8 + 0.4 * torch.rand(1, generator=g))
    if torch.rand(1, generator=g) < 0.3:
        x = x + 0.005 * torch.randn(x.shape, generator=g)
    m = db(mel(x)).clamp(min=-80)
    m = (m - m.mean()) / (m.std() + 1e-6)
    return fmask(tmask(m.unsqueeze(0)))


best = 0.0
for threads in (1, 2):  # torch is often slower on two busy cores: report both, compare with the best
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for f in files:
        clip(f)
    e = time.perf_counter() - t0
    best = max(best, len(files) / e)
    print(f"reference  torchaudio per-epoch preparation (decode every access, no pitch), {len(files)} clips, "
          f"{threads} thread{'s' if threads > 1 else ''}: {e:.2f} s per epoch ({len(files) / e:.0f} clips/s)")
print(f"RESULT ref_clips_per_s={best:.3f}")
