"""The API contract: the fast path for plainly valid passenger batches agrees with `Passenger`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from mlscope.serving.contract import TITANIC_FEATURES, Passenger, contract_for, plain_passenger_columns, titanic_contract

CONTRACT = titanic_contract(list(TITANIC_FEATURES.values()))
BATCH = TypeAdapter(list[Passenger])
EDGES = [-1, -0.5, 0, 0.5, 1, 1.0, 2, 3, 4, 119.9, 120, 120.0, 120.01, 121, True, False, 2**64, 2**70,
         "3", "x", "s", "MALE", "female ", None]
ANY_VALUE = st.one_of(
    *[st.sampled_from(EDGES)] * 6,
    st.none(), st.booleans(), st.integers(-5, 200), st.integers(2**62, 2**70),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6),
    st.sampled_from([1.0, 2.0, 0.5, -0.0, 120.0, 120.5]),
    st.sampled_from(["male", "FEMALE", "Male ", "s", "c", "Q", "x", "", "1", "İ", "ß"]),
    st.lists(st.integers(), max_size=1),
)
VALID = st.fixed_dictionaries(
    {"pclass": st.sampled_from([1, 2, 3]), "sex": st.sampled_from(["male", "female", "MALE", "Female"]),
     "age": st.one_of(st.none(), st.floats(0, 120), st.integers(0, 120)), "sibsp": st.integers(0, 10),
     "parch": st.integers(0, 10), "fare": st.one_of(st.none(), st.floats(0, 1e4), st.integers(0, 600))},
    optional={"embarked": st.sampled_from([None, "S", "c", "q"])},
)


def mutated(rows: list[dict[str, Any]], data: st.DataObject) -> list[dict[str, Any]]:
    """The rows with one field of one row replaced by an edge or odd value, or removed (or none)."""
    rows = [dict(row) for row in rows]
    row = rows[data.draw(st.integers(0, len(rows) - 1))]
    key = data.draw(st.sampled_from([*TITANIC_FEATURES, "name"]))
    action = data.draw(st.sampled_from(["set", "set", "set", "drop", "keep"]))
    if action == "set":
        row[key] = data.draw(ANY_VALUE)
    elif action == "drop":
        row.pop(key, None)
    return rows


def agree(rows: list[dict[str, Any]]) -> None:
    """Whatever the fast path accepts, Passenger accepts with the same values."""
    body = json.dumps(rows).encode()
    fast = plain_passenger_columns(orjson.loads(body), CONTRACT.fields)
    try:
        reference = CONTRACT.columns(BATCH.validate_json(body))
    except ValidationError:
        assert fast is None
        return
    if fast is not None:
        assert fast.keys() == reference.keys()
        for feature, column in reference.items():
            if feature in CONTRACT.numeric:
                assert np.array_equal(fast[feature], column, equal_nan=True), feature
            else:
                assert fast[feature].tolist() == column.tolist(), feature


BASE = {"pclass": 2, "sex": "female", "age": 30.5, "sibsp": 1, "parch": 2, "fare": 12.0, "embarked": "S"}


@pytest.mark.parametrize("key", [*TITANIC_FEATURES, "name"])
def test_fast_path_agrees_on_every_edge_value_of_every_field(key: str) -> None:
    for value in [*EDGES, "male", "female", "C", "q", [], {}, 1e300]:
        agree([BASE, {**BASE, key: value}])
    agree([BASE, {k: v for k, v in BASE.items() if k != key}])


@settings(max_examples=1000, deadline=None, database=None)
@given(data=st.data())
def test_fast_path_accepts_only_what_passenger_accepts_with_the_same_values(data: st.DataObject) -> None:
    agree(mutated(data.draw(st.lists(VALID, min_size=1, max_size=4)), data))


def test_fast_path_takes_ordinary_batches() -> None:
    rows = [{"pclass": 3, "sex": "Male", "age": None, "sibsp": 1, "parch": 0, "fare": 7.25},
            {"pclass": 1, "sex": "female", "age": 28, "sibsp": 0, "parch": 0, "fare": None, "embarked": "c"}]
    columns = plain_passenger_columns(rows, CONTRACT.fields)
    assert columns is not None and columns["Sex"].tolist() == ["male", "female"]
    assert columns["Embarked"].tolist() == [None, "C"] and np.isnan(columns["Age"][0])


def test_contract_choice() -> None:
    titanic = [(f, "double", True) for f in ("Pclass", "Age", "SibSp", "Parch", "Fare")] + [("Sex", "string", True)]
    assert contract_for(titanic).kind == "titanic"
    assert "Embarked" not in contract_for(titanic).fields.values()
    other = contract_for([("width", "double", True), ("colour", "string", False)])
    assert other.kind == "signature" and other.fields == {"width": "width", "colour": "colour"}
    assert other.request_model.model_validate({"width": 1.0}).colour is None  # type: ignore[attr-defined]
