"""Registry events reach Portus's webhook directly, over TLS verified with the platform CA, and carry
the public registry name that Portus matches against its registry record."""

from __future__ import annotations

from typing import Any

from tests.rehearsal.image import MANIFEST_TYPE, Image
from tests.rehearsal.rig import Rig, wait_until
from tests.rehearsal.standin import WEBHOOK_PATH


def _manifest_push(event: dict[str, Any]) -> bool:
    return event["action"] == "push" and event["target"]["mediaType"] == MANIFEST_TYPE


def test_push_event_reaches_portus(rig: Rig, small_image: Image) -> None:
    assert rig.login().returncode == 0
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr

    [event] = rig.wait_for_events(_manifest_push)
    assert event["request"]["host"] == rig.registry_host
    assert event["target"]["repository"] == "team/app"
    assert event["target"]["digest"] == small_image.manifest_digest
    assert event["target"]["tag"] == small_image.tag
    assert event["actor"]["name"] == rig.username
    post = next(r for r in rig.portus_requests() if r["path"] == WEBHOOK_PATH)
    # Straight from the registry, not through nginx (which would add X-Forwarded-For).
    assert "X-Forwarded-For" not in post["headers"]
    assert post["headers"]["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"


def test_events_need_the_platform_ca(rig: Rig, small_image: Image) -> None:
    # The pod's SSL_CERT_DIR without the trust bundle: the system roots alone.
    rig.registry.stop()
    rig.registry.env["SSL_CERT_DIR"] = rig.registry.env["SSL_CERT_DIR"].split(":")[0]
    rig.registry.start()
    assert rig.login().returncode == 0
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr

    assert wait_until(lambda: "certificate signed by unknown authority" in rig.registry.log.read_text())
    assert not rig.events()
