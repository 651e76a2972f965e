"""A pure ASGI middleware that bounds what a request may cost before any work is done:
the API key is checked on the raw header bytes, and a body over the limit gets a 413
before it is read whole or parsed."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_KEY_HEADER = "X-API-Key"
_HEADER = API_KEY_HEADER.lower().encode()


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Limits:
    """The API key on `protected` paths and the body limit, checked on the raw scope."""

    def __init__(self, api_key: str, max_body_bytes: int, protected: tuple[str, ...]) -> None:
        self.key = api_key.encode()
        self.max_body = max_body_bytes
        self.protected = protected

    def authorised(self, scope: Scope) -> bool:
        if not self.key or not scope["path"].startswith(self.protected):
            return True
        sent = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        return hmac.compare_digest(sent, self.key)  # bytes: any key compares, none raises

    def within(self, length: bytes) -> bool:
        """A declared Content-Length is a number within the limit."""
        return length.isdigit() and int(length) <= self.max_body


class RequestGuard:
    """401 without the right key on `protected` paths; 413 for bodies over `max_body_bytes`."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.limits.authorised(scope):
            await _reply(send, 401, f"missing or wrong API key in the {API_KEY_HEADER} header")
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and not self.limits.within(length):
            await _reply(send, 413, f"request body over {self.limits.max_body} bytes")
            return
        if length is not None:
            # The server reads exactly Content-Length bytes as the body (a longer one is a
            # protocol error it answers itself): it is within the limit, nothing to count.
            await self.app(scope, receive, send)
            return
        received = 0
        started = refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.limits.max_body:
                    # A chunked body without a length that grew past the limit: answer now,
                    # and tell the app the client left, so it stops reading.
                    refused = True
                    if not started:
                        await _reply(send, 413, f"request body over {self.limits.max_body} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 went out already; drop what the app answers to the disconnect
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)
