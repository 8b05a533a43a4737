"""Rule packs, product profiles and bindings (pydantic v2), loaded from YAML.

* A rule pack (alert_rules/packs/*.yaml) defines product profiles: named sets of rules.
  A profile may `extend` others (e.g. every product profile extends `device_health`).
* A binding gives a profile to the series whose tags match (site, asset, device, line,
  equipment; glob patterns), optionally overriding rule parameters for those series.
* A reading inside a leg of a lot carries the tag `profile` (gateway/records/lots.py): the
  product profiles of the lots it watches. Those profiles are bound to it as if by a binding, so
  a profile's rules follow its lots onto any truck or room for the leg's duration.
* A profile's stability `budget` (alert_rules/budget.py) gives the rules of its lots'
  `lot_budget` readings.
* RulesConfig is the `rules:` section of the gateway config; every error names its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alert_rules.budget import StabilityBudget, budget_rules
from alert_rules.kinds import RULE_KINDS, RuleBase, RuleSpec
from alert_rules.limits import ProfileLimits, profile_limits
from alert_rules.model import Priority
from alert_rules.units import Duration, to_ns
from gateway.core.ports import DevicePattern
from gateway.core.schema import GATEWAY, LOT_BUDGET

BUILTIN_PACKS_DIR = Path(__file__).parent / "packs"
MATCH_KEYS = ("site", "asset", "device", "line", "equipment")
GATEWAY_MEASUREMENT = GATEWAY.name
"""The gateway's own readings (`journal_fill`, counters): only bindings naming it exactly see it."""
PROFILE_TAG = "profile"
"""Tag of a reading inside a leg: its lots' product profiles, comma-separated; bound to it."""
GATEWAY_HEALTH_PROFILE = "gateway_health"
"""Built-in profile bound to GATEWAY_MEASUREMENT unless `rules.gateway_health` is false."""
LIVENESS_PROFILE = "liveness"
"""Built-in profile (device_offline) bound to every device a collector reports unless
`rules.device_liveness` is false; bindings of your own may override its keys (they are applied
after it)."""


class RulesConfigError(ValueError):
    """Invalid rules configuration; `errors` lists one 'file: key.path: problem' per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _loc(loc: Iterable[Any]) -> str:
    """('profiles', 'p', 'rules', 0, 'threshold', 'high') -> 'profiles.p.rules[0].high'."""
    parts = list(loc)
    out = ""
    for i, part in enumerate(parts):
        if (
            i >= 2
            and part in RULE_KINDS
            and isinstance(parts[i - 1], int)
            and parts[i - 2] == "rules"
        ):
            continue  # the discriminated union's tag, not a key the user wrote
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """Pydantic errors as 'prefix.key.path: message' lines."""
    out = []
    for err in exc.errors():
        path = _loc(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        out.append(f"{path or '(top level)'}: {err['msg']}")
    return out


class ProductProfile(BaseModel):
    """A named set of rules for one kind of product or equipment."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    extends: list[str] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    budget: StabilityBudget | None = None
    """The product's stability budget over a lot's whole chain (alert_rules/budget.py);
    inherited from the last profile in `extends` that has one."""

    @model_validator(mode="after")
    def _unique_ids(self) -> ProductProfile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


class RulePack(BaseModel):
    """One YAML file of profiles."""

    model_config = ConfigDict(extra="forbid")

    pack: str
    description: str = ""
    profiles: dict[str, ProductProfile] = Field(default_factory=dict)


class Binding(BaseModel):
    """Which series get which profiles. All given match keys must match (glob); none = all."""

    model_config = ConfigDict(extra="forbid")

    profile: list[str]
    measurement: str | None = None
    site: str | None = None
    asset: str | None = None
    device: str | None = None
    line: str | None = None
    equipment: str | None = None
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Rule id (short, or profile.rule) → keys to change for these series."""

    @field_validator("profile", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def matches(self, measurement: str, tags: dict[str, str]) -> bool:
        if measurement == LOT_BUDGET.name:
            return False  # a lot's budget gets the rules of its profile's budget, nothing else
        if measurement == GATEWAY_MEASUREMENT:
            # a catch-all binding must not put cold-chain rules (stale data...) on the gateway
            if self.measurement != GATEWAY_MEASUREMENT:
                return False
        elif self.measurement is not None and not fnmatchcase(measurement, self.measurement):
            return False
        for key in MATCH_KEYS:
            pattern = getattr(self, key)
            if pattern is not None:
                value = tags.get(key)
                if value is None or not fnmatchcase(value, pattern):
                    return False
        return True

    def could_match(self, pattern: DevicePattern) -> bool:
        """Whether some reading of the pattern can match (unknown values may match anything)."""
        if pattern.measurement == GATEWAY_MEASUREMENT or pattern.measurement == LOT_BUDGET.name:
            return False
        if self.measurement is not None and pattern.measurement is not None:
            if not fnmatchcase(pattern.measurement, self.measurement):
                return False
        for key in MATCH_KEYS:
            want = getattr(self, key)
            if want is None:
                continue
            if key not in pattern.tags:
                if not pattern.open_tags:
                    return False
                continue
            value = pattern.tags[key]
            if value is not None and not fnmatchcase(value, want):
                return False
        return True


class EscalationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: Duration = Field(default=900.0, gt=0)
    """Unacknowledged this long → next notification tier."""
    max_tier: int = Field(default=2, ge=0)
    by_priority: dict[Priority, Duration] = Field(default_factory=dict)


class RulesConfig(BaseModel):
    """The `rules:` section of the gateway config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    builtin_packs: bool = True
    """Load alert_rules/packs/*.yaml."""
    packs: list[str] = Field(default_factory=list)
    """More pack files or globs (relative to the config file's directory)."""
    profiles: dict[str, ProductProfile] = Field(default_factory=dict)
    """Inline profiles; a name used by a pack is replaced by the inline one."""
    bindings: list[Binding] = Field(default_factory=list)
    lateness: Duration = 0.0
    """Event-time reorder bound per series; 0 = evaluate at once (late readings are skipped)."""
    retrospective_after: Duration = 300.0
    """An alert raised (event time) longer than this before its reading arrived is retrospective."""
    max_shelve: Duration = Field(default=8 * 3600.0, gt=0)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    kpi_interval: Duration = Field(default=60.0, gt=0)
    snapshot_interval: Duration = Field(default=60.0, gt=0)
    """How often rule state is saved to the store (and at close)."""
    gateway_health: bool = True
    """Bind the `gateway_health` profile (journal fill alarms) to the gateway's own
    `vigil_gateway` readings, without a binding of your own. False: no such binding is added."""
    device_liveness: bool = True
    """Bind the `liveness` profile (`device_offline`) to every device the collectors report.
    False: only where a binding of your own names it."""

    def library(self, base_dir: Path | str | None = None) -> RuleLibrary:
        """Load the packs and check every reference; raises RulesConfigError."""
        return RuleLibrary.build(self, Path(base_dir) if base_dir else Path.cwd())


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise RulesConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesConfigError([f"{path}: invalid YAML: {exc}"]) from exc


def load_pack(path: Path | str) -> RulePack:
    path = Path(path)
    data = _read_yaml(path)
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        raise RulesConfigError([f"{path}: {e}" for e in validation_errors(exc)]) from exc


def load_rules_config(path: Path | str) -> RulesConfig:
    """A YAML file holding a RulesConfig, at top level or under `rules:`."""
    path = Path(path)
    data = _read_yaml(path) or {}
    prefix = ""
    if isinstance(data, dict) and "rules" in data and isinstance(data["rules"], dict):
        data, prefix = data["rules"], "rules"
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as exc:
        raise RulesConfigError([f"{path}: {e}" for e in validation_errors(exc, prefix)]) from exc


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule as bound: `id` is '<profile>.<rule id>', the alert's `rule` tag."""

    id: str
    profile: str
    spec: RuleBase
    fingerprint: str
    priority: Priority
    latching: bool
    shelvable: bool
    max_shelve_ns: int
    escalate_after_ns: int
    realarm_after_ns: int | None

    @property
    def kind(self) -> str:
        return self.spec.kind  # type: ignore[attr-defined]

    @property
    def field(self) -> str | None:
        return self.spec.field_name


class RuleLibrary:
    """Profiles with packs merged and `extends` resolved; answers 'which rules for a series'."""

    def __init__(
        self,
        config: RulesConfig,
        profiles: dict[str, dict[str, tuple[str, RuleBase]]],
        descriptions: dict[str, str],
        budgets: dict[str, StabilityBudget] | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles
        """profile → rule id → (profile that defined it, spec), inherited rules included."""
        self.descriptions = descriptions
        self.budgets: dict[str, StabilityBudget] = budgets or {}
        """profile → its stability budget (own or inherited)."""
        self._compiled: dict[tuple[str, str], CompiledRule] = {}
        self._cache: dict[tuple[Any, ...], list[CompiledRule]] = {}
        self.bindings: list[Binding] = list(config.bindings)
        """The configured bindings plus the implicit gateway_health one."""
        self.liveness: Binding | None = None
        """The implicit binding of the liveness profile, for devices a collector reports."""
        if config.device_liveness and LIVENESS_PROFILE in profiles:
            self.liveness = Binding(profile=[LIVENESS_PROFILE])
        if config.gateway_health and GATEWAY_HEALTH_PROFILE in profiles:
            self.bindings.append(
                Binding(profile=[GATEWAY_HEALTH_PROFILE], measurement=GATEWAY_MEASUREMENT)
            )

    @classmethod
    def build(cls, config: RulesConfig, base_dir: Path) -> RuleLibrary:
        errors: list[str] = []
        raw: dict[str, ProductProfile] = {}
        where: dict[str, str] = {}
        files: list[Path] = []
        if config.builtin_packs:
            files += sorted(BUILTIN_PACKS_DIR.glob("*.yaml"))
        for i, pattern in enumerate(config.packs):
            p = Path(pattern)
            p = p if p.is_absolute() else base_dir / p
            found = sorted(p.parent.glob(p.name)) if any(c in p.name for c in "*?[") else [p]
            if not found or not all(f.is_file() for f in found):
                errors.append(f"rules.packs[{i}]: no pack file {pattern!r} (looked in {p.parent})")
            files += [f for f in found if f.is_file()]
        for f in files:
            try:
                pack = load_pack(f)
            except RulesConfigError as exc:
                errors += exc.errors
                continue
            for name, prof in pack.profiles.items():
                if name in raw and where[name] != str(f):
                    errors.append(f"{f}: profiles.{name}: already defined in {where[name]}")
                raw[name] = prof
                where[name] = str(f)
        for name, prof in config.profiles.items():
            raw[name] = prof
            where[name] = f"rules.profiles.{name}"

        resolved: dict[str, dict[str, tuple[str, RuleBase]]] = {}
        budgets: dict[str, StabilityBudget] = {}

        def resolve(name: str, stack: tuple[str, ...]) -> dict[str, tuple[str, RuleBase]]:
            if name in resolved:
                return resolved[name]
            prof = raw[name]
            out: dict[str, tuple[str, RuleBase]] = {}
            for j, parent in enumerate(prof.extends):
                if parent not in raw:
                    errors.append(
                        f"{where[name]}: profiles.{name}.extends[{j}]: unknown profile {parent!r}"
                    )
                elif parent in stack:
                    errors.append(
                        f"{where[name]}: profiles.{name}.extends[{j}]: "
                        f"cycle {' -> '.join((*stack, parent))}"
                    )
                else:
                    out.update(resolve(parent, (*stack, parent)))
                    if parent in budgets:
                        budgets[name] = budgets[parent]
            if prof.budget is not None:
                budgets[name] = prof.budget
            for rule in prof.rules:
                out[rule.id] = (name, rule)
            resolved[name] = out
            return out

        for name in raw:
            resolve(name, (name,))
        lib = cls(config, resolved, {n: p.description for n, p in raw.items()}, budgets)
        for i, b in enumerate(config.bindings):
            for j, prof_name in enumerate(b.profile):
                if prof_name not in resolved:
                    errors.append(
                        f"rules.bindings[{i}].profile[{j}]: unknown profile "
                        f"{prof_name!r} (known: {', '.join(sorted(resolved))})"
                    )
            for key, params in b.overrides.items():
                targets = lib._override_targets(b, key)
                if not targets:
                    errors.append(
                        f"rules.bindings[{i}].overrides.{key}: no rule {key!r} in "
                        f"profile(s) {', '.join(b.profile)}"
                    )
                for _origin, spec in targets:
                    try:
                        _merge(spec, params)
                    except ValidationError as exc:
                        errors += validation_errors(exc, f"rules.bindings[{i}].overrides.{key}")
                    except ValueError as exc:
                        errors.append(f"rules.bindings[{i}].overrides.{key}: {exc}")
        if errors:
            raise RulesConfigError(errors)
        return lib

    def _override_targets(self, b: Binding, key: str) -> list[tuple[str, RuleBase]]:
        out = []
        for prof_name in b.profile:
            for rid, (origin, spec) in self.profiles.get(prof_name, {}).items():
                if key in (rid, f"{origin}.{rid}", f"{prof_name}.{rid}"):
                    out.append((origin, spec))
        return out

    def compile(
        self, origin: str, spec: RuleBase, overrides: dict[str, Any] | None = None
    ) -> CompiledRule:
        ov = json.dumps(overrides, sort_keys=True, default=str) if overrides else ""
        key = (f"{origin}.{spec.id}", ov)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        if overrides:
            spec = _merge(spec, overrides)
        cfg = self.config
        after = spec.escalate_after or cfg.escalation.by_priority.get(spec.priority)
        # the alert text (`message`) is no part of the rule's state: leaving it out keeps saved
        # state across a change of wording (and across the version that added the key)
        state_keys = spec.model_dump_json(
            exclude={"message"} if "message" in type(spec).model_fields else None
        )
        compiled = CompiledRule(
            id=f"{origin}.{spec.id}",
            profile=origin,
            spec=spec,
            fingerprint=hashlib.sha1(state_keys.encode()).hexdigest()[:16],
            priority=spec.priority,
            latching=spec.latching,
            shelvable=spec.shelvable,
            max_shelve_ns=to_ns(min(spec.max_shelve or cfg.max_shelve, cfg.max_shelve)),
            escalate_after_ns=to_ns(after or cfg.escalation.after),
            realarm_after_ns=to_ns(spec.realarm_after) if spec.realarm_after else None,
        )
        self._compiled[key] = compiled
        return compiled

    def rules_for(
        self, measurement: str, tags: dict[str, str], reported: bool = False
    ) -> list[CompiledRule]:
        """Rules bound to a series with these tags (cached per distinct tag combination): the
        matching bindings' profiles and the profiles named by the reading's `profile` tag.
        `reported`: a collector reports the device (its liveness rules apply)."""
        key = (measurement, reported, tags.get(PROFILE_TAG), *(tags.get(k) for k in MATCH_KEYS))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if measurement == LOT_BUDGET.name:
            out = self._budget_rules(tags.get(PROFILE_TAG))
            self._cache[key] = out
            return out
        chosen: dict[str, CompiledRule] = {}
        bindings = list(self.bindings)
        leg_profiles = self.tagged_profiles(tags)
        if leg_profiles and measurement != GATEWAY_MEASUREMENT:
            # first, so that a configured binding's overrides of the same rule win
            bindings.insert(0, Binding(profile=leg_profiles))
        if reported and self.liveness is not None:
            bindings.insert(0, self.liveness)
        for b in bindings:
            if not b.matches(measurement, tags):
                continue
            for prof_name in b.profile:
                for rid, (origin, spec) in self.profiles.get(prof_name, {}).items():
                    params: dict[str, Any] = {}
                    for k in (rid, f"{origin}.{rid}", f"{prof_name}.{rid}"):
                        params.update(b.overrides.get(k, {}))
                    rule = self.compile(origin, spec, params or None)
                    if rule.spec.enabled:
                        chosen[rule.id] = rule
                    else:
                        chosen.pop(rule.id, None)
        out = list(chosen.values())
        self._cache[key] = out
        return out

    def tagged_profiles(self, tags: dict[str, str]) -> list[str]:
        """The known profiles a reading's `profile` tag names (unknown names are ignored)."""
        value = tags.get(PROFILE_TAG)
        if not value:
            return []
        return [p for p in value.split(",") if p in self.profiles]

    def _budget_rules(self, profile_tag: str | None) -> list[CompiledRule]:
        out: dict[str, CompiledRule] = {}
        for name in (profile_tag or "").split(","):
            if name not in self.profiles:
                continue
            for spec in budget_rules(self.budgets.get(name)):
                rule = self.compile(name, spec)
                out[rule.id] = rule
        return list(out.values())

    def budget(self, profile: str) -> StabilityBudget | None:
        """The stability budget of a profile (own or inherited), None without one."""
        return self.budgets.get(profile)

    def unbound(self, patterns: Iterable[DevicePattern]) -> list[DevicePattern]:
        """The patterns no configured binding can match: their devices get rules only while a
        leg of a lot covers them (its `profile` tag)."""
        return [p for p in patterns if not any(b.could_match(p) for b in self.config.bindings)]

    def limits(self, profile: str, field: str) -> ProfileLimits:
        """What `profile` says about `field`: its bands, range, MKT parameters and the longest a
        reading holds its value (alert_rules/limits.py). Unknown profile: `known` is False."""
        rules = self.profiles.get(profile)
        if rules is None:
            return ProfileLimits(profile, field, known=False)
        specs = [spec for _origin, spec in rules.values()]
        return profile_limits(profile, field, specs, self.descriptions.get(profile, ""))

    def all_rules(self) -> list[CompiledRule]:
        seen: dict[str, CompiledRule] = {}
        for rules in self.profiles.values():
            for origin, spec in rules.values():
                c = self.compile(origin, spec)
                seen.setdefault(c.id, c)
        return list(seen.values())


def _merge(spec: RuleBase, params: dict[str, Any]) -> RuleBase:
    if "id" in params or "kind" in params:
        raise ValueError("'id' and 'kind' cannot be overridden")
    data = spec.model_dump(exclude_unset=True)
    data.update(params)
    return type(spec).model_validate(data)
