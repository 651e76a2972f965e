"""Progress output: one plain line per change when not on a terminal, a live table when on one."""

from __future__ import annotations

import io

from mlplatform.progress import StatusBoard, counter, status_board


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_mode_prints_one_line_per_state_change_with_elapsed_time() -> None:
    out, clock = io.StringIO(), Clock()
    board = StatusBoard("services", out, live=False, clock=clock)
    board.set("mlflow", "waiting", plain=False)
    clock.now += 1.5
    board.set("mlflow", "starting")
    board.set("mlflow", "starting")  # no change: no line
    clock.now += 2.0
    board.set("mlflow", "healthy", final=True)
    clock.now += 10.0
    assert out.getvalue().splitlines() == [
        "  mlflow                   starting        1.5 s",
        "  mlflow                   healthy         3.5 s",
    ]
    assert board.elapsed("mlflow") == 3.5  # frozen once final


def test_status_board_is_plain_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    with status_board("local stack", stream=out) as board:
        board.set("s3", "healthy", final=True)
        board.note("all healthy")
    assert out.getvalue().splitlines() == [
        "local stack",
        "  s3                       healthy         0.0 s",
        "all healthy",
    ]


def test_live_mode_renders_a_table_of_every_key() -> None:
    out = io.StringIO()
    with status_board("local stack", stream=out, live=True) as board:
        board.set("postgres", "healthy", final=True)
        board.set("airflow-init", "running")
    text = out.getvalue()
    assert "local stack" in text and "postgres" in text and "airflow-init" in text
    assert "healthy" in text and "running" in text


def test_counter_plain_mode_prints_the_total_and_rate_at_the_end() -> None:
    out = io.StringIO()
    with counter("batch scoring", total=300, stream=out, every=3600) as rows:
        for _ in range(3):
            rows.advance(100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("batch scoring: 300/300 rows, ")
    assert lines[0].endswith(" rows/s")
    assert rows.done == 300 and rows.rate() > 0


def test_counter_live_mode_draws_a_bar() -> None:
    out = io.StringIO()
    with counter("batch scoring", total=10, stream=out, live=True) as rows:
        rows.advance(10)
    assert "batch scoring" in out.getvalue() and "10/10" in out.getvalue()
