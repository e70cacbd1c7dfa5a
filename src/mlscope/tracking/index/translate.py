"""MLflow search syntax to SQL, with MLflow's own parser and the semantics of MLflow's SQL store
(mlflow/store/tracking/sqlalchemy_store.py: `_get_sqlalchemy_filter_clauses`, `_get_orderby_clauses`).

Filters become correlated EXISTS conditions (MLflow inner-joins one subquery per clause; the tables
are unique on (key, run_uuid), so both select the same runs). Order keys become LEFT JOINs on the
(key, run_uuid) primary key instead of MLflow's joined subqueries, which SQLite evaluates as a nested
scan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.search_utils import SearchUtils
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from mlscope.errors import BadInput
from mlscope.tracking.index.schema import ATTRIBUTE_COLUMNS, latest_metrics, params, runs, tags

if TYPE_CHECKING:
    from mlscope.tracking.index.boolean_filter import Expression

Clause = dict[str, Any]
Filter: TypeAlias = "list[Clause] | Expression"  # MLflow's AND-ed clauses, or a boolean expression (boolean_filter.py)


class NeedsApi(Exception):
    """A filter this module does not translate (dataset clauses): answer through MLflow's API."""


@dataclass(frozen=True)
class Ordering:
    """ORDER BY terms and the LEFT JOINs they need."""

    joins: list[tuple[FromClause, ColumnElement[bool]]]
    terms: list[ColumnElement[Any]]

    def apply(self, source: FromClause) -> FromClause:
        for table, on in self.joins:
            source = source.outerjoin(table, on)
        return source


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_filter(filter_string: str) -> list[Clause]:
    """MLflow's parse of a search filter; a bad filter is BadInput(field='filter')."""
    try:
        parsed = SearchUtils.parse_search_filter(filter_string)
        for clause in parsed:
            _validate_clause(clause)
        return parsed
    except MlflowException as exc:
        raise BadInput(f"bad filter: {one_line(exc)}", field="filter") from None
    except Exception as exc:  # noqa: BLE001 - sqlparse and MLflow's tokenizer raise plain errors on odd input
        raise BadInput(f"bad filter: cannot parse {filter_string!r} ({one_line(exc)})", field="filter") from None


def _validate_clause(clause: Clause) -> None:
    """The checks MLflow's SQL store makes after parsing (comparators allowed per key type)."""
    kind, key = clause["type"], SearchUtils.translate_key_alias(clause["key"])
    comparator = clause["comparator"].upper()
    if SearchUtils.is_string_attribute(kind, key, comparator):
        return
    if SearchUtils.is_numeric_attribute(kind, key, comparator):
        return
    if not (SearchUtils.is_metric(kind, comparator) or SearchUtils.is_param(kind, comparator)
            or SearchUtils.is_tag(kind, comparator) or SearchUtils.is_dataset(kind, comparator)):
        raise MlflowException(f"Invalid search expression type '{kind}'")


def parse_order_by(order_by: Sequence[str]) -> list[tuple[str, str, bool]]:
    """(key type, key, ascending) per clause, as MLflow parses them; duplicates are BadInput."""
    parsed: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for text in order_by:
        try:
            kind, key, ascending = SearchUtils.parse_order_by_for_search_runs(text)
        except MlflowException as exc:
            raise BadInput(f"bad order_by: {one_line(exc)}", field="order_by") from None
        except Exception as exc:  # noqa: BLE001 - as in parse_filter
            raise BadInput(f"bad order_by: cannot parse {text!r} ({one_line(exc)})", field="order_by") from None
        key = SearchUtils.translate_key_alias(key)
        if kind not in (SearchUtils._ATTRIBUTE_IDENTIFIER, SearchUtils._METRIC_IDENTIFIER,
                        SearchUtils._PARAM_IDENTIFIER, SearchUtils._TAG_IDENTIFIER):
            raise BadInput(f"bad order_by: invalid identifier type '{kind}'", field="order_by")
        if (kind, key) in seen:
            raise BadInput(f"bad order_by: duplicate key {text!r}", field="order_by")
        seen.add((kind, key))
        parsed.append((kind, key, ascending))
    return parsed


def has_dataset_clause(parsed: Filter) -> bool:
    clauses = parsed if isinstance(parsed, list) else parsed.clauses()
    return any(clause["type"] == SearchUtils._DATASET_IDENTIFIER for clause in clauses)


def filter_conditions(parsed: Filter, dialect: str) -> list[ColumnElement[bool]]:
    """One SQL condition on `runs` per parsed clause; one for a boolean expression."""
    if isinstance(parsed, list):
        return [_condition(clause, dialect) for clause in parsed]
    return [parsed.fold(lambda leaf: _definite(leaf.clause, dialect), lambda items: sa.and_(*items),
                        lambda items: sa.or_(*items), sa.not_)]


def _definite(clause: Clause, dialect: str) -> ColumnElement[bool]:
    """The clause's condition, false instead of NULL where it compares a nullable runs column (end_time of
    a running run, ...), so that NOT of it is the complement (in SQL, NOT NULL is NULL: no match)."""
    condition = _condition(clause, dialect)
    key = SearchUtils.translate_key_alias(clause["key"])
    if clause["type"] == SearchUtils._ATTRIBUTE_IDENTIFIER and key != "run_name":
        return sa.and_(runs.c[ATTRIBUTE_COLUMNS.get(key, key)].is_not(None), condition)
    return condition


def _condition(clause: Clause, dialect: str) -> ColumnElement[bool]:
    kind = clause["type"]
    key = SearchUtils.translate_key_alias(clause["key"])
    comparator = clause["comparator"].upper()
    value = clause["value"]
    compare = SearchUtils.get_sql_comparison_func(comparator, dialect)
    if kind == SearchUtils._ATTRIBUTE_IDENTIFIER:
        if key == "run_name":  # MLflow compares the mlflow.runName tag, not runs.name
            tag = tags.alias()
            return _exists(tag, tag.c.key == MLFLOW_RUN_NAME, compare(tag.c.value, value))
        return compare(runs.c[ATTRIBUTE_COLUMNS.get(key, key)], value)
    if kind == SearchUtils._DATASET_IDENTIFIER:
        raise NeedsApi("dataset clauses are answered through MLflow's API")
    table = {SearchUtils._METRIC_IDENTIFIER: latest_metrics, SearchUtils._PARAM_IDENTIFIER: params,
             SearchUtils._TAG_IDENTIFIER: tags}[kind].alias()
    if comparator in ("IS NULL", "IS NOT NULL"):
        present = _exists(table, table.c.key == key)
        return ~present if comparator == "IS NULL" else present
    if kind != SearchUtils._METRIC_IDENTIFIER:
        return _exists(table, table.c.key == key, compare(table.c.value, value))
    matches = compare(table.c.value, float(value))
    # NaN is stored as value 0 with is_nan: it satisfies only "!=".
    if comparator == "!=":
        matches = sa.or_(matches, table.c.is_nan == sa.true())
    else:
        matches = sa.and_(matches, table.c.is_nan == sa.false())
    return _exists(table, table.c.key == key, matches)


def _exists(table: FromClause, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return sa.exists().where(table.c.run_uuid == runs.c.run_uuid, *conditions)


def ordering(order_by: Sequence[str]) -> Ordering:
    """MLflow's order: per key, present values first (then, for metrics, NaN, then missing) whatever
    the direction, then the value; then start_time DESC unless ordered by it; then run_uuid ASC."""
    joins: list[tuple[FromClause, ColumnElement[bool]]] = []
    terms: list[ColumnElement[Any]] = []
    keys = parse_order_by(order_by)
    for number, (kind, key, ascending) in enumerate(keys):
        if kind == SearchUtils._ATTRIBUTE_IDENTIFIER:
            value = runs.c[ATTRIBUTE_COLUMNS.get(key, key)]
            rank = sa.case((value.is_(None), 1), else_=0)
        else:
            table = {SearchUtils._METRIC_IDENTIFIER: latest_metrics, SearchUtils._PARAM_IDENTIFIER: params,
                     SearchUtils._TAG_IDENTIFIER: tags}[kind].alias(f"order_{number}")
            joins.append((table, sa.and_(table.c.run_uuid == runs.c.run_uuid, table.c.key == key)))
            value = table.c.value
            if kind == SearchUtils._METRIC_IDENTIFIER:
                rank = sa.case((table.c.is_nan == sa.true(), 1), (value.is_(None), 2), else_=0)
            else:
                rank = sa.case((value.is_(None), 1), else_=0)
        terms += [rank, value if ascending else value.desc()]
    if (SearchUtils._ATTRIBUTE_IDENTIFIER, "start_time") not in {(kind, key) for kind, key, _ in keys}:
        terms.append(runs.c.start_time.desc())
    terms.append(runs.c.run_uuid)
    return Ordering(joins, terms)
