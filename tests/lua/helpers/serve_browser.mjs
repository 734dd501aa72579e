// Drives headless Chromium through chromedriver's WebDriver HTTP protocol (no npm
// packages: node's fetch) against a running serve.lua: loads the page, uploads FILE
// through the file input, then records from a fake microphone fed by MIC_WAV for
// SECONDS and stops. Prints what the page shows, one `key=value` line each:
//   file_label=angry            the label shown for the uploaded file
//   live_label=angry            the label shown after recording
//   live_windows=angry,angry,-  the timeline's windows (- for silent ones)
//   live_segments=angry         the segment list
//   live_sent_bytes=...         with SENT_F32: the samples the page sent, written there (raw float32)
// and writes a screenshot when SCREENSHOT is given.
//   node serve_browser.mjs URL FILE MIC_WAV SECONDS [SENT_F32 [SCREENSHOT]]
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, fileArg, micArg, secondsArg, sentFile, screenshot] = process.argv.slice(2);
if (!url || !fileArg || !micArg || !secondsArg) {
  console.error('usage: node serve_browser.mjs URL FILE MIC_WAV SECONDS [SENT_F32 [SCREENSHOT]]');
  process.exit(2);
}
const seconds = Number(secondsArg);
// chromedriver takes only canonical paths for file inputs
const file = realpathSync(fileArg), micWav = realpathSync(micArg);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const port = await freePort();
const profile = mkdtempSync(join(tmpdir(), 'ser-chromium-'));
const driver = spawn('chromedriver', [`--port=${port}`], { stdio: 'ignore' });
const base = `http://127.0.0.1:${port}`;
let session = null;

async function wd(method, path, body) {
  const r = await fetch(base + path, { method, headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(j.value && j.value.message || j)}`);
  return j.value;
}
const exec = (script, args = []) => wd('POST', `/session/${session}/execute/sync`, { script, args });

async function waitFor(script, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await exec(script);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function cleanup() {
  if (session) await wd('DELETE', `/session/${session}`).catch(() => {});
  driver.kill();
  rmSync(profile, { recursive: true, force: true });
}

try {
  for (let i = 0; ; i++) {   // chromedriver takes a moment to listen
    try { await fetch(`${base}/status`); break; } catch (e) { if (i > 100) throw e; await sleep(100); }
  }
  const caps = await wd('POST', '/session', { capabilities: { alwaysMatch: { 'goog:chromeOptions': {
    binary: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server',
           `--user-data-dir=${profile}`, '--window-size=1000,900', '--autoplay-policy=no-user-gesture-required',
           '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
           `--use-file-for-fake-audio-capture=${micWav}`] } } } });
  session = caps.sessionId;
  await wd('POST', `/session/${session}/url`, { url: `${url}?keep-audio` });
  await waitFor('return document.body.dataset.ready === "1"', 'the page to load');

  // a file, through the file input (what a drop does too)
  const input = await wd('POST', `/session/${session}/element`, { using: 'css selector', value: '#file' });
  const inputId = Object.values(input)[0];
  await wd('POST', `/session/${session}/element/${inputId}/value`, { text: file });
  const fileLabel = await waitFor('const l = document.getElementById("label"); ' +
    'return l.dataset.source === "file" && l.dataset.label', 'the file\'s label');
  console.log(`file_label=${fileLabel}`);

  // the microphone: record, wait, stop
  const button = await wd('POST', `/session/${session}/element`, { using: 'css selector', value: '#record' });
  const buttonId = Object.values(button)[0];
  await wd('POST', `/session/${session}/element/${buttonId}/click`, {});
  await waitFor('return document.getElementById("record").classList.contains("on")', 'the recording to start');
  await sleep(seconds * 1000);
  await wd('POST', `/session/${session}/element/${buttonId}/click`, {});
  await waitFor('return document.body.dataset.stopped === "1"', 'the recording to stop');
  const live = await exec('const l = document.getElementById("label"); return [l.dataset.source, l.dataset.label, ' +
    'Array.from(document.querySelectorAll("#timeline .win")).map((w) => w.dataset.label || "-").join(","), ' +
    'Array.from(document.querySelectorAll("#segments li")).map((s) => s.dataset.label).join(","), ' +
    'document.getElementById("status").textContent]');
  console.log(`live_source=${live[0]}`);
  console.log(`live_label=${live[1]}`);
  console.log(`live_windows=${live[2]}`);
  console.log(`live_segments=${live[3]}`);
  console.log(`live_status=${live[4]}`);
  // the samples the page sent, as raw float32, for the caller to replay
  const sent = await exec('const n = window.serSent.reduce((a, p) => a + p.length, 0); const all = new Float32Array(n); ' +
    'let o = 0; for (const p of window.serSent) { all.set(p, o); o += p.length; } ' +
    'let s = ""; const b = new Uint8Array(all.buffer); for (let i = 0; i < b.length; i += 8192) ' +
    's += String.fromCharCode.apply(null, b.subarray(i, i + 8192)); return btoa(s);');
  if (sentFile) {
    writeFileSync(sentFile, Buffer.from(sent, 'base64'));
    console.log(`live_sent_bytes=${Buffer.from(sent, 'base64').length}`);
  }
  if (screenshot) {
    const png = await wd('GET', `/session/${session}/screenshot`);
    writeFileSync(screenshot, Buffer.from(png, 'base64'));
  }
  await cleanup();
} catch (e) {
  console.error(`serve_browser: ${e.message}`);
  await cleanup();
  process.exit(1);
}
