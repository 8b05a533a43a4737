"""Compliance records: audit trail, users, lots and their legs, shipments, reports.

Opened by the gateway (gateway/app.py) whether or not the API runs, so readings are tagged with
their leg and config changes audited either way; the API and the CLI read and write them
through `Records`. Imports gateway.core and alert_rules only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from gateway.core.ports import RetentionHold
from gateway.records.audit import AuditTrail
from gateway.records.lots import LotRegistry, TraceabilityConfig
from gateway.records.shipments import ShipmentRegistry
from gateway.records.users import UserStore

AUDIT_FILE = "audit.sqlite"
USERS_FILE = "users.sqlite"
SHIPMENTS_FILE = "shipments.sqlite"
LOTS_FILE = "lots.sqlite"


@dataclass
class Records:
    """The record stores of one data directory."""

    audit: AuditTrail
    users: UserStore
    shipments: ShipmentRegistry
    lots: LotRegistry

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        hasher: PasswordHasher | None = None,
        traceability: TraceabilityConfig | None = None,
    ) -> Records:
        data_dir.mkdir(parents=True, exist_ok=True)
        audit = AuditTrail(data_dir / AUDIT_FILE)
        shipments = ShipmentRegistry(data_dir / SHIPMENTS_FILE)
        return cls(
            audit=audit,
            users=UserStore(data_dir / USERS_FILE, hasher=hasher),
            shipments=shipments,
            lots=LotRegistry(data_dir / LOTS_FILE, shipments, config=traceability, audit=audit),
        )

    @property
    def retention_hold(self) -> RetentionHold:
        """What pruning of the journal, its archives and the records must ask first: the
        readings of lots' legs are kept until each lot's expiry plus retention_years."""
        return self.lots

    def close(self) -> None:
        self.lots.close()
        self.audit.close()
        self.users.close()
        self.shipments.close()


__all__ = [
    "AUDIT_FILE",
    "LOTS_FILE",
    "SHIPMENTS_FILE",
    "USERS_FILE",
    "AuditTrail",
    "LotRegistry",
    "Records",
    "ShipmentRegistry",
    "TraceabilityConfig",
    "UserStore",
]
