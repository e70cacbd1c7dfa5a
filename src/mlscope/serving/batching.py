"""Micro-batching: single-row requests that arrive together are answered by one model call.

Requests queue their validated row and wait on a future; the first one schedules a flush on the
event loop right after the requests already runnable have queued theirs (no timer, so an idle server
adds no latency). One flush uses one model snapshot, so every answer names the version that made it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from mlscope.errors import NotReady
from mlscope.serving.loading import LoadedModel


class MicroBatcher:
    def __init__(self, current: Callable[[], LoadedModel | None], problem: Callable[[], str | None],
                 max_rows: int = 512) -> None:
        self._current, self._problem = current, problem
        self._max_rows = max_rows
        self._pending: list[tuple[BaseModel, asyncio.Future[tuple[Any, LoadedModel]]]] = []
        self._scheduled = False
        self.calls = 0
        self.rows = 0

    async def predict(self, item: BaseModel) -> tuple[Any, LoadedModel]:
        """The row's output (a number, or a list of class probabilities) and the model that gave it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, LoadedModel]] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        model = self._current()
        try:
            if model is None:
                raise NotReady(f"no model loaded: {self._problem()}")
            outputs = model.outputs(model.contract.columns([item for item, _ in batch]))
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.calls += 1
        self.rows += len(batch)
        for (_, future), output in zip(batch, outputs.tolist(), strict=True):
            if not future.done():
                future.set_result((output, model))
