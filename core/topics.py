"""The MQTT topic scheme and the MQTT user names (one home; see docs/mqtt.md and docs/security.md).

Topics::

    eh/v1/<site>/<device>/telemetry          one reading of one device
    eh/v1/<site>/<device>/status             online/offline of one device
    eh/v1/<site>/gateway/<gateway>/batch     readings of several devices of the site
    eh/v1/<site>/gateway/<gateway>/status    online/offline of a gateway and its devices

Users: every MQTT device logs in with its own id; the field gateway of a site as
``<site>-mqttgw`` (:func:`gateway_user`); the collector as :data:`COLLECTOR_USER`.  Passwords
live in a directory of 0600 files ``mqtt_<user>`` (:func:`read_secrets`), never in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

TOPIC_PREFIX = "eh/v1"
COLLECTOR_USER = "collector"
SECRET_PREFIX = "mqtt_"


def telemetry_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/telemetry"


def batch_topic(site: str, gateway: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/gateway/{gateway}/batch"


def status_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/status"


def gateway_status_topic(site: str, gateway: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/gateway/{gateway}/status"


def device_filter(site: str, device: str) -> str:
    """Every topic of one device (an ACL grant)."""
    return f"{TOPIC_PREFIX}/{site}/{device}/#"


def gateway_filter(site: str, gateway: str) -> str:
    """Every topic of one gateway (its batch and status topics; an ACL grant)."""
    return f"{TOPIC_PREFIX}/{site}/gateway/{gateway}/#"


#: what the collector subscribes to: the four documented topic patterns
SUBSCRIPTIONS: tuple[str, ...] = (f"{TOPIC_PREFIX}/+/+/telemetry", f"{TOPIC_PREFIX}/+/gateway/+/batch",
                                  f"{TOPIC_PREFIX}/+/+/status", f"{TOPIC_PREFIX}/+/gateway/+/status")
ALL_TOPICS = f"{TOPIC_PREFIX}/#"


def gateway_user(site_id: str) -> str:
    """MQTT user (and gateway id) of the field gateway of ``site_id``."""
    return f"{site_id}-mqttgw"


def read_secrets(directory: str | os.PathLike, prefix: str = SECRET_PREFIX) -> dict[str, str]:
    """Passwords stored as ``<directory>/<prefix><user>`` files (``{}`` if the directory does not exist)."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    return {p.name[len(prefix):]: p.read_text().strip() for p in d.glob(f"{prefix}*") if p.is_file()}
