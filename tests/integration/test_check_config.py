"""`vigil check-config` as a user runs it: exit 0 for a good file, exit 2 naming every bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_are_valid(example: Path) -> None:
    result = check(example)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt:\n  url: http://broker:1883\n", ["mqtt.url", "expected mqtt://host:port"]),
        ("mqtt:\n  protocol: '4'\n", ["mqtt.protocol", "'3.1.1' or '5'"]),
        ("influx:\n  token: abc\n", ["influx.url: required"]),
        ("influx:\n  url: http://x\n  batch_size: 0\n", ["influx.batch_size", "greater than 0"]),
        ("influx:\n  url: http://x\n  version: 3\n", ["influx.version", "1 or 2"]),
        (
            "collectors:\n  - kind: mqtt\n    subscriptions:\n      - topic: a/+/b\n",
            ["collectors[0].subscriptions[0].topic", "{name}"],
        ),
        (
            "collectors:\n  - kind: mqtt\n    subscriptions:\n      - qos: 3\n",
            ["collectors[0].subscriptions[0].qos"],
        ),
        ("collectors:\n  - kind: carrier-pigeon\n", ["collectors[0]", "carrier-pigeon"]),
        ("journal:\n  max_bytes: lots\n", ["journal.max_bytes", "integer"]),
        (
            "gateway:\n  colour: blue\n  nmae: x\ncollectors:\n  - name: x\n"
            "  - kind: mqtt\n    max_paylod_bytes: 3\n",
            [
                "gateway.colour: unknown key\n",
                "gateway.nmae: unknown key; did you mean 'name'?",
                "collectors[0].kind: required, one of mqtt, modbus",
                "collectors[1].max_paylod_bytes: unknown key; did you mean 'max_payload_bytes'?",
            ],
        ),
        (
            "retention:\n  records_years: 1\n",
            ["retention.records_years: below the floor of 5 years", "retention.test_mode: true"],
        ),
        ("mqtt: [1, 2\n", ["line 2", "invalid YAML"]),
    ],
)
def test_broken_files_name_the_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    result = check(path)
    assert result.returncode == 2
    for fragment in expected:
        assert fragment in result.stderr
    assert str(path) in result.stderr


def test_every_error_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("mqtt:\n  url: nope\n  keepalive_s: 0\njournal:\n  retention_hours: -1\n")
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert {ln.split(": ")[1] for ln in lines} == {
        "mqtt.url",
        "mqtt.keepalive_s",
        "journal.retention_hours",
    }


def test_retention_at_the_floor_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("retention:\n  records_years: 5\n")
    result = check(path)
    assert result.returncode == 0, result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "absent.yaml")
    assert result.returncode == 2
    assert "absent.yaml: cannot read" in result.stderr
