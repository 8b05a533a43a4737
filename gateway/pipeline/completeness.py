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
from array import array
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from alert_rules import RuleLibrary, source_of
from alert_rules.completeness import Completeness, completeness
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
    """One device's recent record: event times and, for each, the cadence in force after it
    (what completeness needs), in two arrays: 16 bytes a reading."""

    measurement: str
    rule: RecordGapRule
    source: str
    tags: dict[str, str]
    """The tags its completeness points carry (of its latest reading)."""
    first_ns: int
    first_cadence: int
    """The base cadence (storage or transport) of the device's first reading: the first slot."""
    next_window: int
    """Start of the first window not written yet."""
    tags_of: dict[str, str] | None = None
    """The reading tags `tags` were made from."""
    thin_ns: int = 0
    """Of readings closer together than this, only the first and last are kept: each recording
    slot, at least twice as long, still holds one if it held one."""
    times: array[int] = field(default_factory=lambda: array("q"))
    after: array[int] = field(default_factory=lambda: array("q"))
    dirty: set[int] = field(default_factory=set)
    """Written windows that got readings since."""

    def __post_init__(self) -> None:
        self.thin_ns = max(1, min(self.rule.cadences_ns) // 4)

    @property
    def last_ns(self) -> int:
        return self.times[-1] if self.times else self.first_ns

    def add(self, ts: int, cadence: int) -> None:
        times = self.times
        n = len(times)
        if n == 0 or ts >= times[-1]:
            t = self.thin_ns
            if n >= 2 and times[-2] // t == times[-1] // t == ts // t:
                times[-1], self.after[-1] = ts, cadence  # keep the bucket's first and last
                return
            times.append(ts)
            self.after.append(cadence)
            return
        i = bisect.bisect_right(times, ts)
        times.insert(i, ts)
        self.after.insert(i, cadence)


class CompletenessTracker:
    """Per device, the readings of the recent windows; `due(now)` gives the points to write.

    Pure bookkeeping (no I/O), fed by `observe`; `CompletenessWriter` runs it in the gateway.
    Memory: 16 bytes per reading kept (`revise_s` and a window of them), e.g. about 25 MB for
    1000 loggers recording once a minute with the defaults.
    """

    def __init__(self, config: CompletenessConfig, library: RuleLibrary, gateway: str) -> None:
        self.config = config
        self.library = library
        self.gateway = gateway
        self.window_ns = round(config.window_s * NS)
        self.devices: dict[tuple[str, str], _Device] = {}
        self._seen: dict[int, tuple[dict[str, str], str, _Device | None]] = {}
        """id(tags) → (tags, measurement, tracked device or None): the lookup per tag set."""

    def window_of(self, ts_ns: int) -> int:
        return ts_ns - ts_ns % self.window_ns

    def observe(self, readings: Iterable[Reading], now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        oldest = self.window_of(now - round(self.config.revise_s * NS))
        seen = self._seen
        for r in readings:
            tags = r.tags
            # readings of one topic share their tags dict: look its series up once
            hit = seen.get(id(tags))
            if hit is None or hit[0] is not tags or hit[1] != r.measurement:
                hit = self._lookup(r, oldest)
            dev = hit[2]
            if dev is None:
                continue
            value = r.fields.get(dev.rule.field)
            ts = r.ts_ns
            if value is None or ts < oldest:
                continue
            if ts >= dev.last_ns:
                if dev.tags_of is not tags:
                    dev.tags, dev.tags_of = self._tags(tags, dev.source), tags
            dev.add(ts, dev.rule.cadence_ns(num(value), tags))
            if ts < dev.first_ns:
                dev.first_ns = ts
                dev.next_window = min(dev.next_window, self.window_of(ts))
            w = ts - ts % self.window_ns
            if w < dev.next_window:
                dev.dirty.add(w)

    def _lookup(self, r: Reading, oldest: int) -> tuple[dict[str, str], str, _Device | None]:
        """The tracked device of a reading's series, created when a record_gap rule is bound
        to it and the reading carries the rule's field and is recent enough (None: not
        tracked, or not yet)."""
        tags = r.tags
        if len(self._seen) > 50_000:
            self._seen.clear()
        source = source_of(tags)
        key = (r.measurement, source)
        dev = self.devices.get(key)
        rule = None
        if dev is None and r.measurement in DEVICE_MEASUREMENTS:
            rule = rule_for(self.library, r.measurement, tags)
            if rule is not None and rule.field in r.fields and r.ts_ns >= oldest:
                dev = _Device(
                    r.measurement,
                    rule,
                    source,
                    self._tags(tags, source),
                    r.ts_ns,
                    rule.base_cadence_ns(rule.context_of(tags)),
                    self.window_of(r.ts_ns),
                )
                self.devices[key] = dev
        hit = (tags, r.measurement, dev)
        if dev is not None or rule is None:
            self._seen[id(tags)] = hit  # a bound series not tracked yet is asked again
        return hit

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
                self._seen.clear()  # it may point at the device
                continue
            self._trim(dev, keep_from)
        return out

    def _point(self, dev: _Device, start: int, now_ns: int) -> Reading:
        since = max(start, dev.first_ns)
        until = start + self.window_ns
        times = dev.times
        c = completeness(
            [(t, 0.0) for t in times], since, until, dev.first_cadence, cadence_after=dev.after
        )
        lo = bisect.bisect_left(times, since)
        hi = bisect.bisect_left(times, until)
        cadence = dev.after[lo - 1] if lo > 0 else dev.first_cadence
        return point(c, cadence, hi - lo, dict(dev.tags), start, now_ns)

    def _trim(self, dev: _Device, keep_from: int) -> None:
        """Drop readings before `keep_from`, keeping the last of them (it sets the cadence)."""
        i = bisect.bisect_left(dev.times, keep_from)
        if i > 1:
            del dev.times[: i - 1]
            del dev.after[: i - 1]


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
