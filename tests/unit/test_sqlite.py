"""The shared SQLite helper: pragmas, the transaction block, the WHERE builder's LIKE escaping."""

from __future__ import annotations

import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.core.sqlite import ChangeWatch, Where, connect, escape_like, transaction

_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(s: str) -> str:
    """SQLite's LIKE ignores the case of ASCII letters only."""
    return s.translate(_FOLD)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = connect(tmp_path / "t.sqlite")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    yield db
    db.close()


def rows(db: sqlite3.Connection) -> list[tuple[int, str]]:
    return db.execute("SELECT k, v FROM t ORDER BY k").fetchall()


# -- connect ---------------------------------------------------------------------------------
def test_connect_pragmas(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert db.isolation_level is None
    db.close()

    db = connect(
        tmp_path / "b.sqlite",
        synchronous="NORMAL",
        autocommit=False,
        busy_timeout_ms=None,
        check_same_thread=True,
    )
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5_000  # the sqlite3 default
    assert db.isolation_level == ""  # the sqlite3 default
    db.execute("CREATE TABLE t (v)")
    db.execute("INSERT INTO t VALUES (1)")
    assert db.in_transaction  # Python's implicit transaction, until commit()
    db.commit()
    db.close()


def test_connect_refuses_other_synchronous(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        connect(tmp_path / "a.sqlite", synchronous="OFF; DROP TABLE t")  # type: ignore[arg-type]


# -- transaction -----------------------------------------------------------------------------
def test_transaction_commits(db: sqlite3.Connection, tmp_path: Path) -> None:
    with transaction(db) as tx:
        assert tx is db and db.in_transaction
        db.execute("INSERT INTO t VALUES (1, 'a')")
    assert not db.in_transaction
    other = connect(tmp_path / "t.sqlite")
    assert rows(other) == [(1, "a")]
    other.close()


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt()])
def test_transaction_rolls_back_and_reraises(db: sqlite3.Connection, exc: BaseException) -> None:
    db.execute("INSERT INTO t VALUES (1, 'kept')")
    with pytest.raises(type(exc)), transaction(db):
        db.execute("INSERT INTO t VALUES (2, 'lost')")
        db.execute("UPDATE t SET v = 'changed' WHERE k = 1")
        raise exc
    assert not db.in_transaction
    assert rows(db) == [(1, "kept")]
    with transaction(db):  # the connection is usable afterwards
        db.execute("INSERT INTO t VALUES (3, 'c')")
    assert rows(db) == [(1, "kept"), (3, "c")]


def test_transaction_rolls_back_when_commit_fails(tmp_path: Path) -> None:
    db = connect(tmp_path / "fk.sqlite")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO child VALUES (42)")  # checked at COMMIT
    assert not db.in_transaction
    assert db.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    db.close()


def test_immediate_takes_the_write_lock_at_begin(db: sqlite3.Connection, tmp_path: Path) -> None:
    other = connect(tmp_path / "t.sqlite", busy_timeout_ms=0)
    with transaction(db):
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        assert rows(other) == []  # readers still read (WAL)
    with transaction(db, immediate=False):
        other.execute("BEGIN IMMEDIATE")  # a deferred BEGIN has not taken the lock yet
        other.execute("ROLLBACK")
    other.close()


# -- Where -----------------------------------------------------------------------------------
def test_where_builds_in_order_and_skips_none() -> None:
    assert Where().build() == ("", [])
    assert Where().eq("a", None).ge("b", None).like_prefix("c", None).build() == ("", [])
    w = (
        Where()
        .raw("seq > ?", 0)
        .eq("actor", "ann")
        .eq("entity", None)
        .eq_or_prefix("action", "alert.*")
        .ge("ts", 5)
        .lt("ts", 9)
        .in_("kind", ["x", "y"])
    )
    assert w.build() == (
        " WHERE seq > ? AND actor = ? AND action LIKE ? ESCAPE '\\' AND ts >= ? AND ts < ?"
        " AND kind IN (?, ?)",
        [0, "ann", "alert.%", 5, 9, "x", "y"],
    )
    assert Where().eq_or_prefix("source", "fridge-1").build() == (" WHERE source = ?", ["fridge-1"])
    assert Where().gt("a", 1).le("b", 2).build() == (" WHERE a > ? AND b <= ?", [1, 2])


def test_where_against_sqlite(db: sqlite3.Connection) -> None:
    db.executemany(
        "INSERT INTO t VALUES (?, ?)",
        enumerate(["fridge-1", "fr_dge-1", "fridge_2", "f%", "x\\y", "other"]),
    )

    def select(w: Where) -> list[str]:
        where, args = w.build()
        return [r[0] for r in db.execute(f"SELECT v FROM t{where} ORDER BY k", args)]

    assert select(Where().eq_or_prefix("v", "fr_dge*")) == ["fr_dge-1"]
    assert select(Where().eq_or_prefix("v", "fridge_*")) == ["fridge_2"]
    assert select(Where().eq_or_prefix("v", "FRIDGE-*")) == ["fridge-1"]
    assert select(Where().eq_or_prefix("v", "f%*")) == ["f%"]
    assert select(Where().eq_or_prefix("v", "*")) == [
        "fridge-1",
        "fr_dge-1",
        "fridge_2",
        "f%",
        "x\\y",
        "other",
    ]
    assert select(Where().like_contains("v", "\\")) == ["x\\y"]
    assert select(Where().like_contains("v", "_")) == ["fr_dge-1", "fridge_2"]
    assert select(Where().in_("k", [])) == []
    assert select(Where().in_("k", [0, 5]).ge("k", 1)) == ["other"]


# Text with LIKE's wildcards and escape character over-represented; any other character that
# UTF-8 can carry, except NUL (SQLite's LIKE reads its pattern as a C string).
_TEXT = st.text(
    alphabet=st.sampled_from("%_\\")
    | st.sampled_from("*aAbB-. ")
    | st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=10,
)


def _near_misses(text: str) -> list[str]:
    """Values an unescaped pattern would wrongly match: each wildcard replaced by other text."""
    return [
        text,
        text + "tail",
        text.replace("%", ""),
        text.replace("%", "xyz"),
        text.replace("_", "q"),
        text.replace("\\", ""),
        text.swapcase(),
        "head" + text,
    ]


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, others=st.lists(_TEXT, max_size=5))
@example(text="\\", others=["\\\\", "x"])
@example(text="a_b%c", others=["axb%c", "a_byc", "A_B%C"])
def test_like_prefix_and_contains_match_literally(text: str, others: list[str]) -> None:
    values = [*_near_misses(text), *others]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t (v) VALUES (?)", [(v,) for v in values])

    def select(w: Where) -> list[str]:
        where, args = w.build()
        return [r[0] for r in db.execute(f"SELECT v FROM t{where} ORDER BY k", args)]

    assert select(Where().like_prefix("v", text)) == [
        v for v in values if fold(v).startswith(fold(text))
    ]
    assert select(Where().like_contains("v", text)) == [v for v in values if fold(text) in fold(v)]
    # The escaped text as a whole pattern matches itself and nothing that differs beyond case.
    matched = db.execute(
        "SELECT v FROM t WHERE v LIKE ? ESCAPE '\\' ORDER BY k", (escape_like(text),)
    ).fetchall()
    assert [r[0] for r in matched] == [v for v in values if fold(v) == fold(text)]
    db.close()


def test_change_watch_sees_only_other_connections_commits(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    mine, other = connect(path), connect(path)
    mine.execute("CREATE TABLE t (x INTEGER)")
    watch = ChangeWatch(every_s=3600)
    watch.mark(mine)
    assert watch.due() and not watch.due()  # at most once an interval
    with transaction(mine) as db:
        db.execute("INSERT INTO t VALUES (1)")
    assert not watch.changed(mine)  # its own commits are not news
    with transaction(other) as db:
        db.execute("INSERT INTO t VALUES (2)")
    assert watch.changed(mine)
    watch.mark(mine)
    assert not watch.changed(mine)
    mine.close()
    other.close()
