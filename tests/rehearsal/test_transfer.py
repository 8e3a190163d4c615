"""A large image through the proxy and back: the digests survive, and nginx streams the layers through
bounded memory, writing nothing to its temp dirs (the pod's small emptyDir)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rehearsal.image import Image, verify_pulled
from tests.rehearsal.rig import EXPOSURES, Rig

# Through the proxy (nodePort) and through the ingress controller (ingress).
pytestmark = pytest.mark.parametrize("rig", EXPOSURES, indirect=True)

# Peak resident memory allowed to one nginx worker over a 256 MiB push and pull: buffers, not layers.
WORKER_PEAK_LIMIT_KIB = 64 << 10


def _workers(master: int) -> list[Path]:
    """/proc entries of the nginx master's children."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                workers.append(stat.parent)
    return workers


def _temp_files(runtime: Path, workers: list[Path]) -> set[str]:
    # nginx unlinks a temp file as soon as it opens it, so look at the workers' open files as well.
    found = {str(p) for p in runtime.glob("*/**/*") if p.is_file()}
    for worker in workers:
        for fd in worker.glob("fd/*"):
            with contextlib.suppress(OSError):
                if (target := os.readlink(fd)).startswith(str(runtime)):
                    found.add(target)
    return found


@contextlib.contextmanager
def temp_files_used(runtime: Path, master: int) -> Iterator[set[str]]:
    """Every file nginx's workers had in their temp dirs while the block ran (polled every 10 ms)."""
    seen: set[str] = set()
    workers = _workers(master)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            seen.update(_temp_files(runtime, workers))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def _peak_memory_kib(worker: Path) -> int:
    fields = dict(line.split(":", 1) for line in (worker / "status").read_text().splitlines())
    return int(fields["VmHWM"].split()[0])


def test_large_image_round_trip_streams_through_memory(rig: Rig, big_image: Image) -> None:
    assert rig.login().returncode == 0
    with temp_files_used(rig.edge_runtime, rig.edge.pid) as temp_files:
        push = rig.push(big_image, "team/big")
        assert push.returncode == 0, push.stderr
        pulled, pull = rig.pull("team/big", big_image.tag)
        assert pull.returncode == 0, pull.stderr

    verify_pulled(pulled, big_image)
    assert not temp_files
    assert "buffered to a temporary file" not in rig.edge.log.read_text()
    assert not [p for p in rig.edge_runtime.glob("*/*")], "temp dirs not empty"
    peaks = {worker.name: _peak_memory_kib(worker) for worker in _workers(rig.edge.pid)}
    assert peaks
    assert max(peaks.values()) < WORKER_PEAK_LIMIT_KIB, peaks
