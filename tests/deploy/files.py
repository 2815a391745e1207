"""Readers for the deployment files, shared by the deploy tests: compose with its ``${VAR:-default}``
interpolation done the way Docker Compose does it, Dockerfiles as instruction lists, and the worker's
drain bound. The tests then check what the files *mean* (the values a container would see), not text.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE_CPU = ROOT / "docker" / "Dockerfile"
DOCKERFILE_GPU = ROOT / "docker" / "Dockerfile.cuda"
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"

_VAR = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose's variable substitution on every string of a loaded file (``$$`` is a literal ``$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, default = m.group("op"), m.group("default") or ""
        got = environ.get(name)
        if op == ":-" and not got:
            return default
        if op == "-" and got is None:
            return default
        return got or ""

    return _VAR.sub(sub, value)


def compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as Compose would resolve it in a shell with ``environ`` (default: empty)."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    resolved = interpolate(data, environ or {})
    assert isinstance(resolved, dict)
    return resolved


def services(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    found = compose(environ)["services"]
    assert isinstance(found, dict)
    return found


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "- NAME=value" form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_of(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def worker_services(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Every service that runs ``moderator worker`` (CPU and GPU)."""
    found = {n: s for n, s in services(environ).items() if command_of(s)[:2] == ["moderator", "worker"]}
    assert found, "compose runs no `moderator worker`"
    return found


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with backslash continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
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


def args_of(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in instructions if kw == keyword]


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in args_of(instructions, "ENV"):
        for token in shlex.split(rest):
            name, sep, value = token.partition("=")
            if sep:
                env[name] = value
    return env


def effective_env(service: Mapping[str, Any]) -> dict[str, str]:
    """What the container sees: its image's ENV, overridden by the compose service's environment."""
    build = service.get("build")
    env: dict[str, str] = {}
    if isinstance(build, dict):
        env.update(dockerfile_env(dockerfile(ROOT / build.get("context", ".") / build["dockerfile"])))
    env.update(env_of(service))
    return env


def duration_s(text: str | int | float) -> float:
    """Compose / Go durations: ``90s``, ``1m30s``, ``500ms``; a bare number is seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text!r}"
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def drain_bound_s() -> float:
    """How long the worker drains after SIGTERM before it exits anyway (the code's own constant)."""
    from moderator.stream.worker import SHUTDOWN_TIMEOUT_S

    return float(SHUTDOWN_TIMEOUT_S)


# ---------------------------------------------------------------------------------------------- kustomize

#: The kustomization fields the loader below implements; a kustomization using another is refused, so
#: the tests never silently check something other than what `kubectl apply -k` would apply.
_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "patches"}


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch(doc: Any, ops: list[dict[str, Any]]) -> None:
    """RFC 6902 add / replace / remove, what the overlays use."""
    for op in ops:
        *parents, last = _pointer(op["path"])
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        kind = op["op"]
        if isinstance(target, list):
            if kind == "add":
                target.insert(len(target) if last == "-" else int(last), op["value"])
            elif kind == "replace":
                target[int(last)] = op["value"]
            else:
                assert kind == "remove", kind
                del target[int(last)]
        else:
            if kind == "replace":
                assert last in target, f"replace of a missing {op['path']}"
            if kind in ("add", "replace"):
                target[last] = op["value"]
            else:
                assert kind == "remove", kind
                del target[last]


def _matches(doc: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    checks = {
        "kind": doc["kind"],
        "name": doc["metadata"]["name"],
        "group": group,
        "version": version,
    }
    return all(checks[k] == v for k, v in target.items())


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The resources `kubectl apply -k directory` would apply, for the fields in _KUSTOMIZE_FIELDS."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - _KUSTOMIZE_FIELDS
    assert not unknown, f"{directory}: the test loader does not implement {sorted(unknown)}"
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += kustomize(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        hits = [d for d in docs if _matches(d, patch["target"])]
        assert len(hits) == 1, f"{directory}: patch target {patch['target']} matches {len(hits)} resources"
        _json_patch(hits[0], yaml.safe_load(patch["patch"]))
    return docs
