"""Figures the fault tests measure on the real stack (the README's fault table). Each test
records its row here and prints it; `tests/e2e/conftest.py` prints the whole table at the end
of the session, and the fault module at its own end."""

from __future__ import annotations

FIGURES: dict[str, dict[str, object]] = {}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def record(fault: str, **values: object) -> None:
    FIGURES[fault] = values
    print(f"\nFIGURES {fault}: " + "; ".join(f"{k} {_fmt(v)}" for k, v in values.items()))


def table() -> str:
    lines = ["| fault | figures |", "|---|---|"]
    for fault, values in FIGURES.items():
        lines.append(
            f"| {fault} | " + "; ".join(f"{k} {_fmt(v)}" for k, v in values.items()) + " |"
        )
    return "\n".join(lines)
