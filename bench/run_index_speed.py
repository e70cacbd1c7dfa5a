"""The run index (mlscope.tracking.index) against MLflow's search_runs on 10,000 runs, SQLite and PostgreSQL.

    .venv/bin/python bench/run_index_speed.py [--repeats 5] [--store DIR] [--no-postgres] [--rebuild]
                                              [--pg-admin CONNINFO] [--json PATH] [--runs 10000]

(from the repository root, after `make install`). Steps:

1. One experiment of 10,000 runs (8 params, 6 metrics, 3 tags + mlflow.runName each; 90% FINISHED) is
   created once per store and reused: a SQLite file in --store (default bench/out/run_index_store) and
   the PostgreSQL database `mlscope_bench_run_index` on --pg-admin's server (with another --runs: the folder
   run_index_store_<runs> and the database mlscope_bench_run_index_<runs>, for a quick check). MLflow creates each store's
   tables and the experiment; the runs' rows are then bulk-inserted with SQLAlchemy into the bench's OWN
   store (runs, tags, params, metrics, latest_metrics), as MLflow's log_batch would write them, and a
   sample is read back through MlflowClient.search_runs and checked; PostgreSQL then gets the ANALYZE
   that autovacuum would run soon after such a load (SQLite is left unanalyzed, as MLflow leaves it).
   --rebuild recreates both stores.
2. Per store, each query runs once untimed, then --repeats times (median, min, max), in one process:
   mlscope's RunIndex opened once, and MLflow's client (store created before timing):
   - page: filter "metrics.accuracy > 0.8 and params.model_type = 'svm'", order_by metrics.accuracy DESC,
     100 runs (+ the total); MLflow: search_runs(..., max_results=100) (no total);
   - deep page: no filter, order_by params.lr ASC, runs 5,000-5,099; MLflow: the same offset's page token;
   - best run by accuracy; MLflow: search_runs(order_by=["metrics.accuracy DESC"], max_results=1);
   - matrix: 6 metrics + 8 params of all 10,000 runs; MLflow: mlflow.search_runs(max_results=10000)
     (the DataFrame);
   - OR page: filter OR_FILTER (two AND-ed branches joined by OR, which MLflow's syntax lacks), order_by
     metrics.accuracy DESC, 100 runs + the total; MLflow: the stock way, search_runs for each OR branch
     (all its runs, in that order), the union by run id, sorted as MLflow sorts, the first 100.
   Every mlscope answer is compared with MLflow's (same run ids in the same order, same values), or the
   script exits 1.

Targets (issue: fast run index), median, server-side: page and best < 50 ms on both stores; matrix
< 500 ms; matrix >= 20x faster than mlflow.search_runs, best >= 20x faster than MLflow's order_by query
on SQLite. Numbers go to bench/out/run_index_speed.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import psycopg
import sqlalchemy as sa
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.tracking import MlflowClient
from mlflow.utils.search_utils import SearchUtils
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from mlscope.tracking.index import RunIndex

HERE = Path(__file__).resolve().parent
EXPERIMENT = "run-index-bench"
RUNS = 10_000
PG_DATABASE = "mlscope_bench_run_index"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
PARAM_CHOICES = {
    "model_type": ["svm", "rf", "logreg", "xgb"], "lr": ["0.001", "0.01", "0.1", "1.0"],
    "max_depth": ["3", "5", "10", "None"], "n_estimators": ["50", "100", "200"], "C": ["0.1", "1.0", "10.0"],
    "dataset": ["titanic", "adult"], "scaler": ["standard", "minmax", "none"],
}
PARAMS = [*PARAM_CHOICES, "seed"]
TAG_CHOICES = {"team": ["vision", "nlp", "tabular"], "stage": ["dev", "staging", "prod"],
               "dataset_version": ["v1", "v2", "v3"]}
PAGE_FILTER = "metrics.accuracy > 0.8 and params.model_type = 'svm'"
OR_BRANCHES = ["metrics.accuracy > 0.9 AND params.model_type = 'svm'", "params.model_type = 'rf' AND tags.stage = 'prod'"]
OR_FILTER = " OR ".join(f"({branch})" for branch in OR_BRANCHES)
TARGET_MS = {"page": 50.0, "deep page": 50.0, "best": 50.0, "matrix": 500.0}
TARGET_RATIO = {"matrix": 20.0, ("best", "sqlite"): 20.0}
console = Console(width=150)


class BenchFailure(Exception):
    """A store could not be built, or an answer differs from MLflow's."""


@dataclass(frozen=True)
class Stats:
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def as_dict(self) -> dict[str, float | list[float]]:
        return {"median_ms": self.median_ms, "min_ms": min(self.seconds) * 1000, "max_ms": max(self.seconds) * 1000,
                "seconds": self.seconds}


# --- building the stores ----------------------------------------------------------------------------


def run_rows(experiment_id: int, artifact_location: str, runs: int = RUNS) -> dict[str, list[dict[str, Any]]]:
    """The rows MLflow would hold after create_run + log_batch + set_terminated for every run."""
    rng = random.Random(20261123)
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "tags": [], "params": [], "metrics": [], "latest": []}
    base = 1_790_000_000_000
    for number in range(runs):
        run_id = f"{rng.getrandbits(128):032x}"
        start = base + number * 1000 + rng.randrange(1000)
        status = rng.choices(["FINISHED", "FAILED", "RUNNING"], weights=[90, 5, 5])[0]
        name = f"run-{number:05d}"
        rows["runs"].append({
            "run_uuid": run_id, "name": name, "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
            "user_id": "bench", "status": status, "start_time": start,
            "end_time": None if status == "RUNNING" else start + rng.randrange(1000, 600_000), "source_version": "",
            "lifecycle_stage": "active", "artifact_uri": f"{artifact_location}/{run_id}/artifacts",
            "experiment_id": experiment_id, "deleted_time": None,
        })
        tags = {key: rng.choice(values) for key, values in TAG_CHOICES.items()} | {"mlflow.runName": name}
        rows["tags"] += [{"key": key, "value": value, "run_uuid": run_id} for key, value in tags.items()]
        params = {key: rng.choice(values) for key, values in PARAM_CHOICES.items()} | {"seed": str(number % 100)}
        rows["params"] += [{"key": key, "value": value, "run_uuid": run_id} for key, value in params.items()]
        for key in METRICS:
            value = round(rng.uniform(0.05, 2.0) if key == "log_loss" else rng.uniform(0.5, 1.0), 4)
            metric = {"key": key, "value": value, "timestamp": start + 500, "step": 0, "is_nan": False,
                      "run_uuid": run_id}
            rows["metrics"].append(metric)
            rows["latest"].append(metric)
    return rows


def bulk_insert(uri: str, experiment_id: str, artifact_location: str, runs: int = RUNS) -> None:
    tables = {"runs": SqlRun.__table__, "tags": SqlTag.__table__, "params": SqlParam.__table__,
              "metrics": SqlMetric.__table__, "latest": SqlLatestMetric.__table__}
    engine = sa.create_engine(uri)
    try:
        with engine.begin() as conn:
            for name, rows in run_rows(int(experiment_id), artifact_location, runs).items():
                conn.execute(sa.insert(tables[name]), rows)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:  # what autovacuum does soon after a bulk load; plans need the stats
                conn.execute(sa.text("ANALYZE runs, tags, params, metrics, latest_metrics"))
    finally:
        engine.dispose()


def ensure_postgres_database(admin: str, rebuild: bool, runs: int = RUNS) -> str:
    database = PG_DATABASE if runs == RUNS else f"{PG_DATABASE}_{runs}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists and rebuild:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        if not exists or rebuild:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = make_url(admin).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


def ensure_store(uri: str, artifacts: Path, runs: int = RUNS) -> str:
    """The bench experiment's id, after creating and filling it when the store does not hold it yet."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        with RunIndex(uri) as index:
            count = index.page(experiment.experiment_id, limit=1).total
        if count != runs:
            raise BenchFailure(f"{uri} holds {count} bench runs, not {runs}: rerun with --rebuild")
        console.print(f"Reusing {runs:,} runs in {uri}")
        return experiment.experiment_id
    started = time.perf_counter()
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    bulk_insert(uri, experiment_id, artifacts.as_uri(), runs)
    check_sample(client, experiment_id)
    console.print(f"Created {runs:,} runs in {uri} in {time.perf_counter() - started:.1f}s")
    return experiment_id


def check_sample(client: MlflowClient, experiment_id: str) -> None:
    page = client.search_runs([experiment_id], max_results=20)
    for run in page:
        data = run.data
        if sorted(data.metrics) != sorted(METRICS) or sorted(data.params) != sorted(PARAMS) or len(data.tags) != 4:
            raise BenchFailure(f"run {run.info.run_id} reads back wrong through MLflow: {data}")


# --- the queries ------------------------------------------------------------------------------------


def timed(action: Callable[[], object], repeats: int) -> tuple[Stats, object]:
    result = action()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return Stats(seconds), result


def offset_token(offset: int) -> str:
    return SearchUtils.create_page_token(offset).decode()


Query = Callable[[], Any]


def or_page_the_stock_way(client: MlflowClient, experiment_id: str) -> tuple[list[str], int]:
    """MLflow has no OR: every run of each branch, the union by run id in MLflow's order (accuracy DESC,
    then start_time DESC, then run id; every bench run has accuracy), the first 100 and the total."""
    union: dict[str, Any] = {}
    for branch in OR_BRANCHES:
        for run in client.search_runs([experiment_id], branch, order_by=["metrics.accuracy DESC"],
                                      max_results=50_000):
            union[run.info.run_id] = run
    ordered = sorted(union.values(), key=lambda run: (-run.data.metrics["accuracy"], -run.info.start_time,
                                                      run.info.run_id))
    return [run.info.run_id for run in ordered[:100]], len(ordered)


def queries(uri: str, index: RunIndex, client: MlflowClient, experiment_id: str,
            runs: int = RUNS) -> dict[str, tuple[Query, Query]]:
    def mlflow_frame() -> Any:
        mlflow.set_tracking_uri(uri)
        return mlflow.search_runs(experiment_ids=[experiment_id], max_results=runs)

    return {
        "page": (lambda: index.page(experiment_id, filter_string=PAGE_FILTER, order_by=["metrics.accuracy DESC"]),
                 lambda: client.search_runs([experiment_id], PAGE_FILTER, order_by=["metrics.accuracy DESC"],
                                            max_results=100)),
        "deep page": (lambda: index.page(experiment_id, order_by=["params.lr ASC"], offset=5000, limit=100),
                      lambda: client.search_runs([experiment_id], "", order_by=["params.lr ASC"], max_results=100,
                                                 page_token=offset_token(5000))),
        "best": (lambda: index.best(experiment_id, "accuracy", "max"),
                 lambda: client.search_runs([experiment_id], "", order_by=["metrics.accuracy DESC"], max_results=1)),
        "matrix": (lambda: index.matrix(experiment_id, METRICS, PARAMS), mlflow_frame),
        "OR page": (lambda: index.page(experiment_id, filter_string=OR_FILTER, order_by=["metrics.accuracy DESC"]),
                    lambda: or_page_the_stock_way(client, experiment_id)),
    }


def check_same(name: str, ours: Any, theirs: Any, frame: Any) -> None:
    """mlscope's answer against MLflow's for the same question; raises BenchFailure on any difference."""
    if name in ("page", "deep page"):
        same = [run.run_id for run in ours.runs] == [run.info.run_id for run in theirs]
    elif name == "OR page":
        same = ([run.run_id for run in ours.runs], ours.total) == theirs
    elif name == "best":
        same = ours.value == theirs[0].data.metrics["accuracy"] and ours.run.run_id == documented_best(frame)
    else:
        same = list(frame["run_id"]) == ours.run_ids and all(
            _equal(list(frame[f"metrics.{key}"]), ours.metrics[key]) for key in METRICS
        ) and all(list(frame[f"params.{key}"]) == ours.params[key] for key in PARAMS)
    if not same:
        raise BenchFailure(f"{name}: mlscope's answer differs from MLflow's")


def documented_best(frame: Any) -> str:
    """From MLflow's DataFrame: highest accuracy, ties to the earliest start, then the smallest run id
    (MLflow's own order_by query breaks ties by start_time DESC instead)."""
    start_ms = frame["start_time"].astype("int64") // 1_000_000
    rows = sorted(zip(frame["metrics.accuracy"], start_ms, frame["run_id"], strict=True),
                  key=lambda row: (-row[0], row[1], row[2]))
    return str(rows[0][2])


def _equal(left: list[float], right: list[float | None]) -> bool:
    return all((a == b) or (math.isnan(a) and (b is None or math.isnan(b))) for a, b in zip(left, right, strict=True))


def bench_store(store: str, uri: str, experiment_id: str, repeats: int, runs: int = RUNS) -> dict[str, dict[str, Any]]:
    client = MlflowClient(tracking_uri=uri)
    client.search_runs([experiment_id], max_results=1)  # MLflow's store and engine exist before timing
    results: dict[str, dict[str, Any]] = {}
    answers: dict[str, tuple[Any, Any]] = {}
    with RunIndex(uri) as index:
        if index.backend != "sql":
            raise BenchFailure(f"{store}: the index fell back to the API ({index.fallback_reason})")
        for name, (ours, theirs) in queries(uri, index, client, experiment_id, runs).items():
            our_stats, our_answer = timed(ours, repeats)
            their_stats, their_answer = timed(theirs, repeats)
            answers[name] = (our_answer, their_answer)
            results[name] = {"mlscope": our_stats.as_dict(), "mlflow": their_stats.as_dict(),
                             "ratio": their_stats.median_ms / our_stats.median_ms}
            console.print(f"  {store:<10} {name:<10} mlscope {our_stats.median_ms:9.1f} ms   "
                          f"MLflow {their_stats.median_ms:10.1f} ms", highlight=False)
    frame = answers["matrix"][1]
    for name, (ours, theirs) in answers.items():
        check_same(name, ours, theirs, frame)
    console.print(f"  {store:<10} every answer equals MLflow's", highlight=False)
    return results


# --- reporting --------------------------------------------------------------------------------------


def verdicts(store: str, name: str, result: dict[str, Any]) -> list[str]:
    out = []
    if name in TARGET_MS:
        ok = result["mlscope"]["median_ms"] < TARGET_MS[name]
        out.append(f"< {TARGET_MS[name]:.0f} ms: {'met' if ok else 'NOT met'}")
    ratio_target = TARGET_RATIO.get(name) or TARGET_RATIO.get((name, store))
    if ratio_target:
        ok = result["ratio"] >= ratio_target
        out.append(f">= {ratio_target:.0f}x: {'met' if ok else 'NOT met'}")
    return out


def results_table(results: dict[str, dict[str, dict[str, Any]]]) -> Table:
    table = Table(title="Median of the repeats (ms); ratio = MLflow / mlscope", title_justify="left",
                  header_style="bold")
    for column in ("store", "query", "mlscope", "min-max", "MLflow", "min-max ", "ratio", "targets"):
        table.add_column(column, justify="left" if column in ("store", "query", "targets") else "right")
    for store, per_query in results.items():
        for name, result in per_query.items():
            ours, theirs = result["mlscope"], result["mlflow"]
            table.add_row(store, name, f"{ours['median_ms']:.1f}", f"{ours['min_ms']:.1f}-{ours['max_ms']:.1f}",
                          f"{theirs['median_ms']:.1f}", f"{theirs['min_ms']:.0f}-{theirs['max_ms']:.0f}",
                          f"{result['ratio']:.0f}x", "; ".join(verdicts(store, name, result)))
    return table


def machine() -> dict[str, object]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "mlflow": mlflow.__version__,
            "sqlalchemy": sa.__version__, "platform": platform.platform(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per query (default 5)")
    parser.add_argument("--store", type=Path, default=HERE / "out" / "run_index_store",
                        help="folder of the SQLite store, reused between runs")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="libpq URI of the PostgreSQL admin database")
    parser.add_argument("--no-postgres", action="store_true", help="bench SQLite only")
    parser.add_argument("--rebuild", action="store_true", help="recreate the bench's stores")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "run_index_speed.json")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs in the experiment (default {RUNS:,})")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    command = shlex.join([".venv/bin/python", "bench/run_index_speed.py", *(sys.argv[1:] if argv is None else argv)])
    context = machine()
    console.print(f"Command: {command}", highlight=False)
    console.print("Machine: " + ", ".join(f"{k}={v}" for k, v in context.items()), highlight=False)
    try:
        stores = prepare_stores(args)
        results = {store: bench_store(store, uri, experiment_id, args.repeats, args.runs)
                   for store, (uri, experiment_id) in stores.items()}
    except (BenchFailure, psycopg.Error) as exc:
        console.print(f"[bold red]FAILED:[/] {exc}", highlight=False)
        return 1
    load_end = round(os.getloadavg()[0], 2)
    console.print(results_table(results))
    console.print(f"Load average (1 min) at start {context['loadavg_1m_at_start']}, at end {load_end}")
    payload = {"command": command, "machine": {**context, "loadavg_1m_at_end": load_end}, "runs": args.runs,
               "repeats": args.repeats, "page_filter": PAGE_FILTER, "or_filter": OR_FILTER, "targets_ms": TARGET_MS,
               "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote {args.json}")
    return 0


def prepare_stores(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    store_dir: Path = args.store.resolve()
    if args.runs != RUNS:
        store_dir = store_dir.with_name(f"{store_dir.name}_{args.runs}")
    if args.rebuild:
        (store_dir / "mlflow.db").unlink(missing_ok=True)
    store_dir.mkdir(parents=True, exist_ok=True)
    sqlite_uri = f"sqlite:///{store_dir / 'mlflow.db'}"
    stores = {"sqlite": (sqlite_uri, ensure_store(sqlite_uri, store_dir / "artifacts", args.runs))}
    if not args.no_postgres:
        pg_uri = ensure_postgres_database(args.pg_admin, args.rebuild, args.runs)
        stores["postgresql"] = (pg_uri, ensure_store(pg_uri, store_dir / "artifacts-pg", args.runs))
    return stores


if __name__ == "__main__":
    sys.exit(main())
