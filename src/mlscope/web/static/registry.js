// The registry views: the list of registered models, and one model's versions with alias changes
// (set, move, remove) confirmed in a dialog that asks for the reason recorded in the history.
import {api, el, fmt, formatTime, guarded, mutate, path} from "./common.js";

const SUGGESTED_ALIASES = ["production", "staging"];

const versionLabel = (version) => (version ? `v${version}` : "—");

function cell(text, attributes = {}) {
  return el("td", attributes, text === undefined || text === null || text === "" ? "—" : text);
}

// ---- /models ----

async function loadModels() {
  const data = await api("/api/models");
  document.querySelector("[data-models-rows]").replaceChildren(...data.models.map(modelRow));
  document.querySelector("[data-count]").textContent = `${data.total} model(s)`;
  document.querySelector("[data-empty]").hidden = data.total > 0;
}

function modelRow(model) {
  const row = el("tr", {"data-model": model.name});
  const name = el("td");
  name.append(el("a", {href: `/models/${path(model.name)}`}, model.name));
  const aliases = el("td");
  for (const [alias, version] of Object.entries(model.aliases)) {
    aliases.append(el("span", {class: "badge alias", "data-alias": alias}, `@${alias} → v${version}`), " ");
  }
  if (!aliases.childElementCount) aliases.textContent = "—";
  row.append(name, cell(model.versions, {class: "num"}), aliases,
             cell(versionLabel(model.latest_version), {class: "num"}), cell(formatTime(model.last_updated)),
             cell(model.description, {class: "muted"}));
  return row;
}

// ---- /models/<name> ----

class ModelView {
  constructor(root) {
    this.name = root.dataset.model;
    this.detail = null;
    this.pending = null;
    this.dialog = root.querySelector("[data-alias-dialog]");
    this.form = root.querySelector("[data-alias-form]");
    this.aliasInput = root.querySelector("[data-alias-input]");
    this.reason = root.querySelector("[data-reason]");
    this.sentence = root.querySelector("[data-dialog-sentence]");
    this.error = root.querySelector("[data-dialog-error]");
    this.confirm = root.querySelector("[data-confirm]");
    document.querySelector("[data-json]").href = this.url();
    document.querySelector("[data-production]").href = `/models/${path(this.name)}/production`;
    root.querySelector("[data-version-rows]").addEventListener("click", (event) => this.onTableClick(event));
    this.aliasInput.addEventListener("input", () => this.describe());
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    root.querySelector("[data-cancel]").addEventListener("click", () => this.dialog.close());
  }

  url(...parts) {
    return `/api/models/${path(this.name, ...parts)}`;
  }

  async load() {
    const [detail, history] = await Promise.all([api(this.url()), api(this.url("history"))]);
    this.detail = detail;
    this.renderSummary(detail);
    this.renderVersions(detail);
    this.renderHistory(history.events);
  }

  renderSummary(detail) {
    const aliases = Object.entries(detail.aliases).map(([alias, version]) => `@${alias} → v${version}`);
    document.querySelector("[data-summary]").textContent =
      `${detail.versions.length} version(s)${aliases.length ? ` · ${aliases.join(", ")}` : " · no aliases"}`;
    const description = document.querySelector("[data-description]");
    description.textContent = detail.description || "";
    description.hidden = !detail.description;
  }

  renderVersions(detail) {
    const head = document.querySelector("[data-versions-head]");
    head.replaceChildren(...["Version", "Aliases", "Source run", "Run name", "Model type"].map((t) => el("th", {}, t)),
                         ...detail.table_metrics.map((key) => el("th", {class: "num"}, key)),
                         el("th", {}, "Created"), el("th", {}, "Actions"));
    const rows = detail.versions.map((version) => this.versionRow(version, detail.table_metrics));
    document.querySelector("[data-version-rows]").replaceChildren(...rows);
    document.querySelector("[data-no-versions]").hidden = detail.versions.length > 0;
    const fromRun = detail.versions.some((version) => version.metrics_from === "run");
    const note = document.querySelector("[data-metrics-note]");
    note.textContent = fromRun ? "* metrics read from the source run: the version has no metric.* tags." : "";
    note.hidden = !fromRun;
  }

  versionRow(version, metricKeys) {
    const row = el("tr", {"data-version": version.version});
    const aliases = el("td", {class: "aliases"});
    for (const alias of version.aliases) {
      const badge = el("span", {class: "badge alias", "data-alias": alias}, `@${alias}`);
      badge.append(el("button", {type: "button", class: "remove", "data-remove-alias": alias,
                                 "aria-label": `Remove @${alias}`, title: `Remove @${alias}`}, "×"));
      aliases.append(badge, " ");
    }
    const metrics = metricKeys.map((key) => {
      const value = version.metrics[key];
      const text = value === undefined ? "—" : `${fmt(value)}${version.metrics_from === "run" ? "*" : ""}`;
      return cell(text, {class: "num", "data-metric": key});
    });
    const actions = el("td", {class: "actions"});
    actions.append(el("button", {type: "button", "data-promote": version.version}, "Set alias…"), " ",
                   el("a", {href: version.explain}, "Explain"));
    row.append(cell(versionLabel(version.version)), aliases, this.runCell(version.run), cell(version.run.run_name),
               cell(version.model_type), ...metrics, cell(formatTime(version.created)), actions);
    return row;
  }

  runCell(run) {
    const td = el("td", {class: "run"});
    if (!run.run_id) return cell("—");
    const short = run.run_id.slice(0, 8);
    td.append(run.link ? el("a", {href: run.link, title: run.run_id}, short) : el("span", {title: run.run_id}, short));
    if (run.state === "deleted") td.append(" ", el("span", {class: "badge warn"}, "run deleted"));
    if (run.state === "missing") td.append(" ", el("span", {class: "badge warn"}, "run not found"));
    if (run.status && run.status !== "FINISHED") td.append(" ", el("span", {class: "badge"}, run.status.toLowerCase()));
    return td;
  }

  renderHistory(events) {
    const rows = events.map((event) => {
      const row = el("tr", {"data-event": event.action});
      row.append(cell(formatTime(Date.parse(event.at)), {title: event.at}), cell(event.by), cell(event.action),
                 cell(`@${event.alias}`),
                 cell(`${versionLabel(event.from_version)} → ${versionLabel(event.to_version)}`),
                 cell(event.reason, {class: "reason"}));
      return row;
    });
    document.querySelector("[data-history-rows]").replaceChildren(...rows);
    document.querySelector("[data-history-empty]").hidden = events.length > 0;
  }

  onTableClick(event) {
    const promote = event.target.closest("[data-promote]");
    if (promote) this.openSet(promote.dataset.promote);
    const remove = event.target.closest("[data-remove-alias]");
    if (remove) this.openRemove(remove.dataset.removeAlias);
  }

  openSet(version) {
    this.pending = {mode: "set", version};
    const options = [...new Set([...Object.keys(this.detail.aliases), ...SUGGESTED_ALIASES])];
    const datalist = document.querySelector("[data-alias-options]");
    datalist.replaceChildren(...options.map((alias) => el("option", {value: alias})));
    this.open(`Set an alias on v${version}`, "", false);
  }

  openRemove(alias) {
    this.pending = {mode: "remove", alias, version: this.detail.aliases[alias]};
    this.open(`Remove @${alias}`, alias, true);
  }

  open(title, alias, readOnly) {
    this.dialog.querySelector("[data-dialog-title]").textContent = title;
    this.aliasInput.value = alias;
    this.aliasInput.readOnly = readOnly;
    this.reason.value = "";
    this.error.hidden = true;
    this.describe();
    this.dialog.showModal();
    (readOnly ? this.reason : this.aliasInput).focus();
  }

  // The sentence says exactly what Confirm will do.
  describe() {
    const {mode, version} = this.pending;
    const alias = this.aliasInput.value.trim();
    const holder = this.detail.aliases[alias];
    let text;
    if (mode === "remove") text = `Remove @${alias} from v${version}?`;
    else if (!alias) text = `Choose the alias to put on v${version}.`;
    else if (holder === version) text = `@${alias} is already on v${version}.`;
    else if (holder) text = `Move @${alias} from v${holder} to v${version}?`;
    else text = `Set @${alias} on v${version}?`;
    this.sentence.textContent = text;
    this.confirm.disabled = mode === "set" && holder === version;
  }

  async submit() {
    const {mode, version, alias} = this.pending;
    const reason = this.reason.value;
    this.confirm.disabled = true;
    this.error.hidden = true;
    let change;
    try {
      change = mode === "set"
        ? await mutate(this.url("aliases"), {alias: this.aliasInput.value.trim(), version, reason})
        : await mutate(this.url("aliases", alias, "remove"), {reason});
    } catch (error) {
      this.error.textContent = error.message;
      this.error.hidden = false;
      this.confirm.disabled = false;
      return;
    }
    this.confirm.disabled = false;
    this.dialog.close();
    this.flash(change);
    await guarded(() => this.load());
  }

  flash(change) {
    const done = {
      set: `Set @${change.alias} on v${change.to_version}.`,
      move: `Moved @${change.alias} from v${change.from_version} to v${change.to_version}.`,
      remove: `Removed @${change.alias} from v${change.from_version}.`,
    }[change.action] || `${change.action} @${change.alias}`;
    const node = document.querySelector("[data-flash]");
    node.textContent = done;
    node.hidden = false;
  }
}

const modelsRoot = document.querySelector("[data-models-view]");
if (modelsRoot) guarded(loadModels);
const modelRoot = document.querySelector("[data-model-view]");
if (modelRoot) {
  const view = new ModelView(modelRoot);
  guarded(() => view.load());
}
