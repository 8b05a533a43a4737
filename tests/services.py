"""Real services for tests: Mosquitto and VictoriaMetrics as child processes on free loopback ports.

Each is started in a temp dir, waited for with a deadline, and stopped on teardown. They can be
stopped and started again mid-test (broker restart, store outage) on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def require(binary: str) -> str:
    for d in (None, "/usr/sbin", "/usr/bin"):
        path = shutil.which(binary, path=d)
        if path:
            return path
    raise RuntimeError(f"{binary} is not installed: run .ci/run (or apt-get install it)")


class Service:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "service.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        assert self.proc is None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Mosquitto(Service):
    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        super().__init__(workdir)
        self.conf = workdir / "mosquitto.conf"
        # mosquitto drops to user "mosquitto" when started as root; pytest's temp dirs are 0700,
        # so its persistence lives in a directory of its own under /tmp that it can reach.
        self.store = Path(tempfile.mkdtemp(prefix="vigil-mosquitto-"))
        if os.geteuid() == 0:
            shutil.chown(self.store, "mosquitto")
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            "persistence true\n"
            f"persistence_location {self.store}/\n"
            "autosave_interval 1\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\n" + extra_config
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [require("mosquitto"), "-c", str(self.conf)]

    def remove(self) -> None:
        shutil.rmtree(self.store, ignore_errors=True)


class VictoriaMetrics(Service):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data = workdir / "vm-data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            require("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"VictoriaMetrics not healthy on {self.url}")

    def export(self, match: str) -> list[dict[str, object]]:
        """All raw samples of the series matching `match` (a PromQL selector)."""

        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).read()
        q = urllib.parse.urlencode({"match[]": match, "start": "0", "reduce_mem_usage": "1"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}", timeout=30) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]

    def samples(self, match: str) -> dict[str, set[int]]:
        """{series name with labels: set of timestamps in ms} for the matching series."""
        out: dict[str, set[int]] = {}
        for row in self.export(match):
            metric = row["metric"]
            assert isinstance(metric, dict)
            key = ",".join(f"{k}={v}" for k, v in sorted(metric.items()))
            out.setdefault(key, set()).update(int(t) for t in row["timestamps"])  # type: ignore[union-attr]
        return out


def poll(
    predicate,
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",  # type: ignore[no-untyped-def]
    show=None,
):
    """Call predicate until it returns a truthy value or the deadline passes.

    `show`, if given, is called on failure to describe the state (a diff, a count).
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    detail = show() if show is not None else repr(last)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {detail}")


class SecureMosquitto(Mosquitto):
    """Mosquitto with TLS and password authentication only: what a production broker looks like."""

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        import trustme

        super().__init__(workdir)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server_pem, server_key = self.store / "server.pem", self.store / "server.key"
        cert.private_key_pem.write_to_path(str(server_key))
        cert.cert_chain_pems[0].write_to_path(str(server_pem))
        ca.cert_pem.write_to_path(str(self.store / "ca.pem"))
        passwd = self.store / "passwd"
        passwd.write_text("")
        for user, password in users.items():
            subprocess.run(
                [require("mosquitto_passwd"), "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        for f in (server_pem, server_key, passwd, self.store / "ca.pem"):
            if os.geteuid() == 0:
                shutil.chown(f, "mosquitto")
            os.chmod(f, 0o600)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {self.store}/ca.pem\ncertfile {server_pem}\nkeyfile {server_key}\n"
            f"password_file {passwd}\nallow_anonymous false\n"
            "max_queued_messages 100000\npersistence false\nlog_dest stdout\nlog_type error\n"
        )

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"


async def apoll(  # type: ignore[no-untyped-def]
    predicate,
    timeout: float = 15.0,  # noqa: ASYNC109 (a polling deadline, like poll's)
    interval: float = 0.02,
    what: str = "condition",
    show=None,
):
    """`poll` for async tests: checks without blocking the event loop under test; the predicate
    may be a coroutine function."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    detail = show() if show is not None else repr(last)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {detail}")


class InfluxDB1(Service):
    """InfluxDB 1.x (Debian's `influxdb`: 1.6, InfluxQL, no /api/v2): data, meta and WAL in the
    work dir, HTTP and the RPC service on loopback, usage reporting off."""

    def __init__(self, workdir: Path, *, auth: bool = False) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(
            "reporting-enabled = false\n"  # Debian's key
            "reporting-disabled = true\n"  # upstream's
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n'
            f"  auth-enabled = {'true' if auth else 'false'}\n  log-enabled = false\n"
            "[ifql]\n  enabled = false\n"
            '[logging]\n  level = "warn"\n  suppress-logo = true\n'
        )
        self.auth: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [require("influxd"), "-config", str(self.conf)]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TimeoutError(f"influxd not answering /ping on {self.url}: {self.log.read_text()}")

    def query(
        self, q: str, db: str | None = None, *, method: str = "GET", **params: str
    ) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON answer) of /query, as Grafana's backend asks (epoch=ms by the
        caller); 400 is a parse error, 200 may still carry a per-statement error."""
        import json

        args = {"q": q, **({"db": db} if db else {}), **params}
        url, data = f"{self.url}/query", None
        if method == "GET":
            url += "?" + urllib.parse.urlencode(args)
        else:
            data = urllib.parse.urlencode(args).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def create_database(self, name: str) -> None:
        status, body = self.query(f'CREATE DATABASE "{name}"', method="POST")
        assert status == 200 and "error" not in body["results"][0], body  # type: ignore[index]
