"""What a lot's stability budget and chain cost to work out, from all of its readings.

A storage leg of `--days` days with two loggers at a reading every 5 minutes (the GSP storage
cadence is 30 min: this is six times denser). The budget tracker works a lot out again from all its
readings whenever the lot's record changes, so this is the cost paid per lot per
`traceability.budget_interval_s` while readings arrive. Medians over --runs.

    .venv/bin/python bench/lot_budget.py [--days 60] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alert_rules import RulesConfig  # noqa: E402
from gateway.core.reading import Reading  # noqa: E402
from gateway.records import Records  # noqa: E402
from gateway.records.budgets import BudgetTracker  # noqa: E402
from gateway.records.reports.chain import chain_for  # noqa: E402

S = 10**9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    library = RulesConfig().library()
    now = time.time_ns()
    t0 = now - args.days * 86_400 * S
    budget_s: list[float] = []
    chain_s: list[float] = []
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        records = Records.open(Path(tmp))
        records.lots.create_lot("L1", "vaccine", "vaccine_2_8", date(2030, 1, 1), "bench")
        records.lots.open_leg(
            ["L1"], "storage", "room", "bench", site="wh", started_at_ns=t0, reason="bench"
        )
        readings = [
            Reading(
                "coldchain",
                {"site": "wh", "asset": "room", "device": f"lg{k}"},
                {"temp_c": 5.0 + (i % 7)},
                t0 + i * 300 * S,
                now,
            )
            for i in range(args.days * 288)
            for k in range(2)
        ]
        n = len(readings)
        records.lots.enrich(readings)
        records.lots.record(readings)
        tracker = BudgetTracker(records.lots, library)
        for _ in range(args.runs):
            records.lots.mark_recent_dirty()
            t = time.perf_counter()
            tracker.readings(now)
            budget_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            chain_for(records.lots, "L1", library, now_ns=now)
            chain_s.append(time.perf_counter() - t)
        records.close()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"command: .venv/bin/python bench/lot_budget.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{args.days} days, {n:,} readings (2 loggers, 5 min), median of {args.runs}:")
    print(f"| budget of the lot | {statistics.median(budget_s) * 1000:.0f} ms |")
    print(f"| chain of the lot | {statistics.median(chain_s) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
