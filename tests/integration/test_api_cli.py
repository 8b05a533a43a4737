"""`vigil user`, `vigil audit`, `vigil report` as an administrator runs them (real processes)."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.reading import Reading
from gateway.records.audit import AuditTrail
from gateway.records.shipments import ShipmentRegistry
from gateway.records.users import UserStore

S = 1_000_000_000
T0 = 1_795_000_000 * S


def vigil(data: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(data)
    if password is not None:
        env["VIGIL_USER_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_user_add_list_disable_and_audit_verify(data: Path) -> None:
    r = vigil(
        data,
        "user",
        "add",
        "ada",
        "--role",
        "admin",
        "--name",
        "Ada Admin",
        password="bootstrap password 1",
    )
    assert r.returncode == 0, r.stderr
    assert "added ada (admin)" in r.stdout
    assert UserStore(data / "users.sqlite").verify_password("ada", "bootstrap password 1")
    r = vigil(data, "user", "add", "ada", "--role", "qa", password="bootstrap password 1")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = vigil(data, "user", "add", "bob", "--role", "qa")  # no terminal, no env: refuse
    assert r.returncode == 2 and "VIGIL_USER_PASSWORD" in r.stderr
    r = vigil(data, "user", "disable", "ada", "--reason", "left")
    assert r.returncode == 0, r.stderr
    r = vigil(data, "user", "list")
    assert "ada" in r.stdout and "DISABLED" in r.stdout
    rows = AuditTrail(data / "audit.sqlite").rows()
    assert [x.action for x in rows] == ["user.add", "user.disable"]
    assert rows[0].actor.startswith("cli:") and "bootstrap" not in str(rows[0].new_value)
    r = vigil(data, "audit", "verify")
    assert r.returncode == 0 and "audit chain OK: 2 rows" in r.stdout
    r = vigil(data, "audit", "show")
    assert "user.disable" in r.stdout and "reason='left'" in r.stdout


def test_audit_verify_names_the_first_broken_row(data: Path) -> None:
    trail = AuditTrail(data / "audit.sqlite")
    for i in range(6):
        trail.record("olga", "alert.ack", "alert", i, {"state": "a"}, {"state": "b"})
    trail.close()
    db = sqlite3.connect(data / "audit.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 4")
    db.close()
    r = vigil(data, "audit", "verify")
    assert r.returncode == 1
    assert "BROKEN at row 4" in r.stdout


def test_report_shipment_csv_and_pdf(data: Path, tmp_path: Path) -> None:
    reg = ShipmentRegistry(data / "shipments.sqlite")
    s = reg.start("truck-7", "vaccine_2_8", "olga", shipment_id="SHP-CLI", now_ns=T0)
    rs = [
        Reading(
            "coldchain",
            {"site": "road", "asset": "truck-7", "device": "lg"},
            {"temp_c": t},
            T0 + i * 300 * S,
        )
        for i, t in enumerate([5, 6, 9, 7, 5])
    ]
    reg.enrich(rs)
    reg.record(rs)
    reg.stop(s.id, "olga", now_ns=T0 + 1500 * S)
    reg.close()
    out = tmp_path / "r.csv"
    r = vigil(data, "report", "shipment", "SHP-CLI", "--format", "csv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    stats = [x for x in rows if x and x[0] == "statistics" and x[1] == "lg"]
    assert stats and stats[0][3] == "5" and stats[0][7] == "9.00"
    assert ["out_of_range", "lg", "> 8 °C", "300", "0:05:00"] in rows
    pdf = tmp_path / "r.pdf"
    r = vigil(data, "report", "shipment", "SHP-CLI", "--format", "pdf", "-o", str(pdf))
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    r = vigil(data, "report", "shipment", "NOPE", "--format", "csv")
    assert r.returncode == 1 and "no shipment NOPE" in r.stderr
