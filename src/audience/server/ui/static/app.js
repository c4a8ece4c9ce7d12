// Audience's own script for its pages (htmx does the rest): a form that launches, cancels or
// deletes something asks first.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A sub-audience's percentages are added up as they are typed: treatments and control must
// total 100 (the server says the same when the builder is drawn, and refuses to save otherwise).
document.addEventListener("input", (event) => {
  const field = event.target;
  if (!field.classList || !field.classList.contains("percent")) {
    return;
  }
  const group = field.closest(".sub-audience");
  const said = group ? group.querySelector(".total") : null;
  if (!said) {
    return;
  }
  const values = Array.from(group.querySelectorAll("input.percent")).map((input) => input.value.trim());
  if (values.some((value) => value === "" || Number.isNaN(Number(value)))) {
    said.textContent = "Every percentage must be a number.";
    said.className = "total bad";
    return;
  }
  const total = Math.round(values.reduce((sum, value) => sum + Number(value), 0) * 1e6) / 1e6;
  const ok = total === 100;
  said.textContent = ok
    ? "Treatments and control total 100 %."
    : `Treatments and control total ${total} %: make it 100.`;
  said.className = ok ? "total ok" : "total bad";
});

// htmx redraws the builders when a drop-down or a button changes them: the control that had
// the focus gets it back in the new drawing (found by its id, or by its name and value), so
// keyboard users keep their place.
let focused = null;
document.addEventListener("htmx:beforeSwap", () => {
  const active = document.activeElement;
  focused = active && active !== document.body
    ? { id: active.id, name: active.getAttribute("name"), value: active.getAttribute("value") }
    : null;
});
document.addEventListener("htmx:afterSettle", () => {
  if (!focused) {
    return;
  }
  let again = focused.id ? document.getElementById(focused.id) : null;
  if (!again && focused.name) {
    const same = `[name="${CSS.escape(focused.name)}"]`;
    again = document.querySelector(
      focused.value !== null ? `${same}[value="${CSS.escape(focused.value)}"]` : same,
    );
  }
  if (again) {
    again.focus();
  }
  focused = null;
});
