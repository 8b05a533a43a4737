"""Anchors detect cut-off audit rows and journal batches; `vigil journal verify` names a changed
reading; the clock watch's skew; the backup schedule; anchors read back from InfluxDB (Flux)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.anchor import AnchorError, from_influx
from gateway.app import Gateway
from gateway.backup import make_backup
from gateway.cli import app
from gateway.config import load_config, parse_config
from gateway.core.reading import Reading
from gateway.pipeline.clock import ClockWatch
from gateway.pipeline.influx_sink import InfluxConfig
from gateway.pipeline.journal import Journal
from gateway.records.audit import AuditTrail

runner = CliRunner()
T0 = 1_767_225_600 * 10**9


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A data dir with 10 audit rows and a journal of 4 batches; its config file."""
    d = tmp_path / "data"
    audit = AuditTrail(d / "audit.sqlite")
    for i in range(10):
        audit.record("cli:qa", "user.add", "user", f"u{i}", None, {"i": i}, "setup")
    audit.close()
    j = Journal(d / "journal.sqlite")
    for k in range(4):
        rs = [
            Reading("coldchain", {"device": "d1"}, {"temp_c": 4.0 + i}, T0 + (k * 10 + i) * 10**9)
            for i in range(3)
        ]
        j.append(rs, [])
    j.close()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(yaml.safe_dump({"gateway": {"name": "gw", "data_dir": str(d)}}))
    yield d, cfg


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"VIGIL_DATA_DIR": None, "VIGIL_CONFIG": None})
    return result.exit_code, result.output


def test_truncating_the_newest_3_audit_rows_is_detected_against_the_anchor(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    d, cfg = data
    make_backup(d, tmp_path / "backup", gateway="gw")  # the anchor: its MANIFEST.json
    code, out = cli("audit", "verify", "-c", str(cfg), "--anchor", str(tmp_path / "backup"))
    assert code == 0 and "anchor OK: audit row 10 matches" in out
    db = sqlite3.connect(d / "audit.sqlite")  # someone with the file drops the guard
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DELETE FROM audit WHERE seq > 7")
    db.commit()
    db.close()
    code, out = cli("audit", "verify", "-c", str(cfg))
    assert code == 0 and "7 rows" in out  # alone, a shorter chain is still a valid chain
    code, out = cli("audit", "verify", "-c", str(cfg), "--anchor", str(tmp_path / "backup"))
    assert code == 1
    assert "audit trail TRUNCATED" in out and "the newest 3 rows are missing" in out


def test_cut_journal_batches_are_detected_against_the_anchor(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    d, cfg = data
    make_backup(d, tmp_path / "backup", gateway="gw")
    db = sqlite3.connect(d / "journal.sqlite")
    db.execute("DELETE FROM readings WHERE id > 6")
    db.execute("DELETE FROM chain WHERE seq > 2")
    db.commit()
    db.close()
    code, out = cli("journal", "verify", "-c", str(cfg))
    assert code == 0 and "head batch 2" in out
    code, out = cli("journal", "verify", "-c", str(cfg), "--anchor", str(tmp_path / "backup"))
    assert code == 1 and "the newest 2 batches are missing" in out


def test_journal_verify_names_the_batch_of_a_changed_reading(data: tuple[Path, Path]) -> None:
    d, cfg = data
    code, out = cli("journal", "verify", "-c", str(cfg))
    assert code == 0 and "4 batches, 12 readings" in out
    db = sqlite3.connect(d / "journal.sqlite")
    db.execute("UPDATE readings SET line = replace(line, 'temp_c=5.0', 'temp_c=3.0') WHERE id = 8")
    db.commit()
    db.close()
    code, out = cli("journal", "verify", "-c", str(cfg))
    assert code == 1
    assert "BROKEN at batch 3 (readings 7..9" in out and "a reading was changed" in out


def test_backup_and_restore_refuse_non_empty_targets(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    d, cfg = data
    code, out = cli("backup", str(tmp_path / "b1"), "-c", str(cfg))
    assert code == 0, out
    code, out = cli("backup", str(tmp_path / "b1"), "-c", str(cfg))
    assert code == 1 and "not empty" in out
    code, out = cli("restore", str(tmp_path / "b1"), "--data-dir", str(d))
    assert code == 2 and "not empty" in out
    code, out = cli("backup", "verify", str(tmp_path / "b1"))
    assert code == 0 and "backup OK" in out
    (tmp_path / "b1" / "stores" / "audit.sqlite").write_bytes(b"garbage")
    code, out = cli("backup", "verify", str(tmp_path / "b1"))
    assert code == 1 and "audit.sqlite: SHA-256 differs" in out


def offsets(watch: ClockWatch, device: str, now: int, offs_s: list[float]) -> None:
    """One batch per offset, a minute apart, the last one received at `now`."""
    for k, o in enumerate(offs_s):
        at = now - (len(offs_s) - 1 - k) * 60 * 10**9
        watch.observe([Reading("coldchain", {"device": device}, {"t": 1.0}, at - int(o * 1e9), at)])


@given(
    clock=st.floats(-3600, 3600),
    delays=st.lists(st.lists(st.floats(0, 30), min_size=5, max_size=8), min_size=3, max_size=9),
    upload_age=st.floats(600, 86_400),
)
def test_skew_is_the_device_clock_offset_whatever_the_delays_and_uploads(
    clock: float, delays: list[list[float]], upload_age: float
) -> None:
    """Each device's freshest reading bounds its offset; buffered uploads never move the
    median; the result is the clock offset plus at most the smallest delay seen."""
    now = T0
    watch = ClockWatch(window_s=600, min_devices=3)
    for i, ds in enumerate(delays):
        offsets(watch, f"d{i}", now, [clock + upload_age] + [clock + d for d in ds])
    skew = watch.skew_s(now)
    assert skew is not None
    assert clock - 1e-6 <= skew <= clock + max(min(ds) for ds in delays) + 1e-6


def test_skew_needs_enough_devices_heard_long_enough_and_forgets_old_ones() -> None:
    watch = ClockWatch(window_s=300, min_devices=2)
    offsets(watch, "a", T0, [5, 5, 5, 5])
    assert watch.skew_s(T0) is None  # one device
    offsets(watch, "b", T0, [7, 7, 7, 7])
    assert watch.skew_s(T0) == 6
    assert watch.skew_s(T0 + 301 * 10**9) is None  # both out of the window
    burst = ClockWatch(window_s=300, min_devices=2)  # a backlog replayed in seconds
    for dev in ("a", "b", "c"):
        burst.observe([Reading("coldchain", {"device": dev}, {"t": 1.0}, T0 - 3600 * 10**9, T0)])
    assert burst.skew_s(T0) is None


def test_next_backup_is_at_the_local_time_of_its_zone(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "gateway": {
                "data_dir": str(tmp_path),
                "backup": {"destination": str(tmp_path / "b"), "at": "02:30"},
            },
            "api": {"enabled": False},
        },
        "f",
        env={},
    )
    gw = Gateway(cfg)
    try:
        # 2026-03-01 17:00 UTC is 01:00 in Shanghai: the next 02:30 there is 18:30 UTC
        at = gw.next_backup_at(datetime(2026, 3, 1, 17, 0, tzinfo=UTC))
        assert at.astimezone(UTC) == datetime(2026, 3, 1, 18, 30, tzinfo=UTC)
        at = gw.next_backup_at(datetime(2026, 3, 1, 19, 0, tzinfo=UTC))
        assert at.astimezone(UTC) == datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
    finally:
        gw.records.close()
        gw.journal.close()


class _FluxStandIn(BaseHTTPRequestHandler):
    """InfluxDB's /api/v2/query as its API reference documents it: Flux in, annotated CSV
    out (one table per field after `last()`)."""

    seen: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.seen.append(body)
        if self.headers.get("Authorization") != "Token tok":
            self.send_response(401)
            self.end_headers()
            return
        rows = [
            ("0", "audit_seq", "42", "long"),
            ("1", "audit_hash", "ab" * 32, "string"),
            ("2", "journal_batch", "9", "long"),
            ("3", "journal_hash", "cd" * 32, "string"),
        ]
        out = []
        for table, fld, value, kind in rows:
            out += [
                f"#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,{kind},"
                "string,string,string",
                "#group,false,false,true,true,false,false,true,true,true",
                "#default,_result,,,,,,,,",
                ",result,table,_start,_stop,_time,_value,_field,_measurement,gateway",
                f",,{table},1970-01-01T00:00:00Z,2026-03-01T00:00:00Z,2026-02-28T23:00:00Z,"
                f"{value},{fld},audit_head,gw-1",
                "",
            ]
        data = "\r\n".join(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_anchor_is_read_back_from_influxdb_with_flux() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FluxStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        a = from_influx(InfluxConfig(url=url, token="tok", org="o", bucket="vigil"), "gw-1")
        assert (a.audit_seq, a.audit_hash, a.journal_batch) == (42, "ab" * 32, 9)
        assert "2026-02-28T23:00:00+00:00" in a.source
        flux = json.loads(_FluxStandIn.seen[-1])["query"]
        assert 'r._measurement == "audit_head"' in flux and 'r.gateway == "gw-1"' in flux
        with pytest.raises(AnchorError, match="InfluxDB"):
            from_influx(InfluxConfig(url=url, token="wrong", org="o", bucket="vigil"), "gw-1")
    finally:
        server.shutdown()
        server.server_close()


def test_anchor_reading_carries_both_heads(tmp_path: Path) -> None:
    cfg = load_config(None, env={"VIGIL_DATA_DIR": str(tmp_path)})
    cfg.api.enabled = False
    gw = Gateway(cfg)
    try:
        gw.records.audit.record("x", "a", "e", "1")
        gw.journal.append([Reading("coldchain", {"device": "d"}, {"t": 1.0}, time.time_ns())], [])
        r = gw.anchor_reading()
        assert r.measurement == "audit_head"
        assert r.fields["audit_seq"] == 1 and r.fields["journal_batch"] == 1
        assert r.fields["audit_hash"] == gw.records.audit.head()[1]
        assert r.fields["journal_hash"] == gw.journal.head()[1]
    finally:
        gw.records.close()
        gw.journal.close()
