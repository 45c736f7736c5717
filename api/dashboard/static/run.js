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
