"""Errors that stop a model from loading: each names the file and the fix."""

from __future__ import annotations

from pathlib import Path


class ModelLoadError(RuntimeError):
    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}. Fix: {fix}")
        self.path = Path(path)
        self.problem = problem
        self.fix = fix


class ProviderError(RuntimeError):
    """The requested execution provider is not what the session actually runs on."""
