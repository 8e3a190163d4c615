"""How much the edge costs a push and a pull, against the registry reached directly.

``python -m tests.rehearsal.bench [--size-mib 512] [--rounds 5] [--clients 1] [--exposure nodePort]``
runs CLIENTS skopeo clients at once, each pushing its own image (one layer of SIZE MiB of random data
plus two small ones) and then, once every push is done, pulling it back: once straight to the registry
(TLS, its in-cluster name) and once through the edge (the public name), alternating which route goes
first. The edge is what clients get with that exposure: the generated proxy (``nodePort``, the default;
``loadBalancer`` has the same) or ingress-nginx configured from the generated Ingresses (``ingress``,
see ingress_nginx.py). Each route starts from an empty image store, so every blob is really sent; a
first round is not counted (caches warm up); files go to /dev/shm unless ``--scratch`` says otherwise.

Each round prints the machine's load, both routes' times (the slowest client's, i.e. the time until
every client is done) and their ratio, how far apart the clients finished, how busy the machine's CPUs
were on each route, and nginx's CPU time per MiB relayed. The end prints the median ratio of the whole
machine's CPU time (direct / proxied): when a phase keeps every CPU busy, as many clients on a small
machine do, its time ratio is this CPU ratio, whatever the edge's latency. Then nginx's peak worker
memory and whether anything was spooled to disk. The last line is ``push_ratio=X.XX pull_ratio=Y.YY``:
medians over the rounds of direct time / proxied time, so 1.00 means as fast as without the edge and
lower is slower.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

from tests.rehearsal.image import Image, build_image, verify_pulled
from tests.rehearsal.ingress_nginx import ControllerConfig
from tests.rehearsal.processes import missing_binaries
from tests.rehearsal.proxy_stats import cpu_seconds, machine_busy_seconds, peak_memory_kib, temp_files_used, workers
from tests.rehearsal.rig import EXPOSURES, Rig, render_rehearsal_stack, running

REPOSITORY = "bench/image"
MIB = 1 << 20


@dataclass(frozen=True)
class Route:
    """One way from the clients to the registry: ``address`` is the ``host[:port]`` skopeo uses."""

    name: str
    address: str
    relays: Callable[[], list[Path]] = list
    """/proc entries of the processes in between (the edge's nginx workers), whose CPU time is counted."""


@dataclass
class Phase:
    """One phase (every client's push, or every client's pull) over one route."""

    seconds: float
    """Until the last client finished: the aggregate time of the phase."""
    client_seconds: list[float]
    relay_cpu: float
    machine_cpu: float
    """CPU time of the whole machine (clients, registry, edge, kernel) during the phase."""

    def busy(self) -> str:
        """How much of the machine's CPUs the phase used: near 100% means it is CPU-bound, and then its time
        follows the CPU every process together spends, the edge's included."""
        return f"{100 * self.machine_cpu / (self.seconds * (os.cpu_count() or 1)):.0f}%"


@dataclass
class Run:
    push: Phase
    pull: Phase


@dataclass
class Totals:
    ratios: dict[str, list[float]] = field(default_factory=lambda: {"push": [], "pull": []})
    cpu_ratios: dict[str, list[float]] = field(default_factory=lambda: {"push": [], "pull": []})
    """Per round, the machine's CPU time direct / proxied: what the time ratio is when a phase is CPU-bound."""


def _check(step: str, done: CompletedProcess[str], rig: Rig) -> None:
    if done.returncode != 0:
        sys.exit(f"{step} failed: {done.stderr}\n{rig.logs()}")


def _client(rig: Rig, route: Route, image: Image, repository: str, pushed: threading.Barrier
            ) -> tuple[float, float, Path]:
    """One client: push, wait until every client has pushed, pull; seconds of each, and the copy."""
    started = time.monotonic()
    _check(f"push to {route.name}", rig.push(image, repository, route.address), rig)
    push = time.monotonic() - started
    pushed.wait()
    started = time.monotonic()
    destination, done = rig.pull(repository, image.tag, route.address)
    pull = time.monotonic() - started
    _check(f"pull from {route.name}", done, rig)
    return push, pull, destination


def _measure(rig: Rig, images: list[Image], route: Route) -> Run:
    """Every client pushes its image to an empty store over ``route``, then pulls it back."""
    rig.registry.stop()
    # Empty the store, not remove it: it is the pod's volume, which the registry cannot create.
    for entry in rig.storage.iterdir():
        shutil.rmtree(entry)
    rig.registry.start()
    relays = route.relays()
    marks: dict[str, tuple[float, float, float]] = {}

    def mark(name: str) -> None:
        marks[name] = (time.monotonic(), cpu_seconds(relays), machine_busy_seconds())

    mark("start")
    pushed = threading.Barrier(len(images), action=lambda: mark("pushed"))
    with ThreadPoolExecutor(len(images)) as pool:
        times = list(pool.map(
            lambda indexed: _client(rig, route, indexed[1], f"{REPOSITORY}-{indexed[0]}", pushed),
            enumerate(images),
        ))
    end, ended_cpu, ended_machine = time.monotonic(), cpu_seconds(relays), machine_busy_seconds()
    for image, (_, _, destination) in zip(images, times, strict=True):
        verify_pulled(destination, image)
        shutil.rmtree(destination)
    (start, start_cpu, start_machine), (pushed_at, pushed_cpu, pushed_machine) = marks["start"], marks["pushed"]
    return Run(
        Phase(pushed_at - start, [push for push, _, _ in times], pushed_cpu - start_cpu,
              pushed_machine - start_machine),
        Phase(end - pushed_at, [pull for _, pull, _ in times], ended_cpu - pushed_cpu, ended_machine - pushed_machine),
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _spread(phase: Phase) -> str:
    """When the first and the last client finished: far apart means the route served them unevenly."""
    return f"{min(phase.client_seconds):.2f}-{max(phase.client_seconds):.2f}s"


def _report(round_: int, runs: dict[str, Run], baseline: Route, candidate: Route, mib: float, totals: Totals) -> None:
    parts = []
    for phase in ("push", "pull"):
        base, cand = getattr(runs[baseline.name], phase), getattr(runs[candidate.name], phase)
        ratio = base.seconds / cand.seconds
        totals.ratios[phase].append(ratio)
        totals.cpu_ratios[phase].append(base.machine_cpu / cand.machine_cpu)
        parts.append(
            f"{phase} {baseline.name} {base.seconds:.2f}s {candidate.name} {cand.seconds:.2f}s ratio {ratio:.2f}"
            f" (clients {_spread(base)} / {_spread(cand)}, CPUs busy {base.busy()} / {cand.busy()},"
            f" nginx {1000 * cand.relay_cpu / mib:.1f} ms cpu/MiB)"
        )
    print(f"round {round_} [load {_load()}]: " + "; ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="size of each client's large layer (MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=1, help="skopeo clients at once, each with its own image")
    parser.add_argument("--exposure", choices=EXPOSURES, default="nodePort",
                        help="the edge between clients and the registry: the proxy (nodePort) or the Ingresses")
    parser.add_argument("--controller", metavar="KEY=VALUE", action="append", default=[],
                        help="an ingress-nginx ConfigMap setting for --exposure ingress, e.g. ssl-buffer-size=16k")
    parser.add_argument(
        "--scratch", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="directory for the images, the image store and pulled copies (default: /dev/shm, so that disk"
        " writeback adds no noise)",
    )
    args = parser.parse_args()
    if missing := missing_binaries():
        sys.exit(f"missing programs: {', '.join(missing)}")
    print("ratio = direct time / proxied time (1.00 = as fast as direct; lower = the edge slows it down)")
    print(f"exposure {args.exposure}{''.join(f', controller {s}' for s in args.controller)}: {args.clients}"
          f" client(s) x {args.size_mib} MiB, {args.rounds} rounds, {os.cpu_count()} CPUs, load {_load()}", flush=True)
    rendered = render_rehearsal_stack(args.exposure)
    controller = ControllerConfig().with_configmap(dict(setting.split("=", 1) for setting in args.controller))
    totals = Totals()
    with tempfile.TemporaryDirectory(prefix="rehearsal-image-", dir=args.scratch) as layout:
        sizes = [args.size_mib * MIB, MIB, 64 << 10]
        images = [build_image(Path(layout) / str(client), sizes, seed=args.size_mib + 1000 * client)
                  for client in range(args.clients)]
        mib = sum(image.size for image in images) / MIB
        with running(rendered, args.scratch, controller=controller) as rig:
            # The registry by its in-cluster name: what nginx's upstream connects to.
            baseline = Route("direct", f"{rig.site.edge.upstream_hosts['registry']}:{rig.ports.registry}")
            candidate = Route("proxied", rig.registry_host, lambda: workers(rig.edge.pid))
            for route in (candidate, baseline):
                if (login := rig.login(registry=route.address)).returncode != 0:
                    sys.exit(f"login to {route.name} failed: {login.stderr}")
            # A first, unmeasured round: page cache, TLS session caches and Go's heaps settle.
            _measure(rig, images, baseline)
            _measure(rig, images, candidate)
            with temp_files_used(rig.edge_runtime, rig.edge.pid) as spooled:
                for round_ in range(args.rounds):
                    order = [baseline, candidate] if round_ % 2 == 0 else [candidate, baseline]
                    runs = {route.name: _measure(rig, images, route) for route in order}
                    _report(round_ + 1, runs, baseline, candidate, mib, totals)
            peak = max(peak_memory_kib(worker) for worker in workers(rig.edge.pid))
            leftovers = [str(path) for path in rig.edge_runtime.glob("*/*")]
    ratios = totals.ratios
    print(f"push ratios {min(ratios['push']):.2f}-{max(ratios['push']):.2f},"
          f" pull ratios {min(ratios['pull']):.2f}-{max(ratios['pull']):.2f} [load {_load()}]")
    cpu_ratios = totals.cpu_ratios
    print(f"machine CPU time direct / proxied (the time ratio of a CPU-bound phase):"
          f" push {statistics.median(cpu_ratios['push']):.2f} pull {statistics.median(cpu_ratios['pull']):.2f}")
    print(f"{rig.edge.name}: nginx peak worker memory {peak / 1024:.1f} MiB;"
          f" spooled to disk: {', '.join(sorted(spooled) + leftovers) or 'nothing'}")
    print(f"push_ratio={statistics.median(ratios['push']):.2f} pull_ratio={statistics.median(ratios['pull']):.2f}")


if __name__ == "__main__":
    main()
