"""The pieces grafana-foundation-sdk lacks for InfluxDB/Flux, in the SDK's own builder style.

The SDK ships query builders for Prometheus, Loki and others but none for InfluxDB, and its
annotation target only models Grafana's built-in annotations. These small classes fill that gap,
and register the Flux query with the SDK runtime so `Dashboard.from_json` reads our JSON back
into typed objects.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE_TYPE = "influxdb"
DATASOURCE_VARIABLE = "datasource"
DS_REF = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=f"${{{DATASOURCE_VARIABLE}}}")
"""Panels point at the dashboard's data-source variable, so any InfluxDB data source works."""


class FluxQuery(cogvariants.Dataquery):
    """A Grafana InfluxDB target in Flux mode: `{"refId", "query", "datasource"}`."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        datasource: dm.DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id, "query": self.query}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        if not isinstance(data.get("query"), str) or not isinstance(data.get("refId"), str):
            raise ValueError(f"an InfluxDB Flux target needs string query and refId: {data}")
        ds = data.get("datasource")
        return cls(
            query=data["query"],
            ref_id=data["refId"],
            datasource=dm.DataSourceRef.from_json(ds) if ds is not None else None,
            hide=data.get("hide"),
        )


class Flux(cogbuilder.Builder[FluxQuery]):
    """Builder for `FluxQuery`."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = FluxQuery(query=query, ref_id=ref_id, datasource=DS_REF)

    def build(self) -> FluxQuery:
        return self._internal


class FluxAnnotationTarget(dm.AnnotationTarget):
    """An annotation target that is a Flux query (Grafana's standard annotation support).

    Grafana turns each result row into an event: the first time column is the time, columns
    named `title`, `text` and `tags` (comma separated) fill those parts of the event.
    """

    def __init__(self, query: str) -> None:
        super().__init__()
        self.query = query

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "query": self.query}


class FluxAnnotation(cogbuilder.Builder[dm.AnnotationTarget]):
    """Builder for `FluxAnnotationTarget`, for `AnnotationQuery.target`."""

    def __init__(self, query: str) -> None:
        self._internal = FluxAnnotationTarget(query)

    def build(self) -> dm.AnnotationTarget:
        return self._internal


def register() -> None:
    """Let the SDK parse InfluxDB targets into `FluxQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=FluxQuery.from_json)
    )


register()
