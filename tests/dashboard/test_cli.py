"""``moderator dashboard-user``: accounts from the command line; every mistake is one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODERATOR_DASHBOARD_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-m", "moderator", "dashboard-user", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_list_remove(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite3"
    assert (
        run(db, "add", "mina", "--role", "reviewer", "--password-stdin", stdin="mina-password\n").returncode
        == 0
    )
    assert run(db, "add", "kim", "--password-stdin", stdin="kim-password\n").returncode == 0
    listed = run(db, "list")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["kim\tviewer", "mina\treviewer"]
    assert run(db, "remove", "kim").returncode == 0
    assert run(db, "list").stdout.splitlines() == ["mina\treviewer"]
    # --db overrides the environment
    other = tmp_path / "other.sqlite3"
    assert run(db, "--db", str(other), "add", "x", "--password-stdin", stdin="x-password\n").returncode == 0
    assert run(db, "--db", str(other), "list").stdout.splitlines() == ["x\tviewer"]


def test_mistakes_are_one_line(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite3"
    run(db, "add", "mina", "--password-stdin", stdin="mina-password\n")
    cases = [
        (("add", "mina", "--password-stdin"), "mina-password\n", "exists"),
        (("add", "bob", "--password-stdin"), "short\n", "at least 8"),
        (("add", "bob"), "", "no terminal"),
        (("add", "b o b", "--password-stdin"), "long-enough\n", "user name"),
        (("remove", "nobody"), "", "no user"),
        (("add",), "", "give the account name"),
    ]
    for args, stdin, message in cases:
        done = run(db, *args, stdin=stdin)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("moderator dashboard-user: ") and message in lines[0]
        ), done.stderr
