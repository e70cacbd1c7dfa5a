// The run view: info, params, metrics, the note and tags (run_annotations.js), the model's signature,
// registry versions, and the artifact tree whose files preview inline (images, pretty JSON, text, small CSVs
// as tables). Every value from the run goes through textContent (el); artifact URLs are built from encoded
// path segments.
import {ApiError, api, el, fmt, formatDuration, formatTime, guarded, path} from "./common.js";
import {annotations} from "./run_annotations.js";

const PREVIEW_BYTES = 200 * 1024;
const CSV_TABLE_ROWS = 300;
const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "webp"]);
const TEXT = new Set(["txt", "csv", "md", "log", "yaml", "yml", "py"]);
const TEXT_NAMES = new Set(["MLmodel", "requirements", "requirements.txt"]);

const root = document.querySelector("[data-run-view]");
const runId = root.dataset.runId;
const $ = (selector) => root.querySelector(selector);
const notes = annotations(root, runId);

function artifactUrl(artifactPath, download = false) {
  return `/api/runs/${path(runId)}/artifacts/${path(...artifactPath.split("/"))}${download ? "?download=1" : ""}`;
}

function kind(artifactPath) {
  const name = artifactPath.split("/").pop();
  const dot = name.lastIndexOf(".");
  const suffix = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  if (IMAGE.has(suffix)) return "image";
  if (suffix === "json") return "json";
  if (suffix === "csv") return "csv";
  if (TEXT.has(suffix) || TEXT_NAMES.has(name)) return "text";
  return "other";
}

function sizeText(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function fillTable(table, rows, emptyNote) {
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  if (emptyNote) emptyNote.hidden = rows.length > 0;
}

function kvRows(entries, valueClass = "value") {
  return entries.map(([key, value]) => {
    const row = el("tr", {"data-key": key});
    row.append(el("td", {class: "key"}, key), el("td", {class: valueClass}, value));
    return row;
  });
}

function renderInfo(data) {
  const info = data.info;
  document.title = `${info.name} · mlscope`;
  $("[data-run-name]").textContent = info.name;
  const status = $("[data-status]");
  status.textContent = info.lifecycle_stage === "deleted" ? `${info.status} (deleted)` : info.status;
  status.dataset.state = info.status;
  const line = $("[data-info]");
  line.replaceChildren("Experiment ");
  if (info.experiment_name) {
    const href = `/experiments/${path(info.experiment_name)}`;
    line.append(el("a", {href, "data-experiment": ""}, info.experiment_name));
  } else {
    line.append(el("span", {}, info.experiment_id));
  }
  line.append(` · started ${formatTime(info.start_time)} · duration ${formatDuration(info.start_time, info.end_time)}`,
              ` · by ${info.user || "unknown user"}`);
  $("[data-explain]").href = `/runs/${path(runId)}/explain`;
  $("[data-json]").href = `/api/runs/${path(runId)}`;
  const mlflow = $("[data-mlflow]");
  mlflow.hidden = !(data.mlflow_ui_url && /^https?:\/\//i.test(data.mlflow_ui_url));
  if (!mlflow.hidden) mlflow.href = data.mlflow_ui_url;
}

function renderValues(data) {
  fillTable($("[data-params]"), kvRows(Object.entries(data.params)), $("[data-params-empty]"));
  const metrics = Object.entries(data.metrics).map(([key, value]) => {
    const row = el("tr", {"data-key": key});
    row.append(el("td", {class: "key"}, key),
               el("td", {class: "num value", title: value === null ? "not a number" : String(value)}, fmt(value, 4)));
    return row;
  });
  fillTable($("[data-metrics]"), metrics, $("[data-metrics-empty]"));
  notes.render(data, data.info.lifecycle_stage !== "deleted");
}

function renderModel(data) {
  const summary = $("[data-model-summary]");
  const note = $("[data-model-note]");
  if (!data.model) {
    summary.textContent = "No model logged.";
    note.hidden = true;
    $("[data-signature]").hidden = true;
    return;
  }
  const flavors = data.model.flavors.length ? data.model.flavors.join(", ") : "unknown flavors";
  summary.replaceChildren(el("code", {}, data.model.model_uri), ` · ${flavors}`);
  note.textContent = data.model.note || "";
  note.hidden = !data.model.note;
  const signature = data.signature || {inputs: [], outputs: []};
  const rows = [["input", signature.inputs], ["output", signature.outputs]].flatMap(([direction, columns]) =>
    columns.map((column) => {
      const row = el("tr", {"data-direction": direction});
      row.append(el("td", {class: "muted"}, direction), el("td", {}, column.name ?? "—"), el("td", {}, column.type),
                 el("td", {}, column.required ? "yes" : "no"));
      return row;
    }));
  fillTable($("[data-signature]"), rows);
}

function renderVersions(data) {
  const rows = data.registry_versions.map((version) => {
    const row = el("tr", {"data-version": `${version.name}/${version.version}`});
    const model = el("td");
    model.append(el("a", {href: `/models/${path(version.name)}`}, version.name));
    const aliases = el("td");
    for (const alias of version.aliases) {
      aliases.append(el("span", {class: "badge alias", "data-alias": alias}, `@${alias}`), " ");
    }
    if (!version.aliases.length) aliases.textContent = "—";
    row.append(model, el("td", {class: "num"}, `v${version.version}`), aliases, el("td", {}, version.status || "—"));
    return row;
  });
  fillTable($("[data-versions]"), rows);
  const empty = $("[data-versions-empty]");
  empty.textContent = data.registry_error || "No registry version was made from this run.";
  empty.hidden = rows.length > 0 && !data.registry_error;
}

// ---- artifacts ----

function renderArtifacts(data) {
  const tree = data.artifacts;
  const note = $("[data-artifacts-note]");
  const messages = [];
  if (tree.error) messages.push(tree.error);
  if (tree.capped) messages.push(`Showing the first ${tree.limit} artifacts only.`);
  if (!tree.entries.length && !tree.error) messages.push("No artifacts logged.");
  note.textContent = messages.join(" ");
  note.hidden = messages.length === 0;
  $("[data-artifacts]").hidden = tree.entries.length === 0;
  $("[data-tree]").replaceChildren(buildTree(tree.entries));
}

function buildTree(entries) {
  const top = el("ul");
  const folders = new Map([["", top]]);
  for (const entry of entries) {
    const cut = entry.path.lastIndexOf("/");
    const parent = folders.get(cut < 0 ? "" : entry.path.slice(0, cut)) || top;
    const name = entry.path.slice(cut + 1);
    const item = el("li");
    if (entry.is_dir) {
      const folder = el("details", {open: true});
      const children = el("ul");
      folder.append(el("summary", {class: "folder", "data-folder": entry.path}, `${name}/`), children);
      item.append(folder);
      folders.set(entry.path, children);
    } else {
      const show = el("button", {type: "button", class: "artifact", "data-artifact": entry.path, title: entry.path},
                      name);
      show.addEventListener("click", () => preview(entry));
      const download = el("a", {href: artifactUrl(entry.path, true), download: name, class: "download",
                                 "aria-label": `download ${entry.path}`, title: "download"}, "↓");
      item.append(show, " ", el("span", {class: "muted size"}, sizeText(entry.file_size)), " ", download);
    }
    parent.append(item);
  }
  return top;
}

async function fetchArtifact(url) {
  const headers = {};
  const token = sessionStorage.getItem("mlscope-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {headers});
  } catch {
    throw new ApiError("Cannot reach the mlscope server.");
  }
  if (!response.ok) {
    let problem = {};
    try {
      problem = (await response.json()).error || {};
    } catch {
      problem = {};
    }
    throw new ApiError(problem.message || `${response.status} ${response.statusText}`, {status: response.status});
  }
  return response;
}

// The first `limit` bytes of a file as text; stops reading (and downloading) beyond them.
async function readText(url, limit) {
  const reader = (await fetchArtifact(url)).body.getReader();
  const chunks = [];
  let size = 0;
  let complete = true;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size > limit) {
      complete = false;
      await reader.cancel();
      break;
    }
  }
  const bytes = new Uint8Array(Math.min(size, limit));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, Math.max(0, bytes.length - offset));
    bytes.set(part, offset);
    offset += part.length;
  }
  return {text: new TextDecoder("utf-8").decode(bytes), complete};
}

function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function csvTable(rows) {
  const table = el("table", {class: "data run-csv", "data-csv": ""});
  const head = el("tr");
  for (const name of rows[0]) head.append(el("th", {}, name));
  table.append(el("thead"), el("tbody"));
  table.tHead.append(head);
  for (const cells of rows.slice(1)) {
    const row = el("tr");
    for (const value of cells) row.append(el("td", {}, value));
    table.tBodies[0].append(row);
  }
  return table;
}

let shown = 0;
let objectUrl = null;

async function preview(entry) {
  const ticket = ++shown;
  const pane = $("[data-preview]");
  for (const button of root.querySelectorAll("button.artifact")) {
    button.classList.toggle("active", button.dataset.artifact === entry.path);
  }
  const header = el("p", {class: "run-preview-head"});
  header.append(el("strong", {"data-preview-path": ""}, entry.path), " ",
                el("span", {class: "muted"}, sizeText(entry.file_size)), " ",
                el("a", {href: artifactUrl(entry.path, true), download: entry.path.split("/").pop()}, "Download"));
  const body = el("div", {"data-preview-body": "", "data-kind": kind(entry.path)}, "Loading…");
  pane.replaceChildren(header, body);
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  try {
    const content = await previewContent(entry);
    if (ticket === shown) body.replaceChildren(...content);
  } catch (error) {
    if (ticket === shown) body.replaceChildren(el("p", {class: "error", "data-preview-error": ""}, error.message));
  }
}

async function previewContent(entry) {
  const type = kind(entry.path);
  const url = artifactUrl(entry.path);
  if (type === "image") {
    const blob = await (await fetchArtifact(url)).blob();
    objectUrl = URL.createObjectURL(blob);
    return [el("img", {src: objectUrl, alt: entry.path, class: "run-image"})];
  }
  if (type === "other") {
    return [el("p", {class: "muted"}, "This file type is not shown in the browser; use the download link.")];
  }
  const {text, complete} = await readText(url, PREVIEW_BYTES);
  const parts = [];
  if (!complete) parts.push(el("p", {class: "note"}, `Showing the first ${sizeText(PREVIEW_BYTES)} only.`));
  if (type === "json" && complete) {
    try {
      return [el("pre", {class: "run-text", "data-json-pretty": ""}, JSON.stringify(JSON.parse(text), null, 2))];
    } catch {
      parts.push(el("p", {class: "muted"}, "Not valid JSON; shown as text."));
    }
  }
  if (type === "csv" && complete) {
    const rows = parseCsv(text);
    if (rows.length > 0 && rows.length <= CSV_TABLE_ROWS + 1) return [...parts, csvTable(rows)];
  }
  parts.push(el("pre", {class: "run-text"}, text));
  return parts;
}

async function load() {
  const data = await api(`/api/runs/${path(runId)}`);
  renderInfo(data);
  renderValues(data);
  renderModel(data);
  renderVersions(data);
  renderArtifacts(data);
  root.dataset.loaded = "true";
}

guarded(load);
