"""Evidently's side of bench/drift_speed.py, run in Evidently's own virtual environment (it pins plotly 5 and
pandas < 3; mlscope needs plotly 6): reads the same Parquet part files and reference, then times
Report([DataDriftPreset(...)]).run twice, once per configuration, and prints JSON on stdout.

- "test": num_method="ks", cat_method="chisquare", threshold=0.01 (drift when p < 0.01, mlscope's test gate)
- "psi":  method="psi", threshold=0.1 (drift when PSI >= 0.1, mlscope's watch level)

Only Report.run is timed (reading the files into pandas is not)."""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

CONFIGS = {
    "test": {"num_method": "ks", "cat_method": "chisquare", "threshold": 0.01},
    "psi": {"method": "psi", "threshold": 0.1},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--numeric", required=True, help="comma-separated log columns")
    parser.add_argument("--categorical", required=True, help="comma-separated log columns")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    numeric, categorical = args.numeric.split(","), args.categorical.split(",")
    columns = numeric + categorical
    current = pd.concat([pq.read_table(path, columns=columns).to_pandas() for path in args.files], ignore_index=True)
    reference = pq.read_table(args.reference, columns=columns).to_pandas()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    results: dict[str, object] = {"rows": len(current), "reference_rows": len(reference)}
    for name, config in CONFIGS.items():
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset(**config)]).run(Dataset.from_pandas(current, data_definition=definition),
                                                           Dataset.from_pandas(reference, data_definition=definition))
        seconds = time.perf_counter() - started
        values = {}
        for metric in snapshot.dict()["metrics"]:
            if metric["config"].get("type", "").endswith("ValueDrift"):
                values[metric["config"]["column"]] = {"method": metric["config"]["method"], "value": metric["value"]}
        results[name] = {"seconds": seconds, "config": config, "columns": values}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
