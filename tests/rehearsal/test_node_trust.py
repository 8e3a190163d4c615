"""Nodes that pull: the node-trust DaemonSet's exact script writes the registry's trust into a node's
directories, and a real containerd then pulls through the generated nginx and registry, with token auth
through the Portus stand-in; without those files the same pull fails on the certificate."""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.node_trust import CONTAINERD_CERTS_DIR, DOCKER_CERTS_DIR, SOURCE_DIR
from tests.rehearsal.adapt import adapt_node_trust
from tests.rehearsal.containerd import running_containerd, without_capabilities
from tests.rehearsal.image import Image
from tests.rehearsal.processes import Service, child_env, run
from tests.rehearsal.rig import Rig, wait_until
from tests.render import Rendered

# containerd, and a node's root-owned directories, need root.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containerd and a node's directories need root")

# Another registry's configuration on the node, which the DaemonSet must leave as it is.
OTHER_REGISTRY = "mirror.example.org"
OTHER_HOSTS_TOML = f'[host."https://{OTHER_REGISTRY}"]\n  capabilities = ["pull"]\n'


@pytest.fixture
def node_root() -> Iterator[Path]:
    """A temporary root laid out like a node's: directories of root, mode 0755, as /etc is."""
    root = Path(tempfile.mkdtemp(prefix="node-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_the_daemonset_script_lets_containerd_pull_from_the_registry(rig: Rig, small_image: Image, node_root: Path,
                                                                     tmp_path: Path) -> None:
    node = adapt_node_trust(rig.rendered, node_root)
    certs, docker_certs = node.path(CONTAINERD_CERTS_DIR), node.path(DOCKER_CERTS_DIR)
    (certs / OTHER_REGISTRY).mkdir()
    (certs / OTHER_REGISTRY / "hosts.toml").write_text(OTHER_HOSTS_TOML)
    ca = rig.rendered.outputs["caCertificate"]
    registry = rig.registry_host
    reference = f"{registry}/team/node-pull:{small_image.tag}"

    assert rig.login().returncode == 0
    assert (push := rig.push(small_image, "team/node-pull")).returncode == 0, push.stderr
    with running_containerd(rig.site.hosts_file) as containerd:
        untrusted = containerd.pull(reference, certs, f"{rig.username}:{rig.password}")
        assert untrusted.returncode != 0
        assert "x509: certificate signed by unknown authority" in untrusted.stderr, untrusted.stderr

        # The script as the pod runs it: UID 0 without a single capability. It checks every second here.
        # Docker's copy is the last file it writes.
        writer = Service(
            "node-trust", without_capabilities(node.argv), child_env({**node.env, "CHECK_SECONDS": "1"}),
            tmp_path / "node-trust.log", (docker_certs / registry / "ca.crt").exists,
        )
        writer.start()
        try:
            hosts = tomllib.loads((certs / registry / "hosts.toml").read_text())
            assert hosts["host"][f"https://{registry}"]["ca"] == "ca.crt"
            assert (certs / registry / "ca.crt").read_text() == ca
            assert (docker_certs / registry / "ca.crt").read_text() == ca

            pulled = containerd.pull(reference, certs, f"{rig.username}:{rig.password}")
            assert pulled.returncode == 0, pulled.stderr
            assert containerd.image_digests()[reference] == small_image.manifest_digest

            # A new CA reaches the node: the kubelet updates the ConfigMap's copy, the pod follows.
            renewed = ca + ca
            (node.path(SOURCE_DIR) / "ca.crt").write_text(renewed)
            assert wait_until(lambda: (certs / registry / "ca.crt").read_text() == renewed, timeout=10)
            assert wait_until(lambda: (docker_certs / registry / "ca.crt").read_text() == renewed, timeout=10)
        finally:
            writer.stop()
    assert (certs / OTHER_REGISTRY / "hosts.toml").read_text() == OTHER_HOSTS_TOML
    assert sorted(p.name for p in certs.iterdir()) == sorted([OTHER_REGISTRY, registry])
    assert sorted(p.name for p in (certs / registry).iterdir()) == ["ca.crt", "hosts.toml"]


def test_the_node_directories_need_uid_0(rendered: Rendered, node_root: Path) -> None:
    """Why the pod runs as UID 0: the node's directories belong to root, and another UID, which reads the
    same files, cannot write there."""
    node = adapt_node_trust(rendered, node_root)
    tried = run(without_capabilities(node.argv, user=65534), child_env({**node.env, "CHECK_SECONDS": "1"}), 10)
    assert tried.returncode != 0
    assert "Permission denied" in tried.stderr
    assert not (node.path(CONTAINERD_CERTS_DIR) / rendered.outputs["registryHost"]).exists()
