"""Audit trail: append-only (triggers), hash chain, verify names the first broken row,
config-change rows with secrets redacted."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.records.audit import GENESIS, AuditTrail, Signature, redact_config


def _raw(path: Path) -> sqlite3.Connection:
    """A connection as an attacker with file access would have, triggers dropped."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    return db


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    t = AuditTrail(tmp_path / "audit.sqlite")
    for i in range(1, 6):
        t.record(
            "olga",
            "alert.ack",
            "alert",
            i,
            {"state": "unacknowledged"},
            {"state": "acknowledged"},
            f"seen {i}",
            client="127.0.0.1",
        )
    return t


def test_rows_chain_each_to_the_one_before(trail: AuditTrail) -> None:
    rows = trail.rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert rows[2].old_value == {"state": "unacknowledged"}
    assert rows[2].new_value == {"state": "acknowledged"}
    assert rows[2].reason == "seen 3" and rows[2].actor == "olga"
    res = trail.verify()
    assert res.ok and res.rows == 5 and res.head_hash == rows[-1].hash
    assert trail.head() == (5, rows[-1].hash)


def test_update_and_delete_are_refused_by_the_database(trail: AuditTrail) -> None:
    db = sqlite3.connect(trail.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET reason = 'nothing happened' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 2")
    assert trail.verify().ok
    assert not any(hasattr(trail, name) for name in ("delete", "update", "edit", "remove"))


def test_an_edited_row_is_named(trail: AuditTrail) -> None:
    _raw(trail.path).execute("UPDATE audit SET reason = 'nothing happened' WHERE seq = 3")
    res = trail.verify()
    assert not res.ok and res.first_broken == 3
    assert "changed" in (res.problem or "")
    assert res.rows == 2
    assert "row 3" in res.describe()


def test_an_edit_that_recomputes_the_hash_breaks_the_next_row(trail: AuditTrail) -> None:
    import gateway.records.audit as audit_mod

    db = _raw(trail.path)
    db.row_factory = sqlite3.Row
    row = dict(db.execute("SELECT * FROM audit WHERE seq = 2").fetchone())
    row["actor"] = "mallory"
    db.execute(
        "UPDATE audit SET actor = ?, hash = ? WHERE seq = 2", ("mallory", audit_mod._row_hash(row))
    )
    res = trail.verify()
    assert not res.ok and res.first_broken == 3
    assert "prev_hash" in (res.problem or "")


def test_a_deleted_row_is_named(trail: AuditTrail) -> None:
    _raw(trail.path).execute("DELETE FROM audit WHERE seq = 4")
    res = trail.verify()
    assert not res.ok and res.first_broken == 4
    assert "missing" in (res.problem or "")


def test_signature_is_part_of_the_hashed_row(trail: AuditTrail) -> None:
    sig = Signature("Quinn Quality", "qa1", "reviewed and approved", 123)
    row = trail.record(
        "qa1", "alert.close", "alert", 9, None, {"state": "normal"}, "excursion assessed", sig
    )
    assert row.signature == sig.to_dict()
    _raw(trail.path).execute(
        "UPDATE audit SET signature = replace(signature, 'approved', 'rejected') WHERE seq = 6"
    )
    assert trail.verify().first_broken == 6


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    trails = [AuditTrail(path) for _ in range(3)]  # like the gateway and two CLI runs

    def work(t: AuditTrail, who: str) -> None:
        for i in range(40):
            t.record(who, "login", "user", who, None, {"i": i})

    threads = [threading.Thread(target=work, args=(t, f"u{i}")) for i, t in enumerate(trails)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    res = trails[0].verify()
    assert res.ok and res.rows == 120


def test_config_change_rows_only_when_the_text_changes(tmp_path: Path) -> None:
    t = AuditTrail(tmp_path / "audit.sqlite")
    text1 = "mqtt:\n  url: mqtt://b:1883\n  password: hunter2\ninflux:\n  token: abc\n"
    first = t.record_config("/etc/vigil.yaml", text1)
    assert first is not None and first.old_value is None
    assert first.action == "config.change" and first.actor == "system"
    assert "hunter2" not in first.new_value["text"] and "abc" not in first.new_value["text"]
    assert "url: mqtt://b:1883" in first.new_value["text"]
    assert t.record_config("/etc/vigil.yaml", text1) is None
    text2 = text1.replace("b:1883", "c:1883")
    second = t.record_config("/etc/vigil.yaml", text2, actor="olga")
    assert second is not None and second.actor == "olga"
    assert second.old_value["sha256"] == first.new_value["sha256"]
    assert second.new_value["sha256"] != first.new_value["sha256"]
    assert t.count() == 2 and t.verify().ok


def test_redaction_keeps_structure() -> None:
    text = "a:\n  api_key: 'k'\n  mqtt_password: p w\n  name: x\n  token:   t\n"
    out = redact_config(text)
    assert "'k'" not in out and "p w" not in out and " t\n" not in out
    assert "name: x" in out
    assert out.count("'***'") == 3


def test_filters(trail: AuditTrail) -> None:
    trail.record("qa1", "shipment.start", "shipment", "S1")
    assert [r.seq for r in trail.rows(action="shipment.*")] == [6]
    assert [r.seq for r in trail.rows(entity="alert", entity_id="2")] == [2]
    assert [r.seq for r in trail.rows(after_seq=4)] == [5, 6]
    assert [r.seq for r in trail.rows(limit=2, newest_first=True)] == [6, 5]
    assert trail.last(actor="olga").seq == 5  # type: ignore[union-attr]
