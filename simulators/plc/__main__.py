"""`python -m simulators.plc SCENARIO.yaml [--speed N]`: serve simulated PLCs until interrupted.

Prints one JSON line per PLC ({"name", "kind", "host", "port", "unit"}) once all are listening, so a
parent process (bench/modbus.py) can find the ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from simulators.plc.server import start_scenario, stop_plcs
from simulators.plc.spec import load_scenario


async def _serve(path: str, speed: float | None) -> None:
    scenario = load_scenario(path)
    plcs = await start_scenario(scenario, speed)
    try:
        for p in plcs:
            print(
                json.dumps(
                    {
                        "name": p.name,
                        "kind": p.spec.kind,
                        "host": p.host,
                        "port": p.port,
                        "unit": p.unit,
                    }
                ),
                flush=True,
            )
        print(json.dumps({"ready": len(plcs)}), flush=True)
        await asyncio.Event().wait()
    finally:
        await stop_plcs(plcs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.plc", description=__doc__)
    ap.add_argument("scenario", help="YAML file with `plcs:` (and optionally `speed:`)")
    ap.add_argument("--speed", type=float, default=None, help="override the scenario's speed")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.scenario, args.speed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
