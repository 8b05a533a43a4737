"""`vigil user`, `vigil audit`, `vigil report`: administration on a data directory.

They work on the data directory of `-c CONFIG` (or VIGIL_CONFIG, VIGIL_DATA_DIR), also while the
gateway runs: the stores are SQLite in WAL mode and every audit append is its own transaction.
Changes are audited with the actor `cli:<os user>`.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alert_rules import AlertStore
from gateway.anchor import Anchor, AnchorError, check_audit, check_journal, from_file, from_influx
from gateway.config import ConfigError, VigilConfig, load_config
from gateway.core.i18n import normalize
from gateway.pipeline.archive import Archive
from gateway.pipeline.chain import head_line
from gateway.pipeline.journal import read_head
from gateway.records import AUDIT_FILE, SHIPMENTS_FILE, USERS_FILE
from gateway.records.audit import AuditTrail
from gateway.records.reports import BOM, fmt_ts, gather_alerts, report_for, to_csv, to_pdf
from gateway.records.shipments import ShipmentRegistry
from gateway.records.users import UserError, UserStore

ConfigOpt = Annotated[
    Path | None, typer.Option("-c", "--config", help="config YAML (default VIGIL_CONFIG)")
]
PASSWORD_ENV = "VIGIL_USER_PASSWORD"

user_app = typer.Typer(no_args_is_help=True, help="Users: add, list, disable, enable")
audit_app = typer.Typer(no_args_is_help=True, help="Audit trail: verify, show")
report_app = typer.Typer(no_args_is_help=True, help="Reports: shipment")


def _config(path: Path | None) -> VigilConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        for p in e.problems:
            typer.echo(p, err=True)
        raise typer.Exit(2) from None


def _data_dir(path: Path | None) -> Path:
    return Path(_config(path).gateway.data_dir)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _password(prompt: str) -> str:
    """From VIGIL_USER_PASSWORD (scripts, containers) or a hidden prompt typed twice."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        typer.echo(f"no terminal for the password prompt: set {PASSWORD_ENV}", err=True)
        raise typer.Exit(2)
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


# -- users ------------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, operator, qa or admin")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="printed name for signatures")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Add a user (the password is prompted for, or read from VIGIL_USER_PASSWORD)."""
    data = _data_dir(config)
    users = UserStore(data / USERS_FILE)
    try:
        password = _password(f"password for {username}")
        user = users.add(username, name or username, role, password)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        users.close()
    audit = AuditTrail(data / AUDIT_FILE)
    row = audit.record(
        _actor(),
        "user.add",
        "user",
        user.username,
        None,
        user.public(),
        "added with vigil user add",
    )
    audit.close()
    typer.echo(f"added {user.username} ({user.role}) — audit row {row.seq}")


@user_app.command("list")
def user_list(config: ConfigOpt = None) -> None:
    """List users with role and status."""

    users = UserStore(_data_dir(config) / USERS_FILE)
    for u in users.list_users():
        typer.echo(
            f"{u.username:<24} {u.role!s:<9} {'enabled' if u.enabled else 'DISABLED':<9} {u.name}"
        )
    users.close()


def _set_enabled(username: str, enabled: bool, reason: str, config: Path | None) -> None:

    data = _data_dir(config)
    users = UserStore(data / USERS_FILE)
    try:
        old, new = users.set_enabled(username, enabled)
    except KeyError:
        typer.echo(f"error: no user {username}", err=True)
        raise typer.Exit(1) from None
    finally:
        users.close()
    audit = AuditTrail(data / AUDIT_FILE)
    action = "user.enable" if enabled else "user.disable"
    row = audit.record(_actor(), action, "user", username, old.public(), new.public(), reason)
    audit.close()
    typer.echo(f"{username} {'enabled' if enabled else 'disabled'} — audit row {row.seq}")


@user_app.command("disable")
def user_disable(
    username: str,
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the audit trail)")],
    config: ConfigOpt = None,
) -> None:
    """Disable a user: tokens stop working at once. Users are never deleted."""
    _set_enabled(username, False, reason, config)


@user_app.command("enable")
def user_enable(
    username: str,
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the audit trail)")],
    config: ConfigOpt = None,
) -> None:
    """Enable a disabled user again."""
    _set_enabled(username, True, reason, config)


@user_app.command("set-password")
def user_set_password(username: str, config: ConfigOpt = None) -> None:
    """Set a user's password (prompted, or VIGIL_USER_PASSWORD)."""
    data = _data_dir(config)
    users = UserStore(data / USERS_FILE)
    try:
        users.set_password(username, _password(f"new password for {username}"))
    except KeyError:
        typer.echo(f"error: no user {username}", err=True)
        raise typer.Exit(1) from None
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        users.close()
    audit = AuditTrail(data / AUDIT_FILE)
    row = audit.record(
        _actor(), "user.password", "user", username, None, None, "set with vigil user set-password"
    )
    audit.close()
    typer.echo(f"password of {username} set — audit row {row.seq}")


# -- audit ------------------------------------------------------------------------------------
def anchor_for(spec: str, cfg: VigilConfig) -> Anchor:
    """`--anchor influx` (this gateway's newest `audit_head` in InfluxDB) or a file."""
    if spec == "influx":
        if cfg.influx is None:
            raise AnchorError("--anchor influx: the config has no influx section")
        return from_influx(cfg.influx, cfg.gateway.name)
    return from_file(Path(spec))


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            help="compare with an anchor: a backup folder or its MANIFEST.json, or influx "
            "(the newest audit_head the gateway wrote to InfluxDB); detects deleted newest rows"
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check the hash chain; exit 1 naming the first broken row (or rows cut off the end)."""

    cfg = _config(config)
    path = Path(cfg.gateway.data_dir) / AUDIT_FILE
    if not path.exists():
        typer.echo(f"{path}: no audit trail", err=True)
        raise typer.Exit(2)
    audit = AuditTrail.open_readonly(path)
    try:
        res = audit.verify()
        seq, head = audit.head()
        typer.echo(res.describe())
        ok = res.ok
        if ok:
            typer.echo(f"head: row {seq} {head}")
        if anchor is not None:
            try:
                a = anchor_for(anchor, cfg)
            except AnchorError as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(2) from None
            good, message = check_audit(audit, a)
            typer.echo(message)
            ok = ok and good
            if cfg.journal_path.exists():
                good, message = check_journal(cfg.journal_path, Archive(cfg.archive_dir), a)
                typer.echo(message)
                ok = ok and good
    finally:
        audit.close()
    if not ok:
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    limit: Annotated[int, typer.Option(help="rows")] = 50,
    action: Annotated[str | None, typer.Option(help="exact, or prefix ending in *")] = None,
    entity: Annotated[str | None, typer.Option()] = None,
    entity_id: Annotated[str | None, typer.Option("--id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOpt = None,
) -> None:
    """Show the newest audit rows (read-only)."""

    audit = AuditTrail(_data_dir(config) / AUDIT_FILE)
    rows = audit.rows(
        limit=limit, action=action, entity=entity, entity_id=entity_id, newest_first=True
    )
    audit.close()
    for r in reversed(rows):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "seq": r.seq,
                        "ts_ns": r.ts_ns,
                        "actor": r.actor,
                        "action": r.action,
                        "entity": r.entity,
                        "entity_id": r.entity_id,
                        "old": r.old_value,
                        "new": r.new_value,
                        "reason": r.reason,
                        "signature": r.signature,
                        "client": r.client,
                        "hash": r.hash,
                    },
                    ensure_ascii=False,
                    default=str,
                )
            )
            continue
        line = f"{r.seq:>6} {fmt_ts(r.ts_ns)} {r.actor:<16} {r.action:<18} {r.entity}:{r.entity_id}"
        if r.reason:
            line += f" reason={r.reason!r}"
        if r.signature:
            line += f" signed by {r.signature.get('name')} ({r.signature.get('meaning')})"
        typer.echo(line)


# -- reports ----------------------------------------------------------------------------------
def _library(cfg: VigilConfig) -> Any:
    try:
        return cfg.rules.library(cfg.base_dir)
    except Exception as e:  # a report without bands beats no report
        typer.echo(f"warning: rules library not loaded ({e}); the report has no limits", err=True)
        return None


@report_app.command("shipment")
def report_shipment(
    shipment_id: Annotated[str, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="pdf or csv")] = "pdf",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="file (default shipment-ID.FORMAT; - for stdout)"),
    ] = None,
    config: ConfigOpt = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="zh-CN or en (default: gateway.language)")
    ] = None,
) -> None:
    """Write a shipment report: verdict, statistics, excursions, completeness, alerts, chart,
    signatures; in gateway.language (or --lang), times in gateway.timezone."""

    if fmt not in ("pdf", "csv"):
        typer.echo("error: --format must be pdf or csv", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    data = Path(cfg.gateway.data_dir)
    if not (data / SHIPMENTS_FILE).exists():
        typer.echo(f"error: no shipments in {data}", err=True)
        raise typer.Exit(1)
    registry = ShipmentRegistry(data / SHIPMENTS_FILE)
    shipment = registry.get(shipment_id)
    if shipment is None:
        registry.close()
        typer.echo(f"error: no shipment {shipment_id}", err=True)
        raise typer.Exit(1)
    alerts_path = cfg.alerts_path
    store = AlertStore(alerts_path) if alerts_path.exists() else None
    alerts = gather_alerts(store, shipment)
    if store is not None:
        store.close()
    audit = AuditTrail(data / AUDIT_FILE) if (data / AUDIT_FILE).exists() else None
    report = report_for(registry, shipment, alerts, _library(cfg), audit=audit)
    registry.close()
    if audit is not None:
        audit.close()
    if cfg.journal_path.exists():
        report.journal_chain = head_line(*read_head(cfg.journal_path))
    language = normalize(lang) or cfg.gateway.language
    zone = cfg.gateway.timezone
    if fmt == "pdf":
        body = to_pdf(report, language, zone)
    else:
        body = (BOM + to_csv(report, language, zone)).encode()
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    target = out or Path(f"shipment-{shipment_id}.{fmt}")
    target.write_bytes(body)
    typer.echo(
        f"wrote {target} ({len(body)} bytes, signature: {report.signature_status})", err=True
    )
