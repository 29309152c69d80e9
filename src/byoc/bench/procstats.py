"""CPU time and memory of a group of processes, read from ``/proc`` (Linux only).

A server is a tree of processes (serve, nginx and its workers, the gunicorn
master and its workers). :func:`tree_pids` finds them from one root: its
descendants plus every process in its session. Docker containers' processes
are ordinary host processes, so the same reading works for both backends.

CPU is ``utime + stime + cutime + cstime`` per process, so the time of a
child that exits and is reaped during a run still counts (in its parent).
RSS counts a page shared by forked workers once per process; PSS divides
each shared page among the processes sharing it, so summed PSS is the
memory the server really holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    session: int
    #: utime + stime + cutime + cstime, seconds.
    cpu: float


def read_stat(pid: int, proc: Path = PROC) -> Stat | None:
    """``/proc/<pid>/stat``, or None when the process is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid is field 4, session 6, utime..cstime 14..17
    ticks = sum(int(value) for value in fields[11:15])
    return Stat(pid, int(fields[1]), int(fields[3]), ticks / TICKS)


def all_stats(proc: Path = PROC) -> list[Stat]:
    stats = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                stats.append(stat)
    return stats


def tree_pids(root: int, proc: Path = PROC) -> list[int]:
    """*root*, its descendants, and the processes of the session *root* leads."""
    stats = all_stats(proc)
    children: dict[int, list[int]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: set[int] = set()
    pending = [root, *(stat.pid for stat in stats if stat.session == root)]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, []))
    return sorted(pid for pid in found if (proc / str(pid)).exists())


def cpu_seconds(pids: Iterable[int], proc: Path = PROC) -> dict[int, float]:
    """CPU seconds used so far by each of *pids* still alive (children it reaped included)."""
    result = {}
    for pid in pids:
        stat = read_stat(pid, proc)
        if stat is not None:
            result[pid] = stat.cpu
    return result


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_seconds` readings (new processes from zero)."""
    used = sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())
    return round(used, 3)  # clock ticks are 10 ms: no more digits are real


@dataclass(frozen=True)
class Memory:
    processes: int
    #: Sum of VmRSS: shared pages count once per process.
    rss_bytes: int
    #: Sum of Pss from smaps_rollup (shared pages divided among sharers); None if unreadable.
    pss_bytes: int | None


def memory(pids: Iterable[int], proc: Path = PROC) -> Memory:
    count = rss = pss = 0
    pss_known = True
    for pid in pids:
        status = _kib_fields(proc / str(pid) / "status")
        if "VmRSS" not in status:
            continue  # gone, or a kernel thread
        count += 1
        rss += status["VmRSS"]
        rollup = _kib_fields(proc / str(pid) / "smaps_rollup")
        if "Pss" in rollup:
            pss += rollup["Pss"]
        else:
            pss_known = False
    return Memory(count, rss * 1024, pss * 1024 if pss_known and count else None)


def _kib_fields(path: Path) -> dict[str, int]:
    """``Name:   123 kB`` lines of a /proc file, in KiB."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    return fields


def find(argv: list[str], proc: Path = PROC) -> list[int]:
    """Processes whose program is named ``argv[0]`` and whose arguments hold ``argv[1:]`` in order."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not words or Path(words[0]).name != argv[0]:
            continue
        rest = argv[1:]
        if any(words[i:i + len(rest)] == rest for i in range(1, len(words))):
            found.append(int(entry.name))
    return sorted(found)
