"""Shipped scenarios produce the traffic their descriptions promise (pure: no broker)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from simulators import scenarios
from simulators.fleet import Fleet
from simulators.loggers import Outgoing
from simulators.protocol import MALFORMED_VARIANTS, decode
from simulators.scenario import Scenario, load_scenario

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
MIN = 60_000
H = 60 * MIN


def run(name: str, **update: object) -> tuple[Scenario, list[Outgoing]]:
    s = load_scenario(scenarios.path(name))
    if update:
        s = s.model_copy(update=update)
    return s, list(Fleet(s, start=START).messages())


def readings_by_device(msgs: list[Outgoing]) -> dict[str, dict[int, dict[str, object]]]:
    """device -> simulated ms -> reading, checking no sample arrives twice."""
    out: dict[str, dict[int, dict[str, object]]] = defaultdict(dict)
    for m in msgs:
        if m.kind == "malformed":
            continue
        for r in decode(m.payload):
            t = int(r["ts"]) - START_MS  # type: ignore[call-overload]
            assert t not in out[m.device], f"{m.device} sent {t} twice"
            out[m.device][t] = r
    return out


def test_messages_are_in_time_order_and_deterministic() -> None:
    _, a = run("demo")
    _, b = run("demo")
    assert [m.t_ms for m in a] == sorted(m.t_ms for m in a)
    assert [(m.topic, m.payload) for m in a] == [(m.topic, m.payload) for m in b]
    _, c = run("demo", seed=8)
    assert [m.payload for m in c] != [m.payload for m in a]


def test_demo_has_the_promised_fleet_batch_and_door() -> None:
    s, msgs = run("demo")
    kinds = {(site.id, a.id): a.kind for site in s.sites for a in site.assets}
    assert sorted(kinds.values()) == [
        "fridge",
        "fridge",
        "truck",
        "truck",
        "warehouse_room",
        "warehouse_room",
    ]
    (batch,) = [m for m in msgs if m.kind == "batch"]
    assert batch.device == "fleet-east/truck-01/truck-01-t1"
    assert batch.t_ms == 5 * H and batch.readings == 120
    per = readings_by_device(msgs)
    assert all(len(r) == 480 for r in per.values()), "8 h at 60 s, nothing lost"
    fridge = per["wh-shanghai/fridge-01/fridge-01-t1"]
    door = [fridge[t] for t in range(2 * H, 2 * H + 12 * MIN, MIN)]
    assert all(r["door_open"] for r in door)
    assert max(float(r["temp_c"]) for r in door) > 8  # type: ignore[arg-type]
    epoch = next(iter(per["wh-shanghai/fridge-02/fridge-02-t1"].values()))
    assert isinstance(epoch["ts"], int)


def test_fridge_door_left_open() -> None:
    _, msgs = run("fridge_door")
    (r,) = readings_by_device(msgs).values()
    window = range(1 * H, 1 * H + 15 * MIN)
    assert [t for t in r if r[t]["door_open"]] == list(range(1 * H, 1 * H + 15 * MIN, MIN))
    temps = [float(r[t]["temp_c"]) for t in sorted(r) if t in window]  # type: ignore[arg-type]
    assert temps == sorted(temps) and temps[-1] > 10
    assert all(2 < float(r[t]["temp_c"]) < 8 for t in r if t < 1 * H or t >= 2 * H)  # type: ignore[arg-type]


def test_truck_compressor_failure_arrives_only_in_the_late_batch() -> None:
    _, msgs = run("truck_offline_compressor_failure")
    (batch,) = [m for m in msgs if m.kind == "batch"]
    assert batch.t_ms == 7 * H
    rows = decode(batch.payload)
    assert [int(r["ts"]) - START_MS for r in rows] == list(range(1 * H, 7 * H, MIN))  # type: ignore[call-overload]
    hot = [int(r["ts"]) - START_MS for r in rows if float(r["temp_c"]) > 8]  # type: ignore[arg-type, call-overload]
    assert hot and 2 * H < hot[0] < 3 * H and 5 * H <= hot[-1] < 5 * H + 30 * MIN
    assert max(float(r["temp_c"]) for r in rows) > 12  # type: ignore[arg-type]
    live = [m for m in msgs if m.kind == "reading"]
    assert all(2 < float(decode(m.payload)[0]["temp_c"]) < 8 for m in live)  # type: ignore[arg-type]


def test_freeze_dips_last_exactly_their_duration() -> None:
    _, msgs = run("freeze_dip")
    per = readings_by_device(msgs)
    for device, minutes in (("fridge-long", 70), ("fridge-short", 50)):
        r = per[f"pharmacy-1/{device}/{device}-t1"]
        frozen = [t for t in sorted(r) if float(r[t]["temp_c"]) <= -0.5]  # type: ignore[arg-type]
        assert frozen == list(range(1 * H, 1 * H + minutes * MIN, MIN))
        assert all(abs(float(r[t]["temp_c"]) + 2) < 0.3 for t in frozen)  # type: ignore[arg-type]


def test_fault_mix() -> None:
    _, msgs = run("fault_mix")
    per = readings_by_device(msgs)
    heat = per["pharmacy-2/fridge-heat/fridge-heat-t1"]
    hot = [t for t in sorted(heat) if float(heat[t]["temp_c"]) > 8]  # type: ignore[arg-type]
    assert hot == list(range(hot[0], hot[-1] + MIN, MIN)), "one contiguous excursion"
    assert 10 * H < len(hot) * MIN <= 11 * H
    power = per["pharmacy-2/fridge-power/fridge-power-t1"]
    assert [t for t in sorted(power) if not power[t]["power_ok"]] == list(
        range(2 * H, 3 * H + 30 * MIN, MIN)
    )
    assert float(power[3 * H + 29 * MIN]["temp_c"]) > 8  # type: ignore[arg-type]
    battery = per["pharmacy-2/room-battery/room-battery-t1"]
    assert {battery[t]["battery_pct"] for t in battery if t >= 3 * H} == {7}
    assert all(int(battery[t]["battery_pct"]) > 90 for t in battery if t < 3 * H)  # type: ignore[call-overload]
    stuck = per["pharmacy-2/room-stuck/room-stuck-t1"]
    inside = {(stuck[t]["temp_c"], stuck[t]["rh_pct"]) for t in stuck if 4 * H <= t < 8 * H}
    assert len(inside) == 1
    assert len({stuck[t]["temp_c"] for t in stuck if t >= 8 * H}) > 10


def test_malformed_sends_every_variant_once_among_good_readings() -> None:
    _, msgs = run("malformed")
    bad = [m for m in msgs if m.kind == "malformed"]
    assert [m.variant for m in bad] == list(MALFORMED_VARIANTS)
    assert all(m.t_ms == 10 * MIN for m in bad)
    assert len(readings_by_device(msgs)["pharmacy-1/fridge-01/fridge-bad-t1"]) == 30
