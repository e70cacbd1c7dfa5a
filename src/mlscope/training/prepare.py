"""Everything that happens before MLflow is touched: the split, and every experiment's fits started
on the worker pool. Kept free of MLflow imports so the fits start while MLflow is still importing."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from mlscope.data.loader import Dataset
from mlscope.training.fitting import FitJob
from mlscope.training.experiments import ExperimentSpec, ExplainSpec, SplitSpec
from mlscope.training.features import build_pipeline, raw_features


@dataclass(frozen=True)
class Split:
    """The hold-out split shared by every run of one training session."""

    dataset: Dataset
    spec: SplitSpec
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    @classmethod
    def make(cls, dataset: Dataset, spec: SplitSpec) -> Split:
        X = raw_features(dataset)
        X_train, X_test, y_train, y_test = train_test_split(
            X, dataset.y, test_size=spec.test_size,
            stratify=dataset.y if dataset.task.classification else None, random_state=spec.random_state
        )
        return cls(dataset, spec, X_train, X_test, y_train, y_test)

    @property
    def test_ids(self) -> pd.Series:
        return self.dataset.ids.loc[self.X_test.index]


@dataclass(frozen=True)
class Prepared:
    """A split and, per experiment, its fits in flight (same order as `specs`)."""

    split: Split
    specs: list[ExperimentSpec]
    jobs: list[FitJob]
    explain: ExplainSpec = ExplainSpec()


def prepare(dataset: Dataset, split_spec: SplitSpec, specs: list[ExperimentSpec],
            explain: ExplainSpec | None = None) -> Prepared:
    """Split the data and submit every experiment's full fit + cross-validation folds at once."""
    split = Split.make(dataset, split_spec)
    jobs = [
        FitJob(build_pipeline(dataset, spec.build(dataset.task)), split.X_train, split.y_train, split_spec.cv_folds,
               split_spec.random_state, dataset.task)
        for spec in specs
    ]
    return Prepared(split, list(specs), jobs, explain or ExplainSpec())
