"""E-mail for escalated work orders: who is told, what the mail says, and that it arrives once.

:func:`sweep_escalations` is what the API's background sweep (and ``POST /workorders/escalate``)
runs: :meth:`workflow.Store.escalate_overdue` records the new escalations, then every
escalation whose mail is not sent yet is delivered over SMTP with the settings of the monthly
report mailer (``EH_SMTP_*``, :class:`reports.mail.SmtpSettings`).  Level 1 goes to the site's
customer manager, level 2 to each admin (one escalation row, one mail, per person).

Delivery state per escalation (``escalations.mail_state``, shown by ``GET /workorders/escalations``):

``pending``     not sent yet; ``mail_error`` says why (SMTP down, ``EH_SMTP_HOST`` unset, refused);
                retried on every sweep, without limit — an escalation is never lost
``sent``        accepted by the SMTP server at ``mail_sent_ns`` for ``mail_to``; never sent again
``no_address``  the user has no e-mail address (or does not exist); re-checked every sweep, so
                the mail goes out once an admin sets the address (``PATCH /users/{id}``)
``skipped``     escalated before e-mail notification existed (schema migration 3)

Exactly once: a sender first claims the row (``claim_escalation_mail``: a lease, so two API
instances never both send it), then sends, then records ``sent``.  The one window left is a crash
between the server's ``250`` and that record; the mail is then sent again after the lease (5 min)
with the same ``Message-ID`` (``<escalation-<id>@energyhost>``), so a mail client shows it once.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from core.units import NS
from reports.mail import MailError, SmtpSettings, build_message, send
from workflow import Store

log = logging.getLogger("energyhost.api.notify")

STAGES = {"response": ("response (dispatch an engineer)", "响应（派工）"),
          "arrival": ("arrival (engineer on site)", "到场"),
          "repair": ("repair (resolved)", "修复")}
LEVELS = {1: ("customer manager", "客户经理"), 2: ("admins", "管理员")}
MAX_PER_SWEEP = 200          # mails tried per sweep; the rest wait for the next one
MAX_FAILURES = 3             # consecutive SMTP failures that end a sweep's delivery (server down)
MAX_ATTEMPTS = 20            # failed attempts of one mail before it is a dead letter (about 10 min at 30 s)
_warned_unconfigured = False


def _duration(ns: int) -> str:
    s = max(0, ns // NS)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d} d"] if d else []
    if h:
        parts.append(f"{h} h")
    if m:
        parts.append(f"{m} min")
    if s or not parts:
        parts.append(f"{s} s")
    return " ".join(parts)


def _times(ns: int, tz: str) -> str:
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = UTC
    local = datetime.fromtimestamp(ns / NS, zone)
    utc = datetime.fromtimestamp(ns / NS, UTC)
    return f"{local:%Y-%m-%d %H:%M:%S} {tz} ({utc:%Y-%m-%d %H:%M:%S} UTC)"


def order_path(work_order_id: int) -> str:
    """The link path of a work order (its API resource)."""
    return f"/api/v1/workorders/{int(work_order_id)}"


def escalation_message(row: dict[str, Any], *, sender: str, base_url: str = "") -> EmailMessage:
    """The e-mail of one escalation row of :meth:`Store.escalation_mails_due` (zh and en)."""
    wo, stage, level = row["work_order_id"], row["stage"], row["level"]
    due = row[f"{stage}_due_ns"]
    late = row["time_ns"] - due
    link = base_url.rstrip("/") + order_path(wo)
    st_en, st_zh = STAGES.get(stage, (stage, stage))
    lv_en, lv_zh = LEVELS.get(level, (f"level {level}", f"{level} 级"))
    subject = (f"[energyhost] 工单 #{wo} 超时升级 / Work order #{wo} overdue ({stage}), escalation level {level}: "
               f"{row['title']}")
    text = "\n".join([
        f"Work order #{wo} \"{row['title']}\" is overdue at the {stage} stage; escalated to you "
        f"(level {level}, {lv_en}).",
        f"工单 #{wo}「{row['title']}」{st_zh}超时，已升级给您（{level} 级，{lv_zh}）。",
        "",
        f"Work order / 工单:   #{wo} {row['title']} ({row['severity']}, state {row['wo_state']})",
        f"Site / 站点:         {row['site_id']} {row['site_name']}",
        f"Customer / 客户:     {row['customer_id']} {row['customer_name']}",
        f"Stage / 阶段:        {st_en} / {st_zh}",
        f"Due / 时限:          {_times(due, row['timezone'])}",
        f"Overdue by / 超时:   {_duration(late)} (at escalation, {_times(row['time_ns'], row['timezone'])})",
        f"Link / 链接:         {link}",
        "",
        "This message is sent once per work order, stage, level and person.",
    ]) + "\n"
    msg = build_message(sender=sender, to=[row["email"]], subject=subject, text=text)
    del msg["Message-ID"]
    msg["Message-ID"] = f"<escalation-{row['id']}@energyhost>"   # same id if a crash makes us resend
    return msg


def deliver_escalation_mails(store: Store, smtp: SmtpSettings | None, *, base_url: str = "",
                             smtp_error: str = "") -> dict[str, int]:
    """Send every escalation mail not sent yet; returns counts by outcome.

    ``smtp`` None means mail is not configured: ``smtp_error`` (e.g. "EH_SMTP_HOST is not set") is
    recorded on every pending row, which stays pending.  Never raises for a delivery failure.
    """
    out = {"sent": 0, "failed": 0, "no_address": 0, "not_tried": 0}
    failures = 0
    for row in store.escalation_mails_due(MAX_PER_SWEEP):
        if not row["email"]:
            why = (f"user {row['notified']!r} has no e-mail address" if row["user_id"] else
                   f"user {row['notified']!r} does not exist")
            if row["mail_state"] != "no_address":
                log.warning("escalation %d of work order %d: %s; recorded as no_address", row["id"],
                            row["work_order_id"], why)
            store.record_escalation_mail(row["id"], "no_address", error=why, attempted=False)
            out["no_address"] += 1
            continue
        if smtp is None or failures >= MAX_FAILURES:
            reason = smtp_error if smtp is None else "not tried in this sweep: the SMTP server failed before"
            if smtp is None:
                store.record_escalation_mail(row["id"], "pending", to=row["email"], error=reason, attempted=False)
            out["not_tried"] += 1
            continue
        if not store.claim_escalation_mail(row["id"]):
            continue                                  # another API instance is sending it
        try:
            send(escalation_message(row, sender=smtp.sender, base_url=base_url), smtp)
        except MailError as exc:
            failures += 1
            out["failed"] += 1
            dead = row["mail_attempts"] + 1 >= MAX_ATTEMPTS
            store.record_escalation_mail(row["id"], "dead" if dead else "pending", to=row["email"], error=str(exc))
            log.warning("escalation %d of work order %d: mail to %s failed (attempt %d), %s: %s", row["id"],
                        row["work_order_id"], row["email"], row["mail_attempts"] + 1,
                        "given up (dead letter)" if dead else "retried next sweep", exc)
            continue
        failures = 0
        store.record_escalation_mail(row["id"], "sent", to=row["email"])
        out["sent"] += 1
    return out


def smtp_from_env(env: dict[str, str] | None = None) -> tuple[SmtpSettings | None, str]:
    """(settings, '') from ``EH_SMTP_*``, or (None, why not)."""
    e = os.environ if env is None else env
    try:
        return SmtpSettings.from_env(e), ""
    except MailError as exc:
        return None, str(exc)


def sweep_escalations(store: Store, env: dict[str, str] | None = None, *, deliver: bool = True) -> list[dict]:
    """Escalate overdue orders, then (``deliver``) send every unsent escalation mail; return the
    escalations made now, each with its delivery state.

    The escalations table is the outbox: a request escalates with ``deliver=False`` and answers at
    once; the background sweep drains the outbox, retrying a failed mail on every sweep until
    ``MAX_ATTEMPTS``, after which it is a dead letter (state ``dead``, visible in the API)."""
    made = store.escalate_overdue()
    if not deliver:
        return _made_rows(store, made)
    e = os.environ if env is None else env
    smtp, why = smtp_from_env(e)
    counts = deliver_escalation_mails(store, smtp, base_url=e.get("EH_PUBLIC_URL", ""), smtp_error=why)
    global _warned_unconfigured
    if counts["failed"]:
        log.warning("escalation mail: %s", counts)
    elif counts["not_tried"] and smtp is None and not _warned_unconfigured:
        _warned_unconfigured = True
        log.warning("escalation mail is not sent (%s); %d escalations wait as pending", why, counts["not_tried"])
    return _made_rows(store, made)


def _made_rows(store: Store, made: list[dict]) -> list[dict]:
    """The escalation rows (with their mail state) of the escalations ``escalate_overdue`` made."""
    if not made:
        return []
    keys = {(m["work_order_id"], m["stage"], m["level"], m["notified"]) for m in made}
    return [r for wo in sorted({m["work_order_id"] for m in made}) for r in store.escalations(work_order_id=wo)
            if (r["work_order_id"], r["stage"], r["level"], r["notified"]) in keys]
