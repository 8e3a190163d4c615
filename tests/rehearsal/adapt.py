"""The rendered stack, laid out to run on 127.0.0.1 instead of in pods.

``adapt`` is the only place that changes anything rendered, and it changes only what cannot work
outside a pod: listen addresses and ports, the upstream and webhook addresses, and container paths
(each volume is written to a local directory and its mount path rewritten to that directory). Names
stay as rendered, so every TLS check uses the real SANs; a hosts file maps those names to 127.0.0.1
for the programs that resolve them (see ``processes.with_hosts``).
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509

from components.edge.nginx_conf import PLATFORM_TLS_DIR
from tests.render import Rendered

LOOPBACK = "127.0.0.1"
# Debian's names for the programs the images run.
DEBIAN_PROGRAMS = {
    "nginx": "nginx", "registry": "docker-registry", "nginx-prometheus-exporter": "prometheus-nginx-exporter",
    "sh": "sh",
}
STANDIN = [sys.executable, "-m", "tests.rehearsal.standin"]


@dataclass(frozen=True)
class Ports:
    registry: int
    registry_debug: int
    portus: int
    proxy_status: int
    proxy_exporter: int


@dataclass(frozen=True)
class Workload:
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]
    """Mount path in the container -> local directory (or file, for a ``subPath`` mount)."""

    def path(self, container_path: str) -> Path:
        """Where a path inside the container is on this machine."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount + "/"):
                return self.mounts[mount] / container_path[len(mount) :].lstrip("/")
        raise KeyError(f"{container_path} is on no volume")


@dataclass(frozen=True)
class Site:
    proxy: Workload
    exporter: Workload
    """The proxy pod's metrics exporter, which reads nginx's status page."""
    reloader: Workload
    """The proxy pod's sidecar that reloads nginx when a certificate it serves changes."""
    registry: Workload
    portus: Workload
    public_port: int
    """The port of ``registryHost``: nginx listens on it, as the node port does in the cluster."""
    upstream_hosts: dict[str, str]
    """Service (``portus``, ``registry``) -> the in-cluster name nginx's upstream uses and verifies."""
    proxy_service_names: list[str]
    """The names of the proxy's Service: nginx answers them with its platform certificate."""
    hosts_file: Path
    ca_dir: Path
    """Holds ``ca.crt`` (the stack's ``caCertificate``), the layout skopeo's ``--cert-dir`` reads."""


def adapt(rendered: Rendered, ports: Ports, root: Path) -> Site:
    """Write the proxy's, the registry's and Portus's files under ``root`` and return how to run them.

    Changed, and nothing else: nginx's ``listen`` (127.0.0.1 and the public port) and its upstream
    ``server`` lines (127.0.0.1 and the local ports; ``proxy_ssl_name`` keeps the in-cluster names);
    the port of nginx's loopback status server and the exporter's scrape and listen ports; the registry's
    ``http.addr``, ``http.debug.addr`` and the webhook URL's port (its host stays, and resolves through
    the hosts file); ``PORTUS_PUMA_HOST``; and container paths.
    """
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    public_port = int(urlsplit(f"//{rendered.outputs['registryHost']}").port or 443)
    proxy = _workload(objects, "proxy", root)
    exporter = _workload(objects, "proxy", root, container_name="exporter")
    reloader = _workload(objects, "proxy", root, container_name="reloader")
    registry = _workload(objects, "registry", root)
    portus = _workload(objects, "portus", root)

    nginx_conf = Path(proxy.argv[proxy.argv.index("-c") + 1])
    upstream_ports = {"portus": ports.portus, "registry": ports.registry}
    upstream_hosts: dict[str, str] = {}

    def local_server(match: re.Match[str]) -> str:
        # The first label of an in-cluster name is the Service's name.
        service = match[1].split(".")[0]
        upstream_hosts[service] = match[1]
        return f"server {LOOPBACK}:{upstream_ports[service]};"

    # The edge's server and the one of the proxy's Service names share the port.
    text, listens = re.subn(r"listen \d+ ssl;", f"listen {LOOPBACK}:{public_port} ssl;", nginx_conf.read_text())
    text, status_listens = re.subn(rf"listen {LOOPBACK}:\d+;", f"listen {LOOPBACK}:{ports.proxy_status};", text)
    text = re.sub(r"server ([\w.-]+):\d+;", local_server, text)
    if listens != 2 or status_listens != 1 or upstream_hosts.keys() != upstream_ports.keys():
        raise ValueError(f"nginx.conf: {listens} + {status_listens} listen lines, upstreams {sorted(upstream_hosts)}")
    served = dict(re.findall(r"server_name ([^;]+);\s+ssl_certificate (\S+)/tls\.crt;", text))
    proxy_service_names = next(names.split() for names, tls_dir in served.items() if tls_dir == PLATFORM_TLS_DIR)
    exporter.argv[1:] = [_exporter_arg(arg, ports) for arg in exporter.argv[1:]]
    nginx_conf.write_text(_localize(text, proxy.mounts))

    config_file = Path(registry.argv[-1])
    config = yaml.safe_load(_localize(config_file.read_text(), registry.mounts))
    config["http"]["addr"] = f"{LOOPBACK}:{ports.registry}"
    config["http"]["debug"]["addr"] = f"{LOOPBACK}:{ports.registry_debug}"
    for endpoint in config["notifications"]["endpoints"]:
        url = urlsplit(endpoint["url"])
        endpoint["url"] = url._replace(netloc=f"{url.hostname}:{ports.portus}").geturl()
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))

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
    return Site(
        proxy, exporter, reloader, registry, portus, public_port, upstream_hosts, proxy_service_names, hosts_file,
        ca_dir,
    )


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
        files = _volume_files(objects, volumes[mount["name"]])
        if "subPath" in mount:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(files[mount["subPath"]])
        else:
            local.mkdir(parents=True, exist_ok=True)
            for file, content in files.items():
                (local / file).write_text(content)
        mounts[mount["mountPath"]] = local
    env = {e["name"]: _localize(_env_value(objects, e), mounts) for e in container.get("env", [])}
    if name == "portus":
        # A local program, not a container command: its paths are this machine's already.
        return Workload(STANDIN, env, mounts)
    program, *args = container.get("command") or [container["image"].split("/")[-1].split(":")[0]]
    argv = [DEBIAN_PROGRAMS[program], *args, *container.get("args", [])]
    return Workload([_localize(a, mounts) for a in argv], env, mounts)


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
