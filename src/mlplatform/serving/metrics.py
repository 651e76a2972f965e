"""Prometheus metrics of the service, recorded with prometheus_client.

`RequestMetrics` is a pure ASGI middleware that records the same series as
prometheus-fastapi-instrumentator's defaults (`http_requests_total` and
`http_request_duration_seconds` by handler, method and status), at a fraction
of its cost: it reads the route the router already matched (`scope["route"]`)
instead of matching every request a second time, builds no Request/Response
objects, and caches the labelled children. On a ~0.3 ms request that matters.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from mlplatform.inference.loading import LoadedModel

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
HTTP_LABELS = ("handler", "method", "status")
UNMATCHED = "none"  # unknown paths share one label, as in the instrumentator


class ServingMetrics:
    """Every metric of one app instance, in its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            HTTP_LABELS,
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Duration of HTTP requests in seconds",
            HTTP_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "predictions", "Predictions served, by label", ["label"], registry=registry
        )
        self.model_info = Gauge(
            "model_version_info",
            "The model in use (value 1)",
            ["name", "version", "backend"],
            registry=registry,
        )
        self.log_buffered = Gauge(
            "prediction_log_buffered",
            "Predictions waiting to be written to the data lake",
            registry=registry,
        )
        self.log_dropped = Gauge(
            "prediction_log_dropped",
            "Predictions dropped because the buffer was full",
            registry=registry,
        )
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._labels: dict[str, Any] = {}

    def model_swapped(self, model: LoadedModel) -> None:
        self.model_info.clear()
        self.model_info.labels(model.name, model.version, model.backend).set(1)

    def count_predictions(self, label_names: list[str]) -> None:
        for name in set(label_names):
            child = self._labels.get(name)
            if child is None:
                child = self._labels[name] = self.predictions.labels(name)
            child.inc(label_names.count(name))

    def observe_request(self, handler: str, method: str, status: int, seconds: float) -> None:
        key = (handler, method, status)
        children = self._http.get(key)
        if children is None:
            labels = (handler, method, str(status))
            children = self._http[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)


class RequestMetrics:
    """Pure ASGI middleware: count and time every HTTP request except `excluded` paths."""

    def __init__(
        self, app: ASGIApp, metrics: ServingMetrics, excluded: tuple[str, ...] = ("/metrics",)
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.excluded = frozenset(excluded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client gets when the app raises

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router sets scope["route"] on the dict it was given: the templated path.
            handler = getattr(scope.get("route"), "path", None) or UNMATCHED
            if handler not in self.excluded:
                self.metrics.observe_request(
                    handler, scope["method"], status, perf_counter() - started
                )
