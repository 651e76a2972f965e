"""A daemon thread that calls a function periodically until stopped (the model watcher
and the prediction-log flusher). An exception in one tick is logged and kept for
readiness; the thread goes on with the next tick instead of dying silently."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


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
        self.error: str | None = None

    def _safe_tick(self) -> None:
        try:
            self._tick()
        except Exception as err:
            self.error = f"{type(err).__name__}: {str(err)[:300]}"
            log.exception("%s: tick failed, retrying in %.0f s", self.name, self._interval())
        else:
            self.error = None

    def _run(self) -> None:
        if self._first_now:
            self._safe_tick()
        while not self._stop.wait(self._interval()):
            self._safe_tick()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=timeout)
