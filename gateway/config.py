"""The gateway's configuration: one YAML file, validated by pydantic, environment wins (DESIGN §3).

Errors name the file, the key path and what was expected, so `vigil check-config` can list them all.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from alert_rules.config import RulesConfig, RulesConfigError
from collectors import CollectorConfig
from collectors.modbus import ModbusCollectorConfig
from collectors.mqtt import MqttBrokerConfig, MqttCollectorConfig
from gateway.notifiers.config import ModbusOutputChannel, NotifiersConfig
from gateway.pipeline.completeness import CompletenessConfig
from gateway.pipeline.influx_sink import InfluxConfig


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


class GatewayConfig(Strict):
    name: str = Field(default_factory=socket.gethostname)
    data_dir: Path = Path("./data")
    metrics_interval_s: float = Field(10.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ApiConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class VigilConfig(Strict):
    gateway: GatewayConfig = GatewayConfig()
    mqtt: MqttBrokerConfig = MqttBrokerConfig()
    collectors: list[CollectorConfig] = Field(default_factory=list)
    journal: JournalConfig = JournalConfig()
    influx: InfluxConfig | None = None
    api: ApiConfig = ApiConfig()
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notifiers: NotifiersConfig = Field(default_factory=NotifiersConfig)
    completeness: CompletenessConfig = Field(default_factory=CompletenessConfig)
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


def _kind(raw: dict[str, Any], index: object) -> object:
    try:
        return raw["collectors"][index].get("kind")
    except (IndexError, TypeError, AttributeError, KeyError):
        return None


def _channel_kind(raw: dict[str, Any], name: object) -> object:
    try:
        return raw["notifiers"]["channels"][name].get("kind")
    except (IndexError, TypeError, AttributeError, KeyError):
        return None


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
            loc = tuple(err["loc"])
            # pydantic puts the discriminator value (a collector or channel kind) in the path
            if len(loc) > 2 and loc[0] == "collectors" and loc[2] == _kind(raw, loc[1]):
                loc = loc[:2] + loc[3:]
            if (
                len(loc) > 3
                and loc[:2] == ("notifiers", "channels")
                and loc[3] == _channel_kind(raw, loc[2])
            ):
                loc = loc[:3] + loc[4:]
            if err["type"] == "missing":
                problems.append(f"{source}: {_loc(loc)}: required")
            else:
                got = repr(err.get("input"))
                got = got if len(got) <= 80 else got[:77] + "..."
                problems.append(f"{source}: {_loc(loc)}: {err['msg']} (got {got})")
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
