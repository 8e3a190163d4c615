"""Kubernetes building blocks shared by every component: labels, restricted security contexts,
resources, probes, checksums and Service DNS names."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pki import ServerCertificate


@dataclass(frozen=True)
class ResourceSpec:
    """CPU/memory requests and limits of one container, as Kubernetes quantities."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


PART_OF = "portus"
# Init containers that copy or write a file or two.
INIT_RESOURCES = ResourceSpec("10m", "16Mi", "100m", "64Mi")


@dataclass(frozen=True)
class KeptData:
    """How the objects that hold data are declared: kept in the cluster by ``pulumi destroy`` (unless the
    stack says otherwise) and managed through the provider that adopts them on a later deploy."""

    keep_on_destroy: bool
    provider: pulumi.ProviderResource

    def options(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=parent, retain_on_delete=self.keep_on_destroy, provider=self.provider, **extra
        )


@dataclass(frozen=True)
class Remote:
    """A service outside the namespace that a workload connects to (an object store, a cache, a database):
    its TCP port, and the address ranges it lives in (none: any address, the cluster's pods included)."""

    port: int
    cidrs: tuple[str, ...] = ()


def image_version(image: str) -> str:
    """The tag of an image reference, for the ``app.kubernetes.io/version`` label."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "unknown"
    return tag[:63]


def selector_labels(name: str) -> dict[str, str]:
    """Immutable pod selector of a workload: never include anything that changes on upgrade."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": PART_OF}


def labels(name: str, component: str, version: str | None = None) -> dict[str, str]:
    result = {
        **selector_labels(name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def metadata(name: str, namespace: pulumi.Input[str], component: str, version: str | None = None,
             annotations: Mapping[str, pulumi.Input[str]] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=namespace, labels=labels(name, component, version), annotations=annotations
    )


@dataclass(frozen=True)
class RunAs:
    """The non-root identity a container runs under; ``fs_group`` owns its volumes."""

    user: int
    group: int

    def pod_security_context(self) -> k8s.core.v1.PodSecurityContextArgs:
        return k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=self.user,
            run_as_group=self.group,
            fs_group=self.group,
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        )


def restricted_container_security() -> k8s.core.v1.SecurityContextArgs:
    """Pod Security Standard ``restricted`` plus a read-only root filesystem."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def resources(spec: ResourceSpec) -> k8s.core.v1.ResourceRequirementsArgs:
    as_dict = spec.to_kubernetes()
    return k8s.core.v1.ResourceRequirementsArgs(requests=as_dict["requests"], limits=as_dict["limits"])


def https_probe(path: str, port: int | str, period: int = 10, failures: int = 3,
                timeout: int = 5) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port, scheme="HTTPS"),
        period_seconds=period, failure_threshold=failures, timeout_seconds=timeout,
    )


def checksum(*parts: pulumi.Input[str]) -> pulumi.Output[str]:
    """A digest of config and secret contents for a pod annotation, so that a change rolls the pods.

    The digest reveals nothing of a secret; it is unsecreted so the annotation diffs readably.
    """
    digest = pulumi.Output.all(*parts).apply(
        lambda values: hashlib.sha256("\0".join(str(value) for value in values).encode()).hexdigest()
    )
    return pulumi.Output.unsecret(digest)


def empty_dir(name: str, size_limit: str = "64Mi", medium: str | None = None) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(
        name=name, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=size_limit, medium=medium)
    )


def secret_env(name: str, secret: pulumi.Input[str], key: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)
        ),
    )


def env(values: Mapping[str, str]) -> list[k8s.core.v1.EnvVarArgs]:
    return [k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in values.items()]


def service_dns_names(service: str, namespace: str, cluster_domain: str) -> list[str]:
    """Every name an in-cluster client may use for a Service: each must be in its certificate."""
    qualified = f"{service}.{namespace}"
    return [service, qualified, f"{qualified}.svc", f"{qualified}.svc.{cluster_domain}"]


def service_fqdn(service: str, namespace: str, cluster_domain: str) -> str:
    return service_dns_names(service, namespace, cluster_domain)[-1]


def service_account(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
                    opts: pulumi.ResourceOptions) -> k8s.core.v1.ServiceAccount:
    """A dedicated identity per workload that mounts no API token: none of these programs calls the
    Kubernetes API."""
    return k8s.core.v1.ServiceAccount(
        resource_name,
        metadata=metadata(name, namespace, component),
        automount_service_account_token=False,
        opts=opts,
    )


def cluster_ip_service(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
                       ports: Sequence[k8s.core.v1.ServicePortArgs],
                       opts: pulumi.ResourceOptions, headless: bool = False) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        resource_name,
        metadata=metadata(name, namespace, component),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=selector_labels(name),
            ports=list(ports),
            cluster_ip="None" if headless else None,
            publish_not_ready_addresses=True if headless else None,
        ),
        opts=opts,
    )


def disruption_budget(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
                      opts: pulumi.ResourceOptions) -> k8s.policy.v1.PodDisruptionBudget:
    """Keeps one pod of a multi-replica workload up through node drains."""
    return k8s.policy.v1.PodDisruptionBudget(
        resource_name,
        metadata=metadata(name, namespace, component),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            min_available=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(name)),
        ),
        opts=opts,
    )


def spread_over_nodes(name: str) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Replicas of a workload on as many nodes as the scheduler can, without ever blocking a pod."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="kubernetes.io/hostname",
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(name)),
        )
    ]


def tls_secret(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
               certificate: ServerCertificate, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """A server's certificate and key, as the ``kubernetes.io/tls`` Secret servers and Ingresses read."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata=metadata(name, namespace, component),
        type="kubernetes.io/tls",
        string_data={"tls.crt": certificate.cert_pem, "tls.key": certificate.private_key_pem},
        opts=opts,
    )


def config_map_volume(name: str, config_map: pulumi.Input[str]) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name=name, config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=config_map))


def secret_volume(name: str, secret: pulumi.Input[str],
                  items: Sequence[k8s.core.v1.KeyToPathArgs] | None = None) -> k8s.core.v1.VolumeArgs:
    """Secret files readable by the pod's group only."""
    return k8s.core.v1.VolumeArgs(
        name=name,
        secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=secret, default_mode=0o440, items=items),
    )


def pod_spec(account: k8s.core.v1.ServiceAccount, run_as: RunAs, containers: Sequence[k8s.core.v1.ContainerArgs],
             volumes: Sequence[k8s.core.v1.VolumeArgs], **extra: object) -> k8s.core.v1.PodSpecArgs:
    """A pod under its workload's own identity, non-root, with no API token."""
    return k8s.core.v1.PodSpecArgs(
        service_account_name=account.metadata.name,
        automount_service_account_token=False,
        security_context=run_as.pod_security_context(),
        containers=list(containers),
        volumes=list(volumes),
        **extra,  # type: ignore[arg-type]
    )


def deployment(resource_name: str, name: str, namespace: pulumi.Input[str], component: str, version: str,
               replicas: int, spec: k8s.core.v1.PodSpecArgs, annotations: Mapping[str, pulumi.Input[str]],
               opts: pulumi.ResourceOptions, recreate: bool = False) -> k8s.apps.v1.Deployment:
    """A Deployment that rolls without losing capacity, or, with ``recreate``, stops the old pod first
    (one ReadWriteOnce volume, or a worker that must never run twice)."""
    strategy = (
        k8s.apps.v1.DeploymentStrategyArgs(type="Recreate") if recreate
        else k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
        )
    )
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata=metadata(name, namespace, component, version),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=replicas,
            strategy=strategy,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(name)),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels(name, component, version), annotations=annotations),
                spec=spec,
            ),
        ),
        opts=opts,
    )


def init_container(name: str, image: str, command: Sequence[str],
                   volume_mounts: Sequence[k8s.core.v1.VolumeMountArgs],
                   env: Sequence[k8s.core.v1.EnvVarArgs] | None = None) -> k8s.core.v1.ContainerArgs:
    """A restricted init container that prepares a file or two for the main container."""
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=image,
        command=list(command),
        env=list(env) if env else None,
        volume_mounts=list(volume_mounts),
        resources=resources(INIT_RESOURCES),
        security_context=restricted_container_security(),
    )
