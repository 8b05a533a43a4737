"""Shipment registry: start/stop, tagging by event time without touching shared tag dicts,
recording for reports, recovery from the journal, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.reading import Reading
from gateway.pipeline.journal import Journal
from gateway.records.shipments import ShipmentError, ShipmentNotFound, ShipmentRegistry

S = 1_000_000_000
T0 = 1_795_000_000 * S


def truck(ts: int, temp: float = 5.0, tags: dict[str, str] | None = None) -> Reading:
    return Reading(
        "coldchain",
        tags if tags is not None else {"site": "road", "asset": "truck-7", "device": "lg-1"},
        {"temp_c": temp},
        ts,
        ts + S,
    )


@pytest.fixture
def reg(tmp_path: Path) -> ShipmentRegistry:
    return ShipmentRegistry(tmp_path / "shipments.sqlite")


def test_start_stop_and_one_active_shipment_per_asset(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", product="MMR", now_ns=T0)
    assert s.active and s.status == "active" and s.id.startswith("SHP-")
    assert s.id.endswith("truck-7")
    with pytest.raises(ShipmentError, match="already has active shipment"):
        reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0 + S)
    old, new = reg.stop(s.id, "olga", "arrived", now_ns=T0 + 3600 * S)
    assert old.active and not new.active and new.stop_reason == "arrived"
    assert new.status == "stopped"
    with pytest.raises(ShipmentError, match="already stopped"):
        reg.stop(s.id, "olga")
    with pytest.raises(ShipmentNotFound):
        reg.stop("nope", "olga")
    s2 = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0 + 7200 * S)
    assert s2.id != s.id
    assert [x.id for x in reg.list_shipments("active")] == [s2.id]
    assert [x.id for x in reg.list_shipments("stopped")] == [s.id]


def test_ids_and_names_are_checked(reg: ShipmentRegistry) -> None:
    with pytest.raises(ShipmentError, match="asset"):
        reg.start("truck 7", "p", "olga")
    with pytest.raises(ShipmentError, match="shipment id"):
        reg.start("truck-7", "p", "olga", shipment_id="a b")
    reg.start("truck-7", "p", "olga", shipment_id="S-1")
    with pytest.raises(ShipmentError, match="already exists"):
        reg.start("truck-8", "p", "olga", shipment_id="S-1")


def test_enrich_tags_by_event_time_and_never_edits_shared_tags(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    shared = {"site": "road", "asset": "truck-7", "device": "lg-1"}
    before, during = truck(T0 - S, tags=shared), truck(T0 + S, tags=shared)
    other = truck(T0 + S, tags={"site": "road", "asset": "truck-8", "device": "lg-2"})
    reg.enrich([before, during, other])
    assert during.tags["shipment"] == s.id
    assert "shipment" not in before.tags and "shipment" not in other.tags
    assert "shipment" not in shared, "the shared tag dict was modified"
    assert before.tags is shared and during.tags is not shared


def test_buffered_upload_after_the_stop_is_tagged(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "vaccine_2_8", "olga", now_ns=T0)
    reg.stop(s.id, "olga", now_ns=T0 + 6 * 3600 * S)
    late = [truck(T0 + i * 600 * S) for i in range(36)] + [truck(T0 + 7 * 3600 * S)]
    reg.enrich(late)
    assert all(r.tags.get("shipment") == s.id for r in late[:36])
    assert "shipment" not in late[36].tags


def test_site_restricts_the_match(reg: ShipmentRegistry) -> None:
    reg.start("truck-7", "p", "olga", site="road", now_ns=T0)
    elsewhere = truck(T0 + S, tags={"site": "depot", "asset": "truck-7", "device": "x"})
    reg.enrich([elsewhere])
    assert "shipment" not in elsewhere.tags


def test_record_keeps_tagged_readings_once(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "p", "olga", now_ns=T0)
    batch = [truck(T0 + i * 60 * S, 4.0 + i) for i in range(5)] + [
        truck(T0, tags={"asset": "x", "device": "y"})
    ]
    reg.enrich(batch)
    reg.record(batch)
    reg.record(batch)  # replay after a restart: no duplicates
    rows = list(reg.readings(s.id))
    assert len(rows) == 5 and reg.reading_count(s.id) == 5
    assert [r[2] for r in rows] == [T0 + i * 60 * S for i in range(5)]
    assert all(r[0] == "coldchain" and r[1] == "lg-1" for r in rows)
    assert f"shipment={s.id}" in rows[0][3]


def test_recover_copies_tagged_rows_from_the_journal(tmp_path: Path) -> None:
    import time

    now = time.time_ns()
    reg = ShipmentRegistry(tmp_path / "shipments.sqlite")
    journal = Journal(tmp_path / "journal.sqlite")
    s = reg.start("truck-7", "p", "olga", now_ns=now - 3600 * S)
    batch = [truck(now - 3000 * S + i * S) for i in range(10)]
    for r in batch:
        r.received_ns = now
    reg.enrich(batch)
    journal.append(batch, [])  # committed, but the listener never ran (crash)
    assert reg.reading_count(s.id) == 0
    assert reg.recover(journal) == 10
    assert reg.reading_count(s.id) == 10
    reg.recover(journal)
    assert reg.reading_count(s.id) == 10


def test_state_survives_reopening(tmp_path: Path) -> None:
    reg = ShipmentRegistry(tmp_path / "shipments.sqlite")
    s = reg.start("truck-7", "p", "olga", now_ns=T0)
    reg.close()
    again = ShipmentRegistry(tmp_path / "shipments.sqlite")
    r = truck(T0 + S)
    again.enrich([r])
    assert r.tags["shipment"] == s.id
    assert again.require(s.id).started_by == "olga"


def test_approve_only_after_stop_and_once(reg: ShipmentRegistry) -> None:
    s = reg.start("truck-7", "p", "olga", now_ns=T0)
    with pytest.raises(ShipmentError, match="still active"):
        reg.approve(s.id, "qa1", "Quinn", "approved")
    reg.stop(s.id, "olga", now_ns=T0 + S)
    old, new = reg.approve(s.id, "qa1", "Quinn", "approved", "abc", now_ns=T0 + 2 * S)
    assert old.approved_at_ns is None and new.status == "approved"
    assert (new.approved_name, new.approval_meaning, new.approved_digest) == (
        "Quinn",
        "approved",
        "abc",
    )
    with pytest.raises(ShipmentError, match="already approved"):
        reg.approve(s.id, "qa1", "Quinn", "approved")
