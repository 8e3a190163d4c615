"""A stand-in for Portus, the one program the rehearsal cannot run: its token service and webhook.

Run as ``python -m tests.rehearsal.standin --record FILE --user NAME:PASSWORD`` with the environment
of the rendered portus Deployment (adapted by ``adapt``): it serves HTTPS on ``PORTUS_PUMA_HOST`` with
``PORTUS_PUMA_TLS_CERT``/``_KEY`` and signs tokens with ``PORTUS_KEY_PATH`` as
``PORTUS_MACHINE_FQDN_VALUE``, the way Portus does (RS256, libtrust ``kid``, the requested scopes
granted). Every request is appended to FILE as one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_PATH = "/v2/token"
WEBHOOK_PATH = "/v2/webhooks/events"
# Portus's token lifetime (jwt_expiration_time's default).
TOKEN_LIFETIME = 300
PUMA_ECDH_CURVE = "secp521r1"
PUMA_CIPHERS = "HIGH:!aNULL@STRENGTH"


def key_id(key: rsa.RSAPublicKey) -> str:
    """libtrust's key ID, which the registry matches against its ``rootcertbundle``: the SHA-256 of
    the SubjectPublicKeyInfo, first 240 bits, base32 without padding, in groups of four."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def sign_token(
    key: rsa.RSAPrivateKey, issuer: str, audience: str, scopes: list[str], subject: str, kid: str | None = None
) -> tuple[str, int]:
    """A registry token as Portus signs it; returns it with its ``iat``. Scopes are granted as asked.

    ``kid`` overrides the key ID in the header (to forge one); by default it is the key's own."""
    # Portus back-dates iat and nbf by five seconds for clock skew.
    issued_at = int(time.time()) - 5
    access = []
    for scope in scopes:
        kind, rest = scope.split(":", 1)
        name, actions = rest.rsplit(":", 1)
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": issued_at + TOKEN_LIFETIME,
        "nbf": issued_at,
        "iat": issued_at,
        "jti": secrets.token_urlsafe(32),
        "access": access,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid or key_id(key.public_key())})
    return token, issued_at


class _Handler(BaseHTTPRequestHandler):
    server: _Standin
    protocol_version = "HTTP/1.1"
    timeout = 60

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.record(self, b"")
        if url.path == TOKEN_PATH:
            self._token(parse_qs(url.query))
        elif url.path == "/":
            self._reply(200, b"<!DOCTYPE html><title>Portus</title>", "text/html")
        else:
            self._reply(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.record(self, body)
        if urlsplit(self.path).path == WEBHOOK_PATH:
            self._reply(202, b"")
        else:
            self._reply(404, b'{"error":"not found"}')

    def _token(self, query: dict[str, list[str]]) -> None:
        user = self._basic_user()
        if user is None:
            self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
            return
        token, issued_at = sign_token(
            self.server.token_key, self.server.issuer, query.get("service", [""])[0], query.get("scope", []), user
        )
        body = {
            "token": token,
            "expires_in": TOKEN_LIFETIME,
            "issued_at": datetime.datetime.fromtimestamp(issued_at, datetime.UTC).isoformat(),
        }
        self._reply(200, json.dumps(body).encode())

    def _basic_user(self) -> str | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if (user, password) == self.server.credentials else None

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Standin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], tls: ssl.SSLContext, record_file: Path, credentials: tuple[str, str]
    ) -> None:
        super().__init__(address, _Handler)
        self.tls = tls
        self.record_file = record_file
        self.credentials = credentials
        self.lock = threading.Lock()
        self.issuer = os.environ["PORTUS_MACHINE_FQDN_VALUE"]
        key = serialization.load_pem_private_key(Path(os.environ["PORTUS_KEY_PATH"]).read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("PORTUS_KEY_PATH must hold an RSA key: Portus signs with RS256")
        self.token_key = key

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake happens here, in the request's thread, so one slow client blocks no other.
        with self.tls.wrap_socket(request, server_side=True) as conn:
            super().finish_request(conn, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops the connection (mid-handshake, say) is no error of the stand-in's.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def record(self, handler: _Handler, body: bytes) -> None:
        entry = {
            "time": time.time(),
            "method": handler.command,
            "path": handler.path,
            "headers": dict(handler.headers.items()),
            "body": body.decode(errors="replace"),
        }
        with self.lock, self.record_file.open("a") as out:
            out.write(json.dumps(entry) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--user", required=True, help="NAME:PASSWORD accepted for the token endpoint")
    args = parser.parse_args()
    host, _, port = os.environ["PORTUS_PUMA_HOST"].rpartition(":")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.environ["PORTUS_PUMA_TLS_CERT"], os.environ["PORTUS_PUMA_TLS_KEY"])
    # TLS as Puma 3.10 serves it with the image's OpenSSL 1.1.0 (no TLS 1.3): its ciphers, server order,
    # and ECDHE on secp521r1 only (ext/puma_http11/mini_ssl.c @ v3.10.0: SSL_CTX_set_tmp_ecdh), which every
    # client of Portus must agree on.
    tls.maximum_version = ssl.TLSVersion.TLSv1_2
    tls.set_ciphers(PUMA_CIPHERS)
    tls.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    tls.set_ecdh_curve(PUMA_ECDH_CURVE)
    name, _, password = args.user.partition(":")
    _Standin((host, int(port)), tls, args.record, (name, password)).serve_forever()


if __name__ == "__main__":
    main()
