"""Tencent Cloud SMS (腾讯云短信) SendSms (API 2021-01-11), signed with TC3-HMAC-SHA256.

One request per number: `POST {endpoint}/` with a JSON body (PhoneNumberSet, SmsSdkAppId,
SignName, TemplateId, TemplateParamSet, SessionContext) and the `X-TC-*` headers. The signature
covers the method, path, the signed headers (content-type, host, x-tc-action; `host` as
reached, so a test endpoint on 127.0.0.1 is signed as it is) and the body's SHA-256, with a key
derived from the secret key, the UTC date and the service `sms`. `SessionContext` carries the
idempotency key (the vendor echoes it back).

Answers come with HTTP 200 either way: `Response.Error` means the call failed;
`Response.SendStatusSet[0].Code == "Ok"` that the number was accepted. Rate limits
(`RequestLimitExceeded*`, `LimitExceeded.*`), `InternalError*` and HTTP errors are retried;
authentication, parameter, template and sign-name refusals are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NoReturn
from urllib.parse import urlsplit

from alert_rules.model import AlertEvent
from gateway.notifiers.base import Delivery, PermanentError, TransientError
from gateway.notifiers.config import TencentSmsChannel
from gateway.notifiers.http import HttpClient, json_answer
from gateway.notifiers.message import sms_params

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
ACTION = "SendSms"
VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
LIMIT_WAIT_S = 60.0


def credential_date(timestamp: int) -> str:
    """The UTC date of the timestamp (not the local one), as the credential scope needs."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes
) -> tuple[str, str]:
    """(canonical request, signed headers): header names and values lowercased and trimmed,
    sorted by name; every header given is signed."""
    low = {k.lower().strip(): v.lower().strip() for k, v in headers.items()}
    names = sorted(low)
    canon = "".join(f"{n}:{low[n]}\n" for n in names)
    signed = ";".join(names)
    digest = hashlib.sha256(payload).hexdigest()
    return f"{method}\n{path}\n{query}\n{canon}\n{signed}\n{digest}", signed


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    """SecretDate → SecretService → SecretSigning."""
    return _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")


def signature(secret_key: str, timestamp: int, service: str, canonical: str) -> str:
    key = signing_key(secret_key, credential_date(timestamp), service)
    return hmac.new(
        key, string_to_sign(timestamp, service, canonical).encode(), hashlib.sha256
    ).hexdigest()


def authorization(secret_id: str, timestamp: int, service: str, signed: str, sig: str) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed}, Signature={sig}"


def e164(number: str) -> str:
    """+86 for an 11-digit mainland number; other numbers as written, spaces removed."""
    digits = "".join(c for c in number if c.isdigit() or c == "+")
    if digits.startswith("+"):
        return digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return "+" + digits


class TencentSmsSender:
    kind = "tencent_sms"

    def __init__(
        self,
        name: str,
        config: TencentSmsChannel,
        secret_id: str,
        secret_key: str,
        gateway: str,
    ) -> None:
        self.name = name
        self.config = config
        self._id = secret_id
        self._key = secret_key
        self.gateway = gateway
        parts = urlsplit(config.endpoint)
        self._host = parts.netloc
        self._path = parts.path or "/"
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self._http = HttpClient(config.timeout_s)

    def units(self, recipients: tuple[str, ...]) -> list[tuple[str, ...]]:
        return [(number,) for number in recipients]

    def key(self, event: AlertEvent) -> None:
        return None

    def body(self, delivery: Delivery) -> bytes:
        cfg = self.config
        values = sms_params(
            delivery.event,
            self.gateway,
            lang=delivery.lang,
            tz=delivery.tz,
            max_chars=cfg.max_param_chars,
        )
        doc = {
            "PhoneNumberSet": [e164(delivery.recipients[0])],
            "SmsSdkAppId": cfg.sms_sdk_app_id,
            "SignName": cfg.sign_name,
            "TemplateId": cfg.template_id,
            "TemplateParamSet": [values[p] for p in cfg.template_params],
            "SessionContext": delivery.id,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signed = {"Content-Type": CONTENT_TYPE, "Host": self._host, "X-TC-Action": ACTION}
        canonical, names = canonical_request("POST", self._path, "", signed, body)
        sig = signature(self._key, timestamp, SERVICE, canonical)
        return {
            **signed,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": VERSION,
            "X-TC-Region": self.config.region,
            "Authorization": authorization(self._id, timestamp, SERVICE, names, sig),
        }

    async def send(self, delivery: Delivery) -> str:
        if not delivery.recipients:
            raise PermanentError("no phone number")
        body = self.body(delivery)
        what = f"Tencent SendSms to {delivery.recipients[0]}"
        answer = await self._http.post(self._url, body, self.headers(body, int(time.time())), what)
        text = f"HTTP {answer.status} {answer.text.strip()[:500]}"
        if answer.status != 200:
            raise TransientError(f"{what}: {text}", answer.retry_after)
        response = json_answer(answer).get("Response")
        if not isinstance(response, dict):
            raise TransientError(f"{what}: not a Tencent Cloud answer: {text}")
        error = response.get("Error")
        if isinstance(error, dict):
            self._raise(what, str(error.get("Code", "")), text)
        statuses = response.get("SendStatusSet") or []
        status = statuses[0] if statuses and isinstance(statuses[0], dict) else {}
        code = str(status.get("Code", ""))
        if code == "Ok":
            return (
                f"Ok SerialNo={status.get('SerialNo', '')} "
                f"RequestId={response.get('RequestId', '')}"
            )
        self._raise(what, code, text)

    @staticmethod
    def _raise(what: str, code: str, text: str) -> NoReturn:
        if code.startswith(("RequestLimitExceeded", "LimitExceeded")):
            raise TransientError(f"{what}: {text}", LIMIT_WAIT_S)
        if code.startswith("InternalError") or code in ("", "ResourceUnavailable"):
            raise TransientError(f"{what}: {text}")
        raise PermanentError(f"{what}: {text}")

    async def close(self) -> None:
        await self._http.close()
