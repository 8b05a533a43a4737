"""The four vigil dashboards, defined with grafana-foundation-sdk.

`all_dashboards()` returns the dashboard models as plain JSON-able dicts keyed by uid; `vigil
dashboards export` writes them and `vigil dashboards push` uploads them. The committed copies in
dashboards/generated/ must equal what this module builds (a test checks it), so review a
dashboard change as a diff of both.

Limits shown on the panels (product band, F0, cleanroom grades, lyophilisation) are those of
DESIGN §5, the published ones from gateway.core.standards; they are build parameters, not
dashboard variables, because Grafana thresholds are numbers, not templated strings.
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

from dashboards import flux
from dashboards.sdk import DATASOURCE_TYPE, DATASOURCE_VARIABLE, DS_REF, Flux, FluxAnnotation
from gateway.core.schema import ALERT, COLDCHAIN, GATEWAY, PROCESS
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
    """Reference limits drawn on the panels (DESIGN §5)."""

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
    stale_minutes: tuple[int, ...] = (5, 15, 30, 60)
    battery_low_pct: tuple[int, ...] = (10, 20, 30)

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


def _datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("InfluxDB")
        .type(DATASOURCE_TYPE)
        .current(dm.VariableOption(text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def _tag_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    all_matches_anything: bool = True,
) -> db.QueryVariable:
    """A variable listing tag values; with "All", `.*` unless the list itself is the filter."""
    var = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS_REF)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
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


def _alerts_annotation(*path: str) -> db.AnnotationQuery:
    """Alert events from measurement `alert` whose source is one of the selected series.

    The rules engine names an alert's source by the series' tags joined with "/":
    site/asset/device for cold chain, line/equipment/device for process. `path` lists the
    dashboard variables for those tags, in that order.
    """
    state, value, message = flux.fields_of(ALERT, "state", "value", "message")
    rule, severity, source = flux.tags_of(ALERT, "rule", "severity", "source")
    source_regex = r"\/".join(f"${{{var}:regex}}" for var in path)
    head = flux.select(ALERT, [state, value, message])
    query = flux.pipe(
        head,
        f"filter(fn: (r) => r.{source} =~ /^{source_regex}$/)",
        'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        "map(fn: (r) => ({\n"
        "      _time: r._time,\n"
        f"      title: r.{rule},\n"
        f'      text: r.{severity} + " " + string(v: r.{state})'
        f' + (if exists r.{value} then " at " + string(v: r.{value}) else "")'
        f' + (if exists r.{message} then ": " + r.{message} else ""),\n'
        f'      tags: r.{rule} + "," + r.{severity} + "," + r.{source},\n'
        "    }))",
    )
    return (
        db.AnnotationQuery()
        .name("Alerts")
        .datasource(DS_REF)
        .enable(True)
        .icon_color("red")
        .target(FluxAnnotation(query))
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


def _targets(queries: Sequence[str]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    return [Flux(q, ref_id=chr(ord("A") + i)) for i, q in enumerate(queries)]


def _timeseries(
    title: str,
    description: str,
    queries: Sequence[str],
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
    query: str,
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


def _table(title: str, description: str, query: str, *, w: int = 12, h: int = 8) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DS_REF)
        .targets(_targets([query]))
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
    temp_c, rh_pct, battery_pct, door_open, power_ok = flux.fields_of(
        COLDCHAIN, "temp_c", "rh_pct", "battery_pct", "door_open", "power_ok"
    )
    site, asset, device = flux.tags_of(COLDCHAIN, "site", "asset", "device")
    series = f'group(columns: ["{site}", "{asset}", "{device}", "_field"])'
    outside = (
        f"filter(fn: (r) => float(v: r._value) < {limits.band_low_c}"
        f" or float(v: r._value) > {limits.band_high_c})"
    )

    temperature = flux.windowed(flux.pipe(flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS), series))
    humidity = flux.windowed(flux.pipe(flux.select(COLDCHAIN, [rh_pct], COLDCHAIN_TAGS), series))
    lowest = flux.pipe(flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS), "group()", "min()")
    highest = flux.pipe(flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS), "group()", "max()")
    outside_count = flux.pipe(
        flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS), outside, "group()", "count()"
    )
    reporting = flux.pipe(
        flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS),
        "last()",
        "group()",
        f'keep(columns: ["{device}"])',
        f'distinct(column: "{device}")',
        "count()",
    )
    stale = flux.pipe(
        flux.select(COLDCHAIN, [temp_c], COLDCHAIN_TAGS),
        "last()",
        f'group(columns: ["{site}", "{asset}", "{device}"])',
        'sort(columns: ["_time"])',
        'last(column: "_time")',
        "map(fn: (r) => ({\n"
        f"      {site}: r.{site},\n"
        f"      {asset}: r.{asset},\n"
        f"      {device}: r.{device},\n"
        "      last_reading: r._time,\n"
        "      silent_min: (int(v: v.timeRangeStop) - int(v: r._time)) / 60000000000,\n"
        "    }))",
        "filter(fn: (r) => r.silent_min >= ${stale_minutes})",
        "group()",
        'sort(columns: ["silent_min"], desc: true)',
    )
    low_battery = flux.pipe(
        flux.select(COLDCHAIN, [battery_pct], COLDCHAIN_TAGS),
        "last()",
        "filter(fn: (r) => float(v: r._value) < float(v: ${battery_low}))",
        "group()",
        "map(fn: (r) => ({\n"
        f"      {site}: r.{site},\n"
        f"      {asset}: r.{asset},\n"
        f"      {device}: r.{device},\n"
        f"      {battery_pct}: r._value,\n"
        "      last_reading: r._time,\n"
        "    }))",
        f'sort(columns: ["{battery_pct}"])',
    )

    def as_int(fn: str) -> tuple[str, ...]:
        return (
            series,
            "map(fn: (r) => ({r with _value: if r._value then 1 else 0}))",
            f"aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)",
        )

    doors = flux.pipe(flux.select(COLDCHAIN, [door_open], COLDCHAIN_TAGS), *as_int("max"))
    power = flux.pipe(flux.select(COLDCHAIN, [power_ok], COLDCHAIN_TAGS), *as_int("min"))

    door_power = (
        statetimeline.Panel()
        .title("Doors and power")
        .description(
            "Per device: door open (any opening in the interval shows) and mains power "
            "(any failure in the interval shows)."
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
                        dm.ValueMap(
                            options={
                                "0": dm.ValueMappingResult(text="closed", color="green", index=0),
                                "1": dm.ValueMappingResult(text="open", color="orange", index=1),
                            }
                        )
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
                        dm.ValueMap(
                            options={
                                "0": dm.ValueMappingResult(
                                    text="power failure", color="red", index=0
                                ),
                                "1": dm.ValueMappingResult(text="power ok", color="green", index=1),
                            }
                        )
                    ],
                )
            ],
        )
    )

    band = f"{limits.band_low_c:g}-{limits.band_high_c:g} °C"
    return (
        _dashboard(
            "vigil-coldchain-overview",
            "Vigil · Cold-chain overview",
            "Storage and transport temperatures per site and asset, against the product band.",
            "now-24h",
        )
        .with_variable(_tag_variable("site", "Site", flux.tag_values(COLDCHAIN, site)))
        .with_variable(
            _tag_variable("asset", "Asset", flux.tag_values(COLDCHAIN, asset, {site: "site"}))
        )
        .with_variable(
            _tag_variable(
                "device",
                "Device",
                flux.tag_values(COLDCHAIN, device, {site: "site", asset: "asset"}),
            )
        )
        .with_variable(
            _custom_variable("stale_minutes", "Stale after (min)", limits.stale_minutes, 15)
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
                "(green inside, red outside). Red markers: alerts.",
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
                "Distinct loggers with at least one temperature reading in the time range.",
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
                "Stale loggers",
                "Loggers whose last temperature reading in the time range is older than "
                "'Stale after' at the end of the range. GSP expects a refresh every minute.",
                stale,
            )
        )
        .with_panel(
            _table(
                "Low battery",
                "Loggers whose latest battery_pct is below 'Low battery below'.",
                low_battery,
            )
        )
        .with_panel(door_power)
    )


# ---------------------------------------------------------------------------------------------
# Shipment


def shipment(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    temp_c, battery_pct, door_open = flux.fields_of(COLDCHAIN, "temp_c", "battery_pct", "door_open")
    site, asset, shipment_tag, device = flux.tags_of(
        COLDCHAIN, "site", "asset", "shipment", "device"
    )
    tags = {site: "site", asset: "asset", shipment_tag: "shipment", device: "device"}
    per_device = f'group(columns: ["{device}", "_field"])'
    band = f"{limits.band_low_c:g}-{limits.band_high_c:g} °C"
    dh_r = f"{limits.mkt_dh_over_r_k:.1f}"

    trip = flux.windowed(flux.pipe(flux.select(COLDCHAIN, [temp_c], tags), per_device))
    mkt = 'import "math"\n\n' + flux.pipe(
        flux.select(COLDCHAIN, [temp_c], tags),
        per_device,
        "map(fn: (r) => ({r with _value:"
        f" math.exp(x: -{dh_r} / (float(v: r._value) + 273.15))}}))",
        "mean()",
        f"map(fn: (r) => ({{r with _value: {dh_r} / (0.0 - math.log(x: r._value)) - 273.15}}))",
    )
    out_of_range = flux.pipe(
        flux.select(COLDCHAIN, [temp_c], tags),
        per_device,
        'sort(columns: ["_time"])',
        'elapsed(unit: 1s, columnName: "interval_s")',
        "map(fn: (r) => ({r with _value:\n"
        f"      if float(v: r._value) < {limits.band_low_c}"
        f" or float(v: r._value) > {limits.band_high_c}\n"
        "      then float(v: r.interval_s) else 0.0}))",
        "sum()",
    )
    extremes = [
        flux.pipe(flux.select(COLDCHAIN, [temp_c], tags), per_device, fn)
        for fn in ("min()", "max()")
    ]
    battery = flux.windowed(flux.pipe(flux.select(COLDCHAIN, [battery_pct], tags), per_device))
    doors = flux.pipe(
        flux.select(COLDCHAIN, [door_open], tags),
        per_device,
        "map(fn: (r) => ({r with _value: if r._value then 1 else 0}))",
        "aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)",
    )
    logger = "${__field.labels.device}"

    return (
        _dashboard(
            "vigil-shipment",
            "Vigil · Shipment",
            "One truck's trip: temperature, mean kinetic temperature and time out of range. "
            "Set the time range to cover the trip.",
            "now-7d",
        )
        .with_variable(_tag_variable("site", "Site", flux.tag_values(COLDCHAIN, site)))
        .with_variable(
            _tag_variable(
                "asset", "Truck", flux.tag_values(COLDCHAIN, asset, {site: "site"}), multi=False
            )
        )
        .with_variable(
            _tag_variable(
                "shipment",
                "Shipment",
                flux.tag_values(COLDCHAIN, shipment_tag, {site: "site", asset: "asset"}),
                multi=False,
            )
        )
        .with_variable(
            _tag_variable(
                "device",
                "Logger",
                flux.tag_values(
                    COLDCHAIN, device, {site: "site", asset: "asset", shipment_tag: "shipment"}
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
                thresholds=_steps("green", (limits.band_high_c, "red")),
                decimals=2,
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Time out of range",
                f"Per logger, total time with temp_c outside {band}: each interval between "
                "readings counts when the reading that ends it is outside.",
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
            .description("Open when any reading in the interval had door_open true.")
            .datasource(DS_REF)
            .targets(_targets([doors]))
            .display_name(logger)
            .span(12)
            .height(8)
            .show_value(cm.VisibilityMode.NEVER)
            .mappings(
                [
                    dm.ValueMap(
                        options={
                            "0": dm.ValueMappingResult(text="closed", color="green", index=0),
                            "1": dm.ValueMappingResult(text="open", color="orange", index=1),
                        }
                    )
                ]
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# Production line


def production_line(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    (
        chamber_temp_c,
        chamber_pressure_kpa,
        f0_min,
        dp_pa,
        particles_05,
        particles_5,
        shelf_temp_c,
        condenser_temp_c,
    ) = flux.fields_of(
        PROCESS,
        "chamber_temp_c",
        "chamber_pressure_kpa",
        "f0_min",
        "dp_pa",
        "particles_05um_m3",
        "particles_5um_m3",
        "shelf_temp_c",
        "condenser_temp_c",
    )
    line, equipment, device, batch, phase = flux.tags_of(
        PROCESS, "line", "equipment", "device", "batch", "phase"
    )
    narrow = {line: "line", equipment: "equipment"}

    def kind(name: str, label: str, marker: str) -> db.QueryVariable:
        """Equipment of one kind: those that write `marker`. "All" is the list, not `.*`."""
        return _tag_variable(
            name,
            label,
            flux.tag_values(PROCESS, equipment, narrow, field=marker),
            all_matches_anything=False,
        )

    def on(kind_variable: str) -> dict[str, str]:
        return {line: "line", equipment: kind_variable, device: "device"}

    per_series = f'group(columns: ["{equipment}", "{device}", "_field"])'

    def series(fields: Sequence[str], kind_variable: str, *tail: str, fn: str = "mean") -> str:
        return flux.windowed(
            flux.pipe(flux.select(PROCESS, fields, on(kind_variable)), per_series, *tail), fn
        )

    cycles = "\n".join(
        [
            "cycles = "
            + flux.pipe(
                flux.select(PROCESS, [f0_min], on("autoclave")),
                f"filter(fn: (r) => exists r.{batch})",
                f'group(columns: ["{equipment}", "{batch}"])',
                'sort(columns: ["_time"])',
            ),
            "",
            "started = cycles",
            "  |> first()",
            f"  |> map(fn: (r) => ({{{equipment}: r.{equipment}, {batch}: r.{batch}, "
            "started: r._time}))",
            "",
            "ended = cycles",
            "  |> last()",
            f"  |> map(fn: (r) => ({{{equipment}: r.{equipment}, {batch}: r.{batch}, "
            f"ended: r._time, {f0_min}: r._value}}))",
            "",
            f'join(tables: {{started: started, ended: ended}}, on: ["{equipment}", "{batch}"])',
            "  |> group()",
            '  |> sort(columns: ["started"], desc: true)',
        ]
    )
    phases = flux.pipe(
        flux.select(PROCESS, [], {line: "line", equipment: "equipment", device: "device"}),
        f"filter(fn: (r) => exists r.{phase})",
        f"map(fn: (r) => ({{r with _value: r.{phase}}}))",
        f'keep(columns: ["_time", "_value", "_measurement", "{equipment}"])',
        f'group(columns: ["{equipment}"])',
        'sort(columns: ["_time"])',
        "aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)",
    )
    p05, p5 = limits.particles()
    grade = f"grade {limits.cleanroom_grade} {limits.cleanroom_state}"
    lo_mbar, hi_mbar = limits.lyo_primary_mbar

    return (
        _dashboard(
            "vigil-production-line",
            "Vigil · Production line",
            "Autoclave cycles, cleanroom pressure and particles, freeze-dryer, per line.",
            "now-12h",
        )
        .with_variable(_tag_variable("line", "Line", flux.tag_values(PROCESS, line)))
        .with_variable(
            _tag_variable(
                "equipment", "Equipment", flux.tag_values(PROCESS, equipment, {line: "line"})
            )
        )
        .with_variable(_tag_variable("device", "Device", flux.tag_values(PROCESS, device, narrow)))
        .with_variable(kind("autoclave", "Autoclave", f0_min))
        .with_variable(kind("cleanroom", "Cleanroom", dp_pa))
        .with_variable(kind("freeze_dryer", "Freeze-dryer", shelf_temp_c))
        .annotation(_alerts_annotation("line", "equipment", "device"))
        .with_row(db.Row("Autoclave"))
        .with_panel(
            _timeseries(
                "Autoclave chamber temperature",
                "chamber_temp_c of the selected autoclaves; dashed line: "
                f"{limits.sterilisation_c:g} °C, the usual steam sterilisation hold temperature.",
                [series([chamber_temp_c], "autoclave")],
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
                [series([chamber_pressure_kpa], "autoclave")],
                unit="pressurekpa",
                display=EQUIPMENT_NAME,
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "F0",
                f"Accumulated lethality f0_min (minutes at {F0_T_REF_C:g} °C, z = {F0_Z_C:g} °C); "
                f"dashed line: {limits.f0_target_min:g} min target.",
                [series([f0_min], "autoclave", fn="last")],
                unit="m",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("orange", (limits.f0_target_min, "green")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
            )
        )
        .with_panel(
            _table(
                "Autoclave cycles",
                "One row per autoclave and batch in the time range: first and last reading, "
                "and the F0 at the last reading.",
                cycles,
                w=24,
                h=6,
            )
        )
        .with_row(db.Row("Cleanroom"))
        .with_panel(
            _timeseries(
                "Differential pressure",
                f"dp_pa per room; red below {limits.dp_min_pa:g} Pa, the minimum between "
                "adjacent grades (EU GMP Annex 1).",
                [series([dp_pa], "cleanroom")],
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
                [
                    series(
                        [particles_05],
                        "cleanroom",
                    )
                ],
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
                [series([particles_5], "cleanroom")],
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
                "Shelf and condenser temperature",
                f"shelf_temp_c and condenser_temp_c; dashed line: {limits.lyo_freeze_c:g} °C, "
                "the freezing target.",
                [series([shelf_temp_c, condenser_temp_c], "freeze_dryer")],
                unit="celsius",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("blue", (limits.lyo_freeze_c, "text")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
            )
        )
        .with_panel(
            _timeseries(
                "Freeze-dryer chamber pressure",
                "chamber_pressure_kpa shown in mbar (log scale); dashed lines: "
                f"{lo_mbar:g}-{hi_mbar:g} mbar, the primary-drying range.",
                [
                    series(
                        [chamber_pressure_kpa],
                        "freeze_dryer",
                        "map(fn: (r) => ({r with _value: float(v: r._value) * 10.0}))",
                    )
                ],
                unit="pressurembar",
                display=EQUIPMENT_NAME,
                w=8,
                thresholds=_steps("text", (lo_mbar, "green"), (hi_mbar, "orange")),
                threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                log_scale=True,
            )
        )
        .with_panel(
            statetimeline.Panel()
            .title("Phase")
            .description("The phase tag each selected equipment reported, over time.")
            .datasource(DS_REF)
            .targets(_targets([phases]))
            .display_name("${__field.labels.equipment}")
            .span(8)
            .height(8)
            .show_value(cm.VisibilityMode.AUTO)
        )
    )


# ---------------------------------------------------------------------------------------------
# Gateway health


def gateway_health(limits: Limits = DEFAULT_LIMITS) -> db.Dashboard:
    (
        ingest_rate,
        received,
        journaled,
        forwarded,
        journal_backlog,
        journal_bytes,
        dead_letters,
        sink_errors,
        quarantined,
        restarts,
    ) = flux.fields_of(
        GATEWAY,
        "ingest_rate",
        "received",
        "journaled",
        "forwarded",
        "journal_backlog",
        "journal_bytes",
        "dead_letters",
        "sink_errors",
        "quarantined",
        "restarts",
    )
    (gateway,) = flux.tags_of(GATEWAY, "gateway")
    tags = {gateway: "gateway"}
    per_series = f'group(columns: ["{gateway}", "_field"])'

    def gauge(*fields: str) -> str:
        return flux.windowed(flux.pipe(flux.select(GATEWAY, fields, tags), per_series))

    def per(unit: str, *fields: str) -> str:
        """Rate of a counter that counts up from gateway start (resets dropped)."""
        return flux.pipe(
            flux.select(GATEWAY, fields, tags),
            per_series,
            "aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)",
            f"derivative(unit: {unit}, nonNegative: true)",
        )

    def increase(*fields: str) -> str:
        return flux.pipe(flux.select(GATEWAY, fields, tags), per_series, "increase()", "last()")

    name = "${__field.labels.gateway} ${__field.name}"
    return (
        _dashboard(
            "vigil-gateway-health",
            "Vigil · Gateway health",
            "What each vigil gateway is doing: ingest, journal, dead letters, sink errors.",
            "now-6h",
        )
        .with_variable(_tag_variable("gateway", "Gateway", flux.tag_values(GATEWAY, gateway)))
        .with_row(db.Row("Flow"))
        .with_panel(
            _timeseries(
                "Ingest rate",
                "ingest_rate: readings per second the gateway accepts.",
                [gauge(ingest_rate)],
                unit="suffix: readings/s",
                display=name,
            )
        )
        .with_panel(
            _timeseries(
                "Received, journaled, forwarded",
                "Per second, from the received / journaled / forwarded counters. Forwarded "
                "falling behind journaled means the sink is not keeping up.",
                [per("1s", received, journaled, forwarded)],
                unit="suffix: /s",
                display=name,
            )
        )
        .with_row(db.Row("Journal"))
        .with_panel(
            _timeseries(
                "Journal backlog",
                "journal_backlog: readings in the journal not yet sent to every sink.",
                [gauge(journal_backlog)],
                unit="short",
                display=name,
            )
        )
        .with_panel(
            _timeseries(
                "Journal size",
                "journal_bytes: size of the journal; it raises alarms at 80 % and 95 % of its "
                "budget and stops accepting when full.",
                [gauge(journal_bytes)],
                unit="bytes",
                display=name,
            )
        )
        .with_row(db.Row("Errors"))
        .with_panel(
            _timeseries(
                "Dead letters and sink errors",
                "Per minute, from the dead_letters and sink_errors counters: messages rejected "
                "into the dead-letter table, and failed writes to InfluxDB.",
                [per("1m", dead_letters, sink_errors)],
                unit="suffix: /min",
                display=name,
                w=24,
            )
        )
        .with_panel(
            _stat(
                "Dead letters in range",
                "Messages moved to the dead-letter table during the time range.",
                increase(dead_letters),
                unit="none",
                display=name,
                thresholds=_steps("green", (1, "orange")),
            )
        )
        .with_panel(
            _stat(
                "Sink errors in range",
                "Failed InfluxDB writes during the time range (they are retried).",
                increase(sink_errors),
                unit="none",
                display=name,
                thresholds=_steps("green", (1, "orange")),
            )
        )
        .with_panel(
            _stat(
                "Quarantined readings in range",
                "Readings in batches InfluxDB refused with a 4xx, kept in quarantine, not dropped.",
                increase(quarantined),
                unit="none",
                display=name,
                thresholds=_steps("green", (1, "red")),
            )
        )
        .with_panel(
            _stat(
                "Task restarts in range",
                "Supervised tasks (collectors, pollers, sinks) restarted after an exception.",
                increase(restarts),
                unit="none",
                display=name,
                thresholds=_steps("green", (1, "orange")),
            )
        )
    )


# ---------------------------------------------------------------------------------------------

BUILDERS = (coldchain_overview, shipment, production_line, gateway_health)


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
