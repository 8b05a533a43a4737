"""`vigil dashboards export DIR` and `vigil dashboards push` (mounted by gateway/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from grafana_client.client import GrafanaException

from dashboards import build
from dashboards import push as pushing

app = typer.Typer(
    help="Grafana dashboards as code: export the JSON, or push everything to a Grafana.",
    no_args_is_help=True,
)


@app.command("export")
def export(
    directory: Annotated[
        Path, typer.Argument(help="Directory to write <uid>.json into (created if missing).")
    ],
) -> None:
    """Write the dashboard JSON, byte for byte what dashboards/generated/ holds."""
    for path in build.export(directory):
        typer.echo(str(path))


@app.command("push")
def push(
    url: Annotated[
        str, typer.Option("--url", envvar="VIGIL_GRAFANA_URL", help="Grafana base URL.")
    ] = "http://localhost:3000",
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="VIGIL_GRAFANA_TOKEN",
            show_default=False,
            help="Service account token (Admin role). Prefer the environment variable.",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", envvar="VIGIL_GRAFANA_USER", help="Basic auth user, if no token."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="VIGIL_GRAFANA_PASSWORD",
            show_default=False,
            help="Basic auth password. Prefer the environment variable.",
        ),
    ] = None,
    folder: Annotated[
        str, typer.Option("--folder", help="Title of the folder for the dashboards.")
    ] = pushing.FOLDER_TITLE,
    folder_uid: Annotated[
        str, typer.Option("--folder-uid", help="uid of that folder.")
    ] = pushing.FOLDER_UID,
    team: Annotated[
        str, typer.Option("--team", help="Team given read-only access to the folder.")
    ] = pushing.REGULATOR_TEAM,
    rotate_influx_token: Annotated[
        bool,
        typer.Option(
            "--rotate-influx-token",
            help="Send the InfluxDB token or password even if the data source stores one.",
        ),
    ] = False,
) -> None:
    """Create or update the InfluxDB data source, folder, regulators' team and dashboards.

    The data source queries VIGIL_INFLUX_URL in InfluxQL: database VIGIL_INFLUX_DATABASE (2.x:
    VIGIL_INFLUX_BUCKET, through its DBRP mapping), with VIGIL_INFLUX_TOKEN or
    VIGIL_INFLUX_USERNAME / _PASSWORD. Only what differs is written, so a second run reports
    everything unchanged.
    """
    try:
        influx = pushing.InfluxSettings.from_env()
        api = pushing.connect(url, token=token, user=user, password=password)
        changes = pushing.push(
            api,
            influx,
            folder_uid=folder_uid,
            folder_title=folder,
            team=team,
            rotate_token=rotate_influx_token,
        )
    except pushing.PushError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except GrafanaException as exc:
        typer.echo(f"error: Grafana at {url} answered: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot reach Grafana at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    for change in changes:
        typer.echo(f"{change.action:<9}  {change.kind:<18}  {change.name}")
    done = sum(c.action != "unchanged" for c in changes)
    typer.echo(f"{done} change(s)" if done else "nothing to change")


if __name__ == "__main__":
    app()
