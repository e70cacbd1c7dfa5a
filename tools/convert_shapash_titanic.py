"""Rebuild the Kaggle-format Titanic training set from the copy in the shapash 2.10.0 wheel.

Usage:
    pip download --no-deps shapash==2.10.0 -d /tmp/shapash
    unzip -o /tmp/shapash/shapash-2.10.0-py3-none-any.whl 'data/titanicdata.csv' -d /tmp/shapash
    python tools/convert_shapash_titanic.py /tmp/shapash/data/titanicdata.csv src/mlscope/data/titanic.csv

See src/mlscope/data/PROVENANCE.md for what the conversion restores and what it cannot.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

PCLASS = {"First class": 1, "Second class": 2, "Third class": 3}
EMBARKED = {"Southampton": "S", "Cherbourg": "C", "Queenstown": "Q"}
# shapash filled Kaggle's 177 missing ages with 29.5 and the two missing ports with Queenstown.
IMPUTED_AGE = 29.5
MISSING_EMBARKED_IDS = (62, 830)
KAGGLE_COLUMNS = ["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


def convert(source: pd.DataFrame) -> pd.DataFrame:
    frame = source.copy()
    frame["Pclass"] = frame["Pclass"].map(PCLASS).astype("int64")
    frame["Embarked"] = frame["Embarked"].map(EMBARKED)
    frame.loc[frame["PassengerId"].isin(MISSING_EMBARKED_IDS), "Embarked"] = np.nan
    frame.loc[frame["Age"] == IMPUTED_AGE, "Age"] = np.nan
    return frame[KAGGLE_COLUMNS].sort_values("PassengerId").reset_index(drop=True)


def main(src: str, dst: str) -> None:
    out = convert(pd.read_csv(src))
    assert len(out) == 891 and out["Age"].isna().sum() == 177 and out["Embarked"].isna().sum() == 2
    out.to_csv(dst, index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
