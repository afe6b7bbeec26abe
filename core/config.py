"""Fleet configuration and runtime settings.

Error policy (the tree of what can go wrong at start-up)::

    ConfigError            bad fleet file: names the file, the device (or site) and the key
    core.profiles.ProfileError   bad profile file (raised by core.profiles)

A fleet file is validated once, completely, at start-up; on any error nothing starts.
Endpoints and secrets never live in the fleet file: they come from the environment
(:class:`Settings`), so the repository holds no secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.channels import DEVICE_KINDS
from core.ids import ID_RE, ID_RULE
from core.topics import telemetry_topic

TRANSPORTS = ("modbus", "mqtt", "dlt645", "ocpp")
DLT645_ADDRESS_RE = re.compile(r"^[0-9]{12}$")
CHARGE_POINT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,48}$")     # OCPP 1.6 CiString48, URL-path safe


class ConfigError(ValueError):
    """The fleet file or the settings are invalid; the message says where and what."""


@dataclass(frozen=True)
class Gateway:
    """A serial-to-Ethernet gateway: several Modbus unit ids behind one TCP connection."""

    id: str
    site_id: str
    host: str
    port: int
    framer: str = "rtu"          # "rtu" = RTU framing over TCP; "socket" = Modbus TCP (MBAP)
    pause_s: float = 0.02        # pause between two requests on the bus
    timeout_s: float = 1.0


@dataclass(frozen=True)
class Device:
    id: str
    kind: str
    customer_id: str
    site_id: str
    transport: str               # one of TRANSPORTS
    profile: str | None = None   # profile id (file stem in profiles/); required for modbus and dlt645
    host: str | None = None      # modbus TCP direct
    port: int | None = None
    unit_id: int = 1
    gateway: str | None = None   # gateway id for RTU-over-TCP
    poll_interval_s: float = 5.0
    timeout_s: float = 1.0
    retries: int = 1
    rated_power_kw: float | None = None   # PV inverter AC rating / charger rating
    name: str = ""
    ct_ratio: float = 1.0        # meter read through current transformers: primary/secondary (200/5 A -> 40)
    pt_ratio: float = 1.0        # ... and voltage transformers (10 kV/100 V -> 100); 1 = reads primary values
    address: str | None = None   # dlt645: the meter's 12-digit address (nameplate)
    charge_point_id: str | None = None   # ocpp: the id the charger connects with (ws path, Basic-auth user)
    password_file: str | None = None     # ocpp: file holding its Basic-auth password (relative: to the fleet file)
    password_env: str | None = None      # ocpp: ... or the environment variable holding it
    supplier: str = ""           # who supplied the equipment (rated yearly, see docs/suppliers.md)
    model: str = ""              # the supplier's model designation
    installed: date | None = None         # date of installation (early failures are counted from it)
    warranty_until: date | None = None    # last day of the supplier's warranty

    @property
    def tags(self) -> dict[str, str]:
        return {"customer": self.customer_id, "site": self.site_id, "device": self.id}

    @property
    def topic(self) -> str:
        """MQTT telemetry topic of this device (see docs/mqtt.md)."""
        return telemetry_topic(self.site_id, self.id)


@dataclass(frozen=True)
class Transformer:
    id: str
    rated_kva: float
    p0_kw: float                  # no-load loss
    pk_kw: float                  # load loss at rated current
    meter: str | None = None      # device id of the meter on its LV side
    temperature_controller: str | None = None
    insulation: str = "dry"       # "dry" (IEC 60076-12) or "oil" (IEC 60076-7): the ageing law
    insulation_class: int = 155   # dry-type thermal class [degC] (F = 155)
    design_life_years: float = 0.0   # 0 = the standard's: 180,000 h for dry-type, 20 years for oil
    replacement_cost_yuan: float | None = None   # prices the insulation life consumed

    @property
    def design_life_days(self) -> float:
        """The design life [d]: the configured years, else 180,000 h (dry) or 20 years (oil)."""
        if self.design_life_years:
            return self.design_life_years * 365.25
        return 180_000.0 / 24.0 if self.insulation == "dry" else 20 * 365.25


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    customer_id: str
    timezone: str = "Asia/Shanghai"
    tariff: str = ""
    province: str = ""                # where the site is billed (a tariff is for one province)
    tariff_example_ok: bool = False   # the customer accepts figures from an example / other-province tariff
    voltage_level_kv: float = 10.0
    nominal_voltage_v: float = 230.0
    pv_capacity_kwp: float = 0.0
    latitude: float = 31.3
    longitude: float = 120.6
    contract_demand_kw: float | None = None
    pf_standard: float = 0.90
    transformers: tuple[Transformer, ...] = ()
    devices: tuple[Device, ...] = ()
    gateways: tuple[Gateway, ...] = ()


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    manager: str = ""
    email: str = ""
    sites: tuple[Site, ...] = ()


@dataclass(frozen=True)
class Fleet:
    customers: tuple[Customer, ...]
    path: Path | None = None
    sites: dict[str, Site] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)

    def site(self, site_id: str) -> Site:
        return self.sites[site_id]

    def device(self, device_id: str) -> Device:
        return self.devices[device_id]

    def customer_of_site(self, site_id: str) -> Customer:
        return next(c for c in self.customers if any(s.id == site_id for s in c.sites))


class _Reader:
    """Typed access to one TOML table, with errors that name file, owner and key."""

    def __init__(self, path: str, owner: str, table: dict, keys: frozenset[str] = frozenset()):
        self.path, self.owner, self.table, self.keys = path, owner, table, keys
        self.used: set[str] = set()

    def fail(self, key: str, why: str) -> ConfigError:
        """The error for ``key``; an unknown key in the table is reported instead (it is the likelier cause:
        ``hots = ...`` makes ``host`` look missing)."""
        return self._unknown() or ConfigError(f"{self.path}: {self.owner}: key {key!r}: {why}")

    def _unknown(self) -> ConfigError | None:
        """The error for the first key outside ``keys`` (the table's valid keys), naming the nearest valid one."""
        unknown = sorted(set(self.table) - self.keys) if self.keys else []
        if not unknown:
            return None
        key = unknown[0]
        near = difflib.get_close_matches(key, sorted(self.keys), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(sorted(self.keys))}"
        return ConfigError(f"{self.path}: {self.owner}: key {key!r}: unknown key{hint}")

    def get(self, key: str, kind: type | tuple[type, ...], default=..., *, check=None, why: str = ""):
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                return self._missing(key)
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        if check is not None and not check(value):
            raise self.fail(key, f"{why} (got {value!r})")
        return value

    def _missing(self, key):
        raise self.fail(key, "is required")

    def ident(self, key: str) -> str:
        return self.get(key, str, check=ID_RE.match, why=ID_RULE)

    def finish(self, allowed_children: tuple[str, ...] = ()) -> None:
        if (err := self._unknown()) is not None:
            raise err
        unknown = set(self.table) - self.used - set(allowed_children)
        if unknown:
            raise self.fail(sorted(unknown)[0], "unknown key (typo?)")


def _positive(v) -> bool:
    return v > 0


def _tcp_port(v) -> bool:
    return 0 < v < 65536           # 0 means "any free port" to a listener: never a device's port


TCP_PORT_RULE = "must be a TCP port 1..65535"


def _keys(cls, *, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> frozenset[str]:
    """The keys a fleet table may hold: the dataclass's fields less the derived ones, plus child tables."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.name not in drop) | frozenset(add)


CUSTOMER_KEYS = _keys(Customer, drop=("sites",), add=("site",))
SITE_KEYS = _keys(Site, drop=("customer_id", "transformers", "devices", "gateways"),
                  add=("transformer", "device", "gateway"))
GATEWAY_KEYS = _keys(Gateway, drop=("site_id",))
DEVICE_KEYS = _keys(Device, drop=("customer_id", "site_id"))
TRANSFORMER_KEYS = _keys(Transformer)


def load_fleet(path: str | os.PathLike, *, known_profiles: set[str] | None = None) -> Fleet:
    """Read and validate a fleet TOML file.

    ``known_profiles``, when given, is the set of profile ids that exist; a device naming
    another one is an error.  Raises :class:`ConfigError` naming file, device and key.
    """
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: fleet file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_fleet(raw, str(p), known_profiles=known_profiles, path=p)


def _ratio(dr: _Reader, key: str, kind: str, transport: str) -> float:
    """An instrument-transformer ratio: only for Modbus and DL/T 645 meters (the collector scales their values)."""
    value = dr.get(key, float, 1.0, check=lambda v: 1.0 <= v <= 100_000.0,
                   why="must be 1..100000 (primary/secondary, e.g. 40 for a 200/5 A CT)")
    if value != 1.0 and (kind != "meter" or transport not in ("modbus", "dlt645")):
        raise dr.fail(key, "applies to Modbus and DL/T 645 meters only (the collector turns their secondary-side values into "
                           f"primary ones); this device is a {transport} {kind}")
    return value


def _protocol_keys(dr: _Reader, transport: str, kind: str, profile: str | None) -> dict:
    """The keys of one transport: ``address`` (dlt645); ``charge_point_id`` and a password source (ocpp)."""
    out: dict = {}
    if profile is not None and ("_dlt645_" in profile) != (transport == "dlt645"):
        raise dr.fail("profile", f"profile {profile!r} does not fit transport {transport!r} (DL/T 645 profiles "
                                 "are named *_dlt645_*)")
    if transport == "dlt645":
        if kind != "meter":
            raise dr.fail("kind", "a dlt645 device is a meter")
        out["address"] = dr.get("address", str, check=DLT645_ADDRESS_RE.match,
                                why="must be the meter's 12-digit address, e.g. '000012345678'")
    elif transport == "ocpp":
        if kind != "ev_charger":
            raise dr.fail("kind", "an ocpp device is an ev_charger")
        if profile is not None:
            raise dr.fail("profile", "an ocpp charger has no register profile")
        out["charge_point_id"] = dr.get("charge_point_id", str, check=CHARGE_POINT_RE.match,
                                        why="1-48 characters of A-Z a-z 0-9 _ . : -")
        out["password_file"] = dr.get("password_file", str, None)
        out["password_env"] = dr.get("password_env", str, None, check=lambda v: re.match(r"^[A-Z_][A-Z0-9_]*$", v),
                                     why="must be an environment variable name")
        if (out["password_file"] is None) == (out["password_env"] is None):
            raise dr.fail("password_file", "give exactly one of password_file / password_env (Basic auth, "
                                           "security profile 1-2)")
    return out
def _date(dr: _Reader, key: str) -> date | None:
    """An optional calendar date: a TOML local date (``2024-03-01``) or the same as a string."""
    value = dr.get(key, (date, str), None)
    if value is None:
        return None
    if isinstance(value, datetime):
        raise dr.fail(key, f"expected a date like 2024-03-01, got a date-time {value.isoformat()!r}")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise dr.fail(key, f"expected a date like 2024-03-01, got {value!r}") from None
    return value


def _supplier_fields(dr: _Reader) -> dict:
    """The supplier data of a device: ``supplier``, ``model``, ``installed``, ``warranty_until``."""
    supplier = dr.get("supplier", str, "", check=lambda v: v == "" or ID_RE.match(v), why=ID_RULE)
    model = dr.get("model", str, "", check=lambda v: len(v) <= 100, why="at most 100 characters")
    installed, warranty = _date(dr, "installed"), _date(dr, "warranty_until")
    if installed is not None and installed > date.today():
        raise dr.fail("installed", f"lies in the future ({installed.isoformat()})")
    if installed is not None and warranty is not None and warranty < installed:
        raise dr.fail("warranty_until", f"{warranty.isoformat()} is before 'installed' {installed.isoformat()}")
    return {"supplier": supplier, "model": model, "installed": installed, "warranty_until": warranty}


DRY_CLASSES = (105, 120, 130, 155, 180, 200, 220)      # IEC 60076-12 thermal classes [degC]


def _ageing_fields(tr: _Reader) -> dict:
    """The insulation keys of a transformer: ``insulation``, ``insulation_class``, ``design_life_years``,
    ``replacement_cost_yuan``."""
    return {
        "insulation": tr.get("insulation", str, "dry", check=lambda v: v in ("dry", "oil"),
                             why="must be 'dry' or 'oil'"),
        "insulation_class": tr.get("insulation_class", int, 155, check=lambda v: v in DRY_CLASSES,
                                   why=f"must be one of {DRY_CLASSES}"),
        "design_life_years": tr.get("design_life_years", float, 0.0, check=lambda v: 0 < v <= 60,
                                    why="must be 0..60 years"),
        "replacement_cost_yuan": tr.get("replacement_cost_yuan", float, None, check=_positive, why="must be > 0"),
    }


def parse_fleet(raw: dict, where: str = "<fleet>", *, known_profiles: set[str] | None = None,
                path: Path | None = None) -> Fleet:
    top = _Reader(where, "top level", raw)
    customers_raw = top.get("customer", list, default=[])
    top.finish()
    if not customers_raw:
        raise ConfigError(f"{where}: no [[customer]] defined")
    seen: dict[str, str] = {}

    def unique(kind: str, ident: str, r: _Reader) -> None:
        if ident in seen:
            raise r.fail("id", f"duplicate id {ident!r} (already used by a {seen[ident]})")
        seen[ident] = kind

    customers: list[Customer] = []
    all_sites: dict[str, Site] = {}
    all_devices: dict[str, Device] = {}
    all_gateways: dict[str, Gateway] = {}
    endpoints: dict[tuple[str, int, int | str], str] = {}
    lines: dict[str, str] = {}
    for i, craw in enumerate(customers_raw):
        cr = _Reader(where, f"customer #{i + 1}", craw, CUSTOMER_KEYS)
        cid = cr.ident("id")
        cr.owner = f"customer {cid!r}"
        unique("customer", cid, cr)
        sites: list[Site] = []
        for j, sraw in enumerate(cr.get("site", list, default=[])):
            sr = _Reader(where, f"customer {cid!r} site #{j + 1}", sraw, SITE_KEYS)
            sid = sr.ident("id")
            sr.owner = f"site {sid!r}"
            unique("site", sid, sr)
            tz = sr.get("timezone", str, "Asia/Shanghai")
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise sr.fail("timezone", f"unknown time zone {tz!r}") from None
            gateways: list[Gateway] = []
            for graw in sr.get("gateway", list, default=[]):
                gr = _Reader(where, f"site {sid!r} gateway", graw, GATEWAY_KEYS)
                gid = gr.ident("id")
                gr.owner = f"gateway {gid!r}"
                unique("gateway", gid, gr)
                gw = Gateway(
                    id=gid, site_id=sid,
                    host=gr.get("host", str),
                    port=gr.get("port", int, check=_tcp_port, why=TCP_PORT_RULE),
                    framer=gr.get("framer", str, "rtu", check=lambda v: v in ("rtu", "socket"),
                                  why="must be 'rtu' or 'socket'"),
                    pause_s=gr.get("pause_s", float, 0.02, check=lambda v: 0 <= v <= 5, why="0..5 s"),
                    timeout_s=gr.get("timeout_s", float, 1.0, check=_positive, why="must be > 0"),
                )
                gr.finish()
                gateways.append(gw)
                all_gateways[gid] = gw
            devices: list[Device] = []
            for draw in sr.get("device", list, default=[]):
                dr = _Reader(where, f"site {sid!r} device", draw, DEVICE_KEYS)
                did = dr.ident("id")
                dr.owner = f"device {did!r}"
                unique("device", did, dr)
                kind = dr.get("kind", str, check=lambda v: v in DEVICE_KINDS,
                                 why=f"must be one of {DEVICE_KINDS}")
                transport = dr.get("transport", str, check=lambda v: v in TRANSPORTS,
                                   why=f"must be one of {TRANSPORTS}")
                profile = dr.get("profile", str, None)
                if transport in ("modbus", "dlt645") and profile is None:
                    raise dr.fail("profile", f"is required for a {transport} device")
                if profile is not None and known_profiles is not None and profile not in known_profiles:
                    raise dr.fail("profile", f"unknown profile {profile!r}; known: {sorted(known_profiles)}")
                gateway = dr.get("gateway", str, None)
                host = dr.get("host", str, None)
                port = dr.get("port", int, None, check=_tcp_port, why=TCP_PORT_RULE)
                unit_id = dr.get("unit_id", int, 1, check=lambda v: 0 <= v <= 247, why="must be 0..247")
                extra = _protocol_keys(dr, transport, kind, profile)
                if transport in ("modbus", "dlt645"):
                    # a meter on a DL/T 645 line is told apart by its address, a Modbus device by its unit id
                    ident, what = (extra["address"], "address") if extra else (unit_id, "unit id")
                    if gateway is not None:
                        if gateway not in {g.id for g in gateways}:
                            raise dr.fail("gateway", f"no gateway {gateway!r} on site {sid!r}")
                        if host is not None or port is not None:
                            raise dr.fail("host", "give either gateway or host/port, not both")
                        key = (gateway, 0, ident)
                    else:
                        if host is None or port is None:
                            raise dr.fail("host" if host is None else "port",
                                          f"is required for a {transport} device without gateway")
                        key = (host, port, ident)
                    if key in endpoints and key[1] != 0:
                        raise dr.fail(what.replace(" ", "_"), f"same host/port/{what} as device {endpoints[key]!r}")
                    if key in endpoints:
                        raise dr.fail(what.replace(" ", "_"), f"{what} {ident} already used on gateway {gateway!r} "
                                            f"by device {endpoints[key]!r}")
                    endpoints[key] = did
                    line = (gateway or f"{host}:{port}")
                    if lines.setdefault(line, transport) != transport:
                        raise dr.fail("transport", f"line {line!r} already carries {lines[line]} devices: "
                                                   "one protocol per serial line / TCP endpoint")
                dev = Device(
                    id=did, kind=kind, customer_id=cid, site_id=sid, transport=transport, profile=profile,
                    host=host, port=port, unit_id=unit_id, gateway=gateway,
                    poll_interval_s=dr.get("poll_interval_s", float, 5.0,
                                           check=lambda v: 0.1 <= v <= 3600, why="must be 0.1..3600 s"),
                    timeout_s=dr.get("timeout_s", float, 1.0, check=lambda v: 0.05 <= v <= 60,
                                     why="must be 0.05..60 s"),
                    retries=dr.get("retries", int, 1, check=lambda v: 0 <= v <= 5, why="must be 0..5"),
                    rated_power_kw=dr.get("rated_power_kw", float, None, check=_positive, why="must be > 0"),
                    name=dr.get("name", str, ""),
                    ct_ratio=_ratio(dr, "ct_ratio", kind, transport),
                    pt_ratio=_ratio(dr, "pt_ratio", kind, transport),
                    **extra,
                    **_supplier_fields(dr),
                )
                dr.finish()
                devices.append(dev)
                all_devices[did] = dev
            transformers: list[Transformer] = []
            for traw in sr.get("transformer", list, default=[]):
                tr = _Reader(where, f"site {sid!r} transformer", traw, TRANSFORMER_KEYS)
                tid = tr.ident("id")
                tr.owner = f"transformer {tid!r}"
                unique("transformer", tid, tr)
                t = Transformer(
                    id=tid,
                    rated_kva=tr.get("rated_kva", float, check=_positive, why="must be > 0"),
                    p0_kw=tr.get("p0_kw", float, check=_positive, why="must be > 0"),
                    pk_kw=tr.get("pk_kw", float, check=_positive, why="must be > 0"),
                    meter=tr.get("meter", str, None),
                    temperature_controller=tr.get("temperature_controller", str, None),
                    **_ageing_fields(tr),
                )
                for key in ("meter", "temperature_controller"):
                    ref = getattr(t, key)
                    if ref is not None and ref not in {d.id for d in devices}:
                        raise tr.fail(key, f"no device {ref!r} on site {sid!r}")
                tr.finish()
                transformers.append(t)
            site = Site(
                id=sid, name=sr.get("name", str, sid), customer_id=cid, timezone=tz,
                tariff=sr.get("tariff", str, ""), province=sr.get("province", str, ""),
                tariff_example_ok=sr.get("tariff_example_ok", bool, False),
                voltage_level_kv=sr.get("voltage_level_kv", float, 10.0, check=_positive, why="must be > 0"),
                nominal_voltage_v=sr.get("nominal_voltage_v", float, 230.0, check=_positive, why="must be > 0"),
                pv_capacity_kwp=sr.get("pv_capacity_kwp", float, 0.0, check=lambda v: v >= 0, why="must be >= 0"),
                latitude=sr.get("latitude", float, 31.3, check=lambda v: -90 <= v <= 90, why="must be -90..90"),
                longitude=sr.get("longitude", float, 120.6, check=lambda v: -180 <= v <= 180,
                                 why="must be -180..180"),
                contract_demand_kw=sr.get("contract_demand_kw", float, None, check=_positive, why="must be > 0"),
                pf_standard=sr.get("pf_standard", float, 0.90, check=lambda v: v in (0.80, 0.85, 0.90),
                                   why="must be 0.80, 0.85 or 0.90"),
                transformers=tuple(transformers), devices=tuple(devices), gateways=tuple(gateways),
            )
            sr.finish(("gateway", "device", "transformer"))
            sites.append(site)
            all_sites[sid] = site
        customer = Customer(id=cid, name=cr.get("name", str, cid), manager=cr.get("manager", str, ""),
                            email=cr.get("email", str, ""), sites=tuple(sites))
        cr.finish(("site",))
        customers.append(customer)
    return Fleet(customers=tuple(customers), path=path, sites=all_sites, devices=all_devices,
                 gateways=all_gateways)


@dataclass(frozen=True)
class Settings:
    """Endpoints and secrets, from the environment (never from the repository).

    ``EH_INFLUX_URL`` (default http://127.0.0.1:8086), ``EH_INFLUX_DB`` (energyhost),
    ``EH_INFLUX_USER`` / ``EH_INFLUX_PASSWORD`` (or ``*_FILE`` variants holding the secret),
    ``EH_INFLUX_TOKEN`` (InfluxDB 2.x/3.x v1-compat token auth),
    ``EH_INFLUX_TLS_CA`` (CA file verifying an ``https://`` ``EH_INFLUX_URL``; refused with ``http://``),
    ``EH_MQTT_HOST`` / ``EH_MQTT_PORT`` / ``EH_MQTT_USER`` / ``EH_MQTT_PASSWORD``, ``EH_SPOOL_DIR``,
    ``EH_MQTT_TLS_CA`` (CA file: connect to the broker over TLS, server certificate verified),
    ``EH_SPOOL_MAX_BYTES`` (spool cap), ``EH_DEADLETTER_MAX_BYTES`` (size at which a dead-letter
    file rotates; 4 old files kept, see :mod:`core.deadletter`).
    """

    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "energyhost"
    influx_user: str | None = None
    influx_password: str | None = None
    influx_token: str | None = None
    influx_tls_ca: str | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: str | None = None
    spool_dir: str = "var/spool"
    spool_max_bytes: int = 2**30
    deadletter_max_bytes: int = 16 * 2**20

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def secret(name: str) -> str | None:
            if e.get(name + "_FILE"):
                try:
                    return Path(e[name + "_FILE"]).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"{name}_FILE: cannot read {e[name + '_FILE']!r}: {exc}") from None
            return e.get(name) or None

        port = e.get("EH_MQTT_PORT", "1883")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"EH_MQTT_PORT: not a TCP port: {port!r}")
        influx_url = e.get("EH_INFLUX_URL", cls.influx_url)
        return cls(
            influx_url=influx_url, influx_db=e.get("EH_INFLUX_DB", cls.influx_db),
            influx_user=e.get("EH_INFLUX_USER") or None, influx_password=secret("EH_INFLUX_PASSWORD"),
            influx_token=secret("EH_INFLUX_TOKEN"),
            influx_tls_ca=_influx_ca(influx_url, e.get("EH_INFLUX_TLS_CA") or None),
            mqtt_host=e.get("EH_MQTT_HOST", cls.mqtt_host), mqtt_port=int(port),
            mqtt_user=e.get("EH_MQTT_USER") or None, mqtt_password=secret("EH_MQTT_PASSWORD"),
            mqtt_tls_ca=e.get("EH_MQTT_TLS_CA") or None,
            spool_dir=e.get("EH_SPOOL_DIR", cls.spool_dir),
            spool_max_bytes=_bytes_setting(e, "EH_SPOOL_MAX_BYTES", cls.spool_max_bytes, 1 << 20),
            deadletter_max_bytes=_bytes_setting(e, "EH_DEADLETTER_MAX_BYTES", cls.deadletter_max_bytes, 1 << 16),
        )


def _influx_ca(url: str, ca: str | None) -> str | None:
    """``EH_INFLUX_TLS_CA``: a readable file, and only with an ``https://`` ``EH_INFLUX_URL``."""
    if ca is None:
        return None
    if not url.startswith("https://"):
        raise ConfigError(f"EH_INFLUX_TLS_CA is set but EH_INFLUX_URL {url!r} is not https://: "
                          "the CA would go unused and the link would be plain HTTP")
    try:
        with open(ca, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"EH_INFLUX_TLS_CA: cannot read {ca!r}: {exc}") from None
    return ca


def _bytes_setting(e, name: str, default: int, minimum: int) -> int:
    raw = e.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{name}: a whole number of bytes >= {minimum}, got {raw!r}")
    return int(raw)
