"""vigil rules engine: rule kinds, event-time timers, MKT, the ISA-18.2 alert lifecycle.

Gateway wiring:

    store = AlertStore(data_dir / "alerts.sqlite")
    engine = RulesEngine(config.rules, store, SystemClock())
    events = engine.process(readings)        # after each journal commit
    events += engine.tick()                  # about once a second
    kpi = engine.kpi_reading()               # Reading | None, write it like any reading
    readings = [r for e in events for r in alert_event_readings(e, gateway="gw-1")]
    readings += engine.drain_readings()      # `cycle` readings of finished production cycles
    engine.list_cycles(device=, batch=, since_ns=), engine.get_cycle(id)   # cycle summaries
"""

from alert_rules.clock import Clock, ManualClock, SystemClock
from alert_rules.config import (
    Binding,
    CompiledRule,
    ProductProfile,
    RuleLibrary,
    RulePack,
    RulesConfig,
    RulesConfigError,
    load_pack,
    load_rules_config,
)
from alert_rules.cycles import Cycle, CycleStore
from alert_rules.engine import RulesEngine, source_of
from alert_rules.influx import alert_event_readings
from alert_rules.kpi import KPI_MEASUREMENT, AlarmKpis
from alert_rules.limits import Band, ProfileLimits
from alert_rules.model import (
    ActionResult,
    Alert,
    AlertActionError,
    AlertEvent,
    AlertNotFound,
    AlertState,
    EventKind,
    Priority,
)
from alert_rules.store import AlertStore

__all__ = [
    "KPI_MEASUREMENT",
    "ActionResult",
    "AlarmKpis",
    "Alert",
    "AlertActionError",
    "AlertEvent",
    "AlertNotFound",
    "AlertState",
    "AlertStore",
    "Band",
    "Binding",
    "Clock",
    "CompiledRule",
    "Cycle",
    "CycleStore",
    "EventKind",
    "ManualClock",
    "Priority",
    "ProductProfile",
    "ProfileLimits",
    "RuleLibrary",
    "RulePack",
    "RulesConfig",
    "RulesConfigError",
    "RulesEngine",
    "SystemClock",
    "alert_event_readings",
    "load_pack",
    "load_rules_config",
    "source_of",
]
