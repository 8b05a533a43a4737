"""The MQTT payload parser: the logger protocol, mappings, and every way a message can be bad."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from collectors.mqtt.config import PayloadMapping, Subscription, TimestampMapping
from collectors.mqtt.parse import MessageParser
from collectors.mqtt.topics import TopicRouter

NOW = 1_795_000_000_000_000_000  # 2026-11-18
SUB = Subscription()
TAGS = {"site": "s", "asset": "a", "device": "d"}


def parse(payload: bytes, sub: Subscription = SUB, max_bytes: int = 1 << 20):
    return MessageParser(max_bytes, 300).parse(sub, "vigil/s/a/d/telemetry", TAGS, payload, NOW)


def test_single_reading_iso():
    readings, dead = parse(b'{"ts": "2026-11-01T08:00:00Z", "temp_c": 5.2, "rh_pct": 41.0}')
    assert dead == []
    [r] = readings
    assert r.ts_ns == int(datetime(2026, 11, 1, 8, tzinfo=UTC).timestamp()) * 10**9
    assert r.fields == {"temp_c": 5.2, "rh_pct": 41.0}
    assert r.tags == TAGS and r.measurement == "coldchain" and not r.ts_from_receive


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
                {"ts": 1, "temp_c": 1.0},
                {"ts": 2, "temp_c": "x"},
                {"ts": 3, "temp_c": 3.0},
                7,
            ]
        }
    )
    readings, dead = parse(body)
    assert [r.ts_ns for r in readings] == [1_000_000, 3_000_000]
    assert [d.reason for d in dead] == [
        "readings[1]: temp_c: expected a number, got str 'x'",
        "readings[3]: entry must be an object, got int",
    ]
    assert json.loads(dead[0].payload) == {"ts": 2, "temp_c": "x"}


def test_nan_in_batch_refuses_only_that_entry():
    readings, dead = parse(b'{"readings": [{"ts": 1, "temp_c": NaN}, {"ts": 2, "temp_c": 2.0}]}')
    assert [r.ts_ns for r in readings] == [2_000_000]
    assert dead[0].reason == "readings[0]: temp_c: nan is not a finite number"
    assert b"NaN" in dead[0].payload


def test_oversized_and_future():
    _, dead = parse(b"{" + b" " * 100 + b"}", max_bytes=50)
    assert "exceeds max_payload_bytes=50" in dead[0].reason
    future_ms = NOW // 1_000_000 + 301_000
    _, dead = parse(orjson.dumps({"ts": future_ms, "temp_c": 1.0}))
    assert "301 s in the future (max_future_skew_s=300)" in dead[0].reason
    ok, dead = parse(orjson.dumps({"ts": future_ms - 2000, "temp_c": 1.0}))
    assert ok and not dead


def test_huge_integer_is_refused_not_raised():
    readings, dead = parse(
        b'{"readings": [{"ts": 1, "temp_c": 1' + b"0" * 400 + b'}, {"ts": 2, "temp_c": 1}]}'
    )
    assert [r.ts_ns for r in readings] == [2_000_000]
    assert "out of range" in dead[0].reason


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


def test_topic_router():
    router = TopicRouter([Subscription(), Subscription(topic="acme/{device}/#")])
    assert router.match("vigil/s/a/d/telemetry")[1] == TAGS  # type: ignore[index]
    assert router.match("vigil/s//d/telemetry") is None
    assert router.match("vigil/s/a/d/other") is None
    assert router.match("acme/x/y/z")[1] == {"device": "x"}  # type: ignore[index]


# -- properties: any payload either becomes readings or dead letters, never an exception ----

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(payload):
    readings, dead = parse(payload)
    assert readings or dead


@given(json_values)
def test_arbitrary_json_never_raises(doc):
    payload = json.dumps(doc).encode()
    readings, dead = parse(payload)
    assert readings or dead
    for r in readings:
        for v in r.fields.values():
            assert isinstance(v, bool) or (isinstance(v, float) and math.isfinite(v))


entries = st.fixed_dictionaries(
    {"ts": st.integers(0, NOW // 1_000_000), "temp_c": st.floats(-80, 60)},
    optional={"rh_pct": st.floats(0, 100), "door_open": st.booleans()},
)


@given(st.lists(entries, min_size=1, max_size=50))
def test_valid_batches_round_trip(batch):
    readings, dead = parse(orjson.dumps({"readings": batch}))
    assert dead == []
    assert [r.ts_ns for r in readings] == [e["ts"] * 1_000_000 for e in batch]
    assert [r.fields["temp_c"] for r in readings] == [float(e["temp_c"]) for e in batch]
