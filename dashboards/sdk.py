"""The pieces grafana-foundation-sdk lacks for InfluxDB/InfluxQL, in the SDK's own builder style.

The SDK ships query builders for Prometheus, Loki and others but none for InfluxDB, and its
annotation target only models Grafana's built-in annotations. These small classes fill that gap,
and register the InfluxQL query with the SDK runtime so `Dashboard.from_json` reads our JSON back
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

ResultFormat = typing.Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """A Grafana InfluxDB target in raw InfluxQL mode."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource: dm.DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        if not isinstance(data.get("query"), str) or not isinstance(data.get("refId"), str):
            raise ValueError(f"an InfluxQL target needs string query and refId: {data}")
        if data.get("rawQuery") is not True:
            raise ValueError(f"an InfluxQL target of vigil is a raw query: {data}")
        ds = data.get("datasource")
        return cls(
            query=data["query"],
            ref_id=data["refId"],
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=dm.DataSourceRef.from_json(ds) if ds is not None else None,
            hide=data.get("hide"),
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder for `InfluxQLQuery`."""

    def __init__(
        self,
        query: str,
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
    ) -> None:
        self._internal = InfluxQLQuery(query, ref_id, result_format, alias, DS_REF)

    def build(self) -> InfluxQLQuery:
        return self._internal


class InfluxQLAnnotationTarget(dm.AnnotationTarget):
    """An annotation target that is an InfluxQL query.

    Grafana (10.3 and later run InfluxQL in its backend) names each result column
    `<measurement>.<column>` and maps them: `titleColumn` and `timeEndColumn` by their exact
    name, `textColumn` and each comma-separated `tagsColumn` entry by a name containing them; a
    row whose end is after its time is drawn as a region. Rows with an empty column are left out.
    """

    def __init__(
        self, query: str, *, title: str, text: str, tags: str, time_end: str | None = None
    ) -> None:
        super().__init__()
        self.query = query
        self.title = title
        self.text = text
        self.tags_column = tags
        self.time_end = time_end

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": "Anno",
            "query": self.query,
            "rawQuery": True,
            "fromAnnotations": True,
            "textEditor": True,
            "titleColumn": self.title,
            "textColumn": self.text,
            "tagsColumn": self.tags_column,
        }
        if self.time_end is not None:
            payload["timeEndColumn"] = self.time_end
        return payload


class InfluxQLAnnotation(cogbuilder.Builder[dm.AnnotationTarget]):
    """Builder for `InfluxQLAnnotationTarget`, for `AnnotationQuery.target`."""

    def __init__(
        self, query: str, *, title: str, text: str, tags: str, time_end: str | None = None
    ) -> None:
        self._internal = InfluxQLAnnotationTarget(
            query, title=title, text=text, tags=tags, time_end=time_end
        )

    def build(self) -> dm.AnnotationTarget:
        return self._internal


def register() -> None:
    """Let the SDK parse InfluxDB targets into `InfluxQLQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json
        )
    )


register()
