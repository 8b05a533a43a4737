"""Flux query text for the dashboards, built from the schema the writer uses.

Every query starts from a `gateway.core.schema.Measurement`, so a field or tag that the writer
does not produce fails here, when the dashboards are generated, instead of showing up in Grafana
as an empty panel. Queries use the data source's `v.defaultBucket`, so the bucket is configured
once, on the data source, from VIGIL_INFLUX_BUCKET.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gateway.core.schema import Measurement


class SchemaError(ValueError):
    """A query asked for a field or tag that the measurement does not have."""


def _check(m: Measurement, fields: Iterable[str], tags: Iterable[str]) -> None:
    bad_fields = [f for f in fields if f not in m.fields]
    bad_tags = [t for t in tags if t not in m.tags]
    if bad_fields or bad_tags:
        raise SchemaError(
            f"measurement {m.name!r} has no field(s) {bad_fields} / tag(s) {bad_tags}; "
            f"fields are {list(m.fields)}, tags are {list(m.tags)}"
        )


def var_regex(variable: str) -> str:
    """A Flux regex literal matching a (multi-value) dashboard variable exactly."""
    return f"/^${{{variable}:regex}}$/"


def tag_match(tags: Mapping[str, str]) -> str:
    """`r.tag =~ /^${var:regex}$/` joined with `and`, one per (tag, variable) pair."""
    return " and ".join(f"r.{tag} =~ {var_regex(var)}" for tag, var in tags.items())


def select(
    m: Measurement,
    fields: Sequence[str],
    tags: Mapping[str, str] | None = None,
    *,
    range_: str = "range(start: v.timeRangeStart, stop: v.timeRangeStop)",
) -> str:
    """The usual head of a query: bucket, time range, measurement, fields, tag filters.

    `tags` maps a tag of `m` to the dashboard variable that filters it.
    """
    tags = dict(tags or {})
    _check(m, fields, tags)
    lines = [
        "from(bucket: v.defaultBucket)",
        f"  |> {range_}",
        f'  |> filter(fn: (r) => r._measurement == "{m.name}")',
    ]
    if fields:
        either = " or ".join(f'r._field == "{f}"' for f in fields)
        lines.append(f"  |> filter(fn: (r) => {either})")
    if tags:
        lines.append(f"  |> filter(fn: (r) => {tag_match(tags)})")
    return "\n".join(lines)


def pipe(head: str, *steps: str) -> str:
    """Append `|> step` lines to a query."""
    return head + "".join(f"\n  |> {s}" for s in steps)


def windowed(head: str, fn: str = "mean") -> str:
    """Downsample to Grafana's window so a month of 1-minute readings stays drawable."""
    return pipe(head, f"aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)")


def tag_values(
    m: Measurement,
    tag: str,
    tags: Mapping[str, str] | None = None,
    *,
    field: str | None = None,
) -> str:
    """A template-variable query: the values of `tag` in `m`, narrowed by other variables.

    With `field`, only series that write that field count (e.g. autoclaves are the equipment
    that writes f0_min).
    """
    tags = dict(tags or {})
    _check(m, [field] if field else (), [tag, *tags])
    predicate = f'r._measurement == "{m.name}"'
    if field:
        predicate += f' and r._field == "{field}"'
    if tags:
        predicate += f" and {tag_match(tags)}"
    return "\n".join(
        [
            'import "influxdata/influxdb/schema"',
            "",
            "schema.tagValues(",
            "  bucket: v.defaultBucket,",
            f'  tag: "{tag}",',
            f"  predicate: (r) => {predicate},",
            "  start: v.timeRangeStart,",
            ")",
        ]
    )


def fields_of(m: Measurement, *fields: str) -> tuple[str, ...]:
    """Name fields of `m`, checked, for use in hand-written query tails."""
    _check(m, fields, ())
    return fields


def tags_of(m: Measurement, *tags: str) -> tuple[str, ...]:
    """Name tags of `m`, checked, for use in hand-written query tails."""
    _check(m, (), tags)
    return tags
