"""`python -m simulators SCENARIO`: the same as `vigil simulate`, without the gateway's CLI."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from simulators.cli import simulate


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    ap.add_argument("scenario", type=Path, help="scenario YAML, or a shipped name like 'demo'")
    ap.add_argument("--mqtt-url", help="default: $VIGIL_MQTT_URL, the file, mqtt://127.0.0.1:1883")
    ap.add_argument("--duration", help="simulated duration, e.g. 3600 or 6h")
    ap.add_argument("--speed", type=float, help="simulated seconds per second; 0 = max")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    simulate(args.scenario, args.mqtt_url, args.duration, args.speed)


if __name__ == "__main__":
    main()
