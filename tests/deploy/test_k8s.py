"""The Kubernetes manifests (deploy/k8s): valid against the Kubernetes API schemas offline
(kubernetes-validate ships them in its wheel), KEDA's ScaledObject against a schema of its own, and
consistent with the code: probes on the ports the processes serve, grace periods over the drain bound,
autoscaling on the input topics of the worker's consumer group capped at the partition count, and only
MODERATOR_* variables the settings read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from moderator.cli import build_parser
from moderator.settings import Settings, env_names
from tests.deploy.files import K8S_BASE, drain_bound_s, kustomize

GPU_OVERLAY = K8S_BASE.parent / "overlays" / "gpu"
KEDA_SCHEMA = Path(__file__).with_name("keda-scaledobject.schema.json")
#: the oldest Kubernetes still commonly run, and the newest the validator knows
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: component -> (its subcommand, the port its process serves, liveness path, readiness path)
COMPONENTS = {
    "worker": ("worker", 6066, "/health", "/ready"),
    "api": ("serve", 8080, "/health", "/ready"),
    "dashboard": ("dashboard", 8090, "/health", "/health"),
}
#: settings prefixes of components other helpers add; until they are in this tree their variables
#: cannot be checked against the settings (they are once merged)
COMPONENT_SETTINGS = {"api": "MODERATOR_API_", "dashboard": "MODERATOR_DASHBOARD_"}


def docs(directory: Path = K8S_BASE) -> list[dict[str, Any]]:
    return kustomize(directory)


def of_kind(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in items if d["kind"] == kind}


def deployment(items: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return of_kind(items, "Deployment")[f"moderator-{component}"]


def container_env(items: list[dict[str, Any]], dep: dict[str, Any]) -> dict[str, str]:
    """What the container sees: the ConfigMaps it loads, then its own env (literal values only)."""
    maps = of_kind(items, "ConfigMap")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def all_env_names(items: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for d in items:
        if d["kind"] == "ConfigMap":
            yield from ((d["metadata"]["name"], n) for n in d["data"])
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            yield from ((d["metadata"]["name"], e["name"]) for e in container.get("env", []))


def in_tree(component: str) -> bool:
    prefix = COMPONENT_SETTINGS.get(component)
    return prefix is None or any(n.startswith(prefix) for n in env_names())


# ------------------------------------------------------------------------------------------ the schemas


@pytest.mark.parametrize("directory", [K8S_BASE, GPU_OVERLAY], ids=["base", "gpu"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_are_valid_kubernetes(directory: Path, version: str) -> None:
    items = docs(directory)
    keda = jsonschema.Draft202012Validator(json.loads(KEDA_SCHEMA.read_text()))
    kinds = set()
    for doc in items:
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("keda.sh/"):
            keda.validate(doc)
        else:
            kubernetes_validate.validate(doc, version, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject"} <= kinds


def test_the_validators_refuse_a_typo() -> None:
    """The checks above can fail: a misspelt field is an error for both validators."""
    dep = deployment(docs(), "worker")
    dep["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 35
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)
    (scaled,) = of_kind(docs(), "ScaledObject").values()
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshhold"] = "5"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, json.loads(KEDA_SCHEMA.read_text()))


# ----------------------------------------------------------------------------------- what they mean


def test_every_moderator_variable_is_a_setting() -> None:
    known = env_names()
    for directory in (K8S_BASE, GPU_OVERLAY):
        for where, name in all_env_names(docs(directory)):
            if not name.startswith("MODERATOR_"):
                continue
            owner = next((c for c, p in COMPONENT_SETTINGS.items() if name.startswith(p)), None)
            if owner is not None and not in_tree(owner):
                continue  # that component's settings arrive with its merge; checked from then on
            assert name in known, f"{where} sets {name}, which moderator.settings does not read"
    worker = deployment(docs(), "worker")
    Settings.from_env(container_env(docs(), worker)).check()  # every value parses


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_probes_hit_the_port_the_process_serves(component: str) -> None:
    command, port, live_path, ready_path = COMPONENTS[component]
    items = docs()
    dep = deployment(items, component)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["moderator", command]
    if in_tree(component):
        subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
        assert command in subcommands, f"`moderator {command}` does not exist"
    env = container_env(items, dep)
    if component == "worker":
        settings = Settings.from_env(env)
        served_port, host = settings.web_port, settings.web_host
    else:
        prefix = COMPONENT_SETTINGS[component]
        served_port, host = int(env[f"{prefix}PORT"]), env[f"{prefix}HOST"]
    assert (served_port, host) == (port, "0.0.0.0"), f"{component} must listen beyond loopback on {port}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (
        ("livenessProbe", live_path),
        ("readinessProbe", ready_path),
        ("startupProbe", live_path),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{component} {probe}"
        target = get["port"]
        assert (ports[target] if isinstance(target, str) else target) == served_port, f"{component} {probe}"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_grace_requests_disruption_budget_and_service(component: str) -> None:
    items = docs()
    dep = deployment(items, component)
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= drain_bound_s() + 5
    (container,) = pod["spec"]["containers"]
    requests = container["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests), f"{component} requests no {set(requests) ^ {'cpu', 'memory'}}"
    assert "memory" in container["resources"]["limits"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()

    budgets = [
        b
        for b in of_kind(items, "PodDisruptionBudget").values()
        if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, f"{component}: {len(budgets)} PodDisruptionBudgets select it"
    spec = budgets[0]["spec"]
    replicas = dep["spec"]["replicas"]
    # the budget must let a drain through: never "all replicas must stay"
    if "minAvailable" in spec:
        assert spec["minAvailable"] < replicas
    else:
        assert spec["maxUnavailable"] >= 1

    services = [
        s for s in of_kind(items, "Service").values() if s["spec"]["selector"].items() <= labels.items()
    ]
    assert services, f"{component} has no Service"
    names = {p["name"] for p in container["ports"]}
    for service in services:
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names


def test_worker_threads_fit_its_cpu_request() -> None:
    items = docs()
    dep = deployment(items, "worker")
    settings = Settings.from_env(container_env(items, dep))
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    cpu = container["resources"]["requests"]["cpu"]
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    runtime = settings.runtime
    runs = runtime.lanes_for("cpu")
    threads = runtime.session_intra_threads(runs)
    assert threads >= 1, "0 lets ONNX Runtime start a thread per node core"
    assert runs * threads <= cores
    assert runtime.solo_threads(runs) <= cores
    assert settings.device == "cpu"


def test_autoscaling_follows_the_consumer_group_and_stops_at_the_partition_count() -> None:
    items = docs()
    (scaled,) = of_kind(items, "ScaledObject").values()
    worker = deployment(items, "worker")
    settings = Settings.from_env(container_env(items, worker))
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] == settings.topic_partitions, "replicas past it sit idle"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= settings.topic_partitions
    triggers = [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
    assert sorted(t["topic"] for t in triggers) == sorted(settings.topics.inputs())
    from moderator.settings import bootstrap_servers

    for meta in triggers:
        assert meta["consumerGroup"] == settings.app_id
        assert meta["bootstrapServers"] == bootstrap_servers(settings.broker)
        assert meta["allowIdleConsumers"] == "false"


def test_the_dashboard_reads_the_worker_metrics_service() -> None:
    items = docs()
    env = container_env(items, deployment(items, "dashboard"))
    services = of_kind(items, "Service")
    for url in env["MODERATOR_DASHBOARD_METRICS_URLS"].split(","):
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        assert host in services and int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    claims = of_kind(items, "PersistentVolumeClaim")
    pod = deployment(items, "dashboard")["spec"]["template"]["spec"]
    mounted = {
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert mounted <= set(claims) and mounted
    assert env["MODERATOR_DASHBOARD_DB"].startswith("/data/")
    assert deployment(items, "dashboard")["spec"]["strategy"]["type"] == "Recreate", "one SQLite writer"


def test_gpu_overlay_runs_the_cuda_image_on_gpu_nodes() -> None:
    items = docs(GPU_OVERLAY)
    dep = deployment(items, "worker")
    settings = Settings.from_env(container_env(items, dep))
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":cuda")
    assert settings.device == "cuda"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    tolerations = dep["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    # the rest of the base is unchanged
    assert len(items) == len(docs())
    assert deployment(items, "api") == deployment(docs(), "api")
