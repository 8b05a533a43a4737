"""The generated dashboards: committed, reproducible, valid models, and schema-true InfluxQL.

Queries are checked by reading the InfluxQL text back (not by trusting the builder that wrote it)
against gateway.core.schema, the schema the writer uses. They are run against a real InfluxDB in
tests/integration/test_influxql_dashboards.py.
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

from dashboards import build
from dashboards import influxql as iq
from dashboards import push as pushing
from dashboards.cli import app
from dashboards.sdk import InfluxQLQuery
from gateway.core.schema import MEASUREMENTS

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "dashboards" / "generated"
PROVISIONING = REPO / "dashboards" / "provisioning"
DOCS = REPO / "docs" / "grafana.md"

DASHBOARDS = build.all_dashboards()
GRAFANA_MACROS = {"timeFilter", "__interval", "__interval_ms"}
CUSTOM_NUMBERS = {"battery_low"}
"""Variables that hold a number, used as one (not matched as a regex)."""

# -- reading InfluxQL back -----------------------------------------------------------------------


def influxql_problems(query: str) -> list[str]:
    """What in `query` is not in gateway.core.schema: measurements, fields and tags.

    A double-quoted identifier may be a measurement the query reads, a tag or field of one, or
    a name the query itself defines (`AS "name"`).
    """
    problems: list[str] = []
    if "|>" in query or "from(bucket" in query:
        problems.append("Flux, not InfluxQL")
    names = set(re.findall(r'\bFROM\s+"([^"]+)"', query))
    if not names:
        problems.append("reads no measurement")
    problems += [f"unknown measurement {n!r}" for n in sorted(names - set(MEASUREMENTS))]
    known = [MEASUREMENTS[n] for n in names if n in MEASUREMENTS]
    columns = {c for m in known for c in (*m.tags, *m.fields)}
    defined = set(re.findall(r'\bAS\s+"([^"]+)"', query))
    for ident in sorted(set(re.findall(r'"([^"]+)"', query)) - names - defined - columns):
        problems.append(f"{ident!r} is neither a tag nor a field of {sorted(names)}")
    for select in re.split(r"\bSELECT\b", query)[1:]:
        body = select.split("FROM (")[0] if "FROM (" in select else select
        if "FROM (" not in select and not re.search(r"\$timeFilter|time > now\(\) - \d+[mh]", body):
            problems.append("a SELECT without a time condition")
    return problems


def queries(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, InfluxQL) for every panel target, template variable and annotation."""
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


def test_five_dashboards_with_stable_uids() -> None:
    assert set(DASHBOARDS) == {
        "vigil-fleet-overview",
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
    # own annotations: an InfluxQL target is checked by shape instead.
    def without_annotation_targets(d: dict[str, Any]) -> dict[str, Any]:
        annos = d.get("annotations", {}).get("list", [])
        return {**d, "annotations": [{k: v for k, v in a.items() if k != "target"} for a in annos]}

    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert without_annotation_targets(again) == without_annotation_targets(data)
    for anno in data["annotations"].get("list", []):
        target = anno["target"]
        assert target["rawQuery"] is True and target["fromAnnotations"] is True
        assert target["timeEndColumn"] == "alert.end_ms" and target["titleColumn"] == "alert.rule"
    assert model.uid == uid and len(uid) <= 40
    assert model.editable is False
    targets = [t for p in model.panels or [] if isinstance(p, dm.Panel) for t in p.targets or []]
    assert targets and all(isinstance(t, InfluxQLQuery) for t in targets)
    assert all(t.result_format in ("time_series", "table") for t in targets)  # type: ignore[attr-defined]


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
        assert all(t["rawQuery"] is True for t in panel["targets"])
        assert panel.get("title") and panel.get("description")
    ds_vars = [v for v in data["templating"]["list"] if v["type"] == "datasource"]
    assert len(ds_vars) == 1 and ds_vars[0]["query"] == "influxdb"
    assert ds_vars[0]["current"]["value"] == build.DATASOURCE_UID


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_variable_a_query_uses_is_defined_and_matched_as_a_regex(uid: str) -> None:
    """Grafana escapes and joins a multi-value or "All" variable as `(a|b)`: that only works
    inside a regex literal `/^$var$/` (in quotes it breaks the query)."""
    data = DASHBOARDS[uid]
    defined = {v["name"] for v in data["templating"]["list"]}
    multi = {v["name"] for v in data["templating"]["list"] if v["type"] == "query"}
    for where, query in queries(data):
        used = set(re.findall(r"\$\{(\w+)", query)) | set(re.findall(r"\$(\w+)", query))
        assert used - defined - GRAFANA_MACROS == set(), f"{uid} {where}"
        assert "${" not in query and "[[" not in query, f"{uid} {where}: use $name"
        for name in used & multi:
            for m in re.finditer(rf"\${name}\b", query):
                literal = re.search(r"=~ /\^(?:[^/\\]|\\.)*$", query[: m.start()])
                assert literal, f"{uid} {where}: ${name} outside a regex literal"
        for name in used & CUSTOM_NUMBERS:
            assert re.search(rf"[<>] \${name}\b", query), f"{uid} {where}: ${name}"


def test_required_template_variables() -> None:
    names = {uid: {v["name"] for v in d["templating"]["list"]} for uid, d in DASHBOARDS.items()}
    assert {"site", "asset", "device"} <= names["vigil-coldchain-overview"]
    assert {"site", "asset", "device", "shipment"} <= names["vigil-shipment"]
    assert {"line", "equipment", "device", "batch"} <= names["vigil-production-line"]
    assert {"gateway"} <= names["vigil-gateway-health"]
    assert {"gateway", "site"} <= names["vigil-fleet-overview"]
    for data in DASHBOARDS.values():
        for var in data["templating"]["list"]:
            if var["type"] == "query" and var.get("multi"):
                assert var["includeAll"] is True and var["current"]["value"] == "$__all"


# -- queries against the schema -------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "where", "query"), ALL_QUERIES, ids=lambda x: str(x)[:40])
def test_query_uses_only_what_the_writer_produces(uid: str, where: str, query: str) -> None:
    if query.startswith("SHOW TAG VALUES"):
        m = re.fullmatch(r'SHOW TAG VALUES FROM "(\w+)" WITH KEY = "(\w+)"( WHERE .*)?', query)
        assert m and m.group(2) in MEASUREMENTS[m.group(1)].tags, query
        return
    assert influxql_problems(query) == [], f"{uid} {where}:\n{query}"


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('SELECT mean("temperature") FROM "coldchain" WHERE $timeFilter', "'temperature'"),
        ('SELECT mean("temp_c") FROM "coldchain" WHERE $timeFilter GROUP BY "line"', "'line'"),
        ('SELECT mean("temp_c") FROM "cold" WHERE $timeFilter', "unknown measurement 'cold'"),
        ('SELECT mean("temp_c") FROM "coldchain"', "without a time condition"),
        ("from(bucket: v.defaultBucket) |> range(start: 0) |> last()", "Flux"),
        ("SELECT 1", "no measurement"),
    ],
)
def test_query_check_catches_what_the_writer_does_not_produce(query: str, problem: str) -> None:
    assert any(problem in p for p in influxql_problems(query))


def test_builder_refuses_fields_and_tags_the_schema_lacks() -> None:
    with pytest.raises(iq.SchemaError, match="temperature"):
        iq.field(MEASUREMENTS["coldchain"], "temperature")
    with pytest.raises(iq.SchemaError, match="line"):
        iq.select(MEASUREMENTS["coldchain"], ['mean("temp_c")'], {"line": "line"})
    with pytest.raises(iq.SchemaError, match="rack"):
        iq.tag_values(MEASUREMENTS["process"], "rack")


def fields_read(uid: str, measurement: str) -> set[str]:
    out: set[str] = set()
    m = MEASUREMENTS[measurement]
    for _, q in queries(DASHBOARDS[uid]):
        if f'FROM "{measurement}"' in q:
            out |= set(re.findall(r'"(\w+)"', q)) & set(m.fields)
    return out


def test_dashboards_cover_what_the_issue_asks_for() -> None:
    assert {"temp_c", "battery_pct", "door_open", "power_ok"} <= fields_read(
        "vigil-coldchain-overview", "coldchain"
    )
    assert {"temp_c"} <= fields_read("vigil-shipment", "coldchain")
    assert {
        "chamber_temp_c",
        "chamber_pressure_kpa",
        "f0_min",
        "dp_pa",
        "particles_05um_m3",
        "particles_5um_m3",
        "shelf_temp_c",
        "condenser_temp_c",
    } <= fields_read("vigil-production-line", "process")
    assert {"f0_min", "verdict", "hold_s"} <= fields_read("vigil-production-line", "cycle")
    assert {"ingest_rate", "journal_backlog", "journal_fill", "dead_letters"} <= fields_read(
        "vigil-gateway-health", "vigil_gateway"
    )
    assert {"journal_backlog", "readings"} <= fields_read("vigil-fleet-overview", "vigil_gateway")
    assert {"open_critical", "open_high"} <= fields_read("vigil-fleet-overview", "alarm_kpi")
    assert {"filled", "slots", "missed"} <= fields_read("vigil-fleet-overview", "completeness")
    for uid in ("vigil-coldchain-overview", "vigil-shipment", "vigil-production-line"):
        (anno,) = DASHBOARDS[uid]["annotations"]["list"]
        assert 'FROM "alert"' in anno["target"]["query"]
        assert '"end_ms" >= 0' in anno["target"]["query"]  # one row per excursion


def test_fleet_links_drill_down_to_site_and_gateway_dashboards() -> None:
    fleet = DASHBOARDS["vigil-fleet-overview"]
    urls = [
        link["url"]
        for p in fleet["panels"]
        for o in p.get("fieldConfig", {}).get("overrides", [])
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert any(u.startswith("/d/vigil-gateway-health?var-gateway=") for u in urls)
    assert any(u.startswith("/d/vigil-coldchain-overview?var-site=") for u in urls)
    assert all("${__url_time_range}" in u for u in urls)


def test_band_is_shaded_and_limits_follow_build_parameters() -> None:
    def panel(data: dict[str, Any], title: str) -> dict[str, Any]:
        return next(p for p in data["panels"] if p.get("title") == title)

    overview = DASHBOARDS["vigil-coldchain-overview"]
    temp = panel(overview, "Temperature by site / asset")["fieldConfig"]["defaults"]
    assert temp["custom"]["thresholdsStyle"]["mode"] == "line+area"
    assert [s["value"] for s in temp["thresholds"]["steps"]] == [None, 2.0, 8.0]

    crt = build.all_dashboards(build.Limits(band_low_c=15, band_high_c=25, mkt_dh_over_r_k=9000))
    trip = crt["vigil-shipment"]
    steps = panel(trip, "Trip temperature")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 15, 25]
    mkt = panel(trip, "Mean kinetic temperature")["targets"][0]["query"]
    assert 'exp(-9000.0 / ("temp_c" + 273.15))' in mkt and "9000.0 / (0 - ln(" in mkt
    out = panel(trip, "Time out of range")["targets"][0]["query"]
    assert '("temp_c" - 25)' in out and '(15 - "temp_c")' in out
    outside = panel(crt["vigil-coldchain-overview"], "Readings outside band")["targets"][0]
    assert '("temp_c" < 15 OR "temp_c" > 25)' in outside["query"]


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
        url="${VIGIL_INFLUX_URL}",
        database="${VIGIL_INFLUX_DATABASE}",
        token="${VIGIL_INFLUX_TOKEN}",
    )
    body = pushing.datasource_body(influx)

    assert doc["apiVersion"] == 1
    assert {k: ds[k] for k in body} == body
    assert influx.secret is not None
    assert ds["secureJsonData"] == {influx.secret[0]: influx.secret[1]}


def test_push_settings_from_the_environment() -> None:
    v2 = pushing.InfluxSettings.from_env(
        {
            "VIGIL_INFLUX_URL": "http://i:8086",
            "VIGIL_INFLUX_BUCKET": "cold",
            "VIGIL_INFLUX_TOKEN": "t",
        }
    )
    assert (v2.database, v2.secret) == ("cold", ("httpHeaderValue1", "Token t"))
    v1 = pushing.InfluxSettings.from_env(
        {
            "VIGIL_INFLUX_URL": "http://i:8086",
            "VIGIL_INFLUX_VERSION": "1",
            "VIGIL_INFLUX_DATABASE": "plant",
            "VIGIL_INFLUX_BUCKET": "cold",
        }
    )
    assert (v1.database, v1.secret) == ("plant", None)  # 1.x without authentication
    with pytest.raises(pushing.PushError, match="VIGIL_INFLUX_VERSION"):
        pushing.InfluxSettings.from_env({"VIGIL_INFLUX_URL": "u", "VIGIL_INFLUX_VERSION": "3"})


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
    for var in (
        "VIGIL_GRAFANA_URL",
        "VIGIL_GRAFANA_TOKEN",
        "VIGIL_INFLUX_TOKEN",
        "VIGIL_INFLUX_DATABASE",
        "influx v1 dbrp create",
    ):
        assert var in text
