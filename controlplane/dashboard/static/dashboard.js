// Small behaviours of every page, as event listeners: the Content-Security-Policy allows no
// inline script, so no template carries onclick=, onsubmit=, onchange= or hx-on attributes.
//
// <select data-autosubmit>: choosing an option submits its form (the fleet picker).
// <form data-confirm="Question?">: asks before submitting; "Cancel" keeps the page as it is.
// [data-focus-after-swap]: focused once when htmx swaps it in (a token shown once, to copy).
document.addEventListener("change", (e) => {
  const select = e.target.closest && e.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.requestSubmit();
});
document.addEventListener("submit", (e) => {
  const form = e.target;
  if (form.dataset && form.dataset.confirm && !confirm(form.dataset.confirm)) e.preventDefault();
});
document.body.addEventListener("htmx:afterSwap", () => {
  const el = document.querySelector("[data-focus-after-swap]");
  if (el) { el.removeAttribute("data-focus-after-swap"); el.focus(); }
});
