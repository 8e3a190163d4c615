"""How a renewed certificate reaches nginx: a sidecar in the proxy pod that reloads nginx when a
certificate it serves changes on disk.

The kubelet rewrites a mounted Secret's files when the Secret changes (within about a minute; never for a
``subPath`` mount): cert-manager's renewals, a rotation of a Secret the user keeps, and the platform
certificate a ``pulumi up`` re-issues. nginx reads certificates only when it starts or reloads, and a
checksum annotation on the pod template would roll the pods only when ``pulumi up`` runs, never for a
Secret this program does not own. So the sidecar compares the files every CHECK_SECONDS and, on a change,
has nginx check its configuration and reload (``nginx -s reload`` signals the master through the pid file
on the shared runtime volume; the pod shares one process namespace so that the signal reaches it). The
master starts workers with the new certificate and lets the old ones finish their connections: layer
transfers in flight complete. Files nginx cannot load (a key that does not match its certificate) are
refused by ``nginx -t`` and by the master as well: nginx keeps serving what it has, and the sidecar says so
every round until the files load.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pulumi_kubernetes as k8s

from components import kube

NAME = "reloader"
CHECK_SECONDS = 10
# A shell, sleep and cksum, and now and then `nginx -t`, which maps the shared session cache zone.
RESOURCES = kube.ResourceSpec("5m", "16Mi", "100m", "64Mi")


def reload_script(config_file: str, watched: Sequence[str], interval: int = CHECK_SECONDS) -> str:
    files = " ".join(shlex.quote(path) for path in watched)
    conf = shlex.quote(config_file)
    return f"""\
set -eu
# Reload nginx when a certificate it serves changes (components/edge/reloader.py).
trap 'exit 0' TERM INT
fingerprint() {{ cat {files} | cksum; }}
served=$(fingerprint)
echo "reloader: watching {files} every {interval}s"
while :; do
  sleep {interval} & wait $!
  current=$(fingerprint)
  if [ "$current" = "$served" ]; then continue; fi
  if ! nginx -t -q -c {conf}; then
    echo "reloader: nginx cannot load the changed files; it keeps serving the ones it has" >&2
  elif nginx -s reload -c {conf}; then
    served=$current
    echo "reloader: a served certificate changed; nginx reloaded"
  fi
done
"""


def reloader_container(image: str, config_file: str, watched: Sequence[str],
                       mounts: Sequence[k8s.core.v1.VolumeMountArgs]) -> k8s.core.v1.ContainerArgs:
    """The sidecar, in nginx's own image (it runs ``nginx -t`` and ``nginx -s``) with nginx's mounts."""
    return k8s.core.v1.ContainerArgs(
        name=NAME,
        image=image,
        command=["sh", "-c", reload_script(config_file, watched)],
        volume_mounts=list(mounts),
        resources=kube.resources(RESOURCES),
        security_context=kube.restricted_container_security(),
    )
