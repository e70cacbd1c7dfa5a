"""Every item of a paged MLflow search."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mlflow.store.entities.paged_list import PagedList

T = TypeVar("T")


def all_pages(fetch: Callable[[str | None], PagedList[T]]) -> list[T]:
    """Every item of a paged MLflow search, page after page (`fetch` takes the page token)."""
    found: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        found.extend(page)
        token = page.token
        if not token:
            return found
