"""Where the registry keeps image data. Each backend is one small class that contributes what it owns:
its driver section of ``config.yml``, the objects it declares (a claim, say), the volumes, mounts and env
the registry container needs, and whether several registry replicas may share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components import kube

STORAGE_ROOT = "/var/lib/registry"
COMPONENT = "registry"


@dataclass
class StorageAttachment:
    """What the registry container needs to reach its storage."""

    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)


class StorageBackend(Protocol):
    @property
    def shared(self) -> bool:
        """Whether several registry pods may use the storage at once (more replicas, rolling updates)."""

    def driver_config(self) -> dict[str, Any]:
        """The driver's entry of ``storage`` in config.yml; never a credential."""

    def attach(self, name: str, namespace: pulumi.Input[str], kept: kube.KeptData,
               parent: pulumi.Resource) -> StorageAttachment:
        """Declares what the backend owns, as children of ``parent``, and how the registry reaches it."""


@dataclass(frozen=True)
class FilesystemStorage:
    """A PersistentVolumeClaim mounted at STORAGE_ROOT: created (and kept on destroy with the other
    data), or an existing claim the user names."""

    size: str
    storage_class: str | None = None
    existing_claim: str | None = None

    @property
    def shared(self) -> bool:
        return False

    def driver_config(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": STORAGE_ROOT}}

    def attach(self, name: str, namespace: pulumi.Input[str], kept: kube.KeptData,
               parent: pulumi.Resource) -> StorageAttachment:
        claim_name: pulumi.Input[str]
        if self.existing_claim:
            claim_name = self.existing_claim
        else:
            claim = kept.claim(f"{name}-data", f"{name}-data", namespace, COMPONENT, self.size, self.storage_class,
                               parent)
            claim_name = claim.metadata.name
        return StorageAttachment(
            volumes=[k8s.core.v1.VolumeArgs(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=claim_name),
            )],
            mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path=STORAGE_ROOT)],
        )
