"""Throughput and latency of `mlscope serve` against `mlflow models serve`, side by side in one run.

    .venv/bin/python bench/serve_speed.py [--duration 10] [--warmup 2] [--threads 1] [--workers 1 [2 ...]]
                                          [--task binary|regression|multiclass] [--logging on|off|both]
                                          [--store DIR] [--json PATH]

(from the repository root, after `make install`; needs wrk: `apt-get install wrk`). Steps:

1. A fresh temporary MLflow store (sqlite + artifact folder) is filled by the real CLI,
   `mlscope --tracking-uri URI train --no-explain` (`--store DIR` keeps it in DIR and reuses it on the
   next run). The alias `@bench` is set on the version made by the run `rf-baseline`.
2. The servers run one after the other as subprocesses on free ports, each loaded by wrk and stopped:
   `mlflow models serve -m models:/titanic-survival@bench --env-manager local` (stock, uvicorn), a
   no-op FastAPI app under mlscope's uvicorn settings (bench/serve_noop_app.py: the ceiling, one
   process), and `mlscope serve --model-name titanic-survival --alias bench --workers N` once per N
   given with --workers (default 1; "mlscope xN" in the tables for N > 1, measured once all N workers
   have loaded the model). Server logs go to bench/out/serve-*.log.
3. Scenarios per server: single-passenger requests from 1, 8 and 32 connections, and batches of 1,000
   passengers from 2 connections; each after a warm-up of --warmup seconds, for --duration seconds.
   wrk cycles through 1,000 distinct passengers (the 179-row test split plus random what-ifs), the same
   for every server. Any non-2xx answer or socket error counts as a failure.
4. Before its load, every answer of each mlscope server to those 1,000 passengers, one by one to
   /predict and all at once to /predict/batch, is compared with the registered model's predict_proba / predict (loaded
   with mlflow.sklearn): probabilities must agree to 1e-9 and labels exactly, or the script exits 1.

`--logging both` measures every mlscope server twice: with the prediction log on (the default: every
answered row is buffered and written to Parquet part files under the store's folder every second) and
off (`MLSCOPE_LOG_PREDICTIONS=false`, "no-log" in the tables), and reports req/s and p99 at 32 clients of
both and their ratio; the rows the log wrote and dropped are read from the server's /metrics after its
load. `--logging off` measures without the log only.

`--task regression|multiclass` serves a demo model of that task instead of Titanic (bench/serve_tasks.py:
a random forest of 100 trees on scikit-learn's diabetes or wine data, logged the stock MLflow way and
registered as `diabetes-progression` / `wine-cultivar`); the requests cycle through the dataset's rows
and jittered copies (1,000 in all), and the answers are checked against the model's `predict` (regression)
or `predict_proba` and `predict` (multiclass) the same way.

Targets (issue: prediction API): >= 1,000 req/s at 32 clients with p99 < 100 ms and >= 20x MLflow's
req/s; >= 200,000 rows/s for batches of 1,000 (checked for every mlscope server). Numbers are also
written to bench/out/serve_speed.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fastapi
import httpx
import mlflow
import numpy as np
import pandas as pd
import sklearn
import uvicorn
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.` imports when run as a script

from bench import serve_tasks  # noqa: E402
from bench.common import command_line, free_port, git  # noqa: E402
from mlscope.data.loader import load_titanic  # noqa: E402
from mlscope.training.experiments import load_plan  # noqa: E402
from mlscope.training.prepare import Split  # noqa: E402

MODEL_NAME, ALIAS, RUN_NAME = "titanic-survival", "bench", "rf-baseline"
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
NUMERIC, INTEGER = ["Pclass", "Age", "SibSp", "Parch", "Fare"], ["Pclass", "SibSp", "Parch"]
POOL_SIZE, WHAT_IF_SEED, MISSING_SHARE = 1000, 42, 0.1
BATCH_ROWS = POOL_SIZE
TOLERANCE = 1e-9
TARGET_RPS, TARGET_P99_MS, TARGET_RPS_RATIO, TARGET_ROWS_PER_S = 1000.0, 100.0, 20.0, 200_000.0
WRK_TIMEOUT = "10s"
STOP_SECONDS = 15.0
HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SERVING_SOURCE = HERE.parent / "src" / "mlscope" / "serving"
SERVE_COMMAND = [HERE.parent / "src" / "mlscope" / "cli" / name for name in ("serve.py", "servers.py", "prefork.py")]
BIN = Path(sys.executable).parent
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)  # tables unwrapped in logs


class BenchFailure(Exception):
    """A server, a load run or a check failed."""


@dataclass(frozen=True)
class Scenario:
    name: str
    connections: int
    batch: bool = False


SCENARIOS = [Scenario("1 client", 1), Scenario("8 clients", 8), Scenario("32 clients", 32),
             Scenario(f"batch {BATCH_ROWS:,} x 2 clients", 2, batch=True)]
AT_32, BATCH = SCENARIOS[2].name, SCENARIOS[3].name


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    single_path: str
    batch_path: str
    mlflow_format: bool  # {"dataframe_records": [...]} with the raw column names
    workers: int = 1  # mlscope serve --workers

    @property
    def slug(self) -> str:
        return self.name.lower().replace(" ", "-")

    @property
    def is_mlscope(self) -> bool:
        return self.name.startswith("mlscope")

    def single_body(self, record: dict[str, Any]) -> str:
        return json.dumps({"dataframe_records": [record]} if self.mlflow_format else lowercase(record))

    def batch_body(self, records: list[dict[str, Any]]) -> str:
        if self.mlflow_format:
            return json.dumps({"dataframe_records": records})
        return json.dumps([lowercase(record) for record in records])


@dataclass(frozen=True)
class Load:
    """One wrk run, as wrk reports it."""

    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int
    rows_per_request: int

    @property
    def rows_per_s(self) -> float:
        return self.requests_per_s * self.rows_per_request

    @property
    def failures(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_s": self.rows_per_s, "failures": self.failures}


@dataclass
class Equality:
    """mlscope's answers against the registered model's, per passenger."""

    checked: int = 0
    max_diff_single: float = 0.0
    max_diff_batch: float = 0.0
    label_mismatches: int = 0
    version_mismatches: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (max(self.max_diff_single, self.max_diff_batch) <= TOLERANCE and not self.label_mismatches
                and not self.version_mismatches and not self.errors)


@dataclass(frozen=True)
class Reference:
    """The records sent, and what the registered model answers for them: P(class 1) and labels (binary),
    predictions (regression), class probabilities (rows, classes) and labels as text (multiclass)."""

    records: list[dict[str, Any]]
    probabilities: np.ndarray
    labels: np.ndarray | None
    version: str
    task: str = "binary"
    model_name: str = MODEL_NAME


# --- passengers -------------------------------------------------------------------------------------

def lowercase(record: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in record.items()}


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as the model signature declares them: numbers float64, text object, NaN for missing."""
    frame = frame[FEATURES].copy()
    for column in FEATURES:
        if column in NUMERIC:
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def what_ifs(rows: int, seed: int) -> pd.DataFrame:
    """Random passengers within the API's ranges, about 10% of age, fare and port missing."""
    rng = np.random.default_rng(seed)

    def sometimes_missing(values: np.ndarray) -> np.ndarray:
        values = values.astype(object)
        values[rng.random(rows) < MISSING_SHARE] = np.nan
        return values

    return typed(pd.DataFrame({
        "Pclass": rng.integers(1, 4, rows),
        "Sex": rng.choice(["male", "female"], rows),
        "Age": sometimes_missing(np.round(rng.uniform(0, 120, rows), 1)),
        "SibSp": rng.integers(0, 9, rows),
        "Parch": rng.integers(0, 9, rows),
        "Fare": sometimes_missing(np.round(rng.uniform(0, 600, rows), 2)),
        "Embarked": sometimes_missing(rng.choice(["S", "C", "Q"], rows)),
    }))


def passengers() -> list[dict[str, Any]]:
    """The test split, then what-ifs up to POOL_SIZE, as JSON records (raw names, null for missing)."""
    test = typed(Split.make(load_titanic(), load_plan().split).X_test)
    frame = pd.concat([test, what_ifs(POOL_SIZE - len(test), WHAT_IF_SEED)], ignore_index=True)
    records = []
    for row in frame.itertuples(index=False):
        record = {}
        for column, value in zip(FEATURES, row, strict=True):
            missing = isinstance(value, float) and math.isnan(value)
            record[column] = None if missing else int(value) if column in INTEGER else value
        records.append(record)
    return records


# --- store ------------------------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without MLflow/mlscope settings, the venv first on PATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSCOPE_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow serve runs `exec uvicorn`
    return env | extra


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def prepare_store(directory: Path) -> str:
    """The tracking URI of the store in `directory`, trained with `mlscope train` when it has none."""
    database = directory / "mlflow.db"
    uri = f"sqlite:///{database}"
    if database.exists():
        console.print(f"Reusing the store {uri}", highlight=False)
        return uri
    console.print(f"Training the built-in experiments into {uri} ...", highlight=False)
    command = [str(BIN / "mlscope"), "--tracking-uri", uri, "train", "--no-explain"]
    env = clean_env(MLSCOPE_ARTIFACT_ROOT=str(directory / "artifacts"))
    done = subprocess.run(command, check=False, cwd=directory, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchFailure(f"mlscope train exited with {done.returncode}; stderr tail:\n{tail(done.stderr)}")
    return uri


def set_bench_alias(uri: str) -> str:
    """Point @bench at the newest version made by the rf-baseline run; return its number."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = [v for v in client.search_model_versions(f"name='{MODEL_NAME}'") if v.tags.get("run_name") == RUN_NAME]
    if not versions:
        raise BenchFailure(f"no version of {MODEL_NAME!r} with tag run_name={RUN_NAME!r} in {uri}")
    version = str(max(int(v.version) for v in versions))
    client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    return version


def reference(uri: str, version: str) -> Reference:
    """The registered model's predict_proba and predict on the passengers, loaded in this process."""
    import mlflow.sklearn

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{ALIAS}")
    records = passengers()
    frame = typed(pd.DataFrame(records, columns=FEATURES))
    positive = list(model.classes_).index(1)
    return Reference(records, model.predict_proba(frame)[:, positive], np.asarray(model.predict(frame)), version)


# --- servers ----------------------------------------------------------------------------------------

NO_LOG = " no-log"
LOG_FLUSH_SECONDS = 1.0  # mlscope's default log_flush_seconds: the log is written within this after the load


def mlscope_name(workers: int, logging: bool = True) -> str:
    return ("mlscope" if workers == 1 else f"mlscope x{workers}") + ("" if logging else NO_LOG)


def servers(uri: str, workers: list[int], model_name: str = MODEL_NAME, logging: str = "on") -> list[Server]:
    host = ["--host", "127.0.0.1", "--port"]
    mlflow_env = clean_env(MLFLOW_TRACKING_URI=uri, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    return [
        Server("MLflow", [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{model_name}@{ALIAS}",
                          "--env-manager", "local", *host], mlflow_env,
               "/ping", "/invocations", "/invocations", mlflow_format=True),
        Server("no-op", [sys.executable, str(HERE / "serve_noop_app.py"), *host], clean_env(),
               "/ready", "/predict", "/predict/batch", mlflow_format=False),
        *(Server(mlscope_name(n, log), [str(BIN / "mlscope"), "--tracking-uri", uri, "serve",
                                        "--model-name", model_name, "--alias", ALIAS, "--workers", str(n), *host],
                 clean_env(MLSCOPE_LOG_PREDICTIONS=str(log).lower(),
                           MLSCOPE_LOG_FLUSH_SECONDS=str(LOG_FLUSH_SECONDS)),
                 "/ready", "/predict", "/predict/batch", mlflow_format=False, workers=n)
          for n in workers for log in {"on": (True,), "off": (False,), "both": (True, False)}[logging]),
    ]


def log_path(server: Server) -> Path:
    return OUT / f"serve-{server.slug}.log"


def log_tail(server: Server) -> str:
    text = tail(log_path(server).read_text(errors="replace"))
    return f"{log_path(server)} tail:\n{text}" if text else f"{log_path(server)} is empty"


def wait_ready(process: subprocess.Popen[bytes], server: Server, url: str, timeout: float) -> float:
    """Seconds until GET `url` answers 200; BenchFailure with the log's tail if it exits or times out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise BenchFailure(f"{server.name} exited with {process.returncode} before it was ready; "
                               + log_tail(server))
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.25)
    raise BenchFailure(f"{server.name} was not ready ({url} != 200) after {timeout:.0f} s; {log_tail(server)}")


def wait_workers(process: subprocess.Popen[bytes], server: Server, base: str, timeout: float) -> float:
    """Seconds until /metrics shows every worker of `server` with a model loaded (one gauge per pid)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise BenchFailure(f"{server.name} exited with {process.returncode}; " + log_tail(server))
        with suppress(httpx.HTTPError):
            text = httpx.get(base + "/metrics", timeout=2).text
            if len(re.findall(r'^mlscope_api_model_loaded\{pid="\d+"\} 1\.0$', text, re.MULTILINE)) == server.workers:
                return time.perf_counter() - started
        time.sleep(0.25)
    raise BenchFailure(f"{server.name}: not all {server.workers} workers loaded after {timeout:.0f} s; {log_tail(server)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after STOP_SECONDS."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        console.print(f"[yellow]pid {process.pid} ignored SIGTERM for {STOP_SECONDS:.0f} s: killing it[/]")
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the leader's children (mlflow: uvicorn), if any remain
    process.wait()


@contextmanager
def running(server: Server, cwd: Path, ready_timeout: float) -> Iterator[str]:
    """Start `server` in its own process group on a free port; yield its base URL; always stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path(server).open("wb") as log:
        process = subprocess.Popen([*server.command, str(port)], cwd=cwd, env=server.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seconds = wait_ready(process, server, base + server.ready_path, ready_timeout)
        if server.workers > 1:
            seconds += wait_workers(process, server, base, ready_timeout)
        console.print(f"{server.name} ready on port {port} after {seconds:.1f} s", highlight=False)
        yield base
    finally:
        stop(process)


def smoke(server: Server, base: str, records: list[dict[str, Any]]) -> None:
    """One single and one batch request must answer 200, so wrk does not time error pages."""
    for path, body in ((server.single_path, server.single_body(records[0])),
                       (server.batch_path, server.batch_body(records))):
        answer = httpx.post(base + path, content=body, headers={"Content-Type": "application/json"}, timeout=60)
        if answer.status_code != 200:
            raise BenchFailure(f"{server.name} {path} answered HTTP {answer.status_code}: {answer.text[:300]}")


# --- load -------------------------------------------------------------------------------------------

LUA = """
local bodies = {}
for line in io.lines([==[%s]==]) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def milliseconds(value: str, unit: str) -> float:
    return float(value) * UNITS_MS[unit]


def parse_wrk(output: str, rows_per_request: int) -> Load:
    def number(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    done = number(r"(\d+) requests in ([\d.]+)(\w+),")
    rate = number(r"^Requests/sec:\s+([\d.]+)")
    if done is None or rate is None:
        raise BenchFailure(f"cannot parse wrk's output:\n{output}")
    percentile = {p: number(rf"^\s+{p}%\s+([\d.]+)([a-z]+)\s*$") for p in (50, 99)}
    errors = number(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = number(r"Non-2xx or 3xx responses: (\d+)")
    requests = int(done.group(1))
    return Load(
        requests=requests,
        seconds=milliseconds(done.group(2), done.group(3)) / 1000,
        requests_per_s=float(rate.group(1)),
        p50_ms=milliseconds(*percentile[50].groups()) if percentile[50] and requests else None,
        p99_ms=milliseconds(*percentile[99].groups()) if percentile[99] and requests else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, errors.groups())) if errors else 0,
        rows_per_request=rows_per_request,
    )


def wrk(url: str, lua: Path, connections: int, threads: int, seconds: float, rows: int) -> Load:
    command = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds:g}s",
               "--timeout", WRK_TIMEOUT, "--latency", "-s", str(lua), url]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"wrk did not finish within {seconds + 60:.0f} s: {shlex.join(command)}") from None
    if done.returncode != 0:
        raise BenchFailure(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout, rows)


def write_lua(folder: Path, name: str, bodies: list[str]) -> Path:
    """A wrk script that POSTs `bodies` (one JSON document per line) in turn."""
    data = folder / f"{name}.jsonl"
    data.write_text("\n".join(bodies) + "\n")
    script = folder / f"{name}.lua"
    script.write_text(LUA % data)
    return script


def load_server(server: Server, base: str, records: list[dict[str, Any]], folder: Path,
                args: argparse.Namespace) -> dict[str, Load]:
    single = write_lua(folder, f"{server.slug}-single", [server.single_body(r) for r in records])
    batch = write_lua(folder, f"{server.slug}-batch", [server.batch_body(records[:BATCH_ROWS])])
    results = {}
    for scenario in SCENARIOS:
        lua, path, rows = (batch, server.batch_path, BATCH_ROWS) if scenario.batch else (single, server.single_path, 1)
        if args.warmup > 0:
            wrk(base + path, lua, scenario.connections, args.threads, args.warmup, rows)
        load = wrk(base + path, lua, scenario.connections, args.threads, args.duration, rows)
        results[scenario.name] = load
        console.print(f"  {server.name:<10} {scenario.name:<24} {load.requests_per_s:10,.1f} req/s  "
                      f"p50 {ms(load.p50_ms):>9}  p99 {ms(load.p99_ms):>9}  failures {load.failures}",
                      highlight=False)
    return results


# --- mlscope's answers ------------------------------------------------------------------------------

def _binary(check: Equality, answer: dict[str, Any], expected: Reference, i: int) -> float:
    assert expected.labels is not None
    check.label_mismatches += int(answer["survived"] != int(expected.labels[i]))
    return abs(float(answer["probability"]) - float(expected.probabilities[i]))


def _regression(check: Equality, answer: dict[str, Any], expected: Reference, i: int) -> float:
    return abs(float(answer["prediction"]) - float(expected.probabilities[i]))


def _multiclass(check: Equality, answer: dict[str, Any], expected: Reference, i: int) -> float:
    assert expected.labels is not None
    check.label_mismatches += int(answer["label"] != expected.labels[i])
    return float(np.abs(np.array(list(answer["probabilities"].values())) - expected.probabilities[i]).max())


ANSWER_CHECKS = {"binary": _binary, "regression": _regression, "multiclass": _multiclass}


def check_answer(check: Equality, answer: dict[str, Any], expected: Reference, i: int) -> float:
    """|output - reference| of one answer (the largest over the classes for multiclass); label and version
    mismatches are counted in `check`."""
    check.version_mismatches += int(str(answer["model"]["version"]) != expected.version)
    return ANSWER_CHECKS[expected.task](check, answer, expected, i)


def check_mlscope(base: str, expected: Reference) -> Equality:
    """Every passenger one by one to /predict, then all of them at once to /predict/batch."""
    check = Equality(checked=len(expected.records))
    with httpx.Client(base_url=base, timeout=30) as client:
        for i, record in enumerate(expected.records):
            answer = client.post("/predict", json=lowercase(record))
            if answer.status_code != 200:
                check.errors.append(f"/predict {lowercase(record)}: HTTP {answer.status_code} {answer.text[:200]}")
                continue
            check.max_diff_single = max(check.max_diff_single, check_answer(check, answer.json(), expected, i))
        answer = client.post("/predict/batch", json=[lowercase(record) for record in expected.records])
    if answer.status_code != 200:
        check.errors.append(f"/predict/batch: HTTP {answer.status_code} {answer.text[:200]}")
        return check
    answers = answer.json()
    if len(answers) != len(expected.records):
        check.errors.append(f"/predict/batch: {len(answers)} answers for {len(expected.records)} records")
        return check
    for i, item in enumerate(answers):
        check.max_diff_batch = max(check.max_diff_batch, check_answer(check, item, expected, i))
    return check


# --- report -----------------------------------------------------------------------------------------

def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def yes(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def results_table(results: dict[str, dict[str, Load]]) -> Table:
    table = Table(title="Requests against each server (wrk)", title_justify="left", header_style="bold")
    for column in ("server", "scenario", "req/s", "rows/s", "p50", "p99", "requests", "failures"):
        table.add_column(column, justify="left" if column in ("server", "scenario") else "right")
    for server, loads in results.items():
        for scenario, load in loads.items():
            failures = f"[red]{load.failures}[/red]" if load.failures else "0"
            table.add_row(server, scenario, f"{load.requests_per_s:,.1f}", f"{load.rows_per_s:,.0f}",
                          ms(load.p50_ms), ms(load.p99_ms), f"{load.requests:,}", failures)
        table.add_section()
    return table


def summary(results: dict[str, dict[str, Load]], name: str) -> dict[str, Any]:
    """The headline numbers of the mlscope server `name` against MLflow and the no-op ceiling."""
    ours, stock, ceiling = results[name], results["MLflow"], results["no-op"]
    p99 = ours[AT_32].p99_ms
    return {
        "mlscope_rps_32": ours[AT_32].requests_per_s,
        "mlflow_rps_32": stock[AT_32].requests_per_s,
        "rps_ratio_32": ours[AT_32].requests_per_s / stock[AT_32].requests_per_s,
        "mlscope_p99_ms_32": p99,
        "mlscope_rows_per_s_batch": ours[BATCH].rows_per_s,
        "rows_ratio_batch": ours[BATCH].rows_per_s / stock[BATCH].rows_per_s,
        "share_of_noop_ceiling": {s: ours[s].requests_per_s / ceiling[s].requests_per_s for s in ours},
        "targets_met": {
            "rps_32": ours[AT_32].requests_per_s >= TARGET_RPS,
            "p99_32": p99 is not None and p99 < TARGET_P99_MS,
            "rps_ratio_32": ours[AT_32].requests_per_s / stock[AT_32].requests_per_s >= TARGET_RPS_RATIO,
            "rows_per_s_batch": ours[BATCH].rows_per_s >= TARGET_ROWS_PER_S,
        },
    }


def log_counts(base: str) -> dict[str, float]:
    """The prediction log's written and dropped rows from /metrics, once the last flush is done."""
    time.sleep(LOG_FLUSH_SECONDS + 0.5)
    text = httpx.get(base + "/metrics", timeout=30).text
    counts = {}
    for key, metric in (("rows_written", "mlscope_prediction_log_rows_total"),
                        ("rows_dropped", "mlscope_prediction_log_dropped_total")):
        found = re.search(rf"^{metric} (\S+)$", text, re.MULTILINE)
        counts[key] = float(found.group(1)) if found else 0.0
    return counts


def logging_cost(results: dict[str, dict[str, Load]], logged: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per mlscope server measured with and without the log: req/s and p99 at 32 clients, and the ratio."""
    costs = {}
    for name in logged:
        off = results.get(name + NO_LOG)
        if off is None:
            continue
        on = results[name]
        costs[name] = {"rps_32_log_on": on[AT_32].requests_per_s, "rps_32_log_off": off[AT_32].requests_per_s,
                       "rps_ratio_on_off": on[AT_32].requests_per_s / off[AT_32].requests_per_s,
                       "p99_ms_32_log_on": on[AT_32].p99_ms, "p99_ms_32_log_off": off[AT_32].p99_ms,
                       **logged[name]}
    return costs


def print_logging_cost(costs: dict[str, Any]) -> None:
    for name, cost in costs.items():
        console.print(f"[bold]{name}[/], prediction log on vs off at 32 clients: {cost['rps_32_log_on']:,.0f} vs "
                      f"{cost['rps_32_log_off']:,.0f} req/s ([bold]{cost['rps_ratio_on_off']:.1%}[/]), p99 "
                      f"{ms(cost['p99_ms_32_log_on'])} vs {ms(cost['p99_ms_32_log_off'])}; the log wrote "
                      f"{cost['rows_written']:,.0f} rows and dropped {cost['rows_dropped']:,.0f}", highlight=False)


def print_summary(name: str, numbers: dict[str, Any], check: Equality) -> None:
    met = numbers["targets_met"]
    console.print(f"[bold]{name}[/]", highlight=False)
    console.print(f"mlscope / MLflow, req/s at 32 clients: [bold]{numbers['rps_ratio_32']:.1f}x[/] "
                  f"({numbers['mlscope_rps_32']:,.0f} vs {numbers['mlflow_rps_32']:,.1f}); "
                  f">= {TARGET_RPS_RATIO:.0f}x: {yes(met['rps_ratio_32'])}; "
                  f">= {TARGET_RPS:,.0f} req/s: {yes(met['rps_32'])}")
    console.print(f"mlscope p99 at 32 clients: {ms(numbers['mlscope_p99_ms_32'])}; "
                  f"< {TARGET_P99_MS:.0f} ms: {yes(met['p99_32'])}")
    console.print(f"mlscope / MLflow, rows/s in batches of {BATCH_ROWS:,}: [bold]{numbers['rows_ratio_batch']:.1f}x[/] "
                  f"({numbers['mlscope_rows_per_s_batch']:,.0f} rows/s); "
                  f">= {TARGET_ROWS_PER_S:,.0f} rows/s: {yes(met['rows_per_s_batch'])}")
    shares = ", ".join(f"{name} {share:.0%}" for name, share in numbers["share_of_noop_ceiling"].items())
    console.print(f"mlscope req/s as a share of the no-op ceiling: {shares}")
    console.print(f"Answers equal to the registered model's predict_proba / predict (<= {TOLERANCE:g}), labels: "
                  f"{yes(check.ok)} ({check.checked:,} records one by one and in one batch; max |diff| "
                  f"{check.max_diff_single:.1e} single, {check.max_diff_batch:.1e} batch; "
                  f"{check.label_mismatches} label and {check.version_mismatches} version mismatches, "
                  f"{len(check.errors)} errors)")
    for error in check.errors[:5]:
        console.print(f"  {error}", markup=False, highlight=False)


def source_state() -> dict[str, Any]:
    """Commit, uncommitted files under src/, and a hash of the serving code (src/ may change meanwhile)."""
    digest = hashlib.sha256()
    for path in sorted([*SERVING_SOURCE.glob("*.py"), *SERVE_COMMAND]):
        digest.update(path.read_bytes() if path.exists() else b"")
    dirty = [line.strip() for line in git("status", "--porcelain", "src").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_src": dirty, "serving_sha256": digest.hexdigest()[:12]}


def context(load_start: tuple[float, float, float], source: dict[str, Any]) -> dict[str, Any]:
    wrk_version = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True).stdout
    return {
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        **source,
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "sklearn": sklearn.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "wrk": wrk_version.split(" Copyright")[0],
        "platform": platform.platform(),
    }


# --- main -------------------------------------------------------------------------------------------

def task_reference(store: Path, task: str) -> tuple[str, Reference]:
    """The store's URI and the reference answers of the demo model of `task` (registered on first use)."""
    demo = serve_tasks.DEMOS[task]
    uri = f"sqlite:///{store / 'mlflow.db'}"
    console.print(f"Registering the {task} demo model into {uri} ...", highlight=False)
    version = serve_tasks.register(uri, demo, ALIAS, store / "artifacts")
    console.print(f"@{ALIAS} -> version {version} of {demo.model_name}", highlight=False)
    records = serve_tasks.records(demo, POOL_SIZE)
    outputs, labels = serve_tasks.reference(uri, demo, ALIAS, records)
    return uri, Reference(records, outputs, labels, version, task, demo.model_name)


def bench(store: Path, work: Path, args: argparse.Namespace
          ) -> tuple[dict[str, dict[str, Load]], dict[str, Equality], Reference, dict[str, dict[str, float]]]:
    if args.task == "binary":
        uri = prepare_store(store)
        version = set_bench_alias(uri)
        console.print(f"@{ALIAS} -> version {version} of {MODEL_NAME} (run {RUN_NAME})", highlight=False)
        expected = reference(uri, version)
    else:
        uri, expected = task_reference(store, args.task)
    results: dict[str, dict[str, Load]] = {}
    checks: dict[str, Equality] = {}
    logged: dict[str, dict[str, float]] = {}
    for server in servers(uri, args.workers, expected.model_name, args.logging):
        with running(server, store, args.ready_timeout) as base:
            smoke(server, base, expected.records[:BATCH_ROWS])
            if server.is_mlscope:
                checks[server.name] = check_mlscope(base, expected)
            results[server.name] = load_server(server, base, expected.records, work, args)
            if server.is_mlscope and not server.name.endswith(NO_LOG):
                logged[server.name] = log_counts(base)
    return results, checks, expected, logged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load before each scenario")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads, at most one per connection (default 1)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], metavar="N",
                        help="measure `mlscope serve --workers N` for each N given (default 1), e.g. --workers 1 2")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds a server may take to be ready")
    parser.add_argument("--task", choices=["binary", *serve_tasks.DEMOS], default="binary",
                        help="binary: the Titanic model trained by `mlscope train` (default); regression or "
                             "multiclass: a demo forest of that task (bench/serve_tasks.py)")
    parser.add_argument("--logging", choices=["on", "off", "both"], default="on",
                        help="mlscope's prediction log: on (the default setting), off, or both to measure its cost")
    parser.add_argument("--store", type=Path, help="keep the MLflow store in this folder; reuse it if it has one")
    parser.add_argument("--json", type=Path, help="where to write the numbers (default bench/out/serve_speed.json, "
                                                  "serve_speed_TASK.json with --task regression|multiclass)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.threads < 1 or min(args.workers) < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --threads >= 1 and --workers >= 1")
    args.workers = sorted(set(args.workers))
    args.json = args.json or OUT / ("serve_speed.json" if args.task == "binary" else f"serve_speed_{args.task}.json")
    if shutil.which("wrk") is None:
        console.print("[red]wrk not found[/]: install it with `apt-get install wrk`")
        return 2

    started, load_start, source = time.perf_counter(), os.getloadavg(), source_state()
    console.print(f"Command: {command_line()}", markup=False, highlight=False)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        store = args.store.resolve() if args.store else Path(tmp)
        store.mkdir(parents=True, exist_ok=True)
        try:
            results, checks, expected, logged = bench(store, Path(tmp), args)
        except BenchFailure as exc:
            console.print(f"[bold red]FAILED:[/] {exc}", highlight=False)
            return 1

    ctx = context(load_start, source)
    console.print(results_table(results))
    numbers = {name: summary(results, name) for name in checks}
    for name, check in checks.items():
        print_summary(name, numbers[name], check)
    costs = logging_cost(results, logged)
    print_logging_cost(costs)
    failures = sum(load.failures for loads in results.values() for load in loads.values())
    if failures:
        console.print(f"[red]{failures} failed requests: the numbers above are not valid measurements[/]")
    elapsed = time.perf_counter() - started
    console.print(f"Machine: {ctx['cpu_count']} CPUs, load average {ctx['load_average_start']} at start, "
                  f"{ctx['load_average_end']} at end; {ctx['wrk']}; MLflow {ctx['mlflow']}, "
                  f"uvicorn {ctx['uvicorn']}; commit {ctx['commit']}, serving code sha256 {ctx['serving_sha256']}, "
                  f"uncommitted in src/: {', '.join(ctx['dirty_src']) or 'none'}", markup=False, highlight=False)
    console.print(f"Finished in {elapsed:.0f} s.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command_line(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "context": ctx,
        "model": {"name": expected.model_name, "alias": ALIAS, "version": expected.version, "task": expected.task,
                  **({"run_name": RUN_NAME} if expected.task == "binary" else {})},
        "results": {server: {s: load.as_dict() for s, load in loads.items()} for server, loads in results.items()},
        "summary": numbers,
        "prediction_log": {"logged": logged, "on_vs_off": costs},
        "equality": {name: asdict(check) | {"ok": check.ok, "tolerance": TOLERANCE} for name, check in checks.items()},
        "seconds": elapsed,
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote {args.json}")
    return 0 if all(check.ok for check in checks.values()) and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
