"""docs/notifiers.md: every worked configuration in it validates, and there is one for each
channel kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gateway.notifiers.config import ChannelConfig, NotifiersConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifiers.md"


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_every_worked_config_validates_and_every_kind_has_one() -> None:
    merged: dict[str, Any] = {"channels": {}, "routes": {}}
    for block in yaml_blocks():
        section = block.get("notifiers", block)
        if "channels" in section or "routes" in section or "people" in section:
            for key in ("channels", "routes", "people"):
                merged.setdefault(key, {}).update(section.get(key, {}))
        else:  # a single channel: `name: {kind: ...}`
            merged["channels"].update(section)
    config = NotifiersConfig.model_validate(merged)
    kinds = {c.kind for c in config.channels.values()}
    all_kinds = {
        t.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
        for t in ChannelConfig.__origin__.__args__  # type: ignore[attr-defined]
    }
    assert kinds == all_kinds, all_kinds - kinds
    assert len(config.people_reached("coldchain_alarms")) >= 3
    assert config.env_problems({}), "the worked config names its secrets by variable"
