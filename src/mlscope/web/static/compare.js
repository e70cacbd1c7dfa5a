// The compare view: 2..50 runs side by side from one /api/compare bundle: params (differences marked),
// metrics (best in bold), headline bars, parallel coordinates, a param/metric scatter, ROC curves,
// confusion matrices, fairness slices and, for exactly two runs, whether the difference is real.
import {api, el, fmt, formatDuration, formatTime, guarded, path, plot} from "/static/common.js";

const SLICE_METRICS = ["accuracy", "precision", "recall", "f1", "selection_rate"];
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const MAX_PARCOORDS_PARAMS = 10;
const SIGNIFICANCE_TIMEOUT_MS = 120000;
const NONE = "—";

// Plotly reads a few HTML tags in chart text; entities keep user text (run names, keys) literal.
function plotText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// Tick labels are already entity-escaped: cut before an entity, never inside one.
function shorten(text, length = 18) {
  if (text.length <= length) return text;
  const cut = text.slice(0, length);
  const entity = cut.lastIndexOf("&");
  return `${entity > cut.lastIndexOf(";") ? cut.slice(0, entity) : cut}…`;
}

function isNumeric(value) {
  return value !== null && value !== undefined && String(value).trim() !== "" && Number.isFinite(Number(value));
}

function note(parent, text) {
  parent.append(el("p", {class: "note"}, text));
}

function fillSelect(select, options, preferred) {
  const previous = select.value;
  select.replaceChildren(...options.map((option) => el("option", {value: option}, option)));
  const chosen = [previous, ...preferred].find((option) => option && options.includes(option));
  if (chosen) select.value = chosen;
}

// Categories of a non-numeric param as axis indices with tick labels.
function categorical(values) {
  const labels = values.map((value) => value ?? NONE);
  const rank = (label) => (label === NONE ? 0 : isNumeric(label) ? 1 : 2);
  const categories = [...new Set(labels)].sort((a, b) => rank(a) - rank(b)
    || (rank(a) === 1 ? Number(a) - Number(b) : a.localeCompare(b)));
  return {values: labels.map((label) => categories.indexOf(label)), tickvals: categories.map((_, i) => i),
          ticktext: categories.map((category) => shorten(plotText(category)))};
}

// Plotly's parcoords compiles its WebGL shaders with `new Function`, which a CSP without 'unsafe-eval'
// (this dashboard's) refuses; the view then draws the same axes as SVG lines.
const PARCOORDS_SUPPORTED = (() => {
  try {
    return new Function("return true")() === true;
  } catch {
    return false;
  }
})();
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
                 "#fde725"];

function viridis(share) {
  const position = Math.min(1, Math.max(0, share)) * (VIRIDIS.length - 1);
  const low = Math.floor(position);
  const high = Math.min(VIRIDIS.length - 1, low + 1);
  const rgb = (hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
  const [a, b] = [rgb(VIRIDIS[low]), rgb(VIRIDIS[high])];
  const mix = a.map((channel, i) => Math.round(channel + (b[i] - channel) * (position - low)));
  return `rgb(${mix.join(",")})`;
}

// Parallel coordinates as SVG: one vertical axis per dimension scaled to [0, 1], one line per run
// coloured by the last dimension (the metric).
function parallelLines(node, dimensions, names, metric) {
  const scales = dimensions.map((dimension) => {
    const domain = dimension.tickvals || dimension.values;
    const low = Math.min(...domain);
    const span = Math.max(...domain) - low;
    return (value) => (span ? (value - low) / span : 0.5);
  });
  const colours = dimensions[dimensions.length - 1].values;
  const colourScale = scales[scales.length - 1];
  const shown = (dimension, value) => (dimension.ticktext
    ? dimension.ticktext[dimension.tickvals.indexOf(value)] : fmt(value));
  const traces = names.map((name, run) => ({
    type: "scatter", mode: "lines+markers", name: plotText(name), showlegend: false,
    x: dimensions.map((_, axis) => axis), y: dimensions.map((dimension, axis) => scales[axis](dimension.values[run])),
    text: dimensions.map((dimension) => `${plotText(dimension.label)}: ${shown(dimension, dimension.values[run])}`),
    line: {color: viridis(colourScale(colours[run])), width: 2}, marker: {size: 6},
    hovertemplate: "%{text}<extra>%{fullData.name}</extra>",
  }));
  traces.push({type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,
               marker: {color: [Math.min(...colours), Math.max(...colours)], colorscale: "Viridis", showscale: true,
                        colorbar: {title: {text: plotText(metric)}}}});
  const annotations = dimensions.flatMap((dimension, axis) => {
    const ticks = dimension.tickvals
      ? dimension.tickvals.map((value, i) => [value, dimension.ticktext[i]])
      : [...new Set([Math.min(...dimension.values), Math.max(...dimension.values)])].map((v) => [v, fmt(v)]);
    return ticks.map(([value, text]) => ({x: axis, y: scales[axis](value), text: shorten(String(text)),
                                          showarrow: false, xanchor: "right", xshift: -4,
                                          font: {size: 10, color: "#556"}}));
  });
  plot(node, traces, {
    margin: {l: 90, r: 40, t: 60, b: 20}, annotations,
    shapes: dimensions.map((_, axis) => ({type: "line", x0: axis, x1: axis, y0: 0, y1: 1,
                                          line: {color: "#889", width: 1}})),
    xaxis: {tickvals: dimensions.map((_, axis) => axis), ticktext: dimensions.map((d) => plotText(d.label)),
            side: "top", showgrid: false, zeroline: false, range: [-0.5, dimensions.length - 0.5]},
    yaxis: {visible: false, range: [-0.05, 1.05]},
  });
}

class CompareView {
  constructor(root) {
    this.root = root;
    this.experiment = root.dataset.experiment;
    this.runIds = root.dataset.runs.split(",").filter(Boolean);
    this.find = (selector) => root.querySelector(selector);
    this.find("[data-back]").href = `/experiments/${path(this.experiment)}`;
    this.diffOnly = this.find("[data-diff-only]");
    this.diffOnly.addEventListener("change", () => this.applyDiffOnly());
    this.find("[data-parcoords-metric]").addEventListener("change", () => this.renderParcoords());
    for (const selector of ["[data-scatter-x]", "[data-scatter-y]"]) {
      this.find(selector).addEventListener("change", () => this.renderScatter());
    }
    this.find("[data-fairness-metric]").addEventListener("change", () => this.renderFairness());
    this.find("[data-significance-metric]").addEventListener("change", () => this.loadSignificance());
    this.significanceGeneration = 0;
    this.data = null;
  }

  async load() {
    this.data = await api(`/api/compare?runs=${encodeURIComponent(this.runIds.join(","))}`);
    this.index();
    this.renderRuns();
    this.renderParams();
    this.renderMetrics();
    this.fillSelects();
    this.renderBars();
    this.renderParcoords();
    this.renderScatter();
    this.renderRoc();
    this.renderConfusion();
    this.renderFairness();
    if (this.data.runs.length === 2) this.loadSignificance();
  }

  // Lookups the renderers share: run colours, unique labels, metric rows by key.
  index() {
    const {runs, metrics} = this.data;
    const counts = new Map();
    for (const run of runs) counts.set(run.name, (counts.get(run.name) || 0) + 1);
    this.labels = runs.map((run) => (counts.get(run.name) > 1 ? `${run.name} (${run.run_id.slice(0, 8)})` : run.name));
    this.colors = runs.map((_, i) => PALETTE[i % PALETTE.length]);
    this.metricByKey = new Map(metrics.map((row) => [row.key, row]));
    this.metricKeys = metrics.map((row) => row.key);
    this.defaultMetric = [...this.data.headline, ...this.metricKeys]  // the runs' task's headline first
      .find((key) => this.metricByKey.has(key));
  }

  renderRuns() {
    const {runs} = this.data;
    this.find("[data-count]").textContent = String(runs.length);
    const list = this.find("[data-run-list]");
    list.replaceChildren(...runs.map((run, i) => {
      const item = el("li");
      const swatch = el("span", {class: "swatch", "aria-hidden": "true"});
      swatch.style.background = this.colors[i];
      item.append(swatch, el("a", {href: run.link, "data-run-link": run.run_id}, run.name), " ",
                  el("span", {class: "badge"}, run.status));
      if (run.model_type) item.append(" ", el("span", {class: "muted"}, run.model_type));
      item.append(" ", el("span", {class: "muted"},
                          `${formatTime(run.start_time)} · ${formatDuration(run.start_time, run.end_time)}`));
      return item;
    }));
  }

  headerRow(first) {
    const row = el("tr");
    row.append(el("th", {scope: "col"}, first));
    this.data.runs.forEach((run, i) => {
      const cell = el("th", {scope: "col", title: run.run_id});
      const swatch = el("span", {class: "swatch", "aria-hidden": "true"});
      swatch.style.background = this.colors[i];
      cell.append(swatch, el("a", {href: run.link}, run.name));
      row.append(cell);
    });
    const head = el("thead");
    head.append(row);
    return head;
  }

  renderParams() {
    const {params} = this.data;
    const table = this.find("[data-params]");
    const body = el("tbody");
    for (const param of params) {
      const row = el("tr", {"data-key": param.key, class: param.differs ? "differs" : null});
      row.append(el("th", {scope: "row"}, param.key));
      for (const value of param.values) {
        row.append(value === null ? el("td", {class: "muted"}, NONE) : el("td", {}, value));
      }
      body.append(row);
    }
    table.replaceChildren(this.headerRow("param"), body);
    const differing = params.filter((param) => param.differs).length;
    this.find("[data-diff-count]").textContent = params.length
      ? `${differing} of ${params.length} params differ` : "These runs have no params.";
    this.applyDiffOnly();
  }

  applyDiffOnly() {
    const only = this.diffOnly.checked;
    for (const row of this.root.querySelectorAll("[data-params] tbody tr")) {
      row.hidden = only && !row.classList.contains("differs");
    }
  }

  renderMetrics() {
    const {metrics, headline, runs} = this.data;
    const ordered = [...headline.map((key) => this.metricByKey.get(key)),
                     ...metrics.filter((row) => !headline.includes(row.key))];
    const body = el("tbody");
    for (const metric of ordered) {
      const row = el("tr", {"data-key": metric.key});
      const name = el("th", {scope: "row"}, metric.key);
      name.append(el("span", {class: "muted direction"}, metric.direction === "min" ? " ↓" : " ↑"));
      name.title = metric.direction === "min" ? "lower is better" : "higher is better";
      row.append(name);
      metric.values.forEach((value, i) => {
        const best = metric.best.includes(runs[i].run_id);
        const cell = el("td", {class: best ? "num best" : "num"});
        if (best) cell.append(el("strong", {}, fmt(value)));
        else cell.textContent = fmt(value);
        row.append(cell);
      });
      body.append(row);
    }
    this.find("[data-metrics]").replaceChildren(this.headerRow("metric"), body);
    if (!metrics.length) note(this.find("[data-metrics]").parentNode, "These runs have no metrics.");
  }

  fillSelects() {
    const preferred = [this.defaultMetric];
    fillSelect(this.find("[data-parcoords-metric]"), this.metricKeys, preferred);
    fillSelect(this.find("[data-scatter-y]"), this.metricKeys, preferred);
    fillSelect(this.find("[data-significance-metric]"), this.metricKeys, preferred);
    const {params} = this.data;
    const ranked = this.rankedParams();
    const complete = ranked.filter((param) => param.values.every(isNumeric));
    fillSelect(this.find("[data-scatter-x]"), params.map((param) => param.key),
               [complete[0]?.key, ranked.find((param) => param.key === "model_type")?.key, ranked[0]?.key,
                params[0]?.key]);
    fillSelect(this.find("[data-fairness-metric]"), this.sliceMetrics(), [...this.data.headline, "accuracy"]);
  }

  renderBars() {
    const node = this.find("[data-chart-bars]");
    const {headline, runs} = this.data;
    if (!headline.length) {
      this.emptyChart(node, this.find("[data-bars-note]"), "None of the headline metrics (accuracy, precision, "
                      + "recall, f1, roc_auc, log_loss) is in these runs.");
      return;
    }
    this.showChart(node, this.find("[data-bars-note]"));
    const traces = runs.map((run, i) => ({
      type: "bar", name: plotText(this.labels[i]), x: headline,
      y: headline.map((key) => this.metricByKey.get(key).values[i]), marker: {color: this.colors[i]},
      hovertemplate: "%{x}: %{y:.4f}<extra>%{fullData.name}</extra>",
    }));
    plot(node, traces, {barmode: "group", yaxis: {title: {text: "value"}}, legend: {orientation: "h", y: -0.15}});
  }

  async renderParcoords() {
    const node = this.find("[data-chart-parcoords]");
    const noteNode = this.find("[data-parcoords-note]");
    const metric = this.find("[data-parcoords-metric]").value;
    const row = this.metricByKey.get(metric);
    if (!row) {
      this.emptyChart(node, noteNode, "These runs have no metrics to colour the lines by.");
      return;
    }
    const kept = row.values.map((_, i) => i).filter((i) => row.values[i] !== null);
    if (!kept.length) {
      this.emptyChart(node, noteNode, `No run has a value for ${metric}.`);
      return;
    }
    const notes = [];
    const lacking = this.data.runs.filter((_, i) => row.values[i] === null).map((run) => `'${run.name}'`);
    if (lacking.length) notes.push(`Left out (no ${metric}): ${lacking.join(", ")}.`);
    const differing = this.rankedParams();
    if (!differing.length) notes.push("No params differ between these runs.");
    if (differing.length > MAX_PARCOORDS_PARAMS) {
      notes.push(`Showing ${MAX_PARCOORDS_PARAMS} of the ${differing.length} differing params (those most runs have).`);
    }
    this.showChart(node, noteNode, notes.join(" "));
    const dimensions = differing.slice(0, MAX_PARCOORDS_PARAMS).map((param) => {
      const values = kept.map((i) => param.values[i]);
      if (values.every(isNumeric)) return {label: param.key, values: values.map(Number)};
      return {label: param.key, ...categorical(values)};
    });
    const colours = kept.map((i) => row.values[i]);
    dimensions.push({label: metric, values: colours});
    if (PARCOORDS_SUPPORTED && this.parcoordsWorks !== false) {
      node.dataset.mode = "parcoords";
      await plot(node, [{type: "parcoords", dimensions: dimensions.map((d) => ({...d, label: plotText(d.label)})),
                         line: {color: colours, colorscale: "Viridis", showscale: true,
                                colorbar: {title: {text: plotText(metric)}}}}],
                 {margin: {l: 90, r: 90, t: 60, b: 30}});
      // Plotly leaves a "WebGL is not supported" notice when it cannot start WebGL.
      if (!node.querySelector(".no-webgl")) return;
      this.parcoordsWorks = false;
      window.Plotly.purge(node);
      node.replaceChildren();
    }
    node.dataset.mode = "lines";
    parallelLines(node, dimensions, kept.map((i) => this.labels[i]), metric);
  }

  // Differing params, those whose present values differ and that most runs have first.
  rankedParams() {
    const score = (param) => {
      const present = param.values.filter((value) => value !== null);
      return [new Set(present).size > 1 ? 1 : 0, present.length, present.every(isNumeric) ? 1 : 0];
    };
    const scored = this.data.params.filter((param) => param.differs).map((param) => [score(param), param]);
    scored.sort(([a, p], [b, q]) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2] || p.key.localeCompare(q.key));
    return scored.map(([, param]) => param);
  }

  renderScatter() {
    const node = this.find("[data-chart-scatter]");
    const noteNode = this.find("[data-scatter-note]");
    const key = this.find("[data-scatter-x]").value;
    const metric = this.find("[data-scatter-y]").value;
    const param = this.data.params.find((p) => p.key === key);
    const row = this.metricByKey.get(metric);
    if (!param || !row) {
      this.emptyChart(node, noteNode, param ? "These runs have no metrics." : "These runs have no params.");
      return;
    }
    const kept = this.data.runs.map((_, i) => i).filter((i) => param.values[i] !== null && row.values[i] !== null);
    const lacking = this.data.runs.filter((_, i) => !kept.includes(i)).map((run) => `'${run.name}'`);
    if (!kept.length) {
      this.emptyChart(node, noteNode, `No run has both ${key} and ${metric}.`);
      return;
    }
    this.showChart(node, noteNode,
                   lacking.length ? `Left out (no ${key} or no ${metric}): ${lacking.join(", ")}.` : "");
    const numeric = kept.every((i) => isNumeric(param.values[i]));
    const categories = new Set(kept.map((i) => param.values[i])).size;
    plot(node, [{
      type: "scatter", mode: "markers+text", textposition: "top center", cliponaxis: false,
      x: kept.map((i) => (numeric ? Number(param.values[i]) : plotText(param.values[i]))),
      y: kept.map((i) => row.values[i]), text: kept.map((i) => plotText(this.labels[i])),
      marker: {size: 12, color: kept.map((i) => this.colors[i])},
      hovertemplate: "%{text}<br>%{x}<br>%{y:.4f}<extra></extra>",
    }], {xaxis: {title: {text: plotText(key)}, type: numeric ? "linear" : "category",
                 ...(numeric ? {} : {range: [-0.5, categories - 0.5]})},
         yaxis: {title: {text: plotText(metric)}}, showlegend: false});
  }

  renderRoc() {
    const node = this.find("[data-chart-roc]");
    const notes = this.find("[data-roc-notes]");
    notes.replaceChildren();
    const traces = [];
    const regression = this.data.task === "regression";
    this.find("[data-roc-section]").hidden = regression;
    this.find("[data-confusion-section]").hidden = regression;
    this.find("[data-regression-note]").hidden = !regression;
    if (regression) return;
    const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
    this.data.runs.forEach((run, i) => {
      const curve = this.data.roc[run.run_id];
      const classes = (this.data.roc_by_class || {})[run.run_id];
      if (curve.missing && classes) {  // multiclass: one-vs-rest, a dash style per class
        Object.entries(classes).forEach(([label, one], k) => {
          traces.push({type: "scatter", mode: "lines", x: one.fpr, y: one.tpr,
                       line: {color: this.colors[i], dash: DASHES[k % DASHES.length]},
                       name: plotText(`${this.labels[i]}: ${label} vs rest (AUC ${fmt(one.auc, 3)})`)});
        });
        return;
      }
      if (curve.missing) {
        note(notes, `No ROC curve: ${curve.missing}.`);
        return;
      }
      const auc = curve.auc ?? this.metricByKey.get("roc_auc")?.values[i];
      traces.push({type: "scatter", mode: "lines", x: curve.fpr, y: curve.tpr, line: {color: this.colors[i]},
                   name: plotText(`${this.labels[i]} (AUC ${fmt(auc, 3)})`)});
    });
    if (!traces.length) {
      window.Plotly.purge(node);
      node.hidden = true;
      return;
    }
    node.hidden = false;
    traces.push({type: "scatter", mode: "lines", x: [0, 1], y: [0, 1], name: "chance", hoverinfo: "skip",
                 line: {dash: "dash", color: "#aaa", width: 1}});
    plot(node, traces, {xaxis: {title: {text: "false positive rate"}, range: [0, 1]},
                        yaxis: {title: {text: "true positive rate"}, range: [0, 1.02]}});
  }

  renderConfusion() {
    const root = this.find("[data-confusion]");
    root.replaceChildren(...this.data.runs.map((run, i) => {
      const card = el("figure", {class: "confusion", "data-run": run.run_id});
      const caption = el("figcaption");
      const swatch = el("span", {class: "swatch", "aria-hidden": "true"});
      swatch.style.background = this.colors[i];
      caption.append(swatch, this.labels[i]);
      card.append(caption);
      const found = this.data.confusion[run.run_id];
      if (found.missing) {
        note(card, `No confusion matrix: ${found.missing}.`);
        return card;
      }
      card.append(this.confusionTable(found));
      return card;
    }));
  }

  confusionTable({labels, matrix}) {
    const largest = Math.max(1, ...matrix.flat());
    const head = el("tr");
    head.append(el("th", {scope: "col", class: "muted"}, "true \\ predicted"),
                ...labels.map((label) => el("th", {scope: "col"}, label)));
    const body = el("tbody");
    matrix.forEach((counts, r) => {
      const row = el("tr");
      row.append(el("th", {scope: "row"}, labels[r]));
      counts.forEach((count, c) => {
        const cell = el("td", {class: r === c ? "num hit" : "num miss"}, String(count));
        cell.style.setProperty("--share", (count / largest).toFixed(3));
        row.append(cell);
      });
      body.append(row);
    });
    const table = el("table", {class: "data confusion-table"});
    table.append(el("thead"), body);
    table.tHead.append(head);
    return table;
  }

  renderFairness() {
    const root = this.find("[data-fairness]");
    for (const chart of root.querySelectorAll(".js-plotly-plot")) window.Plotly.purge(chart);
    root.replaceChildren();
    const metric = this.find("[data-fairness-metric]").value;
    const {runs, fairness} = this.data;
    const having = runs.map((_, i) => i).filter((i) => !fairness[runs[i].run_id].missing);
    for (const run of runs) {
      const found = fairness[run.run_id];
      if (found.missing) note(root, `No fairness slices: ${found.missing}.`);
    }
    const columns = [...new Set(having.flatMap((i) => Object.keys(fairness[runs[i].run_id].columns)))];
    for (const column of columns) {
      const section = el("div", {class: "fairness-column", "data-column": column});
      section.append(el("h3", {}, `By ${column}`));
      const holders = having.filter((i) => fairness[runs[i].run_id].columns[column]);
      const groups = [...new Set(holders.flatMap((i) => Object.keys(fairness[runs[i].run_id].columns[column].groups)))];
      const chart = el("div", {class: "chart small"});
      section.append(chart, this.parityTable(column, holders));
      root.append(section);
      plot(chart, holders.map((i) => {
        const slices = fairness[runs[i].run_id].columns[column].groups;
        return {type: "bar", name: plotText(this.labels[i]), x: groups.map(plotText),
                y: groups.map((group) => slices[group]?.[metric] ?? null), marker: {color: this.colors[i]},
                customdata: groups.map((group) => slices[group]?.count ?? null),
                hovertemplate: "%{x}: %{y:.4f} (n = %{customdata})<extra>%{fullData.name}</extra>"};
      }), {barmode: "group", height: 280, xaxis: {type: "category", title: {text: plotText(column)}},
           yaxis: {title: {text: metric}}, legend: {orientation: "h", y: -0.25}});
    }
  }

  // The metrics the runs' slices hold (binary: accuracy, precision ...; regression: mae, rmse, mean_residual)
  sliceMetrics() {
    const {runs, fairness} = this.data;
    const found = new Set();
    for (const run of runs) {
      const columns = fairness[run.run_id].missing ? {} : fairness[run.run_id].columns;
      for (const column of Object.values(columns)) {
        for (const slice of Object.values(column.groups)) {
          for (const key of Object.keys(slice)) if (key !== "count") found.add(key);
        }
      }
    }
    return found.size ? [...found] : SLICE_METRICS;
  }

  parityTable(column, holders) {
    const {runs, fairness} = this.data;
    const table = el("table", {class: "data parity"});
    const names = [...new Set(holders.flatMap((i) => Object.keys(fairness[runs[i].run_id].columns[column].differences)))];
    const head = el("tr");
    head.append(el("th", {scope: "col"}, "run"),
                ...names.map((name) => el("th", {scope: "col"}, name.replaceAll("_", " "))));
    const body = el("tbody");
    for (const i of holders) {
      const differences = fairness[runs[i].run_id].columns[column].differences;
      const row = el("tr");
      row.append(el("th", {scope: "row"}, this.labels[i]),
                 ...names.map((name) => el("td", {class: "num"}, fmt(differences[name]))));
      body.append(row);
    }
    table.append(el("thead"), body);
    table.tHead.append(head);
    return table;
  }

  async loadSignificance() {
    const section = this.find("[data-significance]");
    const verdict = this.find("[data-significance-verdict]");
    const tests = this.find("[data-significance-tests]");
    const metric = this.find("[data-significance-metric]").value;  // none chosen: the runs' task's headline
    const [a, b] = this.data.runs.map((run) => run.run_id);
    const generation = ++this.significanceGeneration;
    section.hidden = false;
    verdict.className = "verdict";
    verdict.textContent = `Testing ${metric || "the task's headline metric"}…`;
    tests.replaceChildren();
    const query = new URLSearchParams(metric ? {a, b, metric} : {a, b});
    try {
      const result = await api(`/api/compare/significance?${query}`, {timeout: SIGNIFICANCE_TIMEOUT_MS});
      if (generation !== this.significanceGeneration) return;
      verdict.textContent = result.verdict;
      verdict.classList.add(result.significant === true ? "significant"
        : result.significant === false ? "not-significant" : "undecided");
      tests.replaceChildren(...(result.tests || []).map((test) => {
        const item = el("li", {"data-test": test.key, class: test.available ? null : "unavailable"});
        item.append(el("strong", {}, test.title), ": ",
                    test.available ? (test.summary || "") : `not available: ${test.reason || "no reason given"}`);
        return item;
      }));
    } catch (error) {
      if (generation !== this.significanceGeneration) return;
      verdict.classList.add("error");
      verdict.textContent = `Could not test whether the difference is real: ${error.message}`;
    }
  }

  // A chart with nothing to draw is hidden and its note says why.
  emptyChart(node, noteNode, message) {
    window.Plotly.purge(node);
    node.hidden = true;
    noteNode.textContent = message;
    noteNode.hidden = false;
  }

  showChart(node, noteNode, message = "") {
    node.hidden = false;
    noteNode.textContent = message;
    noteNode.hidden = !message;
  }
}

const root = document.querySelector("[data-compare-view]");
if (root) {
  const view = new CompareView(root);
  guarded(() => view.load());
}
