"""Time windows as users write them: "30m", "24h", "7d"."""

from __future__ import annotations

import re
from datetime import timedelta

from mlscope.errors import BadInput

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
MAX_WINDOW = timedelta(days=366)


def parse_window(text: str) -> timedelta:
    """"30m", "24h", "7d" (also s and w) as a duration; BadInput (field `window`) for anything else."""
    match = _PATTERN.fullmatch(str(text).strip().lower())
    if match is None:
        raise BadInput(f"window '{text}' is not a duration like 30m, 24h or 7d", field="window")
    unit = timedelta(**{_UNITS[match.group(2)]: 1})
    amount = float(match.group(1))
    if not 0 < amount <= MAX_WINDOW / unit:  # checked before multiplying: "1e400"-sized numbers overflow timedelta
        raise BadInput(f"window '{text}' must be longer than 0 and at most 366 days", field="window")
    span = unit * amount
    if span <= timedelta(0):
        raise BadInput(f"window '{text}' must be longer than 0 and at most 366 days", field="window")
    return span
