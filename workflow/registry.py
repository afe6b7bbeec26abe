"""Registry: customers, their sites and the devices on them, seeded from the fleet file and edited through the API.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from workflow.db import Conflict, Ctx, Invalid, NotFound, check_id, sql_in
from workflow.vocab import DEVICE_KINDS, TRANSPORTS

SUPPLY_FIELDS = ("supplier", "model", "installed", "warranty_until")


def _iso(d: Any) -> str | None:
    """A date (or an ISO date string) as ``YYYY-MM-DD``; None stays None."""
    return None if d is None else (d if isinstance(d, str) else d.isoformat())


class Registry:
    """Customers, sites and devices."""

    def __init__(self, ctx: Ctx) -> None:
        self.db, self.clock = ctx.db, ctx.clock


    def seed_fleet(self, fleet: Any) -> dict[str, int]:
        """Insert customers, sites and devices of a :class:`core.config.Fleet` that are not yet stored.

        Existing records are left as they are (they may have been edited through the API).
        """
        now = self.clock()
        n = {"customers": 0, "sites": 0, "devices": 0}
        with self.db.tx():
            for c in fleet.customers:
                n["customers"] += self.db.run(
                    "INSERT INTO customers (id, name, manager, email, created_ns) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING", (c.id, c.name, c.manager, c.email, now))
                for s in c.sites:
                    n["sites"] += self.db.run(
                        "INSERT INTO sites (id, customer_id, name, timezone, tariff, voltage_level_kv, "
                        "nominal_voltage_v, pv_capacity_kwp, contract_demand_kw, created_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                        (s.id, c.id, s.name, s.timezone, s.tariff, s.voltage_level_kv, s.nominal_voltage_v,
                         s.pv_capacity_kwp, s.contract_demand_kw, now))
                    for dv in s.devices:
                        n["devices"] += self._seed_device(dv, s.id, now)
        return n

    def _seed_device(self, dv: Any, site_id: str, now: int) -> int:
        """Insert one fleet device; a stored one only gets supplier data it does not have yet."""
        supply = (getattr(dv, "supplier", ""), getattr(dv, "model", ""), _iso(getattr(dv, "installed", None)),
                  _iso(getattr(dv, "warranty_until", None)))
        added = self.db.run(
            "INSERT INTO devices (id, site_id, kind, transport, profile, name, host, port, "
            "unit_id, gateway, poll_interval_s, rated_power_kw, created_ns, supplier, model, installed, "
            "warranty_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (dv.id, site_id, dv.kind, dv.transport, dv.profile, dv.name, dv.host, dv.port,
             dv.unit_id, dv.gateway, dv.poll_interval_s, dv.rated_power_kw, now, *supply))
        if not added and supply[0]:
            self.db.run("UPDATE devices SET supplier = ?, model = ?, installed = ?, warranty_until = ? "
                        "WHERE id = ? AND supplier = ''", (*supply, dv.id))
        return added

    def customers(self, customer_ids: Collection[str] | None = None) -> list[dict]:
        frag, params = sql_in("id", customer_ids)
        return self.db.rows(f"SELECT * FROM customers WHERE {frag} ORDER BY id", params)

    def customer(self, customer_id: str) -> dict:
        row = self.db.one("SELECT * FROM customers WHERE id = ?", (customer_id,))
        if row is None:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return row

    def create_customer(self, customer_id: str, name: str, manager: str = "", email: str = "") -> dict:
        check_id("customer id", customer_id)
        with self.db.tx():
            if self.db.one("SELECT id FROM customers WHERE id = ?", (customer_id,)):
                raise Conflict(f"customer {customer_id!r} already exists")
            self.db.run("INSERT INTO customers (id, name, manager, email, created_ns) VALUES (?, ?, ?, ?, ?)",
                        (customer_id, name, manager, email, self.clock()))
        return self.customer(customer_id)

    def update_customer(self, customer_id: str, **values: Any) -> dict:
        return self._update("customers", customer_id, values, ("name", "manager", "email"))

    def sites(self, site_ids: Collection[str] | None = None, customer_id: str | None = None) -> list[dict]:
        frag, params = sql_in("id", site_ids)
        if customer_id is not None:
            frag += " AND customer_id = ?"
            params.append(customer_id)
        return self.db.rows(f"SELECT * FROM sites WHERE {frag} ORDER BY id", params)

    def site(self, site_id: str) -> dict:
        row = self.db.one("SELECT * FROM sites WHERE id = ?", (site_id,))
        if row is None:
            raise NotFound(f"site {site_id!r} does not exist")
        return row

    def create_site(self, site_id: str, customer_id: str, name: str, **values: Any) -> dict:
        check_id("site id", site_id)
        self.customer(customer_id)
        cols = ("timezone", "tariff", "voltage_level_kv", "nominal_voltage_v", "pv_capacity_kwp",
                "contract_demand_kw", "engineer_group")
        extra = {k: v for k, v in values.items() if k in cols and v is not None}
        if "timezone" in extra:
            self._check_tz(extra["timezone"])
        with self.db.tx():
            if self.db.one("SELECT id FROM sites WHERE id = ?", (site_id,)):
                raise Conflict(f"site {site_id!r} already exists")
            names = ["id", "customer_id", "name", "created_ns", *extra]
            self.db.run(f"INSERT INTO sites ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                        (site_id, customer_id, name, self.clock(), *extra.values()))
        return self.site(site_id)

    def update_site(self, site_id: str, **values: Any) -> dict:
        if values.get("timezone") is not None:
            self._check_tz(values["timezone"])
        return self._update("sites", site_id, values, ("name", "timezone", "tariff", "voltage_level_kv",
                                                        "nominal_voltage_v", "pv_capacity_kwp",
                                                        "contract_demand_kw", "engineer_group"))

    @staticmethod
    def _check_tz(tz: str) -> None:
        try:
            ZoneInfo(tz)
        except Exception:
            raise Invalid(f"unknown time zone {tz!r}") from None

    def devices(self, site_ids: Collection[str] | None = None, site_id: str | None = None,
                kind: str | None = None) -> list[dict]:
        frag, params = sql_in("site_id", site_ids)
        if site_id is not None:
            frag += " AND site_id = ?"
            params.append(site_id)
        if kind is not None:
            frag += " AND kind = ?"
            params.append(kind)
        return self.db.rows(f"SELECT d.*, s.customer_id FROM devices d JOIN sites s ON s.id = d.site_id "
                            f"WHERE {frag.replace('site_id', 'd.site_id')} ORDER BY d.id", params)

    def device(self, device_id: str) -> dict:
        row = self.db.one("SELECT d.*, s.customer_id FROM devices d JOIN sites s ON s.id = d.site_id "
                          "WHERE d.id = ?", (device_id,))
        if row is None:
            raise NotFound(f"device {device_id!r} does not exist")
        return row

    def create_device(self, device_id: str, site_id: str, kind: str, transport: str, **values: Any) -> dict:
        check_id("device id", device_id)
        self.site(site_id)
        if kind not in DEVICE_KINDS:
            raise Invalid(f"device kind must be meter, transformer, pv_inverter or ev_charger, got {kind!r}")
        if transport not in TRANSPORTS:
            raise Invalid(f"transport must be 'modbus' or 'mqtt', got {transport!r}")
        cols = ("profile", "name", "host", "port", "unit_id", "gateway", "poll_interval_s", "rated_power_kw",
                *SUPPLY_FIELDS)
        extra = {k: _iso(v) if k in ("installed", "warranty_until") else v
                 for k, v in values.items() if k in cols and v is not None}
        with self.db.tx():
            if self.db.one("SELECT id FROM devices WHERE id = ?", (device_id,)):
                raise Conflict(f"device {device_id!r} already exists")
            names = ["id", "site_id", "kind", "transport", "created_ns", *extra]
            self.db.run(f"INSERT INTO devices ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                        (device_id, site_id, kind, transport, self.clock(), *extra.values()))
        return self.device(device_id)

    def update_device(self, device_id: str, **values: Any) -> dict:
        values = {k: _iso(v) if k in ("installed", "warranty_until") else v for k, v in values.items()}
        self._update("devices", device_id, values, ("name", "profile", "host", "port", "unit_id", "gateway",
                                                    "poll_interval_s", "rated_power_kw", *SUPPLY_FIELDS))
        return self.device(device_id)

    def _update(self, table: str, ident: str, values: dict[str, Any], allowed: tuple[str, ...]) -> dict:
        unknown = set(values) - set(allowed)
        if unknown:
            raise Invalid(f"{table}: cannot change {sorted(unknown)}; changeable: {allowed}")
        sets = {k: v for k, v in values.items() if v is not None}
        with self.db.tx():
            if not self.db.one(f"SELECT id FROM {table} WHERE id = ?", (ident,)):
                raise NotFound(f"{table[:-1]} {ident!r} does not exist")
            if sets:
                self.db.run(f"UPDATE {table} SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                            (*sets.values(), ident))
        return self.db.one(f"SELECT * FROM {table} WHERE id = ?", (ident,)) or {}
