"""DingTalk custom robot (钉钉自定义机器人) with the signed-timestamp security setting (加签).

`POST {url}?access_token=..&timestamp=<ms>&sign=<sign>` with a JSON body. The sign is
Base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>")), URL-encoded in the query; the
secret is used with its `SEC` prefix. The robot refuses a timestamp more than an hour off, so
each attempt signs anew. `msgUuid` carries the idempotency key: DingTalk drops a repeat with
the same one. Mentioned mobiles go in `at.atMobiles` and, as `@<mobile>`, in the text (a
markdown message shows the mention only when the text carries it).

Answers are HTTP 200 either way: `errcode` 0 is success; 130101 (more than 20 messages a
minute), 410100 and -1 (busy) are retried; 310000 (bad signature, missing keyword, IP not
allowed), 300005 (unknown token) and the rest are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError, one_unit
from gateway.notifiers.config import DingTalkChannel
from gateway.notifiers.http import HttpClient, json_answer
from gateway.notifiers.message import chat_message

RETRY_CODES = frozenset({130101, 410100, -1})
TOO_FAST_WAIT_S = 60.0
"""After 130101: the robot is limited to 20 messages a minute."""


def sign(timestamp_ms: int, secret: str) -> str:
    """Base64 of the HMAC (not yet URL-encoded)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


class DingTalkSender:
    kind = "dingtalk"

    def __init__(
        self,
        name: str,
        config: DingTalkChannel,
        access_token: str,
        secret: str,
        gateway: str,
    ) -> None:
        self.name = name
        self.config = config
        self._token = access_token
        self._secret = secret
        self.gateway = gateway
        self._http = HttpClient(config.timeout_s)

    units = staticmethod(one_unit)

    def key(self, event: AlertEvent) -> None:
        return None

    def body(self, delivery: Delivery) -> bytes:
        cfg = self.config
        mentions = list(delivery.recipients)
        markdown = cfg.msgtype == "markdown"
        title, text = chat_message(
            delivery.event,
            self.gateway,
            markdown=markdown,
            mentions=mentions,
            lang=delivery.lang,
            tz=delivery.tz,
        )
        doc: dict[str, object] = {
            "msgtype": cfg.msgtype,
            "at": {"atMobiles": mentions, "isAtAll": cfg.at_all},
            "msgUuid": delivery.id,
        }
        doc[cfg.msgtype] = {"title": title, "text": text} if markdown else {"content": text}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def url(self, timestamp_ms: int) -> str:
        query = urlencode(
            {
                "access_token": self._token,
                "timestamp": str(timestamp_ms),
                "sign": sign(timestamp_ms, self._secret),
            }
        )
        return f"{self.config.url}?{query}"

    async def send(self, delivery: Delivery) -> str:
        body = self.body(delivery)
        url = self.url(int(time.time() * 1000))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        answer = await self._http.post(url, body, headers, "DingTalk robot")
        text = f"HTTP {answer.status} {answer.text.strip()[:500]}"
        if answer.status >= 500 or answer.status == 429:
            raise TransientError(f"DingTalk robot: {text}", answer.retry_after)
        doc = json_answer(answer)
        code = doc.get("errcode")
        if answer.status == 200 and code == 0:
            return f"errcode 0 {doc.get('errmsg', '')}".strip()
        if code in RETRY_CODES:
            raise TransientError(
                f"DingTalk robot: {text}", TOO_FAST_WAIT_S if code == 130101 else None
            )
        raise PermanentError(f"DingTalk robot: {text}")

    async def close(self) -> None:
        await self._http.close()
