"""Compliance records: audit trail, users, shipments and their reports.

Opened by the gateway (gateway/app.py) whether or not the API runs, so readings are tagged with
their shipment and config changes audited either way; the API and the CLI read and write them
through `Records`. Imports gateway.core and alert_rules only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from gateway.records.audit import AuditTrail
from gateway.records.shipments import ShipmentRegistry
from gateway.records.users import UserStore

AUDIT_FILE = "audit.sqlite"
USERS_FILE = "users.sqlite"
SHIPMENTS_FILE = "shipments.sqlite"


@dataclass
class Records:
    """The record stores of one data directory."""

    audit: AuditTrail
    users: UserStore
    shipments: ShipmentRegistry

    @classmethod
    def open(cls, data_dir: Path, *, hasher: PasswordHasher | None = None) -> Records:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            audit=AuditTrail(data_dir / AUDIT_FILE),
            users=UserStore(data_dir / USERS_FILE, hasher=hasher),
            shipments=ShipmentRegistry(data_dir / SHIPMENTS_FILE),
        )

    def close(self) -> None:
        self.audit.close()
        self.users.close()
        self.shipments.close()


__all__ = [
    "AUDIT_FILE",
    "SHIPMENTS_FILE",
    "USERS_FILE",
    "AuditTrail",
    "Records",
    "ShipmentRegistry",
    "UserStore",
]
