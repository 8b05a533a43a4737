"""Robustness: schemathesis generates requests from the OpenAPI spec (valid and invalid) against
a real uvicorn server; no input may produce a 5xx. Each operation runs with a token of a role
that holds its permission, so the handlers are reached, not only the 403 path."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gateway.api import create_app, serve_api
from gateway.api.app import api_routes
from gateway.api.deps import route_permission
from gateway.records.users import ROLE_PERMS, Perm, Role
from tests.api_rig import (
    AUTOCLAVE_CYCLE_S,
    PASSWORDS,
    USERS,
    Rig,
    autoclave,
    coldchain,
    make_rig,
)
from tests.services import free_port

S = 1_000_000_000


def _openapi() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rig = make_rig(Path(tmp), users=False)
        spec = create_app(rig.ctx).openapi()
        rig.close()
    return spec


schema = schemathesis.openapi.from_dict(_openapi())

PERMS = {(m, r.path): route_permission(r) for r in api_routes() for m in r.methods}
ORDER = (Role.QA, Role.OPERATOR, Role.VIEWER, Role.ADMIN)


def role_for(method: str, path: str) -> Role | None:
    perm: Perm | None = PERMS.get((method.upper(), path))
    if perm is None:
        return None
    return next(r for r in ORDER if perm in ROLE_PERMS[r])


@dataclass
class Server:
    url: str
    rig: Rig
    client: httpx.Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """uvicorn in its own thread and loop; the rig is made there (the alert store is bound to
    the thread that opened it), with data so that routes have something to serve."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    made: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            rig = make_rig(tmp)
            rig.ctx.limiter.max_failures = 10**9  # fuzzing is not a brute-force attack
            now = time.time_ns()
            rig.ctx.shipments.start(
                "truck-1", "vaccine_2_8", "operator1", shipment_id="S1", now_ns=now - 3600 * S
            )
            rig.feed(
                [
                    coldchain(t, now - (10 - i) * 60 * S, asset="truck-1")
                    for i, t in enumerate([5, 9, 12, 5])
                ]
            )
            rig.ctx.shipments.stop("S1", "operator1")
            rig.feed([coldchain(12.0, now, device="logger-2")])
            rig.feed(autoclave(now - 3 * 3600 * S, AUTOCLAVE_CYCLE_S + 5))  # cycle 1
            stop = asyncio.Event()
            made["rig"], made["stop"], made["loop"] = rig, stop, asyncio.get_running_loop()
            ready.set()
            await serve_api(rig.ctx, "127.0.0.1", port, stop)

        try:
            asyncio.run(main())
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "API server did not come up"
        time.sleep(0.05)
    rig: Rig = made["rig"]
    with httpx.Client(timeout=30) as client:
        yield Server(url, rig, client)
    made["loop"].call_soon_threadsafe(made["stop"].set)
    thread.join(10)
    assert not thread.is_alive()


def _send(client: httpx.Client, kw: dict[str, Any]) -> httpx.Response | None:
    """Send schemathesis' request with httpx. (Its own transport uses `requests`, which breaks
    when urllib3-future, brought in by niquests, stands in for urllib3.)"""
    extra: dict[str, Any] = {}
    if "json" in kw:
        extra["json"] = kw["json"]
    if "data" in kw:
        data = kw["data"]
        extra["content" if isinstance(data, bytes | str) else "data"] = data
    if "files" in kw:
        extra["files"] = kw["files"]
    try:
        return client.request(
            kw["method"],
            kw["url"],
            params=kw.get("params"),
            headers=kw.get("headers"),
            cookies=kw.get("cookies") or None,
            **extra,
        )
    except (httpx.LocalProtocolError, UnicodeEncodeError, TypeError, ValueError):
        return None  # the client cannot send it (e.g. a header outside Latin-1)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, server: Server) -> None:
    headers = {}
    role = role_for(case.method, case.path)
    if role is not None:
        # a fresh token per request: a generated logout must not revoke the next request's
        token = server.rig.ctx.tokens.issue(USERS[role])[0]
        headers["Authorization"] = f"Bearer {token}"
    # Steer half the cases to existing records and valid secrets, to get past 404 and 403
    # into the handlers; the other half stay as generated.
    coin = hash((case.method, case.path, repr(case.path_parameters), repr(case.body))) % 2
    params = case.path_parameters or {}
    if coin and "shipment_id" in params:
        params["shipment_id"] = "S1"
    if coin and "alert_id" in params:
        params["alert_id"] = 1 + hash(repr(case.body)) % 3
    if coin and "cycle_id" in params:
        params["cycle_id"] = 1
    if coin and isinstance(case.body, dict):
        if case.path.endswith(("/close", "/approve")):
            case.body["password"] = PASSWORDS[Role.QA]
        if case.path == "/api/v1/shipments" and case.method == "POST":
            case.body["profile"] = "vaccine_2_8"
    kw = case.as_transport_kwargs(base_url=server.url, headers=headers)
    response = _send(server.client, kw)
    if response is None:
        return
    assert response.status_code < 500, (
        f"{case.method} {kw['url']} params={kw.get('params')} body={case.body!r} -> "
        f"{response.status_code} {response.text[:500]}"
    )
    case.validate_response(response, checks=[not_a_server_error])


def test_fuzzing_left_a_valid_audit_chain(server: Server) -> None:
    res = server.rig.ctx.audit.verify()
    assert res.ok, res.describe()
