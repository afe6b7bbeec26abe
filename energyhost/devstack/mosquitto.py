"""A Mosquitto 2.x broker on loopback for tests, benchmarks and the demo."""

from __future__ import annotations

import os
import subprocess

from energyhost.devstack.process import _Daemon, free_port

MOSQUITTO_BIN = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD_BIN = "/usr/bin/mosquitto_passwd"


class Mosquitto(_Daemon):
    """A Mosquitto 2.x broker listening on ``127.0.0.1`` with persistence in its own directory.

    Parameters
    ----------
    base_dir : directory holding ``mosquitto.conf``, ``mosquitto.db``, ``mosquitto.log``.
    port : listener port (a free one if None).
    users : ``{username: password}``; when given, anonymous access is off and a password file
        is written with ``mosquitto_passwd``.
    acl : text of an ACL file (``user <name>`` / ``topic read|write|readwrite <filter>`` lines).
    autosave_changes : with ``autosave_on_changes true``, the in-memory database is saved after
        this many changes (small = little loss at ``kill -9``; see reliability.md §6).
    max_queued_messages : per-client queue for offline persistent sessions (2.x default 1,000
        drops silently beyond; sized here for a long subscriber outage).
    message_size_limit : broker-side payload cap [bytes]; above the application's 64 KiB cap so
        that over-size payloads reach the collector and are dead-lettered with a reason.
    tls : ``(cafile, certfile, keyfile)``: adds a TLS listener (TLS 1.2+) on ``tls_port`` (a free
        one if None) beside the plain one; see :func:`energyhost.devstack.make_loopback_tls`.

    Runs as root with ``user root`` so that it can write its persistence file in ``base_dir``.
    """

    name = "mosquitto"

    def __init__(self, base_dir: str | os.PathLike, *, port: int | None = None,
                 users: dict[str, str] | None = None, acl: str | None = None,
                 autosave_changes: int = 10, max_queued_messages: int = 1_000_000,
                 message_size_limit: int = 1 << 20, tls: tuple | None = None,
                 tls_port: int | None = None) -> None:
        super().__init__(base_dir, port)
        self.tls = tuple(str(p) for p in tls) if tls else None
        if self.tls is not None and len(self.tls) != 3:
            raise ValueError("tls must be (cafile, certfile, keyfile)")
        self.tls_port = (tls_port or free_port()) if self.tls else None
        self.users = dict(users) if users else None
        self.acl = acl
        self.autosave_changes = int(autosave_changes)
        self.max_queued_messages = int(max_queued_messages)
        self.message_size_limit = int(message_size_limit)
        self.config_path = self.base_dir / "mosquitto.conf"
        self.db_path = self.base_dir / "mosquitto.db"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _ports(self) -> list[int]:
        return [self.port] + ([self.tls_port] if self.tls_port else [])

    def _repick_ports(self) -> None:
        self.port = free_port()
        if self.tls:
            self.tls_port = free_port()

    def _write_config(self) -> None:
        d = self.base_dir
        lines = [
            "user root",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "persistence true",
            f"persistence_location {d}/",
            "persistence_file mosquitto.db",
            "autosave_on_changes true",
            f"autosave_interval {self.autosave_changes}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            f"message_size_limit {self.message_size_limit}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages false",
        ]
        if self.tls:
            ca, cert, key = self.tls
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {ca}", f"certfile {cert}",
                      f"keyfile {key}", "tls_version tlsv1.2"]
        if self.users:
            pw = d / "passwords"
            pw.write_text("")
            pw.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD_BIN, "-b", str(pw), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = d / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return [MOSQUITTO_BIN, "-c", str(self.config_path)]
