"""Single-row predictions that arrive together, scored in one call.

On one uvicorn worker, the requests read in one turn of the event loop all reach the lean
path in the next; each would call onnxruntime once, and a call costs more than the rows in it
(~45 µs under load for one row of a linear model). `Coalescer` queues each row with a future
and, once the loop has run everything ready, scores the queued rows of each model in one call,
logs them as one entry and answers every future. A request waits one more turn of the loop,
which costs microseconds; at concurrency 1 a "batch" is one row. The answers are the same as
alone: `OnnxPredictor` gives a row the same result in any batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# Score `rows` of one model now: one answer per row, in order.
ScoreNow = Callable[[Any, list[Any]], list[Any]]


class Coalescer:
    def __init__(self, score_now: ScoreNow) -> None:
        self.score_now = score_now
        self.waiting: list[tuple[Any, Any, asyncio.Future[Any]]] = []

    def submit(self, model: Any, row: Any) -> asyncio.Future[Any]:
        """The answer for `row` from `model` (the model the request read: a swap between
        queueing and scoring does not change which model answers it)."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            loop.call_soon(self._flush)
        future: asyncio.Future[Any] = loop.create_future()
        self.waiting.append((model, row, future))
        return future

    def _flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        models = list({id(model): model for model, _, _ in waiting}.values())
        for model in models:
            group = [(row, future) for m, row, future in waiting if m is model]
            try:
                answers = self.score_now(model, [row for row, _ in group])
            except Exception as err:  # each request then answers as it would alone
                for _, future in group:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), answer in zip(group, answers, strict=True):
                if not future.done():  # a request cancelled meanwhile is not answered
                    future.set_result(answer)
