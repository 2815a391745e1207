"""The Prometheus alert rules and the Grafana dashboard: valid PromQL (promtool), alerts that fire on the
cases they are for and stay quiet on the look-alikes (promtool's unit tests), and only metric names the
worker really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from moderator.metrics import Metrics
from tests.deploy.files import GRAFANA_DIR, PROMETHEUS_DIR

ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DASHBOARD = GRAFANA_DIR / "moderator.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (scripts/setup.sh installs Debian's prometheus as root)"
)
_METRIC = re.compile(r"\b(moderator_[a-z_]+)\b")


def exported_names() -> set[str]:
    """Every series name the worker's /metrics can carry (histograms as _bucket/_sum/_count)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(Metrics().render().decode()):
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def concrete(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced as Grafana would at run time."""
    return expr.replace("$__rate_interval", "5m").replace('=~"$job"', '=~".*"')


@needs_promtool
def test_alert_rules_pass_promtool_check() -> None:
    proc = subprocess.run([str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    proc = subprocess.run(
        [str(PROMTOOL), "test", "rules", ALERT_TESTS.name], cwd=PROMETHEUS_DIR, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_unit_tested_and_documented() -> None:
    tested = {
        case["alertname"]
        for group in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    for rule in alert_rules():
        assert rule["alert"] in tested, f"{rule['alert']} never fires in alerts.test.yml"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_cover_the_operators_questions() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for metric in (
        "moderator_consumer_lag",  # lag growing
        "moderator_dead_letters_total",  # dead-letter rate
        "moderator_execution_provider",  # a provider other than asked for
        "moderator_requested_device",
        "moderator_cache_errors_total",  # cache errors
        "moderator_live",  # no progress
        "moderator_messages_out_total",
    ):
        assert metric in exprs, metric


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_only_metrics_the_worker_exports(source: str) -> None:
    exprs = [r["expr"] for r in alert_rules()] if source == "alerts" else [e for _, e in dashboard_exprs()]
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used
    unknown = used - exported_names()
    assert not unknown, f"{source} query metrics the worker does not export: {sorted(unknown)}"


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": concrete(e)}
                    for i, (_, e) in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_is_importable() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", "panels follow the datasource variable"
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: ignores the job selector"
    # no two panels overlap on the grid
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (cells & mine), f"{panel['title']} overlaps another panel"
        cells |= mine


# ------------------------------------------------------------------------- the compose monitoring profile


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> repository path, for the bind mounts of a compose service."""
    from tests.deploy.files import ROOT

    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source[2:]
    return out


def _in_container(mounts: dict[str, Path], path: str) -> Path:
    for target, source in mounts.items():
        if path == target or path.startswith(target + "/"):
            return source / path[len(target) :].lstrip("/")
    raise AssertionError(f"{path} is not inside any mount ({sorted(mounts)})")


@needs_promtool
def test_compose_prometheus_scrapes_every_worker_and_loads_the_alerts() -> None:
    from moderator.settings import Settings
    from tests.deploy.files import effective_env, services, worker_services

    prometheus = services()["prometheus"]
    mounts = _mounts(prometheus)
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if arg.startswith("--"))
    config_path = _in_container(mounts, flags["--config.file"])
    assert config_path == PROMETHEUS_DIR / "prometheus.yml"
    proc = subprocess.run(
        [str(PROMTOOL), "check", "config", str(config_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(config_path.read_text())
    assert [(config_path.parent / f).resolve() for f in config["rule_files"]] == [ALERTS.resolve()]
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    workers = worker_services()
    assert sorted(sd["names"]) == sorted(workers)
    for worker in workers.values():
        assert sd["port"] == Settings.from_env(effective_env(worker)).web_port


def test_compose_grafana_loads_the_dashboard_from_prometheus() -> None:
    from tests.deploy.files import services

    svc = services()
    grafana = svc["grafana"]
    mounts = _mounts(grafana)
    provisioning = _in_container(mounts, "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = source["url"].split("//", 1)[1].split(":")
    assert host in svc and svc[host]["ports"][0].endswith(f":{port}")
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "moderator.yml").read_text())["providers"]
    assert (_in_container(mounts, provider["options"]["path"]) / DASHBOARD.name).is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
