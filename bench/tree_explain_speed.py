"""Exact tree explanations at any width: mlscope's tree path against shap.TreeExplainer, side by side.

    .venv/bin/python bench/tree_explain_speed.py [--quick] [--widths 30,100,300] [--rows 1000]
        [--background 100] [--train 2000] [--single-rows 20] [--models rf,hgb,xgboost,lightgbm] [--json PATH]

(from the repository root). Data: `make_classification` (binary, seed 0) with --train training rows and
each width of features (a third informative); the explained rows and the background are further rows of
the same draw. Models, fitted on the numeric matrix (no preprocessing: shap cannot group columns, so the
comparison is per column, which here is per raw feature): RandomForestClassifier(200 trees), and
HistGradientBoosting, XGBoost and LightGBM classifiers with their default settings.

Both sides explain the model's raw output on the same rows against the same background: the class
probabilities of the forest, the margin (log-odds) of the boosters — shap's default model_output="raw".
- mlscope: `TreePath.build(model, features, background)` + `.explain(rows)`;
- shap: `shap.TreeExplainer(model, background, feature_perturbation="interventional")` +
  `.shap_values(rows, check_additivity=False)`.
Each side runs in its own subprocess (so peak RSS is that side's alone: ru_maxrss of the worker, which
includes Python, the imports, the model and the data), first on one row untimed (numba compilation for
mlscope; reported as "first call"), then timed: construction + all rows. Then the one-row latency with
the explainer kept (as the API keeps one per loaded model): median over --single-rows rows, each
explained alone. The values of both sides are compared (max |difference|, target <= 1e-6), and each
side's additivity |base + sum - model output| is reported against the model's own raw output.

Targets (issue 14): mlscope >= 2x faster than shap at every width; one row < 20 ms at 100 features for
the forest; peak RSS < 2 GB at 300 features. The machine is shared: the load average is printed.
`--quick` is a smoke run (30 features, 100 rows, 50 background rows, 500 training rows)."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROW_TARGET_MS = 20.0  # the forest at 100 features
SPEED_TARGET = 2.0  # shap / mlscope
MEMORY_TARGET_MB = 2048.0
TOLERANCE = 1e-6


# --- worker: one side, one model, in its own process -----------------------------------------------

def worker(side: str, case_path: Path, out_path: Path, single_rows: int) -> None:
    with case_path.open("rb") as handle:
        case = pickle.load(handle)
    model, rows, background = case["model"], case["rows"], case["background"]
    if side == "mlscope":
        import pandas as pd

        from mlscope.explain.tree_path import TreePath

        features = [f"x{i}" for i in range(rows.shape[1])]
        frame_rows, frame_background = pd.DataFrame(rows, columns=features), pd.DataFrame(background, columns=features)

        def build() -> Any:
            return TreePath.build(model, features, frame_background)

        def explain(explainer: Any, i: slice) -> tuple[np.ndarray, np.ndarray]:
            result = explainer.explain(frame_rows.iloc[i])
            return result.values, result.base
    else:
        import warnings

        import shap

        warnings.simplefilter("ignore")

        def build() -> Any:
            return shap.TreeExplainer(model, background, feature_perturbation="interventional")

        def explain(explainer: Any, i: slice) -> tuple[np.ndarray, np.ndarray]:
            values = np.asarray(explainer.shap_values(rows[i], check_additivity=False), dtype=np.float64)
            return values.reshape(len(rows[i]), rows.shape[1], -1), np.atleast_1d(explainer.expected_value)

    started = time.perf_counter()
    explain(build(), slice(0, 1))
    first_call = time.perf_counter() - started

    started = time.perf_counter()
    explainer = build()
    values, base = explain(explainer, slice(None))
    seconds = time.perf_counter() - started

    single = []
    for i in range(min(single_rows, len(rows))):
        started = time.perf_counter()
        explain(explainer, slice(i, i + 1))
        single.append(time.perf_counter() - started)
    np.save(out_path.with_suffix(".npy"), values)
    out_path.write_text(json.dumps({
        "seconds": seconds, "first_call": first_call, "single_ms": statistics.median(single) * 1000,
        "base": np.asarray(base, dtype=float).ravel().tolist(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": _threads(side),
    }))


def _threads(side: str) -> int:
    if side == "mlscope":
        import numba

        return int(numba.get_num_threads())
    return 1  # shap's tree C extension runs on one thread


# --- driver ----------------------------------------------------------------------------------------

@dataclass
class Side:
    seconds: float
    first_call: float
    single_ms: float
    peak_rss_mb: float
    threads: int
    additivity: float


@dataclass
class Result:
    width: int
    model: str
    trees: int
    leaves: int
    ours: Side
    shap: Side
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return self.shap.seconds / self.ours.seconds


def make_models(names: list[str]) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    models: dict[str, Any] = {}
    for name in names:
        if name == "rf":
            models[name] = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=-1)
        elif name == "hgb":
            models[name] = HistGradientBoostingClassifier(random_state=0)
        elif name == "xgboost":
            import xgboost

            models[name] = xgboost.XGBClassifier(random_state=0)
        elif name == "lightgbm":
            import lightgbm

            models[name] = lightgbm.LGBMClassifier(random_state=0, verbose=-1)
        else:
            raise SystemExit(f"unknown model {name!r} (rf, hgb, xgboost, lightgbm)")
    return models


def raw_output(model: Any, X: np.ndarray) -> np.ndarray:
    name = type(model).__name__
    if name.startswith("XGB"):
        raw = model.predict(X, output_margin=True)
    elif name.startswith("LGBM"):
        raw = model.predict(X, raw_score=True)
    elif name.startswith("HistGradientBoosting"):
        raw = model.decision_function(X)
    else:
        raw = model.predict_proba(X)
    return np.asarray(raw, dtype=np.float64).reshape(len(X), -1)


def run_side(side: str, case_path: Path, workdir: Path, single_rows: int, raw: np.ndarray) -> tuple[Side, np.ndarray]:
    out = workdir / f"{side}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--case", str(case_path),
               "--out", str(out), "--single-rows", str(single_rows)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)  # shap draws a progress bar on stderr
    if done.returncode:
        raise SystemExit(f"{side} worker failed:\n{done.stderr}")
    report = json.loads(out.read_text())
    values = np.load(out.with_suffix(".npy"))
    additivity = float(np.abs(np.asarray(report["base"]) + values.sum(axis=1) - raw).max())
    return Side(report["seconds"], report["first_call"], report["single_ms"], report["peak_rss_mb"],
                report["threads"], additivity), values


def size(model: Any) -> tuple[int, int]:
    from mlscope.explain.tree_models import extract_ensemble

    ensemble = extract_ensemble(model)
    return ensemble.n_trees, int((ensemble.left < 0).sum())


def bench(width: int, name: str, model: Any, args: argparse.Namespace, workdir: Path) -> Result:
    from sklearn.datasets import make_classification

    total = args.train + args.rows + args.background
    X, y = make_classification(total, width, n_informative=max(2, width // 3), n_redundant=0, random_state=0)
    train, rows, background = X[:args.train], X[args.train:args.train + args.rows], X[args.train + args.rows:]
    model.fit(train, y[:args.train])
    case_path = workdir / "case.pkl"
    with case_path.open("wb") as handle:
        pickle.dump({"model": model, "rows": rows, "background": background}, handle)
    raw = raw_output(model, rows)
    ours, our_values = run_side("mlscope", case_path, workdir, args.single_rows, raw)
    theirs, their_values = run_side("shap", case_path, workdir, args.single_rows, raw)
    trees, leaves = size(model)
    return Result(width, name, trees, leaves, ours, theirs, float(np.abs(our_values - their_values).max()))


def versions() -> dict[str, str]:
    import lightgbm
    import numba
    import shap
    import sklearn
    import xgboost

    return {"python": platform.python_version(), "numpy": np.__version__, "shap": shap.__version__,
            "sklearn": sklearn.__version__, "xgboost": xgboost.__version__, "lightgbm": lightgbm.__version__,
            "numba": numba.__version__}


def commit() -> str:
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=HERE.parent).stdout.strip()  # noqa: E731
    dirty = " (uncommitted changes in src/)" if git("status", "--porcelain", "src") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def report(results: list[Result], args: argparse.Namespace, context: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=240)
    table = Table(title=f"{args.rows} rows x {args.background} background rows, exact interventional, raw output")
    for column in ("features", "model", "trees / leaves", "mlscope", "shap", "shap / mlscope", f">= {SPEED_TARGET:g}x",
                   "max |diff|", "additivity mlscope / shap", "one row mlscope / shap", "first call mlscope",
                   "peak RSS mlscope / shap"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        met = "[green]yes[/green]" if r.ratio >= SPEED_TARGET else "[red]no[/red]"
        table.add_row(str(r.width), r.model, f"{r.trees} / {r.leaves}", f"{r.ours.seconds:.2f} s", f"{r.shap.seconds:.2f} s",
                      f"{r.ratio:.1f}x", met, f"{r.max_abs_diff:.1e}", f"{r.ours.additivity:.0e} / {r.shap.additivity:.0e}",
                      f"{r.ours.single_ms:.1f} / {r.shap.single_ms:.1f} ms", f"{r.ours.first_call:.1f} s",
                      f"{r.ours.peak_rss_mb:.0f} / {r.shap.peak_rss_mb:.0f} MB")
    console.print(table)
    forest = [r for r in results if r.model == "rf" and r.width == 100]
    if forest:
        ms = forest[0].ours.single_ms
        console.print(f"One row, forest at 100 features, explainer kept: {ms:.1f} ms (target < {ROW_TARGET_MS:g} ms: "
                      f"{'met' if ms < ROW_TARGET_MS else 'MISSED'})")
    widest = max((r.width for r in results), default=0)
    peak = max((r.ours.peak_rss_mb for r in results if r.width == widest), default=0.0)
    console.print(f"Peak RSS of mlscope at {widest} features: {peak:.0f} MB (target < {MEMORY_TARGET_MB:.0f} MB "
                  f"at 300 features)")
    slow = [f"{r.model}@{r.width}: {r.ratio:.1f}x" for r in results if r.ratio < SPEED_TARGET]
    console.print("Speed target (>= 2x at every width): " + ("met" if not slow else "MISSED for " + ", ".join(slow)))
    differ = [f"{r.model}@{r.width}: {r.max_abs_diff:.1e}" for r in results if r.max_abs_diff > TOLERANCE]
    console.print(f"Values equal within {TOLERANCE:g}: " + ("yes" if not differ else "no for " + ", ".join(differ)))
    console.print(f"Machine: {context['cpu_count']} CPUs, load average {context['load_start']} at start, "
                  f"{context['load_end']} at end; mlscope on {results[0].ours.threads if results else '?'} numba "
                  f"threads, shap on 1; {context['versions']}; commit {context['commit']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--widths", default="30,100,300")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--background", type=int, default=100)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--single-rows", type=int, default=20)
    parser.add_argument("--models", default="rf,hgb,xgboost,lightgbm")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--worker", choices=["mlscope", "shap"], help=argparse.SUPPRESS)
    parser.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.case, args.out, args.single_rows)
        return 0
    if args.quick:
        args.widths, args.rows, args.background, args.train, args.single_rows = "30", 100, 50, 500, 5
    load_start = [round(x, 2) for x in os.getloadavg()]
    source = commit()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in [int(w) for w in args.widths.split(",")]:
            for name, model in make_models(args.models.split(",")).items():
                print(f"{name} at {width} features ...", file=sys.stderr, flush=True)
                results.append(bench(width, name, model, args, Path(tmp)))
    context = {"cpu_count": os.cpu_count(), "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()],
               "versions": versions(), "commit": source}
    report(results, args, context)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "context": context,
            "results": [asdict(r) | {"ratio": r.ratio} for r in results]}, indent=2))
    return 0 if all(r.max_abs_diff <= TOLERANCE for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
