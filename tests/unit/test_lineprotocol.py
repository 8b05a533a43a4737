"""Line protocol: encoding and parsing by the InfluxDB v2 reference's escaping rules.

A tag value may end in a backslash or hold one before a comma, equals sign or space: `\\` is one
backslash, so such values round-trip (issue 14: `trail\\` swallowed the next tag). What line
protocol cannot carry (control characters, integers beyond int64) is refused, naming the part.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.core.lineprotocol import LineProtocolError, decode, encode, parse_line
from gateway.core.reading import Reading

ALL_BUT_CC = ["L", "M", "N", "P", "S", "Z", "Cf", "Co", "Cn"]
"""Every Unicode category a name may hold: all but control characters (Cc) and surrogates (Cs)."""
text = st.text(st.characters(categories=ALL_BUT_CC), min_size=1, max_size=16)
specials = st.lists(
    st.sampled_from(["\\", ",", "=", " ", '"', "'", "#", "\\\\", "\\,", "é", "\U0001f9ca", "冷"]),
    min_size=1,
    max_size=8,
).map("".join)
"""Runs of what line protocol escapes (and escape-like text), where trailing backslashes live."""
names = st.one_of(text, specials).filter(lambda s: not s.startswith("#"))
tag_values = st.one_of(text, specials)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, tag_values, max_size=4),
    fields=st.dictionaries(names, values, min_size=1, max_size=5),
    ts=st.integers(-(2**63), 2**63 - 1),
)
@example(
    measurement="m\\", tags={"device": "trail\\", "site": "odd-site"}, fields={"f\\": 1.0}, ts=1
)
@example(measurement="m", tags={"site": "site-trail\\"}, fields={"v": 1.0}, ts=1)
@example(measurement="m\\ x", tags={"d": "b\\,c", "e": "\\=\\ \\\\"}, fields={"s": 'q"\\'}, ts=0)
def test_encode_parse_round_trip(measurement, tags, fields, ts):
    line = encode(Reading(measurement, tags, fields, ts))
    m, t, f, parsed_ts = parse_line(line)
    assert (m, t, parsed_ts) == (measurement, tags, ts)
    assert f.keys() == fields.keys()
    for k, v in fields.items():
        if isinstance(v, float):
            assert f[k] == v or (math.isclose(f[k], v))
        else:
            assert f[k] == v and type(f[k]) is type(v)


@given(value=tag_values)
@example(value="trail\\")
@example(value="b\\,c")
@example(value="\\")
@example(value="\\\\ ")
def test_any_tag_value_round_trips_next_to_other_tags(value):
    """The tag after it (sorted) is never swallowed, whatever the value ends with."""
    tags = {"device": value, "site": "odd-site", "asset": "a"}
    r = Reading("coldchain", tags, {"temp_c": 1.5}, 1_700_000_000_000_000_000)
    assert parse_line(encode(r))[1] == tags


def test_known_lines():
    r = Reading(
        "coldchain",
        {"site": "s 1", "device": "d,1"},
        {"temp_c": 5.2, "door_open": False},
        1_700_000_000_000_000_000,
    )
    assert (
        encode(r)
        == r"coldchain,device=d\,1,site=s\ 1 temp_c=5.2,door_open=false 1700000000000000000"
    )
    assert decode(encode(r)).fields == {"temp_c": 5.2, "door_open": False}
    r = Reading("coldchain", {"device": "trail\\", "site": "odd-site"}, {"t": 1.0}, 1)
    assert encode(r) == "coldchain,device=trail\\\\,site=odd-site t=1.0 1"
    r = Reading("m,x y=z", {"k=": "a\\,b"}, {"s": 'say "hi"\\\nbye'}, 2)
    assert encode(r) == 'm\\,x\\ y=z,k\\==a\\\\\\,b s="say \\"hi\\"\\\\\\nbye" 2'
    assert decode(encode(r)).fields == {"s": 'say "hi"\\\nbye'}


@pytest.mark.parametrize(
    ("line", "tags"),
    [
        ("m,t=a\\b f=1", {"t": "a\\b"}),  # before another character a backslash is literal
        ("m,t=a\\\\b f=1", {"t": "a\\b"}),  # an escaped backslash is one backslash
        ("m,t=a\\\\ f=1", {"t": "a\\"}),  # ... also at the end
        ("m,t=a\\\\\\,b f=1", {"t": "a\\,b"}),
        ("m,t=a\\ b,u=\\= f=1", {"t": "a b", "u": "="}),
        ("m,t=\u00e9\u2028\\x f=1", {"t": "\u00e9\u2028\\x"}),
    ],
)
def test_unescaping_follows_the_reference(line, tags):
    assert parse_line(line)[1] == tags


@pytest.mark.parametrize(
    ("reading", "why"),
    [
        (Reading("m", {"device": "a\nb"}, {"v": 1.0}, 1), "tag 'device' contains a control"),
        (Reading("m", {"device": "a\x00"}, {"v": 1.0}, 1), "(U+0000)"),
        (Reading("m", {"d\x85": "x"}, {"v": 1.0}, 1), "tag key 'd\\x85' contains a control"),
        (Reading("m\t", {}, {"v": 1.0}, 1), "measurement contains a control character (U+0009)"),
        (Reading("m", {}, {"v\x1b": 1.0}, 1), "field key 'v\\x1b' contains a control character"),
        (Reading("m", {"d": "\ud800"}, {"v": 1.0}, 1), "lone surrogate (U+D800)"),
        (Reading("", {}, {"v": 1.0}, 1), "measurement is empty"),
        (Reading("m", {}, {"v": float("nan")}, 1), "not finite"),
        (Reading("m", {}, {"v": 2**63}, 1), "outside the int64 range"),
        (Reading("m", {}, {"v": None}, 1), "type NoneType"),  # type: ignore[dict-item]
        (Reading("m", {}, {}, 1), "at least one field"),
        (Reading("m", {}, {"v": 1.0}, 2**63), "64-bit integer"),
    ],
)  # fmt: skip
def test_what_line_protocol_cannot_carry_is_refused(reading, why):
    with pytest.raises(LineProtocolError, match=None) as e:
        encode(reading)
    assert why in str(e.value)


@pytest.mark.parametrize(
    "line",
    [
        "m",
        "m a",
        "m a=",
        "m =1",
        "m,t a=1",
        "m a=1 notatime",
        'm a="open',
        "m a=nan",
        "m a=inf",
        "m a=1e400",
        "m a=1_000",
        "m a=9223372036854775808i",
        "m a=-9223372036854775809i",
        "m a=18446744073709551616u",
        "m a=-1u",
        "m a=1 9223372036854775808",
        "m a=1 +-5",
        "m a=1 2 3",
    ],
)
def test_bad_lines_refused(line):
    with pytest.raises(LineProtocolError):
        parse_line(line)


def test_integer_range_edges_parse():
    assert parse_line("m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u")[
        2
    ] == {"a": 2**63 - 1, "b": -(2**63), "c": 2**64 - 1}


def test_non_finite_not_encoded():
    with pytest.raises(LineProtocolError):
        encode(Reading("m", {}, {"v": float("nan")}, 1))
