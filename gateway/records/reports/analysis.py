"""One logger's record judged against a product's limits: the building block of every report.

`analyse_device(device, points, limits, since, until)` takes a device's readings (event time,
fields, tags) and returns its temperature statistics (time-weighted mean, MKT), time out of
range per band, humidity statistics, excursions (start, end, duration, peak) and the record's
completeness against China's GSP cadences, with its gaps. Pure; shipment and lot reports call it.

Conventions (alert_rules/weighting.py, alert_rules/completeness.py): each reading holds its value
until the next one, but never longer than the device's logging interval nor the rules' `max_gap`;
an excursion starts at the first reading beyond a range limit and ends at the first reading back
inside (or when the last reading beyond stops holding); it lasts the time its readings held.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alert_rules import Band, ProfileLimits
from alert_rules.completeness import Completeness, completeness
from alert_rules.mkt import mkt_c
from alert_rules.weighting import hold_ns, learned_interval_ns
from gateway.core.reading import FieldValue
from gateway.core.standards import GSP_RECORD_OUT_OF_RANGE_S, GSP_RECORD_TRANSPORT_S

TEMP = "temp_c"
HUMIDITY = "rh_pct"
SERIAL_TAGS = ("serial", "logger_serial", "sn")
"""Tags that carry a logger's serial number (a subscription's static tags or a topic segment)."""

Point = tuple[int, Mapping[str, FieldValue], Mapping[str, str]]
"""(event time ns, fields, tags) of one reading."""


def band_label(b: Band, unit: str = "°C") -> str:
    """A band as the report names it: '> 8 °C'."""
    return f"{b.symbol} {b.limit:g} {unit}".rstrip()


@dataclass(slots=True)
class SeriesStats:
    device: str
    measurement: str
    n: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    mkt: float | None = None
    held_s: float = 0.0
    band_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Excursion:
    device: str
    side: str
    """'high' or 'low'."""
    limit: float
    start_ns: int
    end_ns: int
    duration_s: float
    """Time the readings beyond the limit held (gaps in the record not counted)."""
    peak: float


@dataclass(slots=True)
class DeviceAnalysis:
    device: str
    measurement: str
    temp: SeriesStats
    humidity: SeriesStats | None
    """None: the logger records no humidity."""
    excursions: list[Excursion]
    completeness: Completeness
    interval_s: float | None
    """The logging interval, learned as the median spacing of its readings."""
    serial: str | None


def _numbers(points: Sequence[Point], fld: str) -> list[tuple[int, float]]:
    out = []
    for ts, fields, _tags in points:
        v = fields.get(fld)
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        fv = float(v)
        if math.isfinite(fv):
            out.append((ts, fv))
    out.sort()
    return out


def series_stats(
    device: str,
    measurement: str,
    pts: Sequence[tuple[int, float]],
    limits: ProfileLimits,
    unit: str = "°C",
    with_mkt: bool = True,
) -> SeriesStats:
    """Statistics of one field's sorted (ts, value) points, with time beyond each band."""
    st = SeriesStats(device, measurement, n=len(pts))
    bands = [(b, band_label(b, unit)) for b in limits.bands]
    st.band_s = {label: 0.0 for _b, label in bands}
    if not pts:
        return st
    st.first_ns, st.last_ns = pts[0][0], pts[-1][0]
    values = [v for _, v in pts]
    st.min, st.max = min(values), max(values)
    holds = [h / 1e9 for h in hold_ns([ts for ts, _ in pts], limits.max_gap_ns)]
    for (_ts, v), hold in zip(pts, holds, strict=True):
        for b, label in bands:
            if b.beyond(v):
                st.band_s[label] += hold
    st.held_s = sum(holds)
    weights = holds if st.held_s > 0 else [1.0] * len(values)
    st.mean = math.fsum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)
    if with_mkt:
        st.mkt = mkt_c(values, weights, delta_h=limits.delta_h)
    return st


def _range_bands(limits: ProfileLimits) -> tuple[Band | None, Band | None]:
    high = next((b for b in limits.bands if b.op in (">", ">=") and b.limit == limits.high), None)
    low = next((b for b in limits.bands if b.op in ("<", "<=") and b.limit == limits.low), None)
    return high, low


def out_of_range(limits: ProfileLimits) -> Any:
    """Predicate: a value beyond the profile's range (None when the profile sets none)."""
    high, low = _range_bands(limits)
    if high is None and low is None:
        return None
    return lambda v: (high is not None and high.beyond(v)) or (low is not None and low.beyond(v))


def excursions(
    device: str, pts: Sequence[tuple[int, float]], limits: ProfileLimits
) -> list[Excursion]:
    """Runs of readings beyond the profile's range limits, in time order."""
    high, low = _range_bands(limits)
    if not pts or (high is None and low is None):
        return []
    holds = hold_ns([ts for ts, _ in pts], limits.max_gap_ns)
    out: list[Excursion] = []
    run: list[int] = []
    side: str | None = None

    def close(next_i: int | None) -> None:
        first, last = run[0], run[-1]
        band = high if side == "high" else low
        assert band is not None
        end = pts[last][0] + holds[last]
        if next_i is not None and pts[next_i][0] - pts[last][0] <= holds[last]:
            end = pts[next_i][0]
        values = [pts[i][1] for i in run]
        out.append(
            Excursion(
                device,
                side or "",
                band.limit,
                pts[first][0],
                end,
                sum(holds[i] for i in run) / 1e9,
                max(values) if side == "high" else min(values),
            )
        )

    for i, (_ts, v) in enumerate(pts):
        now = "high" if high and high.beyond(v) else "low" if low and low.beyond(v) else None
        if run and now != side:
            close(i)
            run = []
        if now is not None:
            run.append(i)
            side = now
    if run:
        close(None)
    return out


def analyse_device(
    device: str,
    measurement: str,
    points: Sequence[Point],
    limits: ProfileLimits,
    since_ns: int,
    until_ns: int,
    *,
    humidity_limits: ProfileLimits | None = None,
    cadence_s: float = GSP_RECORD_TRANSPORT_S,
    out_of_range_cadence_s: float = GSP_RECORD_OUT_OF_RANGE_S,
) -> DeviceAnalysis:
    """Everything a report says about one device over [since, until)."""
    temps = _numbers(points, TEMP)
    temp = series_stats(device, measurement, temps, limits)
    rh = _numbers(points, HUMIDITY)
    humidity = None
    if rh:
        hl = humidity_limits or ProfileLimits(
            limits.profile, HUMIDITY, max_gap_ns=limits.max_gap_ns
        )
        humidity = series_stats(device, measurement, rh, hl, unit="%RH", with_mkt=False)
    oor = out_of_range(limits)
    done = completeness(
        temps,
        since_ns,
        max(until_ns, since_ns),
        round(cadence_s * 1e9),
        oor,
        round(out_of_range_cadence_s * 1e9),
    )
    interval = learned_interval_ns([ts for ts, _ in temps])
    serial = None
    for _ts, _f, tags in points:
        serial = next((tags[t] for t in SERIAL_TAGS if tags.get(t)), None)
        if serial:
            break
    return DeviceAnalysis(
        device,
        measurement,
        temp,
        humidity,
        excursions(device, temps, limits),
        done,
        interval / 1e9 if interval else None,
        serial,
    )


def worst(devices: Sequence[DeviceAnalysis], label: str) -> SeriesStats:
    """The summary row: min of minimums, max of maximums, highest MKT, longest time per band."""
    series = [d.temp for d in devices]
    summary = SeriesStats(label, "", n=sum(s.n for s in series))
    if series:
        summary.band_s = {k: 0.0 for k in series[0].band_s}
    present = [s for s in series if s.n]
    if not present:
        return summary
    summary.first_ns = min(s.first_ns for s in present if s.first_ns is not None)
    summary.last_ns = max(s.last_ns for s in present if s.last_ns is not None)
    summary.min = min(s.min for s in present if s.min is not None)
    summary.max = max(s.max for s in present if s.max is not None)
    total = sum(s.held_s for s in present)
    if total > 0:
        summary.mean = sum((s.mean or 0.0) * s.held_s for s in present) / total
    else:
        summary.mean = sum(s.mean or 0.0 for s in present) / len(present)
    summary.mkt = max(s.mkt for s in present if s.mkt is not None)
    summary.held_s = max(s.held_s for s in present)
    for label in summary.band_s:
        summary.band_s[label] = max(s.band_s.get(label, 0.0) for s in present)
    return summary
