// The experiments list: one row per active experiment, newest activity first, with the metric that decides
// its best run (its own default unless ?metric= picks one for all) and that run.
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
    const metric = el("td", {"data-best-by": experiment.metric_source, title: experiment.metric_reason},
                      experiment.metric);
    tr.append(el("td"), el("td", {class: "num"}, String(experiment.runs)),
              el("td", {}, formatTime(experiment.last_activity)), metric,
              el("td", {class: "num"}, fmt(experiment.best_value)), el("td"));
    tr.children[0].append(link);
    tr.children[5].append(best);
    return tr;
  }));
  document.querySelector("[data-empty]").hidden = body.experiments.length > 0;
}

guarded(load);
