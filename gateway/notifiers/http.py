"""The HTTP client the webhook, SMS and chat channels share: one aiohttp session per channel,
connection problems and timeouts as TransientError, no redirects followed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from gateway.notifiers.base import TransientError

USER_AGENT = "vigil-gateway"
MAX_ANSWER = 2000
"""Bytes of a receiver's answer kept (for the history and the error message)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    retry_after: float | None


def retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class HttpClient:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str | URL, body: bytes, headers: dict[str, str], what: str) -> Answer:
        """POST `body`; `url` as given (a yarl URL built with encoded=True is sent as is, so
        the query string is exactly the one signed)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        try:
            async with self._session.post(
                url, data=body, headers={"User-Agent": USER_AGENT, **headers}, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER)
                return Answer(
                    resp.status,
                    raw.decode("utf-8", "replace"),
                    retry_after(resp.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise TransientError(f"{what}: {type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def json_answer(answer: Answer) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        doc = json.loads(answer.text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
