"""Token auth through the proxy: the registry sends clients to Portus's public token endpoint, accepts
the tokens Portus signs, and refuses any signed by another key or for another issuer or audience."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rehearsal.image import Image
from tests.rehearsal.rig import EVERY_STACK, Rig, rigs
from tests.rehearsal.standin import TOKEN_PATH, key_id, sign_token

# Through the proxy (nodePort) and through the ingress controller (ingress), with each certificate source.
pytestmark = rigs(*EVERY_STACK)


def _platform_token_key(rig: Rig) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(rig.site.portus.env["PORTUS_KEY_PATH"]).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_challenge_names_the_public_token_realm_and_service(rig: Rig) -> None:
    answer = rig.request("GET", "/v2/")

    assert answer.status == 401
    scheme, _, params = answer.headers["WWW-Authenticate"].partition(" ")
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', params))
    assert scheme == "Bearer"
    assert challenge == {"realm": f"{rig.portal_url}{TOKEN_PATH}", "service": rig.registry_host}
    assert urlsplit(rig.portal_url).port == rig.site.public_port


def test_login_and_push_with_portus_tokens(rig: Rig, small_image: Image) -> None:
    assert rig.login(password="wrong").returncode != 0
    assert (login := rig.login()).returncode == 0, login.stderr
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr

    token_requests = [urlsplit(r["path"]) for r in rig.portus_requests() if r["path"].startswith(TOKEN_PATH)]
    queries = [parse_qs(url.query) for url in token_requests]
    assert {q["service"][0] for q in queries} == {rig.registry_host}
    assert ["repository:team/app:pull,push"] in [q.get("scope") for q in queries]


@pytest.mark.parametrize(
    ("signer", "issuer", "audience", "status"),
    [
        ("platform", "portus", "registry", 200),
        ("other key", "portus", "registry", 401),
        ("other key posing as the platform's", "portus", "registry", 401),
        ("platform", "someone else", "registry", 401),
        ("platform", "portus", "another registry", 401),
    ],
)
def test_registry_accepts_only_tokens_portus_signs(rig: Rig, signer: str, issuer: str, audience: str,
                                                  status: int) -> None:
    platform_key = _platform_token_key(rig)
    key = platform_key if signer == "platform" else rsa.generate_private_key(65537, 2048)
    token, _ = sign_token(
        key,
        rig.site.portus.env["PORTUS_MACHINE_FQDN_VALUE"] if issuer == "portus" else "portus.example.org",
        rig.registry_host if audience == "registry" else "registry.example.org",
        ["repository:team/app:pull"],
        rig.username,
        kid=key_id(platform_key.public_key()) if signer.endswith("platform's") else None,
    )

    answer = rig.request("GET", "/v2/", headers={"Authorization": f"Bearer {token}"})

    assert answer.status == status, answer.body
