"""InfluxQL text for the dashboards, built from the schema the writer uses.

InfluxQL is the query language InfluxDB 1.x, 2.x (through its v1 API and DBRP mappings) and 3.x
share, and Grafana's InfluxDB data source speaks it to all three. Every name a query reads comes
from a `gateway.core.schema.Measurement` through `field()` / `tag()`, so a field or tag the writer
does not produce fails here, when the dashboards are generated, instead of showing up in Grafana
as an empty panel.

Grafana fills in the macros: `$timeFilter` (the time range), `$__interval` (the display interval)
and the dashboard variables. Every variable is matched as a regex, `"tag" =~ /^$var$/`: Grafana
escapes each selected value and joins several (or "All") as `(a|b)`, so multi-select works and a
value with dots or slashes matches only itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gateway.core.schema import Measurement

TIME_FILTER = "$timeFilter"
INTERVAL = "$__interval"


class SchemaError(ValueError):
    """A query asked for a field or tag that the measurement does not have."""


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(m: Measurement, fields: Iterable[str], tags: Iterable[str]) -> None:
    bad_fields = [f for f in fields if f not in m.fields]
    bad_tags = [t for t in tags if t not in m.tags]
    if bad_fields or bad_tags:
        raise SchemaError(
            f"measurement {m.name!r} has no field(s) {bad_fields} / tag(s) {bad_tags}; "
            f"fields are {list(m.fields)}, tags are {list(m.tags)}"
        )


def field(m: Measurement, name: str) -> str:
    """A field of `m`, checked and quoted."""
    _check(m, [name], ())
    return ident(name)


def tag(m: Measurement, name: str) -> str:
    """A tag of `m`, checked and quoted."""
    _check(m, (), [name])
    return ident(name)


def match(m: Measurement, tags: Mapping[str, str]) -> list[str]:
    """`"tag" =~ /^$var$/` for each (tag, dashboard variable) pair."""
    return [f"{tag(m, t)} =~ /^${var}$/" for t, var in tags.items()]


def where(
    m: Measurement,
    tags: Mapping[str, str] | None = None,
    conditions: Sequence[str] = (),
    *,
    time: str = TIME_FILTER,
) -> str:
    parts = [time, *match(m, tags or {}), *conditions]
    return "WHERE " + " AND ".join(p for p in parts if p)


def select(
    m: Measurement,
    exprs: Sequence[str],
    tags: Mapping[str, str] | None = None,
    *,
    conditions: Sequence[str] = (),
    group_by: Sequence[str] = (),
    interval: bool = False,
    fill: str | None = None,
    time: str = TIME_FILTER,
) -> str:
    """`SELECT exprs FROM m WHERE time AND tag filters AND conditions GROUP BY ...`.

    `tags` maps a tag of `m` to the dashboard variable that filters it; `group_by` names tags
    of `m`; `interval` groups by Grafana's display interval first.
    """
    groups = [f"time({INTERVAL})"] if interval else []
    groups += [tag(m, t) for t in group_by]
    q = f"SELECT {', '.join(exprs)} FROM {ident(m.name)} {where(m, tags, conditions, time=time)}"
    if groups:
        q += " GROUP BY " + ", ".join(groups)
    if fill is not None:
        q += f" fill({fill})"
    return q


def subquery(
    outer: Sequence[str],
    inner: str,
    m: Measurement,
    *,
    conditions: Sequence[str] = (),
    group_by: Sequence[str] = (),
) -> str:
    """`SELECT outer FROM (inner) [WHERE conditions] [GROUP BY tags of m]`."""
    q = f"SELECT {', '.join(outer)} FROM ({inner})"
    if conditions:
        q += " WHERE " + " AND ".join(conditions)
    if group_by:
        q += " GROUP BY " + ", ".join(tag(m, t) for t in group_by)
    return q


def tag_values(m: Measurement, key: str, tags: Mapping[str, str] | None = None) -> str:
    """A template-variable query: the values of tag `key` in `m`, narrowed by other variables."""
    q = f"SHOW TAG VALUES FROM {ident(m.name)} WITH KEY = {tag(m, key)}"
    conditions = match(m, tags or {})
    if conditions:
        q += " WHERE " + " AND ".join(conditions)
    return q
