"""TLS for the sandbox: a fresh local CA (trustme) that signs a certificate for the host, the CA
written to `<dir>/ca.pem` for the clients to trust (simple-salesforce builds https:// URLs)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Tls:
    ca_path: Path
    context: ssl.SSLContext


def make_tls(directory: Path, host: str) -> Tls:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Expansion Signals CRM sandbox")
    names = [name for name in dict.fromkeys(["127.0.0.1", "localhost", host]) if name != "0.0.0.0"]
    server_cert = ca.issue_cert(*names)
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    return Tls(ca_path, context)
