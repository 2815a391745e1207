"""Export failures: each names the file or checkpoint and what to do about it."""

from __future__ import annotations

from pathlib import Path


class ExportError(RuntimeError):
    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}. Fix: {fix}")
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
