"""``energyhost reports run|generate``: the monthly saving reports from the command line.

``run``       generate and archive every due report, mail the unsent ones; ``--every S`` repeats
              every S seconds until interrupted.
``generate``  build one customer's report for one month now and print where it was archived.

InfluxDB, the workflow store (optional), contracted baselines and the public URL come from the
CLI's :class:`~energyhost.settings.AppSettings`; the archive (``EH_REPORT_DIR``) and mail
(``EH_SMTP_*``) settings are read by the report package from the same environment.
"""

from __future__ import annotations

import argparse
import sys
import time

from energyhost.settings import AppSettings


def run_reports(args: argparse.Namespace, settings: AppSettings) -> int:
    from core.config import load_fleet
    from core.influx import InfluxClient
    from reports.archive import ReportArchive
    from reports.assemble import load_contracts
    from reports.schedule import generate, run_from_env

    fleet = load_fleet(args.fleet)
    influx = InfluxClient.from_settings(settings.core, timeout=120.0)
    store = None
    if settings.run.store_url:
        from workflow import Store

        store = Store(settings.run.store_url)
    try:
        if args.action == "generate":
            langs = tuple(x.strip() for x in args.lang.split(",") if x.strip())
            archive = ReportArchive.from_env(settings.env)
            contracts = load_contracts(settings.run.report_baselines) if settings.run.report_baselines else {}
            generate(influx, fleet, args.customer, args.month, archive, store=store, langs=langs,
                     contract=contracts.get(args.customer), base_url=settings.run.public_url or "")
            print(archive.folder(args.customer, args.month))
            return 0
        while True:
            res = run_from_env(time.time_ns(), fleet, influx, store=store, env=settings.env)
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
