"""Drift report speed: mlscope's window_drift vs Evidently's DataDriftPreset on the same 1,000,000 logged rows.

Writes `--rows` predictions of 7 Titanic-like features (tests/titanic_like.py, drifted: more third class,
older passengers, hence dearer fares and lower outputs) as Parquet part files in the prediction log's
layout ({folder}/predictions/model=.../date=.../part-....parquet, two date folders) with pyarrow, and a
5,000-row undrifted reference. Then:

- mlscope: `drift.window_drift(folder, model, version, since, until, reference)`, timed whole: DuckDB finds
  and reads the part files, filters the window and version, counts categories and missing values; numpy
  computes KS, PSI and Wasserstein. `--repeats` runs; the median is reported.
- Evidently (own virtual environment `bench/.venv-evidently`, created on first use: Evidently pins plotly 5
  and pandas < 3, mlscope needs plotly 6): bench/drift_evidently.py reads the same files, then only
  `Report([DataDriftPreset(...)]).run` is timed, once with mlscope's tests (KS for numeric columns,
  chi-squared for categorical ones, p < 0.01) and once with PSI >= 0.1. mlscope flags a column when both
  hold, so Evidently's comparable verdict is "both configurations say drift".

    python bench/drift_speed.py [--rows 1000000] [--repeats 3] [--json bench/out/drift_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests.` imports when run as a script

from bench.common import REPOSITORY, command_line  # noqa: E402
from mlscope.monitoring import drift  # noqa: E402
from mlscope.monitoring.reference import FORMAT, Reference, prediction_of  # noqa: E402
from tests import titanic_like  # noqa: E402

MODEL, VERSION = "titanic-survival", "3"
START = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
EVIDENTLY_VENV = REPOSITORY / "bench" / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"]


def write_log(folder: Path, rows: int, files: int, seed: int) -> list[Path]:
    """`rows` drifted predictions over 24 hours from START, `files` part files, the log's columns."""
    frame = titanic_like.draw(rows, seed, shifted=True)
    offsets_ms = np.sort(np.random.default_rng(seed).integers(0, 24 * 3600 * 1000, size=rows))
    written = []
    for number, part in enumerate(np.array_split(np.arange(rows), files)):
        first = START + timedelta(milliseconds=int(offsets_ms[part[0]]))
        ts = pa.array((int(START.timestamp() * 1000) + offsets_ms[part]).astype("datetime64[ms]"),
                      type=pa.timestamp("ms", tz="UTC"))
        output = frame["output"].to_numpy()[part]
        columns = {
            "request_id": pa.array([f"{int(first.timestamp() * 1000):012x}{number:06x}-{i}" for i in range(len(part))]),
            "ts": ts, "model_name": pa.array([MODEL] * len(part)), "model_version": pa.array([VERSION] * len(part)),
            "alias": pa.array(["production"] * len(part)), "latency_ms": pa.array(np.full(len(part), 2.0)),
            "output": pa.array(output), "label": pa.array(np.where(output > 0.5, "1", "0")),
        }
        for feature, kind in titanic_like.FEATURES.items():
            values = frame[feature].to_numpy()[part]
            columns[f"in.{feature}"] = (pa.array(values, type=pa.float64(), from_pandas=True) if kind == "numeric"
                                        else pa.array(values, type=pa.string(), from_pandas=True))
        day = folder / "predictions" / f"model={quote(MODEL, safe='')}" / f"date={first.date().isoformat()}"
        day.mkdir(parents=True, exist_ok=True)
        path = day / f"part-{int(first.timestamp() * 1000)}-{os.getpid()}-{number}.parquet"
        pq.write_table(pa.table(columns), path)
        written.append(path)
    return written


def make_reference(folder: Path, rows: int, seed: int) -> tuple[Reference, Path]:
    frame = titanic_like.as_log(titanic_like.draw(rows, seed))
    path = folder / "reference.parquet"
    frame.to_parquet(path, index=False)
    meta = {"format": FORMAT, "source": "training", "task": "binary", "classes": ["0", "1"],
            "features": titanic_like.FEATURES, "rows": rows, "prediction": prediction_of(["0", "1"])}
    return Reference("bench", meta, frame), path


def evidently_python() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV.relative_to(REPOSITORY)} ({', '.join(EVIDENTLY_REQUIREMENTS)}) ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(python), "-m", "ensurepip", "-q"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def run_evidently(reference: Reference, reference_path: Path, files: list[Path]) -> dict:
    columns = reference.log_columns()
    numeric = [c for c, kind in columns.items() if kind == "numeric"]
    categorical = [c for c, kind in columns.items() if kind == "categorical"]
    command = [str(evidently_python()), str(REPOSITORY / "bench" / "drift_evidently.py"),
               "--reference", str(reference_path), "--numeric", ",".join(numeric),
               "--categorical", ",".join(categorical), *map(str, files)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    out = json.loads(done.stdout)
    version = subprocess.run([command[0], "-c", "import evidently; print(evidently.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    out["version"] = version
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=48, help="part files (a writer flushing every ~30 min)")
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlscope-drift-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        files = write_log(folder, args.rows, args.files, seed=1)
        reference, reference_path = make_reference(folder, args.reference_rows, seed=0)
        print(f"wrote {args.rows:,} rows in {len(files)} part files ({sum(p.stat().st_size for p in files) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)

        since, until = START, START + timedelta(days=1)
        times, table = [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            table = drift.window_drift(folder, MODEL, VERSION, since, until, reference)
            times.append(time.perf_counter() - started)
        assert table is not None and table.rows == args.rows, table
        ours = statistics.median(times)
        print(f"mlscope window_drift: median {ours:.3f} s over {args.repeats} runs "
              f"({', '.join(f'{t:.3f}' for t in times)}); {table.rows:,} rows vs {table.reference_rows:,}", flush=True)
        evidently = None if args.no_evidently else run_evidently(reference, reference_path, files)

    rows = [*table.features, table.prediction]
    column_of = {f.feature: ("output" if f.feature == drift.PREDICTION else f"in.{f.feature}") for f in rows}
    header = f"{'feature':<11}{'mlscope':<8}{'PSI':>7}{'test p':>11}"
    if evidently:
        header += f"  | {'Evidently p':>11}{'PSI':>8}  {'test':<6}{'PSI>=.1':<8}{'both':<6}agree"
    print(header)
    agreements = []
    for f in rows:
        line = f"{f.feature:<11}{f.status:<8}{f.psi:>7.3f}{f.p_value:>11.2e}"
        if evidently:
            tested = evidently["test"]["columns"][column_of[f.feature]]["value"]
            psi_value = evidently["psi"]["columns"][column_of[f.feature]]["value"]
            both = tested < 0.01 and psi_value >= 0.1
            agree = both == (f.status != "ok")
            agreements.append(agree)
            line += (f"  | {tested:>11.2e}{psi_value:>8.3f}  {'drift' if tested < 0.01 else '-':<6}"
                     f"{'drift' if psi_value >= 0.1 else '-':<8}{'drift' if both else '-':<6}{'yes' if agree else 'NO'}")
        print(line)
    result = {"command": command_line(), "rows": args.rows, "files": len(files), "reference_rows": args.reference_rows,
              "mlscope_seconds": times, "mlscope_median": ours, "status": table.status,
              "features": [f.to_dict() for f in rows]}
    if evidently:
        theirs = evidently["test"]["seconds"]
        print(f"Evidently {evidently['version']} DataDriftPreset: {theirs:.2f} s (KS/chi-squared), "
              f"{evidently['psi']['seconds']:.2f} s (PSI); mlscope {ours:.3f} s: {theirs / ours:.1f}x faster than the "
              f"test configuration; verdicts agree on {sum(agreements)}/{len(agreements)} columns")
        result["evidently"] = evidently
        result["ratio"] = theirs / ours
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
