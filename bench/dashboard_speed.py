"""What a dashboard user waits for: mlscope's dashboard API against the stock MLflow way, side by side in one run.

    .venv/bin/python bench/dashboard_speed.py [--repeats 5] [--cold-repeats 3] [--what-if-requests 30]
                                              [--store DIR] [--big-store DIR] [--only ITEM ...] [--json PATH]

(from the repository root, after `make install`). Steps:

0. The demo store: `mlscope train --promote` (4 Titanic runs with explanations, registered model) into a
   temporary folder, or into --store DIR (reused when it already holds a store). The 10,000-run store of
   bench/run_index_speed.py is built once in --big-store (default bench/out/dashboard_big_store) and reused.
   Each store gets its own dashboard, `create_app(Settings(...))` under uvicorn (mlscope's server settings)
   in a thread on a free port, asked over real HTTP with one httpx client (keep-alive, like a browser);
   the time of a request includes parsing its JSON. The stock way runs in this process with MlflowClient.
   MLflow keeps one store object per URI per process, so it is created before any timing and shared.
1. compare: GET /api/compare?runs=<the 4 runs> against, per run, get_run + download_artifacts and
   json.loads of roc_curve.json, classification_report.json and fairness.json. Every metric and param
   value, ROC point, confusion matrix and fairness slice must be equal.
2. significance: GET /api/compare/significance?a=logistic-regression&b=rf-tuned against downloading both
   runs' predictions.csv and cv_folds.json and computing the three tests here with numpy/scipy/sklearn
   (Nadeau-Bengio corrected t-test, McNemar (exact binomial below 25 discordant rows, else chi-square with
   continuity correction, mlscope's documented rule), paired bootstrap of the ROC-AUC difference: 2,000
   resamples in a Python loop calling roc_auc_score, its own seed). t-test and McNemar must agree to 1e-9;
   the bootstrap's estimate to 1e-9, its CI to 0.01 and its p-value to max(0.01, 4 Monte-Carlo standard
   errors of the difference of two independent estimates). Untimed, the same stock loop fed mlscope's
   resample draws (numpy default_rng(0), one block) must give its CI and p-value to 1e-9. The warm
   mlscope answer is its cache of finished runs' results (what a user reopening the panel gets).
3. what-if, for logistic-regression and rf-tuned: POST /api/runs/<id>/explanation/what-if with a test
   passenger, then --what-if-requests more with Age from 1 to 80, against the model loaded once with
   mlflow.sklearn.load_model, the run's stored explanation background downloaded and read, and one
   shap.explainers.Exact (integer-coded categoricals, as bench/explain_speed.py) explaining one row per
   request plus predict_proba. Probabilities must equal predict_proba to 1e-9, base value and SHAP
   values agree to 1e-6. shap's numba kernels are compiled before timing (untimed warm-up).
4. runs (10,000-run store): GET /api/experiments against search_experiments + every run of every
   experiment through search_runs (50,000 per page, MLflow's maximum; count, best roc_auc, latest
   activity), and GET /api/runs/page (order_by metrics.roc_auc DESC, 100 runs) against
   search_runs(order_by=..., max_results=100). Counts, best values and run, activity, and the page's
   run ids and roc_auc values must be equal.

Timing: "cold" is the median of --cold-repeats first asks, each after the app's cache of that view
(`web.services[...]`: compare, significance, explain) is emptied, as after a restart; for item 3 the stock
cold is loading the model and background plus the first row. Items 1-3 start after one GET
/api/runs/page of the experiment (the runs view the user comes from) and, for the stock way, one
search_runs. Item 4 has no caches: its cold is the single first request on a just-started app, which
also opens the run index. "warm" is the median of --repeats later asks (--what-if-requests for item 3).
mlscope and stock alternate ask by ask. Ratios are stock / mlscope. Every answer is checked; the script
exits 1 when one differs. A route the app does not declare yet is skipped with a message. Numbers go to
bench/out/dashboard_speed.json (per-ask seconds included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import scipy
import shap
import sklearn
import uvicorn
from fastapi import FastAPI
from mlflow.entities import ViewType
from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table
from scipy import stats
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.` imports when run as a script

from bench.common import free_port, git  # noqa: E402
from bench.run_index_speed import EXPERIMENT as BIG_EXPERIMENT  # noqa: E402
from bench.run_index_speed import RUNS as BIG_RUNS  # noqa: E402
from bench.run_index_speed import ensure_store  # noqa: E402
from mlscope.cli.servers import server_config  # noqa: E402
from mlscope.config import Settings  # noqa: E402
from mlscope.explain import artifacts  # noqa: E402
from mlscope.explain.model_eval import Codebook  # noqa: E402
from mlscope.web.app import create_app  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
TITANIC = "titanic"
DEMO_RUNS = ("rf-baseline", "rf-tuned", "logistic-regression", "svm")
RUN_A, RUN_B = "logistic-regression", "rf-tuned"  # the best run and a challenger
COMPARE_FILES = ("roc_curve.json", "classification_report.json", "fairness.json")
HEADLINE = "roc_auc"
PAGE_ORDER, PAGE_LIMIT = f"metrics.{HEADLINE} DESC", 100
RESAMPLES, STOCK_SEED, MLSCOPE_SEED = 2000, 1, 0
EXACT_BELOW = 25  # McNemar: exact binomial below this many discordant rows (mlscope's documented rule)
EXACT, SHAP_TOLERANCE, CI_TOLERANCE, P_TOLERANCE = 1e-9, 1e-6, 0.01, 0.01
AGES = (1.0, 80.0)
ROUTES = {
    "compare": [("GET", "/api/compare")],
    "significance": [("GET", "/api/compare/significance")],
    "what-if": [("POST", "/api/runs/{run_id}/explanation/what-if")],
    "runs": [("GET", "/api/experiments"), ("GET", "/api/runs/page")],
}
ITEMS = tuple(ROUTES)
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


class BenchFailure(Exception):
    """A store, a server or a request failed."""


# --- results ----------------------------------------------------------------------------------------

@dataclass
class Timing:
    cold_s: list[float] = field(default_factory=list)
    warm_s: list[float] = field(default_factory=list)

    @property
    def cold_ms(self) -> float:
        return statistics.median(self.cold_s) * 1000

    @property
    def warm_ms(self) -> float:
        return statistics.median(self.warm_s) * 1000

    def as_dict(self) -> dict[str, Any]:
        return {"cold_median_ms": self.cold_ms, "cold_seconds": self.cold_s, "warm_median_ms": self.warm_ms,
                "warm_min_ms": min(self.warm_s) * 1000, "warm_max_ms": max(self.warm_s) * 1000,
                "warm_seconds": self.warm_s}


@dataclass
class Checks:
    """Every comparison of mlscope's answers with the stock way's: the worst |difference| per quantity
    compared with a tolerance (and its largest tolerance), counts of exact comparisons, and what failed."""

    diffs: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def close(self, name: str, ours: float | None, theirs: float | None, limit: float) -> None:
        if ours is None or theirs is None:
            diff = 0.0 if ours is None and theirs is None else math.inf
        else:
            diff = abs(float(ours) - float(theirs))
            diff = math.inf if math.isnan(diff) else diff
        self.diffs[name] = max(self.diffs.get(name, 0.0), diff)
        self.limits[name] = max(self.limits.get(name, 0.0), limit)
        if diff > limit:
            self.failures.append(f"{name}: |{ours} - {theirs}| > {limit:.3g}")

    def same(self, name: str, equal: bool, count: int = 1) -> None:
        self.compared[name] = self.compared.get(name, 0) + count
        if not equal:
            self.failures.append(f"{name} differ")

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_abs_diff": self.diffs, "limits": self.limits, "exact_comparisons": self.compared,
                "failures": list(dict.fromkeys(self.failures))}


@dataclass
class Row:
    item: str
    what: str
    mlscope: Timing
    stock: Timing
    stock_way: str
    checks: Checks

    @property
    def ratio_cold(self) -> float:
        return self.stock.cold_ms / self.mlscope.cold_ms

    @property
    def ratio_warm(self) -> float:
        return self.stock.warm_ms / self.mlscope.warm_ms

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "what": self.what, "stock_way": self.stock_way,
                "mlscope": self.mlscope.as_dict(), "stock": self.stock.as_dict(),
                "ratio_cold": self.ratio_cold, "ratio_warm": self.ratio_warm, "checks": self.checks.as_dict()}


def measure(what: str, ours: Callable[[int], Any], theirs: Callable[[int], Any], asks: int,
            check: Callable[[int, Any, Any], None], *, cold: int = 1,
            reset: Callable[[], None] | None = None) -> tuple[Timing, Timing]:
    """`cold` cold asks of number 0 (each after `reset` empties the app's cache of the view), then warm asks
    1..`asks`; mlscope first, then stock, alternating. Every answer pair is checked."""
    mine, stock = Timing(), Timing()
    for number in [0] * cold + list(range(1, asks + 1)):
        if number == 0 and reset is not None:
            reset()
        answers = []
        for timing, call in ((mine, ours), (stock, theirs)):
            started = time.perf_counter()
            answers.append(call(number))
            (timing.warm_s if number else timing.cold_s).append(time.perf_counter() - started)
        check(number, *answers)
    console.print(f"  {what:<34} mlscope cold {mine.cold_ms:8.1f} ms, warm {mine.warm_ms:8.1f} ms   "
                  f"stock cold {stock.cold_ms:8.1f} ms, warm {stock.warm_ms:8.1f} ms", highlight=False)
    return mine, stock


# --- stores and servers -----------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without MLflow/mlscope settings, plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSCOPE_"))} | extra


def demo_store(directory: Path) -> str:
    """The tracking URI of the demo store in `directory`, trained with `mlscope train --promote` if absent."""
    database = directory / "mlflow.db"
    uri = f"sqlite:///{database}"
    if database.exists():
        console.print(f"Reusing the demo store {uri}", highlight=False)
        return uri
    directory.mkdir(parents=True, exist_ok=True)
    console.print(f"Training the demo store into {uri} ...", highlight=False)
    started = time.perf_counter()
    env = clean_env(MLFLOW_TRACKING_URI=uri, MLSCOPE_ARTIFACT_ROOT=str(directory / "artifacts"))
    done = subprocess.run([str(BIN / "mlscope"), "train", "--promote"], cwd=directory, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise BenchFailure(f"mlscope train exited with {done.returncode}:\n{tail}")
    console.print(f"Trained in {time.perf_counter() - started:.0f} s", highlight=False)
    return uri


def demo_runs(client: MlflowClient) -> dict[str, str]:
    """Run name -> run id of the demo runs, in training order."""
    experiment = client.get_experiment_by_name(TITANIC)
    if experiment is None:
        raise BenchFailure(f"the demo store has no experiment {TITANIC!r}")
    found = {run.info.run_name: run.info.run_id
             for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])}
    missing = [name for name in DEMO_RUNS if name not in found]
    if missing:
        raise BenchFailure(f"the demo store lacks the run(s) {', '.join(missing)}: use a fresh --store")
    return {name: found[name] for name in DEMO_RUNS}


@contextmanager
def dashboard(settings: Settings) -> Iterator[tuple[httpx.Client, FastAPI]]:
    """A fresh dashboard app under uvicorn in a thread on a free port, and an HTTP client bound to it."""
    app = create_app(settings)
    server = uvicorn.Server(server_config(app, "127.0.0.1", free_port()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.config.port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or not thread.is_alive():
                    raise BenchFailure(f"the dashboard on {base} did not come up")
                time.sleep(0.05)
            yield http, app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def missing_routes(app: FastAPI, item: str) -> list[str]:
    """The item's routes the app does not declare (read from its OpenAPI schema)."""
    paths = app.openapi().get("paths", {})
    return [f"{method} {path}" for method, path in ROUTES[item] if method.lower() not in paths.get(path, {})]


def api(http: httpx.Client, method: str, url: str, **kwargs: Any) -> Any:
    answer = http.request(method, url, **kwargs)
    if answer.status_code != 200:
        raise BenchFailure(f"{method} {url} answered HTTP {answer.status_code}: {answer.text[:300]}")
    return answer.json()


def download_json(client: MlflowClient, run_id: str, path: str, folder: Path) -> Any:
    return json.loads(Path(client.download_artifacts(run_id, path, str(folder))).read_text())


def json_clean(value: Any) -> Any:
    """JSON as the API sends it: NaN and infinities as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [json_clean(item) for item in value]
    if isinstance(value, dict):
        return {key: json_clean(item) for key, item in value.items()}
    return value


@dataclass
class Demo:
    """The demo store's dashboard and client, the runs, and how often to ask."""

    http: httpx.Client
    app: FastAPI
    client: MlflowClient
    runs: dict[str, str]
    repeats: int
    cold: int
    what_if_requests: int

    def forget(self, service: str) -> Callable[[], None]:
        """Empties the app's cache of one view (`web.services[service]`), as after a restart."""
        return lambda: self.app.state.web.services.pop(service, None)


# --- 1. compare -------------------------------------------------------------------------------------

def stock_compare(client: MlflowClient, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What a notebook does for the compare view's numbers: get_run and three JSON artifacts per run."""
    found = {}
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        for run_id in run_ids:
            run = client.get_run(run_id)
            folder = Path(tmp) / run_id
            folder.mkdir()
            found[run_id] = {"metrics": run.data.metrics, "params": run.data.params,
                             **{name: download_json(client, run_id, name, folder) for name in COMPARE_FILES}}
    return found


def check_compare(checks: Checks, ours: dict[str, Any], theirs: dict[str, dict[str, Any]], run_ids: list[str]) -> None:
    checks.same("run order", [run["run_id"] for run in ours["runs"]] == run_ids)
    metric_keys = set().union(*(theirs[run_id]["metrics"] for run_id in run_ids))
    checks.same("metric keys", {row["key"] for row in ours["metrics"]} == metric_keys)
    for row in ours["metrics"]:
        expected = [json_clean(theirs[run_id]["metrics"].get(row["key"])) for run_id in run_ids]
        checks.same("metric values", row["values"] == expected, len(expected))
    param_keys = set().union(*(theirs[run_id]["params"] for run_id in run_ids))
    checks.same("param keys", {row["key"] for row in ours["params"]} == param_keys)
    for row in ours["params"]:
        expected = [theirs[run_id]["params"].get(row["key"]) for run_id in run_ids]
        checks.same("param values", row["values"] == expected, len(expected))
    for run_id in run_ids:
        stock = json_clean(theirs[run_id])
        roc, curve = ours["roc"][run_id], stock["roc_curve.json"]
        checks.same("ROC points", roc.get("fpr") == curve["fpr"] and roc.get("tpr") == curve["tpr"]
                    and roc.get("auc") == curve["auc"], len(curve["fpr"]))
        checks.same("confusion matrices",
                    ours["confusion"][run_id].get("matrix") == stock["classification_report.json"]["confusion_matrix"])
        fairness = {column: {key: slices.get(key) for key in
                             ("groups", "demographic_parity_difference", "equalized_odds_difference")}
                    for column, slices in stock["fairness.json"].items()}
        checks.same("fairness slices", ours["fairness"][run_id].get("columns") == fairness)


def bench_compare(demo: Demo) -> list[Row]:
    run_ids = list(demo.runs.values())
    checks = Checks()
    mine, stock = measure(
        "compare, 4 runs",
        lambda _: api(demo.http, "GET", "/api/compare", params={"runs": ",".join(run_ids)}),
        lambda _: stock_compare(demo.client, run_ids), demo.repeats,
        lambda _, ours, theirs: check_compare(checks, ours, theirs, run_ids), cold=demo.cold,
        reset=demo.forget("compare"))
    return [Row("compare", "compare view data, 4 runs", mine, stock,
                "get_run + download_artifacts of 3 JSON files per run", checks)]


# --- 2. significance --------------------------------------------------------------------------------

def nadeau_bengio(a: list[float], b: list[float]) -> dict[str, float]:
    """Corrected resampled t-test on paired k-fold scores: variance times (1/k + n_test/n_train)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    k = len(d)
    se = math.sqrt((1 / k + 1 / (k - 1)) * d.var(ddof=1))
    t = d.mean() / se
    half = stats.t.ppf(0.975, k - 1) * se
    return {"estimate": d.mean(), "statistic": t, "p_value": 2 * stats.t.sf(abs(t), k - 1),
            "ci_low": d.mean() - half, "ci_high": d.mean() + half}


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float | None]:
    only_a = int(np.sum((pred_a == y) & (pred_b != y)))
    only_b = int(np.sum((pred_a != y) & (pred_b == y)))
    discordant = only_a + only_b
    if discordant == 0:
        p, statistic = 1.0, None
    elif discordant < EXACT_BELOW:
        p, statistic = stats.binomtest(only_a, discordant, 0.5).pvalue, None
    else:
        statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
        p = stats.chi2.sf(statistic, 1)
    return {"estimate": float(np.mean(pred_a == y) - np.mean(pred_b == y)), "statistic": statistic, "p_value": p}


def bootstrap_auc(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                  draws: Iterable[np.ndarray]) -> dict[str, float]:
    """Paired bootstrap of ROC-AUC(a) - ROC-AUC(b), one roc_auc_score pair per resample."""
    differences = []
    for rows in draws:
        if len(np.unique(y[rows])) < 2:
            continue
        differences.append(roc_auc_score(y[rows], score_a[rows]) - roc_auc_score(y[rows], score_b[rows]))
    # roc_auc_score's trapezoids leave ~1e-17 where two AUCs are equal: such a resample is a tie at 0
    diff = np.round(np.asarray(differences), 12)
    low, high = np.percentile(diff, [2.5, 97.5])
    share = (min(np.sum(diff <= 0), np.sum(diff >= 0)) + 1) / (len(diff) + 1)
    return {"estimate": roc_auc_score(y, score_a) - roc_auc_score(y, score_b), "ci_low": low, "ci_high": high,
            "p_value": min(1.0, 2 * share), "used": len(diff)}


def seeded_draws(rows: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, rows, rows) for _ in range(RESAMPLES))


def mlscope_draws(rows: int) -> Iterator[np.ndarray]:
    """mlscope's resamples: default_rng(seed 0), all drawn in one block (2,000 x rows < its 4M-cell chunk)."""
    return iter(np.random.default_rng(MLSCOPE_SEED).integers(0, rows, size=(RESAMPLES, rows)))


def stock_inputs(client: MlflowClient, a: str, b: str) -> tuple[pd.DataFrame, list[float], list[float]]:
    """Both runs' predictions joined on PassengerId, and their per-fold ROC-AUC."""
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        frames, folds = [], []
        for run_id in (a, b):
            folder = Path(tmp) / run_id
            folder.mkdir()
            frames.append(pd.read_csv(client.download_artifacts(run_id, "predictions.csv", str(folder))))
            folds.append(download_json(client, run_id, "cv_folds.json", folder)["values"][HEADLINE])
    joined = frames[0].merge(frames[1], on="PassengerId", suffixes=("_a", "_b"), validate="one_to_one")
    return joined, folds[0], folds[1]


def stock_significance(client: MlflowClient, a: str, b: str,
                       draws: Callable[[int], Iterable[np.ndarray]]) -> dict[str, dict[str, Any]]:
    joined, folds_a, folds_b = stock_inputs(client, a, b)
    y = joined["y_true_a"].to_numpy()
    return {"nadeau_bengio": nadeau_bengio(folds_a, folds_b),
            "mcnemar": mcnemar(y, joined["y_pred_a"].to_numpy(), joined["y_pred_b"].to_numpy()),
            "bootstrap_auc": bootstrap_auc(y, joined["probability_a"].to_numpy(), joined["probability_b"].to_numpy(),
                                           draws(len(y)))}


def p_tolerance(p: float, resamples: int) -> float:
    """4 standard errors of the difference of two independent bootstrap p-values (each 2 x a share)."""
    share = min(max(p / 2, 0.0), 1.0)
    return max(P_TOLERANCE, 4 * math.sqrt(8 * share * (1 - share) / resamples))


def check_significance(checks: Checks, ours: dict[str, Any], theirs: dict[str, dict[str, Any]],
                       same_draws: bool = False) -> None:
    tests = {test["key"]: test for test in ours["tests"]}
    checks.same("tests available", all(tests.get(key, {}).get("available") for key in theirs), len(theirs))
    for key, stock in theirs.items():
        test = tests.get(key, {})
        for quantity in ("estimate", "p_value", "ci_low", "ci_high", "statistic"):
            if quantity not in stock:
                continue
            limit = EXACT
            if key == "bootstrap_auc" and quantity != "estimate" and not same_draws:
                limit = CI_TOLERANCE if quantity.startswith("ci") else p_tolerance(test.get("p_value") or 0, RESAMPLES)
            label = f"{key} {quantity}" + (" (mlscope's draws)" if same_draws else "")
            checks.close(label, test.get(quantity), stock[quantity], limit)


def bench_significance(demo: Demo) -> list[Row]:
    a, b = demo.runs[RUN_A], demo.runs[RUN_B]
    checks = Checks()
    ask = lambda _: api(demo.http, "GET", "/api/compare/significance", params={"a": a, "b": b})  # noqa: E731
    mine, stock = measure(
        f"significance, {RUN_A} vs {RUN_B}", ask,
        lambda _: stock_significance(demo.client, a, b, lambda rows: seeded_draws(rows, STOCK_SEED)), demo.repeats,
        lambda _, ours, theirs: check_significance(checks, ours, theirs), cold=demo.cold,
        reset=demo.forget("significance"))
    check_significance(checks, ask(0), stock_significance(demo.client, a, b, mlscope_draws), same_draws=True)
    return [Row("significance", f"3 tests, {RUN_A} vs {RUN_B}", mine, stock,
                "download 2 artifacts per run; t-test, McNemar, 2,000-resample roc_auc_score loop", checks)]


# --- 3. what-if -------------------------------------------------------------------------------------

def typed_like(records: list[dict[str, Any]], background: pd.DataFrame) -> pd.DataFrame:
    """Records as a frame typed like the background: numbers float64, text object with NaN for missing."""
    frame = pd.DataFrame(records, columns=list(background.columns))
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(background[column]):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def what_if_records(client: MlflowClient, run_id: str, count: int) -> list[dict[str, Any]]:
    """The stored explanation's first test passenger, then `count` copies with Age from 1 to 80."""
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        explanation, _ = artifacts.from_json(download_json(client, run_id, explanation_path(), Path(tmp)))
    passenger = {name: artifacts.plain_value(value) for name, value in explanation.data.iloc[0].items()}
    ages = np.round(np.linspace(*AGES, count), 1)
    return [passenger] + [passenger | {"Age": float(age)} for age in ages]


def explanation_path() -> str:
    return f"{artifacts.FOLDER}/{artifacts.TEST_SPLIT}.json"


class StockWhatIf:
    """The notebook way: load the model once, read the stored background, one shap Exact explainer; then
    per request predict_proba and the explainer on the row. Ask 0 does the loading (the stock cold)."""

    def __init__(self, client: MlflowClient, run_id: str, records: list[dict[str, Any]]) -> None:
        self.client, self.run_id, self.records = client, run_id, records
        self.model: Any = None

    def setup(self) -> None:
        self.model = mlflow.sklearn.load_model(f"runs:/{self.run_id}/model")
        with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
            stored = download_json(self.client, self.run_id, explanation_path(), Path(tmp))
        _, background = artifacts.from_json(stored)
        self.background = background
        self.positive = list(self.model.classes_).index(1)
        self.codebook = Codebook([typed_like(self.records, background), background], list(background.columns))
        model, codebook, positive = self.model, self.codebook, self.positive

        def f(codes: np.ndarray) -> np.ndarray:
            return model.predict_proba(codebook.decode(np.asarray(codes, dtype=np.int64)))[:, positive]

        b = codebook.encode(background)
        self.explainer = shap.explainers.Exact(f, shap.maskers.Independent(b, max_samples=len(b)))

    def __call__(self, number: int) -> dict[str, Any]:
        if number == 0:
            self.setup()
        row = typed_like([self.records[number]], self.background)
        probability = float(self.model.predict_proba(row)[0, self.positive])
        explained = self.explainer(self.codebook.encode(row), silent=True)
        return {"probability": probability, "base_value": float(np.asarray(explained.base_values).ravel()[0]),
                "shap": dict(zip(self.background.columns, np.asarray(explained.values)[0].tolist(), strict=True))}


def check_what_if(checks: Checks, record: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    checks.close("probability vs predict_proba", ours["probability"], theirs["probability"], EXACT)
    checks.close("base value", ours["waterfall"]["base_value"], theirs["base_value"], SHAP_TOLERANCE)
    contributions = {part["feature"]: part["shap"] for part in ours["waterfall"]["contributions"]}
    checks.same("features", set(contributions) == set(theirs["shap"]))
    for feature, value in theirs["shap"].items():
        checks.close("SHAP values", contributions.get(feature), value, SHAP_TOLERANCE)
    checks.same("records echoed", ours["record"].get("Age") == record.get("Age"))


def shap_warm_up(client: MlflowClient, run_id: str, records: list[dict[str, Any]]) -> None:
    """shap compiles numba kernels on its first explanation (~10 s): not what a request waits for."""
    stock = StockWhatIf(client, run_id, records)
    stock(0)


def bench_what_if(demo: Demo) -> list[Row]:
    rows = []
    for name in (RUN_A, RUN_B):
        run_id = demo.runs[name]
        records = what_if_records(demo.client, run_id, demo.what_if_requests)
        stock = StockWhatIf(demo.client, run_id, records)
        checks = Checks()
        url = f"/api/runs/{run_id}/explanation/what-if"
        mine, theirs = measure(
            f"what-if, {name}", lambda number: api(demo.http, "POST", url, json={"record": records[number]}), stock,
            demo.what_if_requests, lambda number, ours, answer: check_what_if(checks, records[number], ours, answer),
            cold=demo.cold, reset=demo.forget("explain"))
        rows.append(Row("what-if", f"what-if explanation, {name}", mine, theirs,
                        "load_model once; predict_proba + shap Exact (stored background) per request", checks))
    return rows


# --- 4. experiments and runs on 10,000 runs ---------------------------------------------------------

def all_experiments(client: MlflowClient) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        found += page
        token = page.token
        if not token:
            return found


def all_runs(client: MlflowClient, experiment_id: str) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=SEARCH_MAX_RESULTS_THRESHOLD, page_token=token)
        found += page
        token = page.token
        if not token:
            return found


def stock_experiments(client: MlflowClient) -> dict[str, dict[str, Any]]:
    """Per experiment: runs, the best roc_auc and its run (ties: earliest start, then run id), last activity."""
    summary = {}
    for experiment in all_experiments(client):
        runs = all_runs(client, experiment.experiment_id)
        scored = [(run.data.metrics[HEADLINE], run) for run in runs
                  if not math.isnan(run.data.metrics.get(HEADLINE, math.nan))]
        best = min(scored, key=lambda pair: (-pair[0], pair[1].info.start_time or 0, pair[1].info.run_id), default=None)
        latest = max(runs, key=lambda run: run.info.start_time or 0, default=None)
        activity = [t for t in (experiment.last_update_time,
                                latest and (latest.info.end_time or latest.info.start_time)) if t]
        summary[experiment.experiment_id] = {
            "runs": len(runs), "best_value": best[0] if best else None,
            "best_run_id": best[1].info.run_id if best else None, "last_activity": max(activity) if activity else None}
    return summary


def check_experiments(checks: Checks, ours: dict[str, Any], theirs: dict[str, dict[str, Any]]) -> None:
    mine = {row["experiment_id"]: row for row in ours["experiments"]}
    checks.same("experiments", set(mine) == set(theirs))
    for experiment_id, stock in theirs.items():
        row = mine.get(experiment_id, {})
        for key, value in stock.items():
            checks.same(f"{key.replace('_', ' ')}", row.get(key) == value)


def check_page(checks: Checks, ours: dict[str, Any], theirs: list[Any]) -> None:
    checks.same("page run ids in order", [run["run_id"] for run in ours["runs"]] == [run.info.run_id for run in theirs],
                len(theirs))
    checks.same("page roc_auc values", [run["metrics"].get(HEADLINE) for run in ours["runs"]]
                == [json_clean(run.data.metrics.get(HEADLINE)) for run in theirs], len(theirs))


def bench_runs(http: httpx.Client, client: MlflowClient, experiment_id: str, repeats: int) -> list[Row]:
    experiments_checks, page_checks = Checks(), Checks()
    mine, stock = measure(
        "experiments list", lambda _: api(http, "GET", "/api/experiments"), lambda _: stock_experiments(client),
        repeats, lambda _, ours, theirs: check_experiments(experiments_checks, ours, theirs))
    rows = [Row("runs", f"experiments list ({BIG_RUNS:,} runs)", mine, stock,
                "search_experiments + all runs of each via search_runs", experiments_checks)]
    params = {"experiment": BIG_EXPERIMENT, "order_by": PAGE_ORDER, "limit": PAGE_LIMIT}
    mine, stock = measure(
        "first runs page", lambda _: api(http, "GET", "/api/runs/page", params=params),
        lambda _: client.search_runs([experiment_id], order_by=[PAGE_ORDER], max_results=PAGE_LIMIT),
        repeats, lambda _, ours, theirs: check_page(page_checks, ours, theirs))
    rows.append(Row("runs", f"first runs page by {HEADLINE} ({BIG_RUNS:,} runs)", mine, stock,
                    f"search_runs(order_by={PAGE_ORDER}, max_results={PAGE_LIMIT})", page_checks))
    return rows


# --- reporting --------------------------------------------------------------------------------------

TITLES = {
    "compare": "1. Compare view data for the 4 demo runs",
    "significance": "2. Significance of two runs",
    "what-if": "3. What-if explanation of one passenger",
    "runs": f"4. Experiments list and first runs page on {BIG_RUNS:,} runs",
}


def yes(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]NO[/red]"


def verdict(checks: Checks) -> str:
    return yes(True) if checks.ok else yes(False) + ": " + "; ".join(dict.fromkeys(checks.failures))


def ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def item_table(item: str, rows: list[Row], warm_label: str) -> Table:
    table = Table(title=f"{TITLES[item]} (ms; ratio = stock / mlscope)", title_justify="left", header_style="bold")
    for column in ("what", "mlscope cold", f"mlscope {warm_label}", "stock cold", f"stock {warm_label}",
                   "ratio cold", "ratio warm", "equal?"):
        table.add_column(column, justify="left" if column in ("what", "equal?") else "right")
    for row in rows:
        ours, stock = row.mlscope, row.stock
        table.add_row(row.what, f"{ours.cold_ms:.1f}",
                      f"{ours.warm_ms:.1f} ({min(ours.warm_s) * 1000:.1f}-{max(ours.warm_s) * 1000:.1f})",
                      f"{stock.cold_ms:.1f}",
                      f"{stock.warm_ms:.1f} ({min(stock.warm_s) * 1000:.0f}-{max(stock.warm_s) * 1000:.0f})",
                      ratio(row.ratio_cold), ratio(row.ratio_warm),
                      verdict(row.checks))
    return table


def check_lines(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        checks = row.checks
        parts = [f"{name} x{count:,}" for name, count in checks.compared.items()]
        parts += [f"{name} {checks.diffs[name]:.1e} (<= {checks.limits[name]:.2g})" for name in checks.diffs]
        lines.append(f"  {row.what}: stock = {row.stock_way}; checked " + ", ".join(parts))
    return lines


def summary_table(results: dict[str, list[Row]]) -> Table:
    table = Table(title="Summary: what the user waits for (ms)", title_justify="left", header_style="bold")
    for column in ("item", "mlscope warm", "stock warm", "ratio warm", "mlscope cold", "stock cold", "ratio cold",
                   "equal?"):
        table.add_column(column, justify="left" if column in ("item", "equal?") else "right")
    for rows in results.values():
        for row in rows:
            table.add_row(row.what, f"{row.mlscope.warm_ms:.1f}", f"{row.stock.warm_ms:.1f}", ratio(row.ratio_warm),
                          f"{row.mlscope.cold_ms:.1f}", f"{row.stock.cold_ms:.1f}", ratio(row.ratio_cold),
                          yes(row.checks.ok))
    return table


def source_state() -> dict[str, Any]:
    """Commit and uncommitted files under src/ (other work may be in progress in the checkout)."""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty_src": git("status", "--porcelain", "src").splitlines()}


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "mlflow": mlflow.__version__, "shap": shap.__version__,
            "sklearn": sklearn.__version__, "scipy": scipy.__version__, "numpy": np.__version__,
            "uvicorn": uvicorn.__version__, "platform": platform.platform()}


# --- main -------------------------------------------------------------------------------------------

def run_demo_items(uri: str, items: list[str], args: argparse.Namespace,
                   skipped: dict[str, str]) -> dict[str, list[Row]]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = demo_runs(client)
    mlflow.set_tracking_uri(uri)  # mlflow.sklearn.load_model resolves runs:/ URIs through the fluent API
    if "what-if" in items:
        shap_warm_up(client, runs[RUN_A], what_if_records(client, runs[RUN_A], 1))
    results: dict[str, list[Row]] = {}
    with dashboard(Settings(tracking_uri=uri, registry_uri=uri, experiment_name=TITANIC)) as (http, app):
        for item in items:
            missing = missing_routes(app, item)
            if missing:
                skipped[item] = f"the dashboard does not serve {', '.join(missing)} yet"
        # the runs view the user comes from, and the notebook's run search: both ways' stores are open
        api(http, "GET", "/api/runs/page", params={"experiment": TITANIC, "limit": PAGE_LIMIT})
        client.search_runs([client.get_experiment_by_name(TITANIC).experiment_id])
        demo = Demo(http, app, client, runs, args.repeats, args.cold_repeats, args.what_if_requests)
        benches = {"compare": bench_compare, "significance": bench_significance, "what-if": bench_what_if}
        for item in items:
            if item in skipped:
                console.print(f"[yellow]Skipping {item}: {skipped[item]}[/yellow]")
                continue
            results[item] = benches[item](demo)
    return results


def run_big_item(big_store: Path, args: argparse.Namespace, skipped: dict[str, str]) -> dict[str, list[Row]]:
    big_store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{big_store / 'mlflow.db'}"
    experiment_id = ensure_store(uri, big_store / "artifacts")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.get_experiment(experiment_id)  # MLflow's store object for the URI exists before timing (shared)
    with dashboard(Settings(tracking_uri=uri, registry_uri=uri, experiment_name=BIG_EXPERIMENT)) as (http, app):
        missing = missing_routes(app, "runs")
        if missing:
            skipped["runs"] = f"the dashboard does not serve {', '.join(missing)} yet"
            console.print(f"[yellow]Skipping runs: {skipped['runs']}[/yellow]")
            return {}
        return {"runs": bench_runs(http, client, experiment_id, args.repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm asks per query after the cold one (default 5)")
    parser.add_argument("--cold-repeats", type=int, default=3,
                        help="cold asks per view of the demo store, each after emptying the app's cache (default 3)")
    parser.add_argument("--what-if-requests", type=int, default=30, help="warm what-if requests per run (default 30)")
    parser.add_argument("--store", type=Path, help="folder of the demo store: reused, or trained when empty "
                                                   "(default: a temporary folder)")
    parser.add_argument("--big-store", type=Path, default=OUT / "dashboard_big_store",
                        help="folder of the 10,000-run store, built once and reused")
    parser.add_argument("--only", action="append", choices=ITEMS, help="bench only this item (repeatable)")
    parser.add_argument("--json", type=Path, default=OUT / "dashboard_speed.json")
    args = parser.parse_args(argv)
    if args.repeats < 3 or args.what_if_requests < 3 or args.cold_repeats < 1:
        parser.error("--repeats and --what-if-requests must be at least 3, --cold-repeats at least 1")
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # the stock way loads the pickled models
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no tqdm bar per download, for both ways
    items = [item for item in ITEMS if not args.only or item in args.only]
    command = shlex.join([".venv/bin/python", "bench/dashboard_speed.py", *(sys.argv[1:] if argv is None else argv)])
    context, source = machine(), source_state()
    console.print(f"Command: {command}", highlight=False)
    console.print("Machine: " + ", ".join(f"{k}={v}" for k, v in context.items()), highlight=False)
    results: dict[str, list[Row]] = {}
    skipped: dict[str, str] = {}
    demo_items = [item for item in items if item != "runs"]
    try:
        with ExitStack() as stack:
            if demo_items:
                folder = args.store.resolve() if args.store else Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="dashboard-bench-store-")))
                uri = demo_store(folder)
                results |= run_demo_items(uri, demo_items, args, skipped)
            if "runs" in items:
                results |= run_big_item(args.big_store.resolve(), args, skipped)
    except BenchFailure as exc:
        console.print(f"[bold red]FAILED:[/] {exc}", highlight=False)
        return 1
    load_end = round(os.getloadavg()[0], 2)
    for item, rows in results.items():
        console.print(item_table(item, rows, "warm" if item != "what-if" else "per request"))
        for line in check_lines(rows):
            console.print(line, highlight=False)
    if results:
        console.print(summary_table(results))
    for item, reason in skipped.items():
        console.print(f"[yellow]Skipped {item}: {reason}[/yellow]")
    console.print(f"Load average (1 min) at start {context['loadavg_1m_at_start']}, at end {load_end}; "
                  f"source: commit {source['commit']}, uncommitted in src/: {len(source['dirty_src'])} file(s)",
                  highlight=False)
    equal = all(row.checks.ok for rows in results.values() for row in rows)
    console.print(f"Every answer equal between mlscope and the stock way: {yes(equal)}")
    payload = {"command": command, "machine": {**context, "loadavg_1m_at_end": load_end}, "source": source,
               "repeats": args.repeats, "cold_repeats": args.cold_repeats, "what_if_requests": args.what_if_requests,
               "significance_runs": [RUN_A, RUN_B], "what_if_runs": [RUN_A, RUN_B], "resamples": RESAMPLES,
               "results": {item: [row.as_dict() for row in rows] for item, rows in results.items()},
               "skipped": skipped, "all_equal": equal}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(json_clean(payload), indent=2) + "\n")
    console.print(f"Wrote {args.json}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
