"""Webhook notifier: JSON POST signed with HMAC-SHA256 over the exact body bytes.

Headers: `X-Vigil-Signature: sha256=<hex>`, `X-Vigil-Delivery: <idempotency key>` (the same on
every retry and after a restart, so a receiver that got an attempt whose answer was lost can
drop the repeat), `X-Vigil-Event: <event kind>`. 2xx is success; 408, 425, 429 and 5xx and
connection errors are retried (honouring a numeric Retry-After); other answers (a 4xx, a
redirect) are permanent.
"""

from __future__ import annotations

import hashlib
import hmac

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError, one_unit
from gateway.notifiers.config import WebhookChannel
from gateway.notifiers.http import HttpClient
from gateway.notifiers.message import payload, to_json

RETRY_STATUS = frozenset({408, 425, 429})


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    kind = "webhook"

    def __init__(self, name: str, config: WebhookChannel, secret: str, gateway: str) -> None:
        self.name = name
        self.config = config
        self._secret = secret.encode()
        self.gateway = gateway
        self._http = HttpClient(config.timeout_s)

    units = staticmethod(one_unit)

    def key(self, event: AlertEvent) -> None:
        return None

    def body(self, delivery: Delivery) -> bytes:
        body = delivery.cache.get("body")
        if not isinstance(body, bytes):
            doc = payload(
                delivery.event, self.gateway, delivery.recipients, delivery.lang, delivery.tz
            )
            doc["delivery_id"] = delivery.id
            body = delivery.cache["body"] = to_json(doc)
        return body

    async def send(self, delivery: Delivery) -> str:
        body = self.body(delivery)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json; charset=utf-8",
            "X-Vigil-Signature": sign(self._secret, body),
            "X-Vigil-Delivery": delivery.id,
            "X-Vigil-Event": str(delivery.event.kind),
        }
        url = self.config.url
        answer = await self._http.post(url, body, headers, f"POST {url}")
        msg = f"HTTP {answer.status} {answer.text.strip()[:200]}".strip()
        if 200 <= answer.status < 300:
            return msg
        if answer.status in RETRY_STATUS or answer.status >= 500:
            raise TransientError(f"POST {url}: {msg}", answer.retry_after)
        raise PermanentError(f"POST {url}: {msg}")

    async def close(self) -> None:
        await self._http.close()
