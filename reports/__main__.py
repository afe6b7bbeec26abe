"""Command line: ``python -m reports run|generate`` (settings from the environment).

``run``       generate and archive every due report, mail the unsent ones (see schedule.run_from_env);
              ``--every S`` repeats every S seconds until interrupted.
``generate``  build one customer's report for one month now and print where it was archived.

InfluxDB from ``EH_INFLUX_*``, workflow store from ``EH_STORE_URL`` (optional), fleet from
``--fleet`` or ``EH_FLEET``, archive ``EH_REPORT_DIR``, mail ``EH_SMTP_*``, contracted baselines
``EH_REPORT_BASELINES``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from core.config import Settings, load_fleet
from core.influx import InfluxClient
from reports.archive import ReportArchive
from reports.assemble import load_contracts
from reports.schedule import generate, run_from_env


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports", description="energyhost monthly saving reports")
    p.add_argument("--fleet", default=os.environ.get("EH_FLEET", "sites.example.toml"), help="fleet TOML file")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate due reports and mail them")
    r.add_argument("--every", type=float, default=0.0, help="repeat every N seconds (0 = once)")
    g = sub.add_parser("generate", help="generate one report now")
    g.add_argument("--customer", required=True)
    g.add_argument("--month", required=True, help="YYYY-MM")
    g.add_argument("--lang", default="zh,en", help="comma-separated: zh, en")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fleet = load_fleet(args.fleet)
    influx = InfluxClient.from_settings(Settings.from_env(), timeout=120.0)
    store = None
    if os.environ.get("EH_STORE_URL"):
        from core.store import Store

        store = Store(os.environ["EH_STORE_URL"])
    try:
        if args.cmd == "generate":
            langs = tuple(x.strip() for x in args.lang.split(",") if x.strip())
            archive = ReportArchive.from_env()
            contracts = load_contracts(os.environ["EH_REPORT_BASELINES"]) if os.environ.get("EH_REPORT_BASELINES") else {}
            generate(influx, fleet, args.customer, args.month, archive, store=store, langs=langs,
                     contract=contracts.get(args.customer),
                     base_url=os.environ.get("EH_PUBLIC_URL", ""))
            print(archive.folder(args.customer, args.month))
            return 0
        while True:
            res = run_from_env(time.time_ns(), fleet, influx, store=store)
            for cid, month in res.generated:
                print(f"generated {cid} {month}")
            for cid, month in res.mailed:
                print(f"mailed {cid} {month}")
            for err in res.errors:
                print(f"error: {err}", file=sys.stderr)
            if args.every <= 0:
                return 1 if res.errors else 0
            time.sleep(args.every)
    finally:
        influx.close()
        if store is not None:
            store.close()


if __name__ == "__main__":
    raise SystemExit(main())
