"""Reference side of bench/bench_audio.sh: torchaudio 0.13 (and librosa 0.10's
pitch-shift algorithm transcribed in numpy/scipy, since librosa is not a
Debian package) on the same clips and files, same RESULT line format.

  python3 bench/bench_audio.py --files DIR --threads 1,2 --batch 64 --repeats 5
"""
import argparse
import glob
import math
import time
from fractions import Fraction

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF
import torchaudio.transforms as AT

p = argparse.ArgumentParser()
p.add_argument("--files")
p.add_argument("--threads", default="1,2")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()


def timed(fn, count, repeats):
    """Median clips/s by wall clock and by process CPU time (robust on a busy machine at 1 thread)."""
    fn()
    rates, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        rates.append(count / (time.perf_counter() - t0))
        cpu.append(count / max(time.process_time() - c0, 1e-9))
    mid = (len(rates) - 1) // 2
    return sorted(rates)[mid], sorted(cpu)[mid]


def result(task, threads, rates):
    print(f"RESULT side=torch task={task} threads={threads} clips_s={rates[0]:.1f} cpu_clips_s={rates[1]:.1f}", flush=True)


MEL = dict(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=256, f_min=20.0, f_max=7600.0, n_mels=64)
mel_t = AT.MelSpectrogram(**MEL)
db_t = AT.AmplitudeToDB()
mfcc_t = AT.MFCC(sample_rate=16000, n_mfcc=40,
                 melkwargs=dict(n_fft=1024, n_mels=64, hop_length=256, f_min=20.0, f_max=7600.0))


def norm(x):  # per-utterance (x - mean) / (std + 1e-6) over the last two dims
    m = x.mean(dim=(-2, -1), keepdim=True)
    s = x.std(dim=(-2, -1), keepdim=True)
    return (x - m) / (s + 1e-6)


def logmel(x):  # the reference pipeline: MelSpectrogram, AmplitudeToDB, clamp -80, z-norm
    return norm(db_t(mel_t(x)).clamp(min=-80))


def mfcc(x):
    return norm(mfcc_t(x))


# librosa 0.10 effects.pitch_shift: time_stretch (stft n_fft 2048 hop 512,
# phase_vocoder, istft) then resample sr/rate -> sr (here scipy resample_poly
# with a rational approximation instead of soxr), fix_length.
N_FFT, HOP = 2048, 512
WIN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def stft(y):
    yp = np.pad(y, N_FFT // 2)
    n = 1 + len(y) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(yp, N_FFT)[::HOP][:n]
    return np.fft.rfft(frames * WIN, axis=1).T


def phase_vocoder(d, rate):
    n_bins, n_frames = d.shape
    steps = np.arange(0, n_frames, rate)
    out = np.zeros((n_bins, len(steps)), dtype=d.dtype)
    phi = np.linspace(0, np.pi * HOP, n_bins)
    acc = np.angle(d[:, 0])
    d = np.pad(d, [(0, 0), (0, 2)])
    for t, s in enumerate(steps):
        c = d[:, int(s):int(s + 2)]
        al = np.mod(s, 1.0)
        mag = (1.0 - al) * np.abs(c[:, 0]) + al * np.abs(c[:, 1])
        out[:, t] = mag * np.exp(1j * acc)
        dp = np.angle(c[:, 1]) - np.angle(c[:, 0]) - phi
        dp = dp - 2.0 * np.pi * np.round(dp / (2.0 * np.pi))
        acc += phi + dp
    return out


def istft(s, length):
    n = min(s.shape[1], int(math.ceil((length + N_FFT) / HOP)))
    frames = np.fft.irfft(s[:, :n], axis=0).T * WIN
    y = np.zeros(N_FFT + HOP * (n - 1), dtype=np.float32)
    ws = np.zeros_like(y)
    for t in range(n):
        y[t * HOP:t * HOP + N_FFT] += frames[t]
        ws[t * HOP:t * HOP + N_FFT] += WIN * WIN
    m = ws > np.finfo(np.float32).tiny
    y[m] /= ws[m]
    return y[N_FFT // 2:][:length]


def pitch_shift(y, sr, n_steps):
    from scipy.signal import resample_poly
    rate = 2.0 ** (-n_steps / 12)
    st = istft(phase_vocoder(stft(y), rate), int(round(len(y) / rate)))
    fr = Fraction(rate).limit_denominator(200)  # sr/rate -> sr is a factor `rate`
    out = resample_poly(st, fr.numerator, fr.denominator)
    return np.pad(out, (0, max(0, len(y) - len(out))))[:len(y)]


torch.manual_seed(1)
wav = torch.randn(a.batch, 64000) * 0.1
clips = [wav[i] for i in range(a.batch)]
paths = sorted(glob.glob(a.files + "/*.wav")) if a.files else []


def decode():
    for pth in paths:
        w, sr = torchaudio.load(pth)
        w = AF.resample(w.mean(0), sr, 16000)
        n = 64000
        w = w[:n] if w.shape[0] >= n else torch.nn.functional.pad(w, (0, n - w.shape[0]))


with torch.no_grad():
    for th in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(th)
        R, B = a.repeats, a.batch
        if paths:
            result("decode", th, timed(decode, len(paths), R))
        result("logmel_clip", th, timed(lambda: [logmel(c) for c in clips], B, R))
        result("mfcc_clip", th, timed(lambda: [mfcc(c) for c in clips], B, R))
        result("logmel_batch", th, timed(lambda: logmel(wav), B, R))
        result("mfcc_batch", th, timed(lambda: mfcc(wav), B, R))
        if th == 1:
            y = clips[0].numpy()
            result("pitch", th, timed(lambda: [pitch_shift(y, 16000, 2.0) for _ in range(4)], 4, max(1, R // 2)))
