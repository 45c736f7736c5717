// The board: drag a card to a column, or use its "Move to" menu (both post the same move);
// a refused move shows the server's reason and what would be allowed at the card.
import { describeProblem, moveFocus, post, refresh } from "./app.js";

const board = document.getElementById("board");

function cardOf(element) {
  return element?.closest?.(".card");
}

function taskIdOf(card) {
  return card.id.slice("card-".length);
}

// Refusals shown at cards, kept across live refreshes (the server's card has none) until the
// card moves or a minute passes.
const refusals = new Map();

function showError(taskId, text) {
  refusals.set(taskId, { text, until: Date.now() + 60000 });
  renderError(taskId, text);
}

function renderError(taskId, text) {
  const card = document.getElementById("card-" + taskId);
  if (!card) return;
  card.querySelector(".move-error")?.remove();
  const box = document.createElement("div");
  box.className = "move-error";
  box.setAttribute("role", "alert");
  box.textContent = text;
  card.querySelector(".card-actions")?.before(box);
}

document.addEventListener("cairn:refreshed", () => {
  for (const [taskId, refusal] of refusals) {
    const card = document.getElementById("card-" + taskId);
    if (!card || refusal.until < Date.now()) refusals.delete(taskId);
    else if (!card.querySelector(".move-error")) renderError(taskId, refusal.text);
  }
});

async function move(taskId, to) {
  const card = document.getElementById("card-" + taskId);
  card?.querySelector(".move-error")?.remove();
  refusals.delete(taskId);
  const next = location.pathname + location.search.replace(/([?&])(notice|min_position)=[^&]*/g, "$1");
  const result = await post(`/tasks/${encodeURIComponent(taskId)}/move`, { to, next });
  if (!result.ok) {
    showError(taskId, describeProblem(result.data));
    return false;
  }
  const position = new URL(result.data.location || "/", location.origin).searchParams.get("min_position");
  const url = new URL(location.href);
  if (position) url.searchParams.set("min_position", position);
  history.replaceState(null, "", url);
  await refresh();
  url.searchParams.delete("min_position");
  history.replaceState(null, "", url);
  const moved = document.getElementById("card-" + taskId);
  moved?.focus();
  return true;
}

if (board) {
  // Drag and drop.
  board.addEventListener("dragstart", (event) => {
    const card = cardOf(event.target);
    if (!card) return;
    event.dataTransfer.setData("text/plain", taskIdOf(card));
    event.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  board.addEventListener("dragend", (event) => {
    cardOf(event.target)?.classList.remove("dragging");
    for (const column of board.querySelectorAll(".drop-target")) column.classList.remove("drop-target");
  });
  board.addEventListener("dragover", (event) => {
    const column = event.target.closest(".column");
    if (!column) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  });
  board.addEventListener("dragenter", (event) => {
    const column = event.target.closest(".column");
    if (!column) return;
    for (const other of board.querySelectorAll(".drop-target")) {
      if (other !== column) other.classList.remove("drop-target");
    }
    column.classList.add("drop-target");
  });
  board.addEventListener("drop", async (event) => {
    const column = event.target.closest(".column");
    if (!column) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    const taskId = event.dataTransfer.getData("text/plain");
    const card = document.getElementById("card-" + taskId);
    if (!taskId || !card || card.dataset.status === column.dataset.status) return;
    await move(taskId, column.dataset.status);
  });

  // The "Move to" menu posts through the same path, so its refusal shows at the card too.
  // Its buttons submit the board's shared form (#card-form) with their own formaction.
  document.addEventListener("submit", async (event) => {
    const button = event.submitter;
    const card = cardOf(button);
    if (!button || !card || !button.formAction.endsWith("/move")) return;
    event.preventDefault();
    button.closest("details")?.removeAttribute("open");
    await move(taskIdOf(card), button.value);
  });

  // Keyboard: j/k through cards, h/l across columns, m opens the focused card's menu.
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, dialog[open]")) return;
    const cards = board.querySelectorAll(".card");
    const card = cardOf(document.activeElement);
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      moveFocus(cards, event.key === "j" ? 1 : -1);
    } else if (event.key === "h" || event.key === "l") {
      event.preventDefault();
      const columns = [...board.querySelectorAll(".column")];
      const at = columns.findIndex((c) => c.contains(document.activeElement));
      const step = event.key === "l" ? 1 : -1;
      for (let i = at + step; i >= 0 && i < columns.length; i += step) {
        const first = columns[i].querySelector(".card");
        if (first) { first.focus(); first.scrollIntoView({ block: "nearest", inline: "nearest" }); break; }
      }
    } else if (event.key === "m" && card) {
      event.preventDefault();
      const menu = card.querySelector("details.move");
      if (menu) {
        menu.open = true;
        menu.querySelector("button")?.focus();
      }
    } else if (event.key === "Escape") {
      const menu = document.activeElement?.closest("details.move");
      if (menu) {
        menu.open = false;
        menu.querySelector("summary")?.focus();
      }
    }
  });

  // A card named in the address (after creating it) takes the focus.
  if (location.hash.startsWith("#card-")) document.getElementById(location.hash.slice(1))?.focus();
}
