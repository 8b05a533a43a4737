"""What storing notifications costs the rules engine: `engine.process()` of a reading that raises
an alarm, with and without a notifier attached (three SMS numbers, a DingTalk group and a
webhook: five outbox rows in the transition's transaction), commit included (the alert store is
`synchronous=FULL`). Interleaved runs, medians, so the comparison holds on a shared machine.

    .venv/bin/python bench/outbox.py [--alarms 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alert_rules import AlertStore, ManualClock, RulesConfig, RulesEngine  # noqa: E402
from gateway.core.reading import Reading  # noqa: E402
from gateway.notifiers import Notifier, NotifiersConfig  # noqa: E402

S = 1_000_000_000
T0 = 1_763_798_400 * S
ENV = {"A": "a", "B": "b", "T": "t", "K": "k", "H": "h"}
CHANNELS = {
    "sms": {"kind": "aliyun_sms", "access_key_id_env": "A", "access_key_secret_env": "B",
            "sign_name": "x", "template_code": "SMS_1", "max_queue": 1_000_000,
            "phone_numbers": ["13800000001", "13800000002", "13800000003"]},
    "ding": {"kind": "dingtalk", "access_token_env": "T", "secret_env": "K",
             "max_queue": 1_000_000},
    "hook": {"kind": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "H",
             "max_queue": 1_000_000},
}  # fmt: skip


def run(with_notifier: bool, alarms: int) -> list[float]:
    path = Path(tempfile.mkdtemp(prefix="vigil-bench-")) / "alerts.sqlite"
    rules = RulesConfig.model_validate({"bindings": [{"site": "wh1", "profile": "vaccine_2_8"}]})
    engine = RulesEngine(rules, AlertStore(path), ManualClock(T0))
    if with_notifier:
        config = NotifiersConfig.model_validate(
            {
                "channels": CHANNELS,
                "routes": {"gsp": {"channels": list(CHANNELS), "sites": ["wh1"]}},
            }
        )
        Notifier(config, engine.store, env=ENV).attach(engine.alerts)
    took = []
    for i in range(alarms):
        tags = {"site": "wh1", "asset": f"fridge-{i}", "device": f"lg-{i}"}
        engine.process([Reading("coldchain", tags, {"temp_c": 5.0}, T0, T0)])
        t = time.perf_counter()
        events = engine.process([Reading("coldchain", tags, {"temp_c": 9.0}, T0 + S, T0 + S)])
        took.append(time.perf_counter() - t)
        assert len(events) == 1
    engine.store.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alarms", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    without: list[float] = []
    with_: list[float] = []
    for _ in range(args.rounds):
        without += run(False, args.alarms)
        with_ += run(True, args.alarms)
    for label, xs in (("without notifier", without), ("with notifier, 5 rows", with_)):
        xs.sort()
        print(
            f"{label:24} median {statistics.median(xs) * 1e3:.2f} ms   "
            f"p90 {xs[int(len(xs) * 0.9)] * 1e3:.2f} ms   n={len(xs)}"
        )


if __name__ == "__main__":
    main()
