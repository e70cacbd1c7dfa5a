"""What the prediction API answers, per task: the response models (they make the OpenAPI schema) and
how one row's output becomes its answer.

- binary: the probability of class 1 and a 0/1 label (Titanic models: survival in words too);
- multiclass: the most probable class and every class's probability, keyed by the class labels as text
  in the model's `classes_` order;
- regression: the prediction.
Every answer names the model version that made it, carries its request id (the key of the prediction log
and of feedback) and may carry an explanation of its output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from mlscope import task as tasks


class ModelRef(BaseModel):
    name: str
    version: str


REQUEST_ID_DESCRIPTION = ("Identifies this answer in the prediction log: send it with the truth to POST /feedback. "
                          "A batch's answers are numbered `{batch id}-{row}`; the batch id is the `x-request-id` "
                          "header.")


class Explanation(BaseModel):
    """Interventional Shapley values of the answer's output (binary: the probability of class 1;
    multiclass: the probability of the answered class; regression: the prediction), one per input field:
    exact, or approximate with a standard error per value."""

    base_value: float
    contributions: dict[str, float]
    exact: bool
    standard_errors: dict[str, float] | None = Field(
        default=None, description="Per input field, the standard error of its contribution; null when exact "
                                  "(or when the estimate recorded none).")
    model_output: str | None = Field(default=None, description="What is explained, e.g. 'probability of class 1' "
                                                               "or 'prediction'.")
    algorithm: str | None = None
    background_size: int
    additivity_error: float = Field(description="|base_value + sum(contributions) - the explained output|.")


class PassengerAnswer(BaseModel):
    survived: Literal[0, 1] = Field(description="1 when the survival probability is above 0.5.")
    probability: float = Field(description="Model probability of survival (class 1).")
    prediction_text: Literal["Survived", "Did not survive"]
    model: ModelRef
    request_id: str = Field(description=REQUEST_ID_DESCRIPTION)
    explanation: Explanation | None = None


class GenericAnswer(BaseModel):
    """A binary classifier's answer."""

    prediction: Literal[0, 1] = Field(description="1 when P(class 1) is above 0.5.")
    probability: float = Field(description="Model probability of class 1.")
    model: ModelRef
    request_id: str = Field(description=REQUEST_ID_DESCRIPTION)
    explanation: Explanation | None = None


class RegressionAnswer(BaseModel):
    """A regressor's answer."""

    prediction: float = Field(description="The model's prediction (its `predict`).")
    model: ModelRef
    request_id: str = Field(description=REQUEST_ID_DESCRIPTION)
    explanation: Explanation | None = None


def multiclass_answer(classes: Sequence[str]) -> type[BaseModel]:
    """A multiclass classifier's answer, its labels spelled out in the schema."""
    listed = ", ".join(classes)
    return create_model(
        "MulticlassAnswer", __doc__="A multiclass classifier's answer.",
        label=(Literal[tuple(classes)], Field(description="The most probable class (the model's `predict`).")),
        probabilities=(dict[str, float], Field(description=f"The probability of every class, keyed by label in the "
                                                           f"model's order ({listed}); they add up to 1.")),
        model=(ModelRef, ...), request_id=(str, Field(description=REQUEST_ID_DESCRIPTION)),
        explanation=(Explanation | None, None))


def _titanic(probability: float, model: dict[str, str]) -> dict[str, Any]:
    label = int(probability > 0.5)
    return {"survived": label, "probability": probability,
            "prediction_text": "Survived" if label else "Did not survive", "model": model}


def _binary(probability: float, model: dict[str, str]) -> dict[str, Any]:
    return {"prediction": int(probability > 0.5), "probability": probability, "model": model}


def _regression(prediction: float, model: dict[str, str]) -> dict[str, Any]:
    return {"prediction": prediction, "model": model}


def _multiclass(classes: tuple[str, ...]) -> Callable[[list[float], dict[str, str]], dict[str, Any]]:
    def answer(probabilities: list[float], model: dict[str, str]) -> dict[str, Any]:
        best = max(range(len(probabilities)), key=probabilities.__getitem__)  # the first of equals, as argmax
        return {"label": classes[best], "probabilities": dict(zip(classes, probabilities, strict=True)),
                "model": model}

    return answer


@dataclass(frozen=True)
class AnswerShape:
    """The response model and the builder of one answer from one row's output (`Predictor.outputs`)."""

    model: type[BaseModel]
    build: Callable[[Any, dict[str, str]], dict[str, Any]]


_SHAPES: dict[str, Callable[[bool, tuple[str, ...]], AnswerShape]] = {
    "binary": lambda titanic, _: (AnswerShape(PassengerAnswer, _titanic) if titanic
                                  else AnswerShape(GenericAnswer, _binary)),
    "multiclass": lambda _, classes: AnswerShape(multiclass_answer(classes), _multiclass(classes)),
    "regression": lambda *_: AnswerShape(RegressionAnswer, _regression),
}

SHAPES_IN_WORDS = ("binary classifiers answer `prediction` (0/1) and `probability` (of class 1; Titanic models: "
                   "`survived`, `probability`, `prediction_text`); multiclass classifiers answer `label` and "
                   "`probabilities` (per class label); regressors answer `prediction` (a number). Every answer "
                   "names the `model` version that made it and carries its `request_id` (for POST /feedback).")


def answer_shape(task: tasks.Task, titanic: bool = False, classes: Sequence[str] = ()) -> AnswerShape:
    """How a model of `task` answers; `classes`: a multiclass model's labels as text, in its order."""
    return _SHAPES[task.name](titanic, tuple(classes))
