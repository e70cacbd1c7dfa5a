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


SIGNATURE = contract_for([("width", "double", True), ("count", "long", True), ("colour", "string", False),
                          ("flag", "boolean", False), ("ratio", "float", False), ("n:odd", "integer", False)])
SIGNATURE_BATCH = TypeAdapter(list[SIGNATURE.request_model])  # type: ignore[name-defined]
SIGNATURE_VALID = st.fixed_dictionaries(
    {"width": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10, 10)),
     "count": st.integers(-2**63, 2**63)},
    optional={"colour": st.one_of(st.none(), st.text(max_size=3)), "flag": st.one_of(st.none(), st.booleans()),
              "ratio": st.one_of(st.none(), st.floats(-1, 1)), "n:odd": st.one_of(st.none(), st.integers(0, 3))})


def signature_agree(rows: list[Any], plain: bool = False) -> None:
    """Whatever the signature fast path accepts, the strict request model accepts with the same values."""
    body = json.dumps(rows).encode()
    fast = SIGNATURE.plain_columns(orjson.loads(body))
    try:
        reference = SIGNATURE.columns(SIGNATURE_BATCH.validate_json(body))
    except (ValidationError, OverflowError):
        assert fast is None
        return
    assert fast is not None or not plain  # a batch of plain records takes the fast path
    if fast is not None:
        assert fast.keys() == reference.keys()
        for feature, column in reference.items():
            if feature in SIGNATURE.numeric:
                assert np.array_equal(fast[feature], column, equal_nan=True), feature
            else:
                assert fast[feature].tolist() == column.tolist(), feature


@settings(max_examples=1000, deadline=None, database=None)
@given(data=st.data())
def test_signature_fast_path_accepts_only_what_the_request_model_accepts(data: st.DataObject) -> None:
    rows = [dict(row) for row in data.draw(st.lists(SIGNATURE_VALID, min_size=1, max_size=4))]
    row = rows[data.draw(st.integers(0, len(rows) - 1))]
    key = data.draw(st.sampled_from([*SIGNATURE.fields, "other"]))
    action = data.draw(st.sampled_from(["set", "set", "drop", "keep"]))
    if action == "set":
        row[key] = data.draw(ANY_VALUE)
    elif action == "drop":
        row.pop(key, None)
    signature_agree(rows, plain=action == "keep" and all(abs(row["count"]) < 2**63 for row in rows))


def test_signature_fast_path_takes_ordinary_batches_and_refuses_odd_ones() -> None:
    rows = [{"width": 1, "count": 3, "colour": "red", "flag": True, "n:odd": 2},
            {"width": 2.5, "count": -1, "colour": None, "ratio": 0.25}]
    columns = SIGNATURE.plain_columns(rows)
    assert columns is not None and columns["width"].tolist() == [1.0, 2.5]
    assert columns["colour"].tolist() == ["red", None] and columns["flag"].tolist() == [True, None]
    assert np.isnan(columns["ratio"][0]) and columns["ratio"][1] == 0.25
    assert columns["n:odd"][0] == 2.0 and np.isnan(columns["n:odd"][1])
    for odd in ([{"width": 1}], [{"width": True, "count": 1}], [{"width": 1, "count": 1.0}],
                [{"width": 1, "count": 1, "flag": 1}], [{"width": 1, "count": 1, "extra": 1}], {"width": 1}):
        assert SIGNATURE.plain_columns(odd) is None
        signature_agree(odd if isinstance(odd, list) else [odd])
