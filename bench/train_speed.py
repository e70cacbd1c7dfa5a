"""Wall time of `mlscope train` against the same job written the stock MLflow way, for a shipped dataset.

Each variant runs as a fresh subprocess in a fresh temporary directory with a fresh SQLite store
(MLFLOW_TRACKING_URI=sqlite:///<tmp>/mlflow.db), `--repeats` times, alternating the variants to
spread machine noise. Wall time covers the whole command, process start to exit. After every run
the store is opened and checked; a failed command or check exits non-zero.

    .venv/bin/python bench/train_speed.py [--dataset titanic|diabetes|wine] [--repeats 3] [--json results.json]

Titanic (the default) runs `mlscope train` against bench/plain_mlflow_train.py; diabetes (regression) and
wine (multiclass) run `mlscope train --dataset NAME` against bench/plain_mlflow_demo_train.py, which reads
the same experiments TOML. The store checks expect what `mlscope train` uses for the dataset: its
experiment and registered model names and its number of enabled experiments. The plain variants do less
work than mlscope: no cross-validation, no fairness slices, no ROC/importance/report artifacts (see their
docstrings). Run this with the project's venv python; `mlscope` is looked up next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import sklearn
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

TARGET_SECONDS = {"titanic": 20.0}  # the Foundation issue's target; the other demos have none
DATASETS = ("titanic", "diabetes", "wine")
HERE = Path(__file__).resolve().parent
console = Console()


class BenchFailure(Exception):
    """A variant's command or its store check failed."""


@dataclass(frozen=True)
class Variant:
    name: str
    command: list[str]
    needs_alias: bool


@dataclass(frozen=True)
class Expected:
    """What a finished training of the dataset leaves in the store, as `mlscope train` names it."""

    dataset: str
    experiment: str
    model_name: str
    runs: int


def expected(dataset: str) -> Expected:
    """The experiment, model name and run count `mlscope train [--dataset NAME]` uses, read from mlscope."""
    from mlscope.cli.train import demo_settings
    from mlscope.config import Settings
    from mlscope.data.loader import load_demo
    from mlscope.training.experiments import load_plan

    # the defaults the subprocess sees: clean_env drops every MLSCOPE_* setting
    settings = demo_settings(Settings.model_construct(), dataset)
    runs = len(load_plan(None, load_demo(dataset).task).select())
    return Expected(dataset, settings.experiment_name, settings.model_name, runs)


@dataclass(frozen=True)
class Stats:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def as_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "median": self.median, "min": min(self.seconds), "max": max(self.seconds)}


def variants(dataset: str) -> list[Variant]:
    script = Path(sys.executable).parent / "mlscope"
    if not script.exists():
        raise BenchFailure(f"{script} not found: run this with the mlscope venv's python")
    if dataset == "titanic":
        train = [str(script), "train"]
        plain = [sys.executable, str(HERE / "plain_mlflow_train.py")]
    else:
        train = [str(script), "train", "--dataset", dataset]
        plain = [sys.executable, str(HERE / "plain_mlflow_demo_train.py"), "--dataset", dataset]
    return [
        Variant("mlscope", train, needs_alias=True),
        Variant("mlscope --no-explain", [*train, "--no-explain"], needs_alias=True),
        Variant("plain", plain, needs_alias=False),
    ]


def clean_env(tracking_uri: str) -> dict[str, str]:
    """The caller's environment without MLflow/mlscope settings, pointed at the fresh store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSCOPE_"))}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_store(uri: str, variant: Variant, want: Expected) -> None:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    problems: list[str] = []
    experiment = client.get_experiment_by_name(want.experiment)
    if experiment is None:
        raise BenchFailure(f"{variant.name}: no experiment {want.experiment!r} in {uri}")
    runs = client.search_runs([experiment.experiment_id])
    statuses = sorted(run.info.status for run in runs)
    if statuses != ["FINISHED"] * want.runs:
        problems.append(f"expected {want.runs} FINISHED runs, got {statuses}")
    versions = client.search_model_versions(f"name='{want.model_name}'")
    if len(versions) != want.runs:
        problems.append(f"expected {want.runs} versions of {want.model_name!r}, got {len(versions)}")
    if variant.needs_alias:
        try:
            client.get_model_version_by_alias(want.model_name, "staging")
        except MlflowException as exc:
            problems.append(f"alias 'staging' not set: {str(exc).splitlines()[0]}")
    if problems:
        raise BenchFailure(f"{variant.name}: " + "; ".join(problems))


def run_once(variant: Variant, want: Expected) -> tuple[float, str]:
    """Run one variant in a fresh directory and store; return its wall time and its stderr."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant.name}-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        started = time.perf_counter()
        done = subprocess.run(variant.command, cwd=tmp, env=clean_env(uri), capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchFailure(f"{variant.name} exited with {done.returncode}; stderr tail:\n{tail(done.stderr)}")
        check_store(uri, variant, want)
    return seconds, done.stderr


def machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def results_table(stats: dict[str, Stats]) -> Table:
    table = Table(title="Wall time per command (s)", title_justify="left", header_style="bold")
    for column in ("variant", "median", "min", "max", "runs"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, stat in stats.items():
        table.add_row(name, f"{stat.median:.2f}", f"{min(stat.seconds):.2f}", f"{max(stat.seconds):.2f}",
                      " ".join(f"{s:.1f}" for s in stat.seconds))
    return table


def bench(repeats: int, want: Expected) -> dict[str, Stats]:
    todo = variants(want.dataset)
    times: dict[str, list[float]] = {v.name: [] for v in todo}
    total = repeats * len(todo)
    for repeat in range(repeats):
        order = todo if repeat % 2 == 0 else todo[::-1]
        for variant in order:
            seconds, stderr = run_once(variant, want)
            times[variant.name].append(seconds)
            console.print(f"[{sum(map(len, times.values()))}/{total}] {variant.name:<20} "
                          f"repeat {repeat + 1}: {seconds:6.2f}s  store checks ok")
            if variant.name == "mlscope" and repeat == 0 and stderr.strip():
                console.print(f"mlscope train wrote to stderr:\n{tail(stderr)}", markup=False, highlight=False)
    return {name: Stats(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="titanic", help="shipped dataset (default titanic)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    context = machine()
    want = expected(args.dataset)
    console.print("Machine: " + ", ".join(f"{k}={v}" for k, v in context.items()), highlight=False)
    console.print(f"Dataset {want.dataset}: {want.runs} runs into experiment {want.experiment!r}, "
                  f"model {want.model_name!r}", highlight=False)
    console.print("Note: the plain variant does LESS work than mlscope (no 5-fold CV, no fairness slices, "
                  "no ROC/importance/report artifacts, no alias).")
    try:
        stats = bench(args.repeats, want)
    except BenchFailure as exc:
        console.print(f"[bold red]FAILED:[/] {exc}", highlight=False)
        return 1

    load_end = round(os.getloadavg()[0], 2)
    console.print(f"Load average (1 min) at start {context['loadavg_1m_at_start']}, at end {load_end} "
                  f"on {context['cpu_count']} CPUs")
    console.print(results_table(stats))
    target = TARGET_SECONDS.get(want.dataset)
    ratios, under = {}, {}
    for name in (n for n in stats if n != "plain"):
        ratios[name] = stats["plain"].median / stats[name].median
        line = f"plain / {name} (median): {ratios[name]:.2f}x"
        if target is not None:
            under[name] = stats[name].median < target
            verdict = "[green]yes[/]" if under[name] else "[red]no[/]"
            line += f"; under the {target:.0f} s target: {verdict} ({stats[name].median:.2f}s)"
        console.print(line)
    if args.json:
        payload = {
            "machine": {**context, "loadavg_1m_at_end": load_end},
            "dataset": want.dataset,
            "expected": {"experiment": want.experiment, "model_name": want.model_name, "runs": want.runs},
            "repeats": args.repeats,
            "target_seconds": target,
            "variants": {name: stat.as_dict() for name, stat in stats.items()},
            "ratio_plain_over": ratios,
            "under_target": under,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
