"""Cluster nodes that can pull from the registry (``nodeTrust``): a DaemonSet that installs the chain the
edge's clients must trust (the ``caCertificate`` output) into every node's container runtime.

On each node it writes ``/etc/containerd/certs.d/<registryHost>/ca.crt`` and ``hosts.toml`` (and, with
``docker``, ``/etc/docker/certs.d/<registryHost>/ca.crt``), re-writes them when the CA changes, and
touches nothing else. containerd 1.6 reads a ``hosts.toml`` only with a ``[host."https://..."]`` table
(``getSortedHosts``: "invalid `host` tree" otherwise) and, once one exists, no loose ``*.crt`` files; a
relative ``ca`` is relative to the file (remotes/docker/config/hosts.go ``makeAbsPath``). containerd reads
the directory at every pull: no restart, provided its ``config_path`` names it (README, "Nodes that pull").

Least privilege that works: the directories belong to root on the node, and hostPath volumes ignore
``fsGroup``, so the container runs as UID 0, but with every capability dropped (a process of UID 0 writes
into directories it owns through their mode bits, without CAP_DAC_OVERRIDE), no privilege escalation, a
read-only root filesystem, the runtime's seccomp profile, and exactly the one or two host directories
mounted. hostPath volumes are forbidden by the ``baseline`` Pod Security Standard as well as
``restricted``, so its namespace, which holds nothing else, enforces ``privileged``; the platform's keeps
``restricted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube

NAME = "node-trust"
COMPONENT = "node-trust"
TYPE = "portus:node-trust:NodeTrust"
DEFAULT_NAMESPACE = "portus-node-trust"
CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d"
DOCKER_CERTS_DIR = "/etc/docker/certs.d"
SOURCE_DIR = "/etc/node-trust"
CA_FILE = "ca.crt"
HOSTS_FILE = "hosts.toml"
# How often each pod compares the node's files with the ConfigMap (whose mounted copy the kubelet updates).
CHECK_SECONDS = 60
RESOURCES = kube.ResourceSpec("5m", "8Mi", "50m", "16Mi")
# The only level whose rules allow hostPath volumes (and UID 0).
POD_SECURITY_LEVEL = "privileged"

SCRIPT = """\
set -eu
# Keep this node's container runtimes trusting the registry (components/node_trust.py): write each file
# that differs from the ConfigMap's copy, by an atomic rename, and nothing else.
trap 'exit 0' TERM INT
place() {
  if ! cmp -s "$1" "$2"; then
    mkdir -p "${2%/*}"
    cp "$1" "$2.node-trust.tmp"
    chmod 0644 "$2.node-trust.tmp"
    mv -f "$2.node-trust.tmp" "$2"
    echo "node-trust: wrote $2"
  fi
}
while :; do
  # The CA first: hosts.toml names it.
  place "$SOURCE_DIR/ca.crt" "$CONTAINERD_CERTS_DIR/$REGISTRY_HOST/ca.crt"
  place "$SOURCE_DIR/hosts.toml" "$CONTAINERD_CERTS_DIR/$REGISTRY_HOST/hosts.toml"
  if [ -n "${DOCKER_CERTS_DIR:-}" ]; then
    place "$SOURCE_DIR/ca.crt" "$DOCKER_CERTS_DIR/$REGISTRY_HOST/ca.crt"
  fi
  sleep "$CHECK_SECONDS" & wait $!
done
"""


@dataclass(frozen=True)
class NodeTrustConfig:
    enabled: bool = False
    namespace: str = DEFAULT_NAMESPACE
    docker: bool = False
    """Also write Docker's ``certs.d`` (nodes whose kubelet or users run Docker Engine)."""


@dataclass
class NodeTrustArgs:
    config: NodeTrustConfig
    registry_address: str
    """``registryHost[:port]``: the directory name containerd and Docker look up."""
    ca_pem: pulumi.Input[str]
    image: str
    """An image with a POSIX shell and the usual file tools (the proxy's, BusyBox)."""
    cluster_domain: str


def hosts_toml(registry_address: str) -> str:
    """containerd's registry host configuration for the registry: its one endpoint, trusted with the CA
    beside the file. The root entry (``server``, which containerd appends after the host tables and would
    otherwise default to the same URL without the CA) gets the CA too."""
    url = f"https://{registry_address}"
    return (
        f"# Written by portus-pulumi's node-trust DaemonSet: how this node's containerd reaches {registry_address}.\n"
        f'server = "{url}"\n'
        f'ca = "{CA_FILE}"\n'
        f"\n"
        f'[host."{url}"]\n'
        f'  capabilities = ["pull", "resolve", "push"]\n'
        f'  ca = "{CA_FILE}"\n'
    )


def _security() -> tuple[k8s.core.v1.PodSecurityContextArgs, k8s.core.v1.SecurityContextArgs]:
    pod = k8s.core.v1.PodSecurityContextArgs(
        run_as_user=0, run_as_group=0, run_as_non_root=False,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )
    container = k8s.core.v1.SecurityContextArgs(
        run_as_user=0, run_as_group=0, run_as_non_root=False,
        privileged=False,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )
    return pod, container


def _host_dir(name: str, path: str) -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
    return (
        k8s.core.v1.VolumeArgs(
            name=name, host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=path, type="DirectoryOrCreate"),
        ),
        k8s.core.v1.VolumeMountArgs(name=name, mount_path=path),
    )


class NodeTrust(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeTrustArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        registry_name = args.registry_address.rsplit(":", 1)[0]
        if registry_name.endswith(f".{args.cluster_domain}"):
            pulumi.log.warn(
                f"nodeTrust: nodes resolve {registry_name} with their own resolver, not the cluster's DNS: "
                "pulls by the kubelet need a name the nodes resolve (README, \"Nodes that pull\")",
                resource=self,
            )
        namespace = k8s.core.v1.Namespace(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=config.namespace,
                labels=kube.namespace_labels(POD_SECURITY_LEVEL, modes=("enforce",)),
            ),
            opts=child,
        )
        ns = namespace.metadata.name
        # The pods open no connection and serve nothing.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=kube.metadata("default-deny", ns, "network"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"],
            ),
            opts=child,
        )
        source = k8s.core.v1.ConfigMap(
            f"{name}-files",
            metadata=kube.metadata(NAME, ns, COMPONENT),
            data={CA_FILE: args.ca_pem, HOSTS_FILE: hosts_toml(args.registry_address)},
            opts=child,
        )
        containerd_volume, containerd_mount = _host_dir("containerd-certs", CONTAINERD_CERTS_DIR)
        volumes = [kube.config_map_volume("files", source.metadata.name), containerd_volume]
        mounts = [k8s.core.v1.VolumeMountArgs(name="files", mount_path=SOURCE_DIR, read_only=True), containerd_mount]
        env = {"SOURCE_DIR": SOURCE_DIR, "CONTAINERD_CERTS_DIR": CONTAINERD_CERTS_DIR,
               "REGISTRY_HOST": args.registry_address, "CHECK_SECONDS": str(CHECK_SECONDS)}
        if config.docker:
            docker_volume, docker_mount = _host_dir("docker-certs", DOCKER_CERTS_DIR)
            volumes.append(docker_volume)
            mounts.append(docker_mount)
            env["DOCKER_CERTS_DIR"] = DOCKER_CERTS_DIR
        pod_security, container_security = _security()
        account = kube.service_account(f"{name}-sa", NAME, ns, COMPONENT, child)
        k8s.apps.v1.DaemonSet(
            name,
            metadata=kube.metadata(NAME, ns, COMPONENT, kube.image_version(args.image)),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                # A pod's only effect is the files it leaves on its node, which stay while it is replaced.
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDaemonSetArgs(max_unavailable="100%"),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=kube.labels(NAME, COMPONENT, kube.image_version(args.image)),
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        automount_service_account_token=False,
                        security_context=pod_security,
                        # Every node that may run a pod pulls images, whatever its taints; Windows nodes
                        # keep their certificates elsewhere (and cannot run this image).
                        tolerations=[k8s.core.v1.TolerationArgs(operator="Exists")],
                        node_selector={"kubernetes.io/os": "linux"},
                        termination_grace_period_seconds=5,
                        containers=[k8s.core.v1.ContainerArgs(
                            name=NAME,
                            image=args.image,
                            command=["sh", "-c", SCRIPT],
                            env=kube.env(env),
                            volume_mounts=mounts,
                            resources=kube.resources(RESOURCES),
                            security_context=container_security,
                        )],
                        volumes=volumes,
                    ),
                ),
            ),
            opts=child,
        )
        self.register_outputs({"namespace": ns})
