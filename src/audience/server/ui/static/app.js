// Audience's own script for its pages (htmx does the rest): a form that launches, cancels or
// deletes something asks first.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
