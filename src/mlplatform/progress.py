"""Progress of long waits: live status on a terminal (rich), plain lines otherwise (CI logs).

Two context managers, both writing to stdout unless given a stream:

- `status_board(title)` yields a board; `board.set(key, state, final=False)` shows each key's
  state with the time since the key first appeared (frozen once `final`), `board.note(text)`
  prints a line. Plain mode prints one line per state change. For services, DAG tasks.
- `counter(title, total, unit)` yields a counter; `counter.advance(n)` moves a bar with the
  rate per second. Plain mode prints a line every `every` seconds and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text


def _is_tty(stream: TextIO, live: bool | None) -> bool:
    if live is not None:
        return live
    return hasattr(stream, "isatty") and stream.isatty()


@dataclass
class _Row:
    state: str
    first_seen: float
    ended: float | None = None

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.first_seen


class StatusBoard:
    def __init__(
        self,
        title: str,
        stream: TextIO,
        live: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.stream = stream
        self.clock = clock
        self.rows: dict[str, _Row] = {}
        self._live: Live | None = None
        if live:
            self._live = Live(
                get_renderable=self._table,
                console=Console(file=stream),
                refresh_per_second=4,
                transient=False,
            )

    def set(self, key: str, state: str, *, final: bool = False, plain: bool = True) -> None:
        """Show `key` in `state`; `plain=False` keeps this change out of plain output."""
        now = self.clock()
        row = self.rows.get(key)
        changed = row is None or row.state != state
        if row is None:
            row = self.rows[key] = _Row(state, now)
        row.state = state
        row.ended = now if final else None
        if changed and plain and self._live is None:
            print(
                f"  {key:24s} {state:12s} {row.elapsed(now):6.1f} s", file=self.stream, flush=True
            )

    def elapsed(self, key: str) -> float:
        return self.rows[key].elapsed(self.clock())

    def note(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            print(message, file=self.stream, flush=True)

    def _table(self) -> Table:
        now = self.clock()
        table = Table(title=self.title, title_justify="left")
        table.add_column("")
        table.add_column("state")
        table.add_column("time", justify="right")
        for key, row in self.rows.items():
            table.add_row(key, row.state, f"{row.elapsed(now):.1f} s")
        return table


@contextmanager
def status_board(
    title: str, *, stream: TextIO | None = None, live: bool | None = None
) -> Iterator[StatusBoard]:
    out = stream or sys.stdout
    board = StatusBoard(title, out, _is_tty(out, live))
    if board._live is None:
        print(title, file=out, flush=True)
        yield board
        return
    with board._live:
        yield board


class _Rate(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s")


class Counter:
    def __init__(
        self, title: str, total: int | None, unit: str, stream: TextIO, every: float
    ) -> None:
        self.title, self.total, self.unit, self.stream, self.every = (
            title,
            total,
            unit,
            stream,
            every,
        )
        self.done = 0
        self.started = self._last = time.monotonic()
        self._progress: Progress | None = None
        self._task = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._print()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def _print(self) -> None:
        of = f"/{self.total:,}" if self.total is not None else ""
        print(
            f"{self.title}: {self.done:,}{of} {self.unit}, {self.rate():,.0f} {self.unit}/s",
            file=self.stream,
            flush=True,
        )


@contextmanager
def counter(
    title: str,
    total: int | None = None,
    *,
    unit: str = "rows",
    stream: TextIO | None = None,
    live: bool | None = None,
    every: float = 5.0,
) -> Iterator[Counter]:
    out = stream or sys.stdout
    count = Counter(title, total, unit, out, every)
    if not _is_tty(out, live):
        yield count
        count._print()
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(unit),
        console=Console(file=out),
    ) as progress:
        count._progress = progress
        count._task = progress.add_task(title, total=total)  # type: ignore[assignment]
        yield count
