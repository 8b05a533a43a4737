"""Provision a Grafana through its HTTP API: data source, folder, regulator team, dashboards.

Each step reads what is there first and writes only what differs, so running `vigil dashboards
push` twice changes nothing the second time (and leaves no new dashboard version behind). The
InfluxDB token (or password) is sent to Grafana, which stores it encrypted and never returns it; an
existing data source keeps it unless `rotate_token` is set or Grafana reports none stored.
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
    """Where Grafana's data source points: the InfluxDB the gateway writes to, queried in
    InfluxQL (InfluxDB 1.x, 2.x through its DBRP mapping, 3.x)."""

    url: str
    database: str = "vigil"
    """1.x and 3.x: the database; 2.x: the database name mapped to the bucket (DBRP)."""
    token: str | None = field(default=None, repr=False)
    """2.x / 3.x: sent as `Authorization: Token ...`."""
    username: str | None = None
    """1.x (or 2.x with a v1 authorisation): user and password instead of a token."""
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InfluxSettings:
        env = os.environ if env is None else env
        url = env.get("VIGIL_INFLUX_URL", "")
        if not url:
            raise PushError("set VIGIL_INFLUX_URL (the InfluxDB Grafana should query)")
        version = env.get("VIGIL_INFLUX_VERSION") or "2"
        if version not in ("1", "2"):
            raise PushError(f"VIGIL_INFLUX_VERSION must be 1 or 2, not {version!r}")
        database = env.get("VIGIL_INFLUX_DATABASE") or (
            env.get("VIGIL_INFLUX_BUCKET") if version == "2" else None
        )
        settings = cls(
            url=url,
            database=database or "vigil",
            token=env.get("VIGIL_INFLUX_TOKEN") or None,
            username=env.get("VIGIL_INFLUX_USERNAME") or None,
            password=env.get("VIGIL_INFLUX_PASSWORD") or None,
        )
        if version == "2" and settings.secret is None:
            raise PushError(
                "set VIGIL_INFLUX_TOKEN (or VIGIL_INFLUX_USERNAME and VIGIL_INFLUX_PASSWORD of "
                "a v1 authorisation): Grafana needs it to query InfluxDB 2.x"
            )
        return settings

    @property
    def secret(self) -> tuple[str, str] | None:
        """(secureJsonData key, value) Grafana keeps encrypted; None without credentials."""
        if self.username and self.password:
            return "password", self.password
        if self.token:
            return "httpHeaderValue1", f"Token {self.token}"
        return None


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
    """The data source as Grafana's API takes it (POST /api/datasources), secret excluded:
    InfluxQL over GET, which InfluxDB 1.x, 2.x and 3.x all serve."""
    json_data: dict[str, Any] = {
        "version": "InfluxQL",
        "dbName": influx.database,
        "httpMode": "GET",
    }
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": influx.url,
        "basicAuth": False,
        "jsonData": json_data,
    }
    if influx.username and influx.password:
        body["user"] = influx.username
    elif influx.token:
        json_data["httpHeaderName1"] = "Authorization"
    return body


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
    secret = influx.secret
    secrets = {secret[0]: secret[1]} if secret is not None else {}
    have = _get_or_none(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID))
    if have is None:
        clash = _get_or_none(lambda: api.datasource.get_datasource_by_name(DATASOURCE_NAME))
        if clash is not None:
            raise PushError(
                f"a data source named {DATASOURCE_NAME!r} exists with uid {clash.get('uid')!r}; "
                f"rename or delete it so vigil can create its own (uid {DATASOURCE_UID!r})"
            )
        create = {**want, "secureJsonData": secrets} if secrets else want
        api.datasource.create_datasource(create)
        return Change("datasource", DATASOURCE_NAME, "created")

    stored = bool(secret and (have.get("secureJsonFields") or {}).get(secret[0]))
    send_secret = secret is not None and (rotate_token or not stored)
    if is_subset(want, have) and not send_secret:
        return Change("datasource", DATASOURCE_NAME, "unchanged")
    body = {
        **want,
        # PUT replaces the whole data source: keep what the user set that vigil does not manage.
        "isDefault": bool(have.get("isDefault", False)),
        "jsonData": {**(have.get("jsonData") or {}), **want["jsonData"]},
    }
    if send_secret:
        body["secureJsonData"] = secrets
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
