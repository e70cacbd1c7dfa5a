"""A synthetic population shaped like Titanic's passengers (7 features, a survival probability), for drift
tests and bench/drift_speed.py: independent draws of it are undrifted; `shifted` draws are not."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = {"Pclass": "numeric", "Sex": "categorical", "Age": "numeric", "SibSp": "numeric", "Parch": "numeric",
            "Fare": "numeric", "Embarked": "categorical"}


def draw(rows: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    """`rows` passengers; `shifted`: more third class (70% instead of 45%) and 8 years older."""
    rng = np.random.default_rng(seed)
    pclass = rng.choice([1.0, 2.0, 3.0], size=rows, p=[0.10, 0.20, 0.70] if shifted else [0.25, 0.30, 0.45])
    sex = rng.choice(np.array(["male", "female"], dtype=object), size=rows, p=[0.65, 0.35])
    age = np.clip(rng.normal(30 + (8 if shifted else 0), 14, size=rows), 0.4, 80).round(1)
    age[rng.random(rows) < 0.2] = np.nan
    sibsp = np.minimum(rng.poisson(0.5, size=rows), 8).astype(float)
    parch = np.minimum(rng.poisson(0.4, size=rows), 6).astype(float)
    fare = np.round(rng.lognormal(np.log([80.0, 20.0, 9.0])[(pclass - 1).astype(int)], 0.6), 2)
    embarked = rng.choice(np.array(["S", "C", "Q"], dtype=object), size=rows, p=[0.72, 0.19, 0.09])
    embarked[rng.random(rows) < 0.002] = None
    logit = 2.5 - 0.9 * pclass + 2.4 * (sex == "female") - 0.03 * np.nan_to_num(age, nan=30) - 0.2 * sibsp
    return pd.DataFrame({"Pclass": pclass, "Sex": sex, "Age": age, "SibSp": sibsp, "Parch": parch, "Fare": fare,
                         "Embarked": embarked, "output": 1 / (1 + np.exp(-logit))})


def as_log(frame: pd.DataFrame) -> pd.DataFrame:
    """The prediction log's column names: in.<feature> and output."""
    return frame.rename(columns={f: f"in.{f}" for f in FEATURES})
