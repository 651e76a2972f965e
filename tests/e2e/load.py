"""Load on the real prediction service for the e2e tests: `concurrency` threads posting
`/predict` until stopped. Every answer AND every exception is recorded, so a thread that hits
something other than an HTTP error (a bad JSON answer, a bug in the test) counts as a failure
instead of dying silently and shrinking the load."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from mlplatform.serving.schemas import example_patient


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the error) came back
    status: int  # 0 for an exception
    version: str  # the served model version, or the exception's repr
    prediction_id: str = ""


class Load:
    def __init__(
        self, url: str, concurrency: int = 4, timeout: float = 30, body: Any = None
    ) -> None:
        self.url = url
        self.body = body if body is not None else example_patient()
        self.timeout = timeout
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(concurrency)
        ]

    def _one(self, client: httpx.Client) -> Answer:
        try:
            resp = client.post("/predict", json=self.body)
            body = resp.json() if resp.status_code == 200 else {}
            return Answer(
                time.monotonic(),
                resp.status_code,
                str(body.get("model_version", "")),
                str(body.get("prediction_id", "")),
            )
        except Exception as err:  # anything at all is a failed request, never a silent thread
            return Answer(time.monotonic(), 0, repr(err))

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                self.answers.append(self._one(client))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load thread hangs"

    def since(self, start: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= start]

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    @property
    def ids(self) -> set[str]:
        return {a.prediction_id for a in self.answers if a.prediction_id}
