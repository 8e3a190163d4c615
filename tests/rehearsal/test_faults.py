"""Faults: the registry killed in the middle of a push, and Portus down."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.rehearsal.image import MANIFEST_TYPE, Image, verify_pulled
from tests.rehearsal.rig import Rig, wait_until

# Kill the registry once this much of the large layer is on its disk: well into the upload.
KILL_AFTER_BYTES = 48 << 20


def _largest_upload(repository_dir: Path) -> int:
    """Bytes received so far by the largest upload in progress."""
    largest = 0
    for data in repository_dir.glob("_uploads/*/data"):
        with contextlib.suppress(FileNotFoundError):
            largest = max(largest, data.stat().st_size)
    return largest


def test_push_interrupted_by_a_registry_crash_is_retried_cleanly(rig: Rig, big_image: Image) -> None:
    assert rig.login().returncode == 0
    repository_dir = rig.storage / "docker/registry/v2/repositories/team/big"
    with ThreadPoolExecutor(1) as pool:
        pushing = pool.submit(rig.push, big_image, "team/big")
        assert wait_until(lambda: _largest_upload(repository_dir) > KILL_AFTER_BYTES, timeout=120, interval=0.01)
        rig.registry.kill()
        assert pushing.result().returncode != 0
    rig.registry.start()

    # Nothing half-written is served: neither the interrupted layer nor a manifest.
    token = rig.token("repository:team/big:pull").json()["token"]
    bearer = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPE}
    assert rig.request("HEAD", f"/v2/team/big/blobs/{big_image.layer_digests[0]}", headers=bearer).status == 404
    assert rig.request("GET", f"/v2/team/big/manifests/{big_image.tag}", headers=bearer).status == 404

    assert (retry := rig.push(big_image, "team/big")).returncode == 0, retry.stderr
    # The http secret came from REGISTRY_HTTP_SECRET (the Secret), so upload state survives restarts.
    assert "No HTTP secret provided" not in rig.registry.log.read_text()
    pulled, pull = rig.pull("team/big", big_image.tag)
    assert pull.returncode == 0, pull.stderr
    verify_pulled(pulled, big_image)


def test_portus_down_fails_fast_and_recovers(rig: Rig) -> None:
    assert rig.token().status == 200
    rig.portus.kill()

    started = time.monotonic()
    token = rig.token()
    portal = rig.request("GET", "/", base=rig.portal_url)
    elapsed = time.monotonic() - started
    assert 500 <= token.status < 600
    assert 500 <= portal.status < 600
    assert elapsed < 2
    login = rig.login()
    assert login.returncode != 0
    assert "502" in login.stderr

    rig.portus.start()
    assert rig.token().status == 200
    assert rig.login().returncode == 0
