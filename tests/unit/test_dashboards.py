"""The generated dashboards: committed, reproducible, valid models, and schema-true queries.

Queries are checked by reading the Flux text back (not by trusting the builder that wrote it)
against gateway.core.schema, the schema the writer uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from typer.testing import CliRunner

from dashboards import build, flux
from dashboards import push as pushing
from dashboards.cli import app
from dashboards.sdk import FluxQuery
from gateway.core.schema import MEASUREMENTS

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "dashboards" / "generated"
PROVISIONING = REPO / "dashboards" / "provisioning"
DOCS = REPO / "docs" / "grafana.md"

DASHBOARDS = build.all_dashboards()

# -- reading Flux back ---------------------------------------------------------------------------

FLUX_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
GRAFANA_BUILTINS = {"__all", "__interval", "__interval_ms", "__range", "__from", "__to"}


def flux_problems(query: str) -> list[str]:
    """What in `query` is not in gateway.core.schema: measurements, fields, tag and column names.

    A column may be a Flux built-in (_time, _value, ...), a tag or field of a measurement the
    query reads, or a name the query itself defines (a record key in map(), a columnName).
    """
    problems: list[str] = []
    names = set(re.findall(r'_measurement\s*==\s*"([^"]*)"', query))
    if not names:
        problems.append("reads no measurement")
    unknown = sorted(names - set(MEASUREMENTS))
    problems += [f"unknown measurement {n!r}" for n in unknown]
    known = [MEASUREMENTS[n] for n in names if n in MEASUREMENTS]
    tags = {t for m in known for t in m.tags}
    fields = {f for m in known for f in m.fields}

    for f in re.findall(r'_field\s*==\s*"([^"]*)"', query):
        if f not in fields:
            problems.append(f"field {f!r} is not written to {sorted(names)}")

    defined = set(re.findall(r'columnName:\s*"(\w+)"', query))
    for record in re.findall(r"\(\{(.*?)\}\)", query, flags=re.S):
        record = re.sub(r"^\s*r\s+with\s+", "", record)
        # keys at the top level of the record literal
        defined |= set(re.findall(r"(?:^|,)\s*(\w+)\s*:", record))
    defined -= {"v", "x", "fn"}  # function arguments inside values, not columns

    referenced = set(re.findall(r"\br\.(\w+)", query))
    referenced |= set(re.findall(r'\br\["(\w+)"\]', query))
    for arg in ("columns", "rowKey", "columnKey", "on"):
        for group in re.findall(rf"\b{arg}:\s*\[([^\]]*)\]", query):
            referenced |= set(re.findall(r'"(\w+)"', group))
    for arg in ("column", "tag", "valueColumn"):
        referenced |= set(re.findall(rf'\b{arg}:\s*"(\w+)"', query))

    for col in sorted(referenced - FLUX_COLUMNS - defined - tags - fields):
        problems.append(f"column {col!r} is neither a tag nor a field of {sorted(names)}")
    if "v.defaultBucket" not in query or re.search(r'bucket:\s*"', query):
        problems.append("bucket is not the data source's v.defaultBucket")
    return problems


def queries(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, flux) for every panel target, template variable and annotation."""
    for panel in data.get("panels", []):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["query"]
    for var in data["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']!r}", var["query"]
    for anno in data["annotations"].get("list", []):
        yield f"annotation {anno['name']!r}", anno["target"]["query"]


ALL_QUERIES = [(uid, where, q) for uid, d in DASHBOARDS.items() for where, q in queries(d)]


# -- committed JSON -------------------------------------------------------------------------------


def test_four_dashboards_with_stable_uids() -> None:
    assert set(DASHBOARDS) == {
        "vigil-coldchain-overview",
        "vigil-shipment",
        "vigil-production-line",
        "vigil-gateway-health",
    }


def test_committed_json_is_what_the_code_generates() -> None:
    committed = {p.stem: p.read_text(encoding="utf-8") for p in GENERATED.glob("*.json")}
    assert set(committed) == set(DASHBOARDS)
    for uid, data in DASHBOARDS.items():
        assert committed[uid] == build.render(data), f"regenerate {uid}: vigil dashboards export"


def test_export_command_reproduces_committed_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").glob("*.json"))
    assert [p.name for p in written] == sorted(p.name for p in GENERATED.glob("*.json"))
    for path in written:
        assert path.read_bytes() == (GENERATED / path.name).read_bytes()


# -- dashboard model ------------------------------------------------------------------------------


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_json_parses_as_dashboard_model(uid: str) -> None:
    data = json.loads((GENERATED / f"{uid}.json").read_text(encoding="utf-8"))

    model = dm.Dashboard.from_json(data)

    # Nothing lost or invented, except that the SDK models annotation targets only for Grafana's
    # own annotations: a Flux target is checked by shape instead.
    def without_annotation_targets(d: dict[str, Any]) -> dict[str, Any]:
        annos = d.get("annotations", {}).get("list", [])
        return {**d, "annotations": [{k: v for k, v in a.items() if k != "target"} for a in annos]}

    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert without_annotation_targets(again) == without_annotation_targets(data)
    for anno in data["annotations"].get("list", []):
        assert set(anno["target"]) == {"refId", "query"} and isinstance(
            anno["target"]["query"], str
        )
    assert model.uid == uid and len(uid) <= 40
    assert model.editable is False
    targets = [t for p in model.panels or [] if isinstance(p, dm.Panel) for t in p.targets or []]
    assert targets and all(isinstance(t, FluxQuery) for t in targets)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_layout_ids_and_datasources(uid: str) -> None:
    data = DASHBOARDS[uid]
    panels = data["panels"]
    ids = [p["id"] for p in panels]
    assert ids == list(range(1, len(panels) + 1))
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert panel.get("title") and panel.get("description")
    ds_vars = [v for v in data["templating"]["list"] if v["type"] == "datasource"]
    assert len(ds_vars) == 1 and ds_vars[0]["query"] == "influxdb"
    assert ds_vars[0]["current"]["value"] == build.DATASOURCE_UID


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_variable_a_query_uses_is_defined(uid: str) -> None:
    data = DASHBOARDS[uid]
    defined = {v["name"] for v in data["templating"]["list"]}
    for where, query in queries(data):
        used = set(re.findall(r"\$\{(\w+)(?::\w+)?\}", query))
        used |= set(re.findall(r"\$(\w+)", query))
        assert used - defined - GRAFANA_BUILTINS == set(), f"{uid} {where}"


def test_required_template_variables() -> None:
    names = {uid: {v["name"] for v in d["templating"]["list"]} for uid, d in DASHBOARDS.items()}
    assert {"site", "asset", "device"} <= names["vigil-coldchain-overview"]
    assert {"site", "asset", "device", "shipment"} <= names["vigil-shipment"]
    assert {"line", "equipment", "device"} <= names["vigil-production-line"]
    assert {"gateway"} <= names["vigil-gateway-health"]


# -- queries against the schema -------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "where", "query"), ALL_QUERIES, ids=lambda x: str(x)[:40])
def test_query_uses_only_what_the_writer_produces(uid: str, where: str, query: str) -> None:
    assert flux_problems(query) == [], f"{uid} {where}:\n{query}"


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (
            'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "coldchain")'
            ' |> filter(fn: (r) => r._field == "temperature")',
            "field 'temperature'",
        ),
        (
            'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "coldchain")'
            " |> filter(fn: (r) => r.line =~ /x/)",
            "column 'line'",
        ),
        ('from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "cold")', "cold"),
        ('from(bucket: "vigil") |> filter(fn: (r) => r._measurement == "alert")', "bucket"),
        (
            'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "process")'
            ' |> group(columns: ["site"])',
            "column 'site'",
        ),
        ("from(bucket: v.defaultBucket) |> last()", "no measurement"),
    ],
)
def test_query_check_catches_what_the_writer_does_not_produce(query: str, problem: str) -> None:
    assert any(problem in p for p in flux_problems(query))


def test_builder_refuses_fields_and_tags_the_schema_lacks() -> None:
    with pytest.raises(flux.SchemaError, match="temperature"):
        flux.select(MEASUREMENTS["coldchain"], ["temperature"])
    with pytest.raises(flux.SchemaError, match="line"):
        flux.select(MEASUREMENTS["coldchain"], ["temp_c"], {"line": "line"})
    with pytest.raises(flux.SchemaError, match="rack"):
        flux.tag_values(MEASUREMENTS["process"], "rack")


def fields_read(uid: str) -> set[str]:
    return {f for _, q in queries(DASHBOARDS[uid]) for f in re.findall(r'_field\s*==\s*"(\w+)"', q)}


def test_dashboards_cover_what_the_issue_asks_for() -> None:
    assert {"temp_c", "battery_pct"} <= fields_read("vigil-coldchain-overview")
    assert {"temp_c"} <= fields_read("vigil-shipment")
    assert {
        "chamber_temp_c",
        "chamber_pressure_kpa",
        "f0_min",
        "dp_pa",
        "particles_05um_m3",
        "particles_5um_m3",
        "shelf_temp_c",
        "condenser_temp_c",
    } <= fields_read("vigil-production-line")
    assert {"ingest_rate", "journal_backlog", "dead_letters", "sink_errors"} <= fields_read(
        "vigil-gateway-health"
    )
    for uid in ("vigil-coldchain-overview", "vigil-shipment", "vigil-production-line"):
        (anno,) = DASHBOARDS[uid]["annotations"]["list"]
        assert '_measurement == "alert"' in anno["target"]["query"]
        assert {"title", "text", "tags"} <= set(re.findall(r"(\w+):", anno["target"]["query"]))


def test_band_is_shaded_and_limits_follow_build_parameters() -> None:
    def panel(data: dict[str, Any], title: str) -> dict[str, Any]:
        return next(p for p in data["panels"] if p.get("title") == title)

    overview = DASHBOARDS["vigil-coldchain-overview"]
    temp = panel(overview, "Temperature by site / asset")["fieldConfig"]["defaults"]
    assert temp["custom"]["thresholdsStyle"]["mode"] == "line+area"
    assert [s["value"] for s in temp["thresholds"]["steps"]] == [None, 2.0, 8.0]

    frozen = build.all_dashboards(build.Limits(band_low_c=15, band_high_c=25, mkt_dh_over_r_k=9000))
    trip = frozen["vigil-shipment"]
    steps = panel(trip, "Trip temperature")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 15, 25]
    mkt = panel(trip, "Mean kinetic temperature")["targets"][0]["query"]
    assert "-9000.0 / (float(v: r._value) + 273.15)" in mkt and "9000.0 / (0.0 - math.log" in mkt
    out = panel(trip, "Time out of range")["targets"][0]["query"]
    assert "< 15 or" in out and "> 25" in out


def test_cleanroom_limits_are_annex1_for_the_chosen_grade() -> None:
    def limit(data: dict[str, Any], title: str) -> list[Any]:
        p = next(p for p in data["panels"] if p.get("title") == title)
        return [
            s["value"] for s in p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        ]

    grade_b = DASHBOARDS["vigil-production-line"]
    assert limit(grade_b, "Particles ≥ 0.5 µm") == [None, 352_000]
    assert limit(grade_b, "Particles ≥ 5 µm") == [None, 2_930]
    grade_a = build.all_dashboards(build.Limits(cleanroom_grade="A"))["vigil-production-line"]
    assert limit(grade_a, "Particles ≥ 0.5 µm") == [None, 3_520]
    assert limit(grade_a, "Particles ≥ 5 µm") == [None, 29]  # Annex 1 Table 5 (monitoring)


# -- provisioning files and docs ------------------------------------------------------------------


def test_provisioning_datasource_matches_what_push_creates() -> None:
    (path,) = (PROVISIONING / "datasources").glob("*.yaml")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    (ds,) = doc["datasources"]
    influx = pushing.InfluxSettings(
        url="${VIGIL_INFLUX_URL}", org="${VIGIL_INFLUX_ORG}", bucket="${VIGIL_INFLUX_BUCKET}"
    )
    body = pushing.datasource_body(influx)

    assert doc["apiVersion"] == 1
    assert {k: ds[k] for k in body} == body
    assert ds["secureJsonData"] == {"token": "${VIGIL_INFLUX_TOKEN}"}


def test_provisioning_dashboards_provider_uses_push_folder() -> None:
    (path,) = (PROVISIONING / "dashboards").glob("*.yaml")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    (provider,) = doc["providers"]

    assert doc["apiVersion"] == 1
    assert provider["type"] == "file"
    assert provider["folder"] == pushing.FOLDER_TITLE
    assert provider["folderUid"] == pushing.FOLDER_UID
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"]


def test_docs_describe_every_panel() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for uid, data in DASHBOARDS.items():
        assert data["title"] in text, uid
        for panel in data["panels"]:
            if panel["type"] != "row":
                assert panel["title"] in text, f"{uid}: {panel['title']}"
    for var in ("VIGIL_GRAFANA_URL", "VIGIL_GRAFANA_TOKEN", "VIGIL_INFLUX_TOKEN"):
        assert var in text
