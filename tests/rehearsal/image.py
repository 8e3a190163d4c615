"""Test images built without a Docker daemon: an OCI image layout (skopeo's ``oci:`` transport).

Each layer is a tar holding one file of seeded pseudo-random bytes (incompressible), gzip-wrapped at
level 0: skopeo then pushes it as it is (it would gzip a plain tar layer, changing every digest) and no
CPU goes to compressing random data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    manifest_digest: str
    layer_digests: tuple[str, ...]
    size: int
    """Bytes of all layers, as pushed."""

    @property
    def reference(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


class _HashingWriter:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return int(self.out.write(data))

    def flush(self) -> None:
        self.out.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256.hexdigest()}"


def _write_blob(blobs: Path, content: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(content).hexdigest()
    (blobs / digest).write_bytes(content)
    return {"digest": f"sha256:{digest}", "size": len(content)}


def _write_layer(blobs: Path, name: str, size: int, rng: random.Random) -> tuple[dict[str, Any], str]:
    """The layer's descriptor and its diff ID (the digest of the uncompressed tar)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    partial = blobs / f"{name}.partial"
    with partial.open("wb") as out:
        compressed = _HashingWriter(out)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=0, mtime=0) as gz:
            tar = _HashingWriter(gz)
            tar.write(info.tobuf())
            for offset in range(0, size, CHUNK):
                tar.write(rng.randbytes(min(CHUNK, size - offset)))
            # The file padded to a whole block, then the two zero blocks that end an archive.
            tar.write(bytes(-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
    partial.rename(blobs / compressed.digest.removeprefix("sha256:"))
    return {"mediaType": LAYER_TYPE, "digest": compressed.digest, "size": compressed.size}, tar.digest


def build_image(layout: Path, layer_sizes: Sequence[int], seed: int, tag: str = "latest") -> Image:
    """An image of one layer per size (bytes of random content), written as an OCI layout."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    rng = random.Random(seed)
    layers, diff_ids = zip(
        *(_write_layer(blobs, f"layer-{i}.bin", s, rng) for i, s in enumerate(layer_sizes)), strict=True
    )
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, **_write_blob(blobs, json.dumps(config).encode())},
        "layers": list(layers),
    }
    manifest_descriptor = _write_blob(blobs, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                **manifest_descriptor,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return Image(
        layout, tag, manifest_descriptor["digest"], tuple(layer["digest"] for layer in layers),
        sum(layer["size"] for layer in layers),
    )


def verify_pulled(directory: Path, image: Image) -> None:
    """Check a ``dir:`` copy of ``image``: the same manifest bytes and every blob matching its digest."""
    manifest = (directory / "manifest.json").read_bytes()
    if f"sha256:{hashlib.sha256(manifest).hexdigest()}" != image.manifest_digest:
        raise AssertionError("pulled manifest differs from the pushed one")
    for digest in (*image.layer_digests, json.loads(manifest)["config"]["digest"]):
        sha256 = hashlib.sha256()
        with (directory / digest.removeprefix("sha256:")).open("rb") as blob:
            while chunk := blob.read(CHUNK):
                sha256.update(chunk)
        if f"sha256:{sha256.hexdigest()}" != digest:
            raise AssertionError(f"pulled blob {digest} does not match its digest")
