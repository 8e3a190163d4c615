"""Portus's mail rehearsed against a local SMTP relay (aiosmtpd) that requires TLS and a password.

The stack is rendered with ``portus:email``, and the message is sent with the settings Portus 2.4.3 builds
from the rendered container's environment (``lib/portus/mail.rb``), by Ruby's mail gem, the library
ActionMailer delivers through (tests/ruby/portus_clients.rb); the relay's name resolves to 127.0.0.1 in a
private mount namespace, so its certificate is checked against that name.
"""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import MINIMAL_CONFIG, REPO_ROOT
from tests.rehearsal.adapt import pod_container
from tests.rehearsal.impostors import Impostor, outside_server
from tests.rehearsal.processes import SBIN_PATH, child_env, free_port, run, with_hosts
from tests.render import Rendered

CLIENTS = REPO_ROOT / "tests" / "ruby" / "portus_clients.rb"
HOST = "smtp.corp.example"
USER, PASSWORD = "portus-mailer", "mailer-Passw0rd"
SENDER = "registry@corp.example"
RECIPIENT = "jane.doe@corp.example"


@dataclass
class Relay:
    """What the relay saw: each accepted message, and each sign-in with whether TLS was up."""

    messages: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        if server.transport.get_extra_info("ssl_object") is None:
            return "530 TLS required"
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword) and server.transport is not None
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((auth_data.login.decode(), over_tls))
        return AuthResult(success=(auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD))


@dataclass(frozen=True)
class Mailer:
    pki: Impostor
    hosts_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def mailer(tmp_path_factory: pytest.TempPathFactory) -> Mailer:
    missing = [b for b in ("ruby", "unshare") if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them", pytrace=False)
    root = tmp_path_factory.mktemp("relay")
    pki = outside_server("Corp Mail CA", HOST)
    (root / "relay.crt").write_text(pki.cert_pem)
    (root / "relay.key").write_text(pki.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(root / "relay.crt", root / "relay.key")
    hosts_file = root / "hosts"
    hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {HOST}\n")
    return Mailer(pki, hosts_file, context)


def email_config(port: int, ca: str, **smtp: object) -> dict[str, object]:
    return {
        **MINIMAL_CONFIG,
        "email": {
            "from": SENDER,
            "name": "Corp Registry",
            "replyTo": "platform-team@corp.example",
            "smtp": {"address": HOST, "port": port, "userName": USER, "password": PASSWORD, "ca": ca, **smtp},
        },
    }


@contextmanager
def relay(mailer: Mailer, port: int, implicit_tls: bool = False) -> Iterator[Relay]:
    """The relay on ``port``: STARTTLS required before anything else, or TLS from the first byte."""
    seen = Relay()
    tls: dict[str, Any] = (
        # TLS is up from the start, so aiosmtpd's own "AUTH only after STARTTLS" rule does not apply (and
        # it warns); the relay records whether each sign-in came over TLS instead.
        {"ssl_context": mailer.server_context, "auth_require_tls": False} if implicit_tls
        else {"tls_context": mailer.server_context, "require_starttls": True}
    )
    controller = Controller(seen, hostname="127.0.0.1", port=port, authenticator=seen.authenticate,
                            auth_required=True, **tls)
    controller.start()
    try:
        yield seen
    finally:
        controller.stop()


def send(rendered: Rendered, mailer: Mailer, root: Path) -> dict[str, Any]:
    """Portus's mailer, configured from the rendered Portus container, sends one message."""
    env = pod_container(rendered, "portus", root, run_init=["ca-bundle"]).env
    portus_env = {name: value for name, value in env.items() if name.startswith("PORTUS_") or name == "SSL_CERT_FILE"}
    result = run(with_hosts(["ruby", str(CLIENTS), "smtp-send", RECIPIENT], mailer.hosts_file),
                 child_env(portus_env), timeout=60)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def assert_delivered(relay: Relay, answer: dict[str, Any]) -> None:
    assert answer.get("error") is None, answer
    assert relay.logins == [(USER, True)]
    [envelope] = relay.messages
    assert envelope.mail_from == SENDER and envelope.rcpt_tos == [RECIPIENT]
    assert isinstance(envelope.content, bytes)
    message = message_from_bytes(envelope.content)
    assert message["From"] == f"Corp Registry <{SENDER}>"
    assert message["Reply-To"] == "platform-team@corp.example"


def test_mail_goes_out_over_starttls_with_the_relay_verified(
    mailer: Mailer, render: Callable[[Mapping[str, object]], Rendered], tmp_path: Path,
) -> None:
    port = free_port()
    rendered = render(email_config(port, mailer.pki.ca_pem))
    with relay(mailer, port) as seen:
        assert_delivered(seen, send(rendered, mailer, tmp_path))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_mail_goes_out_over_implicit_tls(
    mailer: Mailer, render: Callable[[Mapping[str, object]], Rendered], tmp_path: Path,
) -> None:
    port = free_port()
    rendered = render(email_config(port, mailer.pki.ca_pem, sslTls="tls"))
    with relay(mailer, port, implicit_tls=True) as seen:
        assert_delivered(seen, send(rendered, mailer, tmp_path))


def test_a_relay_with_a_certificate_from_another_ca_gets_nothing(
    mailer: Mailer, render: Callable[[Mapping[str, object]], Rendered], tmp_path: Path,
) -> None:
    port = free_port()
    rendered = render(email_config(port, outside_server("Some Other CA", HOST).ca_pem))
    with relay(mailer, port) as seen:
        answer = send(rendered, mailer, tmp_path)
    assert "certificate verify failed" in answer.get("error", ""), answer
    assert seen.logins == [] and seen.messages == []
