"""What nginx's workers do while layers stream through them: the files they have in their temp dirs
(nothing, when they stream), their peak memory, and the CPU time they spend."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def workers(master: int) -> list[Path]:
    """/proc entries of the nginx master's children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                found.append(stat.parent)
    return found


def _temp_files(runtime: Path, processes: list[Path]) -> set[str]:
    # nginx unlinks a temp file as soon as it opens it, so look at the workers' open files as well.
    found = {str(p) for p in runtime.glob("*/**/*") if p.is_file()}
    for worker in processes:
        for fd in worker.glob("fd/*"):
            with contextlib.suppress(OSError):
                if (target := os.readlink(fd)).startswith(str(runtime)):
                    found.add(target)
    return found


@contextlib.contextmanager
def temp_files_used(runtime: Path, master: int) -> Iterator[set[str]]:
    """Every file nginx's workers had in their temp dirs while the block ran (polled every 10 ms)."""
    seen: set[str] = set()
    processes = workers(master)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            seen.update(_temp_files(runtime, processes))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def peak_memory_kib(worker: Path) -> int:
    """The worker's peak resident memory (VmHWM) since it started."""
    fields = dict(line.split(":", 1) for line in (worker / "status").read_text().splitlines())
    return int(fields["VmHWM"].split()[0])


def cpu_seconds(processes: list[Path]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for process in processes:
        with contextlib.suppress(OSError):
            fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent on anything but idling and waiting for I/O, all CPUs together."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / CLOCK_TICKS
