"""Turn model probabilities into an action, under a versioned policy file.

The policy's version id (name + content hash) goes into every verdict and every cache key, so editing
a threshold can never serve a verdict decided under the old numbers.

A policy may define ``profiles``: named variants with some bands of their own (e.g. ``child_safety``,
reviewing a children's bot's replies at lower scores), chosen per record by the reply's ``bot``
(``bots``) or the comment's ``channel`` (``channels``). One worker then serves a children's companion
bot and a general feed from the same topics, each under its own levels. A profile's band replaces the
base's band of the same key whole; its ``"*"`` fills only keys neither names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from topics import HATE_LABEL_KEYS
from topics.labels import LABEL_KEYS, SAFETY_KEYS
from topics.records import Action, Why


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LabelBand:
    """``review`` at or above ``threshold``; ``block`` at or above ``block`` (``None``: never blocks).

    ``long``: the review threshold for a score pooled (max) over the windows of a long text. One of
    many windows of ordinary talk crosses a threshold calibrated on single comments far more often
    than one comment does, so a model may ship a higher level for pooled scores, calibrated on long
    clean texts (``None``: the same ``threshold``). The block level is the same for both.
    """

    threshold: float
    block: float | None
    long: float | None = None
    #: safety categories only: the level at which this category is named on a reply the judge has
    #: already flagged (``unsafe`` at or over its review level), below ``threshold``. A generative judge
    #: answers ``unsafe`` and then the category; here the category heads, calibrated to tag harm on
    #: their own, stay silent on many replies the judge flags, so a flagged reply gets the categories
    #: that lead among harmful dev rows. It names a category and never changes the action.
    attribute: float | None = None

    def review_level(self, windowed: bool) -> float:
        """The review threshold for a score from one text (``windowed``: from several windows)."""
        return self.long if windowed and self.long is not None else self.threshold


@dataclass(frozen=True, slots=True)
class Decision:
    flagged: bool
    action: Action
    categories: list[str]
    #: what fired, at which level and where (see ``topics.Why``)
    why: list[Why] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LanguageRule:
    """What the policy does with texts in languages the models were not validated on.

    Scores of other languages are kept and the verdict names the language; ``max_action`` caps what
    the models alone can decide for them (default ``review``: a person looks before anything is
    blocked on an unreliable score) and ``min_action`` raises every such text to at least that.
    """

    validated: frozenset[str] = frozenset({"ko"})
    max_action: Action = "review"
    min_action: Action = "allow"


@dataclass(frozen=True, slots=True)
class Policy:
    """``labels``: a band per hate label; ``safety``: a band per safety category (empty in policies
    written before the multitask model: then safety scores are reported but never categorised)."""

    name: str
    version: str
    labels: dict[str, LabelBand]
    judge_review: float
    judge_block: float | None
    #: action for a text longer than the models read (never ``allow``: that would pass unread text)
    truncated_action: Action = "review"
    languages: LanguageRule = field(default_factory=LanguageRule)
    #: per-category bands of the multitask model's safety outputs; empty = safety scores not acted on
    safety: dict[str, LabelBand] = field(default_factory=dict)
    #: this policy's profile name when it is one of a policy's ``profiles`` (``None``: the base policy)
    profile: str | None = None
    #: stricter (or looser) variants of this policy by name, each complete (the base's bands with the
    #: profile's own on top) and carrying the base's ``version``
    profiles: dict[str, Policy] = field(default_factory=dict)
    #: reply ``bot`` → profile name: a child-facing bot's replies decided under its own levels
    bots: dict[str, str] = field(default_factory=dict)
    #: comment ``channel`` → profile name
    channels: dict[str, str] = field(default_factory=dict)
    #: when the judge flags a reply and no category reaches its level (no hate label, no safety category
    #: at its threshold or attribute level), the highest-scoring safety category is named if its score
    #: is at least this (``None``: never). A generative judge (KoSafeGuard, Llama Guard) always answers
    #: ``unsafe`` with a category; this gives the encoder judge's flagged replies the same contract, as
    #: a best guess the ``why`` says is one. Off in the default policy (docs/benchmarks.md, "The leading
    #: category": on the hand-written checks it names the wrong harm almost as often as the right one)
    name_leading: float | None = None

    def for_record(self, bot: str | None, channel: str | None) -> Policy:
        """The policy a record is decided under: its bot's profile, else its channel's, else this one."""
        if bot is not None and self.bots:
            name = self.bots.get(bot)
            if name is not None:
                return self.profiles[name]
        if channel is not None and self.channels:
            name = self.channels.get(channel)
            if name is not None:
                return self.profiles[name]
        return self

    def decide(
        self,
        probs: npt.NDArray[np.float32] | Sequence[float],
        unsafe: float | None,
        truncated: bool = False,
        *,
        language: str | None = None,
        spans: Mapping[str, tuple[int, int]] | None = None,
    ) -> Decision:
        """Categories = hate labels at or over their threshold (never ``clean``), then safety categories
        when ``probs`` carries them (``LABEL_KEYS`` then ``SAFETY_KEYS``); the worst band wins.

        ``spans``: for a text read in several windows, label (or ``unsafe``) → the character span
        of the window that scored it; it goes into the matching ``why`` entry.

        When the judge flags a reply, each safety category at or over its ``attribute`` level (and
        not already over its threshold) is named too, with a ``why`` entry saying so; the action is
        the judge's.
        """
        spans = spans or {}
        categories: list[str] = []
        why: list[Why] = []
        # one conversion to Python floats (the same values float(probs[j]) gives), not one per label
        values: Sequence[float] = probs.tolist() if isinstance(probs, np.ndarray) else probs
        labels = self.labels
        scored = [(key, values[j], labels[key]) for j, key in enumerate(HATE_LABEL_KEYS)]
        if self.safety and len(values) >= len(LABEL_KEYS) + len(SAFETY_KEYS):
            safety, offset = self.safety, len(LABEL_KEYS)
            scored += [(key, values[offset + i], safety[key]) for i, key in enumerate(SAFETY_KEYS)]
        for key, p, band in scored:
            review = band.long if band.long is not None and key in spans else band.threshold
            blocked = band.block is not None and p >= band.block
            if p >= review or blocked:
                categories.append(key)
                level = band.block if blocked and band.block is not None else review
                why.append(Why("label", "block" if blocked else "review", key, p, level, spans.get(key)))
        if unsafe is not None and unsafe >= self.judge_review:
            blocked = self.judge_block is not None and unsafe >= self.judge_block
            level = self.judge_block if blocked and self.judge_block is not None else self.judge_review
            why.append(
                Why("judge", "block" if blocked else "review", "unsafe", unsafe, level, spans.get("unsafe"))
            )
            if len(scored) > len(HATE_LABEL_KEYS):
                self._attribute(scored[len(HATE_LABEL_KEYS) :], categories, why, spans)
                if self.name_leading is not None:
                    self._name_leading(
                        scored[len(HATE_LABEL_KEYS) :], self.name_leading, categories, why, spans
                    )
        action: Action = max((w.band for w in why), key=_RANK.__getitem__, default="allow")
        if language is not None and language not in self.languages.validated:
            action = self._language_rule(action, language, why)
        if truncated:
            why.append(
                Why("truncated", self.truncated_action, detail="the text is longer than the models read")
            )
            action = _worst(action, self.truncated_action)
        return Decision(flagged=action != "allow", action=action, categories=categories, why=why)

    @staticmethod
    def _attribute(
        scored: list[tuple[str, float, LabelBand]],
        categories: list[str],
        why: list[Why],
        spans: Mapping[str, tuple[int, int]],
    ) -> None:
        """Name the safety categories of a reply the judge flagged (see ``LabelBand.attribute``)."""
        for key, p, band in scored:
            if band.attribute is not None and p >= band.attribute and key not in categories:
                detail = (
                    "attributed: the judge flagged the reply and this category reached its attribute level"
                )
                _name_below(
                    categories, why, Why("label", "review", key, p, band.attribute, spans.get(key), detail)
                )

    @staticmethod
    def _name_leading(
        scored: list[tuple[str, float, LabelBand]],
        floor: float,
        categories: list[str],
        why: list[Why],
        spans: Mapping[str, tuple[int, int]],
    ) -> None:
        """Name the top safety category of a flagged reply that names no harm at all, no hate label
        either (see ``name_leading``)."""
        if categories:
            return
        key, p, _ = max(scored, key=lambda item: item[1])
        if p < floor:
            return
        detail = (
            "leading: the judge flagged the reply, no category reached its level and this one scored "
            "highest (a best guess at which harm)"
        )
        _name_below(categories, why, Why("label", "review", key, p, floor, spans.get(key), detail))

    def _language_rule(self, action: Action, language: str, why: list[Why]) -> Action:
        rule = self.languages
        validated = ", ".join(sorted(rule.validated)) or "none"
        if _RANK[action] > _RANK[rule.max_action]:
            why.append(
                Why(
                    "language",
                    rule.max_action,
                    detail=f"language {language!r} is not validated (validated: {validated}); "
                    f"{action} lowered to {rule.max_action}",
                )
            )
            return rule.max_action
        if _RANK[action] < _RANK[rule.min_action]:
            why.append(
                Why(
                    "language",
                    rule.min_action,
                    detail=f"language {language!r} is not validated (validated: {validated}); "
                    f"raised to {rule.min_action}",
                )
            )
            return rule.min_action
        return action


_RANK: dict[str, int] = {"allow": 0, "review": 1, "block": 2}
_ACTIONS: tuple[Action, ...] = ("allow", "review", "block")
_LANGUAGE_CODE = re.compile(r"^(?:[a-z]{2}|und)$")


def _name_below(categories: list[str], why: list[Why], entry: Why) -> None:
    """Name a safety category under its threshold (an attribute level, the leading category): never
    an action of its own, always a ``why`` entry that says which rule named it."""
    assert entry.label is not None
    categories.append(entry.label)
    why.append(entry)


def _worst(a: Action, b: Action) -> Action:
    return a if _RANK[a] >= _RANK[b] else b


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
    labels = _bands(raw_labels, HATE_LABEL_KEYS, "labels", source, attribute=False)
    raw_safety = data.get("safety")
    safety: dict[str, LabelBand] = {}
    if raw_safety is not None:
        if not isinstance(raw_safety, dict):
            raise PolicyError(f"{source}: 'safety' must be an object of category -> {{threshold, block}}")
        safety = _bands(raw_safety, SAFETY_KEYS, "safety", source)
    judge_review = _prob(judge.get("review", 0.5), f"{source}: judge.review")
    jb = judge.get("block")
    judge_block = None if jb is None else _prob(jb, f"{source}: judge.block")
    lead = judge.get("name_leading")
    name_leading = None if lead is None else _prob(lead, f"{source}: judge.name_leading")
    truncated_action: Action = data.get("truncated_action") or "review"
    if truncated_action not in ("review", "block"):
        raise PolicyError(
            f"{source}: truncated_action must be review or block (got {truncated_action!r}); "
            "a policy never allows a text the models did not read"
        )
    languages = _parse_languages(data.get("languages"), source)
    # the whole document, profiles and routes included: editing a profile is a new version too
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    version = f"{name}@{digest}"
    profiles = {
        pname: dataclasses.replace(
            parse_policy(_profile_document(data, pname, spec, source), f"{source}: profiles.{pname}"),
            version=version,
            profile=pname,
        )
        for pname, spec in _object(data.get("profiles"), "profiles", source).items()
    }
    return Policy(
        name=name,
        version=version,
        labels=labels,
        judge_review=judge_review,
        judge_block=judge_block,
        name_leading=name_leading,
        truncated_action=truncated_action,
        safety=safety,
        languages=languages,
        profiles=profiles,
        bots=_routes(data.get("bots"), "bots", profiles, source),
        channels=_routes(data.get("channels"), "channels", profiles, source),
    )


#: What a profile may set; every band it leaves out is the base policy's.
_PROFILE_KEYS = frozenset({"description", "labels", "safety", "judge"})


def _object(raw: Any, where: str, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: {where!r} must be an object")
    return raw


def _profile_document(data: dict[str, Any], name: str, spec: Any, source: str) -> dict[str, Any]:
    """The base document with a profile's bands put over it, band by band (a band is replaced whole)."""
    if not isinstance(spec, dict):
        raise PolicyError(f"{source}: profiles.{name} must be an object with labels, safety and/or judge")
    unknown = set(spec) - _PROFILE_KEYS
    if unknown:
        raise PolicyError(
            f"{source}: profiles.{name}: unknown key(s) {sorted(unknown)}; a profile sets "
            f"{', '.join(sorted(_PROFILE_KEYS))}"
        )
    doc = {k: v for k, v in data.items() if k not in ("profiles", "bots", "channels")}
    for section in ("labels", "safety", "judge"):
        own = _object(spec.get(section), f"profiles.{name}.{section}", source)
        if own:
            doc[section] = {**_object(data.get(section), section, source), **own}
    return doc


def _routes(raw: Any, where: str, profiles: Mapping[str, Policy], source: str) -> dict[str, str]:
    """``{"name": "profile"}``, every profile one the policy defines."""
    routes = _object(raw, where, source)
    for key, value in routes.items():
        if not isinstance(value, str) or value not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise PolicyError(f"{source}: {where}.{key} names profile {value!r}; profiles: {known}")
    return dict(routes)


def _bands(
    raw: dict[str, Any], keys: tuple[str, ...], section: str, source: str, attribute: bool = True
) -> dict[str, LabelBand]:
    """One band per key (``"*"`` gives a default); unknown keys are refused, not ignored.
    ``attribute``: whether a band may carry an attribute level (safety categories only)."""
    unknown = set(raw) - set(keys) - {"*"}
    if unknown:
        raise PolicyError(f"{source}: unknown {section} key(s) {sorted(unknown)}; known: {', '.join(keys)}")
    default = raw.get("*")
    bands: dict[str, LabelBand] = {}
    for key in keys:
        spec = raw.get(key, default)
        if not isinstance(spec, dict):
            raise PolicyError(f"{source}: no threshold for {section} key {key!r}")
        threshold = _prob(spec.get("threshold"), f"{source}: {section}.{key}.threshold")
        block = spec.get("block")
        block_p = None if block is None else _prob(block, f"{source}: {section}.{key}.block")
        if block_p is not None and block_p < threshold:
            raise PolicyError(
                f"{source}: {section}.{key}.block ({block_p}) is below its threshold ({threshold})"
            )
        long = spec.get("long")
        long_p = None if long is None else _prob(long, f"{source}: {section}.{key}.long")
        if long_p is not None and long_p < threshold:
            raise PolicyError(
                f"{source}: {section}.{key}.long ({long_p}) is below its threshold ({threshold}); "
                "it is the review level for scores pooled over the windows of a long text"
            )
        attr = spec.get("attribute")
        if attr is not None and not attribute:
            raise PolicyError(
                f"{source}: {section}.{key}.attribute: only safety categories take an attribute level "
                "(the level at which a reply the judge flagged is tagged with the category)"
            )
        attr_p = None if attr is None else _prob(attr, f"{source}: {section}.{key}.attribute")
        if attr_p is not None and attr_p > threshold:
            raise PolicyError(
                f"{source}: {section}.{key}.attribute ({attr_p}) is above its threshold ({threshold}); "
                "it names the category on replies the judge flagged, below the level that flags alone"
            )
        bands[key] = LabelBand(threshold, block_p, long_p, attr_p)
    return bands


def _parse_languages(raw: Any, source: str) -> LanguageRule:
    """``{"validated": ["ko", ...], "others": {"max_action": ..., "min_action": ...}}``; absent = defaults."""
    if raw is None:
        return LanguageRule()
    if not isinstance(raw, dict) or set(raw) - {"validated", "others"}:
        raise PolicyError(f"{source}: 'languages' must be an object with 'validated' and 'others'")
    codes = raw.get("validated", ["ko"])
    if not isinstance(codes, list) or not all(isinstance(c, str) and _LANGUAGE_CODE.match(c) for c in codes):
        raise PolicyError(f'{source}: languages.validated must be a list of ISO 639-1 codes like "ko"')
    others = raw.get("others", {})
    if not isinstance(others, dict) or set(others) - {"max_action", "min_action"}:
        raise PolicyError(f"{source}: languages.others takes max_action and min_action")
    default = LanguageRule()
    max_action = others.get("max_action", default.max_action)
    min_action = others.get("min_action", default.min_action)
    for name, value in (("max_action", max_action), ("min_action", min_action)):
        if value not in _ACTIONS:
            raise PolicyError(f"{source}: languages.others.{name} must be allow, review or block")
    if _RANK[min_action] > _RANK[max_action]:
        raise PolicyError(f"{source}: languages.others.min_action is above its max_action")
    return LanguageRule(frozenset(codes), max_action, min_action)


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
