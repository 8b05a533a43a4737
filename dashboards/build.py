"""The five vigil dashboards, defined with grafana-foundation-sdk, in InfluxQL.

`all_dashboards()` returns the dashboard models as plain JSON-able dicts keyed by uid; `vigil
dashboards export` writes them and `vigil dashboards push` uploads them. The committed copies in
dashboards/generated/ must equal what this module builds (a test checks it), so review a
dashboard change as a diff of both. Every panel query is run against a real InfluxDB by the test
suite, with Grafana's macros expanded the way Grafana expands them.

Limits shown on the panels (product band, F0, cleanroom grades, lyophilisation) are the published
ones from gateway.core.standards; they are build parameters, not dashboard variables, because
Grafana thresholds are numbers, not templated strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import influxql as iq
from dashboards.sdk import (
    DATASOURCE_TYPE,
    DATASOURCE_VARIABLE,
    DS_REF,
    InfluxQL,
    InfluxQLAnnotation,
    ResultFormat,
)
from gateway.core.schema import ALARM_KPI, ALERT, COLDCHAIN, COMPLETENESS, CYCLE, GATEWAY, PROCESS
from gateway.core.standards import (
    ANNEX1_MIN_DP_PA,
    ANNEX1_PARTICLE_LIMITS,
    F0_T_REF_C,
    F0_Z_C,
    MKT_DELTA_H_KJ_MOL,
    MKT_GAS_CONSTANT_KJ_MOL_K,
    STEAM_STERILISATION_C,
)

GENERATED_DIR = Path(__file__).parent / "generated"
DATASOURCE_UID = "vigil-influxdb"
"""The uid `vigil dashboards push` and the provisioning file give the InfluxDB data source."""
DATASOURCE_NAME = "Vigil InfluxDB"
DASHBOARD_TAG = "vigil"

Grade = Literal["A", "B", "C", "D"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Reference limits drawn on the panels."""

    band_low_c: float = 2.0
    band_high_c: float = 8.0
    mkt_dh_over_r_k: float = round(MKT_DELTA_H_KJ_MOL / MKT_GAS_CONSTANT_KJ_MOL_K, 6)
    sterilisation_c: float = STEAM_STERILISATION_C
    f0_target_min: float = 15.0
    dp_min_pa: float = ANNEX1_MIN_DP_PA
    cleanroom_grade: Grade = "B"
    cleanroom_state: Literal["at rest", "in operation"] = "in operation"
    lyo_freeze_c: float = -40.0
    lyo_primary_mbar: tuple[float, float] = (0.02, 1.0)
    battery_low_pct: tuple[int, ...] = (10, 20, 30)
    offline_after_min: int = 5
    """A gateway with no `vigil_gateway` heartbeat for this long shows offline (the gateway
    writes one every `gateway.metrics_interval_s`, 10 s by default)."""
    completeness_ok_pct: float = 99.0
    """Record completeness at or above this is green; below 90 % red."""

    def particles(self) -> tuple[float, float | None]:
        """(>=0.5 um, >=5 um) monitoring limits per m3 for the configured grade and state."""
        state = 0 if self.cleanroom_state == "at rest" else 1
        p05 = ANNEX1_PARTICLE_LIMITS[(self.cleanroom_grade, 0.5)][state]
        p5 = ANNEX1_PARTICLE_LIMITS[(self.cleanroom_grade, 5.0)][state]
        if p05 is None:
            raise ValueError(
                f"Annex 1 sets no particle limit for grade {self.cleanroom_grade} "
                f"{self.cleanroom_state}"
            )
        return p05, p5


DEFAULT_LIMITS = Limits()

# ---------------------------------------------------------------------------------------------
# Shared pieces

COLDCHAIN_TAGS = {"site": "site", "asset": "asset", "device": "device"}
DEVICE_NAME = "${__field.labels.site} / ${__field.labels.asset} / ${__field.labels.device}"
EQUIPMENT_NAME = "${__field.labels.equipment} ${__field.name}"
GATEWAY_NAME = "${__field.labels.gateway}"


@dataclass(frozen=True, slots=True)
class Q:
    """One panel target: InfluxQL text, how Grafana should shape the result, a legend alias."""

    query: str
    table: bool = False
    alias: str | None = None

    @property
    def result_format(self) -> ResultFormat:
        return "table" if self.table else "time_series"


def _datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("InfluxDB")
        .type(DATASOURCE_TYPE)
        .current(dm.VariableOption(text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def _tag_variable(
    name: str, label: str, query: str, *, multi: bool = True, all_matches_anything: bool = True
) -> db.QueryVariable:
    """A variable listing tag values. Multi-select with "All"; "All" is `.*` (any value, and
    series without the tag) unless the list itself is the filter."""
    var = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS_REF)
        .query(query)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        var = var.current(dm.VariableOption(text="All", value="$__all"))
        if all_matches_anything:
            var = var.all_value(".*")
    return var


def _custom_variable(
    name: str, label: str, values: Sequence[int], default: int
) -> db.CustomVariable:
    return (
        db.CustomVariable(name)
        .label(label)
        .values(",".join(str(v) for v in values))
        .current(dm.VariableOption(text=str(default), value=str(default)))
    )


ANNOTATION_TITLE = f"{ALERT.name}.rule"
ANNOTATION_TEXT = "message"
ANNOTATION_TAGS = "severity,source"
ANNOTATION_END = f"{ALERT.name}.end_ms"
"""Grafana's backend names annotation columns `<measurement>.<column>`; title and end match
exactly, text and tags by containment (dashboards.sdk.InfluxQLAnnotationTarget)."""


def _alerts_annotation(*path: str) -> db.AnnotationQuery:
    """Alerts from measurement `alert` whose source is one of the selected series, each drawn
    from the excursion's true start to its end (a marker while it is still active).

    The rules engine names an alert's source by the series' tags joined with "/":
    site/asset/device for cold chain, line/equipment/device for process. `path` lists the
    dashboard variables for those tags, in that order.
    """
    rule, severity, source = (iq.tag(ALERT, t) for t in ("rule", "severity", "source"))
    message, end_ms = iq.field(ALERT, "message"), iq.field(ALERT, "end_ms")
    source_regex = r"\/".join(f"${var}" for var in path)
    query = (
        f"SELECT {message}, {end_ms}, {rule}, {severity}, {source} FROM {iq.ident(ALERT.name)} "
        f"WHERE {iq.TIME_FILTER} AND {end_ms} >= 0 AND {source} =~ /^{source_regex}$/"
    )
    return (
        db.AnnotationQuery()
        .name("Alerts")
        .datasource(DS_REF)
        .enable(True)
        .icon_color("red")
        .target(
            InfluxQLAnnotation(
                query,
                title=ANNOTATION_TITLE,
                text=ANNOTATION_TEXT,
                tags=ANNOTATION_TAGS,
                time_end=ANNOTATION_END,
            )
        )
    )


def _steps(base: str, *steps: tuple[float, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [dm.Threshold(value=None, color=base)]
            + [dm.Threshold(value=v, color=c) for v, c in steps]
        )
    )


def _band(limits: Limits) -> db.ThresholdsConfig:
    """Red outside the product band, green inside: shaded behind the temperature lines."""
    return _steps("red", (limits.band_low_c, "green"), (limits.band_high_c, "red"))


def _completeness_steps(limits: Limits) -> db.ThresholdsConfig:
    return _steps("red", (90, "orange"), (limits.completeness_ok_pct, "green"))


def _targets(queries: Sequence[Q | str]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    out: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for i, q in enumerate(queries):
        t = q if isinstance(q, Q) else Q(q)
        out.append(InfluxQL(t.query, chr(ord("A") + i), t.result_format, t.alias))
    return out


def _mapping(*pairs: tuple[str, str, str]) -> dm.ValueMap:
    return dm.ValueMap(
        options={
            value: dm.ValueMappingResult(text=text, color=color, index=i)
            for i, (value, text, color) in enumerate(pairs)
        }
    )


def _at_least_one(text: str, color: str, index: int = 1) -> dm.RangeMap:
    return dm.RangeMap(
        options=dm.DashboardRangeMapOptions(
            from_val=1, to=None, result=dm.ValueMappingResult(text=text, color=color, index=index)
        )
    )


def _link(title: str, url: str) -> dict[str, Any]:
    return {"title": title, "url": url, "targetBlank": False}


def _timeseries(
    title: str,
    description: str,
    queries: Sequence[Q | str],
    *,
    unit: str,
    display: str,
    w: int = 12,
    h: int = 8,
    thresholds: db.ThresholdsConfig | None = None,
    threshold_style: cm.GraphThresholdsStyleMode = cm.GraphThresholdsStyleMode.OFF,
    log_scale: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS_REF)
        .targets(_targets(queries))
        .unit(unit)
        .display_name(display)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(0)
        .span_nulls(False)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.RIGHT)
            .calcs(["min", "max", "lastNotNull"])
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE))
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(threshold_style))
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    if log_scale:
        panel = panel.scale_distribution(
            cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10)
        )
    return panel


def _stat(
    title: str,
    description: str,
    query: Q | str,
    *,
    unit: str,
    display: str | None = None,
    w: int = 6,
    h: int = 4,
    thresholds: db.ThresholdsConfig | None = None,
    calc: str = "lastNotNull",
    decimals: float | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS_REF)
        .targets(_targets([query]))
        .unit(unit)
        .span(w)
        .height(h)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs([calc]).values(False))
        .thresholds(thresholds if thresholds is not None else _steps("text"))
    )
    if display is not None:
        panel = panel.display_name(display)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def _table(
    title: str, description: str, queries: Sequence[Q | str], *, w: int = 12, h: int = 8
) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DS_REF)
        .targets(_targets([q if isinstance(q, Q) else Q(q, table=True) for q in queries]))
        .span(w)
        .height(h)
        .no_value("none")
    )


def _dashboard(uid: str, title: str, description: str, time_from: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([DASHBOARD_TAG])
        .readonly()
        .timezone("utc")
        .time(time_from, "now")
        .refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("Vigil dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(_datasource_variable())
    )


def _fix_ids(model: dm.Dashboard) -> dm.Dashboard:
    """Number panels 1..n in layout order, so ids are stable across builds."""
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    return model


# ---------------------------------------------------------------------------------------------
# Cold-chain overview


def coldchain_overview(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    C = COLDCHAIN
    temp_c, rh_pct, battery_pct = (iq.field(C, f) for f in ("temp_c", "rh_pct", "battery_pct"))
    door_open, power_ok = iq.field(C, "door_open"), iq.field(C, "power_ok")
    every = ("site", "asset", "device")
    F = COLDCHAIN_TAGS
    lo, hi = limits.band_low_c, limits.band_high_c
    outside = f"({temp_c} < {lo:g} OR {temp_c} > {hi:g})"

    temperature = iq.select(
        C, [f"mean({temp_c}) AS {temp_c}"], F, group_by=every, interval=True, fill="none"
    )
    humidity = iq.select(
        C, [f"mean({rh_pct}) AS {rh_pct}"], F, group_by=every, interval=True, fill="none"
    )
    lowest = iq.select(C, [f"min({temp_c}) AS {temp_c}"], F)
    highest = iq.select(C, [f"max({temp_c}) AS {temp_c}"], F)
    outside_count = iq.select(C, [f'count({temp_c}) AS "readings"'], F, conditions=[outside])
    reporting = iq.subquery(
        ['count("last_temp_c") AS "loggers"'],
        iq.select(C, [f'last({temp_c}) AS "last_temp_c"'], F, group_by=every),
        C,
    )
    last_reading = iq.select(
        C,
        [f"last({temp_c}) AS {temp_c}", f"last({battery_pct}) AS {battery_pct}"],
        F,
        group_by=every,
    )
    low_battery = iq.subquery(
        [battery_pct],
        iq.select(C, [f"last({battery_pct}) AS {battery_pct}"], F, group_by=every),
        C,
        conditions=[f"{battery_pct} < $battery_low"],
        group_by=every,
    )

    def count_when(fld: str, cond: str) -> str:
        return iq.select(
            C,
            [f"count({fld}) AS {fld}"],
            F,
            conditions=[cond],
            group_by=every,
            interval=True,
            fill="0",
        )

    doors = count_when(door_open, f"{door_open} = true")
    power = count_when(power_ok, f"{power_ok} = false")

    door_power = (
        statetimeline.Panel()
        .title("Doors and power")
        .description(
            "Per logger that reported one in the time range: door openings (open when any "
            "reading in the interval had the door open) and mains power failures (failure when "
            "any reading in the interval reported one)."
        )
        .datasource(DS_REF)
        .targets(_targets([doors, power]))
        .display_name(f"{DEVICE_NAME} ${{__field.name}}")
        .span(24)
        .height(8)
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .override_by_query(
            "A",
            [
                dm.DynamicConfigValue(
                    id_val="mappings",
                    value=[
                        _mapping(("0", "closed", "green")),
                        _at_least_one("open", "orange"),
                    ],
                )
            ],
        )
        .override_by_query(
            "B",
            [
                dm.DynamicConfigValue(
                    id_val="mappings",
                    value=[
                        _mapping(("0", "power ok", "green")),
                        _at_least_one("power failure", "red"),
                    ],
                )
            ],
        )
    )

    band = f"{lo:g}-{hi:g} °C"
    return (
        _dashboard(
            "vigil-coldchain-overview",
            "Vigil · Cold-chain overview",
            "Storage and transport temperatures per site and asset, against the product band.",
            "now-24h",
        )
        .with_variable(_tag_variable("site", "Site", iq.tag_values(C, "site")))
        .with_variable(_tag_variable("asset", "Asset", iq.tag_values(C, "asset", {"site": "site"})))
        .with_variable(
            _tag_variable(
                "device",
                "Device",
                iq.tag_values(C, "device", {"site": "site", "asset": "asset"}),
            )
        )
        .with_variable(
            _custom_variable("battery_low", "Low battery below (%)", limits.battery_low_pct, 20)
        )
        .annotation(_alerts_annotation("site", "asset", "device"))
        .with_row(db.Row("Temperature"))
        .with_panel(
            _timeseries(
                "Temperature by site / asset",
                f"Mean per display interval of each logger's temp_c. Shaded: product band {band} "
                "(green inside, red outside). Red regions: alerts, from the excursion's start "
                "to its end.",
                [temperature],
                unit="celsius",
                display=DEVICE_NAME,
                w=24,
                h=10,
                thresholds=_band(limits),
                threshold_style=cm.GraphThresholdsStyleMode.LINE_AND_AREA,
            )
        )
        .with_panel(
            _stat(
                "Lowest temperature",
                "Lowest single reading in the time range, all selected loggers.",
                lowest,
                unit="celsius",
                thresholds=_band(limits),
                decimals=1,
            )
        )
        .with_panel(
            _stat(
                "Highest temperature",
                "Highest single reading in the time range, all selected loggers.",
                highest,
                unit="celsius",
                thresholds=_band(limits),
                decimals=1,
            )
        )
        .with_panel(
            _stat(
                "Readings outside band",
                f"Number of temp_c readings outside {band} in the time range.",
                outside_count,
                unit="none",
                thresholds=_steps("green", (1, "red")),
            )
        )
        .with_panel(
            _stat(
                "Loggers reporting",
                "Loggers with at least one temperature reading in the time range.",
                reporting,
                unit="none",
            )
        )
        .with_panel(
            _timeseries(
                "Relative humidity",
                "Mean per display interval of each logger's rh_pct.",
                [humidity],
                unit="percent",
                display=DEVICE_NAME,
                w=24,
            )
        )
        .with_row(db.Row("Device health"))
        .with_panel(
            _table(
                "Last reading per logger",
                "Each logger's last temperature and battery reading in the time range, oldest "
                "first: a logger at the top that has been silent for long is stale (the "
                "gateway's stale rule alerts on it).",
                [last_reading],
            )
            .sort_by([cb.TableSortByFieldState().display_name("Time").desc(False)])
            .override_by_name(
                "Time",
                [
                    dm.DynamicConfigValue(id_val="unit", value="dateTimeFromNow"),
                    dm.DynamicConfigValue(id_val="displayName", value="last reading"),
                ],
            )
        )
        .with_panel(
            _table(
                "Low battery",
                "Loggers whose latest battery_pct in the time range is below 'Low battery below'.",
                [low_battery],
            )
        )
        .with_panel(door_power)
    )


# ---------------------------------------------------------------------------------------------
# Shipment


def shipment(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    C = COLDCHAIN
    temp_c, battery_pct, door_open = (
        iq.field(C, f) for f in ("temp_c", "battery_pct", "door_open")
    )
    F = {"site": "site", "asset": "asset", "shipment": "shipment", "device": "device"}
    lo, hi = limits.band_low_c, limits.band_high_c
    band = f"{lo:g}-{hi:g} °C"
    dh_r = f"{limits.mkt_dh_over_r_k:.1f}"
    per = ("shipment", "device")  # several trips can be selected: each logger per trip
    on_trip = [f"{iq.tag(C, 'shipment')} != ''"]  # shipment readings only, whatever is selected

    trip = iq.select(
        C,
        [f"mean({temp_c}) AS {temp_c}"],
        F,
        conditions=on_trip,
        group_by=per,
        interval=True,
        fill="none",
    )
    mkt = iq.subquery(
        [f'{dh_r} / (0 - ln(mean("x"))) - 273.15 AS "mkt_c"'],
        iq.select(
            C,
            [f'exp(-{dh_r} / ({temp_c} + 273.15)) AS "x"'],
            F,
            conditions=on_trip,
            group_by=per,
        ),
        C,
        group_by=per,
    )
    # 1 for a reading above `hi` or below `lo`, else 0: InfluxQL has no conditionals, and
    # x / 0 is 0 in InfluxQL, so a reading exactly on a limit counts as inside
    above = f"(({temp_c} - {hi:g}) + abs({temp_c} - {hi:g})) / (2 * abs({temp_c} - {hi:g}))"
    below = f"(({lo:g} - {temp_c}) + abs({lo:g} - {temp_c})) / (2 * abs({lo:g} - {temp_c}))"
    out_of_range = iq.subquery(
        ['integral("outside", 1s) AS "out_of_range_s"'],
        iq.select(C, [f'{above} + {below} AS "outside"'], F, conditions=on_trip, group_by=per),
        C,
        group_by=per,
    )
    extremes = [
        iq.select(C, [f"{fn}({temp_c}) AS {temp_c}"], F, conditions=on_trip, group_by=per)
        for fn in ("min", "max")
    ]
    battery = iq.select(
        C,
        [f"mean({battery_pct}) AS {battery_pct}"],
        F,
        conditions=on_trip,
        group_by=per,
        interval=True,
        fill="none",
    )
    doors = iq.select(
        C,
        [f"count({door_open}) AS {door_open}"],
        F,
        conditions=[*on_trip, f"{door_open} = true"],
        group_by=per,
        interval=True,
        fill="0",
    )
    logger = "${__field.labels.shipment} ${__field.labels.device}"

    return (
        _dashboard(
            "vigil-shipment",
            "Vigil · Shipment",
            "Trucks' trips: temperature, mean kinetic temperature and time out of range, per "
            "shipment and logger. Set the time range to cover the trips.",
            "now-7d",
        )
        .with_variable(_tag_variable("site", "Site", iq.tag_values(C, "site")))
        .with_variable(_tag_variable("asset", "Truck", iq.tag_values(C, "asset", {"site": "site"})))
        .with_variable(
            _tag_variable(
                "shipment",
                "Shipment",
                iq.tag_values(C, "shipment", {"site": "site", "asset": "asset"}),
                all_matches_anything=False,  # All: every trip listed, never untagged readings
            )
        )
        .with_variable(
            _tag_variable(
                "device",
                "Logger",
                iq.tag_values(
                    C, "device", {"site": "site", "asset": "asset", "shipment": "shipment"}
                ),
            )
        )
        .annotation(_alerts_annotation("site", "asset", "device"))
        .with_row(db.Row("Trip"))
        .with_panel(
            _timeseries(
                "Trip temperature",
                f"temp_c of each logger on the truck while the shipment tag is set; product band "
                f"{band} shaded.",
                [trip],
                unit="celsius",
                display=logger,
                w=24,
                h=10,
                thresholds=_band(limits),
                threshold_style=cm.GraphThresholdsStyleMode.LINE_AND_AREA,
            )
        )
        .with_panel(
            _stat(
                "Mean kinetic temperature",
                "MKT per logger over the trip: (ΔH/R) / -ln(mean(exp(-ΔH/(R·T)))), ΔH/R = "
                f"{limits.mkt_dh_over_r_k:g} K, readings weighted equally (USP <1079.2>).",
                mkt,
                unit="celsius",
                display=logger,
                thresholds=_steps("green", (hi, "red")),
                decimals=2,
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Time out of range",
                f"Per logger, the time with temp_c outside {band}, by the trapezoid rule: an "
                "interval between two readings outside counts whole, one between a reading "
                "inside and one outside counts half.",
                out_of_range,
                unit="s",
                display=logger,
                thresholds=_steps("green", (1, "red")),
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Lowest temperature",
                "Lowest reading per logger during the trip.",
                extremes[0],
                unit="celsius",
                display=logger,
                thresholds=_band(limits),
                decimals=1,
                w=4,
            )
        )
        .with_panel(
            _stat(
                "Highest temperature",
                "Highest reading per logger during the trip.",
                extremes[1],
                unit="celsius",
                display=logger,
                thresholds=_band(limits),
                decimals=1,
                w=4,
            )
        )
        .with_row(db.Row("Logger status"))
        .with_panel(
            _timeseries(
                "Logger battery",
                "battery_pct per logger during the trip.",
                [battery],
                unit="percent",
                display=logger,
            )
        )
        .with_panel(
            statetimeline.Panel()
            .title("Door openings")
            .description(
                "Per logger that reported an opening: open when any reading in the interval had "
                "door_open true."
            )
            .datasource(DS_REF)
            .targets(_targets([doors]))
            .display_name(logger)
            .span(12)
            .height(8)
            .show_value(cm.VisibilityMode.NEVER)
            .mappings([_mapping(("0", "closed", "green")), _at_least_one("open", "orange")])
        )
    )


# ---------------------------------------------------------------------------------------------
# Production line


def production_line(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    P = PROCESS
    fields = {
        f: iq.field(P, f)
        for f in (
            "chamber_temp_c",
            "chamber_pressure_kpa",
            "f0_min",
            "dp_pa",
            "particles_05um_m3",
            "particles_5um_m3",
            "shelf_temp_c",
            "product_temp_c",
            "condenser_temp_c",
            "chamber_pressure_mbar",
            "fill_weight_g",
        )
    }
    F = {"line": "line", "equipment": "equipment", "device": "device", "batch": "batch"}
    per = ("equipment",)

    def series(*names: str, fn: str = "mean") -> str:
        """Each field per equipment and display interval. A panel reads fields that only one
        kind of equipment writes, so it shows only that kind."""
        exprs = [f"{fn}({fields[n]}) AS {fields[n]}" for n in names]
        return iq.select(P, exprs, F, group_by=per, interval=True, fill="none")

    cyc = {f: iq.field(CYCLE, f) for f in CYCLE.fields}
    cycles = iq.select(
        CYCLE,
        [cyc[f] for f in ("f0_min", "verdict", "hold_s", "duration_s", "alerts", "data_gaps")],
        F,
        group_by=("equipment", "batch"),
    )
    # one timeline row per equipment, batch and phase, marked where the equipment reported
    # readings in it; each kind is found by a field only it writes
    phase_markers = ("chamber_temp_c", "shelf_temp_c", "dp_pa", "fill_weight_g")
    phases = [
        iq.select(
            P,
            [f'count({fields[m]}) AS "readings"'],
            F,
            group_by=("equipment", "batch", "phase"),
            interval=True,
            fill="none",
        )
        for m in phase_markers
    ]
    p05, p5 = limits.particles()
    grade = f"grade {limits.cleanroom_grade} {limits.cleanroom_state}"
    lo_mbar, hi_mbar = limits.lyo_primary_mbar

    return (
        _dashboard(
            "vigil-production-line",
            "Vigil · Production line",
            "Autoclave cycles (F0, verdict, hold), batches and phases, cleanroom pressure and "
            "particles, freeze-dryer, per line.",
            "now-12h",
        )
        .with_variable(_tag_variable("line", "Line", iq.tag_values(P, "line")))
        .with_variable(
            _tag_variable("equipment", "Equipment", iq.tag_values(P, "equipment", {"line": "line"}))
        )
        .with_variable(
            _tag_variable(
                "device",
                "Device",
                iq.tag_values(P, "device", {"line": "line", "equipment": "equipment"}),
            )
        )
        .with_variable(
            _tag_variable(
                "batch",
                "Batch",
                iq.tag_values(P, "batch", {"line": "line", "equipment": "equipment"}),
            )
        )
        .annotation(_alerts_annotation("line", "equipment", "device"))
        .with_row(db.Row("Autoclave"))
        .with_panel(
            _timeseries(
                "Autoclave chamber temperature",
                "chamber_temp_c of the selected autoclaves; dashed line: "
                f"{limits.sterilisation_c:g} °C, the usual steam sterilisation hold temperature.",
                [series("chamber_temp_c")],
                unit="celsius",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("blue", (limits.sterilisation_c, "green")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
            )
        )
        .with_panel(
            _timeseries(
                "Autoclave chamber pressure",
                "chamber_pressure_kpa of the selected autoclaves.",
                [series("chamber_pressure_kpa")],
                unit="pressurekpa",
                display=EQUIPMENT_NAME,
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "F0",
                f"The PLC's accumulated lethality f0_min (minutes at {F0_T_REF_C:g} °C, z = "
                f"{F0_Z_C:g} °C), last value per interval; dashed line: "
                f"{limits.f0_target_min:g} min target.",
                [series("f0_min", fn="last")],
                unit="m",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("orange", (limits.f0_target_min, "green")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
            )
        )
        .with_panel(
            _table(
                "Cycles",
                "One row per finished cycle (measurement cycle, at its end): the F0 the gateway "
                "computed, the verdict (pass or fail, judged by the production rules), the hold "
                "time, the duration, alerts raised and data gaps during the cycle.",
                [cycles],
                w=24,
                h=6,
            )
            .override_by_name(
                "verdict",
                [
                    dm.DynamicConfigValue(
                        id_val="mappings",
                        value=[_mapping(("1", "PASS", "green"), ("0", "FAIL", "red"))],
                    ),
                    dm.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-background"}
                    ),
                ],
            )
            .override_by_name(
                "f0_min",
                [
                    dm.DynamicConfigValue(id_val="unit", value="m"),
                    dm.DynamicConfigValue(id_val="decimals", value=1),
                ],
            )
            .override_by_name("hold_s", [dm.DynamicConfigValue(id_val="unit", value="s")])
            .override_by_name("duration_s", [dm.DynamicConfigValue(id_val="unit", value="s")])
        )
        .with_panel(
            statetimeline.Panel()
            .title("Batch and phase")
            .description(
                "Per equipment, when it reported readings in each batch and phase (the batch "
                "and phase tags the PLC exposes)."
            )
            .datasource(DS_REF)
            .targets(_targets(phases))
            .display_name(
                "${__field.labels.equipment} ${__field.labels.batch} ${__field.labels.phase}"
            )
            .span(24)
            .height(8)
            .show_value(cm.VisibilityMode.NEVER)
            .mappings([_at_least_one("reporting", "blue", 0)])
        )
        .with_row(db.Row("Cleanroom"))
        .with_panel(
            _timeseries(
                "Differential pressure",
                f"dp_pa per room; red below {limits.dp_min_pa:g} Pa, the minimum between "
                "adjacent grades (EU GMP Annex 1).",
                [series("dp_pa")],
                unit="pressurepa",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("red", (limits.dp_min_pa, "green")),
                threshold_style=cm.GraphThresholdsStyleMode.LINE_AND_AREA,
            )
        )
        .with_panel(
            _timeseries(
                "Particles ≥ 0.5 µm",
                f"particles_05um_m3 per room (log scale); dashed line: {p05:,.0f}/m³, "
                f"{grade} limit (EU GMP Annex 1).",
                [series("particles_05um_m3")],
                unit="short",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("green", (p05, "red")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                log_scale=True,
            )
        )
        .with_panel(
            _timeseries(
                "Particles ≥ 5 µm",
                "particles_5um_m3 per room (log scale); "
                + (
                    f"dashed line: {p5:,.0f}/m³, {grade} limit (EU GMP Annex 1)."
                    if p5 is not None
                    else f"no limit for {grade}."
                ),
                [series("particles_5um_m3")],
                unit="short",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("green", (p5, "red")) if p5 is not None else None,
                threshold_style=(
                    cm.GraphThresholdsStyleMode.DASHED
                    if p5 is not None
                    else cm.GraphThresholdsStyleMode.OFF
                ),
                log_scale=True,
            )
        )
        .with_row(db.Row("Freeze-dryer"))
        .with_panel(
            _timeseries(
                "Shelf, product and condenser temperature",
                "shelf_temp_c, product_temp_c and condenser_temp_c; dashed line: "
                f"{limits.lyo_freeze_c:g} °C, the freezing target.",
                [series("shelf_temp_c", "product_temp_c", "condenser_temp_c")],
                unit="celsius",
                display=EQUIPMENT_NAME,
                w=12,
                thresholds=_steps("blue", (limits.lyo_freeze_c, "text")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
            )
        )
        .with_panel(
            _timeseries(
                "Freeze-dryer chamber pressure",
                "chamber_pressure_mbar (log scale); dashed lines: "
                f"{lo_mbar:g}-{hi_mbar:g} mbar, the primary-drying range.",
                [series("chamber_pressure_mbar")],
                unit="pressurembar",
                display=EQUIPMENT_NAME,
                w=12,
                thresholds=_steps("text", (lo_mbar, "green"), (hi_mbar, "orange")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                log_scale=True,
            )
        )
        .with_row(db.Row("Filling"))
        .with_panel(
            _timeseries(
                "Fill weight",
                "fill_weight_g per filling line, mean per display interval.",
                [series("fill_weight_g")],
                unit="massg",
                display=EQUIPMENT_NAME,
                w=24,
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# Gateway health


def gateway_health(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    G = GATEWAY
    F = {"gateway": "gateway"}
    per = ("gateway",)

    def gauge(name: str, scale: str = "") -> str:
        f = iq.field(G, name)
        return iq.select(
            G, [f"mean({f}){scale} AS {f}"], F, group_by=per, interval=True, fill="none"
        )

    def per_unit(unit: str, *names: str) -> str:
        """Rate of counters that count up from gateway start (a restart's drop is left out)."""
        exprs = [
            f"non_negative_derivative(last({iq.field(G, n)}), {unit}) AS {iq.ident(n)}"
            for n in names
        ]
        return iq.select(G, exprs, F, group_by=per, interval=True, fill="none")

    def increase(name: str) -> str:
        """What a counter added during the range, restarts included."""
        f = iq.field(G, name)
        return iq.subquery(
            [f'sum("added") AS {f}'],
            iq.select(G, [f'non_negative_difference({f}) AS "added"'], F, group_by=per),
            G,
            group_by=per,
        )

    return (
        _dashboard(
            "vigil-gateway-health",
            "Vigil · Gateway health",
            "What each vigil gateway is doing: ingest, journal, dead letters, sink errors.",
            "now-6h",
        )
        .with_variable(_tag_variable("gateway", "Gateway", iq.tag_values(G, "gateway")))
        .with_row(db.Row("Flow"))
        .with_panel(
            _timeseries(
                "Ingest rate",
                "ingest_rate: readings per second the gateway accepts.",
                [gauge("ingest_rate")],
                unit="suffix: readings/s",
                display=GATEWAY_NAME,
            )
        )
        .with_panel(
            _timeseries(
                "Received, journaled, forwarded",
                "Per second, from the received / journaled / forwarded counters. Forwarded "
                "falling behind journaled means the sink is not keeping up.",
                [per_unit("1s", "received", "journaled", "forwarded")],
                unit="suffix: /s",
                display=f"{GATEWAY_NAME} ${{__field.name}}",
            )
        )
        .with_row(db.Row("Journal"))
        .with_panel(
            _timeseries(
                "Journal fill",
                "journal_fill: share of journal.max_bytes in use. The gateway_health rules "
                "alert at 80 % and 95 %; at 100 % the journal is full and readings are not "
                "acknowledged (the broker keeps them).",
                [gauge("journal_fill", " * 100")],
                unit="percent",
                display=GATEWAY_NAME,
                w=8,
                thresholds=_steps("green", (80, "orange"), (95, "red")),
                threshold_style=cm.GraphThresholdsStyleMode.LINE_AND_AREA,
            )
        )
        .with_panel(
            _timeseries(
                "Journal backlog",
                "journal_backlog: readings in the journal not yet sent to every sink.",
                [gauge("journal_backlog")],
                unit="short",
                display=GATEWAY_NAME,
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Journal size",
                "journal_bytes: size of the journal file.",
                [gauge("journal_bytes")],
                unit="bytes",
                display=GATEWAY_NAME,
                w=8,
            )
        )
        .with_row(db.Row("Errors"))
        .with_panel(
            _timeseries(
                "Dead letters and sink errors",
                "Per minute, from the dead_letters and sink_errors counters: messages rejected "
                "into the dead-letter table, and failed writes to InfluxDB.",
                [per_unit("1m", "dead_letters", "sink_errors")],
                unit="suffix: /min",
                display=f"{GATEWAY_NAME} ${{__field.name}}",
                w=24,
            )
        )
        .with_panel(
            _stat(
                "Dead letters in range",
                "Messages moved to the dead-letter table during the time range.",
                increase("dead_letters"),
                unit="none",
                display=GATEWAY_NAME,
                thresholds=_steps("green", (1, "orange")),
            )
        )
        .with_panel(
            _stat(
                "Sink errors in range",
                "Failed InfluxDB writes during the time range (they are retried).",
                increase("sink_errors"),
                unit="none",
                display=GATEWAY_NAME,
                thresholds=_steps("green", (1, "orange")),
            )
        )
        .with_panel(
            _stat(
                "Quarantined readings in range",
                "Readings in batches InfluxDB refused with a 4xx, kept in quarantine, not dropped.",
                increase("quarantined"),
                unit="none",
                display=GATEWAY_NAME,
                thresholds=_steps("green", (1, "red")),
            )
        )
        .with_panel(
            _stat(
                "Task restarts in range",
                "Supervised tasks (collectors, pollers, sinks) restarted after an exception.",
                increase("restarts"),
                unit="none",
                display=GATEWAY_NAME,
                thresholds=_steps("green", (1, "orange")),
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# Fleet overview (regulators)

FLEET_GATEWAY_LINK = (
    "/d/vigil-gateway-health?var-gateway=${__data.fields.gateway:percentencode}&${__url_time_range}"
)
FLEET_SITE_LINK = (
    "/d/vigil-coldchain-overview?var-site=${__data.fields.site:percentencode}&${__url_time_range}"
)


def fleet_overview(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    G, K, R = GATEWAY, ALARM_KPI, COMPLETENESS
    F = {"gateway": "gateway"}
    FS = {"gateway": "gateway", "site": "site"}
    per = ("gateway",)
    offline = f"{limits.offline_after_min}m"
    filled, slots = iq.field(R, "filled"), iq.field(R, "slots")
    pct = f"100 * sum({filled}) / sum({slots})"

    heartbeat = iq.select(
        G,
        [
            f'last({iq.field(G, "journal_backlog")}) AS "journal_backlog"',
            f'last({iq.field(G, "journal_fill")}) * 100 AS "journal_fill_pct"',
        ],
        F,
        group_by=per,
    )
    online = iq.select(
        G,
        [f'count({iq.field(G, "journal_fill")}) AS "heartbeats"'],
        F,
        group_by=per,
        time=f"time > now() - {offline}",
    )
    open_alerts = iq.select(
        K,
        [f'last({iq.field(K, "open_" + s)}) AS "{s}"' for s in ("critical", "high", "medium")]
        + [f'last({iq.field(K, "open_low")}) AS "low"'],
        F,
        group_by=per,
    )
    readings_1h = iq.subquery(
        ['sum("added") AS "readings_1h"'],
        iq.select(
            G,
            [f'non_negative_difference({iq.field(G, "readings")}) AS "added"'],
            F,
            group_by=per,
            time="time > now() - 1h",
        ),
        G,
        group_by=per,
    )
    completeness_by_gateway = iq.select(R, [f'{pct} AS "completeness"'], F, group_by=per)

    gateways = (
        _table(
            "Gateways",
            f"One row per gateway: online when it wrote a heartbeat (vigil_gateway) in the "
            f"last {limits.offline_after_min} minutes; open alerts by severity (not yet back "
            "to normal); device readings in the last hour; record completeness over the time "
            "range (China GSP cadence); journal backlog and fill. The gateway name opens its "
            "health dashboard.",
            [
                Q(heartbeat, table=True),
                Q(online, table=True),
                Q(open_alerts, table=True),
                Q(readings_1h, table=True),
                Q(completeness_by_gateway, table=True),
            ],
            w=24,
            h=8,
        )
        .transformations(
            [
                dm.DataTransformerConfig(
                    id_val="joinByField", options={"byField": "gateway", "mode": "outer"}
                ),
                dm.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "indexByName": {
                            "gateway": 0,
                            "heartbeats": 1,
                            "critical": 2,
                            "high": 3,
                            "medium": 4,
                            "low": 5,
                            "readings_1h": 6,
                            "completeness": 7,
                            "journal_backlog": 8,
                            "journal_fill_pct": 9,
                        },
                        "renameByName": {"heartbeats": "online"},
                    },
                ),
            ]
        )
        .override_by_regexp("^Time.*", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)])
        .override_by_name(
            "heartbeats",
            [
                dm.DynamicConfigValue(
                    id_val="mappings",
                    value=[
                        dm.SpecialValueMap(
                            options=dm.DashboardSpecialValueMapOptions(
                                match=dm.SpecialValueMatch.NULL,
                                result=dm.ValueMappingResult(text="OFFLINE", color="red", index=0),
                            )
                        ),
                        _mapping(("0", "OFFLINE", "red")),
                        _at_least_one("online", "green", 2),
                    ],
                ),
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                ),
            ],
        )
        .override_by_name(
            "critical",
            [
                dm.DynamicConfigValue(
                    id_val="thresholds", value=_steps("green", (1, "red")).build()
                ),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        .override_by_name(
            "completeness",
            [
                dm.DynamicConfigValue(id_val="unit", value="percent"),
                dm.DynamicConfigValue(id_val="decimals", value=1),
                dm.DynamicConfigValue(
                    id_val="thresholds", value=_completeness_steps(limits).build()
                ),
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                ),
            ],
        )
        .override_by_name(
            "journal_fill_pct", [dm.DynamicConfigValue(id_val="unit", value="percent")]
        )
        .override_by_name(
            "gateway",
            [
                dm.DynamicConfigValue(
                    id_val="links", value=[_link("Gateway health", FLEET_GATEWAY_LINK)]
                )
            ],
        )
    )

    def completeness_table(group_by: tuple[str, ...]) -> str:
        return iq.select(
            R,
            [
                f'{pct} AS "completeness"',
                f'sum({iq.field(R, "missed")}) AS "missed_slots"',
                f'max({iq.field(R, "longest_gap_s")}) AS "longest_gap_s"',
                f'sum({iq.field(R, "readings")}) AS "readings"',
            ],
            FS,
            group_by=group_by,
        )

    def completeness_overrides(panel: table.Panel) -> table.Panel:
        return (
            panel.override_by_name(
                "completeness",
                [
                    dm.DynamicConfigValue(id_val="unit", value="percent"),
                    dm.DynamicConfigValue(id_val="decimals", value=1),
                    dm.DynamicConfigValue(
                        id_val="thresholds", value=_completeness_steps(limits).build()
                    ),
                    dm.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-background"}
                    ),
                ],
            )
            .override_by_name("longest_gap_s", [dm.DynamicConfigValue(id_val="unit", value="s")])
            .override_by_name(
                "site",
                [
                    dm.DynamicConfigValue(
                        id_val="links", value=[_link("Cold-chain overview", FLEET_SITE_LINK)]
                    )
                ],
            )
            .override_by_regexp(
                "^Time.*", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)]
            )
        )

    by_site = completeness_table(("gateway", "site"))
    by_device = completeness_table(("gateway", "site", "asset", "line", "device"))
    over_time = iq.select(
        R, [f'{pct} AS "completeness"'], FS, group_by=("source",), interval=True, fill="none"
    )
    gateways_online = iq.subquery(['count("heartbeats") AS "online"'], online, G)
    critical = iq.subquery(
        ['sum("critical") AS "critical"'],
        iq.select(
            K,
            [f'last({iq.field(K, "open_critical")}) AS "critical"'],
            F,
            group_by=per,
        ),
        K,
    )
    fleet_completeness = iq.select(R, [f'{pct} AS "completeness"'], FS)

    return (
        _dashboard(
            "vigil-fleet-overview",
            "Vigil · Fleet overview 监管总览",
            "For regulators: every site and gateway at a glance. Online or not, open alerts, "
            "readings, record completeness against China GSP, journal backlog; links to each "
            "site's and gateway's dashboard. 远程监管 · 各站点与网关的在线状态、未关闭报警、"
            "记录完整性与数据积压。",
            "now-24h",
        )
        .with_variable(_tag_variable("gateway", "Gateway", iq.tag_values(G, "gateway")))
        .with_variable(
            _tag_variable("site", "Site", iq.tag_values(R, "site", {"gateway": "gateway"}))
        )
        .with_row(db.Row("Fleet"))
        .with_panel(
            _stat(
                "Gateways online",
                f"Gateways with a heartbeat in the last {limits.offline_after_min} minutes.",
                gateways_online,
                unit="none",
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Open critical alerts",
                "Critical alerts not yet back to normal, all selected gateways (their latest "
                "alarm_kpi in the time range).",
                critical,
                unit="none",
                thresholds=_steps("green", (1, "red")),
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Record completeness",
                "Share of the recording slots China's GSP requires (30 min in storage, 5 min in "
                "transport, 2 min out of range) that hold a reading, all selected devices, over "
                "the time range.",
                fleet_completeness,
                unit="percent",
                decimals=1,
                thresholds=_completeness_steps(limits),
                w=8,
            )
        )
        .with_panel(gateways)
        .with_row(db.Row("Sites and devices"))
        .with_panel(
            completeness_overrides(
                _table(
                    "Sites",
                    "Per site and gateway over the time range: record completeness, recording "
                    "slots missed, the longest gap and the readings counted. The site name opens "
                    "its cold-chain dashboard.",
                    [by_site],
                    w=24,
                    h=6,
                )
            )
        )
        .with_panel(
            completeness_overrides(
                _table(
                    "Record completeness per device",
                    "Per device over the time range (windows of the completeness measurement): "
                    "completeness, missed slots, the longest gap from the last reading before it "
                    "to the first after it, readings.",
                    [by_device],
                    w=24,
                    h=8,
                )
            )
        )
        .with_panel(
            _timeseries(
                "Record completeness over time",
                "Per device, the share of required recording slots holding a reading, per "
                "display interval; a dip is a gap in the record.",
                [over_time],
                unit="percent",
                display="${__field.labels.source}",
                w=24,
                thresholds=_completeness_steps(limits),
                threshold_style=cm.GraphThresholdsStyleMode.LINE_AND_AREA,
            )
        )
    )


# ---------------------------------------------------------------------------------------------

BUILDERS = (fleet_overview, coldchain_overview, shipment, production_line, gateway_health)


def to_dict(builder: db.Dashboard) -> dict[str, Any]:
    """The dashboard model as plain JSON data (what Grafana stores)."""
    model = _fix_ids(builder.build())
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def all_dashboards(limits: Limits = DEFAULT_LIMITS) -> dict[str, dict[str, Any]]:
    """Every vigil dashboard as JSON data, keyed by uid."""
    out: dict[str, dict[str, Any]] = {}
    for make in BUILDERS:
        data = to_dict(make(limits))
        out[str(data["uid"])] = data
    return out


def render(data: Mapping[str, Any]) -> str:
    """The committed file form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path, limits: Limits = DEFAULT_LIMITS) -> list[Path]:
    """Write `<uid>.json` for every dashboard into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, data in all_dashboards(limits).items():
        path = directory / f"{uid}.json"
        path.write_text(render(data), encoding="utf-8")
        written.append(path)
    return written
