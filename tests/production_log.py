"""A prediction log and its feedback in the shared Parquet layout (part files per model and UTC date,
`in.<feature>` columns, time-ordered request ids), from a registered version's real outputs: what
`mlscope serve` leaves in `monitor_dir` after answering traffic, for the Production view's tests. Titanic
passengers can be drifted (more third class, older passengers); any other rows come as they are given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from mlscope.config import Settings
from mlscope.data.loader import titanic_path
from mlscope.monitoring import layout
from mlscope.serving.loading import load_version
from mlscope.tracking.client import make_client


@dataclass(frozen=True)
class Logged:
    """What was written: rows per version and how many carry feedback."""

    predictions: dict[str, int]
    labelled: dict[str, int]
    requests: int


def write_rows(settings: Settings, model: str, version: str, alias: str, rows: pd.DataFrame, truth: Sequence[str],
               times: Sequence[datetime], answered: np.ndarray, rng: np.random.Generator) -> None:
    """Log one single-row request per row of `rows` (the version's raw inputs) at `times`, answered by the
    version itself, and the truth (as text) 30 minutes later for the rows where `answered` is true."""
    served = load_version(settings, make_client(settings), model, alias, version)
    columns = {feature: (rows[feature].to_numpy(dtype=np.float64) if feature in served.contract.numeric
                         else rows[feature].astype(object).where(rows[feature].notna(), None).to_numpy())
               for feature in served.contract.features}
    outputs = served.outputs(columns)
    ms = [int(at.timestamp() * 1000) for at in times]
    ids = [layout.new_request_id(at) for at in ms]
    count = len(rows)
    table = pa.table({
        layout.REQUEST_ID: pa.array(ids, pa.string()),
        layout.TS: pa.array(ms, pa.int64()).cast(layout.TIMESTAMP),
        layout.MODEL_NAME: pa.array([model] * count, pa.string()),
        layout.MODEL_VERSION: pa.array([version] * count, pa.string()),
        layout.ALIAS: pa.array([alias] * count, pa.string()),
        layout.LATENCY_MS: pa.array(rng.lognormal(0.3, 0.5, count), pa.float64()),
        **layout.OUTPUT_COLUMNS[served.task.name](outputs, tuple(served.contract.classes)),
        **{f"{layout.INPUT_PREFIX}{feature}": layout.input_column(values, feature in served.contract.numeric)
           for feature, values in columns.items()},
    })
    feedback = pa.table({
        layout.REQUEST_ID: pa.array([i for i, keep in zip(ids, answered, strict=True) if keep], pa.string()),
        layout.ACTUAL: pa.array([t for t, keep in zip(truth, answered, strict=True) if keep], pa.string()),
        layout.TS: pa.array([at + 1_800_000 for at, keep in zip(ms, answered, strict=True) if keep],
                            pa.int64()).cast(layout.TIMESTAMP),
    })
    for kind, part in ((layout.PREDICTIONS, table), (layout.FEEDBACK, feedback)):
        days = np.array([layout.utc_day(at).isoformat() for at in part.column(layout.TS).cast(pa.int64()).to_pylist()])
        for day in sorted(set(days)):  # one part per UTC date, as the writer files them
            layout.write_part(settings.monitor_dir, kind, model, datetime.fromisoformat(day).date(),
                              part.filter(pa.array(days == day)))


def spread(rng: np.random.Generator, rows: int, hours_ago: tuple[float, float]) -> list[datetime]:
    """`rows` times between `hours_ago` hours back from now, oldest first."""
    now = datetime.now(UTC)
    return [now - timedelta(hours=float(h)) for h in np.sort(rng.uniform(hours_ago[0], hours_ago[1], rows))[::-1]]


def passengers(rng: np.random.Generator, rows: int, drifted: bool) -> pd.DataFrame:
    """Rows sampled from the shipped Titanic CSV; drifted: mostly third class, 15 years older."""
    data = pd.read_csv(titanic_path())
    weights = np.where(data["Pclass"] == 3, 8.0, 1.0) if drifted else np.ones(len(data))
    sample = data.sample(n=rows, replace=True, weights=weights, random_state=rng.integers(1 << 31))
    if drifted:
        sample = sample.assign(Age=sample["Age"] + 15)
    return sample.reset_index(drop=True)


def write_log(settings: Settings, model: str, versions: dict[str, tuple[str, int]], *, drifted: bool,
              labelled_share: float, hours_ago: tuple[float, float], seed: int = 0) -> Logged:
    """Log Titanic traffic: per version `v` with `versions[v] = (alias, rows)`, `rows` passengers at times
    spread `hours_ago` back from now, with the truth sent back for `labelled_share` of them."""
    rng = np.random.default_rng(seed)
    counts, labelled = {}, {}
    for version, (alias, rows) in versions.items():
        sample = passengers(rng, rows, drifted)
        answered = rng.random(rows) < labelled_share
        write_rows(settings, model, version, alias, sample, sample["Survived"].astype(str).tolist(),
                   spread(rng, rows, hours_ago), answered, rng)
        counts[version], labelled[version] = rows, int(answered.sum())
    return Logged(counts, labelled, sum(counts.values()))
