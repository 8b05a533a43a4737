"""`vigil lot` and `vigil shipment`: lots, their legs, shipments, release decisions, reports.

They work on the data directory of `-c CONFIG` (or VIGIL_CONFIG, VIGIL_DATA_DIR), also while the
gateway runs: the stores are SQLite in WAL mode and the gateway picks up changes within a second.
Changes are audited with the actor `cli:<os user>`; a release decision is signed by a vigil
user with the qa role, whose password is asked for (or read from VIGIL_USER_PASSWORD).
A leg opened or closed at a past time (a reason is then required) takes its readings from the
journal at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from alert_rules import AlertStore
from alert_rules.units import parse_duration
from gateway.admin_cli import PASSWORD_ENV, ConfigOpt, _actor, _config, _library
from gateway.config import VigilConfig
from gateway.core.eventtime import dt_to_ns
from gateway.core.i18n import normalize
from gateway.pipeline.journal import Journal
from gateway.records import Records
from gateway.records.audit import Signature
from gateway.records.lots import LegChange, LotError, LotNotFound
from gateway.records.reports import BOM
from gateway.records.reports.chain import chain_for, gather_chain_alerts
from gateway.records.reports.chain_csv import fmt_local, to_csv, zone_problem
from gateway.records.reports.chain_pdf import to_pdf
from gateway.records.users import AuthError, Perm

lot_app = typer.Typer(no_args_is_help=True, help="Lots: create, list, show, leg, decide, report")
leg_app = typer.Typer(no_args_is_help=True, help="Legs of lots: open, start, close")
shipment_app = typer.Typer(no_args_is_help=True, help="Shipments (transport legs): start, stop")
lot_app.add_typer(leg_app, name="leg")

AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="ISO 8601 with a zone, e.g. 2026-11-22T08:00:00+08:00 (default now)"),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="why (required for a time in the past; audited)")
]


def _at(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        typer.echo(f"error: --at {text!r} is not ISO 8601", err=True)
        raise typer.Exit(2) from None
    if dt.tzinfo is None:
        typer.echo(f"error: --at {text!r} has no time zone (add Z or +08:00)", err=True)
        raise typer.Exit(2)
    return dt_to_ns(dt)


@contextmanager
def _records(cfg: VigilConfig) -> Iterator[Records]:
    records = Records.open(Path(cfg.gateway.data_dir), traceability=cfg.traceability)
    try:
        yield records
    finally:
        records.close()


def _fail(e: Exception) -> typer.Exit:
    what = f"not found: {e.args[0]}" if isinstance(e, LotNotFound) else str(e)
    typer.echo(f"error: {what}", err=True)
    return typer.Exit(1)


def _audit_change(records: Records, action: str, c: LegChange) -> int:
    actor = _actor()
    audit = records.audit
    for old, new in c.closed:
        audit.record(
            actor, "leg.close", "leg", old.id, old.to_dict(), new.to_dict(), new.stop_reason
        )
    reason = c.new.stop_reason if action == "leg.close" else c.new.start_reason
    if c.shipment is not None:
        old_s, new_s = c.shipment
        audit.record(
            actor,
            "shipment.stop" if action == "leg.close" else "shipment.start",
            "shipment",
            new_s.id,
            old_s.to_dict() if old_s else None,
            new_s.to_dict(),
            reason,
        )
    row = audit.record(
        actor, action, "leg", c.new.id, c.old.to_dict() if c.old else None, c.new.to_dict(), reason
    )
    return row.seq


def _backfill(cfg: VigilConfig, records: Records) -> int:
    legs = records.lots.take_backfills()
    if not legs or not cfg.journal_path.exists():
        return 0
    journal = Journal(cfg.journal_path)
    try:
        return sum(records.lots.backfill(g, journal) for g in legs)
    finally:
        journal.close()


def _report_change(cfg: VigilConfig, records: Records, action: str, c: LegChange) -> None:
    seq = _audit_change(records, action, c)
    found = _backfill(cfg, records)
    g = c.new
    for _old, new in c.closed:
        typer.echo(f"closed {new.kind} leg {new.id} at {fmt_local(new.stopped_at_ns)}")
    when = g.stopped_at_ns if action == "leg.close" else g.started_at_ns
    typer.echo(
        f"{action.split('.')[1]} {g.kind} leg {g.id} ({g.asset}, lots {' '.join(g.lots) or '-'})"
        + (f" at {fmt_local(when)}" if when else " (planned: starts on leaving the origin)")
        + (f", {found} readings from the journal" if found else "")
        + f" — audit row {seq}"
    )


# -- lots -------------------------------------------------------------------------------------
@lot_app.command("create")
def lot_create(
    lot_id: Annotated[str, typer.Argument(metavar="LOT", help="batch number (批号)")],
    product: Annotated[str, typer.Option("--product", help="product name")],
    profile: Annotated[str, typer.Option("--profile", help="product profile")],
    expiry: Annotated[str, typer.Option("--expiry", help="YYYY-MM-DD")],
    code: Annotated[
        list[str] | None, typer.Option("--code", help="a traceability code (追溯码); repeat")
    ] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    config: ConfigOpt = None,
) -> None:
    """Create a lot."""
    cfg = _config(config)
    try:
        exp = date.fromisoformat(expiry)
    except ValueError:
        typer.echo(f"error: --expiry {expiry!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(2) from None
    library = _library(cfg)
    if library is not None and profile not in library.profiles:
        typer.echo(f"error: unknown product profile {profile!r}", err=True)
        raise typer.Exit(1)
    with _records(cfg) as records:
        try:
            lot = records.lots.create_lot(
                lot_id, product, profile, exp, _actor(), codes=code or (), note=note
            )
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        row = records.audit.record(
            _actor(), "lot.create", "lot", lot.id, None, lot.to_dict(), note or None
        )
        until = records.lots.retention_until(lot)
    typer.echo(
        f"created lot {lot.id} ({product}, {profile}), kept until {until} — audit row {row.seq}"
    )


@lot_app.command("list")
def lot_list(
    code: Annotated[str | None, typer.Option("--code", help="lots with this code")] = None,
    config: ConfigOpt = None,
) -> None:
    """List lots, newest first."""
    with _records(_config(config)) as records:
        for lot in records.lots.list_lots(code=code):
            legs = records.lots.legs_of(lot.id)
            d = records.lots.decision(lot.id)
            state = (
                "no decision"
                if d is None
                else d.decision + (" (needs review)" if d.needs_review else "")
            )
            typer.echo(
                f"{lot.id:<20} {lot.product:<24} {lot.profile:<22} expires {lot.expiry} "
                f"{len(legs)} legs, {state}"
            )


@lot_app.command("show")
def lot_show(
    lot_id: Annotated[str, typer.Argument(metavar="LOT")],
    tz: Annotated[
        str | None, typer.Option("--tz", help="display time zone (default gateway.timezone)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """The lot's chain: legs, figures, stability budget, verdict, decision (in English)."""
    cfg = _config(config)
    tz = tz or cfg.gateway.timezone
    _zone(tz)
    with _records(cfg) as records:
        try:
            r = chain_for(records.lots, lot_id, _library(cfg))
        except LotNotFound as e:
            raise _fail(e) from None
    typer.echo(f"lot {r.lot.id}: {r.lot.product} ({r.lot.profile}), expires {r.lot.expiry}")
    for lr in r.legs:
        g, s = lr.leg, lr.summary
        typer.echo(
            f"  {g.kind:<11} {g.id:<28} {(g.site + '/') if g.site else ''}{g.asset:<14} "
            f"{fmt_local(g.started_at_ns, tz)} .. {fmt_local(g.stopped_at_ns, tz) or 'open'}  "
            f"{s.n} readings, min {_f(s.min)} max {_f(s.max)} MKT {_f(s.mkt)} °C, "
            f"{len(s.excursions)} excursions"
        )
    t = r.totals
    typer.echo(
        f"  chain: {t.n} readings, min {_f(t.min)} max {_f(t.max)} MKT {_f(t.mkt)} °C, "
        f"{t.excursions} excursions, record {t.completeness:.1%} complete"
    )
    if r.use is not None:
        for b in r.use.bands:
            typer.echo(
                f"  budget {b.name} ({b.label} °C): {b.consumed_ns / 3.6e12:.2f} h of "
                f"{b.allowed_ns / 3.6e12:.2f} h used ({b.share:.0%}), "
                f"{b.remaining_ns / 3.6e12:.2f} h left"
            )
    typer.echo(f"  verdict: {r.verdict}")
    for reason in r.reasons:
        typer.echo(f"    - {reason.render('en', tz)}")
    d = r.decision
    if d is not None:
        typer.echo(
            f"  decision: {d.decision} by {d.signer_name} ({d.decided_by}) at "
            f"{fmt_local(d.decided_at_ns, tz)}"
            + (f"; NEEDS REVIEW: {d.review_reason}" if d.needs_review else "")
        )


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _zone(tz: str) -> None:
    why = zone_problem(tz)
    if why:
        typer.echo(f"error: {why}", err=True)
        raise typer.Exit(2)


@lot_app.command("decide")
def lot_decide(
    lot_id: Annotated[str, typer.Argument(metavar="LOT")],
    decision: Annotated[str, typer.Option("--decision", help="release, quarantine or reject")],
    user: Annotated[str, typer.Option("--user", help="the signing vigil user (role qa)")],
    meaning: Annotated[str, typer.Option("--meaning", help="what the signature means")],
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    config: ConfigOpt = None,
) -> None:
    """Release, quarantine or reject a lot, signed with a qa user's password (prompted, or
    VIGIL_USER_PASSWORD)."""
    if len(meaning.strip()) < 3:
        typer.echo("error: --meaning needs at least 3 characters", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    env = os.environ.get(PASSWORD_ENV)
    if env:
        password = env
    elif sys.stdin.isatty():
        password = str(typer.prompt(f"password of {user} (signature)", hide_input=True))
    else:
        typer.echo(f"no terminal for the password prompt: set {PASSWORD_ENV}", err=True)
        raise typer.Exit(2)
    with _records(cfg) as records:
        try:
            signer = records.users.verify_password(user, password)
        except AuthError:
            records.audit.record(
                user,
                "signature.failed",
                "lot",
                lot_id,
                None,
                None,
                "password entered for the signature did not match",
                None,
                "cli",
            )
            typer.echo("error: signature refused: wrong user name or password", err=True)
            raise typer.Exit(1) from None
        if not signer.can(Perm.REPORT_SIGN):
            typer.echo(f"error: role {signer.role} may not sign release decisions", err=True)
            raise typer.Exit(1)
        alerts_path = cfg.alerts_path
        store = AlertStore(alerts_path) if alerts_path.exists() else None
        try:
            per_leg, own = gather_chain_alerts(store, lot_id, records.lots.legs_of(lot_id))
        finally:
            if store is not None:
                store.close()
        now = time.time_ns()
        try:
            r = chain_for(records.lots, lot_id, _library(cfg), per_leg, own, None, now)
            old, new = records.lots.decide(
                lot_id,
                decision,
                signer.username,
                signer.name,
                meaning,
                r.evidence_sha256,
                comment,
                now_ns=now,
            )
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        sig = Signature(signer.name, signer.username, meaning, now)
        row = records.audit.record(
            signer.username,
            f"lot.{decision}",
            "lot",
            lot_id,
            old.to_dict() if old else None,
            new.to_dict() | {"verdict": r.verdict, "reasons": [str(x) for x in r.reasons]},
            comment,
            sig,
            "cli",
        )
    typer.echo(
        f"lot {lot_id}: {decision} signed by {signer.name} (verdict {r.verdict}), "
        f"evidence {r.evidence_sha256[:16]}… — audit row {row.seq}"
    )


@lot_app.command("report")
def lot_report(
    lot_id: Annotated[str, typer.Argument(metavar="LOT")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="pdf or csv")] = "pdf",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="file (default chain-LOT.FORMAT; - stdout)")
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="display time zone, e.g. Asia/Shanghai (default gateway.timezone)"
        ),
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="zh-CN or en (default: gateway.language)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Write the chain report of a lot: route, legs, budget, excursions, verdict, decision; in
    gateway.language (or --lang), times in gateway.timezone (or --tz)."""
    if fmt not in ("pdf", "csv"):
        typer.echo("error: --format must be pdf or csv", err=True)
        raise typer.Exit(2)
    if lang is not None and normalize(lang) is None:
        typer.echo(f"error: --lang {lang!r}: zh-CN or en", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    zone = tz or cfg.gateway.timezone
    _zone(zone)
    language = normalize(lang) or cfg.gateway.language
    with _records(cfg) as records:
        alerts_path = cfg.alerts_path
        store = AlertStore(alerts_path) if alerts_path.exists() else None
        try:
            per_leg, own = gather_chain_alerts(store, lot_id, records.lots.legs_of(lot_id))
            r = chain_for(records.lots, lot_id, _library(cfg), per_leg, own)
        except LotNotFound as e:
            raise _fail(e) from None
        finally:
            if store is not None:
                store.close()
    body = to_pdf(r, language, zone) if fmt == "pdf" else (BOM + to_csv(r, language, zone)).encode()
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    target = out or Path(f"chain-{lot_id}.{fmt}")
    target.write_bytes(body)
    typer.echo(f"wrote {target} ({len(body)} bytes, verdict {r.verdict})", err=True)


# -- legs -------------------------------------------------------------------------------------
@leg_app.command("open")
def leg_open(
    lots: Annotated[list[str], typer.Argument(metavar="LOT...", help="the lots it carries")],
    kind: Annotated[
        str, typer.Option("--kind", help="storage, transport, cross_dock or destination")
    ],
    asset: Annotated[str, typer.Option("--asset", help="room, truck, container")],
    site: Annotated[str | None, typer.Option("--site")] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="a logger; repeat (default: all)")
    ] = None,
    leg_id: Annotated[str | None, typer.Option("--id")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="transport: the shipment's profile")
    ] = None,
    origin: Annotated[str | None, typer.Option("--origin")] = None,
    destination: Annotated[str | None, typer.Option("--destination")] = None,
    geofence: Annotated[
        bool, typer.Option("--geofence", help="stages and stop from the truck's positions")
    ] = False,
    planned: Annotated[
        bool, typer.Option("--planned", help="start on leaving the origin's geofence")
    ] = False,
    interval: Annotated[
        str | None, typer.Option("--interval", help="the loggers' interval, e.g. 5m")
    ] = None,
    at: AtOpt = None,
    reason: ReasonOpt = None,
    note: Annotated[str, typer.Option("--note")] = "",
    config: ConfigOpt = None,
) -> None:
    """Open a leg for lots (closing the leg they are in at its start)."""
    cfg = _config(config)
    interval_s = None
    if interval is not None:
        try:
            interval_s = parse_duration(interval)
        except ValueError as e:
            typer.echo(f"error: --interval: {e}, got {interval!r}", err=True)
            raise typer.Exit(2) from None
    with _records(cfg) as records:
        try:
            c = records.lots.open_leg(
                lots,
                kind,
                asset,
                _actor(),
                leg_id=leg_id,
                site=site,
                devices=device or (),
                profile=profile or "",
                origin=origin or "",
                destination=destination or "",
                geofence=geofence,
                planned=planned,
                interval_s=interval_s,
                note=note,
                started_at_ns=_at(at),
                reason=reason,
            )
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        _report_change(cfg, records, "leg.open", c)


@leg_app.command("start")
def leg_start(
    leg_id: Annotated[str, typer.Argument(metavar="LEG")],
    at: AtOpt = None,
    reason: ReasonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start a planned leg by hand."""
    cfg = _config(config)
    with _records(cfg) as records:
        try:
            c = records.lots.start_leg(leg_id, _actor(), started_at_ns=_at(at), reason=reason)
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        _report_change(cfg, records, "leg.start", c)


@leg_app.command("close")
def leg_close(
    leg_id: Annotated[str, typer.Argument(metavar="LEG")],
    at: AtOpt = None,
    reason: ReasonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Close a leg (a transport leg's shipment stops with it)."""
    cfg = _config(config)
    with _records(cfg) as records:
        try:
            c = records.lots.close_leg(leg_id, _actor(), stopped_at_ns=_at(at), reason=reason)
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        _report_change(cfg, records, "leg.close", c)


# -- shipments --------------------------------------------------------------------------------
@shipment_app.command("start")
def shipment_start(
    asset: Annotated[str, typer.Argument(metavar="ASSET", help="the truck or container")],
    lot: Annotated[list[str] | None, typer.Option("--lot", help="a lot it carries; repeat")] = None,
    profile: Annotated[str | None, typer.Option("--profile")] = None,
    shipment_id: Annotated[str | None, typer.Option("--id")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    origin: Annotated[str | None, typer.Option("--origin")] = None,
    destination: Annotated[str | None, typer.Option("--destination")] = None,
    at: AtOpt = None,
    reason: ReasonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start a shipment: the transport leg of its lots."""
    cfg = _config(config)
    if not lot and not profile:
        typer.echo("error: give --profile, or --lot with lots that have one", err=True)
        raise typer.Exit(2)
    with _records(cfg) as records:
        try:
            c = records.lots.open_leg(
                lot or [],
                "transport",
                asset,
                _actor(),
                leg_id=shipment_id,
                site=site,
                profile=profile or "",
                origin=origin or "",
                destination=destination or "",
                started_at_ns=_at(at),
                reason=reason,
            )
        except (LotError, LotNotFound) as e:
            raise _fail(e) from None
        _report_change(cfg, records, "leg.open", c)


@shipment_app.command("stop")
def shipment_stop(
    shipment_id: Annotated[str, typer.Argument(metavar="ID")],
    at: AtOpt = None,
    reason: ReasonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop a shipment (and close its transport leg)."""
    leg_close(shipment_id, at, reason, config)
