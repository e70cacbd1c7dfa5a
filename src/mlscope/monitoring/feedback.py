"""Feedback: the truth for a logged prediction, by request id. Checked before it is recorded — the id
must name a logged prediction of the served model (404), the truth must fit the model's task (422), and
the first feedback for an id is the one kept (a second is refused: 409; nothing is overwritten)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, create_model

from mlscope.errors import BadInput, Conflict, NotFound, NotReady
from mlscope.monitoring import layout, store
from mlscope.monitoring.writer import FeedbackLog, PredictionLog

# After the flush interval, a prediction answered by another worker may still be being written.
WRITE_GRACE_SECONDS = 1.0
MOST_WAIT_SECONDS = 5.0  # an unknown recent id never holds a request longer, whatever the flush interval


def _no_booleans(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be 0 or 1, not true/false")
    return value


# Per task, what `actual` takes (the schema shows it): binary 0 or 1 (also as text), multiclass a class label,
# regression a finite number.
ACTUAL_TYPES: dict[str, Callable[[tuple[str, ...]], Any]] = {
    "binary": lambda _: Annotated[Literal[0, 1, "0", "1"], BeforeValidator(_no_booleans)],
    "multiclass": lambda classes: Literal[classes],
    "regression": lambda _: Annotated[float, Field(allow_inf_nan=False), Strict()],
}


def feedback_model(task: str, classes: Sequence[str] = ()) -> type[BaseModel]:
    """The feedback request of a served model of `task` (`classes`: a multiclass model's labels)."""
    return create_model(
        "Feedback", __config__=ConfigDict(extra="forbid"), __doc__="The truth for one prediction.",
        request_id=(str, Field(pattern=layout.REQUEST_ID_PATTERN, description="The `request_id` of the answer (a "
                               "batch's answers each have their own).")),
        actual=(ACTUAL_TYPES[task](tuple(classes)), Field(description="What really happened: binary models 0 or 1, "
                "multiclass models one of their class labels, regressors a number.")))


class FeedbackRecorded(BaseModel):
    request_id: str
    actual: str = Field(description="The truth as recorded (text).")


class FeedbackBatchRecorded(BaseModel):
    recorded: int = Field(description="How many feedback items were recorded (all of them, or none on an error).")


def _binary(value: Any, _: tuple[str, ...]) -> str | None:
    if isinstance(value, str):
        return value if value in ("0", "1") else None
    return str(int(value)) if value in (0, 1) else None


def _multiclass(value: Any, classes: tuple[str, ...]) -> str | None:
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else None
    return text if text in classes else None


def _regression(value: Any, _: tuple[str, ...]) -> str | None:
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return repr(number) if math.isfinite(number) else None


# Per task: the truth as text, or None when it is no truth for such a model.
TRUTH: dict[str, Callable[[Any, tuple[str, ...]], str | None]] = {
    "binary": _binary, "multiclass": _multiclass, "regression": _regression}
EXPECTED: dict[str, Callable[[tuple[str, ...]], str]] = {
    "binary": lambda _: "0 or 1", "multiclass": lambda classes: f"one of the classes {', '.join(classes)}",
    "regression": lambda _: "a finite number"}


def _field(index: int | None, name: str) -> str:
    return name if index is None else f"{index}.{name}"


class FeedbackDesk:
    """Validates and records the feedback of one API process for the served model `model`."""

    def __init__(self, folder: Path, model: str, task: str, classes: Sequence[str],
                 predictions: PredictionLog | None, log: FeedbackLog, flush_seconds: float) -> None:
        self.folder, self.model, self.task, self.classes = Path(folder), model, task, tuple(classes)
        self.predictions, self.log, self.flush_seconds = predictions, log, flush_seconds
        self._recording = threading.Lock()

    def record(self, items: Sequence[Any], batch: bool = False) -> list[tuple[str, str]]:
        """Record every item or none: the (request id, truth as text) pairs recorded. Blocking (reads the
        log; may wait up to the flush interval for a prediction another worker has not written yet)."""
        where = (lambda i: i) if batch else (lambda _: None)
        pairs = [(item.request_id, self._truth(item.actual, where(i))) for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for index, (request_id, _) in enumerate(pairs):
            if request_id in seen:
                raise Conflict(f"request id {request_id} appears twice in this batch (items {seen[request_id]} "
                               f"and {index})", field=_field(where(index), "request_id"))
            seen[request_id] = index
        self._known(list(seen), where)
        with self._recording:
            answered = self.log.pending(seen) | store.answered_request_ids(self.folder, self.model, seen)
            if answered:
                first = min(answered, key=seen.__getitem__)
                raise Conflict(f"request id {first} already has feedback; the first one is kept",
                               field=_field(where(seen[first]), "request_id"))
            if not self.log.add(self.model, pairs):
                raise NotReady("the feedback buffer is full; retry in a moment")
        return pairs

    def _truth(self, value: Any, index: int | None) -> str:
        text = TRUTH[self.task](value, self.classes)
        if text is None:
            raise BadInput(f"actual {value!r} is not a truth for this {self.task} model: expected "
                           f"{EXPECTED[self.task](self.classes)}", field=_field(index, "actual"))
        return text

    def _known(self, request_ids: list[str], where: Callable[[int], int | None]) -> None:
        """NotFound for the first id without a logged prediction of the model (after waiting for the
        writes that may still bring it: this process's now, another worker's within its flush interval)."""
        if self.predictions is None:
            raise NotFound("this API does not log predictions (MLSCOPE_LOG_PREDICTIONS=false): there is no "
                           "prediction to give feedback on", field=_field(where(0), "request_id"))
        missing = set(request_ids) - store.known_request_ids(self.folder, self.model, request_ids)
        if missing:
            self.predictions.flush()
            missing -= store.known_request_ids(self.folder, self.model, missing)
        if missing:
            latest = max(layout.request_time(request_id).timestamp() for request_id in missing)
            wait = latest + self.flush_seconds + WRITE_GRACE_SECONDS - time.time()
            if 0 < wait <= self.flush_seconds + WRITE_GRACE_SECONDS:
                time.sleep(min(wait, MOST_WAIT_SECONDS))
                missing -= store.known_request_ids(self.folder, self.model, missing)
        if missing:
            first = min(missing, key=request_ids.index)
            when = layout.request_time(first)
            raise NotFound(f"no logged prediction of '{self.model}' has request id {first} (a request of "
                           f"{when.isoformat(timespec='seconds')}; sampled out or not this model's?)"
                           if when <= datetime.now(UTC) else
                           f"no logged prediction of '{self.model}' has request id {first}",
                           field=_field(where(request_ids.index(first)), "request_id"))
