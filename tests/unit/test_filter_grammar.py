"""The boolean filter grammar: precedence, sugar, plain MLflow filters left alone, one-line errors, and the
id-set evaluation of the API path (hypothesis: random trees rendered, parsed and evaluated)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlscope.errors import BadInput
from mlscope.tracking.index.boolean_filter import (And, Leaf, Node, Not, Or, leaves, matching_ids, parse,
                                                   uses_extensions)

# Valid MLflow clauses, several with keywords, parentheses or operators inside quotes and backticks.
CLAUSES = [
    "metrics.accuracy > 0.8",
    "metrics.`log loss` <= -1e-3",
    'metrics."f1 (macro)">=0.5',
    "params.model_type = 'a OR b'",
    "params.`and` != 'NOT (x)'",
    "params.p='x'",
    "params.lr IS NOT NULL",
    "tags.`my (tag)` LIKE '%(x)%'",
    "tags.mlflow.runName ilike 'BETWEEN 1 AND 2'",
    "attributes.run_id IN ('a', 'b')",
    "run_id not in ('c')",
    "attributes.status = 'FINISHED'",
    "run_name LIKE 'it''s%'",
    "attributes.start_time >= 1700000000000",
    "datasets.name = 'train'",
]


def _flat(node: Node) -> object:
    """A comparable shape: leaves by text, nested ANDs (ORs) merged into their parent AND (OR)."""
    if isinstance(node, Leaf):
        return node.text
    if isinstance(node, Not):
        return ("not", _flat(node.item))
    kind = "and" if isinstance(node, And) else "or"
    items: list[object] = []
    for item in node.items:
        shape = _flat(item)
        items.extend(shape[1] if isinstance(shape, tuple) and shape[0] == kind else [shape])  # type: ignore[index]
    return (kind, items)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> tuple[str, int, object]:
    """(text, precedence: 0 OR, 1 AND, 2 NOT or clause, shape)."""
    kind = draw(st.sampled_from(["leaf"] * 3 + ["not", "and", "or"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        text = draw(st.sampled_from(CLAUSES))
        return text, 2, text
    if kind == "not":
        text, level, shape = draw(trees(depth + 1))
        keyword = draw(st.sampled_from(["NOT", "not", "Not"]))
        return f"{keyword} {_paren(draw, text, level, 2)}", 2, ("not", shape)
    parts = draw(st.lists(trees(depth + 1), min_size=2, max_size=3))
    level = 1 if kind == "and" else 0
    keyword = draw(st.sampled_from([kind.upper(), kind, kind.capitalize()]))
    text = f" {keyword} ".join(_paren(draw, part_text, part_level, level) for part_text, part_level, _ in parts)
    items: list[object] = []
    for _, _, shape in parts:
        items.extend(shape[1] if isinstance(shape, tuple) and shape[0] == kind else [shape])  # type: ignore[index]
    return text, level, (kind, items)


def _paren(draw: st.DrawFn, text: str, level: int, needed: int) -> str:
    return f"({text})" if level < needed or draw(st.booleans()) else text


@settings(max_examples=150, deadline=None)
@given(trees())
def test_rendered_trees_parse_back_with_the_usual_precedence(tree: tuple[str, int, object]) -> None:
    text, _, shape = tree
    expression = parse(text)
    if expression is None:  # a lone clause or an AND of clauses: MLflow's own syntax
        assert shape == text or (shape[0] == "and" and all(isinstance(item, str) for item in shape[1]))  # type: ignore[index]
        return
    assert _flat(expression.root) == shape


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(CLAUSES), min_size=1, max_size=4), st.sampled_from([" AND ", " and ", " And "]))
def test_plain_mlflow_filters_are_left_to_mlflow(clauses: list[str], joiner: str) -> None:
    assert not uses_extensions(joiner.join(clauses))
    assert parse(joiner.join(clauses)) is None


@pytest.mark.parametrize("text", [
    "", "metrics.accuracy >>> 1", "foo.bar = 1", "metrics.a > 1; metrics.b > 2", "params.p = 'unterminated",
    "attributes.run_id IN ('a') AND attributes.run_id NOT IN ('b')", "datasets.digest IN ('x')",
    "params.or = 'x'", "tags.`a OR b` = 'c'", "params.p = 'x (y)'",
])
def test_what_mlflow_parses_or_rejects_itself_is_not_an_extension(text: str) -> None:
    assert parse(text) is None


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    a, b, c = "metrics.a > 1", "params.b = 'x'", "tags.c = 'y'"
    assert _flat(parse(f"{a} OR {b} AND {c}").root) == ("or", [a, ("and", [b, c])])  # type: ignore[union-attr]
    assert _flat(parse(f"({a} or {b}) and {c}").root) == ("and", [("or", [a, b]), c])  # type: ignore[union-attr]
    assert _flat(parse(f"NOT {a} AND {b}").root) == ("and", [("not", a), b])  # type: ignore[union-attr]
    assert _flat(parse(f"not ({a} AND {b})").root) == ("not", ("and", [a, b]))  # type: ignore[union-attr]
    assert _flat(parse(f"({a})").root) == a  # type: ignore[union-attr]


def test_between_and_in_are_mlflow_clauses() -> None:
    def shape(text: str) -> object:
        expression = parse(text)
        assert expression is not None
        return _flat(expression.root)

    assert shape("metrics.f1 BETWEEN 0.5 AND 0.9") == ("and", ["metrics.f1 >= 0.5", "metrics.f1 <= 0.9"])
    assert shape("metrics.f1 not between 0.5 and 0.9") == ("or", ["metrics.f1 < 0.5", "metrics.f1 > 0.9"])
    assert shape("created BETWEEN 1 AND 2") == ("and", ["created >= 1", "created <= 2"])
    assert shape("params.m IN ('svm', \"rf\")") == ("or", ["params.m = 'svm'", 'params.m = "rf"'])
    assert shape("params.`m` NOT IN ('svm','rf')") == ("and", ["params.`m` != 'svm'", "params.`m` != 'rf'"])
    assert shape("metrics.loss in (0.1)") == "metrics.loss = 0.1"
    assert shape("attributes.status IN ('FAILED')") == "attributes.status = 'FAILED'"
    # MLflow's own IN stays one clause with MLflow's semantics
    expression = parse("attributes.run_id IN ('a', 'b') OR metrics.f1 BETWEEN 0 AND 1")
    assert expression is not None and expression.clauses()[0] == {
        "type": "attribute", "key": "run_id", "comparator": "IN", "value": ("a", "b")}
    # the clause between AND's is MLflow's parse, quoting included
    assert leaves(parse("metrics.`a b` > 1 or params.\"x y\" = 'it''s'").root)[1].clause == {  # type: ignore[union-attr]
        "type": "parameter", "key": "x y", "comparator": "=", "value": "it''s"}


@pytest.mark.parametrize(("text", "message"), [
    ("metrics.a > 1 OR (metrics.b > 2", "unbalanced parenthesis: '(' at position 18 is never closed"),
    ("(metrics.a > 1))", "unbalanced parenthesis: ')' at position 16 has no matching '('"),
    ("metrics.a > 1)", "unbalanced parenthesis: ')' at position 14 has no matching '('"),
    ("metrics.a >>> 1 OR metrics.b > 2", "unknown operator '>>>' at position 11"),
    ("metrics.a RLIKE 'x' or metrics.b > 1", "unknown operator 'RLIKE' at position 11"),
    ("metrics.a BETWEEN 1 OR metrics.b > 2", "BETWEEN at position 11 needs AND between its bounds"),
    ("metrics.a BETWEEN 1 AND", "expected a value after 'AND' at position 21, got the end"),
    ("params.lr BETWEEN '1' AND '2'", "BETWEEN at position 11 compares numbers"),
    ("params.p IN ()", "empty IN list at position 13"),
    ("params.p IN ('a',)", "expected a value after ',' at position 17, got ')'"),
    ("params.p IN ('a' 'b')", "expected ',' or ')' in the IN list at position 18"),
    ("params.p IN 'a'", "IN at position 10 needs a parenthesised list"),
    ("metrics.a > 1 OR", "expected a clause after 'OR' at position 15"),
    ("OR metrics.a > 1", "expected a clause at position 1, got 'OR'"),
    ("metrics.a > 1 OR metrics.b", "'metrics.b' at position 18 needs an operator and a value"),
    ("metrics.a > 1 foo OR metrics.b > 2", "expected AND or OR at position 15, got 'foo'"),
    ("()", "empty parentheses at position 1"),
    ("metrics.a > 1 OR params.p = 'abc", "unterminated quote ' at position 29"),
    ("params.p NOT LIKE 'x' OR metrics.a > 1", "expected IN or BETWEEN after NOT at position 14"),
    ("params.p IS 'x' OR metrics.a > 1", "expected NULL or NOT NULL after IS at position 10"),
    ("params.p = 'x' OR params.q > 1", "Expected a quoted string value for parameter"),
    ("params.p = 'x' OR metrics.q IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
    ("foo.bar = 1 OR metrics.a > 1", "Invalid entity type 'foo'"),
    ("metrics.a IN ('x') OR metrics.b > 1", "Expected numeric value type for metric"),
    ("(" * 80 + "metrics.a > 1" + ")" * 80, "more than 64 nested parentheses or NOTs"),
    (" OR ".join(["metrics.a > 1"] * 1001), "more than 1000 clauses"),
])
def test_bad_filters_are_one_line_bad_input_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse(text)
    assert caught.value.field == "filter"
    assert caught.value.message.startswith("bad filter: ") and message in caught.value.message
    assert "\n" not in caught.value.message


# --- the API path's evaluation over id sets ---------------------------------------------------------

IDS = [f"run{number}" for number in range(12)]


@st.composite
def labelled(draw: st.DrawFn, depth: int = 0) -> Node:
    kind = draw(st.sampled_from(["leaf"] * 2 + ["not", "and", "or"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        return Leaf(draw(st.sampled_from(["a", "b", "c", "d"])), {})
    if kind == "not":
        return Not(draw(labelled(depth + 1)))
    items = tuple(draw(st.lists(labelled(depth + 1), min_size=2, max_size=3)))
    return And(items) if kind == "and" else Or(items)


@settings(max_examples=300, deadline=None)
@given(labelled(), st.fixed_dictionaries({key: st.frozensets(st.sampled_from(IDS)) for key in "abcd"}),
       st.frozensets(st.sampled_from(IDS)))
def test_id_set_evaluation_equals_the_boolean_expression(node: Node, sets: dict[str, frozenset[str]],
                                                         universe: frozenset[str]) -> None:
    searches: list[list[str]] = []

    def search(found: list[Leaf]) -> set[str]:  # one MLflow search: all its clauses, within the universe
        searches.append([leaf.text for leaf in found])
        return set(universe).intersection(*(sets[leaf.text] for leaf in found))

    want = node.fold(lambda leaf: set(universe) & sets[leaf.text], lambda parts: set.intersection(*parts),
                     lambda parts: set.union(*parts), lambda part: set(universe) - part)
    assert matching_ids(node, universe, search) == want
    assert all(found for found in searches)
