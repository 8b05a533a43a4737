"""`vigil dashboards push` against a local stand-in for Grafana's documented HTTP API.

No Grafana server can be installed here; the stand-in (grafana_standin.py) checks every request's
method, path and body against the API docs and answers the way Grafana does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from dashboards import push as pushing
from dashboards.build import DATASOURCE_UID, all_dashboards
from dashboards.cli import app

try:  # tests/integration is not a package today; keep working if it becomes one
    from grafana_standin import GrafanaStandIn
except ModuleNotFoundError:  # pragma: no cover
    from .grafana_standin import GrafanaStandIn

pytestmark = pytest.mark.integration

GRAFANA_TOKEN = "glsa_test_grafana_token_0123456789"
INFLUX_TOKEN = "influx-secret-token-abcdef"


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    standin = GrafanaStandIn(GRAFANA_TOKEN).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def influx() -> pushing.InfluxSettings:
    return pushing.InfluxSettings(
        url="http://influx.example:8086", database="vigil", token=INFLUX_TOKEN
    )


def run_push(
    grafana: GrafanaStandIn, influx: pushing.InfluxSettings, **kw: Any
) -> list[pushing.Change]:
    api = pushing.connect(grafana.url, token=GRAFANA_TOKEN)
    return pushing.push(api, influx, **kw)


def calls(grafana: GrafanaStandIn, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in grafana.mutations(since)]


def test_first_push_creates_datasource_folder_team_and_dashboards(
    grafana: GrafanaStandIn, influx: pushing.InfluxSettings
) -> None:
    changes = run_push(grafana, influx)

    assert grafana.violations == []
    assert {(c.kind, c.action) for c in changes} == {
        ("datasource", "created"),
        ("folder", "created"),
        ("team", "created"),
        ("folder-permissions", "created"),
        ("dashboard", "created"),
    }
    dashboards = all_dashboards()
    assert sorted(calls(grafana)) == sorted(
        [
            ("POST", "/api/datasources"),
            ("POST", "/api/folders"),
            ("POST", "/api/teams"),
            ("POST", f"/api/folders/{pushing.FOLDER_UID}/permissions"),
        ]
        + [("POST", "/api/dashboards/db")] * len(dashboards)
    )

    state = grafana.state
    ds = state.datasources[DATASOURCE_UID]
    assert ds["type"] == "influxdb" and ds["url"] == influx.url and ds["access"] == "proxy"
    assert ds["jsonData"] == {
        "version": "InfluxQL",
        "dbName": "vigil",
        "httpMode": "GET",
        "httpHeaderName1": "Authorization",
    }
    assert state.datasource_secrets[DATASOURCE_UID] == {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"}

    assert state.folders[pushing.FOLDER_UID]["title"] == pushing.FOLDER_TITLE
    (team,) = [t for t in state.teams.values() if t["name"] == pushing.REGULATOR_TEAM]
    perms = state.folder_permissions[pushing.FOLDER_UID]
    assert {"teamId": team["id"], "permission": 1} in perms
    # The folder's existing permissions survive (POST replaces the whole list).
    assert {"role": "Editor", "permission": 2} in perms
    assert {"userId": 1, "permission": 4} in perms

    assert set(state.dashboards) == set(dashboards)
    for uid, model in dashboards.items():
        saved = state.dashboards[uid]
        assert saved["folderUid"] == pushing.FOLDER_UID
        assert {k: v for k, v in saved["dashboard"].items() if k not in ("id", "version")} == model


def test_second_push_changes_nothing(
    grafana: GrafanaStandIn, influx: pushing.InfluxSettings
) -> None:
    run_push(grafana, influx)
    versions = {uid: d["dashboard"]["version"] for uid, d in grafana.state.dashboards.items()}
    mark = len(grafana.requests)

    changes = run_push(grafana, influx)

    assert grafana.violations == []
    assert [c.action for c in changes] == ["unchanged"] * len(changes)
    assert len(changes) == 4 + len(versions)
    assert calls(grafana, mark) == []
    assert len(grafana.requests) > mark  # it did look
    assert {
        uid: d["dashboard"]["version"] for uid, d in grafana.state.dashboards.items()
    } == versions


def test_push_repairs_only_what_drifted(
    grafana: GrafanaStandIn, influx: pushing.InfluxSettings
) -> None:
    run_push(grafana, influx)
    state = grafana.state
    edited = "vigil-shipment"
    state.dashboards[edited]["dashboard"]["title"] = "edited in the UI"
    state.datasources[DATASOURCE_UID]["url"] = "http://elsewhere:8086"
    state.datasources[DATASOURCE_UID]["isDefault"] = True
    team_id = next(iter(state.teams))
    for perm in state.folder_permissions[pushing.FOLDER_UID]:
        if perm.get("teamId") == team_id:
            perm["permission"] = 2  # someone gave the regulators Edit
    mark = len(grafana.requests)

    changes = run_push(grafana, influx)

    assert grafana.violations == []
    assert sorted(calls(grafana, mark)) == sorted(
        [
            ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"),
            ("POST", f"/api/folders/{pushing.FOLDER_UID}/permissions"),
            ("POST", "/api/dashboards/db"),
        ]
    )
    updated = {(c.kind, c.name) for c in changes if c.action == "updated"}
    assert ("dashboard", all_dashboards()[edited]["title"]) in updated
    assert state.dashboards[edited]["dashboard"]["title"] == all_dashboards()[edited]["title"]
    assert state.datasources[DATASOURCE_UID]["url"] == influx.url
    assert state.datasources[DATASOURCE_UID]["isDefault"] is True  # user's choice kept
    # The token was not resent: Grafana still has it and no rotation was asked for.
    put = next(r for r in grafana.requests[mark:] if r.method == "PUT")
    assert "secureJsonData" not in put.body
    team_perms = [p for p in state.folder_permissions[pushing.FOLDER_UID] if p.get("teamId")]
    assert team_perms == [{"teamId": team_id, "permission": 1}]


def test_rotate_token_sends_the_new_token(
    grafana: GrafanaStandIn, influx: pushing.InfluxSettings
) -> None:
    run_push(grafana, influx)
    rotated = pushing.InfluxSettings(influx.url, influx.database, token="new-token")
    mark = len(grafana.requests)

    changes = run_push(grafana, rotated, rotate_token=True)

    assert grafana.violations == []
    assert calls(grafana, mark) == [("PUT", f"/api/datasources/uid/{DATASOURCE_UID}")]
    assert ("datasource", "updated") in {(c.kind, c.action) for c in changes}
    assert grafana.state.datasource_secrets[DATASOURCE_UID] == {
        "httpHeaderValue1": "Token new-token"
    }


def test_cli_push_reads_environment_and_never_prints_tokens(grafana: GrafanaStandIn) -> None:
    env = {
        "VIGIL_GRAFANA_URL": grafana.url,
        "VIGIL_GRAFANA_TOKEN": GRAFANA_TOKEN,
        "VIGIL_INFLUX_URL": "http://influx.example:8086",
        "VIGIL_INFLUX_TOKEN": INFLUX_TOKEN,
        "VIGIL_INFLUX_BUCKET": "cold",
    }
    runner = CliRunner()

    first = runner.invoke(app, ["push"], env=env)
    second = runner.invoke(app, ["push"], env=env)

    assert first.exit_code == 0, first.output
    assert "created" in first.output and first.output.strip().endswith("change(s)")
    assert second.exit_code == 0, second.output
    assert second.output.strip().endswith("nothing to change")
    for out in (first.output, second.output):
        assert GRAFANA_TOKEN not in out and INFLUX_TOKEN not in out
    # InfluxDB 2.x: the bucket's database name through its DBRP mapping
    assert grafana.state.datasources[DATASOURCE_UID]["jsonData"]["dbName"] == "cold"
    assert grafana.violations == []


def test_cli_push_reports_refused_credentials(grafana: GrafanaStandIn) -> None:
    env = {
        "VIGIL_GRAFANA_URL": grafana.url,
        "VIGIL_GRAFANA_TOKEN": "wrong-token",
        "VIGIL_INFLUX_URL": "http://influx.example:8086",
        "VIGIL_INFLUX_TOKEN": INFLUX_TOKEN,
    }

    result = CliRunner().invoke(app, ["push"], env=env)

    assert result.exit_code == 1
    assert "Unauthorized" in result.output
    assert "wrong-token" not in result.output and INFLUX_TOKEN not in result.output
    assert grafana.mutations() == []


def test_cli_push_without_influx_settings_exits_2(grafana: GrafanaStandIn) -> None:
    env = {"VIGIL_GRAFANA_URL": grafana.url, "VIGIL_GRAFANA_TOKEN": GRAFANA_TOKEN}

    result = CliRunner().invoke(app, ["push"], env={**env, "VIGIL_INFLUX_URL": ""})

    assert result.exit_code == 2
    assert "VIGIL_INFLUX_URL" in result.output
    assert grafana.requests == []
    no_token = {**env, "VIGIL_INFLUX_URL": "http://influx.example:8086", "VIGIL_INFLUX_TOKEN": ""}
    result = CliRunner().invoke(app, ["push"], env=no_token)
    assert result.exit_code == 2 and "VIGIL_INFLUX_TOKEN" in result.output
    assert grafana.requests == []


def test_cli_push_influxdb_1_with_user_and_password(grafana: GrafanaStandIn) -> None:
    env = {
        "VIGIL_GRAFANA_URL": grafana.url,
        "VIGIL_GRAFANA_TOKEN": GRAFANA_TOKEN,
        "VIGIL_INFLUX_URL": "http://influx18.example:8086",
        "VIGIL_INFLUX_VERSION": "1",
        "VIGIL_INFLUX_DATABASE": "plant",
        "VIGIL_INFLUX_USERNAME": "grafana",
        "VIGIL_INFLUX_PASSWORD": "influx-read-password",
        "VIGIL_INFLUX_BUCKET": "ignored-for-1.x",
    }

    first = CliRunner().invoke(app, ["push"], env=env)
    second = CliRunner().invoke(app, ["push"], env=env)

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert second.output.strip().endswith("nothing to change")
    assert "influx-read-password" not in first.output + second.output
    ds = grafana.state.datasources[DATASOURCE_UID]
    assert ds["user"] == "grafana"
    assert ds["jsonData"] == {"version": "InfluxQL", "dbName": "plant", "httpMode": "GET"}
    assert grafana.state.datasource_secrets[DATASOURCE_UID] == {"password": "influx-read-password"}
    assert grafana.violations == []


def _send(grafana: GrafanaStandIn, method: str, path: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(grafana.url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {GRAFANA_TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/dashboards/db", {"folderUid": "x"}, 400),  # no dashboard
        ("POST", "/api/dashboards/db", {"dashboard": {"title": "t"}, "folder": "x"}, 400),
        ("POST", "/api/folders", {"name": "Vigil"}, 400),  # title, not name
        ("PUT", "/api/dashboards/db", {"dashboard": {"title": "t"}}, 405),
        ("POST", "/api/datasources/uid/x", {"name": "n", "type": "influxdb"}, 405),
        ("POST", "/api/datasource", {"name": "n", "type": "influxdb"}, 404),
        ("POST", "/api/teams", {"name": 7}, 400),
    ],
)
def test_standin_rejects_requests_outside_the_documented_api(
    grafana: GrafanaStandIn, method: str, path: str, body: Any, status: int
) -> None:
    assert _send(grafana, method, path, body) == status
    assert len(grafana.violations) == 1


def test_standin_rejects_invalid_permission_items(grafana: GrafanaStandIn) -> None:
    assert _send(grafana, "POST", "/api/folders", {"uid": "f", "title": "F"}) == 200
    both = {"items": [{"teamId": 1, "role": "Viewer", "permission": 1}]}
    admin = {"items": [{"role": "Admin", "permission": 4}]}
    level = {"items": [{"role": "Viewer", "permission": 3}]}

    statuses = [
        _send(grafana, "POST", "/api/folders/f/permissions", b) for b in (both, admin, level)
    ]

    assert statuses == [400, 400, 400]
    assert len(grafana.violations) == 3
