"""uvicorn's httptools protocol with TCP_NODELAY on every accepted connection.

With `--workers N`, uvicorn's workers share one listening socket, and the connections they
accept keep Nagle's algorithm on (uvicorn issue #3149): a kept-alive client then waits ~40 ms
for each answer's last segment. Setting TCP_NODELAY on the accepted socket removes that delay.
Used by `fastapi/entrypoint.sh` as `--http mlplatform.serving.nodelay:NoDelayHttpTools`.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with suppress(OSError):  # a connection already gone: nothing to tune
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpTools(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
