"""InfluxDB line protocol: the journal's storage format and the sink's wire format.

Readings are encoded once, at commit, so the sink only joins stored lines. The parser serves the
line-protocol subscription kind and rebuilding Readings from the journal.
"""

from __future__ import annotations

import math
import re

from gateway.core.reading import FieldValue, Reading

_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESC = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", "\n": r"\n"})


class LineProtocolError(ValueError):
    pass


def _field(value: FieldValue) -> str:
    # bool before int: bool is an int subclass
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, int):
        return f"{value}i"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_prefixes: dict[int, tuple[dict[str, str], str, str]] = {}
"""id(tags) → (tags, measurement, 'measurement,k=v,...'): readings of one topic share a tags
dict, so its escaped, sorted form is built once. Holding the dict keeps its id from reuse."""
_keys: dict[str, str] = {}


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    hit = _prefixes.get(id(tags))
    if hit is not None and hit[0] is tags and hit[1] == measurement:
        return hit[2]
    parts = [measurement.translate(_MEAS_ESC)]
    for k in sorted(tags):
        v = tags[k]
        if v != "":
            parts.append(f",{k.translate(_KEY_ESC)}={v.translate(_KEY_ESC)}")
    prefix = "".join(parts)
    if len(_prefixes) > 50_000:
        _prefixes.clear()
    _prefixes[id(tags)] = (tags, measurement, prefix)
    return prefix


def _key(k: str) -> str:
    esc = _keys.get(k)
    if esc is None:
        esc = k.translate(_KEY_ESC)
        if len(_keys) < 10_000:
            _keys[k] = esc
    return esc


def encode(reading: Reading) -> str:
    """One line. Tag dicts must not be changed once used (assign a new dict instead)."""
    fields = []
    for k, v in reading.fields.items():
        if type(v) is float:
            if v - v != 0.0:  # NaN or infinity
                raise LineProtocolError(f"field value {v!r} is not finite")
            fields.append(f"{_key(k)}={v!r}")
        else:
            fields.append(f"{_key(k)}={_field(v)}")
    return f"{_prefix(reading.measurement, reading.tags)} {','.join(fields)} {reading.ts_ns}"


def _split(s: str, sep: str, *, fields: bool = False) -> list[str]:
    """Split on sep, honouring backslash escapes; in a field set, also "string values"."""
    out: list[str] = []
    cur: list[str] = []
    i, n, in_q, prev = 0, len(s), False, ""
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            cur.append(s[i : i + 2])
            i += 2
            prev = ""
            continue
        if fields and c == '"' and (in_q or prev == "="):
            # a quote opens a string only as a field value, right after '='
            in_q = not in_q
        elif c == sep and not in_q:
            out.append("".join(cur))
            cur = []
            i += 1
            prev = c
            continue
        cur.append(c)
        i += 1
        prev = c
    if in_q:
        raise LineProtocolError("unterminated string field")
    out.append("".join(cur))
    return out


_UNESC = re.compile(r"\\(.)")


def _unescape(s: str) -> str:
    return _UNESC.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def _parse_value(raw: str) -> FieldValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineProtocolError(f"bad string field {raw!r}")
        return _unescape(raw[1:-1])
    low = raw.lower()
    if low in ("t", "true"):
        return True
    if low in ("f", "false"):
        return False
    try:
        if raw.endswith("i") or raw.endswith("u"):
            return int(raw[:-1])
        value = float(raw)
    except ValueError:
        raise LineProtocolError(f"bad field value {raw!r}") from None
    if not math.isfinite(value):
        raise LineProtocolError(f"field value {raw!r} is not finite")
    return value


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue], int | None]:
    """(measurement, tags, fields, timestamp or None) of one line."""
    line = line.strip()
    head_and_rest = _split(line, " ")
    if len(head_and_rest) < 2:
        raise LineProtocolError("expected 'measurement[,tags] fields [timestamp]'")
    rest = line[len(head_and_rest[0]) + 1 :].lstrip(" ")
    tail = [p for p in _split(rest, " ", fields=True) if p != ""]
    sections = [head_and_rest[0], *tail]
    if len(sections) not in (2, 3):
        raise LineProtocolError("expected 'measurement[,tags] fields [timestamp]'")
    head = _split(sections[0], ",")
    measurement = _unescape(head[0])
    if not measurement:
        raise LineProtocolError("empty measurement")
    tags: dict[str, str] = {}
    for pair in head[1:]:
        kv = _split(pair, "=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError(f"bad tag {pair!r}")
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields: dict[str, FieldValue] = {}
    for pair in _split(sections[1], ",", fields=True):
        kv = _split(pair, "=", fields=True)
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError(f"bad field {pair!r}")
        fields[_unescape(kv[0])] = _parse_value(kv[1])
    ts: int | None = None
    if len(sections) == 3:
        try:
            ts = int(sections[2])
        except ValueError:
            raise LineProtocolError(f"bad timestamp {sections[2]!r}") from None
    return measurement, tags, fields, ts


def decode(line: str, received_ns: int = 0) -> Reading:
    """A Reading back from a journal line (which always carries a timestamp)."""
    measurement, tags, fields, ts = parse_line(line)
    if ts is None:
        raise LineProtocolError("journal line without timestamp")
    return Reading(measurement, tags, fields, ts, received_ns)
