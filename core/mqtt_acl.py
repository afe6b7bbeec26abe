"""MQTT users and a per-device ACL generated from the fleet (for Mosquitto's ``password_file`` / ``acl_file``).

Who may do what (topic scheme: docs/mqtt.md, ``eh/v1/<site>/<device>/...``)::

    <device id>          write  eh/v1/<site>/<device>/#                 (its own topics only)
    <site>-mqttgw        write  eh/v1/<site>/gateway/<site>-mqttgw/#    (its batch and status topics)
                         write  eh/v1/<site>/<device>/#                 for each MQTT device of its site
    collector            read   eh/v1/#                                 (subscribe only, no publish)

Anything not granted is denied: Mosquitto answers a QoS 1 PUBLISH outside the ACL with
PUBACK reason code 0x87 "Not authorized" (MQTT 5.0 §3.4.2.1) and does not forward it, and
refuses a SUBSCRIBE with SUBACK 0x87.  Every user name is a fleet id (``core.config.ID_RE``),
so no user name carries the wildcards ``+`` / ``#`` or ``/`` (MQTT 5.0 §4.7.1 reserves them in
topic filters); :func:`fleet_acl` refuses any other name with ``ValueError``.

Passwords are generated (``secrets.token_urlsafe``) and written by :func:`write_secrets` to a
directory of 0600 files, one per user, which the processes read through ``*_FILE``
variables (``EH_MQTT_PASSWORD_FILE``); they are never in the repository.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ID_RE, TOPIC_PREFIX, Fleet

COLLECTOR_USER = "collector"


def gateway_user(site_id: str) -> str:
    """MQTT user (and gateway id) of the field gateway of ``site_id``, as the simulator names it."""
    return f"{site_id}-mqttgw"


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
        out = ["# generated from the fleet by core.mqtt_acl; anything not listed is denied"]
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

    add(collector_user, [("read", f"{TOPIC_PREFIX}/#")])
    for site in fleet.sites.values():
        mqtt_devices = [d for d in site.devices if d.transport == "mqtt"]
        if not mqtt_devices:
            continue
        gw = gateway_user(site.id)
        rules = [("write", f"{TOPIC_PREFIX}/{site.id}/gateway/{gw}/#")]
        rules += [("write", f"{TOPIC_PREFIX}/{site.id}/{d.id}/#") for d in mqtt_devices]
        add(gw, rules)
        for d in mqtt_devices:
            add(d.id, [("write", f"{TOPIC_PREFIX}/{site.id}/{d.id}/#")])
    return acc


def write_secrets(access: MqttAccess, directory: str | os.PathLike, prefix: str = "mqtt_") -> dict[str, Path]:
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


def read_secrets(directory: str | os.PathLike, prefix: str = "mqtt_") -> dict[str, str]:
    """Passwords written by :func:`write_secrets` (``{}`` if the directory does not exist)."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    return {p.name[len(prefix):]: p.read_text().strip() for p in d.glob(f"{prefix}*") if p.is_file()}
