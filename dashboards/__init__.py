"""Grafana dashboards as code: build.py defines them, push.py provisions a Grafana."""
