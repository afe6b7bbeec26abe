"""MQTT users and a per-device ACL generated from the fleet (for Mosquitto's ``password_file`` / ``acl_file``).

Who may do what (topic scheme: docs/mqtt.md, ``eh/v1/<site>/<device>/...``)::

    <device id>          write  eh/v1/<site>/<device>/#                 (its own topics only)
    <site>-mqttgw        write  eh/v1/<site>/gateway/<site>-mqttgw/#    (its batch and status topics)
                         write  eh/v1/<site>/<device>/#                 for each MQTT device of its site
    collector            read   eh/v1/#                                 (subscribe only, no publish)

Anything not granted is denied: Mosquitto answers a QoS 1 PUBLISH outside the ACL with
PUBACK reason code 0x87 "Not authorized" (MQTT 5.0 §3.4.2.1) and does not forward it, and
refuses a SUBSCRIBE with SUBACK 0x87.  Every user name is a fleet id (``core.ids.ID_RE``),
so no user name carries the wildcards ``+`` / ``#`` or ``/`` (MQTT 5.0 §4.7.1 reserves them in
topic filters); :func:`fleet_acl` refuses any other name with ``ValueError``.

Passwords are generated (``secrets.token_urlsafe``) and written by :func:`write_secrets` to a
directory of 0600 files, one per user (read back by :func:`core.topics.read_secrets`), which the
processes read through ``*_FILE`` variables (``EH_MQTT_PASSWORD_FILE``); they are never in the repository.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Fleet
from core.ids import ID_RE
from core.topics import (
    ALL_TOPICS,
    COLLECTOR_USER,
    SECRET_PREFIX,
    device_filter,
    gateway_filter,
    gateway_user,
    read_secrets,
)

__all__ = ["COLLECTOR_USER", "MqttAccess", "fleet_acl", "gateway_user", "read_secrets", "write_secrets"]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not ID_RE.match(name):
        raise ValueError(f"MQTT user name {name!r} must match {ID_RE.pattern} "
                         "(no '+', '#', '/', spaces or upper case)")
    return name


@dataclass
class MqttAccess:
    """Users, their passwords and the ACL text of one fleet."""

    passwords: dict[str, str] = field(default_factory=dict)
    grants: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # user -> [(access, filter)]

    def acl_text(self) -> str:
        """The Mosquitto ``acl_file`` text (``user`` blocks of ``topic read|write <filter>`` lines)."""
        out = ["# generated from the fleet by energyhost.devstack.mqtt_acl; anything not listed is denied"]
        for user, rules in self.grants.items():
            out.append(f"\nuser {user}")
            out += [f"topic {access} {flt}" for access, flt in rules]
        return "\n".join(out) + "\n"


def fleet_acl(fleet: Fleet, *, collector_user: str = COLLECTOR_USER,
              passwords: dict[str, str] | None = None) -> MqttAccess:
    """Users and ACL for every MQTT device, every site gateway and the collector.

    ``passwords`` supplies existing passwords (e.g. read back from the secrets directory);
    missing ones are generated.  Raises ``ValueError`` for a name that is not a safe id or
    a device id that collides with a gateway or the collector user.
    """
    passwords = dict(passwords or {})
    acc = MqttAccess()

    def add(user: str, rules: list[tuple[str, str]]) -> None:
        _check_name(user)
        if user in acc.grants:
            raise ValueError(f"MQTT user {user!r} defined twice (a device id equal to a gateway or "
                             f"the collector user?)")
        acc.grants[user] = rules
        acc.passwords[user] = passwords.get(user) or secrets.token_urlsafe(18)

    add(collector_user, [("read", ALL_TOPICS)])
    for site in fleet.sites.values():
        mqtt_devices = [d for d in site.devices if d.transport == "mqtt"]
        if not mqtt_devices:
            continue
        gw = gateway_user(site.id)
        rules = [("write", gateway_filter(site.id, gw))]
        rules += [("write", device_filter(site.id, d.id)) for d in mqtt_devices]
        add(gw, rules)
        for d in mqtt_devices:
            add(d.id, [("write", device_filter(site.id, d.id))])
    return acc


def write_secrets(access: MqttAccess, directory: str | os.PathLike, prefix: str = SECRET_PREFIX) -> dict[str, Path]:
    """Write each password to ``<directory>/<prefix><user>`` (mode 0600, directory 0700)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = {}
    for user, pw in access.passwords.items():
        p = d / f"{prefix}{user}"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pw)
        p.chmod(0o600)
        out[user] = p
    return out
