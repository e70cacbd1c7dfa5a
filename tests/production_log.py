"""A prediction log and its feedback written in the shared Parquet layout (part files per model and UTC
date, `in.<feature>` columns, time-ordered request ids), from a registered version's real outputs on
Titanic passengers: what `mlscope serve` leaves in `monitor_dir` after answering traffic, optionally
drifted (more third class, older passengers), for the Production view's tests."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlscope.config import Settings
from mlscope.data.loader import titanic_path
from mlscope.serving.loading import load_version
from mlscope.tracking.client import make_client


@dataclass(frozen=True)
class Logged:
    """What was written: rows per version and how many carry feedback."""

    predictions: dict[str, int]
    labelled: dict[str, int]
    requests: int


def request_id(at: datetime, rng: np.random.Generator) -> str:
    return f"{int(at.timestamp() * 1000):012x}{rng.integers(0, 16 ** 6):06x}"


def passengers(rng: np.random.Generator, rows: int, drifted: bool) -> pd.DataFrame:
    """Rows sampled from the shipped Titanic CSV; drifted: mostly third class, 15 years older."""
    data = pd.read_csv(titanic_path())
    weights = np.where(data["Pclass"] == 3, 8.0, 1.0) if drifted else np.ones(len(data))
    sample = data.sample(n=rows, replace=True, weights=weights, random_state=rng.integers(1 << 31))
    if drifted:
        sample = sample.assign(Age=sample["Age"] + 15)
    return sample.reset_index(drop=True)


def write_part(folder: Path, kind: str, model: str, table: pa.Table, sequence: int) -> None:
    """One part file per UTC date of `ts`, written under a temporary name and renamed, as the writer does."""
    dates = pd.to_datetime(table.column("ts").to_pandas(), utc=True).dt.strftime("%Y-%m-%d")
    for date in sorted(set(dates)):
        part = table.filter(pa.array((dates == date).to_numpy()))
        target = folder / kind / f"model={quote(model, safe='')}" / f"date={date}"
        target.mkdir(parents=True, exist_ok=True)
        first = int(part.column("ts")[0].value)
        name = f"part-{first}-{os.getpid()}-{sequence}.parquet"
        pq.write_table(part, target / f".{name}.tmp")
        (target / f".{name}.tmp").rename(target / name)


def write_log(settings: Settings, model: str, versions: dict[str, tuple[str, int]], *, drifted: bool,
              labelled_share: float, hours_ago: tuple[float, float], seed: int = 0) -> Logged:
    """Log, per version `v` with `versions[v] = (alias, rows)`, `rows` answered single-row requests at times
    spread `hours_ago` back from now, with the truth sent back for `labelled_share` of them."""
    rng = np.random.default_rng(seed)
    client = make_client(settings)
    now = datetime.now(UTC)
    counts, labelled, total = {}, {}, 0
    for sequence, (version, (alias, rows)) in enumerate(versions.items()):
        served = load_version(settings, client, model, alias, version)
        sample = passengers(rng, rows, drifted)
        columns = {feature: (sample[feature].to_numpy(dtype=np.float64) if feature in served.contract.numeric
                             else sample[feature].astype(object).where(sample[feature].notna(), None).to_numpy())
                   for feature in served.contract.features}
        outputs = served.outputs(columns)
        offsets = np.sort(rng.uniform(hours_ago[0], hours_ago[1], rows))[::-1]
        times = [now - timedelta(hours=float(hours)) for hours in offsets]
        ids = [request_id(at, rng) for at in times]
        table = pa.table({
            "request_id": pa.array(ids, pa.string()),
            "ts": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "model_name": pa.array([model] * rows, pa.string()),
            "model_version": pa.array([version] * rows, pa.string()),
            "alias": pa.array([alias] * rows, pa.string()),
            "latency_ms": pa.array(rng.lognormal(0.3, 0.5, rows), pa.float64()),
            "output": pa.array(outputs, pa.float64()),
            "label": pa.array(np.where(outputs > 0.5, "1", "0"), pa.string()),  # the answer's rule
            **{f"in.{feature}": pa.array(values, pa.float64() if feature in served.contract.numeric else pa.string(),
                                         from_pandas=True)  # a missing number is null, as in the served log
               for feature, values in columns.items()},
        })
        write_part(settings.monitor_dir, "predictions", model, table, sequence)
        answered = rng.random(rows) < labelled_share
        feedback = pa.table({
            "request_id": pa.array([i for i, keep in zip(ids, answered, strict=True) if keep], pa.string()),
            "actual": pa.array(sample["Survived"].astype(str)[answered].tolist(), pa.string()),
            "ts": pa.array([at + timedelta(minutes=30) for at, keep in zip(times, answered, strict=True) if keep],
                           pa.timestamp("ms", tz="UTC")),
        })
        write_part(settings.monitor_dir, "feedback", model, feedback, sequence)
        counts[version], labelled[version] = rows, int(answered.sum())
        total += rows
    return Logged(counts, labelled, total)
