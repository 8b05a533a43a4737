"""vigil's HTTP API (FastAPI): DESIGN §3 routes, roles, alert shape; served by `vigil run`.

Gateway wiring (gateway/app.py):

    ctx = build_context(cfg, journal, counters, engine, alert_store)
    writer.enrichers.append(ctx.shipments.enrich)
    writer.listeners += [ctx.shipments.record, ctx.live.observe]
    supervisor.spawn("api", lambda: serve_api(ctx, cfg.api.host, cfg.api.port, stop))
"""

from gateway.api.app import create_app
from gateway.api.context import ApiContext, LiveReadings, build_context, open_stores
from gateway.api.server import serve_api

__all__ = ["ApiContext", "LiveReadings", "build_context", "create_app", "open_stores", "serve_api"]
