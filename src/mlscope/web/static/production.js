// The Production view: one registered model's served version over a window (1h / 24h / 7d, kept in the
// URL): overall status and problems, traffic and latency, input and prediction drift vs the training
// reference, explanation drift, and live metrics per version next to the test metrics. Data only through
// textContent; Plotly gets escaped text.

import {api, el, guarded, path, plot} from "/static/common.js";

const root = document.querySelector("[data-production-view]");
const name = root.dataset.model;
const $ = (selector) => root.querySelector(selector);
const chart = (key) => $(`[data-chart="${key}"]`);
const REPORT_TIMEOUT_MS = 120000;  // the first report loads the served model and explains live rows
const STATUS_RANK = {alert: 0, watch: 1, ok: 2};
const TESTS = {ks: "Kolmogorov–Smirnov", chi2: "χ²"};
const STATUS_WORDS = {ok: "OK", watch: "Watch", alert: "Alert", no_data: "No data"};
const REFERENCE = "#9aa3ad";
const LIVE = "#2456a6";
const WORDS_SHOWN = 3;

let requested = 0;

// Plotly renders a small HTML subset in labels and hover text: escape data before it gets there.
function safe(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function cell(text, attributes = {}) {
  return el("td", attributes, text === undefined || text === null || text === "" ? "—" : text);
}

// Always `digits` decimals (common.js fmt writes whole numbers bare): columns of numbers line up.
function fixed(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : Number(value).toFixed(digits);
}

function pValue(p) {
  if (p === null || p === undefined) return "—";
  if (p === 0) return "< 1e-300";
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

function percent(share) {
  return share === null || share === undefined ? "—" : `${(100 * share).toFixed(1)}%`;
}

function milliseconds(value) {
  return value === null || value === undefined ? "—" : `${fixed(value, value < 10 ? 2 : 1)} ms`;
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function plural(count, noun) {
  return `${count.toLocaleString("en")} ${noun}${count === 1 ? "" : "s"}`;
}

function capitalised(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

function badge(status) {
  return el("span", {class: "status-badge", "data-status": status || "none"}, status ? status.replace("_", " ") : "—");
}

// ---- the window, kept in the URL ----

function currentWindow() {
  return new URLSearchParams(window.location.search).get("window") || root.dataset.window;
}

function reportUrl(windowText) {
  return `/api/models/${path(name, "production")}?window=${encodeURIComponent(windowText)}`;
}

function markWindow(windowText) {
  for (const button of root.querySelectorAll("[data-window-choice]")) {
    button.setAttribute("aria-pressed", String(button.dataset.windowChoice === windowText));
  }
  $("[data-json]").href = reportUrl(windowText);
}

function chooseWindow(windowText) {
  const url = new URL(window.location.href);
  url.searchParams.set("window", windowText);
  window.history.pushState({window: windowText}, "", url);
  refresh();
}

// ---- loading ----

async function load() {
  const windowText = currentWindow();
  const ticket = ++requested;
  markWindow(windowText);
  $("[data-loading]").hidden = false;
  root.setAttribute("aria-busy", "true");
  try {
    const report = await api(reportUrl(windowText), {timeout: REPORT_TIMEOUT_MS});
    if (ticket === requested) render(report);
  } catch (error) {
    if (ticket !== requested) return;  // a newer window's report is on its way
    $("[data-report]").hidden = true;  // no report of another window stays on screen under this one
    $("[data-status-banner]").hidden = true;
    throw error;
  } finally {
    if (ticket === requested) {
      $("[data-loading]").hidden = true;
      root.removeAttribute("aria-busy");
    }
  }
}

function refresh() {
  return guarded(load);
}

function render(report) {
  $("[data-report]").hidden = false;  // first: Plotly sizes a chart by its visible container
  renderHeader(report);
  renderStatus(report);
  renderTraffic(report.traffic);
  renderDrift(report);
  renderExplanation(report);
  renderVersions(report);
  // Nothing logged: the traffic section says so once, the sections that compare logged rows stay away.
  for (const section of ["drift", "explanation", "metrics"]) {
    $(`[data-${section}-section]`).hidden = report.traffic.predictions === 0;
  }
}

function renderHeader(report) {
  const served = report.served;
  $("[data-served]").textContent = served
    ? `serving v${served.version}${served.alias ? ` (@${served.alias})` : ""}${report.task ? ` · ${report.task}` : ""}`
    : "no version is served";
  $("[data-range]").textContent = `${when(report.since)} → ${when(report.until)}`;
}

// ---- status ----

function drifted(report, status) {
  const drift = report.drift;
  if (!drift) return [];
  const found = [...drift.features].sort(byStatus).filter((feature) => feature.status === status)
    .map((feature) => feature.feature);
  if (drift.prediction && drift.prediction.status === status) found.push("the prediction");
  if (drift.residuals && drift.residuals.status === status) found.push("the residuals");
  return found;
}

// No data: the problems below say why.
function statusDetail(report) {
  if (report.status === "no_data") return "";
  const alerts = drifted(report, "alert");
  const watches = drifted(report, "watch");
  const parts = [];
  if (alerts.length) parts.push(`drift in ${alerts.join(", ")}`);
  if (watches.length) parts.push(`watch ${watches.join(", ")}`);
  if (!parts.length) parts.push(report.drift ? "no drift against the training reference." : "no drift measured.");
  return parts.join("; ");
}

function renderStatus(report) {
  const banner = $("[data-status-banner]");
  banner.dataset.status = report.status;
  const detail = statusDetail(report);
  $("[data-status-text]").textContent = `${STATUS_WORDS[report.status] || report.status}${detail ? ":" : ""}`;
  $("[data-status-detail]").textContent = detail;
  const problems = $("[data-problems]");
  problems.replaceChildren(...report.problems.map((problem) => el("li", {}, capitalised(problem))));
  problems.hidden = report.problems.length === 0;
  banner.hidden = false;
}

// ---- traffic ----

function renderTraffic(traffic) {
  const empty = traffic.predictions === 0;
  $("[data-traffic-empty]").hidden = !empty;
  const node = chart("traffic");
  node.hidden = empty;
  $("[data-traffic-summary]").textContent = empty ? "" : [
    plural(traffic.predictions, "prediction"),
    plural(traffic.requests, "request"),
    `latency p50 ${milliseconds(traffic.latency_p50_ms)}`,
    `p99 ${milliseconds(traffic.latency_p99_ms)}`,
  ].join(" · ");
  if (empty) return;
  const starts = traffic.buckets.map((bucket) => bucket.start);
  plot(node, [
    {type: "bar", name: "predictions", x: starts, y: traffic.buckets.map((bucket) => bucket.predictions),
     marker: {color: LIVE}, hovertemplate: "%{y} predictions<extra></extra>"},
    {type: "scatter", mode: "lines+markers", name: "latency p50", x: starts, yaxis: "y2",
     y: traffic.buckets.map((bucket) => bucket.latency_p50_ms), line: {color: "#2e8b57"},
     hovertemplate: "p50 %{y:.2f} ms<extra></extra>"},
    {type: "scatter", mode: "lines+markers", name: "latency p99", x: starts, yaxis: "y2",
     y: traffic.buckets.map((bucket) => bucket.latency_p99_ms), line: {color: "#d6604d"},
     hovertemplate: "p99 %{y:.2f} ms<extra></extra>"},
  ], {
    height: 420, grid: {rows: 2, columns: 1},
    xaxis: {type: "date", anchor: "y2"},
    yaxis: {title: {text: "predictions"}, domain: [0.55, 1], rangemode: "tozero"},
    yaxis2: {title: {text: "latency (ms)"}, domain: [0, 0.42], rangemode: "tozero"},
    legend: {orientation: "h", y: 1.12}, margin: {l: 60, r: 20, t: 40, b: 40},
  });
}

// ---- drift ----

function byStatus(a, b) {
  return (STATUS_RANK[a.status] ?? 3) - (STATUS_RANK[b.status] ?? 3) || (b.psi ?? -1) - (a.psi ?? -1)
    || a.feature.localeCompare(b.feature);
}

function driftRow(item) {
  const row = el("tr", {"data-feature": item.feature, "data-status": item.status || "none"});
  row.append(
    el("th", {scope: "row"}, item.feature),
    cell(item.kind),
    cell(fixed(item.psi), {class: "num", "data-psi": ""}),
    cell(item.test ? TESTS[item.test] || item.test : null, {"data-test": item.test || ""}),
    cell(fixed(item.statistic), {class: "num"}),
    cell(pValue(item.p_value), {class: "num", "data-p-value": ""}),
    cell(fixed(item.wasserstein), {class: "num"}),
    cell(`${percent(item.missing_reference)} → ${percent(item.missing_live)}`, {"data-missing": ""}),
  );
  const status = el("td");
  status.append(badge(item.status));
  row.append(status);
  return row;
}

function versionEntry(report, version) {
  return report.versions.find((entry) => entry.version === version) || null;
}

// Why there is no drift table: nothing logged, or the served version's reference is missing.
function driftAbsence(report) {
  if (report.traffic.predictions === 0) return "Nothing to compare: no predictions logged in this window.";
  const version = report.served ? report.served.version : null;
  const entry = version ? versionEntry(report, version) : null;
  if (entry && entry.reference_problem) return capitalised(entry.reference_problem);
  const problems = report.problems.join(" ");
  return `Drift could not be computed${problems ? `: ${problems}` : "."}`;
}

function renderDrift(report) {
  const drift = report.drift;
  const empty = $("[data-drift-empty]");
  $("[data-drift-tables]").hidden = !drift;
  empty.hidden = Boolean(drift);
  if (!drift) {
    empty.textContent = driftAbsence(report);
    $("[data-drift-caption]").textContent = "";
    return;
  }
  $("[data-drift-caption]").textContent =
    `· v${drift.version}: ${plural(drift.rows, "live row")} vs ${plural(drift.reference_rows, "training row")}`;
  $("[data-drift-rows]").replaceChildren(...[...drift.features].sort(byStatus).map(driftRow));
  const none = el("tr");
  none.append(el("td", {colspan: 9, class: "muted"}, "The prediction's drift was not computed for this window."));
  // A regressor's residuals (actual − prediction on labelled rows vs its test split) under its output.
  const residuals = drift.residuals ? [driftRow(drift.residuals)] : [];
  $("[data-prediction-rows]").replaceChildren(drift.prediction ? driftRow(drift.prediction) : none, ...residuals);
  $("[data-residual-note]").hidden = !drift.residuals;
}

// ---- explanation drift ----

// How far a feature's importance moved, either way, on the SHAP scale: a big ratio of tiny values is no news.
function shift(feature) {
  return Math.abs((feature.live ?? 0) - (feature.reference ?? 0));
}

function renderExplanation(report) {
  const drift = report.explanation_drift;
  const empty = $("[data-explanation-empty]");
  const usable = drift && !drift.problem && drift.features.length > 0;
  $("[data-explanation-body]").hidden = !usable;
  empty.hidden = usable;
  if (!usable) {
    $("[data-explanation-caption]").textContent = "";
    empty.textContent = drift && drift.problem ? `Not computed for version ${drift.version}: ${drift.problem}`
      : report.traffic.predictions === 0 ? "Nothing to explain: no predictions logged in this window."
        : "Explanation drift was not computed for this window.";
    return;
  }
  $("[data-explanation-caption]").textContent =
    `· v${drift.version}: ${plural(drift.rows, "live row")} explained`
    + (drift.exact === true ? " exactly" : drift.exact === false ? " approximately (sampled Shapley values)" : "");
  const words = drift.features.filter((feature) => feature.words).sort((a, b) => shift(b) - shift(a))
    .slice(0, WORDS_SHOWN);
  $("[data-explanation-words]").replaceChildren(...words.map((feature) =>
    el("li", {"data-feature": feature.feature}, feature.words)));
  const features = [...drift.features].sort((a, b) =>
    Math.max(a.live ?? 0, a.reference ?? 0) - Math.max(b.live ?? 0, b.reference ?? 0));  // largest on top
  const labels = features.map((feature) => safe(feature.feature));
  plot(chart("explanation"), [
    {type: "bar", orientation: "h", name: "training reference", y: labels, x: features.map((f) => f.reference),
     marker: {color: REFERENCE}, hovertemplate: "%{y}: %{x:.4f} at training<extra></extra>"},
    {type: "bar", orientation: "h", name: "live", y: labels, x: features.map((f) => f.live),
     marker: {color: LIVE}, hovertemplate: "%{y}: %{x:.4f} live<extra></extra>"},
  ], {
    barmode: "group", height: 90 + 44 * features.length, margin: {l: 130, r: 20, t: 30, b: 45},
    xaxis: {title: {text: "mean |SHAP value|"}, rangemode: "tozero"}, yaxis: {automargin: true},
    legend: {orientation: "h", x: 0, y: 1, yanchor: "bottom", traceorder: "reversed"},
  });
}

// ---- live metrics per version ----

function metricRow(metric) {
  const row = el("tr", {"data-metric": metric.name});
  const interval = metric.low === null || metric.high === null ? "—" : `${fixed(metric.low)} – ${fixed(metric.high)}`;
  let verdict = "";
  if (metric.value !== null && metric.test_value !== null && metric.low !== null && metric.high !== null) {
    const worse = metric.higher_is_better ? metric.high < metric.test_value : metric.low > metric.test_value;
    const better = metric.higher_is_better ? metric.low > metric.test_value : metric.high < metric.test_value;
    verdict = worse ? "worse than at test" : better ? "better than at test" : "in line with test";
  }
  row.append(
    el("th", {scope: "row"}, `${metric.name} ${metric.higher_is_better ? "↑" : "↓"}`),
    cell(fixed(metric.value), {class: "num", "data-live": ""}),
    cell(interval, {class: "num", "data-interval": ""}),
    cell(fixed(metric.test_value), {class: "num", "data-test-value": ""}),
    cell(verdict, {"data-verdict": verdict.split(" ")[0]}),
  );
  return row;
}

function versionBlock(report, entry) {
  const block = el("section", {class: "version", "data-version": entry.version});
  const served = report.served && report.served.version === entry.version;
  const title = el("h3", {}, `v${entry.version}`);
  if (served) title.append(" ", el("span", {class: "badge"}, `@${report.served.alias || "served"}`));
  block.append(title, el("p", {class: "muted"},
    `${plural(entry.predictions, "prediction")} · ${entry.labelled.toLocaleString("en")} with feedback`
    + (entry.reference_rows ? ` · reference of ${plural(entry.reference_rows, "training row")}` : "")));
  if (entry.reference_problem) {
    block.append(el("p", {class: "note", "data-reference-problem": ""}, capitalised(entry.reference_problem)));
  }
  if (entry.labelled === 0 || entry.live_metrics.length === 0) {
    block.append(el("p", {class: "note", "data-no-feedback": ""}, entry.labelled === 0
      ? "No feedback yet: send the truth for its request ids to POST /feedback to see live metrics."
      : "The feedback received cannot be scored yet."));
    return block;
  }
  const head = el("tr");
  head.append(el("th", {}, "Metric"), el("th", {class: "num"}, "Live"), el("th", {class: "num"}, "95% CI"),
              el("th", {class: "num"}, "Test"), el("th", {}, "Live vs test"));
  const thead = el("thead");
  thead.append(head);
  const body = el("tbody");
  body.append(...entry.live_metrics.map(metricRow));
  const table = el("table", {class: "data metrics", "aria-label": `live metrics of v${entry.version}`});
  table.append(thead, body);
  block.append(table);
  return block;
}

function renderVersions(report) {
  const empty = $("[data-metrics-empty]");
  empty.hidden = report.versions.length > 0;
  empty.textContent = report.versions.length ? "" : "No version answered a prediction in this window.";
  $("[data-versions]").replaceChildren(...report.versions.map((entry) => versionBlock(report, entry)));
}

// ---- start ----

$("[data-window-picker]").addEventListener("click", (event) => {
  const button = event.target.closest("[data-window-choice]");
  if (button && button.dataset.windowChoice !== currentWindow()) chooseWindow(button.dataset.windowChoice);
});
window.addEventListener("popstate", refresh);
refresh();
