"""Monthly saving report per customer: figures (assemble), charts, HTML/PDF (render), e-mail, schedule.

Entry points::

    build_monthly_report(influx, fleet, customer_id, "YYYY-MM", store=...) -> MonthlyReport
    render_html(report, "zh"|"en") -> str;  render_pdf(html) -> bytes
    due_reports(now_ns, fleet, archive) -> [(customer_id, month)]
    run_due_reports(now_ns, fleet, influx, archive, store=..., smtp=...) -> RunResult
    run_from_env(now_ns, fleet, influx, store=...)    # EH_REPORT_DIR, EH_SMTP_*, EH_PUBLIC_URL

See docs/reports.md.
"""
