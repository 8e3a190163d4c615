"""Portus settings an organization sets on day one: its directory (LDAP), sign-in through OAuth or OpenID,
e-mail, tag retention and user permissions.

Each is one small typed object, parsed from its stack config key, that contributes what it owns:
``PORTUS_*`` environment values (names from Portus 2.4.3's ``config/config.yml`` as cconfig maps them:
``ldap.guess_email.attr`` is ``PORTUS_LDAP_GUESS_EMAIL_ATTR``; any other name is silently ignored),
credentials (which reach Portus only through Secrets), CA certificates for Portus's trust bundle, and the
connections it opens outside the namespace. ``PortusSettings`` gathers them for the Portus pods and the
NetworkPolicies.

cconfig reads an environment value as true/false (any case), else as a Ruby ``Integer()`` when it parses as
one (``"010"`` is 8, ``"0x1F"`` 31), else as the string. So every value meant as a string is checked to
stay one: a password of digits would reach Portus as a number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.network import ANYWHERE, Flow, Outside
from components.portus.runtime import CA_BUNDLE_DIR, CA_BUNDLE_FILE, PortusSecret
from components.validation import (
    ConfigError,
    ObjectValue,
    SecretText,
    as_bool,
    as_object,
    as_str,
    email,
    host_name,
    int_between,
    matching,
    one_of,
    pem_certificates,
)
from components.validation import port as port_number

SOURCE = "portus"
"""The pods that open the connections these settings need: Portus's web pods (sign-in and mail)."""

# ----------------------------------------------------------------------------------- value parsers

_RUBY_INTEGER = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0[bB][01]+(?:_[01]+)*"
    r"|0[dD][0-9]+(?:_[0-9]+)*|0[oO][0-7]+(?:_[0-7]+)*|0(?:_?[0-7]+)*|[1-9][0-9]*(?:_[0-9]+)*)[ \t\n\v\f\r]*"
)
_RUBY_BASES = {"0x": 16, "0b": 2, "0o": 8, "0d": 10}


def cconfig_reading(value: str) -> bool | int | str:
    """What Portus's config loader (cconfig 1.2.1, ``HashUtils#get_env``) makes of an environment value:
    ``true``/``false`` in any case, else Ruby's ``Integer(value)`` when that parses, else the string."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not _RUBY_INTEGER.fullmatch(value):
        return value
    digits = value.strip(" \t\n\v\f\r").replace("_", "").lower()
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    base = _RUBY_BASES.get(digits[:2], 8 if digits.startswith("0") else 10)
    return sign * int(digits[2:] if digits[:2] in _RUBY_BASES else digits, base)


def portus_text(raw: Any) -> str:
    """A string that Portus reads back as that string (not as a number or boolean)."""
    value = as_str(raw)
    if not isinstance(cconfig_reading(value), str):
        raise ValueError(
            "Portus would read this value as a number or boolean (its config loader converts"
            " true, false and integers such as 123 or 0x1F); it must stay text"
        )
    return value


_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+")
attribute_name = matching(_ATTRIBUTE, "an LDAP attribute name such as uid, mail or sAMAccountName", portus_text)
distinguished_name = matching(
    re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)\s*=.+", re.DOTALL),
    "a distinguished name such as ou=people,dc=example,dc=com", portus_text,
)
_SECRET_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
secret_name = matching(
    _SECRET_NAME, "the name of a Secret in the platform's namespace (a DNS-1123 subdomain)", portus_text,
)
secret_key = matching(r"[-._a-zA-Z0-9]{1,253}", "a Secret key: letters, digits, '-', '_' or '.'", portus_text)
display_name = matching(re.compile(r"[^<>\"@\x00-\x1f\x7f]{1,64}"),
                        "1 to 64 characters without <, >, \", @ or control characters", portus_text)


def host(raw: Any) -> str:
    """A DNS name or an IP address (TLS clients check it against the server's certificate)."""
    value = as_str(raw)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        return host_name(value)
    except ValueError:
        raise ValueError("a DNS host name or an IP address, without scheme or port") from None


def ldap_filter(raw: Any) -> str:
    value = portus_text(raw)
    depth = 0
    for char in value:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0 or "=" not in value or (value.startswith("(") and not value.endswith(")")):
        raise ValueError(
            "an LDAP filter with balanced parentheses, e.g. (memberOf=cn=registry,ou=groups,dc=example,dc=com)"
        )
    return value


def https_url(path_allowed: bool) -> Callable[[Any], str]:
    example = "https://openid.example.com/server" if path_allowed else "https://gitlab.example.com"
    rule = "an https:// URL" + ("" if path_allowed else " without a path") + f", e.g. {example}"

    def parse(raw: Any) -> str:
        value = portus_text(raw)
        parts = urlsplit(value)
        try:
            valid = parts.scheme == "https" and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid or parts.query or parts.fragment or (parts.path not in ("", "/") and not path_allowed):
            raise ValueError(rule)
        return value.rstrip("/") if not path_allowed else value

    return parse


def address_ranges(raw: Any) -> tuple[str, ...]:
    """Address ranges, e.g. ["10.20.0.0/16", "192.0.2.10/32"]; a single string is one range."""
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ValueError('a list of address ranges such as ["10.20.0.0/16"]')
    try:
        return tuple(str(ipaddress.ip_network(as_str(value), strict=True)) for value in values)
    except (ValueError, TypeError):
        raise ValueError('a list of address ranges in CIDR notation with no host bits set, e.g. ["10.20.0.0/16"]')\
            from None


def ruby_regexp(raw: Any) -> str:
    """A regular expression Portus compiles with Ruby's ``Regexp.new``; checked with Python's ``re``, whose
    syntax is the same for the usual constructs (classes, \\d, anchors, groups, alternation)."""
    value = portus_text(raw)
    try:
        re.compile(value)
    except re.error as problem:
        raise ValueError(f"a regular expression such as ^build-\\d+$ ({problem})") from None
    return value


# ----------------------------------------------------------------------------------- config objects


@dataclass(frozen=True)
class ExistingSecret:
    """A key of a Secret that already exists in the platform's namespace."""

    name: str
    key: str


Credential = SecretText | ExistingSecret


_CREDENTIAL_WORDS = re.compile(r"secret|pas|pwd|token|key", re.IGNORECASE)


def _shown(name: str, value: Any) -> Any:
    """A field's value as an error may show it: not at all when its name says it may be a credential."""
    return "[secret]" if _CREDENTIAL_WORDS.search(name) else value


def _object(key: str, raw: Any, fields: Sequence[str], unsupported: Mapping[str, str] | None = None) -> ObjectValue:
    """The object at ``key``; a field Portus 2.4.3 cannot honour is an error that says why. The value of an
    unknown or refused field is not shown when its name suggests a credential (``pasword``, ``clientSecret``)."""
    try:
        values = as_object(raw)
    except ValueError as allowed:
        raise ConfigError(key, _shown(key, raw), str(allowed)) from None
    for name, why in (unsupported or {}).items():
        if name in values:
            raise ConfigError(f"{key}.{name}", _shown(name, values[name]), why)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", _shown(unknown[0], values[unknown[0]]),
                          "unknown field; known fields are " + ", ".join(fields))
    return ObjectValue(key, values, fields)


def _section(parent: ObjectValue, name: str, fields: Sequence[str], shorthand: str | None = None) -> ObjectValue | None:
    """The object-valued field ``name`` of ``parent``, None when unset; a scalar means ``{shorthand: value}``."""
    raw = parent.raw.get(name)
    if raw in (None, ""):
        return None
    if shorthand and not isinstance(raw, dict):
        raw = {shorthand: raw}
    return _object(f"{parent.key}.{name}", raw, fields)


def _enabled(section: ObjectValue | None, default: bool = True) -> bool:
    return default if section is None else section.get("enabled", as_bool, True)


def credential(parent: ObjectValue, name: str, default_key: str, why: str) -> Credential:
    """A required credential: secret stack config (``pulumi config set --secret --path ...``), or
    ``{existingSecret: <name>, key: <key>}`` for a Secret that already exists in the namespace."""
    raw = parent.raw.get(name)
    if isinstance(raw, dict):
        ref = _object(f"{parent.key}.{name}", raw, ("existingSecret", "key"))
        return ExistingSecret(
            ref.require("existingSecret", secret_name, "required: the name of the Secret holding it"),
            ref.get("key", secret_key, default_key),
        )
    return SecretText(parent.require(name, portus_text, why, secret=True))


def _flow(port: int, ranges: tuple[str, ...]) -> Flow:
    return Flow(SOURCE, Outside(cidrs=ranges) if ranges else ANYWHERE, port)


class PortusSetting(Protocol):
    """One group of Portus settings and what it needs from the platform."""

    def env(self) -> dict[str, str]:
        """PORTUS_* variables with plain values: never a credential."""

    def credentials(self) -> dict[str, Credential]:
        """PORTUS_* variables whose values are credentials."""

    def trusted_cas(self) -> dict[str, str]:
        """CA certificates (PEM) that Portus must trust, by file name (``*.crt``)."""

    def flows(self) -> list[Flow]:
        """Connections Portus opens to services outside the namespace."""


class _Plain:
    """Defaults for settings that need no credential, CA or connection."""

    def credentials(self) -> dict[str, Credential]:
        return {}

    def trusted_cas(self) -> dict[str, str]:
        return {}

    def flows(self) -> list[Flow]:
        return []


def _true(value: bool) -> str:
    return "true" if value else "false"


# ----------------------------------------------------------------------------------- LDAP

# Portus's encryption.method values (lib/portus/ldap/adapter.rb); anything else silently means plain LDAP.
LDAP_ENCRYPTION = {"starttls": "start_tls", "start_tls": "start_tls", "simple_tls": "simple_tls", "none": ""}
LDAP_FIELDS = ("enabled", "hostname", "port", "encryption", "base", "filter", "uid", "authentication", "guessEmail",
               "cidrs")
LDAP_UNSUPPORTED = {
    "timeout": "ignored by Portus 2.4.3 (it passes connection_timeout, net-ldap reads connect_timeout): the"
               " connect timeout is net-ldap's fixed 5 seconds; remove it",
}


@dataclass(frozen=True)
class Ldap(_Plain):
    """``portus:ldap``: Portus's ``ldap`` section. Sign-in (UI and ``docker login``) binds to the directory."""

    hostname: str
    port: int
    encryption: str
    """Portus's ``encryption.method``: ``start_tls``, ``simple_tls`` or empty (plain LDAP)."""
    ca_pem: str | None
    base: str
    filter: str | None
    uid: str
    bind_dn: str | None
    bind_password: Credential | None
    guess_email: bool
    guess_email_attr: str | None
    cidrs: tuple[str, ...] = ()

    @classmethod
    def parse(cls, key: str, raw: Any) -> Ldap | None:
        obj = _object(key, raw, LDAP_FIELDS, LDAP_UNSUPPORTED)
        if not obj.get("enabled", as_bool, True):
            return None
        encryption = _section(obj, "encryption", ("method", "ca"), shorthand="method")
        method = LDAP_ENCRYPTION["starttls"]
        ca_pem = None
        if encryption:
            method = LDAP_ENCRYPTION[encryption.get("method", one_of(*LDAP_ENCRYPTION), "starttls")]
            # Not shown in errors: a private key pasted by mistake must not reach a log.
            ca_pem = encryption.get("ca", pem_certificates, None, secret=True)
            if ca_pem and not method:
                raise encryption.error("ca", "only used with method starttls or simple_tls", secret=True)
        authentication = _section(obj, "authentication", ("enabled", "bindDn", "password"))
        bind_dn = bind_password = None
        if _enabled(authentication, default=False):
            assert authentication
            bind_dn = authentication.require("bindDn", distinguished_name,
                                             "required: the DN Portus binds as to search for users")
            bind_password = credential(authentication, "password", "password", "required: the bind DN's password")
        guess = _section(obj, "guessEmail", ("enabled", "attr"), shorthand="enabled")
        return cls(
            hostname=obj.require("hostname", host, "required: the directory server's name or address"),
            port=obj.get("port", port_number, 636 if method == "simple_tls" else 389),
            encryption=method,
            ca_pem=ca_pem,
            base=obj.require("base", distinguished_name,
                             "required: the DN under which users are searched, e.g. ou=people,dc=example,dc=com"),
            filter=obj.get("filter", ldap_filter, None),
            uid=obj.get("uid", attribute_name, "uid"),
            bind_dn=bind_dn,
            bind_password=bind_password,
            guess_email=_enabled(guess, default=False),
            guess_email_attr=guess.get("attr", attribute_name, None) if guess else None,
            cidrs=obj.get("cidrs", address_ranges, ()),
        )

    def env(self) -> dict[str, str]:
        env = {
            "PORTUS_LDAP_ENABLED": "true",
            "PORTUS_LDAP_HOSTNAME": self.hostname,
            "PORTUS_LDAP_PORT": str(self.port),
            "PORTUS_LDAP_ENCRYPTION_METHOD": self.encryption,
            "PORTUS_LDAP_BASE": self.base,
            "PORTUS_LDAP_UID": self.uid,
        }
        if self.encryption:
            # With a CA file Portus also applies ssl_version (TLSv1_2 by default); the bundle holds the
            # system roots, the platform CA and this directory's CA.
            env["PORTUS_LDAP_ENCRYPTION_OPTIONS_CA_FILE"] = CA_BUNDLE_FILE
        if self.filter:
            env["PORTUS_LDAP_FILTER"] = self.filter
        if self.bind_dn:
            env["PORTUS_LDAP_AUTHENTICATION_ENABLED"] = "true"
            env["PORTUS_LDAP_AUTHENTICATION_BIND_DN"] = self.bind_dn
        if self.guess_email:
            env["PORTUS_LDAP_GUESS_EMAIL_ENABLED"] = "true"
            if self.guess_email_attr:
                env["PORTUS_LDAP_GUESS_EMAIL_ATTR"] = self.guess_email_attr
        return env

    def credentials(self) -> dict[str, Credential]:
        return {"PORTUS_LDAP_AUTHENTICATION_PASSWORD": self.bind_password} if self.bind_password else {}

    def trusted_cas(self) -> dict[str, str]:
        return {"ldap-ca.crt": self.ca_pem} if self.ca_pem else {}

    def flows(self) -> list[Flow]:
        return [_flow(self.port, self.cidrs)]


# ----------------------------------------------------------------------------------- OAuth and OpenID


@dataclass(frozen=True)
class OAuthProvider:
    """One of Portus 2.4.3's ``oauth`` providers: its names, where its id and secret go, its other fields
    (config name -> Portus key and parser), and the restrictions of who may sign in through it."""

    name: str
    """Field of ``portus:oidc``, e.g. googleOauth2."""
    portus: str
    """Key under Portus's ``oauth``, e.g. google_oauth2."""
    client_id: tuple[str, str] | None
    client_secret: tuple[str, str] | None
    fields: Mapping[str, tuple[str, Callable[[Any], str]]]
    restrictions: tuple[str, ...]
    """Fields of which at least one must be set, so not every account of the provider may sign up."""
    required: tuple[str, ...] = ()
    requires: Mapping[str, str] = field(default_factory=dict)
    """A field that needs another one, e.g. GitHub's team needs its organization."""
    url_field: str | None = None
    """The field whose URL names the server Portus calls; otherwise the provider's public HTTPS API."""

    def config_fields(self) -> tuple[str, ...]:
        """The fields of its object; ``options.hd`` is ``hd`` in an ``options`` object, as in Portus."""
        top = tuple(name for name in self.fields if "." not in name)
        credentials = tuple(pair[0] for pair in (self.client_id, self.client_secret) if pair)
        options = ("options",) if len(top) < len(self.fields) else ()
        return ("enabled", *credentials, *top, *options, "cidrs")

    def read(self, obj: ObjectValue) -> dict[str, str]:
        """The fields that are set (by config name, parsed), checked against the provider's rules."""
        options = _section(obj, "options", [name.split(".", 1)[1] for name in self.fields if "." in name])
        given: dict[str, str] = {}
        for name, (_, parse) in self.fields.items():
            holder, field_name = (options, name.split(".", 1)[1]) if "." in name else (obj, name)
            if holder is not None and holder.has(field_name):
                given[name] = holder.get(field_name, parse, "")
        for name in self.required:
            if name not in given:
                raise obj.error(name, f"required for {self.name}")
        for name, needed in self.requires.items():
            if name in given and needed not in given:
                raise obj.error(needed, f"required with {name}")
        if self.restrictions and not set(self.restrictions) & set(given):
            raise obj.error(self.restrictions[0], f"set at least one of {', '.join(self.restrictions)}: otherwise"
                            f" every {self.name} account may sign up to Portus")
        return given


PROVIDERS = (
    OAuthProvider(
        "openId", "open_id", None, None,
        {"identifier": ("identifier", https_url(path_allowed=True)), "domain": ("domain", host_name)},
        restrictions=(), required=("identifier",), url_field="identifier",
    ),
    OAuthProvider(
        "googleOauth2", "google_oauth2", ("id", "id"), ("secret", "secret"),
        {"domain": ("domain", host_name), "options.hd": ("options_hd", host_name)},
        restrictions=("domain", "options.hd"),
    ),
    OAuthProvider(
        "github", "github", ("clientId", "client_id"), ("clientSecret", "client_secret"),
        {"organization": ("organization", portus_text), "team": ("team", portus_text), "domain": ("domain", host_name)},
        restrictions=("organization", "domain"), requires={"team": "organization"},
    ),
    OAuthProvider(
        "gitlab", "gitlab", ("applicationId", "application_id"), ("secret", "secret"),
        {"group": ("group", portus_text), "domain": ("domain", host_name),
         "server": ("server", https_url(path_allowed=False))},
        restrictions=("group", "domain", "server"), url_field="server",
    ),
    OAuthProvider(
        "bitbucket", "bitbucket", ("key", "key"), ("secret", "secret"),
        {"domain": ("domain", host_name), "options.team": ("options_team", portus_text)},
        restrictions=("domain", "options.team"),
    ),
)

NO_OPENID_CONNECT = (
    "Portus 2.4.3 has no OpenID Connect (openid_connect exists only on its unreleased master): set"
    " oidc.openId.identifier for an OpenID 2.0 provider, or oidc.googleOauth2, oidc.gitlab, oidc.github or"
    " oidc.bitbucket for OAuth 2 with a client id and secret"
)


@dataclass(frozen=True)
class SignInProvider:
    """A configured provider: its Portus values (by Portus key), its secret and where Portus calls it."""

    spec: OAuthProvider
    values: Mapping[str, str]
    secret: Credential | None
    port: int
    cidrs: tuple[str, ...]

    @classmethod
    def parse(cls, spec: OAuthProvider, parent: ObjectValue) -> SignInProvider | None:
        obj = _object(f"{parent.key}.{spec.name}", parent.raw[spec.name], spec.config_fields())
        if not obj.get("enabled", as_bool, True):
            return None
        given = spec.read(obj)
        values = {portus_key: given[name] for name, (portus_key, _) in spec.fields.items() if name in given}
        if spec.client_id:
            values[spec.client_id[1]] = obj.require(spec.client_id[0], portus_text, "required: the client id the"
                                                    " provider issued for Portus")
        secret = credential(obj, spec.client_secret[0], "secret", "required: the client secret the provider issued"
                            " for Portus") if spec.client_secret else None
        url = urlsplit(given[spec.url_field]) if spec.url_field and spec.url_field in given else None
        return cls(spec, values, secret, (url.port or 443) if url else 443, obj.get("cidrs", address_ranges, ()))

    def _name(self, portus_key: str) -> str:
        return f"PORTUS_OAUTH_{self.spec.portus}_{portus_key}".upper()

    def env(self) -> dict[str, str]:
        return {self._name("enabled"): "true", **{self._name(key): value for key, value in self.values.items()}}

    def credentials(self) -> dict[str, Credential]:
        if not (self.secret and self.spec.client_secret):
            return {}
        return {self._name(self.spec.client_secret[1]): self.secret}


@dataclass(frozen=True)
class OAuth(_Plain):
    """``portus:oidc``: Portus's ``oauth`` section, local password sign-in and the sign-in providers."""

    local_login: bool | None
    providers: tuple[SignInProvider, ...]

    @classmethod
    def parse(cls, key: str, raw: Any, ldap_enabled: bool) -> OAuth:
        unsupported = dict.fromkeys(("issuer", "secret", "clientId", "clientSecret", "discovery"), NO_OPENID_CONNECT)
        obj = _object(key, raw, ("localLogin", *(spec.name for spec in PROVIDERS)), unsupported)
        local = _section(obj, "localLogin", ("enabled",), shorthand="enabled")
        providers = tuple(
            provider for spec in PROVIDERS if obj.has(spec.name)
            for provider in [SignInProvider.parse(spec, obj)] if provider
        )
        local_login = None if local is None else _enabled(local)
        if local_login is False and not providers and not ldap_enabled:
            raise obj.error("localLogin", "false hides the password form, and no LDAP or enabled provider would"
                            " be left to sign in with")
        return cls(local_login, providers)

    def env(self) -> dict[str, str]:
        env = {} if self.local_login is None else {"PORTUS_OAUTH_LOCAL_LOGIN_ENABLED": _true(self.local_login)}
        for provider in self.providers:
            env.update(provider.env())
        return env

    def credentials(self) -> dict[str, Credential]:
        return {name: value for provider in self.providers for name, value in provider.credentials().items()}

    def flows(self) -> list[Flow]:
        return [_flow(provider.port, provider.cidrs) for provider in self.providers]


# ----------------------------------------------------------------------------------- e-mail


SMTP_FIELDS = ("enabled", "address", "port", "domain", "sslTls", "enableStarttlsAuto", "opensslVerifyMode", "ca",
               "userName", "password", "authentication", "cidrs")
SMTP_UNSUPPORTED = dict.fromkeys(
    ("caFile", "caPath"),
    "set by the program to Portus's CA bundle (system roots and the platform CA); add a CA with email.smtp.ca",
)


@dataclass(frozen=True)
class Smtp:
    """Portus's ``email.smtp``: the relay Portus's mailer (ActionMailer, mail 2.7.1) delivers through."""

    address: str
    port: int
    domain: str
    ssl_tls: str
    """``ssl`` or ``tls`` (the same to the mail gem: TLS from the first byte, SMTPS), or empty."""
    starttls_auto: bool
    verify_mode: str
    ca_pem: str | None
    user_name: str | None
    password: Credential | None
    authentication: str
    cidrs: tuple[str, ...]

    @classmethod
    def parse(cls, parent: ObjectValue, helo_domain: str) -> Smtp | None:
        obj = _object(f"{parent.key}.smtp", parent.raw["smtp"], SMTP_FIELDS, SMTP_UNSUPPORTED)
        if not obj.get("enabled", as_bool, True):
            return None
        ssl_tls = obj.get("sslTls", one_of("", "ssl", "tls"), "")
        user_name = obj.get("userName", portus_text, None)
        password = credential(obj, "password", "password", "required with userName") if user_name else None
        if obj.has("password") and not user_name:
            raise obj.error("userName", "required with password (Portus signs in only when userName is set)")
        return cls(
            address=obj.require("address", host, "required: the SMTP relay's name or address"),
            port=obj.get("port", port_number, 465 if ssl_tls else 587),
            domain=obj.get("domain", host_name, helo_domain),
            ssl_tls=ssl_tls,
            starttls_auto=obj.get("enableStarttlsAuto", as_bool, not ssl_tls),
            verify_mode=obj.get("opensslVerifyMode", one_of("peer", "none"), "peer"),
            ca_pem=obj.get("ca", pem_certificates, None, secret=True),
            user_name=user_name,
            password=password,
            authentication=obj.get("authentication", one_of("login", "plain", "cram_md5"), "login"),
            cidrs=obj.get("cidrs", address_ranges, ()),
        )

    def env(self) -> dict[str, str]:
        env = {
            "PORTUS_EMAIL_SMTP_ENABLED": "true",
            "PORTUS_EMAIL_SMTP_ADDRESS": self.address,
            # Always set: Portus's default is the string "587," (a typo in its config.yml).
            "PORTUS_EMAIL_SMTP_PORT": str(self.port),
            "PORTUS_EMAIL_SMTP_DOMAIN": self.domain,
            "PORTUS_EMAIL_SMTP_SSL_TLS": self.ssl_tls,
            "PORTUS_EMAIL_SMTP_ENABLE_STARTTLS_AUTO": _true(self.starttls_auto),
            "PORTUS_EMAIL_SMTP_OPENSSL_VERIFY_MODE": self.verify_mode,
            # Ruby 2.5's Net::SMTP context has no default trust store, so the mailer trusts only this file;
            # ca_path must name a real directory too (Portus always passes it, and "" fails to load).
            "PORTUS_EMAIL_SMTP_CA_FILE": CA_BUNDLE_FILE,
            "PORTUS_EMAIL_SMTP_CA_PATH": CA_BUNDLE_DIR,
        }
        if self.user_name:
            env["PORTUS_EMAIL_SMTP_USER_NAME"] = self.user_name
            env["PORTUS_EMAIL_SMTP_AUTHENTICATION"] = self.authentication
        return env


@dataclass(frozen=True)
class Email(_Plain):
    """``portus:email``: Portus's ``email`` section. Without ``smtp`` Portus's mailer stays on sendmail,
    which the image does not run, so no mail leaves Portus."""

    sender: str | None
    name: str | None
    reply_to: str | None
    smtp: Smtp | None

    @classmethod
    def parse(cls, key: str, raw: Any, helo_domain: str) -> Email:
        obj = _object(key, raw, ("from", "name", "replyTo", "smtp"))
        smtp = Smtp.parse(obj, helo_domain) if obj.has("smtp") else None
        sender = obj.get("from", email, None)
        if smtp and not sender:
            raise obj.error("from", "required with smtp: the sender address of Portus's mail")
        return cls(sender, obj.get("name", display_name, None), obj.get("replyTo", email, None), smtp)

    def env(self) -> dict[str, str]:
        fields = {"PORTUS_EMAIL_FROM": self.sender, "PORTUS_EMAIL_NAME": self.name,
                  "PORTUS_EMAIL_REPLY_TO": self.reply_to}
        env = {name: value for name, value in fields.items() if value}
        return {**env, **(self.smtp.env() if self.smtp else {})}

    def credentials(self) -> dict[str, Credential]:
        if self.smtp and self.smtp.password:
            return {"PORTUS_EMAIL_SMTP_PASSWORD": self.smtp.password}
        return {}

    def trusted_cas(self) -> dict[str, str]:
        return {"smtp-ca.crt": self.smtp.ca_pem} if self.smtp and self.smtp.ca_pem else {}

    def flows(self) -> list[Flow]:
        return [_flow(self.smtp.port, self.smtp.cidrs)] if self.smtp else []


# ----------------------------------------------------------------------------------- tag retention

RETENTION_UNSUPPORTED = {
    "keepLatest": "Portus 2.4.3's garbage collector has no keep_latest (it exists only on its unreleased"
                  " master); limit which tags it deletes with tag, e.g. ^build-\\d+$",
}


@dataclass(frozen=True)
class TagRetention(_Plain):
    """``portus:tagRetention``: Portus's ``delete.garbage_collector``. The background worker deletes, every
    minute, each tag not updated for ``older_than`` days (and matching ``tag``, when set) through the
    registry API; deletion is enabled in Portus (``PORTUS_DELETE_ENABLED``) and in the registry
    (``storage.delete.enabled``) on every stack."""

    older_than: int
    tag: str | None

    @classmethod
    def parse(cls, key: str, raw: Any) -> TagRetention | None:
        obj = _object(key, raw, ("enabled", "olderThan", "tag"), RETENTION_UNSUPPORTED)
        if not obj.get("enabled", as_bool, True):
            return None
        return cls(
            obj.require("olderThan", int_between(1, 36500), "required: the age in days after which tags are"
                        " deleted"),
            obj.get("tag", ruby_regexp, None),
        )

    def env(self) -> dict[str, str]:
        env = {"PORTUS_DELETE_GARBAGE_COLLECTOR_ENABLED": "true",
               "PORTUS_DELETE_GARBAGE_COLLECTOR_OLDER_THAN": str(self.older_than)}
        if self.tag:
            env["PORTUS_DELETE_GARBAGE_COLLECTOR_TAG"] = self.tag
        return env


# ----------------------------------------------------------------------------------- permissions

PUSH_POLICIES = ("allow-teams", "allow-personal", "admin-only")
PERMISSION_SWITCHES = {
    "changeVisibility": "change_visibility", "createTeam": "create_team", "manageTeam": "manage_team",
    "createNamespace": "create_namespace", "manageNamespace": "manage_namespace",
    "createWebhook": "create_webhook", "manageWebhook": "manage_webhook",
}


@dataclass(frozen=True)
class Permissions(_Plain):
    """``portus:permissions``: Portus's ``user_permission`` switches (what non-administrators may do) and
    push policy. Only the switches that are set are passed; the rest keep Portus's defaults (allowed)."""

    switches: Mapping[str, bool]
    """By Portus key, e.g. create_team."""
    push_policy: str | None

    @classmethod
    def parse(cls, key: str, raw: Any) -> Permissions:
        obj = _object(key, raw, (*PERMISSION_SWITCHES, "pushImages"))
        switches = {
            portus_key: _enabled(section)
            for name, portus_key in PERMISSION_SWITCHES.items()
            for section in [_section(obj, name, ("enabled",), shorthand="enabled")] if section
        }
        push = _section(obj, "pushImages", ("policy",), shorthand="policy")
        # Portus denies every push, administrators' too, for a policy it does not know.
        policy = push.require("policy", one_of(*PUSH_POLICIES)) if push else None
        return cls(switches, policy)

    def env(self) -> dict[str, str]:
        env = {f"PORTUS_USER_PERMISSION_{name.upper()}_ENABLED": _true(on) for name, on in self.switches.items()}
        if self.push_policy:
            env["PORTUS_USER_PERMISSION_PUSH_IMAGES_POLICY"] = self.push_policy
        return env


# ----------------------------------------------------------------------------------- all of them


@dataclass
class SettingsAttachment:
    """What the Portus pods need for the settings: plain env, the secrets, the extra trust, a checksum."""

    env: list[k8s.core.v1.EnvVarArgs]
    secrets: list[PortusSecret]
    trust_config_map: pulumi.Output[str] | None
    checksum: pulumi.Output[str]


def _secret_key(env_name: str) -> str:
    return env_name.removeprefix("PORTUS_").lower().replace("_", "-")


@dataclass(frozen=True)
class PortusSettings:
    """Every configured setting; what they need, gathered for the Portus pods and the NetworkPolicies."""

    parts: tuple[PortusSetting, ...] = ()

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for part in self.parts:
            names = part.env()
            assert not set(names) & set(env), f"set twice: {sorted(set(names) & set(env))}"
            env.update(names)
        return env

    def credentials(self) -> dict[str, Credential]:
        return {name: value for part in self.parts for name, value in part.credentials().items()}

    def trusted_cas(self) -> dict[str, str]:
        return {name: pem for part in self.parts for name, pem in part.trusted_cas().items()}

    def flows(self) -> list[Flow]:
        return list(dict.fromkeys(flow for part in self.parts for flow in part.flows()))

    def attach(self, name: str, object_name: str, namespace: pulumi.Input[str], component: str,
               parent: pulumi.Resource) -> SettingsAttachment:
        """Declares, as children of ``parent``, the Secret of the credentials from stack config and the
        ConfigMap of the extra CAs (each only when there is something to hold)."""
        child = pulumi.ResourceOptions(parent=parent)
        from_config = {_secret_key(env_name): value.output() for env_name, value in self.credentials().items()
                       if isinstance(value, SecretText)}
        secret_name: pulumi.Output[str] | None = None
        if from_config:
            secret_name = kube.opaque_secret(
                f"{name}-settings", f"{object_name}-settings", namespace, component, from_config, child,
            ).metadata.name
        secrets = []
        for env_name, value in self.credentials().items():
            if isinstance(value, ExistingSecret):
                secrets.append(PortusSecret(env_name, value.name, value.key))
            else:
                assert secret_name is not None
                secrets.append(PortusSecret(env_name, secret_name, _secret_key(env_name)))
        cas = self.trusted_cas()
        trust = k8s.core.v1.ConfigMap(
            f"{name}-extra-trust", metadata=kube.metadata(f"{object_name}-extra-trust", namespace, component),
            data=cas, opts=child,
        ).metadata.name if cas else None
        return SettingsAttachment(
            env=kube.env(self.env()),
            secrets=secrets,
            trust_config_map=trust,
            checksum=kube.checksum(*from_config.values(), *cas.values()),
        )
