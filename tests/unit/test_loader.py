from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlscope import task as tasks
from mlscope.data.loader import load_csv, load_demo, load_diabetes, load_kaggle, load_titanic, load_wine, titanic_path
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


def test_the_task_is_inferred_from_the_target(tmp_path: Path) -> None:
    rows = ["x,colour,price,grade,label"]
    rows += [f"{i},{['red', 'blue'][i % 2]},{i * 1.37 + 0.5},{i % 3},{['cat', 'dog', 'fox'][i % 3]}" for i in range(30)]
    path = _write(tmp_path, "\n".join(rows))
    price = load_csv(path, "price")
    assert price.task is tasks.REGRESSION and price.classes == () and price.frame["price"].dtype == "float64"
    grade = load_csv(path, "grade")  # whole numbers, few values: classes
    assert grade.task is tasks.MULTICLASS and grade.classes == (0, 1, 2)
    label = load_csv(path, "label")  # text classes are kept as they are
    assert label.task is tasks.MULTICLASS and label.classes == ("cat", "dog", "fox")
    assert label.frame["label"].tolist()[:3] == ["cat", "dog", "fox"]
    assert load_csv(path, "grade", task="regression").task is tasks.REGRESSION  # stated wins when it fits
    assert load_titanic().task is tasks.BINARY and load_titanic().classes == (0, 1)


@pytest.mark.parametrize(
    ("target", "task", "message"),
    [
        ("label", "regression", "target column 'label' is not numeric"),
        ("grade", "binary", "has 3 classes, which is not a binary task (use --task multiclass)"),
        ("colour", "multiclass", "has 2 classes, which is not a multiclass task"),
        ("x", "nonsense", "unknown task 'nonsense'"),
    ],
)
def test_a_stated_task_that_does_not_fit_is_one_line(tmp_path: Path, target: str, task: str, message: str) -> None:
    rows = ["x,colour,grade,label"] + [f"{i},{['red', 'blue'][i % 2]},{i % 3},{['cat', 'dog', 'fox'][i % 3]}"
                                        for i in range(30)]
    with pytest.raises(BadInput) as info:
        load_csv(_write(tmp_path, "\n".join(rows)), target, task=task)
    assert message in info.value.message and "\n" not in info.value.message


def test_too_few_rows_for_the_task(tmp_path: Path) -> None:
    few_classes = ["x,y"] + [f"{i},{'abc'[i % 3] if i < 27 else 'd'}" for i in range(30)]
    with pytest.raises(BadInput, match="at least 5 rows of each class, has 3"):
        load_csv(_write(tmp_path, "\n".join(few_classes)), "y")
    few_rows = ["x,y"] + [f"{i},{i * 0.5 + 0.25}" for i in range(12)]
    with pytest.raises(BadInput, match="at least 20 rows for regression, has 12"):
        load_csv(_write(tmp_path, "\n".join(few_rows), "r.csv"), "y")


def test_shipped_demos_come_from_the_scikit_learn_wheel() -> None:
    diabetes, wine = load_diabetes(), load_wine()
    assert diabetes.task is tasks.REGRESSION and diabetes.target == "progression" and len(diabetes.frame) == 442
    assert diabetes.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert diabetes.slices == ["sex"] and diabetes.frame["age"].min() >= 19  # unscaled values
    assert Path(diabetes.source).is_file() and len(diabetes.digest) == 16
    assert wine.task is tasks.MULTICLASS and wine.target == "cultivar" and len(wine.frame) == 178
    assert wine.classes == ("class_0", "class_1", "class_2")
    assert wine.frame["cultivar"].value_counts().to_dict() == {"class_1": 71, "class_0": 59, "class_2": 48}
    assert load_demo("wine").digest == wine.digest
    with pytest.raises(BadInput, match="unknown dataset 'iris'"):
        load_demo("iris")
    provenance = titanic_path().with_name("PROVENANCE.md").read_text()
    assert "load_diabetes" in provenance and "load_wine" in provenance
