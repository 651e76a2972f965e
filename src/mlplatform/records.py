"""Dataclasses that cross a JSON boundary (an XCom, a lake file): converted only there."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self


class Record:
    """Mix into a dataclass: `to_dict()` and `from_dict()` (unknown keys are ignored, so an
    older record still reads after a field is dropped)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})
