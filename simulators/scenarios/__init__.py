"""Scenario files shipped with vigil (package data), found by name."""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """Shipped scenario names, without the .yaml suffix."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def path(name: str) -> Path:
    """The file of a shipped scenario: path("demo") or path("demo.yaml")."""
    stem = name.removesuffix(".yaml")
    p = _DIR / f"{stem}.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"no shipped scenario {name!r}; have: {', '.join(names())}")
    return p
