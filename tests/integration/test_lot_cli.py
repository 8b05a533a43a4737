"""`vigil lot` and `vigil shipment` as a user runs them (the real command line, in process, on
one data directory): a lot recorded after the fact from what the journal holds, a signed
decision, the report."""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner, Result

from gateway.cli import app
from gateway.core.reading import Reading
from gateway.pipeline.journal import Journal
from gateway.records.audit import AuditTrail
from gateway.records.users import UserStore

S = 1_000_000_000
HOUR = 3600 * S


def vigil(data: Path, *args: str, password: str | None = None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(data)
    if password is not None:
        env["VIGIL_USER_PASSWORD"] = password
    return CliRunner().invoke(app, list(args), env=env)


def iso(ns: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).isoformat()


def test_a_trip_recorded_after_the_fact_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    now = time.time_ns()
    t0 = now - 6 * HOUR
    # a truck's logger uploaded its trip on arrival; nobody had recorded the trip yet
    journal = Journal(data / "journal.sqlite")
    journal.append(
        [
            Reading(
                "coldchain",
                {"site": "fleet", "asset": "truck-5", "device": "lg5"},
                {"temp_c": 10.0 if 12 <= i < 24 else 5.0},
                t0 + i * 5 * 60 * S,
                now - S,
            )
            for i in range(48)
        ],
        [],
    )
    journal.close()
    users = UserStore(data / "users.sqlite")
    users.add("quinn", "Quinn Quality", "qa", "quality password 1")
    users.close()

    steps = [
        (
            "lot",
            "create",
            "B-77",
            "--product",
            "insulin",
            "--profile",
            "vaccine_2_8",
            "--expiry",
            "2027-09-30",
            "--code",
            "81000000000000000077",
        ),
        (
            "shipment",
            "start",
            "truck-5",
            "--lot",
            "B-77",
            "--id",
            "T5",
            "--at",
            iso(t0),
            "--reason",
            "departure from waybill WB-5",
        ),
        ("shipment", "stop", "T5", "--at", iso(t0 + 4 * HOUR), "--reason", "arrived"),
    ]
    out = []
    for step in steps:
        r = vigil(data, *step)
        assert r.exit_code == 0, r.output
        out.append(r.stdout)
    assert "kept until 2032-09-30" in out[0]
    assert "48 readings from the journal" in out[1]  # the trip, found in the journal
    r = vigil(
        data,
        "lot",
        "decide",
        "B-77",
        "--decision",
        "release",
        "--user",
        "quinn",
        "--meaning",
        "released after review",
        password="quality password 1",
    )
    assert r.exit_code == 0, r.output
    r = vigil(
        data, "lot", "report", "B-77", "--format", "csv", "--out", "-", "--tz", "Asia/Shanghai"
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert ["decision", "status", "release"] in rows
    assert ["decision", "signed_by_name", "Quinn Quality"] in rows
    assert any(row[:3] == ["legs", "T5", "transport"] for row in rows)
    # 12 five-minute readings at 10 °C: 1 h of the built-in 72 h in 8-25 °C
    [warm] = [row for row in rows if row[:2] == ["budget", "warm"]]
    assert warm[3:6] == ["259200", "3600", "255600"]
    r = vigil(data, "lot", "report", "B-77", "--format", "csv", "--out", "-", "--lang", "zh-CN")
    assert r.exit_code == 0, r.output
    zh = list(csv.reader(io.StringIO(r.stdout.removeprefix("\ufeff"))))
    assert ["report", "title", "vigil 全程温度追溯报告，批号 B-77"] in zh
    assert ["report", "time_zone", "Asia/Shanghai"] in zh  # gateway.timezone by default
    assert [row for row in zh if row[:2] == ["budget", "warm"]] == [warm]
    r = vigil(data, "lot", "show", "B-77")
    assert r.exit_code == 0, r.output
    assert "T5" in r.stdout and "48 readings" in r.stdout
    assert "budget warm" in r.stdout and "1.00 h of 72.00 h used" in r.stdout
    assert "decision: release by Quinn Quality (quinn)" in r.stdout
    assert "+08:00" in r.stdout  # gateway.timezone by default
    audit = AuditTrail(data / "audit.sqlite")
    actions = {(row.action, row.actor.startswith("cli:") or row.actor) for row in audit.rows()}
    audit.close()
    assert {
        ("lot.create", True),
        ("shipment.start", True),
        ("shipment.stop", True),
        ("lot.release", "quinn"),
    } <= actions
