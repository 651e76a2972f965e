"""Static checks of the monitoring profile: Prometheus's config, Grafana's provisioning and
the dashboard's queries.

`dashboard_metric_names()` lists every series the dashboard queries, so a test on the real
stack can compare it with a `/metrics` scrape.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from test_compose import services

from mlplatform.serving.metrics import ServingMetrics
from mlplatform.settings import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
# Series the monitoring DAG's figures will add (issue 9), named here as the dashboard uses them.
MONITORING_SERIES = {
    "monitoring_drift_share",
    "monitoring_live_f1",
    "monitoring_labelled_rows",
    "monitoring_degraded",
    "monitoring_last_run_timestamp_seconds",
}
# What each panel must show (issue 9, section 4), by a word of its title.
REQUIRED_PANELS = [
    "request rate",
    "error rate",
    "p50 / p99",
    "predictions by label",
    "model version",
    "drift share",
    "live f1",
    "backlog",
]
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def dashboards() -> dict[Path, dict[str, Any]]:
    found = {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert found, f"no dashboard JSON in {DASHBOARDS}"
    return found


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' children included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def panel_exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects: identifiers that are not functions, keywords,
    label names or durations."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    # Grouping clauses go whole, so `sum by (x) (...)` reads as the call `sum (...)`.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        if m[2] or m[1].lower() in PROMQL_WORDS:
            continue  # a function call or an operator
        names.add(m[1])
    return names


def dashboard_metric_names() -> set[str]:
    """Every series name that a panel of a dashboard in the repository queries."""
    return {
        name
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
        for expr in panel_exprs(panel)
        for name in metric_names(expr)
    }


def exposed_series() -> set[str]:
    """Series names the prediction service registers today (its own metrics class)."""
    registry = CollectorRegistry()
    ServingMetrics(registry)
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_count", "_sum", "_created"],
        "gauge": [""],
        "info": ["_info"],
    }
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def promtool() -> str:
    path = shutil.which("promtool")
    # Never skipped: CI installs Debian's `prometheus` package, which ships promtool.
    assert path, "promtool is missing: apt-get install -y prometheus"
    return path


# Prometheus


def test_promtool_accepts_the_config() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a config with a typo does."""
    broken = tmp_path / "prometheus.yml"
    broken.write_text(PROMETHEUS_YML.read_text().replace("scrape_configs:", "scrape_config:"))
    result = subprocess.run(
        [promtool(), "check", "config", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0


def with_static_targets(config: dict[str, Any], targets: dict[str, list[str]]) -> dict[str, Any]:
    """The native stack's variant of the config: each job scrapes fixed host:port targets
    instead of discovering compose's containers by name."""
    jobs = []
    for job in config["scrape_configs"]:
        job = {k: v for k, v in job.items() if not k.endswith("_configs")}
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        jobs.append(job)
    return {**config, "scrape_configs": jobs}


def test_the_same_file_serves_the_native_stack(tmp_path: Path) -> None:
    """Only the targets differ, as the file's header says: swapped, promtool accepts it."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"fastapi", "prometheus"}
    native = tmp_path / "prometheus.yml"
    local = with_static_targets(
        config, {"fastapi": ["127.0.0.1:8800"], "prometheus": ["127.0.0.1:9090"]}
    )
    native.write_text(yaml.safe_dump(local))
    result = subprocess.run(
        [promtool(), "check", "config", str(native)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_prediction_replica() -> None:
    """Through compose's DNS, one target per replica: scraping through the balancer would mix
    the replicas' counters."""
    svcs = services()
    job = next(
        j
        for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]
        if j["job_name"] == "fastapi"
    )
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["fastapi"] and sd.get("type", "A") == "A"
    assert sd["names"][0] in svcs and svcs["fastapi"]["deploy"]["replicas"] >= 2
    assert str(sd["port"]) == svcs["fastapi"]["environment"]["FASTAPI_PORT"]
    prom = svcs["prometheus"]
    mount = next(m for m in prom["volumes"] if m["target"].endswith("prometheus.yml"))
    assert Path(mount["source"]) == PROMETHEUS_YML and mount["read_only"]
    assert f"--config.file={mount['target']}" in prom["command"]
    assert prom["profiles"] == ["all", "monitoring"]


# Grafana


def test_grafana_is_provisioned_with_the_datasource_and_dashboards() -> None:
    svcs = services()
    grafana = svcs["grafana"]
    mounts = {Path(m["source"]): m for m in grafana["volumes"] if m["type"] == "bind"}
    assert mounts[PROVISIONING]["target"] == "/etc/grafana/provisioning"
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", datasource["url"]).groups()  # type: ignore[union-attr]
    assert host in svcs and any(p["target"] == int(port) for p in svcs[host]["ports"])
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "platform.yml").read_text())[
        "providers"
    ]
    assert mounts[DASHBOARDS]["target"] == provider["options"]["path"]
    # Every query goes to the provisioned datasource.
    for path, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for ref in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
                assert ref == {"type": "prometheus", "uid": datasource["uid"]}, path.name
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"])
    assert (DASHBOARDS / Path(home).name).is_file()
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_dashboard_shows_what_issue_9_asks() -> None:
    (dashboard,) = dashboards().values()
    titles = " | ".join(p["title"].lower() for p in panels(dashboard))
    for word in REQUIRED_PANELS:
        assert word in titles, f"no panel for {word}"
    for panel in panels(dashboard):
        assert panel_exprs(panel), f"{panel['title']} queries nothing"


def test_metric_names_are_parsed_from_promql() -> None:
    expr = (
        'sum by (handler) (rate(http_requests_total{status=~"5.."}[5m])) / '
        "clamp_min(sum(rate(http_requests_total[5m])), 1e-9) + on(instance) up"
    )
    assert metric_names(expr) == {"http_requests_total", "up"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))") == {
        "x_bucket"
    }
    assert metric_names("time() - max(monitoring_last_run_timestamp_seconds)") == {
        "monitoring_last_run_timestamp_seconds"
    }


def test_every_dashboard_metric_is_one_the_platform_exposes() -> None:
    """Today's series come from the service's own metrics class; the monitoring series are the
    names issue 9 fixes. A real `/metrics` scrape must show the same (the e2e check)."""
    queried = dashboard_metric_names()
    exposed = exposed_series()
    assert queried - MONITORING_SERIES <= exposed, queried - MONITORING_SERIES - exposed
    assert queried >= MONITORING_SERIES
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "predictions_total",
        "model_version_info",
        "prediction_log_buffered",
        "prediction_log_dropped",
    } <= queried
