"""Settings of the API service, from the environment (never from the repository).

``EH_STORE_URL``        workflow database, ``sqlite:///var/energyhost.db`` (default) or ``postgresql://...``
``EH_TOKEN_TTL_S``      lifetime of bearer tokens [s] (default 28800 = one 8-h shift)
``EH_TIME_LIMITS``      TOML file of per-severity time limits (see :meth:`workflow.TimeLimits.from_toml`)
``EH_DOCS``             ``1`` (default) serves OpenAPI docs at /docs; ``0`` hides them in production
``EH_LOGIN_MAX_FAILS``  failed logins per user name and minute before 429 (default 5)
``EH_TELEMETRY_CACHE_S`` identical telemetry range queries share one result this long [s] (default 5)
``EH_RATE_LIMIT``       requests/s per user or API key, bursts of twice that; 0 = off (default 20)
``EH_ALARM_CACHE_MB``   memory for cached alarm-list responses [MiB] (default 16; 0 = off)
``EH_AUTH_CACHE_S``     a credential's user and tenancy scope are remembered this long [s] (default 1, at most 1; 0 = off)
``EH_ESCALATE_EVERY_S`` period of the background escalation / inspection sweep [s] (default 60; 0 = off)
``EH_METRICS_TOKEN``    bearer token ``/metrics`` asks for (unset or empty: the endpoint is open)
``EH_CONTRACTS_DIR``    folder of service contracts ``<customer>.toml`` (default the repository's ``contracts/``)
plus the InfluxDB settings of :class:`core.config.Settings` (``EH_INFLUX_*``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError, Settings


@dataclass(frozen=True)
class ApiSettings:
    store_url: str = "sqlite:///var/energyhost.db"
    token_ttl_s: float = 8 * 3600
    time_limits_file: str | None = None
    docs: bool = True
    login_max_fails: int = 5
    escalate_every_s: float = 60.0
    max_range_days: int = 400              # telemetry range cap (reliability.md §12)
    max_points: int = 100_000              # telemetry points-per-response cap
    telemetry_cache_s: float = 5.0         # identical telemetry queries share one result this long
    rate_limit: float = 20.0               # requests/s per principal (burst 2x); 0 = off
    alarm_cache_mb: float = 16.0           # alarm-list response cache (api/alarm_cache.py); 0 = off
    auth_cache_s: float = 1.0              # principal + scope cache (api.deps.PrincipalCache), <= 1 s; 0 = off
    metrics_token: str | None = None       # /metrics needs "Authorization: Bearer <token>"; None = open
    fleet_file: str | None = None          # EH_FLEET: the fleet the report routes generate for
    public_url: str = ""                   # EH_PUBLIC_URL: the address customers reach (survey links in reports)
    contracts_dir: str = str(Path(__file__).resolve().parents[1] / "contracts")   # service commitments
    influx: Settings = field(default_factory=Settings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ApiSettings:
        e = os.environ if env is None else env

        def number(name: str, default: float, lo: float, hi: float) -> float:
            raw = e.get(name)
            if raw is None or raw == "":
                return default
            try:
                v = float(raw)
            except ValueError:
                raise ConfigError(f"{name}: not a number: {raw!r}") from None
            if not lo <= v <= hi:
                raise ConfigError(f"{name}: must be {lo}..{hi}, got {v}")
            return v

        docs = e.get("EH_DOCS", "1")
        if docs not in ("0", "1"):
            raise ConfigError(f"EH_DOCS: must be 0 or 1, got {docs!r}")
        return cls(
            store_url=e.get("EH_STORE_URL", cls.store_url),
            token_ttl_s=number("EH_TOKEN_TTL_S", cls.token_ttl_s, 60, 7 * 86400),
            time_limits_file=e.get("EH_TIME_LIMITS") or None,
            docs=docs == "1",
            login_max_fails=int(number("EH_LOGIN_MAX_FAILS", cls.login_max_fails, 1, 1000)),
            escalate_every_s=number("EH_ESCALATE_EVERY_S", cls.escalate_every_s, 0, 86400),
            telemetry_cache_s=number("EH_TELEMETRY_CACHE_S", cls.telemetry_cache_s, 0, 3600),
            rate_limit=number("EH_RATE_LIMIT", cls.rate_limit, 0, 100_000),
            alarm_cache_mb=number("EH_ALARM_CACHE_MB", cls.alarm_cache_mb, 0, 4096),
            auth_cache_s=number("EH_AUTH_CACHE_S", cls.auth_cache_s, 0, 1),
            metrics_token=e.get("EH_METRICS_TOKEN") or None,
            fleet_file=e.get("EH_FLEET") or None,
            public_url=e.get("EH_PUBLIC_URL", ""),
            contracts_dir=e.get("EH_CONTRACTS_DIR") or cls.contracts_dir,
            influx=Settings.from_env(e),
        )
