// The page of experiments/serve.lua: a dropped file goes to POST /predict; the
// microphone goes through an AudioWorklet at the model's rate, in chunks of float32
// samples, to a live session (POST /stream, POST /stream/ID, DELETE /stream/ID), which
// answers with the windows and segments each chunk completes. No framework, no CDN.
'use strict';
const COLORS = ['#7f7f7f', '#17becf', '#e6b000', '#1f77b4', '#d62728', '#9467bd', '#2ca02c', '#ff7f0e',
                '#8c564b', '#e377c2'];
const CHUNK_SECONDS = 0.25;   // how much audio each POST carries: latency against request count
const $ = (id) => document.getElementById(id);
let info = null;
const state = { windows: [], segments: [], duration: 0 };
let rec = null;
// ?keep-audio: the page keeps what it sent, so a test can replay exactly those samples
const KEEP = new URLSearchParams(location.search).has('keep-audio');
window.serSent = [];

function color(label) { return COLORS[Math.max(0, info.classes.indexOf(label)) % COLORS.length]; }
function status(text) { $('status').textContent = text; }

function showNow(label, confidence, probs) {
  $('label').textContent = label || '–';
  $('label').dataset.label = label || '';
  $('confidence').textContent = confidence != null ? `confidence ${(100 * confidence).toFixed(0)} %` : '';
  const rows = info.classes.map((c) => {
    const p = probs ? probs[c] : 0;
    return `<tr><td class="name">${c}</td><td class="num">${probs ? (100 * p).toFixed(1) : ''}</td>` +
      `<td style="width:100%"><div class="bar" style="width:${(100 * p).toFixed(1)}%;background:${color(c)}"></div></td></tr>`;
  });
  $('probs').tBodies[0].innerHTML = rows.join('');
}

function reset() {
  state.windows = []; state.segments = []; state.duration = 0;
  render(); showNow(null, null, null);
}

function render() {
  const last = state.windows.length ? state.windows[state.windows.length - 1].stop : 0;
  const end = Math.max(state.duration, last, info ? info.window : 1);
  const tl = $('timeline');
  tl.innerHTML = state.windows.map((w) => {
    // each window is drawn over the hop-long stretch at its centre, as tall as its confidence
    // (the first window also for the audio before its centre, the last for the audio after it)
    const mid = (w.start + Math.min(w.stop, w.start + info.window)) / 2;
    const a = w.start === 0 ? 0 : Math.max(0, mid - info.hop / 2);
    const b = w === state.windows[state.windows.length - 1] && !rec ? Math.max(w.stop, mid + info.hop / 2) : mid + info.hop / 2;
    const left = a / end * 100, width = (b - a) / end * 100;
    if (!w.voiced) return `<div class="win silent" style="left:${left}%;width:${width}%" title="${w.start} s: silent"></div>`;
    return `<div class="win" data-label="${w.label}" style="left:${left}%;width:${width}%;height:${(100 * w.confidence).toFixed(0)}%;` +
      `background:${color(w.label)}" title="${w.start}–${w.stop} s: ${w.label} ${(100 * w.confidence).toFixed(0)} %"></div>`;
  }).join('');
  const step = [0.5, 1, 2, 5, 10, 30, 60].find((s) => end / s <= 12) || 120;
  let ticks = '';
  for (let t = 0; t <= end + 1e-9; t += step) ticks += `<span style="left:${t / end * 100}%">${t} s</span>`;
  $('axis').innerHTML = ticks;
  $('segments').innerHTML = state.segments.map((s) =>
    `<li data-label="${s.label}"><span class="swatch" style="background:${color(s.label)}"></span>` +
    `${s.start.toFixed(1)}–${s.stop.toFixed(1)} s <strong>${s.label}</strong> (${(100 * s.confidence).toFixed(0)} %)</li>`).join('');
  document.body.dataset.windows = String(state.windows.length);
}

function guessType(name) {
  const ext = (name.split('.').pop() || '').toLowerCase();
  return { wav: 'audio/wav', flac: 'audio/flac', ogg: 'audio/ogg', oga: 'audio/ogg', mp3: 'audio/mpeg' }[ext] ||
    'application/octet-stream';
}

async function predictFile(file) {
  if (rec) await stopRecording();
  status(`analysing ${file.name}…`);
  const r = await fetch('/predict', { method: 'POST', headers: { 'Content-Type': file.type || guessType(file.name) }, body: file });
  const j = await r.json();
  if (!r.ok) { status(`${file.name}: ${j.error} (HTTP ${r.status})`); return; }
  reset();
  state.duration = j.duration; state.windows = j.windows; state.segments = j.segments;
  render();
  showNow(j.label, j.confidence, j.probabilities);
  $('label').dataset.source = 'file';
  status(`${file.name}: ${j.duration.toFixed(1)} s`);
}

function addLive(j) {
  state.windows.push(...j.windows);
  state.segments.push(...j.segments);
  const voiced = j.windows.filter((w) => w.voiced);
  if (voiced.length) {
    const w = voiced[voiced.length - 1];
    showNow(w.label, w.confidence, w.probabilities);
    $('label').dataset.source = 'live';
    $('confidence').textContent += ` · smoothed over the last ${info.smooth} windows`;
  }
  render();
}

async function send(id, body) {
  const r = await fetch(`/stream/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
  const j = await r.json();
  if (!r.ok) throw new Error(`${j.error} (HTTP ${r.status})`);
  addLive(j);
}

function flush(all) {
  const n = rec.parts.reduce((a, p) => a + p.length, 0);
  if (!n || (!all && n < rec.chunk)) return;
  const buf = new Float32Array(n);
  let o = 0;
  for (const p of rec.parts) { buf.set(p, o); o += p.length; }
  rec.parts = [];
  rec.samples += n;
  if (KEEP) window.serSent.push(buf);
  state.duration = rec.samples / info.sample_rate;
  // one request at a time, in order: the session's windows depend on the order of the samples.
  // The session id is taken now: stopRecording clears `rec` before the last chunk goes out.
  const id = rec.id;
  rec.chain = rec.chain.then(() => send(id, buf.buffer)).catch((e) => { status(`live view stopped: ${e.message}`); });
}

async function startRecording() {
  const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
    noiseSuppression: false, autoGainControl: false } });
  const ctx = new AudioContext({ sampleRate: info.sample_rate });   // the browser resamples the microphone
  await ctx.audioWorklet.addModule('/worklet.js');
  const r = await fetch(`/stream?rate=${info.sample_rate}&format=f32`, { method: 'POST' });
  const j = await r.json();
  if (!r.ok) { media.getTracks().forEach((t) => t.stop()); ctx.close(); throw new Error(j.error); }
  reset();
  window.serSent = [];
  rec = { id: j.id, ctx, media, parts: [], samples: 0, chunk: Math.round(CHUNK_SECONDS * info.sample_rate),
          chain: Promise.resolve() };
  const src = ctx.createMediaStreamSource(media);
  const tap = new AudioWorkletNode(ctx, 'pcm-tap');
  const mute = ctx.createGain();
  mute.gain.value = 0;   // connected to the output so the graph runs, silent so there is no echo
  src.connect(tap); tap.connect(mute); mute.connect(ctx.destination);
  tap.port.onmessage = (e) => { if (rec) { rec.parts.push(e.data); flush(false); } };
  rec.tap = tap;
  $('record').textContent = 'Stop'; $('record').classList.add('on');
  status('listening…');
}

async function stopRecording() {
  const r = rec;
  if (!r) return;
  flush(true);
  rec = null;
  r.tap.port.onmessage = null;
  r.media.getTracks().forEach((t) => t.stop());
  r.ctx.close();
  $('record').textContent = 'Record from the microphone'; $('record').classList.remove('on');
  await r.chain;
  const resp = await fetch(`/stream/${r.id}`, { method: 'DELETE' });
  const j = await resp.json();
  if (resp.ok) addLive(j);
  status(`recorded ${(r.samples / info.sample_rate).toFixed(1)} s`);
  document.body.dataset.stopped = '1';
}

async function main() {
  const r = await fetch('/api/info');
  info = await r.json();
  $('model').textContent = `${info.checkpoint} (${info.model}): ${info.classes.join(', ')} · windows of ` +
    `${info.window} s every ${info.hop} s`;
  reset();
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault(); drop.classList.remove('over');
    if (e.dataTransfer.files.length) predictFile(e.dataTransfer.files[0]);
  });
  $('file').addEventListener('change', (e) => { if (e.target.files.length) predictFile(e.target.files[0]); });
  $('record').addEventListener('click', () => {
    (rec ? stopRecording() : startRecording()).catch((e) => status(`microphone: ${e.message}`));
  });
  document.body.dataset.ready = '1';
}
main().catch((e) => { $('model').textContent = `cannot reach the server: ${e.message}`; });
