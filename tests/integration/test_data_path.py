"""The cold-chain data path end to end: real Mosquitto, real VictoriaMetrics, the real `vigil run`.

Each test asserts exact sets of timestamps per series: nothing lost, nothing invented.
"""

from __future__ import annotations

import threading
import time

import orjson

from tests.gateway_proc import Publisher, logger_messages, vm_by_device
from tests.gateway_proc import diff as _diff
from tests.services import poll


def _publish_in_background(pub: Publisher, msgs, rate: float):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def go() -> None:
        try:
            pub.publish_all(msgs, rate=rate)
        except BaseException as e:  # surfaced by the test
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, errors


def test_single_and_batch_payloads_all_land(mosquitto, victoria, make_gateway):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    single, expected = logger_messages(300, devices=6, batch=1)
    batches, expected_b = logger_messages(40, devices=4, batch=100, t0_ms=1_700_000_000_000)
    for dev, ts in expected_b.items():
        expected.setdefault(dev, set()).update(ts)
    pub = Publisher(mosquitto.port)
    pub.publish_all(single + batches)
    poll(lambda: vm_by_device(victoria) == expected, 30, what="every reading in VictoriaMetrics")
    # rh_pct travels with temp_c in the same points
    assert vm_by_device(victoria, "rh_pct") == expected
    assert gw.query("SELECT COUNT(*) FROM dead_letters")[0][0] == 0

    # the gateway's own counters arrive as measurement vigil_gateway
    def journaled_counter() -> float:
        rows = victoria.export('{__name__="vigil_gateway_journaled", gateway="test-gw"}')
        return max((v for r in rows for v in r["values"]), default=0)

    poll(
        lambda: journaled_counter() >= 300 + 40 * 100,
        20,
        what="vigil_gateway counters",
        show=journaled_counter,
    )
    assert gw.stop() == 0
    pub.close()


def test_kill9_mid_stream_loses_nothing(mosquitto, victoria, make_gateway):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    msgs, expected = logger_messages(6000, devices=10)
    pub = Publisher(mosquitto.port)
    thread, errors = _publish_in_background(pub, msgs, rate=2000)
    poll(lambda: gw.journaled() > 1500, 30, what="gateway mid-stream")
    gw.kill9()
    time.sleep(0.5)  # let messages pile up at the broker while the gateway is dead
    gw.start()
    thread.join(60)
    assert not errors
    poll(lambda: vm_by_device(victoria) == expected, 60, what="every reading after kill -9")
    assert gw.stop() == 0
    pub.close()


def test_store_outage_backlog_drains(mosquitto, victoria, make_gateway):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    msgs, expected = logger_messages(4000, devices=8)
    pub = Publisher(mosquitto.port)
    thread, errors = _publish_in_background(pub, msgs, rate=150)
    poll(lambda: gw.journaled() > 300, 30, what="gateway mid-stream")
    victoria.stop()
    outage_start = time.monotonic()
    poll(lambda: time.monotonic() - outage_start >= 20, 25, what="20 s of store outage")
    backlog_during = gw.journaled()
    victoria.start()
    thread.join(60)
    assert not errors
    poll(lambda: vm_by_device(victoria) == expected, 60, what="backlog drained after outage")
    assert backlog_during > 300 + 150 * 15  # readings kept arriving into the journal meanwhile
    assert gw.alive()
    assert gw.stop() == 0
    pub.close()


def test_broker_restart_mid_stream_without_gateway_restart(mosquitto, victoria, make_gateway):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    pid = gw.proc.pid  # type: ignore[union-attr]
    msgs, expected = logger_messages(4000, devices=8)
    pub = Publisher(mosquitto.port)
    thread, errors = _publish_in_background(pub, msgs, rate=800)
    poll(lambda: gw.journaled() > 1000, 30, what="gateway mid-stream")
    mosquitto.restart()
    thread.join(90)
    assert not errors
    poll(lambda: vm_by_device(victoria) == expected, 60, what="every reading after broker restart")
    assert gw.alive() and gw.proc.pid == pid  # type: ignore[union-attr]
    assert b"MQTT connection lost; reconnecting" in gw.log.read_bytes()
    assert gw.stop() == 0
    pub.close()


BAD = [
    (b"{not json", "malformed JSON"),
    (b'{"ts": 1700000000000, "temp_c": "warm"}', "expected a number"),
    (b'{"ts": 1700000000000, "temp_c": NaN}', "not a finite number"),
    (b'{"ts": 1700000000000, "temp_c": Infinity}', "not a finite number"),
    (b'{"ts": 1700000000000}', "no known field"),
    (b'{"ts": 99999999999999, "temp_c": 5.0}', "ahead of the gateway clock"),
    (b'{"ts": "yesterday", "temp_c": 5.0}', "not ISO 8601"),
    (b'{"ts": 1700000000000, "door_open": "yes"}', "expected true/false"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b'{"readings": 5}', "must be a list"),
    (b"x" * 300_000, "exceeds max_payload_bytes"),
]


def test_malformed_flood_interleaved_with_good(mosquitto, victoria, make_gateway):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    good, expected = logger_messages(600, devices=4)
    # a batch mixing good and bad entries: the good ones still land
    mixed_ts = 1_690_000_000_000
    mixed = orjson.dumps(
        {
            "readings": [
                {"ts": mixed_ts, "temp_c": 4.0},
                {"ts": mixed_ts + 1, "temp_c": "x"},
                {"ts": mixed_ts + 2, "temp_c": 5.0},
            ]
        }
    )
    expected.setdefault("mixdev", set()).update({mixed_ts, mixed_ts + 2})
    msgs: list[tuple[str, bytes]] = [("vigil/s/a/mixdev/telemetry", mixed)]
    bad_count = 1  # the bad entry of the mixed batch
    for i, (topic, payload) in enumerate(good):
        msgs.append((topic, payload))
        body, _ = BAD[i % len(BAD)]
        msgs.append((f"vigil/s/a/bad{i % 3}/telemetry", body))
        bad_count += 1
        if i % 50 == 0:  # passes the broker's filter, but an empty segment names no asset
            msgs.append(("vigil/s//dev/telemetry", b'{"temp_c": 1.0}'))
            bad_count += 1
    pub = Publisher(mosquitto.port)
    pub.publish_all(msgs)
    poll(
        lambda: vm_by_device(victoria) == expected,
        40,
        what="every good reading",
        show=lambda: _diff(vm_by_device(victoria), expected),
    )
    poll(
        lambda: gw.query("SELECT COUNT(*) FROM dead_letters")[0][0] == bad_count,
        20,
        what="every bad message dead-lettered",
    )
    reasons = [r for (r,) in gw.query("SELECT reason FROM dead_letters")]
    for expected_reason in [r for _, r in BAD] + ["no subscription template matches"]:
        assert any(expected_reason in r for r in reasons), expected_reason
    rows = gw.query("SELECT source, reason FROM dead_letters WHERE source LIKE 'vigil/s/a/mixdev%'")
    assert rows == [
        ("vigil/s/a/mixdev/telemetry", "readings[1]: temp_c: expected a number, got str 'x'")
    ]
    assert gw.alive()
    assert gw.stop() == 0
    pub.close()


def test_sigterm_stops_within_10s_with_store_down_and_loses_nothing(
    mosquitto, victoria, make_gateway
):
    gw = make_gateway(mosquitto.url, victoria.url)
    gw.start()
    victoria.stop()
    msgs, expected = logger_messages(3000, devices=6)
    pub = Publisher(mosquitto.port)
    pub.publish_all(msgs)
    poll(lambda: gw.journaled() >= 3000, 30, what="every reading journaled", show=gw.journaled)
    t0 = time.monotonic()
    assert gw.stop() == 0
    assert time.monotonic() - t0 < 10.0
    victoria.start()
    gw.start()  # the backlog goes out on the next start
    poll(
        lambda: vm_by_device(victoria) == expected,
        60,
        what="backlog forwarded after restart",
        show=lambda: _diff(vm_by_device(victoria), expected),
    )
    assert gw.stop() == 0
    pub.close()
