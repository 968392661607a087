// Node page charts (uPlot, vendored). Data: the page's series endpoint (mean per point, from raw
// samples or per-minute rollups). A node.metrics event for this node refetches the data (at most
// every 2 s) and the charts move without a reload.
(function () {
  const box = document.getElementById("charts");
  if (!box || typeof uPlot === "undefined") return;
  const plots = {};
  let range = [null, null];  // the chosen window, so one point does not stretch the axis to years
  function size(el) { return { width: Math.max(280, el.clientWidth || 600), height: 200 }; }
  function draw(data) {
    range = [data.since, data.until];
    box.dataset.points = Object.values(data).reduce((n, s) => n + (Array.isArray(s) ? s[0].length : 0), 0);
    box.querySelectorAll(".chart").forEach((el) => {
      const metric = el.dataset.metric;
      const series = data[metric] || [[], []];
      if (plots[metric]) { el.dataset.empty = series[0].length ? "" : "1"; plots[metric].setData(series); return; }
      el.dataset.empty = series[0].length ? "" : "1";
      el.textContent = "";
      plots[metric] = new uPlot({
        ...size(el),
        scales: { x: { time: true, range: (u, min, max) => (range[0] ? range : [min, max]) } },
        series: [{}, { label: metric, stroke: getComputedStyle(document.body).getPropertyValue("--accent") || "#1f5fbf", width: 2 }],
        axes: [{ stroke: "currentColor" }, { stroke: "currentColor" }],
      }, series, el);
    });
  }
  let busy = false, again = false;
  function load() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(box.dataset.series, { credentials: "same-origin" })
      .then((r) => r.json()).then(draw).catch(() => {})
      .finally(() => { setTimeout(() => { busy = false; if (again) { again = false; load(); } }, 2000); });
  }
  document.addEventListener("fleet-event", (e) => {
    if (e.detail.node === box.dataset.node && e.detail.event === "node.metrics") load();
  });
  window.addEventListener("resize", () => Object.values(plots).forEach((p) => p.setSize(size(p.root.parentNode))));
  load();
})();
