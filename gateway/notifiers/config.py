"""The `notifiers:` section: named channels (mqtt, webhook, email) and named routes.

Routes pick alerts by severity, site/line and rule and name the channels (and, for email and
SMS-style webhooks, the people) that hear about them. Validation refuses a route that can carry
cold-chain alarms to fewer than 3 distinct recipients (China GSP: alarms go by SMS to at least
three designated persons), with the error located at that route's key.

This module imports nothing from `gateway.config`, so `gateway.config` can embed it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from fnmatch import translate
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
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

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEALTH_RULE_PREFIX = "gateway_health."
"""Rules of the built-in gateway_health profile (journal fill): never cold-chain alarms."""

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
    """Stop retrying a notification this long after it was queued (None: never)."""

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
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return v


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


ChannelConfig = Annotated[MqttChannel | WebhookChannel | EmailChannel, Field(discriminator="kind")]


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

    def wants(self, event: AlertEvent) -> bool:
        """Whether people on this route hear about this event (tier handled by the router)."""
        if event.kind not in self.events:
            return False
        return event.annunciate or event.kind in ACTION_EVENTS


def _norm(recipient: str) -> str:
    if "@" in recipient:
        recipient = parseaddr(recipient)[1] or recipient
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
                    elif cfg is not None and cfg.kind == "mqtt":
                        err(
                            (*base, "recipients", ch),
                            f"channel {ch!r} is mqtt: it has no recipients",
                            people,
                        )
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
                reached = {_norm(p) for ch in route.channels for p in self.recipients_of(rname, ch)}
                if len(reached) < self.min_alarm_recipients:
                    err(
                        (*base, "recipients"),
                        f"route {rname!r} can carry cold-chain alarms (severity "
                        f"{'/'.join(map(str, self.alarm_severities))}) but reaches "
                        f"{len(reached)} distinct recipient(s) across its channels; China GSP "
                        f"requires at least {self.min_alarm_recipients} designated persons "
                        "(add email recipients, or a webhook/SMS channel declaring "
                        "`recipients:`, or narrow it with `lines:`/`severities:`)",
                        sorted(reached),
                    )
        if errors:
            raise ValidationError.from_exception_data("NotifiersConfig", errors)
        return self

    def is_coldchain_alarm_route(self, route: RouteConfig) -> bool:
        """Tier 0, an alarm severity, the alarm events, and a scope a cold-chain site can match."""
        severities = route.severities or list(Priority)
        return (
            route.tier == 0
            and any(s in self.alarm_severities for s in severities)
            and any(e in ALARM_EVENTS for e in route.events)
            and route.may_carry_coldchain()
        )

    def recipients_of(self, route_name: str, channel: str) -> list[str]:
        """Effective recipients of `channel` on a route: the route's own, else the channel's."""
        route = self.routes[route_name]
        cfg = self.channels.get(channel)
        if cfg is None or isinstance(cfg, MqttChannel):
            return []
        if isinstance(route.recipients, dict):
            if channel in route.recipients:
                return route.recipients[channel]
        elif route.recipients and isinstance(cfg, EmailChannel):
            return route.recipients
        return cfg.recipients

    def env_problems(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Secrets the channels name but the environment lacks (`check-config` can report them)."""
        env = os.environ if env is None else env
        out = []
        for name, ch in self.channels.items():
            var = getattr(ch, "secret_env", None) or getattr(ch, "password_env", None)
            key = "secret_env" if isinstance(ch, WebhookChannel) else "password_env"
            if var and not env.get(var):
                out.append(f"notifiers.channels.{name}.{key}: environment variable {var} is unset")
        return out
