"""Processes, memory, start-up and request speed of `mlflow server` under mlscope's settings against the
stock defaults, side by side in one run.

    .venv/bin/python bench/server_footprint.py [--runs 50] [--clients 8] [--duration 10] [--warmup 2]
                                               [--rounds 1] [--pg-admin CONNINFO] [--json PATH]

(from the repository root, after `make install`; PostgreSQL at 127.0.0.1:5432, user postgres, trust auth).
Configurations, all built from mlscope.stack.tracking_server.TrackingServer (proxied artifacts, same host):

- stock: MLflow's defaults — no MLFLOW_SERVER_ENABLE_JOB_EXECUTION (job runner on), no --workers (4);
- jobs off: MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false, no --workers (4);
- mlscope: TrackingServer(...).command() and .environment() unchanged (jobs off, --workers 1);
- workers=2: the same with --workers 2 (the compromise, for comparison).

Per configuration (--rounds N repeats the whole set, rotating the order, and reports medians):

1. A fresh, uniquely named PostgreSQL database (plain postgresql:// URI, psycopg2 as in MLflow) and a
   temporary artifacts folder; the server starts in its own session / process group on a free port with
   MLFLOW_*/MLSCOPE_* variables removed from its environment. Log: bench/out/footprint-<config>.log.
2. Start-up: seconds from the spawn until GET /health answers 200 (polled every 0.1 s). The job runner
   and its consumers start after that and keep importing for a while, so the script then waits until the
   server has settled — its set of processes unchanged and their CPU use under 5% of one core for 3 s
   (at most 60 s; "settled s" is counted from the spawn) — and counts the processes of the server's
   process group (plus any descendant outside it), summing RSS (VmRSS), PSS (/proc/<pid>/smaps_rollup:
   each shared page split between the processes that map it — the honest total for a set of Python
   processes, where RSS counts shared libraries once per process) and USS (private pages). Then the
   server's CPU time is read over --idle seconds without requests.
3. Load over HTTP with MlflowClient, as mlscope uses the server: one client creates an experiment and logs
   --runs runs (create_run, log_batch of 8 params + 6 metrics + a 5-step CV curve + 3 tags, set_terminated);
   everything is read back with search_runs and compared with what was logged (or the script exits 1).
   Then --clients threads each loop search_runs (all runs, ordered by metrics.roc_auc DESC) + get_run (a
   random run) for --warmup + --duration seconds; requests started during the timed window count.
   Reported: requests/s, p50/p95 latency per kind, failures (the client's HTTP retries are off, so a
   failure is not hidden by a retry), the server's CPU time during the window (utime+stime from /proc)
   and the bench client's own. Processes and memory are counted again after the load.
4. Stop: SIGTERM to the process group, SIGKILL after 30 s; every process seen during the server's life
   must be gone afterwards (or the script exits 1). The database is dropped (WITH (FORCE)).

Ratios: stock / mlscope for processes, PSS and start-up; mlscope / stock for requests/s. Numbers are
also written to bench/out/server_footprint.json.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # a failed request counts; no silent retry with backoff

import httpx  # noqa: E402
import mlflow  # noqa: E402
import psycopg  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from psycopg import sql  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.` imports when run as a script

from bench.common import command_line, free_port, git  # noqa: E402
from mlscope.stack.tracking_server import TrackingServer  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "mlscope_bench_footprint"
STABLE_SECONDS, QUIET_SHARE, SETTLE_CAP_SECONDS, SAMPLE_SECONDS = 3.0, 0.05, 60.0, 0.5
STOP_SECONDS = 30.0
PARAMS = {"model_type": ["rf", "svm", "logreg"], "n_estimators": ["100", "200"], "max_depth": ["5", "10", "None"],
          "C": ["0.1", "1.0", "10.0"], "scaler": ["standard", "none"], "test_size": ["0.2"],
          "cv_folds": ["5"], "seed": ["42"]}
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
CV_STEPS = 5
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 150)


class BenchFailure(Exception):
    """A server did not start or stop cleanly, or it answered wrong."""


@dataclass(frozen=True)
class Config:
    name: str
    workers: int | None  # None: no --workers, MLflow's default (4)
    job_execution: bool | None  # None: no MLFLOW_SERVER_ENABLE_JOB_EXECUTION, MLflow's default (on)

    def spec(self, backend: str, artifacts: Path, port: int) -> TrackingServer:
        return TrackingServer(backend, artifacts, port=port, workers=self.workers or 4,
                              job_execution=bool(self.job_execution))

    def command(self, spec: TrackingServer) -> list[str]:
        argv = spec.command()
        if self.workers is None:
            at = argv.index("--workers")
            del argv[at:at + 2]
        return argv

    def environment(self, spec: TrackingServer) -> dict[str, str]:
        return {} if self.job_execution is None else spec.environment()

    def describe(self) -> str:
        env = ("(no env var)" if self.job_execution is None
               else f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION={'true' if self.job_execution else 'false'}")
        workers = "(no --workers: 4)" if self.workers is None else f"--workers {self.workers}"
        return f"{env} {workers}"


CONFIGS = [Config("stock", None, None), Config("jobs off", None, False), Config("mlscope", 1, False),
           Config("workers=2", 2, False)]
BASELINE, OURS = "stock", "mlscope"


# --- processes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    state: str
    ticks: int  # utime + stime
    start: int  # start time in ticks since boot: (pid, start) names one process


def read_procs() -> dict[int, Proc]:
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        procs[int(entry.name)] = Proc(int(entry.name), int(rest[1]), int(rest[2]), rest[0],
                                      int(rest[11]) + int(rest[12]), int(rest[19]))
    return procs


def members(leader: int, procs: dict[int, Proc] | None = None) -> dict[int, Proc]:
    """The live (not zombie) processes of the leader's group, plus its descendants outside the group."""
    procs = read_procs() if procs is None else procs
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    found = {pid: p for pid, p in procs.items() if p.pgrp == leader}
    stack = [leader, *found]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = procs[child]
                stack.append(child)
    return {pid: p for pid, p in found.items() if p.state != "Z"}


def kib(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def role(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    line = " ".join(argv)
    if "huey_consumer" in line or "_huey_consumer" in line:
        return "job consumer"
    if "_periodic_tasks_consumer" in line:
        return "periodic tasks"
    if "_job_runner" in line:
        return "job runner"
    if "resource_tracker" in line:
        return "resource tracker"
    if "multiprocessing" in line and "spawn" in line:
        return "uvicorn worker"
    if "-m uvicorn" in line or "uvicorn" in argv[:3]:
        return "uvicorn"
    if "mlflow" in line and "server" in line:
        return "mlflow server CLI"
    return Path(argv[0]).name or "?"


@dataclass
class Footprint:
    processes: int
    outside_group: int
    rss_mb: float
    pss_mb: float
    uss_mb: float
    roles: dict[str, int]
    detail: list[dict[str, Any]] = field(repr=False)


def footprint(leader: int) -> Footprint:
    rows = []
    found = members(leader)
    for pid, proc in sorted(found.items()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # exited between the scan and the read
        rows.append({"pid": pid, "role": role(pid), "in_group": proc.pgrp == leader,
                     "rss_kib": kib(status, "VmRSS"), "pss_kib": kib(rollup, "Pss"),
                     "uss_kib": kib(rollup, "Private_Clean") + kib(rollup, "Private_Dirty")})
    mib = 1024.0
    return Footprint(len(rows), sum(not r["in_group"] for r in rows), sum(r["rss_kib"] for r in rows) / mib,
                     sum(r["pss_kib"] for r in rows) / mib, sum(r["uss_kib"] for r in rows) / mib,
                     dict(Counter(r["role"] for r in rows).most_common()), rows)


def cpu_ticks(leader: int) -> dict[tuple[int, int], int]:
    return {(pid, p.start): p.ticks for pid, p in members(leader).items()}


# --- server life ------------------------------------------------------------------------------------

def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSCOPE_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env | extra


def log_path(config: Config) -> Path:
    return OUT / f"footprint-{config.name.replace('=', '').replace(' ', '-')}.log"


def log_tail(config: Config, lines: int = 25) -> str:
    text = log_path(config).read_text(errors="replace").rstrip().splitlines()[-lines:]
    return f"{log_path(config)} tail:\n" + "\n".join(text)


@contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new empty database; yields its plain postgresql:// URI (psycopg2, MLflow's default driver)."""
    name = f"{DB_PREFIX}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin).set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def wait_health(process: subprocess.Popen[bytes], config: Config, url: str, started: float, timeout: float) -> float:
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise BenchFailure(f"{config.name}: server exited with {process.returncode}; {log_tail(config)}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.1)
    raise BenchFailure(f"{config.name}: {url} did not answer 200 within {timeout:.0f} s; {log_tail(config)}")


def settle(leader: int, seen: set[tuple[int, int]], spawned: float) -> dict[str, Any]:
    """Wait until the server is settled: its set of processes unchanged, and their CPU use below QUIET_SHARE
    of one core, over the last STABLE_SECONDS (at most SETTLE_CAP_SECONDS). Times are seconds since spawn."""
    began = time.perf_counter()
    history: list[tuple[float, frozenset[tuple[int, int]], int]] = []
    share = float("nan")
    while True:
        ticks = cpu_ticks(leader)
        seen.update(ticks)
        now = time.perf_counter()
        history.append((now, frozenset(ticks), sum(ticks.values())))
        since = now  # start of the trailing run of samples with the current set of processes
        for t, keys, _ in reversed(history):
            if keys != history[-1][1]:
                break
            since = t
        if now - since >= STABLE_SECONDS:
            old_t, _, old_ticks = next(h for h in history if h[0] >= now - STABLE_SECONDS - 1e-9)
            if now - old_t >= STABLE_SECONDS - SAMPLE_SECONDS:
                share = (history[-1][2] - old_ticks) / TICKS / (now - old_t)
                if share < QUIET_SHARE:
                    return {"stable_s": since - spawned, "quiet_s": now - spawned, "quiet": True,
                            "cpu_share_last_window": share}
        if now - began >= SETTLE_CAP_SECONDS:
            return {"stable_s": since - spawned, "quiet_s": now - spawned,
                    "quiet": False, "cpu_share_last_window": share}
        time.sleep(SAMPLE_SECONDS)


def idle_cpu_share(leader: int, seconds: float) -> float:
    """The server's CPU time while nobody asks it anything, as a share of one core."""
    before = cpu_ticks(leader)
    time.sleep(seconds)
    after = cpu_ticks(leader)
    return sum(after[k] - before.get(k, 0) for k in after) / TICKS / seconds


def alive(seen: set[tuple[int, int]]) -> list[int]:
    procs = read_procs()
    return [pid for pid, start in seen if pid in procs and procs[pid].start == start and procs[pid].state != "Z"]


def stop(process: subprocess.Popen[bytes], seen: set[tuple[int, int]]) -> dict[str, Any]:
    """SIGTERM to the group; SIGKILL to the group and any survivor after STOP_SECONDS; then nothing may live."""
    leader = process.pid
    seen.update(cpu_ticks(leader))
    started = time.perf_counter()
    with suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGTERM)
    killed = False
    with suppress(subprocess.TimeoutExpired):
        process.wait(STOP_SECONDS)
    while alive(seen) and time.perf_counter() - started < STOP_SECONDS:
        time.sleep(0.1)
    left = alive(seen)
    if process.poll() is None or left:
        killed = True
        console.print(f"[yellow]{len(left)} process(es) outlived SIGTERM by {STOP_SECONDS:.0f} s: SIGKILL[/]")
        with suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGKILL)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)
        deadline = time.perf_counter() + 10
        while alive(seen) and time.perf_counter() < deadline:
            time.sleep(0.1)
    return {"stop_seconds": time.perf_counter() - started, "sigkill": killed, "processes_seen": len(seen),
            "left_after_stop": len(alive(seen))}


# --- load -------------------------------------------------------------------------------------------

def logged_runs(count: int) -> list[dict[str, Any]]:
    rng = random.Random(20261124)
    runs = []
    for number in range(count):
        params = {key: rng.choice(values) for key, values in PARAMS.items()}
        metrics = {key: round(rng.uniform(0.05, 2.0) if key == "log_loss" else rng.uniform(0.5, 1.0), 4)
                   for key in METRICS}
        cv = [round(rng.uniform(0.6, 0.95), 4) for _ in range(CV_STEPS)]
        tags = {"mlscope.experiment": f"exp-{number % 4}", "mlscope.dataset": "titanic", "git_commit": "0" * 40}
        runs.append({"name": f"run-{number:03d}", "params": params, "metrics": metrics, "cv": cv, "tags": tags})
    return runs


def populate(client: MlflowClient, runs: list[dict[str, Any]]) -> tuple[str, list[str], float]:
    started = time.perf_counter()
    experiment_id = client.create_experiment(f"footprint-{uuid.uuid4().hex[:8]}")
    run_ids = []
    for spec in runs:
        run = client.create_run(experiment_id, run_name=spec["name"])
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in spec["metrics"].items()]
        metrics += [Metric("cv_roc_auc", value, now, step) for step, value in enumerate(spec["cv"])]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in spec["params"].items()],
                         tags=[RunTag(k, v) for k, v in spec["tags"].items()])
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return experiment_id, run_ids, time.perf_counter() - started


def check_read_back(client: MlflowClient, experiment_id: str, run_ids: list[str], runs: list[dict[str, Any]]) -> None:
    found = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=1000)}
    if set(found) != set(run_ids):
        raise BenchFailure(f"search_runs returned {len(found)} runs, {len(run_ids)} were logged")
    for run_id, spec in zip(run_ids, runs, strict=True):
        data = found[run_id].data
        expected_metrics = spec["metrics"] | {"cv_roc_auc": spec["cv"][-1]}
        if (data.params != spec["params"] or data.metrics != expected_metrics
                or any(data.tags.get(k) != v for k, v in spec["tags"].items())
                or found[run_id].info.status != "FINISHED"):
            raise BenchFailure(f"run {run_id} reads back differently from what was logged: {data}")
    history = client.get_metric_history(run_ids[0], "cv_roc_auc")
    if [m.value for m in sorted(history, key=lambda m: m.step)] != runs[0]["cv"]:
        raise BenchFailure("the CV curve reads back differently from what was logged")


@dataclass
class Load:
    seconds: float
    requests: int
    failures: int
    requests_per_s: float
    latency_ms: dict[str, dict[str, float]]
    server_cpu_s: float
    client_cpu_s: float
    errors: list[str]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]  # nearest rank


def load(base: str, leader: int, experiment_id: str, run_ids: list[str], clients: int, warmup: float,
         duration: float) -> Load:
    records: list[tuple[str, float, float, bool]] = []  # kind, start, latency, ok
    errors: list[str] = []
    lock = threading.Lock()
    origin = time.perf_counter()
    window = (origin + warmup, origin + warmup + duration)

    def worker(number: int) -> None:
        client = MlflowClient(tracking_uri=base)
        rng = random.Random(number)
        mine: list[tuple[str, float, float, bool]] = []
        while time.perf_counter() < window[1]:
            for kind in ("search_runs", "get_run"):
                started = time.perf_counter()
                if started >= window[1]:
                    break
                ok = True
                try:
                    if kind == "search_runs":
                        page = client.search_runs([experiment_id], order_by=["metrics.roc_auc DESC"], max_results=100)
                        ok = len(page) == len(run_ids)
                    else:
                        run_id = rng.choice(run_ids)
                        ok = client.get_run(run_id).info.run_id == run_id
                except Exception as exc:  # noqa: BLE001 - any failure counts as one
                    ok = False
                    with lock:
                        errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:200]}")
                mine.append((kind, started, time.perf_counter() - started, ok))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    ticks_start, cpu_start = cpu_ticks(leader), time.process_time()
    time.sleep(max(0.0, window[1] - time.perf_counter()))
    ticks_end, cpu_end = cpu_ticks(leader), time.process_time()
    for thread in threads:
        thread.join()
    timed = [r for r in records if window[0] <= r[1] < window[1]]
    latency = {}
    for kind in ("search_runs", "get_run", "all"):
        values = [r[2] * 1000 for r in timed if r[3] and (kind == "all" or r[0] == kind)]
        latency[kind] = {"p50": percentile(values, 50), "p95": percentile(values, 95), "count": len(values)}
    server_ticks = sum(ticks_end[k] - ticks_start.get(k, 0) for k in ticks_end)
    failures = sum(not r[3] for r in timed)
    # the client's own CPU covers its threads during the window and their tails; close enough to compare
    return Load(duration, len(timed), failures, sum(r[3] for r in timed) / duration, latency,
                server_ticks / TICKS, cpu_end - cpu_start, errors[:5])


# --- one configuration ------------------------------------------------------------------------------

def measure(config: Config, args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    with fresh_database(args.pg_admin) as backend, tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        spec = config.spec(backend, Path(tmp) / "artifacts", free_port())
        argv, extra = config.command(spec), config.environment(spec)
        seen: set[tuple[int, int]] = set()
        with log_path(config).open("wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(argv, env=clean_env(extra), cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        stopped: dict[str, Any] | None = None
        try:
            start_s = wait_health(process, config, f"{spec.url}/health", started, args.ready_timeout)
            settled = settle(process.pid, seen, started)
            idle = footprint(process.pid)
            idle_cpu = idle_cpu_share(process.pid, args.idle)
            console.print(f"  {config.name:<10} /health after {start_s:5.1f} s; settled at {settled['quiet_s']:4.1f} s"
                          f"{'' if settled['quiet'] else ' (NOT quiet at the cap)'}: {idle.processes} processes, "
                          f"RSS {idle.rss_mb:,.0f} MiB, PSS {idle.pss_mb:,.0f} MiB, idle CPU {idle_cpu:.1%}  {idle.roles}", highlight=False)
            client = MlflowClient(tracking_uri=spec.url)
            with redirect_stdout(io.StringIO()):  # MlflowClient prints a "View run" link per finished run
                experiment_id, run_ids, log_s = populate(client, runs)
            check_read_back(client, experiment_id, run_ids, runs)
            console.print(f"  {config.name:<10} logged {len(runs)} runs in {log_s:.1f} s", highlight=False)
            loads = {}
            for clients in args.clients:
                result = load(spec.url, process.pid, experiment_id, run_ids, clients, args.warmup, args.duration)
                loads[str(clients)] = asdict(result)
                console.print(f"  {config.name:<10} {clients:2d} client(s): {result.requests_per_s:,.1f} req/s, "
                              f"p50 {result.latency_ms['all']['p50']:.0f} ms, p95 {result.latency_ms['all']['p95']:.0f} ms, "
                              f"{result.failures} failures", highlight=False)
            seen.update(cpu_ticks(process.pid))
            loaded = footprint(process.pid)
            console.print(f"  {config.name:<10} after the load: {loaded.processes} processes, "
                          f"RSS {loaded.rss_mb:,.0f} MiB, PSS {loaded.pss_mb:,.0f} MiB", highlight=False)
        finally:
            stopped = stop(process, seen)
        if stopped["left_after_stop"]:
            raise BenchFailure(f"{config.name}: {stopped['left_after_stop']} process(es) still alive after stop")
    return {"config": config.name, "how": config.describe(), "argv": [Path(argv[0]).name, *argv[1:]], "env": extra,
            "start_s": start_s, **settled, "idle": asdict(idle), "idle_cpu_share": idle_cpu,
            "log_runs_s": log_s, "load": loads, "after_load": asdict(loaded), **stopped}


# --- report -----------------------------------------------------------------------------------------

def median(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for result in rounds:
        value: Any = result
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


FOOTPRINT_KEYS = {
    "processes": ("idle", "processes"), "rss_mb": ("idle", "rss_mb"), "pss_mb": ("idle", "pss_mb"),
    "uss_mb": ("idle", "uss_mb"), "idle_cpu": ("idle_cpu_share",), "start_s": ("start_s",), "settled_s": ("quiet_s",),
    "log_runs_s": ("log_runs_s",), "processes_after_load": ("after_load", "processes"),
    "rss_mb_after_load": ("after_load", "rss_mb"), "pss_mb_after_load": ("after_load", "pss_mb"),
    "stop_s": ("stop_seconds",)}
LOAD_KEYS = {
    "requests_per_s": ("requests_per_s",), "p50_ms": ("latency_ms", "all", "p50"), "p95_ms": ("latency_ms", "all", "p95"),
    "search_p50_ms": ("latency_ms", "search_runs", "p50"), "search_p95_ms": ("latency_ms", "search_runs", "p95"),
    "get_p50_ms": ("latency_ms", "get_run", "p50"), "get_p95_ms": ("latency_ms", "get_run", "p95"),
    "failures": ("failures",), "server_cpu_s": ("server_cpu_s",), "client_cpu_s": ("client_cpu_s",)}


def summarize(results: dict[str, list[dict[str, Any]]], clients: list[int]) -> dict[str, dict[str, Any]]:
    """Per configuration, the median over the rounds of every number; the load's under "load" per client count."""
    out = {}
    for name, rounds in results.items():
        numbers: dict[str, Any] = {key: median(rounds, *path) for key, path in FOOTPRINT_KEYS.items()}
        numbers["load"] = {str(c): {key: median(rounds, "load", str(c), *path) for key, path in LOAD_KEYS.items()}
                           for c in clients}
        out[name] = numbers
    return out


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each other configuration against mlscope's: it / mlscope for the footprint, mlscope / it for req/s."""
    ours = summary[OURS]
    out = {}
    for name, numbers in summary.items():
        if name == OURS:
            continue
        out[name] = {"processes": numbers["processes"] / ours["processes"], "pss": numbers["pss_mb"] / ours["pss_mb"],
                     "rss": numbers["rss_mb"] / ours["rss_mb"], "start": numbers["start_s"] / ours["start_s"],
                     "settled": numbers["settled_s"] / ours["settled_s"],
                     "pss_after_load": numbers["pss_mb_after_load"] / ours["pss_mb_after_load"],
                     "requests_per_s_mlscope_over_it": {
                         c: ours["load"][c]["requests_per_s"] / load["requests_per_s"]
                         for c, load in numbers["load"].items()}}
    return out


def footprint_table(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> Table:
    note = f" (median of {args.rounds} rounds)" if args.rounds > 1 else ""
    table = Table(title=f"Footprint when settled after start-up, and after the load{note}", title_justify="left",
                  header_style="bold")
    for column in ("config", "processes", "RSS MiB", "PSS MiB", "USS MiB", "/health s", "settled s", "idle CPU",
                   f"log {args.runs} runs s", "processes after load", "PSS MiB after load", "stop s"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for name, n in summary.items():
        table.add_row(name, f"{n['processes']:.0f}", f"{n['rss_mb']:,.0f}", f"{n['pss_mb']:,.0f}", f"{n['uss_mb']:,.0f}",
                      f"{n['start_s']:.1f}", f"{n['settled_s']:.1f}", f"{n['idle_cpu']:.1%}", f"{n['log_runs_s']:.2f}",
                      f"{n['processes_after_load']:.0f}", f"{n['pss_mb_after_load']:,.0f}", f"{n['stop_s']:.1f}")
    return table


def load_table(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> Table:
    note = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    table = Table(title=f"MlflowClient threads looping search_runs + get_run, {args.duration:.0f} s after "
                        f"{args.warmup:.0f} s warm-up{note}; latency ms", title_justify="left", header_style="bold")
    for column in ("config", "clients", "req/s", "p50", "p95", "search_runs p50/p95", "get_run p50/p95", "failures",
                   "server CPU s", "client CPU s"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for clients in args.clients:
        for name, numbers in summary.items():
            n = numbers["load"][str(clients)]
            table.add_row(name, str(clients), f"{n['requests_per_s']:,.1f}", f"{n['p50_ms']:.0f}", f"{n['p95_ms']:.0f}",
                          f"{n['search_p50_ms']:.0f} / {n['search_p95_ms']:.0f}",
                          f"{n['get_p50_ms']:.0f} / {n['get_p95_ms']:.0f}", f"{n['failures']:.0f}",
                          f"{n['server_cpu_s']:.1f}", f"{n['client_cpu_s']:.1f}")
        table.add_section()
    return table


def postgres_version(admin: str) -> str:
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def context(args: argparse.Namespace) -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kib = kib(meminfo.read(), "MemTotal")
    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
            "memory_gib": round(total_kib / 1024 / 1024, 1), "load_average_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "mlflow": mlflow.__version__,
            "postgresql": postgres_version(args.pg_admin), "commit": git("rev-parse", "--short", "HEAD"),
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs logged per server before the load (default 50)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8],
                        help="concurrent client threads, one load per value (default: 1 8)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of timed load (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load first (default 2)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds the idle CPU is measured (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="times the whole set runs, order rotated (default 1)")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds a server may take for /health")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="libpq URI of the PostgreSQL admin database")
    parser.add_argument("--json", type=Path, default=OUT / "server_footprint.json", help="where to write the numbers")
    args = parser.parse_args(argv)
    if args.runs < 1 or min(args.clients) < 1 or args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.idle <= 0:
        parser.error("--runs, --clients and --rounds must be >= 1, --duration and --idle > 0, --warmup >= 0")

    began = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        ctx = context(args)
    except psycopg.Error as exc:
        console.print(f"[bold red]PostgreSQL not reachable at {args.pg_admin}:[/] {exc}", highlight=False)
        return 1
    console.print(f"Command: {command_line()}", markup=False, highlight=False)
    console.print("Machine: " + ", ".join(f"{k}={v}" for k, v in ctx.items()), markup=False, highlight=False)
    for config in CONFIGS:
        console.print(f"  {config.name:<10} {config.describe()}", highlight=False)
    runs = logged_runs(args.runs)
    results: dict[str, list[dict[str, Any]]] = {config.name: [] for config in CONFIGS}
    try:
        for number in range(args.rounds):
            order = CONFIGS[number % len(CONFIGS):] + CONFIGS[:number % len(CONFIGS)]
            console.print(f"Round {number + 1}/{args.rounds}: {', '.join(c.name for c in order)}", highlight=False)
            for config in order:
                results[config.name].append(measure(config, args, runs))
    except (BenchFailure, psycopg.Error) as exc:
        console.print(f"[bold red]FAILED:[/] {exc}", markup=False, highlight=False)
        return 1
    ctx["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    summary = summarize(results, args.clients)
    console.print(footprint_table(summary, args))
    console.print(load_table(summary, args))
    relative = ratios(summary)
    for name, r in relative.items():
        speed = ", ".join(f"{x:.2f}x at {c} client{'s' if c != '1' else ''}"
                          for c, x in r["requests_per_s_mlscope_over_it"].items())
        console.print(f"{name} / mlscope: processes [bold]{r['processes']:.1f}x[/], PSS [bold]{r['pss']:.1f}x[/] "
                      f"(RSS {r['rss']:.1f}x; PSS after the load {r['pss_after_load']:.1f}x), /health "
                      f"[bold]{r['start']:.2f}x[/], settled {r['settled']:.2f}x; req/s mlscope / {name}: [bold]{speed}[/]",
                      highlight=False)
    failures = sum(load["failures"] for rounds in results.values() for result in rounds
                   for load in result["load"].values())
    if failures:
        console.print(f"[red]{failures} failed requests: those loads are not valid measurements; first errors:[/]")
        for rounds in results.values():
            for load in rounds[0]["load"].values():
                for error in load["errors"][:2]:
                    console.print(f"  {error}", markup=False, highlight=False)
    elapsed = time.perf_counter() - began
    console.print(f"Machine: {ctx['cpu_count']} CPUs, {ctx['memory_gib']} GiB, load average {ctx['load_average_start']} "
                  f"at start, {ctx['load_average_end']} at end; MLflow {ctx['mlflow']}, PostgreSQL {ctx['postgresql']}, "
                  f"Python {ctx['python']}; commit {ctx['commit']}; {ctx['date']}", markup=False, highlight=False)
    console.print(f"Finished in {elapsed:.0f} s.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "context": ctx, "configs": {c.name: c.describe() for c in CONFIGS}, "summary": summary,
               "ratios_vs_mlscope": relative, "results": results, "seconds": elapsed}
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote {args.json}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
