"""A lean path for the hot routes (`/predict`, `/predict/batch`), outside FastAPI's own.

FastAPI's per-request machinery (its error middleware, a Request object, solving the
dependencies, `json.loads` and then validation of the Python objects, a response object) and
each ASGI middleware layer cost more than the model does. So the app itself (`ServingApp`, a
FastAPI) first offers a POST to a hot path to `HotRoutes`. When the request is the common case
(the right API key, a JSON body with a Content-Length within the limit, a body that validates
in one step, a model loaded) it answers and records the request's metrics itself. Anything
else (no or a wrong key, no length, another content type, a bad body, no champion, a client
that left, an error) goes, message by message as it came, through the whole app: the guard,
the metrics, the router and the route's handler, which answer exactly as they always have.
401, 413, the 422 format, 503 and 500 come from one place. The routes stay FastAPI routes, so
the OpenAPI docs are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi import FastAPI
from mlplatform.serving.guard import Limits
from mlplatform.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

# The answer's bytes, or None to let FastAPI's handler answer.
FastAnswer = Callable[[bytes], Awaitable[bytes | None]]

_JSON = b"application/json"
encode_json = msgspec.json.Encoder().encode  # one C call per answer; ~20x json.dumps at 100 rows


class HotRoutes:
    """The lean answers of the hot paths (`routes`: path -> its answer), within `limits`,
    recorded in `metrics` under the path as the handler label (the router's label)."""

    def __init__(self, limits: Limits, metrics: ServingMetrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.routes: dict[str, FastAnswer] = {}

    def takes(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Answer the request, or hand it to `app` as it came."""
        started = perf_counter()
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type" and content_type is None:
                content_type = value.lower()
        json = content_type == _JSON or (content_type or b"").startswith(_JSON + b";")
        if not (json and length and self.limits.within(length) and self.limits.authorised(scope)):
            await app(scope, receive, send)  # the guard and the handler decide, as always
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        answer = None
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client left: FastAPI's way
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                try:
                    answer = await self.routes[scope["path"]](b"".join(chunks))
                except Exception:  # the handler runs it again and answers 500 as it always does
                    log.exception(
                        "lean path of %s failed; the route's handler answers", scope["path"]
                    )
                break
        if answer is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(len(answer)).encode()),
                        (b"content-type", _JSON),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            self.metrics.observe_request(scope["path"], "POST", 200, perf_counter() - started)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await app(scope, replayed, send)


class ServingApp(FastAPI):
    """FastAPI, with the hot routes offered to `hot` before its middleware stack."""

    hot: HotRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot is not None and self.hot.takes(scope):
            await self.hot(scope, receive, send, super().__call__)
        else:
            await super().__call__(scope, receive, send)
