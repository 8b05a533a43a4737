"""Turn one MQTT message into Readings and dead letters. Pure: no I/O, no clock of its own.

Every way a message can be wrong ends as a DeadLetter with a reason; the good readings of a batch
still come through when some of its entries are bad.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import orjson

from collectors.mqtt.config import PayloadMapping, Subscription
from gateway.core.lineprotocol import LineProtocolError, parse_line
from gateway.core.reading import DeadLetter, FieldValue, Reading

_EPOCH_SCALE = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
_LP_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


class BadEntry(ValueError):
    """One entry of a payload is unusable; the message says why."""


def _ts_ns(value: object, fmt: str) -> int:
    if isinstance(value, bool):
        raise BadEntry(f"timestamp {value!r} is a boolean")
    if isinstance(value, str):
        if fmt not in ("auto", "iso8601"):
            raise BadEntry(f"timestamp {value!r} is a string, expected {fmt}")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadEntry(f"timestamp {value!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise BadEntry(f"timestamp {value!r} has no time zone (use Z or an offset)")
        # integer arithmetic: float seconds would lose the microseconds of far dates
        delta = dt - datetime.fromisoformat("1970-01-01T00:00:00+00:00")
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadEntry(f"timestamp {value!r} is not finite")
        if fmt == "iso8601":
            raise BadEntry(f"timestamp {value!r} is a number, expected an ISO 8601 string")
        scale = _EPOCH_SCALE["epoch_ms" if fmt == "auto" else fmt]
        if value < 0:
            raise BadEntry(f"timestamp {value!r} is before 1970")
        return int(value * scale) if isinstance(value, float) else value * scale
    raise BadEntry(f"timestamp {value!r} is a {type(value).__name__}")


_FieldSpec = tuple[tuple[str, str, bool], ...]
_specs: dict[int, tuple[PayloadMapping, _FieldSpec]] = {}


def _spec(mapping: PayloadMapping) -> _FieldSpec:
    """(field, payload key, is bool) per mapped field, built once per mapping."""
    hit = _specs.get(id(mapping))
    if hit is None or hit[0] is not mapping:
        bools = set(mapping.bool_fields)
        spec = tuple((name, key, name in bools) for name, key in mapping.fields.items())
        hit = _specs[id(mapping)] = (mapping, spec)
    return hit[1]


def _fields(entry: dict[str, object], mapping: PayloadMapping) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for name, key, is_bool in _spec(mapping):
        v = entry.get(key)
        if v is None:
            continue
        t = type(v)
        if is_bool:
            if t is not bool:
                raise BadEntry(f"{key}: expected true/false, got {t.__name__} {v!r}")
            out[name] = v  # type: ignore[assignment]
        elif t is float:
            if v - v != 0.0:  # type: ignore[operator]  # NaN or infinity
                raise BadEntry(f"{key}: {v!r} is not a finite number")
            out[name] = v  # type: ignore[assignment]
        elif t is int:
            try:
                out[name] = float(v)  # type: ignore[arg-type]  # InfluxDB refuses a changing type
            except OverflowError:
                raise BadEntry(f"{key}: {v} is out of range") from None
        else:
            raise BadEntry(f"{key}: expected a number, got {t.__name__} {v!r}")
    if not out:
        raise BadEntry(f"no known field (expected one of {sorted(mapping.fields.values())})")
    return out


class MessageParser:
    """Parses messages of one subscription; limits come from the collector config."""

    def __init__(self, max_payload_bytes: int, max_future_skew_s: float) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.max_future_ns = int(max_future_skew_s * 1e9)

    def parse(
        self,
        sub: Subscription,
        topic: str,
        topic_tags: dict[str, str],
        payload: bytes,
        received_ns: int,
    ) -> tuple[list[Reading], list[DeadLetter]]:
        if len(payload) > self.max_payload_bytes:
            size, limit = len(payload), self.max_payload_bytes
            reason = f"payload of {size} bytes exceeds max_payload_bytes={limit}"
            return [], [DeadLetter(topic, payload[: self.max_payload_bytes], reason, received_ns)]
        tags = {**sub.tags, **topic_tags} if sub.tags else topic_tags
        if sub.format == "line_protocol":
            return self._parse_lp(sub, topic, tags, payload, received_ns)
        return self._parse_json(sub, topic, tags, payload, received_ns)

    def _parse_json(
        self,
        sub: Subscription,
        topic: str,
        tags: dict[str, str],
        payload: bytes,
        received_ns: int,
    ) -> tuple[list[Reading], list[DeadLetter]]:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            # NaN and Infinity are not JSON, but some devices send them: parse leniently so the
            # one bad entry is refused and the rest of a batch still lands.
            try:
                doc = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                return [], [DeadLetter(topic, payload, f"malformed JSON: {e}", received_ns)]
        mapping = sub.mapping
        if isinstance(doc, dict) and mapping.batch_key in doc:
            entries = doc[mapping.batch_key]
            if not isinstance(entries, list):
                reason = f"'{mapping.batch_key}' must be a list, got {type(entries).__name__}"
                return [], [DeadLetter(topic, payload, reason, received_ns)]
            label = mapping.batch_key
        elif isinstance(doc, dict):
            entries, label = [doc], ""
        else:
            reason = f"payload must be a JSON object, got {type(doc).__name__}"
            return [], [DeadLetter(topic, payload, reason, received_ns)]

        readings: list[Reading] = []
        dead: list[DeadLetter] = []
        ts_key, ts_fmt = mapping.timestamp.key, mapping.timestamp.format
        limit = received_ns + self.max_future_ns
        for i, entry in enumerate(entries):
            where = f"{label}[{i}]: " if label else ""
            try:
                if not isinstance(entry, dict):
                    raise BadEntry(f"entry must be an object, got {type(entry).__name__}")
                fields = _fields(entry, mapping)
                raw_ts = entry.get(ts_key)
                if raw_ts is None:
                    ts, flagged = received_ns, True
                else:
                    ts, flagged = _ts_ns(raw_ts, ts_fmt), False
                    if ts > limit:
                        ahead = (ts - received_ns) / 1e9
                        raise BadEntry(
                            f"timestamp {raw_ts!r} is {ahead:.0f} s in the future "
                            f"(max_future_skew_s={self.max_future_ns / 1e9:g})"
                        )
            except BadEntry as e:
                body = payload if not label else _dump(entry)
                dead.append(DeadLetter(topic, body, f"{where}{e}", received_ns))
                continue
            readings.append(Reading(sub.measurement, tags, fields, ts, received_ns, flagged))
        if not entries:
            dead.append(DeadLetter(topic, payload, f"'{label}' is empty", received_ns))
        return readings, dead

    def _parse_lp(
        self,
        sub: Subscription,
        topic: str,
        tags: dict[str, str],
        payload: bytes,
        received_ns: int,
    ) -> tuple[list[Reading], list[DeadLetter]]:
        try:
            text = payload.decode()
        except UnicodeDecodeError as e:
            return [], [DeadLetter(topic, payload, f"line protocol is not UTF-8: {e}", received_ns)]
        readings: list[Reading] = []
        dead: list[DeadLetter] = []
        scale = _LP_SCALE[sub.precision]
        limit = received_ns + self.max_future_ns
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                measurement, line_tags, fields, ts = parse_line(line)
                for k, v in fields.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        fields[k] = float(v)
                if ts is not None:
                    ts *= scale
                    if ts > limit:
                        raise LineProtocolError(f"timestamp {ts} ns is in the future")
            except LineProtocolError as e:
                dead.append(DeadLetter(topic, line.encode(), f"line {n}: {e}", received_ns))
                continue
            flagged = ts is None
            merged = {**tags, **line_tags}
            readings.append(
                Reading(
                    measurement,
                    merged,
                    fields,
                    received_ns if ts is None else ts,
                    received_ns,
                    flagged,
                )
            )
        if not readings and not dead:
            dead.append(DeadLetter(topic, payload, "no line-protocol lines", received_ns))
        return readings, dead


def _dump(entry: object) -> bytes:
    """The bad entry alone, as it came (NaN stays NaN)."""
    return json.dumps(entry, default=repr).encode()
