"""LDAP, sign-in providers, e-mail, tag retention and permissions as Portus 2.4.3 receives them: every name
one that Portus reads, every value of the type Portus expects, credentials only through Secrets, extra CAs
in Portus's trust bundle, and exactly the connections the settings need."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import parse_config
from components.portus.settings import cconfig_reading
from tests.conftest import (
    DIRECTORY_CA,
    MAIL_CA,
    MINIMAL_CONFIG,
    REPO_ROOT,
    SETTINGS_SECRETS,
)
from tests.objects import (
    Obj,
    all_containers,
    container,
    env,
    get,
    pod_spec,
    registry_config,
    secret_data,
    secret_files,
)
from tests.rehearsal.adapt import pod_container
from tests.render import Rendered

PORTUS_2_4_3 = yaml.safe_load((REPO_ROOT / "tests" / "data" / "portus-2.4.3.yaml").read_text())
# cconfig's name for each leaf of config.yml: PORTUS_ + the path joined with "_", upper-cased.
CONFIG_NAMES = {"PORTUS_" + path.replace(".", "_").upper(): default
                for path, default in PORTUS_2_4_3["config_defaults"].items()}
# config.yml's email.smtp.port is the string "587," (a typo for 587); Portus needs the integer.
TYPE_EXCEPTIONS = {"PORTUS_EMAIL_SMTP_PORT": int}


def portus_workloads(rendered: Rendered) -> Iterator[Obj]:
    yield get(rendered, "Deployment", "portus")
    yield get(rendered, "Deployment", "portus-background")
    yield from rendered.objects_of("Job")


@pytest.fixture(scope="module")
def minimal(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render(MINIMAL_CONFIG)


@pytest.fixture(params=["minimal", "prod", "integrations"])
def stack(request: pytest.FixtureRequest) -> Rendered:
    rendered: Rendered = request.getfixturevalue(request.param)
    return rendered


def test_the_vendored_key_list_is_portus_2_4_3s() -> None:
    # 91 leaves in config/config.yml at the 2.4.3 tag; spot-check the traps the program works around.
    assert len(CONFIG_NAMES) == 91
    assert CONFIG_NAMES["PORTUS_EMAIL_SMTP_PORT"] == "587,"
    assert "PORTUS_DELETE_GARBAGE_COLLECTOR_KEEP_LATEST" not in CONFIG_NAMES
    assert not any(name.startswith("PORTUS_OAUTH_OPENID_CONNECT") for name in CONFIG_NAMES)


def test_every_portus_name_the_program_sets_is_one_portus_2_4_3_reads(stack: Rendered) -> None:
    known = CONFIG_NAMES.keys() | PORTUS_2_4_3["read_directly"].keys()
    for workload in portus_workloads(stack):
        for spec in all_containers(workload):
            names = [item["name"] for item in spec.get("env", [])]
            assert len(names) == len(set(names)), f"{spec['name']} sets a variable twice"
            # A secret arrives as <NAME>_FILE, which the entry turns into <NAME> for Portus.
            from_files = secret_files(workload, spec)
            names = [name.removesuffix("_FILE") if name.removesuffix("_FILE") in from_files else name
                     for name in names]
            unknown = {name for name in names if name.startswith("PORTUS_")} - known
            assert not unknown, f"{workload['metadata']['name']}/{spec['name']}: Portus 2.4.3 ignores {unknown}"
            if spec in pod_spec(workload)["containers"]:
                assert env(spec)["CCONFIG_PREFIX"] == "PORTUS"


def test_portus_reads_each_setting_as_the_type_of_its_default(stack: Rendered) -> None:
    for name, value in env(container(get(stack, "Deployment", "portus"))).items():
        if name in CONFIG_NAMES and isinstance(value, str):
            expected = TYPE_EXCEPTIONS.get(name, type(CONFIG_NAMES[name]))
            assert type(cconfig_reading(value)) is expected, f"{name}={value!r} reads as {cconfig_reading(value)!r}"


def test_settings_reach_portus_as_configured(integrations: Rendered) -> None:
    portus = env(container(get(integrations, "Deployment", "portus")))
    bundle = portus["SSL_CERT_FILE"]
    expected = {
        "PORTUS_LDAP_ENABLED": "true",
        "PORTUS_LDAP_HOSTNAME": "ldap.corp.example",
        "PORTUS_LDAP_PORT": "636",
        "PORTUS_LDAP_ENCRYPTION_METHOD": "simple_tls",
        "PORTUS_LDAP_ENCRYPTION_OPTIONS_CA_FILE": bundle,
        "PORTUS_LDAP_BASE": "ou=people,dc=corp,dc=example",
        "PORTUS_LDAP_FILTER": "(memberOf=cn=registry,ou=groups,dc=corp,dc=example)",
        "PORTUS_LDAP_UID": "uid",
        "PORTUS_LDAP_AUTHENTICATION_ENABLED": "true",
        "PORTUS_LDAP_AUTHENTICATION_BIND_DN": "cn=portus,ou=services,dc=corp,dc=example",
        "PORTUS_LDAP_GUESS_EMAIL_ENABLED": "true",
        "PORTUS_LDAP_GUESS_EMAIL_ATTR": "mail",
        "PORTUS_OAUTH_LOCAL_LOGIN_ENABLED": "false",
        "PORTUS_OAUTH_GITLAB_ENABLED": "true",
        "PORTUS_OAUTH_GITLAB_APPLICATION_ID": "portus-app",
        "PORTUS_OAUTH_GITLAB_SERVER": "https://gitlab.corp.example:8443",
        "PORTUS_OAUTH_GITLAB_GROUP": "registry-users",
        "PORTUS_OAUTH_GOOGLE_OAUTH2_ENABLED": "true",
        "PORTUS_OAUTH_GOOGLE_OAUTH2_ID": "portus.apps.googleusercontent.com",
        "PORTUS_OAUTH_GOOGLE_OAUTH2_OPTIONS_HD": "corp.example",
        "PORTUS_EMAIL_FROM": "registry@corp.example",
        "PORTUS_EMAIL_NAME": "Corp Registry",
        "PORTUS_EMAIL_SMTP_ENABLED": "true",
        "PORTUS_EMAIL_SMTP_ADDRESS": "smtp.corp.example",
        "PORTUS_EMAIL_SMTP_PORT": "587",
        "PORTUS_EMAIL_SMTP_DOMAIN": "portus.example.com",
        "PORTUS_EMAIL_SMTP_SSL_TLS": "",
        "PORTUS_EMAIL_SMTP_ENABLE_STARTTLS_AUTO": "true",
        "PORTUS_EMAIL_SMTP_OPENSSL_VERIFY_MODE": "peer",
        "PORTUS_EMAIL_SMTP_CA_FILE": bundle,
        "PORTUS_EMAIL_SMTP_CA_PATH": str(Path(bundle).parent),
        "PORTUS_EMAIL_SMTP_USER_NAME": "portus",
        "PORTUS_EMAIL_SMTP_AUTHENTICATION": "login",
        "PORTUS_DELETE_ENABLED": "true",
        "PORTUS_DELETE_GARBAGE_COLLECTOR_ENABLED": "true",
        "PORTUS_DELETE_GARBAGE_COLLECTOR_OLDER_THAN": "90",
        "PORTUS_DELETE_GARBAGE_COLLECTOR_TAG": "^build-\\d+$",
        "PORTUS_USER_PERMISSION_CREATE_TEAM_ENABLED": "false",
        "PORTUS_USER_PERMISSION_MANAGE_NAMESPACE_ENABLED": "false",
        "PORTUS_USER_PERMISSION_PUSH_IMAGES_POLICY": "allow-personal",
    }
    assert {name: portus.get(name) for name in expected} == expected
    # Every Portus process boots with the same settings: the background worker runs the garbage collector.
    for workload in portus_workloads(integrations):
        assert {k: v for k, v in env(pod_spec(workload)["containers"][0]).items() if k in expected} == expected


def test_credentials_reach_portus_only_through_secrets(integrations: Rendered) -> None:
    managed = get(integrations, "Secret", "portus-settings")
    expected_refs = {
        "PORTUS_LDAP_AUTHENTICATION_PASSWORD": ("secret", "portus-settings", "ldap-authentication-password"),
        "PORTUS_OAUTH_GITLAB_SECRET": ("secret", "portus-settings", "oauth-gitlab-secret"),
        "PORTUS_OAUTH_GOOGLE_OAUTH2_SECRET": ("secret", "portus-settings", "oauth-google-oauth2-secret"),
        # An existing Secret is referenced as given, never copied.
        "PORTUS_EMAIL_SMTP_PASSWORD": ("secret", "corp-smtp", "relay-password"),
    }
    for workload in portus_workloads(integrations):
        portus = secret_files(workload, pod_spec(workload)["containers"][0])
        assert {name: portus.get(name) for name in expected_refs} == expected_refs
    assert secret_data(managed) == {
        "ldap-authentication-password": SETTINGS_SECRETS["ldap"],
        "oauth-gitlab-secret": SETTINGS_SECRETS["gitlab"],
        "oauth-google-oauth2-secret": SETTINGS_SECRETS["google"],
    }
    record = next(r for r in integrations.resources if r.type.endswith(":Secret") and r.name == "portus-settings")
    assert "stringData" in record.secret_inputs and "stringData" in record.secret_outputs
    # A changed credential rolls the pods: the checksum covers the secrets from config.
    annotations = get(integrations, "Deployment", "portus")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/settings" in annotations


def test_extra_cas_join_portus_trust_bundle_only(integrations: Rendered, tmp_path: Path) -> None:
    extra = get(integrations, "ConfigMap", "portus-extra-trust")["data"]
    assert extra == {"ldap-ca.crt": DIRECTORY_CA, "smtp-ca.crt": MAIL_CA}
    # The bundle the init container builds, as the Portus container sees it.
    portus = pod_container(integrations, "portus", tmp_path, run_init=["ca-bundle"],
                           existing_secrets={"corp-smtp": {"relay-password": "unused"}})
    bundle = Path(portus.env["SSL_CERT_FILE"]).read_text()
    for pem in (integrations.outputs["caCertificate"], DIRECTORY_CA, MAIL_CA):
        assert pem.strip() in bundle
    assert bundle.count("-----BEGIN CERTIFICATE-----") == 3
    # Only Portus trusts the directory's and the relay's CAs.
    for workload in integrations.objects_of("Deployment") + integrations.objects_of("StatefulSet"):
        uses = any(v.get("configMap", {}).get("name") == "portus-extra-trust" for v in pod_spec(workload)["volumes"])
        assert uses == workload["metadata"]["name"].startswith("portus"), workload["metadata"]["name"]


def _egress(rendered: Rendered, policy: str) -> list[Any]:
    rules: list[Any] = get(rendered, "NetworkPolicy", policy)["spec"].get("egress", [])
    return rules


def test_network_policies_open_exactly_what_the_settings_need(integrations: Rendered, minimal: Rendered) -> None:
    added = [rule for rule in _egress(integrations, "allow-portus") if rule not in _egress(minimal, "allow-portus")]

    def tcp(port: int) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": port}]

    def canonical(rules: list[Any]) -> list[str]:
        return sorted(json.dumps(rule, sort_keys=True) for rule in rules)

    assert canonical(added) == canonical([
        {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": tcp(636)},   # the directory, narrowed
        {"ports": tcp(8443)},                                                 # the GitLab server
        {"ports": tcp(443)},                                                  # Google
        {"to": [{"ipBlock": {"cidr": "192.0.2.25/32"}}], "ports": tcp(587)},  # the relay, narrowed
    ])
    for policy in integrations.objects_of("NetworkPolicy"):
        if policy["metadata"]["name"] != "allow-portus":
            assert policy == get(minimal, "NetworkPolicy", policy["metadata"]["name"])


def test_settings_that_are_off_change_nothing(render: Callable[[Mapping[str, object]], Rendered],
                                              minimal: Rendered) -> None:
    off = render({
        **MINIMAL_CONFIG,
        "ldap": {"enabled": False, "hostname": "ldap.corp.example"},
        "oidc": {"gitlab": {"enabled": False}},
        "email": {"smtp": {"enabled": False, "address": "smtp.corp.example"}},
        "tagRetention": {"enabled": False, "olderThan": 7},
        "permissions": {},
    })

    def shape(rendered: Rendered) -> dict[str, Any]:
        portus = get(rendered, "Deployment", "portus")["spec"]["template"]
        return {
            "objects": sorted((o["kind"], o["metadata"]["name"]) for o in rendered.objects
                              if not o["metadata"]["name"].startswith("portus-bootstrap-")),
            "portus env": env(container(get(rendered, "Deployment", "portus"))),
            "portus volumes": pod_spec(get(rendered, "Deployment", "portus"))["volumes"],
            "annotations": sorted(portus["metadata"]["annotations"]),
            "policies": {p["metadata"]["name"]: p["spec"] for p in rendered.objects_of("NetworkPolicy")},
        }

    assert shape(off) == shape(minimal)


def test_tag_retention_deletes_through_portus_and_the_registry(integrations: Rendered) -> None:
    background = env(container(get(integrations, "Deployment", "portus-background")))
    assert background["PORTUS_DELETE_GARBAGE_COLLECTOR_ENABLED"] == "true"
    # The collector deletes manifests through the registry API as the portus user.
    assert background["PORTUS_DELETE_ENABLED"] == "true"
    assert registry_config(integrations)["storage"]["delete"] == {"enabled": True}


def _ruby(script: str, env_vars: Mapping[str, str]) -> Any:
    result = subprocess.run(["ruby", "-rjson", "-e", script], env={"PATH": "/usr/bin:/bin", **env_vars},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# cconfig 1.2.1's HashUtils#get_env, then what the garbage collector does with the tag pattern.
CCONFIG_GET_ENV = """
def get_env(value)
  return true if value.casecmp("true").zero?
  return false if value.casecmp("false").zero?
  Integer(value) rescue value
end
"""


def test_the_rendered_tag_pattern_selects_what_ruby_selects(integrations: Rendered) -> None:
    background = env(container(get(integrations, "Deployment", "portus-background")))
    pattern = background["PORTUS_DELETE_GARBAGE_COLLECTOR_TAG"]
    tags = ["build-12", "build-x", "rebuild-7", "build-12-rc", "latest"]
    selected = _ruby(CCONFIG_GET_ENV + """
        rx = Regexp.new(get_env(ENV.fetch("TAG")))
        puts JSON.generate(JSON.parse(ENV.fetch("TAGS")).select { |t| t.match(rx) })
    """, {"TAG": pattern, "TAGS": json.dumps(tags)})
    assert selected == ["build-12"]


def test_cconfig_reading_is_what_portus_reads() -> None:
    samples = ["true", "FALSE", "yes", "1", "0", "010", "08", "0_7", "0x1F", "0b101", "0o17", "0d19", "1_000",
               "1__0", "+5", "-0b1", " 12 ", "\t12\n", "12a", "1e3", "587,", "", "0x", "TLSv1_2", "s3cret"]
    ruby = _ruby(CCONFIG_GET_ENV + 'puts JSON.generate(JSON.parse(ENV.fetch("S")).map { |s| get_env(s) })',
                 {"S": json.dumps(samples)})
    assert [cconfig_reading(sample) for sample in samples] == ruby


@pytest.mark.parametrize("password", ["12345678", "0x10", "TRUE", 42])
def test_a_bad_credential_is_reported_without_showing_it(password: object) -> None:
    config = {**MINIMAL_CONFIG, "ldap": {
        "hostname": "ldap.corp.example", "base": "dc=corp,dc=example",
        "authentication": {"bindDn": "cn=portus,dc=corp,dc=example", "password": password},
    }}
    with pytest.raises(Exception, match=r"ldap\.authentication\.password = '\[secret\]'") as error:
        parse_config(config)
    assert str(password) not in str(error.value)


KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
_LDAP = {"hostname": "ldap.corp.example", "base": "dc=corp,dc=example"}


@pytest.mark.parametrize(("config", "hidden"), [
    ({"ldap": {**_LDAP, "authentication": {"bindDn": "cn=portus,dc=corp,dc=example", "pasword": "typo-s3cret"}}},
     "typo-s3cret"),
    ({"oidc": {"clientSecret": "top-level-s3cret"}}, "top-level-s3cret"),
    ({"ldap": {**_LDAP, "encryption": {"ca": KEY_PEM}}}, "MIGHAgEAMBMG"),
    ({"email": {"from": "registry@corp.example", "smtp": {"address": "smtp.corp.example", "ca": KEY_PEM}}},
     "MIGHAgEAMBMG"),
], ids=["misspelled password field", "OpenID Connect client secret", "LDAP CA that is a key", "relay CA that is a key"])
def test_an_error_never_shows_what_may_be_a_credential(config: dict[str, object], hidden: str) -> None:
    with pytest.raises(Exception, match=r"\[secret\]") as error:
        parse_config({**MINIMAL_CONFIG, **config})
    assert hidden not in str(error.value)


def test_openid_connect_fields_are_refused_with_the_reason() -> None:
    with pytest.raises(Exception) as error:
        parse_config({**MINIMAL_CONFIG, "oidc": {"issuer": "https://sso.corp.example", "identifier": "portus"}})
    assert str(error.value).startswith("config error: portus:oidc.issuer = 'https://sso.corp.example': Portus 2.4.3"
                                       " has no OpenID Connect")


def _settings_env(config: Mapping[str, Any]) -> dict[str, str]:
    return parse_config({**MINIMAL_CONFIG, **config}).portus_settings.env()


def test_ldap_defaults_to_starttls_on_389() -> None:
    ldap = {"hostname": "ldap.corp.example", "base": "dc=corp,dc=example"}
    env_vars = _settings_env({"ldap": ldap})
    assert env_vars["PORTUS_LDAP_ENCRYPTION_METHOD"] == "start_tls"
    assert env_vars["PORTUS_LDAP_PORT"] == "389"
    assert "PORTUS_LDAP_AUTHENTICATION_ENABLED" not in env_vars
    plain = _settings_env({"ldap": {**ldap, "encryption": "none"}})
    assert plain["PORTUS_LDAP_ENCRYPTION_METHOD"] == ""
    assert "PORTUS_LDAP_ENCRYPTION_OPTIONS_CA_FILE" not in plain
    assert _settings_env({"ldap": {**ldap, "encryption": "simple_tls"}})["PORTUS_LDAP_PORT"] == "636"


def test_implicit_tls_mail_defaults_to_port_465_without_starttls() -> None:
    smtp = {"address": "smtp.corp.example", "sslTls": "tls"}
    env_vars = _settings_env({"email": {"from": "registry@corp.example", "smtp": smtp}})
    assert env_vars["PORTUS_EMAIL_SMTP_PORT"] == "465"
    assert env_vars["PORTUS_EMAIL_SMTP_ENABLE_STARTTLS_AUTO"] == "false"
    assert "PORTUS_EMAIL_SMTP_USER_NAME" not in env_vars


def test_an_existing_secret_key_defaults_per_credential() -> None:
    config = parse_config({**MINIMAL_CONFIG, "oidc": {
        "github": {"clientId": "abc", "clientSecret": {"existingSecret": "github-app"}, "organization": "corp"},
    }})
    [(name, credential)] = config.portus_settings.credentials().items()
    assert name == "PORTUS_OAUTH_GITHUB_CLIENT_SECRET"
    assert (credential.name, credential.key) == ("github-app", "secret")  # type: ignore[union-attr]
