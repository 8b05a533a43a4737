"""Alibaba Cloud SMS (阿里云短信) SendSms, signed with ACS3-HMAC-SHA256 (the vendor's V3
signature, which it recommends over the older HMAC-SHA1 one).

One request per number: `POST {endpoint}/?PhoneNumbers=..&SignName=..&TemplateCode=..
&TemplateParam=..&OutId=..` with an empty body and the `x-acs-*` headers. The signature covers
the method, path, sorted query, the `host`, `content-type` and `x-acs-*` headers and the body's
SHA-256; `host` is the endpoint's, so a test endpoint on 127.0.0.1 is signed as it is reached.
`OutId` carries the idempotency key (it comes back in delivery receipts).

Answers: HTTP 200 with `"Code": "OK"` is success; business refusals also come back as HTTP 200
with another Code. Throttling, `isv.BUSINESS_LIMIT_CONTROL` (per-number flow control),
`isp.SYSTEM_ERROR`, `ServiceUnavailable`, `InternalError` and HTTP 5xx are retried; everything
else (a bad signature, an unapproved template or sign name, an invalid number, no balance) is
permanent and kept with the vendor's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from yarl import URL

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError
from gateway.notifiers.config import AliyunSmsChannel, dial
from gateway.notifiers.http import HttpClient, json_answer
from gateway.notifiers.message import sms_params

ALGORITHM = "ACS3-HMAC-SHA256"
ACTION = "SendSms"
VERSION = "2017-05-25"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRY_CODES = frozenset(
    {"isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError", "isv.BUSINESS_LIMIT_CONTROL"}
)
FLOW_CONTROL_WAIT_S = 60.0
"""After `isv.BUSINESS_LIMIT_CONTROL` (per-number flow control) or throttling."""


def percent_encode(s: str) -> str:
    """RFC 3986 as the vendor specifies: UTF-8, only A-Z a-z 0-9 - _ . ~ left as they are,
    uppercase hex, a space as %20."""
    return quote(s, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """The headers ACS3 signs: host, content-type and every x-acs-* header, lowercase, sorted."""
    names = {k.lower() for k in headers}
    return sorted(n for n in names if n in ("host", "content-type") or n.startswith("x-acs-"))


def canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """(canonical request, signed headers) as the V3 signature document defines them."""
    low = {k.lower(): v.strip() for k, v in headers.items()}
    names = signed_header_names(headers)
    canon_headers = "".join(f"{n}:{low[n]}\n" for n in names)
    signed = ";".join(names)
    request = "\n".join(
        [
            method,
            path,
            canonical_query(query),
            canon_headers,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return request, signed


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret: str, canonical: str) -> str:
    return hmac.new(secret.encode(), string_to_sign(canonical).encode(), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={sig}"


def acs_date(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class AliyunSmsSender:
    kind = "aliyun_sms"

    def __init__(
        self,
        name: str,
        config: AliyunSmsChannel,
        access_key_id: str,
        access_key_secret: str,
        gateway: str,
    ) -> None:
        self.name = name
        self.config = config
        self._key_id = access_key_id
        self._secret = access_key_secret
        self.gateway = gateway
        parts = urlsplit(config.endpoint)
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._path = parts.path or "/"
        self._http = HttpClient(config.timeout_s)

    def units(self, recipients: tuple[str, ...]) -> list[tuple[str, ...]]:
        return [(number,) for number in recipients]

    def key(self, event: AlertEvent) -> None:
        return None

    def query(self, delivery: Delivery) -> dict[str, str]:
        cfg = self.config
        values = sms_params(
            delivery.event,
            self.gateway,
            lang=delivery.lang,
            tz=delivery.tz,
            max_chars=cfg.max_param_chars,
        )
        params = {var: values[p] for var, p in cfg.template_params.items()}
        return {
            "PhoneNumbers": dial(delivery.recipients[0]),
            "SignName": cfg.sign_name,
            "TemplateCode": cfg.template_code,
            "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "OutId": delivery.id,
        }

    def signed_request(self, query: dict[str, str], now_s: float) -> tuple[URL, dict[str, str]]:
        """The URL (query exactly as signed) and headers of one attempt: a fresh date and
        nonce each time (the vendor refuses a nonce it has seen)."""
        headers = {
            "host": self._host,
            "x-acs-action": ACTION,
            "x-acs-version": VERSION,
            "x-acs-date": acs_date(now_s),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": EMPTY_SHA256,
        }
        canonical, signed = canonical_request("POST", self._path, query, headers, b"")
        headers["Authorization"] = authorization(
            self._key_id, signed, signature(self._secret, canonical)
        )
        url = URL(f"{self._base}{self._path}?{canonical_query(query)}", encoded=True)
        return url, headers

    async def send(self, delivery: Delivery) -> str:
        if not delivery.recipients:
            raise PermanentError("no phone number")
        url, headers = self.signed_request(self.query(delivery), time.time())
        what = f"Aliyun SendSms to {delivery.recipients[0]}"
        answer = await self._http.post(url, b"", headers, what)
        doc = json_answer(answer)
        code = str(doc.get("Code", ""))
        text = f"HTTP {answer.status} {answer.text.strip()[:500]}"
        if answer.status == 200 and code == "OK":
            return f"OK BizId={doc.get('BizId', '')} RequestId={doc.get('RequestId', '')}"
        if code in RETRY_CODES or code.startswith("Throttling"):
            wait = None if code in ("ServiceUnavailable", "InternalError") else FLOW_CONTROL_WAIT_S
            raise TransientError(f"{what}: {text}", wait)
        if answer.status >= 500 or answer.status == 429:
            raise TransientError(f"{what}: {text}", answer.retry_after)
        raise PermanentError(f"{what}: {text}")

    async def close(self) -> None:
        await self._http.close()
