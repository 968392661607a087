// "Copy" buttons next to a secret shown once (data-copy: the id of the element holding it). Where
// the clipboard is not available (plain http), the text is selected for Ctrl+C instead.
document.addEventListener("click", (e) => {
  const b = e.target.closest("button.copy");
  if (!b) return;
  const el = document.getElementById(b.dataset.copy);
  (navigator.clipboard ? navigator.clipboard.writeText(el.textContent) : Promise.reject()).then(
    () => { b.textContent = "Copied"; },
    () => {
      const r = document.createRange(); r.selectNodeContents(el);
      getSelection().removeAllRanges(); getSelection().addRange(r);
      b.textContent = "Selected: press Ctrl+C";
    });
});
