"""The gateway process collects garbage less often and leaves its start-up objects alone."""

from __future__ import annotations

import subprocess
import sys

from gateway.cli import GC_THRESHOLDS


def test_settle_gc_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    code = (
        "import gc\n"
        "from gateway.cli import _settle_gc\n"
        "before = gc.get_freeze_count()\n"
        "_settle_gc()\n"
        "print(before, gc.get_freeze_count(), *gc.get_threshold())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    before, frozen, *thresholds = (int(x) for x in out)
    assert before == 0 and frozen > 10_000  # every module, model and config object made so far
    assert tuple(thresholds) == GC_THRESHOLDS
