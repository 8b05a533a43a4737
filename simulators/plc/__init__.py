"""Simulated PLCs (pymodbus servers): autoclave, freeze-dryer, cleanroom HVAC, filling line.

Entry points: `start_plcs(specs, speed)` → running PLCs on loopback ports, `stop_plcs`,
`run_scenario(load_scenario(path))` / `start_scenario` for `vigil simulate`;
`start_plcs(demo_specs())` and `collector_config(plcs)` for `vigil demo`.
"""

from simulators.plc.server import (
    RunningPlc,
    SimClock,
    collector_config,
    run_scenario,
    start_plcs,
    start_scenario,
    stop_plcs,
)
from simulators.plc.spec import FaultSpec, PlcScenario, PlcSpec, demo_specs, load_scenario

__all__ = [
    "FaultSpec",
    "PlcScenario",
    "PlcSpec",
    "RunningPlc",
    "SimClock",
    "collector_config",
    "demo_specs",
    "load_scenario",
    "run_scenario",
    "start_plcs",
    "start_scenario",
    "stop_plcs",
]
