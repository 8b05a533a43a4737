"""Compliance records: audit trail, users, shipments and their reports.

Opened by the gateway (gateway/app.py) whether or not the API runs, so readings are tagged with
their shipment and config changes audited either way. Imports gateway.core and alert_rules.
"""
