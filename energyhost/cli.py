"""The ``energyhost`` command: a thin dispatcher over the packages.

Each subcommand imports its package only when it runs, so ``--help`` is instant and one
package's trouble never breaks another's command.  The settings tree
(:class:`~energyhost.settings.AppSettings`) is read from the environment once, after the
arguments, and handed to the subcommand as ``args.settings``.  Errors print one line
(``energyhost: error: ...``) and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _load(fleet_path: str):
    from core.config import load_fleet
    from core.dlt645 import load_dlt645_profiles
    from core.profiles import load_profiles

    profiles = {**load_profiles(), **load_dlt645_profiles()}
    return load_fleet(fleet_path, known_profiles=set(profiles)), profiles


# --------------------------------------------------------------------------- subcommands
def cmd_check(args: argparse.Namespace) -> int:
    fleet, profiles = _load(args.fleet)
    kinds: dict[str, int] = {}
    for d in fleet.devices.values():
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    _check_tariffs(fleet)
    print(f"{args.fleet}: OK — {len(fleet.customers)} customers, {len(fleet.sites)} sites, "
          f"{len(fleet.devices)} devices {kinds}, {len(profiles)} profiles")
    # the endpoints every component will use (EH_*), validated the same way they will be
    from core.influx import InfluxClient

    settings = args.settings.core
    args.settings.api()           # the API's EH_* too
    try:
        client = InfluxClient.from_settings(settings, timeout=5.0)   # loads EH_INFLUX_TLS_CA
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with client:
        link = (f"HTTPS, CA {settings.influx_tls_ca or 'default trust store'}"
                if settings.influx_url.startswith("https://") else "plain HTTP")
        print(f"InfluxDB {settings.influx_url} database {settings.influx_db} ({link})")
        if args.connect:
            from core.influx import InfluxError

            try:
                print(f"InfluxDB {settings.influx_url}: reachable, version {client.ping()}")
                _check_database(client, settings.influx_db)
            except InfluxError as exc:
                raise CliError(str(exc)) from None
            print(f"InfluxDB database {settings.influx_db}: exists")
    return 0


def _check_tariffs(fleet) -> None:
    """Every site's ``tariff`` names a tariff file that loads (a typo would only show in next month's report)."""
    from analytics.tariffs import TariffError, load_tariff

    for site in fleet.sites.values():
        if site.tariff:
            try:
                load_tariff(site.tariff)
            except TariffError as exc:
                raise CliError(f"{fleet.path}: site {site.id!r}: key 'tariff': unknown tariff {site.tariff!r} "
                               f"({exc})") from None


def _check_database(client, db: str) -> None:
    """The collector writes into an existing database: outside the demo an administrator creates it."""
    from core.influx import InfluxError

    try:
        client.query("SHOW RETENTION POLICIES")   # answers "database not found" (1.6.7)
    except InfluxError as exc:
        if "database not found" not in str(exc):
            raise
        raise CliError(f"InfluxDB database {db!r} does not exist: an InfluxDB administrator creates it "
                       f"(CREATE DATABASE \"{db}\"; see docs/commissioning.md); only the demo and "
                       "`energyhost backfill` create it themselves") from None


def cmd_commission(args: argparse.Namespace) -> int:
    from collector.commission import verdict_table
    from energyhost.commission import commission

    fleet, profiles = _load(args.fleet)
    try:
        findings, statuses = commission(fleet, profiles, args.device, args.seconds)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    polls = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"{args.device}: {len(statuses)} polls in {args.seconds:g} s {polls}")
    print(verdict_table(findings))
    wrong = [f for f in findings if f.ok is False]
    print(f"{args.device}: " + (f"{len(wrong)} check(s) do not fit" if wrong else "every judged check fits"))
    return 1 if wrong else 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from core.dlt645 import load_dlt645_profiles
    from core.profiles import load_profiles

    for pid, p in sorted({**load_profiles(), **load_dlt645_profiles()}.items()):
        print(f"{pid:40s} {p.kind:12s} {p.vendor} {p.model}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from collector.service import run_collectors

    fleet, profiles = _load(args.fleet)
    return asyncio.run(run_collectors(fleet, profiles, args.settings.core, group=args.group, shard=args.shard,
                                      metrics_port=args.metrics_port, modbus=not args.no_modbus,
                                      mqtt=not args.no_mqtt, instance=args.instance,
                                      log_format=args.settings.run.log_format))


def cmd_collect_mqtt(args: argparse.Namespace) -> int:
    from energyhost.collect_mqtt import run_collect_mqtt

    return run_collect_mqtt(args, args.settings)


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.service import run_simulators

    fleet, profiles = _load(args.fleet)
    history = None
    if args.history_days:
        if args.history_end is None:
            raise CliError("--history-days needs --history-end (the end time given to `energyhost backfill`)")
        history = (args.history_days, args.history_end)
    return asyncio.run(run_simulators(fleet, profiles, args.settings.core, control_port=args.control_port,
                                      seed=args.seed, mqtt=not args.no_mqtt, history=history,
                                      mqtt_secrets_dir=args.settings.run.mqtt_secrets_dir,
                                      tariffs=_meter_tariffs(fleet)))


def _meter_tariffs(fleet) -> dict:
    """Tariff calendars of the sites with DL/T 645 meters: their simulated T1..T4 registers follow them."""
    from analytics.tariffs import TariffError, load_tariff

    out = {}
    for d in fleet.devices.values():
        tid = fleet.sites[d.site_id].tariff
        if d.transport == "dlt645" and tid and tid not in out:
            try:
                out[tid] = load_tariff(tid)
            except TariffError as exc:
                raise CliError(f"site {d.site_id!r}: key 'tariff': {exc}") from None
    return out


def cmd_backfill(args: argparse.Namespace) -> int:
    from core.influx import InfluxClient, InfluxError
    from simulators.backfill import backfill, example_fault_schedule
    from simulators.signals import FleetSignals

    fleet, profiles = _load(args.fleet)
    client = InfluxClient.from_settings(args.settings.core)
    try:
        client.create_database()
    except InfluxError as exc:   # a write-only user may not create databases: the admin made it already
        print(f"energyhost backfill: not creating the database ({exc}); assuming it exists", file=sys.stderr)
    signals = FleetSignals(fleet, seed=args.seed)
    end = args.end if args.end is not None else time.time()
    faults = [] if args.no_faults else example_fault_schedule(fleet, days=args.days, end=end)
    # with the profiles, a Modbus device's history holds only the channels its register map delivers live
    counts = backfill(fleet, signals, client, days=args.days, end=end, step_s=args.step, faults=faults,
                      profiles=profiles)
    print(json.dumps(counts, default=str))
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    from simulators.control import clear_remote, inject_remote, list_remote

    args.url = args.url or args.settings.run.sim_control_url

    if args.action == "list":
        print(json.dumps(list_remote(args.url), indent=2))
    elif args.action == "inject":
        params = json.loads(args.params) if args.params else {}
        print(json.dumps(inject_remote(args.url, args.device, args.type, params)))
    else:
        print(json.dumps(clear_remote(args.url, args.device, args.type)))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from energyhost.analyze import run_analyze

    return run_analyze(args, args.settings)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import build_app_from_env

    api = args.settings.api()
    if args.db:
        api = dataclasses.replace(api, store_url=args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}")
    app, generated = build_app_from_env(args.fleet, settings=api)
    if generated:
        secrets_dir = args.settings.run.secrets_dir
        if secrets_dir:   # the demo keeps generated passwords beside its other secrets (mode 0600)
            f = Path(secrets_dir) / "api_users.json"
            old = json.loads(f.read_text()) if f.exists() else {}
            f.write_text(json.dumps(old | generated, indent=2))
            f.chmod(0o600)
            print(f"energyhost serve: generated passwords for {sorted(generated)} written to {f}", flush=True)
        else:
            for user, pw in sorted(generated.items()):
                print(f"energyhost serve: user {user!r} password {pw!r} (shown once)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_reports(args: argparse.Namespace) -> int:
    from energyhost.reports import run_reports

    if args.action == "generate" and not (args.customer and args.month):
        raise CliError("reports generate needs --customer and --month YYYY-MM")
    return run_reports(args, args.settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from energyhost.demo import run_demo

    return run_demo(args)


def cmd_status(args: argparse.Namespace) -> int:
    from energyhost.status import print_status

    return print_status(args)


# --------------------------------------------------------------------------- parser
def _instance_name(text: str) -> str:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", text):
        raise argparse.ArgumentTypeError(f"instance name must match [a-z0-9][a-z0-9_-]{{0,31}}, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="energyhost",
        description="Energy hosting service: collect, analyse and service distribution rooms, PV and EV chargers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def fleet_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--fleet", default=None, help="fleet TOML file (default: $EH_FLEET or sites.example.toml)")

    sp = sub.add_parser("demo", help="run the whole stack on the simulated fleet (Ctrl-C stops everything)")
    fleet_arg(sp)
    sp.add_argument("--var", default=str(ROOT / "var" / "demo"), help="state directory (default: %(default)s)")
    sp.add_argument("--backfill-days", type=int, default=None,
                    help="days of simulated history written on first start (0 = none; default: the whole previous "
                         "month, the 28 baseline days before it and this month so far, so that the due monthly "
                         "report shows verified savings)")
    sp.add_argument("--duration", type=float, default=None,
                    help="stop by itself after this many seconds (default: run until Ctrl-C)")
    sp.add_argument("--api-port", type=int, default=0, help="API port (default: a free one)")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("collect", help="run the Modbus and MQTT collectors, writing to InfluxDB")
    fleet_arg(sp)
    sp.add_argument("--group", default=None, help="MQTT shared-subscription group (N collectors split one stream)")
    sp.add_argument("--shard", default=None, metavar="K/N",
                    help="poll only Modbus devices of shard K of N (by stable hash of the device id)")
    sp.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics port (0 = off)")
    sp.add_argument("--instance", default="main", type=_instance_name,
                    help="name of this collector process: its MQTT client id and spool directory "
                         "(give each of several collectors its own; default: %(default)s)")
    sp.add_argument("--no-modbus", action="store_true", help="do not poll Modbus devices")
    sp.add_argument("--no-mqtt", action="store_true", help="do not subscribe to MQTT")
    sp.set_defaults(func=cmd_collect)

    sp = sub.add_parser("collect-mqtt", help="one bare MQTT collector process printing JSON stats lines "
                                             "(what the fault tests and benchmarks drive)")
    fleet_arg(sp)
    from energyhost.collect_mqtt import add_arguments

    add_arguments(sp)
    sp.set_defaults(func=cmd_collect_mqtt)

    sp = sub.add_parser("simulate", help="serve the fleet's simulated devices (Modbus servers, MQTT gateway)")
    fleet_arg(sp)
    sp.add_argument("--control-port", type=int, default=0, help="fault-injection HTTP port on 127.0.0.1")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--no-mqtt", action="store_true", help="do not run the MQTT gateway simulator")
    sp.add_argument("--history-days", type=float, default=0,
                    help="continue a history written by `energyhost backfill --days N` (same incidents, so "
                         "energy counters carry on without a jump)")
    sp.add_argument("--history-end", type=float, default=None, help="the --end given to that backfill [unix s]")
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("backfill", help="write N days of simulated history straight into InfluxDB")
    fleet_arg(sp)
    sp.add_argument("--days", type=int, default=31)
    sp.add_argument("--step", type=int, default=60, help="seconds between samples (default: %(default)s)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--no-faults", action="store_true", help="a fault-free history")
    sp.add_argument("--end", type=float, default=None,
                    help="unix time [s] where the history ends (default: now; the demo passes the time its "
                         "collectors started, so history and live data meet without a gap)")
    sp.set_defaults(func=cmd_backfill)

    sp = sub.add_parser("fault", help="inject or clear a fault in a running simulator")
    sp.add_argument("action", choices=("inject", "clear", "list"))
    sp.add_argument("device", nargs="?")
    sp.add_argument("type", nargs="?", help="fault type, e.g. inverter_trip (see `energyhost fault list`)")
    sp.add_argument("--params", default=None, help="JSON object of fault parameters")
    sp.add_argument("--url", default=None,
                    help="simulator control URL (default: $EH_SIM_CONTROL_URL or http://127.0.0.1:8765)")
    sp.set_defaults(func=cmd_fault)

    sp = sub.add_parser("analyze", help="run analytics: follow live data, or over a past period")
    fleet_arg(sp)
    sp.add_argument("--follow", action="store_true", help="evaluate continuously (near-real-time alarms)")
    sp.add_argument("--site", default=None, help="one site id (default: all)")
    sp.add_argument("--start", default=None, help="ISO date/time (default: 30 days ago)")
    sp.add_argument("--end", default=None, help="ISO date/time (default: now)")
    sp.add_argument("--db", default=None,
                    help="workflow database where alarms are stored (default: $EH_STORE_URL)")
    sp.add_argument("--json", action="store_true", help="print findings as JSON")
    sp.set_defaults(func=cmd_analyze)

    sp = sub.add_parser("serve", help="run the API and web pages")
    fleet_arg(sp)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--db", default=None,
                    help="workflow database: a SQLite file path or a postgresql:// URL (default: $EH_STORE_URL)")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("reports", help="monthly saving reports: generate the due ones (and e-mail them), or one now")
    fleet_arg(sp)
    sp.add_argument("action", choices=("run", "generate"))
    sp.add_argument("--every", type=float, default=0.0, help="with run: repeat every N seconds (0 = once)")
    sp.add_argument("--customer", default=None, help="with generate: customer id")
    sp.add_argument("--month", default=None, help="with generate: YYYY-MM")
    sp.add_argument("--lang", default="zh,en", help="with generate: zh, en or zh,en")
    sp.set_defaults(func=cmd_reports)

    sp = sub.add_parser("status", help="print the health of every component")
    sp.add_argument("--var", default=str(ROOT / "var" / "demo"), help="demo state directory")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("check-config", help="validate a fleet file, the device profiles and the EH_* settings")
    fleet_arg(sp)
    sp.add_argument("--connect", action="store_true",
                    help="also reach InfluxDB with the EH_INFLUX_* settings (TLS verified with EH_INFLUX_TLS_CA)")
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("commission", help="read one device live and judge its profile and fleet keys by physics")
    fleet_arg(sp)
    sp.add_argument("device", help="device id (Modbus, SunSpec or DL/T 645)")
    sp.add_argument("--seconds", type=float, default=30.0, help="how long to read (2..600 s, one poll a second)")
    sp.set_defaults(func=cmd_commission)

    sp = sub.add_parser("profiles", help="list the device profiles")
    sp.set_defaults(func=cmd_profiles)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from core.config import ConfigError

    user_errors: tuple[type[BaseException], ...] = (CliError, ConfigError, FileNotFoundError, PermissionError)
    from core.profiles import ProfileError

    user_errors += (ProfileError,)
    if args.command == "fault":
        from simulators.control import ControlError

        user_errors += (ControlError,)
    from energyhost.settings import AppSettings

    debug = False
    try:
        args.settings = AppSettings.from_env()      # the one read of the environment
        debug = args.settings.run.debug
        if hasattr(args, "fleet") and args.fleet is None:
            args.fleet = args.settings.run.fleet
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except user_errors as exc:
        print(f"energyhost: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or an unreachable service: one line, and where to look
        print(f"energyhost: error: {type(exc).__name__}: {exc} (set EH_DEBUG=1 for a traceback)", file=sys.stderr)
        if debug:
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
