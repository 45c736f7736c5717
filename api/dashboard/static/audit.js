// The audit log, live: rows the server rendered for each new event go on top.
const body = document.getElementById("audit-rows");
const MAX_ROWS = 500;

document.addEventListener("cairn:event", (event) => {
  const html = event.detail.html;
  if (!body || !html) return;
  const holder = document.createElement("tbody");
  holder.innerHTML = html;
  const row = holder.firstElementChild;
  if (!row || document.getElementById(row.id)) return;
  row.classList.add("fresh");
  body.prepend(row);
  document.getElementById("audit-empty")?.remove();
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
});
