"""The package boundaries the README promises, checked on the import statements themselves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    """module path → every module it imports (at any depth, lazily or not)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def _offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in _imports(package).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize("package", ["moderator/core", "moderator/runtime", "topics"])
def test_only_the_stream_package_knows_kafka(package: str) -> None:
    assert _offending(package, ("faust", "aiokafka", "mode")) == []


@pytest.mark.parametrize(
    "package", ["moderator/core", "moderator/runtime", "moderator/stream", "moderator/dashboard", "topics"]
)
def test_production_code_never_imports_the_local_harness(package: str) -> None:
    assert _offending(package, ("moderator.local", "tests", "bench")) == []


def test_faust_private_attributes_are_touched_only_in_the_adapter() -> None:
    private = re.compile(r"\.(_fetch_max_wait_ms|_committed_offset|_schedule_shutdown|_value)\b")
    hits = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "moderator").rglob("*.py")
        if path.name != "adapter.py"
        for match in private.finditer(path.read_text())
    ]
    assert hits == []
