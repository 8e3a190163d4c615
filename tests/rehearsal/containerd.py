"""A containerd of its own for a test, as a node runs it but in a temporary directory: its own root,
state and socket, the CRI plugin off (no kubelet here), and ``ctr`` pulling the way the kubelet's pulls
resolve a registry (a hosts directory of ``hosts.toml`` files and CAs)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.rehearsal.processes import Service, child_env, run, with_hosts

NAMESPACE = "rehearsal"
PULL_TIMEOUT = 120


class Containerd:
    def __init__(self, directory: Path, hosts_file: Path) -> None:
        self.socket = directory / "containerd.sock"
        self.hosts_file = hosts_file
        config = directory / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{directory / "root"}"\n'
            f'state = "{directory / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{directory / "ttrpc.sock"}"\n'
            '[debug]\n  address = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{directory / "opt"}"\n'
        )
        self.service = Service(
            "containerd", ["containerd", "--config", str(config)], child_env(), directory / "containerd.log",
            self._answers,
        )

    def _answers(self) -> bool:
        return self.socket.exists() and self.ctr("version", timeout=10).returncode == 0

    def ctr(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]
        return run(with_hosts(argv, self.hosts_file), child_env(), timeout)

    def pull(self, reference: str, hosts_dir: Path, user: str) -> subprocess.CompletedProcess[str]:
        """``ctr images pull`` as a node pulls: registry configuration from ``hosts_dir``; unpacked into
        the native snapshotter, which needs no mounts."""
        return self.ctr(
            "images", "pull", "--snapshotter", "native", "--hosts-dir", str(hosts_dir), "--user", user, reference,
            timeout=PULL_TIMEOUT,
        )

    def image_digests(self) -> dict[str, str]:
        """Reference -> manifest digest of the images it holds."""
        listing = self.ctr("images", "list").stdout.splitlines()[1:]
        return {line.split()[0]: line.split()[2] for line in listing if line.strip()}


@contextlib.contextmanager
def running_containerd(hosts_file: Path) -> Iterator[Containerd]:
    """A started containerd, stopped and removed on exit (a short path: its socket's name must fit in
    108 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="ctrd-"))
    daemon = Containerd(directory, hosts_file)
    try:
        daemon.service.start()
        yield daemon
    finally:
        daemon.service.stop()
        shutil.rmtree(directory, ignore_errors=True)


def without_capabilities(argv: Sequence[str], user: int = 0) -> list[str]:
    """``argv`` as ``user`` with no capability at all (empty bounding set), as a container whose security
    context drops them all runs."""
    return [
        "setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        "--no-new-privs", "--", *argv,
    ]
