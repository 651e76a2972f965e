"""A daemon thread that calls a function periodically until stopped (the model watcher
and the prediction-log flusher)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    def __init__(
        self, name: str, tick: Callable[[], object], interval: Callable[[], float], first_now: bool
    ) -> None:
        self.name = name
        self._tick = tick
        self._interval = interval
        self._first_now = first_now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        if self._first_now:
            self._tick()
        while not self._stop.wait(self._interval()):
            self._tick()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=timeout)
