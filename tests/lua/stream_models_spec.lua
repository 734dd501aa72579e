-- ser.stream scores each window of every model kind predict.lua accepts (CNN2D, CRNN, CNN1D,
-- the whisper family; silence trimming too) with the features predict.lua computes for a clip
-- of exactly that audio: a window's probabilities equal predict.lua's on the window written as
-- a file (a full window and the shorter last one, which is padded like a short file). A
-- speaker-normalised whisper model is refused with a message.
local ser = require "ser"
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local predict_output = dofile(here .. "helpers/predict_output.lua")
local quick_job = dofile(here .. "helpers/quick_job.lua")

ser.data.set_warn(function() end)

local serlua = predict_output.serlua
local it_bin = serlua and it or pending

local run = dofile(here .. "helpers/shell.lua").run

describe("ser.stream windows of every model kind", function()
  local dir, corpus, enc
  setup(function()
    if not serlua then return end
    dir = tmp.make("streamkinds")
    corpus, enc = dir .. "/corpus", dir .. "/enc"
    random_whisper(enc, { layers = 2, d_model = 64 })
    quick_job.corpus(corpus)
    -- The windows are compared with predict.lua on the same checkpoint, so one epoch of small
    -- models is enough (2 epochs at 64 mels made this set-up two minutes of CI).
    for _, job in ipairs {
      { "all", "--models cnn2d,crnn,cnn1d,whisper" },
      { "trim", "--models cnn2d --trim 30" },
      { "spk", "--models whisper --speaker-norm" },
    } do
      local out, rc = run(("SER_NUM_THREADS=1 %s experiments/compare.lua --quick --data %s --out %s/%s --seed 1 " ..
        "--set epochs=1 --mels 32 --crnn-hidden 32 --encoder %s %s"):format(serlua, corpus, dir, job[1], enc, job[2]))
      assert(rc == 0, out)
    end
  end)
  teardown(tmp.cleanup)

  local cases = { { "all", "cnn2d" }, { "all", "crnn" }, { "all", "cnn1d" }, { "all", "whisper" }, { "trim", "cnn2d" } }
  for _, case in ipairs(cases) do
    it_bin(("%s%s: each window's probabilities are predict.lua's for that audio"):format(case[2],
      case[1] == "trim" and " (silence trimming)" or ""), function()
      local ckpt = ("%s/%s/results/%s.safetensors"):format(dir, case[1], case[2])
      local model, meta = assert(ser.train.load_checkpoint(ckpt))
      -- 0.3 s of silence, a clip, 0.2 s of silence: 1.5 s
      local clip = assert(ser.audio.load(corpus .. "/Actor_21/03-01-03-01-01-01-21.wav", { sr = 16000 }))
      local signal = T.cat({ T.zeros(4800), clip, T.zeros(3200) }, 1)
      local st = ser.stream.new(model, meta, { window = 1.0, hop = 0.4, vad = false, smooth = 1 })
      local windows = st:push(signal)
      for _, w in ipairs(st:finish()) do windows[#windows + 1] = w end
      -- starts 0, 0.4 (full windows) and the tail from 0.8 s (0.7 s, padded to the model's 1 s)
      assert.are.equal(3, #windows)
      local paths = {}
      for i, w in ipairs(windows) do
        assert.is_true(math.abs(w.start - 0.4 * (i - 1)) < 1e-9)
        local first, n = math.floor(w.start * 16000 + 0.5), math.floor((w.stop - w.start) * 16000 + 0.5)
        paths[i] = ("%s/%s_%s_w%d.wav"):format(dir, case[1], case[2], i)
        assert(ser.audio.save(paths[i], signal:narrow(1, first + 1, n), 16000))
      end
      assert.are.equal(0.7, tonumber(("%.3f"):format(windows[3].stop - windows[3].start)))
      local probs, out = predict_output.run(ckpt, paths)
      for i, w in ipairs(windows) do
        assert.is_truthy(probs[paths[i]], out)
        for k = 1, #meta.classes do
          assert.is_true(math.abs(probs[paths[i]][k] - w.raw[k]) < 1.5e-3,
            ("window %d class %d: stream %.4f, predict.lua %.3f"):format(i, k, w.raw[k], probs[paths[i]][k]))
        end
      end
    end)
  end

  it_bin("refuses a speaker-normalised whisper model without the speaker's clips, saying why and what to do", function()
    local model, meta = assert(ser.train.load_checkpoint(dir .. "/spk/results/whisper.safetensors"))
    local ok, err = pcall(ser.stream.new, model, meta)
    assert.is_false(ok)
    assert.are.equal("ser.stream: the model was trained with speaker normalisation (speaker_norm = true): its " ..
      "features need the statistics of many clips of one speaker, which a stream does not have when it starts; " ..
      "give the speaker's clips (--speaker-clips of stream.lua and serve.lua), stream a model trained with " ..
      "per-clip normalisation, or score whole files with predict.lua", err)
    local out, rc = run(("%s experiments/stream.lua %s - < /dev/null"):format(serlua,
      dir .. "/spk/results/whisper.safetensors"))
    assert.are_not.equal(0, rc)
    assert.is_truthy(out:find("speaker normalisation", 1, true), out)
  end)
end)
