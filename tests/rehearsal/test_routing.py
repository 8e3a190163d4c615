"""Routing at the edge: the token and webhook endpoints and everything outside ``/v2/`` go to Portus,
the rest of ``/v2/`` to the registry, with the headers each expects."""

from __future__ import annotations

import json

from tests.rehearsal.rig import EVERY_STACK, Rig, rigs
from tests.rehearsal.standin import TOKEN_PATH, WEBHOOK_PATH

# Through the proxy (nodePort) and through the ingress controller (ingress), with each certificate source.
pytestmark = rigs(*EVERY_STACK)

API_VERSION = "Docker-Distribution-Api-Version"


def test_portus_paths_reach_portus(rig: Rig) -> None:
    token = rig.token("repository:team/app:pull")
    webhook = rig.request("POST", WEBHOOK_PATH, body=b'{"events": []}',
                          headers={"Content-Type": "application/vnd.docker.distribution.events.v1+json"})
    portal = rig.request("GET", "/", base=rig.portal_url)

    assert (token.status, webhook.status, portal.status) == (200, 202, 200)
    assert set(token.json()) >= {"token", "expires_in", "issued_at"}
    seen = rig.portus_requests()
    assert [(r["method"], r["path"].split("?")[0]) for r in seen] == [
        ("GET", TOKEN_PATH), ("POST", WEBHOOK_PATH), ("GET", "/"),
    ]
    # Portus builds its links and matches registries from these.
    assert [r["headers"]["Host"] for r in seen] == [rig.portal_url.removeprefix("https://"), rig.registry_host,
                                                    rig.portal_url.removeprefix("https://")]
    assert {r["headers"]["X-Forwarded-Proto"] for r in seen} == {"https"}
    assert json.loads(seen[1]["body"]) == {"events": []}


def test_other_v2_paths_reach_the_registry(rig: Rig) -> None:
    token = rig.token("repository:team/app:pull").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    base = rig.request("GET", "/v2/")
    authorized = rig.request("GET", "/v2/", headers=bearer)
    tags = rig.request("GET", "/v2/team/app/tags/list", headers=bearer)
    # Only the exact token path is Portus's.
    near_token = rig.request("GET", f"{TOKEN_PATH}s", headers=bearer)

    assert (base.status, authorized.status, tags.status, near_token.status) == (401, 200, 404, 404)
    assert tags.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    for answer in (base, authorized, tags, near_token):
        assert answer.headers[API_VERSION] == "registry/2.0"
        # Set by the registry's config (http.headers): the answer is the registry's own.
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert [r["path"].split("?")[0] for r in rig.portus_requests()] == [TOKEN_PATH]
