"""The Modbus collector against real pymodbus servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import struct
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer

from collectors.modbus import DeviceStateChange, ModbusCollector, ModbusCollectorConfig
from gateway.core.eventtime import DEFAULT_MIN_EVENT_NS
from simulators.plc.layout import encode_registers
from tests.integration import modbus_fixtures as mf

pytestmark = pytest.mark.integration

plc_factory = mf.plc_factory
register_server = mf.register_server

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
WIDTH.update({"float32": 2, "float64": 4})


def _f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


def _strategy(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "float32":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if type_ == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    bits = 16 * WIDTH[type_]
    if type_.startswith("u"):
        return st.integers(0, min((1 << bits) - 1, (1 << 63) - 1))
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _typed_map() -> tuple[list[dict[str, Any]], dict[str, st.SearchStrategy[Any]]]:
    """One register per type x byte order (plus strings and a bit), packed with small gaps."""
    regs: list[dict[str, Any]] = []
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    addr = 0
    for type_, width in WIDTH.items():
        for order in ORDERS:
            name = f"{type_}_{order.lower()}"
            regs.append({"name": name, "fc": 3, "address": addr, "type": type_, "order": order})
            strategies[name] = _strategy(type_)
            addr += width + 1  # one unused register between points: the planner bridges it
    text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)
    for order in ("ABCD", "BADC"):
        name = f"label_{order.lower()}"
        regs.append(
            {"name": name, "fc": 3, "address": addr, "type": "string", "length": 6, "order": order}
        )
        strategies[name] = text
        addr += 6
    regs.append({"name": "flag", "fc": 3, "address": addr, "type": "bit", "bit": 9})
    strategies["flag"] = st.booleans()
    return regs, strategies


TYPED_REGS, TYPED_VALUES = _typed_map()


def _image(values: dict[str, Any]) -> list[int]:
    """The holding-register image holding these values, encoded by pymodbus."""
    image = [0] * 200
    for r in TYPED_REGS:
        v = values[r["name"]]
        if r["type"] == "bit":
            image[r["address"]] = (1 << r["bit"]) if v else 0
            continue
        regs = encode_registers(v, r["type"], r["order"], r.get("length", 0))
        image[r["address"] : r["address"] + len(regs)] = regs
    return image


def _device(name: str, port: int, **kw: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "line": "L1", **kw}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.fixed_dictionaries(TYPED_VALUES))
async def test_every_type_and_order_through_a_real_server(
    register_server: ModbusTcpServer, values: dict[str, Any]
) -> None:
    port = mf.server_port(register_server)
    cfg = ModbusCollectorConfig.model_validate(
        {"kind": "modbus", "devices": [_device("types", port, registers=TYPED_REGS)]}
    )
    col = ModbusCollector(cfg, mf.RecordingIngest())
    assert len(col.plans["types"]) == 1  # 50-odd points, one read
    await register_server.context.async_setValues(1, 16, 0, _image(values))
    reading = await col.poll_once("types")
    assert reading is not None, col.devices["types"].last_error
    for name, expected in values.items():
        got = reading.fields[name]
        if name.startswith("float32"):
            assert got == _f32(expected), name
        else:
            assert got == expected, name
    assert reading.measurement == "process"
    assert reading.tags == {"line": "L1", "equipment": "types", "device": "types"}
    assert reading.ts_from_receive and reading.ts_ns <= reading.received_ns


async def test_bad_value_is_dead_lettered_once_per_episode(
    register_server: ModbusTcpServer,
) -> None:
    port = mf.server_port(register_server)
    regs = [
        {"name": "temp_c", "fc": 3, "address": 0, "type": "float32"},
        {"name": "ok", "fc": 3, "address": 2},
    ]
    cfg = {
        "kind": "modbus",
        "devices": [_device("d1", port, registers=regs, interval_s=0.05)],
    }
    ctx = register_server.context
    await ctx.async_setValues(1, 16, 0, [*encode_registers(math.nan, "float32", "ABCD"), 7])
    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(lambda: len(ingest.of("d1")) >= 5, what="5 readings")
        assert all("temp_c" not in r.fields and r.fields["ok"] == 7 for r in ingest.of("d1"))
        assert len(ingest.dead) == 1
        dl = ingest.dead[0]
        assert dl.source == f"modbus://127.0.0.1:{port}/1"
        assert "temp_c" in dl.reason and "finite" in dl.reason
        assert orjson.loads(dl.payload)["items"] == [0x7FC0, 0]
        await ctx.async_setValues(1, 16, 0, encode_registers(21.5, "float32", "ABCD"))
        await mf.wait_until(
            lambda: ingest.readings[-1].fields.get("temp_c") == 21.5, what="recovered value"
        )
        await ctx.async_setValues(1, 16, 0, encode_registers(math.inf, "float32", "ABCD"))
        await mf.wait_until(lambda: len(ingest.dead) == 2, what="second episode")
        assert col.stats.decode_errors >= 2


async def test_any_error_while_decoding_a_response_is_a_dead_letter_and_polling_goes_on(
    register_server: ModbusTcpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: not only DecodeError. Whatever decoding or emitting one response raises, that
    response becomes a dead letter ("internal error: ...") with its raw registers, and the
    device's loop polls on; no reading is lost without a trace."""
    import collectors.modbus.collector as collector_mod

    port = mf.server_port(register_server)
    regs = [{"name": "v", "fc": 3, "address": 0}, {"name": "w", "fc": 3, "address": 1}]
    cfg = {"kind": "modbus", "devices": [_device("d1", port, registers=regs, interval_s=0.05)]}
    await register_server.context.async_setValues(1, 16, 0, [7, 8])
    real = collector_mod.decode_point
    poisoned = {"left": 3}

    def decode_point(p: Any, raw: bytes) -> Any:
        if p.name == "w" and poisoned["left"]:
            poisoned["left"] -= 1
            raise ZeroDivisionError("a bug in a decoder")
        return real(p, raw)

    monkeypatch.setattr(collector_mod, "decode_point", decode_point)
    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(
            lambda: len(ingest.dead) == 3 and len(ingest.of("d1")) >= 3, what="3 dead, 3 readings"
        )
    for dl in ingest.dead:
        assert dl.source == f"modbus://127.0.0.1:{port}/1"
        assert dl.reason == "internal error: ZeroDivisionError: a bug in a decoder"
        body = orjson.loads(dl.payload)
        assert body["device"] == "d1"
        assert body["requests"] == [{"fc": 3, "address": 0, "count": 2, "items": [7, 8]}]
    assert all(r.fields == {"v": 7, "w": 8} for r in ingest.of("d1"))
    s = col.stats
    assert s.internal_errors == 3 and s.device_errors == 0
    assert s.polls_ok == s.readings + s.internal_errors  # each poll: a reading or a dead letter


async def test_a_tag_register_line_protocol_cannot_carry_is_dead_lettered(
    register_server: ModbusTcpServer,
) -> None:
    port = mf.server_port(register_server)
    regs = [
        {"name": "v", "fc": 3, "address": 0},
        {"name": "batch", "fc": 3, "address": 1, "type": "string", "length": 2, "tag": True},
    ]
    cfg = {"kind": "modbus", "devices": [_device("d1", port, registers=regs, interval_s=0.05)]}
    await register_server.context.async_setValues(1, 16, 0, [5, 0x4101, 0x4200])  # "A\x01B"
    async with mf.running(cfg) as (_col, ingest):
        await mf.wait_until(lambda: ingest.dead and ingest.of("d1"), what="reading and letter")
        [dl] = ingest.dead
        assert dl.reason == (
            "batch: tag value contains a control character (U+0001), "
            "which line protocol cannot carry"
        )
        r = ingest.of("d1")[0]
        assert r.fields == {"v": 5} and "batch" not in r.tags  # the value still lands


async def test_silent_device_does_not_delay_the_others(plc_factory: mf.PlcFactory) -> None:
    """One PLC never answers; the two others keep their 1 Hz cadence, and it is reported offline."""
    plcs = await plc_factory(
        [
            {"name": "G1", "kind": "generic", "params": {"float32": 10, "uint16": 10}},
            {"name": "G2", "kind": "generic", "params": {"float32": 10, "uint16": 10}},
            {
                "name": "MUTE",
                "kind": "generic",
                "params": {"float32": 10, "uint16": 10},
                "faults": [{"kind": "slow", "delay_s": 3600}],
            },
        ]
    )
    cfg = {
        "kind": "modbus",
        "defaults": {"line": "L1", "interval_s": 1.0, "timeout_s": 0.5, "retries": 2},
        "profiles": {"bank": plcs[0].profile()},
        "devices": [p.device_config(profile="bank") for p in plcs],
    }
    changes: list[DeviceStateChange] = []
    async with mf.running(cfg, changes=changes) as (col, ingest):
        await mf.wait_until(
            lambda: min(len(ingest.of("G1")), len(ingest.of("G2"))) >= 5,
            within_s=10,
            what="5 readings from each healthy PLC",
        )
        mute = col.devices["MUTE"]
        assert mute.online is False and "timeout" in mute.last_error
    for name in ("G1", "G2"):
        ts = [r.ts_ns / 1e9 for r in ingest.of(name)]
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert all(0.8 < g < 1.2 for g in gaps), (name, gaps)
        assert col.devices[name].missed_cycles == 0
        assert col.devices[name].online is True
    assert ingest.of("MUTE") == []
    offline = [c for c in changes if c.device == "MUTE"]
    assert len(offline) == 1 and offline[0].online is False
    assert offline[0].source == f"modbus://127.0.0.1:{plcs[2].port}/1"
    # three attempts (2 retries) of ~0.5 s each before it was declared offline
    assert col.stats.timeouts >= 3 and col.stats.retries >= 2


async def test_unplugged_device_goes_offline_and_comes_back_without_restart(
    plc_factory: mf.PlcFactory,
) -> None:
    (plc,) = await plc_factory([{"name": "G", "kind": "generic", "params": {"float32": 4}}])
    cfg = {
        "kind": "modbus",
        "defaults": {
            "line": "L1",
            "interval_s": 0.1,
            "timeout_s": 0.3,
            "retries": 1,
            "reconnect_max_s": 0.4,
        },
        "profiles": {"generic": plc.profile()},
        "devices": [plc.device_config()],
    }
    changes: list[DeviceStateChange] = []
    async with mf.running(cfg, changes=changes) as (col, ingest):
        await mf.wait_until(lambda: len(ingest.of("G")) >= 3, what="readings")
        plc.inject("unplug")
        await mf.wait_until(lambda: col.devices["G"].online is False, what="offline")
        assert not plc.plugged
        n = len(ingest.of("G"))
        await asyncio.sleep(0.5)
        assert len(ingest.of("G")) == n  # nothing while unplugged
        plc.clear("unplug")
        await mf.wait_until(lambda: plc.plugged, what="replugged")
        await mf.wait_until(lambda: col.devices["G"].online is True, within_s=5, what="online")
        await mf.wait_until(lambda: len(ingest.of("G")) >= n + 3, what="readings again")
    assert [c.online for c in changes] == [True, False, True]
    assert "connect" in changes[1].reason
    assert col.stats.connects >= 2 and col.stats.device_errors == 0


async def test_exception_answers_mark_offline_busy_answers_are_retried(
    plc_factory: mf.PlcFactory,
) -> None:
    (plc,) = await plc_factory([{"name": "G", "kind": "generic", "params": {"float32": 4}}])
    cfg = {
        "kind": "modbus",
        "defaults": {"line": "L1", "interval_s": 0.1, "timeout_s": 0.3, "reconnect_max_s": 0.3},
        "profiles": {"generic": plc.profile()},
        "devices": [plc.device_config()],
    }
    changes: list[DeviceStateChange] = []
    async with mf.running(cfg, changes=changes) as (col, _ingest):
        await mf.wait_until(lambda: col.devices["G"].online is True, what="online")
        plc.inject("exception", code=4)
        await mf.wait_until(lambda: col.devices["G"].online is False, what="offline")
        assert "exception 0x04 server device failure" in col.devices["G"].last_error
        assert col.stats.retries == 0  # "device failure" is not worth a retry
        plc.clear()
        await mf.wait_until(lambda: col.devices["G"].online is True, what="online again")
        plc.inject("exception", code=6)
        await mf.wait_until(lambda: col.devices["G"].online is False, what="offline (busy)")
        assert "0x06 server device busy" in changes[-1].reason
        assert col.stats.retries >= 2  # busy: retried before giving up
    assert [c.online for c in changes] == [True, False, True, False]


async def test_slow_journal_skips_polls_instead_of_queueing(plc_factory: mf.PlcFactory) -> None:
    (plc,) = await plc_factory([{"name": "G", "kind": "generic", "params": {"float32": 2}}])
    cfg = {
        "kind": "modbus",
        "max_pending": 5,
        "defaults": {"line": "L1", "interval_s": 0.02},
        "profiles": {"generic": plc.profile()},
        "devices": [plc.device_config()],
    }
    ingest = mf.RecordingIngest()
    async with mf.running(cfg, ingest) as (col, _):
        await mf.wait_until(lambda: len(ingest.readings) >= 3, what="readings")
        ingest.gate.clear()  # the journal stops taking
        await mf.wait_until(lambda: col.stats.backpressure_skips >= 10, what="skipped polls")
        assert col.pending <= 5
        polls = col.stats.polls
        await asyncio.sleep(0.2)
        assert col.stats.polls == polls  # nothing polled while there is nowhere to put it
        assert col.stats.missed_cycles >= col.stats.backpressure_skips
        ingest.gate.set()
        await mf.wait_until(lambda: col.stats.polls > polls + 3, what="polling resumed")
        await mf.wait_until(lambda: col.pending == 0, what="buffer drained")
    assert col.stats.readings == len(ingest.readings) + col.pending


async def test_cancel_stops_the_collector_whenever_it_lands(plc_factory: mf.PlcFactory) -> None:
    """cancel() that races a finishing read must still stop every poll loop (Python 3.11's
    wait_for swallowed such a cancel, and the test above then hung in teardown)."""
    plcs = await plc_factory(
        [{"name": n, "kind": "generic", "params": {"float32": 4}} for n in ("G1", "G2")]
    )
    cfg = {
        "kind": "modbus",
        "defaults": {"line": "L1", "interval_s": 0.001},
        "profiles": {"generic": plcs[0].profile()},
        "devices": [p.device_config() for p in plcs],
    }
    for i in range(40):
        ingest = mf.RecordingIngest()
        col = ModbusCollector(ModbusCollectorConfig.model_validate(cfg), ingest)
        task = asyncio.create_task(col.run())
        await mf.wait_until(lambda: col.stats.polls_ok >= 2, what="polls")  # noqa: B023
        for _ in range(i % 9):
            await asyncio.sleep(0)  # land the cancel at a different point of a poll each time
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, f"run() went on polling after cancel (round {i})"
        assert task.cancelled()


class FlakyIngest(mf.RecordingIngest):
    """Fails the first submit, as a journal hiccup would."""

    async def submit(self, readings: Any, dead: Any = (), on_committed: Any = None) -> None:
        if self.submits == 0:
            self.submits += 1
            raise RuntimeError("journal hiccup")
        await super().submit(readings, dead, on_committed)


async def test_failing_callback_and_submit_do_not_stop_polling_or_lose_readings(
    plc_factory: mf.PlcFactory,
) -> None:
    (plc,) = await plc_factory([{"name": "G", "kind": "generic", "params": {"float32": 2}}])
    cfg = ModbusCollectorConfig.model_validate(
        {
            "kind": "modbus",
            "defaults": {"line": "L1", "interval_s": 0.05},
            "profiles": {"generic": plc.profile()},
            "devices": [plc.device_config()],
        }
    )

    def bad_callback(change: DeviceStateChange) -> None:
        raise RuntimeError("alerting is down")

    ingest = FlakyIngest()
    col = ModbusCollector(cfg, ingest, device_state_cb=bad_callback)
    task = asyncio.create_task(col.run())
    try:
        await mf.wait_until(lambda: len(ingest.readings) >= 10, what="readings")
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert col.devices["G"].online is True  # state kept although the callback failed
    assert col.stats.submit_errors == 1 and col.stats.device_errors == 0
    # the batch that failed was handed over again: readings arrive in poll order, none missing
    ts = [r.ts_ns for r in ingest.readings]
    assert ts == sorted(ts)
    assert col.stats.readings == len(ingest.readings) + col.pending


# -- the device clock as event time --------------------------------------------------------------

CLOCK_REGS = [
    {"name": "v", "fc": 3, "address": 0},
    {"name": "plc_clock_ms", "fc": 3, "address": 10, "type": "uint64", "timestamp": "ms"},
]


def _clock_image(clock_ms: int, v: int = 7) -> list[int]:
    return [v, *[0] * 9, *encode_registers(clock_ms, "uint64", "ABCD")]


async def test_device_clock_is_the_event_time_and_bad_clocks_are_dead_lettered(
    register_server: ModbusTcpServer,
) -> None:
    port = mf.server_port(register_server)
    ctx = register_server.context
    c0 = int(time.time() * 1000) - 60_000  # a PLC a minute behind the gateway
    await ctx.async_setValues(1, 16, 0, _clock_image(c0))
    cfg = {
        "kind": "modbus",
        "devices": [
            _device("d1", port, registers=CLOCK_REGS, interval_s=0.05, max_future_skew_s=5)
        ],
    }

    def withheld(why: str) -> list[dict[str, Any]]:
        return [orjson.loads(d.payload) for d in ingest.dead if why in d.reason]

    async with mf.running(cfg) as (col, ingest):
        await mf.wait_until(lambda: len(ingest.of("d1")) >= 2, what="readings on the PLC clock")
        r = ingest.of("d1")[0]
        assert r.ts_ns == c0 * 1_000_000 and not r.ts_from_receive
        assert r.fields == {"v": 7}  # the clock is the time, not a field
        assert col.devices["d1"].clock_offset_s == pytest.approx(-60, abs=2)

        ahead = int(time.time() * 1000) + 60_000
        await ctx.async_setValues(1, 16, 0, _clock_image(ahead, v=8))
        await mf.wait_until(lambda: withheld("ahead of the gateway"), what="clock ahead refused")
        dl = next(d for d in ingest.dead if "ahead" in d.reason)
        assert dl.reason.startswith("plc_clock_ms: device clock ") and "max_future_skew_s=5" in (
            dl.reason
        )
        assert dl.reason.endswith("reading withheld")
        body = withheld("ahead")[0]
        assert body["fields"] == {"v": 8} and body["clock_ns"] == ahead * 1_000_000
        assert body["items"] == encode_registers(ahead, "uint64", "ABCD")
        assert body["tags"]["device"] == "d1"
        assert "ahead" in col.devices["d1"].clock_error

        await ctx.async_setValues(1, 16, 0, _clock_image(c0 - 10_000, v=9))
        await mf.wait_until(
            lambda: withheld("went backwards by 10.000 s"), what="clock going back refused"
        )
        assert withheld("backwards")[0]["fields"] == {"v": 9}

        await ctx.async_setValues(1, 16, 0, _clock_image(c0 + 1_000, v=10))
        await mf.wait_until(
            lambda: ingest.readings[-1].ts_ns == (c0 + 1_000) * 1_000_000, what="clock accepted"
        )
        assert col.devices["d1"].clock_error == ""

        await ctx.async_setValues(1, 16, 0, _clock_image(0, v=11))
        await mf.wait_until(lambda: withheld("clock not set"), what="unset clock refused")
        assert withheld("clock not set")[0]["clock_ns"] is None
    times = [r.ts_ns for r in ingest.of("d1")]
    assert times == sorted(times)  # journaled readings never go back in device time
    assert all(t in (c0 * 1_000_000, (c0 + 1_000) * 1_000_000) for t in times)
    assert {r.fields["v"] for r in ingest.of("d1")} <= {7, 10}  # no value under a wrong time
    s = col.stats
    # every successful poll became a reading or a dead letter: nothing dropped silently
    assert s.polls_ok == s.readings + s.clock_rejects
    assert s.clock_rejects >= 3 and s.dead_letters >= 3 and s.device_errors == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    words=st.one_of(
        st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
        # around now, where the skew limit bites
        st.integers(-86_400_000, 600_000).map(
            lambda d: encode_registers(int(time.time() * 1000) + d, "uint64", "ABCD")
        ),
    )
)
async def test_any_clock_register_content_gives_a_reading_or_a_dead_letter(
    register_server: ModbusTcpServer, words: list[int]
) -> None:
    """Garbage in the clock registers never crashes a poll and never loses its values."""
    port = mf.server_port(register_server)
    cfg = ModbusCollectorConfig.model_validate(
        {"kind": "modbus", "devices": [_device("d1", port, registers=CLOCK_REGS)]}
    )
    col = ModbusCollector(cfg, mf.RecordingIngest())
    await register_server.context.async_setValues(1, 16, 0, [5, *[0] * 9, *words])
    before_ns = time.time_ns()
    reading = await col.poll_once("d1")
    after_ns = time.time_ns()
    clock_ns = int.from_bytes(struct.pack(">4H", *words)) * 1_000_000
    skew_ns = 300 * 10**9
    if reading is not None:
        assert reading.ts_ns == clock_ns and not reading.ts_from_receive
        assert reading.fields == {"v": 5}
        assert DEFAULT_MIN_EVENT_NS <= clock_ns <= after_ns + skew_ns
        assert col.stats.clock_rejects == 0
    else:
        assert col.stats.clock_rejects == 1 and col.stats.dead_letters == 1
        assert clock_ns < DEFAULT_MIN_EVENT_NS or clock_ns > before_ns + skew_ns
    assert col.stats.device_errors == 0 and col.stats.polls_ok == 1
