"""The MQTT payload parser: the logger protocol, mappings, and every way a message can be bad.

The property tests reach the edges (issue 14): JSON nested thousands of levels deep, floats at
±1e308 and below the normal range, integers past int64, dates in years 1..9999 at ±14:00 or
±23:59, garbage and huge strings, and every Unicode category in topics and tag values. Whatever
arrives, `parse` / `parse_message` never raise, every message yields readings or dead letters, and
every reading carries an event time inside the window, finite fields, and tags line protocol
can carry.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collectors.mqtt import parse as parse_mod
from collectors.mqtt.config import (
    MqttCollectorConfig,
    PayloadMapping,
    Subscription,
    TimestampMapping,
)
from collectors.mqtt.parse import MessageParser, parse_message
from collectors.mqtt.topics import TopicRouter
from gateway.core.eventtime import DEFAULT_MIN_EVENT_NS, EventWindow
from gateway.core.lineprotocol import encode, parse_line

NOW = 1_795_000_000_000_000_000  # 2026-11-18
T0_MS = 1_700_000_000_000  # 2023-11-14, epoch milliseconds
SUB = Subscription()
TAGS = {"site": "s", "asset": "a", "device": "d"}
WINDOW = EventWindow(DEFAULT_MIN_EVENT_NS, 300)


def parse(payload: bytes, sub: Subscription = SUB, max_bytes: int = 1 << 20):
    return MessageParser(max_bytes, 300).parse(sub, "vigil/s/a/d/telemetry", TAGS, payload, NOW)


def test_single_reading_iso():
    readings, dead = parse(b'{"ts": "2026-11-01T08:00:00Z", "temp_c": 5.2, "rh_pct": 41.0}')
    assert dead == []
    [r] = readings
    assert r.ts_ns == int(datetime(2026, 11, 1, 8, tzinfo=UTC).timestamp()) * 10**9
    assert r.fields == {"temp_c": 5.2, "rh_pct": 41.0}
    assert r.tags == TAGS and r.measurement == "coldchain" and not r.ts_from_receive


def test_gps_fields_of_the_logger_protocol():
    readings, dead = parse(
        b'{"readings": [{"ts": 1700000000000, "temp_c": 5, "lat": 31.2304, "lon": 121.4737,'
        b' "speed_kmh": 62.5}, {"ts": 1700000060000, "temp_c": 5, "lat": 999, "lon": 121.5},'
        b' {"ts": 1700000120000, "temp_c": 5, "lon": -181}]}'
    )
    assert [r.fields for r in readings] == [
        {"temp_c": 5.0, "lat": 31.2304, "lon": 121.4737, "speed_kmh": 62.5}
    ]
    assert [d.reason for d in dead] == [
        "readings[1]: lat: 999 is outside -90..90",
        "readings[2]: lon: -181 is outside -180..180",
    ]


def test_epoch_ms_and_status_fields():
    readings, dead = parse(
        b'{"ts": 1700000000123, "temp_c": 4, "door_open": true, "power_ok": false,'
        b' "battery_pct": 80}'
    )
    assert dead == []
    assert readings[0].ts_ns == 1_700_000_000_123_000_000
    assert readings[0].fields == {
        "temp_c": 4.0,
        "door_open": True,
        "power_ok": False,
        "battery_pct": 80.0,
    }
    assert isinstance(readings[0].fields["temp_c"], float)


def test_missing_ts_uses_receive_time_flagged():
    [r], dead = parse(b'{"temp_c": 5.0}')
    assert r.ts_ns == NOW and r.ts_from_receive and dead == []


def test_batch_keeps_good_entries():
    body = orjson.dumps(
        {
            "readings": [
                {"ts": T0_MS + 1, "temp_c": 1.0},
                {"ts": T0_MS + 2, "temp_c": "x"},
                {"ts": T0_MS + 3, "temp_c": 3.0},
                7,
            ]
        }
    )
    readings, dead = parse(body)
    assert [r.ts_ns for r in readings] == [(T0_MS + 1) * 10**6, (T0_MS + 3) * 10**6]
    assert [d.reason for d in dead] == [
        "readings[1]: temp_c: expected a number, got str 'x'",
        "readings[3]: entry must be an object, got int",
    ]
    assert json.loads(dead[0].payload) == {"ts": T0_MS + 2, "temp_c": "x"}


def test_nan_in_batch_refuses_only_that_entry():
    body = (
        b'{"readings": [{"ts": 1700000000001, "temp_c": NaN},'
        b' {"ts": 1700000000002, "temp_c": 2.0}]}'
    )
    readings, dead = parse(body)
    assert [r.ts_ns for r in readings] == [1_700_000_000_002_000_000]
    assert dead[0].reason == "readings[0]: temp_c: nan is not a finite number"
    assert b"NaN" in dead[0].payload


def test_oversized_and_future():
    _, dead = parse(b"{" + b" " * 100 + b"}", max_bytes=50)
    assert "exceeds max_payload_bytes=50" in dead[0].reason
    future_ms = NOW // 1_000_000 + 301_000
    _, dead = parse(orjson.dumps({"ts": future_ms, "temp_c": 1.0}))
    assert "301.0 s ahead of the gateway clock (max_future_skew_s=300)" in dead[0].reason
    ok, dead = parse(orjson.dumps({"ts": future_ms - 2000, "temp_c": 1.0}))
    assert ok and not dead


def test_huge_integer_is_refused_not_raised():
    readings, dead = parse(
        b'{"readings": [{"ts": 1700000000001, "temp_c": 1'
        + b"0" * 400
        + b'}, {"ts": 1700000000002, "temp_c": 1}]}'
    )
    assert [r.ts_ns for r in readings] == [1_700_000_000_002_000_000]
    assert "out of range" in dead[0].reason


@pytest.mark.parametrize(
    ("value", "ok"),
    [(2**63 - 1, True), (-(2**63), True), (2**63, False), (2**64, False), (-(2**63) - 1, False)],
)
def test_integer_fields_beyond_int64_are_dead_lettered(value: int, ok: bool):
    readings, dead = parse(json.dumps({"ts": T0_MS, "temp_c": value}).encode())
    if ok:
        assert readings[0].fields == {"temp_c": float(value)} and dead == []
    else:
        assert readings == [] and dead[0].reason.startswith("temp_c: ")
        assert "out of range (beyond int64)" in dead[0].reason


def test_naive_iso_is_refused():
    _, dead = parse(b'{"ts": "2026-11-22T08:00:00", "temp_c": 1.0}')
    assert "no time zone" in dead[0].reason


def test_mapping_for_other_layout():
    sub = Subscription(
        topic="acme/{device}/data",
        mapping=PayloadMapping(
            timestamp=TimestampMapping(key="time", format="epoch_s"),
            batch_key="samples",
            fields={"temp_c": "temperature", "door_open": "door"},
            bool_fields=["door_open"],
        ),
        tags={"site": "x"},
    )
    body = b'{"samples": [{"time": 1700000000, "temperature": 3.5, "door": false}]}'
    [r], dead = MessageParser(1 << 20, 300).parse(sub, "acme/d9/data", {"device": "d9"}, body, NOW)
    assert dead == []
    assert r.ts_ns == 1_700_000_000 * 10**9
    assert r.fields == {"temp_c": 3.5, "door_open": False}
    assert r.tags == {"site": "x", "device": "d9"}


def test_line_protocol_subscription():
    sub = Subscription(topic="lp/{device}", format="line_protocol", precision="ms")
    body = b"coldchain,site=s temp_c=4.5,n=3i 1700000000000\nbroken line\ncoldchain temp_c=1"
    readings, dead = MessageParser(1 << 20, 300).parse(sub, "lp/d1", {"device": "d1"}, body, NOW)
    assert [r.fields for r in readings] == [{"temp_c": 4.5, "n": 3.0}, {"temp_c": 1.0}]
    assert readings[0].tags == {"device": "d1", "site": "s"}
    assert readings[0].ts_ns == 1_700_000_000_000_000_000
    assert readings[1].ts_from_receive
    assert len(dead) == 1 and dead[0].reason.startswith("line 2:")


def test_line_protocol_edges_are_dead_lettered_per_line():
    sub = Subscription(topic="lp/{device}", format="line_protocol", precision="ns")
    lines = [
        "coldchain n=9223372036854775807i 1700000000000000000",  # int64 max: fine
        "coldchain n=9223372036854775808i 1700000000000000000",  # beyond int64
        "coldchain n=18446744073709551615u 1700000000000000000",  # uint64 max: fine
        "coldchain n=18446744073709551616u 1700000000000000000",  # beyond uint64
        "coldchain n=-1u 1700000000000000000",
        "coldchain,batch=a\tb temp_c=1 1700000000000000000",  # a tab in a tag value
        "coldchain temp_c=1 -1",  # before 1970
        "coldchain temp_c=1 900000000000000000",  # 1998: before min_event_time
        "coldchain temp_c=1e400 1700000000000000000",
        "vigil_gateway,gateway=x journal_fill=1.0",  # the gateway's own measurement
        "coldchain,site=caf\u00e9\u2028x temp_c=2 1700000000000000001",  # U+2028 is no line end
    ]
    readings, dead = MessageParser(1 << 20, 300).parse(
        sub, "lp/d1", {"device": "d1"}, "\n".join(lines).encode(), NOW
    )
    assert [r.fields["n"] for r in readings if "n" in r.fields] == [2.0**63, 2.0**64]
    assert [r.tags.get("site") for r in readings if "temp_c" in r.fields] == ["caf\u00e9\u2028x"]
    reasons = {int(d.reason.split(":")[0].removeprefix("line ")): d.reason for d in dead}
    assert sorted(reasons) == [2, 4, 5, 6, 7, 8, 9, 10]
    assert "outside the int64 range" in reasons[2]
    assert "outside the uint64 range" in reasons[4] and "outside the uint64 range" in reasons[5]
    assert "tag 'batch' contains a control character (U+0009)" in reasons[6]
    assert "before 2001-01-01T00:00:00.000Z (min_event_time)" in reasons[7]
    assert "(min_event_time)" in reasons[8]
    assert "not finite" in reasons[9]
    assert "reserved for the gateway" in reasons[10]


def test_topic_router():
    router = TopicRouter([Subscription(), Subscription(topic="acme/{device}/#")])
    assert router.match("vigil/s/a/d/telemetry")[1] == TAGS  # type: ignore[index]
    assert router.match("vigil/s//d/telemetry") is None
    assert router.match("vigil/s/a/d/other") is None
    assert router.match("acme/x/y/z")[1] == {"device": "x"}  # type: ignore[index]
    bad = router.match("vigil/s/a/d\x07/telemetry")
    assert bad is not None and bad.problem == (
        "topic segment tag 'device' contains a control character (U+0007), "
        "which line protocol cannot carry"
    )


# -- the event-time window ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("0001-01-01T00:00:00+14:00", "is before 2001-01-01T00:00:00.000Z (min_event_time)"),
        ("0001-01-01T00:00:00Z", "(min_event_time)"),
        ("1000-06-01T00:00:00Z", "(min_event_time)"),
        ("1970-01-01T00:00:00Z", "(min_event_time)"),
        ("2000-12-31T23:59:59.999999Z", "(min_event_time)"),
        ("9999-12-31T23:59:59.999999-23:59", "the end of the stored time range"),
        ("2262-04-12T00:00:00Z", "the end of the stored time range"),
        ("0000-01-01T00:00:00Z", "is not ISO 8601"),
        ("2026-11-18T08:00:00+24:00", "is not ISO 8601"),
        ("x" * 100_000, "is not ISO 8601 (100000 characters)"),
        (1e303, "the end of the stored time range"),
        (1.7976931348623157e308, "the end of the stored time range"),
        (5e-324, "(min_event_time)"),
        (2**64, "the end of the stored time range"),
        (10**400, "the end of the stored time range"),
        (10**4299, "timestamp ~1e4299 is ahead"),  # as many digits as Python reads (4300)
        (-(10**400), "is before 1970"),
        (-1, "is before 1970"),
        (0, "(min_event_time)"),
    ],
)
def test_timestamps_outside_the_window_are_dead_lettered(ts: Any, why: str):
    payload = json.dumps({"ts": ts, "temp_c": 5}).encode()
    readings, dead = parse(payload)
    assert readings == []
    [d] = dead
    assert why in d.reason and d.reason.startswith("timestamp ")
    assert len(d.reason) < 300  # a huge timestamp is cut in the reason, kept in the payload
    assert d.payload == payload


def test_window_edges_and_configured_lower_bound():
    first_ms = DEFAULT_MIN_EVENT_NS // 1_000_000
    [r], _ = parse(orjson.dumps({"ts": first_ms, "temp_c": 1.0}))
    assert r.ts_ns == DEFAULT_MIN_EVENT_NS
    assert parse(orjson.dumps({"ts": first_ms - 1, "temp_c": 1.0}))[0] == []
    cfg = MqttCollectorConfig.model_validate(
        {"kind": "mqtt", "min_event_time": "1990-01-01T00:00:00Z"}
    )
    parser = MessageParser(1 << 20, 300, cfg.min_event_time)
    body = b'{"ts": "1995-05-05T00:00:00Z", "temp_c": 1}'
    [r], dead = parser.parse(SUB, "t", TAGS, body, NOW)
    assert dead == [] and r.ts_ns == 799_632_000 * 10**9


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1960-01-01T00:00:00Z", "not be before 1970"),
        ("2001-01-01T00:00:00", "needs a time zone"),
        ("3000-01-01T00:00:00Z", "must be before 2262"),
    ],
)
def test_min_event_time_config_is_checked(value: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        MqttCollectorConfig.model_validate({"kind": "mqtt", "min_event_time": value})


# -- containment: one poison message or entry never raises -----------------------------------


def _deep(depth: int, kind: str = "list") -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [500, 1000, 5000, 100_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_json_whole_payload_is_dead_lettered(depth: int, kind: str):
    payload = _deep(depth, kind)
    readings, dead = parse(payload)
    assert readings == [] and len(dead) == 1
    reason = dead[0].reason
    if depth <= 1000:  # orjson reads up to 1024 levels
        assert reason in (
            "payload must be a JSON object, got list",
            "no known field (expected one of ['battery_pct', 'door_open', 'lat', 'lon', "
            "'power_ok', 'rh_pct', 'speed_kmh', 'temp_c'])",
        )
    else:
        assert reason.startswith(("JSON nested too deep", "malformed JSON")), reason
    assert dead[0].payload == payload


@pytest.mark.parametrize("depth", [500, 1000, 5000, 100_000])
def test_deep_json_batch_entry_is_dead_lettered_and_the_rest_lands(depth: int):
    good = b'{"ts": 1700000000000, "temp_c": 4.0}'
    payload = b'{"readings": [' + good + b", " + _deep(depth) + b", " + good + b"]}"
    readings, dead = parse(payload)
    if depth <= 1000:  # within orjson's nesting limit (1024): only the entry is refused
        assert [r.fields for r in readings] == [{"temp_c": 4.0}] * 2
        assert [d.reason for d in dead] == ["readings[1]: entry must be an object, got list"]
    else:  # deeper than any JSON parser here goes: the message is refused as a whole, readably
        assert readings == [] and len(dead) == 1
        assert dead[0].reason.startswith(("JSON nested too deep", "malformed JSON"))
        assert dead[0].payload == payload


def test_deep_entry_that_cannot_be_dumped_keeps_the_whole_payload(monkeypatch):
    def boom(*_: Any, **__: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded while encoding a JSON object")

    monkeypatch.setattr(parse_mod.json, "dumps", boom)
    payload = b'{"readings": [[1], {"ts": 1700000000000, "temp_c": 1}]}'
    readings, dead = parse(payload)
    assert len(readings) == 1
    assert dead[0].reason == "readings[0]: entry must be an object, got list"
    assert dead[0].payload == payload


def test_any_error_in_one_entry_dead_letters_only_that_entry(monkeypatch):
    real = parse_mod._fields

    def fields(entry, *args):  # type: ignore[no-untyped-def]
        if entry.get("temp_c") == 2.0:
            raise ZeroDivisionError("a bug")
        return real(entry, *args)

    monkeypatch.setattr(parse_mod, "_fields", fields)
    body = orjson.dumps({"readings": [{"ts": T0_MS + i, "temp_c": float(i)} for i in range(4)]})
    readings, dead = parse(body)
    assert [r.fields["temp_c"] for r in readings] == [0.0, 1.0, 3.0]
    assert [d.reason for d in dead] == ["readings[2]: internal error: ZeroDivisionError: a bug"]
    assert json.loads(dead[0].payload) == {"ts": T0_MS + 2, "temp_c": 2.0}


def test_any_error_in_a_message_dead_letters_that_message(monkeypatch):
    def broken(*_: Any, **__: Any) -> None:
        raise MemoryError("out of luck")

    parser = MessageParser(1 << 20, 300)
    monkeypatch.setattr(parser, "_parse_json", broken)
    readings, dead = parser.parse(SUB, "vigil/s/a/d/telemetry", TAGS, b"{}", NOW)
    assert readings == []
    assert [(d.source, d.payload, d.reason) for d in dead] == [
        ("vigil/s/a/d/telemetry", b"{}", "internal error: MemoryError: out of luck")
    ]
    router = TopicRouter([SUB])
    monkeypatch.setattr(router, "match", broken)
    _, dead = parse_message(router, parser, "vigil/s/a/d/telemetry", b"{}", NOW)
    assert dead[0].reason == "internal error: MemoryError: out of luck"


# -- properties: any payload becomes readings or dead letters, never an exception -------------

EXTREME_FLOATS = [1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308]
EXTREME_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, -(10**400)]
numbers = st.one_of(
    st.floats(),  # every float: nan, ±inf, subnormals
    st.sampled_from([*EXTREME_FLOATS, float("nan"), float("inf"), float("-inf")]),
    st.integers(),
    st.sampled_from(EXTREME_INTS),
    st.integers(0, 2 * NOW // 1_000_000),  # plausible epoch milliseconds, 1970 .. 2086
)
years = st.sampled_from([0, 1, 2, 999, 1000, 1969, 1970, 2000, 2001, 2026, 2262, 2263, 9999])
offsets = st.sampled_from(
    ["Z", "z", "+00:00", "+14:00", "-14:00", "+23:59", "-23:59", "+24:00", "", "+05:30", "-0000"]
)
iso_dates = st.builds(
    lambda y, mo, d, h, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:07:09{frac}{off}",
    years,
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.sampled_from(["", ".5", ".123456", ".1234567", ","]),
    offsets,
)
huge_strings = st.builds(
    lambda s, n: s * n, st.text(min_size=1, max_size=5), st.integers(1, 60_000)
)
timestamps = st.one_of(
    numbers, iso_dates, st.text(max_size=40), huge_strings, st.none(), st.booleans()
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), iso_dates)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
entries = st.one_of(
    st.fixed_dictionaries(
        {"ts": timestamps, "temp_c": json_values},
        optional={"rh_pct": numbers, "door_open": json_values, "battery_pct": numbers},
    ),
    json_values,
)
ALL_CATEGORIES = ["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs", "Co", "Cn"]
any_char = st.characters(categories=ALL_CATEGORIES)


def _dumps(doc: Any) -> bytes:
    """JSON as a device might send it: NaN/Infinity allowed, huge integers as digits."""
    return json.dumps(doc).encode("utf-8", "surrogatepass")


def check_invariants(readings, dead, received_ns: int = NOW) -> None:  # type: ignore[no-untyped-def]
    assert readings or dead
    for r in readings:
        assert WINDOW.contains(r.ts_ns, received_ns)
        for v in r.fields.values():
            assert isinstance(v, bool) or (isinstance(v, float) and math.isfinite(v))
        encode(r)  # line protocol can carry every reading
    for d in dead:
        assert d.reason and isinstance(d.payload, bytes)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload):
    readings, dead = parse(payload)
    check_invariants(readings, dead)


@settings(
    max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(json_values)
def test_arbitrary_json_never_raises(doc):
    readings, dead = parse(_dumps(doc))
    check_invariants(readings, dead)


@settings(
    max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.one_of(entries, st.lists(entries, max_size=8).map(lambda b: {"readings": b})))
@example({"ts": 1e303, "temp_c": 5})
@example({"ts": "0001-01-01T00:00:00+14:00", "temp_c": 5})
@example({"ts": "9999-12-31T23:59:59.999999-23:59", "temp_c": 5})
@example({"readings": [{"ts": 10**400, "temp_c": 1e308}, {"ts": T0_MS, "temp_c": 5e-324}]})
@example({"readings": [{"ts": 0.0, "temp_c": None}, {"ts": "\x1f" * 200_000, "temp_c": None}]})
def test_edge_entries_give_readings_in_the_window_or_dead_letters(doc):
    payload = _dumps(doc)
    readings, dead = parse(payload)
    check_invariants(readings, dead)
    if len(payload) > 1 << 20:  # huge strings: refused whole, before parsing
        assert readings == [] and "exceeds max_payload_bytes" in dead[0].reason
        return
    entries_in = doc["readings"] if isinstance(doc, dict) and "readings" in doc else [doc]
    if isinstance(doc, dict) and isinstance(entries_in, list) and entries_in:
        assert len(readings) + len(dead) == len(entries_in)  # each entry: one or the other


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.one_of(st.integers(1, 3000), st.sampled_from([500, 1000, 1024, 1025, 5000, 100_000])),
    kind=st.sampled_from(["list", "dict"]),
    in_batch=st.booleans(),
)
def test_recursive_json_at_any_depth_never_raises(depth: int, kind: str, in_batch: bool):
    deep = _deep(depth, kind)
    payload = (
        b'{"readings": [{"ts": 1700000000000, "temp_c": 1}, ' + deep + b"]}" if in_batch else deep
    )
    readings, dead = parse(payload)
    check_invariants(readings, dead)


segments = st.text(any_char, min_size=1, max_size=12).filter(lambda s: "/" not in s)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(site=segments, asset=segments, device=segments)
@example(site="odd-site", asset="a", device="trail\\")
@example(site="site-trail\\", asset="a", device="b\\,c")
@example(site="s", asset='=\\ ,"', device="\U0001f9ca\u51b7\u0301\u200b\ue000")
@example(site="s", asset="a", device="tab\there")
def test_every_unicode_category_in_topic_segments(site: str, asset: str, device: str):
    """A topic with any characters: its readings carry exactly those tags through line protocol,
    or (control characters, lone surrogates) the message is dead-lettered naming the tag."""
    router = TopicRouter([SUB])
    parser = MessageParser(1 << 20, 300)
    topic = f"vigil/{site}/{asset}/{device}/telemetry"
    readings, dead = parse_message(
        router, parser, topic, b'{"ts": 1700000000000, "temp_c": 1}', NOW
    )
    check_invariants(readings, dead)
    want = {"site": site, "asset": asset, "device": device}
    if any(c in s for s in want.values() for c in (chr(i) for i in range(0x20))) or any(
        0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for s in want.values() for c in s
    ):
        assert readings == [] and "topic segment tag '" in dead[0].reason
    else:
        [r] = readings
        assert dead == [] and r.tags == want
        assert parse_line(encode(r))[1] == want  # what the journal and the TSDB read back


@given(st.lists(st.fixed_dictionaries(
    {"ts": st.integers(T0_MS, NOW // 1_000_000), "temp_c": st.floats(-80, 60)},
    optional={"rh_pct": st.floats(0, 100), "door_open": st.booleans()},
), min_size=1, max_size=50))  # fmt: skip
def test_valid_batches_round_trip(batch):
    readings, dead = parse(orjson.dumps({"readings": batch}))
    assert dead == []
    assert [r.ts_ns for r in readings] == [e["ts"] * 1_000_000 for e in batch]
    assert [r.fields["temp_c"] for r in readings] == [float(e["temp_c"]) for e in batch]
