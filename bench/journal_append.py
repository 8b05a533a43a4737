"""Micro-benchmark of `Journal.append`: the journal's commit path, without MQTT or sinks.

Commits batches of logger readings (synchronous=NORMAL, so the disk's fsync does not drown the
difference) and reports the median time per batch and per reading. With `--baseline REF` it also
loads `gateway/pipeline/journal.py` as it was at git REF and runs both, interleaved round by round
in the same process, so the two medians compare like with like on a shared machine.

    .venv/bin/python bench/journal_append.py [--batch 1000] [--batches 200] [--rounds 5]
        [--baseline main]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.core.reading import Reading  # noqa: E402
from gateway.pipeline import journal as current  # noqa: E402


def load_baseline(ref: str) -> ModuleType:
    """gateway/pipeline/journal.py at git `ref`, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:gateway/pipeline/journal.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="vigil-bench-")) / "journal_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("journal_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def batches(n_batches: int, size: int) -> list[list[Reading]]:
    t0 = time.time_ns() - 3_600 * 10**9
    out = []
    k = 0
    for _ in range(n_batches):
        batch = []
        for _ in range(size):
            dev = f"lg{k % 500:04d}"
            batch.append(
                Reading(
                    "coldchain",
                    {"site": "wh1", "asset": f"room{k % 7}", "device": dev},
                    {"temp_c": 2.0 + (k % 60) / 10, "rh_pct": 41.5},
                    t0 + k * 1_000_000,
                )
            )
            k += 1
        out.append(batch)
    return out


def run(module: Any, data: list[list[Reading]]) -> list[float]:
    """Seconds per append, one per batch, on a fresh journal."""
    with tempfile.TemporaryDirectory() as d:
        journal = module.Journal(Path(d) / "journal.sqlite", synchronous="NORMAL")
        times = []
        for batch in data:
            t = time.perf_counter()
            journal.append(batch, ())
            times.append(time.perf_counter() - t)
        journal.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1000, help="readings per append")
    ap.add_argument("--batches", type=int, default=200, help="appends per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", help="git ref of the journal to compare with (e.g. main)")
    args = ap.parse_args()
    data = batches(args.batches, args.batch)
    modules: dict[str, Any] = {"current": current}
    if args.baseline:
        modules = {f"baseline ({args.baseline})": load_baseline(args.baseline), **modules}
    per_batch: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(args.rounds):
        for name, module in modules.items():
            per_batch[name].extend(run(module, data))
    print(f"Journal.append, {args.batch} readings per batch, {args.batches} x {args.rounds}")
    for name, times in per_batch.items():
        med = statistics.median(times)
        print(
            f"  {name:<24} median {med * 1e3:7.3f} ms/batch  "
            f"{med / args.batch * 1e6:6.2f} µs/reading"
        )
    if args.baseline:
        base, cur = (statistics.median(t) for t in per_batch.values())
        print(f"  change: {(cur / base - 1) * 100:+.1f} %")


if __name__ == "__main__":
    main()
