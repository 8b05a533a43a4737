"""The layers hold at import time too: collectors, the rule engine and the dashboards load no part
of the gateway beyond gateway.core (the import-linter contracts in pyproject.toml check the code;
this checks what actually gets imported)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import collectors.mqtt, collectors.modbus, alert_rules, dashboards
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "gateway")))
"""


def test_collectors_rules_and_dashboards_import_only_gateway_core() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "gateway.core" in out
    assert [m for m in out if m != "gateway" and not m.startswith("gateway.core")] == []


def test_the_product_never_loads_the_simulators() -> None:
    probe = "import sys, gateway.app; print(any(m.startswith('simulators') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
