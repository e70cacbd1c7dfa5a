// The experiments list: one row per active experiment, newest activity first.
import {api, el, fmt, formatTime, guarded, path} from "/static/common.js";

async function load() {
  const body = await api("/api/experiments");
  const rows = document.querySelector("[data-experiments] tbody");
  rows.replaceChildren(...body.experiments.map((experiment) => {
    const link = el("a", {href: `/experiments/${path(experiment.name)}`}, experiment.name);
    const best = experiment.best_run_id
      ? el("a", {href: `/runs/${path(experiment.best_run_id)}`}, experiment.best_run_name)
      : el("span", {class: "muted"}, "—");
    const tr = el("tr", {"data-experiment": experiment.name});
    tr.append(el("td"), el("td", {class: "num"}, String(experiment.runs)),
              el("td", {}, formatTime(experiment.last_activity)),
              el("td", {class: "num"}, fmt(experiment.best_value)), el("td"));
    tr.children[0].append(link);
    tr.children[4].append(best);
    return tr;
  }));
  document.querySelector("[data-empty]").hidden = body.experiments.length > 0;
}

guarded(load);
