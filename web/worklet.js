// Runs in the audio thread: hands every block of microphone samples (mono, at the
// AudioContext's rate) to the page, which sends them to the server in chunks.
class PcmTap extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch && ch.length) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('pcm-tap', PcmTap);
