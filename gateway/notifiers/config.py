"""The `notifiers:` section: named channels and named routes.

Channel kinds: `mqtt` (retained state), `webhook`, `email`, `aliyun_sms`, `tencent_sms`,
`dingtalk`, `wecom` (people) and `modbus_output` (an on-site siren or tower light). Routes pick
alerts by severity, site/line and rule and name the channels (and the people on them) that hear
about them. Validation refuses a route that can carry cold-chain alarms to fewer than 3 distinct
people (China GSP: alarms go by SMS to at least three designated persons), counted across e-mail
addresses, SMS numbers, webhook recipients and the mobiles a DingTalk or WeCom message mentions,
with the error located at that route's key.

This module imports nothing from `gateway.config`, so `gateway.config` can embed it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from fnmatch import fnmatchcase, translate
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from alert_rules.model import Alert, AlertEvent, EventKind, Priority
from alert_rules.units import Duration
from gateway.notifiers.message import SmsParam

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEALTH_RULE_PREFIX = "gateway_health."
"""Rules of the built-in gateway_health profile (journal fill): never cold-chain alarms."""
ALWAYS_ALARM_RULES = ("device_health.power_failure", "liveness.device_offline")
"""Rules whose alerts are cold-chain alarms whatever severity a route selects them by (China
GSP: alarm on power failure; a logger that stops reporting is an unmonitored fridge)."""
NOTIFIER_FAILING_RULE = "gateway_health.notifier_failing"
"""The alarm a channel raises about itself (source `notifier:<channel>`): never sent through
the failing channel, so route it to another one."""
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,22}$")

PEOPLE_EVENTS: tuple[EventKind, ...] = (
    EventKind.RAISED,
    EventKind.REACTIVATED,
    EventKind.REALARMED,
    EventKind.ESCALATED,
    EventKind.CLEARED,
)
"""What a route sends to people unless it lists `events:` itself."""

ALARM_EVENTS = frozenset({EventKind.RAISED, EventKind.REACTIVATED, EventKind.REALARMED})
"""A route carrying any of these carries the alarm itself (the GSP recipient rule applies)."""

ACTION_EVENTS = frozenset(
    {
        EventKind.ACKED,
        EventKind.SHELVED,
        EventKind.UNSHELVED,
        EventKind.CLOSED,
        EventKind.SUPPRESSED,
        EventKind.UNSUPPRESSED,
        EventKind.OUT_OF_SERVICE,
        EventKind.IN_SERVICE,
    }
)
"""Records of what people or the system did: sent when listed, even for hidden alerts."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Delivery(_Strict):
    """Queueing and retry settings every channel shares."""

    max_queue: int = Field(1000, gt=0, le=1_000_000)
    """Notifications waiting for this channel; beyond it they are counted as dropped."""
    timeout_s: Duration = 10.0
    retry_min_s: Duration = 0.5
    retry_max_s: Duration = 60.0
    give_up_after_s: Duration | None = 3600.0
    """Stop retrying a notification this long after it was stored (None: never)."""
    alarm_after_failures: int = Field(3, ge=1, le=1000)
    """Failed attempts in a row after which the channel raises its own alarm
    (`gateway_health.notifier_failing`, routed to the other channels)."""

    @model_validator(mode="after")
    def _retry_bounds(self) -> _Delivery:
        if self.retry_min_s <= 0:
            raise ValueError("retry_min_s must be > 0")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self


def _env_name(v: str | None) -> str | None:
    if v is not None and not ENV_NAME.match(v):
        raise ValueError(f"expected the name of an environment variable, got {v!r}")
    return v


def _phone(v: str) -> str:
    if not PHONE.match(v):
        raise ValueError(f"expected a mobile number such as +8613800000001, got {v!r}")
    return v


def dial(number: str) -> str:
    """A number as sent to a vendor: its digits, with the leading + if it has one."""
    digits = "".join(c for c in number if c.isdigit())
    return "+" + digits if number.strip().startswith("+") else digits


def _http_url(v: str) -> str:
    u = urlparse(v)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return v


EnvName = Annotated[str, Field(min_length=1, pattern=ENV_NAME.pattern)]
Phone = Annotated[str, AfterValidator(_phone)]
"""The name of an environment variable holding a secret (never the secret itself)."""


class MqttChannel(_Delivery):
    """Retained state per open alert at `{topic_prefix}/{source}/{rule}` on the gateway's broker."""

    kind: Literal["mqtt"]
    topic_prefix: str = "vigil/alerts"
    qos: Literal[0, 1, 2] = 1
    client_id: str | None = None
    """Default: `<mqtt.client_id>-notify-<channel name>`."""
    give_up_after_s: Duration | None = None
    """State converges: keep retrying (only the latest state per alert is kept while down)."""

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not v or "+" in v or "#" in v:
            raise ValueError("expected a topic without wildcards, e.g. 'vigil/alerts'")
        return v


class WebhookChannel(_Delivery):
    """JSON POST signed with HMAC-SHA256 over the body: `X-Vigil-Signature: sha256=<hex>`."""

    kind: Literal["webhook"]
    url: str
    secret_env: Annotated[str, Field(min_length=1)]
    """Environment variable holding the HMAC secret (never written in the file)."""
    headers: dict[str, str] = Field(default_factory=dict)
    recipients: list[str] = Field(default_factory=list)
    """Whom the receiving system reaches (an SMS gateway's phone numbers); sent in the body."""

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str) -> str:
        return _env_name(v) or v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class EmailChannel(_Delivery):
    kind: Literal["email"]
    host: str
    port: int | None = Field(None, gt=0, le=65535)
    """Default: 465 for `tls: ssl`, 587 for `starttls`, 25 for `none`."""
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    recipients: list[str] = Field(default_factory=list)
    """Default recipients; a route may name others for this channel."""

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, v: str | None) -> str | None:
        return _env_name(v)

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        _address(v)
        return v

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: list[str]) -> list[str]:
        for r in v:
            _address(r)
        return v

    @model_validator(mode="after")
    def _auth(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env, or neither")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.tls]


def _address(v: str) -> str:
    addr = parseaddr(v)[1]
    if "@" not in addr or " " in addr or addr.startswith("@") or addr.endswith("@"):
        raise ValueError(f"expected an e-mail address, got {v!r}")
    return addr


ALIYUN_PARAMS: dict[str, SmsParam] = {"level": "severity", "where": "where", "time": "time"}
TENCENT_PARAMS: tuple[SmsParam, ...] = ("severity", "where", "time")


class _SmsChannel(_Delivery):
    """What both SMS vendors share: the numbers, and the template's parameters."""

    phone_numbers: list[Phone] = Field(default_factory=list)
    """Mobile numbers (+86... or 11 digits): each gets its own message and delivery record."""
    max_param_chars: int = Field(35, ge=1, le=500)
    """Longer parameter values are cut (vendors refuse over-long template variables)."""
    give_up_after_s: Duration | None = 3600.0

    @property
    def recipients(self) -> list[str]:
        return self.phone_numbers


class AliyunSmsChannel(_SmsChannel):
    """Alibaba Cloud SMS SendSms (dysmsapi 2017-05-25), signed with ACS3-HMAC-SHA256."""

    kind: Literal["aliyun_sms"]
    endpoint: str = "https://dysmsapi.aliyuncs.com"
    access_key_id_env: EnvName
    access_key_secret_env: EnvName
    sign_name: str = Field(min_length=1)
    """The approved signature (签名), e.g. 某某医药."""
    template_code: str = Field(min_length=1, pattern=r"^SMS_[0-9A-Za-z_]+$")
    template_params: dict[str, SmsParam] = Field(default_factory=lambda: dict(ALIYUN_PARAMS))
    """Template variable → what fills it (see docs/notifiers.md for the list)."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _http_url(v)


class TencentSmsChannel(_SmsChannel):
    """Tencent Cloud SMS SendSms (2021-01-11), signed with TC3-HMAC-SHA256."""

    kind: Literal["tencent_sms"]
    endpoint: str = "https://sms.tencentcloudapi.com"
    region: str = Field("ap-guangzhou", pattern=r"^[a-z0-9-]+$")
    secret_id_env: EnvName
    secret_key_env: EnvName
    sms_sdk_app_id: str = Field(pattern=r"^[0-9]+$")
    sign_name: str = Field(min_length=1)
    template_id: str = Field(pattern=r"^[0-9]+$")
    template_params: list[SmsParam] = Field(default_factory=lambda: list(TENCENT_PARAMS))
    """What fills the template's {1}, {2}, ... in order."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _http_url(v)


class DingTalkChannel(_Delivery):
    """DingTalk custom robot (自定义机器人) with the signed-timestamp (加签) security setting."""

    kind: Literal["dingtalk"]
    url: str = "https://oapi.dingtalk.com/robot/send"
    access_token_env: EnvName
    """Holds the robot's access_token (the webhook URL's `access_token=` value)."""
    secret_env: EnvName
    """Holds the robot's signing secret (SEC...)."""
    msgtype: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[Phone] = Field(default_factory=list)
    """Mobiles of the people on duty, @-mentioned in the group (they must be members)."""
    at_all: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @property
    def recipients(self) -> list[str]:
        return self.at_mobiles


class WeComChannel(_Delivery):
    """WeCom (企业微信) group robot webhook."""

    kind: Literal["wecom"]
    url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    key_env: EnvName
    """Holds the robot's key (the webhook URL's `key=` value)."""
    msgtype: Literal["markdown", "text"] = "markdown"
    mentioned_mobiles: list[Phone] = Field(default_factory=list)
    """Mobiles of the people on duty, @-mentioned (after a markdown message, in a short text
    message: WeCom mentions by mobile only in text messages)."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @property
    def recipients(self) -> list[str]:
        return self.mentioned_mobiles


class ModbusOutputChannel(_Delivery):
    """An on-site siren / tower light on a coil or holding register of a relay/IO module.

    On while any alert its routes carry is active or unacknowledged (and not shelved,
    suppressed or out of service), off otherwise. The module must be dedicated to alarms: the
    gateway refuses a host:port/unit that a Modbus collector polls (it never writes to a
    production PLC)."""

    kind: Literal["modbus_output"]
    dedicated: bool = False
    """Must be true: declares host:port/unit a relay/IO module used only for alarm outputs."""
    host: str = Field(min_length=1)
    port: int = Field(502, gt=0, le=65535)
    unit: int = Field(1, ge=0, le=255)
    coil: int | None = Field(None, ge=0, le=65535)
    """Coil address (zero-based, function 5)."""
    holding_register: int | None = Field(None, ge=0, le=65535)
    """Holding-register address (zero-based, function 6), instead of a coil."""
    on_value: int = Field(1, ge=0, le=65535)
    off_value: int = Field(0, ge=0, le=65535)
    refresh_s: Duration = Field(30.0, gt=0)
    """The output is written again this often, so a module that restarted gets it back."""
    give_up_after_s: Duration | None = None
    """State converges: keep retrying."""

    @field_validator("dedicated")
    @classmethod
    def _dedicated(cls, v: bool) -> bool:
        if not v:
            raise ValueError(
                "set `dedicated: true` to declare this device a relay/IO module for alarm "
                "outputs only (the gateway never writes to a production PLC)"
            )
        return v

    @model_validator(mode="after")
    def _one_output(self) -> ModbusOutputChannel:
        if (self.coil is None) == (self.holding_register is None):
            raise ValueError("give exactly one of `coil` or `holding_register`")
        if self.coil is not None and (self.on_value, self.off_value) != (1, 0):
            raise ValueError(
                "on_value/off_value: a coil is switched on and off (only a holding_register "
                "takes values)"
            )
        if self.on_value == self.off_value:
            raise ValueError("on_value and off_value must differ")
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.unit}"


ChannelConfig = Annotated[
    MqttChannel
    | WebhookChannel
    | EmailChannel
    | AliyunSmsChannel
    | TencentSmsChannel
    | DingTalkChannel
    | WeComChannel
    | ModbusOutputChannel,
    Field(discriminator="kind"),
]
PeopleChannel = (
    WebhookChannel
    | EmailChannel
    | AliyunSmsChannel
    | TencentSmsChannel
    | DingTalkChannel
    | WeComChannel
)
STATE_KINDS = frozenset({"mqtt", "modbus_output"})
"""Channels that follow alert state (every event of every alert their routes carry)."""
SECRET_KEYS = (
    "secret_env",
    "password_env",
    "access_key_id_env",
    "access_key_secret_env",
    "secret_id_env",
    "secret_key_env",
    "access_token_env",
    "key_env",
)


def _globs(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(translate(p) for p in patterns)) if patterns else None


class RouteConfig(_Strict):
    """Which alerts go where. Empty filters match everything."""

    channels: list[str] = Field(min_length=1)
    severities: list[Priority] = Field(default_factory=list)
    sites: list[str] = Field(default_factory=list)
    """Globs on the alert's `site` tag (cold chain)."""
    lines: list[str] = Field(default_factory=list)
    """Globs on the alert's `line` tag (production). With `sites` too, either may match."""
    rules: list[str] = Field(default_factory=list)
    """Globs on the rule name, e.g. `vaccine_2_8.*`."""
    events: list[EventKind] = Field(default_factory=lambda: list(PEOPLE_EVENTS))
    tier: int = Field(0, ge=0)
    """0: the first notification. N > 0: who hears when an alert is escalated to tier N."""
    recipients: list[str] | dict[str, list[str]] = Field(default_factory=list)
    """A list: the e-mail recipients for this route's email channels. A mapping: per channel
    name (email or webhook), replacing that channel's own `recipients`."""

    _sites: re.Pattern[str] | None = PrivateAttr(None)
    _lines: re.Pattern[str] | None = PrivateAttr(None)
    _rules: re.Pattern[str] | None = PrivateAttr(None)

    def model_post_init(self, context: Any, /) -> None:
        self._sites = _globs(self.sites)
        self._lines = _globs(self.lines)
        self._rules = _globs(self.rules)

    def matches(self, alert: Alert) -> bool:
        """The alert's fixed attributes (severity, scope, rule) are what this route selects."""
        if self.severities and alert.severity not in self.severities:
            return False
        if self._rules is not None and not self._rules.match(alert.rule):
            return False
        if self._sites is None and self._lines is None:
            return True
        site, line = alert.tags.get("site"), alert.tags.get("line")
        return bool(
            (self._sites is not None and site is not None and self._sites.match(site))
            or (self._lines is not None and line is not None and self._lines.match(line))
        )

    def may_carry_coldchain(self) -> bool:
        """Statically: could a cold-chain alert (one with a `site` tag) match this route?
        Not when it only selects the gateway's own health rules (`gateway_health.*`)."""
        if self.rules and all(r.startswith(HEALTH_RULE_PREFIX) for r in self.rules):
            return False
        return bool(self.sites) or not self.lines

    def names_always_alarm_rules(self) -> bool:
        """Its `rules:` can select the power-failure or device-offline alarms by name."""
        return any(
            fnmatchcase(rule, pattern) or pattern.endswith("." + rule.split(".", 1)[1])
            for pattern in self.rules
            for rule in ALWAYS_ALARM_RULES
        )

    def wants(self, event: AlertEvent) -> bool:
        """Whether people on this route hear about this event (tier handled by the router)."""
        if event.kind not in self.events:
            return False
        return event.annunciate or event.kind in ACTION_EVENTS


def _norm(recipient: str) -> str:
    """One spelling per person's address: e-mail by address, case-insensitively; a mobile by
    its digits, without the +86 / 0086 country code (+86 138 0000 0001 is 13800000001)."""
    if "@" in recipient:
        recipient = parseaddr(recipient)[1] or recipient
        return "".join(recipient.split()).lower()
    if PHONE.match(recipient.strip()):
        digits = "".join(c for c in recipient if c.isdigit())
        for cc in ("0086", "86"):
            if digits.startswith(cc) and len(digits) == len(cc) + 11 and digits[len(cc)] == "1":
                return digits[len(cc) :]
        return digits
    return "".join(recipient.split()).lower()


class NotifiersConfig(_Strict):
    """`notifiers:` of the gateway config."""

    enabled: bool = True
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    alarm_severities: list[Priority] = Field(
        default_factory=lambda: [Priority.CRITICAL, Priority.HIGH]
    )
    """Priorities that are alarms in the GSP sense (out of range, critical value, power)."""
    min_alarm_recipients: int = Field(3, ge=3)
    """China GSP: alarms reach at least 3 designated persons; can be raised, not lowered."""
    people: dict[str, list[str]] = Field(default_factory=dict)
    """Optional: who is who. A person's addresses (e-mail, mobile) count as one recipient."""

    @model_validator(mode="after")
    def _check_routes(self) -> NotifiersConfig:
        errors: list[InitErrorDetails] = []

        def err(loc: tuple[str | int, ...], msg: str, value: object) -> None:
            errors.append(
                InitErrorDetails(type=PydanticCustomError("notifiers", msg), loc=loc, input=value)
            )

        for rname, route in self.routes.items():
            base: tuple[str | int, ...] = ("routes", rname)
            for i, ch in enumerate(route.channels):
                if ch not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    err((*base, "channels", i), f"unknown channel {ch!r} (known: {known})", ch)
            if isinstance(route.recipients, dict):
                for ch, people in route.recipients.items():
                    cfg = self.channels.get(ch)
                    if ch not in route.channels:
                        err(
                            (*base, "recipients", ch),
                            f"{ch!r} is not one of this route's channels",
                            people,
                        )
                    elif cfg is not None and cfg.kind in STATE_KINDS:
                        err(
                            (*base, "recipients", ch),
                            f"channel {ch!r} is {cfg.kind}: it has no recipients",
                            people,
                        )
                    elif cfg is not None and cfg.kind not in ("email", "webhook"):
                        for j, p in enumerate(people):
                            try:
                                _phone(p)
                            except ValueError as e:
                                err((*base, "recipients", ch, j), str(e), p)
                    elif cfg is not None and cfg.kind == "email":
                        for j, p in enumerate(people):
                            try:
                                _address(p)
                            except ValueError as e:
                                err((*base, "recipients", ch, j), str(e), p)
            else:
                for j, p in enumerate(route.recipients):
                    try:
                        _address(p)
                    except ValueError as e:
                        err((*base, "recipients", j), str(e), p)
                if route.recipients and not any(
                    getattr(self.channels.get(c), "kind", None) == "email" for c in route.channels
                ):
                    err(
                        (*base, "recipients"),
                        "a list of recipients is for email channels, and "
                        "this route has none (use a mapping per channel)",
                        route.recipients,
                    )
            for ch in route.channels:
                cfg = self.channels.get(ch)
                if isinstance(cfg, EmailChannel) and not self.recipients_of(rname, ch):
                    err(
                        (*base, "recipients"),
                        f"email channel {ch!r} has no recipients on this "
                        f"route (set channels.{ch}.recipients or routes.{rname}.recipients)",
                        route.recipients,
                    )
            if self.is_coldchain_alarm_route(route):
                reached = self.people_reached(rname)
                if len(reached) < self.min_alarm_recipients:
                    err(
                        (*base, "recipients"),
                        f"route {rname!r} can carry cold-chain alarms (severity "
                        f"{'/'.join(map(str, self.alarm_severities))}, power failure, device "
                        f"offline) but reaches {len(reached)} distinct person(s) across its "
                        f"channels; China GSP requires at least {self.min_alarm_recipients} "
                        "designated persons (add e-mail recipients, SMS phone_numbers, "
                        "DingTalk at_mobiles or WeCom mentioned_mobiles, or narrow the route "
                        "with `lines:`/`severities:`)",
                        sorted(reached),
                    )
        if errors:
            raise ValidationError.from_exception_data("NotifiersConfig", errors)
        return self

    def is_coldchain_alarm_route(self, route: RouteConfig) -> bool:
        """Tier 0, the alarm events, a scope a cold-chain site can match, and an alarm severity
        (or, by name, the power-failure / device-offline rules, alarms at any severity)."""
        severities = route.severities or list(Priority)
        return (
            route.tier == 0
            and (
                any(s in self.alarm_severities for s in severities)
                or route.names_always_alarm_rules()
            )
            and any(e in ALARM_EVENTS for e in route.events)
            and route.may_carry_coldchain()
        )

    def recipients_of(self, route_name: str, channel: str) -> list[str]:
        """Effective recipients of `channel` on a route: the route's own, else the channel's
        (e-mail addresses, SMS numbers, webhook recipients, mentioned mobiles)."""
        route = self.routes[route_name]
        cfg = self.channels.get(channel)
        if cfg is None or isinstance(cfg, MqttChannel | ModbusOutputChannel):
            return []
        if isinstance(route.recipients, dict):
            if channel in route.recipients:
                return route.recipients[channel]
        elif route.recipients and isinstance(cfg, EmailChannel):
            return route.recipients
        return list(cfg.recipients)

    def people_reached(self, route_name: str) -> set[str]:
        """The distinct people a route reaches across its channels (see `people`)."""
        who = {_norm(a): name for name, addresses in self.people.items() for a in addresses}
        route = self.routes[route_name]
        return {
            who.get(_norm(p), _norm(p))
            for ch in route.channels
            for p in self.recipients_of(route_name, ch)
        }

    def env_problems(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Secrets the channels name but the environment lacks (`check-config` can report them)."""
        env = os.environ if env is None else env
        out = []
        for name, ch in self.channels.items():
            for key in SECRET_KEYS:
                var = getattr(ch, key, None)
                if var and not env.get(var):
                    out.append(
                        f"notifiers.channels.{name}.{key}: environment variable {var} is unset"
                    )
        return out
