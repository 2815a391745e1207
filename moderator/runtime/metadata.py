"""The exported model directory format: ``metadata.json`` next to ``model.onnx`` and ``tokenizer.json``.

One JSON file says what the directory holds (kind, labels, precision, prompt, verdict tokens) so the
worker can load it without torch or transformers, and so a broken or mismatched directory is caught at
load time with the file and the fix named, not as a shape error in the middle of a batch.
``onnx_export`` writes it; the runtime reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from moderator.runtime.errors import ModelLoadError
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, UNSMILE_COLUMNS

FORMAT_VERSION: Final = 1
METADATA_FILE: Final = "metadata.json"
MODEL_FILE: Final = "model.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"

ModelKind = Literal[
    "encoder-classifier",
    "encoder-pair-judge",
    "encoder-multitask",
    "generative-judge",
    "generative-classifier",
]
Precision = Literal["fp32", "fp16", "int8"]
ProblemType = Literal["multi_label", "single_label"]

MODEL_KINDS: Final[tuple[str, ...]] = get_args(ModelKind)
PRECISIONS: Final[tuple[str, ...]] = get_args(Precision)
CLASSIFIER_KINDS: Final = frozenset({"encoder-classifier", "generative-classifier", "encoder-multitask"})
JUDGE_KINDS: Final = frozenset({"encoder-pair-judge", "generative-judge", "encoder-multitask"})

_EXPORT_FIX = "re-export the model with `python -m onnx_export ...` (see docs/models.md)"


@dataclass(frozen=True, slots=True)
class Validation:
    """How far ONNX Runtime strayed from PyTorch on the export's sample inputs.

    ``max_abs_diff`` is measured on the exported graph at its own precision; ``fp32_max_abs_diff`` is
    the fp32 graph before quantisation/fp16 conversion (equal to ``max_abs_diff`` for fp32 exports);
    ``quantization_drift`` is the largest probability change the precision conversion caused.
    """

    max_abs_diff: float
    tolerance: float
    samples: int
    fp32_max_abs_diff: float
    quantization_drift: float = 0.0
    compared: str = "logits"


@dataclass(frozen=True, slots=True)
class GenerativeSpec:
    """Everything a decoder-only model needs at run time that a tokenizer file cannot say.

    ``prompt_prefix`` / ``prompt_suffix_template``: the prompt split at the first per-request field,
    so the judge can run the fixed prefix once and cache its keys/values. The suffix template has
    ``{instruction}``/``{response}`` (judge) or ``{text}`` (classifier) fields. ``verdict_token_ids``:
    first-token ids whose logits decide the judge's verdict (``safe``/``unsafe``). ``category_lines``:
    for the generative classifier, answer line text → label key. ``logit_rows``: when the LM head was
    pruned, the original vocabulary id of each output row (empty = full vocabulary).
    ``max_new_tokens``: for the generative classifier, the most answer lines decoded (0 = one per
    category plus the end of the turn).
    """

    prompt_prefix: str
    prompt_suffix_template: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    past_dtype: Precision
    sliding_window: int | None = None
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int = 0
    verdict_token_ids: dict[str, list[int]] = field(default_factory=dict)
    answer_prefix: str = ""
    category_lines: dict[str, str] = field(default_factory=dict)
    logit_rows: tuple[int, ...] = ()
    max_new_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """The contents of ``metadata.json``.

    ``label_keys``: the model's output columns in output order. For an encoder classifier these are
    topics.LABEL_KEYS (or UnSmile's Korean column names, normalised to the keys on write); for an
    encoder pair judge ``("safe", "unsafe")`` or a single ``("unsafe",)`` logit; for the generative
    kinds the verdict or label keys they fill. ``files``: file name → size in bytes, checked at load so
    a truncated copy fails before a session is created.
    """

    kind: ModelKind
    model_id: str
    name: str
    source: str
    architecture: str
    opset: int
    dtype: Precision
    max_length: int
    label_keys: tuple[str, ...]
    validation: Validation
    problem_type: ProblemType = "multi_label"
    vocab_size: int = 0
    pad_token_id: int = 0
    files: dict[str, int] = field(default_factory=dict)
    generative: GenerativeSpec | None = None
    format_version: int = FORMAT_VERSION
    #: text normaliser the model was trained with (``moderator.core.normalize.NORMALIZER_ID``), applied
    #: before tokenisation at run time; "" = none
    normalizer: str = ""
    #: multitask models: the longest single text (comment) in tokens, when shorter than ``max_length``
    #: (the pair limit): served at the lengths the model was trained on; 0 = ``max_length``
    comment_max_length: int = 0
    #: the device kind (``moderator.runtime.device_kind``, e.g. ``cpu:avx512-vnni``) the shipped
    #: thresholds were calibrated on: int8 scores move between kinds, so the runtime warns on another
    #: one; "" = not recorded
    calibration_device: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def label_key_for(name: str) -> str | None:
    """Map a model label (English key, UnSmile Korean column, any case) onto a ``LABEL_KEYS`` entry."""
    clean = name.strip()
    if clean.lower() in LABEL_KEYS:
        return clean.lower()
    if clean in UNSMILE_COLUMNS:
        return LABEL_KEYS[UNSMILE_COLUMNS.index(clean)]
    aliases = {"other hate": "other_hate", "기타혐오": "other_hate", "악플": "profanity", "욕설": "profanity"}
    return aliases.get(clean.lower().replace("-", " "))


def classifier_label_order(labels: Iterable[str], where: Path | str) -> list[int]:
    """For each of ``LABEL_KEYS``, the model output column that holds it.

    A classifier must produce all ten keys exactly once: a model that silently lacks ``profanity``
    or ``clean`` would give verdicts that look complete and are not.
    """
    labels = list(labels)
    keys = [label_key_for(label) for label in labels]
    unknown = [label for label, key in zip(labels, keys, strict=True) if key is None]
    if unknown:
        raise ModelLoadError(
            where,
            f"labels {unknown} are not UnSmile label keys",
            f"name the model's labels (config id2label) with topics.LABEL_KEYS {list(LABEL_KEYS)} "
            f"or UnSmile's columns {list(UNSMILE_COLUMNS)}",
        )
    duplicated = sorted({k for k in keys if keys.count(k) > 1 and k is not None})
    missing = [k for k in LABEL_KEYS if k not in keys]
    if duplicated or missing:
        raise ModelLoadError(
            where,
            f"labels must cover the ten label keys once each (missing {missing}, duplicated {duplicated})",
            "train/export the classifier with exactly the ten topics.LABEL_KEYS as its labels",
        )
    return [keys.index(k) for k in LABEL_KEYS]


def judge_unsafe_column(labels: Iterable[str], where: Path | str) -> int:
    """Output column holding the unsafe logit: a single logit, or the column named ``unsafe``."""
    labels = [label.strip().lower() for label in labels]
    if len(labels) == 1:
        return 0
    if len(labels) == 2 and "unsafe" in labels:
        return labels.index("unsafe")
    raise ModelLoadError(
        where,
        f"a pair judge needs labels ('safe', 'unsafe') or a single logit, got {labels}",
        "set the checkpoint's id2label to {0: 'safe', 1: 'unsafe'} (or num_labels=1) and re-export",
    )


def multitask_label_order(labels: Iterable[str], where: Path | str) -> list[int]:
    """For each of ``MULTITASK_KEYS``, the output column that holds it (all 18 exactly once)."""
    names = [label.strip().lower() for label in labels]
    missing = [k for k in MULTITASK_KEYS if k not in names]
    duplicated = sorted({k for k in names if names.count(k) > 1})
    extra = sorted(set(names) - set(MULTITASK_KEYS))
    if missing or duplicated or extra:
        raise ModelLoadError(
            where,
            f"a multitask model's labels must be topics.MULTITASK_KEYS once each (missing {missing}, "
            f"duplicated {duplicated}, unknown {extra})",
            f"train/export with id2label = {list(MULTITASK_KEYS)}",
        )
    return [names.index(k) for k in MULTITASK_KEYS]


def content_hash(paths: Iterable[Path]) -> str:
    """Model id: sha256 over the graph, its external data and the tokenizer, in name order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256-" + digest.hexdigest()[:20]


def write_metadata(directory: Path, meta: ModelMetadata) -> Path:
    path = directory / METADATA_FILE
    path.write_text(json.dumps(meta.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def _require(raw: Mapping[str, Any], key: str, typ: type | tuple[type, ...], path: Path) -> Any:
    if key not in raw:
        raise ModelLoadError(path, f"field {key!r} is missing", _EXPORT_FIX)
    value = raw[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ModelLoadError(path, f"field {key!r} has the wrong type ({type(value).__name__})", _EXPORT_FIX)
    return value


def read_metadata(directory: Path) -> ModelMetadata:
    """Read and validate ``directory/metadata.json`` and the files it lists."""
    if not directory.is_dir():
        raise ModelLoadError(
            directory, "model directory does not exist", "point the model path at an exported model directory"
        )
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ModelLoadError(path, "metadata.json is missing", _EXPORT_FIX)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(path, f"metadata.json is not valid JSON ({exc})", _EXPORT_FIX) from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(path, "metadata.json is not a JSON object", _EXPORT_FIX)
    version = _require(raw, "format_version", int, path)
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            path,
            f"format_version {version} is not supported (this worker reads {FORMAT_VERSION})",
            "re-export with the onnx_export of this release, or run a matching worker version",
        )
    kind = _require(raw, "kind", str, path)
    if kind not in MODEL_KINDS:
        raise ModelLoadError(path, f"unknown model kind {kind!r} (known: {list(MODEL_KINDS)})", _EXPORT_FIX)
    dtype = _require(raw, "dtype", str, path)
    if dtype not in PRECISIONS:
        raise ModelLoadError(path, f"unknown dtype {dtype!r}", _EXPORT_FIX)
    problem_type = raw.get("problem_type", "multi_label")
    if problem_type not in ("multi_label", "single_label"):
        raise ModelLoadError(path, f"unknown problem_type {problem_type!r}", _EXPORT_FIX)
    labels = _require(raw, "label_keys", list, path)
    if not labels or not all(isinstance(x, str) for x in labels):
        raise ModelLoadError(path, "label_keys must be a non-empty list of strings", _EXPORT_FIX)
    max_length = _require(raw, "max_length", int, path)
    if max_length < 2:
        raise ModelLoadError(path, f"max_length {max_length} is too small", _EXPORT_FIX)
    files = _require(raw, "files", dict, path)
    try:
        validation = Validation(**_require(raw, "validation", dict, path))
        generative = None
        if raw.get("generative") is not None:
            gen = dict(raw["generative"])
            gen["eos_token_ids"] = tuple(gen.get("eos_token_ids", ()))
            gen["logit_rows"] = tuple(gen.get("logit_rows", ()))
            generative = GenerativeSpec(**gen)
    except TypeError as exc:
        raise ModelLoadError(path, f"metadata.json has unexpected fields ({exc})", _EXPORT_FIX) from exc
    if kind.startswith("generative") and generative is None:
        raise ModelLoadError(path, f"a {kind} needs a 'generative' section", _EXPORT_FIX)
    meta = ModelMetadata(
        kind=cast(ModelKind, kind),
        model_id=_require(raw, "model_id", str, path),
        name=_require(raw, "name", str, path),
        source=_require(raw, "source", str, path),
        architecture=_require(raw, "architecture", str, path),
        opset=_require(raw, "opset", int, path),
        dtype=cast(Precision, dtype),
        max_length=max_length,
        label_keys=tuple(labels),
        validation=validation,
        problem_type=cast(ProblemType, problem_type),
        vocab_size=int(raw.get("vocab_size", 0)),
        pad_token_id=int(raw.get("pad_token_id", 0)),
        files={str(k): int(v) for k, v in files.items()},
        generative=generative,
        format_version=version,
        normalizer=str(raw.get("normalizer", "")),
        comment_max_length=int(raw.get("comment_max_length", 0)),
        calibration_device=str(raw.get("calibration_device", "")),
    )
    check_files(directory, meta)
    return meta


def check_files(directory: Path, meta: ModelMetadata) -> None:
    """Every listed file exists with the recorded size: catches partial copies and swapped files."""
    for required in (MODEL_FILE, TOKENIZER_FILE):
        if required not in meta.files:
            raise ModelLoadError(directory / METADATA_FILE, f"'files' does not list {required}", _EXPORT_FIX)
    for name, size in meta.files.items():
        file = directory / name
        if not file.is_file():
            raise ModelLoadError(
                file, "file listed in metadata.json is missing", "copy the whole exported directory"
            )
        actual = file.stat().st_size
        if actual != size:
            raise ModelLoadError(
                file,
                f"size {actual} bytes does not match metadata.json ({size}): the file is truncated or "
                "from another export",
                "copy the whole exported directory again, or re-export",
            )


def file_sizes(directory: Path, names: Iterable[str]) -> dict[str, int]:
    return {name: (directory / name).stat().st_size for name in sorted(names)}
