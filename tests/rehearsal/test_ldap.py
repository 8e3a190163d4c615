"""LDAP sign-in rehearsed with Debian's slapd on loopback, TLS from the directory's own CA.

The stack is rendered with ``portus:ldap`` pointing at the directory, and Portus's LDAP client is configured
from nothing but the rendered Portus container: its PORTUS_* environment (Secret references resolved) and
the CA bundle its init container builds from the rendered ConfigMaps. The client is Ruby's net-ldap (the
gem Portus uses), making the calls Portus 2.4.3 makes (tests/ruby/portus_clients.rb), with the directory's
name resolved to 127.0.0.1 in a private mount namespace, so the certificate is checked against it.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MINIMAL_CONFIG, REPO_ROOT
from tests.rehearsal.adapt import pod_container
from tests.rehearsal.impostors import Impostor, outside_server
from tests.rehearsal.processes import SBIN_PATH, Service, child_env, free_port, run, with_hosts
from tests.render import Rendered

PROGRAMS = {"slapd": "slapd", "slapadd": "slapd", "slappasswd": "slapd", "ldapwhoami": "ldap-utils", "ruby": "ruby",
            "unshare": "util-linux"}
CLIENTS = REPO_ROOT / "tests" / "ruby" / "portus_clients.rb"
HOST = "ldap.corp.example"
SUFFIX = "dc=corp,dc=example"
PEOPLE = f"ou=people,{SUFFIX}"
BIND_DN = f"cn=portus,ou=services,{SUFFIX}"
BIND_PASSWORD = "bind-Passw0rd"
# user name -> (employeeType, password, mail)
USERS = {
    "jdoe": ("staff", "jdoe-Passw0rd", "jane.doe@corp.example"),
    "contractor": ("contractor", "contractor-Passw0rd", "contractor@partner.example"),
}
SCHEMAS = ("core", "cosine", "inetorgperson")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _entries(hash_password: Callable[[str], str]) -> str:
    people = "".join(
        f"\ndn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"employeeType: {kind}\nmail: {mail}\nuserPassword: {hash_password(password)}\n"
        for uid, (kind, password, mail) in USERS.items()
    )
    return (
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Corp\ndc: corp\n\n"
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n"
        f"dn: {BIND_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: portus\n"
        f"userPassword: {hash_password(BIND_PASSWORD)}\n\n"
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n{people}"
    )


@dataclass(frozen=True)
class Directory:
    pki: Impostor
    starttls_port: int
    ldaps_port: int
    hosts_file: Path


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    """slapd with the people above, over TLS only; anonymous clients may neither search nor read (only bind)."""
    missing = [f"{b} ({p})" for b, p in PROGRAMS.items() if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them", pytrace=False)
    root = tmp_path_factory.mktemp("slapd")
    # Where AppArmor confines /usr/sbin/slapd to the system's LDAP directories (Ubuntu), a copy elsewhere
    # runs unconfined, with this test's files. slapd acts by the name it is run as (slapadd, slappasswd).
    tools = root / "bin"
    tools.mkdir()
    shutil.copy2(str(shutil.which("slapd", path=SBIN_PATH)), tools / "slapd")
    for tool in ("slapadd", "slappasswd"):
        (tools / tool).symlink_to("slapd")
    pki = outside_server("Corp Directory CA", HOST)
    for name, pem in (("ca.crt", pki.ca_pem), ("server.crt", pki.cert_pem), ("server.key", pki.key_pem)):
        (root / name).write_text(pem)
    (root / "data").mkdir()
    config = root / "slapd.conf"
    config.write_text("".join(f"include /etc/ldap/schema/{schema}.schema\n" for schema in SCHEMAS) + f"""
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {root}/ca.crt
TLSCertificateFile {root}/server.crt
TLSCertificateKeyFile {root}/server.key
database mdb
maxsize 16777216
suffix "{SUFFIX}"
directory {root}/data
# Nothing but StartTLS before TLS is up: a client that skipped TLS could not even bind.
security tls=1
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{BIND_DN}" read by * none
""")

    def hashed(password: str) -> str:
        result = run([str(tools / "slappasswd"), "-s", password], child_env(), timeout=10)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    (root / "data.ldif").write_text(_entries(hashed))
    loaded = run([str(tools / "slapadd"), "-f", str(config), "-l", str(root / "data.ldif")], child_env(), timeout=30)
    assert loaded.returncode == 0, loaded.stderr
    starttls_port, ldaps_port = free_port(), free_port()
    listen = f"ldap://127.0.0.1:{starttls_port}/ ldaps://127.0.0.1:{ldaps_port}/"
    # slapd binds its sockets and writes its pid file before it listens: ready is when both ports accept.
    server = Service(
        "slapd", [str(tools / "slapd"), "-d", "0", "-f", str(config), "-h", listen], child_env(), root / "slapd.log",
        lambda: all(_accepts(port) for port in (starttls_port, ldaps_port)),
    )
    server.start()
    hosts_file = root / "hosts"
    hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {HOST}\n")
    try:
        yield Directory(pki, starttls_port, ldaps_port, hosts_file)
    finally:
        server.stop()


def ldap_config(directory: Directory, method: str, ca: str | None) -> dict[str, Any]:
    encryption: dict[str, Any] = {"method": method}
    if ca:
        encryption["ca"] = ca
    return {
        **MINIMAL_CONFIG,
        "ldap": {
            "hostname": HOST,
            "port": directory.ldaps_port if method == "simple_tls" else directory.starttls_port,
            "encryption": encryption,
            "base": PEOPLE,
            "filter": "(employeeType=staff)",
            "authentication": {"bindDn": BIND_DN, "password": BIND_PASSWORD},
            "guessEmail": {"enabled": True, "attr": "mail"},
        },
    }


class Portus:
    """Portus's LDAP client, configured from one rendered stack."""

    def __init__(self, rendered: Rendered, root: Path, directory: Directory) -> None:
        self.env = pod_container(rendered, "portus", root, run_init=["ca-bundle"]).env
        self.hosts_file = directory.hosts_file

    def login(self, username: str, password: str) -> dict[str, Any]:
        portus_env = {name: value for name, value in self.env.items()
                      if name.startswith("PORTUS_") or name == "SSL_CERT_FILE"}
        result = run(with_hosts(["ruby", str(CLIENTS), "ldap-login", username], self.hosts_file),
                     child_env(portus_env), timeout=60, stdin=password)
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer


@pytest.fixture(scope="module", params=["starttls", "simple_tls"])
def portus(request: pytest.FixtureRequest, directory: Directory, render: Callable[[Mapping[str, object]], Rendered],
           tmp_path_factory: pytest.TempPathFactory) -> Portus:
    rendered = render(ldap_config(directory, request.param, directory.pki.ca_pem))
    return Portus(rendered, tmp_path_factory.mktemp(f"portus-{request.param}"), directory)


def test_the_directory_takes_no_bind_without_tls(directory: Directory) -> None:
    # So every successful sign-in below went over TLS.
    plain = run(["ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{directory.starttls_port}", "-D", BIND_DN,
                 "-w", BIND_PASSWORD], child_env(), timeout=10)
    assert plain.returncode != 0 and "Confidentiality required" in plain.stderr, plain.stderr


def test_rendered_settings_are_what_portus_needs(portus: Portus, directory: Directory) -> None:
    env = portus.env
    assert env["PORTUS_LDAP_HOSTNAME"] == HOST
    assert env["PORTUS_LDAP_ENCRYPTION_METHOD"] in ("start_tls", "simple_tls")
    # The CA file Portus hands net-ldap is its trust bundle, and the bundle holds the directory's CA.
    bundle = Path(env["PORTUS_LDAP_ENCRYPTION_OPTIONS_CA_FILE"])
    assert bundle == Path(env["SSL_CERT_FILE"])
    assert directory.pki.ca_pem.strip() in bundle.read_text()


def test_a_directory_user_signs_in_and_is_found_by_the_filter(portus: Portus) -> None:
    answer = portus.login("jdoe", USERS["jdoe"][1])
    assert answer.get("error") is None, answer
    # Portus's health check binds as the bind DN; sign-in finds the user under base with uid and filter.
    assert answer["health_bind"] is True
    assert answer["bound"] == f"uid=jdoe,{PEOPLE}"
    assert answer["email"] == USERS["jdoe"][2]


def test_a_wrong_password_is_refused(portus: Portus) -> None:
    answer = portus.login("jdoe", "not-the-Passw0rd")
    assert answer.get("error") is None, answer
    assert answer["bound"] is None


def test_a_user_outside_the_filter_is_not_found_even_with_the_right_password(portus: Portus) -> None:
    answer = portus.login("contractor", USERS["contractor"][1])
    assert answer.get("error") is None, answer
    assert answer["bound"] is None


def test_without_the_directory_ca_the_certificate_is_refused(
    directory: Directory, render: Callable[[Mapping[str, object]], Rendered], tmp_path: Path,
) -> None:
    # The directory's CA left out: the bundle has only the system roots and the platform CA.
    rendered = render(ldap_config(directory, "starttls", None))
    answer = Portus(rendered, tmp_path, directory).login("jdoe", USERS["jdoe"][1])
    assert "certificate verify failed" in answer.get("error", ""), answer
