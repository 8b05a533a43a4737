"""Notifier config validation (the GSP ≥ 3 recipients rule across channels, errors at the
route's key), routing (severity, site/line, rule, events, tiers, a failing channel's own alarm)
and message rendering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alert_rules import AlertStore, EventKind, ManualClock, RulesConfig, RulesEngine
from alert_rules.model import Alert, AlertEvent, AlertState, Priority
from gateway.config import ConfigError, parse_config
from gateway.core.reading import Reading
from gateway.notifiers.config import NotifiersConfig
from gateway.notifiers.dispatcher import Notifier, NotifierSetupError
from gateway.notifiers.message import iso, payload, subject, text_body
from gateway.notifiers.mqtt import state_topic
from gateway.notifiers.router import Router
from gateway.notifiers.webhook import sign

S = 1_000_000_000
MIN = 60 * S
T0 = 1_763_798_400 * S  # 2025-11-22T08:00:00Z

THREE = ["qa@wh1.example", "pharmacist@wh1.example", "manager@wh1.example"]


def channels(**extra: Any) -> dict[str, Any]:
    return {
        "mail": {"kind": "email", "host": "smtp.example", "from": "vigil@wh1.example"},
        "sms": {"kind": "webhook", "url": "https://sms.example/send", "secret_env": "SMS_KEY"},
        "state": {"kind": "mqtt"},
        **extra,
    }


def cfg(routes: dict[str, Any], **extra: Any) -> NotifiersConfig:
    return NotifiersConfig.model_validate({"channels": channels(), "routes": routes, **extra})


def errors(routes: dict[str, Any], **extra: Any) -> list[Any]:
    with pytest.raises(ValidationError) as e:
        cfg(routes, **extra)
    return e.value.errors()


def alert(
    severity: Priority = Priority.CRITICAL,
    rule: str = "vaccine_2_8.freeze_alarm",
    tags: dict[str, str] | None = None,
    **kw: Any,
) -> Alert:
    tags = {"site": "wh1", "asset": "fridge-3", "device": "lg-1"} if tags is None else tags
    source = "/".join(tags.values())
    base: dict[str, Any] = dict(
        id=17,
        rule=rule,
        source=source,
        severity=severity,
        kind="duration",
        state=AlertState.UNACKNOWLEDGED,
        active=True,
        started_at=T0,
        raised_at=T0 + 60 * MIN,
        activated_at=T0 + 60 * MIN,
        detected_at=T0 + 61 * MIN,
        message="temp_c ≤ -0.5 °C for 1h since 2025-11-22T08:00:00Z (value -1.2 °C)",
        value=-1.2,
        peak=-1.4,
        tags=tags,
    )
    base.update(kw)
    return Alert(**base)


def event(
    a: Alert | None = None, kind: EventKind = EventKind.RAISED, annunciate: bool = True, **kw: Any
) -> AlertEvent:
    a = a or alert()
    return AlertEvent(
        kind, a, None, a.state, a.raised_at, a.detected_at, annunciate=annunciate, **kw
    )


# -- validation ------------------------------------------------------------------------------


def test_coldchain_alarm_route_needs_three_recipients_error_names_the_route() -> None:
    errs = errors({"gsp_alarms": {"channels": ["mail"], "recipients": THREE[:2]}})
    [e] = errs
    assert e["loc"] == ("routes", "gsp_alarms", "recipients")
    assert "gsp_alarms" in e["msg"] and "at least 3" in e["msg"] and "reaches 2" in e["msg"]


def test_three_distinct_recipients_pass_and_duplicates_count_once() -> None:
    cfg({"gsp": {"channels": ["mail"], "recipients": THREE}})
    dup = ["QA@wh1.example", "Quality <qa@wh1.example>", "pharmacist@wh1.example"]
    [e] = errors({"gsp": {"channels": ["mail"], "recipients": dup}})
    assert "reaches 2" in e["msg"]


def test_recipients_count_across_channels_including_sms_webhook() -> None:
    c = NotifiersConfig.model_validate(
        {
            "channels": channels(
                sms={
                    "kind": "webhook",
                    "url": "https://sms.example/send",
                    "secret_env": "SMS_KEY",
                    "recipients": ["+86 138 0000 0001", "+8613800000002"],
                }
            ),
            "routes": {"gsp": {"channels": ["mail", "sms", "state"], "recipients": THREE[:1]}},
        }
    )
    assert c.recipients_of("gsp", "sms") == ["+86 138 0000 0001", "+8613800000002"]
    # per-channel mapping on the route replaces the channel's own list
    [e] = errors(
        {"gsp": {"channels": ["mail", "sms"], "recipients": {"mail": THREE[:1], "sms": ["+861"]}}}
    )
    assert e["loc"] == ("routes", "gsp", "recipients") and "reaches 2" in e["msg"]


def test_mqtt_only_route_for_alarms_is_refused() -> None:
    [e] = errors({"board": {"channels": ["state"]}})
    assert e["loc"] == ("routes", "board", "recipients") and "reaches 0" in e["msg"]


@pytest.mark.parametrize(
    "route",
    [
        {"channels": ["mail"], "lines": ["L*"]},  # production only
        {"channels": ["mail"], "severities": ["medium", "low"]},  # not alarm priorities
        {"channels": ["mail"], "tier": 1},  # escalation tier: adds people to tier 0
        {"channels": ["mail"], "events": ["closed", "acked"]},  # records, not the alarm
        {"channels": ["state"], "lines": ["L1"]},
    ],
)
def test_routes_that_cannot_carry_coldchain_alarms_need_fewer(route: dict[str, Any]) -> None:
    route.setdefault("recipients", ["ops@plant.example"] if "mail" in route["channels"] else [])
    if not route["recipients"]:
        del route["recipients"]
    cfg({"r": route})


def test_site_scoped_and_unscoped_routes_are_coldchain() -> None:
    c = cfg({"ok": {"channels": ["mail"], "recipients": THREE}})
    assert c.is_coldchain_alarm_route(c.routes["ok"])
    [e] = errors({"both": {"channels": ["mail"], "sites": ["wh1"], "lines": ["L1"],
                           "recipients": THREE[:1]}})  # fmt: skip
    assert e["loc"] == ("routes", "both", "recipients")


def test_min_recipients_can_be_raised_not_lowered() -> None:
    [e] = errors({}, min_alarm_recipients=2)
    assert e["loc"] == ("min_alarm_recipients",)
    [e] = errors({"gsp": {"channels": ["mail"], "recipients": THREE}}, min_alarm_recipients=4)
    assert "at least 4" in e["msg"]


def test_every_problem_is_reported_at_its_key() -> None:
    errs = errors(
        {
            "a": {"channels": ["mail", "pager"], "recipients": THREE},
            "b": {"channels": ["mail"], "recipients": {"sms": ["+1"]}, "lines": ["L1"]},
            "c": {"channels": ["state"], "recipients": ["x@y.example"], "lines": ["L1"]},
            "d": {"channels": ["mail"], "lines": ["L1"]},
        }
    )
    locs = {e["loc"]: e["msg"] for e in errs}
    assert (
        "unknown channel 'pager' (known: mail, sms, state)" in locs[("routes", "a", "channels", 1)]
    )
    assert "not one of this route's channels" in locs[("routes", "b", "recipients", "sms")]
    assert "for email channels" in locs[("routes", "c", "recipients")]
    assert "has no recipients" in locs[("routes", "d", "recipients")]


@pytest.mark.parametrize(
    ("channel", "loc"),
    [
        ({"kind": "webhook", "url": "ftp://x", "secret_env": "K"}, ("url",)),
        ({"kind": "webhook", "url": "https://x", "secret_env": "not a var"}, ("secret_env",)),
        ({"kind": "webhook", "url": "https://x"}, ("secret_env",)),
        ({"kind": "email", "host": "h", "from": "nobody"}, ("from",)),
        ({"kind": "email", "host": "h", "from": "a@b.c", "recipients": ["x"]}, ("recipients",)),
        ({"kind": "email", "host": "h", "from": "a@b.c", "username": "u"}, ()),
        ({"kind": "mqtt", "topic_prefix": "vigil/+/alerts"}, ("topic_prefix",)),
        ({"kind": "mqtt", "retry_min_s": "2s", "retry_max_s": "1s"}, ()),
        ({"kind": "mqtt", "colour": "red"}, ("colour",)),
        ({"kind": "pager"}, ()),
    ],
)
def test_channel_errors_name_the_key(channel: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as e:
        NotifiersConfig.model_validate({"channels": {"x": channel}})
    # pydantic puts the discriminator (the channel kind) in the path: leave it out
    locs = [tuple(p for p in err["loc"] if p != channel["kind"]) for err in e.value.errors()]
    assert ("channels", "x", *loc) in locs, locs


def test_unknown_route_key_is_refused() -> None:
    [e] = errors({"r": {"channels": ["state"], "lines": ["L1"], "severity": ["high"]}})
    assert e["loc"] == ("routes", "r", "severity") and e["type"] == "extra_forbidden"


def test_durations_and_defaults() -> None:
    c = NotifiersConfig.model_validate(
        {
            "channels": {
                "m": {"kind": "mqtt"},
                "w": {"kind": "webhook", "url": "http://h/x", "secret_env": "K",
                      "timeout_s": "5s", "retry_max_s": "2m", "give_up_after_s": None},
                "e": {"kind": "email", "host": "h", "tls": "ssl", "from": "a@b.c"},
            }
        }
    )  # fmt: skip
    m, w, e = c.channels["m"], c.channels["w"], c.channels["e"]
    assert m.kind == "mqtt" and m.topic_prefix == "vigil/alerts" and m.qos == 1
    assert m.give_up_after_s is None  # retained state must converge
    assert w.kind == "webhook" and w.timeout_s == 5 and w.retry_max_s == 120
    assert w.give_up_after_s is None
    assert e.kind == "email" and e.smtp_port == 465


def test_missing_secrets_stop_the_notifier_with_the_key() -> None:
    c = cfg({"gsp": {"channels": ["mail", "sms"], "recipients": THREE}})
    assert c.env_problems({}) == [
        "notifiers.channels.sms.secret_env: environment variable SMS_KEY is unset"
    ]
    with pytest.raises(NotifierSetupError, match="an mqtt channel needs"):
        Notifier(c, None, None, env={"SMS_KEY": "k"})  # type: ignore[arg-type]
    with pytest.raises(NotifierSetupError, match="SMS_KEY"):
        Notifier(c, None, None, env={})  # type: ignore[arg-type]


# -- routing ---------------------------------------------------------------------------------


ROUTES = {
    "coldchain": {"channels": ["mail", "state"], "sites": ["wh*"], "recipients": THREE},
    "freezers_only": {"channels": ["sms"], "rules": ["*.freeze*"], "severities": ["critical"],
                      "sites": ["wh1"], "recipients": {"sms": ["+1", "+2", "+3"]}},
    "production": {"channels": ["mail", "state"], "lines": ["L1"], "recipients": ["pe@x.example"]},
    "escalate_1": {"channels": ["mail"], "tier": 1, "recipients": ["boss@x.example"]},
    "audit": {"channels": ["mail"], "events": ["acked", "closed", "shelved"], "lines": ["L*"],
              "recipients": ["qa@x.example"]},
}  # fmt: skip


@pytest.fixture
def router() -> Router:
    return Router(cfg(ROUTES))


def test_routes_match_severity_site_and_rule(router: Router) -> None:
    plan = router.plan(event())
    assert plan == {"mail": tuple(THREE), "state": (), "sms": ("+1", "+2", "+3")}
    plan = router.plan(event(alert(Priority.HIGH, "vaccine_2_8.high")))
    assert plan == {"mail": tuple(THREE), "state": ()}
    plan = router.plan(event(alert(tags={"site": "road", "asset": "truck-7", "device": "t7"})))
    assert plan == {}


def test_production_alert_goes_to_production_routes(router: Router) -> None:
    tags = {"line": "L1", "equipment": "room-b2", "device": "pc-1"}
    plan = router.plan(event(alert(Priority.HIGH, "cleanroom_grade_b.dp_low", tags=tags)))
    assert plan == {"mail": ("pe@x.example",), "state": ()}


def test_unannunciated_events_reach_state_channels_only(router: Router) -> None:
    hidden = alert(state=AlertState.OUT_OF_SERVICE)
    assert router.plan(event(hidden, annunciate=False)) == {"state": ()}


def test_actions_go_where_listed(router: Router) -> None:
    tags = {"line": "L1", "equipment": "room-b2", "device": "pc-1"}
    a = alert(Priority.HIGH, "cleanroom_grade_b.dp_low", tags=tags, state=AlertState.SHELVED)
    plan = router.plan(event(a, EventKind.SHELVED, annunciate=False, by="olga", reason="CIP"))
    assert plan == {"mail": ("qa@x.example",), "state": ()}
    a = alert(state=AlertState.ACKNOWLEDGED)  # cold chain: no route lists 'acked'
    assert router.plan(event(a, EventKind.ACKED, by="olga")) == {"state": ()}


def test_escalation_goes_to_the_tier_reached_then_follow_ups(router: Router) -> None:
    a = alert(Priority.HIGH, "vaccine_2_8.high", tier=1)
    assert router.plan(event(a, EventKind.ESCALATED)) == {"mail": ("boss@x.example",), "state": ()}
    # tier 2 has no route: the highest lower tier hears it again
    a = alert(Priority.HIGH, "vaccine_2_8.high", tier=2)
    assert router.plan(event(a, EventKind.ESCALATED)) == {"mail": ("boss@x.example",), "state": ()}
    # once escalated, tier 1 also hears how it ends; tier-0 alerts never reach tier 1
    a = alert(Priority.HIGH, "vaccine_2_8.high", tier=1, state=AlertState.RTN_UNACKNOWLEDGED)
    assert router.plan(event(a, EventKind.CLEARED))["mail"] == (*THREE, "boss@x.example")
    a = alert(Priority.HIGH, "vaccine_2_8.high", state=AlertState.RTN_UNACKNOWLEDGED)
    assert router.plan(event(a, EventKind.CLEARED))["mail"] == tuple(THREE)


def test_escalation_with_only_tier_zero_routes_reminds_tier_zero() -> None:
    r = Router(cfg({"gsp": {"channels": ["mail"], "recipients": THREE}}))
    a = alert(tier=1)
    assert r.plan(event(a, EventKind.ESCALATED)) == {"mail": tuple(THREE)}


# -- messages --------------------------------------------------------------------------------


def test_subject_and_payload() -> None:
    ev = event()
    assert subject(ev) == (
        "[CRITICAL] vaccine_2_8.freeze_alarm fridge-3/lg-1 at wh1: temp_c ≤ -0.5 °C for 1h "
        "since 2025-11-22T08:00:00Z (value -1.2 °C)"
    )
    doc = payload(ev, "gw1", ("a@b.c",))
    assert doc["raised_at"] == "2025-11-22T09:00:00.000Z" == iso(T0 + 60 * MIN)
    assert doc["site"] == "wh1" and doc["asset"] == "fridge-3" and doc["device"] == "lg-1"
    assert doc["value"] == -1.2 and doc["retrospective"] is False and doc["alert_id"] == 17
    assert doc["state"] == "unacknowledged" and doc["event"] == "raised"
    assert doc["recipients"] == ["a@b.c"] and doc["gateway"] == "gw1"
    json.dumps(doc, allow_nan=False)
    retro = alert(retrospective=True, value=float("nan"), tier=2)
    assert subject(event(retro, EventKind.ESCALATED)).startswith(
        "[CRITICAL ESCALATED tier 2, retrospective] vaccine_2_8.freeze_alarm"
    )
    assert payload(event(retro), "gw1")["value"] is None
    body = text_body(event(retro), "gw1")
    assert "Raised at (UTC):" in body and "Retrospective:" in body and "uploaded late" in body
    tags = {"line": "L1", "equipment": "room-b2", "device": "pc-1"}
    ev = event(alert(Priority.HIGH, "cleanroom.dp_low", tags=tags), EventKind.ACKED, by="olga")
    assert subject(ev).startswith("[HIGH ACKED] cleanroom.dp_low room-b2/pc-1 at L1: ")
    assert subject(ev).endswith("(by olga)")


def test_subject_from_a_real_engine_alert(tmp_path: Path) -> None:
    config = RulesConfig.model_validate({"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]})
    engine = RulesEngine(config, AlertStore(tmp_path / "a.db"), ManualClock(T0))
    events = []
    for i, t in enumerate([5.0] * 5 + [-1.2] * 62):
        ts = T0 + i * MIN
        engine.clock.set(ts + S)  # type: ignore[attr-defined]
        tags = {"site": "wh1", "asset": "fridge-3", "device": "lg-1"}
        events += engine.process([Reading("coldchain", tags, {"temp_c": t}, ts, ts + S)])
    [freeze] = [e for e in events if e.alert.rule == "vaccine_2_8.freeze_alarm"]
    assert subject(freeze).startswith("[CRITICAL] vaccine_2_8.freeze_alarm fridge-3/lg-1 at wh1: ")
    assert "-1.2 °C" in subject(freeze)
    assert payload(freeze, "gw")["raised_at"] == iso(T0 + 65 * MIN)


def test_state_topic_is_per_source_and_rule_and_safe() -> None:
    assert (
        state_topic("vigil/alerts", alert())
        == "vigil/alerts/wh1/fridge-3/lg-1/vaccine_2_8.freeze_alarm"
    )
    odd = alert(tags={"device": "$SYS+#"})
    assert state_topic("p", odd) == "p/_SYS__/vaccine_2_8.freeze_alarm"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    assert sign(b"k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


# -- the new channel kinds, people across channels ---------------------------------------------

SMS = {"kind": "aliyun_sms", "access_key_id_env": "A", "access_key_secret_env": "B",
       "sign_name": "某医药", "template_code": "SMS_1"}  # fmt: skip
DING = {"kind": "dingtalk", "access_token_env": "T", "secret_env": "S"}
WECOM = {"kind": "wecom", "key_env": "K"}
SIREN = {"kind": "modbus_output", "dedicated": True, "host": "10.0.0.9", "coil": 0}


def people_cfg(channels_: dict[str, Any], route: dict[str, Any], **extra: Any) -> NotifiersConfig:
    return NotifiersConfig.model_validate(
        {"channels": channels_, "routes": {"gsp": route}, **extra}
    )


def test_people_are_counted_across_sms_dingtalk_wecom_and_mail() -> None:
    c = people_cfg(
        {"sms": {**SMS, "phone_numbers": ["+86 138 0000 0001"]},
         "ding": {**DING, "at_mobiles": ["13800000002"]},
         "wx": {**WECOM, "mentioned_mobiles": ["008613800000003"]},
         "siren": SIREN},
        {"channels": ["sms", "ding", "wx", "siren"]},
    )  # fmt: skip
    assert c.people_reached("gsp") == {"13800000001", "13800000002", "13800000003"}
    # the same mobile by SMS and as a DingTalk mention is one person
    with pytest.raises(ValidationError, match="reaches 2 distinct person"):
        people_cfg(
            {"sms": {**SMS, "phone_numbers": ["+8613800000001", "13800000002"]},
             "ding": {**DING, "at_mobiles": ["13800000001"]}},
            {"channels": ["sms", "ding"]},
        )  # fmt: skip


def test_a_person_listed_by_mail_and_mobile_counts_once() -> None:
    channels_ = {
        "sms": {**SMS, "phone_numbers": ["13800000001", "13800000002"]},
        "mail": {"kind": "email", "host": "h", "from": "v@x.example",
                 "recipients": ["zhang@x.example"]},
    }  # fmt: skip
    route = {"channels": ["sms", "mail"]}
    assert len(people_cfg(channels_, route).people_reached("gsp")) == 3  # addresses
    with pytest.raises(ValidationError, match="reaches 2 distinct person"):
        people_cfg(channels_, route, people={"张伟": ["zhang@x.example", "+86 13800000001"]})


def test_power_failure_and_device_offline_routes_are_alarm_routes_at_any_severity() -> None:
    one = {"mail": {"kind": "email", "host": "h", "from": "v@x.example",
                    "recipients": ["a@x.example"]}}  # fmt: skip
    for rules in (["*.power_failure"], ["liveness.device_offline"], ["device_health.*"]):
        with pytest.raises(ValidationError, match="reaches 1"):
            people_cfg(one, {"channels": ["mail"], "rules": rules, "severities": ["low"]})
    people_cfg(one, {"channels": ["mail"], "rules": ["*.door_open"], "severities": ["low"]})


def test_new_channel_errors_name_the_key() -> None:
    def locs(ch: dict[str, Any]) -> list[tuple[Any, ...]]:
        with pytest.raises(ValidationError) as e:
            NotifiersConfig.model_validate({"channels": {"x": ch}})
        return [tuple(p for p in err["loc"] if p != ch["kind"]) for err in e.value.errors()]

    assert ("channels", "x", "phone_numbers", 0) in locs({**SMS, "phone_numbers": ["call me"]})
    assert ("channels", "x", "template_code") in locs({**SMS, "template_code": "1234"})
    assert ("channels", "x", "template_params", "level") in locs(
        {**SMS, "template_params": {"level": "colour"}}
    )
    assert ("channels", "x", "secret_env") in locs(
        {k: v for k, v in DING.items() if k != "secret_env"}
    )
    assert ("channels", "x", "dedicated") in locs({**SIREN, "dedicated": False})
    assert ("channels", "x") in locs({**SIREN, "holding_register": 4})  # coil and register
    assert ("channels", "x", "sms_sdk_app_id") in locs(
        {"kind": "tencent_sms", "secret_id_env": "I", "secret_key_env": "K",
         "sms_sdk_app_id": "app", "sign_name": "s", "template_id": "1"}
    )  # fmt: skip


def test_siren_and_secrets_of_new_channels() -> None:
    with pytest.raises(ValidationError, match="modbus_output: it has no recipients"):
        people_cfg(
            {"sms": {**SMS, "phone_numbers": ["13800000001", "13800000002", "13800000003"]},
             "siren": SIREN},
            {"channels": ["sms", "siren"], "recipients": {"siren": ["x"]}},
        )  # fmt: skip
    c = NotifiersConfig.model_validate({"channels": {"sms": SMS, "ding": DING, "wx": WECOM}})
    assert c.env_problems({"A": "a", "T": "t"}) == [
        "notifiers.channels.sms.access_key_secret_env: environment variable B is unset",
        "notifiers.channels.ding.secret_env: environment variable S is unset",
        "notifiers.channels.wx.key_env: environment variable K is unset",
    ]


def test_a_failing_channels_own_alarm_never_goes_through_it() -> None:
    c = cfg({"gsp": {"channels": ["mail", "sms", "state"], "recipients": THREE},
             "ops": {"channels": ["mail", "sms"], "rules": ["gateway_health.*"],
                     "recipients": {"mail": ["ops@x.example"]}}})  # fmt: skip
    r = Router(c)
    a = alert(Priority.HIGH, "gateway_health.notifier_failing", tags={"device": "notifier:sms"})
    assert r.plan(event(a)) == {"mail": (*THREE, "ops@x.example"), "state": ()}
    a = alert(Priority.HIGH, "gateway_health.notifier_failing", tags={"device": "notifier:mail"})
    assert r.plan(event(a)) == {"sms": (), "state": ()}
    assert not r.carries(
        "state", alert(tags={"device": "notifier:state"}, rule="gateway_health.notifier_failing")
    )


def test_a_siren_on_a_polled_plc_is_refused_naming_the_key() -> None:
    def raw(host: str, unit: int) -> dict[str, Any]:
        return {
            "collectors": [
                {"kind": "modbus", "name": "line1", "defaults": {"line": "L1"},
                 "devices": [{"name": "AC-01", "host": "LocalHost", "port": 5020, "unit": 1,
                              "registers": [{"name": "t", "fc": 3, "address": 0}]}]}
            ],
            "notifiers": {"channels": {"siren": {**SIREN, "host": host, "port": 5020,
                                                 "unit": unit}}},
        }  # fmt: skip

    with pytest.raises(ConfigError) as e:
        parse_config(raw("127.0.0.1", 1), "vigil.yaml", env={})
    [problem] = e.value.problems
    assert problem.startswith(
        "vigil.yaml: notifiers.channels.siren.host: 127.0.0.1:5020/1 is polled as process PLC "
        "'AC-01' (collectors[0], 'line1'); the gateway never writes to a production PLC"
    )
    # another unit behind the same Modbus TCP gateway is another device: a relay module
    cfg_ = parse_config(raw("127.0.0.1", 7), "vigil.yaml", env={})
    assert cfg_.notifiers.channels["siren"].kind == "modbus_output"
