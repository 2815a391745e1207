"""Turn model probabilities into an action, under a versioned policy file.

The policy's version id (name + content hash) goes into every verdict and every cache key, so editing
a threshold can never serve a verdict decided under the old numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from topics import HATE_LABEL_KEYS
from topics.records import Action


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LabelBand:
    """``review`` at or above ``threshold``; ``block`` at or above ``block`` (``None``: never blocks)."""

    threshold: float
    block: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    flagged: bool
    action: Action
    categories: list[str]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    version: str
    labels: dict[str, LabelBand]
    judge_review: float
    judge_block: float | None
    truncated_action: Action | None

    def decide(
        self, probs: npt.NDArray[np.float32], unsafe: float | None, truncated: bool = False
    ) -> Decision:
        """Categories = hate labels at or over their threshold (never ``clean``); the worst band wins."""
        categories: list[str] = []
        block = False
        for j, key in enumerate(HATE_LABEL_KEYS):
            band = self.labels[key]
            p = float(probs[j])
            if p >= band.threshold:
                categories.append(key)
                if band.block is not None and p >= band.block:
                    block = True
        unsafe_flag = unsafe is not None and unsafe >= self.judge_review
        if unsafe is not None and self.judge_block is not None and unsafe >= self.judge_block:
            block = True
        flagged = bool(categories) or unsafe_flag
        action: Action = "block" if block else ("review" if flagged else "allow")
        if truncated and self.truncated_action is not None and _RANK[self.truncated_action] > _RANK[action]:
            action = self.truncated_action
            flagged = flagged or action != "allow"
        return Decision(flagged=flagged, action=action, categories=categories)


_RANK: dict[str, int] = {"allow": 0, "review": 1, "block": 2}


def _prob(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise PolicyError(f"{where} must be a probability in [0, 1], got {value!r}")
    return float(value)


def parse_policy(data: dict[str, Any], source: str = "<policy>") -> Policy:
    """Validate a policy document; every hate label needs a threshold, unknown labels are refused."""
    try:
        name = str(data["name"])
        raw_labels = data["labels"]
        judge = data.get("judge", {})
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"{source}: missing key {exc}; expected name, labels, judge") from None
    if not isinstance(raw_labels, dict):
        raise PolicyError(f"{source}: 'labels' must be an object of label -> {{threshold, block}}")
    unknown = set(raw_labels) - set(HATE_LABEL_KEYS) - {"*"}
    if unknown:
        raise PolicyError(
            f"{source}: unknown label(s) {sorted(unknown)}; known: {', '.join(HATE_LABEL_KEYS)}"
        )
    default = raw_labels.get("*", None)
    labels: dict[str, LabelBand] = {}
    for key in HATE_LABEL_KEYS:
        spec = raw_labels.get(key, default)
        if spec is None:
            raise PolicyError(f"{source}: no threshold for label {key!r}")
        threshold = _prob(spec.get("threshold"), f"{source}: labels.{key}.threshold")
        block = spec.get("block")
        block_p = None if block is None else _prob(block, f"{source}: labels.{key}.block")
        if block_p is not None and block_p < threshold:
            raise PolicyError(
                f"{source}: labels.{key}.block ({block_p}) is below its threshold ({threshold})"
            )
        labels[key] = LabelBand(threshold, block_p)
    judge_review = _prob(judge.get("review", 0.5), f"{source}: judge.review")
    jb = judge.get("block")
    judge_block = None if jb is None else _prob(jb, f"{source}: judge.block")
    truncated_action = data.get("truncated_action")
    if truncated_action not in (None, "allow", "review", "block"):
        raise PolicyError(f"{source}: truncated_action must be allow, review or block")
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    return Policy(
        name=name,
        version=f"{name}@{digest}",
        labels=labels,
        judge_review=judge_review,
        judge_block=judge_block,
        truncated_action=truncated_action,
    )


def load_policy(path: Path) -> Policy:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise PolicyError(
            f"{path}: policy file not found; set MODERATOR_POLICY_PATH to a policy JSON"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise PolicyError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a JSON object")
    return parse_policy(data, str(path))
