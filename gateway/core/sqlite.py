"""The one way vigil's stores open SQLite, run a transaction and build a filtered query.

Every store (journal, audit trail, users, shipments, alerts, cycles) is an SQLite file in WAL mode.
Each used to carry its own copy of the connect-and-pragma code, of the BEGIN / COMMIT / ROLLBACK
block and of the WHERE builder with LIKE escaping; copies drift (a forgotten busy_timeout, an
unescaped `_` that matches any character), so they live here once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

Synchronous = Literal["FULL", "NORMAL"]
"""FULL: a commit survives power loss. NORMAL (WAL): it survives a process crash, fewer fsyncs."""

_SYNCHRONOUS = frozenset({"FULL", "NORMAL"})


def connect(
    path: Path | str,
    *,
    synchronous: Synchronous = "FULL",
    check_same_thread: bool = False,
    autocommit: bool = True,
    busy_timeout_ms: int | None = 10_000,
    wal: bool = True,
) -> sqlite3.Connection:
    """Open `path` in WAL mode (or, `wal=False`, with a rollback journal: one self-contained
    file, for archive segments) with the given durability.

    `autocommit` True (isolation_level=None): every statement commits by itself unless the store
    opens a transaction with `transaction()`. False: the sqlite3 module's default implicit
    transactions (a write opens one), made durable by the store's own `commit()`.
    `busy_timeout_ms` None keeps the sqlite3 module's default (5 s).
    """
    if synchronous not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    if autocommit:
        db = sqlite3.connect(path, check_same_thread=check_same_thread, isolation_level=None)
    else:
        db = sqlite3.connect(path, check_same_thread=check_same_thread)
    db.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if busy_timeout_ms is not None:
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return db


def connect_readonly(path: Path | str, *, immutable: bool = False) -> sqlite3.Connection:
    """Open `path` for reading only: verification, backups and reports never change a store.

    `immutable`: the file cannot change while open (a sealed archive segment), so SQLite takes
    no locks and creates no side files. Raises sqlite3.OperationalError when it does not exist.
    """
    uri = Path(path).resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    return db


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN [IMMEDIATE] … COMMIT on an autocommit connection; ROLLBACK and re-raise on any
    exception, KeyboardInterrupt and task cancellation included, or when COMMIT itself fails.

    IMMEDIATE takes the write lock at BEGIN, so a writer waits (busy_timeout) there rather than
    failing half way through.
    """
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def escape_like(text: str) -> str:
    """`text` as a LIKE pattern matching itself literally, for `LIKE ? ESCAPE '\\'`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Where:
    """Conditions joined with AND, and their parameters in order.

    A None value adds nothing: the stores' filters are optional arguments where None means "any"
    (and `col = NULL` would match nothing anyway).

        where, args = Where().eq("rule", rule).ge("raised_at", since).build()
        db.execute(f"SELECT * FROM alerts{where} ORDER BY id LIMIT ?", [*args, limit])
    """

    __slots__ = ("params", "terms")

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.params: list[Any] = []

    def raw(self, sql: str, *params: Any) -> Where:
        """A condition written out, e.g. `stopped_at_ns IS NULL`."""
        self.terms.append(sql)
        self.params.extend(params)
        return self

    def _op(self, col: str, op: str, value: Any) -> Where:
        if value is not None:
            self.terms.append(f"{col} {op} ?")
            self.params.append(value)
        return self

    def eq(self, col: str, value: Any) -> Where:
        return self._op(col, "=", value)

    def gt(self, col: str, value: Any) -> Where:
        return self._op(col, ">", value)

    def ge(self, col: str, value: Any) -> Where:
        return self._op(col, ">=", value)

    def lt(self, col: str, value: Any) -> Where:
        return self._op(col, "<", value)

    def le(self, col: str, value: Any) -> Where:
        return self._op(col, "<=", value)

    def in_(self, col: str, values: Iterable[Any] | None) -> Where:
        """`col IN (...)`; an empty collection matches nothing."""
        if values is not None:
            vs = list(values)
            self.terms.append(f"{col} IN ({', '.join('?' * len(vs))})")
            self.params.extend(vs)
        return self

    def like_prefix(self, col: str, text: str | None) -> Where:
        """Values starting with `text`, taken literally: `%`, `_` and `\\` are not wildcards
        (ASCII letters still match either case, as SQLite's LIKE does)."""
        if text is not None:
            self.raw(f"{col} LIKE ? ESCAPE '\\'", escape_like(text) + "%")
        return self

    def like_contains(self, col: str, text: str | None) -> Where:
        """Values containing `text`, taken literally."""
        if text is not None:
            self.raw(f"{col} LIKE ? ESCAPE '\\'", "%" + escape_like(text) + "%")
        return self

    def eq_or_prefix(self, col: str, pattern: str | None) -> Where:
        """The API's filter syntax: `fridge-*` is a prefix, anything else an exact value."""
        if pattern is not None and pattern.endswith("*"):
            return self.like_prefix(col, pattern[:-1])
        return self.eq(col, pattern)

    def build(self) -> tuple[str, list[Any]]:
        """(" WHERE a AND b", params), or ("", []) when there is no condition."""
        sql = " WHERE " + " AND ".join(self.terms) if self.terms else ""
        return sql, list(self.params)


class ChangeWatch:
    """Whether another connection (the CLI, a second process) committed to the file since the
    last `mark()`, asked through `PRAGMA data_version` at most every `every_s` seconds: stores that
    keep an in-memory index of their rows reload it only then."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._version = -1
        self._checked = 0.0

    def mark(self, db: sqlite3.Connection) -> None:
        """The index now reflects the file as `db` sees it (call under the store's lock)."""
        self._version = db.execute("PRAGMA data_version").fetchone()[0]

    def due(self) -> bool:
        """Time to look again (at most every `every_s`)."""
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return False
        self._checked = now
        return True

    def changed(self, db: sqlite3.Connection) -> bool:
        """Another connection committed since `mark()` (call under the store's lock)."""
        return bool(db.execute("PRAGMA data_version").fetchone()[0] != self._version)
