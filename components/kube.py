"""Kubernetes building blocks shared by every component: labels, restricted security contexts,
resources, probes, checksums, Service DNS names, the objects that hold data, and Jobs."""

from __future__ import annotations

import asyncio
import copy
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
# The ownership handover walks a whole volume (an image store may hold millions of files): a full core
# when one is free, so pods do not wait long; it requests no more than the others.
WALK_RESOURCES = ResourceSpec("10m", "16Mi", "1", "64Mi")


# The provider awaits a claim it creates until `Bound`, or `Pending` under a WaitForFirstConsumer class,
# with a hard 5-minute watch; adopting a claim that is already Bound under such a class waits for `Pending`
# and fails (await/awaiters.go ``untilCoreV1PersistentVolumeClaimReady``: only an update accepts Bound).
# The pods that mount a claim prove it instead: the Deployment await requires every claim its pods use to
# be Bound (await/deployment.go ``pvcsAvailable``), a StatefulSet's pods cannot be ready without theirs.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def claim_spec(size: str, storage_class: str | None,
               access_mode: str = "ReadWriteOnce") -> k8s.core.v1.PersistentVolumeClaimSpecArgs:
    return k8s.core.v1.PersistentVolumeClaimSpecArgs(
        access_modes=[access_mode],
        storage_class_name=storage_class,
        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": size}),
    )


@dataclass(frozen=True)
class KeptData:
    """How the objects that hold data (the namespace, the claims) and the StatefulSet that owns a claim
    are declared: ``pulumi destroy`` keeps the data unless the stack says otherwise, and a later deploy
    takes it over only when the stack says so.

    They go through their own provider. Its create of an object that already exists adopts it only with
    ``adopt_existing`` (``upsertExistingObjects``); otherwise the create fails with AlreadyExists
    (await.go ``Creation`` @ v4.29.0+), so another stack's objects are never taken over by accident.
    Adopted objects may be another stack's: while ``adopt_existing`` is on, destroy deletes none of them.
    """

    keep_on_destroy: bool
    adopt_existing: bool
    provider: pulumi.ProviderResource

    @property
    def keeps_data(self) -> bool:
        return self.keep_on_destroy or self.adopt_existing

    @property
    def claim_retention(self) -> str:
        """A StatefulSet's ``persistentVolumeClaimRetentionPolicy`` for its claims."""
        return "Retain" if self.keeps_data else "Delete"

    def options(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        """For what holds data: the namespace (deleting it deletes every claim in it) and the claims."""
        return pulumi.ResourceOptions(parent=parent, retain_on_delete=self.keeps_data, provider=self.provider, **extra)

    def workload_options(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        """For a StatefulSet: its claims outlive it (``claim_retention``), so destroy deletes it and leaves
        nothing running, unless it may have been adopted."""
        return pulumi.ResourceOptions(
            parent=parent, retain_on_delete=self.adopt_existing, provider=self.provider, **extra
        )

    def claim(self, resource_name: str, name: str, namespace: pulumi.Input[str], component: str, size: str,
              storage_class: str | None, parent: pulumi.Resource,
              access_mode: str = "ReadWriteOnce") -> k8s.core.v1.PersistentVolumeClaim:
        return k8s.core.v1.PersistentVolumeClaim(
            resource_name,
            metadata=metadata(name, namespace, component, annotations=SKIP_AWAIT),
            spec=claim_spec(size, storage_class, access_mode),
            opts=self.options(parent),
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


def namespace_labels(pod_security: str, modes: Sequence[str] = ("enforce", "warn", "audit")) -> dict[str, str]:
    """A namespace of the platform's, whose pods must meet the Pod Security level ``pod_security`` (checked
    in each of ``modes``, against the cluster's latest version of the standard)."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        **{f"pod-security.kubernetes.io/{mode}": pod_security for mode in modes},
        **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in modes},
    }


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


def restricted_container_security(run_as_user: int | None = None) -> k8s.core.v1.SecurityContextArgs:
    """Pod Security Standard ``restricted`` plus a read-only root filesystem; ``run_as_user`` overrides
    the pod's user for this container."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=run_as_user,
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


def https_port(port: int, node_port: bool = False) -> k8s.core.v1.ServicePortArgs:
    """A Service's HTTPS port ``port``, to the container port named ``https``; with ``node_port``, the
    same number on the nodes."""
    return k8s.core.v1.ServicePortArgs(
        name="https", port=port, target_port="https", app_protocol="https", node_port=port if node_port else None,
    )


def cluster_ip_service(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
                       ports: Sequence[k8s.core.v1.ServicePortArgs],
                       opts: pulumi.ResourceOptions, headless: bool = False,
                       selector: Mapping[str, str] | None = None,
                       annotations: Mapping[str, pulumi.Input[str]] | None = None) -> k8s.core.v1.Service:
    """A Service for the pods of workload ``name``, or of ``selector``."""
    return k8s.core.v1.Service(
        resource_name,
        metadata=metadata(name, namespace, component, annotations=annotations),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=dict(selector) if selector else selector_labels(name),
            ports=list(ports),
            cluster_ip="None" if headless else None,
            publish_not_ready_addresses=True if headless else None,
        ),
        opts=opts,
    )


def cluster_ip(service: k8s.core.v1.Service) -> pulumi.Output[str]:
    """The address the API server gave a Service, e.g. for ``hostAliases``.

    A preview that cannot ask the API server (client-side apply, a refused dry run, no cluster) gets the
    Service back without it (provider.go ``Create``, "cannot preview Create" @ v4.29.0..v4.32.0): the
    address then stays unknown, so the pods that use it preview as unchanged instead of as replaced."""

    def assigned(spec: k8s.core.v1.outputs.ServiceSpec) -> pulumi.Input[str]:
        if spec.cluster_ip:
            return spec.cluster_ip
        if pulumi.runtime.is_dry_run():
            return _unknown()
        raise pulumi.RunError("a Service that backs hostAliases has no cluster IP")

    return service.spec.apply(assigned)


def _unknown() -> pulumi.Output[str]:
    """An output whose value ``pulumi preview`` shows as computed (known after the update)."""
    loop = asyncio.get_event_loop()
    value: asyncio.Future[str | None] = loop.create_future()
    known: asyncio.Future[bool] = loop.create_future()
    value.set_result(None)
    known.set_result(False)
    return pulumi.Output(set(), value, known)  # type: ignore[arg-type]


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


def opaque_secret(resource_name: str, name: str, namespace: pulumi.Input[str], component: str,
                  data: Mapping[str, pulumi.Input[str]], opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """Credentials and keys as an ``Opaque`` Secret, for pods to mount or read into env."""
    return k8s.core.v1.Secret(
        resource_name, metadata=metadata(name, namespace, component), type="Opaque", string_data=data, opts=opts,
    )


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


def init_container(name: str, image: str, command: Sequence[pulumi.Input[str]],
                   volume_mounts: Sequence[k8s.core.v1.VolumeMountArgs],
                   env: Sequence[k8s.core.v1.EnvVarArgs] | None = None,
                   run_as_user: int | None = None, spec: ResourceSpec = INIT_RESOURCES) -> k8s.core.v1.ContainerArgs:
    """A restricted init container that prepares a file or two for the main container."""
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=image,
        command=list(command),
        env=list(env) if env else None,
        volume_mounts=list(volume_mounts),
        resources=resources(spec),
        security_context=restricted_container_security(run_as_user),
    )


def ownership_handover(image: str, data: k8s.core.v1.VolumeMountArgs, previous: RunAs,
                       current: RunAs) -> k8s.core.v1.ContainerArgs:
    """An init container that lets ``current`` write the files an earlier release wrote on a kept volume
    (mounted as ``data``) as ``previous``: the workload's UID changed, its data did not.

    Kubernetes re-applies ``fsGroup`` only on volumes whose driver supports it (and with
    ``fsGroupChangePolicy: OnRootMismatch`` only when the volume's root has another group). On hostPath,
    local or NFS volumes the old files keep their owner, group and modes (MariaDB's directories are 0700,
    the registry's 0755), and the new UID could not write them. Without root only a file's owner may hand
    it over, so this runs as ``previous.user`` (with the pod's groups, ``current.group`` among them) and
    gives each of its files to ``current.group`` with group read and write (and search, for directories).
    Files it does not own are left alone, and it does not descend into directories of other owners (the
    new UID's 0700 directories, ``lost+found``), which it could not read. Once nothing is left to change,
    each start costs one walk over the previous user's files (they keep their owner).
    """
    root, user, group = data.mount_path, str(previous.user), str(current.group)
    others_directory = ["(", "-type", "d", "!", "-user", user, "!", "-path", root, ")"]
    needs_change = ["(", "!", "-group", group, "-o", "!", "-perm", "-060",
                    "-o", "-type", "d", "!", "-perm", "-010", ")"]
    return init_container(
        "file-ownership",
        image,
        # GNU find (MariaDB's Ubuntu image) and BusyBox find (the registry's Alpine image) both run this;
        # BusyBox ignores `-exec ... +` inside parentheses, so the actions stay at the top level.
        ["find", root, *others_directory, "-prune", "-o", "-user", user, "!", "-type", "l", *needs_change,
         "-exec", "chgrp", group, "{}", "+", "-exec", "chmod", "g+rwX", "{}", "+"],
        [data],
        run_as_user=previous.user,
        spec=WALK_RESOURCES,
    )


# --- Jobs: tasks that run to completion ----------------------------------------------------------------
# pulumi-kubernetes awaits a Job until `Complete=True`; `Failed=True` with reason BackoffLimitExceeded or
# DeadlineExceeded fails the update at once (provider/pkg/await/checker/job/check.go @ v4.29.0..v4.32.0).
# Portus pulls a large image and boots Rails: a cold node outlasts the provider's 10-minute default.
JOB_TIMEOUT_MINUTES = 20
JOB_TIMEOUTS = pulumi.CustomTimeouts(create=f"{JOB_TIMEOUT_MINUTES}m", update=f"{JOB_TIMEOUT_MINUTES}m")
# Kubernetes ends the Job (DeadlineExceeded) a minute before Pulumi stops waiting: `pulumi up` reports the
# Job's own failure with its pods' messages, never a timeout that leaves the Job running behind it.
JOB_DEADLINE_SECONDS = JOB_TIMEOUT_MINUTES * 60 - 60
# A Job that is not Complete when `pulumi up` diffs it (it failed) is deleted and created again, so the
# next `up` re-runs it; without this, the failed Job stays in state and fails every later `up` at once.
# The provider honours it for Jobs only (provider.go Diff, `metadata.ReplaceUnready` @ v4.29.0..v4.32.0).
REPLACE_UNREADY = {"pulumi.com/replaceUnready": "true"}


def run_to_completion(spec: k8s.core.v1.PodSpecArgs) -> k8s.core.v1.PodSpecArgs:
    """The pod of a Job or CronJob: never restarted in place, so every failed attempt stays as a Failed pod
    whose logs can be read (with ``OnFailure`` Kubernetes deletes the pods when the backoff limit is hit),
    and each container's termination message falls back to the end of its log, which the provider's pod
    checker puts into the error `pulumi up` prints (checker/pod/check.go ``containerTerminatedError``)."""
    pod = copy.copy(spec)
    pod.restart_policy = "Never"
    pod.containers = _log_on_error(spec.containers)
    pod.init_containers = _log_on_error(spec.init_containers) or None
    return pod


def _log_on_error(containers: object) -> list[k8s.core.v1.ContainerArgs]:
    assert containers is None or (
        isinstance(containers, Sequence) and all(isinstance(c, k8s.core.v1.ContainerArgs) for c in containers)
    ), "a task's containers are declared, not computed"
    result = []
    for container in containers or ():
        changed = copy.copy(container)
        changed.termination_message_policy = "FallbackToLogsOnError"
        result.append(changed)
    return result


def job_spec(pod_metadata: k8s.meta.v1.ObjectMetaArgs, pod: k8s.core.v1.PodSpecArgs, backoff_limit: int = 6,
             deadline_seconds: int = JOB_DEADLINE_SECONDS) -> k8s.batch.v1.JobSpecArgs:
    """A Job's spec under the rules above; a CronJob's ``job_template`` takes the same spec (Pulumi does
    not wait for a CronJob's Jobs, so it may give them a longer ``deadline_seconds``)."""
    return k8s.batch.v1.JobSpecArgs(
        backoff_limit=backoff_limit,
        active_deadline_seconds=deadline_seconds,
        template=k8s.core.v1.PodTemplateSpecArgs(metadata=pod_metadata, spec=run_to_completion(pod)),
    )


def job(resource_name: str, metadata: k8s.meta.v1.ObjectMetaArgs, pod_metadata: k8s.meta.v1.ObjectMetaArgs,
        pod: k8s.core.v1.PodSpecArgs, opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """A Job Pulumi runs and waits for: run again by the next ``pulumi up`` if it failed, stopped by
    Kubernetes before Pulumi's own timeout. Jobs are immutable: give it a new name whenever what it does
    changes, and ``depends_on`` what it needs."""
    annotations = metadata.annotations or {}
    assert isinstance(annotations, Mapping), "a Job's annotations are declared, not computed"
    annotated = copy.copy(metadata)
    annotated.annotations = {**annotations, **REPLACE_UNREADY}
    return k8s.batch.v1.Job(
        resource_name,
        metadata=annotated,
        spec=job_spec(pod_metadata, pod),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(delete_before_replace=True, custom_timeouts=JOB_TIMEOUTS)
        ),
    )
