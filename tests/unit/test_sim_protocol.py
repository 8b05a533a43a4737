"""The logger-protocol encoder: every payload it makes is valid and round-trips; malformed ones
are rejected by the strict decoder."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.protocol import (
    MALFORMED_VARIANTS,
    ProtocolError,
    decode,
    encode_batch,
    encode_reading,
    format_ts,
    malformed,
    parse_ts,
    topic,
)

TS_MS = st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000)  # 2000..2100
NUM = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(10**6), 10**6)


@st.composite
def readings(draw: st.DrawFn) -> dict[str, object]:
    ms = draw(TS_MS)
    fields = {
        "temp_c": NUM,
        "rh_pct": NUM,
        "battery_pct": NUM,
        "door_open": st.booleans(),
        "power_ok": st.booleans(),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, unique=True))
    r: dict[str, object] = {"ts": format_ts(ms, draw(st.sampled_from(["iso", "epoch_ms"])))}
    for name in chosen:
        r[name] = draw(fields[name])
    return r


def _normal(r: dict[str, object]) -> dict[str, object]:
    return {**r, "ts": parse_ts(r["ts"])}


@given(readings())
def test_every_reading_is_valid_protocol_and_round_trips(r: dict[str, object]) -> None:
    payload = encode_reading(r)
    obj = json.loads(payload)  # plain JSON too, not just orjson
    assert set(obj) == set(r)
    assert isinstance(obj["ts"], int) or obj["ts"].endswith("Z")
    assert decode(payload) == [_normal(r)]


@given(st.lists(readings(), min_size=1, max_size=30))
def test_every_batch_is_valid_protocol_and_round_trips(rs: list[dict[str, object]]) -> None:
    payload = encode_batch(rs)
    assert list(json.loads(payload)) == ["readings"]
    assert decode(payload) == [_normal(r) for r in rs]


@given(TS_MS)
def test_iso_and_epoch_timestamps_agree(ms: int) -> None:
    iso = format_ts(ms, "iso")
    assert isinstance(iso, str) and iso.endswith("Z")
    assert parse_ts(iso) == ms == parse_ts(format_ts(ms, "epoch_ms"))


def test_timestamp_layout_matches_the_contract() -> None:
    assert format_ts(1_795_334_400_000) == "2026-11-22T08:00:00Z"
    assert format_ts(1_795_334_400_250) == "2026-11-22T08:00:00.250Z"
    assert topic("wh-1", "fridge-01", "t1") == "vigil/wh-1/fridge-01/t1/telemetry"


@pytest.mark.parametrize(
    "bad",
    [
        {"ts": "2026-11-22T08:00:00Z", "temp_c": math.nan},
        {"ts": "2026-11-22T08:00:00Z", "temp_c": math.inf},
        {"ts": "2026-11-22T08:00:00Z", "temp_c": "5"},
        {"ts": "2026-11-22T08:00:00Z", "door_open": 1},
        {"ts": "2026-11-22T08:00:00Z", "temp_c": True},
        {"ts": "2026-11-22 08:00:00", "temp_c": 5.0},
        {"temp_c": 5.0},
        {"ts": "2026-11-22T08:00:00Z", "colour": "red"},
    ],
)
def test_encoder_refuses_what_the_contract_forbids(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode_reading(bad)


@pytest.mark.parametrize("variant", MALFORMED_VARIANTS)
def test_every_malformed_variant_is_rejected(variant: str) -> None:
    now_ms = 1_795_334_400_000
    payload = malformed(variant, now_ms, oversize_bytes=300_000)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        decode(payload, max_ts_ms=now_ms + 60_000)


def test_malformed_variants_break_only_what_they_say() -> None:
    now_ms = 1_795_334_400_000
    big = malformed("oversized", now_ms, oversize_bytes=500_000)
    assert 500_000 <= len(big) < 510_000
    # oversized and far-future ones are otherwise valid: they test the limits, not the parser
    rows = decode(big, max_bytes=len(big))
    assert all(r["temp_c"] == 5.2 and int(r["ts"]) < now_ms for r in rows)  # type: ignore[call-overload]
    assert len({r["ts"] for r in rows}) == len(rows)
    future = decode(malformed("future_ts", now_ms))
    assert int(future[0]["ts"]) > now_ms + 9 * 365 * 86_400_000  # type: ignore[call-overload]
    assert "NaN" in malformed("nan", now_ms).decode()
    missing = json.loads(malformed("missing_ts", now_ms))
    assert "ts" not in missing and missing["temp_c"] == 5.2
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed("bad_json", now_ms))
