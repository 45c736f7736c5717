// Cairn dashboard: progressive enhancement over plain HTML forms. Live regions refresh from
// the server when the log says something changed; shortcuts; small conveniences. Every page
// works without this file.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

/** POST a form (or fields) as a script: same body and CSRF token as the plain form. */
export async function post(url, fields) {
  const body = fields instanceof FormData ? new URLSearchParams(fields) : new URLSearchParams(fields || {});
  const response = await fetch(url, {
    method: "POST",
    headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    body,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

/** The text a refusal shows: the server's reason and what would be allowed. */
export function describeProblem(problem) {
  let text = problem.detail || problem.title || "The server refused.";
  if (problem.allowed_targets && problem.allowed_targets.length) {
    text += " Allowed: " + problem.allowed_targets.map((t) => t.replace(/_/g, " ")).join(", ") + ".";
  }
  if (problem.errors && problem.errors.length) {
    text += " " + problem.errors.map((e) => `${e.path}: ${e.reason}`).join("; ");
  }
  return text;
}

// ---- live regions ------------------------------------------------------------------------

const status = document.getElementById("live-status");
const live = { source: null, failures: 0, polling: null, positions: new Map(), busy: false, again: false, deferred: false };

function resumeDeferred() {
  if (live.deferred) { live.deferred = false; refresh(); }
}
document.addEventListener("toggle", (event) => {
  if (event.target.matches?.("details") && !event.target.open) resumeDeferred();
}, true);
document.addEventListener("dragend", () => setTimeout(resumeDeferred, 0));
// A form the person is filling in is not swapped under them: once it is sent (the page
// changes) or put back as it was, the swap happens.
document.addEventListener("change", () => setTimeout(() => { if (!anyEdited()) resumeDeferred(); }, 0), true);

/** Whether a region holds a field changed from what the page gave it. */
function edited(region) {
  for (const field of region.querySelectorAll("input, select, textarea")) {
    if (field.type === "hidden" || field.type === "submit") continue;
    if (field.tagName === "SELECT") {
      if ([...field.options].some((o) => o.selected !== o.defaultSelected)) return true;
    } else if (field.type === "checkbox" || field.type === "radio") {
      if (field.checked !== field.defaultChecked) return true;
    } else if (field.value !== field.defaultValue) return true;
  }
  return false;
}

function anyEdited() {
  return [...document.querySelectorAll("[data-region]")].some(edited);
}

function setStatus(state, text) {
  if (!status) return;
  status.dataset.state = state;
  status.textContent = text;
}

/** Fetch the page again (told to wait for the positions seen) and swap its live regions. */
export async function refresh() {
  if (live.busy) { live.again = true; return; }
  live.busy = true;
  try {
    const url = new URL(location.href);
    url.searchParams.delete("notice");
    for (const position of live.positions.values()) url.searchParams.append("min_position", position);
    live.positions.clear();
    const response = await fetch(url, { headers: { "X-Cairn-Refresh": "1" }, credentials: "same-origin" });
    if (response.redirected && response.url.includes("/login")) { location.reload(); return; }
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    swapRegions(fresh);
    document.dispatchEvent(new CustomEvent("cairn:refreshed"));
  } catch (e) {
    // a failed refresh is retried by the next event or poll
  } finally {
    live.busy = false;
    if (live.again) { live.again = false; setTimeout(refresh, 50); }
  }
}

function swapRegions(fresh) {
  // The focused element (a card, say) is found again by id once every region is swapped:
  // it may have moved from one region to another.
  const active = document.activeElement;
  const focusId = active && active !== document.body && (active.id || active.closest("[id]")?.id);
  for (const next of fresh.querySelectorAll("[data-region]")) {
    const current = document.querySelector(`[data-region="${CSS.escape(next.dataset.region)}"]`);
    if (!current || current.innerHTML === next.innerHTML) continue;
    if (current.querySelector("details[open]") || current.querySelector(".dragging") || current.dataset.hold || edited(current)) {
      live.deferred = true; // a menu is open, a drag is on, a form is being filled in: swap once it is done
      continue;
    }
    current.innerHTML = next.innerHTML;
    for (const name of ["data-state", "class"]) {
      if (next.hasAttribute(name)) current.setAttribute(name, next.getAttribute(name));
    }
  }
  if (focusId && !document.activeElement?.isConnected || document.activeElement === document.body) {
    if (focusId) document.getElementById(focusId)?.focus({ preventScroll: true });
  }
  const banner = fresh.getElementById("pause-banner");
  const here = document.getElementById("pause-banner");
  if (banner && !here) document.querySelector(".top")?.after(banner);
  else if (!banner && here) here.remove();
  else if (banner && here && banner.innerHTML !== here.innerHTML) here.innerHTML = banner.innerHTML;
}

let pending = null;
function schedule(position) {
  if (position) {
    const partition = position.split(":")[0];
    live.positions.set(partition, position);
  }
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 60);
}

function openStream() {
  const url = document.body.dataset.live;
  if (!url || live.source || document.hidden) return;
  const source = new EventSource(url);
  live.source = source;
  source.addEventListener("open", () => {
    // A stream follows the log from its end and says so in its first message (stream.opened),
    // which refreshes the page: what happened before it opened is read then.
    live.failures = 0;
    stopPolling();
    setStatus("live", "Live");
  });
  source.addEventListener("change", (event) => {
    let data = {};
    try { data = JSON.parse(event.data); } catch (e) { /* keep-alive */ }
    document.dispatchEvent(new CustomEvent("cairn:event", { detail: data }));
    if (!document.body.dataset.noRefresh) schedule(data.position);
  });
  source.addEventListener("error", () => {
    live.failures += 1;
    if (source.readyState === EventSource.CLOSED || live.failures >= 3) {
      source.close();
      live.source = null;
      startPolling();
      setTimeout(openStream, Math.min(30000, 1000 * 2 ** live.failures));
    } else {
      setStatus("reconnecting", "Reconnecting…");
    }
  });
}

function closeStream() {
  live.source?.close();
  live.source = null;
}

function startPolling() {
  if (live.polling) return;
  setStatus("polling", "Polling");
  live.polling = setInterval(refresh, Number(document.body.dataset.poll || 5000));
}

function stopPolling() {
  clearInterval(live.polling);
  live.polling = null;
}

function startLive() {
  if (document.body.dataset.live) {
    openStream(); // its first message refreshes the page: whatever happened while it was closed
  } else if (document.body.dataset.poll) {
    startPolling();
    setStatus("live", "Updating every " + Math.round(Number(document.body.dataset.poll) / 1000) + " s");
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.body.dataset.live && !document.body.dataset.poll) return;
  if (document.hidden) {
    closeStream();
    stopPolling();
    setStatus("paused", "Paused while hidden");
  } else {
    startLive();
  }
});

if (document.body.dataset.live) {
  setStatus("reconnecting", "Connecting…");
  openStream();
} else if (document.body.dataset.poll) {
  startLive();
}

// ---- forms ---------------------------------------------------------------------------------

// A choice made with the pointer applies at once; with the keyboard, arrows only move the
// choice (WCAG 3.2.2: no change of page on input) and the form's button applies it.
let keyed = false;
document.addEventListener("keydown", (event) => {
  if (event.target.matches?.("form[data-autosubmit] select")) keyed = true;
}, true);
document.addEventListener("pointerdown", () => { keyed = false; }, true);
document.addEventListener("change", (event) => {
  const form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.matches("select") && !keyed) form.requestSubmit();
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !confirm(form.dataset.confirm)) event.preventDefault();
});

// Panels that fold away on a phone are open on a wide screen.
if (matchMedia("(min-width: 760px)").matches) {
  for (const panel of document.querySelectorAll("details[data-open-wide]")) panel.open = true;
}

// The error summary of a refused form takes the focus, so a screen reader hears it first.
document.getElementById("error-summary")?.focus();

// ---- keyboard --------------------------------------------------------------------------------

const help = document.getElementById("help");
for (const button of document.querySelectorAll("[data-help]")) {
  button.addEventListener("click", () => help?.showModal());
}

let prefix = "";
let prefixTimer = null;

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable], dialog[open]") !== null;
}

/** Move the focus among `items` (cards or rows) by `step`. */
export function moveFocus(items, step) {
  const list = [...items];
  if (!list.length) return;
  const at = list.findIndex((item) => item.contains(document.activeElement));
  const next = list[Math.max(0, Math.min(list.length - 1, at < 0 ? 0 : at + step))];
  if (!next.hasAttribute("tabindex")) next.tabIndex = -1;
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target)) return;
  const key = event.key;
  if (prefix === "g") {
    prefix = "";
    const link = document.querySelector(`[data-key="g ${CSS.escape(key)}"]`);
    if (link) { event.preventDefault(); link.click(); }
    return;
  }
  if (key === "?") { event.preventDefault(); help?.showModal(); return; }
  if (key === "g") {
    prefix = "g";
    clearTimeout(prefixTimer);
    prefixTimer = setTimeout(() => { prefix = ""; }, 1500);
    return;
  }
  if (key === "n") {
    const link = document.querySelector('[data-key="n"]');
    if (link) { event.preventDefault(); link.click(); }
    return;
  }
  if (key === "/") {
    const field = document.querySelector("main input:not([type=hidden]), main select, main textarea");
    if (field) { event.preventDefault(); field.focus(); }
    return;
  }
  const rows = document.querySelectorAll("[data-row]");
  if ((key === "j" || key === "k") && rows.length) {
    event.preventDefault();
    moveFocus(rows, key === "j" ? 1 : -1);
    return;
  }
  if (key === "Enter" && event.target.matches("[data-row], .card")) {
    const link = event.target.querySelector("a[href]");
    if (link) { event.preventDefault(); link.click(); }
  }
});

// Times shown relative ("3 min ago") carry their exact value for a tooltip and readers.
for (const time of document.querySelectorAll("time[datetime]")) {
  if (!time.title) time.title = time.getAttribute("datetime");
}
