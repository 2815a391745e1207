"""The README is the front door: its config table and commands must match the code and CI."""

from pathlib import Path

from moderator.settings import env_names

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in env_names() if f"`{n}`" not in readme)
    assert not missing, f"README config table lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set "))
    ]
    assert ci[-1] == "make test"
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make demo" in (ROOT / "README.md").read_text()
