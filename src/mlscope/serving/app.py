"""The prediction API: thin routes over the watcher (which model), the batcher (single rows) and the
loaded model (batches, explanations)."""

# No `from __future__ import annotations`: the request and answer types are chosen at run time
# (from the served model's contract) and FastAPI must see them as real objects.
import gc
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Body, FastAPI, Query
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

import mlscope
from mlscope.config import Settings
from mlscope.errors import NotReady, TooLarge
from mlscope.explain.shapley import Explanation as ShapleyExplanation
from mlscope.monitoring.feedback import FeedbackBatchRecorded, FeedbackDesk, FeedbackRecorded, feedback_model
from mlscope.monitoring.layout import new_request_id, row_request_id
from mlscope.monitoring.store import remove_expired
from mlscope.monitoring.writer import FeedbackLog, PredictionLog
from mlscope.serving.answers import SHAPES_IN_WORDS
from mlscope.serving.batching import MicroBatcher
from mlscope.serving.contract import Contract, plain_passenger_columns
from mlscope.serving.loading import LoadedModel
from mlscope.serving.metrics import ApiMetrics, MetricsMiddleware
from mlscope.serving.watcher import ModelWatcher
from mlscope.web.api_docs import install_api_docs
from mlscope.web.errors import error_body, install_error_handlers

MAX_BYTES_PER_ROW = 2048  # a passenger is ~100 bytes of JSON; the byte limit only stops absurd bodies
MAX_EXPLAINED_ROWS = 1000  # exact explanations cost ~5-15 ms a row: bound one request's work
INLINE_ROWS = 256  # larger batches run in a worker thread: the loop keeps serving and the forest kernel (no GIL) overlaps

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No logged prediction has this request id; `error.field` names the field."},
    409: {"description": "This request id already has feedback (the first is kept)."},
    413: {"description": "More rows than the configured batch limit."},
    422: {"description": "Invalid input; `error.field` names the field."},
    503: {"description": "No model is loaded yet; `error.message` says why."},
}


async def read_limited(request: HTTPRequest, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body has {int(declared)} bytes, more than the limit of {limit}", field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is longer than the limit of {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def settle_heap(unfreeze: bool = True) -> None:
    """Move everything loaded so far (MLflow, scikit-learn, the model) out of the garbage collector's
    sight: a full collection over that heap stalls every request for 100+ ms. `unfreeze` first makes
    what was frozen before (a swapped-out model's cycles) collectable again."""
    if unfreeze:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


REQUEST_ID_HEADER = "x-request-id"


def _json(payload: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = None if request_id is None else {REQUEST_ID_HEADER: request_id}
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _milliseconds_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def explanation_answers(explanation: ShapleyExplanation, fields: list[str]) -> list[dict[str, Any]]:
    """One `explanation` object per explained row, keyed by request field (`fields`, in feature order)."""
    exact = bool(explanation.metadata["exact"])
    errors = None if exact or explanation.standard_errors is None else np.asarray(explanation.standard_errors)
    common = {"exact": exact, "model_output": explanation.metadata.get("model_output"),
              "algorithm": explanation.metadata.get("algorithm"),
              "background_size": int(explanation.metadata["background_size"])}
    return [{"base_value": explanation.base_value,
             "contributions": dict(zip(fields, row.tolist(), strict=True)),
             "standard_errors": None if errors is None else dict(zip(fields, errors[r].tolist(), strict=True)),
             **common, "additivity_error": float(error)}
            for r, (row, error) in enumerate(zip(explanation.values, explanation.additivity_errors, strict=True))]


def _explanations(model: LoadedModel, columns: dict[str, np.ndarray], outputs: np.ndarray,
                  explain_class: str | None) -> list[dict[str, Any]]:
    """One `explanation` object per row, in row order (a multiclass batch is explained per answered class
    unless `explain_class` names one)."""
    names = {raw: field for field, raw in model.contract.fields.items()}
    by_row: dict[int, dict[str, Any]] = {}
    for explanation in model.explain(columns, outputs, explain_class):
        fields = [names[feature] for feature in explanation.features]
        by_row.update(zip(explanation.row_ids, explanation_answers(explanation, fields), strict=True))
    return [by_row[row] for row in range(len(outputs))]


def _answers(model: LoadedModel, columns: dict[str, np.ndarray], explain: bool, request_ids: list[str],
             explain_class: str | None = None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Answers (one per request id) from one model snapshot (batches and explanations; large ones in a
    worker thread), and the outputs they report."""
    outputs = model.outputs(columns)
    answers = [model.contract.answer(output, model.ref) for output in outputs.tolist()]
    for answer, request_id in zip(answers, request_ids, strict=True):
        answer["request_id"] = request_id
    if explain:
        for answer, explanation in zip(answers, _explanations(model, columns, outputs, explain_class), strict=True):
            answer["explanation"] = explanation
    return answers, outputs


class WorkerHeader:
    """Names the process that answered in an `x-mlscope-worker: <pid>` header (several workers share
    the port)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.header = (b"x-mlscope-worker", str(os.getpid()).encode())

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_named)


def create_api(settings: Settings, watcher: ModelWatcher, contract: Contract,
               metrics_dir: Path | None = None) -> FastAPI:
    """The app for one watcher; `contract` fixes the request schema for the app's lifetime. With
    `metrics_dir`, this process is one of several workers and /metrics reports all of them."""
    metrics = ApiMetrics(metrics_dir)
    batcher = MicroBatcher(lambda: watcher.current, lambda: watcher.problem)
    prediction_log, feedback_log = logs(settings, metrics)
    desk = FeedbackDesk(settings.monitor_dir, watcher.target.name, contract.task, contract.classes, prediction_log,
                        feedback_log, settings.log_flush_seconds)
    watcher.on_change(lambda m: metrics.set_model(m.name, m.version, m.alias))
    watcher.on_change(lambda _: settle_heap())
    watcher.on_check(lambda w: metrics.set_checks(w.swaps, w.failed_checks))
    metrics.set_checks(watcher.swaps, watcher.failed_checks)
    if watcher.current is not None:
        metrics.set_model(watcher.current.name, watcher.current.version, watcher.current.alias)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A worker of `--workers` starts with what its parent imported and froze before forking: left
        # frozen, the collector never writes to those objects and their pages stay shared (two workers:
        # ~80 MiB less memory in all).
        settle_heap(unfreeze=metrics_dir is None)
        watcher.start()
        for log in (prediction_log, feedback_log):
            if log is not None:
                log.start()
        try:
            yield
        finally:
            watcher.stop()
            for log in (prediction_log, feedback_log):  # SIGTERM / Ctrl-C: write what is buffered
                if log is not None:
                    await run_in_threadpool(log.close)

    app = FastAPI(title="mlscope prediction API", version=mlscope.__version__, lifespan=lifespan,
                  description=f"Predictions from the registered model `{watcher.target.name}` "
                              f"@{watcher.target.alias}, hot-swapped when the alias moves.",
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_api_docs(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths=lambda: {r.path for r in app.routes})
    if metrics_dir is not None:
        app.add_middleware(WorkerHeader)
    Request, Answer = contract.request_model, contract.answer_model
    batch_adapter = TypeAdapter(list[Request])  # type: ignore[valid-type]

    def parse_batch(body: bytes) -> tuple[dict[str, np.ndarray], int]:
        """Raw feature columns and row count of a batch. Plainly valid passengers go straight to
        columns; anything else is validated from the JSON bytes by the request model (which names
        the first bad field). Both are several times faster than FastAPI's own body handling."""
        if contract.kind == "titanic":
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
            columns = plain_passenger_columns(payload, contract.fields) if payload is not None else None
            if columns is not None:
                return columns, len(payload)
        try:
            items = batch_adapter.validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
                                         ) from None
        return contract.columns(items), len(items)

    examples = {f"example {n + 1}": {"value": example} for n, example in enumerate(contract.examples())}
    ExplainFlag = Annotated[bool, Query(
        description="Add per-feature Shapley contributions of the answered output (the probability of class 1, "
                    "the probability of the answered class, or the prediction): exact, or with a standard error "
                    "per value.")]
    # Only a multiclass API documents `explain_class` (its labels as the schema's enum); any other API
    # answers it with a 422 naming the field.
    explain_class_parameter = [{
        "name": "explain_class", "in": "query", "required": False,
        "schema": {"type": "string", "enum": list(contract.classes)},
        "description": "Explain the probability of this class instead of the answered class's; implies explain=true.",
    }] if contract.classes else []

    def explain_class_of(request: HTTPRequest) -> str | None:
        label = request.query_params.get("explain_class")
        contract.class_index(label)
        return label
    answers_in_words = (f"\n\nThis API serves a **{contract.task}** model; the answer schema below is its "
                        f"shape. Per task: {SHAPES_IN_WORDS}")

    def served() -> LoadedModel:
        model = watcher.current
        if model is None:
            raise NotReady(f"no model loaded: {watcher.problem}")
        return model

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["service"], responses={503: ERRORS[503]})
    async def ready() -> Response:
        """Readiness: 200 only when a model is loaded."""
        model = watcher.current
        if model is None:
            return JSONResponse(error_body("not_ready", f"no model loaded: {watcher.problem}"), status_code=503)
        return _json({"status": "ready", "model": model.ref, "registry_problem": watcher.problem,
                      "pid": os.getpid()})

    @app.get("/model", tags=["service"], responses={503: ERRORS[503]})
    async def model_info() -> Response:
        """The served version: name, version, alias, source run, headline metrics, input schema."""
        described = served().describe()
        described.update(swaps=watcher.swaps, registry_problem=watcher.problem,
                         poll_seconds=settings.poll_seconds, pid=os.getpid())
        return _json(described)

    @app.post("/predict", tags=["predict"], response_model=Answer, responses={422: ERRORS[422], 503: ERRORS[503]},
              description="One prediction; micro-batched with concurrent requests into one model call."
                          + answers_in_words, openapi_extra={"parameters": explain_class_parameter})
    async def predict(request: HTTPRequest,
                      item: Annotated[Request, Body(openapi_examples=examples)],  # type: ignore[valid-type]
                      explain: ExplainFlag = False) -> Response:
        started = time.perf_counter()
        request_id = new_request_id()
        explain_class = explain_class_of(request)
        if explain or explain_class is not None:
            model = served()
            answers, outputs = await run_in_threadpool(_answers, model, contract.columns([item]), True, [request_id],
                                                       explain_class)
            answer, output = answers[0], outputs[0]
        else:
            output, model = await batcher.predict(item)
            answer = contract.answer(output, model.ref)
            answer["request_id"] = request_id
        metrics.rows.labels("predict").inc()
        if prediction_log is not None and prediction_log.sampled():
            prediction_log.add_one(model, item, output, request_id, _milliseconds_since(started))
        return _json(answer, request_id=request_id)

    batch_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "items": {"$ref": f"#/components/schemas/{Request.__name__}"}}}}}

    @app.post("/predict/batch", tags=["predict"], response_model=list[Answer],  # type: ignore[valid-type]
              responses={413: ERRORS[413], 422: ERRORS[422], 503: ERRORS[503]},
              openapi_extra={"requestBody": batch_body, "parameters": explain_class_parameter},
              description="Many predictions (a JSON array of inputs) in the order given, at most "
                          "`MLSCOPE_MAX_BATCH_ROWS` rows; one answer per input." + answers_in_words)
    async def predict_batch(request: HTTPRequest, explain: ExplainFlag = False) -> Response:
        started = time.perf_counter()
        batch_id = new_request_id()
        explain_class = explain_class_of(request)
        explain = explain or explain_class is not None
        columns, rows = parse_batch(await read_limited(request, settings.max_batch_rows * MAX_BYTES_PER_ROW))
        if rows > settings.max_batch_rows:
            raise TooLarge(f"{rows} rows, the limit is {settings.max_batch_rows}", field="body")
        if explain and rows > MAX_EXPLAINED_ROWS:
            raise TooLarge(f"explain=true takes at most {MAX_EXPLAINED_ROWS} rows per request, got {rows}",
                           field="explain")
        if not rows:
            return _json([], request_id=batch_id)
        model = served()
        request_ids = [row_request_id(batch_id, row) for row in range(rows)]
        if explain or rows > INLINE_ROWS:
            answers, outputs = await run_in_threadpool(_answers, model, columns, explain, request_ids, explain_class)
        else:
            answers, outputs = _answers(model, columns, explain, request_ids)
        metrics.rows.labels("batch").inc(rows)
        if prediction_log is not None and prediction_log.sampled():
            prediction_log.add_batch(model, columns, outputs, batch_id, _milliseconds_since(started))
        return _json(answers, request_id=batch_id)

    Feedback = feedback_model(contract.task, contract.classes)
    feedback_errors = {status: ERRORS[status] for status in (404, 409, 422)}
    in_words = ("The truth for a prediction, by the `request_id` of its answer: binary models take 0 or 1, "
                "multiclass models a class label, regressors a number. The first feedback for a request id is "
                "kept; another is refused (409).")

    @app.post("/feedback", tags=["feedback"], response_model=FeedbackRecorded, responses=feedback_errors,
              description=in_words)
    async def give_feedback(item: Feedback) -> Response:  # type: ignore[valid-type]
        pairs = await run_in_threadpool(desk.record, [item])
        return _json({"request_id": pairs[0][0], "actual": pairs[0][1]})

    @app.post("/feedback/batch", tags=["feedback"], response_model=FeedbackBatchRecorded,
              responses={**feedback_errors, 413: ERRORS[413]},
              description=in_words + " A batch is recorded whole or not at all; `error.field` names the first "
                                     "bad item (e.g. `3.actual`).")
    async def give_feedback_batch(items: list[Feedback]) -> Response:  # type: ignore[valid-type]
        if len(items) > settings.max_batch_rows:
            raise TooLarge(f"{len(items)} feedback items, the limit is {settings.max_batch_rows}", field="body")
        pairs = await run_in_threadpool(desk.record, items, True) if items else []
        return _json({"recorded": len(pairs)})

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text format: requests, errors, latency histogram, served version (with several
        workers: totals over all of them, and the gauges per worker pid)."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def logs(settings: Settings, metrics: ApiMetrics) -> tuple[PredictionLog | None, FeedbackLog]:
    """This process's prediction log (None when predictions are not logged) and feedback log."""
    feedback_log = FeedbackLog(settings.monitor_dir, settings.log_flush_seconds, settings.log_buffer_rows)
    if not settings.log_predictions:
        return None, feedback_log
    prediction_log = PredictionLog(
        settings.monitor_dir, settings.log_flush_seconds, settings.log_buffer_rows, settings.log_sample_rate,
        on_written=metrics.log_rows.inc, on_dropped=metrics.log_dropped.inc,
        every_hour=partial(remove_expired, settings.monitor_dir, settings.log_retention_days))
    return prediction_log, feedback_log


def build_api(settings: Settings, metrics_dir: Path | None = None) -> FastAPI:
    """Try to load the alias's version once, then build the app around its contract. When nothing can
    be loaded yet, the app takes Titanic passengers and keeps retrying in the background.
    `metrics_dir`: the multiprocess metrics folder shared by the workers of `mlscope serve --workers N`."""
    from mlscope.serving.contract import TITANIC_FEATURES, titanic_contract
    from mlscope.serving.watcher import Target

    watcher = ModelWatcher(settings, Target(settings.model_name, settings.alias))
    watcher.check()
    if watcher.contract is None:
        watcher.contract = titanic_contract(list(TITANIC_FEATURES.values()))
    return create_api(settings, watcher, watcher.contract, metrics_dir)
