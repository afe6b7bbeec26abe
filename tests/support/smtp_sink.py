"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives; shared by the mail tests."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from aiosmtpd.controller import Controller

from energyhost.devstack import free_port


class SmtpSink:
    """aiosmtpd handler: ``messages`` holds (envelope sender, recipients, raw bytes) in arrival order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):   # noqa: N802 - aiosmtpd hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, rcpt: str) -> list:
        """The parsed messages addressed to exactly ``rcpt``."""
        return [message_from_bytes(raw, policy=default_policy) for _, r, raw in self.messages if r == [rcpt]]


def start_smtp(port: int | None = None) -> tuple[Controller, SmtpSink]:
    """Start a server on 127.0.0.1 (a free port unless given); stop it with ``ctl.stop()``."""
    sink = SmtpSink()
    ctl = Controller(sink, hostname="127.0.0.1", port=port or free_port())
    ctl.start()
    return ctl, sink
