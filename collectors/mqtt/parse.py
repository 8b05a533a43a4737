"""Turn one MQTT message into Readings and dead letters. Pure: no I/O, no clock of its own.

Every way a message can be wrong ends as a DeadLetter with a reason; the good readings of a batch
still come through when some of its entries are bad. Nothing raises out of `MessageParser.parse`
or `parse_message`: an unexpected error while handling a message (or one entry of a batch)
dead-letters that message (entry) as `internal error: <type>: <text>`, so one poison message can
never stop ingest (the broker would redeliver it for ever).
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import orjson

from collectors.mqtt.config import PayloadMapping, Subscription
from collectors.mqtt.topics import TopicRouter
from gateway.core.eventtime import (
    DEFAULT_MIN_EVENT_TIME,
    INT64_MAX,
    INT64_MIN,
    STORE_MAX_NS,
    EventWindow,
    approx_int,
    dt_to_ns,
    fmt_ns,
)
from gateway.core.lineprotocol import LineProtocolError, name_problem, parse_line, tags_problem
from gateway.core.reading import DeadLetter, FieldValue, Reading, internal_error
from gateway.core.schema import RESERVED_MEASUREMENTS

_EPOCH_SCALE = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
_LP_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_MAX_ISO_CHARS = 64
"""Longer than any ISO 8601 timestamp: refused without parsing."""


class BadEntry(ValueError):
    """One entry of a payload is unusable; the message says why."""


class _Inexact(Exception):
    """orjson turned an integer beyond 64 bits into a float: parse the payload again exactly."""


_FLOAT_INT_LIMIT = float(2**63)


def _short(value: object, limit: int = 80) -> str:
    """repr of a value for a reason, cut to `limit` characters (a payload may be 256 KiB)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return approx_int(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ts_ns(value: object, fmt: str) -> int:
    """Nanoseconds since 1970 of a payload timestamp; never overflows (the window check then
    refuses what is outside the stored range)."""
    if isinstance(value, bool):
        raise BadEntry(f"timestamp {value!r} is a boolean")
    if isinstance(value, str):
        if fmt not in ("auto", "iso8601"):
            raise BadEntry(f"timestamp {_short(value)} is a string, expected {fmt}")
        if len(value) > _MAX_ISO_CHARS:
            raise BadEntry(f"timestamp {_short(value)} is not ISO 8601 ({len(value)} characters)")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadEntry(f"timestamp {_short(value)} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise BadEntry(f"timestamp {_short(value)} has no time zone (use Z or an offset)")
        # integer arithmetic: float seconds would lose the microseconds of far dates
        return dt_to_ns(dt)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadEntry(f"timestamp {value!r} is not finite")
        if fmt == "iso8601":
            raise BadEntry(f"timestamp {_short(value)} is a number, expected an ISO 8601 string")
        scale = _EPOCH_SCALE["epoch_ms" if fmt == "auto" else fmt]
        if value < 0:
            raise BadEntry(f"timestamp {_short(value)} is before 1970")
        if isinstance(value, float):
            if value > STORE_MAX_NS / scale:  # 1e303 ms: int(value * scale) would overflow
                raise BadEntry(
                    f"timestamp {value!r} is after {fmt_ns(STORE_MAX_NS)}, "
                    "the end of the stored time range"
                )
            return int(value * scale)
        return value * scale
    raise BadEntry(f"timestamp {_short(value)} is a {type(value).__name__}")


_FieldSpec = tuple[tuple[str, str, bool, tuple[float, float] | None], ...]
_specs: dict[int, tuple[PayloadMapping, _FieldSpec]] = {}


def _spec(mapping: PayloadMapping) -> _FieldSpec:
    """(field, payload key, is bool, range) per mapped field, built once per mapping."""
    hit = _specs.get(id(mapping))
    if hit is None or hit[0] is not mapping:
        bools = set(mapping.bool_fields)
        spec = tuple(
            (name, key, name in bools, mapping.ranges.get(name))
            for name, key in mapping.fields.items()
        )
        hit = _specs[id(mapping)] = (mapping, spec)
    return hit[1]


def _fields(
    entry: dict[str, object], mapping: PayloadMapping, spec: _FieldSpec, exact: bool = True
) -> dict[str, FieldValue]:
    """The mapped fields of one entry. `exact=False` (parsed by orjson): a float of 2**63 or more
    may have been an integer literal orjson could not hold; _Inexact asks for an exact parse."""
    out: dict[str, FieldValue] = {}
    for name, key, is_bool, bounds in spec:
        v = entry.get(key)
        if v is None:
            continue
        t = type(v)
        if is_bool:
            if t is not bool:
                raise BadEntry(f"{key}: expected true/false, got {t.__name__} {_short(v)}")
            out[name] = v  # type: ignore[assignment]
        elif t is float:
            if v - v != 0.0:  # type: ignore[operator]  # NaN or infinity
                raise BadEntry(f"{key}: {v!r} is not a finite number")
            if not exact and not -_FLOAT_INT_LIMIT < v < _FLOAT_INT_LIMIT:  # type: ignore[operator]
                raise _Inexact
            out[name] = v  # type: ignore[assignment]
        elif t is int:
            if not INT64_MIN <= v <= INT64_MAX:  # type: ignore[operator]
                raise BadEntry(f"{key}: {_short(v)} is out of range (beyond int64)")
            out[name] = float(v)  # type: ignore[arg-type]  # InfluxDB refuses a changing type
        else:
            raise BadEntry(f"{key}: expected a number, got {t.__name__} {_short(v)}")
        if bounds is not None and not bounds[0] <= out[name] <= bounds[1]:  # type: ignore[operator]
            raise BadEntry(f"{key}: {_short(v)} is outside {bounds[0]:g}..{bounds[1]:g}")
    if not out:
        raise BadEntry(f"no known field (expected one of {sorted(mapping.fields.values())})")
    return out


def _lp_problem(measurement: str, tags: dict[str, str], fields: dict[str, FieldValue]) -> str:
    """Why a parsed line cannot be written as it is; "" when it can."""
    why = name_problem("measurement", measurement)
    if why:
        return why
    if measurement in RESERVED_MEASUREMENTS:
        return f"measurement {measurement!r} is reserved for the gateway's own data"
    why = tags_problem(tags)
    if why:
        return why
    for k in fields:
        why = name_problem(f"field key {k!r}", k)
        if why:
            return why
    return ""


class MessageParser:
    """Parses messages of one subscription; limits come from the collector config."""

    def __init__(
        self,
        max_payload_bytes: int,
        max_future_skew_s: float,
        min_event_time: datetime = DEFAULT_MIN_EVENT_TIME,
    ) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.window = EventWindow.of(min_event_time, max_future_skew_s)

    def parse(
        self,
        sub: Subscription,
        topic: str,
        topic_tags: dict[str, str],
        payload: bytes,
        received_ns: int,
    ) -> tuple[list[Reading], list[DeadLetter]]:
        """Readings and dead letters of one message; never raises."""
        try:
            if len(payload) > self.max_payload_bytes:
                size, limit = len(payload), self.max_payload_bytes
                reason = f"payload of {size} bytes exceeds max_payload_bytes={limit}"
                body = payload[: self.max_payload_bytes]
                return [], [DeadLetter(topic, body, reason, received_ns)]
            tags = {**sub.tags, **topic_tags} if sub.tags else topic_tags
            if sub.format == "line_protocol":
                return self._parse_lp(sub, topic, tags, payload, received_ns)
            return self._parse_json(sub, topic, tags, payload, received_ns)
        except Exception as e:
            return [], [DeadLetter(topic, _as_bytes(payload), internal_error(e), received_ns)]

    def _parse_json(
        self,
        sub: Subscription,
        topic: str,
        tags: dict[str, str],
        payload: bytes,
        received_ns: int,
    ) -> tuple[list[Reading], list[DeadLetter]]:
        exact = False
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            # NaN and Infinity are not JSON, but some devices send them: parse leniently so the
            # one bad entry is refused and the rest of a batch still lands.
            try:
                doc = json.loads(payload)
            except RecursionError:  # deeper than json's recursion limit (orjson: 1024 levels)
                return [], [DeadLetter(topic, payload, f"JSON nested too deep: {e}", received_ns)]
            except (ValueError, UnicodeDecodeError):
                return [], [DeadLetter(topic, payload, f"malformed JSON: {e}", received_ns)]
            exact = True
        try:
            return self._entries(sub, topic, tags, payload, received_ns, doc, exact)
        except _Inexact:
            try:
                doc = json.loads(payload)  # integers as written, however large
            except Exception:  # nested deeper than json goes (orjson goes further): keep floats
                pass
            return self._entries(sub, topic, tags, payload, received_ns, doc, True)

    def _entries(
        self,
        sub: Subscription,
        topic: str,
        tags: dict[str, str],
        payload: bytes,
        received_ns: int,
        doc: object,
        exact: bool,
    ) -> tuple[list[Reading], list[DeadLetter]]:
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
        window = self.window
        spec = _spec(mapping)
        for i, entry in enumerate(entries):
            try:
                if not isinstance(entry, dict):
                    raise BadEntry(f"entry must be an object, got {type(entry).__name__}")
                fields = _fields(entry, mapping, spec, exact)
                raw_ts = entry.get(ts_key)
                if raw_ts is None:
                    ts, flagged = received_ns, True
                else:
                    ts, flagged = _ts_ns(raw_ts, ts_fmt), False
                    why = window.problem(ts, received_ns)
                    if why:
                        raise BadEntry(f"timestamp {_short(raw_ts)} {why}")
                readings.append(Reading(sub.measurement, tags, fields, ts, received_ns, flagged))
            except _Inexact:
                raise
            except Exception as e:
                where = f"{label}[{i}]: " if label else ""
                reason = str(e) if isinstance(e, BadEntry) else internal_error(e)
                body = payload if not label else _dump(entry, payload)
                dead.append(DeadLetter(topic, body, f"{where}{reason}", received_ns))
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
        window = self.window
        # only "\n" ends a line (str.splitlines would also split on U+2028 inside a tag value)
        for n, line in enumerate(text.split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                measurement, line_tags, fields, ts = parse_line(line)
                merged = {**tags, **line_tags}
                why = _lp_problem(measurement, merged, fields)
                if why:
                    raise LineProtocolError(why)
                for k, v in fields.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        fields[k] = float(v)
                if ts is not None:
                    ts *= scale
                    why = window.problem(ts, received_ns)
                    if why:
                        raise LineProtocolError(f"timestamp {ts} ns {why}")
                flagged = ts is None
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
            except Exception as e:
                reason = str(e) if isinstance(e, LineProtocolError) else internal_error(e)
                dead.append(DeadLetter(topic, line.encode(), f"line {n}: {reason}", received_ns))
        if not readings and not dead:
            dead.append(DeadLetter(topic, payload, "no line-protocol lines", received_ns))
        return readings, dead


def parse_message(
    router: TopicRouter,
    parser: MessageParser,
    topic: str,
    payload: bytes,
    received_ns: int,
) -> tuple[list[Reading], list[DeadLetter]]:
    """One MQTT message, routed by its topic, to readings and dead letters. Never raises; every
    message gives at least one reading or one dead letter."""
    try:
        route = router.match(topic)
        if route is None:
            reason = "no subscription template matches this topic"
            return [], [DeadLetter(topic, payload, reason, received_ns)]
        if route.problem:
            return [], [DeadLetter(topic, payload, route.problem, received_ns)]
        readings, dead = parser.parse(route.sub, topic, route.tags, payload, received_ns)
        if not readings and not dead:  # cannot happen today; a message never vanishes silently
            dead = [DeadLetter(topic, payload, "internal error: no reading", received_ns)]
        return readings, dead
    except Exception as e:
        return [], [DeadLetter(str(topic), _as_bytes(payload), internal_error(e), received_ns)]


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    try:
        return bytes(payload)  # type: ignore[call-overload]
    except Exception:
        return repr(payload).encode("utf-8", "backslashreplace")


def _dump(entry: object, payload: bytes) -> bytes:
    """The bad entry alone, as it came (NaN stays NaN); the whole payload when it cannot be
    written back (nested deeper than json's recursion limit)."""
    try:
        return json.dumps(entry, default=repr).encode("utf-8", "backslashreplace")
    except Exception:
        return payload
