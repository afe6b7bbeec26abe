"""An InfluxDB 1.x server on loopback for tests, benchmarks and the demo."""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request

from energyhost.devstack.process import ServiceError, _Daemon, free_port

INFLUXD_BIN = "/usr/bin/influxd"


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
        verify the server certificate against ``cafile`` (see :func:`energyhost.devstack.make_loopback_tls`).

    Reporting to InfluxData and pprof are disabled; the ``_internal`` monitor store is off; the
    continuous-query service is off (InfluxDB 1.x lets a READ user create a continuous query, which
    the server then runs, writing, every interval).
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
  enabled = false
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
