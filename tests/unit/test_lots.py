"""Lots and legs (gateway/records/lots.py): one place at a time, past times with reasons, leg
tags, geofence-driven legs, backfill from the journal, late evidence, retention by lot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.core.reading import Reading
from gateway.pipeline.journal import Journal
from gateway.records import Records, TraceabilityConfig
from gateway.records.lots import LotConflict, LotError, LotNotFound, LotRegistry
from gateway.records.shipments import ShipmentRegistry

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
SITES = TraceabilityConfig.model_validate(
    {
        "sites": {
            "wh": {
                "name": "上海仓",
                "geofence": {"circle": {"lat": 31.2, "lon": 121.5, "radius_m": 500}},
            },
            "xd": {
                "geofence": {
                    "polygon": [[31.30, 121.60], [31.30, 121.62], [31.32, 121.62], [31.32, 121.60]]
                }
            },
            "plain": {"name": "no fence"},
        }
    }
)


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    r = Records.open(tmp_path / "data", traceability=SITES)
    yield r
    r.close()


def reading(
    asset: str,
    ts: int,
    temp: float = 5.0,
    *,
    site: str = "wh",
    device: str = "lg1",
    received: int | None = None,
    **fields: float,
) -> Reading:
    return Reading(
        "coldchain",
        {"site": site, "asset": asset, "device": device},
        {"temp_c": temp, **fields},
        ts,
        ts + S if received is None else received,
    )


def feed(records: Records, rs: list[Reading]) -> None:
    """The writer's order: lot enricher, shipment enricher, commit, listeners."""
    records.lots.enrich(rs)
    records.shipments.enrich(rs)
    records.shipments.record(rs)
    records.lots.record(rs)


def make_lot(records: Records, lot_id: str = "L1", profile: str = "vaccine_2_8") -> None:
    records.lots.create_lot(
        lot_id, "MMR 麻腮风", profile, date(2027, 6, 30), "olga", codes=["81", "82"]
    )


def test_a_lot_is_in_one_place_at_a_time(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    with pytest.raises(LotConflict, match="already exists"):
        make_lot(records)
    store = lots.open_leg(
        ["L1"],
        "storage",
        "room-b",
        "olga",
        site="wh",
        started_at_ns=now - 10 * HOUR,
        reason="received yesterday",
    ).new
    # the truck leg closes the storage leg at its own start
    c = lots.open_leg(
        ["L1"],
        "transport",
        "truck-1",
        "olga",
        started_at_ns=now - 4 * HOUR,
        reason="departure from the waybill",
    )
    assert [(old.id, new.stopped_at_ns) for old, new in c.closed] == [(store.id, now - 4 * HOUR)]
    assert c.shipment is not None and c.shipment[1].id == c.new.id
    assert records.shipments.require(c.new.id).started_at_ns == now - 4 * HOUR
    assert c.new.profile == "vaccine_2_8"  # the lots' profile
    # the truck must unload first: a lot is not closed out of a running shipment
    with pytest.raises(LotConflict, match="stop the shipment first"):
        lots.open_leg(["L1"], "cross_dock", "dock-a", "olga", site="xd")
    lots.close_leg(c.new.id, "olga", stopped_at_ns=now - 2 * HOUR, reason="arrival, waybill")
    assert not records.shipments.require(c.new.id).active
    # storage earlier than the truck leg's end overlaps it
    with pytest.raises(LotConflict, match="one place at a time"):
        lots.open_leg(
            ["L1"],
            "cross_dock",
            "dock-a",
            "olga",
            site="xd",
            started_at_ns=now - 3 * HOUR,
            reason="x",
        )
    xd = lots.open_leg(
        ["L1"],
        "cross_dock",
        "dock-a",
        "olga",
        site="xd",
        started_at_ns=now - 2 * HOUR,
        reason="unloaded",
    ).new
    assert [g.kind for g in lots.legs_of("L1")] == ["storage", "transport", "cross_dock"]
    assert lots.require_leg(xd.id).status == "active"
    with pytest.raises(LotNotFound):
        lots.open_leg(["L9"], "storage", "room-b", "olga")
    # a leg of two lots is not closed under the one that stays
    make_lot(records, "L2")
    make_lot(records, "L3")
    lots.open_leg(["L2", "L3"], "storage", "room-c", "olga", site="wh")
    with pytest.raises(LotConflict, match=r"also holds lot\(s\) L3"):
        lots.open_leg(["L2"], "cross_dock", "dock-b", "olga", site="xd")
    with pytest.raises(LotError, match="needs at least one lot"):
        lots.open_leg([], "storage", "room-b", "olga")
    with pytest.raises(LotError, match="kind must be one of"):
        lots.open_leg(["L1"], "warehouse", "room-b", "olga")


def test_times_in_the_past_need_a_reason_and_the_future_is_refused(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    with pytest.raises(LotError, match="in the past: give a reason"):
        lots.open_leg(["L1"], "storage", "room-b", "olga", started_at_ns=now - HOUR)
    with pytest.raises(LotError, match="in the future"):
        lots.open_leg(["L1"], "storage", "room-b", "olga", started_at_ns=now + HOUR)
    g = lots.open_leg(["L1"], "storage", "room-b", "olga", started_at_ns=now - 60 * S).new
    assert g.start_reason is None  # within 5 minutes: no reason needed
    with pytest.raises(LotError, match="in the past"):
        lots.close_leg(g.id, "olga", stopped_at_ns=now - 30 * MIN)
    with pytest.raises(LotError, match="at or before its start"):
        lots.close_leg(g.id, "olga", stopped_at_ns=now - 2 * MIN, reason="typo")
    closed = lots.close_leg(g.id, "olga").new
    assert closed.stopped_at_ns is not None and closed.status == "closed"
    with pytest.raises(LotConflict, match="already closed"):
        lots.close_leg(g.id, "olga")


def test_legs_tag_readings_by_event_time_and_bind_their_profiles(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    make_lot(records, "L2", "crt")
    t0 = now - 5 * HOUR
    lots.open_leg(
        ["L1", "L2"],
        "transport",
        "truck-1",
        "olga",
        profile="vaccine_2_8",
        started_at_ns=t0,
        reason="r",
    )
    shared = {"site": "fleet", "asset": "truck-1", "device": "lg1"}
    before = Reading("coldchain", shared, {"temp_c": 5.0}, t0 - MIN, now)
    during = Reading("coldchain", shared, {"temp_c": 5.0}, t0 + MIN, now)
    other = reading("truck-2", t0 + MIN, site="fleet")
    feed(records, [before, during, other])
    assert before.tags is shared and "profile" not in before.tags
    assert during.tags is not shared and shared == {
        "site": "fleet",
        "asset": "truck-1",
        "device": "lg1",
    }
    assert during.tags["lot"] == "L1,L2"
    assert during.tags["profile"] == "crt,vaccine_2_8"
    assert during.tags["shipment"].startswith("SHP-")
    assert "lot" not in other.tags
    # a storage leg tags the profile only (a room holds many lots)
    make_lot(records, "L3")
    lots.open_leg(
        ["L3"], "storage", "room-b", "olga", site="wh", devices=["lg-b"], started_at_ns=now - MIN
    )
    r1 = reading("room-b", now, device="lg-b")
    r2 = reading("room-b", now, device="lg-c")  # not one of the leg's loggers
    feed(records, [r1, r2])
    assert r1.tags.get("profile") == "vaccine_2_8" and "lot" not in r1.tags
    assert "profile" not in r2.tags


def test_a_geofence_starts_a_planned_leg_and_ends_it_with_stages(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    store = lots.open_leg(
        ["L1"],
        "storage",
        "room-b",
        "olga",
        site="wh",
        started_at_ns=now - 10 * HOUR,
        reason="received",
    ).new
    with pytest.raises(LotError, match="has no geofence"):
        lots.open_leg(
            ["L1"],
            "transport",
            "truck-1",
            "olga",
            origin="wh",
            destination="plain",
            geofence=True,
            planned=True,
        )
    with pytest.raises(LotError, match="only a geofence leg can be planned"):
        lots.open_leg(["L1"], "transport", "truck-1", "olga", planned=True)
    mistake = lots.open_leg(
        ["L1"],
        "transport",
        "truck-1",
        "olga",
        origin="wh",
        destination="xd",
        geofence=True,
        planned=True,
    ).new
    cancelled = lots.close_leg(mistake.id, "olga", reason="wrong truck").new
    assert cancelled.status == "cancelled" and [g.id for g in lots.list_legs("cancelled")] == [
        mistake.id
    ]
    plan = lots.open_leg(
        ["L1"],
        "transport",
        "truck-1",
        "olga",
        origin="wh",
        destination="xd",
        geofence=True,
        planned=True,
    ).new
    assert plan.status == "planned" and records.shipments.get(plan.id) is None
    t0 = now - 6 * HOUR
    # a buffered upload, out of order: at the warehouse, then driving, then at the cross-dock
    track = [
        reading(
            "truck-1",
            t0 + i * MIN,
            9.0 if 20 <= i < 30 else 5.0,
            site="fleet",
            lat=31.2 + i * 0.002,
            lon=121.5 + i * 0.002,
        )
        for i in range(60)
    ]
    batch = list(reversed(track))
    feed(records, batch)
    leg = lots.require_leg(plan.id)
    # 31.204/121.504 is 590 m from the centre: out of the 500 m fence, so the leg starts there
    assert leg.started_at_ns == t0 + 2 * MIN and leg.started_by == "geofence"
    assert leg.stopped_at_ns == t0 + 50 * MIN and leg.stop_reason == "entered the geofence of xd"
    assert [st.stage for st in lots.stages(plan.id)] == ["origin", "transit", "destination"]
    # the storage leg ended where the truck left; the readings of this very batch are tagged
    assert lots.require_leg(store.id).stopped_at_ns == t0 + 2 * MIN
    tagged = [r for r in track if r.tags.get("shipment") == plan.id]
    assert [r.ts_ns for r in tagged] == [t0 + i * MIN for i in range(2, 50)]
    assert records.shipments.reading_count(plan.id) == 48
    ship = records.shipments.require(plan.id)
    assert (ship.started_at_ns, ship.stopped_at_ns) == (t0 + 2 * MIN, t0 + 50 * MIN)
    by_geofence = [(r.action, r.entity_id) for r in records.audit.rows(actor="geofence")]
    assert ("leg.close", store.id) in by_geofence  # the storage leg, closed by the departure
    assert ("leg.start", plan.id) in by_geofence and ("leg.close", plan.id) in by_geofence
    assert ("shipment.start", plan.id) in by_geofence


def test_a_backdated_leg_takes_its_readings_from_the_journal(
    records: Records, tmp_path: Path
) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    journal = Journal(tmp_path / "journal.sqlite")
    t0 = now - 8 * HOUR
    # the truck's logger uploaded its whole trip on arrival, before anyone recorded the trip
    upload = [
        reading(
            "truck-2",
            t0 + i * 5 * MIN,
            12.0 if i < 6 else 5.0,
            site="fleet",
            received=now - 10 * MIN,
        )
        for i in range(48)
    ]
    journal.append(upload, [])
    feed(records, upload)
    c = lots.open_leg(
        ["L1"],
        "transport",
        "truck-2",
        "olga",
        started_at_ns=t0,
        reason="logger uploads on arrival; departure from the waybill",
    )
    lots.close_leg(c.new.id, "olga", stopped_at_ns=t0 + 3 * HOUR, reason="arrival")
    [leg] = lots.take_backfills()
    assert lots.take_backfills() == []
    assert lots.backfill(lots.require_leg(leg.id), journal) == 36  # 3 h of 5-min readings
    points = lots.leg_points(lots.require_leg(leg.id))
    assert [v for _t, v in points["lg1"][:7]] == [12.0] * 6 + [5.0]
    assert records.shipments.reading_count(leg.id) == 36  # the shipment report has them too
    journal.close()


def test_a_late_upload_inside_a_decided_leg_flags_the_decision(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    make_lot(records)
    t0 = now - 3 * HOUR
    g = lots.open_leg(
        ["L1"], "storage", "room-b", "olga", site="wh", started_at_ns=t0, reason="r"
    ).new
    feed(
        records,
        [reading("room-b", t0 + i * 30 * MIN, received=t0 + i * 30 * MIN + S) for i in range(4)],
    )
    _old, d = lots.decide(
        "L1", "release", "quinn", "Quinn Q", "released for sale", "ab" * 32, now_ns=now
    )
    assert not d.needs_review
    lots.take_dirty()
    # the same reading again (a replay), and a new reading after the decision: no review
    feed(
        records,
        [reading("room-b", t0, received=now + S), reading("room-b", now + MIN, received=now + MIN)],
    )
    assert not lots.decision("L1").needs_review  # type: ignore[union-attr]
    # a reading with an event time before the decision, received after it
    feed(records, [reading("room-b", t0 + 100 * MIN, 9.5, received=now + 2 * MIN)])
    d2 = lots.decision("L1")
    assert d2 is not None and d2.needs_review and "received" in (d2.review_reason or "")
    assert "L1" in lots.take_dirty()
    [row] = records.audit.rows(limit=5, action="lot.review_needed")
    assert row.actor == "system" and row.entity_id == "L1"
    # a new decision clears it
    lots.decide("L1", "release", "quinn", "Quinn Q", "reviewed again", "cd" * 32)
    assert not lots.decision("L1").needs_review  # type: ignore[union-attr]
    assert [x.decision for x in lots.decisions("L1")] == ["release", "release"]
    with pytest.raises(LotError, match="decision must be one of"):
        lots.decide("L1", "approve", "quinn", "Q", "m", "x")
    assert lots.require_leg(g.id).status == "active"


def test_retention_holds_a_lots_readings_until_expiry_plus_five_years(records: Records) -> None:
    lots = records.lots
    now = time.time_ns()
    lots.create_lot("OLD", "old", "vaccine_2_8", date(2015, 1, 31), "olga")
    make_lot(records)
    t0 = now - 6 * HOUR
    old = lots.open_leg(
        ["OLD"], "storage", "room-a", "olga", site="wh", started_at_ns=t0, reason="r"
    ).new
    lots.close_leg(old.id, "olga", stopped_at_ns=t0 + HOUR, reason="r")
    c = lots.open_leg(
        ["L1"], "transport", "truck-1", "olga", started_at_ns=t0 + 2 * HOUR, reason="r"
    )
    lots.close_leg(c.new.id, "olga", stopped_at_ns=t0 + 3 * HOUR, reason="r")
    feed(records, [reading("room-a", t0 + i * MIN) for i in range(60)])
    feed(records, [reading("truck-1", t0 + 2 * HOUR + i * MIN, site="fleet") for i in range(60)])
    assert lots.held(t0, t0 + HOUR) is None  # the old lot expired in 2015: 2020 has passed
    why = lots.held(t0 + 2 * HOUR, t0 + 2 * HOUR + 1)
    assert why is not None and "lot L1" in why and "kept until 2032-06-30" in why
    assert "expires 2027-06-30, plus 5 years" in why
    deleted, kept = lots.prune_readings(now)
    assert deleted == 60 and len(kept) == 1 and "lot L1" in kept[0]
    assert sum(len(p) for p in lots.leg_points(lots.require_leg(c.new.id)).values()) == 60
    s_deleted, s_kept = records.shipments.prune_readings(now, lots)
    assert s_deleted == 0 and s_kept and "kept until 2032-06-30" in s_kept[0]
    assert records.shipments.reading_count(c.new.id) == 60
    with pytest.raises(ValidationError, match="greater than or equal to 5"):
        TraceabilityConfig(retention_years=3)
    assert records.retention_hold is lots


def test_another_process_changes_reach_the_running_registry(tmp_path: Path) -> None:
    running = Records.open(tmp_path / "d", traceability=SITES)
    cli = Records.open(tmp_path / "d", traceability=SITES)
    now = time.time_ns()
    cli.lots.create_lot("L1", "p", "vaccine_2_8", date(2027, 1, 1), "cli")
    cli.lots.open_leg(["L1"], "transport", "truck-1", "cli", started_at_ns=now - HOUR, reason="r")
    running.lots._checked = running.shipments._checked = 0.0  # as if a second had passed
    r = reading("truck-1", now - MIN, site="fleet")
    feed(running, [r])
    assert r.tags.get("lot") == "L1" and "shipment" in r.tags
    assert running.shipments.reading_count(r.tags["shipment"]) == 1
    running.close()
    cli.close()


def test_shipments_from_before_lots_get_their_legs(tmp_path: Path) -> None:
    reg = ShipmentRegistry(tmp_path / "shipments.sqlite")
    s = reg.start("truck-7", "vaccine_2_8", "olga")
    lots = LotRegistry(tmp_path / "lots.sqlite", reg)
    leg = lots.require_leg(s.id)
    assert (leg.kind, leg.started_at_ns, leg.lots) == ("transport", s.started_at_ns, ())
    c = lots.close_leg(s.id, "olga")
    assert c.shipment is not None and not reg.require(s.id).active
    lots.close()
    reg.close()
