"""The floor every other part of vigil stands on: imports nothing first-party.

Reading and DeadLetter (what flows), the ports collectors and stores talk through, the InfluxDB
schema and line protocol, counters, the supervisor, logging and the shared SQLite helper.
Collectors, rule kinds and dashboards may import this package and nothing else of the gateway.
"""
