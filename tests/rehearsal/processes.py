"""Programs the rehearsal starts: each in its own process group, logged to a file, waited for until it
answers, and stopped by its PID (its group, so nginx's workers go too).

Run as root, the servers run under their pods' own UIDs and groups (``as_pod_user``) and clients get a
private mount namespace with their own /etc/hosts (``with_hosts``). Run as another user, everything runs
as that user, and the mount namespace lives in a user namespace of its own, where the kernel allows
that (``namespaces_unavailable`` says why not, when it does not).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What .ci/run installs (Debian packages), by the binary the rehearsal needs from it.
REQUIRED_BINARIES = {
    "nginx": "nginx-light",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "prometheus-nginx-exporter": "prometheus-nginx-exporter",
    # An HTTP/2 client (skopeo speaks HTTP/1.1 even where the ingress controller offers HTTP/2).
    "curl": "curl",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "mount": "mount",
    "containerd": "containerd",
    "ctr": "containerd",
}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IS_ROOT = os.geteuid() == 0


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


def _unshare() -> list[str]:
    """A private mount namespace; without root, inside a user namespace where this user is root."""
    user_namespace = [] if IS_ROOT else ["--user", "--map-root-user"]
    return ["unshare", *user_namespace, "--mount", "--propagation", "private", "--"]


def with_hosts(argv: Sequence[str], hosts_file: Path) -> list[str]:
    """``argv`` run in a private mount namespace where ``hosts_file`` is /etc/hosts.

    Go programs (skopeo, the registry) have no resolver override; this maps the platform's names to
    127.0.0.1 for them alone and leaves the machine's /etc/hosts untouched.
    """
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return [*_unshare(), "sh", "-c", script, str(hosts_file), *argv]


@functools.cache
def namespaces_unavailable() -> str | None:
    """Why ``with_hosts`` cannot work here, or None when it can."""
    if IS_ROOT:
        return None
    probe = subprocess.run([*_unshare(), "mount", "--bind", "/etc/hosts", "/etc/hosts"],
                           capture_output=True, text=True, check=False, env=child_env())
    if probe.returncode == 0:
        return None
    return (
        "the rehearsal gives each client its own /etc/hosts in a private mount namespace, which needs root or"
        f" unprivileged user namespaces; `unshare --user --map-root-user --mount` failed: {probe.stderr.strip()}"
    )


@dataclass(frozen=True)
class PodUser:
    """The identity a container runs under: its user, primary group and supplementary groups."""

    user: int
    group: int
    groups: tuple[int, ...]

    @classmethod
    def of(cls, pod: Mapping[str, Any], container: Mapping[str, Any]) -> PodUser:
        """As the kubelet starts ``container`` of ``pod``: the fsGroup is a supplementary group."""
        pod_context, context = pod.get("securityContext", {}), container.get("securityContext", {})
        user = context.get("runAsUser", pod_context["runAsUser"])
        group = context.get("runAsGroup", pod_context["runAsGroup"])
        groups = [group, pod_context["fsGroup"]] if "fsGroup" in pod_context else [group]
        return cls(user, group, tuple(dict.fromkeys(groups)))


def as_pod_user(argv: Sequence[str], user: PodUser) -> list[str]:
    """``argv`` run as ``user`` when the rehearsal runs as root; otherwise as the rehearsal's own user,
    which stands for an arbitrary non-root UID (one that owns every file the rehearsal writes)."""
    if not IS_ROOT:
        return list(argv)
    groups = ",".join(map(str, user.groups))
    return ["setpriv", f"--reuid={user.user}", f"--regid={user.group}", f"--groups={groups}", "--", *argv]


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
            # Programs that reopen /dev/stderr (nginx) do so under their own UID.
            self.log.chmod(0o666)
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
