"""OR, NOT, parentheses, BETWEEN and IN on top of MLflow's run filter syntax.

    metrics.accuracy > 0.8 AND (params.model_type = 'svm' OR params.model_type IN ('rf', 'xgb'))
    metrics.roc_auc BETWEEN 0.8 AND 0.9 OR NOT tags.stage = 'prod'

A filter is a boolean expression of MLflow comparison clauses joined by AND and OR (AND binds tighter),
NOT and parentheses; keywords are case-insensitive. Each clause is parsed and checked by MLflow's own
parser (`SearchUtils`), so quoting, backticks, key prefixes, LIKE/ILIKE and "a run without the key does
not match" stay MLflow's. Sugar, rewritten into MLflow clauses:

- `x BETWEEN a AND b` is `x >= a AND x <= b` (metrics, start_time, end_time); `x NOT BETWEEN a AND b` is
  `x < a OR x > b` (so NaN and missing values match neither).
- `x IN (v1, v2)` is `x = v1 OR x = v2`; `x NOT IN (v1, v2)` is `x != v1 AND x != v2` (params, metrics,
  tags, attributes). `attributes.run_id` and `datasets.*` keep MLflow's own IN / NOT IN.
- `NOT e` matches exactly the runs searched (experiment and lifecycle view) that `e` does not match:
  `NOT params.lr = '0.1'` also matches runs without `lr`, while `params.lr != '0.1'` does not.

A filter that uses none of this (`uses_extensions` is False) is MLflow's syntax and is left to MLflow's
parser unchanged, error messages included."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.utils.search_utils import SearchUtils

from mlscope.errors import BadInput
from mlscope.tracking.index.translate import Clause, one_line, parse_filter

T = TypeVar("T")
MAX_CLAUSES = 1000
MAX_DEPTH = 64
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "LIKE", "ILIKE"})
_COMPARATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
# The lexical classes of sqlparse, which MLflow's parser uses: quotes double themselves or take a backslash.
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:''|\\'|[^'])*'|"(?:""|\\"|[^"])*"|`(?:``|[^`])*`)
  | (?P<unterminated>['"`])
  | (?P<punctuation>[(),])
  | (?P<operator>[=<>!]+)
  | (?P<word>[^\s'"`(),=<>!]+)
""", re.VERBOSE)


# --- the expression tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One MLflow comparison clause: `text` is it as an MLflow filter of its own, `clause` MLflow's parse."""

    text: str
    clause: Clause

    def fold(self, leaf: Callable[[Leaf], T], all_of: Callable[[list[T]], T], any_of: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
        return leaf(self)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]

    def fold(self, leaf: Callable[[Leaf], T], all_of: Callable[[list[T]], T], any_of: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
        return all_of([item.fold(leaf, all_of, any_of, negate) for item in self.items])


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]

    def fold(self, leaf: Callable[[Leaf], T], all_of: Callable[[list[T]], T], any_of: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
        return any_of([item.fold(leaf, all_of, any_of, negate) for item in self.items])


@dataclass(frozen=True)
class Not:
    item: Node

    def fold(self, leaf: Callable[[Leaf], T], all_of: Callable[[list[T]], T], any_of: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
        return negate(self.item.fold(leaf, all_of, any_of, negate))


Node = Leaf | And | Or | Not


@dataclass(frozen=True)
class Expression:
    """A parsed filter that uses the extensions: the tree and the text it came from."""

    root: Node
    text: str

    def fold(self, leaf: Callable[[Leaf], T], all_of: Callable[[list[T]], T], any_of: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
        return self.root.fold(leaf, all_of, any_of, negate)

    def clauses(self) -> list[Clause]:
        return [leaf.clause for leaf in leaves(self.root)]


def leaves(node: Node) -> list[Leaf]:
    return node.fold(lambda leaf: [leaf], _concat, _concat, lambda found: found)


def _concat(parts: list[list[Leaf]]) -> list[Leaf]:
    return [leaf for part in parts for leaf in part]


# --- tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: Literal["atom", "operator", "(", ")", ",", "unterminated"]
    text: str
    start: int
    end: int
    bare: bool = False  # one plain word, so possibly a keyword

    @property
    def keyword(self) -> str | None:
        upper = self.text.upper()
        return upper if self.kind == "atom" and self.bare and upper in _KEYWORDS else None

    @property
    def position(self) -> int:
        return self.start + 1


def _tokens(text: str) -> list[_Token]:
    """Atoms (identifiers, values, keywords), operators and punctuation with their offsets. Adjacent
    pieces joined by a dot form one atom, as in metrics.`my key` or `params`.lr."""
    found: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        assert match is not None  # the alternatives cover every character
        kind, piece, at = match.lastgroup, match.group(), match.end()
        if kind == "space":
            continue
        if kind == "unterminated":
            found.append(_Token("unterminated", piece, match.start(), len(text)))
            break
        if kind in ("string", "word"):
            last = found[-1] if found else None
            if (last is not None and last.kind == "atom" and last.end == match.start()
                    and (last.text.endswith(".") or piece.startswith("."))):
                found[-1] = _Token("atom", last.text + piece, last.start, match.end())
                continue
            found.append(_Token("atom", piece, match.start(), match.end(), bare=kind == "word"))
        elif kind == "operator":
            found.append(_Token("operator", piece, match.start(), match.end()))
        else:
            found.append(_Token(piece, piece, match.start(), match.end()))  # type: ignore[arg-type]
    return found


def uses_extensions(filter_string: str) -> bool:
    """Whether the filter uses OR, NOT before a clause, grouping parentheses, BETWEEN, or IN on a key
    MLflow has no IN for; False means plain MLflow syntax (or something MLflow will reject itself)."""
    tokens = _tokens(filter_string)
    in_list = False
    for number, token in enumerate(tokens):
        before = tokens[number - 1] if number else None
        keyword = token.keyword
        if keyword in ("OR", "BETWEEN"):
            return True
        if keyword == "NOT" and (before is None or before.kind == "(" or before.keyword in ("AND", "OR", "NOT")):
            return True
        if token.kind == "(":
            if in_list or before is None or before.keyword != "IN":
                return True
            in_list = True
        if token.kind == ")":
            if not in_list:
                return True
            in_list = False
        if keyword == "IN" and before is not None:
            operand = tokens[number - 2] if before.keyword == "NOT" and number >= 2 else before
            if operand.kind == "atom" and not operand.keyword and not _native_list(operand.text):
                return True
    return False


def _native_list(operand: str) -> bool:
    """Whether MLflow itself compares this key with a list (run_id, dataset fields); unparsable keys are
    left to MLflow's error."""
    try:
        identifier = SearchUtils._get_identifier(operand, SearchUtils.VALID_SEARCH_ATTRIBUTE_KEYS)
    except MlflowException:
        return True
    if identifier["type"] == SearchUtils._DATASET_IDENTIFIER:
        return True
    keys = SearchUtils.LIST_SUPPORTED_KEYS
    return identifier["type"] == SearchUtils._ATTRIBUTE_IDENTIFIER and (keys is None or identifier["key"] in keys)


# --- parsing ---------------------------------------------------------------------------------------


def parse(filter_string: str) -> Expression | None:
    """The expression tree of a filter that uses the extensions; None for plain MLflow syntax, which the
    caller parses with MLflow's parser as before. A bad filter is BadInput(field='filter')."""
    if not uses_extensions(filter_string):
        return None
    return Expression(_Parser(filter_string).expression(), filter_string)


def _bad(message: str) -> BadInput:
    return BadInput(f"bad filter: {message}", field="filter")


class _Parser:
    """Recursive descent: disjunction := conjunction (OR conjunction)*; conjunction := negation (AND
    negation)*; negation := NOT negation | '(' disjunction ')' | comparison."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0
        self.count = 0
        for token in self.tokens:
            if token.kind == "unterminated":
                raise _bad(f"unterminated quote {token.text} at position {token.position}")

    def expression(self) -> Node:
        if not self.tokens:
            raise _bad("empty filter")
        node = self._disjunction()
        token = self._peek()
        if token is not None:
            if token.kind == ")":
                raise _bad(f"unbalanced parenthesis: ')' at position {token.position} has no matching '('")
            raise _bad(f"expected AND or OR at position {token.position}, got {token.text!r}")
        return node

    # grammar

    def _disjunction(self) -> Node:
        items = [self._conjunction()]
        while self._accept_keyword("OR"):
            items.append(self._conjunction())
        return items[0] if len(items) == 1 else Or(_flat(items, Or))

    def _conjunction(self) -> Node:
        items = [self._negation()]
        while self._accept_keyword("AND"):
            items.append(self._negation())
        return items[0] if len(items) == 1 else And(_flat(items, And))

    def _negation(self) -> Node:
        token = self._expect_clause_start()
        if token.keyword == "NOT":
            self.at += 1
            with self._nested(token):
                item = self._negation()
            return Not(item)
        if token.kind == "(":
            self.at += 1
            with self._nested(token):
                if self._peek_kind() == ")":
                    raise _bad(f"empty parentheses at position {token.position}")
                node = self._disjunction()
            closing = self._peek()
            if closing is None or closing.kind != ")":
                raise _bad(f"unbalanced parenthesis: '(' at position {token.position} is never closed")
            self.at += 1
            return node
        return self._comparison()

    def _comparison(self) -> Node:
        operand = self._take()
        token = self._peek()
        if token is None:
            raise _bad(f"{operand.text!r} at position {operand.position} needs an operator and a value")
        negated = token.keyword == "NOT"
        if negated:
            self.at += 1
            token = self._peek()
            if token is None or token.keyword not in ("IN", "BETWEEN"):
                raise _bad(f"expected IN or BETWEEN after NOT at position {self._position(token)}")
        keyword = token.keyword
        if keyword == "IN":
            self.at += 1
            return self._in(operand, token, negated)
        if keyword == "BETWEEN":
            self.at += 1
            return self._between(operand, token, negated)
        if keyword == "IS":
            self.at += 1
            self._accept_keyword("NOT")
            if not self._accept_keyword("NULL"):
                raise _bad(f"expected NULL or NOT NULL after IS at position {token.position}")
            return self._leaf(self.text[operand.start:self.tokens[self.at - 1].end], operand)
        known = (token.kind == "operator" and token.text in _COMPARATORS) or keyword in ("LIKE", "ILIKE")
        if not known:
            if token.kind == "operator" or (token.kind == "atom" and keyword not in ("AND", "OR")):
                raise _bad(f"unknown operator {token.text!r} at position {token.position}")
            raise _bad(f"{operand.text!r} at position {operand.position} needs an operator and a value")
        self.at += 1
        value = self._value(token)
        return self._leaf(self.text[operand.start:value.end], operand)

    def _in(self, operand: _Token, keyword: _Token, negated: bool) -> Node:
        opening = self._peek()
        if opening is None or opening.kind != "(":
            raise _bad(f"IN at position {keyword.position} needs a parenthesised list, e.g. ('a', 'b')")
        self.at += 1
        if self._peek_kind() == ")":
            raise _bad(f"empty IN list at position {opening.position}")
        values = [self._value(opening)]
        while (separator := self._peek()) is not None and separator.kind == ",":
            self.at += 1
            values.append(self._value(separator))
        if separator is None:
            raise _bad(f"unbalanced parenthesis: '(' at position {opening.position} is never closed")
        if separator.kind != ")":
            raise _bad(f"expected ',' or ')' in the IN list at position {separator.position}, got {separator.text!r}")
        self.at += 1
        if _native_list(operand.text):
            return self._leaf(self.text[operand.start:separator.end], operand)
        comparator = "!=" if negated else "="
        items = [self._leaf(f"{operand.text} {comparator} {value.text}", operand) for value in values]
        if len(items) == 1:
            return items[0]
        return And(tuple(items)) if negated else Or(tuple(items))

    def _between(self, operand: _Token, keyword: _Token, negated: bool) -> Node:
        low = self._value(keyword)
        if not self._accept_keyword("AND"):
            raise _bad(f"BETWEEN at position {keyword.position} needs AND between its bounds, "
                       "e.g. metrics.f1 BETWEEN 0.5 AND 0.9")
        high = self._value(self.tokens[self.at - 1])
        identifier = _identifier(operand)
        numeric_attribute = (identifier["type"] == SearchUtils._ATTRIBUTE_IDENTIFIER
                             and SearchUtils.translate_key_alias(identifier["key"]) in SearchUtils.NUMERIC_ATTRIBUTES)
        if identifier["type"] != SearchUtils._METRIC_IDENTIFIER and not numeric_attribute:
            raise _bad(f"BETWEEN at position {keyword.position} compares numbers: use it on metrics or "
                       f"attributes.start_time/end_time, not {operand.text!r}")
        if negated:
            return Or((self._leaf(f"{operand.text} < {low.text}", operand),
                       self._leaf(f"{operand.text} > {high.text}", operand)))
        return And((self._leaf(f"{operand.text} >= {low.text}", operand),
                    self._leaf(f"{operand.text} <= {high.text}", operand)))

    # helpers

    def _leaf(self, text: str, operand: _Token) -> Leaf:
        self.count += 1
        if self.count > MAX_CLAUSES:
            raise _bad(f"more than {MAX_CLAUSES} clauses")
        try:
            parsed = parse_filter(text)
        except BadInput as exc:
            detail = exc.message.removeprefix("bad filter: ")
            raise _bad(f"{detail} (in {text!r} at position {operand.position})") from None
        if len(parsed) != 1:
            raise _bad(f"{text!r} at position {operand.position} is not one comparison")
        return Leaf(text, parsed[0])

    def _value(self, after: _Token) -> _Token:
        token = self._peek()
        if token is None or token.kind != "atom" or token.keyword:
            got = "the end" if token is None else repr(token.text)
            raise _bad(f"expected a value after {after.text!r} at position {after.position}, got {got}")
        self.at += 1
        return token

    def _expect_clause_start(self) -> _Token:
        token = self._peek()
        previous = self.tokens[self.at - 1] if self.at else None
        if token is None:
            where = f"after {previous.text!r} at position {previous.position}" if previous else "at the start"
            raise _bad(f"expected a clause {where}")
        if token.kind == ")":
            raise _bad(f"unbalanced parenthesis: ')' at position {token.position} has no matching '('"
                       if self._open_count() == 0 else f"expected a clause at position {token.position}")
        if token.kind == "(" or token.keyword == "NOT" or (token.kind == "atom" and not token.keyword):
            return token
        raise _bad(f"expected a clause at position {token.position}, got {token.text!r}")

    def _open_count(self) -> int:
        opened = 0
        for token in self.tokens[:self.at]:
            opened += (token.kind == "(") - (token.kind == ")")
        return opened

    @contextmanager
    def _nested(self, token: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _bad(f"more than {MAX_DEPTH} nested parentheses or NOTs (at position {token.position})")
        try:
            yield
        finally:
            self.depth -= 1

    def _take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _peek_kind(self) -> str | None:
        token = self._peek()
        return None if token is None else token.kind

    def _accept_keyword(self, keyword: str) -> bool:
        token = self._peek()
        if token is not None and token.keyword == keyword:
            self.at += 1
            return True
        return False

    def _position(self, token: _Token | None) -> str:
        return str(token.position) if token is not None else "the end"


def _flat(items: list[Node], kind: type[And] | type[Or]) -> tuple[Node, ...]:
    """(a AND b) AND c as one AND of three."""
    return tuple(part for item in items for part in (item.items if isinstance(item, kind) else (item,)))


def _identifier(operand: _Token) -> dict[str, str]:
    try:
        return SearchUtils._get_identifier(operand.text, SearchUtils.VALID_SEARCH_ATTRIBUTE_KEYS)
    except MlflowException as exc:
        raise _bad(f"{one_line(exc)} (at position {operand.position})") from None


# --- evaluation over id sets (the API path) ---------------------------------------------------------


def split_conjunction(node: Node) -> tuple[list[Leaf], Node | None]:
    """The clauses AND-ed at the top, which one MLflow search can apply, and the rest (None if none)."""
    items = node.items if isinstance(node, And) else (node,)
    direct = [item for item in items if isinstance(item, Leaf)]
    rest = [item for item in items if not isinstance(item, Leaf)]
    if not rest:
        return direct, None
    return direct, rest[0] if len(rest) == 1 else And(tuple(rest))


def matching_ids(node: Node, universe: Collection[str], search: Callable[[Sequence[Leaf]], Collection[str]]) -> set[str]:
    """The ids in `universe` matching `node`, where search(leaves) gives the ids in `universe` matching
    all of `leaves` (one MLflow search). Clauses AND-ed together are searched together."""
    if isinstance(node, Leaf):
        return set(search([node]))
    if isinstance(node, Not):
        return set(universe) - matching_ids(node.item, universe, search)
    if isinstance(node, Or):
        found: set[str] = set()
        for item in node.items:
            found |= matching_ids(item, universe, search)
        return found
    direct, rest = split_conjunction(node)
    result = set(search(direct)) if direct else set(universe)
    if rest is not None:
        others = rest.items if isinstance(rest, And) else (rest,)
        for item in others:
            if not result:
                break
            result &= matching_ids(item, universe, search)
    return result
