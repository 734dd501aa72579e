-- The waveform of an audio file above its log-mel spectrogram, as a PNG.
--
--   serlua experiments/features.lua FILE [--out plots/features_NAME.png] [--sr 16000]
--          [--seconds S] [--offset S] [--n-mels 64] [--n-fft 1024] [--hop 256]
--          [--fmin 20] [--fmax 7600] [--floor -80]
--
-- The spectrogram is the reference pipeline's log-mel in dB (10·log10 of the
-- mel power, clamped at --floor) before the per-utterance normalisation, so the
-- colour bar reads in dB. Files that will not decode end the script with the
-- reason and exit status 1.
local argparse = require "argparse"
local ser = require "ser"

local p = argparse("features.lua", "Plot a file's waveform and log-mel spectrogram (PNG via gnuplot pngcairo).")
p:argument("file", "Audio file (any format libsndfile reads)")
p:option("--out", "PNG to write (default plots/features_<name>.png)")
p:option("--sr", "Sample rate to resample to", "16000"):convert(tonumber)
p:option("--seconds", "Keep (pad or trim to) this many seconds"):convert(tonumber)
p:option("--offset", "Skip this many seconds at the start", "0"):convert(tonumber)
p:option("--n-mels", "Mel bands", "64"):convert(tonumber)
p:option("--n-fft", "FFT size (= window length)", "1024"):convert(tonumber)
p:option("--hop", "Hop in samples", "256"):convert(tonumber)
p:option("--fmin", "Lowest mel frequency (Hz)", "20"):convert(tonumber)
p:option("--fmax", "Highest mel frequency (Hz)", "7600"):convert(tonumber)
p:option("--floor", "dB floor of the picture", "-80"):convert(tonumber)
local a = ser.cli.parse(p, arg) -- `--floor -60` reads -60 as the value

local wav, sr = ser.audio.load(a.file, { sr = a.sr, seconds = a.seconds, offset = a.offset })
if not wav then
  io.stderr:write("features.lua: ", sr, "\n")
  os.exit(1)
end
local mel = ser.features.logmel(wav, {
  sr = sr, n_fft = a.n_fft, hop = a.hop, n_mels = a.n_mels, fmin = a.fmin, fmax = math.min(a.fmax, sr / 2),
  floor = a.floor, normalize = false,
})
local name = a.file:match("([^/]+)$"):gsub("%.[^.]*$", "")
local out = a.out or ("plots/features_" .. name .. ".png")
local T = wav:shape()[1]
ser.plot.waveform_mel(wav, mel, {
  sr = sr, hop = a.hop, out = out, cblabel = "dB",
  title = ("%s: %.2f s at %d Hz, %d mel bands %g-%g Hz, n_fft %d, hop %d"):format(name, T / sr, sr, a.n_mels,
    a.fmin, math.min(a.fmax, sr / 2), a.n_fft, a.hop),
})
print(out)
