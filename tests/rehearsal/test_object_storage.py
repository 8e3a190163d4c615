"""Object storage: two registry replicas (Debian's Distribution, which has the s3-aws driver) on one
bucket of a local S3 service (moto's server), behind the generated nginx.conf whose upstream reaches
both, with tokens from the Portus stand-in and a Redis blob-descriptor cache (Debian's redis-server).

The stack is rendered with the credentials and the Redis password in stack config, so they reach the
registry as the pod gets them: env from the Secrets the program creates. moto does not check request
signatures, so the credentials are proven to arrive, not to be right. Each registry runs with the pod's
environment alone: an ``AWS_CA_BUNDLE`` inherited from the caller makes Distribution panic at start.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # comes with moto[server]
import pytest

from tests.objects import container, env, get, registry_config
from tests.rehearsal.image import Image, build_image, verify_pulled
from tests.rehearsal.processes import SBIN_PATH, Service, child_env, free_port, run
from tests.rehearsal.rig import Response, Rig, https, render_rehearsal_stack, running, wait_until
from tests.render import Rendered

BUCKET = "portus-registry"
ROOT = "/rehearsal"
ACCESS_KEY, SECRET_KEY = "AKIAREHEARSAL0000001", "rehearsal/secret+key/0123456789abcdefABCDEF"
REDIS_PASSWORD, REDIS_DB = "redis-rehearsal-password", 3
MIB = 1 << 20


@dataclass
class Redis:
    port: int

    def cli(self, *args: str) -> str:
        done = run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "-a", REDIS_PASSWORD, "--no-auth-warning",
                    "-n", str(REDIS_DB), *args], child_env(), timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free port, with the bucket created: its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = Service("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                     child_env(), log, lambda: _answers(url))
    server.start(timeout=60)
    try:
        _s3(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if shutil.which("redis-server", path=SBIN_PATH) is None:
        pytest.fail("this test needs redis-server (Debian package redis-server); .ci/run installs it", pytrace=False)
    directory = tmp_path_factory.mktemp("redis")
    cache = Redis(free_port())
    server = Service(
        "redis",
        ["redis-server", "--bind", "127.0.0.1", "--port", str(cache.port), "--requirepass", REDIS_PASSWORD,
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        child_env(), directory / "redis.log", lambda: _redis_up(cache),
    )
    server.start()
    try:
        yield cache
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_rendered(rendered: Rendered, object_store: str, redis: Redis) -> Rendered:
    # ``rendered`` (the plain rehearsal stack) checks first that the programs are installed.
    return render_rehearsal_stack(
        registryStorageSize=None,
        registryStorage={
            "type": "s3", "bucket": BUCKET, "region": "us-east-1", "regionEndpoint": object_store,
            "rootDirectory": ROOT, "chunkSize": "5Mi", "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY,
        },
        registryReplicas=2,
        registryCache={"type": "redis", "address": f"127.0.0.1:{redis.port}", "password": REDIS_PASSWORD,
                       "db": REDIS_DB},
    )


@pytest.fixture
def rig(s3_rendered: Rendered) -> Iterator[Rig]:
    with running(s3_rendered, registry_replicas=2) as started:
        yield started


@pytest.fixture(scope="module")
def layered_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A 12 MiB layer (three multipart parts of 5 MiB chunks) and two small ones."""
    return build_image(tmp_path_factory.mktemp("s3-image"), [12 * MIB, 300 << 10, 4 << 10], seed=8)


def _s3(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _redis_up(cache: Redis) -> bool:
    try:
        return cache.cli("PING").strip() == "PONG"
    except AssertionError:
        return False


def _bucket_keys(url: str) -> list[str]:
    pages = _s3(url).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_credentials_reach_the_registry_only_through_secrets(s3_rendered: Rendered) -> None:
    storage = registry_config(s3_rendered)["storage"]
    assert "accesskey" not in storage["s3"] and "secretkey" not in storage["s3"]
    assert "password" not in registry_config(s3_rendered)["redis"]
    registry_env = env(container(get(s3_rendered, "Deployment", "registry")))
    for name in ("REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY", "REGISTRY_REDIS_PASSWORD"):
        assert registry_env[name][0] == "secret", name
    assert not [name for name in registry_env if name.startswith("AWS_")]


def test_push_and_pull_through_the_proxy_reach_both_replicas_on_one_bucket(
    rig: Rig, layered_image: Image, object_store: str, redis: Redis
) -> None:
    assert rig.login().returncode == 0
    push = rig.push(layered_image, "team/app")
    assert push.returncode == 0, push.stderr
    pulled, pull = rig.pull("team/app", layered_image.tag)
    assert pull.returncode == 0, pull.stderr
    verify_pulled(pulled, layered_image)

    # nginx spread the requests over both replicas, and both served them from the same bucket.
    for registry in rig.registries:
        assert "/v2/team/app/" in registry.log.read_text(), f"{registry.name} served none of the requests"
    keys = _bucket_keys(object_store)
    for digest in layered_image.layer_digests:
        hexdigest = digest.removeprefix("sha256:")
        assert f"{ROOT.lstrip('/')}/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data" in keys
    assert not any("/_uploads/" in key for key in keys), "finished uploads left their parts behind"

    # The blob descriptors are in Redis, where every replica finds them.
    for digest, size in zip(layered_image.layer_digests, _layer_sizes(pulled, layered_image), strict=True):
        descriptor = dict(zip(*[iter(redis.cli("HGETALL", f"blobs::{digest}").split())] * 2, strict=True))
        assert descriptor["digest"] == digest
        assert int(descriptor["size"]) == size


def _layer_sizes(pulled: Path, image: Image) -> list[int]:
    return [(pulled / digest.removeprefix("sha256:")).stat().st_size for digest in image.layer_digests]


def test_a_chunked_upload_resumes_on_the_other_replica(rig: Rig) -> None:
    token = rig.token("repository:team/chunked:push,pull").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    host = rig.site.edge.upstream_hosts["registry"]
    replicas = [f"https://{host}:{port}" for port, _ in rig.ports.registries]
    blob = os.urandom(6 * MIB) + os.urandom(6 * MIB) + os.urandom(MIB)
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"

    def send(replica: int, method: str, location: str, body: bytes = b"", **headers: str) -> Response:
        # Straight to one replica (nginx would pick either): the upload state travels in the URL, signed
        # with the http.secret that every replica shares.
        path = location.split("/v2/", 1)[1]
        return https(f"{replicas[replica]}/v2/{path}", method, ca=rig.ca_file, body=body,
                     headers={**bearer, **headers}, timeout=60)

    started = send(0, "POST", "/v2/team/chunked/blobs/uploads/")
    assert started.status == 202, started.body
    location = started.headers["Location"]
    offset = 0
    for replica, size in ((1, 6 * MIB), (0, 6 * MIB)):
        chunk = blob[offset:offset + size]
        answer = send(replica, "PATCH", location, chunk, **{
            "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + size - 1}",
        })
        assert answer.status == 202, (replica, answer.body)
        offset += size
        assert answer.headers["Range"] == f"0-{offset - 1}"
        location = answer.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = send(1, "PUT", f"{location}{separator}digest={digest}", blob[offset:],
                **{"Content-Type": "application/octet-stream"})
    assert done.status == 201, done.body

    fetched = rig.request("GET", f"/v2/team/chunked/blobs/{digest}", headers=bearer, timeout=60)
    assert fetched.status == 200
    assert hashlib.sha256(fetched.body).hexdigest() == digest.removeprefix("sha256:")
    assert wait_until(lambda: all("/v2/team/chunked/blobs/uploads/" in r.log.read_text() for r in rig.registries))
