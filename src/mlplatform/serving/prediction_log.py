"""Every online prediction, buffered in memory and flushed to the data lake.

The request path only appends to a deque; a background thread writes Parquet files
under `store.PREDICTION_LOG` (partitioned by date) every few seconds, atomically.
When S3 is down the records stay buffered (bounded; the oldest are dropped and
counted) and the next flush retries.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.serving.background import Periodic
from mlplatform.spec import SPEC
from mlplatform.store import DataStore, prediction_log_columns

log = logging.getLogger(__name__)

MAX_BUFFERED = 200_000
COLUMNS = prediction_log_columns(SPEC)


# One request's predictions, kept as it came (ids, time, endpoint, model, version, x, labels,
# proba): the request path appends one tuple, and rows are built by the flusher's thread.
Entry = tuple[list[str], datetime, str, str, str, np.ndarray, np.ndarray, np.ndarray]


def _rows(entry: Entry) -> int:
    return len(entry[0])


def _tail(entry: Entry, keep: int) -> Entry:
    """The entry's last `keep` rows (the oldest are the ones dropped)."""
    ids, now, endpoint, name, version, x, labels, proba = entry
    return (ids[-keep:], now, endpoint, name, version, x[-keep:], labels[-keep:], proba[-keep:])


class PredictionLog:
    def __init__(self, store: DataStore, flush_seconds: float) -> None:
        self.store = store
        self._buffer: deque[Entry] = deque()
        self._rows = 0
        self._lock = threading.Lock()
        self._flusher = Periodic("prediction-log", self.flush, lambda: flush_seconds, False)
        self.dropped = 0
        self.error: str | None = None

    def record(
        self,
        ids: list[str],
        endpoint: str,
        model_name: str,
        version: str,
        x: np.ndarray,
        labels: np.ndarray,
        proba: np.ndarray,
    ) -> None:
        entry = (ids, datetime.now(UTC), endpoint, model_name, version, x, labels, proba)
        with self._lock:
            self._buffer.append(entry)
            self._rows += len(ids)
            self._bound()

    def _bound(self) -> None:
        """Drop the oldest rows beyond MAX_BUFFERED, and count them (lock held)."""
        while self._rows > MAX_BUFFERED:
            oldest = self._buffer[0]
            over = self._rows - MAX_BUFFERED
            if _rows(oldest) <= over:
                self._buffer.popleft()
                lost = _rows(oldest)
            else:
                self._buffer[0] = _tail(oldest, _rows(oldest) - over)
                lost = over
            self._rows -= lost
            self.dropped += lost

    @property
    def buffered(self) -> int:
        return self._rows

    def records(self) -> list[tuple[Any, ...]]:
        """What is buffered, one tuple per prediction in COLUMNS order."""
        with self._lock:
            entries = list(self._buffer)
        return [row for entry in entries for row in _records(entry)]

    def flush(self) -> int:
        """Write what is buffered as one Parquet file; on failure keep it for the next try."""
        with self._lock:
            entries = list(self._buffer)
            self._buffer.clear()
            self._rows = 0
        if not entries:
            return 0
        records = [row for entry in entries for row in _records(entry)]
        frame = pd.DataFrame.from_records(records, columns=COLUMNS)
        try:
            self.store.write_prediction_log(frame, datetime.now(UTC))
        except Exception as err:  # S3 down: put them back in front, keep serving
            with self._lock:
                self._buffer.extendleft(reversed(entries))
                self._rows += len(records)
                self._bound()
            self.error = f"{type(err).__name__}: {str(err)[:300]}"
            log.warning("prediction log flush failed: %s", self.error)
            return 0
        self.error = None
        return len(records)

    def start(self) -> None:
        self._flusher.start()

    def stop(self) -> None:
        self._flusher.stop()
        self.flush()


def _records(entry: Entry) -> list[tuple[Any, ...]]:
    ids, now, endpoint, name, version, x, labels, proba = entry
    return [
        (pid, now, endpoint, name, version, int(lab), float(p), *row)
        for pid, row, lab, p in zip(ids, x.tolist(), labels.tolist(), proba.tolist(), strict=True)
    ]
