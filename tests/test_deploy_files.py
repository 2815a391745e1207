"""The Docker files are only run by users with Docker, never by CI: these checks keep them honest anyway.

They parse docker-compose.yml (pyyaml) and the Dockerfiles (plain line parsing) and hold them to the
things that silently rot: the env var names the worker reads, the topic names, the extras each image
installs, ports bound to loopback only, healthchecks, replicas.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from topics.names import TopicNames

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE_CPU = ROOT / "docker" / "Dockerfile"
DOCKERFILE_GPU = ROOT / "docker" / "Dockerfile.cuda"
HEALTH_URL = "http://127.0.0.1:6066/health"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _init_service_name() -> str:
    names = [n for n in _services() if "init" in n and "topic" in n]
    assert len(names) == 1, f"expected one topic-init service, found {names}"
    return names[0]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "- NAME=value" form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with backslash continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path} ends inside a continued line"
    return instructions


def _args(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in instructions if kw == keyword]


def _dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _args(instructions, "ENV"):
        for token in shlex.split(rest):
            name, sep, value = token.partition("=")
            if sep:
                env[name] = value
    return env


def _settings_env_names() -> set[str]:
    settings = importlib.import_module("moderator.settings")
    names = settings.env_names()
    assert isinstance(names, set) and names, "moderator.settings.env_names() must return a non-empty set"
    return names


# ---------------------------------------------------------------------------------------------- compose


def test_compose_has_the_four_services() -> None:
    services = _services()
    for name in ("kafka", "redis", "worker"):
        assert name in services
    _init_service_name()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft mode"
    assert services["redis"]["image"].startswith("redis:")


def test_worker_runs_two_replicas_in_one_group() -> None:
    worker = _services()["worker"]
    assert worker["deploy"]["replicas"] == 2
    # replicas of one service share its environment, hence one group id; a fixed name would forbid scaling
    assert "container_name" not in worker
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert (ROOT / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()


def test_every_published_port_binds_loopback_only() -> None:
    published = 0
    for name, service in _services().items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), (
                    f"{name}: {port!r} is reachable beyond this machine"
                )
    assert published >= 2, "kafka and redis are published for local clients"
    assert "ports" not in _services()["worker"], "replicas cannot share a host port"


def test_every_service_has_a_healthcheck() -> None:
    for name, service in _services().items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False)
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert HEALTH_URL in " ".join(_services()["worker"]["healthcheck"]["test"])


def test_worker_waits_for_healthy_dependencies_and_created_topics() -> None:
    deps = _services()["worker"]["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps[_init_service_name()]["condition"] == "service_completed_successfully"


def test_worker_env_points_at_compose_services() -> None:
    env = _env(_services()["worker"])
    assert env["MODERATOR_BROKER"] == "kafka://kafka:9092"
    assert env["MODERATOR_REDIS_URL"] == "redis://redis:6379/0"
    assert "MODERATOR_DEVICE" in env


def test_worker_env_names_are_settings_the_worker_reads() -> None:
    known = _settings_env_names()
    used = {n for n in _env(_services()["worker"]) if n.startswith("MODERATOR_")}
    for path in (DOCKERFILE_CPU, DOCKERFILE_GPU):
        used |= {n for n in _dockerfile_env(_dockerfile(path)) if n.startswith("MODERATOR_")}
    assert used, "the worker is configured through MODERATOR_* variables"
    unknown = used - known
    assert not unknown, f"deploy files set variables moderator.settings does not read: {sorted(unknown)}"


def test_topic_init_creates_exactly_the_default_topics_with_partitions() -> None:
    init = _services()[_init_service_name()]
    env = _env(init)
    defaults = TopicNames()
    assert env["TOPICS"].split() == [*defaults.inputs(), *defaults.outputs()]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "--create" in script and "--if-not-exists" in script
    assert "--partitions" in script
    partitions = re.fullmatch(r"\$\{MODERATOR_TOPIC_PARTITIONS:-(\d+)\}|(\d+)", env["PARTITIONS"])
    assert partitions is not None, env["PARTITIONS"]
    assert int(partitions.group(1) or partitions.group(2)) >= 2, "two replicas need at least two partitions"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_advertises_an_address_each_side_can_reach() -> None:
    env = _services()["kafka"]["environment"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "//kafka:9092" in advertised, "containers reach the broker by its service name"
    host_ports = {p.split(":")[1] for p in _services()["kafka"]["ports"]}
    assert any(f"//127.0.0.1:{p}" in advertised for p in host_ports), "host clients get a loopback address"


# ------------------------------------------------------------------------------------------- dockerfiles


@pytest.mark.parametrize(
    ("path", "extra", "other", "base", "device"),
    [
        (DOCKERFILE_CPU, "cpu", "gpu", "python:3.11-slim", "cpu"),
        (DOCKERFILE_GPU, "gpu", "cpu", "nvidia/cuda:13.", "cuda"),
    ],
)
def test_dockerfile(path: Path, extra: str, other: str, base: str, device: str) -> None:
    instructions = _dockerfile(path)
    froms = _args(instructions, "FROM")
    assert len(froms) == 1 and froms[0].startswith(base), froms

    installs = " ".join(r for r in _args(instructions, "RUN") if "pip install" in r)
    assert f".[{extra}]" in installs, f"{path.name} must install the {extra} extra"
    assert f"[{other}" not in installs and f",{other}" not in installs, "onnxruntime and -gpu clash"
    assert "onnxruntime" not in installs, "take onnxruntime from the extra, not a second pin"

    copied = [shlex.split(r)[0] for r in _args(instructions, "COPY")]
    copied_sources = [s for r in _args(instructions, "COPY") for s in shlex.split(r)[:-1]]
    assert "models" in copied
    for src in copied_sources:
        assert (ROOT / src).exists(), f"{path.name} copies {src}, which is not in the repo"

    users = _args(instructions, "USER")
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"

    checks = _args(instructions, "HEALTHCHECK")
    assert len(checks) == 1 and HEALTH_URL in checks[0]

    cmd = _args(instructions, "CMD")[-1]
    assert "moderator" in cmd and "worker" in cmd
    env = _dockerfile_env(instructions)
    assert env["MODERATOR_DEVICE"] == device
    # installed into site-packages, the package cannot find models/ next to itself: the paths must be set,
    # inside the copied models/ directory, with the directory names the settings default to
    settings = importlib.import_module("moderator.settings")
    workdir = _args(instructions, "WORKDIR")[-1]
    assert env["MODERATOR_CLASSIFIER_PATH"] == f"{workdir}/models/{settings.DEFAULT_CLASSIFIER.name}"
    assert env["MODERATOR_JUDGE_PATH"] == f"{workdir}/models/{settings.DEFAULT_JUDGE.name}"

    ignore = path.with_name(path.name + ".dockerignore")
    assert ignore.is_file(), "without it the build context would carry .venv"
    assert "!models/" in ignore.read_text().split()
