"""E-mail notifier (aiosmtplib): one plain-text message per event to the route's recipients.

SMTP 4xx answers and connection problems are retried; 5xx answers (refused sender, every
recipient refused, failed login) are permanent. Recipients refused while others were accepted
are logged; the message counts as sent.
"""

from __future__ import annotations

import email.policy
import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError, one_unit
from gateway.notifiers.config import EmailChannel
from gateway.notifiers.message import subject, text_body

log = logging.getLogger("vigil.notifiers.email")

POLICY = email.policy.SMTP.clone(max_line_length=998)
"""No header folding: the stdlib's folding of encoded words doubles a space on unfolding
("8  °C"); RFC 5322 allows 998 characters and subjects are capped at 250."""


class EmailSender:
    kind = "email"

    def __init__(self, name: str, config: EmailChannel, password: str | None, gateway: str) -> None:
        self.name = name
        self.config = config
        self._password = password
        self.gateway = gateway
        self._envelope_from = parseaddr(config.sender)[1]
        domain = self._envelope_from.rpartition("@")[2]
        self._domain = domain or "vigil.invalid"

    units = staticmethod(one_unit)

    def key(self, event: AlertEvent) -> None:
        return None

    def message(self, delivery: Delivery) -> EmailMessage:
        msg = delivery.cache.get("message")
        if isinstance(msg, EmailMessage):
            return msg
        event = delivery.event
        msg = EmailMessage(policy=POLICY)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(delivery.recipients)
        msg["Subject"] = subject(event, delivery.lang, delivery.tz)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(idstring=delivery.id, domain=self._domain)
        msg["X-Vigil-Alert-Id"] = str(event.alert.id)
        msg["X-Vigil-Event"] = str(event.kind)
        msg["X-Vigil-Severity"] = str(event.alert.severity)
        msg.set_content(text_body(event, self.gateway, delivery.lang, delivery.tz))
        delivery.cache["message"] = msg
        return msg

    async def send(self, delivery: Delivery) -> str:
        if not delivery.recipients:
            raise PermanentError("no recipients")
        cfg = self.config
        try:
            refused, response = await aiosmtplib.send(
                self.message(delivery).as_bytes(),  # our policy: aiosmtplib's would fold
                sender=self._envelope_from,
                recipients=[parseaddr(r)[1] or r for r in delivery.recipients],
                hostname=cfg.host,
                port=cfg.smtp_port,
                username=cfg.username,
                password=self._password,
                use_tls=cfg.tls == "ssl",
                start_tls=cfg.tls == "starttls",
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            msg = f"SMTP {cfg.host}: every recipient refused: {e.recipients}"
            if all(c >= 500 for c in codes):
                raise PermanentError(msg) from None
            raise TransientError(msg) from None
        except aiosmtplib.SMTPResponseException as e:
            msg = f"SMTP {cfg.host}: {e.code} {e.message}"
            if e.code >= 500:
                raise PermanentError(msg) from None
            raise TransientError(msg) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise TransientError(f"SMTP {cfg.host}:{cfg.smtp_port}: {e}") from None
        if refused:
            log.error(
                "some recipients refused",
                extra={"channel": self.name, "refused": {k: str(v) for k, v in refused.items()}},
            )
            return f"{response}; refused: {', '.join(sorted(refused))}"
        return str(response)

    async def close(self) -> None:
        return None
