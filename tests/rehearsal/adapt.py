"""The rendered stack, laid out to run on 127.0.0.1 instead of in pods.

``adapt`` is the only place that changes anything rendered, and it changes only what cannot work
outside a pod: listen addresses and ports, the upstream and webhook addresses, and container paths
(each volume is written to a local directory and its mount path rewritten to that directory). Names
stay as rendered, so every TLS check uses the real SANs; a hosts file maps those names to 127.0.0.1
for the programs that resolve them (see ``processes.with_hosts``). A public IP address stays too: it
must be a loopback address (127.0.0.2 stands for a node's address), and nginx listens on it.

The edge is the proxy's nginx with its rendered nginx.conf (exposure nodePort or loadBalancer), or,
with exposure ingress, nginx configured by the ingress-nginx stand-in from the rendered Ingresses, TLS
Secret and CA Secret (``ingress_nginx``), as the controller of the class ingress-nginx installs.

Run as root, the volumes are laid out as the kubelet does for the pod's ``fsGroup``: Secret files
readable by that group only, writable volumes (emptyDir, claims) owned by root and writable by that group
only; so the servers, run under their pods' UIDs, reach their files through the same group the cluster
gives them.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509

from components.edge.nginx_conf import PLATFORM_TLS_DIR, TRUST_FILE
from components.edge.nginx_conf import RUNTIME_DIR as PROXY_RUNTIME_DIR
from tests.rehearsal import ingress_nginx
from tests.rehearsal.processes import IS_ROOT, PodUser, as_pod_user
from tests.render import Rendered

LOOPBACK = "127.0.0.1"
# Debian's names for the programs the images run.
DEBIAN_PROGRAMS = {
    "nginx": "nginx", "registry": "docker-registry", "nginx-prometheus-exporter": "prometheus-nginx-exporter",
    "sh": "sh",
}
STANDIN = [sys.executable, "-m", "tests.rehearsal.standin"]
# The IngressClass ingress-nginx's manifests (kind, minikube, the Helm chart) install.
INGRESS_CLASS = "nginx"


@dataclass(frozen=True)
class Ports:
    registry: int
    registry_debug: int
    portus: int
    plain_http: int
    """The ingress controller's plain-HTTP port (its 80), which only redirects to HTTPS."""
    proxy_status: int
    proxy_exporter: int
    more_registries: tuple[tuple[int, int], ...] = ()
    """(port, debug port) of each further registry replica; nginx's upstream reaches every replica."""

    @property
    def registries(self) -> list[tuple[int, int]]:
        """(port, debug port) of every registry replica, the first one first."""
        return [(self.registry, self.registry_debug), *self.more_registries]


@dataclass(frozen=True)
class Workload:
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]
    """Mount path in the container -> local directory (or file, for a ``subPath`` mount)."""
    user: PodUser

    def path(self, container_path: str) -> Path:
        """Where a path inside the container is on this machine."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount + "/"):
                return self.mounts[mount] / container_path[len(mount) :].lstrip("/")
        raise KeyError(f"{container_path} is on no volume")


@dataclass(frozen=True)
class Edge:
    """The nginx in front: the proxy, or the ingress controller stand-in."""

    name: str
    argv: list[str]
    """Run as its pod's user (the proxy), or as the rehearsal's (the controller, whose pod is not ours)."""
    env: dict[str, str]
    runtime: Path
    """Where its temp dirs are (the proxy pod's emptyDir, the controller's /tmp/nginx)."""
    upstream_hosts: dict[str, str]
    """Service (``portus``, ``registry``) -> the in-cluster name the edge checks in its certificate."""
    platform_ca: Path
    """The CA the edge verifies those names with: the platform CA, whatever signs the edge's certificate."""


@dataclass(frozen=True)
class ProxyPod:
    """The proxy's pod, the edge with exposure nodePort or loadBalancer."""

    nginx: Workload
    exporter: Workload
    """Reads nginx's status page and serves it as metrics."""
    reloader: Workload
    """Has nginx reload when a certificate it serves changes."""
    service_names: list[str]
    """The names of the proxy's Service: nginx answers them with its platform certificate."""


@dataclass(frozen=True)
class Site:
    edge: Edge
    proxy: ProxyPod | None
    """The proxy's pod, when the proxy is the edge (not with exposure ingress)."""
    registries: list[Workload]
    """One per registry replica, each with its own config file (its own listen addresses)."""
    portus: Workload
    public_port: int
    """The port of ``registryHost``: nginx listens on it, as the node port or the ingress controller does
    in the cluster."""
    public_addresses: list[str]
    """Where nginx listens: 127.0.0.1 for public DNS names (the hosts file maps them there), and each
    public IP address itself."""
    hosts_file: Path
    ca_dir: Path
    """Holds ``ca.crt`` (the stack's ``caCertificate``), the layout skopeo's ``--cert-dir`` reads."""

    @property
    def registry(self) -> Workload:
        return self.registries[0]


def adapt(rendered: Rendered, ports: Ports, root: Path,
          controller: ingress_nginx.ControllerConfig = ingress_nginx.DEFAULT_CONTROLLER) -> Site:
    """Write the edge's, the registry's and Portus's files under ``root`` and return how to run them.

    Changed, and nothing else: nginx's ``listen`` (127.0.0.1 and the public port) and its upstream
    ``server`` lines (127.0.0.1 and the local ports, one line per registry replica, as the Service
    reaches every pod; the ingress controller's endpoints likewise; ``proxy_ssl_name`` keeps the
    in-cluster names); the port of nginx's loopback status server and the exporter's scrape and listen
    ports; the registry's ``http.addr``, ``http.debug.addr``
    (each replica its own, in its own copy of config.yml) and the webhook URL's port (its host stays, and
    resolves through the hosts file); ``PORTUS_PUMA_HOST``; and container paths.
    """
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    public = urlsplit(f"//{rendered.outputs['registryHost']}"), urlsplit(rendered.outputs["portalUrl"])
    public_port = int(public[0].port or 443)
    public_addresses = sorted({address_of(url.hostname or "") for url in public})
    registry = _workload(objects, "registry", root)
    portus = _workload(objects, "portus", root)
    # Each Service reaches every replica of its workload.
    local = {"portus": [ports.portus], "registry": [port for port, _ in ports.registries]}
    proxy = None
    if ("Deployment", "proxy") in objects:
        edge, proxy = _proxy(objects, local, ports, public_port, public_addresses, root)
    else:
        edge = _ingress_controller(rendered, local, ports, public_port, root, controller)

    config_file = Path(registry.argv[-1])
    config = yaml.safe_load(_localize(config_file.read_text(), registry.mounts))
    for endpoint in config["notifications"]["endpoints"]:
        url = urlsplit(endpoint["url"])
        endpoint["url"] = url._replace(netloc=f"{url.hostname}:{ports.portus}").geturl()
    registries = []
    for index, (port, debug_port) in enumerate(ports.registries):
        config["http"]["addr"] = f"{LOOPBACK}:{port}"
        config["http"]["debug"]["addr"] = f"{LOOPBACK}:{debug_port}"
        # Replicas share everything but their listen addresses, as pods of one Deployment do.
        replica_file = config_file if index == 0 else config_file.with_name(f"replica-{index}-{config_file.name}")
        replica_file.write_text(yaml.safe_dump(config, sort_keys=False))
        registries.append(Workload([*registry.argv[:-1], str(replica_file)], dict(registry.env), registry.mounts,
                                   registry.user))

    portus.env["PORTUS_PUMA_HOST"] = f"{LOOPBACK}:{ports.portus}"

    # Every name in a server certificate is one the platform's clients use.
    names = {
        name
        for (kind, _), obj in objects.items()
        if kind == "Secret" and obj.get("type") == "kubernetes.io/tls"
        for name in x509.load_pem_x509_certificate(obj["stringData"]["tls.crt"].encode())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    }
    hosts_file = root / "hosts"
    hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n{LOOPBACK} {' '.join(sorted(names))}\n")
    ca_dir = root / "ca"
    ca_dir.mkdir()
    (ca_dir / "ca.crt").write_text(rendered.outputs["caCertificate"])
    return Site(edge, proxy, registries, portus, public_port, public_addresses, hosts_file, ca_dir)


def _proxy(objects: Mapping[tuple[str, str], Any], local: Mapping[str, list[int]], ports: Ports, public_port: int,
           public_addresses: list[str], root: Path) -> tuple[Edge, ProxyPod]:
    """The proxy's rendered nginx.conf, listening on the public port and forwarding to the local ports,
    and its sidecars."""
    nginx = _workload(objects, "proxy", root)
    exporter = _workload(objects, "proxy", root, container_name="exporter")
    reloader = _workload(objects, "proxy", root, container_name="reloader")
    nginx_conf = Path(nginx.argv[nginx.argv.index("-c") + 1])
    upstream_hosts: dict[str, str] = {}

    def local_server(match: re.Match[str]) -> str:
        # The first label of an in-cluster name is the Service's name; the Service reaches every replica.
        service = match[1].split(".")[0]
        upstream_hosts[service] = match[1]
        return "\n        ".join(f"server {LOOPBACK}:{port};" for port in local[service])

    # The edge's server and the one of the proxy's Service names share the port.
    listen = "\n        ".join(f"listen {address}:{public_port} ssl;" for address in public_addresses)
    text, listens = re.subn(r"listen \d+ ssl;", listen, nginx_conf.read_text())
    text, status_listens = re.subn(rf"listen {LOOPBACK}:\d+;", f"listen {LOOPBACK}:{ports.proxy_status};", text)
    text = re.sub(r"server ([\w.-]+):\d+;", local_server, text)
    if listens != 2 or status_listens != 1 or upstream_hosts.keys() != local.keys():
        raise ValueError(f"nginx.conf: {listens} + {status_listens} listen lines, upstreams {sorted(upstream_hosts)}")
    served = dict(re.findall(r"server_name ([^;]+);\s+ssl_certificate (\S+)/tls\.crt;", text))
    service_names = next(names.split() for names, tls_dir in served.items() if tls_dir == PLATFORM_TLS_DIR)
    exporter.argv[1:] = [_exporter_arg(arg, ports) for arg in exporter.argv[1:]]
    nginx_conf.write_text(_localize(text, nginx.mounts))
    edge = Edge("proxy", as_pod_user(nginx.argv, nginx.user), nginx.env, nginx.path(PROXY_RUNTIME_DIR),
                upstream_hosts, nginx.path(TRUST_FILE))
    return edge, ProxyPod(nginx, exporter, reloader, service_names)


def _ingress_controller(rendered: Rendered, local: Mapping[str, list[int]], ports: Ports, public_port: int,
                        root: Path, controller: ingress_nginx.ControllerConfig) -> Edge:
    """nginx as ingress-nginx (with the ``controller`` ConfigMap) configures it from the rendered objects,
    on the public port (its 443) and ``ports.plain_http`` (its 80); each Service's endpoints are the local
    ports of its program's replicas."""
    state = root / "ingress-nginx"
    (state / "ssl").mkdir(parents=True)
    (state / "tmp").mkdir()
    servers = ingress_nginx.build_servers(
        rendered.objects, INGRESS_CLASS,
        {service: [f"{LOOPBACK}:{port}" for port in service_ports] for service, service_ports in local.items()},
        state / "ssl",
    )
    conf = state / "nginx.conf"
    conf.write_text(ingress_nginx.render_nginx_conf(
        servers, ingress_nginx.Listen(LOOPBACK, public_port, ports.plain_http), state / "tmp", controller,
    ))
    upstreams = [location for server in servers for location in server.locations if location.upstream]
    upstream_hosts = {
        location.upstream.service: str(location.annotations["proxy-ssl-name"])
        for location in upstreams if location.upstream
    }
    [platform_ca] = {location.ca_file for location in upstreams if location.ca_file}
    return Edge("ingress-nginx", ["nginx", "-c", str(conf)], {}, state / "tmp", upstream_hosts, platform_ca)


def address_of(host: str) -> str:
    """Where a public name is reached: an IP address is itself, a DNS name is on 127.0.0.1."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return LOOPBACK


def _exporter_arg(arg: str, ports: Ports) -> str:
    """The exporter scrapes the status server's local port and listens on its own."""
    if arg.startswith("--nginx.scrape-uri="):
        return re.sub(rf"//{LOOPBACK}:\d+/", f"//{LOOPBACK}:{ports.proxy_status}/", arg)
    if arg.startswith("--web.listen-address="):
        return f"--web.listen-address={LOOPBACK}:{ports.proxy_exporter}"
    return arg


def adapt_node_trust(rendered: Rendered, root: Path) -> Workload:
    """The node-trust DaemonSet's container: its ConfigMap's files and, for each host directory it mounts,
    an empty directory under ``root/node-trust`` standing for the node's (``path`` tells where)."""
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    return _workload(objects, "node-trust", root, kind="DaemonSet")


def _workload(objects: Mapping[tuple[str, str], Any], name: str, root: Path, container_name: str | None = None,
              kind: str = "Deployment") -> Workload:
    """The workload's first container (or the one named ``container_name``): volumes written under
    ``root/name``, env resolved, paths local."""
    pod = objects[kind, name]["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if container_name in (None, c["name"]))
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        local = root / name / mount["mountPath"].lstrip("/")
        volume = volumes[mount["name"]]
        files = _volume_files(objects, volume)
        if "subPath" in mount:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(files[mount["subPath"]])
        else:
            local.mkdir(parents=True, exist_ok=True)
            for file, content in files.items():
                (local / file).write_text(content)
            # The kubelet hands volumes to the pod's group only when the pod has one (fsGroup).
            if IS_ROOT and name != "portus" and "fsGroup" in pod["securityContext"]:
                _as_the_kubelet_lays_out(local, volume, pod["securityContext"]["fsGroup"])
        mounts[mount["mountPath"]] = local
    env = {e["name"]: _localize(_env_value(objects, e), mounts) for e in container.get("env", [])}
    user = PodUser.of(pod, container)
    if name == "portus":
        # A local program, not a container command: its paths are this machine's already.
        return Workload(STANDIN, env, mounts, user)
    program, *args = container.get("command") or [container["image"].split("/")[-1].split(":")[0]]
    argv = [DEBIAN_PROGRAMS[program], *args, *container.get("args", [])]
    return Workload([_localize(a, mounts) for a in argv], env, mounts, user)


def _as_the_kubelet_lays_out(local: Path, volume: Mapping[str, Any], fs_group: int) -> None:
    """Ownership and modes of a mounted volume: Secret files are the pod group's to read (``defaultMode``);
    an emptyDir or a claim is writable by the pod group alone, with new files inheriting that group."""
    if "secret" in volume:
        for file in local.iterdir():
            os.chown(file, 0, fs_group)
            file.chmod(volume["secret"].get("defaultMode", 0o644))
    elif {"emptyDir", "persistentVolumeClaim"} & volume.keys():
        os.chown(local, 0, fs_group)
        local.chmod(0o2770)


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Secret" and "data" in obj:
        return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    return dict(obj.get("stringData") or obj.get("data") or {})


def _volume_files(objects: Mapping[tuple[str, str], Any], volume: Mapping[str, Any]) -> dict[str, str]:
    if "projected" in volume:
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            secret = source["secret"]  # the platform projects Secrets only
            as_volume = {"name": volume["name"], "secret": {**secret, "secretName": secret["name"]}}
            files |= _volume_files(objects, as_volume)
        return files
    if "configMap" in volume:
        source, data = volume["configMap"], _data(objects["ConfigMap", volume["configMap"]["name"]])
    elif "secret" in volume:
        source, data = volume["secret"], _data(objects["Secret", volume["secret"]["secretName"]])
    elif {"emptyDir", "persistentVolumeClaim", "hostPath"} & volume.keys():
        return {}
    else:
        raise ValueError(f"volume {volume['name']}: unsupported source")
    if "items" in source:
        return {item["path"]: data[item["key"]] for item in source["items"]}
    return data


def _env_value(objects: Mapping[tuple[str, str], Any], env: Mapping[str, Any]) -> str:
    if "value" in env:
        return str(env["value"])
    ref = env["valueFrom"]
    if "secretKeyRef" in ref:
        return _data(objects["Secret", ref["secretKeyRef"]["name"]])[ref["secretKeyRef"]["key"]]
    return _data(objects["ConfigMap", ref["configMapKeyRef"]["name"]])[ref["configMapKeyRef"]["key"]]


def _localize(text: str, mounts: Mapping[str, Path]) -> str:
    """Container paths on a volume rewritten to their local place, in one pass (longest mount first)."""
    if not mounts:
        return text
    pattern = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    return re.sub(rf"(?<![\w./-])({pattern})(?![\w.-])", lambda m: str(mounts[m[1]]), text)


def pod_container(rendered: Rendered, name: str, root: Path, run_init: Sequence[str] = (),
                  existing_secrets: Mapping[str, Mapping[str, str]] | None = None) -> Workload:
    """The first container of the Deployment ``name`` with its files under ``root``, after the shell
    commands of the init containers named in ``run_init`` ran on them locally (paths rewritten, as for the
    container), so files they build, such as Portus's CA bundle, are in place; its environment is what the
    Portus entry hands Portus: each ``<NAME>_FILE`` replaced by ``<NAME>`` with the file's text (as
    ``portus_secret`` in ``components/portus/runtime.py`` does, trailing newlines dropped like ``$(cat)``).
    ``existing_secrets`` stand for Secrets the stack references but does not declare (name -> data)."""
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    for secret, data in (existing_secrets or {}).items():
        objects["Secret", secret] = {"kind": "Secret", "metadata": {"name": secret}, "stringData": dict(data)}
    pod = objects["Deployment", name]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for init in (c for c in pod.get("initContainers", []) if c["name"] in run_init):
        mounts: dict[str, Path] = {}
        for mount in init.get("volumeMounts", []):
            local = root / name / mount["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            for file, content in _volume_files(objects, volumes[mount["name"]]).items():
                (local / file).write_text(content)
            mounts[mount["mountPath"]] = local
        shell, flag, script = init["command"]
        if (shell, flag) != ("sh", "-c"):
            raise ValueError(f"init container {init['name']}: not a shell command")
        subprocess.run([shell, flag, _localize(script, mounts)], check=True, capture_output=True, timeout=30)
    workload = _workload(objects, name, root)
    # The names the rendered entry script reads from files.
    from_files = re.findall(r"^portus_secret (\w+)$", pod["containers"][0]["command"][-1], re.MULTILINE)
    env = {variable: value for variable, value in workload.env.items()
           if variable.removesuffix("_FILE") not in from_files}
    for variable in from_files:
        env[variable] = Path(workload.env[f"{variable}_FILE"]).read_text().rstrip("\n")
    return Workload(workload.argv, env, workload.mounts, workload.user)
