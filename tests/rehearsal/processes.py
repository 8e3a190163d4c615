"""Programs the rehearsal starts: each in its own process group, logged to a file, waited for until it
answers, and stopped by its PID (its group, so nginx's workers go too)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# What .ci/run installs (Debian packages), by the binary the rehearsal needs from it.
REQUIRED_BINARIES = {
    "nginx": "nginx-light",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "prometheus-nginx-exporter": "prometheus-nginx-exporter",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "mount": "mount",
    "containerd": "containerd",
    "ctr": "containerd",
}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_binaries() -> list[str]:
    """``binary (Debian package)`` for each required program not installed."""
    return [f"{b} ({p})" for b, p in REQUIRED_BINARIES.items() if shutil.which(b, path=SBIN_PATH) is None]


def free_port(low: int = 0, high: int = 0) -> int:
    """A port free on 127.0.0.1 now: any (the kernel's pick) or one in [low, high]."""
    candidates = random.sample(range(low, high + 1), high - low + 1) if high else [0]
    for port in candidates:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return int(sock.getsockname()[1])
    raise RuntimeError(f"no free port in {low}-{high}")


def with_hosts(argv: Sequence[str], hosts_file: Path) -> list[str]:
    """``argv`` run in a private mount namespace where ``hosts_file`` is /etc/hosts.

    Go programs (skopeo, the registry) have no resolver override; this maps the platform's names to
    127.0.0.1 for them alone and leaves the machine's /etc/hosts untouched.
    """
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(hosts_file), *argv]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no proxy settings or locale surprises from the caller."""
    return {"PATH": SBIN_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"), **(extra or {})}


class Service:
    """One long-running program."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path, ready: Callable[[], bool]):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log = log
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- start {' '.join(self.argv)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not come up; its log ends:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = 10) -> None:
        """Signal the program's process group and wait for all of it; SIGKILL what outlives ``grace``."""
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, sig)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            self.process.wait()
        # Workers outlive a killed master; they are still in the group.
        deadline = time.monotonic() + grace
        while _signal_group(group, 0):
            _signal_group(group, signal.SIGKILL if time.monotonic() > deadline else sig)
            time.sleep(0.05)
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(group: int, sig: int) -> bool:
    """True if the group still had a process to signal."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def run(
    argv: Sequence[str], env: dict[str, str], timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A short-lived command (a client), bounded in time, output captured."""
    return subprocess.run(
        list(argv), env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
