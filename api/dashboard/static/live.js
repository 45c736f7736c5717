// A running job's terminal (live sessions, decision 0011): xterm.js attached to a session's
// WebSocket. A watch only shows; a takeover also sends what is typed ({"i": text}) and the
// terminal's size ({"r": "COLSxROWS"}). Who else is here and the time left are polled; a
// reloaded page attaches again to the caller's open session with a new ticket. An ended
// session's recording (asciicast v2) replays in the same terminal. xterm.js is loaded only
// when a terminal is first shown.
import { describeProblem, post } from "./app.js";

const section = document.getElementById("live");
const jobId = document.body.dataset.job;
const base = `/queue/${encodeURIComponent(jobId || "")}/live-sessions`;
const POLL_MS = 3000;
const IDLE_CAP_S = 2; // a replay skips longer silences, as asciinema's idle limit does
const THEME = {
  background: "#0d1117", foreground: "#e6edf3", cursor: "#e6edf3", selectionBackground: "#264f78",
};
const $ = (id) => document.getElementById(id);

let term = null;
let fit = null;
let socket = null;
let current = null; // the attached session: {sessionId, mode, expiresAt}
let replay = 0; // the replay running (a later one stops an earlier)
let poller = null;
let ticker = null;
let loading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.append(script);
  });
}

/** xterm.js and its addons, once. The canvas renderer: the default one writes inline styles
 * the page's Content-Security-Policy refuses. */
function loadXterm() {
  if (!loading) {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/xterm.css";
    document.head.append(css);
    loading = loadScript("/static/xterm.js").then(() => Promise.all([
      loadScript("/static/xterm-addon-canvas.js"), loadScript("/static/xterm-addon-fit.js"),
    ]));
  }
  return loading;
}

async function terminal() {
  $("live-box").hidden = false;
  await loadXterm();
  if (term) return term;
  term = new window.Terminal({
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace',
    fontSize: 13, scrollback: 5000, screenReaderMode: true, disableStdin: true, theme: THEME,
  });
  term.loadAddon(new window.CanvasAddon.CanvasAddon()); // before open: no DOM renderer at all
  fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("live-term"));
  fit.fit();
  term.onData((data) => { if (current?.mode === "takeover") send({ i: data }); });
  term.onResize(({ cols, rows }) => { if (current?.mode === "takeover") send({ r: `${cols}x${rows}` }); });
  let resizing = null;
  new ResizeObserver(() => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (!$("live-box").hidden) fit.fit(); }, 100);
  }).observe($("live-term"));
  return term;
}

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function say(state, text) {
  const shown = $("live-state");
  shown.dataset.state = state;
  shown.textContent = text;
}

function refused(text) {
  const error = $("live-error");
  if (error) error.textContent = text;
}

/** The toolbar and the hand-back form for what the terminal shows now. */
function layout(mode, label) {
  section.dataset.attached = mode || "";
  $("live-mode").textContent = label;
  $("live-mode").className = "badge" + (mode === "takeover" ? " warn" : mode === "watch" ? " info" : "");
  $("live-speed-field").hidden = mode !== "replay";
  $("live-stop").hidden = mode === "takeover";
  $("live-stop").textContent = mode === "replay" ? "Close replay" : "Stop watching";
  const form = $("live-hand-back");
  form.hidden = mode !== "takeover";
  if (mode === "takeover" && current) {
    form.action = `${base}/${encodeURIComponent(current.sessionId)}/hand-back`;
  }
  $("live-left").textContent = "";
  $("live-others").textContent = "";
}

// ---- a live session ----------------------------------------------------------------------------

async function open(mode) {
  refused("");
  if (current) await stop(false); // one session at a time on a page
  const reply = await post(base, { mode });
  if (!reply.ok) { refused(describeProblem(reply.data)); return; }
  await attach(reply.data);
}

/** Attach again to an open session of the caller's (a reload, a dropped connection). */
async function reattach(sessionId, expiresAt) {
  const reply = await post(`${base}/${encodeURIComponent(sessionId)}/tickets`, {});
  if (reply.ok) { await attach({ ...reply.data, expiresAt }); return; }
  const ended = (await list())?.ended.find((s) => s.sessionId === sessionId); // ended meanwhile
  finish(ended ? `Ended: ${ended.whySaid}` : describeProblem(reply.data));
}

async function attach(opened) {
  stopReplay();
  detach();
  current = { sessionId: opened.sessionId, mode: opened.mode, expiresAt: opened.expiresAt };
  layout(opened.mode, opened.mode === "takeover" ? "Taken over: you type" : "Watching");
  say("reconnecting", "Connecting…");
  const shown = await terminal();
  shown.reset();
  shown.options.disableStdin = opened.mode !== "takeover";
  shown.options.cursorBlink = opened.mode === "takeover";
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${opened.ws}`);
  socket = ws;
  ws.addEventListener("open", () => {
    say("live", "Live");
    if (current?.mode === "takeover") {
      send({ r: `${shown.cols}x${shown.rows}` });
      shown.focus();
    }
  });
  let endSaid = false; // the relay's last words: the session ended
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    const text = String(event.data);
    endSaid ||= text.includes("[cairn: the session ended");
    shown.write(text);
  });
  ws.addEventListener("close", (event) => { if (socket === ws) closed(event, endSaid); });
  tick();
  clearInterval(ticker);
  ticker = setInterval(tick, 1000);
  clearInterval(poller);
  poller = setInterval(look, POLL_MS);
  look();
}

function detach() {
  const ws = socket;
  socket = null;
  ws?.close();
  clearInterval(poller);
  clearInterval(ticker);
  poller = ticker = null;
}

/** The WebSocket closed: the session ended (the page says why, once the job's record has
 * it: a worker that ends a session says so on the terminal first), or the connection dropped
 * (attach again with a new ticket while the session is open). */
async function closed(event, endSaid) {
  socket = null;
  const sid = current?.sessionId;
  for (let look = 0; look < 10; look += 1) {
    if (look) await new Promise((resolve) => setTimeout(resolve, 1000));
    if (current?.sessionId !== sid) return; // another session or a replay took the terminal
    const sessions = await list();
    const ended = sessions?.ended.find((s) => s.sessionId === sid);
    if (ended) { finish(`Ended: ${ended.whySaid}`); return; }
    const still = sessions?.open.find((s) => s.sessionId === sid);
    if (still && !endSaid && event.code < 4000) { // a dropped connection, not a refusal
      say("reconnecting", "Reconnecting…");
      setTimeout(() => reattach(still.sessionId, still.expiresAt), 1000);
      return;
    }
    if (!endSaid) break;
  }
  finish(endSaid ? "Ended" : `Closed${event.reason ? `: ${event.reason}` : ""}`);
}

function finish(text) {
  detach();
  current = null;
  layout("", "Ended");
  $("live-stop").hidden = false;
  $("live-stop").textContent = "Close";
  say("off", text);
  if (term) term.options.disableStdin = true;
}

async function list() {
  try {
    const response = await fetch(base, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    return response.ok ? await response.json() : null;
  } catch (e) {
    return null; // the next look tries again
  }
}

/** Who else is here (polled). */
async function look() {
  const sessions = await list();
  if (!sessions || !current) return;
  const mine = sessions.open.find((s) => s.sessionId === current.sessionId);
  if (mine) current.expiresAt = mine.expiresAt;
  const others = sessions.open.filter((s) => s.sessionId !== current.sessionId)
    .map((s) => `${s.actor} (${s.mode === "takeover" ? "taking over" : "watching"})`);
  $("live-others").textContent = others.length ? `Also here: ${others.join(", ")}` : "Nobody else is here";
}

function tick() {
  if (!current?.expiresAt) return;
  const left = Math.max(0, Math.round((Date.parse(current.expiresAt) - Date.now()) / 1000));
  const minutes = Math.floor(left / 60);
  $("live-left").textContent = `${minutes}:${String(left % 60).padStart(2, "0")} left`;
  $("live-left").classList.toggle("warn", left < 60);
}

async function stop(close = true) {
  const was = current;
  if (was) {
    current = null;
    detach();
    await post(`${base}/${encodeURIComponent(was.sessionId)}/close`, {});
  }
  stopReplay();
  if (close) {
    $("live-box").hidden = true;
    section.dataset.attached = "";
  }
}

async function handBack(event) {
  event.preventDefault();
  if (!current) return;
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  const reply = await post(event.target.action, new FormData(event.target));
  button.disabled = false;
  if (!reply.ok) { say("off", describeProblem(reply.data)); return; }
  $("live-note").value = "";
  say("off", "Handed back: the agent goes on");
  // The WebSocket says the session ended and closes; the page shows why then.
}

// ---- a recording -------------------------------------------------------------------------------

function stopReplay() {
  replay += 1;
}

/** An asciicast v2 file's output frames: [seconds, text]. */
function frames(cast) {
  const found = [];
  for (const line of cast.split("\n").slice(1)) {
    if (!line.trim()) continue;
    try {
      const [at, kind, text] = JSON.parse(line);
      if (kind === "o") found.push([Number(at), String(text)]);
    } catch (e) { /* a line cut short: the rest still plays */ }
  }
  return found;
}

async function play(button) {
  if (current) await stop(false);
  const mine = ++replay;
  layout("replay", `Replay: ${button.dataset.label}`);
  say("reconnecting", "Loading…");
  const shown = await terminal();
  shown.reset();
  shown.options.disableStdin = true;
  let cast = "";
  try {
    const response = await fetch(button.dataset.liveReplay, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the recording answered ${response.status}`);
    cast = await response.text();
  } catch (e) {
    say("off", `Not played: ${e.message}`);
    return;
  }
  say("live", "Playing");
  let clock = 0;
  for (const [at, text] of frames(cast)) {
    const speed = Number($("live-speed").value);
    const wait = Math.min(IDLE_CAP_S, Math.max(0, at - clock));
    clock = at;
    if (speed > 0 && wait > 0) await new Promise((resolve) => setTimeout(resolve, (wait * 1000) / speed));
    if (mine !== replay) return; // stopped, or another replay began
    shown.write(text);
  }
  say("off", "Replayed to its end");
}

// ---- wiring ------------------------------------------------------------------------------------

function showPanel() {
  section.hidden = !section.querySelector("[data-live-shown]") && $("live-box").hidden;
}

if (section && jobId) {
  section.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-live-open]");
    if (opener) { opener.disabled = true; open(opener.dataset.liveOpen).finally(() => { opener.disabled = false; }); }
    const replayer = event.target.closest("[data-live-replay]");
    if (replayer) play(replayer);
  });
  $("live-stop").addEventListener("click", () => stop(true));
  $("live-hand-back").addEventListener("submit", handBack);
  document.addEventListener("cairn:refreshed", showPanel);
  const mine = section.querySelector("[data-live-mine]");
  if (mine) reattach(mine.dataset.liveMine, mine.dataset.expires);
}
