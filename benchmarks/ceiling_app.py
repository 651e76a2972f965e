"""The bare-ASGI ceiling of the serving benchmark: what uvicorn itself can do on this machine.

    uvicorn benchmarks.ceiling_app:app --workers 1 --no-access-log

It does the least a prediction endpoint must: read the whole body, parse it as JSON, and answer
a constant JSON the size of one prediction (or of `n` predictions for a `{"rows": [...]}` body).
No framework, no validation, no model: /predict's throughput as a fraction of this one's is the
share of the server's capacity the service keeps.
"""

from __future__ import annotations

import json
from typing import Any

PREDICTION = {
    "prediction_id": "p_" + "A" * 26,
    "label": 1,
    "label_name": "disease",
    "probability": 0.8123456789012345,
    "model_name": "heart_disease_classifier",
    "model_version": "1",
}
ONE = json.dumps(PREDICTION).encode()
HEADERS = [(b"content-type", b"application/json")]


def answer(parsed: Any) -> bytes:
    if isinstance(parsed, dict) and isinstance(parsed.get("rows"), list):
        return json.dumps({"predictions": [PREDICTION] * len(parsed["rows"])}).encode()
    return ONE


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status, out = 200, b'{"status": "ok"}'
    if scope["method"] == "POST":
        try:
            out = answer(json.loads(body))
        except ValueError:
            status, out = 422, b'{"detail": "invalid JSON"}'
    headers = [*HEADERS, (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
