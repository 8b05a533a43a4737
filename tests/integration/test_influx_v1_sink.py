"""`influx.version: 1`: the sink writes through InfluxDB 1.x's `/write` (a real `influxd` 1.6),
with the v2 path's batching, retry and quarantine rules."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.metrics import Counters
from gateway.core.reading import Reading
from gateway.pipeline.influx_sink import InfluxConfig, InfluxSink, to_v1
from gateway.pipeline.journal import Journal
from tests.services import InfluxDB1, apoll

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_795_000_000 * S
DB = "plant"


@pytest.fixture
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("influx"))
    server.start()
    server.create_database(DB)
    yield server
    server.stop()


class Rig:
    def __init__(self, tmp_path: Path, influx: InfluxDB1, **cfg: Any) -> None:
        self.journal = Journal(tmp_path / "journal.sqlite")
        self.counters = Counters()
        self.committed = asyncio.Event()
        config = InfluxConfig.model_validate(
            {
                "version": 1,
                "url": influx.url,
                "database": DB,
                "flush_interval_s": 0.05,
                "retry_min_s": 0.05,
                "retry_max_s": 0.2,
                **cfg,
            }
        )
        self.sink = InfluxSink(config, self.journal, self.counters, self.committed)
        self.influx = influx

    def append(self, readings: list[Reading]) -> None:
        self.journal.append(readings, [])
        self.committed.set()

    def rows(self, q: str) -> list[list[Any]]:
        status, body = self.influx.query(q, DB, epoch="ns")
        assert status == 200, body
        series = body["results"][0].get("series") or []  # type: ignore[index]
        return [row for s in series for row in s["values"]]

    def quarantine(self) -> list[tuple[Any, ...]]:
        db = self.journal._reader()
        return db.execute("SELECT status, message, body FROM quarantine ORDER BY id").fetchall()


@pytest.fixture
async def rig(tmp_path: Path, influx: InfluxDB1) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, influx)
    task = asyncio.create_task(r.sink.run())
    yield r
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    r.journal.close()


def reading(i: int, device: str = "lg-1", **fields: Any) -> Reading:
    return Reading(
        "coldchain",
        {"site": "wh 1", "asset": "a,b=c", "device": device},
        fields or {"temp_c": 4.0 + i},
        T0 + i * S,
        T0,
    )


async def test_readings_land_as_named_through_v1_write(rig: Rig) -> None:
    rig.append([reading(i) for i in range(3)] + [reading(9, "x\\y", temp_c=1.5, door_open=True)])
    await apoll(lambda: rig.counters.forwarded == 4, 10, what="4 forwarded")
    rows = rig.rows('SELECT "temp_c" FROM "coldchain" GROUP BY "device"')
    assert sorted(rows) == [[T0 + i * S, 4.0 + i] for i in range(3)] + [[T0 + 9 * S, 1.5]]
    _, body = rig.influx.query('SHOW TAG VALUES FROM "coldchain" WITH KEY = "device"', DB)
    values = {v for _, v in body["results"][0]["series"][0]["values"]}  # type: ignore[index]
    assert values == {"lg-1", "x\\y"}  # one backslash, as the device is named
    [[site, asset]] = [
        row[2:] for row in rig.rows('SELECT "temp_c", "site", "asset" FROM "coldchain" LIMIT 1')
    ]
    assert (site, asset) == ("wh 1", "a,b=c")
    assert rig.sink.position == rig.journal.last_id() and rig.quarantine() == []


async def test_a_name_1x_cannot_carry_is_quarantined_alone(rig: Rig) -> None:
    rig.append([reading(0), reading(1, "trail\\"), reading(2)])
    await apoll(lambda: rig.counters.quarantined == 1, 10, what="the bad line quarantined")
    await apoll(lambda: rig.counters.forwarded == 2, 10, what="the others forwarded")
    [(status, message, body)] = rig.quarantine()
    assert status == 0 and "tag 'device'" in message and "1.x" in message
    assert body.count("\n") == 0 and "trail" in body
    assert len(rig.rows('SELECT "temp_c" FROM "coldchain"')) == 2
    assert rig.sink.position == rig.journal.last_id()


async def test_a_refused_batch_is_quarantined_with_the_server_message(rig: Rig) -> None:
    rig.append([reading(0)])
    await apoll(lambda: rig.counters.forwarded == 1, 10, what="the first reading")
    rig.append([reading(1, temp_c="warm")])  # temp_c is a float field: type conflict
    await apoll(lambda: rig.counters.quarantined == 1, 10, what="the batch quarantined")
    [(status, message, body)] = rig.quarantine()
    assert status == 400 and "field type conflict" in message and "warm" in body
    assert rig.counters.sink_errors == 0  # refused, not failed: never retried


async def test_outage_is_retried_until_influxdb_is_back(tmp_path: Path, influx: InfluxDB1) -> None:
    rig = Rig(tmp_path, influx)
    influx.stop()
    task = asyncio.create_task(rig.sink.run())
    try:
        rig.append([reading(i) for i in range(5)])
        await apoll(lambda: rig.counters.sink_errors >= 2, 10, what="failed writes")
        assert rig.counters.forwarded == 0 and rig.quarantine() == []
        await asyncio.to_thread(influx.start)
        await apoll(lambda: rig.counters.forwarded == 5, 15, what="delivery after the outage")
        assert len(rig.rows('SELECT "temp_c" FROM "coldchain"')) == 5
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        rig.journal.close()


async def test_flush_at_shutdown_and_a_missing_database(tmp_path: Path, influx: InfluxDB1) -> None:
    rig = Rig(tmp_path, influx)
    rig.append([reading(i) for i in range(3)])
    assert await rig.sink.flush(5.0) is True
    assert len(rig.rows('SELECT "temp_c" FROM "coldchain"')) == 3
    rig.journal.close()
    other = Rig(tmp_path / "other", influx, database="nosuch")
    other.append([reading(0)])
    assert await other.sink.flush(5.0) is True
    [(status, message, _)] = other.quarantine()  # the same rule as a missing bucket on 2.x
    assert status == 404 and "database not found" in message
    other.journal.close()


async def test_user_and_password(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = InfluxDB1(tmp_path_factory.mktemp("influx-auth"), auth=True)
    await asyncio.to_thread(server.start)
    try:
        # with no user yet, InfluxDB takes this one statement unauthenticated
        status, body = server.query(
            "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES", method="POST"
        )
        assert status == 200, body
        server.auth = ("admin", "admin-pw")
        server.create_database(DB)
        good = Rig(tmp_path_factory.mktemp("good"), server, username="admin", password="admin-pw")
        good.append([reading(0)])
        assert await good.sink.flush(5.0) is True
        assert good.counters.forwarded == 1 and good.quarantine() == []
        good.journal.close()
        bad = Rig(tmp_path_factory.mktemp("bad"), server, username="admin", password="wrong")
        bad.append([reading(1)])
        assert await bad.sink.flush(5.0) is True
        [(status, message, _)] = bad.quarantine()
        assert status == 401 and "authorization failed" in message
        assert "wrong" not in message
        bad.journal.close()
    finally:
        await asyncio.to_thread(server.stop)


def test_v1_lines() -> None:
    """1.x reads a backslash literally except before a comma, space or equals sign."""
    v2 = 'coldchain,device=x\\\\y,site=a\\ b temp_c=1.0,note="q\\"\\\\" 5'
    assert to_v1(v2) == 'coldchain,device=x\\y,site=a\\ b temp_c=1.0,note="q\\"\\\\" 5'
    assert to_v1("m,t=plain v=1i 2") == "m,t=plain v=1i 2"


NAME = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), max_codepoint=0x2FFF),
    min_size=1,
    max_size=10,
)
_EXAMPLE = iter(range(10**6))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(NAME, min_size=1, max_size=8, unique=True))
def test_any_name_lands_as_named_or_is_quarantined_with_the_reason(
    influxdb1: InfluxDB1, names: list[str]
) -> None:
    """Whatever a device is called, InfluxDB 1.x stores exactly that name, or the reading is
    quarantined because 1.x line protocol cannot carry it: never another name."""
    influxdb1.create_database(DB)
    measurement = f"names_{next(_EXAMPLE)}"
    with tempfile.TemporaryDirectory() as d:
        rig = Rig(Path(d), influxdb1)
        rig.append(
            [
                Reading(measurement, {"device": n}, {"v": 1.0}, T0 + i * S, T0)
                for i, n in enumerate(names)
            ]
        )
        assert asyncio.run(rig.sink.flush(10.0)) is True
        quarantined = "\n".join(body for _, _, body in rig.quarantine())
        rig.journal.close()
    _, body = influxdb1.query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device"', DB)
    series = body["results"][0].get("series") or []  # type: ignore[index]
    stored = {v for s in series for _, v in s["values"]}
    unwritable = {n for n in names if re.search(r"\\(?=[, =]|$)", n)}
    assert stored == set(names) - unwritable
    assert quarantined.count("\n") + 1 == len(unwritable) or not unwritable
