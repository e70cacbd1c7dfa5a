"""The API's request/response contract for a served model.

Titanic models (inputs Pclass, Sex, Age, SibSp, Parch, Fare and optionally Embarked; binary) get the
hand-written `Passenger` schema with the field names users know and strict ranges. Any other model
gets a schema derived from its MLflow signature. The contract also turns validated requests into the
raw feature columns the predictor takes, and one row's output into the answer of the model's task
(see answers.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from mlscope import task as tasks
from mlscope.errors import BadInput
from mlscope.serving.answers import (  # noqa: F401 - the answer models, also importable from here
    AnswerShape,
    Explanation,
    GenericAnswer,
    ModelRef,
    PassengerAnswer,
    answer_shape,
)

TITANIC_FEATURES = {"pclass": "Pclass", "sex": "Sex", "age": "Age", "sibsp": "SibSp", "parch": "Parch",
                    "fare": "Fare", "embarked": "Embarked"}
TITANIC_NUMERIC = ("Pclass", "Age", "SibSp", "Parch", "Fare")

EXAMPLES = [
    {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25},
    {"pclass": 1, "sex": "female", "age": 28.0, "sibsp": 0, "parch": 0, "fare": 100.0, "embarked": "C"},
]


def _whole(value: Any) -> Any:
    """JSON Schema's integers: whole numbers, also when written 2.0; never booleans or text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class Passenger(BaseModel):
    """One Titanic passenger, as the API takes it."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": EXAMPLES})

    pclass: Annotated[Literal[1, 2, 3], BeforeValidator(_whole)] = Field(
        description="Ticket class: 1, 2 or 3.")
    sex: Annotated[Literal["male", "female"], BeforeValidator(_lower)] = Field(
        description="male or female (any letter case).")
    age: float | None = Field(ge=0, le=120, allow_inf_nan=False, description="Age in years, 0-120, or null.")
    sibsp: Annotated[int, BeforeValidator(_whole)] = Field(ge=0, description="Number of siblings and spouses aboard.")
    parch: Annotated[int, BeforeValidator(_whole)] = Field(ge=0, description="Number of parents and children aboard.")
    fare: float | None = Field(ge=0, allow_inf_nan=False, description="Ticket fare, >= 0, or null.")
    embarked: Annotated[Literal["S", "C", "Q"] | None, BeforeValidator(_upper)] = Field(
        default=None, description="Port of embarkation: S, C or Q (any letter case), or null.")


@dataclass(frozen=True)
class Contract:
    """How requests map to the model's raw features and how answers look (per task, see answers.py)."""

    kind: str  # "titanic" or "signature"
    request_model: type[BaseModel]
    shape: AnswerShape
    fields: dict[str, str]  # request field -> raw feature
    numeric: tuple[str, ...]  # raw features taken as float64
    types: tuple[str, ...]  # one type name per field, part of the contract's identity
    task: str = "binary"
    classes: tuple[str, ...] = ()  # a multiclass model's labels as text, in its order

    @property
    def key(self) -> tuple[Any, ...]:
        """Two contracts with the same key accept and answer the same JSON."""
        return self.kind, tuple(self.fields.items()), self.numeric, self.types, self.task, self.classes

    @property
    def answer_model(self) -> type[BaseModel]:
        return self.shape.model

    @property
    def features(self) -> list[str]:
        return list(self.fields.values())

    def columns(self, items: Sequence[BaseModel]) -> dict[str, np.ndarray]:
        """Validated requests as one array per raw feature (numbers float64 with NaN, text object)."""
        out: dict[str, np.ndarray] = {}
        for field, feature in self.fields.items():
            values = [getattr(item, field) for item in items]
            if feature in self.numeric:
                out[feature] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                column = np.empty(len(values), dtype=object)
                column[:] = values
                out[feature] = column
        return out

    def class_index(self, label: str | None) -> int | None:
        """The position of class `label` (as answered) among a multiclass model's classes; None for None.
        BadInput (field `explain_class`) for another task or an unknown label."""
        if label is None:
            return None
        if not self.classes:
            raise BadInput(f"explain_class is for multiclass models; this API serves a {self.task} model",
                           field="explain_class")
        if label not in self.classes:
            raise BadInput(f"unknown class '{label}'; the model's classes are {', '.join(self.classes)}",
                           field="explain_class")
        return self.classes.index(label)

    def answer(self, output: Any, model: dict[str, str]) -> dict[str, Any]:
        """One row's answer from its output (a probability, a prediction, or a list of class probabilities)."""
        return self.shape.build(output, model)

    def examples(self) -> list[dict[str, Any]]:
        if self.kind != "titanic":
            return []
        return [{k: v for k, v in example.items() if k in self.fields or k == "embarked"} for example in EXAMPLES]


def titanic_contract(features: Sequence[str]) -> Contract:
    """Passenger requests; `embarked` is accepted and ignored by a model that does not use the port."""
    fields = {name: raw for name, raw in TITANIC_FEATURES.items() if raw in features}
    numeric = tuple(f for f in TITANIC_NUMERIC if f in features)
    return Contract("titanic", Passenger, answer_shape(tasks.BINARY, titanic=True), fields, numeric, tuple(fields))


_SIGNATURE_TYPES: dict[str, type] = {"double": float, "float": float, "long": int, "integer": int,
                                     "boolean": bool, "string": str}


def signature_contract(columns: Sequence[tuple[str, str, bool]], task: tasks.Task = tasks.BINARY,
                       classes: Sequence[str] = ()) -> Contract:
    """A contract from signature columns (name, MLflow type name, required; null means missing) for a
    model of `task` (`classes`: a multiclass model's labels as text)."""
    definitions: dict[str, Any] = {}
    numeric = []
    for name, type_name, required in columns:
        python_type = _SIGNATURE_TYPES.get(type_name)
        if python_type is None:
            raise ValueError(f"input column '{name}' has type {type_name}, which the API cannot take")
        if python_type in (float, int):
            numeric.append(name)
        extra: dict[str, Any] = {"allow_inf_nan": False} if python_type is float else {}
        definitions[name] = (python_type | None, Field(... if required else None, **extra))
    request = create_model("ModelInput", __config__=ConfigDict(extra="forbid", strict=True), **definitions)
    return Contract("signature", request, answer_shape(task, classes=classes), {name: name for name, _, _ in columns},
                    tuple(numeric), tuple(f"{name}:{type_name}:{required}" for name, type_name, required in columns),
                    task.name, tuple(classes))


def contract_for(input_columns: Sequence[tuple[str, str, bool]], task: tasks.Task = tasks.BINARY,
                 classes: Sequence[str] = ()) -> Contract:
    """The Titanic contract when a binary model takes the Titanic features, else one from the signature."""
    names = {name for name, _, _ in input_columns}
    titanic = set(TITANIC_FEATURES.values())
    if task is tasks.BINARY and titanic - {"Embarked"} <= names <= titanic:
        return titanic_contract([name for name, _, _ in input_columns])
    return signature_contract(input_columns, task, classes)


_NUMBER_TYPES = {int, float}
_REQUIRED = ("pclass", "sex", "age", "sibsp", "parch", "fare")
_ABSENT = object()


def _numbers(values: list[Any], low: float, high: float | None, nullable: bool) -> np.ndarray | None:
    types = set(map(type, values))
    if not types <= (_NUMBER_TYPES | {type(None)} if nullable else _NUMBER_TYPES):
        return None
    present = [v for v in values if v is not None] if nullable else values
    if present and (min(present) < low or (high is not None and max(present) > high)):
        return None
    return np.array(values, dtype=np.float64)  # None becomes NaN


def _words(values: list[Any], allowed: set[str], change: Callable[[str], str], nullable: bool) -> np.ndarray | None:
    types = set(map(type, values))
    if not types <= ({str, type(None)} if nullable else {str}):
        return None
    changed = [None if v is None else change(v) for v in values]
    if not set(changed) - {None} <= allowed:
        return None
    column = np.empty(len(changed), dtype=object)
    column[:] = changed
    return column


def plain_passenger_columns(payload: Any, fields: dict[str, str]) -> dict[str, np.ndarray] | None:
    """Raw feature columns of a JSON array of passengers when every value is plainly valid (exact
    types, in range), else None and `Passenger` validation decides (and explains the error). Whatever
    this accepts, `Passenger` accepts with the same values (a property test checks); it skips building
    a thousand model objects and Python validators per row."""
    if type(payload) is not list or not set(map(type, payload)) <= {dict}:
        return None
    allowed = set(TITANIC_FEATURES)
    if not all(row.keys() <= allowed for row in payload):
        return None
    values = {name: [row.get(name, _ABSENT) for row in payload] for name in TITANIC_FEATURES}
    if any(_ABSENT in values[name] for name in _REQUIRED):
        return None
    embarked = [None if v is _ABSENT else v for v in values["embarked"]]
    if not all(type(v) is int for name in ("pclass", "sibsp", "parch") for v in values[name]):
        return None
    columns = {
        "Pclass": _numbers(values["pclass"], 1, 3, nullable=False),
        "Sex": _words(values["sex"], {"male", "female"}, str.lower, nullable=False),
        "Age": _numbers(values["age"], 0, 120, nullable=True),
        "SibSp": _numbers(values["sibsp"], 0, None, nullable=False),
        "Parch": _numbers(values["parch"], 0, None, nullable=False),
        "Fare": _numbers(values["fare"], 0, None, nullable=True),
        "Embarked": _words(embarked, {"S", "C", "Q"}, str.upper, nullable=True),
    }
    if any(column is None for column in columns.values()):
        return None
    return {raw: columns[raw] for raw in fields.values()}  # type: ignore[misc]
