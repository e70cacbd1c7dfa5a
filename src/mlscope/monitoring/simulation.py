"""Realistic traffic for a served model: rows sampled from data the model knows (with their truth when
the data has it), optionally drifted, turned into the API's request JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Drift of passengers (rows with Pclass and Age): more third class, older people.
THIRD_CLASS_SHARE = 0.75
AGE_SHIFT_YEARS = 15.0
SHIFT_STANDARD_DEVIATIONS = 1.5  # any other model: its most important numeric feature moves this far


@dataclass(frozen=True)
class Source:
    """Rows of raw features and (when known) the truth of each row as the feedback's text."""

    rows: pd.DataFrame
    truth: pd.Series | None
    description: str


@dataclass(frozen=True)
class Shift:
    """How `drifted` moved the rows, in words."""

    description: str
    features: tuple[str, ...]


def truth_text(values: pd.Series) -> pd.Series:
    """Targets as the feedback's `actual` text: whole numbers without ".0", labels as written."""
    def one(value: Any) -> str | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return pd.Series([one(value) for value in values], index=values.index, dtype=object, name=values.name)


def sample(source: Source, n: int, rng: np.random.Generator) -> Source:
    """`n` rows drawn with replacement (index kept aligned with the truth)."""
    picks = rng.integers(0, len(source.rows), size=n)
    rows = source.rows.iloc[picks].reset_index(drop=True)
    truth = None if source.truth is None else source.truth.iloc[picks].reset_index(drop=True)
    return Source(rows, truth, source.description)


def drifted(source: Source, n: int, rng: np.random.Generator, importance: Mapping[str, float] | None = None
            ) -> tuple[Source, Shift]:
    """`n` rows of a shifted population. Passengers (Pclass and Age): THIRD_CLASS_SHARE of them third
    class, AGE_SHIFT_YEARS older. Otherwise the most important numeric feature (by `importance`, else the
    first numeric one) moves up by SHIFT_STANDARD_DEVIATIONS standard deviations. Each row keeps its truth."""
    rows = source.rows
    if {"Pclass", "Age"} <= set(rows.columns):
        third = np.flatnonzero(pd.to_numeric(rows["Pclass"], errors="coerce").to_numpy() == 3)
        others = np.setdiff1d(np.arange(len(rows)), third)
        from_third = rng.binomial(n, THIRD_CLASS_SHARE) if len(others) else n
        picks = np.concatenate([rng.choice(third, size=from_third), rng.choice(others, size=n - from_third)])
        rng.shuffle(picks)
        chosen = Source(rows.iloc[picks].reset_index(drop=True),
                        None if source.truth is None else source.truth.iloc[picks].reset_index(drop=True),
                        source.description)
        chosen.rows["Age"] = (pd.to_numeric(chosen.rows["Age"], errors="coerce") + AGE_SHIFT_YEARS).clip(upper=120)
        return chosen, Shift(f"{THIRD_CLASS_SHARE:.0%} third class (instead of "
                             f"{len(third) / len(rows):.0%}), {AGE_SHIFT_YEARS:g} years older", ("Pclass", "Age"))
    numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c]) and rows[c].nunique() > 2]
    if not numeric:
        return sample(source, n, rng), Shift("no numeric feature to shift: rows are undrifted", ())
    ranked = sorted(numeric, key=lambda c: -(importance or {}).get(c, 0.0)) if importance else numeric
    feature = ranked[0]
    chosen = sample(source, n, rng)
    spread = float(pd.to_numeric(rows[feature], errors="coerce").std())
    whole = bool(np.all(np.mod(rows[feature].dropna().to_numpy(dtype=float), 1) == 0))
    shift = SHIFT_STANDARD_DEVIATIONS * spread
    chosen.rows[feature] = chosen.rows[feature] + (round(shift) if whole else shift)
    return chosen, Shift(f"{feature} + {SHIFT_STANDARD_DEVIATIONS:g} standard deviations ({shift:.3g})", (feature,))


def _json_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a property accepts (type, anyOf, enum)."""
    found: set[str] = set()
    if "type" in schema:
        kinds = schema["type"]
        found.update(kinds if isinstance(kinds, list) else [kinds])
    for option in schema.get("anyOf", []):
        found |= _json_types(option)
    for value in schema.get("enum", []):
        found.add({bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), "null"))
    return found


def _convert(value: Any, kinds: set[str]) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if "integer" in kinds and "number" not in kinds:
        return int(round(float(value)))
    if "number" in kinds:
        return float(value)
    if "boolean" in kinds:
        return bool(value)
    return str(value)


def field_map(input_schema: Mapping[str, Any], features: Sequence[str]) -> dict[str, str]:
    """Request field -> raw feature, matching the API's input schema to the rows' columns by name (any
    letter case: the Titanic API takes `pclass` for Pclass)."""
    lookup = {f.lower(): f for f in features}
    return {name: lookup[name.lower()] for name in input_schema.get("properties", {}) if name.lower() in lookup}


def requests(rows: pd.DataFrame, input_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows as the API's request bodies, each value typed as the input schema asks."""
    properties = input_schema.get("properties", {})
    fields = field_map(input_schema, list(rows.columns))
    kinds = {name: _json_types(properties[name]) for name in fields}
    columns = {name: rows[feature].tolist() for name, feature in fields.items()}
    return [{name: _convert(columns[name][i], kinds[name]) for name in fields} for i in range(len(rows))]
