"""The journal's hash chain and its archive, on real SQLite files: tampering is named, pruning
moves readings into daily segments that stay verifiable and queryable, migration from 0.1.0."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.lineprotocol import encode
from gateway.core.reading import Reading
from gateway.pipeline.archive import DAY_NS, Archive
from gateway.pipeline.chain import GENESIS
from gateway.pipeline.journal import (
    SCHEMA_VERSION,
    History,
    Journal,
    JournalVersionError,
    read_head,
    verify_chain,
)

HOUR_NS = 3600 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def batch(n: int, t0: int, device: str = "d1") -> list[Reading]:
    return [
        Reading(
            "coldchain",
            {"site": "s", "asset": "a", "device": device},
            {"temp_c": 4.0 + i / 100},
            t0 + i * 10**9,
            t0 + i * 10**9,
        )
        for i in range(n)
    ]


def fill(j: Journal, sizes: list[int]) -> None:
    t = T0
    for n in sizes:
        j.append(batch(n, t), [])
        t += n * 10**9


def raw(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, args)
    db.commit()
    db.close()


def test_chain_verifies_and_names_a_changed_reading(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite")
    fill(j, [3, 5, 4])
    seq, head = j.head()
    assert seq == 3 and head != GENESIS
    j.close()
    res = verify_chain(tmp_path / "journal.sqlite", Archive(tmp_path / "archive"))
    assert res.ok and res.links == 3 and res.readings == 12 and res.head_hash == head
    assert read_head(tmp_path / "journal.sqlite") == (3, head)
    # reading 6 (second batch: ids 4..8) gets another value
    raw(
        tmp_path / "journal.sqlite",
        "UPDATE readings SET line = replace(line, 'temp_c=4.02', 'temp_c=2.02') WHERE id = 6",
    )
    res = verify_chain(tmp_path / "journal.sqlite", Archive(tmp_path / "archive"))
    assert not res.ok and res.broken is not None and res.broken.seq == 2
    assert "batch 2 (readings 4..8" in res.describe()
    assert "do not match its hash" in res.describe()


def test_deleted_and_added_readings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    fill(j, [2, 2, 2])
    j.close()
    raw(path, "DELETE FROM readings WHERE id = 3")
    res = verify_chain(path, Archive(tmp_path / "archive"))
    assert not res.ok and res.broken is not None and res.broken.seq == 2
    assert "holds 1 readings" in (res.problem or "")
    j = Journal(path)  # a fresh file, rows added after the head
    path2 = tmp_path / "j2.sqlite"
    j2 = Journal(path2)
    fill(j2, [2])
    j2.close()
    j.close()
    raw(path2, "INSERT INTO readings (received_ns, ts_from_receive, line) VALUES (1, 0, 'x f=1 1')")
    res = verify_chain(path2, Archive(tmp_path / "a2"))
    assert not res.ok and "1 readings from id 3 on are in no batch" in res.describe()


def test_newest_batches_deleted_leave_a_shorter_valid_chain(tmp_path: Path) -> None:
    """Why the head is anchored elsewhere: truncation alone verifies."""
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    fill(j, [2, 2, 2])
    j.close()
    raw(path, "DELETE FROM readings WHERE id > 4")
    raw(path, "DELETE FROM chain WHERE seq = 3")
    res = verify_chain(path, Archive(tmp_path / "archive"))
    assert res.ok and res.head_seq == 2


def test_prune_moves_links_to_daily_segments_that_stay_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path, retention_s=3600)
    fill(j, [10, 20, 30])
    head = j.head()
    before = list(History(path, j.archive).rows_between(T0, T0 + DAY_NS))
    assert len(before) == 60
    moved = j.prune(j._head[2] + 2 * HOUR_NS)  # no sink: the journal is the record
    assert moved == 60 and j.count("readings") == 0
    [report] = j.take_prune_reports()
    assert (report.readings, report.links, report.checkpoint_seq) == (60, 3, 3)
    # a commit the next day: the first day's segment is sealed into the manifest
    j._head = (j._head[0], j._head[1], j._head[2] + DAY_NS)
    j.append(batch(2, T0 + 100 * 10**9), [])
    j.prune(j._head[2] - 1)
    entries = j.archive.manifest()
    assert [e["kind"] for e in entries] == ["sealed"]
    assert entries[0]["readings"] == 60 and entries[0]["head"] == head[1]
    assert entries[0]["prev"] == GENESIS
    j.append(batch(1, T0 + 200 * 10**9), [])
    j.close()
    res = verify_chain(path, j.archive)
    assert res.ok, res.describe()
    assert res.links == 5 and res.readings == 63
    after = list(History(path, j.archive).rows_between(T0, T0 + DAY_NS))
    assert [r.line for r in after[:60]] == [r.line for r in before]
    assert len(after) == 63


def test_a_changed_archived_reading_or_segment_is_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path, retention_s=0)
    fill(j, [5, 5])
    j.prune(j._head[2] + 1)
    j.close()
    archive = Archive(tmp_path / "archive")
    [(_day, seg)] = archive.segments()
    # an open (unsealed) segment: its links still check every row
    from gateway.pipeline.archive import pack_rows, unpack_rows

    db = sqlite3.connect(seg)
    blob, count = db.execute("SELECT rows, count FROM links WHERE seq = 2").fetchone()
    received, flags, lines = unpack_rows(blob, count)
    lines[1] = lines[1].replace("temp_c=4.01", "temp_c=9.01")
    db.execute("UPDATE links SET rows = ? WHERE seq = 2", (pack_rows(received, flags, lines),))
    db.commit()
    db.close()
    res = verify_chain(path, archive)
    assert not res.ok and res.broken is not None and res.broken.seq == 2


def test_a_sealed_segment_changed_is_named_by_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path, retention_s=0)
    fill(j, [5])
    j.prune(j._head[2] + 1)
    j.prune(j._head[2] + DAY_NS)
    [(_day, seg)] = j.archive.segments()
    j.close()
    os.chmod(seg, 0o644)
    with seg.open("r+b") as f:
        f.seek(200)
        f.write(b"\x00tampered")
    res = verify_chain(path, Archive(tmp_path / "archive"))
    assert not res.ok and "does not match its manifest hash" in res.describe()


class _Hold:
    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        self.asked: list[tuple[int, int]] = []

    def held(self, start_ns: int, end_ns: int) -> str | None:
        self.asked.append((start_ns, end_ns))
        return self.reason


def test_expire_keeps_held_segments_and_the_chain_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    j = Journal(path, retention_s=0)
    j.append(batch(3, T0), [])
    j.prune(j._head[2] + 1)
    j._head = (j._head[0], j._head[1], j._head[2] + DAY_NS)  # the next commit: a day later
    j.append(batch(2, T0 + DAY_NS), [])
    j.prune(j._head[2] + 1)
    j.prune(j._head[2] + 2 * DAY_NS)
    assert len(j.archive.sealed_days()) == 2
    hold = _Hold("lot L1 expires 2031-01-01; kept until 2036-01-01")
    now = j._head[2] + 10 * 365 * DAY_NS
    res = j.archive.expire(now, 5 * 365 * DAY_NS, hold)
    assert res.deleted_segments == 0 and len(res.held) == 2 and "lot L1" in res.held[0]
    res = j.archive.expire(now, 5 * 365 * DAY_NS, _Hold(None))
    assert (res.deleted_segments, res.deleted_readings) == (2, 5)
    assert j.archive.segments() == []
    j.append(batch(1, T0 + 3 * DAY_NS), [])
    j.close()
    res2 = verify_chain(path, j.archive)
    assert res2.ok, res2.describe()
    assert res2.head_seq == 3


def test_journal_of_the_previous_release_is_migrated(tmp_path: Path) -> None:
    """A 0.1.0 journal (no chain, user_version 0) gets links over its rows when opened."""
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        (Path(__file__).parents[1] / "fixtures" / "release-0.1.0" / "journal.sql").read_text()
    )
    db.close()
    j = Journal(path)
    assert int(j._db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
    rows = j.count("readings")
    assert rows > 0
    j.append(batch(2, T0), [])
    j.close()
    res = verify_chain(path, Archive(tmp_path / "archive"))
    assert res.ok and res.readings == rows + 2


def test_journal_of_a_newer_vigil_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    raw(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalVersionError, match="newer vigil"):
        Journal(path)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    victim=st.integers(0, 10**6),
    prune_upto=st.integers(0, 8),
)
def test_any_changed_reading_is_found_in_its_batch(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], victim: int, prune_upto: int
) -> None:
    """Whatever the batches and however many were archived, changing reading k is named in
    the batch that holds k."""
    d = tmp_path_factory.mktemp("chain")
    path = d / "journal.sqlite"
    j = Journal(path, retention_s=0)
    t = T0
    for n in sizes:
        j.append(batch(n, t), [])
        t += 100 * 10**9
    total = sum(sizes)
    target = victim % total + 1
    sink_pos = sum(sizes[: min(prune_upto, len(sizes))])
    j.register_sink("s")
    j.advance("s", sink_pos)
    j.prune(j._head[2] + 1)
    j.close()
    assert verify_chain(path, Archive(d / "archive")).ok
    owner = next(i + 1 for i in range(len(sizes)) if sum(sizes[: i + 1]) >= target)
    if target > sink_pos:  # still in the journal
        raw(path, "UPDATE readings SET line = line || '0' WHERE id = ?", target)
    else:
        from gateway.pipeline.archive import pack_rows, unpack_rows

        [(_day, seg)] = Archive(d / "archive").segments()
        db = sqlite3.connect(seg)
        blob, count, first = db.execute(
            "SELECT rows, count, first_id FROM links WHERE seq = ?", (owner,)
        ).fetchone()
        received, flags, lines = unpack_rows(blob, count)
        lines[target - first] += "0"
        db.execute(
            "UPDATE links SET rows = ? WHERE seq = ?", (pack_rows(received, flags, lines), owner)
        )
        db.commit()
        db.close()
    res = verify_chain(path, Archive(d / "archive"))
    assert not res.ok and res.broken is not None and res.broken.seq == owner


def test_encoded_line_round_trip_in_archive() -> None:
    from gateway.pipeline.archive import pack_rows, unpack_rows

    r = batch(3, T0)
    lines = [encode(x) for x in r]
    assert unpack_rows(pack_rows([1, 2, 3], [0, 1, 0], lines), 3) == (
        (1, 2, 3),
        b"\x00\x01\x00",
        lines,
    )


def test_an_unwritable_archive_keeps_the_readings_in_the_journal(tmp_path: Path) -> None:
    blocker = tmp_path / "archive"
    blocker.write_text("a file where the archive folder should be")
    j = Journal(tmp_path / "journal.sqlite", retention_s=0, archive_dir=blocker / "sub")
    fill(j, [3, 3])
    assert j.prune(j._head[2] + 1) == 0
    assert j.count("readings") == 6  # nothing deleted that the archive did not take
    j.close()
    assert verify_chain(tmp_path / "journal.sqlite", Archive(blocker / "sub")).ok
