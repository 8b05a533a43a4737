"""The vendors' request signatures against their published worked examples (Alibaba Cloud V3
signature document, Tencent Cloud signature v3 document, zh and en), DingTalk's signed
timestamp against its official snippet, and properties of the encodings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from gateway.notifiers import aliyun_sms, dingtalk, tencent_sms
from gateway.notifiers.config import AliyunSmsChannel, DingTalkChannel, TencentSmsChannel

# -- Alibaba Cloud: ACS3-HMAC-SHA256 ----------------------------------------------------------

ALIYUN_EXAMPLE_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
    "x-acs-version": "2014-05-26",
}
ALIYUN_EXAMPLE_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}


def test_aliyun_v3_signature_matches_the_published_example() -> None:
    """'V3 request structure and signature', Signature examples, fixed parameter values:
    the canonical request, the string to sign and the signature as printed there."""
    canonical, signed = aliyun_sms.canonical_request(
        "POST", "/", ALIYUN_EXAMPLE_QUERY, ALIYUN_EXAMPLE_HEADERS, b""
    )
    assert canonical == (
        "POST\n"
        "/\n"
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
        "host:ecs.cn-shanghai.aliyuncs.com\n"
        "x-acs-action:RunInstances\n"
        "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-acs-date:2023-10-26T10:22:32Z\n"
        "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
        "x-acs-version:2014-05-26\n"
        "\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert aliyun_sms.string_to_sign(canonical) == (
        "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    sig = aliyun_sms.signature("YourAccessKeySecret", canonical)
    assert sig == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert aliyun_sms.authorization("YourAccessKeyId", signed, sig) == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_aliyun_sendsms_request_regression_vector() -> None:
    """A SendSms request with a Chinese sign name and a JSON template parameter, same date,
    nonce and secret as the published example (computed with the same algorithm, which
    reproduces the vendor's vector above): the percent-encoding of UTF-8 and JSON."""
    headers = {
        **ALIYUN_EXAMPLE_HEADERS,
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
    }
    query = {
        "PhoneNumbers": "13800000000",
        "SignName": "阿里云短信测试",
        "TemplateCode": "SMS_154950909",
        "TemplateParam": '{"code":"1234"}',
    }
    assert aliyun_sms.canonical_query(query) == (
        "PhoneNumbers=13800000000&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5"
        "%8B%E8%AF%95&TemplateCode=SMS_154950909&TemplateParam=%7B%22code%22%3A%221234%22%7D"
    )
    canonical, _ = aliyun_sms.canonical_request("POST", "/", query, headers, b"")
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "32653f55b28ad550b1a37aec5d9c7363440683a286da84c03112f28e6f7c44c3"
    )
    assert aliyun_sms.signature("YourAccessKeySecret", canonical) == (
        "8ea074df6b09a413025b88585d4f753bc2ae681c8c8104d71c3e0e2d9b0f9aeb"
    )


@given(st.text(max_size=40))
def test_aliyun_percent_encoding_is_rfc3986_and_reversible(s: str) -> None:
    enc = aliyun_sms.percent_encode(s)
    unreserved = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%")
    assert set(enc) <= unreserved
    assert "+" not in enc and "*" not in enc and " " not in enc
    i = enc.find("%")
    while i != -1:  # uppercase hex after every %
        assert enc[i + 1 : i + 3] == enc[i + 1 : i + 3].upper()
        i = enc.find("%", i + 1)
    assert urllib.parse.unquote(enc) == s


def test_aliyun_sender_signs_the_host_it_reaches_and_a_fresh_nonce() -> None:
    cfg = AliyunSmsChannel.model_validate(
        {"kind": "aliyun_sms", "endpoint": "http://127.0.0.1:8443", "access_key_id_env": "A",
         "access_key_secret_env": "B", "sign_name": "某医药", "template_code": "SMS_1"}
    )  # fmt: skip
    sender = aliyun_sms.AliyunSmsSender("sms", cfg, "id", "secret", "gw")
    query = {"PhoneNumbers": "13800000001", "SignName": "某医药", "TemplateCode": "SMS_1"}
    url, h1 = sender.signed_request(query, time.time())
    _, h2 = sender.signed_request(query, time.time())
    assert h1["host"] == "127.0.0.1:8443" and "host;" in h1["Authorization"]
    assert h1["x-acs-signature-nonce"] != h2["x-acs-signature-nonce"]
    assert str(url).startswith("http://127.0.0.1:8443/?PhoneNumbers=13800000001&SignName=%E6")
    canonical, _ = aliyun_sms.canonical_request("POST", "/", query, h1, b"")
    assert h1["Authorization"].endswith("Signature=" + aliyun_sms.signature("secret", canonical))


# -- Tencent Cloud: TC3-HMAC-SHA256 -----------------------------------------------------------

TENCENT_BODY = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TENCENT_TS = 1551113065


def test_tencent_tc3_matches_the_published_zh_example() -> None:
    """签名方法 v3 (zh): SignedHeaders content-type;host;x-tc-action; the sample secret key is
    32 asterisks; the derived keys and the signature as printed there."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Host": "cvm.tencentcloudapi.com",
        "X-TC-Action": "DescribeInstances",
    }
    canonical, signed = tencent_sms.canonical_request("POST", "/", "", headers, TENCENT_BODY)
    assert hashlib.sha256(TENCENT_BODY).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert canonical == (
        "POST\n/\n\n"
        "content-type:application/json; charset=utf-8\n"
        "host:cvm.tencentcloudapi.com\n"
        "x-tc-action:describeinstances\n"
        "\n"
        "content-type;host;x-tc-action\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert tencent_sms.string_to_sign(TENCENT_TS, "cvm", canonical) == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    )
    secret = "*" * 32
    date_key = hmac.new(b"TC3" + secret.encode(), b"2019-02-25", hashlib.sha256).digest()
    assert date_key.hex() == "da98fb70dcf6b112dc21038d1eeeb3a95c74b4dcb12c1131f864f6066bd02be0"
    service_key = hmac.new(date_key, b"cvm", hashlib.sha256).digest()
    assert service_key.hex() == "8d70cbefb03939f929db64d32dc2ba89b1095620119fe3e050e2b18c5bd2752f"
    assert tencent_sms.signing_key(secret, "2019-02-25", "cvm").hex() == (
        "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
    )
    sig = tencent_sms.signature(secret, TENCENT_TS, "cvm", canonical)
    assert sig == "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    assert tencent_sms.authorization("AKID" + "*" * 32, TENCENT_TS, "cvm", signed, sig) == (
        "TC3-HMAC-SHA256 Credential=AKID********************************/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host;x-tc-action, "
        "Signature=10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    )


def test_tencent_tc3_matches_the_published_en_example() -> None:
    """Signature v3 (en): SignedHeaders content-type;host, SecretKey
    Gu5t9xGARNpq86cd98joQYCN3EXAMPLE."""
    headers = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
    canonical, signed = tencent_sms.canonical_request("POST", "/", "", headers, TENCENT_BODY)
    assert signed == "content-type;host"
    assert tencent_sms.string_to_sign(TENCENT_TS, "cvm", canonical).endswith(
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    sig = tencent_sms.signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", TENCENT_TS, "cvm", canonical)
    assert sig == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_tencent_credential_date_is_utc_not_beijing() -> None:
    # 1551113065 is 2019-02-26 00:44:25 in UTC+8, but 2019-02-25 in UTC (the document's warning)
    assert tencent_sms.credential_date(TENCENT_TS) == "2019-02-25"


def test_tencent_sendsms_body_and_headers() -> None:
    cfg = TencentSmsChannel.model_validate(
        {"kind": "tencent_sms", "endpoint": "http://127.0.0.1:9000", "secret_id_env": "I",
         "secret_key_env": "K", "sms_sdk_app_id": "1400006666", "sign_name": "腾讯云",
         "template_id": "1110"}
    )  # fmt: skip
    sender = tencent_sms.TencentSmsSender("t", cfg, "AKIDx", "key", "gw")
    body = b'{"PhoneNumberSet":["+8613800000000"]}'
    h = sender.headers(body, 1700000000)
    assert h["Host"] == "127.0.0.1:9000" and h["X-TC-Region"] == "ap-guangzhou"
    assert h["Authorization"].startswith(
        "TC3-HMAC-SHA256 Credential=AKIDx/2023-11-14/sms/tc3_request, "
        "SignedHeaders=content-type;host;x-tc-action, Signature="
    )
    assert [
        tencent_sms.e164(n) for n in ("13800000000", "+8613800000000", "0086 138 0000 0000")
    ] == ["+8613800000000"] * 3


def test_tencent_sendsms_regression_vector() -> None:
    """Computed with the algorithm that reproduces both published examples: a SendSms body with
    a Chinese sign name, not ASCII-escaped (the bytes sent are the bytes hashed)."""
    body = (
        '{"PhoneNumberSet":["+8613800000000"],"SmsSdkAppId":"1400006666","SignName":"腾讯云",'
        '"TemplateId":"1110","TemplateParamSet":["4370"],"SessionContext":"alarm-1"}'
    ).encode()
    assert hashlib.sha256(body).hexdigest() == (
        "f1ecb4fbce478ba5f1c552b3052d2b0e1dc2173b080ff68ebd8d86eec6903fb4"
    )
    headers = {"Content-Type": "application/json; charset=utf-8", "Host": "sms.tencentcloudapi.com"}
    canonical, _ = tencent_sms.canonical_request("POST", "/", "", headers, body)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "5bc3a355e6a7b48d6463793195a8cfaa53ab9ce510b3fc6139dac07e217c2409"
    )
    assert tencent_sms.signature("SECRETKEYEXAMPLE", 1700000000, "sms", canonical) == (
        "8ec204e854c4ea450534c391859991138e5764f32e3f50f9cf8904f0be7cec28"
    )


# -- DingTalk: signed timestamp ---------------------------------------------------------------


def official_snippet(timestamp: str, secret: str) -> str:
    """DingTalk's published Python snippet (security settings, 加签), verbatim but for the fixed
    timestamp: the URL-encoded sign."""
    secret_enc = secret.encode("utf-8")
    string_to_sign = "{}\n{}".format(timestamp, secret)  # noqa: UP032 (the vendor's code)
    string_to_sign_enc = string_to_sign.encode("utf-8")
    hmac_code = hmac.new(secret_enc, string_to_sign_enc, digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(hmac_code))


def test_dingtalk_sign_vectors() -> None:
    """DingTalk publishes no fixed-input example (its snippet uses the current time); these are
    its snippet's output for fixed timestamps, the second with +, / and = to escape."""
    assert dingtalk.sign(1577808000000, "this is secret") == (
        "ijHEivi6YiCNPZOq4hZstmvZ3sPfbioAiMhP30ae7W0="
    )
    secret = "SECtest" + "0" * 58
    assert dingtalk.sign(1700000000003, secret) == "hEpXX9y+yQgAA22rnxamHoN4Vg2ttWuwF2Q/uCODhco="
    cfg = DingTalkChannel.model_validate(
        {"kind": "dingtalk", "url": "http://127.0.0.1:1/robot/send", "access_token_env": "T",
         "secret_env": "S"}
    )  # fmt: skip
    sender = dingtalk.DingTalkSender("d", cfg, "tok", secret, "gw")
    url = sender.url(1700000000003)
    assert url == (
        "http://127.0.0.1:1/robot/send?access_token=tok&timestamp=1700000000003"
        "&sign=hEpXX9y%2ByQgAA22rnxamHoN4Vg2ttWuwF2Q%2FuCODhco%3D"
    )  # encoded once: %2B, not %252B


@given(st.integers(0, 10**13), st.text(min_size=1, max_size=70))
def test_dingtalk_sign_agrees_with_the_official_snippet(ts: int, secret: str) -> None:
    expected = official_snippet(str(ts), secret)
    assert urllib.parse.quote_plus(dingtalk.sign(ts, secret)) == expected
