from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlscope.data.loader import load_csv, load_kaggle, load_titanic, titanic_path
from mlscope.errors import BadInput


def test_titanic_matches_kaggle_facts() -> None:
    data = load_titanic()
    frame = data.frame
    assert list(frame.columns) == ["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch",
                                   "Fare", "Embarked"]
    assert len(frame) == 891
    assert int(frame["Survived"].sum()) == 342
    assert int(frame["Age"].isna().sum()) == 177
    assert int(frame["Embarked"].isna().sum()) == 2
    assert set(frame["Pclass"]) == {1, 2, 3}
    assert set(frame["Embarked"].dropna()) == {"S", "C", "Q"}
    assert data.features == ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    assert data.slices == ["Sex", "Pclass"]
    assert len(data.digest) == 16


def test_titanic_provenance_is_written_next_to_the_file() -> None:
    provenance = titanic_path().with_name("PROVENANCE.md").read_text()
    assert "shapash==2.10.0" in provenance and "29.5" in provenance


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_any_csv_infers_numeric_and_categorical_features(tmp_path: Path) -> None:
    rows = ["id,name,colour,size,label"]
    rows += [f"{i},person {i},{'red' if i % 2 else 'blue'},{i * 1.5},{'yes' if i % 3 else 'no'}" for i in range(40)]
    data = load_csv(_write(tmp_path, "\n".join(rows)), "label", id_column="id")
    assert data.numeric == ["size"]
    assert data.categorical == ["colour"]  # free text ("name") is left out
    assert data.features == ["colour", "size"]
    assert set(data.frame["label"]) == {0, 1}
    assert data.frame["label"].sum() == sum(1 for i in range(40) if i % 3)  # 'yes' sorts after 'no'


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("a,b\n1,0\n2,1\n", "missing", "target column 'missing' not in"),
        ("a,b\n" + "\n".join(f"{i},{i % 3}" for i in range(30)), "b", "exactly 2 classes"),
        ("a,b\n" + "\n".join(f"{i},{int(i == 0)}" for i in range(30)), "b", "at least 5 rows of each class"),
        ("", "b", "cannot read"),
        ('a,b\n1,"unterminated\n', "b", ""),
    ],
)
def test_bad_csv_is_one_clear_line(tmp_path: Path, content: str, target: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        load_csv(_write(tmp_path, content), target)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_binary_garbage_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BadInput):
        load_csv(path, "x")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="data file not found"):
        load_csv(tmp_path / "nope.csv", "y")


def test_unknown_feature_and_slice_columns(tmp_path: Path) -> None:
    rows = ["x,y"] + [f"{i},{i % 2}" for i in range(20)]
    path = _write(tmp_path, "\n".join(rows))
    with pytest.raises(BadInput, match="feature column"):
        load_csv(path, "y", features=["nope"])
    with pytest.raises(BadInput, match="slice column"):
        load_csv(path, "y", slices=["nope"])


def test_kaggle_without_credentials_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(BadInput, match="no Kaggle credentials"):
        load_kaggle("owner/dataset", "y")
    with pytest.raises(BadInput, match="OWNER/DATASET"):
        load_kaggle("not-a-handle", "y")


def test_kaggle_without_network_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    # No network here (and a bogus key anyway): the download must fail with one readable line.
    monkeypatch.setenv("KAGGLE_API_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(BadInput, match="could not download Kaggle dataset 'owner/dataset'"):
        load_kaggle("owner/dataset", "y")


def test_numeric_target_keeps_its_meaning(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": range(20), "y": [0, 1] * 10})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    data = load_csv(path, "y")
    assert data.frame["y"].tolist() == [0, 1] * 10
