"""Wall time of mlscope's exact Shapley engine against shap's explainers, side by side in one run.

    .venv/bin/python bench/explain_speed.py [--repeats 3] [--shap-repeats 1] [--rows 15] [--json PATH]

(from the repository root). The four Titanic models are fitted as in tests/unit/test_shapley.py; the
background is a fixed 100-row sample of the training split (seed 42); the rows are the 179-row test split.

1. Global: `ShapleyExplainer(model, background).explain(rows)` (median of --repeats) against
   `shap.explainers.Exact` on the same function, rows and background, handed integer codes (median of
   --shap-repeats). Building the codebook and encoding for shap is not timed. Values and base values
   must agree to 1e-9, or the script exits 1. Target: shap / mlscope >= 10x.
2. Random forests only: `shap.TreeExplainer` (interventional, probability) on the one-hot encoded rows,
   construction + explanation (median of --repeats). It explains encoded columns, not raw features:
   a timing reference, not the same quantity. Its additivity error |base + sum - f(x)| is reported
   (shap's interventional tree algorithm is known to lose additivity on deep trees, shap#3267).
3. One row: `explainer.explain(X_test.iloc[[i]])` for i < --rows through one explainer built once
   (construction not timed), median — how the prediction API and the dashboard explain a row: one
   explainer per loaded model. Targets: < 20 ms for the forests, < 50 ms for the SVM. Also a fresh
   `ShapleyExplainer(model, background)` per row (construction timed), and shap's Exact explainer on one
   row (fresh explainer, median of 5 rows) for comparison; its values must agree too.

Before any timing, both explainers run once on one row untimed: shap's first call compiles its numba
kernels (~10 s), which would otherwise land on the first model's shap time. The output names the git
commit and a hash of the engine's source files as imported, since src/ may carry uncommitted changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import sklearn
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from mlscope.data.loader import load_titanic
from mlscope import estimators
from mlscope.explain import model_eval, shapley
from mlscope.explain.model_eval import Codebook
from mlscope.explain.shapley import Explanation, ShapleyExplainer, sample_background
from mlscope.training.experiments import load_plan, quiet_seed_deprecations
from mlscope.training.features import build_pipeline
from mlscope.training.prepare import Split

BACKGROUND_ROWS, BACKGROUND_SEED = 100, 42
TOLERANCE = 1e-9
GLOBAL_TARGET = 10.0  # shap Exact / mlscope
ROW_TARGET_MS = {"rf-baseline": 20.0, "rf-tuned": 20.0, "svm": 50.0}
SHAP_SINGLE_ROWS = 5
HERE = Path(__file__).resolve().parent
console = Console()


def timed(call: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Seconds of each of `repeats` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def shap_exact(model: Pipeline, codebook: Codebook, rows: pd.DataFrame,
               background: pd.DataFrame) -> Callable[[], Any]:
    """shap's exact explainer over integer codes, decoded back to raw records for the model."""
    x, b = codebook.encode(rows), codebook.encode(background)

    def run() -> Any:
        f = lambda codes: model.predict_proba(codebook.decode(np.asarray(codes, dtype=np.int64)))[:, 1]  # noqa: E731
        masker = shap.maskers.Independent(b, max_samples=len(b))
        return shap.explainers.Exact(f, masker)(x, silent=True)

    return run


def difference(ours: Explanation, reference: Any) -> float:
    values = float(np.abs(ours.values - reference.values).max())
    return max(values, float(np.abs(ours.base_value - np.asarray(reference.base_values)).max()))


@dataclass
class GlobalResult:
    model: str
    ours_s: list[float]
    shap_s: list[float]
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return statistics.median(self.shap_s) / statistics.median(self.ours_s)


@dataclass
class TreeResult:
    model: str
    ours_s: list[float]
    tree_s: list[float]
    encoded_columns: int
    max_depth: int
    additivity_error: float

    @property
    def ratio(self) -> float:
        return statistics.median(self.tree_s) / statistics.median(self.ours_s)


@dataclass
class RowResult:
    model: str
    ours_s: list[float]
    reused_s: list[float]
    shap_s: list[float]
    max_abs_diff: float

    @property
    def target_ms(self) -> float | None:
        return ROW_TARGET_MS.get(self.model)


def global_bench(name: str, model: Pipeline, rows: pd.DataFrame, background: pd.DataFrame,
                 repeats: int, shap_repeats: int) -> GlobalResult:
    ours_s, ours = timed(lambda: ShapleyExplainer(model, background).explain(rows), repeats)
    codebook = Codebook([rows, background], list(rows.columns))
    shap_s, reference = timed(shap_exact(model, codebook, rows, background), shap_repeats)
    return GlobalResult(name, ours_s, shap_s, difference(ours, reference))


def tree_bench(name: str, model: Pipeline, rows: pd.DataFrame, background: pd.DataFrame,
               ours_s: list[float], repeats: int) -> TreeResult:
    preprocess, forest = model.named_steps["preprocess"], model.steps[-1][1]
    dense = lambda a: a.toarray() if hasattr(a, "toarray") else np.asarray(a, dtype=float)  # noqa: E731
    x, b = dense(preprocess.transform(rows)), dense(preprocess.transform(background))

    def run() -> Any:
        explainer = shap.TreeExplainer(forest, data=b, feature_perturbation="interventional",
                                       model_output="probability")
        return explainer(x)

    tree_s, explanation = timed(run, repeats)
    values = np.asarray(explanation.values)
    positive = values[..., list(forest.classes_).index(1)] if values.ndim == 3 else values
    output = forest.predict_proba(x)[:, list(forest.classes_).index(1)]
    base = np.asarray(explanation.base_values)
    base = base[..., list(forest.classes_).index(1)] if base.ndim == 2 else base
    additivity = float(np.abs(base + positive.sum(axis=1) - output).max())
    depth = max(tree.get_depth() for tree in forest.estimators_)
    return TreeResult(name, ours_s, tree_s, x.shape[1], depth, additivity)


def row_bench(name: str, model: Pipeline, test: pd.DataFrame, background: pd.DataFrame, n_rows: int) -> RowResult:
    ours_s: list[float] = []
    for i in range(n_rows):
        seconds, _ = timed(lambda: ShapleyExplainer(model, background).explain(test.iloc[[i]]), 1)
        ours_s += seconds
    explainer = ShapleyExplainer(model, background)
    reused_s: list[float] = []
    for i in range(n_rows):
        seconds, _ = timed(lambda: explainer.explain(test.iloc[[i]]), 1)
        reused_s += seconds
    codebook = Codebook([test, background], list(test.columns))
    shap_s: list[float] = []
    diff = 0.0
    for i in range(min(SHAP_SINGLE_ROWS, n_rows)):
        row = test.iloc[[i]]
        seconds, reference = timed(shap_exact(model, codebook, row, background), 1)
        shap_s += seconds
        diff = max(diff, difference(ShapleyExplainer(model, background).explain(row), reference))
    return RowResult(name, ours_s, reused_s, shap_s, diff)


def source_state() -> dict[str, Any]:
    """Commit, uncommitted files under src/, and a hash of the engine modules as imported."""
    git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE.parent).stdout.strip()  # noqa: E731
    digest = hashlib.sha256()
    for module in (shapley, model_eval, estimators):
        digest.update(Path(str(module.__file__)).read_bytes())
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_src": git("status", "--porcelain", "src").splitlines(),
            "engine_sha256": digest.hexdigest()[:12]}


def context(load_start: tuple[float, float, float], source: dict[str, Any]) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        **source,
        "python": platform.python_version(),
        "shap": shap.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def yes(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def report(globals_: list[GlobalResult], trees: list[TreeResult], rows: list[RowResult], ctx: dict[str, Any]) -> None:
    table = Table(title="Global: 179 test rows x 100 background rows, exact, raw features")
    for column in ("model", "mlscope", "shap Exact", "shap / mlscope", f">= {GLOBAL_TARGET:.0f}x", "max |diff|"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for g in globals_:
        table.add_row(g.model, f"{median_ms(g.ours_s):.0f} ms", f"{median_ms(g.shap_s) / 1000:.1f} s",
                      f"{g.ratio:.0f}x", yes(g.ratio >= GLOBAL_TARGET), f"{g.max_abs_diff:.1e}")
    console.print(table)

    table = Table(title="Random forests: shap.TreeExplainer (interventional, probability) - timing reference only")
    for column in ("model", "mlscope (raw features)", "TreeExplainer (encoded cols)", "Tree / mlscope",
                   "mlscope faster", "Tree additivity err", "tree depth"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for t in trees:
        table.add_row(t.model, f"{median_ms(t.ours_s):.0f} ms", f"{median_ms(t.tree_s):.0f} ms ({t.encoded_columns})",
                      f"{t.ratio:.2f}x", yes(t.ratio > 1), f"{t.additivity_error:.1e}", str(t.max_depth))
    console.print(table)
    console.print("Timing reference only: TreeExplainer explains the encoded (one-hot/scaled) columns, not the raw "
                  "features, so its values are not comparable to mlscope's. mlscope's additivity error is ~1e-16.")

    table = Table(title="One row: explainer built once per model (as served), and fresh each time")
    for column in ("model", "built once: median", "min", "max", "target", "met", "fresh explainer", "shap Exact",
                   "shap / built once", "max |diff|"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        reused = median_ms(r.reused_s)
        table.add_row(r.model, f"{reused:.1f} ms", f"{min(r.reused_s) * 1000:.1f}", f"{max(r.reused_s) * 1000:.1f}",
                      f"< {r.target_ms:.0f} ms" if r.target_ms else "-",
                      yes(reused < r.target_ms) if r.target_ms else "-", f"{median_ms(r.ours_s):.1f} ms",
                      f"{median_ms(r.shap_s):.0f} ms", f"{median_ms(r.shap_s) / reused:.1f}x", f"{r.max_abs_diff:.1e}")
    console.print(table)
    console.print(f"Machine: {ctx['cpu_count']} CPUs, load average {ctx['load_average_start']} at start, "
                  f"{ctx['load_average_end']} at end; Python {ctx['python']}, shap {ctx['shap']}, "
                  f"scikit-learn {ctx['sklearn']}, numpy {ctx['numpy']}")
    dirty = ", ".join(ctx["dirty_src"]) or "none"
    console.print(f"Source: commit {ctx['commit']}, engine sha256 {ctx['engine_sha256']}, uncommitted in src/: {dirty}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="mlscope and TreeExplainer timings (median)")
    parser.add_argument("--shap-repeats", type=int, default=1, help="shap Exact global timings (slow)")
    parser.add_argument("--rows", type=int, default=15, help="single rows timed per model")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    source = source_state()  # at the start: src/ may change while this runs

    data = load_titanic()
    plan = load_plan()
    split = Split.make(data, plan.split)
    with quiet_seed_deprecations():
        models = {s.name: build_pipeline(data, s.build()).fit(split.X_train, split.y_train) for s in plan.select()}
    background = sample_background(split.X_train, BACKGROUND_ROWS, BACKGROUND_SEED)
    rows = split.X_test
    warm = models[next(iter(models))]
    ShapleyExplainer(warm, background).explain(rows.iloc[[0]])
    shap_exact(warm, Codebook([rows, background], list(rows.columns)), rows.iloc[[0]], background)()

    globals_, trees, singles = [], [], []
    for name, model in models.items():
        console.print(f"[dim]{name}: global ...[/dim]")
        globals_.append(global_bench(name, model, rows, background, args.repeats, args.shap_repeats))
        if isinstance(model.steps[-1][1], RandomForestClassifier):
            console.print(f"[dim]{name}: TreeExplainer ...[/dim]")
            trees.append(tree_bench(name, model, rows, background, globals_[-1].ours_s, args.repeats))
        console.print(f"[dim]{name}: single rows ...[/dim]")
        singles.append(row_bench(name, model, rows, background, args.rows))
    ctx = context(load_start, source)
    report(globals_, trees, singles, ctx)

    worst = max([g.max_abs_diff for g in globals_] + [r.max_abs_diff for r in singles])
    equal = worst <= TOLERANCE
    console.print(f"Equality with shap Exact (<= {TOLERANCE:g}): {yes(equal)} (worst {worst:.1e})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "context": ctx,
            "global": [asdict(g) | {"ratio": g.ratio, "meets_target": g.ratio >= GLOBAL_TARGET} for g in globals_],
            "tree_explainer": [asdict(t) | {"ratio": t.ratio, "ours_faster": t.ratio > 1} for t in trees],
            "single_row": [asdict(r) | {"median_ms": median_ms(r.ours_s), "reused_median_ms": median_ms(r.reused_s),
                                        "shap_median_ms": median_ms(r.shap_s), "target_ms": r.target_ms}
                           for r in singles],
            "equal_to_shap": equal,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"Wrote {args.json}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
