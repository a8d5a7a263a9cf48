"""The reaper: ending the processes a clip left behind, however they detached.

A processor may start processes that leave its worker's process group (``setsid``, a
daemon's double fork, ``start_new_session=True``, a server a library starts): a kill of
the group misses them. So a worker process is a child subreaper (Linux:
``PR_SET_CHILD_SUBREAPER``): a process whose parent exits is handed to the worker
instead of to init, and everything a clip started stays below the worker, where it can
be found. After each clip the worker ends what appeared below it during the clip, and
when the worker itself ends it kills all that is below it.

The orchestrator of a process pool is a subreaper too: what a worker killed outright
(SIGKILL: a timeout, its memory, a crash) leaves is handed to it, and it ends those
processes when it learns that the worker died (see ``ProcessExecutor``).

A process is named by its pid and its start time (clock ticks after boot, as
``/proc/PID/stat`` gives it), so a pid reused meanwhile by another process is left alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable
from typing import NamedTuple

GRACE = 0.5  # seconds between SIGTERM and SIGKILL
REAP_SECONDS = 1.0  # at most this long past the grace waiting for what was killed to be gone
_PR_SET_CHILD_SUBREAPER = 36

Procs = dict[int, int]  # pid -> start time


def become_subreaper(on: bool = True) -> bool:
    """Make this process a child subreaper (or stop being one); False where the kernel cannot (not Linux 3.4+)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class ProcStat(NamedTuple):
    """What /proc/PID/stat says of a process."""

    state: str  # R, S, D, Z (a zombie) ...
    ppid: int
    pgid: int
    start: int  # clock ticks after boot


def stat(pid: int) -> ProcStat | None:
    """What /proc/PID/stat says of process `pid`; None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # after the name, which may hold spaces and parentheses
    try:
        return ProcStat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot); None if there is none."""
    found = stat(pid)
    return found.start if found is not None else None


def now_ticks() -> int:
    """The time now in the unit of start times: clock ticks after boot."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def environment_has(pid: int, entry: str) -> bool:
    """Whether process `pid` started with `entry` ("NAME=value") in its environment (as it was at exec)."""
    return entry.encode() in _read(pid, "environ").split(b"\0")


def command_line(pid: int) -> list[bytes]:
    """The arguments process `pid` runs with; [] if there is none (or a zombie)."""
    return _read(pid, "cmdline").split(b"\0")


def has_children() -> bool:
    """Whether this process has any child, running or a zombie: one system call, no /proc walk (the common
    case after a clip is none, and a worker asks after every clip)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # (WNOWAIT: a zombie stays to be seen)
    except ChildProcessError:
        return False
    return True


def children(pid: int | None = None) -> Procs:
    """The child processes of process `pid` (default: this one), zombies included, with their start times."""
    base = f"/proc/{pid if pid is not None else 'self'}/task"
    found: Procs = {}
    try:
        threads = os.listdir(base)
    except OSError:
        return found
    for tid in threads:  # a child belongs to the thread that started it (an orphan: to one of them)
        try:
            with open(f"{base}/{tid}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
        for child in pids:
            started = start_time(child)
            if started is not None:
                found[child] = started
    return found


def tree(roots: Procs) -> Procs:
    """`roots` that still run as the same processes, and every process below them."""
    found: Procs = {}
    todo = list(roots.items())
    while todo:
        pid, started = todo.pop()
        if pid in found or start_time(pid) != started:
            continue
        found[pid] = started
        todo.extend(children(pid).items())
    return found


def end(collect: Callable[[], Procs], grace: float = GRACE) -> int:
    """End the processes `collect()` returns and every process below them; return how many there were.

    SIGTERM first, SIGKILL to what is left after `grace` seconds (0: SIGKILL at once);
    `collect` is asked again on each round, so what they start meanwhile, and orphans
    handed to this process, go too. Those that are (or become) this process's children
    are reaped. Waits at most `grace` + REAP_SECONDS.
    """
    started = time.monotonic()
    term_until = started + grace
    give_up = term_until + REAP_SECONDS
    me = os.getpid()
    signalled: dict[tuple[int, int], int] = {}  # process -> the last signal sent to it
    seen: set[tuple[int, int]] = set()
    while True:
        procs = tree(collect())
        if not procs:
            return len(seen)
        now = time.monotonic()
        sig = signal.SIGTERM if now < term_until else signal.SIGKILL
        for pid, when in procs.items():
            seen.add((pid, when))
            now_stat = stat(pid)
            if now_stat is None or now_stat.start != when:
                continue
            if now_stat.state == "Z":
                if now_stat.ppid == me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                continue  # another's zombie: its parent is below a root too, and is being ended
            if signalled.get((pid, when)) != sig:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
                signalled[(pid, when)] = sig
        if now > give_up:
            return len(seen)
        time.sleep(0.005)
