"""The run index gives MLflow's own search_runs answers: seeded random filters and orderings over one
experiment, on SQLite and on PostgreSQL (marker `postgres`, a fresh database per session)."""

from __future__ import annotations

import hashlib
import math
import random
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.store.db.utils as mlflow_db_utils
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlscope.errors import BadInput, NotFound
from mlscope.tracking.index import TOP_LEVEL, IndexedRun, MetricCounts, RunIndex, TreeLevel
from mlscope.tracking.index import run_index as run_index_module
from mlscope.tracking.index.api import from_mlflow
from mlscope.tracking.runs import best_run, list_runs
from tests import postgres

SEED = 20261123
RUNS = 300
CASES = 120
PAGE = 100
EXPERIMENT = "run-index"
METRICS = ["accuracy", "loss", "f1", "roc_auc"]
PARAMS = ["model_type", "lr", "depth", "seed"]
BASE_TIME = 1_790_000_000_000
STATUSES = ["FINISHED"] * 12 + ["FAILED"] * 3 + ["KILLED"] * 2 + ["RUNNING"] * 2 + ["SCHEDULED"]
NAMES = ["alpha", "Alpha", "beta", "gamma-1", "gamma_2", "Émile", "émile", "delta", "BETA"]
MODEL_TYPES = ["svm", "SVM", "rf", "Rf", "logreg", "Émile", "émile", "xgb_1", "xgb%2"]
LRS = ["0.1", "0.01", "1e-3", "10", "9", "2", "0.10", "-1", "1.0"]
DEPTHS = ["3", "10", "None", "03"]
TEAMS = ["alpha", "Beta", "beta", "gamma", "Ünit"]
STAGES = ["dev", "prod", "Prod"]
FAKE_REVISION = "fa11bac0ffee"


@dataclass
class Observed:
    """Values present in the seeded experiment, to build filters that match something."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    start_times: list[int] = field(default_factory=list)
    end_times: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Seeded:
    uri: str
    experiment_id: str
    client: MlflowClient
    index: RunIndex
    observed: Observed
    answers: dict[Case, list[IndexedRun] | MlflowException] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    filter_string: str
    order_by: tuple[str, ...]
    view: int
    metric: str
    direction: str


# --- seeding ---------------------------------------------------------------------------------------


def _metric_values(rng: random.Random) -> dict[str, list[float]]:
    """Per metric, the values logged in step order (the last is the latest); absent metrics omitted."""
    values: dict[str, list[float]] = {}
    if rng.random() < 0.9:
        values["accuracy"] = [math.nan if rng.random() < 0.06 else round(rng.uniform(0.5, 1.0), 2)]
    loss = rng.choice([0.1, 0.25, 0.25, 0.5, 0.75, 1.0, 2.0, math.inf, -math.inf, math.nan])
    values["loss"] = [round(rng.uniform(0, 3), 3), loss]
    if rng.random() < 0.7:
        values["f1"] = [rng.choice([0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])]
    if rng.random() < 0.9:
        values["roc_auc"] = [math.nan if rng.random() < 0.15 else round(rng.uniform(0.4, 1.0), 3)]
    return values


def _params(rng: random.Random, number: int) -> list[Param]:
    chosen = {"model_type": rng.choice(MODEL_TYPES), "lr": rng.choice(LRS), "depth": rng.choice(DEPTHS),
              "seed": str(number % 13)}
    return [Param(key, value) for key, value in chosen.items() if key == "seed" or rng.random() < 0.9]


def _tags(rng: random.Random) -> dict[str, str]:
    tags = {"team": rng.choice(TEAMS), "stage": rng.choice(STAGES)}
    return {key: value for key, value in tags.items() if rng.random() < 0.85}


def _seed_run(client: MlflowClient, experiment_id: str, rng: random.Random, number: int, observed: Observed) -> None:
    start = BASE_TIME + rng.randrange(120) * 1000
    name = rng.choice(NAMES) if rng.random() < 0.95 else None
    run = client.create_run(experiment_id, start_time=start, tags=_tags(rng), run_name=name)
    run_id = run.info.run_id
    metrics = [Metric(key, value, start + step, step)
               for key, values in _metric_values(rng).items() for step, value in enumerate(values)]
    client.log_batch(run_id, metrics=metrics, params=_params(rng, number), tags=[RunTag("batch", str(number % 3))])
    status = rng.choice(STATUSES)
    if status == "SCHEDULED":
        client.update_run(run_id, status=status)
    elif status != "RUNNING":
        end = start + rng.randrange(1, 40) * 500
        client.set_terminated(run_id, status, end_time=end)
        observed.end_times.append(end)
    if rng.random() < 0.08:
        client.delete_run(run_id)
        observed.deleted.add(run_id)
    observed.start_times.append(start)
    observed.run_ids.append(run_id)
    for metric in metrics:
        if math.isfinite(metric.value):
            observed.metrics.setdefault(metric.key, []).append(metric.value)


def seed(uri: str, artifacts: Path) -> tuple[str, Observed]:
    rng = random.Random(SEED)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    other = client.create_experiment("other", artifact_location=artifacts.as_uri())
    observed = Observed()
    for number in range(RUNS):
        _seed_run(client, experiment_id, rng, number, observed)
    others = Observed()
    for number in range(5):
        _seed_run(client, other, rng, number, others)
    nest(client, observed, others)
    return experiment_id, observed


def nest(client: MlflowClient, observed: Observed, others: Observed) -> None:
    """Parent tags as nested runs carry them (mlflow.parentRunId), on a separate seed so the runs above stay as
    they were: about a third of the live runs get an earlier run as parent (chains up to several levels; some
    parents deleted, so their children are orphans), a few a run of the other experiment or an unknown run;
    one run is its own parent and two are each other's."""
    rng = random.Random(SEED + 7)
    alive = [run_id for run_id in observed.run_ids if run_id not in observed.deleted]
    for position, run_id in enumerate(observed.run_ids):
        if run_id in observed.deleted or position == 0:
            continue
        roll = rng.random()
        if roll < 0.35:
            parent = rng.choice(observed.run_ids[:position])
        elif roll < 0.38:
            parent = rng.choice(others.run_ids)
        elif roll < 0.40:
            parent = "f" * 32
        else:
            continue
        client.set_tag(run_id, MLFLOW_PARENT_RUN_ID, parent)
    loners = [run_id for run_id in alive if MLFLOW_PARENT_RUN_ID not in client.get_run(run_id).data.tags]
    client.set_tag(loners[0], MLFLOW_PARENT_RUN_ID, loners[0])
    client.set_tag(loners[1], MLFLOW_PARENT_RUN_ID, loners[2])
    client.set_tag(loners[2], MLFLOW_PARENT_RUN_ID, loners[1])


def _open(uri: str, artifacts: Path) -> Iterator[Seeded]:
    experiment_id, observed = seed(uri, artifacts)
    index = RunIndex(uri)
    assert index.backend == "sql", index.fallback_reason
    yield Seeded(uri, experiment_id, MlflowClient(tracking_uri=uri), index, observed)
    index.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with postgres.database_or_skip() as uri:
        yield uri


@pytest.fixture(scope="module")
def sqlite_seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("run-index-sqlite")
    yield from _open(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


@pytest.fixture(scope="module")
def postgres_seeded(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    yield from _open(pg_database, tmp_path_factory.mktemp("run-index-pg") / "artifacts")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest) -> Seeded:
    return request.getfixturevalue(f"{request.param}_seeded")


# --- random cases ----------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return f"'{value}'"


def _string_clause(rng: random.Random, identifier: str, values: Sequence[str], nullable: bool) -> str:
    comparators = ["=", "!=", "LIKE", "ILIKE", "like", "ilike"] + (["IS NULL", "IS NOT NULL"] if nullable else [])
    comparator = rng.choice(comparators)
    if comparator.endswith("NULL"):
        return f"{identifier} {comparator}"
    value = rng.choice(values)
    if comparator.upper() in ("LIKE", "ILIKE"):
        value = rng.choice([value[:2] + "%", "%" + value[-2:], "%" + value[1:-1] + "%", value.upper(),
                            value[:1] + "_" * (len(value) - 1), "%", value.swapcase()])
    elif rng.random() < 0.2:
        value = value.swapcase()
    return f"{identifier} {comparator} {_quoted(value)}"


def _metric_clause(rng: random.Random, observed: Observed) -> str:
    key = rng.choice(METRICS + ["absent"]) if rng.random() < 0.95 else "absent"
    comparator = rng.choice(["=", "!=", "<", "<=", ">", ">="])
    seen = observed.metrics.get(key, [0.5])
    value = rng.choice(seen) if rng.random() < 0.7 else rng.choice([0, 1, round(rng.uniform(-0.5, 2.5), 3)])
    identifier = rng.choice([f"metrics.{key}", f"metric.{key}", f"metrics.`{key}`"])
    return f"{identifier} {comparator} {value!r}"


def _attribute_clause(rng: random.Random, observed: Observed) -> str:
    kind = rng.choice(["status", "run_name", "time", "time", "run_id", "other"])
    if kind == "status":
        statuses = ["FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED", "finished"]
        return _string_clause(rng, "attributes.status", statuses, nullable=False)
    if kind == "run_name":
        identifier = rng.choice(["attributes.run_name", "run_name", "attributes.`Run name`"])
        return _string_clause(rng, identifier, NAMES, nullable=False)
    if kind == "time":
        identifier, values = rng.choice([("attributes.start_time", observed.start_times),
                                         ("attributes.created", observed.start_times),
                                         ("attributes.end_time", observed.end_times)])
        return f"{identifier} {rng.choice(['=', '!=', '<', '<=', '>', '>='])} {rng.choice(values)}"
    if kind == "run_id":
        chosen = rng.sample(observed.run_ids, rng.randrange(1, 40)) + ["0" * 32]
        listed = ", ".join(_quoted(run_id) for run_id in chosen)
        return f"attributes.run_id {rng.choice(['IN', 'NOT IN'])} ({listed})"
    identifier, values = rng.choice([("attributes.user_id", ["tester", "unknown", "nobody"]),
                                     ("attributes.artifact_uri", ["file:///tmp/x", "file"])])
    return _string_clause(rng, identifier, values, nullable=False)


def _clause(rng: random.Random, observed: Observed) -> str:
    roll = rng.random()
    if roll < 0.35:
        return _metric_clause(rng, observed)
    if roll < 0.6:
        key = rng.choice(PARAMS + ["absent"])
        values = {"model_type": MODEL_TYPES, "lr": LRS, "depth": DEPTHS, "seed": ["1", "10", "12"]}.get(key, ["x"])
        return _string_clause(rng, rng.choice([f"params.{key}", f"param.{key}"]), values, nullable=True)
    if roll < 0.75:
        key, values = rng.choice([("team", TEAMS), ("stage", STAGES), ("mlflow.runName", NAMES), ("batch", ["0"])])
        return _string_clause(rng, rng.choice([f"tags.{key}", f"tags.`{key}`"]), values, nullable=True)
    return _attribute_clause(rng, observed)


ORDER_KEYS = [
    "metrics.accuracy", "metrics.loss", "metrics.f1", "metrics.roc_auc", "metrics.absent", "params.lr",
    "params.model_type", "params.depth", "params.absent", "tags.team", "tags.stage", "attributes.start_time",
    "attributes.end_time", "attributes.run_name", "attributes.status", "attributes.run_id", "attributes.user_id",
    "end_time", "status",
]


def make_case(number: int, observed: Observed) -> Case:
    rng = random.Random(SEED * 1000 + number)
    clauses = [_clause(rng, observed) for _ in range(rng.choice([0, 1, 1, 2, 2, 3]))]
    keys = rng.sample(ORDER_KEYS, rng.choice([0, 1, 1, 2, 2]))
    order_by = [key + rng.choice(["", " ASC", " DESC", " asc", " desc"]) for key in keys]
    view = rng.choices([ViewType.ACTIVE_ONLY, ViewType.ALL, ViewType.DELETED_ONLY], weights=[8, 1, 1])[0]
    return Case(filter_string=" and ".join(clauses), order_by=tuple(order_by), view=view,
                metric=rng.choice(METRICS), direction=rng.choice(["max", "min"]))


# --- comparing -------------------------------------------------------------------------------------


def comparable(run: IndexedRun) -> tuple[object, ...]:
    """A run's fields with NaN made equal to NaN."""
    metrics = {key: ("nan" if math.isnan(value) else value) for key, value in run.metrics.items()}
    return (run.run_id, run.run_name, run.experiment_id, run.status, run.start_time, run.end_time,
            run.lifecycle_stage, run.user_id, run.artifact_uri, metrics, run.params, run.tags)


def mlflow_runs(seeded: Seeded, case: Case) -> list[IndexedRun]:
    """MLflow's answer (all runs, one page), remembered per store and case."""
    if case not in seeded.answers:
        try:
            found = seeded.client.search_runs([seeded.experiment_id], case.filter_string, case.view,
                                              max_results=50_000, order_by=list(case.order_by))
            seeded.answers[case] = [from_mlflow(run) for run in found]
        except MlflowException as exc:
            seeded.answers[case] = exc
    answer = seeded.answers[case]
    if isinstance(answer, MlflowException):
        raise answer
    return answer


def mlflow_pages(seeded: Seeded, case: Case) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = seeded.client.search_runs([seeded.experiment_id], case.filter_string, case.view,
                                         max_results=PAGE, order_by=list(case.order_by), page_token=token)
        pages.append([run.info.run_id for run in page])
        token = page.token
        if not token:
            return pages


def index_pages(index: RunIndex, experiment_id: str, case: Case) -> tuple[list[list[IndexedRun]], int]:
    pages, offset, totals = [], 0, set()
    while True:
        page = index.page(experiment_id, filter_string=case.filter_string, order_by=case.order_by,
                          offset=offset, limit=PAGE, view=case.view)
        pages.append(page.runs)
        totals.add(page.total)
        if page.next_offset is None:
            assert len(totals) == 1
            return pages, totals.pop()
        offset = page.next_offset


def expected_best(runs: list[IndexedRun], metric: str, direction: str) -> tuple[str, float] | None:
    """The documented rule, computed plainly: best non-NaN value, then earliest start (None as 0), then run id."""
    best: tuple[float, int, str] | None = None
    for run in runs:
        value = run.metrics.get(metric)
        if value is None or math.isnan(value):
            continue
        key = (-value if direction == "max" else value, run.start_time or 0, run.run_id)
        if best is None or key < best:
            best = key
    return None if best is None else (best[2], -best[0] if direction == "max" else best[0])


def matrix_value(value: float | str | None) -> object:
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def assert_matches(index: RunIndex, seeded: Seeded, case: Case, want: list[IndexedRun], pages: bool) -> None:
    experiment_id = seeded.experiment_id
    got_pages, total = index_pages(index, experiment_id, case)
    got = [run for page in got_pages for run in page]
    assert [run.run_id for run in got] == [run.run_id for run in want]
    assert total == len(want)
    assert [comparable(run) for run in got] == [comparable(run) for run in want]
    if pages:
        assert [[run.run_id for run in page] for page in got_pages if page] == [
            page for page in mlflow_pages(seeded, case) if page]

    best = index.best(experiment_id, case.metric, case.direction, filter_string=case.filter_string, view=case.view)
    assert (best and (best.run.run_id, best.value)) == expected_best(want, case.metric, case.direction)

    matrix = index.matrix(experiment_id, METRICS, PARAMS, filter_string=case.filter_string,
                          order_by=case.order_by, view=case.view)
    assert matrix.run_ids == [run.run_id for run in want]
    assert matrix.run_names == [run.run_name for run in want]
    assert matrix.statuses == [run.status for run in want]
    for key in METRICS:
        assert [matrix_value(v) for v in matrix.metrics[key]] == [matrix_value(r.metrics.get(key)) for r in want]
    for key in PARAMS:
        assert matrix.params[key] == [run.params.get(key) for run in want]


# --- tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", range(CASES))
def test_random_filter_and_order_match_mlflow(seeded: Seeded, number: int) -> None:
    case = make_case(number, seeded.observed)
    try:
        want = mlflow_runs(seeded, case)
    except MlflowException:
        with pytest.raises(BadInput):
            seeded.index.page(seeded.experiment_id, filter_string=case.filter_string, order_by=case.order_by)
        return
    assert_matches(seeded.index, seeded, case, want, pages=number % 8 == 0)
    offset, limit = number % 50, 1 + number % 70
    window = seeded.index.page(seeded.experiment_id, filter_string=case.filter_string, order_by=case.order_by,
                               offset=offset, limit=limit, view=case.view)
    assert [run.run_id for run in window.runs] == [run.run_id for run in want[offset:offset + limit]]


def test_generated_cases_are_mostly_valid_and_selective(sqlite_seeded: Seeded) -> None:
    """Guard the generator: most cases must be valid MLflow searches, and match some but not all runs."""
    valid, selective = 0, 0
    active = len(mlflow_runs(sqlite_seeded, Case("", (), ViewType.ACTIVE_ONLY, "accuracy", "max")))
    for number in range(CASES):
        case = make_case(number, sqlite_seeded.observed)
        try:
            found = len(mlflow_runs(sqlite_seeded, case))
        except MlflowException:
            continue
        valid += 1
        selective += 0 < found < active
    assert valid >= 0.9 * CASES
    assert selective >= 0.3 * CASES


def test_unknown_schema_revision_falls_back_to_the_api(sqlite_seeded: Seeded, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at a revision mlscope never verified (as after `mlflow db upgrade` by a newer MLflow, which
    accepts its own head revision: simulated) is read through the API, also when it changes under an open
    index."""
    copy = tmp_path / "copy.db"
    shutil.copyfile(sqlite_seeded.uri.removeprefix("sqlite:///"), copy)
    monkeypatch.setattr(run_index_module, "REVISION_RECHECK_SECONDS", 0.0)
    with RunIndex(f"sqlite:///{copy}") as index:
        assert index.backend == "sql"
        conn = sqlite3.connect(copy)
        with conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (FAKE_REVISION,))
        conn.close()
        monkeypatch.setattr(mlflow_db_utils, "_get_latest_schema_revision", lambda: FAKE_REVISION)
        assert index.backend == "api"
        assert FAKE_REVISION in index.fallback_reason
        for number in range(0, CASES, 6):
            case = make_case(number, sqlite_seeded.observed)
            try:
                want = mlflow_runs(sqlite_seeded, case)
            except MlflowException:
                continue
            assert_matches(index, sqlite_seeded, case, want, pages=number % 24 == 0)


def test_unverified_revisions_are_not_read_with_sql(sqlite_seeded: Seeded) -> None:
    with RunIndex(sqlite_seeded.uri, accepted_revisions=frozenset()) as index:
        assert index.backend == "api"
        case = make_case(3, sqlite_seeded.observed)
        assert_matches(index, sqlite_seeded, case, mlflow_runs(sqlite_seeded, case), pages=True)


def test_the_sql_path_never_writes(sqlite_seeded: Seeded) -> None:
    path = Path(sqlite_seeded.uri.removeprefix("sqlite:///"))
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    with RunIndex(sqlite_seeded.uri) as index:
        experiment_id = index.experiment_id(EXPERIMENT)
        index.page(experiment_id, filter_string="metrics.accuracy > 0.8", order_by=["metrics.f1 DESC"])
        index.best(experiment_id, "accuracy")
        index.matrix(experiment_id, METRICS, PARAMS)
        index.compare(sqlite_seeded.observed.run_ids[:3])
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert not path.with_name(path.name + "-journal").exists()


BAD_FILTERS = [
    "metrics.accuracy >",
    "foo.bar = 1",
    "metrics.accuracy = 'high'",
    "params.lr > '1'",
    "params.lr = 0.1",
    "attributes.start_time LIKE '1%'",
    "metrics.accuracy IS NULL",
    "attributes.nonsense = 'x'",
    "tags.team > 'a'",
]


@pytest.mark.parametrize("bad", BAD_FILTERS)
def test_bad_filter_is_one_line_bad_input(seeded: Seeded, bad: str) -> None:
    with pytest.raises(MlflowException):
        seeded.client.search_runs([seeded.experiment_id], bad)
    for call in (lambda: seeded.index.page(seeded.experiment_id, filter_string=bad),
                 lambda: seeded.index.best(seeded.experiment_id, "accuracy", filter_string=bad),
                 lambda: seeded.index.matrix(seeded.experiment_id, METRICS, filter_string=bad)):
        with pytest.raises(BadInput) as caught:
            call()
        assert caught.value.field == "filter"
        assert "\n" not in caught.value.message and caught.value.message.startswith("bad filter")


@pytest.mark.parametrize("bad", [["metrics.accuracy sideways"], ["foo.accuracy"], ["attributes.nonsense"],
                                 ["metrics.f1", "metrics.f1 DESC"], ["start_time", "attributes.created DESC"]])
def test_bad_order_by_is_bad_input(seeded: Seeded, bad: list[str]) -> None:
    with pytest.raises(MlflowException):
        seeded.client.search_runs([seeded.experiment_id], "", order_by=bad)
    with pytest.raises(BadInput) as caught:
        seeded.index.page(seeded.experiment_id, order_by=bad)
    assert caught.value.field == "order_by"


def test_compare_bundle_equals_get_run(seeded: Seeded) -> None:
    chosen = seeded.observed.run_ids[5:9]
    deleted = mlflow_runs(seeded, Case("", (), ViewType.DELETED_ONLY, "accuracy", "max"))[0].run_id
    bundle = seeded.index.compare([*chosen, deleted])
    want = [from_mlflow(seeded.client.get_run(run_id)) for run_id in [*chosen, deleted]]
    assert [comparable(run) for run in bundle.runs] == [comparable(run) for run in want]
    assert bundle.param_keys == sorted({key for run in want for key in run.params})
    assert bundle.differing_params == [key for key in bundle.param_keys
                                       if len({run.params.get(key) for run in want}) > 1]
    with pytest.raises(NotFound):
        seeded.index.compare([chosen[0], "0" * 32])


def test_experiment_lookup_and_scope(seeded: Seeded) -> None:
    assert seeded.index.experiment_id(EXPERIMENT) == seeded.experiment_id
    with pytest.raises(NotFound):
        seeded.index.experiment_id("no-such-experiment")
    other = seeded.index.experiment_id("other")
    assert seeded.index.page(other).total == len(seeded.client.search_runs([other]))


def test_best_agrees_with_the_overview_rule(seeded: Seeded) -> None:
    """runs.best_run (finished runs only) and the index's best over FINISHED runs pick the same run."""
    rows = list_runs(seeded.client, EXPERIMENT)
    for metric in METRICS:
        for direction in ("max", "min"):
            expected = best_run(rows, metric, direction)
            got = seeded.index.best(seeded.experiment_id, metric, direction,
                                    filter_string="attributes.status = 'FINISHED'")
            assert (got and got.run.run_id) == (expected and expected.run_id)


def expected_counts(runs: list[IndexedRun]) -> MetricCounts:
    """Per metric key, the runs with a non-NaN latest value, all and FINISHED (keys no finished run has are
    left out of the second), counted plainly from MLflow's answer."""
    present: dict[str, int] = {}
    present_finished: dict[str, int] = {}
    for run in runs:
        for key, value in run.metrics.items():
            if not math.isnan(value):
                present[key] = present.get(key, 0) + 1
                if run.status == "FINISHED":
                    present_finished[key] = present_finished.get(key, 0) + 1
    return MetricCounts(runs=len(runs), finished=sum(run.status == "FINISHED" for run in runs), present=present,
                        present_finished=present_finished)


@pytest.mark.parametrize("view", [ViewType.ACTIVE_ONLY, ViewType.ALL, ViewType.DELETED_ONLY])
def test_metric_counts_match_mlflow_over_sql_and_the_api(seeded: Seeded, view: int) -> None:
    """What the default "best by" metric is chosen from: one SQL query, the same numbers through the API."""
    want = expected_counts(mlflow_runs(seeded, Case("", (), view, "accuracy", "max")))
    assert want.runs and want.present and want.present != want.present_finished  # the seeding covers both
    assert seeded.index.metric_counts(seeded.experiment_id, view=view) == want
    with RunIndex(seeded.uri, accepted_revisions=frozenset()) as over_api:
        assert over_api.backend == "api"
        assert over_api.metric_counts(seeded.experiment_id, view=view) == want


# --- nested runs: the tree's levels, child counts, ancestors ---------------------------------------


def parent_in_view(run: IndexedRun, in_view: set[str]) -> str | None:
    """The documented rule: a run's parent is the run its mlflow.parentRunId tag names, if that is another run
    of the experiment in the view."""
    parent = run.tags.get(MLFLOW_PARENT_RUN_ID)
    return parent if parent in in_view and parent != run.run_id else None


def expected_tree(seeded: Seeded, case: Case) -> tuple[list[IndexedRun], dict[str, list[IndexedRun]]]:
    """MLflow's answer for the case split into the top level and each parent's children (same order)."""
    want = mlflow_runs(seeded, case)
    in_view = {run.run_id for run in mlflow_runs(seeded, Case("", (), case.view, "accuracy", "max"))}
    top = [run for run in want if parent_in_view(run, in_view) is None]
    children: dict[str, list[IndexedRun]] = {}
    for run in want:
        parent = run.tags.get(MLFLOW_PARENT_RUN_ID)
        if parent is not None and parent != run.run_id:
            children.setdefault(parent, []).append(run)
    return top, children


def expected_ancestors(seeded: Seeded, view: int, run_id: str) -> list[str]:
    by_id = {run.run_id: run for run in mlflow_runs(seeded, Case("", (), view, "accuracy", "max"))}
    path, parent = [], by_id[run_id].tags.get(MLFLOW_PARENT_RUN_ID)
    while parent in by_id and parent != run_id and parent not in path:
        path.append(parent)
        parent = by_id[parent].tags.get(MLFLOW_PARENT_RUN_ID)
    return path[::-1]


def level_pages(index: RunIndex, experiment_id: str, case: Case, level: TreeLevel) -> list[IndexedRun]:
    found, offset, totals = [], 0, set()
    while True:
        page = index.page(experiment_id, filter_string=case.filter_string, order_by=case.order_by, offset=offset,
                          limit=PAGE, view=case.view, level=level)
        found += page.runs
        totals.add(page.total)
        if page.next_offset is None:
            assert totals == {len(found)}
            return found
        offset = page.next_offset


def assert_tree_matches(index: RunIndex, seeded: Seeded, case: Case, number: int) -> None:
    top, children = expected_tree(seeded, case)
    experiment_id = seeded.experiment_id
    assert [comparable(run) for run in level_pages(index, experiment_id, case, TOP_LEVEL)] == [
        comparable(run) for run in top]
    rng = random.Random(number)
    parents = sorted(children)
    for parent in rng.sample(parents, min(4, len(parents))) + ["0" * 32]:
        got = level_pages(index, experiment_id, case, TreeLevel(parent=parent))
        assert [run.run_id for run in got] == [run.run_id for run in children.get(parent, [])]
    listed = [run.run_id for run in mlflow_runs(seeded, case)]
    counts = index.child_counts(experiment_id, listed + ["0" * 32], filter_string=case.filter_string, view=case.view)
    assert counts == {parent: len(kids) for parent, kids in children.items() if parent in set(listed)}
    for run_id in rng.sample(listed, min(5, len(listed))):
        assert index.ancestors(experiment_id, run_id, view=case.view) == expected_ancestors(seeded, case.view, run_id)


def test_the_seeded_tree_has_chains_orphans_and_loops(sqlite_seeded: Seeded) -> None:
    """Guard the nesting: children, grandchildren, orphans of deleted or foreign parents, a self-parent."""
    case = Case("", (), ViewType.ACTIVE_ONLY, "accuracy", "max")
    runs = mlflow_runs(sqlite_seeded, case)
    in_view = {run.run_id for run in runs}
    top, children = expected_tree(sqlite_seeded, case)
    tagged = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.tags]
    assert 60 < len(tagged) and len(top) < len(runs) - 50
    assert any(run.tags[MLFLOW_PARENT_RUN_ID] in sqlite_seeded.observed.deleted for run in tagged)
    assert any(run in top for run in tagged)  # orphans
    assert max(len(expected_ancestors(sqlite_seeded, case.view, run.run_id)) for run in runs) >= 3
    assert any(run.tags[MLFLOW_PARENT_RUN_ID] == run.run_id for run in tagged)
    assert any(len(kids) > 3 for kids in children.values())
    assert any(parent_in_view(run, in_view) is None and run.tags[MLFLOW_PARENT_RUN_ID] in in_view for run in tagged)


@pytest.mark.parametrize("number", range(0, CASES, 3))
def test_tree_levels_child_counts_and_ancestors_match_mlflow(seeded: Seeded, number: int) -> None:
    """SQL, and MLflow's API behind the same RunIndex, against the rule applied to MLflow's search_runs."""
    case = make_case(number, seeded.observed)
    try:
        mlflow_runs(seeded, case)
    except MlflowException:
        return
    assert_tree_matches(seeded.index, seeded, case, number)
    if number % 9 == 0:
        with RunIndex(seeded.uri, accepted_revisions=frozenset()) as over_api:
            assert over_api.backend == "api"
            assert_tree_matches(over_api, seeded, case, number)


def test_runs_in_a_parent_loop_are_in_no_tree_level(sqlite_seeded: Seeded) -> None:
    """Two runs naming each other as parent have a parent in the view: not top level, each other's child; a
    run naming itself is top level, and never its own child."""
    case = Case("", (), ViewType.ACTIVE_ONLY, "accuracy", "max")
    runs = mlflow_runs(sqlite_seeded, case)
    by_id = {run.run_id: run for run in runs}
    pair = [run.run_id for run in runs if by_id.get(run.tags.get(MLFLOW_PARENT_RUN_ID, "")) is not None
            and by_id[run.tags[MLFLOW_PARENT_RUN_ID]].tags.get(MLFLOW_PARENT_RUN_ID) == run.run_id
            and run.tags[MLFLOW_PARENT_RUN_ID] != run.run_id]
    assert len(pair) == 2
    index, experiment_id = sqlite_seeded.index, sqlite_seeded.experiment_id
    top = {run.run_id for run in level_pages(index, experiment_id, case, TOP_LEVEL)}
    assert not top & set(pair)
    assert pair[1] in [run.run_id for run in level_pages(index, experiment_id, case, TreeLevel(parent=pair[0]))]
    assert index.ancestors(experiment_id, pair[0]) == [pair[1]]
    itself = next(run.run_id for run in runs if run.tags.get(MLFLOW_PARENT_RUN_ID) == run.run_id)
    others = sum(run.tags.get(MLFLOW_PARENT_RUN_ID) == itself and run.run_id != itself for run in runs)
    assert itself in top and index.child_counts(experiment_id, [itself]).get(itself, 0) == others
    assert itself not in [run.run_id for run in level_pages(index, experiment_id, case, TreeLevel(parent=itself))]
    assert index.ancestors(experiment_id, itself) == []


# --- a remote tracking server: the public REST API ------------------------------------------------


@pytest.fixture(scope="module")
def http_seeded(sqlite_seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A real `mlflow server` over the seeded SQLite store; the index reads it through REST."""
    import os
    import subprocess
    import sys
    from tests.live import free_port, wait_for_ok

    port, log = free_port(), tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", sqlite_seeded.uri, "--host",
             "127.0.0.1", "--port", str(port), "--workers", "1",
             "--default-artifact-root", str(tmp_path_factory.mktemp("served-artifacts"))],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_ok(f"{uri}/health", 90):
            pytest.fail(f"mlflow server did not start: {log.read_text()[-1500:]}")
        index = RunIndex(uri, cache_seconds=0)
        yield Seeded(uri, sqlite_seeded.experiment_id, MlflowClient(tracking_uri=uri), index, sqlite_seeded.observed)
        index.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.parametrize("number", range(0, CASES, 4))
def test_a_remote_tracking_server_is_read_through_its_rest_api_with_the_same_answers(
        http_seeded: Seeded, sqlite_seeded: Seeded, number: int) -> None:
    assert http_seeded.index.backend == "api" and "not a SQLite" in http_seeded.index.fallback_reason
    case = make_case(number, http_seeded.observed)
    try:
        want = mlflow_runs(http_seeded, case)
    except MlflowException:
        with pytest.raises(BadInput):
            http_seeded.index.page(http_seeded.experiment_id, filter_string=case.filter_string,
                                   order_by=case.order_by)
        return
    assert_matches(http_seeded.index, http_seeded, case, want, pages=number % 8 == 0)
    over_sql = sqlite_seeded.index.page(sqlite_seeded.experiment_id, filter_string=case.filter_string,
                                        order_by=case.order_by, limit=1000, view=case.view)
    assert [run.run_id for run in over_sql.runs] == [run.run_id for run in want]
    if number % 16 == 0:
        assert_tree_matches(http_seeded.index, http_seeded, case, number)

