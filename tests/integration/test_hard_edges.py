"""Issue 14 end to end: no single message, timestamp or tag value may stop ingest or lose a reading.

Real Mosquitto, real VictoriaMetrics, the real `vigil run`:
- each poison kind, published between good readings, is dead-lettered with its reason while every
  good reading lands with exact tags, and the collector is never restarted;
- arbitrary Unicode tag values survive encode -> VictoriaMetrics -> read back;
- a journal with a small size budget fills under load: the 80 % / 95 % / full alerts are raised
  and reach a webhook; SIGTERM while full stops within 10 s, and what was not committed comes
  back from the broker on the next start: nothing is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_rules import AlertStore
from gateway.api.context import TOKEN_KEY_FILE
from gateway.api.tokens import TokenSigner, load_or_create_key
from gateway.core.lineprotocol import encode
from gateway.core.reading import Reading
from gateway.records import Records
from gateway.records.users import Role
from tests.api_rig import FAST_HASHER
from tests.gateway_proc import GatewayProcess, Publisher
from tests.gateway_proc import diff as _diff
from tests.services import VictoriaMetrics, free_port, poll

pytestmark = pytest.mark.integration

SECRET = "health-webhook-secret"


# -- helpers --------------------------------------------------------------------------------------


def vm_series(vm: VictoriaMetrics) -> dict[tuple[str, str, str], set[int]]:
    """(site, asset, device) -> timestamps (ms) of coldchain_temp_c."""
    out: dict[tuple[str, str, str], set[int]] = {}
    for row in vm.export('{__name__="coldchain_temp_c"}'):
        m = row["metric"]
        assert isinstance(m, dict)
        key = (m.get("site", ""), m.get("asset", ""), m.get("device", ""))
        out.setdefault(key, set()).update(int(t) for t in row["timestamps"])  # type: ignore[union-attr]
    return out


def api_port(gw: GatewayProcess) -> int:
    return int(yaml.safe_load(gw.config_path.read_text())["api"]["port"])


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def viewer_token(gw: GatewayProcess) -> str:
    """A user and a token made in the gateway's data directory before it starts."""
    records = Records.open(gw.data, hasher=FAST_HASHER)
    try:
        records.users.add("viewer1", "Vera Viewer", Role.VIEWER, "viewer-password-1")
        signer = TokenSigner(load_or_create_key(gw.data / TOKEN_KEY_FILE))
        return signer.issue("viewer1")[0]
    finally:
        records.close()


def restarts(gw: GatewayProcess) -> dict[str, float]:
    """Supervised task restarts, from the gateway's own /metrics."""
    status, text = http_get(f"http://127.0.0.1:{api_port(gw)}/metrics")
    assert status == 200
    out = {}
    for line in text.splitlines():
        if line.startswith("vigil_task_restarts") and "{" in line:
            task = line.split('task="', 1)[1].split('"', 1)[0]
            out[task] = float(line.rsplit(" ", 1)[1])
    return out


# -- every poison kind, followed by good readings ------------------------------------------------

UNICODE_DEVICE = "冷藏🧊 e\u0301=\"',\\\u200b\ue000ᚠ٣"
"""Letters of several scripts, an emoji, a combining mark, quote, comma, equals sign, backslash,
a zero-width space (Cf) and a private-use character (Co): all legal in a topic and a tag."""


def test_poison_messages_are_dead_lettered_and_every_good_reading_lands(
    mosquitto, victoria, make_gateway
):
    lp_sub = {"topic": "lp/{device}", "format": "line_protocol", "precision": "ms"}
    gw = make_gateway(
        mosquitto.url,
        victoria.url,
        collectors=[{"kind": "mqtt", "max_future_skew_s": 300, "subscriptions": [{}, lp_sub]}],
    )
    token = viewer_token(gw)
    gw.start()
    t0 = int(time.time() * 1000) - 3_600_000
    clock = iter(range(t0, t0 + 10_000_000, 10))
    msgs: list[tuple[str, bytes]] = []
    expected: dict[tuple[str, str, str], set[int]] = {}

    def good(site: str, asset: str, device: str, n: int = 3) -> None:
        for _ in range(n):
            ts = next(clock)
            body = orjson.dumps({"ts": ts, "temp_c": 4.5, "rh_pct": 40.0})
            msgs.append((f"vigil/{site}/{asset}/{device}/telemetry", body))
            expected.setdefault((site, asset, device), set()).add(ts)

    now_ms = next(clock)
    good_entry = {"ts": now_ms, "temp_c": 5.0}
    deep_entry = b"[" * 900 + b"]" * 900  # within orjson's 1024 levels: only the entry is refused
    deeper = b"[" * 5000 + b"]" * 5000  # beyond any parser here: the message is refused whole
    p = "vigil/s/a/p"
    poisons: list[tuple[str, bytes, str]] = [
        ("vigil/s/a/p1/telemetry", b"[" * 100_000 + b"]" * 100_000, "JSON nested too deep"),
        (
            "vigil/s/a/p2/telemetry",
            b'{"readings": [' + orjson.dumps(good_entry) + b", " + deep_entry + b"]}",
            "readings[1]: entry must be an object, got list",
        ),
        (
            "vigil/s/a/p3/telemetry",
            b'{"readings": [' + orjson.dumps(good_entry) + b", " + deeper + b"]}",
            "JSON nested too deep",
        ),
        ("vigil/s/a/p4/telemetry", b'{"ts": 1e303, "temp_c": 5}', "end of the stored time range"),
        (
            "vigil/s/a/p5/telemetry",
            b'{"ts": "0001-01-01T00:00:00+14:00", "temp_c": 5}',
            "(min_event_time)",
        ),
        (f"{p}6/telemetry", b'{"ts": "1000-01-01T00:00:00Z", "temp_c": 5}', "(min_event_time)"),
        (f"{p}7/telemetry", b'{"ts": "0000-01-01T00:00:00Z", "temp_c": 5}', "not ISO 8601"),
        (
            "vigil/s/a/p8/telemetry",
            b'{"ts": %d, "temp_c": 18446744073709551616}' % now_ms,
            "out of range (beyond int64)",
        ),
        (f"{p}9/telemetry", b'{"ts": %d, "temp_c": 1%s}' % (now_ms, b"0" * 400), "out of range"),
        ("vigil/s/a/p10/telemetry", b'{"ts": %d, "temp_c": NaN}' % now_ms, "not a finite number"),
        (
            "lp/p11",
            b"coldchain,site=s,asset=a n=9223372036854775808i %d" % now_ms,
            "outside the int64 range",
        ),
        (
            "lp/p12",
            b"coldchain,site=s,asset=a\tb temp_c=1 %d" % now_ms,
            "tag 'asset' contains a control character (U+0009)",
        ),
    ]  # fmt: skip
    expected[("s", "a", "p2")] = {now_ms}  # the good entry beside p2's refused one lands
    for i, (topic, payload, _) in enumerate(poisons):
        msgs.append((topic, payload))
        good("s", "a", f"after-{i}")
    good("odd-site", "a", "trail\\")
    good("site-trail\\", "a", "dev-st")
    good("s", "a", "b\\,c")
    good("s", "a", UNICODE_DEVICE)
    pub = Publisher(mosquitto.port, client_id=f"poison-{uuid.uuid4().hex[:8]}")
    pub.publish_all(msgs)
    poll(
        lambda: vm_series(victoria) == expected,
        60,
        what="every good reading, tags exact",
        show=lambda: _diff(
            {"|".join(k): v for k, v in vm_series(victoria).items()},
            {"|".join(k): v for k, v in expected.items()},
        ),
    )
    poll(
        lambda: gw.query("SELECT COUNT(*) FROM dead_letters")[0][0] >= len(poisons),
        20,
        what="every poison dead-lettered",
    )
    rows = gw.query("SELECT source, reason FROM dead_letters ORDER BY id")
    assert len(rows) == len(poisons)
    for (topic, _, why), (source, reason) in zip(poisons, rows, strict=True):
        assert source == topic and why in reason, (topic, reason)
    # the collector was never restarted: nothing escaped its loop
    assert restarts(gw).get("collector:mqtt:0") == 0
    assert b"task failed; restarting" not in gw.log.read_bytes()
    # the API shows the devices, odd names included, and never fails
    base = f"http://127.0.0.1:{api_port(gw)}/api/v1"
    status, body = http_get(f"{base}/devices", token)
    assert status == 200, body
    names = {d["device"] for d in json.loads(body)}
    assert {"trail\\", "b\\,c", UNICODE_DEVICE, "dev-st"} <= names
    status, body = http_get(f"{base}/readings/latest", token)
    assert status == 200, body
    assert gw.alive()
    assert gw.stop() == 0
    pub.close()


# -- tag values through a real line-protocol parser ----------------------------------------------

tag_values = st.text(
    st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cf", "Co", "Cn"]),
    min_size=1,
    max_size=16,
) | st.lists(st.sampled_from(["\\", ",", "=", " ", '"', "\\\\", "é", "🧊"]), min_size=1).map(
    "".join
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(tag_values, min_size=1, max_size=150))
def test_unicode_tag_values_round_trip_through_victoriametrics(victoria, values):
    """What the encoder writes, VictoriaMetrics (which follows the line-protocol reference) reads
    back exactly: trailing backslashes, backslashes before commas, every category but Cc."""
    run = uuid.uuid4().hex
    t0 = 1_700_000_000_000_000_000
    lines = [
        encode(
            Reading("rt", {"device": v, "i": str(i), "run": run, "site": "x"}, {"v": 1.0}, t0 + i)
        )
        for i, v in enumerate(values)
    ]
    req = urllib.request.Request(f"{victoria.url}/write", data="\n".join(lines).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    rows = victoria.export(f'{{__name__="rt_v", run="{run}"}}')
    got = {int(r["metric"]["i"]): r["metric"] for r in rows}  # type: ignore[index]
    assert {i: (m["device"], m["site"]) for i, m in got.items()} == {
        i: (v, "x") for i, v in enumerate(values)
    }


# -- a full journal: alerts, SIGTERM, nothing lost -----------------------------------------------


class Hooks:
    """A webhook receiver in a thread: the signed JSON documents the notifier posts."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Vigil-Signature", ""), want)
                if ok:
                    hooks.docs.append(json.loads(body))
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def raised(self) -> set[str]:
        return {d["rule"] for d in self.docs if d["event"] == "raised"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def health_alerts(gw: GatewayProcess) -> dict[str, Any]:
    path = gw.data / "alerts.sqlite"
    if not path.exists():
        return {}
    store = AlertStore(path)
    try:
        return {a.rule: a for a in store.list_alerts() if a.rule.startswith("gateway_health.")}
    finally:
        store.close()


def test_full_journal_alerts_reach_a_webhook_and_sigterm_loses_nothing(
    mosquitto, victoria, make_gateway
):
    hooks = Hooks()
    notifiers = {
        "channels": {
            "ops": {
                "kind": "webhook",
                "url": f"http://127.0.0.1:{hooks.port}/hook",
                "secret_env": "VIGIL_WEBHOOK_SECRET",
                "recipients": ["+15550100"],
                "retry_min_s": 0.1,
                "retry_max_s": 0.5,
            }
        },
        "routes": {"health": {"rules": ["gateway_health.*"], "channels": ["ops"]}},
    }
    gw = make_gateway(
        mosquitto.url,
        victoria.url,
        journal={"max_bytes": 160_000, "retention_hours": 0},
        collectors=[{"kind": "mqtt", "max_future_skew_s": 300, "max_batch_messages": 5}],
        notifiers=notifiers,
    )
    gw.env_extra["VIGIL_WEBHOOK_SECRET"] = SECRET
    victoria.stop()  # InfluxDB unreachable: nothing is forwarded, nothing can be pruned
    gw.start()
    t0 = int(time.time() * 1000) - 3_600_000
    msgs: list[tuple[str, bytes]] = []
    expected: dict[str, set[int]] = {}
    for m in range(400):  # 4000 readings: about three times the budget
        dev = f"lg{m % 8:03d}"
        entries = [{"ts": t0 + (m * 10 + k) * 10, "temp_c": 4.0, "rh_pct": 40.0} for k in range(10)]
        expected.setdefault(dev, set()).update(e["ts"] for e in entries)
        msgs.append((f"vigil/site1/room1/{dev}/telemetry", orjson.dumps({"readings": entries})))
    pub = Publisher(mosquitto.port, client_id=f"fill-{uuid.uuid4().hex[:8]}")
    pub.publish_all(msgs)  # the broker has them all; the gateway takes what fits
    rules = {f"gateway_health.{r}" for r in ("journal_80", "journal_95", "journal_full")}
    poll(lambda: set(health_alerts(gw)) == rules, 60, what="the three journal alerts raised",
         show=lambda: sorted(health_alerts(gw)))  # fmt: skip
    alerts = health_alerts(gw)
    assert str(alerts["gateway_health.journal_80"].severity) == "medium"
    assert str(alerts["gateway_health.journal_95"].severity) == "high"
    assert str(alerts["gateway_health.journal_full"].severity) == "critical"
    assert alerts["gateway_health.journal_full"].message == (
        "journal full: readings are not being acknowledged"
    )
    assert alerts["gateway_health.journal_80"].source == "test-gw"
    poll(lambda: hooks.raised() == rules, 30, what="the alerts at the webhook", show=hooks.raised)
    full = next(d for d in hooks.docs if d["rule"] == "gateway_health.journal_full")
    assert full["severity"] == "critical" and full["recipients"] == ["+15550100"]
    status, body = http_get(f"http://127.0.0.1:{api_port(gw)}/ready")
    assert status == 503 and "journal full" in body
    journaled = gw.query("SELECT COUNT(*) FROM readings WHERE line LIKE 'coldchain,%'")[0][0]
    assert 0 < journaled < 4000
    used = gw.query("PRAGMA page_count")[0][0] - gw.query("PRAGMA freelist_count")[0][0]
    assert used * 4096 <= 160_000 + 4 * 4096  # the budget holds (+ the gateway's exempt rows)
    # SIGTERM while full and the store down: a clean stop within 10 s
    started = time.monotonic()
    assert gw.stop() == 0
    took = time.monotonic() - started
    print(f"SIGTERM with the journal full and the sink down: stopped in {took:.2f} s")
    assert took < 10.0
    after = gw.query("SELECT COUNT(*) FROM readings WHERE line LIKE 'coldchain,%'")[0][0]
    assert after < 4000  # what did not fit was not committed (and not acknowledged)
    # next start, store back: the backlog drains, pruning frees room, the broker redelivers
    victoria.start()
    gw.start()
    poll(
        lambda: _by_device(victoria) == expected,
        120,
        what="every reading published, after the restart",
        show=lambda: _diff(_by_device(victoria), expected),
    )
    poll(
        lambda: all(a.cleared_at for a in health_alerts(gw).values()),
        30,
        what="the journal alerts cleared",
        show=lambda: {r: (a.cleared_at, a.value) for r, a in health_alerts(gw).items()},
    )
    assert gw.stop() == 0
    pub.close()
    hooks.close()


def _by_device(vm: VictoriaMetrics) -> dict[str, set[int]]:
    return {k[2]: v for k, v in vm_series(vm).items()}
