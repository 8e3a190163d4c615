"""How much the edge costs a push and a pull, against the registry reached directly.

``python -m tests.rehearsal.bench [--size-mib 512] [--rounds 5] [--exposure nodePort|ingress]`` pushes
the same image (one layer of SIZE MiB of random data plus two small ones) with skopeo, then pulls it,
once straight to the registry (TLS, its in-cluster name) and once through the edge (the public name),
alternating which goes first. The edge is what clients get with that exposure: the generated proxy
(``nodePort``, the default; ``loadBalancer`` has the same) or the ingress controller configured from the
generated Ingresses (``ingress``, see ingress_nginx.py). Each push starts from an empty image store, so
every blob is really sent; a first round is not counted (caches warm up); files go to /dev/shm unless
``--scratch`` says otherwise. It reports the machine's load, and whether nginx spooled anything to disk.
The last line is ``push_ratio=X.XX pull_ratio=Y.YY``: medians over the rounds of direct time / proxied
time, so 1.00 means as fast as without the edge and lower is slower.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from subprocess import CompletedProcess

from tests.rehearsal.image import Image, build_image, verify_pulled
from tests.rehearsal.processes import missing_binaries
from tests.rehearsal.proxy_stats import temp_files_used
from tests.rehearsal.rig import EXPOSURES, Rig, render_rehearsal_stack, running

REPOSITORY = "bench/image"


def _check(step: str, done: CompletedProcess[str], rig: Rig) -> None:
    if done.returncode != 0:
        sys.exit(f"{step} failed: {done.stderr}\n{rig.logs()}")


def _measure(rig: Rig, image: Image, registry: str) -> tuple[float, float]:
    """Seconds to push ``image`` to an empty store at ``registry`` and to pull it back."""
    rig.registry.stop()
    # Empty the store, not remove it: it is the pod's volume, which the registry cannot create.
    for entry in rig.storage.iterdir():
        shutil.rmtree(entry)
    rig.registry.start()
    started = time.monotonic()
    _check(f"push to {registry}", rig.push(image, REPOSITORY, registry), rig)
    push = time.monotonic() - started
    started = time.monotonic()
    destination, done = rig.pull(REPOSITORY, image.tag, registry)
    pull = time.monotonic() - started
    _check(f"pull from {registry}", done, rig)
    verify_pulled(destination, image)
    shutil.rmtree(destination)
    return push, pull


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="size of the large layer (MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--exposure", choices=EXPOSURES, default="nodePort",
                        help="the edge between clients and the registry: the proxy (nodePort) or the Ingresses")
    parser.add_argument(
        "--scratch", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="directory for the image, the image store and pulled copies (default: /dev/shm, so that disk"
        " writeback adds no noise)",
    )
    args = parser.parse_args()
    if missing := missing_binaries():
        sys.exit(f"missing programs: {', '.join(missing)}")
    print("ratio = direct time / proxied time (1.00 = as fast as direct; lower = the edge slows it down)")
    print(f"exposure {args.exposure}, {args.size_mib} MiB, {args.rounds} rounds, load {_load()}", flush=True)
    rendered = render_rehearsal_stack(args.exposure)
    with tempfile.TemporaryDirectory(prefix="rehearsal-image-", dir=args.scratch) as layout:
        image = build_image(Path(layout), [args.size_mib << 20, 1 << 20, 64 << 10], seed=args.size_mib)
        with running(rendered, args.scratch) as rig:
            # The registry by its in-cluster name: what nginx's upstream connects to.
            direct = f"{rig.site.upstream_hosts['registry']}:{rig.ports.registry}"
            for registry in (rig.registry_host, direct):
                if (login := rig.login(registry=registry)).returncode != 0:
                    sys.exit(f"login to {registry} failed: {login.stderr}")
            # A first, unmeasured round: page cache, TLS session caches and Go's heaps settle.
            _measure(rig, image, direct)
            _measure(rig, image, rig.registry_host)
            push_ratios, pull_ratios = [], []
            with temp_files_used(rig.edge_runtime, rig.edge.pid) as spooled:
                for round_ in range(args.rounds):
                    order = [direct, rig.registry_host] if round_ % 2 == 0 else [rig.registry_host, direct]
                    times = {registry: _measure(rig, image, registry) for registry in order}
                    (direct_push, direct_pull), (proxy_push, proxy_pull) = times[direct], times[rig.registry_host]
                    push_ratios.append(direct_push / proxy_push)
                    pull_ratios.append(direct_pull / proxy_pull)
                    print(
                        f"round {round_ + 1}: push direct {direct_push:.2f}s proxied {proxy_push:.2f}s"
                        f" ratio {push_ratios[-1]:.2f}; pull direct {direct_pull:.2f}s proxied {proxy_pull:.2f}s"
                        f" ratio {pull_ratios[-1]:.2f}",
                        flush=True,
                    )
            leftovers = [str(path) for path in rig.edge_runtime.glob("*/*")]
    print(f"spooled to disk by {rig.edge.name}: {', '.join(sorted(spooled) + leftovers) or 'nothing'};"
          f" load {_load()}")
    print(f"push_ratio={statistics.median(push_ratios):.2f} pull_ratio={statistics.median(pull_ratios):.2f}")


if __name__ == "__main__":
    main()
