"""Where the registry keeps image data. Each backend is one small class that contributes what it owns:
its entries of ``storage`` in ``config.yml``, the objects it declares (a claim, a credentials Secret), the
volumes, mounts and env the registry container needs, the services outside the namespace it connects
to, and whether several registry replicas may share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.validation import SecretText

STORAGE_ROOT = "/var/lib/registry"
COMPONENT = "registry"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")
# Keys of the Secret with object store credentials, whether the user's own or the one made from config.
ACCESS_KEY = "accessKey"
SECRET_KEY = "secretKey"
# Distribution 2.8's s3-aws driver: multipart parts must be 5 MiB to 5 GiB, or it refuses to start.
S3_MIN_CHUNK, S3_MAX_CHUNK = 5 << 20, 5 << 30


@dataclass
class StorageAttachment:
    """What the registry container needs to reach its storage."""

    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    secrets: list[pulumi.Input[str]] = field(default_factory=list)
    """Credential values the program holds: a change rolls the registry pods."""


class StorageBackend(Protocol):
    @property
    def shared(self) -> bool:
        """Whether several registry pods may use the storage at once (more replicas, rolling updates)."""

    def driver_config(self) -> dict[str, Any]:
        """The backend's entries of ``storage`` in config.yml (its driver, redirects); never a credential."""

    def attach(self, name: str, namespace: pulumi.Input[str], kept: kube.KeptData,
               parent: pulumi.Resource) -> StorageAttachment:
        """Declares what the backend owns, as children of ``parent``, and how the registry reaches it."""

    def remotes(self) -> list[kube.Remote]:
        """Services outside the namespace the registry connects to for its data."""

    def describe(self) -> dict[str, str]:
        """Where the data is, for the stack's outputs; never a credential."""


@dataclass(frozen=True)
class FilesystemStorage:
    """A PersistentVolumeClaim mounted at STORAGE_ROOT: created (and kept on destroy with the other
    data), or an existing claim the user names."""

    size: str
    storage_class: str | None = None
    existing_claim: str | None = None
    access_mode: str = "ReadWriteOnce"
    """ReadWriteMany (an NFS-like class) lets several registry pods on several nodes share the claim."""

    @property
    def shared(self) -> bool:
        return self.access_mode == "ReadWriteMany"

    def driver_config(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": STORAGE_ROOT}}

    def remotes(self) -> list[kube.Remote]:
        return []

    def describe(self) -> dict[str, str]:
        return {"type": "filesystem", "claim": self.existing_claim or f"{COMPONENT}-data",
                "accessMode": self.access_mode}

    def attach(self, name: str, namespace: pulumi.Input[str], kept: kube.KeptData,
               parent: pulumi.Resource) -> StorageAttachment:
        claim_name: pulumi.Input[str]
        if self.existing_claim:
            claim_name = self.existing_claim
        else:
            claim = kept.claim(f"{name}-data", f"{name}-data", namespace, COMPONENT, self.size, self.storage_class,
                               parent, self.access_mode)
            claim_name = claim.metadata.name
        return StorageAttachment(
            volumes=[k8s.core.v1.VolumeArgs(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=claim_name),
            )],
            mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path=STORAGE_ROOT)],
        )


@dataclass(frozen=True)
class S3Storage:
    """An S3 bucket (AWS S3, MinIO, Ceph RGW, GCS's S3 interface, Cloudflare R2) through Distribution
    2.8's s3-aws driver; stateless registry pods share it.

    Credentials come from the user's Secret (``credentials_secret``, keys accessKey and secretKey), from
    stack config (a Secret the backend creates), or, with neither, from the pod's cloud identity (the
    driver's chain ends with the environment and the instance role, which IRSA and workload identity
    feed). They reach the registry only as ``REGISTRY_STORAGE_S3_*`` env from a Secret: Distribution
    maps those over ``storage.s3`` in config.yml, which stays free of them.
    """

    bucket: str
    region: str
    region_endpoint: str | None = None
    """``https://host[:port]`` of a service other than AWS; the driver then makes path-style requests."""
    root_directory: str | None = None
    secure: bool = True
    chunk_size: int | None = None
    credentials_secret: str | None = None
    access_key: SecretText | None = None
    secret_key: SecretText | None = None
    redirect: bool = False
    """Send clients to the bucket (pre-signed URLs) for blob downloads instead of streaming them."""
    cidrs: tuple[str, ...] = ()
    """Address ranges of the object store, to narrow the NetworkPolicy; empty: any address."""

    @property
    def shared(self) -> bool:
        return True

    @property
    def port(self) -> int:
        """The TCP port the registry connects to: the endpoint's, else HTTPS's (HTTP's when not secure)."""
        if self.region_endpoint:
            endpoint = urlsplit(self.region_endpoint)
            return endpoint.port or (443 if endpoint.scheme == "https" else 80)
        return 443 if self.secure else 80

    def driver_config(self) -> dict[str, Any]:
        # Only keys the s3-aws driver of Distribution 2.8 reads (registry/storage/driver/s3-aws/s3.go,
        # FromParameters); it has no path-style switch: a regionendpoint makes requests path-style.
        driver: dict[str, Any] = {"bucket": self.bucket, "region": self.region}
        if self.region_endpoint:
            driver["regionendpoint"] = self.region_endpoint
        if self.root_directory:
            driver["rootdirectory"] = self.root_directory
        driver["secure"] = self.secure
        if self.chunk_size:
            driver["chunksize"] = self.chunk_size
        # The registry redirects blob downloads to the storage unless told not to (handlers/app.go).
        return {"s3": driver, "redirect": {"disable": not self.redirect}}

    def attach(self, name: str, namespace: pulumi.Input[str], kept: kube.KeptData,
               parent: pulumi.Resource) -> StorageAttachment:
        secret: pulumi.Input[str] | None = self.credentials_secret
        held: list[pulumi.Input[str]] = []
        if self.access_key and self.secret_key:
            held = [self.access_key.output(), self.secret_key.output()]
            secret = kube.opaque_secret(
                f"{name}-storage", f"{name}-storage", namespace, COMPONENT,
                {ACCESS_KEY: self.access_key.output(), SECRET_KEY: self.secret_key.output()},
                pulumi.ResourceOptions(parent=parent),
            ).metadata.name
        if secret is None:
            return StorageAttachment()
        return StorageAttachment(
            env=[
                kube.secret_env("REGISTRY_STORAGE_S3_ACCESSKEY", secret, ACCESS_KEY),
                kube.secret_env("REGISTRY_STORAGE_S3_SECRETKEY", secret, SECRET_KEY),
            ],
            secrets=held,
        )

    def remotes(self) -> list[kube.Remote]:
        return [kube.Remote(self.port, self.cidrs)]

    def describe(self) -> dict[str, str]:
        where = {"type": "s3", "bucket": self.bucket, "region": self.region}
        if self.region_endpoint:
            where["endpoint"] = self.region_endpoint
        if self.root_directory:
            where["rootDirectory"] = self.root_directory
        return where
