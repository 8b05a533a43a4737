"""The journal on a real SQLite file: cursors, retention, the size budget, quarantine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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
    j = Journal(tmp_path / "j.sqlite", retention_s=3600)
    j.register_sink("a")
    j.register_sink("b")
    j.append(readings(10, received_ns=0), [])
    now = 10 * HOUR_NS
    assert j.prune(now) == 0  # nobody has taken anything
    j.advance("a", 10)
    j.advance("b", 4)
    assert j.prune(now) == 4  # only what both sinks have
    assert next(r.id for r in j.read_after(0, 100)) == 5
    j.advance("b", 10)
    j.append(readings(2, received_ns=now), [])
    assert j.prune(now) == 6  # the fresh rows are inside retention
    assert j.count("readings") == 2


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
    j = Journal(tmp_path / "j.sqlite", max_bytes=48 * 1024, retention_s=0)
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
