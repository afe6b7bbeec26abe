"""Start and stop the real ``influxd`` (1.x) and ``mosquitto`` (2.x) daemons on loopback.

Used by the test fixtures, the benchmarks and ``energyhost demo``.  Each instance gets
its own directory (config, data, logs) and free ``127.0.0.1`` ports; after start-up the
process that *listens* on the port is checked to be the one we started (socket inode in
``/proc/net/tcp`` matched against ``/proc/<pid>/fd``), so a test never talks to a stray
daemon.  ``stop()`` sends SIGTERM then SIGKILL to our PID only; ``kill()`` sends SIGKILL
(crash simulation); ``start()`` again reuses the same port and directories, which is
what outage tests need.

Error policy::

    ServiceError    a daemon did not start, exited early, or its port is held by another process
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

INFLUXD_BIN = "/usr/bin/influxd"
MOSQUITTO_BIN = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD_BIN = "/usr/bin/mosquitto_passwd"
LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A daemon could not be started or is not the process we expect on its port."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (bound to 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state (0A) on ``port`` from /proc/net/tcp and tcp6."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def listener_pid_matches(pid: int, port: int) -> bool:
    """True if process ``pid`` owns a socket listening on TCP ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


class _Daemon:
    """Common life cycle: one subprocess, its log file, start/stop/kill by our own PID."""

    name = "daemon"
    start_timeout_s = 30.0

    def __init__(self, base_dir: str | os.PathLike, port: int | None) -> None:
        self.base_dir = Path(base_dir).resolve()     # daemons run with their own cwd
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._auto_port = port is None
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen | None = None
        self._started_once = False
        self.log_path = self.base_dir / f"{self.name}.log"

    # -- to be provided by subclasses
    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Protocol-level readiness, called once the PID is seen listening."""
        return True

    def _ports(self) -> list[int]:
        return [self.port]

    def _repick_ports(self) -> None:
        self.port = free_port()

    # -- life cycle
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> _Daemon:
        """Start the daemon (again, on the same port and dirs if it ran before) and wait until ready."""
        if self.running:
            return self
        attempts = 3 if (self._auto_port and not self._started_once) else 1
        for attempt in range(attempts):
            self._write_config()
            try:
                self._spawn_and_wait()
                self._started_once = True
                return self
            except ServiceError:
                if attempt == attempts - 1:
                    raise
                self._repick_ports()   # a port we picked was taken meanwhile by someone else
        return self

    def _spawn_and_wait(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.base_dir,
                                          start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServiceError(f"{self.name} exited with code {code} at start-up; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            if all(listener_pid_matches(self._proc.pid, p) for p in self._ports()) and self._ready():
                return
            time.sleep(0.05)
        self.kill()
        raise ServiceError(f"{self.name} not ready on {self.host}:{self.port} after {self.start_timeout_s} s "
                           f"(or the port is held by another process); log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our PID, wait up to ``timeout`` s, then SIGKILL it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL our PID (crash simulation: no clean shutdown, no final save)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Influxd(_Daemon):
    """An InfluxDB 1.x server on ``127.0.0.1`` with its own meta/data/wal directories.

    Parameters
    ----------
    base_dir : directory holding ``influxd.conf``, ``meta/``, ``data/``, ``wal/``, ``influxd.log``.
    port, backup_port : HTTP and backup (top-level ``bind-address``) ports; free ones if None.
    auth : enable HTTP auth; an admin user is created at the first start in a new ``base_dir``
        (``.admin_user``, ``.admin_password``; pass the same password again for an existing dir);
        add others with :meth:`add_user`.
    max_body_size : ``[http] max-body-size`` [bytes] (lower it to provoke 413).
    log_queries : enable the HTTP access log and the query log (off by default: they cost CPU).
    tls : ``(cafile, certfile, keyfile)``: serve HTTPS instead of HTTP (``[http] https-enabled``,
        ``https-certificate``, ``https-private-key``; InfluxDB 1.x has no plain listener beside
        it); :attr:`url` is then ``https://...`` and the readiness check and :meth:`query`
        verify the server certificate against ``cafile`` (see :func:`core.certs.make_loopback_tls`).

    Reporting to InfluxData and pprof are disabled; the ``_internal`` monitor store is off.
    """

    name = "influxd"

    def __init__(self, base_dir: str | os.PathLike, *, port: int | None = None,
                 backup_port: int | None = None, auth: bool = False, max_body_size: int = 25_000_000,
                 log_queries: bool = False, admin_user: str = "admin",
                 admin_password: str | None = None, tls: tuple | None = None) -> None:
        super().__init__(base_dir, port)
        self.tls = tuple(str(p) for p in tls) if tls else None
        if self.tls is not None and len(self.tls) != 3:
            raise ValueError("tls must be (cafile, certfile, keyfile)")
        # verifies the server against our CA, with host-name check (the certificate names 127.0.0.1)
        self._ssl = ssl.create_default_context(cafile=self.tls[0]) if self.tls else None
        self.backup_port = backup_port if backup_port is not None else free_port()
        self.auth = auth
        self.max_body_size = int(max_body_size)
        self.log_queries = log_queries
        self.admin_user = admin_user
        self.admin_password = admin_password or secrets.token_hex(12)
        self.config_path = self.base_dir / "influxd.conf"
        # a persisted meta store from an earlier run already holds the admin user
        self._admin_created = (self.base_dir / "meta" / "meta.db").exists()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """The CA file clients need to verify this server (``EH_INFLUX_TLS_CA``), None without TLS."""
        return self.tls[0] if self.tls else None

    def _ports(self) -> list[int]:
        return [self.port, self.backup_port]

    def _repick_ports(self) -> None:
        self.port, self.backup_port = free_port(), free_port()

    def _write_config(self) -> None:
        d = self.base_dir
        for sub in ("meta", "data", "wal"):
            (d / sub).mkdir(exist_ok=True)
        lq = "true" if self.log_queries else "false"
        if self.tls:
            https = (f'https-enabled = true\n  https-certificate = "{self.tls[1]}"\n'
                     f'  https-private-key = "{self.tls[2]}"')
        else:
            https = "https-enabled = false"
        self.config_path.write_text(f"""\
reporting-disabled = true
bind-address = "{self.host}:{self.backup_port}"

[meta]
  dir = "{d / 'meta'}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  wal-fsync-delay = "0s"
  query-log-enabled = {lq}
  index-version = "inmem"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = {lq}
  suppress-write-log = true
  pprof-enabled = false
  {https}
  max-body-size = {self.max_body_size}
  unix-socket-enabled = false

[continuous_queries]
  log-enabled = false
""")

    def _command(self) -> list[str]:
        return [INFLUXD_BIN, "run", "-config", str(self.config_path)]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1.0, context=self._ssl) as r:
                return r.status == 204
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> Influxd:
        super().start()
        if self.auth and not self._admin_created:
            # InfluxDB 1.x accepts CREATE USER ... WITH ALL PRIVILEGES unauthenticated while no user exists.
            self.query(f"CREATE USER {_ident(self.admin_user)} WITH PASSWORD {_string(self.admin_password)} "
                       "WITH ALL PRIVILEGES", auth=False)
            self._admin_created = True
        return self

    def query(self, q: str, *, auth: bool = True, db: str | None = None) -> dict:
        """Run an admin InfluxQL statement (POST /query) and return the decoded JSON; raise on error."""
        data = {"q": q}
        if db:
            data["db"] = db
        req = urllib.request.Request(f"{self.url}/query", data=urllib.parse.urlencode(data).encode(),
                                     method="POST")
        if auth and self.auth:
            tok = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
            req.add_header("Authorization", f"Basic {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10.0, context=self._ssl) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"influxd {self.url}: {q!r}: HTTP {exc.code}: "
                               f"{exc.read().decode(errors='replace')}") from None
        for res in body.get("results", []):
            if "error" in res:
                raise ServiceError(f"influxd {self.url}: {q!r}: {res['error']}")
        return body

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {_ident(name)}")

    def add_user(self, user: str, password: str, *, database: str | None = None,
                 privilege: str = "READ") -> None:
        """Create a user; ``privilege`` READ / WRITE / ALL on ``database``, or ADMIN (all databases)."""
        privilege = privilege.upper()
        if privilege not in ("READ", "WRITE", "ALL", "ADMIN"):
            raise ValueError(f"privilege must be READ, WRITE, ALL or ADMIN, got {privilege!r}")
        if privilege == "ADMIN":
            self.query(f"CREATE USER {_ident(user)} WITH PASSWORD {_string(password)} WITH ALL PRIVILEGES")
            return
        if database is None:
            raise ValueError(f"privilege {privilege} needs a database")
        self.query(f"CREATE USER {_ident(user)} WITH PASSWORD {_string(password)}")
        self.create_database(database)
        self.query(f"GRANT {privilege} ON {_ident(database)} TO {_ident(user)}")


def _ident(name: str) -> str:
    """Quote an InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    """Quote an InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        one if None) beside the plain one; see :func:`core.certs.make_loopback_tls`.

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
