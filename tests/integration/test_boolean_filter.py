"""Filters with OR, NOT, parentheses, BETWEEN and IN give the answers of their MLflow clauses combined:
seeded random expressions over the run-index store (tests/integration/test_run_index.py), checked on the
SQL path (SQLite, and PostgreSQL with the `postgres` marker) and on the API path (MLflow's client over an
unverified store, and a real `mlflow server`) against an oracle that asks MLflow's search_runs for each
clause alone and combines the run-id sets by the generated structure."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from mlscope.errors import BadInput
from mlscope.tracking.index import IndexedRun, RunIndex
from mlscope.tracking.index.boolean_filter import uses_extensions
from tests.integration.test_run_index import (  # noqa: F401 - fixtures are used by name
    METRICS,
    MODEL_TYPES,
    NAMES,
    ORDER_KEYS,
    SEED,
    STAGES,
    TEAMS,
    Case,
    Observed,
    Seeded,
    _clause,
    assert_matches,
    http_seeded,
    mlflow_runs,
    pg_database,
    postgres_seeded,
    seeded,
    sqlite_seeded,
)

CASES = 80
LRS = ["0.1", "0.01", "1e-3", "10", "0.10"]


# --- expressions with their meaning ----------------------------------------------------------------
# A meaning is ("search", filter) answered by one search_runs, or ("and" | "or", [meanings]), or
# ("not", meaning). Text precedence: 0 an OR, 1 an AND, 2 a NOT or a clause.

Meaning = tuple[object, ...]


@dataclass(frozen=True)
class Generated:
    text: str
    level: int
    meaning: Meaning


def _keyword(rng: random.Random, word: str) -> str:
    return rng.choice([word, word.lower(), word.capitalize()])


def _quoted(value: str) -> str:
    return f"'{value}'"


def _between(rng: random.Random, observed: Observed) -> Generated:
    if rng.random() < 0.7:
        key = rng.choice([*METRICS, "absent"])
        identifier = rng.choice([f"metrics.{key}", f"metric.`{key}`"])
        seen = observed.metrics.get(key, [0.5])
        low, high = sorted([rng.choice(seen), rng.choice(seen)])
    else:
        identifier, values = rng.choice([("attributes.start_time", observed.start_times),
                                         ("attributes.end_time", observed.end_times), ("created", observed.start_times)])
        low, high = sorted([rng.choice(values), rng.choice(values)])
    if rng.random() < 0.1:
        low, high = high, low
    if rng.random() < 0.25:
        text = f"{identifier} {_keyword(rng, 'NOT')} {_keyword(rng, 'BETWEEN')} {low!r} {_keyword(rng, 'AND')} {high!r}"
        meaning: Meaning = ("or", [("search", f"{identifier} < {low!r}"), ("search", f"{identifier} > {high!r}")])
        return Generated(text, 2, meaning)
    text = f"{identifier} {_keyword(rng, 'BETWEEN')} {low!r} {_keyword(rng, 'AND')} {high!r}"
    return Generated(text, 2, ("search", f"{identifier} >= {low!r} AND {identifier} <= {high!r}"))


def _in(rng: random.Random, observed: Observed) -> Generated:
    roll = rng.random()
    if roll < 0.4:
        key, pool = rng.choice([("model_type", MODEL_TYPES), ("lr", LRS), ("depth", ["3", "10", "None"]),
                                ("absent", ["x"])])
        identifier = rng.choice([f"params.{key}", f"param.`{key}`"])
        values = [_quoted(value) for value in rng.sample(pool, min(len(pool), rng.randrange(1, 4)))]
    elif roll < 0.65:
        key = rng.choice(METRICS)
        identifier = f"metrics.{key}"
        values = [repr(value) for value in rng.sample(observed.metrics[key], rng.randrange(1, 5))]
    elif roll < 0.8:
        identifier, pool = rng.choice([("tags.team", TEAMS), ("tags.stage", STAGES)])
        values = [_quoted(value) for value in rng.sample(pool, rng.randrange(1, 3))]
    else:
        identifier, pool = rng.choice([("attributes.status", ["FINISHED", "FAILED", "RUNNING", "KILLED"]),
                                       ("attributes.run_name", NAMES)])
        values = [_quoted(value) for value in rng.sample(pool, rng.randrange(1, 3))]
    if rng.random() < 0.05:
        values.append("7" if identifier.startswith(("params", "tags", "attributes")) else "'seven'")  # invalid
    negated = rng.random() < 0.3
    keyword = f"{_keyword(rng, 'NOT')} {_keyword(rng, 'IN')}" if negated else _keyword(rng, "IN")
    text = f"{identifier} {keyword} ({', '.join(values)})"
    comparator, combine = ("!=", "and") if negated else ("=", "or")
    return Generated(text, 2, (combine, [("search", f"{identifier} {comparator} {value}") for value in values]))


def _atom(rng: random.Random, observed: Observed) -> Generated:
    roll = rng.random()
    if roll < 0.15:
        return _between(rng, observed)
    if roll < 0.3:
        return _in(rng, observed)
    text = _clause(rng, observed)
    return Generated(text, 2, ("search", text))


def _wrapped(rng: random.Random, part: Generated, level: int) -> str:
    """The part's text, parenthesised where precedence needs it (and sometimes where it does not)."""
    return f"({part.text})" if part.level < level or rng.random() < 0.12 else part.text


def generate(rng: random.Random, observed: Observed, depth: int = 0) -> Generated:
    roll = rng.random()
    if depth >= 3 or roll < 0.35:
        return _atom(rng, observed)
    if roll < 0.5:
        item = generate(rng, observed, depth + 1)
        return Generated(f"{_keyword(rng, 'NOT')} {_wrapped(rng, item, 2)}", 2, ("not", item.meaning))
    kind, level = ("and", 1) if roll < 0.75 else ("or", 0)
    items = [generate(rng, observed, depth + 1) for _ in range(rng.choice([2, 2, 3]))]
    joiner = f" {_keyword(rng, kind.upper())} "
    return Generated(joiner.join(_wrapped(rng, item, level) for item in items), level,
                     (kind, [item.meaning for item in items]))


def make_case(number: int, observed: Observed) -> tuple[Case, Meaning]:
    rng = random.Random(SEED * 7 + number)
    expression = generate(rng, observed)
    keys = rng.sample([key for key in ORDER_KEYS if "." in key], rng.choice([0, 1, 1, 2]))  # no alias pairs
    order_by = tuple(key + rng.choice(["", " ASC", " DESC"]) for key in keys)
    view = rng.choices([ViewType.ACTIVE_ONLY, ViewType.ALL, ViewType.DELETED_ONLY], weights=[8, 1, 1])[0]
    case = Case(filter_string=expression.text, order_by=order_by, view=view, metric=rng.choice(METRICS),
                direction=rng.choice(["max", "min"]))
    return case, expression.meaning


# --- the oracle ------------------------------------------------------------------------------------

_searches: dict[tuple[str, str, int], frozenset[str] | MlflowException] = {}


def searched(seeded: Seeded, query: str, view: int) -> frozenset[str]:
    """Run ids MLflow's search_runs gives for one plain filter (remembered per store)."""
    key = (seeded.uri, query, view)
    if key not in _searches:
        try:
            found = seeded.client.search_runs([seeded.experiment_id], query, view, max_results=50_000)
            _searches[key] = frozenset(run.info.run_id for run in found)
        except MlflowException as exc:
            _searches[key] = exc
    answer = _searches[key]
    if isinstance(answer, MlflowException):
        raise answer
    return answer


def oracle_ids(seeded: Seeded, meaning: Meaning, view: int) -> frozenset[str]:
    kind = meaning[0]
    if kind == "search":
        return searched(seeded, str(meaning[1]), view)
    if kind == "not":
        return searched(seeded, "", view) - oracle_ids(seeded, meaning[1], view)  # type: ignore[arg-type]
    parts = [oracle_ids(seeded, part, view) for part in meaning[1]]  # type: ignore[attr-defined]
    return frozenset.intersection(*parts) if kind == "and" else frozenset.union(*parts)


def oracle(seeded: Seeded, case: Case, meaning: Meaning) -> list[IndexedRun]:
    """Every matching run (full data) in the case's order: MLflow's ordered unfiltered answer, kept to the ids."""
    chosen = oracle_ids(seeded, meaning, case.view)
    ordered = mlflow_runs(seeded, replace(case, filter_string="", metric="", direction=""))
    return [run for run in ordered if run.run_id in chosen]


def check_case(index: RunIndex, seeded: Seeded, number: int) -> None:
    case, meaning = make_case(number, seeded.observed)
    try:
        want = oracle(seeded, case, meaning)
    except MlflowException:
        with pytest.raises(BadInput) as caught:
            index.page(seeded.experiment_id, filter_string=case.filter_string, order_by=case.order_by, view=case.view)
        assert caught.value.field == "filter" and caught.value.message.startswith("bad filter")
        return
    assert_matches(index, seeded, case, want, pages=False)
    offset, limit = number % 40, 1 + number % 60
    window = index.page(seeded.experiment_id, filter_string=case.filter_string, order_by=case.order_by,
                        offset=offset, limit=limit, view=case.view)
    assert [run.run_id for run in window.runs] == [run.run_id for run in want[offset:offset + limit]]
    assert window.total == len(want)


# --- tests -----------------------------------------------------------------------------------------


# Every third generated case per store (the generator guard below checks all 80 for coverage): the oracle
# makes many MLflow searches per case, and the whole file must stay a small part of the suite.
@pytest.mark.parametrize("number", range(0, CASES, 3))
def test_random_expressions_match_their_clauses_combined(seeded: Seeded, number: int) -> None:
    assert seeded.index.backend == "sql"
    check_case(seeded.index, seeded, number)


@pytest.fixture(scope="module")
def api_index(sqlite_seeded: Seeded) -> Iterator[RunIndex]:
    with RunIndex(sqlite_seeded.uri, cache_seconds=0, accepted_revisions=frozenset()) as index:
        assert index.backend == "api"
        yield index


@pytest.mark.parametrize("number", range(0, CASES, 8))
def test_the_api_path_gives_the_same_answers(api_index: RunIndex, sqlite_seeded: Seeded, number: int) -> None:
    check_case(api_index, sqlite_seeded, number)


@pytest.mark.parametrize("number", range(1, CASES, 40))
def test_a_remote_tracking_server_gives_the_same_answers(http_seeded: Seeded, number: int) -> None:
    assert http_seeded.index.backend == "api"
    check_case(http_seeded.index, http_seeded, number)


def test_generated_expressions_are_mostly_valid_selective_and_extended(sqlite_seeded: Seeded) -> None:
    """Guard the generator: most expressions use the extensions, are valid, and match some but not all runs."""
    everything = len(searched(sqlite_seeded, "", ViewType.ACTIVE_ONLY))
    valid = selective = extended = 0
    texts = []
    for number in range(CASES):
        case, meaning = make_case(number, sqlite_seeded.observed)
        texts.append(case.filter_string.upper())
        extended += uses_extensions(case.filter_string)
        try:
            found = len(oracle_ids(sqlite_seeded, meaning, ViewType.ACTIVE_ONLY))
        except MlflowException:
            continue
        valid += 1
        selective += 0 < found < everything
    assert extended >= 0.75 * CASES and valid >= 0.8 * CASES and selective >= 0.4 * CASES
    for construct in (" OR ", "NOT ", "(", " BETWEEN ", " NOT BETWEEN ", " IN (", " NOT IN (", "RUN_ID IN"):
        assert sum(construct in text for text in texts) >= 3, construct


# Filters MLflow's search_runs rejects, with what they mean in MLflow searches.
BEYOND_MLFLOW = [
    ("metrics.accuracy > 0.9 or metrics.f1 >= 0.9",
     ("or", [("search", "metrics.accuracy > 0.9"), ("search", "metrics.f1 >= 0.9")])),
    ("attributes.status IN ('FAILED', 'KILLED')",
     ("or", [("search", "attributes.status = 'FAILED'"), ("search", "attributes.status = 'KILLED'")])),
    ("params.lr = '0.1' and (metrics.f1 > 0.6)",
     ("and", [("search", "params.lr = '0.1'"), ("search", "metrics.f1 > 0.6")])),
    ("metrics.roc_auc BETWEEN 0.6 AND 0.8", ("search", "metrics.roc_auc >= 0.6 and metrics.roc_auc <= 0.8")),
    ("params.model_type IN ('svm', 'rf')",
     ("or", [("search", "params.model_type = 'svm'"), ("search", "params.model_type = 'rf'")])),
    ("metrics.f1 IN (0.5, 1.0)", ("or", [("search", "metrics.f1 = 0.5"), ("search", "metrics.f1 = 1.0")])),
    # NOT is the complement: runs without the key match, unlike !=
    ("NOT params.lr = '0.1'", ("not", ("search", "params.lr = '0.1'"))),
    # end_time is NULL for running runs: NOT of a comparison with it still matches them
    ("NOT attributes.end_time > 0", ("not", ("search", "attributes.end_time > 0"))),
    ("NOT (tags.team = 'alpha' OR metrics.loss < 0.5) AND attributes.status != 'FAILED'",
     ("and", [("not", ("or", [("search", "tags.team = 'alpha'"), ("search", "metrics.loss < 0.5")])),
              ("search", "attributes.status != 'FAILED'")])),
]


@pytest.mark.parametrize(("text", "meaning"), BEYOND_MLFLOW)
def test_filters_mlflow_rejects_are_answered(seeded: Seeded, text: str, meaning: Meaning) -> None:
    with pytest.raises(MlflowException):
        seeded.client.search_runs([seeded.experiment_id], text)
    case = Case(text, ("metrics.accuracy DESC",), ViewType.ACTIVE_ONLY, "roc_auc", "max")
    want = oracle(seeded, case, meaning)
    assert 0 < len(want) < len(searched(seeded, "", ViewType.ACTIVE_ONLY))
    assert_matches(seeded.index, seeded, case, want, pages=False)


def test_not_differs_from_not_equal_by_the_runs_without_the_key(seeded: Seeded) -> None:
    without_lr = {run.run_id for run in mlflow_runs(seeded, Case("", (), ViewType.ACTIVE_ONLY, "f1", "max"))
                  if "lr" not in run.params}
    assert without_lr
    negated = seeded.index.page(seeded.experiment_id, filter_string="NOT params.lr = '0.1'", limit=1000)
    unequal = seeded.index.page(seeded.experiment_id, filter_string="params.lr != '0.1'", limit=1000)
    assert {run.run_id for run in negated.runs} - {run.run_id for run in unequal.runs} == without_lr


def test_running_runs_match_not_of_an_end_time_comparison(seeded: Seeded) -> None:
    running = searched(seeded, "attributes.status = 'RUNNING'", ViewType.ACTIVE_ONLY)
    assert running
    found = seeded.index.page(seeded.experiment_id, filter_string="NOT attributes.end_time > 0", limit=1000)
    assert running <= {run.run_id for run in found.runs}
