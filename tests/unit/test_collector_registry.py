"""Collector kinds: one registry that the config union and the gateway both read."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

import collectors
from collectors import KINDS, CollectorConfig

ROOT = Path(collectors.__file__).parent


def config_kinds() -> set[str]:
    union = typing.get_args(CollectorConfig)[0]
    return {typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(union)}


def test_every_configurable_kind_is_registered_and_the_reverse() -> None:
    assert config_kinds() == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_a_folder_with_its_manual_and_a_valid_sample(kind: str) -> None:
    folder = ROOT / kind
    assert (folder / "README.md").read_text().startswith("# ")
    sample = yaml.safe_load((folder / "sample.yaml").read_text())
    cfg = TypeAdapter(CollectorConfig).validate_python(sample)
    assert cfg.kind == kind
