"""OCPP 1.6J endpoint and charge-point credentials, shared by the central system and the simulator.

The central system's address comes from the environment (endpoints never live in the fleet file); a
charger's Basic-auth password from its fleet keys ``password_file`` (relative to the fleet file) or
``password_env``.  See docs/protocols.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError, Device, Fleet


def charger_passwords(fleet: Fleet, env: Mapping[str, str]) -> dict[str, str]:
    """Each OCPP charger's Basic-auth password from its ``password_file`` (relative to the fleet file)
    or ``password_env``; :class:`ConfigError` naming the device and the key when one cannot be read."""
    return {d.charge_point_id: charger_password(fleet, d, env)
            for d in fleet.devices.values() if d.transport == "ocpp"}


def charger_password(fleet: Fleet, d: Device, env: Mapping[str, str]) -> str:
    """One charger's password (see :func:`charger_passwords`)."""
    base = fleet.path.parent if fleet.path else Path(".")
    if d.password_env:
        value = env.get(d.password_env)
        if not value:
            raise ConfigError(f"device {d.id!r}: key 'password_env': environment variable {d.password_env} "
                              "is not set")
    else:
        p = Path(d.password_file)
        try:
            value = (p if p.is_absolute() else base / p).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"device {d.id!r}: key 'password_file': cannot read {d.password_file!r}: "
                              f"{exc.strerror}") from None
        if not value:
            raise ConfigError(f"device {d.id!r}: key 'password_file': {d.password_file!r} is empty")
    return value


@dataclass(frozen=True)
class OcppEndpoint:
    """Where the central system listens, from the environment (endpoints never live in the fleet file).

    ``EH_OCPP_HOST`` (127.0.0.1), ``EH_OCPP_PORT`` (9000), ``EH_OCPP_TLS_CERT`` + ``EH_OCPP_TLS_KEY``
    (serve ``wss://``: security profile 2), ``EH_OCPP_TLS_CA`` (what a simulated charger verifies the
    server with).
    """

    host: str = "127.0.0.1"
    port: int = 9000
    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OcppEndpoint:
        port = env.get("EH_OCPP_PORT", "9000")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"EH_OCPP_PORT: not a TCP port: {port!r}")
        cert, key = env.get("EH_OCPP_TLS_CERT") or None, env.get("EH_OCPP_TLS_KEY") or None
        if (cert is None) != (key is None):
            raise ConfigError("EH_OCPP_TLS_CERT and EH_OCPP_TLS_KEY: give both (wss) or neither (ws)")
        return cls(env.get("EH_OCPP_HOST", "127.0.0.1"), int(port), cert, key, env.get("EH_OCPP_TLS_CA") or None)

    def server_ssl(self):
        if self.cert is None:
            return None
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"EH_OCPP_TLS_CERT/EH_OCPP_TLS_KEY: cannot load {self.cert!r}: {exc}") from None
        return ctx

    def client_ssl(self):
        if self.cert is None and self.ca is None:
            return None
        import ssl

        return ssl.create_default_context(cafile=self.ca)

    @property
    def url(self) -> str:
        return f"{'wss' if self.cert or self.ca else 'ws'}://{self.host}:{self.port}"
