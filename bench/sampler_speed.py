"""Time to a stated accuracy: mlscope's sampler with error bars against shap's Permutation- and KernelExplainer.

    .venv/bin/python bench/sampler_speed.py [--rows 5] [--seeds 3] [--target 0.005] [--kernel-max-seconds 240]
        [--json PATH]

(from the repository root). Data: `make_classification(600, 30, n_informative=10, random_state=0)`;
the models (SVC(probability=True), MLPClassifier(64)) are fitted on the first 500 rows, the background is
100 of them, the explained rows are the last --rows. Output: P(class 1).

Reference: mlscope's sampler run long (tolerance --reference-tolerance, its own seed, untimed); its
largest standard error is printed, so the reference's own error is on the table.

Each tool climbs a ladder of settings (mlscope: tolerance 0.01, 0.007, 0.005, ...; shap: max_evals =
(2 M + 1) x 1, 2, 4, ... permutations, the unit its explainer uses) and stops at the first setting where
every one of --seeds seeds gives max |value - reference| <= --target over all rows and features. That
setting's median wall time per seed is the tool's time; target: mlscope <= 1/3 of shap's. mlscope
evaluates the model through the engine's own path for a bare estimator (integer codes decoded to a
DataFrame, `RawEvaluator`); shap gets `lambda X: model.predict_proba(X)[:, 1]` on the numpy matrix and
`shap.maskers.Independent(background, max_samples=100)`.

KernelSHAP (shap.KernelExplainer: a weighted regression on coalitions, its small subset sizes enumerated
and the rest sampled in complement pairs) gets the same function and the same 100 background rows as its
data, so it estimates the same quantity as the reference; ladder nsamples = 2 M + 2048 x 1, 2, 4, ...
(its own default is 2 M + 2048), `l1_reg=False` (its default, "num_features(10)", keeps 10 of the 30
features and sets the other 20 to zero), `np.random.seed(seed)` before each call (it draws from
np.random). It costs nsamples x 100 evaluations per row. Its ladder stops, not reached, before a rung
that would take its time on this model past --kernel-max-seconds (estimated as twice the last rung).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import sklearn
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, git  # noqa: E402

from mlscope.explain.model_eval import Codebook, RawEvaluator  # noqa: E402
from mlscope.explain.sampling import SampledValues, sample_shapley  # noqa: E402

FEATURES, TRAIN_ROWS, BACKGROUND_ROWS = 30, 500, 100
TOLERANCES = (0.01, 0.007, 0.005, 0.004, 0.003, 0.002, 0.0015, 0.001, 0.0007, 0.0005)
SHAP_PERMUTATIONS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
KERNEL_MULTIPLES = (1, 2, 4, 8, 16, 32, 64, 128)  # nsamples = 2 M + 2048 x these
TARGET_RATIO = 3.0
console = Console(width=240)


@dataclass
class Step:
    setting: str
    seconds: list[float]
    max_errors: list[float]
    evaluations: list[int] = field(default_factory=list)

    def reached(self, target: float) -> bool:
        return max(self.max_errors) <= target


@dataclass
class Result:
    model: str
    reference_max_se: float
    reference_seconds: float
    ours: list[Step]
    shap: list[Step]
    max_additivity_error: float
    kernel: list[Step] = field(default_factory=list)
    kernel_seconds_spent: float = 0.0  # all KernelExplainer calls on this model, every rung and seed
    kernel_cap: float = 0.0

    def time_to_target(self, steps: list[Step], target: float) -> float | None:
        hit = next((s for s in steps if s.reached(target)), None)
        return statistics.median(hit.seconds) if hit else None


def models() -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_classification(TRAIN_ROWS + 100, FEATURES, n_informative=10, random_state=0)
    train_X, train_y = X[:TRAIN_ROWS], y[:TRAIN_ROWS]
    background = train_X[np.random.default_rng(42).choice(TRAIN_ROWS, BACKGROUND_ROWS, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = {"svm": SVC(probability=True, random_state=0).fit(train_X, train_y),
                  "mlp": MLPClassifier((64,), max_iter=300, random_state=0).fit(train_X, train_y)}
    return fitted, X[TRAIN_ROWS:], background, train_X


def ours(model: Any, rows: np.ndarray, background: np.ndarray) -> Callable[[float, int], SampledValues]:
    columns = [f"x{j}" for j in range(rows.shape[1])]
    frame_rows, frame_background = pd.DataFrame(rows, columns=columns), pd.DataFrame(background, columns=columns)
    codebook = Codebook([frame_background, frame_rows], columns)
    evaluate = RawEvaluator(codebook, lambda frame: model.predict_proba(frame.to_numpy(dtype=float))[:, 1])
    x_codes, b_codes = codebook.encode(frame_rows), codebook.encode(frame_background)
    return lambda tolerance, seed: sample_shapley(x_codes, b_codes, evaluate, tolerance=tolerance,
                                                  max_evaluations=10**10, max_seconds=3600, seed=seed)


def shap_run(model: Any, rows: np.ndarray, background: np.ndarray, permutations: int, seed: int) -> np.ndarray:
    f = lambda X: model.predict_proba(X)[:, 1]  # noqa: E731
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(background, max_samples=BACKGROUND_ROWS),
                                          seed=seed)
    return np.asarray(explainer(rows, max_evals=(2 * rows.shape[1] + 1) * permutations, silent=True).values)


def kernel_run(model: Any, rows: np.ndarray, background: np.ndarray, nsamples: int, seed: int) -> np.ndarray:
    f = lambda X: model.predict_proba(X)[:, 1]  # noqa: E731
    explainer = shap.KernelExplainer(f, background)
    np.random.seed(seed)  # KernelExplainer samples coalitions from np.random
    return np.asarray(explainer.shap_values(rows, nsamples=nsamples, l1_reg=False, silent=True))


def bench(name: str, model: Any, rows: np.ndarray, background: np.ndarray, seeds: int, target: float,
          reference_tolerance: float, kernel_max_seconds: float) -> Result:
    sample = ours(model, rows, background)
    started = time.perf_counter()
    reference = sample(reference_tolerance, 10_000)
    reference_seconds = time.perf_counter() - started
    console.print(f"[dim]{name}: reference in {reference_seconds:.1f} s, largest SE "
                  f"{reference.standard_errors.max():.1e} ({reference.evaluations:,} evaluations)[/dim]")
    our_steps, additivity = [], 0.0
    for tolerance in TOLERANCES:
        step = Step(f"tolerance {tolerance:g}", [], [])
        for seed in range(seeds):
            started = time.perf_counter()
            result = sample(tolerance, seed)
            step.seconds.append(time.perf_counter() - started)
            step.max_errors.append(float(np.abs(result.values - reference.values).max()))
            step.evaluations.append(result.evaluations)
            additivity = max(additivity, float(np.abs(result.base + result.values.sum(axis=1) - result.outputs).max()))
        our_steps.append(step)
        console.print(f"[dim]{name}: mlscope {step.setting}: {statistics.median(step.seconds):.2f} s, "
                      f"max |error| {max(step.max_errors):.4f}[/dim]")
        if step.reached(target):
            break
    shap_steps = []
    for permutations in SHAP_PERMUTATIONS:
        # shap evaluates (2 M + 1) masks per permutation, each on every background row
        step = Step(f"{permutations} permutations", [], [], [(2 * FEATURES + 1) * permutations * BACKGROUND_ROWS * len(rows)])
        for seed in range(seeds):
            started = time.perf_counter()
            values = shap_run(model, rows, background, permutations, seed)
            step.seconds.append(time.perf_counter() - started)
            step.max_errors.append(float(np.abs(values - reference.values).max()))
        shap_steps.append(step)
        console.print(f"[dim]{name}: shap {step.setting}: {statistics.median(step.seconds):.2f} s, "
                      f"max |error| {max(step.max_errors):.4f}[/dim]")
        if step.reached(target):
            break
    kernel_steps, kernel_spent = [], 0.0
    for multiple in KERNEL_MULTIPLES:
        nsamples = 2 * FEATURES + 2048 * multiple
        if kernel_steps and kernel_spent + 2 * sum(kernel_steps[-1].seconds) > kernel_max_seconds:
            console.print(f"[dim]{name}: KernelSHAP stops before nsamples {nsamples:,}: "
                          f"{kernel_spent:.0f} s spent, cap {kernel_max_seconds:g} s[/dim]")
            break
        step = Step(f"nsamples {nsamples:,}", [], [], [nsamples * BACKGROUND_ROWS * len(rows)])
        for seed in range(seeds):
            started = time.perf_counter()
            values = kernel_run(model, rows, background, nsamples, seed)
            step.seconds.append(time.perf_counter() - started)
            step.max_errors.append(float(np.abs(values - reference.values).max()))
        kernel_spent += sum(step.seconds)
        kernel_steps.append(step)
        console.print(f"[dim]{name}: KernelSHAP {step.setting}: {statistics.median(step.seconds):.2f} s, "
                      f"max |error| {max(step.max_errors):.4f}[/dim]")
        if step.reached(target):
            break
    return Result(name, float(reference.standard_errors.max()), reference_seconds, our_steps, shap_steps, additivity,
                  kernel_steps, kernel_spent, kernel_max_seconds)


def report(results: list[Result], target: float, rows: int, seeds: int) -> None:
    table = Table(title=f"Time to max |error| <= {target:g} ({rows} rows x 30 features, 100 background rows, "
                        f"all of {seeds} seeds)")
    for column in ("model", "mlscope setting", "mlscope", "evaluations / row", "shap perm. setting", "shap perm.",
                   "evaluations / row", "perm. / mlscope", "KernelSHAP setting", "KernelSHAP", "evaluations / row",
                   "kernel / mlscope", f">= {TARGET_RATIO:.0f}x (perm., kernel)", "reference max SE",
                   "mlscope additivity"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        ours_s = r.time_to_target(r.ours, target)
        ours_hit = next((s for s in r.ours if s.reached(target)), None)
        cells, verdicts = [], []
        for steps, what in ((r.shap, "shap"), (r.kernel, "kernel")):
            hit = next((s for s in steps if s.reached(target)), None)
            seconds = r.time_to_target(steps, target)
            ratio = seconds / ours_s if ours_s and seconds else None
            if hit:
                setting, shown = hit.setting, f"{seconds:.2f} s"
            elif steps and what == "kernel" and len(steps) < len(KERNEL_MULTIPLES):
                setting = f"not within {r.kernel_cap:g} s; {steps[-1].setting}: {max(steps[-1].max_errors):.4f}"
                shown = f"> {statistics.median(steps[-1].seconds):.1f} s"
            elif steps:
                setting = f"not reached; {steps[-1].setting}: {max(steps[-1].max_errors):.4f}"
                shown = f"> {statistics.median(steps[-1].seconds):.1f} s"
            else:
                setting, shown = "-", "-"
            cells += [setting, shown, f"{hit.evaluations[0] / rows:,.0f}" if hit else "-",
                      f"{ratio:.1f}x" if ratio else "-"]
            verdicts.append(("[green]yes[/green]" if ratio >= TARGET_RATIO else "[red]no[/red]") if ratio else "-")
        ours_evaluations = f"{statistics.median(ours_hit.evaluations) / rows:,.0f}" if ours_hit else "-"
        table.add_row(r.model, ours_hit.setting if ours_hit else "not reached", f"{ours_s:.2f} s" if ours_s else "-",
                      ours_evaluations, *cells, ", ".join(verdicts), f"{r.reference_max_se:.1e}",
                      f"{r.max_additivity_error:.1e}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5, help="explained rows")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting; all must reach the target")
    parser.add_argument("--target", type=float, default=0.005, help="max |error| against the reference")
    parser.add_argument("--reference-tolerance", type=float, default=2.5e-4, help="reference run's tolerance")
    parser.add_argument("--kernel-max-seconds", type=float, default=240,
                        help="KernelSHAP's time budget per model (all rungs and seeds)")
    parser.add_argument("--models", nargs="+", default=["svm", "mlp"], choices=["svm", "mlp"])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    fitted, test, background, _ = models()
    rows = test[:args.rows]
    shap_run(fitted["svm"], rows[:1], background, 1, 0)  # shap's first call compiles; not timed
    results = [bench(name, fitted[name], rows, background, args.seeds, args.target, args.reference_tolerance,
                     args.kernel_max_seconds) for name in args.models]
    report(results, args.target, args.rows, args.seeds)
    context = {"cpu_count": os.cpu_count(), "load_average_start": [round(x, 2) for x in load_start],
               "load_average_end": [round(x, 2) for x in os.getloadavg()], "commit": git("rev-parse", "--short", "HEAD"),
               "dirty_src": git("status", "--porcelain", "src").splitlines(), "python": platform.python_version(),
               "shap": shap.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__}
    console.print(f"Machine: {context['cpu_count']} CPUs, load average {context['load_average_start']} at start, "
                  f"{context['load_average_end']} at end; commit {context['commit']}, uncommitted in src/: "
                  f"{', '.join(context['dirty_src']) or 'none'}; shap {context['shap']}, scikit-learn {context['sklearn']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": command_line(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "context": context,
                   "results": [asdict(r) | {"ours_seconds": r.time_to_target(r.ours, args.target),
                                            "shap_seconds": r.time_to_target(r.shap, args.target),
                                            "kernel_seconds": r.time_to_target(r.kernel, args.target)} for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
