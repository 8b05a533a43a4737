"""Scenario files: what fleet to simulate, for how long, how fast, and which faults to inject.

A pydantic v2 model of the YAML, strict (unknown keys are errors) so a typo in a test scenario
fails loudly instead of silently simulating a healthy fridge. `load_scenario` reports every error
with the file and the key path. Times inside a scenario are simulated seconds from its start,
written as numbers or as "90s", "15m", "6h", "1d", "1h30m".

`count` on an asset or a device repeats it; its id is then a template: "{n}" (1-based, format
specs allowed: "fridge-{n:02d}"), and a device id may also use "{asset}" and "{site}".
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from simulators.protocol import (
    ALL_FIELDS,
    MALFORMED_VARIANTS,
    MalformedVariant,
    TsFormat,
    check_segment,
)
from simulators.protocol import Field as ReadingField
from simulators.thermal import AssetKind

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: object) -> object:
    """Seconds from a number or a string like '1h30m'; anything else is left to pydantic."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        pos, total = 0, 0.0
        for m in _TOKEN.finditer(text):
            if text[pos : m.start()].strip():
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        else:
            if pos and not text[pos:].strip():
                return total
        raise ValueError(f"{value!r} is not a duration (seconds, or like '90s', '15m', '1h30m')")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, allow_inf_nan=False)]
"""Simulated seconds, >= 0."""
Interval = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, allow_inf_nan=False)]

_ID = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- faults -----------------------------------------------------------------------------------


class _Fault(_Strict):
    start: Duration = 0.0
    """Simulated seconds after the scenario start."""
    duration: Duration | None = None
    """None: until the scenario ends."""

    @property
    def end(self) -> float:
        return math.inf if self.duration is None else self.start + self.duration


class DoorOpen(_Fault):
    """The door is left open: door_open true, warm air comes in faster than the unit removes it."""

    kind: Literal["door_open"]


class CompressorFailure(_Fault):
    """The refrigeration unit stops; the space drifts towards ambient."""

    kind: Literal["compressor_failure"]


class PowerFailure(_Fault):
    """Mains power lost: power_ok false and the unit stops (loggers run on battery)."""

    kind: Literal["power_failure"]


class _Excursion(_Fault):
    """Temperature forced to target_c for `duration`: ramp in, hold, ramp out (hold = duration -
    2 * ramp). The physics underneath is unaffected, so readings outside the window are those of a
    healthy run and a test knows exactly how long the excursion lasts."""

    duration: Duration
    ramp: Duration = 0.0

    @model_validator(mode="after")
    def _ramp(self) -> _Excursion:
        if self.ramp * 2 > self.duration:
            raise ValueError(f"ramp {self.ramp} s is more than half the duration {self.duration} s")
        return self


class FreezeDip(_Excursion):
    kind: Literal["freeze_dip"]
    target_c: float = -2.0


class HeatExcursion(_Excursion):
    kind: Literal["heat_excursion"]
    target_c: float = 12.0


class Offline(_Fault):
    """The device loses its link: it keeps sampling into its buffer, uploads it on reconnect."""

    kind: Literal["offline"]


class LowBattery(_Fault):
    kind: Literal["low_battery"]
    level_pct: float = Field(default=8.0, ge=0, le=100)


class Flatline(_Fault):
    """The sensor is stuck: temp_c and rh_pct repeat one value (value_c, or the first sample)."""

    kind: Literal["flatline"]
    value_c: float | None = None


class Malformed(_Strict):
    """At `start`, send each variant `count` times on the device's topic (dead-letter tests)."""

    kind: Literal["malformed"]
    start: Duration = 0.0
    variants: list[MalformedVariant] = Field(default_factory=lambda: list(MALFORMED_VARIANTS))
    count: int = Field(default=1, ge=1)
    oversize_bytes: int = Field(default=1_048_576, ge=1)


AssetFault = Annotated[
    DoorOpen | CompressorFailure | PowerFailure | FreezeDip | HeatExcursion,
    Field(discriminator="kind"),
]
DeviceFault = Annotated[Offline | LowBattery | Flatline | Malformed, Field(discriminator="kind")]
ASSET_FAULT_KINDS = frozenset(
    {"door_open", "compressor_failure", "power_failure", "freeze_dip", "heat_excursion"}
)
DEVICE_FAULT_KINDS = frozenset({"offline", "low_battery", "flatline", "malformed"})


_ALL_FAULT_KINDS = ASSET_FAULT_KINDS | DEVICE_FAULT_KINDS


# --- fleet ------------------------------------------------------------------------------------


class ThermalOverrides(_Strict):
    """Replace any of the kind's default thermal parameters (see simulators/thermal.py)."""

    setpoint_c: float | None = None
    hysteresis_c: float | None = Field(default=None, gt=0)
    ambient_c: float | None = None
    ambient_swing_c: float | None = None
    tau_leak: Interval | None = None
    tau_door: Interval | None = None
    capacity_c_per_min: float | None = Field(default=None, gt=0)
    door_openings_per_hour: float | None = Field(default=None, ge=0)
    door_open_min: Interval | None = None
    door_open_max: Interval | None = None
    rh_pct: float | None = Field(default=None, ge=0, le=100)
    ambient_rh_pct: float | None = Field(default=None, ge=0, le=100)
    initial_c: float | None = None
    step: Interval | None = None

    def as_params(self) -> dict[str, float | None]:
        cap = self.capacity_c_per_min
        return {
            "setpoint_c": self.setpoint_c,
            "hysteresis_c": self.hysteresis_c,
            "ambient_c": self.ambient_c,
            "ambient_swing_c": self.ambient_swing_c,
            "tau_leak_s": self.tau_leak,
            "tau_door_s": self.tau_door,
            "capacity_c_per_s": None if cap is None else cap / 60.0,
            "door_openings_per_hour": self.door_openings_per_hour,
            "door_open_min_s": self.door_open_min,
            "door_open_max_s": self.door_open_max,
            "rh_pct": self.rh_pct,
            "ambient_rh_pct": self.ambient_rh_pct,
            "initial_c": self.initial_c,
            "step_s": self.step,
        }


class DeviceSpec(_Strict):
    """A logger: where it reports, how often, and what it sends."""

    id: _ID
    count: int = Field(default=1, ge=1)
    interval: Interval | None = None
    """Sample interval in simulated seconds; default: the scenario's `interval`."""
    phase: Duration = 0.0
    """Offset of the first sample from the scenario start (stagger loggers)."""
    ts_format: TsFormat = "iso"
    fields: list[ReadingField] = Field(default_factory=lambda: list(ALL_FIELDS), min_length=1)
    offset_c: float = 0.0
    """Calibration bias of this probe."""
    noise_c: float = Field(default=0.05, ge=0)
    battery_pct: float = Field(default=95.0, ge=0, le=100)
    battery_drain_pct_per_day: float = Field(default=0.5, ge=0)
    buffer_size: int = Field(default=10_000, ge=1)
    """Readings kept while offline; the oldest are dropped beyond it (counted)."""
    max_batch: int = Field(default=1000, ge=1)
    """Readings per uploaded batch message: a longer backlog goes as several batches."""
    faults: list[DeviceFault] = Field(default_factory=list)


class WaypointSpec(_Strict):
    """Where a truck is at a simulated time (it drives straight between waypoints)."""

    at: Duration
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class AssetSpec(_Strict):
    """A cold space with its own thermal behaviour; its loggers sample it."""

    id: _ID
    kind: AssetKind
    count: int = Field(default=1, ge=1)
    band: tuple[float, float] | None = None
    """Product band [min, max] in C; default by kind (2..8, rooms 15..25). Setpoint: middle."""
    thermal: ThermalOverrides = Field(default_factory=ThermalOverrides)
    devices: list[DeviceSpec] = Field(min_length=1)
    faults: list[AssetFault] = Field(default_factory=list)
    route: list[WaypointSpec] = Field(default_factory=list)
    """A truck's route: its loggers then also report lat, lon and speed_kmh."""

    @field_validator("route")
    @classmethod
    def _route(cls, v: list[WaypointSpec]) -> list[WaypointSpec]:
        for a, b in itertools.pairwise(v):
            if not b.at > a.at:
                raise ValueError(f"waypoint times must increase: {b.at} s after {a.at} s")
        return v

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"band min must be below max, got {list(v)}")
        return v


class SiteSpec(_Strict):
    id: _ID
    ambient_c: float | None = None
    """Default ambient for this site's assets (a thermal.ambient_c on an asset wins)."""
    assets: list[AssetSpec] = Field(min_length=1)


class BrokerSpec(_Strict):
    url: str | None = None
    """Used when neither the CLI option nor VIGIL_MQTT_URL gives one."""
    qos: Literal[0, 1, 2] = 1
    client_id: str | None = None
    topic_prefix: str = "vigil"
    max_inflight: int = Field(default=128, ge=1, le=10_000)
    """Publishes awaiting their acknowledgement at once (bounded, order kept). Larger windows
    are slower: aiomqtt scans its pending calls on every publish."""


def _speed(value: object) -> object:
    if isinstance(value, str):
        if value.strip().lower() in {"max", "fast", "asap"}:
            return 0.0
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"speed {value!r}: a number (simulated s per s) or 'max'") from None
    return value


class Scenario(_Strict):
    name: str = ""
    seed: int = 0
    start: AwareDatetime | None = None
    """Simulated time of t=0. None: chosen at run time so the simulated clock never runs ahead of
    the wall clock (see fleet.resolve_start)."""
    duration: Interval
    speed: Annotated[float, BeforeValidator(_speed), Field(ge=0, allow_inf_nan=False)] = 1.0
    """Simulated seconds per wall second; 0 (or "max") runs as fast as possible."""
    interval: Interval = 60.0
    broker: BrokerSpec = Field(default_factory=BrokerSpec)
    sites: list[SiteSpec] = Field(min_length=1)
    plcs: list[dict[str, Any]] = Field(default_factory=list)
    """Modbus PLC simulators, passed through untouched for simulators.plc."""

    @model_validator(mode="after")
    def _expand_and_check(self) -> Scenario:
        sites = _expand(self)
        object.__setattr__(self, "sites", sites)
        for si, site in enumerate(sites):
            for ai, asset in enumerate(site.assets):
                for fi, f in enumerate(asset.faults):
                    _check_start(f.start, self.duration, f"sites[{si}].assets[{ai}].faults[{fi}]")
                for di, dev in enumerate(asset.devices):
                    for fi, g in enumerate(dev.faults):
                        where = f"sites[{si}].assets[{ai}].devices[{di}].faults[{fi}]"
                        _check_start(g.start, self.duration, where)
        return self

    def with_overrides(
        self, *, duration: float | None = None, speed: float | None = None
    ) -> Scenario:
        """A copy with CLI overrides applied (None keeps the file's value)."""
        update: dict[str, float] = {}
        if duration is not None:
            if not duration > 0:
                raise ValueError(f"duration must be positive, got {duration}")
            update["duration"] = float(duration)
        if speed is not None:
            if not speed >= 0:
                raise ValueError(f"speed must be >= 0 (0: as fast as possible), got {speed}")
            update["speed"] = float(speed)
        return self.model_copy(update=update)

    def device_count(self) -> int:
        return sum(len(a.devices) for s in self.sites for a in s.assets)


def _check_start(start: float, duration: float, where: str) -> None:
    if start >= duration:
        raise ValueError(
            f"{where}.start: {start} s is not before the scenario's end ({duration} s)"
        )


def _format_id(template: str, where: str, **names: object) -> str:
    try:
        value = template.format(**names)
    except (KeyError, ValueError, IndexError) as e:
        raise ValueError(f"{where}.id: cannot expand {template!r}: {e!r}") from None
    try:
        return check_segment(value)
    except ValueError as e:
        raise ValueError(f"{where}.id: {e}") from None


def _expand(scenario: Scenario) -> list[SiteSpec]:
    """Apply `count`, check ids are valid topic segments and unique (device ids fleet-wide,
    because rules keep their state per device)."""
    seen_devices: dict[str, str] = {}
    seen_sites: set[str] = set()
    sites: list[SiteSpec] = []
    for si, site in enumerate(scenario.sites):
        swhere = f"sites[{si}]"
        sid = _format_id(site.id, swhere)
        if sid in seen_sites:
            raise ValueError(f"{swhere}.id: duplicate site id {sid!r}")
        seen_sites.add(sid)
        assets: list[AssetSpec] = []
        seen_assets: set[str] = set()
        for ai, asset in enumerate(site.assets):
            awhere = f"{swhere}.assets[{ai}]"
            if asset.count > 1 and "{" not in asset.id:
                raise ValueError(f"{awhere}.id: with count > 1 the id needs a '{{n}}' placeholder")
            for an in range(1, asset.count + 1):
                aid = _format_id(asset.id, awhere, n=an, site=sid)
                if aid in seen_assets:
                    raise ValueError(f"{awhere}.id: duplicate asset id {aid!r} in site {sid!r}")
                seen_assets.add(aid)
                devices: list[DeviceSpec] = []
                for di, dev in enumerate(asset.devices):
                    dwhere = f"{awhere}.devices[{di}]"
                    if dev.count > 1 and "{n" not in dev.id:
                        raise ValueError(
                            f"{dwhere}.id: with count > 1 the id needs a '{{n}}' placeholder"
                        )
                    for dn in range(1, dev.count + 1):
                        did = _format_id(dev.id, dwhere, n=dn, asset=aid, site=sid)
                        if did in seen_devices:
                            also = seen_devices[did]
                            raise ValueError(
                                f"{dwhere}.id: duplicate device id {did!r} (also {also})"
                            )
                        seen_devices[did] = f"{sid}/{aid}"
                        devices.append(dev.model_copy(update={"id": did, "count": 1}))
                assets.append(asset.model_copy(update={"id": aid, "count": 1, "devices": devices}))
        sites.append(site.model_copy(update={"id": sid, "assets": assets}))
    return sites


# --- loading ----------------------------------------------------------------------------------


class ScenarioError(ValueError):
    """A scenario file that cannot be used; `errors` has one line per problem."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.path = str(path)
        self.errors = errors
        super().__init__("\n".join(f"{self.path}: {e}" for e in errors))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    prev: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(prev, int) and part in _ALL_FAULT_KINDS:
            pass  # the discriminated union's tag, not a key in the file
        else:
            out += f".{part}" if out else part
        prev = part
    return out


def parse_scenario(data: object, source: Path | str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(source, ["the top level must be a mapping of keys"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            tag = (err.get("ctx") or {}).get("tag")
            if err["type"] == "union_tag_invalid" and tag in _ALL_FAULT_KINDS:
                if tag in DEVICE_FAULT_KINDS:
                    msg = f"{tag} is a device fault: put it under a device's faults"
                else:
                    msg = f"{tag} is an asset fault: put it under the asset's faults"
            where = _loc(tuple(err["loc"]))
            lines.append(f"{where}: {msg}" if where else msg)
        raise ScenarioError(source, lines) from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario YAML; ScenarioError names the file and every bad key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(p, [f"cannot read: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(p, [f"not valid YAML: {e}"]) from None
    scenario = parse_scenario(data, p)
    if not scenario.name:
        scenario = scenario.model_copy(update={"name": p.stem})
    return scenario
