"""Provision a Grafana through its HTTP API: data source, folder, regulator team, dashboards.

Each step reads what is there first and writes only what differs, so running `vigil dashboards
push` twice changes nothing the second time (and leaves no new dashboard version behind). The
InfluxDB token is sent to Grafana, which stores it encrypted and never returns it; an existing
data source keeps its token unless `rotate_token` is set or Grafana reports none stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.build import DATASOURCE_NAME, DATASOURCE_UID, all_dashboards

Action = Literal["created", "updated", "unchanged"]

FOLDER_UID = "vigil"
FOLDER_TITLE = "Vigil"
REGULATOR_TEAM = "vigil-regulators"
PERMISSION_VIEW = 1
"""Grafana folder permission levels: 1 View, 2 Edit, 4 Admin."""
PUSH_MESSAGE = "vigil dashboards push"


class PushError(RuntimeError):
    """Push cannot go on; the message says what to fix (and never contains a secret)."""


@dataclass(frozen=True, slots=True)
class InfluxSettings:
    """Where Grafana's data source points: the InfluxDB the gateway writes to."""

    url: str
    org: str
    bucket: str = "vigil"
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InfluxSettings:
        env = os.environ if env is None else env
        url = env.get("VIGIL_INFLUX_URL", "")
        org = env.get("VIGIL_INFLUX_ORG", "")
        missing = [n for n, v in (("VIGIL_INFLUX_URL", url), ("VIGIL_INFLUX_ORG", org)) if not v]
        if missing:
            raise PushError(f"set {' and '.join(missing)} (the InfluxDB Grafana should query)")
        return cls(
            url=url,
            org=org,
            bucket=env.get("VIGIL_INFLUX_BUCKET") or "vigil",
            token=env.get("VIGIL_INFLUX_TOKEN") or None,
        )


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["datasource", "folder", "team", "folder-permissions", "dashboard"]
    name: str
    action: Action


def connect(
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
) -> GrafanaApi:
    """A grafana-client API object for `url`, authenticated by token or by user and password."""
    credential: str | tuple[str, str] | None
    if token:
        credential = token
    elif user and password:
        credential = (user, password)
    else:
        raise PushError(
            "no Grafana credentials: set VIGIL_GRAFANA_TOKEN (a service account token with the "
            "Admin role) or VIGIL_GRAFANA_USER and VIGIL_GRAFANA_PASSWORD"
        )
    api: GrafanaApi = GrafanaApi.from_url(url, credential=credential, timeout=timeout)
    return api


def datasource_body(influx: InfluxSettings) -> dict[str, Any]:
    """The data source as Grafana's API takes it (POST /api/datasources), token excluded."""
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": influx.url,
        "basicAuth": False,
        "jsonData": {
            "version": "Flux",
            "organization": influx.org,
            "defaultBucket": influx.bucket,
        },
    }


def _not_found(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def _get_or_none(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except GrafanaClientError as exc:
        if _not_found(exc):
            return None
        raise


def is_subset(want: Any, have: Any) -> bool:
    """True when every key and value in `want` is in `have` (lists compared item by item).

    Grafana adds bookkeeping keys (id, version, ...) to what it stores; those do not count as a
    difference.
    """
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and is_subset(v, have[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(is_subset(w, h) for w, h in zip(want, have, strict=True))
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)
    return bool(want == have)


def ensure_datasource(
    api: GrafanaApi, influx: InfluxSettings, *, rotate_token: bool = False
) -> Change:
    want = datasource_body(influx)
    have = _get_or_none(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID))
    if have is None:
        if not influx.token:
            raise PushError("set VIGIL_INFLUX_TOKEN: Grafana needs it to query InfluxDB")
        clash = _get_or_none(lambda: api.datasource.get_datasource_by_name(DATASOURCE_NAME))
        if clash is not None:
            raise PushError(
                f"a data source named {DATASOURCE_NAME!r} exists with uid {clash.get('uid')!r}; "
                f"rename or delete it so vigil can create its own (uid {DATASOURCE_UID!r})"
            )
        api.datasource.create_datasource({**want, "secureJsonData": {"token": influx.token}})
        return Change("datasource", DATASOURCE_NAME, "created")

    token_stored = bool((have.get("secureJsonFields") or {}).get("token"))
    send_token = bool(influx.token) and (rotate_token or not token_stored)
    if is_subset(want, have) and not send_token:
        return Change("datasource", DATASOURCE_NAME, "unchanged")
    body = {
        **want,
        # PUT replaces the whole data source: keep what the user set that vigil does not manage.
        "isDefault": bool(have.get("isDefault", False)),
        "jsonData": {**(have.get("jsonData") or {}), **want["jsonData"]},
    }
    if send_token:
        body["secureJsonData"] = {"token": influx.token}
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
    return Change("datasource", DATASOURCE_NAME, "updated")


def ensure_folder(api: GrafanaApi, uid: str, title: str) -> Change:
    have = _get_or_none(lambda: api.folder.get_folder(uid))
    if have is None:
        api.folder.create_folder(title, uid=uid)
        return Change("folder", title, "created")
    if have.get("title") == title:
        return Change("folder", title, "unchanged")
    api.folder.update_folder(uid, title=title, overwrite=True)
    return Change("folder", title, "updated")


def ensure_team(api: GrafanaApi, name: str) -> tuple[int, Change]:
    """The regulators' team (read-only by the folder permission below); returns its id."""
    try:
        found = [
            t for t in api.teams.get_team_by_name(quote(name, safe="")) if t.get("name") == name
        ]
    except GrafanaClientError as exc:
        if not _not_found(exc):
            raise
        found = []
    if found:
        return int(found[0]["id"]), Change("team", name, "unchanged")
    created = api.teams.add_team({"name": name})
    return int(created["teamId"]), Change("team", name, "created")


def _as_item(permission: Mapping[str, Any]) -> dict[str, Any] | None:
    """A permission from GET .../permissions as an item for POST; None for what cannot be set."""
    level = int(permission.get("permission") or 0)
    if permission.get("teamId"):
        return {"teamId": int(permission["teamId"]), "permission": level}
    if permission.get("userId"):
        return {"userId": int(permission["userId"]), "permission": level}
    if permission.get("role") in ("Viewer", "Editor"):
        return {"role": permission["role"], "permission": level}
    return None  # Admin: Grafana grants it implicitly and refuses to have it set.


def ensure_view_only(api: GrafanaApi, folder_uid: str, team_id: int, team_name: str) -> Change:
    """Give the team View (only) on the folder, keeping every other permission as it is.

    POST replaces the folder's whole permission list, so the current list is sent back with the
    team's entry added or lowered to View.
    """
    current = api.folder.get_folder_permissions(folder_uid) or []
    items = [item for p in current if (item := _as_item(p)) is not None]
    mine = [i for i in items if i.get("teamId") == team_id]
    if len(mine) == 1 and mine[0]["permission"] == PERMISSION_VIEW:
        return Change("folder-permissions", team_name, "unchanged")
    items = [i for i in items if i.get("teamId") != team_id]
    items.append({"teamId": team_id, "permission": PERMISSION_VIEW})
    api.folder.update_folder_permissions(folder_uid, {"items": items})
    return Change("folder-permissions", team_name, "created" if not mine else "updated")


def ensure_dashboard(api: GrafanaApi, model: Mapping[str, Any], folder_uid: str) -> Change:
    uid = str(model["uid"])
    title = str(model.get("title", uid))
    have = _get_or_none(lambda: api.dashboard.get_dashboard(uid))
    if have is not None:
        stored = have.get("dashboard") or {}
        in_folder = (have.get("meta") or {}).get("folderUid") == folder_uid
        if in_folder and is_subset(dict(model), stored):
            return Change("dashboard", title, "unchanged")
    api.dashboard.update_dashboard(
        {
            "dashboard": dict(model),
            "folderUid": folder_uid,
            "overwrite": True,
            "message": PUSH_MESSAGE,
        }
    )
    return Change("dashboard", title, "created" if have is None else "updated")


def push(
    api: GrafanaApi,
    influx: InfluxSettings,
    *,
    folder_uid: str = FOLDER_UID,
    folder_title: str = FOLDER_TITLE,
    team: str = REGULATOR_TEAM,
    dashboards: Mapping[str, Mapping[str, Any]] | None = None,
    rotate_token: bool = False,
) -> list[Change]:
    """Bring the Grafana behind `api` in line with vigil; return what was done, step by step."""
    changes = [ensure_datasource(api, influx, rotate_token=rotate_token)]
    changes.append(ensure_folder(api, folder_uid, folder_title))
    team_id, team_change = ensure_team(api, team)
    changes.append(team_change)
    changes.append(ensure_view_only(api, folder_uid, team_id, team))
    for model in (dashboards if dashboards is not None else all_dashboards()).values():
        changes.append(ensure_dashboard(api, model, folder_uid))
    return changes
