"""Keep the translation catalogs: `python scripts/i18n.py extract|compile|check` (`make i18n`).

extract  collects every msgid (Python `_()`, `N_()`, `gettext()`; the web console's `_()`,
         `fmt()` and `_m()` in app.js and `data-i18n*` attributes in index.html; `message:`
         templates of the rule packs) into gateway/locale/vigil.pot and merges it into each
         language's .po
compile  writes the .mo files next to the .po files (committed: an installed package needs them)
check    exits 1 when the .pot is out of date, a zh-CN msgid lacks a translation (or its
         translation names other placeholders), or a .mo differs from its .po
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "gateway" / "locale"
POT = LOCALE / "vigil.pot"
LANGS = {"zh_CN": "zh-CN", "en": "en"}
SOURCES = ("gateway", "alert_rules", "collectors")
KEYWORDS = {"_": None, "_m": None, "fmt": (1,), "N_": None, "gettext": (1,)}

_ATTR = re.compile(r'data-i18n(?:-[a-z]+)?="([^"]+)"')


def extract_html(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator:
    """`data-i18n="msgid"` (element text) and `data-i18n-title="msgid"` etc. (attributes)."""
    for lineno, line in enumerate(fileobj.read().decode("utf-8").splitlines(), 1):
        for m in _ATTR.finditer(line):
            yield lineno, "_", m.group(1), []


def extract_yaml(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator:
    """`message:` templates of rule packs (shown to people as alert texts)."""
    doc = yaml.safe_load(fileobj.read().decode("utf-8"))
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "message" and isinstance(v, str):
                    yield 1, "_", v, []
                else:
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


METHODS = [
    ("**/web/**.js", "javascript"),
    ("**/web/**.html", extract_html),
    ("**/packs/**.yaml", extract_yaml),
    ("**.py", "python"),
]


def template() -> Catalog:
    cat = Catalog(project="vigil", charset="utf-8")
    for src in SOURCES:
        found = extract_from_dir(
            ROOT / src,
            method_map=METHODS,
            options_map={"**/web/**.js": {"jsx": "false"}},
            keywords=KEYWORDS,
            comment_tags=("Translators:",),
        )
        for filename, lineno, message, comments, _context in found:
            if not message or isinstance(message, tuple):
                continue
            cat.add(message, None, [(f"{src}/{filename}", lineno)], auto_comments=comments)
    return cat


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def _write_po(path: Path, cat: Catalog) -> None:
    buf = io.BytesIO()
    write_po(buf, cat, width=100, omit_header=False, sort_output=True, include_lineno=False)
    path.write_bytes(buf.getvalue())


def _mo_bytes(cat: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, cat, use_fuzzy=False)
    return buf.getvalue()


def po_path(code: str) -> Path:
    return LOCALE / code / "LC_MESSAGES" / "vigil.po"


def extract() -> None:
    pot = template()
    LOCALE.mkdir(parents=True, exist_ok=True)
    _write_po(POT, pot)
    for code in LANGS:
        path = po_path(code)
        path.parent.mkdir(parents=True, exist_ok=True)
        cat = _read(path, code) if path.exists() else Catalog(locale=code, project="vigil")
        cat.update(pot, no_fuzzy_matching=True)
        cat.obsolete.clear()
        _write_po(path, cat)


def compile_mo() -> None:
    for code in LANGS:
        path = po_path(code)
        path.with_suffix(".mo").write_bytes(_mo_bytes(_read(path, code)))


def problems() -> list[str]:
    out = []
    wanted = {m.id for m in template() if m.id}
    have = {m.id for m in _read(POT) if m.id}
    if wanted != have:
        missing, extra = sorted(wanted - have), sorted(have - wanted)
        out.append(f"{POT.name} out of date (run make i18n): new {missing[:5]}, gone {extra[:5]}")
    zh = _read(po_path("zh_CN"), "zh_CN")
    for msgid in sorted(wanted):
        m = zh.get(msgid)
        if m is None or not m.string or m.fuzzy:
            out.append(f"zh_CN: no translation for {msgid!r}")
            continue
        names = set(re.findall(r"\{(\w+)", msgid))
        if set(re.findall(r"\{(\w+)", m.string)) != names:
            out.append(f"zh_CN: {msgid!r} → {m.string!r} names other placeholders")
    for code in LANGS:
        path = po_path(code)
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != _mo_bytes(_read(path, code)):
            out.append(f"{mo.relative_to(ROOT)} differs from its .po (run make i18n)")
    return out


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "extract":
        extract()
    elif cmd == "compile":
        compile_mo()
    elif cmd == "check":
        found = problems()
        for p in found:
            print(p)
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
