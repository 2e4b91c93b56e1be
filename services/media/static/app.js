// The candidate page: join, consent, call controls, captions, reconnect. Plain JS module, no build.
// The join token arrives in the URL fragment (never sent to a server, never in an access log); it
// is posted once with the first offer. Reconnects use the session credential from that join.
const $ = (id) => document.getElementById(id);
const iid = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const params = new URLSearchParams(location.search);
let token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
if (location.hash) history.replaceState(null, "", location.pathname + location.search); // token out of the URL bar
let credential = sessionStorage.getItem(`cred:${iid}`) || "";
const rawAudio = params.get("rawaudio") === "1"; // tests: exact audio (no echo cancellation etc.)
const state = { pc: null, dc: null, mic: null, camera: null, screen: null, peerId: "", policy: null,
                consent: null, ended: false, reconnecting: false, attempt: 0, connectedAt: 0, startedAt: 0 };
window.__media = state;

function status(text) { $("status").textContent = text; }
function error(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }
function show(section) { for (const s of ["join", "call", "ended"]) $(s).hidden = s !== section; }

async function getMic() {
  if (state.mic) return state.mic;
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({ audio: rawAudio
      ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false }
      : { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  } catch (e) {
    error(e.name === "NotAllowedError"
      ? "Microphone access was denied. Allow the microphone for this site in your browser's settings, then reload the page."
      : e.name === "NotFoundError" ? "No microphone was found. Connect one and reload the page."
      : `The microphone could not be started (${e.name}).`);
    throw e;
  }
  return state.mic;
}

async function micCheck() {
  const stream = await getMic();
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const tick = () => {
    analyser.getFloatTimeDomainData(buf);
    $("level").value = Math.min(1, Math.sqrt(buf.reduce((a, v) => a + v * v, 0) / buf.length) * 4);
    if (!$("join").hidden) requestAnimationFrame(tick); else ctx.close();
  };
  tick();
}

async function connect() {
  const config = await (await fetch(`/config.json?interview=${encodeURIComponent(iid)}`)).json();
  const pc = new RTCPeerConnection({ iceServers: config.iceServers, bundlePolicy: "max-bundle" });
  state.pc = pc;
  const mic = await getMic();
  pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv", streams: [mic] });
  state.cameraSender = pc.addTransceiver("video", { direction: "sendonly" }).sender;
  state.screenSender = pc.addTransceiver("video", { direction: "sendonly" }).sender;
  const dc = pc.createDataChannel("events");
  state.dc = dc;
  dc.onmessage = (ev) => onEvent(JSON.parse(ev.data));
  pc.ontrack = (ev) => { if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0; // lowest playout delay
                         const el = $("remote"); el.srcObject = ev.streams[0] || new MediaStream([ev.track]);
                         el.play().catch(() => {}); if (params.get("record") === "1") record(el.srcObject).catch(console.error); };
  pc.onconnectionstatechange = () => onConnection(pc);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const body = { type: "offer", sdp: pc.localDescription.sdp, client_info: navigator.userAgent,
                 consent: state.consent || {} };
  if (credential) body.credential = credential; else body.token = token;
  state.startedAt = Date.now();
  const resp = await fetch(`/i/${encodeURIComponent(iid)}/offer`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const reply = await resp.json().catch(() => ({ error: "The server sent an unreadable answer." }));
  if (!resp.ok) {
    pc.close();
    if (resp.status === 401 && body.credential && token) { // credential revoked (a new link): join with the link
      credential = ""; sessionStorage.removeItem(`cred:${iid}`); return connect();
    }
    const err = new Error(reply.error); err.status = resp.status; throw err;
  }
  token = ""; // used once
  saveCredential(reply.credential);
  state.peerId = reply.peer_id;
  await pc.setRemoteDescription({ type: reply.type, sdp: reply.sdp });
}

function gathered(pc) { // non-trickle: wait for every candidate (bounded)
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

function saveCredential(c) { if (c) { credential = c; sessionStorage.setItem(`cred:${iid}`, c); } }

function onConnection(pc) {
  if (pc !== state.pc || state.ended) return;
  if (pc.connectionState === "connected") {
    state.connectedAt = Date.now(); state.attempt = 0; state.reconnecting = false;
    status("Connected. The interviewer will speak first."); error("");
  } else if (pc.connectionState === "failed" || pc.connectionState === "disconnected") {
    setTimeout(() => { if (pc === state.pc && pc.connectionState !== "connected") reconnect(); },
               pc.connectionState === "failed" ? 0 : 2000);
  }
}

async function reconnect() {
  if (state.reconnecting || state.ended) return;
  state.reconnecting = true;
  while (!state.ended) {
    state.attempt += 1;
    status(`Connection lost. Reconnecting (attempt ${state.attempt})…`);
    try { state.pc && state.pc.close(); } catch (e) { /* already closed */ }
    try { await connect(); status("Reconnected."); state.reconnecting = false; restoreVideo(); return; }
    catch (e) {
      if ([401, 403, 404, 409, 410].includes(e.status)) { fail(e); return; }
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** (state.attempt - 1))));
    }
  }
}

function restoreVideo() {
  if (state.camera) state.cameraSender.replaceTrack(state.camera.getVideoTracks()[0]);
  if (state.screen) state.screenSender.replaceTrack(state.screen.getVideoTracks()[0]);
  if (state.consent) send({ type: "consent", ...state.consent });
}

function onEvent(ev) {
  switch (ev.type) {
    case "policy": state.policy = ev; if (!state.consent && (ev.camera || ev.screen)) askConsent(ev); break;
    case "state":
      $("phase").hidden = !ev.phase; $("phase-title").textContent = ev.phase || "";
      $("mode").textContent = ev.mode === "coding" ? "Coding (the interviewer stays quiet)" : "Conversation";
      break;
    case "frame_rates": applyFrameRates(ev); break;
    case "speaking": $("speaking").hidden = !ev.value; break;
    case "caption": caption(ev); break;
    case "credential": saveCredential(ev.credential); break;
    case "error": status(ev.message); break;
    case "reconnect": status(ev.message); reconnect(); break;  // the server is shutting down: rejoin elsewhere
    case "end": finish(ev.reason); break;
  }
}

function caption(ev) {
  const list = $("captions");
  let li = list.lastElementChild;
  if (!li || !li.classList.contains("interim") || li.dataset.role !== ev.role) {
    li = document.createElement("li"); li.dataset.role = ev.role; list.append(li);
  }
  li.className = ev.final ? "" : "interim";
  li.innerHTML = "";
  const who = document.createElement("span"); who.className = "who";
  who.textContent = ev.role === "agent" ? "Interviewer:" : "You:";
  li.append(who, document.createTextNode(ev.text));
  list.scrollTop = list.scrollHeight;
}

// The orchestrator's sampling rates: the browser encodes (and media decodes) no more video than is
// analysed; 0 pauses the sender. maxFramerate below 1 is not honoured everywhere, media gates too.
async function applyFrameRates(ev) {
  state.frameRates = ev;
  for (const [sender, fps] of [[state.cameraSender, ev.camera], [state.screenSender, ev.screen]]) {
    if (!sender) continue;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) continue;
    params.encodings[0].active = fps > 0;
    if (fps > 0) params.encodings[0].maxFramerate = Math.max(1, fps);
    try { await sender.setParameters(params); } catch (e) { /* not negotiated yet: media still gates */ }
  }
}

function askConsent(policy) {
  const names = [policy.camera && "camera", policy.screen && "shared screen"].filter(Boolean);
  $("consent-sources").textContent = names.join(" and ");
  $("consent").showModal();
}

function decideConsent(agree) {
  const p = state.policy || {};
  state.consent = { camera: agree && !!p.camera, screen: agree && !!p.screen };
  send({ type: "consent", ...state.consent });
  $("camera").hidden = !state.consent.camera;
  $("screen").hidden = !state.consent.screen;
  $("consent").close();
  status(agree ? "Thank you. You can turn the camera and screen sharing on and off at any time." : "Voice only.");
}

function send(ev) { if (state.dc && state.dc.readyState === "open") state.dc.send(JSON.stringify(ev)); }

async function toggleCamera() {
  const btn = $("camera");
  if (state.camera) {
    state.camera.getTracks().forEach((t) => t.stop()); state.camera = null;
    await state.cameraSender.replaceTrack(null);
  } else {
    try { state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 } }); }
    catch (e) { error("Camera access was denied. You can continue with voice only."); return; }
    await state.cameraSender.replaceTrack(state.camera.getVideoTracks()[0]);
  }
  btn.setAttribute("aria-pressed", String(!!state.camera));
  btn.textContent = state.camera ? "Turn camera off" : "Turn camera on";
  preview();
}

async function toggleScreen() {
  if (state.screen) { stopScreen(); return; }
  // Ask for the source's own resolution: without it Chromium captures a tab at 800 px wide, where
  // OCR of code loses underscores (media scales anything over 1280 px down).
  const video = { width: { ideal: 1920 }, height: { ideal: 1080 } };
  try { state.screen = await navigator.mediaDevices.getDisplayMedia({ video, audio: false }); }
  catch (e) { error("Screen sharing was not started (permission denied or cancelled)."); return; }
  const track = state.screen.getVideoTracks()[0];
  // Code and text on screen: under CPU or bandwidth pressure keep the resolution and drop frames
  // (WebRTC's default for video halves the resolution, and OCR then loses underscores and dots).
  track.contentHint = "text";
  track.onended = stopScreen;
  await state.screenSender.replaceTrack(track);
  $("screen").setAttribute("aria-pressed", "true"); $("screen").textContent = "Stop sharing";
  preview();
}

async function stopScreen() {
  if (!state.screen) return;
  state.screen.getTracks().forEach((t) => t.stop()); state.screen = null;
  await state.screenSender.replaceTrack(null);
  $("screen").setAttribute("aria-pressed", "false"); $("screen").textContent = "Share screen";
  preview();
}

function preview() {
  const v = $("preview"); const s = state.screen || state.camera;
  v.hidden = !s; v.srcObject = s || null; if (s) v.play().catch(() => {});
}

function toggleMute() {
  const track = state.mic.getAudioTracks()[0];
  track.enabled = !track.enabled;
  $("mute").setAttribute("aria-pressed", String(!track.enabled));
  $("mute").textContent = track.enabled ? "Mute" : "Unmute";
  status(track.enabled ? "Microphone on." : "Microphone muted: the interviewer cannot hear you.");
}

async function endInterview() {
  send({ type: "hangup" });
  if (state.peerId) {
    navigator.sendBeacon(`/i/${encodeURIComponent(iid)}/hangup`,
                         new Blob([JSON.stringify({ peer_id: state.peerId })], { type: "application/json" }));
  }
  finish("You ended the interview.");
}

function finish(reason) {
  state.ended = true;
  sessionStorage.removeItem(`cred:${iid}`);
  if (state.pc) state.pc.close();
  for (const s of [state.mic, state.camera, state.screen]) if (s) s.getTracks().forEach((t) => t.stop());
  $("speaking").hidden = true;
  $("ended-reason").textContent = reason === "completed" ? "Thank you for your time. You can close this page."
    : reason === "replaced" ? "This interview was opened in another window or tab."
    : reason === "link_reissued" ? "A new link was issued for this interview: use the newest link you were sent."
    : reason || "Thank you for your time. You can close this page.";
  status(""); show("ended");
}

function fail(e) {
  status("");
  error(e.message || "Could not join the interview.");
  if (e.status === 410) finish("This interview has ended.");
}

// Test hook (?record=1): keep what the page plays and what the microphone sends, sample-aligned on
// the audio clock (an AudioWorklet runs on the audio thread, so a busy page cannot shift or drop
// blocks), with the arrival time of each block so a test can place them on the wall clock.
const RECORDER = `class Rec extends AudioWorkletProcessor {
  constructor() { super(); this.n = 0; this.a = new Float32Array(4096); this.b = new Float32Array(4096); }
  process(inputs) {
    const q = (inputs[0][0] || inputs[1][0] || { length: 128 }).length;
    if (this.n === 0) this.frame = currentFrame;
    for (const [inp, out] of [[inputs[0], this.a], [inputs[1], this.b]]) {
      if (inp[0]) out.set(inp[0], this.n); else out.fill(0, this.n, this.n + q); }
    this.n += q;
    if (this.n + q > this.a.length) {
      this.port.postMessage({ frame: this.frame, a: this.a.slice(0, this.n), b: this.b.slice(0, this.n) });
      this.n = 0; }
    return true; } }
registerProcessor("rec", Rec);`;

async function record(stream) {
  if (window.__rec) return;
  const ctx = new AudioContext(), blocks = [];
  window.__rec = { rate: ctx.sampleRate, blocks: 0 };
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([RECORDER], { type: "text/javascript" })));
  const node = new AudioWorkletNode(ctx, "rec", { numberOfInputs: 2, numberOfOutputs: 1, channelCount: 1,
                                                   channelCountMode: "explicit" });
  node.port.onmessage = (ev) => { blocks.push({ t: Date.now(), ...ev.data }); window.__rec.blocks = blocks.length; };
  ctx.createMediaStreamSource(stream).connect(node, 0, 0);
  if (state.mic) ctx.createMediaStreamSource(state.mic).connect(node, 0, 1);
  const sink = ctx.createGain(); sink.gain.value = 0; node.connect(sink); sink.connect(ctx.destination);
  const b64 = (key) => { const n = blocks.reduce((a, c) => a + c[key].length, 0), pcm = new Int16Array(n); let i = 0;
    for (const c of blocks) for (const v of c[key]) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
    let bin = ""; const bytes = new Uint8Array(pcm.buffer);
    for (let j = 0; j < bytes.length; j += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(j, j + 0x8000));
    return btoa(bin); };
  window.__rec.export = () => ({ rate: ctx.sampleRate, frames: blocks.map((c) => c.frame),
    lengths: blocks.map((c) => c.a.length), times: blocks.map((c) => c.t), pcm: b64("a"), mic: b64("b") });
}

$("mic-check").onclick = () => micCheck().catch(() => {});
$("join-btn").onclick = async () => {
  error(""); $("join-btn").disabled = true; status("Connecting…");
  try { await connect(); show("call"); }
  catch (e) { $("join-btn").disabled = false; if (e.status) fail(e); else if (!$("error").textContent) error(`Could not connect: ${e.message}`); }
};
$("mute").onclick = toggleMute;
$("camera").onclick = toggleCamera;
$("screen").onclick = toggleScreen;
$("end").onclick = endInterview;
$("consent-agree").onclick = () => decideConsent(true);
$("consent-voice").onclick = () => decideConsent(false);
$("consent").addEventListener("cancel", (ev) => { ev.preventDefault(); decideConsent(false); });
window.addEventListener("pagehide", () => {  // not the End button: the orchestrator can tell the two apart
  if (state.ended || !state.peerId) return;
  send({ type: "hangup", reason: "page_closed" });
  navigator.sendBeacon(`/i/${encodeURIComponent(iid)}/hangup`, new Blob(
    [JSON.stringify({ peer_id: state.peerId, reason: "page_closed" })], { type: "application/json" }));
});
if (!token && !credential) { error("This link is incomplete: it has no join token. Open the full link you were sent."); $("join-btn").disabled = true; }
