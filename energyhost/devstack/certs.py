"""Throw-away TLS material for a loopback broker: a CA and a server certificate for 127.0.0.1.

Made with the ``openssl`` command line (OpenSSL 1.1+/3.x) into a directory of the caller's
(a test's temp dir, the demo's ``var/demo/secrets``); never committed.  The server
certificate carries ``subjectAltName = IP:127.0.0.1, DNS:localhost`` so that hostname
verification (RFC 6125 §6) passes when clients connect to the loopback address.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL_BIN = "openssl"


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _run(args: list[str], cwd: Path) -> None:
    r = subprocess.run([OPENSSL_BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {r.stderr.strip()[-400:]}")


def make_loopback_tls(directory: str | os.PathLike, days: int = 30) -> TlsFiles:
    """Create (or reuse) ``ca.crt``, ``server.crt`` and ``server.key`` (0600) in ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key")
    if all(p.exists() for p in (files.ca_cert, files.server_cert, files.server_key)):
        return files
    _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
          "-days", str(days), "-subj", "/CN=energyhost test CA"], d)
    _run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
          "-subj", "/CN=127.0.0.1"], d)
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                               "extendedKeyUsage = serverAuth\n")
    _run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
          "-out", "server.crt", "-days", str(days), "-extfile", "san.ext"], d)
    for name in ("ca.key", "server.key"):
        (d / name).chmod(0o600)
    return files
