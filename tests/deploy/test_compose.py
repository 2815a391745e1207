"""docker-compose.yml and the Dockerfiles, held to what they mean when Docker runs them.

No Docker engine runs in CI, so every fault a first ``docker compose up`` would hit is checked here on the
resolved values: the KRaft cluster id Kafka will decode, the volume its log dirs live on, the grace period
against the worker's own drain bound, the address the worker binds inside its container and the port the
probes hit, the topics and partitions the initialiser creates against those the workers read (under any
``MODERATOR_TOPIC_*`` overrides), the Redis policy the id registry lives under, the GPU service, and the
image layers.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from moderator.settings import Settings, env_names
from tests.deploy.files import (
    DOCKERFILE_CPU,
    DOCKERFILE_GPU,
    ROOT,
    args_of,
    command_of,
    compose,
    dockerfile,
    dockerfile_env,
    drain_bound_s,
    duration_s,
    effective_env,
    env_of,
    services,
    worker_services,
)

OVERRIDES = {
    "MODERATOR_TOPIC_COMMENTS": "prod.comments",
    "MODERATOR_TOPIC_REPLIES": "prod.replies",
    "MODERATOR_TOPIC_VERDICTS": "prod.verdicts",
    "MODERATOR_TOPIC_FLAGGED": "prod.flagged",
    "MODERATOR_TOPIC_DEAD_LETTER": "prod.dlq",
    "MODERATOR_TOPIC_REVIEWS": "prod.reviews",
    "MODERATOR_TOPIC_PARTITIONS": "12",
}


def _init_service_name() -> str:
    names = [n for n in services() if "init" in n and "topic" in n]
    assert len(names) == 1, f"expected one topic-init service, found {names}"
    return names[0]


def _health_port(test: list[str]) -> int:
    urls = re.findall(r"https?://[^'\" ]+", " ".join(test))
    assert len(urls) == 1, test
    port = urllib.parse.urlsplit(urls[0]).port
    assert port is not None
    return port


# ------------------------------------------------------------------------------------------------ kafka


def test_kraft_cluster_id_is_a_16_byte_uuid() -> None:
    cluster_id = env_of(services()["kafka"])["CLUSTER_ID"]
    # kafka-storage.sh random-uuid: URL-safe base64 of 16 bytes, no padding (22 characters)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "==")
    except binascii.Error as exc:  # pragma: no cover - the regex above already rules this out
        pytest.fail(f"CLUSTER_ID is not base64: {exc}")
    assert len(raw) == 16, f"CLUSTER_ID decodes to {len(raw)} bytes; KRaft needs exactly 16"


def test_kafka_keeps_its_data_on_a_named_volume() -> None:
    kafka = services()["kafka"]
    log_dirs = env_of(kafka)["KAFKA_LOG_DIRS"].split(",")
    mounts = {}
    for volume in kafka.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        mounts[target] = source
    for log_dir in log_dirs:
        assert log_dir in mounts, f"Kafka writes {log_dir}, which is no volume: topics vanish on `down`"
        assert mounts[log_dir] in (compose().get("volumes") or {}), "a named volume, declared at the top"
    # the apache/kafka image prepares exactly this directory for its (non-root) user
    assert log_dirs == ["/var/lib/kafka/data"]


def test_kafka_advertises_an_address_each_side_can_reach() -> None:
    env = env_of(services()["kafka"])
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "//kafka:9092" in advertised, "containers reach the broker by its service name"
    host_ports = {p.split(":")[1] for p in services()["kafka"]["ports"]}
    assert any(f"//127.0.0.1:{p}" in advertised for p in host_ports), "host clients get a loopback address"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from topic-init only"


# ------------------------------------------------------------------------------------- topics and workers


@pytest.mark.parametrize("environ", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_topic_init_creates_the_topics_and_partitions_the_workers_read(environ: dict[str, str]) -> None:
    init = services(environ)[_init_service_name()]
    created = env_of(init)["TOPICS"].split()
    partitions = int(env_of(init)["PARTITIONS"])
    for name, worker in worker_services(environ).items():
        settings = Settings.from_env(env_of(worker))
        wanted = [*settings.topics.inputs(), *settings.topics.outputs(), settings.topics.reviews]
        assert created == wanted, name
        assert partitions == settings.topic_partitions, f"{name} assumes {settings.topic_partitions}"
    if not environ:
        assert partitions == Settings().topic_partitions, "compose's default is the settings' default"
    else:
        assert created[0] == "prod.comments" and partitions == 12
    script = "\n".join(command_of(init))
    assert '--topic "$t"' in script and '--partitions "$PARTITIONS"' in script
    assert "for t in $TOPICS" in script and "--if-not-exists" in script
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_moderator_variable_is_a_setting() -> None:
    known = env_names()
    used: set[str] = set()
    for service in services().values():
        used |= {n for n in env_of(service) if n.startswith("MODERATOR_")}
    for path in (DOCKERFILE_CPU, DOCKERFILE_GPU):
        used |= {n for n in dockerfile_env(dockerfile(path)) if n.startswith("MODERATOR_")}
    # the ${MODERATOR_...} references too: a typo there silently falls back to the default
    referenced = set(re.findall(r"\$\{(MODERATOR_[A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    unknown = (used | referenced) - known
    assert not unknown, f"deploy files set variables moderator.settings does not read: {sorted(unknown)}"
    for name, worker in worker_services().items():
        Settings.from_env(effective_env(worker))  # every value parses as its setting's type
        assert name


def test_grace_period_covers_the_drain_bound() -> None:
    bound = drain_bound_s()
    for name, worker in worker_services().items():
        grace = duration_s(worker.get("stop_grace_period", "10s"))
        # a margin for faust's own close after the drain, before Docker's SIGKILL
        assert grace >= bound + 5, f"{name}: stop_grace_period {grace:.0f}s < drain bound {bound:.0f}s + 5s"


def test_worker_serves_probes_on_every_interface_at_the_probed_port() -> None:
    for name, worker in worker_services().items():
        env = effective_env(worker)
        settings = Settings.from_env(env)
        assert settings.web_enabled
        assert settings.web_host == "0.0.0.0", f"{name}: {settings.web_host} is unreachable from outside"
        assert _health_port(worker["healthcheck"]["test"]) == settings.web_port, name
        assert "/health" in " ".join(worker["healthcheck"]["test"])
        build = worker["build"]
        instructions = dockerfile(ROOT / build["context"] / build["dockerfile"])
        assert args_of(instructions, "EXPOSE") == [str(settings.web_port)]
        (check,) = args_of(instructions, "HEALTHCHECK")
        assert _health_port(shlex.split(check.split("CMD", 1)[1])) == settings.web_port


def test_each_replica_gets_its_own_threads() -> None:
    for name, worker in worker_services().items():
        settings = Settings.from_env(effective_env(worker))
        runtime = settings.runtime
        # lanes run at once, each with its own threads (a CUDA session runs one lane)
        runs = runtime.lanes_for("cuda" if settings.device == "cuda" else "cpu")
        threads = runtime.session_intra_threads(runs)
        assert threads >= 1, f"{name}: 0 lets every replica start a thread per host core"
        limit = (worker.get("deploy", {}).get("resources", {}).get("limits", {}) or {}).get("cpus")
        if limit is not None:
            assert runs * threads <= float(limit), f"{name}: {runs} lanes x {threads} threads on {limit} CPUs"
            assert runtime.solo_threads(runs) <= float(limit), name


def test_cpu_workers_run_the_cpu_image_and_gpu_workers_reserve_a_gpu() -> None:
    kinds: dict[str, list[str]] = {"cpu": [], "cuda": []}
    for name, worker in worker_services().items():
        env = effective_env(worker)
        device = Settings.from_env(env).device
        dockerfile_name = worker["build"]["dockerfile"]
        reservations = worker.get("deploy", {}).get("resources", {}).get("reservations", {})
        gpus = [d for d in reservations.get("devices", []) if "gpu" in d.get("capabilities", [])]
        if dockerfile_name == "docker/Dockerfile.cuda":
            kinds["cuda"].append(name)
            assert device == "cuda", f"{name}: the CUDA image should fail loudly without a GPU"
            assert gpus and gpus[0].get("driver") == "nvidia", f"{name} reserves no GPU"
            assert worker.get("profiles"), f"{name}: a GPU service must be opt-in (a compose profile)"
        else:
            kinds["cpu"].append(name)
            assert dockerfile_name == "docker/Dockerfile"
            assert device != "cuda", f"{name}: MODERATOR_DEVICE=cuda on the CPU image exits in a loop"
            assert not gpus
            assert not worker.get("profiles"), "the CPU workers start with a plain `up`"
    assert kinds["cpu"] and kinds["cuda"], kinds
    text = (ROOT / "docker-compose.yml").read_text()
    assert "set MODERATOR_DEVICE=cuda" not in text


def test_the_id_registry_lives_where_nothing_evicts_it() -> None:
    svc = services()
    for name, worker in worker_services().items():
        settings = Settings.from_env(effective_env(worker))
        cache_host = urllib.parse.urlsplit(settings.redis_url).hostname
        ids_url = settings.id_redis_url or settings.redis_url
        ids_host = urllib.parse.urlsplit(ids_url).hostname
        assert cache_host in svc and ids_host in svc, name
        args = command_of(svc[str(ids_host)])
        policy = args[args.index("--maxmemory-policy") + 1] if "--maxmemory-policy" in args else "noeviction"
        # every id key has a TTL, so even volatile-* policies could evict claims: only noeviction is safe
        assert policy == "noeviction", f"{name}: ids in {ids_host} under {policy} can be evicted"
        cache_args = command_of(svc[str(cache_host)])
        if ids_host != cache_host:
            assert "--maxmemory" in cache_args, "the cache instance is bounded (it may evict)"


def test_worker_runs_two_replicas_in_one_group() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] == 2
    # replicas of one service share its environment, hence one group id; a fixed name would forbid scaling
    for w in worker_services().values():
        assert "container_name" not in w
        assert "MODERATOR_APP_ID" not in env_of(w), "one default group for CPU and GPU workers alike"
        assert (ROOT / w["build"]["context"] / w["build"]["dockerfile"]).is_file()


def test_worker_waits_for_healthy_dependencies_and_created_topics() -> None:
    for worker in worker_services().values():
        deps = worker["depends_on"]
        for dep in ("kafka", "redis", "redis-ids"):
            assert deps[dep]["condition"] == "service_healthy"
        assert deps[_init_service_name()]["condition"] == "service_completed_successfully"
        env = env_of(worker)
        assert env["MODERATOR_BROKER"] == "kafka://kafka:9092"


# ------------------------------------------------------------------------------------ every service


def test_every_published_port_binds_loopback_only() -> None:
    published = 0
    for name, service in services().items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), (
                    f"{name}: {port!r} is reachable beyond this machine"
                )
    assert published >= 2, "kafka and redis are published for local clients"
    for worker in worker_services().values():
        assert "ports" not in worker, "replicas cannot share a host port"


def test_every_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False)
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


# ------------------------------------------------------------------------------------------- dockerfiles


@pytest.mark.parametrize(
    ("path", "extra", "other", "base", "device"),
    [
        (DOCKERFILE_CPU, "cpu", "gpu", "python:3.11-slim", "cpu"),
        (DOCKERFILE_GPU, "gpu", "cpu", "nvidia/cuda:13.", "cuda"),
    ],
)
def test_dockerfile(path: Path, extra: str, other: str, base: str, device: str) -> None:
    instructions = dockerfile(path)
    froms = args_of(instructions, "FROM")
    assert len(froms) == 1 and froms[0].startswith(base), froms

    copied_sources = [s for r in args_of(instructions, "COPY") for s in shlex.split(r)[:-1]]
    assert "models" in copied_sources
    assert "onnx_export" not in copied_sources, "the image ships no training or export code"
    for src in copied_sources:
        assert (ROOT / src).exists(), f"{path.name} copies {src}, which is not in the repo"

    users = args_of(instructions, "USER")
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"
    cmd = args_of(instructions, "CMD")[-1]
    assert "moderator" in cmd and "worker" in cmd
    env = dockerfile_env(instructions)
    assert env["MODERATOR_DEVICE"] == device
    # installed into site-packages, the package cannot find models/ next to itself: the paths must be set,
    # inside the copied models/ directory, with the directory names the settings default to
    from moderator import settings as settings_module

    workdir = args_of(instructions, "WORKDIR")[-1]
    assert env["MODERATOR_CLASSIFIER_PATH"] == f"{workdir}/models/{settings_module.DEFAULT_CLASSIFIER.name}"
    assert env["MODERATOR_JUDGE_PATH"] == f"{workdir}/models/{settings_module.DEFAULT_JUDGE.name}"

    ignore = path.with_name(path.name + ".dockerignore")
    assert ignore.is_file(), "without it the build context would carry .venv"
    allowed = {line for line in ignore.read_text().split() if line.startswith("!")}
    assert "!models/" in allowed and "!onnx_export/" not in allowed


@pytest.mark.parametrize(("path", "extra"), [(DOCKERFILE_CPU, "cpu"), (DOCKERFILE_GPU, "gpu")])
def test_a_source_change_does_not_reinstall_the_dependencies(path: Path, extra: str, tmp_path: Path) -> None:
    """The dependency layer sees pyproject.toml only, and installs exactly its dependencies + one extra."""
    instructions = dockerfile(path)
    layers = [(kw, rest) for kw, rest in instructions if kw in ("COPY", "RUN")]
    installs = [i for i, (kw, rest) in enumerate(layers) if kw == "RUN" and "pip install" in rest]
    assert len(installs) == 2, "one layer for the dependencies, one for the package"
    deps_layer, package_layer = installs
    copied_before = [shlex.split(rest)[:-1] for kw, rest in layers[:deps_layer] if kw == "COPY"]
    assert copied_before == [["pyproject.toml"]], f"the dependency layer also depends on {copied_before}"
    assert "--no-deps" in layers[package_layer][1], "the package layer must not resolve dependencies again"
    assert "onnxruntime" not in layers[deps_layer][1], "take onnxruntime from the extra, not a second pin"

    # run the layer's requirement extraction on the real pyproject.toml and compare with the project
    script = layers[deps_layer][1].split("&&")[0]
    command, _, redirect = script.partition(">")
    assert redirect.strip() == "/tmp/requirements.txt"
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"]
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    listed = subprocess.run(
        [sys.executable, "-c", argv[2]], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = [*project["dependencies"], *project["optional-dependencies"][extra]]
    assert [line for line in listed if line] == expected
    other = "onnxruntime-gpu" if extra == "cpu" else "onnxruntime=="
    assert not any(line.startswith(other) for line in listed), "onnxruntime and -gpu clash"
