"""The data path: journal, journal writer, InfluxDB sink and the rules stage.

Readings arrive through the `Ingest` port, become durable in the journal, then go to the sinks
and to the rules engine. Imports gateway.core and the rules engine (alert_rules), never the API,
notifiers or collectors.
"""
