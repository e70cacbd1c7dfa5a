// The runs view: a virtual table over /api/runs/page. Only the rows in view are in the DOM; sorting and
// filtering are answered by the server, so 10,000 runs scroll like 10. Nested runs show as a tree (top-level
// runs paged from the server, children fetched when a row opens) unless the flat list is chosen or a filter
// is set. Columns, best-run metric, direction, filter, order and tree/flat live in the URL, so a view can be
// bookmarked and shared.
import {ApiError, api, banner, el, fmt, formatDuration, formatTime, path, sentence} from "/static/common.js";
import {RunTree, treeNode} from "/static/run_tree.js";

const ROW_HEIGHT = 30;
const PAGE_SIZE = 100;
const CHILD_PAGE_SIZE = 1000;
const OVERSCAN = 10;
const HEADLINE = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"];
const LOWER_IS_BETTER = /loss|error|mse|mae|rmse|mape|brier|perplexity|latency|time|cost/i;

function listParam(params, key) {
  const value = params.get(key);
  return value === null ? null : value.split(",").filter(Boolean);
}

export class RunsView {
  constructor(root) {
    this.root = root;
    this.experiment = root.dataset.experiment;
    this.grid = root.querySelector(".grid");
    this.head = root.querySelector("[data-head]");
    this.viewport = root.querySelector("[data-viewport]");
    this.spacer = root.querySelector("[data-spacer]");
    this.body = root.querySelector("[data-rows]");
    this.count = document.querySelector("[data-count]");
    this.bestNote = document.querySelector("[data-best-note]");
    this.errorBox = document.querySelector("[data-error]");
    this.filterInput = root.querySelector("[data-filter]");
    this.metricSelect = root.querySelector("[data-metric]");
    this.directionSelect = root.querySelector("[data-direction]");
    this.compareButton = root.querySelector("[data-compare]");
    this.flatBox = root.querySelector("[data-flat]");
    this.treeNote = document.querySelector("[data-tree-note]");
    const params = new URLSearchParams(window.location.search);
    this.metric = params.get("metric") || "";
    this.metricChosen = Boolean(this.metric);  // else the experiment's default (bestBy) decides
    this.bestBy = null;
    this.direction = params.get("direction") || "";
    this.orderBy = params.get("order_by") || "";
    this.filter = params.get("filter") || "";
    this.metricColumns = listParam(params, "metrics");
    this.paramColumns = listParam(params, "params") || [];
    this.flat = params.get("view") === "flat";
    this.filterInput.value = this.filter;
    this.flatBox.checked = this.flat;
    this.selected = new Set();
    this.pages = new Map();
    this.tree = new RunTree((run) => this.loadChildren(run));
    this.topTotal = 0;
    this.total = 0;
    this.generation = 0;
    this.viewport.addEventListener("scroll", () => this.render());
    root.querySelector("[data-filter-form]").addEventListener("submit", (event) => {
      event.preventDefault();
      this.filter = this.filterInput.value.trim();
      this.reload();
    });
    this.metricSelect.addEventListener("change", () => {
      this.metric = this.metricSelect.value;
      this.metricChosen = true;
      this.reload();
    });
    this.directionSelect.addEventListener("change", () => { this.direction = this.directionSelect.value; this.reload(); });
    this.flatBox.addEventListener("change", () => { this.flat = this.flatBox.checked; this.reload(); });
    this.compareButton.addEventListener("click", () => {
      const ids = [...this.selected].join(",");
      window.location.href = `/experiments/${path(this.experiment)}/compare?runs=${encodeURIComponent(ids)}`;
    });
  }

  // A filter matches runs at any depth, so filtered runs are listed flat.
  get treeMode() {
    return !this.flat && !this.filter;
  }

  get effectiveDirection() {
    if (this.direction) return this.direction;
    if (!this.metricChosen && this.bestBy) return this.bestBy.direction;
    return LOWER_IS_BETTER.test(this.metric) ? "min" : "max";
  }

  async start() {
    try {
      const columns = await api(`/api/experiments/${path(this.experiment)}/columns`);
      this.keys = columns;
      this.bestBy = columns.best_by;
    } catch (error) {
      this.showFailure(error, () => this.start());
      return;
    }
    if (this.metricColumns === null) this.metricColumns = this.defaultColumns();
    if (!this.metricChosen) this.metric = this.bestBy.metric;
    if (!this.orderBy) this.orderBy = `metrics.${this.quoted(this.metric)} ${this.effectiveDirection === "max" ? "DESC" : "ASC"}`;
    this.buildPickers();
    this.buildChooser();
    this.buildHead();
    await this.reload();
  }

  // The seed's metrics when the runs have them, else those most runs have; the best-by metric always.
  defaultColumns() {
    const best = this.bestBy.metric;
    const present = HEADLINE.filter((key) => this.keys.metrics.includes(key));
    const counted = Object.entries(this.keys.metric_runs).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const chosen = present.length ? present : counted.map(([key]) => key).filter((key) => key !== best).slice(0, 5);
    return chosen.includes(best) || !this.keys.metrics.includes(best) ? chosen : [best, ...chosen];
  }

  quoted(key) {
    return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? key : `\`${key.replace(/`/g, "")}\``;
  }

  buildPickers() {
    const choices = this.keys.metrics.includes(this.metric) ? this.keys.metrics : [this.metric, ...this.keys.metrics];
    this.metricSelect.replaceChildren(...choices.map((key) => el("option", {value: key}, key)));
    this.metricSelect.value = this.metric;
    this.directionSelect.value = this.direction;
  }

  buildChooser() {
    const panel = this.root.querySelector("[data-chooser-panel]");
    const group = (title, keys, chosen, kind) => {
      const box = el("fieldset", {"data-chooser-group": kind});
      box.append(el("legend", {}, title));
      for (const key of keys) {
        const label = el("label");
        const input = el("input", {type: "checkbox", value: key, "data-column": `${kind}.${key}`});
        input.checked = chosen.includes(key);
        input.addEventListener("change", () => {
          const list = kind === "metrics" ? this.metricColumns : this.paramColumns;
          if (input.checked) list.push(key); else list.splice(list.indexOf(key), 1);
          this.buildHead();
          this.writeUrl();
          this.render();
        });
        label.append(input, document.createTextNode(` ${key}`));
        box.append(label);
      }
      if (!keys.length) box.append(el("span", {class: "muted"}, "none"));
      return box;
    };
    panel.replaceChildren(group("Metrics", this.keys.metrics, this.metricColumns, "metrics"),
                          group("Params", this.keys.params.filter((k) => k !== "model_type"), this.paramColumns, "params"));
  }

  columns() {
    return [
      {label: "", width: "2rem", cell: (run) => this.checkbox(run)},
      {label: "", width: "2rem", cell: (run) => this.star(run)},
      {label: "run", sort: "attributes.run_name", width: "15rem",
       cell: (run, node, top) => this.nameCell(run, node, top)},
      {label: "status", sort: "attributes.status", width: "6rem", cell: (run) => el("span", {}, run.status)},
      {label: "model type", sort: "params.model_type", width: "9rem", cell: (run) => el("span", {}, run.model_type || "—")},
      ...this.metricColumns.map((key) => ({label: key, sort: `metrics.${this.quoted(key)}`, width: "6.2rem", numeric: true,
                                          cell: (run) => el("span", {class: "num"}, fmt(run.metrics[key]))})),
      ...this.paramColumns.map((key) => ({label: key, sort: `params.${this.quoted(key)}`, width: "8rem",
                                         cell: (run) => el("span", {title: run.params[key] ?? ""}, run.params[key] ?? "—")})),
      {label: "registered", width: "11rem", cell: (run) => {
        const cell = el("span", {title: run.registered || ""});
        if (run.registered) cell.append(el("span", {class: "badge"}, run.registered));
        return cell;
      }},
      {label: "started", sort: "attributes.start_time", width: "9.5rem", cell: (run) => el("span", {}, formatTime(run.start_time))},
      {label: "duration", width: "6.5rem", cell: (run) => el("span", {class: "num"}, formatDuration(run.start_time, run.end_time))},
    ];
  }

  buildHead() {
    this.columnSpec = this.columns();
    this.grid.style.setProperty("--columns", this.columnSpec.map((c) => c.width).join(" "));
    this.head.replaceChildren(...this.columnSpec.map((column) => {
      if (!column.sort) return el("span", {role: "columnheader"}, column.label);
      const button = el("button", {"data-sort": column.sort, role: "columnheader", class: column.numeric ? "num" : null,
                                   title: `sort by ${column.label}`}, column.label);
      button.addEventListener("click", () => this.sortBy(column.sort));
      return button;
    }));
    this.viewport.style.width = `${Math.max(this.head.scrollWidth, this.grid.clientWidth)}px`;
    this.markSort();
  }

  checkbox(run) {
    const cell = el("span");
    const box = el("input", {type: "checkbox", "data-select": run.run_id, "aria-label": `select ${run.name}`});
    box.checked = this.selected.has(run.run_id);
    box.addEventListener("change", () => {
      if (box.checked) this.selected.add(run.run_id); else this.selected.delete(run.run_id);
      box.closest(".row").classList.toggle("selected", box.checked);
      this.updateCompare();
    });
    cell.append(box);
    return cell;
  }

  star(run) {
    if (run.is_best) return el("span", {class: "star", title: "the best run"}, "★");
    if (run.contains_best) return el("span", {class: "star", title: "the best run is nested below"}, "☆");
    return el("span", {class: "star"});
  }

  nameCell(run, node, top) {
    const cell = el("span", {class: "name"});
    if (this.treeMode) {
      cell.style.setProperty("--depth", String(node.depth));
      if (run.children) {
        const open = node.open;
        const label = `${open ? "hide" : "show"} the ${run.children} child run(s) of ${run.name}`;
        const toggle = el("button", {type: "button", class: "toggle", "data-expand": run.run_id,
                                     "aria-expanded": open ? "true" : "false", "aria-label": label},
                          open ? "▾" : "▸");
        toggle.addEventListener("click", () => this.toggle(top, node));
        cell.append(toggle);
      } else {
        cell.append(el("span", {class: "toggle"}));
      }
    } else if (run.parent_run_id) {
      cell.append(el("a", {class: "parent-link", href: `/runs/${path(run.parent_run_id)}`,
                           title: `child of run ${run.parent_run_id}`}, "↳"));
    }
    cell.append(el("a", {href: `/runs/${path(run.run_id)}`}, run.name));
    if (this.treeMode && run.children) {
      cell.append(el("span", {class: "children", "data-children": "", title: "child runs"}, String(run.children)));
    }
    return cell;
  }

  async toggle(top, node) {
    const generation = this.generation;
    try {
      await this.tree.toggle(top, node);
    } catch (error) {
      if (generation === this.generation) this.showFailure(error, () => this.toggle(top, node));
      return;
    }
    if (generation !== this.generation) return;
    this.updateTotal();
    this.render();
  }

  async loadChildren(run) {
    const found = [];
    for (;;) {
      const body = await api(this.query(found.length, {parent: run.run_id, limit: CHILD_PAGE_SIZE}));
      found.push(...body.runs);
      if (!body.runs.length || found.length >= body.total) return found;
    }
  }

  updateCompare() {
    const n = this.selected.size;
    this.compareButton.disabled = n < 2;
    this.compareButton.textContent = n ? `Compare selected (${n})` : "Compare selected";
  }

  sortBy(key) {
    const [currentKey, currentDirection] = this.orderBy.split(/ (?=ASC$|DESC$)/);
    const direction = currentKey === key && currentDirection === "DESC" ? "ASC" : "DESC";
    this.orderBy = `${key} ${direction}`;
    this.reload();
  }

  query(offset, {parent = null, limit = PAGE_SIZE} = {}) {
    const params = new URLSearchParams({experiment: this.experiment, order_by: this.orderBy, filter: this.filter,
                                        offset: String(offset), limit: String(limit), metric: this.metric});
    if (this.direction) params.set("direction", this.direction);
    if (parent) params.set("parent", parent);
    else if (this.treeMode) params.set("tree", "true");
    return `/api/runs/page?${params}`;
  }

  writeUrl() {
    const url = new URL(window.location.href);
    const set = (key, value) => (value ? url.searchParams.set(key, value) : url.searchParams.delete(key));
    set("order_by", this.orderBy);
    set("filter", this.filter);
    set("metric", this.metricChosen ? this.metric : "");
    set("direction", this.direction);
    set("view", this.flat ? "flat" : "");
    url.searchParams.set("metrics", this.metricColumns.join(","));
    set("params", this.paramColumns.join(","));
    window.history.replaceState(null, "", url);
    document.querySelector("[data-json]").href = this.query(0).replace("limit=100", "limit=1000");
  }

  async reload() {
    this.generation += 1;
    this.pages.clear();
    this.tree.clear();
    this.writeUrl();
    this.markSort();
    this.viewport.scrollTop = 0;
    await this.load(0);
    this.render();
  }

  markSort() {
    const [key, direction] = this.orderBy.split(/ (?=ASC$|DESC$)/);
    for (const button of this.head.querySelectorAll("[data-sort]")) {
      const active = button.dataset.sort === key;
      button.setAttribute("aria-sort", active ? (direction === "DESC" ? "descending" : "ascending") : "none");
    }
  }

  async load(pageIndex) {
    if (this.pages.has(pageIndex)) return this.pages.get(pageIndex);
    const generation = this.generation;
    const pending = api(this.query(pageIndex * PAGE_SIZE))
      .then((body) => {
        if (generation !== this.generation) return null;
        this.topTotal = body.total;
        this.updateTotal();
        this.showBest(body);
        this.showError("");
        banner.clear();
        return body.runs;
      })
      .catch((error) => {
        this.pages.delete(pageIndex);
        if (generation === this.generation) this.showFailure(error, () => this.reload());
        return null;
      });
    this.pages.set(pageIndex, pending);
    return pending;
  }

  updateTotal() {
    this.total = this.topTotal + this.tree.extraRows;
    this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
    const count = this.topTotal.toLocaleString("en");
    this.count.textContent = this.treeMode ? `${count} top-level run(s)` : `${count} run(s)`;
    this.treeNote.hidden = this.treeMode || this.flat;
  }

  showBest(body) {
    const better = body.direction === "max" ? "higher" : "lower";
    this.bestNote.textContent = body.best_reason ? `★ ${body.best_reason} (${better} is better)` : `No run has ${body.metric}.`;
    if (!this.metricChosen && this.bestBy) {
      const why = ` · ${body.metric} by default: ${this.bestBy.reason}`;
      this.bestNote.append(el("span", {class: "muted", "data-best-why": ""}, why));
    }
    this.bestNote.hidden = false;
  }

  showFailure(error, retry) {
    if (error instanceof ApiError && !error.unavailable && error.status !== 401) {
      this.showError(error.message);  // the user's filter or order: say what is wrong next to it
    } else {
      banner.show(`${sentence(error.message)} The runs could not be loaded.`, retry);
    }
  }

  showError(message) {
    this.errorBox.textContent = message;
    this.errorBox.hidden = !message;
  }

  async render() {
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.viewport.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(this.total, first + visible);
    const generation = this.generation;
    const places = [];
    const needed = new Set();
    for (let i = first; i < last; i += 1) {
      const place = this.tree.locate(i);
      places.push(place);
      if (!place.node) needed.add(Math.floor(place.top / PAGE_SIZE));
    }
    const loaded = await Promise.all([...needed].map((page) => this.load(page).then((rows) => [page, rows])));
    if (generation !== this.generation) return;
    const byPage = new Map(loaded);
    const fragment = document.createDocumentFragment();
    places.forEach((place, offset) => {
      let node = place.node;
      if (!node) {
        const rows = byPage.get(Math.floor(place.top / PAGE_SIZE));
        const run = rows ? rows[place.top % PAGE_SIZE] : undefined;
        node = run && treeNode(run, 0);
      }
      if (node) fragment.append(this.row(node, place.top, first + offset));
    });
    this.body.replaceChildren(fragment);
  }

  row(node, top, index) {
    const run = node.run;
    const classes = ["row", run.is_best ? "best" : "", run.contains_best ? "contains-best" : "",
                     this.selected.has(run.run_id) ? "selected" : ""].filter(Boolean);
    const row = el("div", {class: classes.join(" "), role: "row", "data-run-id": run.run_id,
                           "data-depth": String(node.depth), style: `top:${index * ROW_HEIGHT}px`});
    for (const column of this.columnSpec) {
      const cell = column.cell(run, node, top);
      cell.setAttribute("role", "cell");
      row.append(cell);
    }
    return row;
  }
}

const root = document.querySelector("[data-runs-view]");
if (root) {
  const view = new RunsView(root);
  window.mlscopeRuns = view;
  view.start();
}
