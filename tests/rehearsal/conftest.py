"""Fixtures of the rehearsal: the stack rendered once per exposure and edge certificate source, the test
images built once, and for each test a fresh rig (its own directory and ports) that is stopped, by PID,
however the test ends.

A test runs on the proxy with each certificate source; a module that runs through both edges, the proxy
(nodePort) and the ingress controller stand-in (ingress), says so with ``pytestmark = rigs(...)``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator, Iterator

import pytest

from tests.rehearsal.image import Image, build_image
from tests.rehearsal.processes import missing_binaries, namespaces_unavailable
from tests.rehearsal.rig import SOURCES, Rig, render_rehearsal_stack, running
from tests.render import Rendered

MIB = 1 << 20


@pytest.fixture(scope="session")
def rehearsal_ready() -> None:
    """Fails when a program is missing (a set-up error); skips, with the reason, where the kernel lets
    neither root nor this user have a private mount namespace."""
    if missing := missing_binaries():
        pytest.fail(
            f"the rehearsal needs {', '.join(missing)}; install them with `apt-get install nginx-light"
            " docker-registry skopeo curl prometheus-nginx-exporter containerd` (./test.sh does)",
            pytrace=False,
        )
    if reason := namespaces_unavailable():
        pytest.skip(reason)


@pytest.fixture(scope="session")
def renders(rehearsal_ready: None) -> Callable[[str, str], Rendered]:
    """The rehearsal stack for an exposure and an edge certificate source, rendered once per session."""
    cache: dict[tuple[str, str], Rendered] = {}

    def render(exposure: str, source: str) -> Rendered:
        if (exposure, source) not in cache:
            cache[exposure, source] = render_rehearsal_stack(exposure, source)
        return cache[exposure, source]

    return render


@pytest.fixture(scope="session")
def rendered(renders: Callable[[str, str], Rendered]) -> Rendered:
    """The rehearsal stack behind the proxy, with the platform CA's edge certificate."""
    return renders("nodePort", "selfSigned")


@pytest.fixture(params=[("nodePort", source) for source in SOURCES], ids="-".join)
def rig(request: pytest.FixtureRequest, renders: Callable[[str, str], Rendered]) -> Iterator[Rig]:
    """A running rig, by default once per edge certificate source behind the proxy; ``rigs`` picks others."""
    exposure, source = request.param
    with running(renders(exposure, source)) as started:
        yield started


@pytest.fixture(scope="session")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(tmp_path_factory.mktemp("small-image"), [4 << 10, 300 << 10, 2 * MIB], seed=1)


@pytest.fixture(scope="session")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """One 256 MiB layer of random data and two small ones; removed at the end of the session."""
    layout = tmp_path_factory.mktemp("big-image")
    yield build_image(layout, [256 * MIB, MIB, 32 << 10], seed=256)
    shutil.rmtree(layout)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the last lines each program logged."""
    report = yield
    rig = getattr(item, "funcargs", {}).get("rig")
    if report.when == "call" and report.failed and isinstance(rig, Rig):
        report.sections.append(("rehearsal logs", rig.logs()))
    return report
