"""Load a binary-classification dataset: the shipped Titanic set, any CSV, or a Kaggle dataset."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from mlscope.errors import BadInput

TITANIC_FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
MAX_CATEGORIES = 30


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


def _binary_target(frame: pd.DataFrame, target: str, path: Path) -> pd.DataFrame:
    if target not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:12]))
        raise BadInput(f"target column '{target}' not in {path.name} (columns: {cols})", field="target")
    values = frame[target].dropna().unique()
    if len(values) != 2:
        raise BadInput(
            f"target column '{target}' must have exactly 2 classes for binary classification, "
            f"found {len(values)}",
            field="target",
        )
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    if set(values) != {0, 1}:
        ordered = sorted(values, key=str)
        frame[target] = (frame[target] == ordered[1]).astype("int64")
    else:
        frame[target] = frame[target].astype("int64")
    return frame


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
) -> Dataset:
    """Any CSV with a binary target column; features inferred unless given."""
    frame = read_csv(path)
    frame = _binary_target(frame, target, path)
    if id_column is not None and id_column not in frame.columns:
        raise BadInput(f"id column '{id_column}' not in data", field="id_column")
    kept, numeric, categorical = _infer_features(frame, target, id_column, features)
    bad_slices = [s for s in slices or [] if s not in frame.columns]
    if bad_slices:
        raise BadInput(f"slice column(s) not in data: {', '.join(bad_slices)}", field="slices")
    counts = frame[target].value_counts()
    if counts.min() < 5:
        raise BadInput(
            f"target column '{target}' needs at least 5 rows of each class, has {counts.min()}",
            field="target",
        )
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

