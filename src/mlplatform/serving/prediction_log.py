"""Every online prediction, buffered in memory and flushed to the data lake.

The request path only appends to a deque; a background thread writes Parquet files
under `layout.PREDICTION_LOG` (partitioned by date) every few seconds, atomically.
When S3 is down the records stay buffered (bounded; the oldest are dropped and
counted) and the next flush retries.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlplatform import layout
from mlplatform.serving.background import Periodic
from mlplatform.serving.schemas import FEATURES
from mlplatform.settings import Settings

log = logging.getLogger(__name__)

MAX_BUFFERED = 200_000
COLUMNS = [
    "timestamp",
    "endpoint",
    "model_name",
    "model_version",
    "label",
    "probability",
    *FEATURES,
]


def log_key(now: datetime) -> str:
    return (
        f"{layout.PREDICTION_LOG}date={now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:12]}.parquet"
    )


class PredictionLog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._buffer: deque[tuple[Any, ...]] = deque(maxlen=MAX_BUFFERED)
        self._lock = threading.Lock()
        self._flusher = Periodic(
            "prediction-log", self.flush, lambda: self.settings.PREDICTION_LOG_FLUSH_SECONDS, False
        )
        self.dropped = 0
        self.written = 0
        self.error: str | None = None

    def record(
        self,
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
                (now, endpoint, model_name, version, int(lab), float(p), *row.tolist())
                for row, lab, p in zip(x, labels, proba, strict=True)
            )

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered as one Parquet file; on failure keep it for the next try."""
        from mlplatform.lake import write_parquet_atomic

        with self._lock:
            records = list(self._buffer)
            self._buffer.clear()
        if not records:
            return 0
        frame = pd.DataFrame.from_records(records, columns=COLUMNS)
        try:
            write_parquet_atomic(
                frame, self.settings.DATA_REPO_BUCKET_NAME, log_key(datetime.now(UTC))
            )
        except Exception as err:  # S3 down: put them back in front, keep serving
            with self._lock:
                room = MAX_BUFFERED - len(self._buffer)
                self.dropped += max(0, len(records) - room)
                self._buffer.extendleft(reversed(records[-room:] if room else []))
            self.error = f"{type(err).__name__}: {str(err)[:300]}"
            log.warning("prediction log flush failed: %s", self.error)
            return 0
        self.error = None
        self.written += len(records)
        return len(records)

    def start(self) -> None:
        self._flusher.start()

    def stop(self) -> None:
        self._flusher.stop()
        self.flush()
