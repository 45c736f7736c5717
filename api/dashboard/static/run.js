// A run's live output: SSE that resumes from the last entry id (the browser sends
// Last-Event-ID on its own reconnects; ours pass ?after=), a polling fallback, a visible
// live/polling state, follow, filter and copy.
const jobId = document.body.dataset.job;
const box = document.getElementById("output");
const state = document.getElementById("output-status");
const follow = document.getElementById("output-follow");
const filter = document.getElementById("output-filter");
const MAX_LINES = 5000;
let last = "0-0";
let source = null;
let poller = null;
let failures = 0;
let ended = false;
let partial = null; // the line still being written

function show(mode, text) {
  if (!state) return;
  state.dataset.state = mode;
  state.textContent = text;
}

function matches(line) {
  const needle = filter?.value.trim().toLowerCase();
  return !needle || line.textContent.toLowerCase().includes(needle);
}

function append(text) {
  if (!text) return;
  document.getElementById("output-empty")?.remove();
  const parts = text.split("\n");
  parts.forEach((part, i) => {
    if (partial === null) {
      partial = document.createElement("div");
      box.append(partial);
    }
    partial.textContent += part;
    partial.classList.toggle("hidden", !matches(partial));
    if (i < parts.length - 1) partial = null;
  });
  while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  if (follow?.checked) box.scrollTop = box.scrollHeight;
}

function take(entry) {
  last = entry.id;
  append(entry.text);
}

function end(status) {
  ended = true;
  close();
  show("off", "Finished" + (status ? ` (${status.replace(/_/g, " ")})` : ""));
}

function close() {
  source?.close();
  source = null;
  clearInterval(poller);
  poller = null;
}

function connect() {
  if (ended || source || document.hidden) return;
  source = new EventSource(`/queue/${encodeURIComponent(jobId)}/output/stream?after=${encodeURIComponent(last)}`);
  source.addEventListener("open", () => {
    failures = 0;
    clearInterval(poller);
    poller = null;
    show("live", "Live");
  });
  source.addEventListener("output", (event) => take(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    let status = "";
    try { status = JSON.parse(event.data).status; } catch (e) { /* no body */ }
    end(status);
  });
  source.addEventListener("error", () => {
    failures += 1;
    if (ended) return;
    if (failures >= 3 || source.readyState === EventSource.CLOSED) {
      source.close();
      source = null;
      poll();
      setTimeout(connect, Math.min(30000, 1000 * 2 ** failures));
    } else {
      show("reconnecting", "Reconnecting…");
    }
  });
}

/** Read the output after the last entry; how many entries came (-1 on failure). */
async function pollOnce() {
  try {
    const response = await fetch(`/queue/${encodeURIComponent(jobId)}/output?after=${encodeURIComponent(last)}`,
      { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return -1;
    const page = await response.json();
    for (const entry of page.items) take(entry);
    return page.items.length;
  } catch (e) {
    return -1; // the next poll tries again
  }
}

/** A finished job's output, read page by page: nothing is live any more. */
async function readAll() {
  ended = true;
  show("off", "Loading…");
  while ((await pollOnce()) > 0) { /* the next page */ }
  show("off", "Finished");
}

function poll() {
  if (poller || ended) return;
  show("polling", "Polling");
  pollOnce();
  poller = setInterval(pollOnce, 1500);
}

if (box && jobId && document.body.dataset.terminal) {
  readAll();
} else if (box && jobId) {
  connect();
  document.addEventListener("visibilitychange", () => {
    if (ended) return;
    if (document.hidden) { close(); show("paused", "Paused while hidden"); } else { connect(); }
  });
}

if (box) {
  box.addEventListener("scroll", () => {
    const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
    if (follow && follow.checked !== atEnd && document.activeElement === box) follow.checked = atEnd;
  });
  follow?.addEventListener("change", () => { if (follow.checked) box.scrollTop = box.scrollHeight; });
  filter?.addEventListener("input", () => {
    for (const line of box.children) line.classList.toggle("hidden", !matches(line));
  });
  document.getElementById("output-copy")?.addEventListener("click", async (event) => {
    const text = [...box.children].filter((l) => !l.classList.contains("hidden")).map((l) => l.textContent).join("\n");
    try {
      await navigator.clipboard.writeText(text);
      event.target.textContent = "Copied";
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents(box);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      event.target.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { event.target.textContent = "Copy"; }, 2000);
  });
}

// ---- the conversation ----------------------------------------------------------------------
// The server renders it; while the job runs, each transcript entry (and each change of the job)
// has it rendered again, at most once a second, keeping open what the person opened and
// closed what they closed.
const talk = document.getElementById("conversation");
const TALK_EVERY_MS = 1000;
let talkSource = null;
let talkTimer = null;
let talkLast = "0-0";
let talkFailures = 0;
let talkEnded = false;
let talkShown = talk?.innerHTML;
let talkBusy = false;
let talkAgain = false;

function refreshTalkSoon() {
  if (talkTimer) return;
  talkTimer = setTimeout(() => { talkTimer = null; refreshTalk(); }, TALK_EVERY_MS);
}

async function refreshTalk() {
  if (talkBusy) { talkAgain = true; return; }
  const selection = getSelection();
  if (selection && !selection.isCollapsed && talk.contains(selection.anchorNode)) {
    refreshTalkSoon(); // not under the person selecting text in it
    return;
  }
  talkBusy = true;
  try {
    const response = await fetch(location.pathname, { headers: { "X-Cairn-Refresh": "1" }, credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("conversation");
    if (!fresh || fresh.innerHTML === talkShown) return;
    const opened = new Map([...talk.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
    talkShown = fresh.innerHTML;
    talk.innerHTML = fresh.innerHTML;
    for (const details of talk.querySelectorAll("details[id]")) {
      if (opened.has(details.id)) details.open = opened.get(details.id);
    }
  } catch (e) {
    // the next entry or change tries again
  } finally {
    talkBusy = false;
    if (talkAgain) { talkAgain = false; refreshTalkSoon(); }
  }
}

function closeTalk() {
  talkSource?.close();
  talkSource = null;
}

function connectTalk() {
  if (talkEnded || talkSource || document.hidden) return;
  talkSource = new EventSource(`/queue/${encodeURIComponent(jobId)}/transcript/stream?after=${encodeURIComponent(talkLast)}`);
  talkSource.addEventListener("open", () => { talkFailures = 0; });
  talkSource.addEventListener("entry", (event) => {
    talkLast = event.lastEventId || talkLast;
    refreshTalkSoon();
  });
  talkSource.addEventListener("end", () => {
    talkEnded = true;
    closeTalk();
    refreshTalkSoon();
  });
  talkSource.addEventListener("error", () => {
    talkFailures += 1;
    if (talkEnded || talkSource?.readyState !== EventSource.CLOSED) return; // the browser retries
    closeTalk();
    setTimeout(connectTalk, Math.min(30000, 1000 * 2 ** talkFailures));
  });
}

if (talk && jobId && !document.body.dataset.terminal) {
  connectTalk();
  document.addEventListener("cairn:event", refreshTalkSoon); // a step started or ended
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) closeTalk(); else { connectTalk(); refreshTalkSoon(); }
  });
}
