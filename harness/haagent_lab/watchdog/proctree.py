"""Find and kill a node's processes, as a machine reset would (for the simulator).

Testing watchdog support: not for production.  Processes are found by pid
(given, read from a pid file, or the postmaster of a data directory) and
extended to all their descendants through /proc; they are all stopped first
(SIGSTOP) and then killed (SIGKILL), so none sees another die.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path


def read_stat(pid: int) -> tuple[int, int] | None:
    """`(ppid, starttime)` of a live process from /proc/PID/stat, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def start_time(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat[1]


def read_pidfile(path: Path) -> int | None:
    """The pid on the first line of a pid file (postmaster.pid, an agent's pid file)."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        pid = int(first)
    except (OSError, ValueError):
        return None
    return pid if pid > 1 else None


def postmaster_pid(data_dir: Path) -> int | None:
    return read_pidfile(data_dir / "postmaster.pid")


def children_map() -> dict[int, list[int]]:
    """ppid -> pids of every live process."""
    result: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = read_stat(int(entry.name))
        if stat is not None:
            result.setdefault(stat[0], []).append(int(entry.name))
    return result


def with_descendants(pids: Iterable[int]) -> list[int]:
    """`pids` (those alive) and all their descendants, parents first."""
    children = children_map()
    seen: list[int] = []
    queue = [pid for pid in pids if read_stat(pid) is not None]
    while queue:
        pid = queue.pop(0)
        if pid in seen or pid <= 1 or pid == os.getpid():
            continue
        seen.append(pid)
        queue.extend(children.get(pid, []))
    return seen


def kill_all(pids: Iterable[int]) -> list[int]:
    """SIGSTOP every pid, then SIGKILL every pid; returns those that were signalled."""
    targets = [pid for pid in dict.fromkeys(pids) if pid > 1 and pid != os.getpid()]
    for pid in targets:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGSTOP)
    killed: list[int] = []
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        killed.append(pid)
    return killed
