"""Every route under /api/v1 needs a token (401 without) and the right role (403 without),
found by walking the app's routes, so a new route cannot slip through unprotected."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.api import create_app
from gateway.api.app import api_routes
from gateway.api.deps import route_permission
from gateway.records.users import ROLE_PERMS, Perm, Role
from tests.api_rig import Rig, make_rig


def _routes() -> list[tuple[str, str, Perm | None]]:
    """(method, path as OpenAPI writes it, permission): `{source:path}` is `{source}` there."""
    return [
        (method, re.sub(r"\{(\w+):path\}", r"{\1}", route.path), route_permission(route))
        for route in api_routes()
        for method in sorted(route.methods)
    ]


ROUTES = _routes()
API_ROUTES = [(m, p, perm) for m, p, perm in ROUTES if p.startswith("/api/v1/")]
OPEN = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("POST", "/auth/login")}


INT_IDS = {"alert_id", "cycle_id"}
"""Path parameters that are integers (the others are strings): 1, so that the request gets past
validation to the handler (404 for an unknown record), whatever the role."""


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) in INT_IDS else "x1", path)


def test_every_path_parameter_has_a_value_of_its_type() -> None:
    """A new integer id would get "x1" and a 422 instead of reaching the handler."""
    for route in api_routes():
        for param in route.dependant.path_params:
            is_int = param.field_info.annotation is int
            assert is_int == (param.name in INT_IDS), f"{route.path}: {param.name}"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path)
    yield r
    r.close()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rig.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_the_walk_sees_every_route_the_app_serves(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    served = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert served == {(m, p) for m, p, _ in ROUTES}


def test_the_walk_sees_every_area() -> None:
    paths = {p for _, p, _ in API_ROUTES}
    for expected in (
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/cycles",
        "/api/v1/cycles/{cycle_id}",
        "/api/v1/devices",
        "/api/v1/readings/latest",
        "/api/v1/shipments",
        "/api/v1/audit",
        "/api/v1/reports/shipments/{shipment_id}",
        "/api/v1/users",
    ):
        assert expected in paths
    assert len(API_ROUTES) >= 20
    assert {(m, p) for m, p, _ in ROUTES if not p.startswith("/api/v1/")} == OPEN


@pytest.mark.parametrize(
    ("method", "path", "perm"), API_ROUTES, ids=[f"{m} {p}" for m, p, _ in API_ROUTES]
)
async def test_route_needs_a_token_and_the_right_role(
    client: httpx.AsyncClient, rig: Rig, method: str, path: str, perm: Perm | None
) -> None:
    assert perm is not None, f"{method} {path} has no permission dependency"
    url = _url(path)
    r = await client.request(method, url, json={})
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate") == "Bearer"
    r = await client.request(
        method, url, json={}, headers={"Authorization": "Bearer v1.forged.token"}
    )
    assert r.status_code == 401
    for role in Role:
        r = await client.request(method, url, json={}, headers=rig.headers(role))
        if perm in ROLE_PERMS[role]:
            assert r.status_code not in (401, 403), f"{role} refused: {r.text}"
        else:
            assert r.status_code == 403, f"{role} allowed: {r.status_code} {r.text}"
            assert perm.value in r.json()["detail"]


@pytest.mark.parametrize(("method", "path"), sorted(OPEN))
async def test_open_routes_need_no_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={"username": "x", "password": "y"})
    assert r.status_code not in (403,) and (r.status_code != 401 or path == "/auth/login")


def test_no_route_edits_or_deletes_audit_rows() -> None:
    audit = [(m, p) for m, p, _ in ROUTES if p.startswith("/api/v1/audit")]
    assert audit and all(m == "GET" for m, _ in audit)
    assert not [(m, p) for m, p, _ in ROUTES if m in ("PUT", "PATCH", "DELETE")]
