"""The journal on a real SQLite file: cursors, retention, the size budget, quarantine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from gateway.core.lineprotocol import encode
from gateway.core.metrics import Counters
from gateway.core.reading import DeadLetter, Reading
from gateway.pipeline.journal import Journal, JournalFull
from gateway.pipeline.writer import JournalWriter

HOUR_NS = 3600 * 10**9


def readings(n: int, t0: int = 0, received_ns: int = 0) -> list[Reading]:
    return [
        Reading("coldchain", {"device": f"d{i % 3}"}, {"temp_c": float(i)}, t0 + i, received_ns)
        for i in range(n)
    ]


def test_append_read_advance(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    assert j.register_sink("influx") == 0
    last = j.append(readings(10), [DeadLetter("t", b"x", "bad")])
    assert last == 10 and j.backlog("influx") == 10
    rows = j.read_after(0, 4)
    assert [r.id for r in rows] == [1, 2, 3, 4]
    assert rows[0].line == "coldchain,device=d0 temp_c=0.0 0"
    j.advance("influx", 4)
    assert j.backlog("influx") == 6 and j.cursor("influx") == 4
    assert j.dead_letters()[0].reason == "bad"


def test_cursor_survives_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.register_sink("influx")
    j.append(readings(5), [])
    j.advance("influx", 3)
    j.close()
    j2 = Journal(tmp_path / "j.sqlite")
    assert j2.register_sink("influx") == 3
    assert [r.id for r in j2.read_after(3, 100)] == [4, 5]


def test_retention_never_deletes_untaken_rows(tmp_path: Path) -> None:
    """Pruning moves whole commits (chain links) that every sink has taken and that are past
    retention into the archive; nothing else leaves the journal."""
    j = Journal(tmp_path / "j.sqlite", retention_s=3600)
    j.register_sink("a")
    j.register_sink("b")
    for k in range(5):  # five commits of two readings: ids 1-2, 3-4, ...
        j.append(readings(2, t0=2 * k, received_ns=0), [])
    now = 10 * HOUR_NS
    assert j.prune(now) == 0  # nobody has taken anything
    j.advance("a", 10)
    j.advance("b", 5)
    assert j.prune(now) == 4  # the commits both sinks have whole: ids 1-4 (5 is half of 5-6)
    assert next(r.id for r in j.read_after(0, 100)) == 5
    j.advance("b", 10)
    j.append(readings(2, received_ns=now), [])
    assert j.prune(now) == 6  # the fresh rows are inside retention
    assert j.count("readings") == 2
    archived = [item.link.count for item in j.archive.iter_links()]
    assert archived == [2, 2, 2, 2, 2]  # moved, not deleted


def test_ids_never_reused_after_full_prune(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", retention_s=0)
    j.register_sink("s")
    j.append(readings(3), [])
    j.advance("s", 3)
    j.prune(HOUR_NS)
    assert j.append(readings(1), []) == 4
    assert [r.id for r in j.read_after(j.cursor("s"), 10)] == [4]


def test_full_journal_refuses_and_writes_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", max_bytes=64 * 1024)
    j.register_sink("s")
    with pytest.raises(JournalFull):
        for _ in range(100):
            j.append(readings(200), [])
    before = j.count("readings")
    with pytest.raises(JournalFull):
        j.append(readings(5), [])
    assert j.count("readings") == before


def test_quarantine_moves_cursor_and_keeps_body(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.register_sink("influx")
    j.append(readings(3), [])
    j.quarantine("influx", 1, 3, 400, "field type conflict", "line1\nline2")
    assert j.cursor("influx") == 3 and j.count("quarantine") == 1


async def test_writer_acks_after_commit_and_holds_acks_while_full(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", max_bytes=96 * 1024, retention_s=0)
    j.register_sink("s")
    counters = Counters()
    writer = JournalWriter(j, counters, full_retry_s=0.01)
    seen: list[int] = []
    task = asyncio.create_task(writer.run())
    acked: list[int] = []
    writer.listeners.append(lambda rs: seen.append(len(rs)))
    await writer.submit(readings(5), [], lambda: acked.append(j.count("readings")))
    async with asyncio.timeout(5):
        while not acked:  # noqa: ASYNC110 (polling with a deadline)
            await asyncio.sleep(0.01)
    assert acked == [5] and sum(seen) == 5  # acknowledged only once the rows were in
    # fill the journal one message at a time: the message that finds it full is not acknowledged
    while not counters.journal_full:
        done = asyncio.Event()
        await writer.submit(readings(300), [], done.set)
        async with asyncio.timeout(5):
            while not done.is_set() and not counters.journal_full:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    late: list[bool] = []
    await writer.submit(readings(1), [], lambda: late.append(True))
    await asyncio.sleep(0.2)
    assert late == [] and counters.journal_full
    async with asyncio.timeout(10):
        while not late:
            j.advance("s", j.last_id())
            await asyncio.sleep(0.01)
    assert not counters.journal_full
    task.cancel()


def test_read_batch_is_the_joined_lines(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.append(readings(7), [])
    batch = j.read_batch(2, 4)
    assert batch is not None
    assert (batch.first_id, batch.last_id, batch.count) == (3, 6, 4)
    assert batch.body.split("\n") == [r.line for r in j.read_after(2, 4)]
    assert j.read_batch(7, 10) is None


def test_fill_alarms_at_80_and_95_percent(caplog) -> None:  # type: ignore[no-untyped-def]
    c = Counters()
    with caplog.at_level("WARNING", logger="vigil.metrics"):
        for fill in (0.5, 0.81, 0.85, 0.96, 0.97, 0.7):
            c.check_fill(fill)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "journal at 81% of its size budget (alarm at 80%)",
        "journal at 96% of its size budget (alarm at 95%)",
        "journal back below 95% of its size budget",
    ]
    assert c.fill_alarm == 0.0


# -- the size budget, checked against what is about to be written (issue 14) --------------------

PAGE = 4096
EXEMPT = PAGE
"""What the gateway's own readings (exempt from the budget) may add: a page."""


def _device_rows(j: Journal) -> int:
    return sum(1 for r in j.read_after(0, 10**6) if r.line.startswith("coldchain"))


def _gateway_points(seen: list[Reading]) -> list[float]:
    return [float(r.fields["journal_fill"]) for r in seen if r.measurement == "vigil_gateway"]


async def _until(predicate, deadline_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(deadline_s):
        while not predicate():  # noqa: ASYNC110 (polling with a deadline)
            await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    ("line", "rows"), [(45, 3000), (66, 3000), (400, 2000), (2500, 400), (9000, 200)]
)
def test_row_estimates_match_sqlite(tmp_path: Path, line: int, rows: int) -> None:
    """The estimate is calibrated against SQLite's used pages: never below by more than 1 %, and
    at most 15 % above (one row per page at worst), so a budget is not overshot by a misjudged
    row size."""
    from gateway.pipeline.journal import dead_letter_bytes, reading_bytes

    j = Journal(tmp_path / "j.sqlite")
    before = j.used_bytes()
    rs = [
        Reading(
            "coldchain", {"device": "x" * (line - 40)}, {"temp_c": float(i)}, 10**18 + i, 10**18
        )
        for i in range(rows)
    ]
    for k in range(0, rows, 500):
        j.append(rs[k : k + 500], [])
    est = sum(reading_bytes(len(encode(r).encode())) for r in rs)
    used = j.used_bytes() - before
    assert 0.99 * used <= est <= 1.15 * used, (used, est)
    dead = [DeadLetter("vigil/s/a/d/telemetry", b"x" * line, "some reason", 10**18)] * rows
    before = j.used_bytes()
    j.append([], dead)
    est = sum(dead_letter_bytes(d) for d in dead)
    used = j.used_bytes() - before
    assert 0.99 * used <= est <= 1.15 * used, (used, est)


async def test_budget_is_checked_against_the_batch_and_split_per_message(tmp_path: Path) -> None:
    """Messages queued together are committed in order as far as they fit; the first that does
    not fit and all after it are held, unacknowledged. The fill never overshoots the budget."""
    j = Journal(tmp_path / "j.sqlite", max_bytes=200_000, retention_s=0)
    j.register_sink("s")
    counters = Counters()
    writer = JournalWriter(j, counters, full_retry_s=0.05)
    seen: list[Reading] = []
    fills: list[int] = []
    writer.listeners.append(lambda rs: (seen.extend(rs), fills.append(j.used_bytes())))
    acked: list[int] = []
    for m in range(40):  # 40 messages of 200 readings: ~17 KB each, 3.5 budgets together
        await writer.submit(readings(200, t0=m * 1000), [], lambda m=m: acked.append(m))
    task = asyncio.create_task(writer.run())
    try:
        await _until(lambda: counters.journal_full)
        n = len(acked)
        assert 8 <= n < 40 and acked == list(range(n))  # a prefix, in order
        assert _device_rows(j) == 200 * n
        assert max(fills) <= j.max_bytes + EXEMPT
        assert writer.holding and counters.journal_full
        await _until(lambda: _gateway_points(seen))
        assert _gateway_points(seen)[-1] >= 1.0  # held: reported full
        # while full, retries commit only what fits and acknowledge exactly that
        await asyncio.sleep(0.3)
        assert writer.holding and acked == list(range(len(acked))) and len(acked) < 40
        assert _device_rows(j) == 200 * len(acked) and j.used_bytes() <= j.max_bytes + EXEMPT
        # room frees up (the sink took everything; retention 0): the rest goes, in order
        while len(acked) < 40:
            j.advance("s", j.last_id())
            await asyncio.sleep(0.01)
        assert acked == list(range(40))
        assert max(fills) <= j.max_bytes + EXEMPT
        assert not counters.journal_full
    finally:
        task.cancel()


async def test_fill_crossings_write_journal_fill_readings(tmp_path: Path) -> None:
    """80 %, 95 % and 100 % crossings, up and down, each write a `vigil_gateway` reading with
    `journal_fill` at once (internal: it gets in even while the journal is full)."""
    j = Journal(tmp_path / "j.sqlite", max_bytes=150_000, retention_s=0)
    j.register_sink("s")
    counters = Counters()
    writer = JournalWriter(j, counters, full_retry_s=0.02, gateway_name="gw-x")
    seen: list[Reading] = []
    writer.listeners.append(seen.extend)
    task = asyncio.create_task(writer.run())
    try:
        sent = 0
        while not counters.journal_full:  # one small message at a time, each waited for
            done = asyncio.Event()
            await writer.submit(readings(40, t0=sent), [], done.set)
            sent += 40
            async with asyncio.timeout(5):
                while not done.is_set() and not counters.journal_full:  # noqa: ASYNC110
                    await asyncio.sleep(0.002)
        await _until(lambda: _gateway_points(seen)[-1:] >= [1.0])
        points = [r for r in seen if r.measurement == "vigil_gateway"]
        assert all(r.tags == {"gateway": "gw-x"} for r in points)
        ups = _gateway_points(seen)
        assert [next(i for i, f in enumerate(ups) if f >= t) for t in (0.8, 0.95, 1.0)] == [0, 1, 2]
        assert 0.8 <= ups[0] < 0.85 and 0.95 <= ups[1] < 1.0 and ups[2] >= 1.0
        assert j.used_bytes() <= j.max_bytes + EXEMPT
        assert counters.journal_fill >= 1.0 and counters.fill_alarm == 0.95
        # space frees up: back below 80 % in one step
        j.advance("s", j.last_id())
        await _until(lambda: _gateway_points(seen)[-1] < 0.8)
        assert len(_gateway_points(seen)) == 4
        assert not counters.journal_full and counters.fill_alarm == 0.0
    finally:
        task.cancel()


async def test_internal_readings_pass_a_full_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", max_bytes=64 * 1024)
    j.register_sink("s")
    counters = Counters()
    writer = JournalWriter(j, counters, full_retry_s=0.02)
    seen: list[Reading] = []
    writer.listeners.append(seen.extend)
    task = asyncio.create_task(writer.run())
    try:
        acked: list[bool] = []
        for i in range(10):
            await writer.submit(readings(300, t0=i * 1000), [], lambda: acked.append(True))
        await _until(lambda: counters.journal_full)
        alert = Reading("alert", {"rule": "r", "source": "s"}, {"state": "x"}, 10**18, 10**18)
        done: list[bool] = []
        await writer.submit([alert], [], lambda: done.append(True), internal=True)
        await _until(lambda: done == [True])
        assert alert in seen and writer.holding  # in, while the device readings still wait
    finally:
        task.cancel()


async def test_a_reading_the_encoder_refuses_is_dead_lettered_not_the_batch(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    counters = Counters()
    writer = JournalWriter(j, counters)
    task = asyncio.create_task(writer.run())
    good = readings(3)
    bad = [
        Reading("coldchain", {"device": "d"}, {"temp_c": float("nan")}, 1, 5),
        Reading("coldchain", {"device": "a\nb"}, {"temp_c": 1.0}, 1, 6),
        Reading("coldchain", {"device": 7}, {"temp_c": 1.0}, 1, 7),  # type: ignore[dict-item]
        Reading("coldchain", {"device": "d"}, {"temp_c": 1.0}, 2**64, 8),
    ]
    odd = DeadLetter("topic/\ud800", b"p", "reason \udcff", 9)  # lone surrogates
    acked: list[bool] = []
    try:
        await writer.submit([good[0], *bad, *good[1:]], [odd], lambda: acked.append(True))
        await _until(lambda: acked == [True])
    finally:
        task.cancel()
    assert [r.line for r in j.read_after(0, 10)] == [encode(r) for r in good]
    assert counters.journaled == 3 and counters.dead_letters == 5
    letters = sorted(j.dead_letters(), key=lambda d: d.received_ns)
    assert [d.source for d in letters[:4]] == ["vigil://journal-writer"] * 4
    reasons = [d.reason for d in letters[:4]]
    assert all(
        r.startswith("internal error: cannot encode reading: LineProtocolError: ") for r in reasons
    )
    assert "not finite" in reasons[0] and "control character (U+000A)" in reasons[1]
    assert "int, not text" in reasons[2] and "64-bit integer" in reasons[3]
    assert orjson.loads(letters[1].payload)["tags"] == {"device": "a\nb"}
    assert letters[4].source == "topic/\\ud800" and letters[4].reason == "reason \\udcff"


async def test_drain_while_full_returns_at_once_without_acknowledging(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite", max_bytes=64 * 1024)
    j.register_sink("s")  # nothing is ever forwarded: the journal stays full
    counters = Counters()
    writer = JournalWriter(j, counters, full_retry_s=0.02)
    task = asyncio.create_task(writer.run())
    acked: list[int] = []
    for i in range(6):
        await writer.submit(readings(300, t0=i * 1000), [], lambda i=i: acked.append(i))
    await _until(lambda: counters.journal_full)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for i in range(6, 9):  # arrived after the writer stopped: queued, never fitting
        await writer.submit(readings(300, t0=i * 1000), [], lambda i=i: acked.append(i))
    t0 = asyncio.get_running_loop().time()
    async with asyncio.timeout(2):
        await writer.drain()  # commits what fits once, then returns: it never waits for room
    assert asyncio.get_running_loop().time() - t0 < 1.0
    assert writer.holding and 0 < len(acked) < 9
    assert acked == list(range(len(acked)))  # in order; the rest is not acknowledged
    assert _device_rows(j) == 300 * len(acked)  # exactly what was acknowledged is in


def test_the_periodic_gateway_point_carries_journal_fill() -> None:
    c = Counters()
    c.check_fill(0.42)
    point = c.point("gw-1", restarts=0)
    assert point.measurement == "vigil_gateway" and point.tags == {"gateway": "gw-1"}
    assert point.fields["journal_fill"] == 0.42
    from gateway.core.schema import GATEWAY

    optional = {"clock_skew_s", "clock_synced", "backup_failed"}  # only once known
    optional |= {"notifier_failing", "notifier_failures"}  # a notifier channel's own readings
    assert set(point.fields) == set(GATEWAY.fields) - optional
    c.clock_skew_s, c.clock_synced, c.backup_failed = 1.5, False, True
    point = c.point("gw-1", restarts=0)
    assert set(point.fields) == set(GATEWAY.fields) - {"notifier_failing", "notifier_failures"}
    assert (point.fields["clock_synced"], point.fields["backup_failed"]) == (0.0, 1.0)
