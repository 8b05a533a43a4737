"""Simulated loggers: sampling, offline buffering and upload, device faults."""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.loggers import (
    AssetSim,
    DeviceFaults,
    Logger,
    LoggerConfig,
    MalformedBurst,
    Outgoing,
    sample_times,
)
from simulators.protocol import ProtocolError, decode, parse_ts
from simulators.thermal import ThermalModel, Window, default_params

START_MS = 1_795_334_400_000  # 2026-11-22T08:00:00Z
MIN = 60_000


def make_logger(faults: DeviceFaults | None = None, **config: object) -> Logger:
    params = default_params("fridge", door_openings_per_hour=0)
    asset = AssetSim("site", "fridge", "fridge", ThermalModel(params, seed=1))
    cfg = LoggerConfig(site="site", asset="fridge", device="t1", **config)  # type: ignore[arg-type]
    return Logger(cfg, asset, seed=2, start_epoch_ms=START_MS, faults=faults)


def drive(logger: Logger, until_ms: int) -> list[Outgoing]:
    out: list[Outgoing] = []
    while logger.next_time()[0] < until_ms:
        out.extend(logger.fire())
    return out


def published_ts(messages: list[Outgoing]) -> list[int]:
    """Simulated ms of every reading in the order a subscriber would see them."""
    return [
        int(r["ts"]) - START_MS  # type: ignore[call-overload]
        for m in messages
        if m.kind != "malformed"
        for r in decode(m.payload)
    ]


def test_offline_buffers_exactly_the_missed_samples_and_uploads_them_once_in_order() -> None:
    lg = make_logger(DeviceFaults(offline=(Window(10 * MIN, 40 * MIN),)))
    msgs = drive(lg, 60 * MIN)
    batches = [m for m in msgs if m.kind == "batch"]
    assert len(batches) == 1
    batch = batches[0]
    assert batch.t_ms == 40 * MIN and batch.readings == 30
    assert [int(r["ts"]) for r in decode(batch.payload)] == [  # type: ignore[call-overload]
        START_MS + t for t in range(10 * MIN, 40 * MIN, MIN)
    ]
    assert not [m for m in msgs if 10 * MIN <= m.t_ms < 40 * MIN], "silent while offline"
    # Every sample reaches the broker exactly once, and the stream stays in time order.
    assert published_ts(msgs) == list(range(0, 60 * MIN, MIN))
    assert lg.buffered == 0 and lg.dropped == 0
    assert msgs.index(batch) == 10, "the backlog goes before the live reading at the reconnect"


def test_reconnect_between_samples_uploads_at_the_reconnect_instant() -> None:
    lg = make_logger(DeviceFaults(offline=(Window(10 * MIN + 30_000, 20 * MIN + 30_000),)))
    msgs = drive(lg, 30 * MIN)
    (batch,) = [m for m in msgs if m.kind == "batch"]
    assert batch.t_ms == 20 * MIN + 30_000
    assert published_ts([batch]) == list(range(11 * MIN, 21 * MIN, MIN))
    assert published_ts(msgs) == list(range(0, 30 * MIN, MIN))


def test_long_backlog_goes_as_several_batches_of_max_batch() -> None:
    lg = make_logger(DeviceFaults(offline=(Window(0, 30 * MIN),)), max_batch=7)
    msgs = drive(lg, 31 * MIN)
    batches = [m for m in msgs if m.kind == "batch"]
    assert [b.readings for b in batches] == [7, 7, 7, 7, 2]
    assert published_ts(batches) == list(range(0, 30 * MIN, MIN))


def test_full_buffer_drops_the_oldest_and_counts_them() -> None:
    lg = make_logger(DeviceFaults(offline=(Window(0, 30 * MIN),)), buffer_size=10)
    msgs = drive(lg, 30 * MIN + 1)
    (batch,) = [m for m in msgs if m.kind == "batch"]
    assert published_ts([batch]) == list(range(20 * MIN, 30 * MIN, MIN))
    assert lg.dropped == 20


def test_still_offline_at_the_end_keeps_its_buffer() -> None:
    lg = make_logger(DeviceFaults(offline=(Window(5 * MIN, math.inf),)))
    msgs = drive(lg, 60 * MIN)
    assert published_ts(msgs) == list(range(0, 5 * MIN, MIN))
    assert lg.buffered == 55


windows = st.lists(
    st.tuples(st.integers(0, 600), st.integers(1, 300)).map(
        lambda p: Window(p[0] * 1000, (p[0] + p[1]) * 1000)
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(windows, st.integers(1, 90), st.integers(0, 59), st.integers(1, 50))
def test_property_every_sample_is_published_once_in_order(
    offline: list[Window], interval_s: int, phase_s: int, max_batch: int
) -> None:
    lg = make_logger(
        DeviceFaults(offline=tuple(offline)),
        interval_ms=interval_s * 1000,
        phase_ms=phase_s * 1000,
        max_batch=max_batch,
    )
    until = 1000 * 1000
    msgs = drive(lg, until)
    expected = list(sample_times(lg.config, until))
    published = published_ts(msgs)
    assert published == expected[: len(published)], "in order, none twice, none skipped"
    assert len(published) + lg.buffered == len(expected)
    assert all(b.t_ms in {int(w.end_s) for w in offline} for b in msgs if b.kind == "batch")
    assert all(b.readings <= max_batch for b in msgs)


def _temps(msgs: list[Outgoing]) -> dict[int, dict[str, object]]:
    return {int(r["ts"]) - START_MS: r for m in msgs for r in decode(m.payload)}  # type: ignore[call-overload]


def test_flatline_repeats_one_value_and_changes_nothing_else() -> None:
    healthy = _temps(drive(make_logger(), 60 * MIN))
    w = Window(10 * MIN, 20 * MIN)
    stuck = _temps(drive(make_logger(DeviceFaults(flatline=((w, None),))), 60 * MIN))
    inside = [stuck[t] for t in stuck if t in w]
    assert len(inside) == 10
    assert len({(r["temp_c"], r["rh_pct"]) for r in inside}) == 1
    assert inside[0]["temp_c"] == healthy[10 * MIN]["temp_c"], "stuck at the value it had"
    assert {t: r for t, r in stuck.items() if t not in w} == {
        t: r for t, r in healthy.items() if t not in w
    }
    fixed = _temps(drive(make_logger(DeviceFaults(flatline=((w, 3.3),))), 60 * MIN))
    assert {fixed[t]["temp_c"] for t in fixed if t in w} == {3.3}


def test_low_battery_and_battery_drain() -> None:
    w = Window(30 * MIN, math.inf)
    msgs = drive(
        make_logger(DeviceFaults(low_battery=((w, 7.0),)), battery_drain_pct_per_day=24 * 10),
        60 * MIN,
    )
    r = _temps(msgs)
    assert r[0]["battery_pct"] == 95 and r[29 * MIN]["battery_pct"] == 90  # 10 %/h drain
    assert {r[t]["battery_pct"] for t in r if t in w} == {7}


def test_malformed_burst_sends_each_variant_count_times() -> None:
    burst = MalformedBurst(5 * MIN, ("bad_json", "nan", "future_ts"), count=2)
    msgs = drive(make_logger(DeviceFaults(malformed=(burst,))), 10 * MIN)
    bad = [m for m in msgs if m.kind == "malformed"]
    assert [m.variant for m in bad] == ["bad_json", "nan", "future_ts"] * 2
    assert all(m.t_ms == 5 * MIN and m.readings == 0 for m in bad)
    for m in bad:
        try:
            decode(m.payload, max_ts_ms=START_MS + 10 * MIN)
        except ProtocolError:
            continue
        raise AssertionError(f"{m.variant} decoded")
    assert len([m for m in msgs if m.kind == "reading"]) == 10


def test_epoch_ms_timestamps_and_field_selection() -> None:
    lg = make_logger(ts_format="epoch_ms", fields=("temp_c", "door_open"))
    (first,) = drive(lg, 1)
    obj = orjson.loads(first.payload)
    assert obj["ts"] == START_MS and set(obj) == {"ts", "temp_c", "door_open"}
    assert parse_ts(obj["ts"]) == START_MS
    assert first.topic == "vigil/site/fridge/t1/telemetry"
    assert first.device == "site/fridge/t1"
