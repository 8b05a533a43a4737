"""The port of Grafana's InfluxQL expansion the dashboard tests rely on (tests/grafana_influxql.py),
checked against what Grafana's code does for known inputs and, for the regexes, against Python's
regex engine."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tests.grafana_influxql import (
    ALL,
    Var,
    annotations,
    escape_regex,
    expand,
    format_interval,
    interval_ms,
)

F, T = 1_700_000_000_000, 1_700_003_600_000


def test_expansion_as_grafana_does_it() -> None:
    v = {
        "site": Var("site", ["north", "a.b/c"], ["north", "south", "a.b/c"], multi=True),
        "one": Var("one", "x.y"),
        "num": Var("num", "10.0.0.1", multi=True),
        "all": Var("all", ALL, ["a", "b"], multi=True),
        "allc": Var("allc", ALL, ["a", "b"], multi=True, all_value=".*"),
    }
    q = (
        'SELECT * FROM m WHERE $timeFilter AND "site" =~ /^$site$/ AND "o" = \'$one\' AND '
        '"r" =~ /^$one$/ AND n =~ /^$num$/ AND a =~ /^$all$/ AND c =~ /^$allc$/ '
        "GROUP BY time($__interval) LIMIT $__interval_ms"
    )
    assert expand(q, v, F, T, max_data_points=1000) == (
        "SELECT * FROM m WHERE time >= 1700000000000ms and time <= 1700003600000ms AND "
        '"site" =~ /^(north|a\\.b\\/c)$/ AND "o" = \'x\\.y\' AND "r" =~ /^x\\.y$/ AND '
        "n =~ /^10.0.0.1$/ AND a =~ /^(a|b)$/ AND c =~ /^.*$/ GROUP BY time(5s) LIMIT 5000"
    )


def test_intervals_as_grafana_computes_them() -> None:
    assert interval_ms(F, T, 1000, None) == 5000  # 3.6 s rounds to 5 s
    assert interval_ms(F, T, 100, None) == 30_000
    assert interval_ms(F, T, 1000, "1m") == 60_000  # the panel's min interval
    assert interval_ms(F, F + 7 * 86_400_000, 100, None) == 7_200_000
    assert format_interval(90_000) == "1m" and format_interval(604_800_000) == "7d"
    assert format_interval(0) == "1ms"


# Grafana's backend replaces "$timeFilter", "$interval"... anywhere in the text, also inside a
# value the frontend put there: no value may hold one (device names do not)
VALUE = st.text(min_size=1, max_size=12).filter(
    lambda v: not any(m in v for m in ("$timeFilter", "$interval", "$__interval"))
)


@given(st.lists(VALUE, min_size=1, max_size=5, unique=True))
def test_several_values_match_exactly_themselves(values: list[str]) -> None:
    v = {"x": Var("x", values, values, multi=True)}
    q = expand('"t" =~ /^$x$/', v, F, T)
    pattern = re.fullmatch(r'"t" =~ /(.*)/', q, re.S)
    assert pattern is not None
    regex = re.compile(pattern.group(1).replace("\\/", "/"), re.S)
    for value in values:
        assert regex.fullmatch(value)
    assert not regex.fullmatch("".join(values) + "\x00")
    assert escape_regex("a.b") == "a\\.b"


def test_annotation_columns_as_grafana_maps_them() -> None:
    target = {
        "titleColumn": "alert.rule",
        "textColumn": "message",
        "tagsColumn": "severity,source",
        "timeEndColumn": "alert.end_ms",
    }
    result = {
        "series": [
            {
                "name": "alert",
                "columns": ["time", "message", "end_ms", "rule", "severity", "source"],
                "values": [
                    [1000, "hot", 5000, "p.high", "high", "a/b/c"],
                    [2000, "still hot", 0, "p.high", "high", "a/b/d"],
                    [3000, None, 7000, "p.high", "high", "a/b/e"],  # an empty column
                ],
            }
        ]
    }
    first, second = annotations(target, result)
    assert (first.time, first.time_end, first.title, first.text) == (1000, 5000, "p.high", "hot")
    assert first.tags == ["high", "a/b/c"] and first.is_region
    assert second.time_end == 0 and not second.is_region  # still active: a marker
