"""Running for years, as an operator does it, with the real gateway process: a backup taken
under load restores every reading committed before it started; SIGHUP and the API reload the
config; systemd's notify protocol; the clock alarm; the anchors reach InfluxDB; the demo works
every time; the service unit verifies; every runtime dependency resolves for ARM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ops_cli import render_unit
from gateway.pipeline.archive import Archive
from gateway.pipeline.journal import verify_chain
from gateway.records.users import UserStore
from tests.gateway_proc import GatewayProcess, Publisher, logger_messages
from tests.services import Mosquitto, VictoriaMetrics, free_port, poll

ROOT = Path(__file__).resolve().parents[2]
VIGIL = [sys.executable, "-m", "gateway.cli"]


def vigil(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return subprocess.run(
        [*VIGIL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


def test_backup_under_load_restores_every_reading_committed_before_it(
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    make_gateway: Callable[..., GatewayProcess],
    tmp_path: Path,
) -> None:
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    msgs, _ = logger_messages(20_000, devices=20, batch=10)
    pub = Publisher(mosquitto.port, client_id="ops-load")
    done, enough = threading.Event(), threading.Event()
    loader = threading.Thread(
        target=lambda: (pub.publish_all(msgs, rate=400, stop=enough), done.set()), daemon=True
    )
    loader.start()
    try:
        poll(lambda: gw.journaled() > 3000, 60, what="readings under load")
        committed = gw.journaled()  # every id up to here is durable before the backup starts
        backup = tmp_path / "backup-1"
        result = vigil("backup", str(backup), "-c", str(gw.config_path))
        assert result.returncode == 0, result.stderr
        assert not done.is_set(), "the load should still be running during the backup"
        assert "journal head batch" in result.stdout
        enough.set()
        poll(done.is_set, 60, what="the load to finish")
        # the anchors went out to InfluxDB through the sink (numbers; VictoriaMetrics drops the
        # string hashes)
        poll(
            lambda: victoria.export('{__name__="audit_head_audit_seq"}'),
            30,
            what="audit_head in InfluxDB",
        )
    finally:
        pub.close()
        assert gw.stop() == 0
    assert cli("backup", "verify", str(backup))[0] == 0
    restored = tmp_path / "restored"
    code, out = cli("restore", str(backup), "--data-dir", str(restored))
    assert code == 0, out
    db = sqlite3.connect(restored / "journal.sqlite")
    got = db.execute(
        "SELECT id, line FROM readings WHERE id <= ? ORDER BY id", (committed,)
    ).fetchall()
    db.close()
    want = gw.query(f"SELECT id, line FROM readings WHERE id <= {committed} ORDER BY id")
    assert len(got) == committed and got == want
    assert verify_chain(restored / "journal.sqlite", Archive(restored / "archive")).ok
    code, out = cli("journal", "verify", data_dir=restored)
    assert code == 0 and "journal chain OK" in out
    code, out = cli("audit", "verify", data_dir=restored)
    assert code == 0, out  # the restore's own audit row chains on
    assert cli("restore", str(backup), "--data-dir", str(restored))[0] == 2


def cli(*args: str, data_dir: Path | None = None) -> tuple[int, str]:
    """A `vigil` command in-process (the commands that need no running gateway)."""
    env = {"VIGIL_CONFIG": None, "VIGIL_DATA_DIR": str(data_dir) if data_dir else None}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _notify_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.5)
    return s


def _messages(sock: socket.socket, seen: list[str]) -> list[str]:
    try:
        while True:
            seen.append(sock.recv(4096).decode())
    except TimeoutError:
        return seen


def _api(port: int, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _rules(high: float) -> dict[str, Any]:
    return {
        "profiles": {
            "cold": {
                "rules": [{"id": "high", "kind": "threshold", "field": "temp_c", "high": high}]
            }
        },
        "bindings": [{"profile": "cold", "site": "s1"}],
    }


def _open(gw: GatewayProcess, rule: str) -> list[Any]:
    path = gw.data / "alerts.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(
            "SELECT id FROM alerts WHERE rule = ? AND state != 'normal'", (rule,)
        ).fetchall()
    finally:
        db.close()


def _rules_evaluated(port: int) -> float:
    """The gateway's count of readings the rules engine has judged (/metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("vigil_rule_readings_evaluated_total "):
            return float(line.split()[1])
    return 0.0


def _audit(gw: GatewayProcess, action: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(gw.data / "audit.sqlite", timeout=10)
    try:
        return db.execute(
            "SELECT actor, reason FROM audit WHERE action = ? ORDER BY seq", (action,)
        ).fetchall()
    finally:
        db.close()


def test_sighup_and_the_api_reload_the_config_and_systemd_hears_of_it(
    mosquitto: Mosquitto, make_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """Also: the clock alarm from the system's time-sync status (timedatectl says `no`)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "timedatectl"
    stub.write_text("#!/bin/sh\necho no\n")
    stub.chmod(0o755)
    port = free_port()
    gw = make_gateway(
        mosquitto.url,
        None,
        api={"port": port},
        rules=_rules(8.0),
        gateway={
            "name": "gw-reload",
            "data_dir": str(tmp_path / "data"),
            "metrics_interval_s": 1,
            "clock": {"sync_check_s": 1},
        },
    )
    users = UserStore(gw.data / "users.sqlite")
    users.add("admin1", "Admin One", "admin", "admin-password-1")
    users.add("viewer1", "Viewer One", "viewer", "viewer-password-1")
    users.close()
    sock = _notify_socket(tmp_path / "notify.sock")
    gw.env_extra = {
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "PATH": f"{bindir}:{os.environ['PATH']}",
    }
    seen: list[str] = []
    pub = Publisher(mosquitto.port, client_id="ops-reload")
    gw.start()
    try:
        poll(lambda: "READY=1" in _messages(sock, seen), 20, what="READY=1 from the gateway")
        poll(lambda: _open(gw, "gateway_health.clock_unsynchronised"), 20, what="clock alarm")
        now_ms = int(time.time() * 1000)
        topic = "vigil/s1/fridge/lg1/telemetry"
        pub.publish_all([(topic, orjson.dumps({"ts": now_ms - 30_000, "temp_c": 7.0}))])
        poll(lambda: _rules_evaluated(port) >= 1, 10, what="the rules stage on the reading")
        assert _open(gw, "cold.high") == []
        cfg = yaml.safe_load(gw.config_path.read_text())
        cfg["rules"] = _rules(6.0)
        gw.config_path.write_text(yaml.safe_dump(cfg))
        seen.clear()
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        poll(
            lambda: (
                ("config reloaded (SIGHUP)",) in [(r,) for _a, r in _audit(gw, "config.change")]
            ),
            20,
            what="the reload in the audit trail",
        )
        assert "RELOADING=1" in _messages(sock, seen) and seen[-1] == "READY=1"
        pub.publish_all([(topic, orjson.dumps({"ts": now_ms - 20_000, "temp_c": 7.0}))])
        poll(lambda: _open(gw, "cold.high"), 20, what="the new threshold on the next reading")
        # the API: admins only; a bad file is refused, the gateway goes on
        code, body = _api(
            port,
            "POST",
            "/auth/login",
            body={"username": "viewer1", "password": "viewer-password-1"},
        )
        assert code == 200
        code, _ = _api(port, "POST", "/api/v1/config/reload", body["access_token"])
        assert code == 403
        code, body = _api(
            port, "POST", "/auth/login", body={"username": "admin1", "password": "admin-password-1"}
        )
        admin = body["access_token"]
        code, body = _api(port, "POST", "/api/v1/config/reload", admin)
        assert code == 200 and body["ok"] and body["changed"] == []
        gw.config_path.write_text(gw.config_path.read_text().replace("high: 6.0", "high: six"))
        code, body = _api(port, "POST", "/api/v1/config/reload", admin)
        assert code == 422 and not body["ok"] and "high" in body["problems"][0]
        assert _audit(gw, "config.reload_refused")[-1][0] == "user:admin1"
        assert gw.alive()
    finally:
        pub.close()
        sock.close()
        assert gw.stop() == 0


def test_demo_twice_on_the_same_data_dir_shows_live_alerts_within_15_s(tmp_path: Path) -> None:
    """`vigil demo --seconds 40`, twice in a row: each run's first live alert within 15 s of
    the simulators starting; then Ctrl-C (it stops cleanly) and the hints name the data dir."""
    for _run in (1, 2):
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_API_PORT"] = str(free_port())
        proc = subprocess.Popen(
            [*VIGIL, "demo", "--seconds", "40", "--plain"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        started: float | None = None
        live: str | None = None
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("vigil demo running"):
                started = time.monotonic()
                assert "data dir data/demo" in line and ("fresh" in line)
            if started is not None and "alert raised (live)" in line:
                live = line
                break
            if time.monotonic() > deadline:
                break
        assert started is not None, "".join(lines[-20:])
        assert live is not None and time.monotonic() - started <= 15, "".join(lines[-20:])
        assert int(live.split("s ", 1)[0].lstrip("+")) <= 15
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-2000:]
        assert "VIGIL_DATA_DIR=data/demo vigil audit verify" in out
        assert "VIGIL_DATA_DIR=data/demo vigil report shipment" in out
        retro = [ln for ln in "".join(lines).splitlines() if "(retrospective)" in ln]
        assert all("truck-01" in ln for ln in retro), retro  # only the truck that was offline
    code, out = cli("audit", "verify", data_dir=tmp_path / "data" / "demo")
    assert code == 0, out


def test_the_service_unit_verifies(tmp_path: Path) -> None:
    """packaging/vigil.service as `vigil service install` writes it, checked by systemd itself
    where systemd-analyze exists (Debian: the systemd package)."""
    unit = render_unit(
        Path(sys.executable).parent / "vigil", tmp_path / "vigil.yaml", tmp_path, "root"
    )
    text = unit
    for needed in ("ProtectSystem=strict", "Restart=on-failure", "WatchdogSec=", "Type=notify"):
        assert needed in text
    assert "User=root" in text and str(tmp_path) in text
    path = tmp_path / "vigil.service"
    path.write_text(text)
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: scripts/system-deps.sh installs it"
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    # systemd only warns about a misspelt or invalid setting: any line about the unit fails
    assert result.returncode == 0 and "vigil.service" not in result.stdout + result.stderr, (
        result.stdout + result.stderr
    )


def test_every_runtime_dependency_resolves_as_an_aarch64_wheel(tmp_path: Path) -> None:
    """`pip install vigil-gateway` on a Raspberry Pi class box (manylinux2014_aarch64,
    CPython 3.11): every runtime dependency has a wheel, nothing needs a compiler there."""
    deps = tomllib_deps()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_aarch64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "-d",
            str(tmp_path),
            *deps,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) >= len(deps)
    native = [w.name for w in wheels if "aarch64" in w.name]
    assert any(n.startswith(("orjson", "pydantic_core")) for n in native), native


def tomllib_deps() -> list[str]:
    import tomllib

    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
