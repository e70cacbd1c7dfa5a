// The explain view: a run's stored SHAP explanation (global importance, beeswarm, dependence), one row's
// waterfall with a live what-if form, and a comparison with another run. Data only through textContent.
// Wide tables: the server sends the top features and one "other N features" entry; here the dependence
// picker gets a search box and the what-if form a "more features" group with a filter. Every value says
// whether it is exact or carries a standard error (±SE).

import {ApiError, api, el, fmt, guarded, mutate, path, plot} from "/static/common.js";

const root = document.querySelector("[data-explain-view]");
const runId = root.dataset.runId;
const base = `/api/${path("runs", runId, "explanation")}`;
// A multiclass run is explained one class at a time: the class comes from ?class= (default: the server's pick).
const requestedClass = new URLSearchParams(window.location.search).get("class");
const $ = (selector) => root.querySelector(selector);
const chart = (name) => $(`[data-chart="${name}"]`);
const DEBOUNCE_MS = 150;
const POSITIVE = "#d6604d";
const NEGATIVE = "#4393c3";
const COLOURS = [[0, "#3b6ea8"], [0.5, "#d9d9d9"], [1, "#c0392b"]];
const OTHER = "#9aa3ad";
const TOP = 20;  // views.TOP_FEATURES: more than TOP + 1 features and the view groups them

const state = {view: null, label: "class 1", timer: null, requested: 0, applied: 0, current: null, dependence: 0,
               dependenceFeature: null, rowClass: null};

// Plotly renders a small HTML subset in labels and hover text: escape data before it gets there.
function safe(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function show(value) {
  if (value === null || value === undefined) return "missing";
  return typeof value === "number" ? fmt(value, 2) : String(value);
}

function signed(value) {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(3)}`;
}

function hasError(se) {
  return se !== null && se !== undefined;
}

// "± 0.0012" for a value with a standard error, "exact" for an exact one.
function uncertainty(se, exact) {
  if (hasError(se)) return `± ${Number(se.toPrecision(2))}`;
  return exact ? "exact" : "approximate";
}

function wide(count) {
  return count > TOP + 1;
}

function rowLabel(row) {
  return row.name ? `${row.name} (#${row.row_id})` : `#${row.row_id}`;
}

// Colour of each value in [0, 1]: numbers between their 5th and 95th percentile, text by first appearance.
// The colour bar's ticks: categories by name, numbers as low/high.
function colourTicks(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (!present.length || present.every((v) => typeof v === "number")) {
    return {tickvals: [0, 1], ticktext: ["low", "high"]};
  }
  const names = [...new Set(present.map(String))];
  const top = Math.max(names.length - 1, 1);
  return {tickvals: names.map((_, i) => i / top), ticktext: names.map(safe)};
}

function normalise(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length && present.every((v) => typeof v === "number")) {
    const sorted = [...present].sort((a, b) => a - b);
    const low = sorted[Math.floor(0.05 * (sorted.length - 1))];
    const high = sorted[Math.ceil(0.95 * (sorted.length - 1))];
    const span = high - low || 1;
    return values.map((v) => (v === null || v === undefined ? null : Math.min(1, Math.max(0, (v - low) / span))));
  }
  const codes = new Map();
  for (const v of present) if (!codes.has(String(v))) codes.set(String(v), codes.size);
  const top = Math.max(codes.size - 1, 1);
  return values.map((v) => (v === null || v === undefined ? null : codes.get(String(v)) / top));
}

// Deterministic jitter, so a redraw does not move the dots.
function jitter(count, seed) {
  let x = seed * 2654435761 % 4294967296 || 1;
  return Array.from({length: count}, () => {
    x = (1664525 * x + 1013904223) % 4294967296;
    return (x / 4294967296 - 0.5) * 0.6;
  });
}

function header(view) {
  $("[data-run-name]").textContent = view.run_name;
  document.title = `Explain ${view.run_name} · mlscope`;
  const experiment = $("[data-experiment]");
  experiment.replaceChildren();
  if (view.experiment) {
    experiment.append(" · experiment ");
    experiment.append(el("a", {href: `/experiments/${path(view.experiment)}`}, view.experiment));
  }
  if (view.model_type) experiment.append(` · ${view.model_type}`);
}

function metadataLine(meta) {
  const of = meta.model_output ? ` of the ${meta.model_output}` : "";
  let kind = `exact Shapley values${of}`;
  if (!meta.exact) {
    kind = hasError(meta.max_standard_error)
      ? `approximate Shapley values${of}, ±SE per value (largest SE ${Number(meta.max_standard_error.toPrecision(2))})`
      : `APPROXIMATE Shapley values${of} (sampling; no standard errors recorded)`;
  }
  const parts = [
    kind,
    `background ${meta.background_size} rows${meta.background_seed !== null ? ` (seed ${meta.background_seed})` : ""}`,
    `additivity error ${meta.additivity_error.toExponential(1)}`,
    `${meta.rows} rows × ${meta.features} features`,
    meta.data_source,
  ];
  if (meta.created) parts.push(`computed ${meta.created}`);
  $("[data-meta]").textContent = parts.join(" · ");
}

function drawImportance(items, exact, total) {
  const ordered = [...items].reverse();
  const bars = {
    type: "bar", orientation: "h", x: ordered.map((i) => i.mean_abs_shap), y: ordered.map((i) => safe(i.feature)),
    marker: {color: ordered.map((i) => (i.other ? OTHER : "#3b6ea8"))}, textposition: "none",
    text: ordered.map((i) => `${i.mean_abs_shap.toFixed(4)} ${uncertainty(i.standard_error, exact)}` +
                              (i.other ? " (sum of their mean |SHAP|)" : "")),
    hovertemplate: "%{y}: %{text}<extra></extra>",
  };
  const errors = ordered.every((i) => hasError(i.standard_error));
  if (errors) bars.error_x = {type: "data", array: ordered.map((i) => i.standard_error), thickness: 1, color: "#333"};
  plot(chart("importance"), [bars], {height: 60 + 28 * items.length, margin: {l: 125, r: 20, t: 10, b: 40},
                                     xaxis: {title: {text: "mean |SHAP value|"}, zeroline: true}});
  const other = items.find((i) => i.other);
  const notes = [];
  if (other) notes.push(`top ${items.length - 1} of ${total} features; the other ${other.other} summed into one grey bar`);
  notes.push(exact ? "exact values" : errors ? "error bars: bound on the standard error of mean |SHAP| " +
                                               "(the mean of the per-row standard errors; summed for the grey bar)"
                                             : "approximate values, no standard errors recorded");
  $("[data-importance-note]").textContent = notes.join(" · ");
}

function drawBeeswarm(beeswarm) {
  const n = beeswarm.features.length;
  const x = [], y = [], colour = [], text = [], mx = [], my = [], mtext = [];
  beeswarm.features.forEach((feature, i) => {
    const position = n - 1 - i;
    const scaled = normalise(feature.values);
    const shift = jitter(feature.shap.length, i + 1);
    const errors = feature.standard_errors;
    feature.shap.forEach((phi, k) => {
      const what = feature.other ? `${safe(feature.feature)} (their summed contribution)`
                                 : `${safe(feature.feature)} = ${safe(show(feature.values[k]))}`;
      const hover = `${what}<br>SHAP ${signed(phi)} ${uncertainty(errors ? errors[k] : null, state.view.metadata.exact)}` +
        `<br>row ${safe(beeswarm.row_ids[k])}`;
      if (scaled[k] === null) {
        mx.push(phi); my.push(position + shift[k]); mtext.push(hover);
      } else {
        x.push(phi); y.push(position + shift[k]); colour.push(scaled[k]); text.push(hover);
      }
    });
  });
  plot(chart("beeswarm"), [
    {type: "scatter", mode: "markers", x, y, text, hoverinfo: "text", name: "value",
     marker: {size: 5, color: colour, colorscale: COLOURS, cmin: 0, cmax: 1, opacity: 0.8,
              colorbar: {title: {text: "feature value"}, tickvals: [0, 1], ticktext: ["low", "high"], thickness: 10}}},
    {type: "scatter", mode: "markers", x: mx, y: my, text: mtext, hoverinfo: "text", name: "missing",
     marker: {size: 5, color: "#999", opacity: 0.6}},
  ], {height: 80 + 42 * n, showlegend: false, margin: {l: 120, r: 20, t: 10, b: 40},
      xaxis: {title: {text: "SHAP value (effect on the probability)"}, zeroline: true, zerolinecolor: "#888"},
      yaxis: {tickvals: beeswarm.features.map((_, i) => n - 1 - i),
              ticktext: beeswarm.features.map((f) => safe(f.feature)), range: [-0.6, n - 0.4]}});
}

async function drawDependence(feature) {
  const number = ++state.dependence;
  const data = await api(withClass(`${base}/dependence?feature=${encodeURIComponent(feature)}`));
  if (number !== state.dependence) return;  // a later pick is on its way
  state.dependenceFeature = feature;
  const exact = state.view.metadata.exact;
  const errors = data.standard_errors;
  const scaled = data.colour_feature ? normalise(data.colour_values) : null;
  const shown = data.values.map((v) => v !== null);
  const pick = (list) => list.filter((_, k) => shown[k]);
  const hover = data.values.map((v, k) => `${safe(feature)} = ${safe(show(v))}<br>SHAP ${signed(data.shap[k])} ` +
    uncertainty(errors ? errors[k] : null, exact) +
    (data.colour_feature ? `<br>${safe(data.colour_feature)} = ${safe(show(data.colour_values[k]))}` : "") +
    `<br>row ${safe(data.row_ids[k])}`);
  const categorical = data.values.some((v) => v !== null && typeof v !== "number");
  // Categories sit at 0, 1, 2, … with a little jitter, so their dots do not hide each other.
  const categories = categorical ? [...new Set(pick(data.values).map(String))] : [];
  const spread = jitter(data.values.length, 7);
  const x = categorical ? data.values.map((v, k) => categories.indexOf(String(v)) + spread[k]) : data.values;
  const points = {
    type: "scatter", mode: "markers", x: pick(x), y: pick(data.shap), text: pick(hover), hoverinfo: "text",
    marker: scaled ? {size: 7, color: pick(scaled).map((c) => (c === null ? 0.5 : c)), colorscale: COLOURS,
                      cmin: 0, cmax: 1, colorbar: {title: {text: safe(data.colour_feature)}, thickness: 10,
                                                   ...colourTicks(data.colour_values)}}
                   : {size: 7, color: "#3b6ea8"},
  };
  if (errors) points.error_y = {type: "data", array: pick(errors), thickness: 1, width: 0, color: "#999"};
  plot(chart("dependence"), [points], {height: 360,
       xaxis: categorical ? {title: {text: safe(feature)}, tickvals: categories.map((_, i) => i),
                             ticktext: categories.map(safe), zeroline: false}
                          : {title: {text: safe(feature)}},
       yaxis: {title: {text: `SHAP value of ${safe(feature)}`}, zeroline: true, zerolinecolor: "#888"}});
  const missing = shown.filter((s) => !s).length;
  $("[data-dependence-note]").textContent = [
    data.colour_feature ? `colour: ${data.colour_feature} (the feature it interacts with most)` : "",
    missing ? `${missing} row(s) with a missing value not drawn` : "",
    exact ? "exact values" : errors ? "bars: ±1 standard error" : "approximate values",
  ].filter(Boolean).join(" · ");
}

// The picker lists every feature, most important first; wide tables get a search box that narrows it.
function setupDependence(view) {
  const select = $("select[data-dependence-feature]");
  const search = $("[data-dependence-search]");
  const names = view.feature_order.length ? view.feature_order : view.global.map((g) => g.feature);
  const options = (list) => list.map((name) => el("option", {value: name}, name));
  select.replaceChildren(...options(names));
  select.onchange = () => guarded(() => drawDependence(select.value));
  search.value = "";
  $("[data-dependence-filter]").hidden = !wide(names.length);
  $("[data-dependence-count]").textContent = "";
  search.oninput = () => {
    const needle = search.value.trim().toLowerCase();
    const found = names.filter((name) => name.toLowerCase().includes(needle));
    select.replaceChildren(...options(found));
    $("[data-dependence-count]").textContent = needle ? `${found.length} of ${names.length} features match` : "";
    if (found.includes(state.dependenceFeature)) select.value = state.dependenceFeature;  // the plot stays
    else if (found.length) guarded(() => drawDependence(found[0]));
  };
  search.onkeydown = (event) => {
    if (event.key === "Enter") event.preventDefault();
  };
}

function drawWaterfall(waterfall, probability, exact) {
  const items = waterfall.contributions;
  const labels = ["base value", ...items.map((c) => safe(c.other ? c.feature : `${c.feature} = ${show(c.value)}`)),
                  safe(outputName())];
  const step = (c) => (hasError(c.standard_error) ? `${signed(c.shap)} ${uncertainty(c.standard_error, exact)}`
                                                   : signed(c.shap));
  plot(chart("waterfall"), [{
    type: "waterfall", orientation: "h", y: labels,
    x: [waterfall.base_value, ...items.map((c) => c.shap), 0],
    measure: ["absolute", ...items.map(() => "relative"), "total"],
    text: [waterfall.base_value.toFixed(3), ...items.map(step), probability.toFixed(3)],
    textposition: "auto", cliponaxis: false, hoverinfo: "y+text",
    increasing: {marker: {color: POSITIVE}}, decreasing: {marker: {color: NEGATIVE}},
    totals: {marker: {color: "#5b6270"}}, connector: {line: {color: "#bbb"}},
  }], {height: 90 + 30 * labels.length, margin: {l: 150, r: 60, t: 10, b: 40}, showlegend: false,
       yaxis: {autorange: "reversed", type: "category"}, xaxis: {title: {text: safe(outputName())}}});
  $("[data-probability]").textContent = `${outputName()} = ${probability.toFixed(3)}`;
}

// What the values add up to: P(label) for probabilities, else the engine's own words ("log-odds of class 1").
// `url` with the explained class (multiclass runs) as its `class` query parameter.
// A picked row of a multiclass run is explained for its predicted class unless ?class= named one.
function withClass(url) {
  const chosen = state.rowClass || (state.view && state.view.output_class) || requestedClass;
  if (!chosen) return url;
  return `${url}${url.includes("?") ? "&" : "?"}class=${encodeURIComponent(chosen)}`;
}

function setupClassPicker(view) {
  const picker = $("[data-class-picker]");
  picker.hidden = !view.classes || !view.classes.length;
  if (picker.hidden) return;
  const select = $("select[data-class]");
  select.replaceChildren(...view.classes.map((label) => el("option", {value: label}, label)));
  select.value = view.output_class;
  select.onchange = () => {
    const params = new URLSearchParams(window.location.search);
    params.set("class", select.value);
    window.location.search = params.toString();
  };
}

function outputName() {
  const output = state.view && state.view.metadata ? state.view.metadata.model_output : null;
  if (state.rowClass && (!output || output.startsWith("probability"))) return `P(class ${state.rowClass})`;
  return !output || output.startsWith("probability") ? `P(${state.label})` : output;
}

function field(feature) {
  const label = el("label", {"data-field": feature.name}, feature.name);
  let input;
  if (feature.kind === "categorical") {
    input = el("select", {name: feature.name, "data-feature": feature.name});
    input.append(el("option", {value: ""}, "(missing)"));
    for (const category of feature.categories || []) input.append(el("option", {value: category}, category));
  } else {
    const seen = feature.min === null ? null : `seen: ${fmt(feature.min, 2)} … ${fmt(feature.max, 2)}`;
    input = el("input", {type: "number", name: feature.name, "data-feature": feature.name, placeholder: "missing",
                         step: feature.integer ? "1" : "any", title: seen});
  }
  label.append(input);
  return label;
}

// Small tables: one field per feature, in the model's order. Wide ones: the most important features
// first, the rest in a collapsed "more features" group, and a filter over all of them.
function buildForm(view) {
  const form = $("form[data-what-if]");
  const features = view.features;
  form.replaceChildren();
  $("[data-what-if-search]").value = "";
  $("[data-what-if-count]").hidden = true;
  $("[data-what-if-filter]").hidden = !wide(features.length);
  if (!wide(features.length)) {
    form.append(...features.map(field));
    return;
  }
  const byName = new Map(features.map((f) => [f.name, f]));
  const order = view.feature_order.filter((name) => byName.has(name));
  form.append(...order.slice(0, TOP).map((name) => field(byName.get(name))));
  const more = el("details", {"data-more-features": ""});
  const rest = order.slice(TOP);
  more.append(el("summary", {}, `more features (${rest.length})`));
  const box = el("div", {class: "fields"});
  box.append(...rest.map((name) => field(byName.get(name))));
  more.append(box);
  form.append(more);
}

function filterForm() {
  const needle = $("[data-what-if-search]").value.trim().toLowerCase();
  const form = $("form[data-what-if]");
  let shown = 0;
  const labels = form.querySelectorAll("label[data-field]");
  for (const label of labels) {
    const match = !needle || label.dataset.field.toLowerCase().includes(needle);
    label.hidden = !match;
    shown += match ? 1 : 0;
  }
  const more = form.querySelector("details[data-more-features]");
  if (more && needle) more.open = true;
  const count = $("[data-what-if-count]");
  count.textContent = needle ? `${shown} of ${labels.length} features match` : "";
  count.hidden = !needle;
}

function fillForm(record) {
  for (const input of $("form[data-what-if]").querySelectorAll("[data-feature]")) {
    const value = record[input.dataset.feature];
    input.value = value === null || value === undefined ? "" : String(value);
    input.removeAttribute("aria-invalid");
  }
}

function formRecord() {
  const record = {};
  for (const input of $("form[data-what-if]").querySelectorAll("[data-feature]")) {
    const feature = state.view.features.find((f) => f.name === input.dataset.feature);
    if (input.value === "") record[input.dataset.feature] = null;
    else record[input.dataset.feature] = feature.kind === "numeric" ? Number(input.value) : input.value;
  }
  return record;
}

function whatIfError(message, field) {
  const box = $("[data-what-if-error]");
  box.textContent = message || "";
  box.hidden = !message;
  for (const input of $("form[data-what-if]").querySelectorAll("[data-feature]")) {
    if (field && input.dataset.feature === field) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// Each request is numbered; an answer older than one already shown is dropped.
async function whatIf() {
  const number = ++state.requested;
  try {
    const answer = await api(withClass(`${base}/what-if`), {method: "POST", body: {record: formRecord()}});
    if (number < state.applied) return;
    state.applied = number;
    whatIfError(null);
    drawWaterfall(answer.waterfall, answer.probability, answer.metadata.exact);
    const edited = state.current ? `${rowLabel(state.current)}, edited` : "a hand-made record";
    $("[data-waterfall-note]").textContent = `what-if: ${edited} · computed live in ` +
      `${(answer.metadata.seconds * 1000).toFixed(1)} ms (${answer.metadata.method})`;
  } catch (error) {
    if (number < state.applied) return;
    state.applied = number;
    whatIfError(error.message, error instanceof ApiError ? error.field : null);
  }
}

function scheduleWhatIf() {
  clearTimeout(state.timer);
  state.timer = setTimeout(whatIf, DEBOUNCE_MS);
}

function outcome(actual) {
  if (state.label === "survived") return actual ? "survived" : "did not survive";
  return `actual class ${actual}`;
}

async function pickRow(row) {
  const url = `${base}/rows/${encodeURIComponent(row.row_id)}`;
  const answer = await api(requestedClass ? `${url}?class=${encodeURIComponent(requestedClass)}` : url);
  state.rowClass = answer.output_class;
  state.current = row;
  state.applied = ++state.requested;  // answers to edits made before this pick are stale now
  clearTimeout(state.timer);
  fillForm(answer.record);
  whatIfError(null);
  const chosen = $("[data-passenger]");
  chosen.replaceChildren(el("strong", {}, rowLabel(row)));
  if (answer.y_true !== null) chosen.append(` · ${outcome(answer.y_true)}`);
  if (answer.probabilities) {
    const predicted = Object.entries(answer.probabilities).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    chosen.append(el("span", {"data-row-class": answer.output_class},
      ` · explained class ${answer.output_class}` + (answer.output_class === predicted ? " (predicted)" :
        ` (predicted: ${predicted})`)));
  }
  drawWaterfall(answer.waterfall, answer.probability, state.view.metadata.exact);
  $("[data-waterfall-note]").textContent = `stored explanation of this row (${state.view.metadata.method}); ` +
    "change a value below for a what-if";
}

function matches(query) {
  const needle = query.trim().toLowerCase();
  const rows = state.view.rows;
  if (!needle) return rows.slice(0, 12);
  return rows.filter((r) => String(r.row_id).toLowerCase().includes(needle) ||
                            (r.name && r.name.toLowerCase().includes(needle))).slice(0, 12);
}

function renderResults() {
  const list = $("[data-passenger-results]");
  const query = $("[data-passenger-search]").value;
  const found = matches(query);
  list.replaceChildren(...found.map((row) => {
    const button = el("button", {type: "button", "data-row-id": row.row_id, role: "option"});
    button.append(el("span", {}, rowLabel(row)), el("span", {class: "muted"}, ` P = ${row.probability.toFixed(3)}`));
    button.addEventListener("click", () => choose(row));
    const item = el("li");
    item.append(button);
    return item;
  }));
  if (!found.length) list.append(el("li", {class: "muted"}, "no match"));
  list.hidden = false;
}

function choose(row) {
  $("[data-passenger-results]").hidden = true;
  $("[data-passenger-search]").value = rowLabel(row);
  guarded(() => pickRow(row));
}

function setupPicker() {
  const search = $("[data-passenger-search]");
  search.addEventListener("input", renderResults);
  search.addEventListener("focus", renderResults);
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = matches(search.value)[0];
      if (first) choose(first);
    } else if (event.key === "Escape") {
      $("[data-passenger-results]").hidden = true;
    }
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".picker")) $("[data-passenger-results]").hidden = true;
  });
  const form = $("form[data-what-if]");
  form.addEventListener("input", scheduleWhatIf);
  form.addEventListener("change", scheduleWhatIf);
  form.addEventListener("submit", (event) => { event.preventDefault(); scheduleWhatIf(); });
  const filter = $("[data-what-if-search]");
  filter.addEventListener("input", filterForm);
  filter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();
  });
}

async function drawComparison(other) {
  const note = $("[data-versus-note]");
  const agreement = $("[data-agreement]");
  const box = chart("compare");
  if (note.dataset.kind !== "listing") note.hidden = true;
  agreement.textContent = "";
  $("[data-top-features]").textContent = "";
  if (!other) {
    box.hidden = true;
    return;
  }
  let result;
  try {
    result = await api(`/api/explanations/compare?a=${encodeURIComponent(runId)}&b=${encodeURIComponent(other)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.unavailable) throw error;
    box.hidden = true;
    note.textContent = error.message;
    note.dataset.kind = "comparison";
    note.hidden = false;
    return;
  }
  const order = result.a.global.map((g) => g.feature).reverse();
  const value = (run) => Object.fromEntries(run.global.map((g) => [g.feature, g.mean_abs_shap]));
  const [va, vb] = [value(result.a), value(result.b)];
  box.hidden = false;
  plot(box, [
    {type: "bar", orientation: "h", name: safe(result.a.run_name), y: order.map(safe), x: order.map((f) => va[f]),
     marker: {color: "#3b6ea8"}},
    {type: "bar", orientation: "h", name: safe(result.b.run_name), y: order.map(safe), x: order.map((f) => vb[f]),
     marker: {color: "#e08a3c"}},
  ], {barmode: "group", height: 100 + 40 * order.length, margin: {l: 90, r: 20, t: 40, b: 40},
      xaxis: {title: {text: "mean |SHAP value|"}}, legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"}});
  agreement.textContent = `rank agreement: Spearman ${fmt(result.spearman, 2)}, Kendall ${fmt(result.kendall, 2)}`;
  $("[data-top-features]").textContent = `top features: ${result.a.run_name}: ${result.a.top.join(", ")} · ` +
    `${result.b.run_name}: ${result.b.top.join(", ")} · ${result.shared_rows} shared rows`;
}

function rememberVersus(other) {
  const url = new URL(window.location.href);
  if (other) url.searchParams.set("versus", other);
  else url.searchParams.delete("versus");
  window.history.replaceState(null, "", url);
}

async function setupComparison(view) {
  const select = $("select[data-versus]");
  const wanted = root.dataset.versus;
  select.replaceChildren(el("option", {value: ""}, "—"));
  if (view.experiment) {
    try {
      const page = await api(`/api/runs/page?experiment=${encodeURIComponent(view.experiment)}&limit=200`);
      for (const run of page.runs) {
        if (run.run_id !== runId) select.append(el("option", {value: run.run_id}, run.name));
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.unavailable) throw error;
      const note = $("[data-versus-note]");
      note.textContent = `The experiment's other runs cannot be listed: ${error.message}`;
      note.dataset.kind = "listing";
      note.hidden = false;
    }
  }
  if (wanted && ![...select.options].some((o) => o.value === wanted)) {
    select.append(el("option", {value: wanted}, wanted));
  }
  select.value = wanted || "";
  select.onchange = () => {
    root.dataset.versus = select.value;
    rememberVersus(select.value);
    guarded(() => drawComparison(select.value));
  };
  await drawComparison(select.value);
}

function showMissing(view) {
  $("[data-explained]").hidden = true;
  $("[data-meta]").textContent = "";
  $("[data-missing]").hidden = false;
  $("[data-missing-text]").textContent = `No explanation: ${view.missing}.`;
  $("[data-compute-reason]").textContent = view.can_compute
    ? `The dashboard can compute it: ${view.compute_reason}.`
    : `It cannot be computed here: ${view.compute_reason}.`;
  const button = $("[data-compute]");
  button.hidden = !view.can_compute;
  button.disabled = false;
  button.textContent = "Compute the explanation";
  button.onclick = () => guarded(async () => {
    button.disabled = true;
    button.textContent = "Computing…";
    try {
      await mutate(base);
    } finally {
      button.disabled = false;
      button.textContent = "Compute the explanation";
    }
    await load();
  });
}

async function load() {
  const view = await api(requestedClass ? withClass(base) : base);
  state.view = view;
  state.label = view.positive_label;
  header(view);
  setupClassPicker(view);
  if (!view.available) {
    showMissing(view);
    return;
  }
  $("[data-missing]").hidden = true;
  $("[data-explained]").hidden = false;
  $("[data-row-noun]").textContent = view.positive_label === "survived" ? "passenger" : "row";
  metadataLine(view.metadata);
  // A multiclass run: global importance over every class (summed |SHAP|), the other views per class.
  const summed = view.global_all_classes;
  drawImportance(summed || view.global, view.metadata.exact, view.metadata.features);
  $("[data-importance-caption]").textContent = summed
    ? `mean over rows of the sum over all ${view.classes.length} classes of |SHAP value| (the views below: ` +
      `class ${view.output_class})`
    : "mean |SHAP value|: the average effect of each feature on the predicted probability";
  drawBeeswarm(view.beeswarm);
  setupDependence(view);
  const select = $("select[data-dependence-feature]");
  buildForm(view);
  const first = view.rows[0];
  await Promise.all([
    select.value ? drawDependence(select.value) : null,
    first ? pickRow(first) : null,
    setupComparison(view),
  ]);
  if (first) {  // load the model now, so the first edit answers in milliseconds
    api(withClass(`${base}/what-if`), {method: "POST", body: {record: formRecord()}, timeout: 60000}).catch(() => {});
  }
}

setupPicker();
guarded(load);
