// The steps editor: add and remove rows in the page (without scripts, "Add a step" asks the
// server for one more row and blank rows are ignored).
const list = document.querySelector("[data-steps]");
const add = document.querySelector("[data-add-step]");

function renumber() {
  const rows = [...list.querySelectorAll("[data-step]")];
  rows.forEach((row, i) => {
    for (const field of row.querySelectorAll("[name^='steps-']")) {
      const [, , part] = field.name.split("-");
      const old = field.id;
      field.name = `steps-${i}-${part}`;
      if (old) {
        field.id = `f-steps-${i}-${part}`;
        const label = row.querySelector(`label[for="${CSS.escape(old)}"]`);
        if (label) {
          label.htmlFor = field.id;
          label.firstChild.textContent = label.firstChild.textContent.replace(/Step \d+/, `Step ${i + 1}`);
        }
        for (const note of row.querySelectorAll(`[id^="${CSS.escape(old)}-"]`)) {
          note.id = note.id.replace(old, field.id);
        }
        const described = field.getAttribute("aria-describedby");
        if (described) field.setAttribute("aria-describedby", described.split(old).join(field.id));
      }
    }
    const remove = row.querySelector("[data-remove-step]");
    remove.hidden = rows.length < 2;
    remove.textContent = `Remove step ${i + 1}`;
  });
}

if (list && add) {
  add.addEventListener("click", (event) => {
    event.preventDefault();
    const rows = list.querySelectorAll("[data-step]");
    const row = rows[rows.length - 1].cloneNode(true);
    for (const field of row.querySelectorAll("input, textarea")) {
      field.value = "";
      field.removeAttribute("aria-invalid");
    }
    for (const error of row.querySelectorAll(".field-error")) error.remove();
    list.append(row);
    renumber();
    row.querySelector("input:not([type=hidden])")?.focus();
  });
  list.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-step]");
    if (!button) return;
    const row = button.closest("[data-step]");
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    next?.querySelector("input:not([type=hidden])")?.focus();
  });
  renumber();
}
