"""vigil's HTTP API (FastAPI): DESIGN §3 routes, roles, alert shape; served by `vigil run`.

Gateway wiring (gateway/app.py), with the records the gateway opened:

    ctx = build_context(data_dir, journal, counters, records, engine=engine, sources=...)
    writer.listeners.append(ctx.live.observe)
    supervisor.spawn("api", lambda: serve_api(ctx, cfg.api.host, cfg.api.port, stop))
"""

from gateway.api.app import create_app
from gateway.api.context import ApiContext, LiveReadings, build_context
from gateway.api.server import serve_api

__all__ = ["ApiContext", "LiveReadings", "build_context", "create_app", "serve_api"]
