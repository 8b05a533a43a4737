"""Webhook notifier: JSON POST signed with HMAC-SHA256 over the exact body bytes.

Headers: `X-Vigil-Signature: sha256=<hex>`, `X-Vigil-Delivery: <id>` (the same on every retry,
so a receiver that got the first attempt but whose answer was lost can ignore the repeat),
`X-Vigil-Event: <event kind>`. 2xx is success; 408, 425, 429 and 5xx and connection errors are
retried (honouring a numeric Retry-After); other answers (a 4xx, a redirect) are permanent.
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError
from gateway.notifiers.config import WebhookChannel
from gateway.notifiers.message import payload, to_json

RETRY_STATUS = frozenset({408, 425, 429})
USER_AGENT = "vigil-gateway"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class WebhookSender:
    kind = "webhook"

    def __init__(self, name: str, config: WebhookChannel, secret: str, gateway: str) -> None:
        self.name = name
        self.config = config
        self._secret = secret.encode()
        self.gateway = gateway
        self._session: aiohttp.ClientSession | None = None

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

    async def send(self, delivery: Delivery) -> None:
        body = self.body(delivery)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Vigil-Signature": sign(self._secret, body),
            "X-Vigil-Delivery": delivery.id,
            "X-Vigil-Event": str(delivery.event.kind),
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)
            )
        try:
            async with self._session.post(
                self.config.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                text = (await resp.content.read(500)).decode("utf-8", "replace")
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise TransientError(f"POST {self.config.url}: {type(e).__name__}: {e}") from None
        if 200 <= status < 300:
            return
        msg = f"POST {self.config.url}: HTTP {status} {text.strip()[:200]}"
        if status in RETRY_STATUS or status >= 500:
            raise TransientError(msg, retry_after)
        raise PermanentError(msg)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
