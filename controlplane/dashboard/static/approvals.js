// The approval queue: a countdown to each request's expiry; a/d decide the focused request. The
// decided card keeps the focus when htmx swaps it in, and so does a focused card when a live
// refresh swaps the whole queue (where it is still listed).
setInterval(() => document.querySelectorAll("time[data-countdown]").forEach((t) => {
  const s = Math.round((Date.parse(t.getAttribute("datetime")) - Date.now()) / 1000);
  t.textContent = s > 0 ? `in ${Math.floor(s / 60)} min ${s % 60} s` : "now (expired: counts as denied)";
}), 1000);
document.addEventListener("keydown", (e) => {
  if (e.target.matches("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  const card = e.target.closest && e.target.closest("li.approval");
  const button = card && card.querySelector(`button[data-key="${e.key}"]`);
  if (button) { e.preventDefault(); button.click(); }
});
let focused = null;  // the id of the card that had the focus when a swap began
document.body.addEventListener("htmx:beforeSwap", () => {
  const el = document.activeElement;
  focused = el && el.matches && el.matches("li.approval") ? el.id : null;
});
document.body.addEventListener("htmx:afterSwap", (e) => {
  const id = e.detail.target.id;
  const el = document.getElementById(id && id.startsWith("approval-") ? id : focused);
  if (el && document.activeElement !== el) el.focus();
});
