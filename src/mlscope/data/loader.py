"""Load a dataset and its task: the shipped demos (Titanic, diabetes, wine), any CSV, or a Kaggle dataset."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from mlscope import task as tasks
from mlscope.errors import BadInput
from mlscope.task import Task

TITANIC_FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
MAX_CATEGORIES = 30
MIN_CLASS_ROWS = 5  # each class needs rows in the test split and in every cross-validation fold
MIN_REGRESSION_ROWS = 20


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset with its declared roles; `frame` keeps every original column."""

    name: str
    source: str
    frame: pd.DataFrame
    target: str
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    id_column: str | None
    digest: str
    slices: list[str] = field(default_factory=list)
    positive_label: str = "1"
    label_names: tuple[str, str] = ("0", "1")
    task: Task = tasks.BINARY
    classes: tuple[Any, ...] = (0, 1)  # the class labels in sorted order; () for regression

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the ML convention
        return self.frame[self.features]

    @property
    def y(self) -> pd.Series:
        return self.frame[self.target]

    @property
    def ids(self) -> pd.Series:
        if self.id_column:
            return self.frame[self.id_column]
        return pd.Series(self.frame.index, index=self.frame.index, name="row")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def titanic_path() -> Path:
    """Path of the shipped Kaggle Titanic training set."""
    return Path(str(resources.files("mlscope.data").joinpath("titanic.csv")))


def load_titanic() -> Dataset:
    """The built-in example: Kaggle's Titanic training set, 891 passengers."""
    path = titanic_path()
    frame = pd.read_csv(path)
    return Dataset(
        name="titanic",
        source=str(path),
        frame=frame,
        target="Survived",
        features=list(TITANIC_FEATURES),
        numeric=["Pclass", "Age", "SibSp", "Parch", "Fare"],
        categorical=["Sex", "Embarked"],
        id_column="PassengerId",
        digest=_digest(path),
        slices=["Sex", "Pclass"],
        label_names=("Did not survive", "Survived"),
    )


def _sklearn_data(*names: str) -> list[Path]:
    return [Path(str(resources.files("sklearn.datasets.data").joinpath(name))) for name in names]


def _digest_of(paths: list[Path]) -> str:
    combined = hashlib.sha256()
    for path in paths:
        combined.update(path.read_bytes())
    return combined.hexdigest()[:16]


def load_diabetes() -> Dataset:
    """The regression demo: scikit-learn's diabetes data (442 patients, 10 baseline measurements, a
    measure of disease progression one year later), unscaled, read from the scikit-learn wheel."""
    from sklearn import datasets

    frame = datasets.load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    paths = _sklearn_data("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz")
    features = [c for c in frame.columns if c != "progression"]
    return Dataset(
        name="diabetes",
        source=str(paths[0]),
        frame=frame,
        target="progression",
        features=features,
        numeric=features,
        categorical=[],
        id_column=None,
        digest=_digest_of(paths),
        slices=["sex"],
        task=tasks.REGRESSION,
        classes=(),
    )


def load_wine() -> Dataset:
    """The multiclass demo: scikit-learn's wine data (178 wines, 13 chemical measurements, three
    cultivars labelled class_0, class_1, class_2), read from the scikit-learn wheel."""
    from sklearn import datasets

    bunch = datasets.load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = [str(bunch.target_names[code]) for code in frame["cultivar"]]
    paths = _sklearn_data("wine_data.csv")
    features = [c for c in frame.columns if c != "cultivar"]
    return Dataset(
        name="wine",
        source=str(paths[0]),
        frame=frame,
        target="cultivar",
        features=features,
        numeric=features,
        categorical=[],
        id_column=None,
        digest=_digest_of(paths),
        task=tasks.MULTICLASS,
        classes=tuple(str(name) for name in bunch.target_names),
    )


DEMOS = {"titanic": load_titanic, "diabetes": load_diabetes, "wine": load_wine}


def load_demo(name: str) -> Dataset:
    """A shipped demo dataset by name (titanic, diabetes, wine)."""
    try:
        return DEMOS[name]()
    except KeyError:
        raise BadInput(f"unknown dataset '{name}'; choose one of {', '.join(DEMOS)}", field="dataset") from None


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as a frame; one-line `BadInput` for a missing, empty or malformed file."""
    if not path.is_file():
        raise BadInput(f"data file not found: {path}", field="data")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot read {path} as CSV: {first_line}", field="data") from None
    if frame.empty or frame.shape[1] < 2:
        raise BadInput(f"{path} has no data rows or fewer than two columns", field="data")
    return frame


def _target(frame: pd.DataFrame, target: str, path: Path, stated: str | None) -> tuple[pd.DataFrame, Task]:
    """Rows with a target value, the target typed for its task, and the task (inferred or `stated`).
    A binary target becomes 0/1 (the second of the two values in text order is 1); classes of a
    multiclass target are kept as they are; a regression target becomes float64."""
    if target not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:12]))
        raise BadInput(f"target column '{target}' not in {path.name} (columns: {cols})", field="target")
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    task = tasks.infer_from_target(frame[target], stated)
    if task is tasks.BINARY:
        values = frame[target].unique()
        if set(values) != {0, 1}:
            ordered = sorted(values, key=str)
            frame[target] = (frame[target] == ordered[1]).astype("int64")
        else:
            frame[target] = frame[target].astype("int64")
    elif not task.classification:
        frame[target] = frame[target].astype("float64")
    return frame, task


def _check_size(frame: pd.DataFrame, target: str, task: Task) -> tuple[Any, ...]:
    """The sorted class labels (() for regression); BadInput when there are too few rows to split."""
    if not task.classification:
        if len(frame) < MIN_REGRESSION_ROWS:
            raise BadInput(f"target column '{target}' needs at least {MIN_REGRESSION_ROWS} rows for regression, "
                           f"has {len(frame)}", field="target")
        return ()
    counts = frame[target].value_counts()
    if counts.min() < MIN_CLASS_ROWS:
        raise BadInput(f"target column '{target}' needs at least {MIN_CLASS_ROWS} rows of each class, has "
                       f"{counts.min()}", field="target")
    return tuple(sorted(counts.index.tolist()))


def _infer_features(
    frame: pd.DataFrame, target: str, id_column: str | None, features: list[str] | None
) -> tuple[list[str], list[str], list[str]]:
    if features:
        missing = [name for name in features if name not in frame.columns]
        if missing:
            raise BadInput(f"feature column(s) not in data: {', '.join(missing)}", field="features")
        candidates = list(features)
    else:
        candidates = [c for c in frame.columns if c not in (target, id_column)]
    numeric, categorical, kept = [], [], []
    for column in candidates:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            numeric.append(column)
            kept.append(column)
            continue
        distinct = series.nunique(dropna=True)
        # Free text (names, tickets) cannot be one-hot encoded usefully; skip it unless asked for.
        if features is None and (distinct > MAX_CATEGORIES or distinct > 0.5 * len(series)):
            continue
        categorical.append(column)
        kept.append(column)
    if not kept:
        raise BadInput("no usable feature columns (numeric or low-cardinality text)", field="features")
    return kept, numeric, categorical


def load_csv(
    path: Path,
    target: str,
    *,
    id_column: str | None = None,
    features: list[str] | None = None,
    slices: list[str] | None = None,
    name: str | None = None,
    task: str | None = None,
) -> Dataset:
    """Any CSV and its target column; the task is inferred from the target unless `task` names it,
    features are inferred unless given."""
    frame = read_csv(path)
    frame, found = _target(frame, target, path, task)
    if id_column is not None and id_column not in frame.columns:
        raise BadInput(f"id column '{id_column}' not in data", field="id_column")
    kept, numeric, categorical = _infer_features(frame, target, id_column, features)
    bad_slices = [s for s in slices or [] if s not in frame.columns]
    if bad_slices:
        raise BadInput(f"slice column(s) not in data: {', '.join(bad_slices)}", field="slices")
    classes = _check_size(frame, target, found)
    for column in numeric:
        frame[column] = frame[column].astype("float64") if frame[column].dtype == bool else frame[column]
    return Dataset(
        name=name or path.stem,
        source=str(path.resolve()),
        frame=frame,
        target=target,
        features=kept,
        numeric=numeric,
        categorical=categorical,
        id_column=id_column,
        digest=_digest(path),
        slices=list(slices or []),
        task=found,
        classes=classes,
    )


def load_kaggle(handle: str, target: str, *, file: str | None = None, **kwargs: object) -> Dataset:
    """Download `OWNER/DATASET` with kagglehub (needs credentials and network) and load its CSV."""
    if handle.count("/") != 1 or not all(handle.split("/")):
        raise BadInput(f"Kaggle dataset must look like OWNER/DATASET, got '{handle}'", field="kaggle")
    has_env = os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")
    has_file = (Path.home() / ".kaggle" / "kaggle.json").is_file()
    if not (has_env or has_file or os.environ.get("KAGGLE_API_TOKEN")):
        raise BadInput(
            "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY or create ~/.kaggle/kaggle.json",
            field="kaggle",
        )
    try:
        import kagglehub

        folder = Path(kagglehub.dataset_download(handle))
    except Exception as exc:  # kagglehub raises many network/auth error types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"could not download Kaggle dataset '{handle}': {reason}", field="kaggle") from None
    csvs = sorted(folder.rglob(file or "*.csv"))
    if not csvs:
        raise BadInput(f"Kaggle dataset '{handle}' has no CSV file", field="kaggle")
    return load_csv(csvs[0], target, name=handle.replace("/", "-"), **kwargs)  # type: ignore[arg-type]

