"""Send a monthly report by e-mail over SMTP, with the PDF attached.

Settings come from the environment (never from the repository):

``EH_SMTP_HOST`` (required to send), ``EH_SMTP_PORT`` (25), ``EH_SMTP_USER`` /
``EH_SMTP_PASSWORD`` (or ``EH_SMTP_PASSWORD_FILE``), ``EH_SMTP_STARTTLS`` (``1`` to upgrade
with STARTTLS), ``EH_SMTP_SSL`` (``1`` for implicit TLS), ``EH_SMTP_FROM``
(``energyhost@localhost``), ``EH_SMTP_TIMEOUT_S`` (10).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path


class MailError(RuntimeError):
    """The report could not be sent; the message names the setting or the server's answer."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "energyhost@localhost"
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings:
        """Read ``EH_SMTP_*``; raises :class:`MailError` naming the bad variable."""
        e = os.environ if env is None else env
        host = e.get("EH_SMTP_HOST", "")
        if not host:
            raise MailError("EH_SMTP_HOST is not set: no SMTP server to send reports through")
        port = e.get("EH_SMTP_PORT", "25")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise MailError(f"EH_SMTP_PORT: not a TCP port: {port!r}")
        password = e.get("EH_SMTP_PASSWORD") or None
        if e.get("EH_SMTP_PASSWORD_FILE"):
            try:
                password = Path(e["EH_SMTP_PASSWORD_FILE"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MailError(f"EH_SMTP_PASSWORD_FILE: cannot read it: {exc}") from None
        try:
            timeout = float(e.get("EH_SMTP_TIMEOUT_S", "10"))
        except ValueError:
            raise MailError(f"EH_SMTP_TIMEOUT_S: not a number: {e['EH_SMTP_TIMEOUT_S']!r}") from None
        return cls(host=host, port=int(port), user=e.get("EH_SMTP_USER") or None, password=password,
                   starttls=e.get("EH_SMTP_STARTTLS") == "1", ssl=e.get("EH_SMTP_SSL") == "1",
                   sender=e.get("EH_SMTP_FROM", cls.sender), timeout_s=timeout)


def build_message(*, sender: str, to: list[str], subject: str, text: str, html: str | None = None,
                  pdf: bytes | None = None, pdf_name: str = "report.pdf") -> EmailMessage:
    """A MIME message: text (and HTML alternative) body, the PDF as an attachment."""
    if not to or any("@" not in a for a in to):
        raise MailError(f"recipient list must hold e-mail addresses, got {to!r}")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="energyhost")
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=pdf_name)
    return msg


def send(msg: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver ``msg`` through the SMTP server in ``settings``; :class:`MailError` on failure."""
    try:
        if settings.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.user:
                client.login(settings.user, settings.password or "")
            refused = client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"sending to {msg['To']} through {settings.host}:{settings.port} failed: "
                        f"{type(exc).__name__}: {exc}") from None
    if refused:
        raise MailError(f"SMTP server {settings.host}:{settings.port} refused recipients: {refused}")
