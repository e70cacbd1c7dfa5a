"""`mlscope simulate`: realistic traffic and delayed feedback for a running prediction API."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlscope.cli.common import console, err_console, quiet_mlflow, settings_of, user_errors
from mlscope.config import Settings
from mlscope.errors import BadInput, NotReady

if TYPE_CHECKING:
    import httpx

    from mlscope.monitoring.simulation import Source

FEEDBACK_CHUNK = 500


@dataclass
class Sent:
    """What the requests came back with: one request id per answered row, failures by reason."""

    request_ids: dict[int, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


def _served(http: httpx.Client, url: str) -> dict[str, Any]:
    import httpx

    try:
        reply = http.get("/model")
    except httpx.HTTPError as exc:
        raise NotReady(f"cannot reach the prediction API at {url}: {exc}", field="url") from None
    if reply.status_code != 200:
        raise NotReady(f"the prediction API at {url} serves no model yet ({reply.status_code}): "
                       f"{_message(reply)}", field="url")
    return reply.json()


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:200]


def _importance(settings: Settings, run_id: str | None) -> dict[str, float] | None:
    """Mean |SHAP| per feature of the run's logged explanation (what `--drift` shifts first), if any."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    from mlscope.errors import MlscopeError
    from mlscope.explain.service import stored_any_explanation
    from mlscope.tracking.client import make_client

    try:
        stored = stored_any_explanation(make_client(settings), run_id)
    except (MlflowException, MlscopeError, OSError, ValueError):
        return None
    if stored is None:
        return None
    explanation = stored[0]
    return {f: float(abs(explanation.values[:, i]).mean()) for i, f in enumerate(explanation.features)}


def _source(settings: Settings, served: dict[str, Any], data: Path | None, target: str | None) -> Source:
    """Where rows come from: --data with --target; a shipped demo's data (Titanic: the shipped CSV) for
    the demo models; else the served version's training reference sample (no truth, so no feedback)."""
    from mlscope.cli.train import DEMO_MODEL_NAMES
    from mlscope.data.loader import load_demo, read_csv
    from mlscope.monitoring.simulation import Source, truth_text

    if data is not None:
        if not target:
            raise BadInput("--data needs --target (the column holding the truth)", field="target")
        frame = read_csv(data)
        if target not in frame:
            raise BadInput(f"--target column '{target}' is not in {data}", field="target")
        return Source(frame.drop(columns=[target]), truth_text(frame[target]), f"{data} (truth: {target})")
    demos = {model: dataset for dataset, model in DEMO_MODEL_NAMES.items()}
    if served.get("name") in demos:
        dataset = load_demo(demos[served["name"]])
        return Source(dataset.X, truth_text(dataset.y), f"the shipped {dataset.name} data (truth: {dataset.target})")
    return _reference_source(settings, served)


def _reference_source(settings: Settings, served: dict[str, Any]) -> Source:
    from mlscope.monitoring.reference import load_reference
    from mlscope.monitoring.report import INPUT_PREFIX
    from mlscope.monitoring.simulation import Source
    from mlscope.tracking.client import make_client

    run_id = served.get("run_id")
    if not run_id:
        raise BadInput(f"version {served.get('version')} of '{served.get('name')}' has no source run to sample "
                       "rows from; give --data FILE.csv --target COLUMN", field="data")
    reference = load_reference(make_client(settings), run_id, settings.monitor_dir / "references")
    frame = reference_frame(reference)
    inputs = frame[[c for c in frame.columns if c.startswith(INPUT_PREFIX)]]
    return Source(inputs.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX)), None,
                  f"the training reference sample of run {run_id} (no truth: no feedback is sent)")


def reference_frame(reference: Any) -> Any:
    """The reference sample's rows as a pandas frame."""
    import pandas as pd

    frame = getattr(reference, "frame", reference)
    return frame.to_pandas() if hasattr(frame, "to_pandas") else pd.DataFrame(frame)


def _send(url: str, bodies: list[dict[str, Any]], clients: int, batch_size: int, progress: Progress) -> Sent:
    import httpx

    sent = Sent()
    bar = progress.add_task("predictions", total=len(bodies))
    chunks = [list(range(start, min(start + batch_size, len(bodies)))) for start in range(0, len(bodies), batch_size)]

    def one(http: httpx.Client, positions: list[int]) -> None:
        started = time.perf_counter()
        try:
            if batch_size == 1:
                reply = http.post("/predict", json=bodies[positions[0]])
            else:
                reply = http.post("/predict/batch", json=[bodies[p] for p in positions])
        except httpx.HTTPError as exc:
            sent.failed(type(exc).__name__)
        else:
            sent.latencies_ms.append((time.perf_counter() - started) * 1000)
            if reply.status_code == 200:
                answers = reply.json() if batch_size > 1 else [reply.json()]
                for position, answer in zip(positions, answers, strict=True):
                    request_id = answer.get("request_id") or reply.headers.get("x-request-id")
                    if request_id:
                        sent.request_ids[position] = request_id
            else:
                sent.failed(f"{reply.status_code}: {_message(reply)}")
        sent.requests += 1
        progress.advance(bar, len(positions))

    def worker(share: list[list[int]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for positions in share:
                one(http, positions)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, [chunks[i::clients] for i in range(clients)]))
    return sent


def _feedback(url: str, pairs: list[dict[str, str]], delay: float, progress: Progress) -> tuple[int, dict[str, int]]:
    """Post the truth after `delay` seconds, in chunks to /feedback/batch: (accepted, rejected by reason)."""
    import httpx

    waiting = progress.add_task(f"feedback arrives in {delay:g}s", total=None)
    time.sleep(delay)
    progress.remove_task(waiting)
    bar = progress.add_task("feedback", total=len(pairs))
    accepted, rejected = 0, {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for start in range(0, len(pairs), FEEDBACK_CHUNK):
            chunk = pairs[start:start + FEEDBACK_CHUNK]
            reply = http.post("/feedback/batch", json=chunk)
            if 200 <= reply.status_code < 300:
                accepted += len(chunk)
            else:
                reason = f"{reply.status_code}: {_message(reply)}"
                rejected[reason] = rejected.get(reason, 0) + len(chunk)
            progress.advance(bar, len(chunk))
    return accepted, rejected


def _percentile(values: list[float], q: float) -> str:
    import numpy as np

    return f"{np.percentile(values, q):.1f} ms" if values else "—"


def simulate(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Base URL of the prediction API (default: "
                                                 "http://127.0.0.1:$MLSCOPE_API_PORT).")] = None,
    requests: Annotated[int, typer.Option("--requests", min=1, max=1_000_000,
                                          help="How many rows to send.")] = 500,
    drift: Annotated[bool, typer.Option(help="Send a shifted population (Titanic: more third class, older "
                                             "passengers; other models: their top numeric feature moves).")] = False,
    clients: Annotated[int, typer.Option(min=1, max=64, help="Concurrent HTTP clients.")] = 4,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000,
                                            help="Rows per request (1: /predict, more: /predict/batch).")] = 1,
    label_share: Annotated[float, typer.Option(min=0.0, max=1.0,
                                               help="Share of the answered rows whose truth is sent back.")] = 0.8,
    feedback_delay: Annotated[float, typer.Option(min=0.0, max=3600.0,
                                                  help="Seconds between the last answer and the feedback.")] = 2.0,
    data: Annotated[Path | None, typer.Option(help="CSV to sample rows from (with --target: their truth).")] = None,
    target: Annotated[str | None, typer.Option(help="Truth column of --data.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the sampled rows.")] = 0,
) -> None:
    """Send realistic traffic (optionally drifted) to a running API, then the truth as delayed feedback."""
    import httpx
    import numpy as np

    from mlscope.monitoring.simulation import drifted, requests as request_bodies, sample

    quiet_mlflow()
    settings = settings_of(ctx)
    base = (url or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
    with user_errors():
        with httpx.Client(base_url=base, timeout=30) as http:
            served = _served(http, base)
        source = _source(settings, served, data, target)
        rng = np.random.default_rng(seed)
        if drift:
            chosen, shift = drifted(source, requests, rng, _importance(settings, served.get("run_id")))
            shifted = shift.description
        else:
            chosen, shifted = sample(source, requests, rng), "none"
        bodies = request_bodies(chosen.rows, served.get("input_schema", {}))
        console.print(f"Sending {requests} row(s) from {source.description} to [bold]{served['name']}[/] version "
                      f"{served['version']} at {base}" + (f" — drifted: {shifted}" if drift else ""), highlight=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            sent = _send(base, bodies, clients, batch_size, progress)
            pairs: list[dict[str, str]] = []
            if chosen.truth is not None and sent.request_ids:
                answered = sorted(sent.request_ids)
                keep = rng.random(len(answered)) < label_share
                pairs = [{"request_id": sent.request_ids[p], "actual": chosen.truth.iloc[p]}
                         for p, kept in zip(answered, keep, strict=True)
                         if kept and chosen.truth.iloc[p] is not None]
            accepted, rejected = _feedback(base, pairs, feedback_delay, progress) if pairs else (0, {})
    table = Table(title=f"Simulated traffic for {served['name']} v{served['version']}", title_justify="left",
                  header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in (("rows sent", str(requests)), ("requests", str(sent.requests)),
                        ("rows answered", str(len(sent.request_ids))),
                        ("failed requests", str(sum(sent.failures.values()))),
                        ("latency p50 (client)", _percentile(sent.latencies_ms, 50)),
                        ("latency p99 (client)", _percentile(sent.latencies_ms, 99)), ("drift", shifted),
                        ("feedback sent", str(accepted)), ("feedback rejected", str(sum(rejected.values())))):
        table.add_row(name, value)
    console.print(table)
    if chosen.truth is None:
        console.print("No feedback: the rows' truth is unknown (give --data FILE.csv --target COLUMN).")
    for reason, count in {**sent.failures, **rejected}.items():
        err_console.print(f"[bold yellow]warning:[/] {count} × {reason}", highlight=False, soft_wrap=True)
    if sent.failures or rejected or not sent.request_ids:
        raise typer.Exit(1)
