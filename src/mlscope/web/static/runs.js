// The runs view: a virtual table over /api/runs/page. Only the rows in view are in the DOM; sorting and
// filtering are answered by the server, so 10,000 runs scroll like 10.

const ROW_HEIGHT = 30;
const PAGE_SIZE = 100;
const OVERSCAN = 10;

function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function formatNumber(value) {
  return value === undefined || value === null ? "—" : Number(value).toFixed(4);
}

function formatTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export class RunsView {
  constructor(root) {
    this.root = root;
    this.experiment = root.dataset.experiment;
    this.metrics = JSON.parse(root.dataset.metrics);
    this.viewport = root.querySelector("[data-viewport]");
    this.spacer = root.querySelector("[data-spacer]");
    this.body = root.querySelector("[data-rows]");
    this.count = document.querySelector("[data-count]");
    this.errorBox = document.querySelector("[data-error]");
    this.filterInput = root.querySelector("[data-filter]");
    const params = new URLSearchParams(window.location.search);
    this.orderBy = params.get("order_by") || root.dataset.defaultOrder;
    this.filter = params.get("filter") || "";
    this.filterInput.value = this.filter;
    this.pages = new Map();
    this.total = 0;
    this.generation = 0;
    this.viewport.addEventListener("scroll", () => this.render());
    root.querySelector("[data-filter-form]").addEventListener("submit", (event) => {
      event.preventDefault();
      this.filter = this.filterInput.value.trim();
      this.reload();
    });
    for (const button of root.querySelectorAll("[data-sort]")) {
      button.addEventListener("click", () => this.sortBy(button.dataset.sort));
    }
  }

  sortBy(key) {
    const [currentKey, currentDirection] = this.orderBy.split(" ");
    const direction = currentKey === key && currentDirection === "DESC" ? "ASC" : "DESC";
    this.orderBy = `${key} ${direction}`;
    this.reload();
  }

  query(offset) {
    const params = new URLSearchParams({experiment: this.experiment, order_by: this.orderBy, filter: this.filter,
                                        offset: String(offset), limit: String(PAGE_SIZE)});
    return `/api/runs/page?${params}`;
  }

  async reload() {
    this.generation += 1;
    this.pages.clear();
    const url = new URL(window.location.href);
    url.searchParams.set("order_by", this.orderBy);
    if (this.filter) url.searchParams.set("filter", this.filter); else url.searchParams.delete("filter");
    window.history.replaceState(null, "", url);
    this.markSort();
    this.viewport.scrollTop = 0;
    await this.load(0);
    this.render();
  }

  markSort() {
    const [key, direction] = this.orderBy.split(" ");
    for (const button of this.root.querySelectorAll("[data-sort]")) {
      const active = button.dataset.sort === key;
      button.setAttribute("aria-sort", active ? (direction === "DESC" ? "descending" : "ascending") : "none");
    }
  }

  async load(pageIndex) {
    if (this.pages.has(pageIndex)) return this.pages.get(pageIndex);
    const generation = this.generation;
    const pending = fetch(this.query(pageIndex * PAGE_SIZE), {headers: {Accept: "application/json"}})
      .then(async (response) => {
        const body = await response.json();
        if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
        return body;
      })
      .then((body) => {
        if (generation !== this.generation) return null;
        this.total = body.total;
        this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
        this.count.textContent = `${this.total.toLocaleString("en")} run(s)`;
        this.showError("");
        return body.runs;
      })
      .catch((error) => {
        this.pages.delete(pageIndex);
        this.showError(error.message);
        return null;
      });
    this.pages.set(pageIndex, pending);
    return pending;
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
    const needed = new Set();
    for (let i = first; i < last; i += 1) needed.add(Math.floor(i / PAGE_SIZE));
    const loaded = await Promise.all([...needed].map((page) => this.load(page).then((rows) => [page, rows])));
    if (generation !== this.generation) return;
    const byPage = new Map(loaded);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i += 1) {
      const rows = byPage.get(Math.floor(i / PAGE_SIZE));
      const run = rows ? rows[i % PAGE_SIZE] : undefined;
      if (run) fragment.append(this.row(run, i));
    }
    this.body.replaceChildren(fragment);
  }

  row(run, index) {
    const row = el("div", {class: run.is_best ? "row best" : "row", role: "row", "data-run-id": run.run_id,
                           style: `top:${index * ROW_HEIGHT}px`});
    row.append(el("span", {role: "cell", class: "star"}, run.is_best ? "★" : ""));
    row.append(el("span", {role: "cell", class: "name"}, run.name));
    row.append(el("span", {role: "cell"}, run.model_type || "—"));
    row.append(el("span", {role: "cell"}, run.status));
    for (const metric of this.metrics) row.append(el("span", {role: "cell", class: "num"}, formatNumber(run.metrics[metric])));
    const badge = el("span", {role: "cell"});
    if (run.registered) badge.append(el("span", {class: "badge"}, run.registered));
    row.append(badge);
    row.append(el("span", {role: "cell"}, formatTime(run.start_time)));
    return row;
  }
}

const root = document.querySelector("[data-runs-view]");
if (root) {
  const view = new RunsView(root);
  window.mlscopeRuns = view;
  view.reload();
}
