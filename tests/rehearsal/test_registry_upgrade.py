"""An upgrade from a release whose registry ran as UID 1000, on a volume whose driver does not apply
fsGroup (hostPath, local, NFS): the image store keeps the earlier release's owner and 0755 directories,
which the new UID cannot write. The registry pod's init container hands them over, run here with its
own command and identity and with BusyBox's find, chgrp and chmod, as in the registry's Alpine image."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.objects import get, pod_spec
from tests.rehearsal.image import Image, build_image, verify_pulled
from tests.rehearsal.processes import IS_ROOT, SBIN_PATH, PodUser, as_pod_user, child_env, run, with_hosts
from tests.rehearsal.rig import Rig
from tests.render import Rendered

BUSYBOX_APPLETS = ("find", "chgrp", "chmod")


@pytest.fixture(scope="module")
def busybox_path() -> Iterator[str]:
    """A PATH whose find, chgrp and chmod are BusyBox's."""
    if not IS_ROOT:
        pytest.skip("rehearsing the upgrade needs root: the earlier release's files belong to another UID (1000)")
    busybox = shutil.which("busybox", path=SBIN_PATH)
    if busybox is None:
        pytest.fail("this test needs busybox (Debian package busybox); ./test.sh installs it", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="busybox-") as applets:
        os.chmod(applets, 0o755)
        for applet in BUSYBOX_APPLETS:
            os.symlink(busybox, Path(applets, applet))
        yield f"{applets}:{SBIN_PATH}"


def _restart_registry_as(rig: Rig, user: PodUser) -> None:
    rig.registry.stop()
    rig.registry.argv = with_hosts(as_pod_user(rig.site.registry.argv, user), rig.site.hosts_file)
    rig.registry.start()


def test_an_upgrade_hands_the_earlier_releases_image_store_to_the_new_uid(
    rig: Rig, rendered: Rendered, small_image: Image, busybox_path: str, tmp_path: Path,
) -> None:
    pod = pod_spec(get(rendered, "Deployment", "registry"))
    handover = pod["initContainers"][0]
    assert handover["name"] == "file-ownership"
    previous_uid = handover["securityContext"]["runAsUser"]
    # The provisioner's open directory, then everything as the earlier release wrote it.
    os.chown(rig.storage, 0, 0)
    rig.storage.chmod(0o777)
    # Its files are its own (user and group 1000); it reads this rig's Secret files through today's fsGroup.
    current = rig.site.registry.user
    _restart_registry_as(rig, PodUser(previous_uid, previous_uid, (previous_uid, *current.groups)))
    assert rig.login().returncode == 0
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr
    assert (rig.storage / "docker").stat().st_uid == previous_uid

    newer = build_image(tmp_path / "newer", [64 << 10], seed=2, tag="2")
    _restart_registry_as(rig, current)
    assert rig.push(newer, "team/app").returncode != 0, "the new UID wrote into the earlier release's directories"
    assert "permission denied" in rig.registry.log_tail(200)

    rig.registry.stop()
    command = [str(rig.site.registry.path(arg)) if arg.startswith("/") else arg for arg in handover["command"]]
    handed = run(as_pod_user(command, PodUser.of(pod, handover)), child_env({"PATH": busybox_path}), timeout=60)
    assert handed.returncode == 0, handed.stderr
    rig.registry.start()

    assert (push := rig.push(newer, "team/app")).returncode == 0, push.stderr
    for image in (small_image, newer):
        pulled, pull = rig.pull("team/app", image.tag)
        assert pull.returncode == 0, pull.stderr
        verify_pulled(pulled, image)
