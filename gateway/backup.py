"""Backups: a consistent online copy of every store, checked, and restored into a new data dir.

GSP wants the monitoring data backed up daily. `make_backup` copies each SQLite store of the data
directory (journal, alerts, audit, users, shipments, and any other `*.sqlite` a newer vigil keeps
there) with SQLite's online backup API, in one step each, so the gateway keeps running and each
copy is one consistent snapshot; then the archive segments (sealed ones are immutable and are
hard-linked from the previous backup in the same destination when unchanged) and the config file.
`MANIFEST.json`, written last, lists every file with its SHA-256 and records the audit head and the
journal chain head: it is also an anchor for `vigil audit verify --anchor`.

`verify_backup` re-checks the sums, SQLite's integrity check of each store, the audit chain and
the journal chain of the copy. `restore` copies a verified backup into an empty directory and
records the restore in the restored audit trail.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gateway.core.sqlite import connect_readonly
from gateway.pipeline.archive import Archive, file_sha256
from gateway.pipeline.journal import read_head, verify_chain
from gateway.records import AUDIT_FILE
from gateway.records.audit import AuditTrail

log = logging.getLogger("vigil.backup")

MANIFEST = "MANIFEST.json"
FORMAT = 1
STORES_DIR = "stores"
ARCHIVE_DIR = "archive"
CONFIG_DIR = "config"
JOURNAL_FILE = "journal.sqlite"


class BackupError(Exception):
    """A backup that cannot be made, verified or restored; the message says why."""


def vigil_version() -> str:
    try:
        return version("vigil-gateway")
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    return file_sha256(path)


def _copy_sqlite(src: Path, dst: Path) -> None:
    """One consistent snapshot of a live store (WAL: writers go on meanwhile)."""
    source = connect_readonly(src)
    target = sqlite3.connect(dst)
    try:
        source.backup(target, pages=-1)  # all pages in one step: one read transaction
        target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    finally:
        target.close()
        source.close()


def _previous_backup(dest: Path, current: Path) -> Path | None:
    done = (
        sorted(p for p in dest.iterdir() if p != current and (p / MANIFEST).is_file())
        if dest.is_dir()
        else []
    )
    return done[-1] if done else None


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float
    linked: int = 0
    """Sealed archive segments hard-linked from the previous backup (unchanged)."""


def make_backup(
    data_dir: Path,
    target: Path,
    *,
    archive_dir: Path | None = None,
    config_path: Path | None = None,
    gateway: str = "",
    link_from: Path | None = None,
) -> BackupResult:
    """Copy every store of `data_dir` into `target` (which must not exist or be empty)."""
    started = time.monotonic()
    created_ns = time.time_ns()
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target}: not empty; a backup goes into a new folder")
    stores = sorted(p for p in data_dir.glob("*.sqlite") if p.is_file())
    if not stores:
        raise BackupError(f"{data_dir}: no stores (*.sqlite) to back up")
    (target / STORES_DIR).mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for src in stores:
        dst = target / STORES_DIR / src.name
        _copy_sqlite(src, dst)
        files.append(_entry(target, dst))
    archive = Archive(archive_dir or data_dir / "archive")
    linked = 0
    if archive.root.is_dir():
        sealed = {e["file"]: e["sha256"] for e in archive.manifest() if e.get("kind") == "sealed"}
        for _day, seg in archive.segments():
            rel = seg.relative_to(archive.root)
            dst = target / ARCHIVE_DIR / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            old = link_from / ARCHIVE_DIR / rel if link_from else None
            if (
                str(rel) in sealed
                and old is not None
                and old.is_file()
                and _sha256(old) == sealed[str(rel)]
            ):
                os.link(old, dst)
                linked += 1
            elif str(rel) in sealed:
                shutil.copy2(seg, dst)
            else:
                _copy_sqlite(seg, dst)  # today's segment may be written meanwhile
            files.append(_entry(target, dst))
        if archive.manifest_path.is_file():
            dst = target / ARCHIVE_DIR / archive.manifest_path.name
            shutil.copy2(archive.manifest_path, dst)
            files.append(_entry(target, dst))
    if config_path is not None and config_path.is_file():
        dst = target / CONFIG_DIR / config_path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(config_path, dst)
        os.chmod(dst, 0o600)
        files.append(_entry(target, dst))
    audit_head = _audit_head(target / STORES_DIR / AUDIT_FILE)
    journal = target / STORES_DIR / JOURNAL_FILE
    batch, jhash = read_head(journal) if journal.exists() else (0, "")
    manifest = {
        "format": FORMAT,
        "vigil_version": vigil_version(),
        "gateway": gateway,
        "created_ns": created_ns,
        "created": datetime.fromtimestamp(created_ns / 1e9, UTC).isoformat(),
        "data_dir": str(data_dir.resolve()),
        "files": files,
        "audit_head": {"seq": audit_head[0], "hash": audit_head[1]},
        "journal_head": {"batch": batch, "hash": jhash},
    }
    tmp = target / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target / MANIFEST)
    return BackupResult(target, manifest, time.monotonic() - started, linked)


def _entry(root: Path, path: Path) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(root)),
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
    }


def _audit_head(path: Path) -> tuple[int, str]:
    if not path.exists():
        return 0, ""
    db = connect_readonly(path)
    try:
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return (int(row[0]), str(row[1])) if row else (0, "")


def read_manifest(backup: Path) -> dict[str, Any]:
    path = backup / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{backup}: no {MANIFEST}: not a vigil backup, or it did not finish"
        ) from None
    except ValueError as e:
        raise BackupError(f"{path}: not JSON ({e})") from None
    if int(manifest.get("format", 0)) > FORMAT:
        raise BackupError(f"{path}: backup format {manifest['format']} is newer than this vigil")
    return manifest


@dataclass
class VerifyReport:
    ok: bool
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def verify_backup(backup: Path) -> VerifyReport:
    """Sums, SQLite integrity, the audit chain and the journal chain of a backup."""
    rep = VerifyReport(True)
    try:
        manifest = read_manifest(backup)
    except BackupError as e:
        return VerifyReport(False, [], [str(e)])
    for f in manifest["files"]:
        path = backup / f["path"]
        if not path.is_file():
            rep.problems.append(f"{f['path']}: missing")
        elif _sha256(path) != f["sha256"]:
            rep.problems.append(f"{f['path']}: SHA-256 differs from the manifest (file changed)")
    rep.lines.append(f"{len(manifest['files'])} files, SHA-256 checked")
    bad: set[str] = set()
    for store in sorted((backup / STORES_DIR).glob("*.sqlite")):
        try:
            db = connect_readonly(store, immutable=True)
            try:
                result = db.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            result = str(e)
        if result != "ok":
            bad.add(store.name)
            rep.problems.append(f"{store.name}: SQLite integrity check: {result}")
    rep.lines.append("SQLite integrity checked")
    audit_path = backup / STORES_DIR / AUDIT_FILE
    if audit_path.exists() and AUDIT_FILE not in bad:
        audit = AuditTrail.open_readonly(audit_path, immutable=True)
        res = audit.verify()
        audit.close()
        if not res.ok:
            rep.problems.append(res.describe())
        else:
            rep.lines.append(res.describe())
        head = manifest["audit_head"]
        if res.ok and (res.rows, res.head_hash) != (head["seq"], head["hash"] or res.head_hash):
            rep.problems.append(
                f"audit head is row {res.rows} {res.head_hash}, the manifest says row "
                f"{head['seq']} {head['hash']}"
            )
    journal = backup / STORES_DIR / JOURNAL_FILE
    if journal.exists() and JOURNAL_FILE not in bad:
        chain = verify_chain(journal, Archive(backup / ARCHIVE_DIR))
        (rep.lines if chain.ok else rep.problems).append(chain.describe())
        jh = manifest["journal_head"]
        if chain.ok and (chain.head_seq, chain.head_hash) != (jh["batch"], jh["hash"]):
            rep.problems.append(
                f"journal head is batch {chain.head_seq}, the manifest says batch {jh['batch']}"
            )
    rep.ok = not rep.problems
    return rep


def restore(
    backup: Path, data_dir: Path, *, actor: str, archive_dir: Path | None = None
) -> dict[str, Any]:
    """Copy a verified backup into `data_dir`, which must be empty or absent."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(
            f"{data_dir}: not empty; restore goes into a new, empty data directory (the gateway "
            "stopped), never over live stores"
        )
    rep = verify_backup(backup)
    if not rep.ok:
        raise BackupError("the backup does not verify: " + "; ".join(rep.problems))
    manifest = read_manifest(backup)
    data_dir.mkdir(parents=True, exist_ok=True)
    for store in (backup / STORES_DIR).glob("*.sqlite"):
        shutil.copy2(store, data_dir / store.name)
        os.chmod(data_dir / store.name, 0o600)
    src_archive = backup / ARCHIVE_DIR
    if src_archive.is_dir():
        dst = archive_dir or data_dir / "archive"
        shutil.copytree(src_archive, dst, dirs_exist_ok=True)
    config = backup / CONFIG_DIR
    if config.is_dir():
        shutil.copytree(config, data_dir / "config-from-backup", dirs_exist_ok=True)
    audit = AuditTrail(data_dir / AUDIT_FILE)
    try:
        audit.record(
            actor,
            "backup.restore",
            "data_dir",
            str(data_dir.resolve()),
            None,
            {
                "backup": str(backup.resolve()),
                "created": manifest["created"],
                "manifest_sha256": hashlib.sha256((backup / MANIFEST).read_bytes()).hexdigest(),
                "audit_head": manifest["audit_head"],
                "journal_head": manifest["journal_head"],
            },
            "restored with vigil restore",
        )
    finally:
        audit.close()
    return manifest


def os_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def backup_name(gateway: str, now_ns: int) -> str:
    stamp = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"vigil-{gateway}-{stamp}"


def rotate(dest: Path, gateway: str, keep: int) -> list[Path]:
    """Remove the oldest complete backups of this gateway beyond `keep`; returns those removed."""
    mine = sorted(
        p for p in dest.glob(f"vigil-{gateway}-*") if p.is_dir() and (p / MANIFEST).is_file()
    )
    removed = mine[: max(0, len(mine) - keep)]
    for p in removed:
        shutil.rmtree(p)
    return removed


def run_scheduled(
    data_dir: Path,
    dest: Path,
    *,
    gateway: str,
    keep: int,
    archive_dir: Path | None,
    config_path: Path | None,
) -> tuple[BackupResult, VerifyReport, list[Path]]:
    """The daily backup: a dated folder in `dest`, verified, then rotation."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / backup_name(gateway, time.time_ns())
    previous = _previous_backup(dest, target)
    result = make_backup(
        data_dir,
        target,
        archive_dir=archive_dir,
        config_path=config_path,
        gateway=gateway,
        link_from=previous,
    )
    report = verify_backup(target)
    if not report.ok:
        raise BackupError("the new backup does not verify: " + "; ".join(report.problems))
    return result, report, rotate(dest, gateway, keep)
