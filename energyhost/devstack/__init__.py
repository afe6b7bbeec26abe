"""The development stack: real ``influxd`` and ``mosquitto`` on loopback, TLS material, MQTT users.

Serves ``energyhost demo``, the tests and the benchmarks only; the service itself never
imports it.  :func:`stop_process` is the one way a child process we started is stopped
(SIGTERM, wait, SIGKILL).
"""

from energyhost.devstack.certs import TlsFiles, make_loopback_tls
from energyhost.devstack.influxd import Influxd
from energyhost.devstack.mosquitto import Mosquitto
from energyhost.devstack.mqtt_acl import (
    COLLECTOR_USER,
    MqttAccess,
    fleet_acl,
    gateway_user,
    read_secrets,
    write_secrets,
)
from energyhost.devstack.process import (
    LOOPBACK,
    ServiceError,
    free_port,
    listener_pid_matches,
    stop_process,
)

__all__ = [
    "COLLECTOR_USER", "LOOPBACK", "Influxd", "Mosquitto", "MqttAccess", "ServiceError", "TlsFiles",
    "fleet_acl", "free_port", "gateway_user", "listener_pid_matches", "make_loopback_tls",
    "read_secrets", "stop_process", "write_secrets",
]
