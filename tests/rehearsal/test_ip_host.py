"""A cluster without DNS: Docker clients reach the registry by a node's IP address. 127.0.0.2 stands for
that address (every 127.0.0.0/8 address is local on Linux) and nginx listens on it; the edge certificate
names it as an IP SAN, the token realm and service carry it, and skopeo logs in, pushes and pulls
through the real nginx and registry with nothing mapping a name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.rehearsal.image import Image, verify_pulled
from tests.rehearsal.rig import Rig, render_rehearsal_stack, running
from tests.rehearsal.standin import TOKEN_PATH
from tests.render import Rendered

NODE_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def ip_rendered(rehearsal_ready: None) -> Rendered:
    return render_rehearsal_stack(host=NODE_ADDRESS, registryHost=None)


@pytest.fixture
def ip_rig(ip_rendered: Rendered) -> Iterator[Rig]:
    with running(ip_rendered) as started:
        yield started


def test_docker_clients_reach_the_registry_by_ip_address(ip_rig: Rig, small_image: Image) -> None:
    rig = ip_rig
    address = f"{NODE_ADDRESS}:{rig.site.public_port}"
    assert (rig.registry_host, rig.portal_url) == (address, f"https://{address}")
    assert rig.site.public_addresses == [NODE_ADDRESS]

    challenge = rig.request("GET", "/v2/")
    assert challenge.status == 401
    assert dict(re.findall(r'(\w+)="([^"]*)"', challenge.headers["WWW-Authenticate"])) == {
        "realm": f"https://{address}{TOKEN_PATH}", "service": address,
    }
    assert (login := rig.login()).returncode == 0, login.stderr
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr
    pulled, pull = rig.pull("team/app", small_image.tag)
    assert pull.returncode == 0, pull.stderr
    verify_pulled(pulled, small_image)

    # Portus finds its registry record by these: the token's service and the host of registry events.
    token_requests = [r for r in rig.portus_requests() if r["path"].startswith(TOKEN_PATH)]
    assert {parse_qs(urlsplit(r["path"]).query)["service"][0] for r in token_requests} == {address}
    assert {r["headers"]["Host"] for r in token_requests} == {address}
    pushes = rig.wait_for_events(lambda event: event["action"] == "push")
    assert pushes and {event["request"]["host"] for event in pushes} == {address}
