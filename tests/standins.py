"""Local stand-ins for the notification vendors, on 127.0.0.1: Alibaba Cloud SMS, Tencent Cloud
SMS, the DingTalk custom robot, the WeCom group robot and a signed webhook receiver.

Each checks a request the way its vendor documents it — signature, required headers, body
shape, field types and limits — with its own implementation of the vendor's algorithm (nothing
here imports the gateway's signers), and answers as the vendor does: success, or the vendor's
error body. `mode` makes it answer a retryable "busy" error (`busy`) or a permanent refusal
(`refuse`) instead. Every request is kept in `requests` (with what was wrong with it, if
anything); `accepted` holds the parsed messages it took, each with its idempotency key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

ALIYUN_KEY_ID, ALIYUN_SECRET = "LTAI5tVigilTest0000", "aliyun-test-secret-0123456789"
TENCENT_ID, TENCENT_KEY = "AKIDvigilTest00000000000000000000000", "tencent-test-secret-key-0123456"
DINGTALK_TOKEN = "dingtalk-test-token-0123456789abcdef"
DINGTALK_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
WEBHOOK_SECRET = "s3cret-webhook-key"


@dataclass
class Seen:
    """One request as the stand-in saw it."""

    key: str | None
    """The idempotency key it carried (OutId, SessionContext, msgUuid, X-Vigil-Delivery)."""
    problem: str
    """Why it was refused ("" when it was valid)."""
    doc: dict[str, Any] = field(default_factory=dict)


class StandIn:
    """An aiohttp server with a mode: `ok` (answer success), `busy` (a retryable error),
    `refuse` (a permanent error)."""

    path = "/"

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[Seen] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def accepted(self) -> list[Seen]:
        return [s for s in self.requests if s.problem == "" and s.doc.get("_answered") == "ok"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = Seen(None, "")
        self.requests.append(seen)
        try:
            seen.key, seen.doc = self.check(request, body)
        except Problem as p:
            seen.problem = str(p)
            return self.refusal(str(p), p.code)
        seen.doc["_answered"] = self.mode
        if self.mode == "busy":
            return self.busy()
        if self.mode == "refuse":
            return self.refusal("refused on purpose by the test", None)
        return self.ok(seen)

    # -- per vendor ---------------------------------------------------------------------------
    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        raise NotImplementedError

    def ok(self, seen: Seen) -> web.Response:
        raise NotImplementedError

    def busy(self) -> web.Response:
        raise NotImplementedError

    def refusal(self, why: str, code: str | None) -> web.Response:
        raise NotImplementedError


class Problem(Exception):
    def __init__(self, why: str, code: str | None = None) -> None:
        super().__init__(why)
        self.code = code


def need(cond: bool, why: str, code: str | None = None) -> None:
    if not cond:
        raise Problem(why, code)


# -- Alibaba Cloud SMS: ACS3-HMAC-SHA256 ------------------------------------------------------


def _pe(s: str) -> str:
    return quote(s, safe="~")


class AliyunSms(StandIn):
    """dysmsapi SendSms (2017-05-25) with the V3 signature, verified as the V3 signature
    document describes: canonical request from the received method, path, query and the headers
    named in SignedHeaders (with the Host actually received), the body's SHA-256, a date within
    15 minutes and a nonce never seen before."""

    def __init__(self) -> None:
        super().__init__()
        self.nonces: set[str] = set()

    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        auth = request.headers.get("Authorization", "")
        need(auth.startswith("ACS3-HMAC-SHA256 "), "no ACS3 Authorization", "IncompleteSignature")
        parts = dict(p.split("=", 1) for p in auth.removeprefix("ACS3-HMAC-SHA256 ").split(","))
        need(
            parts.get("Credential") == ALIYUN_KEY_ID,
            "unknown key id",
            "InvalidAccessKeyId.NotFound",
        )
        signed = parts.get("SignedHeaders", "").split(";")
        need(
            "host" in signed and "x-acs-date" in signed,
            "host/x-acs-date not signed",
            "IncompleteSignature",
        )
        h = {k.lower(): v.strip() for k, v in request.headers.items()}
        need(h.get("x-acs-action") == "SendSms", "x-acs-action must be SendSms", "InvalidAction")
        need(h.get("x-acs-version") == "2017-05-25", "x-acs-version", "InvalidVersion")
        need(
            h.get("x-acs-content-sha256") == hashlib.sha256(body).hexdigest(),
            "x-acs-content-sha256 does not match the body",
            "SignatureDoesNotMatch",
        )
        date = datetime.strptime(h.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        need(
            abs(time.time() - date.timestamp()) <= 900,
            "x-acs-date too far off",
            "InvalidTimeStamp.Expired",
        )
        nonce = h.get("x-acs-signature-nonce", "")
        need(bool(nonce) and nonce not in self.nonces, "nonce reused", "SignatureNonceUsed")
        self.nonces.add(nonce)
        query = {k: v for k, v in request.query.items()}
        cq = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(query.items()))
        canon_h = "".join(f"{n}:{h[n]}\n" for n in signed)
        canonical = "\n".join(
            [
                request.method,
                request.path,
                cq,
                canon_h,
                ";".join(signed),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        want = hmac.new(ALIYUN_SECRET.encode(), sts.encode(), hashlib.sha256).hexdigest()
        need(
            hmac.compare_digest(want, parts.get("Signature", "")),
            "signature mismatch",
            "SignatureDoesNotMatch",
        )
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            need(bool(query.get(name)), f"{name} missing", "MissingParameter")
        need(
            query["TemplateCode"].startswith("SMS_"), "bad TemplateCode", "isv.SMS_TEMPLATE_ILLEGAL"
        )
        params = json.loads(query.get("TemplateParam", "{}"))
        need(
            isinstance(params, dict) and all(isinstance(v, str) for v in params.values()),
            "TemplateParam values must be strings",
            "isv.INVALID_JSON_PARAM",
        )
        need(
            all(len(v) <= 35 for v in params.values()),
            "a template variable is too long",
            "isv.PARAM_LENGTH_LIMIT",
        )
        for n in query["PhoneNumbers"].split(","):
            need(n.lstrip("+").isdigit(), f"bad number {n}", "isv.MOBILE_NUMBER_ILLEGAL")
        return query.get("OutId"), {**query, "TemplateParam": params}

    def ok(self, seen: Seen) -> web.Response:
        return web.json_response(
            {
                "Code": "OK",
                "Message": "OK",
                "BizId": uuid.uuid4().hex[:20],
                "RequestId": str(uuid.uuid4()),
            }
        )

    def busy(self) -> web.Response:
        return web.json_response(
            {"Code": "ServiceUnavailable", "Message": "busy", "RequestId": "r"}, status=503
        )

    def refusal(self, why: str, code: str | None) -> web.Response:
        status = 403 if code == "SignatureDoesNotMatch" else 200
        return web.json_response(
            {"Code": code or "isv.SMS_SIGNATURE_ILLEGAL", "Message": why, "RequestId": "r"},
            status=status,
        )


# -- Tencent Cloud SMS: TC3-HMAC-SHA256 -------------------------------------------------------


def _h(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class TencentSms(StandIn):
    """SendSms (2021-01-11) with TC3-HMAC-SHA256, verified per the signature v3 document: the
    signed headers as received, the credential scope's date is the UTC date of X-TC-Timestamp,
    which must be within 5 minutes; body fields per the API reference."""

    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        auth = request.headers.get("Authorization", "")
        need(
            auth.startswith("TC3-HMAC-SHA256 "),
            "no TC3 Authorization",
            "AuthFailure.SignatureFailure",
        )
        parts = dict(p.split("=", 1) for p in auth.removeprefix("TC3-HMAC-SHA256 ").split(", "))
        sid, date, service, term = parts.get("Credential", "////").split("/")
        need(sid == TENCENT_ID, "unknown SecretId", "AuthFailure.SecretIdNotFound")
        ts = int(request.headers.get("X-TC-Timestamp", "0"))
        need(abs(time.time() - ts) <= 300, "timestamp too far off", "AuthFailure.SignatureExpire")
        need(
            date == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d"),
            "credential date is not the timestamp's UTC date",
            "AuthFailure.SignatureFailure",
        )
        need(
            service == "sms" and term == "tc3_request",
            "bad credential scope",
            "AuthFailure.SignatureFailure",
        )
        need(request.headers.get("X-TC-Action") == "SendSms", "X-TC-Action", "InvalidAction")
        need(
            request.headers.get("X-TC-Version") == "2021-01-11", "X-TC-Version", "InvalidParameter"
        )
        need(bool(request.headers.get("X-TC-Region")), "X-TC-Region missing", "MissingParameter")
        signed = parts.get("SignedHeaders", "").split(";")
        need(
            {"content-type", "host"} <= set(signed),
            "content-type and host must be signed",
            "AuthFailure.SignatureFailure",
        )
        h = {k.lower(): v for k, v in request.headers.items()}
        canon_h = "".join(f"{n}:{h[n].strip().lower()}\n" for n in signed)
        canonical = (
            f"{request.method}\n{request.path}\n{request.query_string}\n{canon_h}\n"
            f"{';'.join(signed)}\n{hashlib.sha256(body).hexdigest()}"
        )
        sts = (
            f"TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = _h(_h(_h(("TC3" + TENCENT_KEY).encode(), date), "sms"), "tc3_request")
        want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        need(
            hmac.compare_digest(want, parts.get("Signature", "")),
            "signature mismatch",
            "AuthFailure.SignatureFailure",
        )
        doc = json.loads(body)
        numbers = doc.get("PhoneNumberSet")
        need(
            isinstance(numbers, list) and 0 < len(numbers) <= 200,
            "PhoneNumberSet",
            "InvalidParameterValue.IncorrectPhoneNumber",
        )
        need(
            all(isinstance(n, str) and n.startswith("+") and n[1:].isdigit() for n in numbers),
            "numbers must be E.164",
            "InvalidParameterValue.IncorrectPhoneNumber",
        )
        for name in ("SmsSdkAppId", "TemplateId", "SignName"):
            need(
                isinstance(doc.get(name), str) and doc[name] != "",
                f"{name} missing",
                "MissingParameter",
            )
        params = doc.get("TemplateParamSet", [])
        need(
            isinstance(params, list) and all(isinstance(p, str) for p in params),
            "TemplateParamSet must hold strings",
            "InvalidParameterValue.TemplateParameterFormatError",
        )
        need(
            len(doc.get("SessionContext", "").encode()) < 512,
            "SessionContext too long",
            "InvalidParameterValue",
        )
        return doc.get("SessionContext"), doc

    def ok(self, seen: Seen) -> web.Response:
        n = seen.doc["PhoneNumberSet"][0]
        return web.json_response(
            {
                "Response": {
                    "SendStatusSet": [
                        {
                            "SerialNo": uuid.uuid4().hex,
                            "PhoneNumber": n,
                            "Fee": 1,
                            "SessionContext": seen.key,
                            "Code": "Ok",
                            "Message": "send success",
                            "IsoCode": "CN",
                        }
                    ],
                    "RequestId": str(uuid.uuid4()),
                }
            }
        )

    def busy(self) -> web.Response:
        return web.json_response(
            {
                "Response": {
                    "Error": {"Code": "RequestLimitExceeded", "Message": "too fast"},
                    "RequestId": "r",
                }
            }
        )

    def refusal(self, why: str, code: str | None) -> web.Response:
        return web.json_response(
            {
                "Response": {
                    "Error": {
                        "Code": code or "FailedOperation.TemplateIncorrectOrUnapproved",
                        "Message": why,
                    },
                    "RequestId": "r",
                }
            }
        )


# -- DingTalk custom robot: signed timestamp --------------------------------------------------


class DingTalk(StandIn):
    """/robot/send with the 加签 security setting: the sign (already URL-decoded by the query
    parser) is Base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")) and the timestamp within an
    hour; a markdown message must carry each @-mentioned mobile in its text."""

    path = "/robot/send"

    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        q = request.query
        need(q.get("access_token") == DINGTALK_TOKEN, "token is not exist", "300005")
        ts = q.get("timestamp", "")
        need(
            ts.isdigit() and abs(time.time() * 1000 - int(ts)) <= 3_600_000,
            "timestamp missing or more than an hour off",
            "310000",
        )
        to_sign = f"{ts}\n{DINGTALK_SECRET}".encode()
        want = base64.b64encode(
            hmac.new(DINGTALK_SECRET.encode(), to_sign, hashlib.sha256).digest()
        ).decode()
        need(hmac.compare_digest(want, q.get("sign", "")), "sign not match", "310000")
        need(request.content_type == "application/json", "not JSON", "40035")
        doc = json.loads(body.decode("utf-8"))
        kind = doc.get("msgtype")
        need(kind in ("text", "markdown"), f"msgtype {kind!r}", "40035")
        mentions = doc.get("at", {}).get("atMobiles", [])
        need(
            isinstance(mentions, list) and all(isinstance(m, str) for m in mentions),
            "atMobiles must be strings",
            "40035",
        )
        if kind == "markdown":
            md = doc.get("markdown", {})
            need(bool(md.get("title")) and bool(md.get("text")), "markdown title/text", "40035")
            for m in mentions:
                need(f"@{m}" in md["text"], f"@{m} not in the markdown text", "40035")
        else:
            need(bool(doc.get("text", {}).get("content")), "text.content", "40035")
        return doc.get("msgUuid"), doc

    def ok(self, seen: Seen) -> web.Response:
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def busy(self) -> web.Response:
        return web.json_response(
            {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        )

    def refusal(self, why: str, code: str | None) -> web.Response:
        return web.json_response({"errcode": int(code or 310000), "errmsg": why})


# -- WeCom group robot ------------------------------------------------------------------------


class WeCom(StandIn):
    """/cgi-bin/webhook/send: the key, the message type, UTF-8 byte limits (markdown 4096,
    text 2048), mentions only in text messages, at most 20 messages a minute."""

    path = "/cgi-bin/webhook/send"

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: list[float] = []

    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        need(request.query.get("key") == WECOM_KEY, "invalid webhook url", "93000")
        doc = json.loads(body.decode("utf-8"))
        kind = doc.get("msgtype")
        need(kind in ("text", "markdown"), "invalid message type", "40008")
        part = doc.get(kind, {})
        content = part.get("content", "")
        need(bool(content), "empty content", "44004")
        limit = 4096 if kind == "markdown" else 2048
        need(len(content.encode()) <= limit, f"content over {limit} bytes", "40058")
        if kind == "markdown":
            need(
                "mentioned_mobile_list" not in part and "mentioned_list" not in part,
                "mentions are ignored in markdown",
                "40058",
            )
        now = time.monotonic()
        self.sent_at = [t for t in self.sent_at if now - t < 60] + [now]
        need(len(self.sent_at) <= 20, "api freq out of limit", "45009")
        return None, doc

    def ok(self, seen: Seen) -> web.Response:
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def busy(self) -> web.Response:
        return web.json_response({"errcode": -1, "errmsg": "system busy"})

    def refusal(self, why: str, code: str | None) -> web.Response:
        return web.json_response({"errcode": int(code or 93000), "errmsg": why})


# -- the signed webhook -----------------------------------------------------------------------


class Webhook(StandIn):
    path = "/hook"

    def check(self, request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any]]:
        want = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        need(
            hmac.compare_digest(request.headers.get("X-Vigil-Signature", ""), want),
            "bad signature",
            "401",
        )
        doc = json.loads(body)
        key = request.headers.get("X-Vigil-Delivery")
        need(key == doc.get("delivery_id"), "X-Vigil-Delivery differs from delivery_id", "400")
        return key, doc

    def ok(self, seen: Seen) -> web.Response:
        return web.Response(status=200, text="ok")

    def busy(self) -> web.Response:
        return web.Response(status=503, text="try later")

    def refusal(self, why: str, code: str | None) -> web.Response:
        return web.Response(status=int(code or 422), text=why)


class InThread:
    """Stand-ins served from an event loop of their own, for tests that drive a gateway process
    synchronously."""

    def __init__(self, *standins: StandIn) -> None:
        self.standins = standins
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> InThread:
        self.thread.start()
        for s in self.standins:
            asyncio.run_coroutine_threadsafe(s.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.standins:
            asyncio.run_coroutine_threadsafe(s.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
