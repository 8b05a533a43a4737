"""The gateway's configuration: one YAML file, validated by pydantic, environment wins (DESIGN §3).

Errors name the file, the key path and what was expected, so `vigil check-config` can list them all.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from alert_rules.config import RulesConfig, RulesConfigError
from collectors import KINDS, CollectorConfig, device_patterns
from collectors.modbus import ModbusCollectorConfig
from collectors.mqtt import MqttBrokerConfig, MqttCollectorConfig
from gateway.core.i18n import DEFAULT_TIMEZONE, check_zone
from gateway.core.standards import GSP_RECORDS_YEARS
from gateway.notifiers.config import ModbusOutputChannel, NotifiersConfig
from gateway.pipeline.completeness import CompletenessConfig
from gateway.pipeline.influx_sink import InfluxConfig
from gateway.records.lots import TraceabilityConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JournalConfig(Strict):
    path: Path | None = None
    """Default: DATA_DIR/journal.sqlite."""
    max_bytes: int = Field(1 << 30, gt=0)
    retention_hours: float = Field(168.0, ge=0)
    """Rows every sink has taken are kept this long, then deleted."""
    dead_letter_retention_days: float = Field(90.0, ge=0)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL: each commit reaches the disk before messages are acknowledged, so even a power cut
    loses nothing. NORMAL (WAL): a process crash loses nothing, a power cut may lose the last
    commits; fewer fsyncs (docs/benchmarks.md)."""
    queue_messages: int = Field(10_000, gt=0)
    """Messages waiting for the journal before collectors are made to wait (backpressure)."""
    max_batch_readings: int = Field(20_000, gt=0)


class BackupConfig(Strict):
    """`gateway.backup`: a consistent copy of every store once a day (docs/operations.md)."""

    destination: Path
    """A folder (another disk, a mounted share); each backup is a dated folder inside it."""
    at: str = "02:00"
    """Local time of day, HH:MM, in `gateway.timezone`."""
    keep: int = Field(7, ge=1)
    """Backups kept in `destination`; older ones made by vigil are removed after a success."""

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError("expected a time of day HH:MM, e.g. 02:30")
        return f"{int(m.group(1)):02d}:{m.group(2)}"


class ClockConfig(Strict):
    """`gateway.clock`: how the gateway judges its own clock (gateway_health rules alarm)."""

    sync_check_s: float = Field(60.0, ge=0)
    """How often the system's time-sync status is read (timedatectl, chronyc); 0: never."""
    skew_window_s: float = Field(600.0, gt=0)
    """Device skew is the median over devices of each one's smallest receive-minus-event
    time within this window (the freshest reading estimates its clock best)."""
    min_devices: int = Field(3, ge=1)
    """Fewer devices with their own timestamps in the window: no skew is reported."""


class GatewayConfig(Strict):
    name: str = Field(default_factory=socket.gethostname)
    data_dir: Path = Path("./data")
    metrics_interval_s: float = Field(10.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    language: Literal["zh-CN", "en"] = "zh-CN"
    """Default language of the web console, reports and notifications; a user's own choice
    and a request's `lang=` / Accept-Language win over it."""
    timezone: str = DEFAULT_TIMEZONE
    """IANA zone every displayed time is shown in (storage is UTC)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)

    backup: BackupConfig | None = None
    """Absent: no scheduled backup (`vigil backup DIR` still works)."""
    clock: ClockConfig = ClockConfig()
    anchor_interval_s: float = Field(3600.0, gt=0, le=3600.0)
    """How often the audit and journal heads are written to InfluxDB (`audit_head`)."""


class RetentionConfig(Strict):
    """`retention`: how long the gateway's records are kept (docs/operations.md, Retention)."""

    test_mode: bool = False
    """Allow `records_years` below the GSP floor: for tests and demos only."""
    records_years: float = Field(float(GSP_RECORDS_YEARS), gt=0)
    """Readings (journal and archive), the alert log and records (shipments) are kept this long;
    lots until their expiry plus 5 years. The audit trail is never pruned."""
    archive_dir: Path | None = None
    """Where archive segments go; default DATA_DIR/archive."""

    @field_validator("records_years")
    @classmethod
    def _floor(cls, v: float, info: ValidationInfo) -> float:
        if v < GSP_RECORDS_YEARS and not info.data.get("test_mode"):
            raise ValueError(
                f"below the floor of {GSP_RECORDS_YEARS} years (GSP keeps monitoring records at "
                f"least {GSP_RECORDS_YEARS} years); retention.test_mode: true allows it, for "
                "tests only"
            )
        return v


class ApiConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class VigilConfig(Strict):
    gateway: GatewayConfig = GatewayConfig()
    mqtt: MqttBrokerConfig = MqttBrokerConfig()
    collectors: list[CollectorConfig] = Field(default_factory=list)
    journal: JournalConfig = JournalConfig()
    retention: RetentionConfig = RetentionConfig()
    influx: InfluxConfig | None = None
    api: ApiConfig = ApiConfig()
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notifiers: NotifiersConfig = Field(default_factory=NotifiersConfig)
    completeness: CompletenessConfig = Field(default_factory=CompletenessConfig)
    traceability: TraceabilityConfig = Field(default_factory=TraceabilityConfig)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    """The config file's folder: rule packs named in it are relative to it."""

    @model_validator(mode="after")
    def _default_broker(self) -> VigilConfig:
        """MQTT collectors without a broker of their own use the gateway's `mqtt:` section."""
        for c in self.collectors:
            if isinstance(c, MqttCollectorConfig) and c.broker is None:
                c.broker = self.mqtt
        return self

    @model_validator(mode="after")
    def _outputs_are_not_plcs(self) -> VigilConfig:
        """A modbus_output channel may not write to a device a Modbus collector polls: the
        gateway never writes to a production PLC."""
        polled = {
            (_host(d.host), d.port, d.unit): (i, c.name, d.name)
            for i, c in enumerate(self.collectors)
            if isinstance(c, ModbusCollectorConfig)
            for d in c.devices
        }
        errors: list[InitErrorDetails] = []
        for name, ch in self.notifiers.channels.items():
            if not isinstance(ch, ModbusOutputChannel):
                continue
            hit = polled.get((_host(ch.host), ch.port, ch.unit))
            if hit is not None:
                i, collector, device = hit
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "plc_output",
                            f"{ch.address} is polled as process PLC {device!r} "
                            f"(collectors[{i}], {collector!r}); the gateway never writes to a "
                            "production PLC: wire the siren to a relay/IO module of its own",
                        ),
                        loc=("notifiers", "channels", name, "host"),
                        input=ch.host,
                    )
                )
        if errors:
            raise ValidationError.from_exception_data("VigilConfig", errors)
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def journal_path(self) -> Path:
        return self.journal.path or self.gateway.data_dir / "journal.sqlite"

    @property
    def alerts_path(self) -> Path:
        return self.gateway.data_dir / "alerts.sqlite"

    @property
    def archive_dir(self) -> Path:
        return self.retention.archive_dir or self.gateway.data_dir / "archive"


def _host(host: str) -> str:
    """One spelling per host: lower case, `localhost` as 127.0.0.1."""
    h = host.strip().lower()
    return "127.0.0.1" if h in ("localhost", "127.0.0.1", "::1", "[::1]") else h


ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "VIGIL_DATA_DIR": ("gateway", "data_dir"),
    "VIGIL_MQTT_URL": ("mqtt", "url"),
    "VIGIL_MQTT_USERNAME": ("mqtt", "username"),
    "VIGIL_MQTT_PASSWORD": ("mqtt", "password"),
    "VIGIL_INFLUX_URL": ("influx", "url"),
    "VIGIL_INFLUX_TOKEN": ("influx", "token"),
    "VIGIL_INFLUX_ORG": ("influx", "org"),
    "VIGIL_INFLUX_BUCKET": ("influx", "bucket"),
    "VIGIL_INFLUX_VERSION": ("influx", "version"),
    "VIGIL_INFLUX_DATABASE": ("influx", "database"),
    "VIGIL_INFLUX_RETENTION_POLICY": ("influx", "retention_policy"),
    "VIGIL_INFLUX_USERNAME": ("influx", "username"),
    "VIGIL_INFLUX_PASSWORD": ("influx", "password"),
    "VIGIL_API_HOST": ("api", "host"),
    "VIGIL_API_PORT": ("api", "port"),
}


class ConfigError(Exception):
    """Every problem found in a config file, each naming the file and key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def apply_env(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    had_influx = "influx" in raw
    for var, path in ENV_OVERRIDES.items():
        if var not in env:
            continue
        section = raw.get(path[0])
        if not isinstance(section, dict):
            section = {}
            raw[path[0]] = section
        section[path[1]] = env[var]
    influx = raw.get("influx")
    if not had_influx and isinstance(influx, dict) and "url" not in influx:
        # InfluxDB settings without a URL mean nothing: the journal stays the record.
        raw.pop("influx")
    return raw


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _without_tags(loc: tuple[int | str, ...], raw: Any) -> tuple[int | str, ...]:
    """The key path without the discriminator values pydantic puts in it (a collector's,
    channel's or rule's `kind`): the path as the user wrote it."""
    out: list[int | str] = []
    value: Any = raw
    for part in loc:
        if isinstance(value, dict) and part not in value and part == value.get("kind"):
            continue
        out.append(part)
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
    return tuple(out)


def _unwrap(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """The model a value of `annotation` is validated by (`raw`: the value, to pick a member of
    a union by its `kind`)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], raw)
    if origin in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _unwrap(a, raw)) is not None]
        kind = raw.get("kind") if isinstance(raw, dict) else None
        for m in models:
            field = m.model_fields.get("kind")
            if field is not None and kind in typing.get_args(field.annotation):
                return m
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _annotation_at(loc: tuple[int | str, ...], raw: Any) -> tuple[Any, Any]:
    """(the type the config expects at `loc`, the value found there), walking the models."""
    model: type[BaseModel] | None = VigilConfig
    value: Any = raw
    annotation: Any = VigilConfig
    for part in loc:
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            value = value.get(part) if isinstance(value, dict) else None
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                value = None
        else:
            return None, None
        model = _unwrap(annotation, value)
    return annotation, value


def _known_keys(loc: tuple[int | str, ...], raw: Any) -> list[str]:
    """The keys the config accepts at `loc` (the parent of an unknown key), for suggestions."""
    model = _unwrap(*_annotation_at(loc, raw))
    return list(model.model_fields) if model is not None else []


def _kinds(loc: tuple[int | str, ...], raw: Any) -> list[str]:
    """The `kind` values a discriminated entry at `loc` may take (collectors, channels)."""
    annotation, _ = _annotation_at(loc, raw)
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    out: list[str] = []
    for member in typing.get_args(annotation):
        field = member.model_fields.get("kind") if hasattr(member, "model_fields") else None
        if field is not None:
            out.extend(str(k) for k in typing.get_args(field.annotation))
    return out


def _problem(err: Any, loc: tuple[int | str, ...], raw: dict[str, Any], source: str) -> str:
    """One validation error as `file: key.path: what is wrong`, in the words a user needs."""
    kind = err["type"]
    if kind == "missing":
        return f"{source}: {_loc(loc)}: required"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        expected = ", ".join(KINDS if loc and loc[0] == "collectors" else _kinds(loc, raw))
        where = _loc((*loc, "kind"))
        if kind == "union_tag_not_found":
            return f"{source}: {where}: required, one of {expected}"
        tag = (err.get("ctx") or {}).get("tag")
        return f"{source}: {where}: unknown kind {tag!r}, one of {expected}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _known_keys(loc[:-1], raw), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{source}: {_loc(loc)}: unknown key{hint}"
    got = repr(err.get("input"))
    got = got if len(got) <= 80 else got[:77] + "..."
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{source}: {_loc(loc)}: {msg} (got {got})"


def parse_config(
    raw: object, source: str, env: dict[str, str] | None = None, base_dir: Path | None = None
) -> VigilConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: (top level): expected a mapping, got {type(raw).__name__}"])
    raw = apply_env(raw, dict(os.environ) if env is None else env)
    try:
        cfg = VigilConfig.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = _without_tags(tuple(err["loc"]), raw)
            problems.append(_problem(err, loc, raw, source))
        raise ConfigError(problems) from None
    cfg._base_dir = base_dir or Path.cwd()
    missing = cfg.notifiers.env_problems(env) if cfg.notifiers.enabled else []
    if missing:
        raise ConfigError([f"{source}: {line}" for line in missing])
    if cfg.rules.enabled:
        try:  # packs, profiles and bindings must all resolve before the gateway starts
            cfg.rules.library(cfg.base_dir)
        except RulesConfigError as e:
            raise ConfigError([f"{source}: {line}" for line in e.errors]) from None
    return cfg


def config_warnings(cfg: VigilConfig, source: str) -> list[str]:
    """What is valid but probably not meant: devices no rule is bound to (they raise no alerts
    unless a leg of a lot covers them). `vigil check-config` prints these and exits 0."""
    if not cfg.rules.enabled:
        return [f"{source}: rules.enabled: false: no device raises alerts"]
    library = cfg.rules.library(cfg.base_dir)
    out = []
    for p in library.unbound(device_patterns(cfg.collectors)):
        measurement = p.measurement or "any measurement"
        out.append(
            f"{source}: {p.where}: no rule is bound to {p.what} ({measurement}): its devices "
            "raise no alerts except inside a leg of a lot; add a binding under rules.bindings"
        )
    return out


def load_config(path: Path | str | None = None, env: dict[str, str] | None = None) -> VigilConfig:
    """Load and validate a config file (or VIGIL_CONFIG, or the embedded defaults)."""
    env = dict(os.environ) if env is None else env
    if path is None and env.get("VIGIL_CONFIG"):
        path = env["VIGIL_CONFIG"]
    if path is None:
        return parse_config({}, "(defaults)", env)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError([f"{path}: {where}: invalid YAML: {getattr(e, 'problem', e)}"]) from None
    return parse_config(raw, str(path), env, base_dir=path.resolve().parent)
