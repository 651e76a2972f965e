"""A lean path for the hot routes (`/predict`, `/predict/batch`), in front of FastAPI's own.

FastAPI's per-request machinery (a Request object, solving the dependencies, `json.loads` and
then validation of the Python objects, a response object) costs several times what the model
does. The lean path reads the body, and when the request is the common case (a JSON body that
validates in one step, a model loaded) it answers itself. Anything else (a bad body, another
content type, no champion, a client that left) is replayed, message by message, into the
route's FastAPI handler, which answers exactly as it always has: errors, 422 format and 503
come from one place. The routes stay FastAPI routes, so the OpenAPI docs are unchanged; the
lean path runs inside the app's own middlewares (API key and body limit, metrics) and sets
`scope["route"]` as the router does, which is the metrics' handler label.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi import FastAPI

# The answer's bytes, or None to let FastAPI's handler answer.
FastAnswer = Callable[[bytes], Awaitable[bytes | None]]

_JSON = b"application/json"
encode_json = msgspec.json.Encoder().encode  # one C call per answer; ~20x json.dumps at 100 rows


def _is_json(scope: Scope) -> bool:
    """The content type FastAPI parses as JSON, in its common spelling (others go the slow
    way, which decides as FastAPI always has)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            value = value.lower()
            return value == _JSON or value.startswith(_JSON + b";")
    return False


class LeanRoutes:
    """ASGI middleware, the innermost of the app's: POSTs to the paths in `routes` take the
    lean path (skipping the router, FastAPI's exception and exit-stack layers), falling back
    to the rest of the app. `routes` is filled by `lean_routes` once the routes exist."""

    def __init__(self, app: ASGIApp, routes: dict[str, tuple[APIRoute, FastAnswer]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route, fast = hot
        scope["route"] = route  # what the router sets on a match
        messages: list[Message] = []
        chunks: list[bytes] = []
        complete = False
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client left (or the guard refused the body): FastAPI's way
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        if complete and _is_json(scope):
            answer = await fast(b"".join(chunks))
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
                return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def lean_routes(
    app: FastAPI, fast: dict[str, FastAnswer]
) -> dict[str, tuple[APIRoute, FastAnswer]]:
    """The FastAPI route of each path in `fast`, with its lean answer (call it after
    `include_router`: including copies the routes)."""
    routes = {r.path: r for r in app.router.routes if isinstance(r, APIRoute)}
    return {path: (routes[path], answer) for path, answer in fast.items()}
