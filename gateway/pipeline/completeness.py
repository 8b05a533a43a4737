"""Record completeness per device, written periodically as measurement `completeness`.

China's GSP asks for a temperature record at least every 30 min in storage, 5 min in transport and
2 min while out of range. For every device bound to a `record_gap` rule (alert_rules/kinds/
record_gap.py, which holds the cadences and the range, per binding), this module cuts time into
windows (`window_s`, aligned to UTC) and writes, once a window has ended and `settle_s` more have
passed, one point at the window's start: the share of recording slots that hold a reading and the
gaps (gateway/core/schema.py COMPLETENESS). The fleet dashboard shows these points.

Readings come from the journal writer's listener (what is durable, in arrival order). A reading
that arrives late, such as a truck's buffer after a dead zone, marks its window again and the
window is rewritten with the same timestamp, which replaces the earlier point; windows older than
`revise_s` are left as written. A device silent for `forget_after_s` is no longer written (until
it speaks again). After a restart the tracker is seeded from the journal rows of the last
`revise_s`, so windows are rewritten from there on.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from alert_rules import RuleLibrary, source_of
from alert_rules.completeness import Completeness
from alert_rules.kinds.base import num
from alert_rules.kinds.record_gap import RecordGapRule
from gateway.core.lineprotocol import LineProtocolError, decode
from gateway.core.reading import Reading
from gateway.core.schema import COLDCHAIN, COMPLETENESS, PROCESS
from gateway.pipeline.journal import Journal

log = logging.getLogger("vigil.completeness")

NS = 1_000_000_000
DEVICE_MEASUREMENTS = frozenset({COLDCHAIN.name, PROCESS.name})
POINT_TAGS = ("site", "asset", "line", "equipment", "device")
"""The device's tags a completeness point carries (besides gateway and source)."""

Sample = tuple[int, float | None, Mapping[str, str]]
"""(event time ns, value of the rule's field or None, the reading's tags)."""


class CompletenessConfig(BaseModel):
    """The `completeness:` section of the gateway config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    window_s: float = Field(3600.0, gt=0)
    """Completeness is written per window of this length, aligned to UTC."""
    settle_s: float = Field(300.0, ge=0)
    """A window is first written this long after it ended (readings arriving a little late)."""
    revise_s: float = Field(86_400.0, ge=0)
    """Readings arriving later rewrite windows up to this old."""
    interval_s: float = Field(60.0, gt=0)
    """How often ended windows are written."""
    forget_after_s: float = Field(7 * 86_400.0, gt=0)
    """A device with no reading (event time) for this long is no longer written."""


def rule_for(library: RuleLibrary, measurement: str, tags: dict[str, str]) -> RecordGapRule | None:
    """The `record_gap` rule bound to a series with these tags, if any."""
    for rule in library.rules_for(measurement, tags):
        if isinstance(rule.spec, RecordGapRule):
            return rule.spec
    return None


def cadence_at(rule: RecordGapRule, samples: Sequence[Sample], at_ns: int) -> int:
    """The cadence in force at `at_ns`: after the last reading before it, else the base one."""
    i = bisect.bisect_left(samples, at_ns, key=lambda s: s[0])
    if i > 0:
        _, v, tags = samples[i - 1]
        return rule.cadence_ns(v, tags)
    first = samples[i][2] if i < len(samples) else {}
    return rule.base_cadence_ns(rule.context_of(first))


def point(
    c: Completeness, cadence_ns: int, samples: int, tags: dict[str, str], at_ns: int, now_ns: int
) -> Reading:
    """The `completeness` point of one device and window."""
    longest = max((g.end_ns - g.start_ns for g in c.gaps), default=0)
    return Reading(
        COMPLETENESS.name,
        tags,
        {
            "share": c.share,
            "slots": c.slots,
            "filled": c.filled,
            "missed": c.slots - c.filled,
            "readings": samples,
            "gaps": len(c.gaps),
            "longest_gap_s": longest / NS,
            "cadence_s": cadence_ns / NS,
        },
        at_ns,
        now_ns,
    )


@dataclass(slots=True)
class _Device:
    measurement: str
    rule: RecordGapRule
    tags: dict[str, str]
    first_ns: int
    next_window: int
    """Start of the first window not written yet."""
    samples: list[Sample] = field(default_factory=list)
    dirty: set[int] = field(default_factory=set)
    """Written windows that got readings since."""

    @property
    def last_ns(self) -> int:
        return self.samples[-1][0] if self.samples else self.first_ns


class CompletenessTracker:
    """Per device, the readings of the recent windows; `due(now)` gives the points to write.

    Pure bookkeeping (no I/O), fed by `observe`; `CompletenessWriter` runs it in the gateway.
    """

    def __init__(self, config: CompletenessConfig, library: RuleLibrary, gateway: str) -> None:
        self.config = config
        self.library = library
        self.gateway = gateway
        self.window_ns = round(config.window_s * NS)
        self.devices: dict[tuple[str, str], _Device] = {}

    def window_of(self, ts_ns: int) -> int:
        return ts_ns - ts_ns % self.window_ns

    def observe(self, readings: Iterable[Reading], now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        oldest = self.window_of(now - round(self.config.revise_s * NS))
        for r in readings:
            if r.measurement not in DEVICE_MEASUREMENTS:
                continue
            key = (r.measurement, source_of(r.tags))
            dev = self.devices.get(key)
            if dev is None:
                rule = rule_for(self.library, r.measurement, r.tags)
                if rule is None or rule.field not in r.fields or r.ts_ns < oldest:
                    continue
                w = self.window_of(r.ts_ns)
                dev = _Device(r.measurement, rule, self._tags(r.tags, key[1]), r.ts_ns, w)
                self.devices[key] = dev
            value = r.fields.get(dev.rule.field)
            if value is None or r.ts_ns < oldest:
                continue
            sample = (r.ts_ns, num(value), r.tags)
            bisect.insort_right(dev.samples, sample, key=lambda s: s[0])
            if r.ts_ns >= dev.samples[-1][0]:
                dev.tags = self._tags(r.tags, key[1])
            if r.ts_ns < dev.first_ns:
                dev.first_ns = r.ts_ns
                dev.next_window = min(dev.next_window, self.window_of(r.ts_ns))
            w = self.window_of(r.ts_ns)
            if w < dev.next_window:
                dev.dirty.add(w)

    def _tags(self, tags: Mapping[str, str], source: str) -> dict[str, str]:
        out = {k: tags[k] for k in POINT_TAGS if tags.get(k)}
        out["source"] = source
        out["gateway"] = self.gateway
        return out

    def due(self, now_ns: int) -> list[Reading]:
        """Points for every window ended `settle_s` ago and not written yet, and for written
        windows that got readings since; forgets silent devices and readings too old to matter."""
        cfg = self.config
        cutoff = now_ns - round(cfg.settle_s * NS)
        keep_from = self.window_of(now_ns - round(cfg.revise_s * NS))
        forget = round(cfg.forget_after_s * NS)
        out: list[Reading] = []
        for key, dev in list(self.devices.items()):
            windows = sorted(w for w in dev.dirty if w >= keep_from)
            dev.dirty.clear()
            w = dev.next_window
            silent_until = dev.last_ns + forget
            while w + self.window_ns <= cutoff and w < silent_until:
                windows.append(w)
                w += self.window_ns
            dev.next_window = w
            for start in windows:
                out.append(self._point(dev, start, now_ns))
            if w >= silent_until:
                del self.devices[key]
                continue
            self._trim(dev, keep_from)
        return out

    def _point(self, dev: _Device, start: int, now_ns: int) -> Reading:
        since = max(start, dev.first_ns)
        until = start + self.window_ns
        c = dev.rule.completeness(dev.samples, since, until)
        lo = bisect.bisect_left(dev.samples, since, key=lambda s: s[0])
        hi = bisect.bisect_left(dev.samples, until, key=lambda s: s[0])
        cadence = cadence_at(dev.rule, dev.samples, since)
        return point(c, cadence, hi - lo, dict(dev.tags), start, now_ns)

    def _trim(self, dev: _Device, keep_from: int) -> None:
        """Drop readings before `keep_from`, keeping the last of them (it sets the cadence)."""
        i = bisect.bisect_left(dev.samples, keep_from, key=lambda s: s[0])
        if i > 1:
            del dev.samples[: i - 1]


class CompletenessWriter:
    """Runs a tracker in the gateway: seeded from the journal, fed by the journal writer's
    listener, its points submitted as the gateway's own readings every `interval_s`."""

    def __init__(
        self,
        tracker: CompletenessTracker,
        submit: Callable[[list[Reading]], Awaitable[None]],
    ) -> None:
        self.tracker = tracker
        self.submit = submit
        self.written = 0

    def on_committed(self, readings: Sequence[Reading]) -> None:
        self.tracker.observe(readings)

    def seed(self, journal: Journal, now_ns: int | None = None) -> int:
        """Feed the journal rows of the last `revise_s` (blocking: use a worker thread)."""
        cfg = self.tracker.config
        now = time.time_ns() if now_ns is None else now_ns
        since = now - round((cfg.revise_s + cfg.window_s) * NS)
        found: list[Reading] = []
        for row in journal.lines_since(since):
            if not row.line.startswith((COLDCHAIN.name + ",", PROCESS.name + ",")):
                continue
            try:
                found.append(decode(row.line, row.received_ns))
            except LineProtocolError:
                continue
        found.sort(key=lambda r: r.ts_ns)
        tracker = self.tracker
        tracker.observe(found, now)
        # rewrite only windows the seed covers whole: earlier ones keep what was written
        start = tracker.window_of(since) + tracker.window_ns
        for dev in tracker.devices.values():
            dev.next_window = max(dev.next_window, start)
        return len(found)

    async def run(self) -> None:
        interval = self.tracker.config.interval_s
        while True:
            await asyncio.sleep(interval)
            await self.write_due()

    async def write_due(self, now_ns: int | None = None) -> int:
        points = self.tracker.due(time.time_ns() if now_ns is None else now_ns)
        if points:
            await self.submit(points)
            self.written += len(points)
        return len(points)
