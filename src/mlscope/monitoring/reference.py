"""The training reference of a model version: what its inputs and outputs looked like at training, in the
prediction log's own column names, so live rows compare to it column by column.

mlscope training logs, per run, `monitoring/reference.parquet` (up to REFERENCE_ROWS training rows:
`in.<feature>` plus the model's `output`, `label` and `p.<class>` on them) and `monitoring/reference.json`:

{"format": "mlscope.reference/1", "source": "training" | "explanation", "task": "binary", "classes": ["0", "1"],
 "features": {"Pclass": "numeric", "Sex": "categorical", ...}, "rows": 712, "sampled_from": 712, "seed": 0,
 "prediction": {"column": "output", "kind": "numeric"} | null, "prediction_problem": null | "why none",
 "mean_abs_shap": {"Sex": 0.21, ...} | null, "shap_output": "probability of class 1" | null,
 "mean_abs_shap_per_class": {"class_0": {...}, ...} | null}

mean |SHAP| comes from the run's logged test explanation (multiclass: per class, and over classes the mean
of the summed |SHAP|, as the explain view's all-classes importance). A run trained elsewhere gets its
reference rebuilt from its stored test explanation's rows (`explanations/test*.json`), when it has one."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlscope.errors import NotFound
from mlscope.monitoring.drift import INPUT_PREFIX, Kind, NumericSide, counts_of

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlscope.explain.shapley import Explanation
    from mlscope.task import Task

FORMAT = "mlscope.reference/1"
FOLDER = "monitoring"
PARQUET = "reference.parquet"
META = "reference.json"
REFERENCE_ROWS = 5_000
SEED = 0
PROBABILITY_OF = "probability of class "  # an explanation's model_output when it explains a class probability


class NoReference(NotFound):
    """A version has no training reference to compare live data with; the message says why."""


@dataclass
class Reference:
    """A loaded reference: its rows in log columns and what they are."""

    run_id: str
    meta: dict[str, Any]
    frame: pd.DataFrame
    _numeric: dict[str, NumericSide] = field(default_factory=dict, repr=False)
    _counts: dict[str, dict[str | None, int]] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def task(self) -> str | None:
        return self.meta.get("task")

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "training"))

    @property
    def features(self) -> dict[str, Kind]:
        return dict(self.meta["features"])

    @property
    def mean_abs_shap(self) -> dict[str, float] | None:
        return self.meta.get("mean_abs_shap")

    @property
    def prediction_column(self) -> tuple[str, Kind] | None:
        """The log column the model's output is compared on, and its kind; None when the reference has none."""
        prediction = self.meta.get("prediction")
        return (prediction["column"], prediction["kind"]) if prediction else None

    @property
    def prediction_problem(self) -> str:
        return str(self.meta.get("prediction_problem") or "the reference has no model outputs")

    def log_columns(self) -> dict[str, Kind]:
        """Every log column drift reads, with its kind: in.<feature> ..., then the output column."""
        columns: dict[str, Kind] = {INPUT_PREFIX + f: kind for f, kind in self.features.items()}
        if self.prediction_column is not None:
            column, kind = self.prediction_column
            columns[column] = kind
        return columns

    def numeric_side(self, column: str) -> NumericSide:
        if column not in self._numeric:
            values = pd.to_numeric(self.frame[column], errors="coerce") if column in self.frame else pd.Series(
                np.full(self.rows, np.nan))
            self._numeric[column] = NumericSide.of(values.to_numpy(dtype=float))
        return self._numeric[column]

    def category_counts(self, column: str) -> dict[str | None, int]:
        if column not in self._counts:
            values = self.frame[column].tolist() if column in self.frame else []
            self._counts[column] = counts_of(None if pd.isna(v) else v for v in values) if values else (
                {None: self.rows} if self.rows else {})
        return self._counts[column]


# ---- what training logs --------------------------------------------------------------------------------

def prediction_of(classes: Sequence[Any]) -> dict[str, str]:
    """The output column drift compares: a model with more than two classes by its predicted label (its
    output is the winning class's probability, not comparable across labels), any other by `output`
    (P(class 1), or the prediction)."""
    return {"column": "label", "kind": "categorical"} if len(classes) > 2 else {"column": "output",
                                                                                "kind": "numeric"}


def output_columns(outputs: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """The model's outputs as the prediction log spells them. `outputs`: (rows, classes) probabilities in
    `classes` order for a classifier, (rows,) predictions for a regressor (`classes` empty)."""
    if not classes:
        return {"output": np.asarray(outputs, dtype=float).reshape(-1)}
    proba = np.asarray(outputs, dtype=float)
    if len(classes) == 2:  # a binary answer: P(class 1) and 1/0 by 0.5, whatever the labels are
        positive = proba[:, 1]
        return {"output": positive, "label": np.where(positive > 0.5, "1", "0").astype(object)}
    best = np.argmax(proba, axis=1)
    labels = np.asarray([str(c) for c in classes], dtype=object)
    columns: dict[str, Any] = {"output": proba[np.arange(len(proba)), best], "label": labels[best]}
    columns.update({f"p.{label}": proba[:, i] for i, label in enumerate(labels)})
    return columns


def _input_array(values: pd.Series, kind: Kind) -> pa.Array:
    if kind == "numeric":
        return pa.array(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), type=pa.float64(),
                        from_pandas=True)
    return pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())


def reference_table(rows: pd.DataFrame, features: dict[str, Kind], outputs: dict[str, Any]) -> pa.Table:
    columns = {INPUT_PREFIX + f: _input_array(rows[f], kind) for f, kind in features.items()}
    for name, values in outputs.items():
        numeric = np.asarray(values).dtype.kind == "f"
        columns[name] = pa.array(values, type=pa.float64() if numeric else pa.string(), from_pandas=numeric)
    return pa.table(columns)


def training_reference(task: Task, model: Any, X_train: pd.DataFrame, numeric: Sequence[str],
                       categorical: Sequence[str], rows: int = REFERENCE_ROWS, seed: int = SEED
                       ) -> tuple[pa.Table, dict[str, Any]]:
    """The reference of a model trained on `X_train`: a fixed-seed sample of at most `rows` of its rows
    with the model's outputs on them, and its reference.json content."""
    sample = X_train if len(X_train) <= rows else X_train.sample(n=rows, random_state=seed)
    features: dict[str, Kind] = {f: "categorical" if f in categorical else "numeric" for f in X_train.columns
                                 if f in numeric or f in categorical}
    outputs, classes = task.outputs(model, sample)
    table = reference_table(sample, features, output_columns(outputs, classes))
    meta = {"format": FORMAT, "source": "training", "task": task.name, "classes": [str(c) for c in classes],
            "features": features, "rows": len(sample), "sampled_from": len(X_train), "seed": seed,
            "prediction": prediction_of(classes), "prediction_problem": None,
            "mean_abs_shap": None, "shap_output": None, "mean_abs_shap_per_class": None}
    return table, meta


def _mean_abs(explanation: Explanation) -> np.ndarray:
    return np.abs(np.asarray(explanation.values, dtype=float)).mean(axis=0)


def with_shap(meta: dict[str, Any], explanations: Sequence[Explanation], labels: Sequence[str] = ()) -> dict[str, Any]:
    """`meta` with the mean |SHAP| per feature of the test explanation; `labels`: the class of each of a
    multiclass run's per-class explanations (then the all-classes value is the mean of the summed |SHAP|)."""
    if not explanations:
        return meta
    features = list(explanations[0].features)
    updated = dict(meta)
    if labels:
        per_class = {str(label): dict(zip(features, map(float, _mean_abs(e)), strict=True))
                     for label, e in zip(labels, explanations, strict=True)}
        summed = sum(np.abs(np.asarray(e.values, dtype=float)) for e in explanations).mean(axis=0)
        updated.update(mean_abs_shap=dict(zip(features, map(float, summed), strict=True)),
                       shap_output="sum over classes of |SHAP| of each class probability",
                       mean_abs_shap_per_class=per_class)
    else:
        updated.update(mean_abs_shap=dict(zip(features, map(float, _mean_abs(explanations[0])), strict=True)),
                       shap_output=explanations[0].metadata.get("model_output"))
    return updated


def write(folder: Path, table: pa.Table | None, meta: dict[str, Any]) -> None:
    """reference.parquet (unless `table` is None: the rows are already logged) and reference.json in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if table is not None:
        pq.write_table(table, folder / PARQUET)
    (folder / META).write_text(json.dumps(meta, indent=1))


# ---- loading -------------------------------------------------------------------------------------------

def _read(folder: Path, run_id: str) -> Reference:
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise NoReference(f"run '{run_id}' has a reference of unknown format {meta.get('format')!r} "
                          f"(expected {FORMAT})", field="run_id")
    return Reference(run_id, meta, pq.read_table(folder / PARQUET).to_pandas())


def _logged(client: MlflowClient, run_id: str) -> set[str]:
    from mlscope.tracking.client import proxied_artifacts

    with proxied_artifacts():
        return {a.path for a in client.list_artifacts(run_id, FOLDER)}


def load_reference(client: MlflowClient, run_id: str, cache_dir: Path) -> Reference:
    """The reference of run `run_id`: its logged one (downloaded once into `cache_dir/<run_id>/`), else one
    rebuilt from its stored test explanation (cached the same way). NoReference says why there is none."""
    from mlflow.exceptions import MlflowException

    from mlscope.tracking.client import proxied_artifacts

    cached = Path(cache_dir) / run_id
    if (cached / META).is_file() and (cached / PARQUET).is_file():
        return _read(cached, run_id)
    try:
        client.get_run(run_id)
        logged = _logged(client, run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NoReference(f"run '{run_id}' not found", field="run_id") from None
        raise
    with tempfile.TemporaryDirectory(prefix="mlscope-", dir=_parent(cache_dir)) as tmp:
        staging = Path(tmp) / run_id
        if {f"{FOLDER}/{PARQUET}", f"{FOLDER}/{META}"} <= logged:
            with proxied_artifacts():
                downloaded = Path(client.download_artifacts(run_id, FOLDER, tmp))
            downloaded.rename(staging)
        else:
            table, meta = rebuilt_from_explanations(client, run_id)
            write(staging, table, meta)
        reference = _read(staging, run_id)
        try:
            staging.rename(cached)  # complete or absent: a reader never sees half a cache entry
        except OSError:  # another process cached it first
            pass
    return reference


def _parent(cache_dir: Path) -> str:
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return str(cache_dir)


def clear_cache(cache_dir: Path, run_id: str) -> None:
    shutil.rmtree(Path(cache_dir) / run_id, ignore_errors=True)


# ---- runs trained elsewhere: from the stored explanation -----------------------------------------------

def rebuilt_from_explanations(client: MlflowClient, run_id: str) -> tuple[pa.Table, dict[str, Any]]:
    """A reference from the rows of the run's stored test explanation (`explanations/test.json`, or the
    per-class `test-class-*.json` of a multiclass model): inputs from its rows, outputs from its explained
    outputs when they are probabilities or predictions. NoReference when the run has none."""
    from mlscope.explain import artifacts
    from mlscope.explain.service import stored_explanation
    from mlscope.task import infer_from_run
    from mlscope.tracking.client import proxied_artifacts

    with proxied_artifacts():
        names = sorted(a.path for a in client.list_artifacts(run_id, artifacts.FOLDER))
    single = f"{artifacts.FOLDER}/{artifacts.TEST_SPLIT}.json"
    prefix = f"{artifacts.FOLDER}/{artifacts.TEST_SPLIT}-class-"
    chosen = [single] if single in names else [n for n in names if n.startswith(prefix) and n.endswith(".json")]
    if not chosen:
        raise NoReference(f"run '{run_id}' has no training reference ({FOLDER}/{META}, logged by mlscope training) "
                          f"and no stored test explanation ({single}) to rebuild one from: explain it with data "
                          f"(mlscope explain {run_id} --data FILE.csv) or train it with mlscope", field="run_id")
    explanations = []
    for name in chosen:
        try:
            stored = stored_explanation(client, run_id, name.removeprefix(f"{artifacts.FOLDER}/").removesuffix(".json"))
        except (ValueError, KeyError) as exc:
            raise NoReference(f"run '{run_id}': its stored explanation {name} cannot be read: {exc}",
                              field="run_id") from None
        if stored is not None:
            explanations.append(stored[0])
    first = explanations[0]
    data = first.data
    features: dict[str, Kind] = {f: "numeric" if pd.api.types.is_float_dtype(data[f]) else "categorical"
                                 for f in first.features}
    outputs, classes, prediction, problem = _explained_outputs(explanations)
    run = client.get_run(run_id)
    task = infer_from_run(run.data.tags, run.data.metrics)
    labels = [str(e.metadata.get("model_output", "")).removeprefix(PROBABILITY_OF) for e in explanations]
    meta = {"format": FORMAT, "source": "explanation", "task": task.name if task else None, "classes": classes,
            "features": features, "rows": len(data), "sampled_from": len(data), "seed": None,
            "prediction": prediction, "prediction_problem": problem, "explanations": chosen,
            "mean_abs_shap": None, "shap_output": None, "mean_abs_shap_per_class": None}
    meta = with_shap(meta, explanations, labels if len(explanations) > 1 else ())
    return reference_table(data, features, outputs), meta


def _explained_outputs(explanations: list[Explanation]
                       ) -> tuple[dict[str, Any], list[str], dict[str, str] | None, str | None]:
    """(output columns, classes, prediction column, problem) from what the explanations explain: a
    prediction, P(class 1) of a binary model, or every class's probability of a multiclass one."""
    what = [str(e.metadata.get("model_output", "")) for e in explanations]
    if len(explanations) == 1:
        if what[0] == "prediction":
            return {"output": explanations[0].outputs}, [], prediction_of(()), None
        if what[0].startswith(PROBABILITY_OF):
            proba = np.column_stack([1 - explanations[0].outputs, explanations[0].outputs])
            return output_columns(proba, ("0", "1")), [], prediction_of(("0", "1")), None
        return {}, [], None, f"the stored explanation explains {what[0] or 'an unknown output'}, not a probability or " \
                             "a prediction"
    if not all(w.startswith(PROBABILITY_OF) for w in what):
        return {}, [], None, "the stored per-class explanations do not all explain class probabilities"
    classes = [w.removeprefix(PROBABILITY_OF) for w in what]
    proba = np.column_stack([e.outputs for e in explanations])
    if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        return {}, classes, None, "the stored per-class explanations do not cover every class"
    return output_columns(proba, classes), classes, prediction_of(classes), None
