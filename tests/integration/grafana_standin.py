"""A local stand-in for Grafana's HTTP API, for testing `vigil dashboards push`.

No Grafana server can be installed on the test machines, so this answers the endpoints push uses
the way Grafana documents them (developers/http_api: folder.md, folder_permissions.md,
data_source.md, dashboard.md, team.md): same methods, paths, request bodies, status codes and
response shapes. Anything else -- an unknown path, a wrong method, a body with a missing,
mistyped or undocumented key -- is answered 400/404/405 and recorded in `violations`, so a test
can assert the client spoke the documented API and nothing else.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PERMISSION_LEVELS = {1: "View", 2: "Edit", 4: "Admin"}


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


class Reject(Exception):
    """Answer with this status and message, and count it as a violation of the API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Answer(Exception):
    """A documented non-2xx answer (404 not found, 409 exists) that is not a client mistake."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


Spec = Mapping[str, tuple[type | tuple[type, ...], bool]]
"""key -> (accepted JSON types, required)."""


def check_body(body: Any, spec: Spec, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Reject(400, f"{where}: body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise Reject(400, f"{where}: undocumented key(s) {unknown}")
    for key, (types, required) in spec.items():
        if key not in body:
            if required:
                raise Reject(400, f"{where}: missing required key {key!r}")
            continue
        value = body[key]
        ok = isinstance(value, types) and not (
            isinstance(value, bool) and bool not in _tuple(types)
        )
        if not ok:
            raise Reject(400, f"{where}: {key!r} has type {type(value).__name__}")
    return body


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


NONE = type(None)
FOLDER_CREATE: Spec = {"uid": (str, False), "title": (str, True), "parentUid": (str, False)}
FOLDER_UPDATE: Spec = {
    "title": (str, True),
    "version": (int, False),
    "overwrite": (bool, False),
    "uid": (str, False),
}
DATASOURCE: Spec = {
    "name": (str, True),
    "type": (str, True),
    "uid": (str, False),
    "url": (str, False),
    "access": (str, False),
    "basicAuth": (bool, False),
    "basicAuthUser": (str, False),
    "user": (str, False),
    "database": (str, False),
    "isDefault": (bool, False),
    "withCredentials": (bool, False),
    "jsonData": ((dict, NONE), False),
    "secureJsonData": (dict, False),
    "id": (int, False),
    "orgId": (int, False),
    "version": (int, False),
    "readOnly": (bool, False),
    "password": (str, False),
}
DASHBOARD_SAVE: Spec = {
    "dashboard": (dict, True),
    "folderUid": (str, False),
    "folderId": (int, False),
    "overwrite": (bool, False),
    "message": (str, False),
}
TEAM_CREATE: Spec = {"name": (str, True), "email": (str, False), "orgId": (int, False)}
PERMISSIONS_UPDATE: Spec = {"items": (list, True)}


@dataclass
class GrafanaState:
    """What the stand-in Grafana holds; tests may read and edit it between pushes."""

    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    folder_permissions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasource_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class GrafanaStandIn:
    """The server: `start()` binds 127.0.0.1 on a free port and serves from a thread."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.state = GrafanaState()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(r"/api/folders/(?P<uid>[^/]+)"), self.get_folder),
            ("POST", re.compile(r"/api/folders"), self.create_folder),
            ("PUT", re.compile(r"/api/folders/(?P<uid>[^/]+)"), self.update_folder),
            ("GET", re.compile(r"/api/folders/(?P<uid>[^/]+)/permissions"), self.get_perms),
            ("POST", re.compile(r"/api/folders/(?P<uid>[^/]+)/permissions"), self.set_perms),
            ("GET", re.compile(r"/api/datasources/uid/(?P<uid>[^/]+)"), self.get_ds_uid),
            ("GET", re.compile(r"/api/datasources/name/(?P<name>[^/]+)"), self.get_ds_name),
            ("POST", re.compile(r"/api/datasources"), self.create_ds),
            ("PUT", re.compile(r"/api/datasources/uid/(?P<uid>[^/]+)"), self.update_ds),
            ("GET", re.compile(r"/api/dashboards/uid/(?P<uid>[^/]+)"), self.get_dashboard),
            ("POST", re.compile(r"/api/dashboards/db"), self.save_dashboard),
            ("GET", re.compile(r"/api/teams/search"), self.search_teams),
            ("POST", re.compile(r"/api/teams"), self.create_team),
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> GrafanaStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one write
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads `requests`, not stderr."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = standin.dispatch(
                    self.command, self.path, dict(self.headers.items()), raw
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- request handling --------------------------------------------------------------------

    def mutations(self, since: int = 0) -> list[Recorded]:
        """Requests from index `since` on that would change Grafana's state."""
        return [r for r in self.requests[since:] if r.method in MUTATING]

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth == f"Bearer {self.token}":
            return True
        if auth.startswith("Basic "):
            return base64.b64decode(auth[6:]).decode() == f"admin:{self.token}"
        return False

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        body: Any = None
        status: int
        payload: Any
        with self._lock:
            try:
                if raw:
                    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
                    if not ctype.startswith("application/json"):
                        raise Reject(400, f"{method} {path}: body sent as {ctype!r}, not JSON")
                    try:
                        body = json.loads(raw)
                    except ValueError as exc:
                        raise Reject(400, f"{method} {path}: invalid JSON: {exc}") from exc
                if not self._authorised(headers):
                    raise Answer(401, {"message": "Unauthorized"})
                status, payload = self._route(method, path, query, body)
            except Reject as exc:
                self.violations.append(exc.message)
                status, payload = exc.status, {"message": exc.message}
            except Answer as exc:
                status, payload = exc.status, exc.body
            self.requests.append(Recorded(method, path, query, body, status))
        return status, payload

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        path_known = False
        for verb, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_known = True
            if verb != method:
                continue
            if method == "GET" and body is not None:
                raise Reject(400, f"GET {path} with a body")
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            return handler(body=body, query=query, **params)
        if path_known:
            raise Reject(405, f"{method} {path}: method not in the documented API")
        raise Reject(404, f"{method} {path}: not an endpoint of the documented API")

    # -- folders (folder.md, folder_permissions.md) --------------------------------------------

    def _folder(self, uid: str) -> dict[str, Any]:
        folder = self.state.folders.get(uid)
        if folder is None:
            raise Answer(404, {"message": "folder not found", "status": "not-found"})
        return folder

    def get_folder(self, uid: str, **_: Any) -> tuple[int, Any]:
        return 200, self._folder(uid)

    def create_folder(self, body: Any, **_: Any) -> tuple[int, Any]:
        check_body(body, FOLDER_CREATE, "POST /api/folders")
        uid = body.get("uid") or f"f{self.state.new_id()}"
        if len(uid) > 40:
            raise Reject(400, "POST /api/folders: uid longer than 40 characters")
        if uid in self.state.folders:
            raise Answer(409, {"message": "a folder with the same uid already exists"})
        folder = {
            "id": self.state.new_id(),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
        }
        self.state.folders[uid] = folder
        self.state.folder_permissions[uid] = [
            {"userId": 1, "userLogin": "admin", "teamId": 0, "role": None, "permission": 4},
            {"userId": 0, "teamId": 0, "role": "Editor", "permission": 2},
            {"userId": 0, "teamId": 0, "role": "Viewer", "permission": 1},
        ]
        return 200, folder

    def update_folder(self, uid: str, body: Any, **_: Any) -> tuple[int, Any]:
        check_body(body, FOLDER_UPDATE, f"PUT /api/folders/{uid}")
        folder = self._folder(uid)
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            raise Answer(
                412,
                {
                    "message": "The folder has been changed by someone else",
                    "status": "version-mismatch",
                },
            )
        folder.update(title=body["title"], version=folder["version"] + 1)
        return 200, folder

    def get_perms(self, uid: str, **_: Any) -> tuple[int, Any]:
        self._folder(uid)
        out = []
        for perm in self.state.folder_permissions[uid]:
            team = self.state.teams.get(perm.get("teamId") or 0)
            out.append(
                {
                    "folderId": self.state.folders[uid]["id"],
                    "userId": perm.get("userId") or 0,
                    "userLogin": perm.get("userLogin", ""),
                    "teamId": perm.get("teamId") or 0,
                    "team": team["name"] if team else "",
                    "role": perm.get("role"),
                    "permission": perm["permission"],
                    "permissionName": PERMISSION_LEVELS[perm["permission"]],
                    "uid": uid,
                    "isFolder": True,
                    "inherited": False,
                }
            )
        return 200, out

    def set_perms(self, uid: str, body: Any, **_: Any) -> tuple[int, Any]:
        where = f"POST /api/folders/{uid}/permissions"
        check_body(body, PERMISSIONS_UPDATE, where)
        folder = self._folder(uid)
        items = []
        for item in body["items"]:
            if not isinstance(item, dict):
                raise Reject(400, f"{where}: item {item!r} is not an object")
            check_body(
                item,
                {
                    "userId": (int, False),
                    "teamId": (int, False),
                    "role": (str, False),
                    "permission": (int, True),
                },
                where,
            )
            principals = [k for k in ("userId", "teamId", "role") if item.get(k)]
            if len(principals) != 1:
                raise Reject(400, f"{where}: item needs exactly one of userId/teamId/role: {item}")
            if item.get("role") not in (None, "Viewer", "Editor"):
                raise Reject(400, f"{where}: permissions cannot be set for role {item['role']}")
            if item["permission"] not in PERMISSION_LEVELS:
                raise Reject(400, f"{where}: permission must be 1, 2 or 4: {item}")
            if item.get("teamId") and item["teamId"] not in self.state.teams:
                raise Reject(400, f"{where}: no team {item['teamId']}")
            items.append(dict(item))
        self.state.folder_permissions[uid] = items
        return 200, {
            "message": "Folder permissions updated",
            "id": folder["id"],
            "title": folder["title"],
        }

    # -- data sources (data_source.md) ----------------------------------------------------------

    def _ds_view(self, uid: str) -> dict[str, Any]:
        ds = copy.deepcopy(self.state.datasources[uid])
        ds["secureJsonFields"] = {k: True for k in self.state.datasource_secrets.get(uid, {})}
        return ds

    def get_ds_uid(self, uid: str, **_: Any) -> tuple[int, Any]:
        if uid not in self.state.datasources:
            raise Answer(404, {"message": "Data source not found"})
        return 200, self._ds_view(uid)

    def get_ds_name(self, name: str, **_: Any) -> tuple[int, Any]:
        for uid, ds in self.state.datasources.items():
            if ds["name"] == name:
                return 200, self._ds_view(uid)
        raise Answer(404, {"message": "Data source not found"})

    def _store_ds(self, uid: str, body: dict[str, Any], ds_id: int, version: int) -> None:
        ds = {
            "id": ds_id,
            "uid": uid,
            "orgId": 1,
            "name": body["name"],
            "type": body["type"],
            "access": body.get("access", "proxy"),
            "url": body.get("url", ""),
            "basicAuth": body.get("basicAuth", False),
            "isDefault": body.get("isDefault", False),
            "jsonData": body.get("jsonData") or {},
            "user": body.get("user", ""),
            "version": version,
            "readOnly": False,
        }
        self.state.datasources[uid] = ds
        secrets = self.state.datasource_secrets.setdefault(uid, {})
        for key, value in (body.get("secureJsonData") or {}).items():
            if not isinstance(value, str):
                raise Reject(400, f"secureJsonData.{key} must be a string")
            secrets[key] = value

    def create_ds(self, body: Any, **_: Any) -> tuple[int, Any]:
        check_body(body, DATASOURCE, "POST /api/datasources")
        if any(ds["name"] == body["name"] for ds in self.state.datasources.values()):
            raise Answer(409, {"message": "data source with the same name already exists"})
        uid = body.get("uid") or f"ds{self.state.new_id()}"
        if uid in self.state.datasources:
            raise Answer(409, {"message": "data source with the same uid already exists"})
        self._store_ds(uid, body, self.state.new_id(), 1)
        ds = self._ds_view(uid)
        return 200, {
            "datasource": ds,
            "id": ds["id"],
            "message": "Datasource added",
            "name": ds["name"],
        }

    def update_ds(self, uid: str, body: Any, **_: Any) -> tuple[int, Any]:
        check_body(body, DATASOURCE, f"PUT /api/datasources/uid/{uid}")
        old = self.state.datasources.get(uid)
        if old is None:
            raise Answer(404, {"message": "Data source not found"})
        self._store_ds(body.get("uid", uid), body, old["id"], old["version"] + 1)
        ds = self._ds_view(uid)
        return 200, {
            "datasource": ds,
            "id": ds["id"],
            "message": "Datasource updated",
            "name": ds["name"],
        }

    # -- dashboards (dashboard.md) -------------------------------------------------------------

    def get_dashboard(self, uid: str, **_: Any) -> tuple[int, Any]:
        saved = self.state.dashboards.get(uid)
        if saved is None:
            raise Answer(404, {"message": "Dashboard not found"})
        folder = self.state.folders.get(saved["folderUid"] or "", {})
        return 200, {
            "dashboard": copy.deepcopy(saved["dashboard"]),
            "meta": {
                "url": f"/d/{uid}/",
                "folderId": folder.get("id", 0),
                "folderUid": saved["folderUid"],
                "folderTitle": folder.get("title", "General"),
                "version": saved["dashboard"]["version"],
                "provisioned": False,
            },
        }

    def save_dashboard(self, body: Any, **_: Any) -> tuple[int, Any]:
        where = "POST /api/dashboards/db"
        check_body(body, DASHBOARD_SAVE, where)
        model = body["dashboard"]
        if not isinstance(model.get("title"), str) or not model["title"]:
            raise Reject(400, f"{where}: dashboard.title is required")
        uid = model.get("uid")
        if uid is not None and (not isinstance(uid, str) or len(uid) > 40):
            raise Reject(400, f"{where}: dashboard.uid must be a string of at most 40 characters")
        if not isinstance(model.get("schemaVersion"), int):
            raise Reject(400, f"{where}: dashboard.schemaVersion must be an integer")
        folder_uid = body.get("folderUid")
        if folder_uid and folder_uid not in self.state.folders:
            raise Answer(400, {"message": "folder not found"})
        uid = uid or f"d{self.state.new_id()}"
        old = self.state.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            if model.get("version") != old["dashboard"]["version"]:
                raise Answer(
                    412,
                    {
                        "message": "The dashboard has been changed by someone else",
                        "status": "version-mismatch",
                    },
                )
        stored = copy.deepcopy(model)
        stored["uid"] = uid
        stored["id"] = old["dashboard"]["id"] if old else self.state.new_id()
        stored["version"] = old["dashboard"]["version"] + 1 if old else 1
        self.state.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid or ""}
        return 200, {
            "id": stored["id"],
            "uid": uid,
            "url": f"/d/{uid}/",
            "status": "success",
            "version": stored["version"],
            "slug": uid,
        }

    # -- teams (team.md) -----------------------------------------------------------------------

    def search_teams(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        allowed = {"name", "query", "page", "perpage", "sort"}
        if set(query) - allowed:
            raise Reject(
                400,
                f"GET /api/teams/search: undocumented parameter(s) {sorted(set(query) - allowed)}",
            )
        teams = list(self.state.teams.values())
        if "name" in query:
            teams = [t for t in teams if t["name"] == query["name"][0]]
        if "query" in query:
            teams = [t for t in teams if query["query"][0] in t["name"]]
        per_page = int(query.get("perpage", ["1000"])[0])
        return 200, {"totalCount": len(teams), "teams": teams, "page": 1, "perPage": per_page}

    def create_team(self, body: Any, **_: Any) -> tuple[int, Any]:
        check_body(body, TEAM_CREATE, "POST /api/teams")
        if any(t["name"] == body["name"] for t in self.state.teams.values()):
            raise Answer(409, {"message": "Team name taken"})
        team_id = self.state.new_id()
        self.state.teams[team_id] = {
            "id": team_id,
            "orgId": 1,
            "name": body["name"],
            "email": body.get("email", ""),
            "memberCount": 0,
        }
        return 200, {"message": "Team created", "teamId": team_id, "uid": f"t{team_id}"}
