from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlscope.data.loader import load_titanic
from mlscope.training.features import build_pipeline, output_groups, raw_features


@pytest.fixture(scope="module")
def fitted():
    data = load_titanic()
    pipeline = build_pipeline(data, LogisticRegression(max_iter=1000, random_state=42))
    pipeline.fit(raw_features(data), data.y)
    return data, pipeline


def test_records_with_missing_values_get_probabilities(fitted) -> None:
    data, pipeline = fitted
    records = pd.DataFrame(
        [
            {"Pclass": 3, "Sex": "male", "Age": None, "SibSp": 1, "Parch": 0, "Fare": 7.25, "Embarked": None},
            {"Pclass": None, "Sex": None, "Age": None, "SibSp": None, "Parch": None, "Fare": None, "Embarked": None},
            {"Pclass": 1, "Sex": "female", "Age": 28, "SibSp": 0, "Parch": 0, "Fare": 100, "Embarked": "Z"},
        ],
        columns=data.features,
    )
    proba = pipeline.predict_proba(records)[:, 1]
    assert all(0.0 <= p <= 1.0 and not math.isnan(p) for p in proba)
    assert proba[2] > 0.5  # a first-class woman is a likely survivor, even from an unknown port
    assert proba[0] < 0.5


def test_every_output_column_traces_to_one_raw_feature(fitted) -> None:
    data, pipeline = fitted
    groups = output_groups(pipeline)
    width = pipeline.named_steps["preprocess"].transform(raw_features(data).head(3)).shape[1]
    assert len(groups) == width
    assert groups.count("Sex") == 2 and groups.count("Embarked") == 3
    assert set(groups) == set(data.features)
    assert groups.count("Age") == 1


def test_raw_features_types_match_the_signature() -> None:
    frame = raw_features(load_titanic())
    assert all(frame[c].dtype == np.float64 for c in ("Pclass", "Age", "SibSp", "Parch", "Fare"))
    assert frame["Embarked"].isna().sum() == 2 and frame["Embarked"].dtype == object
    assert all(v != v for v in frame["Embarked"][frame["Embarked"].isna()])  # NaN, not None
