"""What the fault tests and the soak benchmark read from a running local stack: a service's
process (from supervisord), its memory (/proc), its Prometheus metrics and its readiness."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from mlplatform.settings import Settings


def service_pid(settings: Settings, name: str = "fastapi") -> int:
    """The pid supervisord runs for program `name` (the entrypoints `exec` the server)."""
    from mlplatform.localstack import LocalStack

    info = LocalStack(settings).rpc().getProcessInfo(name)
    assert info["statename"] == "RUNNING", f"{name} is {info['statename']}"
    return int(info["pid"])


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory line of /proc/<pid>/status (VmRSS: now; VmHWM: the peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Restart VmHWM from the current RSS (Linux: `5` to clear_refs), to measure one peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def metrics(settings: Settings) -> dict[str, float]:
    """The service's /metrics as {"name{labels}": value} (samples only, no comments)."""
    text = httpx.get(f"{settings.fastapi_url}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def counter(values: dict[str, float], prefix: str) -> float:
    """The sum of every sample whose name starts with `prefix` (all label sets)."""
    return sum(v for k, v in values.items() if k.startswith(prefix))


def ready(settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{settings.fastapi_url}/ready", timeout=10).json()
    return body
