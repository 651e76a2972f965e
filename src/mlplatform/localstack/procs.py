"""/proc utilities: the processes a stack started, whether they live, how much memory they hold."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Set in every process the stack starts, so `down` can find orphans by it.
STACK_MARKER = "MLPLATFORM_STACK_DIR"


def process_tree_pss_mb(root_pid: int) -> float:
    """Proportional set size of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def stack_processes(stack_dir: Path) -> list[int]:
    """Pids of live processes started by the stack in `stack_dir`.

    A process is the stack's if its environment carries the marker or its working
    directory is inside the stack's folder: setproctitle (Airflow) overwrites the
    environment block, and PostgreSQL changes directory into its data folder.
    """
    marker = f"{STACK_MARKER}={stack_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        ours = marker in environ.split(b"\0") or cwd == stack_dir or stack_dir in cwd.parents
        if ours and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True for a running process; false for a gone or zombie one."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
