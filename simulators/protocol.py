"""The logger protocol on the wire (DESIGN §3), as simulated loggers speak it.

One place builds topics and payloads so every simulator sends exactly the contract, and one strict
reference decoder checks them (tests use it; it is deliberately stricter than the gateway, which
accepts other layouts through a subscription mapping). Malformed payloads for dead-letter tests are
built here too, next to the format they break.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson

TsFormat = Literal["iso", "epoch_ms"]
Field = Literal[
    "temp_c", "rh_pct", "battery_pct", "door_open", "power_ok", "lat", "lon", "speed_kmh"
]

NUMBER_FIELDS: tuple[Field, ...] = ("temp_c", "rh_pct", "battery_pct")
BOOL_FIELDS: tuple[Field, ...] = ("door_open", "power_ok")
ALL_FIELDS: tuple[Field, ...] = NUMBER_FIELDS + BOOL_FIELDS
"""What a logger sends by default."""
GPS_FIELDS: tuple[Field, ...] = ("lat", "lon", "speed_kmh")
"""What a logger with a GPS receiver adds: WGS-84 degrees and km/h."""
KNOWN_FIELDS: frozenset[str] = frozenset(ALL_FIELDS + GPS_FIELDS)

MalformedVariant = Literal[
    "bad_json",
    "wrong_types",
    "nan",
    "missing_ts",
    "future_ts",
    "oversized",
    "bad_batch",
    "not_object",
    "empty",
]
MALFORMED_VARIANTS: tuple[MalformedVariant, ...] = (
    "bad_json",
    "wrong_types",
    "nan",
    "missing_ts",
    "future_ts",
    "oversized",
    "bad_batch",
    "not_object",
    "empty",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# 2000-01-01 .. 2200-01-01: anything outside is not a plausible logger clock.
_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 7_258_118_400_000
DEFAULT_MAX_BYTES = 256 * 1024
"""The reference decoder's payload limit. A 1000-reading batch is ~110 KB, well below it."""

Reading = dict[str, object]
"""One reading as sent: "ts" plus any of KNOWN_FIELDS."""


class ProtocolError(ValueError):
    """A payload that is not valid logger protocol."""


def check_segment(value: str) -> str:
    """A topic segment must not contain '/', '+', '#' or spaces: it becomes a tag."""
    if not _SEGMENT.match(value):
        raise ValueError(f"{value!r} is not a valid topic segment (letters, digits, _ . - only)")
    return value


def topic(site: str, asset: str, device: str, prefix: str = "vigil") -> str:
    return f"{prefix}/{site}/{asset}/{device}/telemetry"


def format_ts(epoch_ms: int, fmt: TsFormat = "iso") -> str | int:
    """Integer arithmetic, not floats, so a sim clock in ms prints exactly."""
    if fmt == "epoch_ms":
        return epoch_ms
    secs, ms = divmod(epoch_ms, 1000)
    text = (_EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def parse_ts(value: object) -> int:
    """Epoch ms from either accepted `ts` form; ProtocolError otherwise."""
    if isinstance(value, bool):
        raise ProtocolError("ts must be an ISO 8601 UTC string or epoch milliseconds, not a bool")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        if not _ISO.match(value):
            raise ProtocolError(f"ts {value!r} is not ISO 8601 UTC (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        delta = dt - _EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise ProtocolError(f"ts must be a string or an integer, got {type(value).__name__}")
    if not _MIN_TS_MS <= ms < _MAX_TS_MS:
        raise ProtocolError(f"ts {value!r} is outside 2000..2200")
    return ms


def _encode_value(name: str, value: object) -> object:
    if name in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_reading(reading: Mapping[str, object]) -> dict[str, object]:
    if "ts" not in reading:
        raise ValueError("a reading needs a ts")
    out: dict[str, object] = {"ts": reading["ts"]}
    parse_ts(reading["ts"])
    for name, value in reading.items():
        if name == "ts":
            continue
        if name not in KNOWN_FIELDS:
            raise ValueError(f"unknown field {name!r}")
        out[name] = _encode_value(name, value)
    return out


def encode_reading(reading: Mapping[str, object]) -> bytes:
    """One reading as a payload. Refuses anything the contract does not allow (NaN, bad types)."""
    return orjson.dumps(_check_reading(reading))


def encode_batch(readings: Sequence[Mapping[str, object]]) -> bytes:
    """A buffered upload: {"readings": [...]}, in the order given (oldest first)."""
    if not readings:
        raise ValueError("a batch needs at least one reading")
    return orjson.dumps({"readings": [_check_reading(r) for r in readings]})


def _decode_one(obj: object, where: str, max_ts_ms: int | None) -> Reading:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: a reading must be a JSON object")
    if "ts" not in obj:
        raise ProtocolError(f"{where}: missing ts")
    ms = parse_ts(obj["ts"])
    if max_ts_ms is not None and ms > max_ts_ms:
        raise ProtocolError(f"{where}: ts {obj['ts']!r} is in the future")
    out: Reading = {"ts": ms}
    measured = 0
    for name, value in obj.items():
        if name == "ts":
            continue
        if name not in KNOWN_FIELDS:
            raise ProtocolError(f"{where}: unknown field {name!r}")
        try:
            out[name] = _encode_value(name, value)
        except ValueError as e:
            raise ProtocolError(f"{where}: {e}") from None
        measured += 1
    if measured == 0:
        raise ProtocolError(f"{where}: no measured field")
    return out


def decode(
    payload: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_ts_ms: int | None = None
) -> list[Reading]:
    """Strict reference decoder: the readings of a valid payload with ts as epoch ms.

    Raises ProtocolError naming what is wrong. `max_ts_ms` rejects far-future clocks.
    """
    if len(payload) > max_bytes:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if isinstance(obj, dict) and "readings" in obj:
        if set(obj) != {"readings"}:
            raise ProtocolError("a batch has only the key 'readings'")
        items = obj["readings"]
        if not isinstance(items, list) or not items:
            raise ProtocolError("readings must be a non-empty list")
        return [_decode_one(r, f"readings[{i}]", max_ts_ms) for i, r in enumerate(items)]
    return [_decode_one(obj, "payload", max_ts_ms)]


def malformed(
    variant: MalformedVariant, epoch_ms: int, *, oversize_bytes: int = 1_048_576
) -> bytes:
    """A payload that breaks the contract in one named way, for dead-letter tests.

    `missing_ts` is malformed only for the strict decoder: DESIGN §2 lets the gateway accept it with
    the receive time, flagged. `future_ts` is ten years ahead of the simulated clock. `oversized`
    is a valid batch of at least `oversize_bytes` (readings 1 ms apart, ending just before now).
    """
    ts = format_ts(epoch_ms)
    match variant:
        case "bad_json":
            return f'{{"ts": "{ts}", "temp_c": 5.2, "rh_pct": '.encode()
        case "wrong_types":
            return orjson.dumps(
                {"ts": ts, "temp_c": "5.2 C", "door_open": "yes", "battery_pct": [80]}
            )
        case "nan":
            return f'{{"ts": "{ts}", "temp_c": NaN, "rh_pct": 41.0}}'.encode()
        case "missing_ts":
            return orjson.dumps({"temp_c": 5.2, "rh_pct": 41.0})
        case "future_ts":
            return orjson.dumps({"ts": format_ts(epoch_ms + 3650 * 86_400_000), "temp_c": 5.2})
        case "oversized":
            # A valid batch (1 ms apart) whose only fault is its size.
            one = len(orjson.dumps({"ts": epoch_ms, "temp_c": 5.2})) + 1
            n = max(1, -(-(oversize_bytes - 13) // one))
            rows = [{"ts": epoch_ms - n + i, "temp_c": 5.2} for i in range(n)]
            return orjson.dumps({"readings": rows})
        case "bad_batch":
            return orjson.dumps({"readings": {"ts": ts, "temp_c": 5.2}})
        case "not_object":
            return orjson.dumps([ts, 5.2, 41.0])
        case "empty":
            return b""
    raise ValueError(f"unknown malformed variant {variant!r}")
