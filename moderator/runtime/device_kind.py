"""Which kind of device a model's scores come from, as far as its numbers are concerned.

Why: ONNX Runtime dispatches its int8 and float kernels by instruction set, and the per-row 7-bit
activation rounding of the shipped int8 graphs turns their last-bit differences into visible score
changes: the same files gave a reply ``unsafe`` 0.846 on AVX2-only cores and 0.754 on AVX-512 VNNI
ones (models/moderator-multitask-e5-small/MODEL_CARD.md, Limits). Thresholds calibrated on one kind
are therefore only exact on that kind; the ship step records it (``metadata.json``
``calibration_device``) and the runtime warns when it serves on another.

The kinds follow ONNX Runtime's (MLAS) int8 GEMM dispatch on x86-64: AMX, AVX-512 VNNI, AVX-VNNI,
AVX-512 (BW), AVX2; other machines are named by their architecture; a GPU is ``cuda``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moderator.runtime.metadata import ModelMetadata

log = logging.getLogger(__name__)

CUDA_KIND = "cuda"
#: (``/proc/cpuinfo`` flag, kind) in the order the int8 kernels prefer them
_X86_KERNELS: tuple[tuple[str, str], ...] = (
    ("amx_int8", "cpu:amx"),
    ("avx512_vnni", "cpu:avx512-vnni"),
    ("avx_vnni", "cpu:avx-vnni"),
    ("avx512bw", "cpu:avx512"),
    ("avx2", "cpu:avx2"),
)
_X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_kind(flags: Collection[str] | None = None, machine: str | None = None) -> str:
    """This CPU's kind (e.g. ``cpu:avx512-vnni``); ``flags``/``machine`` override what is read."""
    arch = (machine if machine is not None else platform.machine()).lower()
    if arch not in _X86_MACHINES:
        return f"cpu:{arch or 'unknown'}"
    have = frozenset(flags) if flags is not None else _cpuinfo_flags()
    for flag, kind in _X86_KERNELS:
        if flag in have:
            return kind
    return "cpu:x86-64"


def device_kind(provider: str) -> str:
    """The kind a session on ``provider`` (``cpu`` or ``cuda``) computes on."""
    return CUDA_KIND if provider == "cuda" else cpu_kind()


def calibration_matches(directory: Path, meta: ModelMetadata, here: str) -> bool | None:
    """Whether a session computing on device kind ``here`` (``device_kind``) computes on the kind
    ``meta`` was calibrated on (None: the model does not say); on another kind, one warning naming both
    and the fix."""
    if not meta.calibration_device:
        return None
    if here == meta.calibration_device:
        return True
    if here == CUDA_KIND:
        fix = (
            "The ship step calibrates on CPU only: score a labelled sample here (moderator eval) and "
            "move the policy's thresholds if the verdicts differ."
        )
    elif meta.kind == "multitask":
        fix = f"Recalibrate on this kind: python -m onnx_export.train ship multitask --recalibrate --out {directory}"  # noqa: E501
    else:
        fix = "Re-run the ship step that wrote it on this kind of machine."
    log.warning(
        "%s: its thresholds were calibrated on %s but it runs on %s; %s scores move between device "
        "kinds (int8: up to ~0.1 per text measured), so a text near a threshold may get another verdict "
        "than on the calibration machine. %s",
        directory,
        meta.calibration_device,
        here,
        meta.dtype,
        fix,
    )
    return False
