/* The fleet dashboards' charts and live feed.
 *
 * Charts: every <canvas data-chart="outcomes|latency" data-series="<id>"> is drawn with Chart.js
 * from the JSON in <script id="<id>">. htmx replaces that script with fresh data every few
 * seconds; after each swap the charts are updated in place (no flicker, no new chart).
 * Feed: the poller asks for calls newer than the top row, by the row's cursor (time|id).
 */
(function () {
  "use strict";
  const charts = new Map();
  const COLOURS = { allow: "#2e9d55", deny: "#c83737", escalate: "#d99a00", p95: "#417893", flagged: "#a11d1d" };

  function seriesOf(canvas) {
    const script = document.getElementById(canvas.dataset.series);
    return script ? JSON.parse(script.textContent) : null;
  }

  function config(kind, data) {
    const common = { responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false }, plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } };
    if (kind === "outcomes") {
      return { type: "bar", data: { labels: data.labels, datasets: [
        { label: "allow", data: data.allow, backgroundColor: COLOURS.allow, stack: "d" },
        { label: "escalate", data: data.escalate, backgroundColor: COLOURS.escalate, stack: "d" },
        { label: "deny", data: data.deny, backgroundColor: COLOURS.deny, stack: "d" },
      ] }, options: { ...common, scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } } };
    }
    return { type: "line", data: { labels: data.labels, datasets: [
      { label: "p95 latency (ms)", data: data.p95, borderColor: COLOURS.p95, backgroundColor: COLOURS.p95, spanGaps: true, pointRadius: 1, yAxisID: "y" },
      { label: "flagged calls", data: data.flagged, borderColor: COLOURS.flagged, backgroundColor: COLOURS.flagged, type: "bar", yAxisID: "y1" },
    ] }, options: { ...common, scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true, position: "left" },
      y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { precision: 0 } } } } };
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const data = seriesOf(canvas);
      if (!data) return;
      const existing = charts.get(canvas);
      if (!existing) {
        charts.set(canvas, new Chart(canvas, config(canvas.dataset.chart, data)));
        return;
      }
      const fresh = config(canvas.dataset.chart, data).data;
      existing.data.labels = fresh.labels;
      fresh.datasets.forEach(function (dataset, index) { existing.data.datasets[index].data = dataset.data; });
      existing.update("none");
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);

  // The feed's poller sends the cursor of the newest row it has (or the page's own when empty).
  document.addEventListener("htmx:configRequest", function (event) {
    const poller = event.detail.elt;
    if (poller.id !== "feed-poller") return;
    const top = document.querySelector("#feed-rows tr[data-cursor]");
    event.detail.parameters.after = top ? top.dataset.cursor : poller.dataset.cursor;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "feed-rows") return;
    const empty = document.getElementById("feed-empty");
    if (empty && event.detail.target.children.length) empty.remove();
    // Highlight what just arrived: rows the server rendered before the previous top row.
    event.detail.target.querySelectorAll("tr:not(.wd-seen)").forEach(function (row) { row.classList.add("wd-new"); });
    event.detail.target.querySelectorAll("tr").forEach(function (row) { row.classList.add("wd-seen"); });
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#feed-rows tr").forEach(function (row) { row.classList.add("wd-seen"); });
  });
})();
