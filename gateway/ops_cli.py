"""`vigil backup`, `vigil restore`, `vigil journal verify`, `vigil service install`: operations.

They work on the data directory of `-c CONFIG` (or VIGIL_CONFIG, VIGIL_DATA_DIR), also while the
gateway runs: backups copy each store with SQLite's online backup API, verification reads one
snapshot. docs/operations.md is the manual.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from gateway import backup as bk
from gateway.admin_cli import ConfigOpt, _config, anchor_for
from gateway.anchor import AnchorError, check_journal
from gateway.pipeline.archive import Archive
from gateway.pipeline.journal import verify_chain

journal_app = typer.Typer(no_args_is_help=True, help="Journal: verify its hash chain")
service_app = typer.Typer(no_args_is_help=True, help="systemd service: install")


def backup(
    target: Annotated[
        str, typer.Argument(metavar="DIR | verify DIR", help="new folder, or verify")
    ],
    folder: Annotated[Path | None, typer.Argument(metavar="[DIR]", show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """`vigil backup DIR`: copy every store into DIR (new or empty), online.
    `vigil backup verify DIR`: re-check its sums, integrity, audit and journal chains."""
    if target == "verify":
        if folder is None:
            typer.echo("usage: vigil backup verify DIR", err=True)
            raise typer.Exit(2)
        report = bk.verify_backup(folder)
        for line in report.lines:
            typer.echo(line)
        for p in report.problems:
            typer.echo(f"PROBLEM: {p}", err=True)
        if not report.ok:
            raise typer.Exit(1)
        typer.echo(f"{folder}: backup OK")
        return
    if folder is not None:
        typer.echo("usage: vigil backup DIR  |  vigil backup verify DIR", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    path = (
        Path(os.environ["VIGIL_CONFIG"])
        if config is None and os.environ.get("VIGIL_CONFIG")
        else config
    )
    try:
        result = bk.make_backup(
            Path(cfg.gateway.data_dir),
            Path(target),
            archive_dir=cfg.archive_dir,
            config_path=path,
            gateway=cfg.gateway.name,
        )
    except bk.BackupError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    m = result.manifest
    typer.echo(
        f"backup {result.path}: {len(m['files'])} files in {result.seconds:.1f} s; "
        f"audit head row {m['audit_head']['seq']}, journal head batch {m['journal_head']['batch']}"
    )


def restore(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="a backup made by vigil backup")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the new data directory (absent or empty)")
    ],
) -> None:
    """Restore a backup into a new, empty data directory (it is verified first)."""
    try:
        manifest = bk.restore(folder, data_dir, actor=bk.os_actor())
    except bk.BackupError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2 if "not empty" in str(e) else 1) from None
    typer.echo(
        f"restored {folder} (made {manifest['created']}) into {data_dir}; start the gateway with "
        f"VIGIL_DATA_DIR={data_dir} (its config is in {data_dir / 'config-from-backup'})"
    )


@journal_app.command("verify")
def journal_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="also compare the head with an anchor: a backup (FILE) or influx"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Walk the journal's hash chain through the archive; exit 1 naming the first broken batch."""
    cfg = _config(config)
    path = cfg.journal_path
    if not path.exists():
        typer.echo(f"{path}: no journal", err=True)
        raise typer.Exit(2)
    archive = Archive(cfg.archive_dir)
    res = verify_chain(path, archive)
    typer.echo(res.describe())
    ok = res.ok
    if anchor is not None:
        try:
            a = anchor_for(anchor, cfg)
        except AnchorError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        good, message = check_journal(path, archive, a)
        typer.echo(message)
        ok = ok and good
    if not ok:
        raise typer.Exit(1)


UNIT = "vigil.service"


@service_app.command("install")
def service_install(
    config: Annotated[Path, typer.Option("-c", "--config", help="the config file to run")],
    user: Annotated[str, typer.Option(help="the dedicated system user")] = "vigil",
    data_dir: Annotated[Path, typer.Option(help="the data directory")] = Path("/var/lib/vigil"),
    unit_dir: Annotated[Path, typer.Option(help="where the unit goes")] = Path(
        "/etc/systemd/system"
    ),
    start: Annotated[bool, typer.Option(help="enable and start it now")] = True,
) -> None:
    """Install the systemd unit (packaging/vigil.service) for this vigil, with its user."""
    text = render_unit(Path(sys.executable).parent / "vigil", config, data_dir, user)
    if shutil.which("useradd") and _missing_user(user):
        subprocess.run(
            [
                "useradd",
                "--system",
                "--home-dir",
                str(data_dir),
                "--shell",
                "/usr/sbin/nologin",
                user,
            ],
            check=True,
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    if not _missing_user(user):
        pw = pwd.getpwnam(user)
        os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    data_dir.chmod(0o750)
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / UNIT).write_text(text)
    typer.echo(f"wrote {unit_dir / UNIT}")
    if start and shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", UNIT], check=True)
        typer.echo("enabled and started: systemctl status vigil; journalctl -u vigil")


def _missing_user(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return True
    return False


def render_unit(vigil: Path, config: Path, data_dir: Path, user: str) -> str:
    """packaging/vigil.service with this machine's paths filled in."""
    template = resources.files("gateway").joinpath("packaging/vigil.service").read_text()
    return (
        template.replace("/opt/vigil/bin/vigil", str(vigil))
        .replace("/etc/vigil/vigil.yaml", str(config.resolve()))
        .replace("/var/lib/vigil", str(data_dir))
        .replace("User=vigil", f"User={user}")
        .replace("Group=vigil", f"Group={user}")
    )
