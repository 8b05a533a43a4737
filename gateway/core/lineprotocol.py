r"""InfluxDB line protocol: the journal's storage format and the sink's wire format.

Readings are encoded once, at commit, so the sink only joins stored lines. The parser serves the
line-protocol subscription kind and rebuilding Readings from the journal.

Escaping follows the InfluxDB v2 line-protocol reference ("Special characters"): a measurement
escapes comma and space; tag keys, tag values and field keys escape comma, equals sign and space;
string field values escape double quote and backslash. A backslash is written `\\` everywhere, so a
value ending in a backslash, or holding one before a special character, reads back exactly (`\\`
reads as one `\`; a backslash before any other character is literal). Line protocol cannot carry
a newline, nor any other control character (Unicode category Cc), in a measurement, tag or field
key: the encoder refuses them (collectors dead-letter such readings before they get here). String
field values keep one vigil extension: a newline is written `\n` (alert messages).
"""

from __future__ import annotations

import math
import re

from gateway.core.reading import FieldValue, Reading

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_MEAS_ESC = str.maketrans({"\\": "\\\\", ",": r"\,", " ": r"\ "})
_KEY_ESC = str.maketrans({"\\": "\\\\", ",": r"\,", " ": r"\ ", "=": r"\="})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""What a name cannot hold: control characters (Cc) and lone surrogates (not encodable)."""


class LineProtocolError(ValueError):
    pass


def unsafe_char(s: str) -> str:
    """'' when `s` can be a measurement, tag or field key/value; else the offending character,
    as U+XXXX (control characters and lone surrogates cannot travel in line protocol)."""
    m = _UNSAFE.search(s)
    return f"U+{ord(m.group()):04X}" if m else ""


def name_problem(what: str, s: object) -> str:
    """Why `s` cannot be the named part of a line (`what`: "tag 'device'"...), or ""."""
    if not isinstance(s, str):
        return f"{what} is a {type(s).__name__}, not text"
    if s == "":
        return f"{what} is empty"
    m = _UNSAFE.search(s)
    if m:
        code = ord(m.group())
        kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
        return f"{what} contains {kind} (U+{code:04X}), which line protocol cannot carry"
    return ""


def tags_problem(tags: dict[str, str]) -> str:
    """Why these tags cannot be written, naming the tag; "" when they can (empty values are
    left out of the line, so they pass)."""
    for k, v in tags.items():
        why = name_problem(f"tag key {k!r}", k)
        if why:
            return why
        if v != "":
            why = name_problem(f"tag {k!r}", v)
            if why:
                return why
    return ""


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
        if not INT64_MIN <= value <= INT64_MAX:
            raise LineProtocolError(f"integer field value {value} is outside the int64 range")
        return f"{value}i"
    if isinstance(value, str):
        return f'"{value.translate(_STR_ESC)}"'
    raise LineProtocolError(f"field value of type {type(value).__name__} cannot be written")


_prefixes: dict[int, tuple[dict[str, str], str, str]] = {}
"""id(tags) → (tags, measurement, 'measurement,k=v,...'): readings of one topic share a tags
dict, so its escaped, sorted form is built (and checked) once. Holding the dict keeps its id from
reuse."""
_keys: dict[str, str] = {}


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    hit = _prefixes.get(id(tags))
    if hit is not None and hit[0] is tags and hit[1] == measurement:
        return hit[2]
    why = name_problem("measurement", measurement) or tags_problem(tags)
    if why:
        raise LineProtocolError(why)
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
        why = name_problem(f"field key {k!r}", k)
        if why:
            raise LineProtocolError(why)
        esc = k.translate(_KEY_ESC)
        if len(_keys) < 10_000:
            _keys[k] = esc
    return esc


def encode(reading: Reading) -> str:
    """One line. Tag dicts must not be changed once used (assign a new dict instead).

    Raises LineProtocolError for what line protocol cannot carry (no field, a non-finite float,
    an integer beyond int64, a control character in a name, a timestamp beyond int64).
    """
    fields = []
    for k, v in reading.fields.items():
        if type(v) is float:
            if v - v != 0.0:  # NaN or infinity
                raise LineProtocolError(f"field value {v!r} is not finite")
            fields.append(f"{_key(k)}={v!r}")
        else:
            fields.append(f"{_key(k)}={_field(v)}")
    if not fields:
        raise LineProtocolError("a line needs at least one field")
    ts = reading.ts_ns
    if type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
        raise LineProtocolError(f"timestamp {ts!r} is not a 64-bit integer of nanoseconds")
    return f"{_prefix(reading.measurement, reading.tags)} {','.join(fields)} {ts}"


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


# A backslash escapes only its element's special characters and itself; before anything else
# it is a literal backslash (the reference's rule, which VictoriaMetrics and InfluxDB follow).
_UNESC_MEAS = re.compile(r"\\([\\, ])")
_UNESC_KEY = re.compile(r"\\([\\, =])")
_UNESC_STR = re.compile(r'\\([\\"n])')


def _unescape_meas(s: str) -> str:
    return _UNESC_MEAS.sub(lambda m: m.group(1), s) if "\\" in s else s


def _unescape_key(s: str) -> str:
    return _UNESC_KEY.sub(lambda m: m.group(1), s) if "\\" in s else s


def _unescape_str(s: str) -> str:
    if "\\" not in s:
        return s
    return _UNESC_STR.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


def _parse_int(digits: str, lo: int, hi: int, raw: str) -> int:
    if not _INT.fullmatch(digits):
        raise LineProtocolError(f"bad field value {raw[:80]!r}")
    try:
        value = int(digits)
    except ValueError:  # more digits than Python converts
        raise LineProtocolError(f"integer field value {raw[:40]!r}... is out of range") from None
    if not lo <= value <= hi:
        kind = "uint64" if lo == 0 else "int64"
        raise LineProtocolError(f"integer field value {raw[:80]} is outside the {kind} range")
    return value


def _parse_value(raw: str) -> FieldValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineProtocolError(f"bad string field {raw[:80]!r}")
        return _unescape_str(raw[1:-1])
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if raw.endswith("i"):
        return _parse_int(raw[:-1], INT64_MIN, INT64_MAX, raw)
    if raw.endswith("u"):
        return _parse_int(raw[:-1], 0, UINT64_MAX, raw)
    if not _FLOAT.fullmatch(raw):
        raise LineProtocolError(f"bad field value {raw[:80]!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise LineProtocolError(f"field value {raw[:80]!r} is not finite")
    return value


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue], int | None]:
    """(measurement, tags, fields, timestamp or None) of one line."""
    line = line.strip(" \t\r\n")
    head_and_rest = _split(line, " ")
    if len(head_and_rest) < 2:
        raise LineProtocolError("expected 'measurement[,tags] fields [timestamp]'")
    rest = line[len(head_and_rest[0]) + 1 :].lstrip(" ")
    tail = [p for p in _split(rest, " ", fields=True) if p != ""]
    sections = [head_and_rest[0], *tail]
    if len(sections) not in (2, 3):
        raise LineProtocolError("expected 'measurement[,tags] fields [timestamp]'")
    head = _split(sections[0], ",")
    measurement = _unescape_meas(head[0])
    if not measurement:
        raise LineProtocolError("empty measurement")
    tags: dict[str, str] = {}
    for pair in head[1:]:
        kv = _split(pair, "=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError(f"bad tag {pair[:80]!r}")
        tags[_unescape_key(kv[0])] = _unescape_key(kv[1])
    fields: dict[str, FieldValue] = {}
    for pair in _split(sections[1], ",", fields=True):
        kv = _split(pair, "=", fields=True)
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError(f"bad field {pair[:80]!r}")
        fields[_unescape_key(kv[0])] = _parse_value(kv[1])
    ts: int | None = None
    if len(sections) == 3:
        raw_ts = sections[2]
        if not _INT.fullmatch(raw_ts) or len(raw_ts) > 20:
            raise LineProtocolError(f"bad timestamp {raw_ts[:80]!r}")
        ts = int(raw_ts)
        if not INT64_MIN <= ts <= INT64_MAX:
            raise LineProtocolError(f"timestamp {raw_ts} is outside the int64 range")
    return measurement, tags, fields, ts


def decode(line: str, received_ns: int = 0) -> Reading:
    """A Reading back from a journal line (which always carries a timestamp)."""
    measurement, tags, fields, ts = parse_line(line)
    if ts is None:
        raise LineProtocolError("journal line without timestamp")
    return Reading(measurement, tags, fields, ts, received_ns)
