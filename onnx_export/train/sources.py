"""One reader per training source, each turning its rows into the multitask model's masked targets.

Why masks: every source knows only some of the 18 outputs (``topics.labels.MULTITASK_KEYS``). The curse
set knows profanity, KoSBi knows ``unsafe``, the OpenAI samples say nothing about a key they omit.
A target the source does not know gets mask 0 and so no loss; a known 0 is a real negative. Each
reader returns the fixed ``train_dev_split.json`` parts of ``../shared/data`` (README there); sources
without a split file get a seeded one by request (``request_split``) so a request's refusal and its
compliance are on the same side.

Comments are single texts (``second is None``); replies are (user message, reply) pairs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from onnx_export.data import (
    KOSBI_FILE,
    SQUARE_FILE,
    UNSMILE_FILE,
    read_comments,
    read_pairs,
    read_split,
    read_square_questions,
)
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS, UNSMILE_COLUMNS

K = len(MULTITASK_KEYS)
COL = {k: i for i, k in enumerate(MULTITASK_KEYS)}
HATE = [COL[k] for k in LABEL_KEYS[:8]]  # the eight group/other-hate keys
UNSMILE_COLS = [COL[k] for k in LABEL_KEYS]
SAFETY_COLS = [COL[k] for k in SAFETY_KEYS]
#: Safety keys that ordinary abusive comments essentially never carry: a hate comment is a known
#: negative for these, while violence/sexual/crime stay unknown (insults can threaten or be sexual).
RARE_IN_COMMENTS = [COL[k] for k in ("sexual_minors", "weapons", "drugs", "self_harm")]

HATESCORE_FILE = Path("hatescore/HateScore.csv")
CURSE_FILE = Path("curse_detection/dataset.txt")
DKTC_FILE = Path("dktc/train.csv")
DNA_FILE = Path("do_not_answer/data_en.csv")
OPENAI_FILE = Path("openai_moderation/samples_train_half.jsonl")
ADVBENCH_FILE = Path("advbench/harmful_behaviors.csv")
HARMBENCH_FILE = Path("harmbench/harmbench_behaviors_text_all.csv")
STRONGREJECT_FILE = Path("strongreject/strongreject_dataset.csv")
DNA_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")


@dataclass
class Rows:
    """Masked multitask rows. ``second[i] is None``: a comment; else (first=user message, second=reply)."""

    first: list[str] = field(default_factory=list)
    second: list[str | None] = field(default_factory=list)
    y: list[npt.NDArray[np.float32]] = field(default_factory=list)
    mask: list[npt.NDArray[np.float32]] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def add(self, first: str, second: str | None, known: dict[int, float], source: str) -> None:
        y = np.zeros(K, np.float32)
        m = np.zeros(K, np.float32)
        for j, v in known.items():
            y[j], m[j] = v, 1.0
        self.first.append(first)
        self.second.append(second)
        self.y.append(y)
        self.mask.append(m)
        self.source.append(source)

    def extend(self, other: Rows) -> Rows:
        self.first += other.first
        self.second += other.second
        self.y += other.y
        self.mask += other.mask
        self.source += other.source
        return self

    def __len__(self) -> int:
        return len(self.first)

    def targets(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if not self.y:
            return np.zeros((0, K), np.float32), np.zeros((0, K), np.float32)
        return np.stack(self.y), np.stack(self.mask)

    def subset(self, idx: Iterable[int]) -> Rows:
        out = Rows()
        for i in idx:
            out.first.append(self.first[i])
            out.second.append(self.second[i])
            out.y.append(self.y[i])
            out.mask.append(self.mask[i])
            out.source.append(self.source[i])
        return out


def all_clean() -> dict[int, float]:
    """Every output known: nothing hateful, nothing unsafe (a neutral comment or a safe reply)."""
    d = dict.fromkeys(range(K), 0.0)
    d[COL["clean"]] = 1.0
    return d


def comment_targets(unsmile_row: Sequence[float]) -> dict[int, float]:
    """Targets of a comment with its ten UnSmile labels: unsafe = any label but clean."""
    known = {COL[k]: float(v) for k, v in zip(LABEL_KEYS, unsmile_row, strict=True)}
    flagged = any(v > 0 for k, v in zip(LABEL_KEYS, unsmile_row, strict=True) if k != "clean")
    known[COL["unsafe"]] = float(flagged)
    if flagged:
        known.update(dict.fromkeys(RARE_IN_COMMENTS, 0.0))
    else:
        known.update(dict.fromkeys(SAFETY_COLS, 0.0))
    return known


def request_split(key: str, dev_frac: float = 0.15) -> bool:
    """True if ``key`` (a request text) is on the dev side: a stable hash, independent of file order."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")
    return (h % 10_000) < dev_frac * 10_000


# --- comment sources -----------------------------------------------------------------------------


def read_unsmile(data: Path) -> tuple[Rows, Rows]:
    path = data / UNSMILE_FILE
    c = read_comments(path)
    tr, dv = read_split(path.parent / "train_dev_split.json")
    out = Rows()
    for text, lab in zip(c.texts, c.labels, strict=True):
        out.add(text, None, comment_targets(lab.tolist()), "unsmile")
    return out.subset(tr), out.subset(dv)


_UNSMILE_NAME = dict(zip(UNSMILE_COLUMNS, LABEL_KEYS, strict=True))


def read_hatescore(data: Path) -> tuple[Rows, Rows]:
    """HateScore: Clean rows are neutral sentences naming groups (every output known 0); hate rows
    carry UnSmile label names in ``microlabel`` (단순 악플 = profanity)."""
    path = data / HATESCORE_FILE
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = Rows()
    for r in rows:
        if r["macrolabel"] == "Clean" or r["microlabel"] == "None":
            out.add(r["comment"], None, all_clean(), "hatescore_clean")
            continue
        labels = [0.0] * len(LABEL_KEYS)
        for name in (p.strip() for p in r["microlabel"].split(",")):
            key = "profanity" if name == "단순 악플" else _UNSMILE_NAME.get(name)
            if key is not None:
                labels[LABEL_KEYS.index(key)] = 1.0
        out.add(r["comment"], None, comment_targets(labels), "hatescore_hate")
    tr, dv = read_split(path.parent / "train_dev_split.json")
    return out.subset(tr), out.subset(dv)


def read_curse(data: Path) -> tuple[Rows, Rows]:
    """Curse-detection lines ``text|0/1``: profanity known; a profane line is unsafe, a clean one says
    nothing else (it may still be hateful)."""
    path = data / CURSE_FILE
    out = Rows()
    keep: list[int] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        text, sep, lab = line.rpartition("|")
        if not sep or lab.strip() not in ("0", "1") or not text.strip():
            out.add("", None, {}, "curse_malformed")  # keeps line numbers aligned with the split
            continue
        v = float(lab.strip())
        known = {COL["profanity"]: v}
        if v:
            known[COL["unsafe"]] = 1.0
            known[COL["clean"]] = 0.0
        out.add(text.strip(), None, known, "curse")
        keep.append(i)
    tr, dv = read_split(path.parent / "train_dev_split.json")
    ok = set(keep)
    return out.subset(i for i in tr if i in ok), out.subset(i for i in dv if i in ok)


DKTC_CLASSES = {
    "협박 대화": ("violence",),
    "갈취 대화": ("crime", "violence"),
    "직장 내 괴롭힘 대화": ("violence",),
    "기타 괴롭힘 대화": ("violence",),
}


def _dktc_rows(data: Path) -> tuple[list[list[str]], list[dict[int, float]], tuple[list[int], list[int]]]:
    """Each DKTC conversation's lines and targets, and the fixed train/dev split."""
    path = data / DKTC_FILE
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines, targets = [], []
    for r in rows:
        keys = DKTC_CLASSES[r["class"]]
        known = {COL["unsafe"]: 1.0, COL["clean"]: 0.0, COL["violence"]: 1.0}
        known.update(dict.fromkeys(RARE_IN_COMMENTS, 0.0))
        known[COL["crime"]] = 1.0 if "crime" in keys else known.get(COL["crime"], 0.0)
        if "crime" not in keys:
            known.pop(COL["crime"], None)
        lines.append([t.strip() for t in r["conversation"].split("\n") if t.strip()])
        targets.append(known)
    tr, dv = read_split(path.parent / "train_dev_split.json")
    return lines, targets, (list(tr), list(dv))


def read_dktc(data: Path) -> tuple[Rows, Rows]:
    """DKTC conversations (all harmful) as one text: threat/harassment → violence, extortion →
    crime + violence; unsafe. Sexual/minors/weapons/drugs/self-harm known 0, hate keys unknown."""
    lines, targets, (tr, dv) = _dktc_rows(data)
    out = Rows()
    for conv, known in zip(lines, targets, strict=True):
        out.add(" ".join(conv), None, known, "dktc")
    return out.subset(tr), out.subset(dv)


def dktc_snippets(data: Path, n: int, rng: random.Random) -> Rows:
    """``n`` runs of three consecutive lines from DKTC *train* conversations, with the conversation's
    targets: a threat or an extortion demand is usually one or two messages, not a whole dialogue.
    In a dialogue whose speakers take turns, three lines hold at least one of the aggressor's; the
    label is still the conversation's, so a snippet can be milder than its label (noise the card names)."""
    lines, targets, (tr, _) = _dktc_rows(data)
    usable = [i for i in tr if len(lines[i]) >= 3]
    out = Rows()
    for _ in range(n if usable else 0):
        i = rng.choice(usable)
        at = rng.randrange(len(lines[i]) - 2)
        out.add(" ".join(lines[i][at : at + 3]), None, dict(targets[i]), "dktc_snippet")
    return out


#: OpenAI moderation keys → ours. H (hate) names no UnSmile group, so it only sets ``unsafe``.
OPENAI_MAP = {"S": "sexual", "S3": "sexual_minors", "V": "violence", "V2": "violence", "HR": "violence",
              "H2": "violence", "SH": "self_harm"}  # fmt: skip


def read_openai(data: Path) -> tuple[Rows, Rows]:
    """OpenAI moderation half (English texts). A missing key is unknown; unsafe = any flag, known 0
    only when all eight keys are present and 0."""
    path = data / OPENAI_FILE
    out = Rows()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        known: dict[int, float] = {}
        for src, dst in OPENAI_MAP.items():
            if src in r:
                known[COL[dst]] = max(known.get(COL[dst], 0.0), float(r[src]))
        present = [float(r[k]) for k in ("S", "S3", "V", "V2", "HR", "H", "H2", "SH") if k in r]
        if any(present):
            known[COL["unsafe"]] = 1.0
            known[COL["clean"]] = 0.0
        elif len(present) == 8:
            known[COL["unsafe"]] = 0.0
        out.add(r["prompt"], None, known, "openai")
    tr, dv = read_split(path.parent / "train_dev_split.json")
    return out.subset(tr), out.subset(dv)


# --- reply sources ---------------------------------------------------------------------------------


def read_kosbi(data: Path) -> tuple[Rows, Rows]:
    """KoSBi (context, sentence) pairs: an unsafe sentence is a stereotype (unsafe, clean 0, the
    group key unknown); a safe one is known clean for every output."""
    path = data / KOSBI_FILE
    p = read_pairs(path)
    out = Rows()
    for q, a, u in zip(p.prompts, p.replies, p.unsafe, strict=True):
        if u:
            out.add(q, a, {COL["unsafe"]: 1.0, COL["clean"]: 0.0}, "kosbi")
        else:
            out.add(q, a, all_clean(), "kosbi")
    tr, dv = read_split(path.parent / "train_dev_split.json")
    return out.subset(tr), out.subset(dv)


def comments_as_replies(comments: Rows, questions: Sequence[str], n: int, seed: int, tag: str) -> Rows:
    """``n`` comments (half flagged, half clean) as replies to random SQuARe questions: an insult in a
    reply is unsafe whatever was asked."""
    rng = np.random.default_rng(seed)
    ys, ms = comments.targets()
    u = COL["unsafe"]
    bad = [i for i in range(len(comments)) if ms[i, u] and ys[i, u] == 1 and ms[i, COL["clean"]]]
    good = [i for i in range(len(comments)) if ms[i, u] and ys[i, u] == 0]
    half = min(n // 2, len(bad), len(good))
    pick = list(rng.choice(bad, half, replace=False)) + list(rng.choice(good, half, replace=False))
    out = Rows()
    for i in pick:
        q = questions[int(rng.integers(0, len(questions)))]
        known = {j: float(ys[i, j]) for j in range(K) if ms[i, j]}
        out.add(q, comments.first[int(i)], known, tag)
    return out


def square_questions(data: Path) -> tuple[list[str], list[str]]:
    """SQuARe questions, split by a stable hash (the file has no split): (train, dev)."""
    qs, _ = read_square_questions(data / SQUARE_FILE)
    tr = [q for q in qs if not request_split(q)]
    dv = [q for q in qs if request_split(q)]
    return tr, dv


def read_do_not_answer(data: Path) -> tuple[Rows, Rows]:
    """Do-Not-Answer: (question, one chatbot's response) with the human ``harmful`` label. A harmless
    response (mostly a refusal) is known clean on every output; a harmful one is unsafe, categories
    unknown."""
    path = data / DNA_FILE
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    tr, dv = read_split(path.parent / "train_dev_split.json")
    out_tr, out_dv = Rows(), Rows()
    dev = set(dv)
    for i, r in enumerate(rows):
        if i not in dev and i not in set(tr):
            continue
        dst = out_dv if i in dev else out_tr
        for m in DNA_MODELS:
            reply = (r.get(f"{m}_response") or "").strip()
            if not reply:
                continue
            if int(r[f"{m}_harmful"]):
                dst.add(r["question"], reply, {COL["unsafe"]: 1.0}, "do_not_answer")
            else:
                dst.add(r["question"], reply, all_clean(), "do_not_answer")
    return out_tr, out_dv


@dataclass(frozen=True)
class Request:
    """A harmful request from AdvBench/HarmBench/StrongREJECT with our safety category (or None)."""

    text: str
    category: str | None
    target: str  # a compliant opening ("Sure, here is ..."), AdvBench's own or built from the text
    source: str


HARMBENCH_CATEGORY = {
    "chemical_biological": "weapons",
    "illegal": "crime",
    "cybercrime_intrusion": "crime",
    "harassment_bullying": "violence",
    "harmful": None,
    "misinformation_disinformation": None,
}
STRONGREJECT_CATEGORY = {
    "Non-violent crimes": "crime",
    "Violence": "violence",
    "Disinformation and deception": None,
    "Hate, harassment and discrimination": "violence",
    "Illegal goods and services": "crime",
    "Sexual content": "sexual",
}
#: Keyword → category, checked in order; refines the coarse category fields (drugs and weapons are
#: "illegal goods" or "chemical" there).
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sexual_minors", ("child porn", "child sexual", "grooming", "groom a minor", "pedophil", "csam")),
    ("self_harm", ("suicide", "self-harm", "self harm", "kill myself", "cutting", "anorexi", "bulimi",
                   "eating disorder", "starve")),
    ("drugs", ("drug", "cocaine", "heroin", "meth", "fentanyl", "marijuana", "cannabis", "lsd", "mdma",
               "opioid", "narcotic", "overdose")),
    ("weapons", ("bomb", "explosive", "gun", "firearm", "weapon", "rifle", "ammunition", "grenade",
                 "nerve agent", "sarin", "bioweapon", "chemical weapon", "poison")),
    ("sexual", ("sex", "porn", "explicit", "erotic", "nude")),
    ("crime", ("steal", "hack", "fraud", "counterfeit", "launder", "scam", "phishing", "identity theft",
               "malware", "ransomware", "forge", "smuggl", "stalk", "bypass", "evade", "shoplift")),
    ("violence", ("kill", "murder", "assault", "attack", "hurt", "harm someone", "threat", "torture",
                  "violence", "bully", "harass")),
)  # fmt: skip


#: A minor named next to something sexual is ``sexual_minors`` too. Word-bounded: "minor" must not
#: match "minority" (it did until 2026-12-01, labelling racism requests sexual_minors, while
#: "sexually explicit magazines to 12 year olds" went to plain ``sexual``).
MINOR_WORDS = re.compile(
    r"\b(minors?|underage|child|children|kids?|teens?|teenagers?|\d+[- ]year[- ]olds?|"
    r"(?:[a-z]+)-year-old)\b"
)
SEXUAL_WORDS = re.compile(r"(sex|porn|explicit|erotic|nude|naked|solicit|groom)")


def keyword_category(text: str) -> str | None:
    low = text.lower()
    if MINOR_WORDS.search(low) and SEXUAL_WORDS.search(low):
        return "sexual_minors"
    for cat, words in KEYWORDS:
        if any(w in low for w in words):
            return cat
    return None


def read_requests(data: Path) -> list[Request]:
    """The three request-only sets (copyright requests dropped: not a safety category here)."""
    out: list[Request] = []
    with (data / ADVBENCH_FILE).open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            out.append(Request(r["goal"], keyword_category(r["goal"]), r["target"], "advbench"))
    with (data / HARMBENCH_FILE).open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["SemanticCategory"] == "copyright" or r.get("FunctionalCategory") == "contextual":
                continue
            cat = keyword_category(r["Behavior"]) or HARMBENCH_CATEGORY.get(r["SemanticCategory"])
            out.append(Request(r["Behavior"], cat, "", "harmbench"))
    with (data / STRONGREJECT_FILE).open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            cat = keyword_category(r["forbidden_prompt"]) or STRONGREJECT_CATEGORY.get(r["category"])
            out.append(Request(r["forbidden_prompt"], cat, "", "strongreject"))
    return out


#: Safety categories a harmful row of the key's category may also be (so stay unknown); every other
#: safety key is a known 0 for it. Without these implicit negatives nothing tells a head that a bomb
#: recipe is not sexual_minors, and the heads tagged a harmful request with 5 of 7 categories
#: (scripts/probe_categories.py). ``keyword_category`` makes a ``sexual`` request one that names no
#: minor, and a ``crime`` request one without a drugs or weapons keyword; the overlaps below are
#: what stays plausible after that (selling drugs is a crime, a bombing is violence, a pill overdose
#: is self-harm, grooming is a crime whether or not the text is sexual).
CATEGORY_OVERLAPS: dict[str, frozenset[str]] = {
    "violence": frozenset({"crime", "weapons"}),
    "sexual": frozenset({"violence", "crime"}),
    "sexual_minors": frozenset({"sexual", "violence", "crime"}),
    "crime": frozenset({"violence", "weapons", "drugs"}),
    "weapons": frozenset({"violence", "crime"}),
    "drugs": frozenset({"crime", "self_harm"}),
    "self_harm": frozenset({"drugs"}),
}


def unsafe_targets(category: str | None) -> dict[int, float]:
    """A compliant reply to a harmful request: unsafe, its category 1, the categories it cannot also
    be 0 (``CATEGORY_OVERLAPS``); with no category, every safety key unknown."""
    known = {COL["unsafe"]: 1.0, COL["clean"]: 0.0}
    if category is not None:
        for other in SAFETY_KEYS:
            if other != category and other not in CATEGORY_OVERLAPS[category]:
                known[COL[other]] = 0.0
        known[COL[category]] = 1.0
    return known


def extra_corpus_texts(data: Path) -> Iterable[str]:
    """Texts of the newer sources (whichever exist) and of the templates, for vocabulary pruning."""
    from onnx_export.train.templates import comment_lines, hate_and_neutral, request_pairs, safety_pairs

    for reader, path in (
        (read_hatescore, HATESCORE_FILE),
        (read_curse, CURSE_FILE),
        (read_dktc, DKTC_FILE),
        (read_openai, OPENAI_FILE),
        (read_do_not_answer, DNA_FILE),
    ):
        if (data / path).exists():
            for part in reader(data):
                yield from part.first
                yield from (t for t in part.second if t is not None)
    rng = random.Random(0)
    from onnx_export.train.templates_categories import category_comments, varied_category_pairs

    rows = hate_and_neutral(rng, 20).extend(safety_pairs(rng, 50, [])).extend(comment_lines(rng, 50))
    rows.extend(varied_category_pairs(random.Random(1), 200)).extend(category_comments(random.Random(1), 100))
    if (
        (data / ADVBENCH_FILE).exists()
        and (data / HARMBENCH_FILE).exists()
        and (data / STRONGREJECT_FILE).exists()
    ):
        rows.extend(request_pairs(read_requests(data), rng))
    yield from rows.first
    yield from (t for t in rows.second if t is not None)


#: The sources with a fixed train/dev split, by name, in the order training and the dev report read them.
READERS: tuple[tuple[str, Callable[[Path], tuple[Rows, Rows]]], ...] = (
    ("unsmile", read_unsmile),
    ("hatescore", read_hatescore),
    ("curse", read_curse),
    ("dktc", read_dktc),
    ("openai", read_openai),
    ("kosbi", read_kosbi),
    ("do_not_answer", read_do_not_answer),
)
