"""Running for years, in-process: a reload applies a new threshold on the next reading and is
audited (a bad file is refused); retention archives, keeps the floor and what a record holds,
audited with counts; a failed scheduled backup raises an alert."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from gateway.app import YEAR_NS, Gateway
from gateway.config import load_config
from gateway.core.reading import Reading
from gateway.pipeline.journal import History, verify_chain
from gateway.records.reports import build_report, profile_limits
from tests.services import apoll

TAGS = {"site": "wh1", "asset": "fridge-01", "device": "fridge-01-t1"}


def write_config(tmp_path: Path, high: float, extra: dict[str, Any] | None = None) -> Path:
    doc: dict[str, Any] = {
        "gateway": {
            "name": "gw-ops",
            "data_dir": str(tmp_path / "data"),
            "metrics_interval_s": 1,
            "clock": {"sync_check_s": 0},
        },
        "api": {"enabled": False},
        "rules": {
            "profiles": {
                "cold": {
                    "rules": [
                        {"id": "high", "kind": "threshold", "field": "temp_c", "high": high},
                        {"id": "low", "kind": "threshold", "field": "temp_c", "low": 0},
                    ]
                }
            },
            "bindings": [{"profile": "cold", "site": "wh1"}],
        },
        "retention": {"records_years": 0.001, "test_mode": True},
        **(extra or {}),
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.asynccontextmanager
async def running(path: Path, **kw: Any) -> AsyncIterator[Gateway]:
    gw = Gateway(load_config(path, env={}), **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, config_path=path))
    try:
        yield gw
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


def reading(temp: float, ts_ns: int) -> Reading:
    return Reading("coldchain", dict(TAGS), {"temp_c": temp}, ts_ns, ts_ns)


def open_alerts(gw: Gateway, rule: str) -> list[Any]:
    assert gw.alerting is not None
    return [a for a in gw.alerting.store.open_alerts() if a.rule == rule]


async def test_reload_applies_a_threshold_on_the_next_reading_and_is_audited(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, high=8.0)
    t = time.time_ns() - 60 * 10**9
    async with running(path) as gw:
        assert gw.alerting is not None
        await gw.writer.submit([reading(7.0, t)])
        await apoll(lambda: gw.alerting.engine.stats["readings"] >= 1, 10)  # type: ignore[union-attr]
        assert open_alerts(gw, "cold.high") == []
        # an invalid file is refused: the running rules stay
        path.write_text(path.read_text().replace("high: 8.0", "high: eight"))
        refused = await gw.reload("tester", "test")
        assert not refused.ok and "high" in refused.problems[0]
        assert gw.records.audit.last(action="config.reload_refused") is not None
        # a valid change: 6 °C; the next reading (7 °C) alarms
        write_config(tmp_path, high=6.0)
        outcome = await gw.reload("user:admin1", "test")
        assert outcome.ok and outcome.changed == ["rules"] and outcome.rules == ["cold.high"]
        row = gw.records.audit.last(action="config.change")
        assert row is not None and row.actor == "user:admin1"
        assert "high: 8.0" in row.old_value["text"] and "high: 6.0" in row.new_value["text"]
        assert row.new_value["changed"] == ["rules", "rule cold.high"]
        await gw.writer.submit([reading(7.0, t + 10**9)])
        await apoll(lambda: open_alerts(gw, "cold.high"), 10, what="alert at the new threshold")
        # the journal and the open alert outlive another reload (nothing changed: no row)
        before = gw.journal.last_id()
        again = await gw.reload("tester", "test")
        assert again.ok and again.changed == []
        assert gw.journal.last_id() >= before and open_alerts(gw, "cold.high")
        # a change that needs a restart is refused whole
        write_config(tmp_path, high=5.0, extra={"journal": {"max_bytes": 12345678}})
        refused = await gw.reload("tester", "test")
        assert not refused.ok and "journal" in refused.problems[0]
        kept = gw.alerting.engine._rule("cold.high")
        assert kept is not None and kept.spec.high == 6.0  # type: ignore[attr-defined]


class Hold:
    def __init__(self, reason: str | None) -> None:
        self.reason = reason

    def held(self, start_ns: int, end_ns: int) -> str | None:
        return self.reason


async def test_retention_archives_feeds_reports_keeps_held_and_audits_counts(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, high=8.0, extra={"journal": {"retention_hours": 0}})
    now = time.time_ns()
    t0 = now - 3600 * 10**9
    async with running(path, hold=Hold("lot L-7 expires 2031-05-01")) as gw:
        shipment = gw.records.shipments.start(
            "fridge-01", "vaccine_2_8", "qa1", site="wh1", now_ns=t0 - 10**9
        )
        for k in range(6):
            await gw.writer.submit([reading(5.0 + k, t0 + k * 60 * 10**9)])
        await apoll(lambda: gw.journal.count("readings") >= 6, 10)
        gw.records.shipments.stop(shipment.id, "qa1", "arrived", now_ns=t0 + 600 * 10**9)
        history = History(gw.journal.path, gw.journal.archive)
        limits = profile_limits(gw.alerting.engine.library if gw.alerting else None, "vaccine_2_8")

        def report() -> Any:
            rows = [
                ("coldchain", "fridge-01-t1", t0, r.line)
                for r in history.rows_between(t0, t0 + 600 * 10**9)
                if r.line.startswith("coldchain")
            ]
            return build_report(shipment, rows, [], limits, now)

        before = report()
        assert before.summary.n == 6
        # hot window 0 h, no sink: the journal moves everything into the archive
        await asyncio.to_thread(gw.journal.prune)
        assert gw.journal.count("readings") == 0
        after = report()  # the archive alone feeds it
        assert (after.summary.n, after.summary.max, after.summary.mkt) == (
            before.summary.n,
            before.summary.max,
            before.summary.mkt,
        )
        # a day later the segment is sealed; past the floor (0.001 years) it would go, but the
        # lot holds it; the shipment record too
        await asyncio.to_thread(gw.journal.prune, now + 2 * 86_400 * 10**9)
        later = now + 2 * 86_400 * 10**9 + int(0.001 * YEAR_NS)
        counts = await gw.retention_pass(later)
        assert counts["archive_segments"] == 0 and counts["shipments"] == 0
        assert gw.journal.archive.segments()
        assert gw.records.audit.last(action="retention.archive") is not None
        gw.retention_hold = Hold(None)
        counts = await gw.retention_pass(later)
        assert counts["archive_segments"] >= 1 and counts["shipments"] == 1
        assert counts["archive_readings"] >= 6
        row = gw.records.audit.last(action="retention.prune")
        assert row is not None and row.new_value["shipments"] == 1
        assert row.new_value["records_years"] == 0.001
    res = verify_chain(tmp_path / "data" / "journal.sqlite", gw.journal.archive)
    assert res.ok, res.describe()


async def test_a_failed_scheduled_backup_raises_an_alert(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup folder should be")
    path = write_config(
        tmp_path,
        high=8.0,
        extra={
            "gateway": {
                "name": "gw-ops",
                "data_dir": str(tmp_path / "data"),
                "metrics_interval_s": 1,
                "clock": {"sync_check_s": 0},
                "backup": {"destination": str(blocker / "sub"), "at": "03:00"},
            }
        },
    )
    async with running(path) as gw:
        assert await gw.run_backup() is False
        await apoll(lambda: open_alerts(gw, "gateway_health.backup_failed"), 10)
        row = gw.records.audit.last(action="backup.failed")
        assert row is not None and "Error" in row.new_value["error"]
        # a good one clears it
        assert gw.config.gateway.backup is not None
        gw.config.gateway.backup.destination = tmp_path / "backups"
        assert await gw.run_backup() is True
        await apoll(
            lambda: (
                not open_alerts(gw, "gateway_health.backup_failed")
                or open_alerts(gw, "gateway_health.backup_failed")[0].active is False
            ),
            10,
        )
        assert len(list((tmp_path / "backups").iterdir())) == 1


async def test_upgrade_from_the_previous_release_data_dir(tmp_path: Path) -> None:
    """A data directory of vigil 0.1.0 (tests/fixtures/release-0.1.0): the journal is migrated
    to the chained schema, every store keeps what it held, new readings chain on."""
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    fixtures = Path(__file__).parents[1] / "fixtures" / "release-0.1.0"
    for dump in fixtures.glob("*.sql"):
        db = sqlite3.connect(data / f"{dump.stem}.sqlite")
        db.executescript(dump.read_text())
        db.close()
    path = write_config(tmp_path, high=8.0)
    async with running(path) as gw:
        assert gw.journal.count("readings") == 40
        assert gw.journal.count("dead_letters") == 1
        assert gw.journal.cursor("influx") == 30
        assert gw.alerting is not None
        assert gw.alerting.store.list_alerts(limit=100)  # the 0.1.0 alerts are still there
        assert gw.records.shipments.get("SH-1") is not None
        assert gw.records.users.get("qa1") is not None
        await gw.writer.submit([reading(5.0, time.time_ns())])
        await apoll(lambda: gw.journal.count("readings") > 40, 10)
        assert gw.records.audit.verify().ok
    res = verify_chain(data / "journal.sqlite", gw.journal.archive)
    db = sqlite3.connect(data / "journal.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    total = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    new = db.execute("SELECT COUNT(*) FROM readings WHERE id > 40 AND line LIKE 'coldchain%'")
    assert new.fetchone()[0] == 1
    db.close()
    assert res.ok and res.readings == total > 41, res.describe()


async def test_anchors_in_influxdb_1x_detect_3_truncated_audit_rows(
    tmp_path: Path, influxdb1: Any
) -> None:
    """The anchor goes out through the real sink to a real InfluxDB 1.x and comes back with
    InfluxQL: `vigil audit verify --anchor influx` counts the rows cut off the end."""
    import sqlite3

    from typer.testing import CliRunner

    from gateway.cli import app

    influxdb1.create_database("anchors")
    influx = {"version": 1, "url": influxdb1.url, "database": "anchors", "flush_interval_s": 0.1}
    path = write_config(tmp_path, high=8.0, extra={"influx": influx})
    async with running(path) as gw:
        for i in range(9):
            await asyncio.to_thread(gw.records.audit.record, "qa1", "note", "test", str(i))
        head = gw.records.audit.head()
        await gw.writer.submit([gw.anchor_reading()], internal=True)

        def anchored() -> bool:
            _status, body = influxdb1.query(
                'SELECT last("audit_seq") FROM "audit_head"', db="anchors"
            )
            series = body["results"][0].get("series")  # type: ignore[index]
            return bool(series) and series[0]["values"][0][1] == head[0]

        await apoll(lambda: asyncio.to_thread(anchored), 20, interval=0.2, what="the anchor")
    runner = CliRunner()
    env = {"VIGIL_CONFIG": None, "VIGIL_DATA_DIR": None}
    result = runner.invoke(app, ["audit", "verify", "-c", str(path), "--anchor", "influx"], env=env)
    assert result.exit_code == 0 and f"audit row {head[0]} matches InfluxDB" in result.output
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DELETE FROM audit WHERE seq > ?", (head[0] - 3,))
    db.commit()
    db.close()
    result = runner.invoke(app, ["audit", "verify", "-c", str(path), "--anchor", "influx"], env=env)
    assert result.exit_code == 1, result.output
    assert "audit trail TRUNCATED" in result.output
    assert "the newest 3 rows are missing" in result.output
