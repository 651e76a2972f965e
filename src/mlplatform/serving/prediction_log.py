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


class PredictionLog:
    def __init__(self, store: DataStore, flush_seconds: float) -> None:
        self.store = store
        self._buffer: deque[tuple[Any, ...]] = deque(maxlen=MAX_BUFFERED)
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
        now = datetime.now(UTC)
        with self._lock:
            overflow = len(self._buffer) + len(labels) - MAX_BUFFERED
            if overflow > 0:
                self.dropped += overflow
            self._buffer.extend(
                (pid, now, endpoint, model_name, version, int(lab), float(p), *row.tolist())
                for pid, row, lab, p in zip(ids, x, labels, proba, strict=True)
            )

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered as one Parquet file; on failure keep it for the next try."""
        with self._lock:
            records = list(self._buffer)
            self._buffer.clear()
        if not records:
            return 0
        frame = pd.DataFrame.from_records(records, columns=COLUMNS)
        try:
            self.store.write_prediction_log(frame, datetime.now(UTC))
        except Exception as err:  # S3 down: put them back in front, keep serving
            with self._lock:
                room = MAX_BUFFERED - len(self._buffer)
                self.dropped += max(0, len(records) - room)
                self._buffer.extendleft(reversed(records[-room:] if room else []))
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
