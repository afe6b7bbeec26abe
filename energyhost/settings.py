"""The settings tree of one ``energyhost`` process, read from the environment once, at start.

:meth:`AppSettings.from_env` takes one snapshot of the environment; every subcommand gets
its settings from the tree (``args.settings``) and passes them down as arguments: no library
function reads ``os.environ``, and the CLI never writes it to pass configuration on.

``core``  :class:`core.config.Settings`: ``EH_INFLUX_*``, ``EH_MQTT_*``, ``EH_SPOOL_*``, ...
``run``   :class:`RunSettings`: what the commands themselves need (below)
``api``   :class:`api.settings.ApiSettings` (``EH_STORE_URL``, ``EH_TOKEN_TTL_S``, ...), validated from
          the same snapshot when a command that serves the API asks for it (a collector host need
          not carry valid API settings)

``RunSettings``::

    EH_FLEET              fleet file when --fleet is not given (default sites.example.toml)
    EH_LOG_FORMAT         collector logs: text (default) or json (one object per line)
    EH_STORE_URL          workflow database of `analyze` and `reports` (optional there)
    EH_FINDINGS_DIR       `analyze --follow` writes <dir>/<site>/<date>.json findings (optional)
    EH_MQTT_SECRETS_DIR   `simulate`: the gateways' MQTT passwords, mqtt_<user> files (optional)
    EH_SECRETS_DIR        `serve`: where generated API passwords are written (optional)
    EH_SIM_CONTROL_URL    `fault`: the simulator's control URL (default http://127.0.0.1:8765)
    EH_REPORT_BASELINES   `reports generate`: contracted baselines TOML (optional)
    EH_PUBLIC_URL         `reports`: the base URL printed in reports and mails (optional)
    EH_DEBUG              1: a failing command shows its traceback
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from core.config import ConfigError, Settings
from core.logjson import FORMATS

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunSettings:
    fleet: str = str(ROOT / "sites.example.toml")
    log_format: str = "text"
    store_url: str | None = None
    findings_dir: str | None = None
    mqtt_secrets_dir: str | None = None
    secrets_dir: str | None = None
    sim_control_url: str = "http://127.0.0.1:8765"
    report_baselines: str | None = None
    public_url: str | None = None
    debug: bool = False

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> RunSettings:
        log_format = e.get("EH_LOG_FORMAT") or cls.log_format
        if log_format not in FORMATS:
            raise ConfigError(f"EH_LOG_FORMAT: must be one of {FORMATS}, got {log_format!r}")
        url = e.get("EH_SIM_CONTROL_URL") or cls.sim_control_url
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"EH_SIM_CONTROL_URL: must start with http:// or https://, got {url!r}")
        return cls(fleet=e.get("EH_FLEET") or cls.fleet, log_format=log_format,
                   store_url=e.get("EH_STORE_URL") or None, findings_dir=e.get("EH_FINDINGS_DIR") or None,
                   mqtt_secrets_dir=e.get("EH_MQTT_SECRETS_DIR") or None,
                   secrets_dir=e.get("EH_SECRETS_DIR") or None, sim_control_url=url,
                   report_baselines=e.get("EH_REPORT_BASELINES") or None,
                   public_url=e.get("EH_PUBLIC_URL") or None, debug=bool(e.get("EH_DEBUG")))


@dataclass(frozen=True)
class AppSettings:
    core: Settings = field(default_factory=Settings)
    run: RunSettings = field(default_factory=RunSettings)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)    # the snapshot, for api()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        """Read the whole tree from one snapshot of ``env`` (default: the process environment)."""
        snap = MappingProxyType(dict(os.environ if env is None else env))
        return cls(core=Settings.from_env(snap), run=RunSettings.from_env(snap), env=snap)

    def api(self):
        """The API's settings from the same snapshot (:class:`api.settings.ApiSettings`)."""
        from api.settings import ApiSettings

        return ApiSettings.from_env(self.env)
