"""WeCom group robot (企业微信群机器人): `POST {url}?key=..` with a JSON body.

No signature: the key is the credential (kept in the environment). A markdown message (at most
4096 bytes of UTF-8) carries the facts; WeCom mentions people by mobile only in text messages,
so when `mentioned_mobiles` are set a short text message with `mentioned_mobile_list` follows
(a retry after it failed does not send the markdown again). A text message alone holds at most
2048 bytes. Answers are HTTP 200 either way: `errcode` 0 is success; 45009 (more than 20
messages a minute) and -1 (busy) are retried; 93000 (invalid webhook key), 40008 and the rest
are permanent.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError, one_unit
from gateway.notifiers.config import WeComChannel
from gateway.notifiers.http import HttpClient, json_answer
from gateway.notifiers.message import chat_message, subject

MARKDOWN_MAX = 4096
TEXT_MAX = 2048
RETRY_CODES = frozenset({45009, -1})
TOO_FAST_WAIT_S = 60.0


def clip_bytes(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary (with … when cut)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


class WeComSender:
    kind = "wecom"

    def __init__(self, name: str, config: WeComChannel, key: str, gateway: str) -> None:
        self.name = name
        self.config = config
        self._key = key
        self.gateway = gateway
        self._http = HttpClient(config.timeout_s)

    units = staticmethod(one_unit)

    def key(self, event: AlertEvent) -> None:
        return None

    def bodies(self, delivery: Delivery) -> list[bytes]:
        """The message, and the mention after a markdown one."""
        cfg = self.config
        mentions = list(delivery.recipients)
        markdown = cfg.msgtype == "markdown"
        _, text = chat_message(
            delivery.event,
            self.gateway,
            markdown=markdown,
            mentions=[] if markdown else mentions,
            lang=delivery.lang,
            tz=delivery.tz,
            colour=True,
        )
        docs: list[dict[str, object]] = []
        if markdown:
            docs.append(
                {"msgtype": "markdown", "markdown": {"content": clip_bytes(text, MARKDOWN_MAX)}}
            )
            if mentions:
                docs.append(
                    {
                        "msgtype": "text",
                        "text": {
                            "content": clip_bytes(
                                subject(delivery.event, delivery.lang, delivery.tz), TEXT_MAX
                            ),
                            "mentioned_mobile_list": mentions,
                        },
                    }
                )
        else:
            text_doc: dict[str, object] = {"content": clip_bytes(text, TEXT_MAX)}
            if mentions:
                text_doc["mentioned_mobile_list"] = mentions
            docs.append({"msgtype": "text", "text": text_doc})
        return [json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() for d in docs]

    async def send(self, delivery: Delivery) -> str:
        url = f"{self.config.url}?{urlencode({'key': self._key})}"
        headers = {"Content-Type": "application/json; charset=utf-8"}
        done = int(delivery.cache.get("wecom_sent", 0))  # type: ignore[call-overload]
        answers = []
        for i, body in enumerate(self.bodies(delivery)):
            if i < done:
                continue
            answer = await self._http.post(url, body, headers, "WeCom robot")
            text = f"HTTP {answer.status} {answer.text.strip()[:300]}"
            if answer.status >= 500 or answer.status == 429:
                raise TransientError(f"WeCom robot: {text}", answer.retry_after)
            doc = json_answer(answer)
            code = doc.get("errcode")
            if answer.status != 200 or code != 0:
                if code in RETRY_CODES:
                    wait = TOO_FAST_WAIT_S if code == 45009 else None
                    raise TransientError(f"WeCom robot: {text}", wait)
                raise PermanentError(f"WeCom robot: {text}")
            delivery.cache["wecom_sent"] = i + 1
            answers.append(f"errcode 0 {doc.get('errmsg', '')}".strip())
        return "; ".join(answers)

    async def close(self) -> None:
        await self._http.close()
