from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.lineprotocol import LineProtocolError, decode, encode, parse_line
from gateway.core.reading import Reading

names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith("#") and s.strip() == s and s != "")
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, values, min_size=1, max_size=5),
    ts=st.integers(0, 2**62),
)
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


def test_known_line():
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
        "m a=1 2 3",
    ],
)
def test_bad_lines_refused(line):
    with pytest.raises(LineProtocolError):
        parse_line(line)


def test_non_finite_not_encoded():
    with pytest.raises(LineProtocolError):
        encode(Reading("m", {}, {"v": float("nan")}, 1))
