"""A large image through the edge (the proxy, or the ingress controller) and back: the digests survive,
and nginx streams the layers through bounded memory, writing nothing to its temp dirs (the proxy pod's
small emptyDir, the controller's /tmp/nginx)."""

from __future__ import annotations

from tests.rehearsal.image import Image, verify_pulled
from tests.rehearsal.proxy_stats import peak_memory_kib, temp_files_used, workers
from tests.rehearsal.rig import Rig, rigs

# One large round trip through each edge: the certificate source changes the handshake only.
pytestmark = rigs(("nodePort", "selfSigned"), ("ingress", "secret"))

# Peak resident memory allowed to one nginx worker over a 256 MiB push and pull: buffers, not layers.
WORKER_PEAK_LIMIT_KIB = 64 << 10


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
    peaks = {worker.name: peak_memory_kib(worker) for worker in workers(rig.edge.pid)}
    assert peaks
    assert max(peaks.values()) < WORKER_PEAK_LIMIT_KIB, peaks
